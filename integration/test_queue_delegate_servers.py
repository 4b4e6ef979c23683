"""The endpoint-queue contract against real servers: SQS on moto_server, Redis lists on redis-server.

The tests are `QueueDelegateContract` from tests/contract/test_queue_delegate_contract.py, imported
(not copied); only the ``backend`` fixture differs. On redis-server, messages are published and
held unacked by real kombu over a real socket, so the delegate's reading of kombu's list and
``unacked`` layout is checked against kombu itself.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import ExitStack
from typing import Any

import kombu
import pytest
import redis.asyncio
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from contracts import load_contract
from model_engine_infra.redis.connection import ManagedRedisConnection
from model_engine_infra.redis.sources import from_url
from model_engine_infra.testing.servers import RunningServer

pytestmark = pytest.mark.integration


contract = load_contract("test_queue_delegate_contract.py", "queue_delegate_contract")


@pytest.fixture(params=["sqs-moto-server", "redis-server"])
async def backend(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Any]:
    with ExitStack() as stack:
        if request.param == "sqs-moto-server":
            server: RunningServer = request.getfixturevalue("moto_server")
            for name, value in server.env.items():
                if name != "AWS_ENDPOINT_URL":  # the delegate gets the URL explicitly
                    monkeypatch.setenv(name, value)
            built = contract.sqs_backend(endpoint_url=server.url)
        else:
            server = request.getfixturevalue("redis_server")
            managed = ManagedRedisConnection(from_url(server.url, origin="redis_server"))  # one client per loop
            connection = kombu.Connection(server.url)
            stack.callback(connection.release)
            built = contract.redis_backend(
                async_client=managed.async_client,
                kombu_connection=connection,
                unreachable=lambda: redis.asyncio.Redis(
                    host="127.0.0.1",
                    port=contract.closed_port(),
                    socket_connect_timeout=1,
                    retry=Retry(NoBackoff(), 0),  # fail at once; the default retries for seconds
                ),
                stack=stack,
            )
        yield built
        await built.delegate.close()
        if request.param == "redis-server":
            await managed.aclose()


class TestQueueDelegateContractOnServers(contract.QueueDelegateContract):  # type: ignore[misc,name-defined]
    """The same contract, on moto_server and redis-server."""
