"""The autoscaling metrics conformance suite on in-process brokers: fakeredis, the Service Bus fake, local files.

integration/test_autoscaling_servers.py runs the Redis class on a real redis-server.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import fakeredis
import pytest

from model_engine_infra.testing.conformance.autoscaling import (
    AutoscalingTarget,
    LocalAutoscalingMetricsConformance,
    RedisAutoscalingMetricsConformance,
    ServiceBusAutoscalingMetricsConformance,
    local_autoscaling_target,
    per_loop_clients,
    redis_autoscaling_target,
    servicebus_autoscaling_target,
)


def _unreachable_fake_redis() -> Any:
    down = fakeredis.FakeServer()
    down.connected = False
    return fakeredis.FakeAsyncRedis(server=down)


class TestRedisAutoscalingMetrics(RedisAutoscalingMetricsConformance):
    @pytest.fixture
    async def autoscaling_target(self) -> AsyncIterator[AutoscalingTarget]:
        server = fakeredis.FakeServer()
        target = redis_autoscaling_target(
            async_client=per_loop_clients(lambda: fakeredis.FakeAsyncRedis(server=server)),
            sync_client=fakeredis.FakeRedis(server=server),
            unreachable=_unreachable_fake_redis,
        )
        yield target
        await target.gateway.close()


class TestServiceBusAutoscalingMetrics(ServiceBusAutoscalingMetricsConformance):
    @pytest.fixture
    async def autoscaling_target(self) -> AsyncIterator[AutoscalingTarget]:
        target = servicebus_autoscaling_target()
        yield target
        await target.gateway.close()


class TestLocalAutoscalingMetrics(LocalAutoscalingMetricsConformance):
    @pytest.fixture
    async def autoscaling_target(self, tmp_path: Path) -> AsyncIterator[AutoscalingTarget]:
        target = local_autoscaling_target(tmp_path)
        yield target
        await target.gateway.close()
