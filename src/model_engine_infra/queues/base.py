"""The endpoint-queue interface every broker implements, and the queue-name rule they share."""

from __future__ import annotations

import asyncio
import re
from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import ClassVar

from ..errors import InvalidQueueNameError, QueueNotFoundError
from ..lifecycle import Closeable

QUEUE_NAME_PREFIX = "launch-endpoint-id-"
#: How many single reads `get_queue_attributes_many` runs at once where a broker has no bulk read.
DEFAULT_BULK_CONCURRENCY = 32
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
    """One normalised answer for every broker; ``raw`` keeps the broker's own.

    ``approximate_message_count`` is None where the broker cannot count (Pub/Sub: the count is a
    Cloud Monitoring metric); a broker that cannot be reached raises instead, it never reports 0.
    """

    name: str
    approximate_message_count: int | None
    approximate_in_flight_count: int | None = None
    raw: Mapping[str, object] = field(default_factory=dict)
    # What create_queue_if_not_exists was given, where the broker keeps it (None where it does not).
    endpoint_labels: Mapping[str, str] | None = None
    endpoint_created_by: str | None = None


class QueueEndpointResourceDelegate(Closeable, ABC):
    """Creates, inspects and deletes the queue behind an async endpoint.

    Contract: create twice is idempotent; delete of a missing queue is a no-op; attributes of a
    missing queue raise `QueueNotFoundError`; an unreachable broker raises
    `BrokerUnavailableError` (never a count of 0). ``get_queue_attributes_many`` answers what the
    single calls would (None for a missing queue), and the single call is safe under an
    ``asyncio.gather`` of thousands: every delegate bounds its own concurrency.
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
    async def get_queue_attributes(self, endpoint_id: str, *, include_tags: bool = False) -> QueueAttributes:
        """Message counts of the endpoint's queue.

        ``include_tags``: also read what the broker keeps apart from the counts (SQS: the queue's tags,
        where ``endpoint_created_by`` lives; one more call per queue). Brokers that return their
        metadata with the counts ignore it.
        """

    async def get_queue_attributes_many(
        self, endpoint_ids: Iterable[str], *, include_tags: bool = False
    ) -> dict[str, QueueAttributes | None]:
        """Attributes of many endpoints' queues at once: ``{endpoint_id: attributes, or None if missing}``.

        Every id is checked before any call goes out. An unreachable broker raises
        `BrokerUnavailableError` for the whole batch (a count is never guessed). This default runs
        single reads, at most `DEFAULT_BULK_CONCURRENCY` at a time; brokers with a cheaper bulk path
        override it.
        """
        ids = list(dict.fromkeys(endpoint_ids))
        for endpoint_id in ids:
            self.queue_name(endpoint_id)
        gate = asyncio.Semaphore(DEFAULT_BULK_CONCURRENCY)

        async def one(endpoint_id: str) -> QueueAttributes | None:
            async with gate:
                try:
                    return await self.get_queue_attributes(endpoint_id, include_tags=include_tags)
                except QueueNotFoundError:
                    return None

        answers = await asyncio.gather(*(one(endpoint_id) for endpoint_id in ids))
        return dict(zip(ids, answers, strict=True))

    async def close(self) -> None:
        """Release clients; the default holds none."""
