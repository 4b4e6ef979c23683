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
    broker_db_url,
    closed_port,
    redis_task_queue_target,
    sqs_task_queue_target,
)
from model_engine_infra.testing.servers import RunningServer

pytestmark = pytest.mark.integration


class TestRedisOnRedisServer(RedisTaskQueueConformance):
    @pytest.fixture
    async def task_queue_target(self, mei_redis_server: RunningServer) -> AsyncIterator[TaskQueueTarget]:
        async_client = redis.asyncio.Redis.from_url(broker_db_url(mei_redis_server.url))
        target = redis_task_queue_target(
            url=mei_redis_server.url, async_client=async_client, unreachable_url=f"redis://127.0.0.1:{closed_port()}/0"
        )
        yield target
        target.gateway.close()
        await target.delegate.close()
        await async_client.aclose()


class TestSQSOnMotoServer(SQSTaskQueueConformance):
    @pytest.fixture
    async def task_queue_target(
        self, mei_moto_server: RunningServer, monkeypatch: pytest.MonkeyPatch
    ) -> AsyncIterator[TaskQueueTarget]:
        for name, value in mei_moto_server.sdk_env.items():
            if name != "AWS_ENDPOINT_URL":  # every client gets the endpoint explicitly
                monkeypatch.setenv(name, value)
        target = sqs_task_queue_target(endpoint_url=mei_moto_server.url, bucket=f"tq-{uuid.uuid4().hex[:12]}")
        yield target
        target.gateway.close()
        await target.delegate.close()


def test_wrong_type_key_on_redis_server_is_a_key_conflict(request: pytest.FixtureRequest) -> None:
    """A key of another type under the queue's binding (left by older code) on a real redis-server:
    reported as a key conflict with the broker reachable, not as "unreachable after 3 retries"."""
    import time

    import redis

    from model_engine_infra.config import InfraConfig
    from model_engine_infra.errors import BrokerUnavailableError, QueueKeyConflictError
    from model_engine_infra.tasks.gateway import CeleryTaskQueueGateway

    server: RunningServer = request.getfixturevalue("mei_redis_server")
    name = f"wrongtype-{uuid.uuid4().hex[:8]}"
    client = redis.Redis.from_url(broker_db_url(server.url))  # the gateway's database (onprem: 24 h, 3)
    client.hset(f"{name}:meta", "created_by", "test")
    client.rpush(f"_kombu.binding.{name}", "a list where kombu keeps a set")
    gateway = CeleryTaskQueueGateway.from_config(
        InfraConfig(cloud_provider="onprem", celery_backend_protocol="redis"), redis=server.url
    )
    try:
        started = time.monotonic()
        with pytest.raises(QueueKeyConflictError, match="WRONGTYPE") as err:
            gateway.send_task("tasks.predict", name, args=[1])
        assert time.monotonic() - started < 5
        assert not isinstance(err.value, BrokerUnavailableError)
    finally:
        gateway.close()
        client.delete(f"{name}:meta", f"_kombu.binding.{name}")
        client.close()
