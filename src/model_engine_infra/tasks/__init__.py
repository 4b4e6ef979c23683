"""Celery for every broker: `BrokerType`, `celery_app()`, and the task-queue gateway."""

from typing import Any

from ..brokers import BrokerType, TaskVisibility, broker_type_for
from .base import SentTask, TaskQueueGateway, TaskState, TaskStatus

__all__ = [
    "BrokerType",
    "CeleryTaskQueueGateway",
    "SentTask",
    "TaskQueueGateway",
    "TaskState",
    "TaskStatus",
    "TaskVisibility",
    "broker_type_for",
    "celery_app",
    "celery_conf",
]

_LAZY = {"celery_app": ".app", "celery_conf": ".app", "CeleryTaskQueueGateway": ".gateway"}


def __getattr__(name: str) -> Any:
    """`celery_app`, `celery_conf`, `CeleryTaskQueueGateway` on first use: importing the package imports no Celery."""
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
