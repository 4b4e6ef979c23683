"""The endpoint-queue conformance suite on in-process brokers.

kombu's filesystem transport, moto's ``mock_aws``, fakeredis driven by real kombu, the Service
Bus fake and the Pub/Sub fake; integration/test_queue_delegate_servers.py runs the same classes on moto_server and
redis-server.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import fakeredis
import kombu
import kombu.transport.redis
import pytest

from model_engine_infra.testing.conformance.queues import (
    LocalQueueDelegateConformance,
    PubSubQueueDelegateConformance,
    QueueTarget,
    RedisQueueDelegateConformance,
    ServiceBusQueueDelegateConformance,
    SQSQueueDelegateConformance,
    local_queue_target,
    pubsub_queue_target,
    redis_queue_target,
    servicebus_queue_target,
    sqs_queue_target,
)
from model_engine_infra.testing.redis import InMemoryRedisConnection


@pytest.fixture
def fake_redis_server(monkeypatch: pytest.MonkeyPatch) -> fakeredis.FakeServer:
    """A fakeredis server that real kombu (sync) and the delegate (asyncio) both talk to."""
    server = fakeredis.FakeServer()

    class SharedConnection(fakeredis.FakeRedisConnection):  # type: ignore[misc]
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            kwargs["server"] = server
            super().__init__(*args, **kwargs)

    monkeypatch.setattr(kombu.transport.redis.Channel, "connection_class", SharedConnection)
    return server


def _unreachable_fake_redis() -> Any:
    down = fakeredis.FakeServer()
    down.connected = False
    return fakeredis.FakeAsyncRedis(server=down)


class TestLocalQueueDelegate(LocalQueueDelegateConformance):
    @pytest.fixture
    async def queue_target(self, tmp_path: Path) -> AsyncIterator[QueueTarget]:
        target = local_queue_target(tmp_path)
        yield target
        await target.delegate.close()


class TestSQSQueueDelegate(SQSQueueDelegateConformance):
    @pytest.fixture
    async def queue_target(self) -> AsyncIterator[QueueTarget]:
        from moto import mock_aws

        with mock_aws():
            target = sqs_queue_target(endpoint_url=None)
            yield target
            await target.delegate.close()


class TestRedisQueueDelegate(RedisQueueDelegateConformance):
    @pytest.fixture
    async def queue_target(self, fake_redis_server: fakeredis.FakeServer) -> AsyncIterator[QueueTarget]:
        with ExitStack() as stack:
            target = redis_queue_target(
                async_client=InMemoryRedisConnection(fake_redis_server).async_client,  # one client per event loop
                kombu_connection=kombu.Connection("redis://fake-redis:6379/0"),
                unreachable=_unreachable_fake_redis,
                stack=stack,
            )
            yield target
            await target.delegate.close()


class TestServiceBusQueueDelegate(ServiceBusQueueDelegateConformance):
    @pytest.fixture
    async def queue_target(self) -> AsyncIterator[QueueTarget]:
        target = servicebus_queue_target()
        yield target
        await target.delegate.close()


class TestPubSubQueueDelegate(PubSubQueueDelegateConformance):
    @pytest.fixture
    async def queue_target(self) -> AsyncIterator[QueueTarget]:
        target = pubsub_queue_target()
        yield target
        await target.delegate.close()
