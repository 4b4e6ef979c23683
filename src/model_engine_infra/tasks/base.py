"""The task-queue interface: send a Celery task by name, read its state back."""

from __future__ import annotations

import enum
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

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


@dataclass(frozen=True)
class SentTask:
    task_id: str


@dataclass(frozen=True)
class TaskState:
    task_id: str
    status: TaskStatus
    result: JSONValue = None
    traceback: str | None = None


class TaskQueueGateway(Closeable, ABC):
    @abstractmethod
    def send_task(
        self,
        task_name: str,
        queue_name: str,
        args: Sequence[object] = (),
        kwargs: Mapping[str, object] | None = None,
        expires: int | None = None,
    ) -> SentTask:
        """Send ``task_name`` to ``queue_name``; ``args``/``kwargs`` must survive the broker's JSON serializer."""

    @abstractmethod
    def get_task(self, task_id: str) -> TaskState: ...

    def close(self) -> None:
        """Release broker connections; the default holds none."""
