"""Conformance for inference autoscaling metrics gateways (`InferenceAutoscalingMetricsGateway`).

Subclass `AutoscalingMetricsConformance`, set its capability flags, and provide an
``autoscaling_target`` fixture returning an `AutoscalingTarget`: the gateway, plus a way to see the
signal *with the broker's own API* (never through the gateway), so the suite checks what KEDA
would read.

The second half of this module builds targets for the project's own backends (Redis, Service Bus
fake, local files); their SDKs are imported only when a builder is called.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import uuid
import weakref
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import pytest

from ...autoscaling.base import (
    EXPIRY_SECONDS,
    PREWARM_EXPIRY_SECONDS,
    AutoscalingMetric,
    InferenceAutoscalingMetricsGateway,
)
from ...errors import BrokerUnavailableError, InfraClosedError, InvalidQueueNameError, QueueNotFoundError

#: Slack for the time a test itself takes between an emit and looking at the broker.
SLACK_SECONDS = 5.0
#: A gateway facing a dead broker must give up well within this (the backends' timeouts are shorter).
HANG_GUARD_SECONDS = 30.0


@dataclass
class AutoscalingTarget:
    """A gateway plus the broker-side tools the suite needs to check it."""

    gateway: InferenceAutoscalingMetricsGateway
    #: what the broker holds for an endpoint, read with its own API: the count KEDA reads and the
    #: seconds until the longest-lived part expires (None: never); None when nothing is there
    observe: Callable[[str], Awaitable[AutoscalingMetric | None]]
    #: a gateway of the same backend whose broker cannot be reached
    unreachable: Callable[[], InferenceAutoscalingMetricsGateway]
    #: move the broker's clock forward; None where it runs on real time
    advance: Callable[[float], None] | None = None
    name: str = "autoscaling metrics"


def new_endpoint_id() -> str:
    return "e" + uuid.uuid4().hex[:12]


def closed_port() -> int:
    """A local port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class AutoscalingMetricsConformance:
    """The contract every autoscaling metrics gateway keeps. Provide an ``autoscaling_target`` fixture."""

    #: the signal's count stays at 1 however many emits (a Redis list trimmed to one); False: one per emit
    pending_capped_at_one: ClassVar[bool] = True
    #: emits fail with `QueueNotFoundError` until ``create_or_update_resources`` (a queue to create)
    needs_resources: ClassVar[bool] = False
    #: ``read_metric`` says when the signal expires (``expires_in``); else it is None
    reports_expiry: ClassVar[bool] = True

    async def _ready(self, target: AutoscalingTarget) -> str:
        endpoint_id = new_endpoint_id()
        await target.gateway.create_or_update_resources(endpoint_id)
        return endpoint_id

    async def _seen(self, target: AutoscalingTarget, endpoint_id: str) -> AutoscalingMetric:
        seen = await target.observe(endpoint_id)
        assert seen is not None, f"no signal on the broker for {endpoint_id}"
        assert seen.pending >= 1, seen
        return seen

    @staticmethod
    def _lives(seen: AutoscalingMetric, seconds: float) -> None:
        assert seen.expires_in is not None, "the signal never expires: KEDA would never scale the endpoint down"
        assert seconds - SLACK_SECONDS < seen.expires_in <= seconds, (seen.expires_in, seconds)

    @pytest.mark.asyncio
    async def test_an_inference_request_keeps_the_endpoint_up_for_a_minute(
        self, autoscaling_target: AutoscalingTarget
    ) -> None:
        endpoint_id = await self._ready(autoscaling_target)
        await autoscaling_target.gateway.emit_inference_autoscaling_metric(endpoint_id)
        seen = await self._seen(autoscaling_target, endpoint_id)
        assert seen.pending == 1
        self._lives(seen, EXPIRY_SECONDS)

    @pytest.mark.asyncio
    async def test_a_prewarm_keeps_the_endpoint_up_for_an_hour(self, autoscaling_target: AutoscalingTarget) -> None:
        endpoint_id = await self._ready(autoscaling_target)
        await autoscaling_target.gateway.emit_prewarm_metric(endpoint_id)
        self._lives(await self._seen(autoscaling_target, endpoint_id), PREWARM_EXPIRY_SECONDS)

    @pytest.mark.asyncio
    async def test_inference_requests_never_shorten_a_prewarm(self, autoscaling_target: AutoscalingTarget) -> None:
        endpoint_id = await self._ready(autoscaling_target)
        await autoscaling_target.gateway.emit_prewarm_metric(endpoint_id)
        for _ in range(3):
            await autoscaling_target.gateway.emit_inference_autoscaling_metric(endpoint_id)
        self._lives(await self._seen(autoscaling_target, endpoint_id), PREWARM_EXPIRY_SECONDS)

    @pytest.mark.asyncio
    async def test_a_prewarm_extends_an_inference_signal(self, autoscaling_target: AutoscalingTarget) -> None:
        endpoint_id = await self._ready(autoscaling_target)
        await autoscaling_target.gateway.emit_inference_autoscaling_metric(endpoint_id)
        await autoscaling_target.gateway.emit_prewarm_metric(endpoint_id)
        self._lives(await self._seen(autoscaling_target, endpoint_id), PREWARM_EXPIRY_SECONDS)

    @pytest.mark.asyncio
    async def test_repeated_emits_count_as_the_backend_says(self, autoscaling_target: AutoscalingTarget) -> None:
        endpoint_id = await self._ready(autoscaling_target)
        for _ in range(4):
            await autoscaling_target.gateway.emit_inference_autoscaling_metric(endpoint_id)
        seen = await self._seen(autoscaling_target, endpoint_id)
        assert seen.pending == (1 if self.pending_capped_at_one else 4)

    @pytest.mark.asyncio
    async def test_concurrent_emits_all_land(self, autoscaling_target: AutoscalingTarget) -> None:
        endpoint_id = await self._ready(autoscaling_target)
        emits = [autoscaling_target.gateway.emit_inference_autoscaling_metric(endpoint_id) for _ in range(25)]
        await asyncio.gather(*emits, autoscaling_target.gateway.emit_prewarm_metric(endpoint_id))
        seen = await self._seen(autoscaling_target, endpoint_id)
        assert seen.pending == (1 if self.pending_capped_at_one else 26)
        self._lives(seen, PREWARM_EXPIRY_SECONDS)

    @pytest.mark.asyncio
    async def test_read_metric_answers_what_the_broker_holds(self, autoscaling_target: AutoscalingTarget) -> None:
        endpoint_id = await self._ready(autoscaling_target)
        assert await autoscaling_target.gateway.read_metric(endpoint_id) is None
        await autoscaling_target.gateway.emit_prewarm_metric(endpoint_id)
        read = await autoscaling_target.gateway.read_metric(endpoint_id)
        seen = await self._seen(autoscaling_target, endpoint_id)
        assert read is not None
        assert read.pending == seen.pending
        if self.reports_expiry:
            self._lives(read, PREWARM_EXPIRY_SECONDS)
        else:
            assert read.expires_in is None

    @pytest.mark.asyncio
    async def test_the_signal_expires(self, autoscaling_target: AutoscalingTarget) -> None:
        endpoint_id = await self._ready(autoscaling_target)
        await autoscaling_target.gateway.emit_metric(endpoint_id, 1)
        assert await autoscaling_target.observe(endpoint_id) is not None
        if autoscaling_target.advance is not None:
            autoscaling_target.advance(1.5)
        else:
            await asyncio.sleep(1.3)
        assert await autoscaling_target.observe(endpoint_id) is None
        assert await autoscaling_target.gateway.read_metric(endpoint_id) is None

    @pytest.mark.asyncio
    async def test_resources_are_idempotent_and_delete_removes_the_signal(
        self, autoscaling_target: AutoscalingTarget
    ) -> None:
        gateway = autoscaling_target.gateway
        endpoint_id = await self._ready(autoscaling_target)
        await gateway.create_or_update_resources(endpoint_id)
        await gateway.emit_prewarm_metric(endpoint_id)
        await gateway.create_or_update_resources(endpoint_id)  # an update keeps what is there
        await self._seen(autoscaling_target, endpoint_id)
        await gateway.delete_resources(endpoint_id)
        assert await autoscaling_target.observe(endpoint_id) is None
        assert await gateway.read_metric(endpoint_id) is None
        await gateway.delete_resources(endpoint_id)
        await gateway.delete_resources(new_endpoint_id())

    @pytest.mark.asyncio
    async def test_an_emit_before_the_resources_exist(self, autoscaling_target: AutoscalingTarget) -> None:
        endpoint_id = new_endpoint_id()
        if self.needs_resources:
            with pytest.raises(QueueNotFoundError, match="create_or_update_resources"):
                await autoscaling_target.gateway.emit_inference_autoscaling_metric(endpoint_id)
            assert await autoscaling_target.observe(endpoint_id) is None
        else:
            await autoscaling_target.gateway.emit_inference_autoscaling_metric(endpoint_id)
            await self._seen(autoscaling_target, endpoint_id)

    @pytest.mark.asyncio
    @pytest.mark.parametrize("endpoint_id", ["has space", "a/b", "a.b", "a:b", "ünï", "", "*", "trailing-newline\n"])
    async def test_invalid_endpoint_ids_are_refused_before_any_call(
        self, autoscaling_target: AutoscalingTarget, endpoint_id: str
    ) -> None:
        gateway = autoscaling_target.unreachable()  # would raise BrokerUnavailableError if a call went out
        try:
            for call in (
                gateway.emit_inference_autoscaling_metric,
                gateway.emit_prewarm_metric,
                gateway.create_or_update_resources,
                gateway.delete_resources,
                gateway.read_metric,
            ):
                with pytest.raises(InvalidQueueNameError):
                    await call(endpoint_id)
            with pytest.raises(InvalidQueueNameError, match="at most"):
                await gateway.emit_inference_autoscaling_metric("x" * (type(gateway).max_endpoint_id_length + 1))
        finally:
            await gateway.close()

    @pytest.mark.asyncio
    async def test_an_unreachable_broker_raises_a_typed_error_and_never_hangs(
        self, autoscaling_target: AutoscalingTarget
    ) -> None:
        gateway = autoscaling_target.unreachable()
        endpoint_id = new_endpoint_id()
        try:
            for call in (
                gateway.emit_inference_autoscaling_metric,
                gateway.emit_prewarm_metric,
                gateway.read_metric,
                gateway.delete_resources,
            ):
                with pytest.raises(BrokerUnavailableError):
                    await asyncio.wait_for(call(endpoint_id), HANG_GUARD_SECONDS)
        finally:
            await gateway.close()

    @pytest.mark.asyncio
    async def test_a_closed_gateway_refuses_every_call(self, autoscaling_target: AutoscalingTarget) -> None:
        gateway = autoscaling_target.gateway
        endpoint_id = await self._ready(autoscaling_target)
        await gateway.close()
        await gateway.close()  # twice is fine
        for call in (gateway.emit_inference_autoscaling_metric, gateway.read_metric, gateway.delete_resources):
            with pytest.raises(InfraClosedError):
                await call(endpoint_id)

    @pytest.mark.asyncio
    async def test_works_from_any_event_loop(self, autoscaling_target: AutoscalingTarget) -> None:
        gateway = autoscaling_target.gateway
        endpoint_id = await self._ready(autoscaling_target)
        errors: list[BaseException] = []

        def in_new_loops() -> None:
            try:
                for _ in range(2):  # two loops, one after the other, in another thread
                    asyncio.run(gateway.emit_inference_autoscaling_metric(endpoint_id))
            except BaseException as err:  # reported to the test below
                errors.append(err)

        thread = threading.Thread(target=in_new_loops)
        thread.start()
        await asyncio.to_thread(thread.join)
        assert errors == []
        await gateway.emit_prewarm_metric(endpoint_id)  # and the test's own loop still works
        seen = await self._seen(autoscaling_target, endpoint_id)
        assert seen.pending == (1 if self.pending_capped_at_one else 3)


class RedisAutoscalingMetricsConformance(AutoscalingMetricsConformance):
    """Redis lists: one per endpoint, trimmed to one entry, expiring with the signal."""


class ServiceBusAutoscalingMetricsConformance(AutoscalingMetricsConformance):
    """Service Bus: a queue per endpoint, one message per emit, each with its own time-to-live."""

    pending_capped_at_one = False
    needs_resources = True
    reports_expiry = False  # the service's runtime properties say nothing of message expiry


class LocalAutoscalingMetricsConformance(AutoscalingMetricsConformance):
    """Local files, one per endpoint."""


# --- targets for the project's own backends ---------------------------------------------------------


def per_loop_clients(make: Callable[[], Any]) -> Callable[[], Any]:
    """A ``client()`` that builds one client per running event loop with ``make`` (what
    `RedisConnection.async_client` does for a deployment)."""
    clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Any] = weakref.WeakKeyDictionary()
    lock = threading.Lock()

    def client() -> Any:
        loop = asyncio.get_running_loop()
        with lock:
            found = clients.get(loop)
            if found is None:
                found = clients[loop] = make()
            return found

    return client


def redis_autoscaling_target(
    *, async_client: Callable[[], Any], sync_client: Any, unreachable: Callable[[], Any], timeout: float = 2.0
) -> AutoscalingTarget:
    """``async_client`` gives the running loop's client; ``sync_client`` reads the same server for the checks."""
    from ...autoscaling.redis import RedisInferenceAutoscalingMetricsGateway, redis_key

    async def observe(endpoint_id: str) -> AutoscalingMetric | None:
        key = redis_key(endpoint_id)
        length, remaining = await asyncio.to_thread(lambda: (sync_client.llen(key), sync_client.pttl(key)))
        if not length:
            return None
        return AutoscalingMetric(int(length), None if remaining < 0 else remaining / 1000)

    return AutoscalingTarget(
        gateway=RedisInferenceAutoscalingMetricsGateway(async_client, timeout=timeout),
        observe=observe,
        unreachable=lambda: RedisInferenceAutoscalingMetricsGateway(per_loop_clients(unreachable), timeout=timeout),
        name="redis",
    )


def servicebus_autoscaling_target(namespace: Any | None = None) -> AutoscalingTarget:
    """The Service Bus fake (`model_engine_infra.testing.servicebus`); pass a namespace to inspect it."""
    from azure.core.exceptions import ResourceNotFoundError

    from ...autoscaling.servicebus import ServiceBusInferenceAutoscalingMetricsGateway, queue_name
    from ..servicebus import FakeServiceBusNamespace

    ns = namespace or FakeServiceBusNamespace("autoscaling-ns")

    async def observe(endpoint_id: str) -> AutoscalingMetric | None:
        try:
            expiries = ns.message_expiries(queue_name(endpoint_id))
        except ResourceNotFoundError:
            return None
        if not expiries:
            return None
        longest = None if any(e is None for e in expiries) else max(e for e in expiries if e is not None)
        return AutoscalingMetric(len(expiries), longest)

    def unreachable() -> InferenceAutoscalingMetricsGateway:
        down = FakeServiceBusNamespace("down-ns")
        down.faults.unreachable = True
        return ServiceBusInferenceAutoscalingMetricsGateway(
            down.name, client=down.client(retry_total=0), admin_client=down.admin_client()
        )

    return AutoscalingTarget(
        gateway=ServiceBusInferenceAutoscalingMetricsGateway(
            ns.name, client=ns.client(), admin_client=ns.admin_client()
        ),
        observe=observe,
        unreachable=unreachable,
        advance=ns.clock.advance,
        name="servicebus",
    )


def local_autoscaling_target(folder: Path) -> AutoscalingTarget:
    """Files under ``folder``, on a clock the suite moves."""
    import json
    import time

    from ...autoscaling.local import LocalInferenceAutoscalingMetricsGateway

    offset = [0.0]

    def clock() -> float:
        return time.time() + offset[0]

    def advance(seconds: float) -> None:
        offset[0] += seconds

    gateway = LocalInferenceAutoscalingMetricsGateway(folder / "autoscaling", clock=clock)

    async def observe(endpoint_id: str) -> AutoscalingMetric | None:
        path = folder / "autoscaling" / f"launch-endpoint-autoscaling.{endpoint_id}.json"
        try:
            document = json.loads(path.read_text())
        except FileNotFoundError:
            return None
        remaining = float(document["expires_at"]) - clock()
        return AutoscalingMetric(int(document["pending"]), remaining) if remaining > 0 else None

    blocker = folder / "not-a-folder"
    blocker.write_text("")
    return AutoscalingTarget(
        gateway=gateway,
        observe=observe,
        unreachable=lambda: LocalInferenceAutoscalingMetricsGateway(blocker / "autoscaling", clock=clock),
        advance=advance,
        name="local",
    )


__all__ = [
    "AutoscalingMetricsConformance",
    "AutoscalingTarget",
    "LocalAutoscalingMetricsConformance",
    "RedisAutoscalingMetricsConformance",
    "ServiceBusAutoscalingMetricsConformance",
    "closed_port",
    "local_autoscaling_target",
    "new_endpoint_id",
    "per_loop_clients",
    "redis_autoscaling_target",
    "servicebus_autoscaling_target",
]
