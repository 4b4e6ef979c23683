"""The task-queue interface: send a Celery task by name, read its state back."""

from __future__ import annotations

import enum
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

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
    result: Any = None
    traceback: str | None = None


class TaskQueueGateway(Closeable, ABC):
    @abstractmethod
    def send_task(
        self,
        task_name: str,
        queue_name: str,
        args: Sequence[Any] = (),
        kwargs: Mapping[str, Any] | None = None,
        expires: int | None = None,
    ) -> SentTask: ...

    @abstractmethod
    def get_task(self, task_id: str) -> TaskState: ...

    def close(self) -> None:
        """Release broker connections; the default holds none."""
