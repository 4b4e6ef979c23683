"""The task-queue conformance suite with every broker in this process.

kombu's filesystem transport, the Service Bus and Pub/Sub SDK-boundary fakes, fakeredis driven by real kombu and
Celery's Redis result backend, and SQS + S3 results on moto's ``mock_aws``. Round trips run a real
Celery worker in a thread, without the event loop: fakeredis has no socket to poll and in-process
moto cannot answer kombu's pycurl SQS client; worker *processes* on real servers, with the event
loop, are integration/test_celery_roundtrip.py, and the same classes run on redis-server and the
moto server in integration/test_task_queue_servers.py.
"""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator, Iterator
from contextlib import AsyncExitStack
from pathlib import Path

import fakeredis
import pytest
import redis.asyncio

from model_engine_infra.testing.conformance.tasks import (
    LocalTaskQueueConformance,
    PubSubTaskQueueConformance,
    RedisTaskQueueConformance,
    ServiceBusTaskQueueConformance,
    SQSTaskQueueConformance,
    TaskQueueTarget,
    broker_db_url,
    closed_port,
    local_task_queue_target,
    pubsub_task_queue_target,
    redis_task_queue_target,
    servicebus_task_queue_target,
    sqs_task_queue_target,
)


@pytest.fixture
def fake_redis_url() -> Iterator[str]:
    """fakeredis behind a real socket in this process, so kombu's poller, Celery's Redis backend and
    the asyncio delegate all reach it as they reach a server (Lua, which kombu's worker uses, needs lupa)."""
    server = fakeredis.TcpFakeServer(("127.0.0.1", 0), server_type="redis")
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), name="fakeredis-tcp", daemon=True)
    thread.start()
    host, port = server.server_address[:2]
    try:
        yield f"redis://{host!s}:{port}/0"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


async def _finish(target: TaskQueueTarget) -> None:
    target.gateway.close()
    await target.delegate.close()


class TestLocalTaskQueue(LocalTaskQueueConformance):
    @pytest.fixture
    async def task_queue_target(self, tmp_path: Path) -> AsyncIterator[TaskQueueTarget]:
        target = local_task_queue_target(tmp_path)
        yield target
        await _finish(target)


class TestServiceBusTaskQueue(ServiceBusTaskQueueConformance):
    @pytest.fixture
    async def task_queue_target(self, tmp_path: Path) -> AsyncIterator[TaskQueueTarget]:
        async with AsyncExitStack() as stack:
            target = servicebus_task_queue_target(tmp_path, stack)
            yield target
            await _finish(target)


class TestPubSubTaskQueue(PubSubTaskQueueConformance):
    @pytest.fixture
    async def task_queue_target(self, tmp_path: Path) -> AsyncIterator[TaskQueueTarget]:
        async with AsyncExitStack() as stack:
            target = pubsub_task_queue_target(tmp_path, stack)
            yield target
            await _finish(target)


class TestRedisTaskQueue(RedisTaskQueueConformance):
    @pytest.fixture
    async def task_queue_target(self, fake_redis_url: str) -> AsyncIterator[TaskQueueTarget]:
        async_client = redis.asyncio.Redis.from_url(broker_db_url(fake_redis_url))
        target = redis_task_queue_target(
            url=fake_redis_url, async_client=async_client, unreachable_url=f"redis://127.0.0.1:{closed_port()}/0"
        )
        yield target
        await _finish(target)
        await async_client.aclose()


class TestSQSTaskQueue(SQSTaskQueueConformance):
    @pytest.fixture
    async def task_queue_target(self) -> AsyncIterator[TaskQueueTarget]:
        from moto import mock_aws

        with mock_aws():
            target = sqs_task_queue_target(endpoint_url=None, bucket="contract-results")
            yield target
            await _finish(target)
