"""Celery for every broker: `BrokerType`, `celery_app()`, and the task-queue gateway."""

from .base import SentTask, TaskQueueGateway, TaskState, TaskStatus
from .broker import BrokerType, broker_type_for

__all__ = ["BrokerType", "SentTask", "TaskQueueGateway", "TaskState", "TaskStatus", "broker_type_for"]
