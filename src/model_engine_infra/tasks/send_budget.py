"""One budget of failed attempts per send, shared by every kombu retry level, so a dead broker costs a known time.

kombu retries a publish at nested levels: ``Connection.ensure`` around the publish (Celery's
``task_publish_retry_policy``), ``_ensure_connection`` inside each of its retries (which restarts
its own count), ``maybe_declare`` with the same policy, and the first ``default_channel`` with the
connection's failover options (by default until ``broker_connection_timeout``, pausing 2 s, 4 s,
...). Against a Redis that accepted connections and never answered, one send took 7.5 s with a
0.5 s socket timeout. Every one of those levels calls the ``errback`` it is given on a failure it
will retry; `spend` is that errback: it counts the failure against the current send's budget and
re-raises it once the budget (`SendBounds.attempts`) is spent, which ends every level at once.
"""

from __future__ import annotations

import contextlib
import contextvars
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

__all__ = ["send_scope", "spend"]


@dataclass
class _Budget:
    attempts: int
    pause: float
    failures: int = 0


_SCOPE: contextvars.ContextVar[_Budget | None] = contextvars.ContextVar("model_engine_infra_send_budget", default=None)


@contextlib.contextmanager
def send_scope(attempts: int, pause: float = 0.0) -> Iterator[None]:
    """Every failure inside (at any kombu level) counts against one budget of ``attempts``.

    Each failure that leaves attempts pauses ``pause`` seconds before the next one; kombu's own
    intervals are set to 0 (`SendBounds.retry_policy`), so every pause of the send is this one.
    """
    token = _SCOPE.set(_Budget(max(1, attempts), max(0.0, pause)))
    try:
        yield
    finally:
        _SCOPE.reset(token)


def spend(exc: BaseException, interval: Any = 0) -> None:
    """kombu's ``errback(exc, interval)``: count one failed attempt; re-raise ``exc`` once the budget is spent.

    Otherwise pause before the next attempt. Outside a `send_scope` (a worker's connection) it does
    nothing, so kombu's own limits and intervals apply.
    """
    budget = _SCOPE.get()
    if budget is None:
        return
    budget.failures += 1
    if budget.failures >= budget.attempts:
        raise exc
    if budget.pause:
        time.sleep(budget.pause)
