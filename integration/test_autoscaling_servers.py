"""Autoscaling metrics on a real redis-server: the conformance suite, the deployment's wiring, outages.

The Lua script runs in redis-server itself here (fakeredis runs it in lupa in the unit tests), so
PTTL, LPUSH, LTRIM and PEXPIRE are checked against the real thing; outages go through netsim.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Iterator

import pytest
import redis
import redis.asyncio
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from model_engine_infra import InfraConfig, build_infra
from model_engine_infra.autoscaling.redis import RedisInferenceAutoscalingMetricsGateway, redis_key
from model_engine_infra.errors import BrokerUnavailableError
from model_engine_infra.testing.conformance.autoscaling import (
    AutoscalingTarget,
    RedisAutoscalingMetricsConformance,
    closed_port,
    new_endpoint_id,
    per_loop_clients,
    redis_autoscaling_target,
)
from model_engine_infra.testing.netsim import netsim
from model_engine_infra.testing.servers import RunningServer

pytestmark = pytest.mark.integration


@pytest.fixture
def sync_client(mei_redis_server: RunningServer) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(mei_redis_server.url)
    yield client
    client.close()


class TestRedisAutoscalingMetricsOnRedisServer(RedisAutoscalingMetricsConformance):
    @pytest.fixture
    async def autoscaling_target(
        self, mei_redis_server: RunningServer, sync_client: redis.Redis
    ) -> AsyncIterator[AutoscalingTarget]:
        target = redis_autoscaling_target(
            async_client=per_loop_clients(lambda: redis.asyncio.Redis.from_url(mei_redis_server.url)),
            sync_client=sync_client,
            unreachable=lambda: redis.asyncio.Redis(
                host="127.0.0.1", port=closed_port(), socket_connect_timeout=1, retry=Retry(NoBackoff(), 0)
            ),
        )
        yield target
        await target.gateway.close()


def test_the_deployments_redis_connection_carries_the_metric_from_any_loop(
    mei_redis_server: RunningServer, sync_client: redis.Redis
) -> None:
    """``infra.autoscaling_metrics`` as a deployment builds it (``redis_host``/``redis_port``), from three loops."""
    config = InfraConfig(cloud_provider="onprem", redis_host=mei_redis_server.host, redis_port=mei_redis_server.port)
    with build_infra(config) as infra:
        gateway = infra.autoscaling_metrics
        assert isinstance(gateway, RedisInferenceAutoscalingMetricsGateway)
        assert gateway.timeout == config.redis_socket_timeout
        endpoint_id = new_endpoint_id()
        asyncio.run(gateway.emit_prewarm_metric(endpoint_id))
        asyncio.run(gateway.emit_inference_autoscaling_metric(endpoint_id))
        thread = threading.Thread(target=lambda: asyncio.run(gateway.emit_inference_autoscaling_metric(endpoint_id)))
        thread.start()
        thread.join(30)
        assert sync_client.lrange(redis_key(endpoint_id), 0, -1) == [b"1"]
        assert sync_client.ttl(redis_key(endpoint_id)) > 3590


@pytest.mark.parametrize("condition", ["refuse", "cut"])
async def test_a_broken_path_to_redis_is_a_typed_error(mei_redis_server: RunningServer, condition: str) -> None:
    """netsim between the gateway and redis-server: connections refused, or cut inside every answer."""
    options = {"refuse": True} if condition == "refuse" else {"reset_after": 1}
    with netsim(mei_redis_server.port, **options) as port:  # type: ignore[arg-type]
        client = redis.asyncio.Redis(host="127.0.0.1", port=port, socket_timeout=1, socket_connect_timeout=1)
        gateway = RedisInferenceAutoscalingMetricsGateway(lambda: client, timeout=3)
        with pytest.raises(BrokerUnavailableError):
            await gateway.emit_inference_autoscaling_metric(new_endpoint_id())
        await client.aclose()
