"""Redis endpoint queues (gcp, onprem): Celery's own lists, plus a metadata hash per queue.

Celery's redis transport keeps a queue as a plain list named after the queue (and, for
priorities 3/6/9, lists named ``{queue}\\x06\\x16{priority}``); a list vanishes when it is empty.
So the list alone cannot say whether a queue exists: ``{queue}:meta`` is a hash written at creation
(endpoint id and name, creator, labels as JSON, creation time, message timeout), and a queue exists
while its hash or any of its lists does. Creating an existing queue again rewrites the hash with the
request's values (the creation time stays).

A message a worker has fetched but not acknowledged leaves the list and waits in kombu's
``unacked`` hash (field = delivery tag, value = JSON ``[message, exchange, routing_key]``) until it
is acked or restored after the visibility timeout. Those count as in flight, and in the total: a
queue whose workers are busy is not empty. Any Redis error raises `BrokerUnavailableError`; the
reference implementation reported 0 messages instead, which scaled busy endpoints to zero.

Celery's Redis broker keeps each task visibility in its own database (llm-engine's
``TaskVisibility``: 1 h in 0, 24 h in 3, ...). The delegate reads the database of the endpoints'
(inference) queues, where it also keeps the metadata, plus any ``also`` databases the broker uses;
counts add up and a delete empties them all. The cache's own database is not one of them.

The ``unacked`` hash is shared by every queue on the database, so reading it once per queue costs
queues x entries. Reads are therefore batched: every call waiting on the event loop joins one batch,
which makes one pipeline (``HGETALL`` + ``LLEN`` for each queue), one ``HSCAN`` of ``unacked``
counted per route, and one pipeline of ``SMEMBERS`` for the exchanges seen. A ``gather`` of
1,000 single calls costs what one `get_queue_attributes_many` of 1,000 does and holds one
connection, never the whole pool.
"""

from __future__ import annotations

import asyncio
import functools
import json
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
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
    "KOMBU_PERMANENT_BINDING_KEY",
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
# kombu >= 5.7 also records each binding here (its sweep keeps the table while this set has members)
KOMBU_PERMANENT_BINDING_KEY = "_kombu.binding_permanent.{exchange}"
META_SUFFIX = ":meta"
_SCAN_BATCH = 1000
#: Queues read by one pipeline; a larger batch is split.
_MAX_BATCH = 1000


def kombu_list_keys(queue_name: str, priority_steps: tuple[int, ...] = KOMBU_PRIORITY_STEPS) -> list[str]:
    """The Redis lists kombu uses for ``queue_name``, one per priority step (step 0 is the bare name)."""
    return [queue_name if step == 0 else f"{queue_name}{KOMBU_SEPARATOR}{step}" for step in priority_steps]


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _describe_connection(client_for_loop: Any) -> str:
    """``host:port/db`` of a `RedisConnection`'s target, from the bound method's owner (no client built)."""
    owner = getattr(client_for_loop, "__self__", None)
    target = getattr(getattr(owner, "source", None), "target", None)
    if target is None:
        return "redis"
    return f"unix:{target.path}" if target.scheme == "unix" else f"{target.host}:{target.port}/{target.db}"


def _describe(client: Any) -> str:
    """``host:port/db`` of the client's pool; never the password."""
    kwargs = getattr(getattr(client, "connection_pool", None), "connection_kwargs", {}) or {}
    if "path" in kwargs:
        return f"unix:{kwargs['path']}"
    return f"{kwargs.get('host', '?')}:{kwargs.get('port', '?')}/{kwargs.get('db', 0)}"


@dataclass
class _Batch:
    """Reads waiting on one event loop: queue name -> the futures of the calls that asked for it."""

    loop: asyncio.AbstractEventLoop
    waiting: dict[str, list[asyncio.Future[QueueAttributes | None]]] = field(default_factory=dict)
    runner: asyncio.Task[None] | None = None


class RedisQueueEndpointResourceDelegate(QueueEndpointResourceDelegate):
    """Endpoint queues as Celery redis-transport lists.

    ``client`` is a ``redis.asyncio.Redis``, or a callable returning the running loop's client
    (`RedisConnection.async_client`): with the callable the delegate works from any event loop
    (``asyncio.run`` twice, a loop per test or per thread), since an asyncio pool belongs to one loop.
    """

    broker_name: ClassVar[str] = "Redis"
    max_queue_name_length: ClassVar[int] = 255

    def check_queue_name(self, name: str) -> str:
        return redis_queue_name(name)

    def __init__(
        self,
        client: Redis | Callable[[], Redis],
        *,
        also: Sequence[Redis | Callable[[], Redis]] = (),
        where: str | None = None,
        priority_steps: tuple[int, ...] = KOMBU_PRIORITY_STEPS,
    ) -> None:
        """``client`` (or a callable giving the running loop's) is the endpoints' database; ``also`` the broker's
        other databases, counted and emptied but holding no metadata. ``where`` describes them for messages."""
        self._client_for_loop: Callable[[], Redis] = _for_loop(client)
        self._also_for_loop = tuple(_for_loop(other) for other in also)
        self._priority_steps = priority_steps
        described = _describe(client) if not callable(client) else _describe_connection(client)
        self._where = where or described + "".join(
            f" (+db {_describe(other).rsplit('/', 1)[-1]})" for other in also if not callable(other)
        )
        self._batch: _Batch | None = None

    @property
    def _client(self) -> Redis:
        return self._client_for_loop()

    @property
    def _also(self) -> list[Redis]:
        return [other() for other in self._also_for_loop]

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
        }
        if queue_message_timeout_seconds is not None:
            fields["queue_message_timeout_seconds"] = str(queue_message_timeout_seconds)
        meta = name + META_SUFFIX
        try:
            async with self._client.pipeline(transaction=True) as pipe:
                # The request's settings win over an earlier create's; only the creation time is kept.
                pipe.hsetnx(meta, "created_at", datetime.now(timezone.utc).isoformat())
                pipe.hset(meta, mapping=dict(fields))  # type: ignore[arg-type]
                if queue_message_timeout_seconds is None:
                    pipe.hdel(meta, "queue_message_timeout_seconds")
                await pipe.execute()
        except redis.exceptions.RedisError as err:
            raise self._unavailable("create", name, err) from err
        return QueueInfo(queue_name=name, queue_url=None)

    async def delete_queue(self, endpoint_id: str) -> None:
        name = self.queue_name(endpoint_id)
        try:
            for client in (self._client, *self._also):
                tags = [tag async for tag, _ in self._unacked_entries(name, client)]
                async with client.pipeline(transaction=True) as pipe:
                    binding = KOMBU_BINDING_KEY.format(exchange=name)  # a send's or a worker's declaration
                    permanent = KOMBU_PERMANENT_BINDING_KEY.format(exchange=name)
                    pipe.delete(name + META_SUFFIX, binding, permanent, *kombu_list_keys(name, self._priority_steps))
                    if tags:
                        pipe.hdel(KOMBU_UNACKED_KEY, *tags)
                        pipe.zrem(KOMBU_UNACKED_INDEX_KEY, *tags)
                    await pipe.execute()
        except redis.exceptions.RedisError as err:
            raise self._unavailable("delete", name, err) from err

    async def get_queue_attributes(self, endpoint_id: str, *, include_tags: bool = False) -> QueueAttributes:
        name = self.queue_name(endpoint_id)
        [found] = await self._read_batched([name])
        if found is None:
            raise QueueNotFoundError(f"Redis queue {name!r} does not exist on {self._where}")
        return found

    async def get_queue_attributes_many(
        self, endpoint_ids: Iterable[str], *, include_tags: bool = False
    ) -> dict[str, QueueAttributes | None]:
        """One batch for all (and for any single calls made meanwhile): see the module docstring."""
        names = {endpoint_id: self.queue_name(endpoint_id) for endpoint_id in dict.fromkeys(endpoint_ids)}
        answers = await self._read_batched(list(names.values()))
        return dict(zip(names, answers, strict=True))

    async def _read_batched(self, names: list[str]) -> list[QueueAttributes | None]:
        """Join the batch of the running loop (starting one if none runs) and wait for these names."""
        loop = asyncio.get_running_loop()
        batch = self._batch
        if batch is None or batch.loop is not loop:
            batch = self._batch = _Batch(loop)
        futures = []
        for name in names:
            future: asyncio.Future[QueueAttributes | None] = loop.create_future()
            batch.waiting.setdefault(name, []).append(future)
            futures.append(future)
        if batch.runner is None or batch.runner.done():
            # Scheduled after every caller already queued on this loop turn, so a gather joins one batch.
            batch.runner = loop.create_task(self._run_batches(batch))
        return list(await asyncio.gather(*futures))

    async def _run_batches(self, batch: _Batch) -> None:
        while batch.waiting:
            taken = dict(list(batch.waiting.items())[:_MAX_BATCH])
            for name in taken:
                del batch.waiting[name]
            try:
                answers = await self._read_many(list(taken))
            except redis.exceptions.RedisError as err:
                for name, futures in taken.items():
                    error = self._unavailable("read", name, err)
                    for future in futures:
                        if not future.done():
                            future.set_exception(error)
                continue
            except BaseException as err:  # cancelled or a bug: no caller may wait forever
                for futures in [*taken.values(), *batch.waiting.values()]:
                    for future in futures:
                        if not future.done():
                            future.set_exception(err if isinstance(err, Exception) else asyncio.CancelledError())
                batch.waiting.clear()
                raise
            for name, futures in taken.items():
                for future in futures:
                    if not future.done():
                        future.set_result(answers[name])

    async def _read_many(self, names: list[str]) -> dict[str, QueueAttributes | None]:
        """Lists and metadata in one pipeline, then one pass over ``unacked`` for all ``names``."""
        step_count = len(self._priority_steps)
        async with self._client.pipeline(transaction=False) as pipe:
            for name in names:
                pipe.hgetall(name + META_SUFFIX)
                for key in kombu_list_keys(name, self._priority_steps):
                    pipe.llen(key)
            replies = await pipe.execute()
        in_flight = await self._unacked_counts(set(names), self._client)
        other_lengths: list[list[Any]] = []
        for other in self._also:
            async with other.pipeline(transaction=False) as pipe:
                for name in names:
                    for key in kombu_list_keys(name, self._priority_steps):
                        pipe.llen(key)
                other_lengths.append(await pipe.execute())
            for queue, count in (await self._unacked_counts(set(names), other)).items():
                in_flight[queue] = in_flight.get(queue, 0) + count
        answers: dict[str, QueueAttributes | None] = {}
        for index, name in enumerate(names):
            offset = index * (step_count + 1)
            meta_raw, lengths = replies[offset], list(replies[offset + 1 : offset + 1 + step_count])
            for more in other_lengths:
                mine = more[index * step_count : (index + 1) * step_count]
                lengths = [a + b for a, b in zip(lengths, mine, strict=True)]
            answers[name] = self._attributes(name, meta_raw, lengths, in_flight.get(name, 0))
        return answers

    def _attributes(self, name: str, meta_raw: Any, lengths: list[Any], in_flight: int) -> QueueAttributes | None:
        meta = {_text(k): _text(v) for k, v in (meta_raw or {}).items()}
        waiting = sum(int(n) for n in lengths)
        if not meta and waiting == 0 and in_flight == 0:
            return None
        try:
            labels = json.loads(meta["labels"]) if "labels" in meta else None
        except json.JSONDecodeError:
            labels = None
        keys = kombu_list_keys(name, self._priority_steps)
        return QueueAttributes(
            name=name,
            approximate_message_count=waiting + in_flight,
            approximate_in_flight_count=in_flight,
            raw={"meta": meta, "list_lengths": dict(zip(keys, lengths, strict=True)), "unacked": in_flight},
            endpoint_labels=labels if isinstance(labels, dict) else None,
            endpoint_created_by=meta.get("created_by"),
        )

    async def _unacked_counts(self, names: set[str], client: Redis) -> dict[str, int]:
        """Unacked messages per queue in ``names``: one HSCAN, counted by route, then routes resolved."""
        routes: Counter[tuple[str, str]] = Counter()
        async for _tag, value in client.hscan_iter(KOMBU_UNACKED_KEY, count=_SCAN_BATCH):
            try:
                _message, exchange, routing_key = json.loads(value)
            except (ValueError, TypeError):
                continue
            routes[(_text(exchange or ""), _text(routing_key or ""))] += 1
        if not routes:
            return {}
        exchanges = sorted({exchange for exchange, _ in routes if exchange})
        bindings: dict[str, set[str]] = {}
        if exchanges:
            async with client.pipeline(transaction=False) as pipe:
                for exchange in exchanges:
                    pipe.smembers(KOMBU_BINDING_KEY.format(exchange=exchange))
                members = await pipe.execute()
            bindings = {exchange: {_text(m) for m in found} for exchange, found in zip(exchanges, members, strict=True)}
        counts: Counter[str] = Counter()
        for (exchange, routing_key), count in routes.items():
            for queue in _route_targets(exchange, routing_key, bindings.get(exchange, set())):
                if queue in names:
                    counts[queue] += count
        return dict(counts)

    async def _unacked_entries(self, name: str, client: Redis) -> AsyncIterator[tuple[str, Any]]:
        """Yield ``(delivery_tag, payload)`` of kombu's unacked messages that belong to queue ``name``."""
        routes: dict[str, set[str]] = {}
        async for tag, value in client.hscan_iter(KOMBU_UNACKED_KEY, count=_SCAN_BATCH):
            try:
                _message, exchange, routing_key = json.loads(_text(value))
            except (ValueError, TypeError):
                continue
            if await self._routes_to(name, _text(exchange or ""), _text(routing_key or ""), routes, client):
                yield _text(tag), value

    async def _routes_to(
        self, name: str, exchange: str, routing_key: str, cache: dict[str, set[str]], client: Redis
    ) -> bool:
        """Whether kombu would restore a message from ``exchange``/``routing_key`` to queue ``name``."""
        if exchange and exchange not in cache:
            members = await client.smembers(KOMBU_BINDING_KEY.format(exchange=exchange))
            cache[exchange] = {_text(m) for m in members}
        return name in _route_targets(exchange, routing_key, cache.get(exchange, set()))

    async def close(self) -> None:
        """The client belongs to the Redis connection component, which closes it."""


def _route_targets(exchange: str, routing_key: str, bindings: set[str]) -> set[str]:
    """The queues kombu would restore a message from ``exchange``/``routing_key`` to (the exchange's bindings)."""
    if not exchange or not bindings:
        return {routing_key}
    targets = set()
    for member in bindings:
        bound_key, _pattern, queue = [*member.split(KOMBU_SEPARATOR), "", "", ""][:3]
        if bound_key == routing_key:
            targets.add(queue)
    return targets


def _for_loop(client: Any) -> Callable[[], Redis]:
    return client if callable(client) else (lambda: client)


def build_delegate(config: InfraConfig, infra: Infra) -> RedisQueueEndpointResourceDelegate:
    """On the broker's databases: the inference visibility's (the endpoints' queues), then the infra one's.

    Each is asked of the Redis component per call, so every event loop gets its own client.
    """
    from ..brokers import task_visibility

    inference = task_visibility(config, "inference").redis_db
    others = [db for db in (task_visibility(config, "infra").redis_db,) if db != inference]
    redis = infra.redis
    where = _describe_connection(redis.async_client).rsplit("/", 1)[0]
    where += f"/{inference}" + "".join(f" (+db {db})" for db in others)
    return RedisQueueEndpointResourceDelegate(
        functools.partial(redis.async_client, db=inference),
        also=[functools.partial(redis.async_client, db=db) for db in others],
        where=where,
    )
