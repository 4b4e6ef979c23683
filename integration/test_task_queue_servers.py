"""The task-queue contract on real servers: Redis broker on redis-server, SQS (S3 results) on the moto server.

The tests are `TaskQueueContract` from tests/contract/test_task_queue_contract.py, imported (not
copied); only the ``backend`` fixture differs. Worker processes on these servers are
test_celery_roundtrip.py; faults (a server killed mid-publish) are test_celery_faults.py.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
import redis.asyncio

from contracts import load_contract
from model_engine_infra.testing.servers import RunningServer

pytestmark = pytest.mark.integration


contract = load_contract("test_task_queue_contract.py", "task_queue_contract")


@pytest.fixture(params=["redis-server", "sqs-moto-server"])
async def backend(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Any]:
    async_client = None
    if request.param == "redis-server":
        server: RunningServer = request.getfixturevalue("redis_server")
        async_client = redis.asyncio.Redis.from_url(server.url)
        built = contract.redis_backend(
            url=server.url,
            async_client=async_client,
            unreachable_url=f"redis://127.0.0.1:{contract.closed_port()}/0",
        )
    else:
        server = request.getfixturevalue("moto_server")
        for name, value in server.env.items():
            if name != "AWS_ENDPOINT_URL":  # every client gets the endpoint explicitly
                monkeypatch.setenv(name, value)
        built = contract.sqs_backend(endpoint_url=server.url, bucket=f"tq-{uuid.uuid4().hex[:12]}")
    yield built
    built.gateway.close()
    await built.delegate.close()
    if async_client is not None:
        await async_client.aclose()


class TestTaskQueueContractOnServers(contract.TaskQueueContract):  # type: ignore[misc,name-defined]
    """The same contract, on redis-server and the moto server."""


def test_wrong_type_key_on_redis_server_is_a_key_conflict(request: pytest.FixtureRequest) -> None:
    """A key of another type under the queue's binding (left by older code) on a real redis-server:
    reported as a key conflict with the broker reachable, not as "unreachable after 3 retries"."""
    import time

    import redis

    from model_engine_infra.config import InfraConfig
    from model_engine_infra.errors import BrokerUnavailableError, QueueKeyConflictError
    from model_engine_infra.tasks.gateway import CeleryTaskQueueGateway

    server: RunningServer = request.getfixturevalue("redis_server")
    name = f"wrongtype-{uuid.uuid4().hex[:8]}"
    client = redis.Redis.from_url(server.url)
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
