"""On a real redis-server, one send is one command: the queue check and the push run in one Lua script.

Counted with ``INFO commandstats`` (what the server executed), not by timing. A queue nobody created
gets `QueueNotFoundError` and nothing is stored; a deleted queue is not recreated by a send.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator

import pytest
import redis

from model_engine_infra.config import InfraConfig
from model_engine_infra.errors import QueueNotFoundError
from model_engine_infra.tasks.gateway import CeleryTaskQueueGateway
from model_engine_infra.testing.queues import declare_queue
from model_engine_infra.testing.servers import RunningServer, start_redis

pytestmark = pytest.mark.integration

SENDS = 50


@pytest.fixture(scope="module")
def server() -> Iterator[RunningServer]:
    with tempfile.TemporaryDirectory() as folder, start_redis(folder) as running:
        yield running


def calls(client: redis.Redis) -> dict[str, int]:
    stats = client.info("commandstats")
    return {name.removeprefix("cmdstat_"): int(value["calls"]) for name, value in stats.items()}


def gateway_on(server: RunningServer, url: str | None = None) -> CeleryTaskQueueGateway:
    config = InfraConfig(cloud_provider="onprem", redis_host="127.0.0.1", celery_backend_protocol="redis")
    return CeleryTaskQueueGateway.from_config(config, redis=url or server.url)


def broker_db(gateway: CeleryTaskQueueGateway) -> redis.Redis:
    """A client on the database the broker uses (one per task visibility, as llm-engine's)."""
    return redis.Redis.from_url(gateway.broker.url)


def test_one_command_per_send(server: RunningServer) -> None:
    gateway = gateway_on(server)
    client = broker_db(gateway)
    declare_queue(gateway, "rt-q")
    gateway.send_task("tasks.predict", "rt-q")  # connections, handshakes
    client.config_resetstat()
    for i in range(SENDS):
        gateway.send_task("tasks.predict", "rt-q", args=[i])
    executed = calls(client)
    executed.pop("config|resetstat", None)
    # one EVAL per send; TYPE, EXISTS and LPUSH are the script's own calls (a separate EXISTS round
    # trip would make it 2 per send, a declare would add SADDs)
    assert executed == {"eval": SENDS, "type": SENDS, "exists": SENDS, "lpush": SENDS}
    assert client.llen("rt-q") == SENDS + 1
    gateway.close()


def test_a_deleted_queue_is_not_recreated(server: RunningServer) -> None:
    gateway = gateway_on(server)
    client = broker_db(gateway)
    with pytest.raises(QueueNotFoundError, match="'never-made'"):
        gateway.send_task("tasks.predict", "never-made")
    declare_queue(gateway, "gone-q")
    gateway.send_task("tasks.predict", "gone-q")
    client.delete("gone-q", "_kombu.binding.gone-q")  # what deleting the endpoint's queue leaves
    with pytest.raises(QueueNotFoundError, match="'gone-q'"):
        gateway.send_task("tasks.predict", "gone-q")
    assert client.keys("*never-made*") == []
    assert client.exists("gone-q", "_kombu.binding.gone-q") == 0
    gateway.close()


async def test_deleting_an_endpoint_queue_a_worker_declared_leaves_no_key(server: RunningServer) -> None:
    """kombu 5.7 also writes ``_kombu.binding_permanent.<queue>``; the delegate's delete removes it too."""
    import redis.asyncio

    from model_engine_infra.queues.redis import RedisQueueEndpointResourceDelegate

    gateway = gateway_on(server)
    client = redis.asyncio.Redis.from_url(gateway.broker.url)
    delegate = RedisQueueEndpointResourceDelegate(client)
    info = await delegate.create_queue_if_not_exists("e-del", "n", "me", {})
    declare_queue(gateway, info.queue_name)  # a worker consumed it
    gateway.send_task("tasks.predict", info.queue_name)
    await delegate.delete_queue("e-del")
    assert await client.keys(f"*{info.queue_name}*") == []
    with pytest.raises(QueueNotFoundError):
        gateway.send_task("tasks.predict", info.queue_name)
    gateway.close()
    await client.aclose()


def test_a_user_whose_acl_forbids_scripts_gets_a_permission_error(server: RunningServer) -> None:
    from model_engine_infra.errors import BrokerPermissionError

    admin = redis.Redis.from_url(server.url)
    admin.acl_setuser("no-eval", enabled=True, passwords=["+pw-canary"], keys=["*"], commands=["+@all", "-eval"])
    gateway = gateway_on(server, server.url.replace("redis://", "redis://no-eval:pw-canary@", 1))
    declare_queue(gateway, "acl-q")
    with pytest.raises(BrokerPermissionError, match=r"\+eval") as err:
        gateway.send_task("tasks.predict", "acl-q")
    assert "pw-canary" not in str(err.value)
    gateway.close()
