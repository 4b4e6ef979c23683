"""The task-queue interface: send a Celery task by name, read its state back, wait for it to finish.

`send_task` takes our order, ``send_task(name, queue_name, args, kwargs, expires)``, and Celery's,
``send_task(name, [args], {kwargs}, queue=...)``; implementations only write `_send_task`.
"""

from __future__ import annotations

import enum
import time
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from ..errors import TaskTimeoutError
from ..json_types import JSONValue
from ..lifecycle import Closeable


class TaskStatus(str, enum.Enum):
    PENDING = "PENDING"
    STARTED = "STARTED"
    RETRY = "RETRY"
    SUCCESS = "SUCCESS"
    FAILURE = "FAILURE"
    REVOKED = "REVOKED"
    UNKNOWN = "UNKNOWN"


#: States a task does not leave: `wait` returns on them.
FINAL_STATES = frozenset({TaskStatus.SUCCESS, TaskStatus.FAILURE, TaskStatus.REVOKED})


@dataclass(frozen=True)
class SentTask:
    task_id: str


@dataclass(frozen=True)
class TaskState:
    task_id: str
    status: TaskStatus
    result: JSONValue = None
    traceback: str | None = None


def task_call(
    queue_name: str | Sequence[object] | None,
    args: Sequence[object] | Mapping[str, object] | None,
    kwargs: Mapping[str, object] | None,
    queue: str | None,
) -> tuple[str, list[object], dict[str, object]]:
    """``(queue, args, kwargs)`` from either calling order; misuse is a `TypeError`, as in Celery."""
    if queue_name is not None and not isinstance(queue_name, str):
        # Celery's order: send_task(name, args, kwargs, queue=...)
        if kwargs is not None:
            raise TypeError("send_task(name, args, kwargs, queue=...) takes no fourth positional argument")
        queue_name, args, kwargs = None, queue_name, args  # type: ignore[assignment]
    if queue_name is not None and queue is not None and queue != queue_name:
        raise TypeError(f"send_task got two queues, {queue_name!r} and queue={queue!r}; give one")
    chosen = queue_name if queue_name is not None else queue
    if chosen is None:  # a bad name ("") is the broker's to refuse, with its own rule
        raise TypeError("send_task needs a queue: send_task(name, queue_name, ...) or send_task(name, args, queue=...)")
    if args is None:
        args = ()
    if isinstance(args, (str, bytes, Mapping)) or not isinstance(args, Sequence):
        raise TypeError(f"task args must be a list or tuple, not {type(args).__name__}")
    if kwargs is not None and not isinstance(kwargs, Mapping):
        raise TypeError(f"task keyword arguments must be a mapping, not {type(kwargs).__name__}")
    return chosen, list(args), dict(kwargs or {})


class TaskQueueGateway(Closeable, ABC):
    def send_task(
        self,
        task_name: str,
        queue_name: str | Sequence[object] | None = None,
        args: Sequence[object] | Mapping[str, object] | None = None,
        kwargs: Mapping[str, object] | None = None,
        expires: float | None = None,
        *,
        queue: str | None = None,
    ) -> SentTask:
        """Send ``task_name`` to a queue; ``expires`` is seconds after which a worker discards it."""
        chosen, call_args, call_kwargs = task_call(queue_name, args, kwargs, queue)
        return self._send_task(task_name, chosen, call_args, call_kwargs, expires)

    async def send_task_async(
        self,
        task_name: str,
        queue_name: str | Sequence[object] | None = None,
        args: Sequence[object] | Mapping[str, object] | None = None,
        kwargs: Mapping[str, object] | None = None,
        expires: float | None = None,
        *,
        queue: str | None = None,
    ) -> SentTask:
        """`send_task` in a worker thread, so the event loop keeps running (the context goes along)."""
        import asyncio  # not at import time: see tasks/__init__.py

        chosen, call_args, call_kwargs = task_call(queue_name, args, kwargs, queue)
        return await asyncio.to_thread(self._send_task, task_name, chosen, call_args, call_kwargs, expires)

    @abstractmethod
    def _send_task(
        self, task_name: str, queue_name: str, args: list[object], kwargs: dict[str, object], expires: float | None
    ) -> SentTask:
        """Publish one task; arguments are already checked."""

    @abstractmethod
    def get_task(self, task_id: str) -> TaskState: ...

    def wait(
        self, task_id: str, timeout: float = 60.0, *, interval: float = 0.05, max_interval: float = 1.0
    ) -> TaskState:
        """Poll `get_task` (``interval`` doubling up to ``max_interval``) until a final state.

        Returns the SUCCESS, FAILURE or REVOKED state; `TaskTimeoutError` after ``timeout`` seconds.
        """
        deadline = time.monotonic() + timeout
        delay = interval
        while True:
            state = self.get_task(task_id)
            remaining = deadline - time.monotonic()
            if state.status in FINAL_STATES:
                return state
            if remaining <= 0:
                raise TaskTimeoutError(task_id, timeout, state.status.value)
            time.sleep(min(delay, remaining))
            delay = min(delay * 2, max_interval)

    async def wait_async(
        self, task_id: str, timeout: float = 60.0, *, interval: float = 0.05, max_interval: float = 1.0
    ) -> TaskState:
        """`wait` for an event loop: each poll runs in a thread, the pauses are ``asyncio.sleep``."""
        import asyncio

        deadline = time.monotonic() + timeout
        delay = interval
        while True:
            state = await asyncio.to_thread(self.get_task, task_id)
            remaining = deadline - time.monotonic()
            if state.status in FINAL_STATES:
                return state
            if remaining <= 0:
                raise TaskTimeoutError(task_id, timeout, state.status.value)
            await asyncio.sleep(min(delay, remaining))
            delay = min(delay * 2, max_interval)

    def close(self) -> None:
        """Release broker connections; the default holds none."""
