"""Endpoint queues: one async delegate per broker (SQS, Service Bus, Redis lists, local files)."""

from .base import QueueAttributes, QueueEndpointResourceDelegate, QueueInfo, queue_name_for

__all__ = ["QueueAttributes", "QueueEndpointResourceDelegate", "QueueInfo", "queue_name_for"]
