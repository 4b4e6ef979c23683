"""The endpoint-queue interface every broker implements, and the queue-name rule they share."""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

from ..errors import InvalidQueueNameError

QUEUE_NAME_PREFIX = "launch-endpoint-id-"
# Characters every broker accepts in a queue name (SQS: alphanumerics, '-', '_').
_ENDPOINT_ID = re.compile(r"[A-Za-z0-9_-]+")  # used with fullmatch: "$" would accept a trailing newline


def queue_name_for(endpoint_id: str, *, max_length: int, broker: str) -> str:
    """``launch-endpoint-id-{endpoint_id}``, checked before any call reaches the broker."""
    if not isinstance(endpoint_id, str) or not _ENDPOINT_ID.fullmatch(endpoint_id):
        raise InvalidQueueNameError(
            f"endpoint_id {endpoint_id!r} would make an invalid {broker} queue name: use only letters, "
            "digits, '-' and '_'"
        )
    name = QUEUE_NAME_PREFIX + endpoint_id
    if len(name) > max_length:
        raise InvalidQueueNameError(
            f"endpoint_id {endpoint_id!r} makes the queue name {name!r} of {len(name)} characters; {broker} "
            f"allows at most {max_length} (endpoint_id at most {max_length - len(QUEUE_NAME_PREFIX)})"
        )
    return name


@dataclass(frozen=True)
class QueueInfo:
    queue_name: str
    queue_url: str | None


@dataclass(frozen=True)
class QueueAttributes:
    """One normalised answer for every broker; ``raw`` keeps the broker's own."""

    name: str
    approximate_message_count: int
    approximate_in_flight_count: int | None = None
    raw: Mapping[str, Any] = field(default_factory=dict)
    # What create_queue_if_not_exists was given, where the broker keeps it (None where it does not).
    endpoint_labels: Mapping[str, str] | None = None
    endpoint_created_by: str | None = None


class QueueEndpointResourceDelegate(ABC):
    """Creates, inspects and deletes the queue behind an async endpoint.

    Contract: create twice is idempotent; delete of a missing queue is a no-op; attributes of a
    missing queue raise `QueueNotFoundError`; an unreachable broker raises
    `BrokerUnavailableError` (never a count of 0).
    """

    broker_name: ClassVar[str] = "broker"
    max_queue_name_length: ClassVar[int] = 80

    def queue_name(self, endpoint_id: str) -> str:
        name = queue_name_for(endpoint_id, max_length=self.max_queue_name_length, broker=self.broker_name)
        return self.check_queue_name(name)

    def check_queue_name(self, name: str) -> str:
        """The broker's own rule (`names`), so the task queue sends to exactly the names created here."""
        return name

    @abstractmethod
    async def create_queue_if_not_exists(
        self,
        endpoint_id: str,
        endpoint_name: str,
        endpoint_created_by: str,
        endpoint_labels: Mapping[str, str],
        queue_message_timeout_seconds: int | None = None,
    ) -> QueueInfo: ...

    @abstractmethod
    async def delete_queue(self, endpoint_id: str) -> None: ...

    @abstractmethod
    async def get_queue_attributes(self, endpoint_id: str) -> QueueAttributes: ...

    async def close(self) -> None:
        """Release clients; the default holds none."""
