"""The endpoint-queue conformance suite against real servers: SQS on mei_moto_server, Redis lists on redis-server.

The tests are the classes of `model_engine_infra.testing.conformance.queues`, the same ones the unit
suite runs; only the ``queue_target`` fixture differs. On redis-server, messages are published and
held unacked by real kombu over a real socket, so the delegate's reading of kombu's list and
``unacked`` layout is checked against kombu itself.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import ExitStack

import kombu
import pytest
import redis.asyncio
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from model_engine_infra.redis.connection import ManagedRedisConnection
from model_engine_infra.redis.sources import from_url
from model_engine_infra.testing.conformance.queues import (
    QueueTarget,
    RedisQueueDelegateConformance,
    SQSQueueDelegateConformance,
    closed_port,
    redis_queue_target,
    sqs_queue_target,
)
from model_engine_infra.testing.servers import RunningServer

pytestmark = pytest.mark.integration


class TestSQSOnMotoServer(SQSQueueDelegateConformance):
    @pytest.fixture
    async def queue_target(
        self, mei_moto_server: RunningServer, monkeypatch: pytest.MonkeyPatch
    ) -> AsyncIterator[QueueTarget]:
        for name, value in mei_moto_server.sdk_env.items():
            if name != "AWS_ENDPOINT_URL":  # the delegate gets the URL explicitly
                monkeypatch.setenv(name, value)
        target = sqs_queue_target(endpoint_url=mei_moto_server.url)
        yield target
        await target.delegate.close()


class TestRedisOnRedisServer(RedisQueueDelegateConformance):
    @pytest.fixture
    async def queue_target(self, mei_redis_server: RunningServer) -> AsyncIterator[QueueTarget]:
        managed = ManagedRedisConnection(
            from_url(mei_redis_server.url, origin="mei_redis_server")
        )  # one client per loop
        with ExitStack() as stack:
            connection = kombu.Connection(mei_redis_server.url)
            stack.callback(connection.release)
            target = redis_queue_target(
                async_client=managed.async_client,
                kombu_connection=connection,
                unreachable=lambda: redis.asyncio.Redis(
                    host="127.0.0.1",
                    port=closed_port(),
                    socket_connect_timeout=1,
                    retry=Retry(NoBackoff(), 0),  # fail at once; the default retries for seconds
                ),
                stack=stack,
            )
            yield target
            await target.delegate.close()
        await managed.aclose()
