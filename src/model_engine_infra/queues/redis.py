"""Redis endpoint queues (gcp, onprem): Celery's own lists, plus a metadata hash per queue.

Celery's redis transport keeps a queue as a plain list named after the queue (and, for
priorities 3/6/9, lists named ``{queue}\\x06\\x16{priority}``); a list vanishes when it is empty.
So the list alone cannot say whether a queue exists: ``{queue}:meta`` is a hash written at creation
(endpoint id and name, creator, labels as JSON, creation time, message timeout), and a queue exists
while its hash or any of its lists does.

A message a worker has fetched but not acknowledged leaves the list and waits in kombu's
``unacked`` hash (field = delivery tag, value = JSON ``[message, exchange, routing_key]``) until it
is acked or restored after the visibility timeout. Those count as in flight, and in the total: a
queue whose workers are busy is not empty. Any Redis error raises `BrokerUnavailableError`; the
reference implementation reported 0 messages instead, which scaled busy endpoints to zero.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Mapping
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, ClassVar

import redis.exceptions

from ..errors import BrokerUnavailableError, QueueNotFoundError
from .base import QueueAttributes, QueueEndpointResourceDelegate, QueueInfo
from .names import redis_queue_name

if TYPE_CHECKING:
    from redis.asyncio import Redis

    from ..config.model import InfraConfig
    from ..infra import Infra

__all__ = [
    "KOMBU_BINDING_KEY",
    "KOMBU_PRIORITY_STEPS",
    "KOMBU_SEPARATOR",
    "KOMBU_UNACKED_INDEX_KEY",
    "KOMBU_UNACKED_KEY",
    "META_SUFFIX",
    "RedisQueueEndpointResourceDelegate",
    "build_delegate",
    "kombu_list_keys",
]

# kombu.transport.redis defaults (Channel.sep, priority_steps, unacked_key, keyprefix_queue).
KOMBU_SEPARATOR = "\x06\x16"
KOMBU_PRIORITY_STEPS = (0, 3, 6, 9)
KOMBU_UNACKED_KEY = "unacked"
KOMBU_UNACKED_INDEX_KEY = "unacked_index"
KOMBU_BINDING_KEY = "_kombu.binding.{exchange}"
META_SUFFIX = ":meta"
_SCAN_BATCH = 500


def kombu_list_keys(queue_name: str, priority_steps: tuple[int, ...] = KOMBU_PRIORITY_STEPS) -> list[str]:
    """The Redis lists kombu uses for ``queue_name``, one per priority step (step 0 is the bare name)."""
    return [queue_name if step == 0 else f"{queue_name}{KOMBU_SEPARATOR}{step}" for step in priority_steps]


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _describe(client: Any) -> str:
    """``host:port/db`` of the client's pool; never the password."""
    kwargs = getattr(getattr(client, "connection_pool", None), "connection_kwargs", {}) or {}
    if "path" in kwargs:
        return f"unix:{kwargs['path']}"
    return f"{kwargs.get('host', '?')}:{kwargs.get('port', '?')}/{kwargs.get('db', 0)}"


class RedisQueueEndpointResourceDelegate(QueueEndpointResourceDelegate):
    """Endpoint queues as Celery redis-transport lists on an injected ``redis.asyncio.Redis``."""

    broker_name: ClassVar[str] = "Redis"
    max_queue_name_length: ClassVar[int] = 255

    def check_queue_name(self, name: str) -> str:
        return redis_queue_name(name)

    def __init__(self, client: Redis, *, priority_steps: tuple[int, ...] = KOMBU_PRIORITY_STEPS) -> None:
        self._client = client
        self._priority_steps = priority_steps
        self._where = _describe(client)

    def __repr__(self) -> str:
        return f"RedisQueueEndpointResourceDelegate({self._where!r})"

    def _unavailable(self, action: str, name: str, err: Exception) -> BrokerUnavailableError:
        return BrokerUnavailableError(
            f"Redis {self._where} failed to {action} queue {name!r} ({type(err).__name__}); the message count is "
            "unknown, not 0 — check the Redis host, port and credentials"
        )

    async def create_queue_if_not_exists(
        self,
        endpoint_id: str,
        endpoint_name: str,
        endpoint_created_by: str,
        endpoint_labels: Mapping[str, str],
        queue_message_timeout_seconds: int | None = None,
    ) -> QueueInfo:
        name = self.queue_name(endpoint_id)
        fields = {
            "endpoint_id": endpoint_id,
            "endpoint_name": endpoint_name,
            "created_by": endpoint_created_by,
            "labels": json.dumps(dict(endpoint_labels), sort_keys=True),
            "created_at": datetime.now(timezone.utc).isoformat(),
        }
        if queue_message_timeout_seconds is not None:
            fields["queue_message_timeout_seconds"] = str(queue_message_timeout_seconds)
        try:
            async with self._client.pipeline(transaction=True) as pipe:
                for field_name, value in fields.items():
                    pipe.hsetnx(name + META_SUFFIX, field_name, value)  # first creation wins, field by field
                await pipe.execute()
        except redis.exceptions.RedisError as err:
            raise self._unavailable("create", name, err) from err
        return QueueInfo(queue_name=name, queue_url=None)

    async def delete_queue(self, endpoint_id: str) -> None:
        name = self.queue_name(endpoint_id)
        try:
            tags = [tag async for tag, _ in self._unacked_entries(name)]
            async with self._client.pipeline(transaction=True) as pipe:
                binding = KOMBU_BINDING_KEY.format(exchange=name)  # a send's or a worker's declaration
                pipe.delete(name + META_SUFFIX, binding, *kombu_list_keys(name, self._priority_steps))
                if tags:
                    pipe.hdel(KOMBU_UNACKED_KEY, *tags)
                    pipe.zrem(KOMBU_UNACKED_INDEX_KEY, *tags)
                await pipe.execute()
        except redis.exceptions.RedisError as err:
            raise self._unavailable("delete", name, err) from err

    async def get_queue_attributes(self, endpoint_id: str) -> QueueAttributes:
        name = self.queue_name(endpoint_id)
        keys = kombu_list_keys(name, self._priority_steps)
        try:
            async with self._client.pipeline(transaction=False) as pipe:
                pipe.hgetall(name + META_SUFFIX)
                for key in keys:
                    pipe.llen(key)
                meta_raw, *lengths = await pipe.execute()
            in_flight = sum([1 async for _ in self._unacked_entries(name)])
        except redis.exceptions.RedisError as err:
            raise self._unavailable("read", name, err) from err
        meta = {_text(k): _text(v) for k, v in (meta_raw or {}).items()}
        waiting = sum(int(n) for n in lengths)
        if not meta and waiting == 0 and in_flight == 0:
            raise QueueNotFoundError(f"Redis queue {name!r} does not exist on {self._where}")
        try:
            labels = json.loads(meta["labels"]) if "labels" in meta else None
        except json.JSONDecodeError:
            labels = None
        return QueueAttributes(
            name=name,
            approximate_message_count=waiting + in_flight,
            approximate_in_flight_count=in_flight,
            raw={"meta": meta, "list_lengths": dict(zip(keys, lengths, strict=True)), "unacked": in_flight},
            endpoint_labels=labels if isinstance(labels, dict) else None,
            endpoint_created_by=meta.get("created_by"),
        )

    async def _unacked_entries(self, name: str) -> AsyncIterator[tuple[str, Any]]:
        """Yield ``(delivery_tag, payload)`` of kombu's unacked messages that belong to queue ``name``."""
        routes: dict[str, set[str]] = {}
        async for tag, value in self._client.hscan_iter(KOMBU_UNACKED_KEY, count=_SCAN_BATCH):
            try:
                _message, exchange, routing_key = json.loads(_text(value))
            except (ValueError, TypeError):
                continue
            if await self._routes_to(name, _text(exchange or ""), _text(routing_key or ""), routes):
                yield _text(tag), value

    async def _routes_to(self, name: str, exchange: str, routing_key: str, cache: dict[str, set[str]]) -> bool:
        """Whether kombu would restore a message from ``exchange``/``routing_key`` to queue ``name``."""
        if not exchange:
            return routing_key == name
        if exchange not in cache:
            members = await self._client.smembers(KOMBU_BINDING_KEY.format(exchange=exchange))
            cache[exchange] = {_text(m) for m in members}
        bindings = cache[exchange]
        if not bindings:
            return routing_key == name
        for member in bindings:
            bound_key, _pattern, queue = [*member.split(KOMBU_SEPARATOR), "", "", ""][:3]
            if queue == name and bound_key == routing_key:
                return True
        return False

    async def close(self) -> None:
        """The client belongs to the Redis connection component, which closes it."""


def build_delegate(config: InfraConfig, infra: Infra) -> RedisQueueEndpointResourceDelegate:
    return RedisQueueEndpointResourceDelegate(infra.redis.async_client())
