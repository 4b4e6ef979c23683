"""The task-queue conformance suite on real servers: Redis broker on redis-server, SQS (S3 results) on the moto server.

The tests are the classes of `model_engine_infra.testing.conformance.tasks`, the ones the unit suite
runs; only the ``task_queue_target`` fixture differs. Worker processes on these servers are
test_celery_roundtrip.py; faults (a server killed mid-publish) are test_celery_faults.py.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest
import redis.asyncio

from model_engine_infra.testing.conformance.tasks import (
    RedisTaskQueueConformance,
    SQSTaskQueueConformance,
    TaskQueueTarget,
    closed_port,
    redis_task_queue_target,
    sqs_task_queue_target,
)
from model_engine_infra.testing.servers import RunningServer

pytestmark = pytest.mark.integration


class TestRedisOnRedisServer(RedisTaskQueueConformance):
    @pytest.fixture
    async def task_queue_target(self, redis_server: RunningServer) -> AsyncIterator[TaskQueueTarget]:
        async_client = redis.asyncio.Redis.from_url(redis_server.url)
        target = redis_task_queue_target(
            url=redis_server.url, async_client=async_client, unreachable_url=f"redis://127.0.0.1:{closed_port()}/0"
        )
        yield target
        target.gateway.close()
        await target.delegate.close()
        await async_client.aclose()


class TestSQSOnMotoServer(SQSTaskQueueConformance):
    @pytest.fixture
    async def task_queue_target(
        self, moto_server: RunningServer, monkeypatch: pytest.MonkeyPatch
    ) -> AsyncIterator[TaskQueueTarget]:
        for name, value in moto_server.env.items():
            if name != "AWS_ENDPOINT_URL":  # every client gets the endpoint explicitly
                monkeypatch.setenv(name, value)
        target = sqs_task_queue_target(endpoint_url=moto_server.url, bucket=f"tq-{uuid.uuid4().hex[:12]}")
        yield target
        target.gateway.close()
        await target.delegate.close()
