"""One retry budget per Redis command, so a server that stops answering costs a known, short time.

redis-py retries at several nested levels with the same `Retry` object: the command, the connect
inside it, the socket connect inside that, and the health-check PING. Each level restarts its count,
so against a server that accepts connections and never answers, one PING with a 2 s timeout took
34 s (retries x reconnects x health checks). Here every level of one command draws on one budget:
the command fails after ``1 + retries`` failed attempts in all, whatever level they happen at.

Worst case of one command (`worst_case_seconds`), with ``A = 1 + retries`` attempts, ``T`` the
socket timeout (also the connect timeout) and ``B`` the backoff cap::

    A x 2T + (A - 1) x B      a connect that just makes it, then a reply that never comes, A times
    A x T  + (A - 1) x B      a server that accepts and never answers (the usual hang)
    (A - 1) x B               a server that refuses connections (no timeout is waited)

plus, when every pooled connection is busy, up to ``pool_timeout`` waiting for one; a token the server
rejects (rotation) is replaced and retried once more for free, since that server answered at once. Defaults
(``redis_socket_timeout`` 2 s, ``redis_retries`` 1, backoff cap 0.1 s): 4.1 s for a silent server.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

import redis
import redis.asyncio
import redis.asyncio.client
import redis.asyncio.retry
import redis.client
from redis.retry import Retry

__all__ = [
    "AsyncBoundedRedis",
    "AsyncBudgetRetry",
    "BoundedRedis",
    "BudgetRetry",
    "retry_scope",
    "worst_case_seconds",
]

_T = TypeVar("_T")


@dataclass
class _Budget:
    failures: int = 0
    #: a rejected token is replaced before the retry; that one retry is free (the server answered at once)
    token_retry_used: bool = False


def _free_token_retry(budget: _Budget, error: Exception) -> bool:
    if isinstance(error, redis.exceptions.AuthenticationError) and not budget.token_retry_used:
        budget.token_retry_used = True
        return True
    return False


def _count_failure(budget: _Budget, error: Exception) -> bool:
    """Charge ``error`` to the budget; False for the one free retry after an expired token (not counted)."""
    if _free_token_retry(budget, error):
        return False
    budget.failures += 1
    return True


_SCOPE: contextvars.ContextVar[_Budget | None] = contextvars.ContextVar("model_engine_infra_redis_budget", default=None)


@contextlib.contextmanager
def retry_scope() -> Iterator[None]:
    """Every retried call inside shares one budget (a command, or a pipeline's ``execute``)."""
    if _SCOPE.get() is not None:
        yield
        return
    token = _SCOPE.set(_Budget())
    try:
        yield
    finally:
        _SCOPE.reset(token)


def worst_case_seconds(socket_timeout: float, retries: int, backoff_cap: float, *, silent: bool = False) -> float:
    """The longest one command can take (see the module docstring); ``silent``: a server that never answers."""
    attempts = 1 + retries
    per_attempt = socket_timeout if silent else 2 * socket_timeout
    return attempts * per_attempt + retries * backoff_cap


class BudgetRetry(Retry):
    """redis-py's `Retry`, counting failures against the enclosing command's budget, not per level."""

    def call_with_retry(
        self,
        do: Callable[[], _T],
        fail: Callable[..., Any],
        is_retryable: Callable[[Exception], bool] | None = None,
        with_failure_count: bool = False,
    ) -> _T:
        budget = _SCOPE.get()
        token = _SCOPE.set(_Budget()) if budget is None else None
        budget = _SCOPE.get()
        assert budget is not None
        try:
            while True:
                try:
                    return do()
                except self._supported_errors as error:
                    if budget.failures > self._retries or (is_retryable and not is_retryable(error)):
                        raise  # an inner level used the last attempt: pass its error up unchanged
                    counted = _count_failure(budget, error)
                    if with_failure_count:
                        fail(error, budget.failures)
                    else:
                        fail(error)
                    if counted:
                        if budget.failures > self._retries:
                            raise
                        pause = self._backoff.compute(budget.failures)
                        if pause > 0:
                            time.sleep(pause)
        finally:
            if token is not None:
                _SCOPE.reset(token)


class AsyncBudgetRetry(redis.asyncio.retry.Retry):
    """The asyncio twin of `BudgetRetry` (the budget lives in a context variable, so per task)."""

    async def call_with_retry(
        self,
        do: Callable[[], Awaitable[_T]],
        fail: Callable[..., Any],
        is_retryable: Callable[[Exception], bool] | None = None,
        with_failure_count: bool = False,
    ) -> _T:
        budget = _SCOPE.get()
        token = _SCOPE.set(_Budget()) if budget is None else None
        budget = _SCOPE.get()
        assert budget is not None
        try:
            while True:
                try:
                    return await do()
                except self._supported_errors as error:
                    if budget.failures > self._retries or (is_retryable and not is_retryable(error)):
                        raise
                    counted = _count_failure(budget, error)
                    if with_failure_count:
                        await fail(error, budget.failures)
                    else:
                        await fail(error)
                    if counted:
                        if budget.failures > self._retries:
                            raise
                        pause = self._backoff.compute(budget.failures)
                        if pause > 0:
                            await asyncio.sleep(pause)
        finally:
            if token is not None:
                _SCOPE.reset(token)


class BoundedPipeline(redis.client.Pipeline):
    """A pipeline whose ``execute`` (connect, send, retries) is one budget."""

    def execute(self, raise_on_error: bool = True) -> Any:
        with retry_scope():
            return super().execute(raise_on_error)

    def immediate_execute_command(self, *args: Any, **options: Any) -> Any:
        with retry_scope():
            return super().immediate_execute_command(*args, **options)  # type: ignore[no-untyped-call]


class BoundedRedis(redis.Redis):
    """A client whose every command (getting a connection included) is one budget."""

    def execute_command(self, *args: Any, **options: Any) -> Any:
        with retry_scope():
            return super().execute_command(*args, **options)  # type: ignore[no-untyped-call]

    def pipeline(self, transaction: bool = True, shard_hint: Any = None) -> BoundedPipeline:
        return BoundedPipeline(self.connection_pool, self.response_callbacks, transaction, shard_hint)


class AsyncBoundedPipeline(redis.asyncio.client.Pipeline):
    async def execute(self, raise_on_error: bool = True) -> Any:
        with retry_scope():
            return await super().execute(raise_on_error)

    async def immediate_execute_command(self, *args: Any, **options: Any) -> Any:
        with retry_scope():
            return await super().immediate_execute_command(*args, **options)  # type: ignore[no-untyped-call]


class AsyncBoundedRedis(redis.asyncio.Redis):
    async def execute_command(self, *args: Any, **options: Any) -> Any:
        with retry_scope():
            return await super().execute_command(*args, **options)  # type: ignore[no-untyped-call]

    def pipeline(self, transaction: bool = True, shard_hint: Any = None) -> AsyncBoundedPipeline:
        return AsyncBoundedPipeline(self.connection_pool, self.response_callbacks, transaction, shard_hint)
