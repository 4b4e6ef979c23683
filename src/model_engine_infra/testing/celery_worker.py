"""A real Celery worker in a thread of the test process, started and stopped reliably on a busy machine.

Celery's own helper (``celery.contrib.testing.worker.start_worker``) waits for the worker without a
time limit, and when its bounded join gives up it leaves Celery's process-wide terminate flag set:
every later worker in the process then stops as soon as it starts, and its test hangs until
pytest-timeout. This helper

- waits for readiness (the consumer is consuming: Celery's ``ready_callback``, what ``worker_ready``
  reports), bounded by ``ready_timeout``, and fails at once if the worker thread dies meanwhile;
- stops the worker by closing its own consumer first (other workers in the process carry on), then,
  if it is still busy (reconnecting to a broker, say), with Celery's terminate flag; the join is
  bounded by ``stop_timeout`` and the flag is cleared as soon as no worker of ours needs it;
- stops the worker on every way out of the ``with`` block -- a failed assertion, a failed start.

Use it as ``with worker_thread(app, queues=["q"]) as worker: ...``. Celery is imported when a
worker starts, not when this module is imported.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from celery import Celery
    from celery.worker import WorkController

__all__ = [
    "DEFAULT_READY_TIMEOUT",
    "DEFAULT_STOP_TIMEOUT",
    "WorkerStartError",
    "WorkerStopError",
    "worker_thread",
]

DEFAULT_READY_TIMEOUT = 120.0
DEFAULT_STOP_TIMEOUT = 60.0
#: how long a worker gets to leave after its consumer was closed, before the process-wide flag is used
CLOSE_GRACE = 10.0
_POLL = 0.25

_lock = threading.Lock()
_terminating: set[threading.Thread] = set()  # threads stopped with Celery's process-wide flag


class WorkerStartError(RuntimeError):
    """The worker thread died, or did not start consuming within ``ready_timeout``."""


class WorkerStopError(RuntimeError):
    """The worker thread was still running ``stop_timeout`` seconds after it was told to stop."""


def _worker_class() -> type[WorkController]:
    from celery.worker import WorkController

    class ThreadWorker(WorkController):  # type: ignore[misc]
        """A WorkController that says when its consumer is consuming."""

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            self.consuming = threading.Event()
            super().__init__(*args, ready_callback=self._on_consuming, **kwargs)

        def _on_consuming(self, consumer: Any) -> None:
            self.consuming.set()

    return ThreadWorker


def _run(worker: WorkController) -> None:
    """The thread's body: run the worker, then release everything it started, whatever happened."""
    from celery.bootsteps import CLOSE, RUN

    try:
        worker.start()
    finally:
        consumer = getattr(worker, "consumer", None)
        if consumer is not None and consumer.blueprint is not None and consumer.blueprint.state == CLOSE:
            # We closed the loop by marking the consumer CLOSE; as RUN again, stop() closes its
            # connection and channels instead of taking it for already stopped.
            consumer.blueprint.state = RUN
        with contextlib.suppress(Exception):
            worker.stop()  # start() returned: the pool, timers and connections are still up
        _release_terminate_flag(threading.current_thread())


def _release_terminate_flag(thread: threading.Thread) -> None:
    from celery.worker import state

    with _lock:
        if thread in _terminating:
            _terminating.discard(thread)
            if not _terminating:
                state.should_terminate = None


def _close_consumer(worker: WorkController) -> None:
    """Ask this worker alone to leave its consume loop (checked on every loop cycle)."""
    from celery.bootsteps import CLOSE

    consumer = getattr(worker, "consumer", None)
    if consumer is not None and consumer.blueprint is not None:
        consumer.blueprint.state = CLOSE


def _wait_for_stragglers(timeout: float) -> None:
    """A worker that outlived its stop holds Celery's terminate flag: wait for it before starting another."""
    deadline = time.monotonic() + timeout
    while True:
        with _lock:
            alive = [t for t in _terminating if t.is_alive()]
        if not alive:
            return
        if time.monotonic() > deadline:
            names = ", ".join(t.name for t in alive)
            raise WorkerStartError(
                f"an earlier worker thread ({names}) is still stopping after {timeout:g} s; a new worker would be "
                "terminated by the same process-wide flag"
            )
        alive[0].join(_POLL)


def _wait_ready(worker: Any, thread: threading.Thread, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not worker.consuming.wait(_POLL):
        if not thread.is_alive():
            raise WorkerStartError("the worker thread exited before it started consuming; see the log above")
        if time.monotonic() > deadline:
            raise WorkerStartError(
                f"the worker did not start consuming within {timeout:g} s (is the broker reachable?)"
            )


def _stop(worker: WorkController, thread: threading.Thread, timeout: float) -> None:
    """Close the consumer, then escalate to Celery's terminate flag; join for at most ``timeout`` seconds."""
    from celery.worker import state

    deadline = time.monotonic() + timeout
    # A worker that never reached its consume loop (still connecting) cannot see a consumer close.
    grace = min(CLOSE_GRACE, timeout) if worker.consuming.is_set() else 0.0  # type: ignore[attr-defined]
    grace_end = time.monotonic() + grace
    while thread.is_alive() and time.monotonic() < grace_end:
        _close_consumer(worker)  # again each time: a consumer restarting after a lost connection resets it
        thread.join(_POLL)
    if thread.is_alive():
        with _lock:
            _terminating.add(thread)
            state.should_terminate = 0
        thread.join(max(0.0, deadline - time.monotonic()))
    if thread.is_alive():
        raise WorkerStopError(
            f"the Celery worker thread {thread.name} was still running {timeout:g} s after it was told to stop; "
            "Celery's terminate flag stays set until it exits, and the next worker waits for it"
        )
    _release_terminate_flag(thread)


@contextlib.contextmanager
def worker_thread(
    app: Celery,
    *,
    queues: Sequence[str] | None = None,
    pool: str = "solo",
    loglevel: str = "WARNING",
    ready_timeout: float = DEFAULT_READY_TIMEOUT,
    stop_timeout: float = DEFAULT_STOP_TIMEOUT,
    **options: Any,
) -> Iterator[WorkController]:
    """A Celery worker consuming ``queues`` (default: the app's) in a daemon thread, for a ``with`` block.

    Yields once the worker consumes; stops it on the way out. ``options`` go to Celery's
    ``WorkController`` (``use_eventloop=False``, ``concurrency``...). A stop that times out raises
    `WorkerStopError`, unless the block is already failing: then the block's own error propagates.
    """
    from celery.contrib.testing.worker import setup_app_for_worker
    from celery.result import _set_task_join_will_block
    from celery.utils.nodenames import anon_nodename

    _wait_for_stragglers(ready_timeout)
    setup_app_for_worker(app, loglevel, None)
    options.setdefault("without_heartbeat", True)
    worker = _worker_class()(
        app=app,
        hostname=options.pop("hostname", anon_nodename()),
        pool=pool,
        concurrency=options.pop("concurrency", 1),
        loglevel=loglevel,
        logfile=None,
        queues=list(queues) if queues is not None else None,
        without_mingle=True,
        without_gossip=True,
        **options,
    )
    thread = threading.Thread(target=_run, args=(worker,), name=f"celery-worker-{worker.hostname}", daemon=True)
    thread.start()
    failed = False
    try:
        _wait_ready(worker, thread, ready_timeout)
        _set_task_join_will_block(False)  # result.get() in the test thread is not "inside a task"
        yield worker
    except BaseException:
        failed = True
        raise
    finally:
        try:
            _stop(worker, thread, stop_timeout)
        except WorkerStopError:
            if not failed:
                raise
