"""The Celery broker's Redis databases: per-database clients of the Redis component, and a queue
delegate that counts and deletes in every database the broker uses (llm-engine's visibilities)."""

from __future__ import annotations

import json
from typing import Any

import fakeredis
import pytest

from model_engine_infra.errors import InfraClosedError, QueueNotFoundError
from model_engine_infra.queues.redis import KOMBU_UNACKED_KEY, META_SUFFIX, RedisQueueEndpointResourceDelegate
from model_engine_infra.redis.connection import ManagedRedisConnection
from model_engine_infra.redis.sources import from_url
from model_engine_infra.testing.redis import InMemoryRedisConnection


def test_connection_hands_out_a_client_per_database() -> None:
    connection = ManagedRedisConnection(from_url("redis://user:pw@10.0.0.3:6380/15", origin="cache_redis_onprem_url"))
    default, three = connection.client(), connection.client(db=3)
    assert default.connection_pool.connection_kwargs["db"] == 15
    assert three.connection_pool.connection_kwargs["db"] == 3
    assert three.connection_pool.connection_kwargs["host"] == "10.0.0.3"
    assert three.connection_pool.connection_kwargs["port"] == 6380
    assert connection.client(db=3) is three
    assert connection.client(db=15) is default
    async_three = connection.async_client(db=3)
    assert async_three.connection_pool.connection_kwargs["db"] == 3
    assert async_three.connection_pool.connection_kwargs["credential_provider"] is connection.credential_provider
    assert "pw" not in repr(three.connection_pool)
    connection.close()
    with pytest.raises(InfraClosedError):  # every database's pool is closed with the component
        connection.client(db=3)


async def test_in_memory_connection_has_databases_too() -> None:
    connection = InMemoryRedisConnection()
    await connection.async_client(db=3).set("k", "v3")
    assert await connection.async_client().get("k") is None
    assert connection.client(db=3).get("k") == b"v3"


@pytest.fixture
def databases() -> tuple[Any, Any]:
    server = fakeredis.FakeServer()
    return fakeredis.FakeAsyncRedis(server=server, db=3), fakeredis.FakeAsyncRedis(server=server, db=0)


async def test_counts_add_up_across_the_brokers_databases(databases: tuple[Any, Any]) -> None:
    inference, infra = databases
    delegate = RedisQueueEndpointResourceDelegate(inference, also=[infra])
    await delegate.create_queue_if_not_exists("e1", "n", "alice", {"team": "ml"})
    assert await inference.exists("launch-endpoint-id-e1" + META_SUFFIX)
    assert not await infra.exists("launch-endpoint-id-e1" + META_SUFFIX)  # metadata: the inference database
    await inference.lpush("launch-endpoint-id-e1", "a", "b")
    await infra.lpush("launch-endpoint-id-e1", "c")
    await infra.hset(KOMBU_UNACKED_KEY, "tag-1", json.dumps([{}, "", "launch-endpoint-id-e1"]))
    attributes = await delegate.get_queue_attributes("e1")
    assert (attributes.approximate_message_count, attributes.approximate_in_flight_count) == (4, 1)
    assert "/3 (+db 0)" in repr(delegate)
    await delegate.delete_queue("e1")
    assert await inference.llen("launch-endpoint-id-e1") == 0
    assert await infra.llen("launch-endpoint-id-e1") == 0
    assert await infra.hlen(KOMBU_UNACKED_KEY) == 0


async def test_a_queue_only_in_another_database_exists(databases: tuple[Any, Any]) -> None:
    inference, infra = databases
    await infra.lpush("launch-endpoint-id-e2", "x")
    delegate = RedisQueueEndpointResourceDelegate(inference, also=[infra])
    assert (await delegate.get_queue_attributes("e2")).approximate_message_count == 1
    alone = RedisQueueEndpointResourceDelegate(inference)
    with pytest.raises(QueueNotFoundError, match="does not exist"):
        await alone.get_queue_attributes("e2")
