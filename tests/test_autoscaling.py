"""Autoscaling metrics backends, beyond the conformance suite: what each one promises of its own.

Redis: one round trip per emit with the reference's result, typed errors from a server that never
answers, refuses, or holds the wrong type. Service Bus: one client and one sender reused, the 300 s
idle drop and the 600 s link detach survived, the queue's one-hour default TTL, a bounded sender
cache. Local: nothing half-written.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import fakeredis
import pytest
import redis.asyncio
from azure.core.exceptions import ClientAuthenticationError
from azure.servicebus import ServiceBusMessage
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from model_engine_infra.autoscaling.base import EXPIRY_SECONDS, PREWARM_EXPIRY_SECONDS
from model_engine_infra.autoscaling.local import LocalInferenceAutoscalingMetricsGateway
from model_engine_infra.autoscaling.redis import RedisInferenceAutoscalingMetricsGateway, redis_key
from model_engine_infra.autoscaling.servicebus import ServiceBusInferenceAutoscalingMetricsGateway, queue_name
from model_engine_infra.errors import BrokerUnavailableError, ConfigError, QueueKeyConflictError
from model_engine_infra.testing.conformance.autoscaling import closed_port, per_loop_clients
from model_engine_infra.testing.servicebus import FakeServiceBusNamespace

# --- Redis -----------------------------------------------------------------------------------------


class CountingRedis(fakeredis.FakeAsyncRedis):  # type: ignore[misc]
    """Counts the commands the client sends (a pipeline would count as one)."""

    sent: list[str]

    async def execute_command(self, *args: Any, **options: Any) -> Any:
        self.sent.append(str(args[0]))
        return await super().execute_command(*args, **options)


@pytest.fixture
def server() -> fakeredis.FakeServer:
    return fakeredis.FakeServer()


def _gateway(client: Any, timeout: float = 2.0) -> RedisInferenceAutoscalingMetricsGateway:
    return RedisInferenceAutoscalingMetricsGateway(lambda: client, timeout=timeout)


async def _upstream_emit(client: Any, key: str, expiry: int) -> None:
    """The reference implementation's four round trips."""
    await client.expire(key, expiry)
    await client.lpush(key, 1)
    await client.ltrim(key, 0, 0)
    await client.expire(key, expiry)


async def test_redis_emit_is_one_round_trip(server: fakeredis.FakeServer) -> None:
    client = CountingRedis(server=server)
    client.sent = []
    gateway = _gateway(client)
    await gateway.emit_inference_autoscaling_metric("e1")  # the first may load the script: EVALSHA, then EVAL
    client.sent.clear()
    for _ in range(5):
        await gateway.emit_inference_autoscaling_metric("e1")
        await gateway.emit_prewarm_metric("e2")
    assert client.sent == ["EVALSHA"] * 10


@pytest.mark.parametrize(
    ("before", "expiry"),
    [
        (None, EXPIRY_SECONDS),  # a new key
        (None, PREWARM_EXPIRY_SECONDS),
        ((3, 30), EXPIRY_SECONDS),  # a longer list about to expire: trimmed and extended
        ((2, -1), EXPIRY_SECONDS),  # a list without expiry gets one
        ((1, 40), PREWARM_EXPIRY_SECONDS),
    ],
)
async def test_redis_emit_leaves_what_the_four_calls_leave(
    server: fakeredis.FakeServer, before: tuple[int, int] | None, expiry: int
) -> None:
    client = fakeredis.FakeAsyncRedis(server=server)
    ours, theirs = redis_key("ours"), redis_key("theirs")
    if before is not None:
        length, ttl = before
        for key in (ours, theirs):
            await client.rpush(key, *["x"] * length)
            if ttl > 0:
                await client.expire(key, ttl)
    await _upstream_emit(client, theirs, expiry)
    await _gateway(client).emit_metric("ours", expiry)
    assert await client.lrange(ours, 0, -1) == await client.lrange(theirs, 0, -1) == [b"1"]
    assert await client.ttl(ours) == await client.ttl(theirs) == expiry


async def test_redis_inference_inside_a_prewarm_keeps_the_hour_where_the_reference_cut_it(
    server: fakeredis.FakeServer,
) -> None:
    client = fakeredis.FakeAsyncRedis(server=server)
    gateway = _gateway(client)
    await gateway.emit_prewarm_metric("ours")
    await gateway.emit_inference_autoscaling_metric("ours")
    await _upstream_emit(client, redis_key("theirs"), PREWARM_EXPIRY_SECONDS)
    await _upstream_emit(client, redis_key("theirs"), EXPIRY_SECONDS)
    assert await client.ttl(redis_key("ours")) == PREWARM_EXPIRY_SECONDS
    assert await client.ttl(redis_key("theirs")) == EXPIRY_SECONDS  # the difference, on purpose


async def test_redis_key_of_another_type_is_a_typed_error(server: fakeredis.FakeServer) -> None:
    client = fakeredis.FakeAsyncRedis(server=server)
    await client.set(redis_key("e1"), "not a list")
    with pytest.raises(QueueKeyConflictError, match="delete the key"):
        await _gateway(client).emit_inference_autoscaling_metric("e1")


async def test_redis_delete_removes_a_lingering_prewarm(server: fakeredis.FakeServer) -> None:
    client = fakeredis.FakeAsyncRedis(server=server)
    gateway = _gateway(client)
    await gateway.emit_prewarm_metric("e1")
    await gateway.delete_resources("e1")
    assert await client.exists(redis_key("e1")) == 0


@contextlib.contextmanager
def silent_server() -> Iterator[int]:
    """A TCP server that accepts connections and never answers (a hung Redis, a black-holed failover)."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.1)
        while not stop.is_set():
            try:
                accepted.append(listener.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield int(listener.getsockname()[1])
    finally:
        stop.set()
        thread.join()
        for conn in accepted:
            conn.close()
        listener.close()


def _real_client(port: int, **kwargs: Any) -> redis.asyncio.Redis:
    """redis-py's client with its own retries (as a deployment's pool has), but short timeouts."""
    return redis.asyncio.Redis(host="127.0.0.1", port=port, socket_timeout=2, socket_connect_timeout=2, **kwargs)


async def test_redis_server_that_never_answers_is_a_typed_error_within_the_timeout() -> None:
    with silent_server() as port:
        client = _real_client(port)
        gateway = RedisInferenceAutoscalingMetricsGateway(per_loop_clients(lambda: client), timeout=0.5)
        loop = asyncio.get_running_loop()
        started = loop.time()
        with pytest.raises(BrokerUnavailableError, match=r"did not answer within 0\.5 s"):
            await gateway.emit_inference_autoscaling_metric("e1")
        # bounded by our timeout, not by redis-py's socket timeout times its retries
        assert loop.time() - started < 5
        await client.aclose()


async def test_redis_server_that_refuses_is_a_typed_error() -> None:
    client = _real_client(closed_port(), retry=Retry(NoBackoff(), 0))
    gateway = _gateway(client)
    with pytest.raises(BrokerUnavailableError, match=r"cannot reach Redis 127\.0\.0\.1"):
        await gateway.emit_prewarm_metric("e1")
    await client.aclose()


async def test_redis_gateway_refuses_a_nonpositive_timeout() -> None:
    with pytest.raises(ValueError, match="timeout"):
        RedisInferenceAutoscalingMetricsGateway(lambda: None, timeout=0)  # type: ignore[arg-type,return-value]


# --- Service Bus -----------------------------------------------------------------------------------


@pytest.fixture
def namespace() -> FakeServiceBusNamespace:
    return FakeServiceBusNamespace("autoscaling-ns")


def _sb_gateway(ns: FakeServiceBusNamespace, **kwargs: Any) -> ServiceBusInferenceAutoscalingMetricsGateway:
    return ServiceBusInferenceAutoscalingMetricsGateway(ns.name, admin_client=ns.admin_client(), **kwargs)


async def test_servicebus_builds_one_client_and_one_sender_per_queue(
    namespace: FakeServiceBusNamespace, monkeypatch: pytest.MonkeyPatch
) -> None:
    import azure.servicebus

    monkeypatch.setattr(azure.servicebus, "ServiceBusClient", namespace.sdk_classes()["ServiceBusClient"])
    gateway = _sb_gateway(namespace, credential=namespace.credential())
    await gateway.create_or_update_resources("e1")
    await gateway.create_or_update_resources("e2")
    for _ in range(50):
        await gateway.emit_inference_autoscaling_metric("e1")
    await asyncio.gather(*(gateway.emit_inference_autoscaling_metric("e2") for _ in range(50)))
    stats = namespace.stats
    assert (stats.clients_created, stats.senders_created, stats.connections_opened) == (1, 2, 2)
    assert stats.messages_sent == 100
    await gateway.close()


@pytest.mark.parametrize("retry_total", [0, 3])
async def test_servicebus_survives_the_idle_connection_drop(
    namespace: FakeServiceBusNamespace, retry_total: int
) -> None:
    """No keep-alive flowing, 301 s of silence: the service has closed the connection."""
    gateway = _sb_gateway(namespace, client=namespace.client(retry_total=retry_total), keep_alive=0)
    await gateway.create_or_update_resources("e1")
    await gateway.emit_inference_autoscaling_metric("e1")
    namespace.clock.advance(301)
    await gateway.emit_inference_autoscaling_metric("e1")
    assert namespace.stats.faults_raised >= 1
    assert namespace.stats.connections_opened == 2
    assert len(namespace.message_expiries(queue_name("e1"))) == 1  # the first expired after 60 s; the second is there
    await gateway.close()


async def test_servicebus_survives_the_idle_link_detach_with_keep_alives(namespace: FakeServiceBusNamespace) -> None:
    """Keep-alives hold the connection, but the service still detaches a link that sent nothing for 600 s."""
    gateway = _sb_gateway(namespace, client=namespace.client(retry_total=0), keep_alive=30)
    await gateway.create_or_update_resources("e1")
    await gateway.emit_prewarm_metric("e1")
    namespace.clock.advance(601)
    await gateway.emit_prewarm_metric("e1")
    assert namespace.stats.faults_raised == 1
    assert len(namespace.message_expiries(queue_name("e1"))) == 2
    await gateway.close()


async def test_servicebus_gives_up_with_a_typed_error_when_the_service_stays_down(
    namespace: FakeServiceBusNamespace,
) -> None:
    gateway = _sb_gateway(namespace, client=namespace.client(retry_total=0))
    await gateway.create_or_update_resources("e1")
    namespace.fail_next_send_attempts(2)  # the sender, then the rebuilt one
    with pytest.raises(BrokerUnavailableError, match="ServiceBusConnectionError"):
        await gateway.emit_inference_autoscaling_metric("e1")
    await gateway.emit_inference_autoscaling_metric("e1")  # back: a new sender works
    await gateway.close()


async def test_servicebus_queue_gets_an_hour_default_ttl_even_when_it_existed(
    namespace: FakeServiceBusNamespace,
) -> None:
    admin = namespace.admin_client()
    admin.create_queue(queue_name("e1"))  # as the reference creates it: messages live forever by default
    gateway = _sb_gateway(namespace, client=namespace.client())
    await gateway.create_or_update_resources("e1")
    assert admin.get_queue(queue_name("e1")).default_message_time_to_live == timedelta(hours=1)
    # The reference sends with no time-to-live (it passes the expiry as the send timeout):
    with namespace.client().get_queue_sender(queue_name("e1")) as sender:
        sender.send_messages(ServiceBusMessage("message"), timeout=EXPIRY_SECONDS)
    assert namespace.message_expiries(queue_name("e1")) == [PREWARM_EXPIRY_SECONDS]
    namespace.clock.advance(PREWARM_EXPIRY_SECONDS + 1)
    assert await gateway.read_metric("e1") is None
    await gateway.close()


async def test_servicebus_sender_cache_is_bounded(namespace: FakeServiceBusNamespace) -> None:
    gateway = _sb_gateway(namespace, client=namespace.client(), max_senders=2)
    for endpoint_id in ("e1", "e2", "e3"):
        await gateway.create_or_update_resources(endpoint_id)
        await gateway.emit_inference_autoscaling_metric(endpoint_id)
    assert namespace.open_connections() == 2  # e1's sender was closed
    await gateway.emit_inference_autoscaling_metric("e1")
    assert namespace.stats.senders_created == 4
    await gateway.close()
    assert namespace.open_connections() == 0


async def test_servicebus_refused_identity_names_the_role(namespace: FakeServiceBusNamespace) -> None:
    credential = namespace.credential()
    credential.fail_with = ClientAuthenticationError("no token")  # type: ignore[attr-defined]
    gateway = ServiceBusInferenceAutoscalingMetricsGateway(
        namespace.name, client=namespace.client(), admin_client=namespace.admin_client(), credential=credential
    )
    gateway._admin = type(namespace.admin_client())(
        namespace.fully_qualified_namespace, credential, namespace=namespace
    )
    with pytest.raises(BrokerUnavailableError, match="Data Owner"):
        await gateway.create_or_update_resources("e1")
    await gateway.close()


def test_servicebus_needs_a_namespace() -> None:
    with pytest.raises(ConfigError, match="servicebus_namespace"):
        ServiceBusInferenceAutoscalingMetricsGateway(" ")


# --- local -----------------------------------------------------------------------------------------


async def test_local_leaves_no_temporary_files(tmp_path: Path) -> None:
    gateway = LocalInferenceAutoscalingMetricsGateway(tmp_path)
    await asyncio.gather(
        *(gateway.emit_inference_autoscaling_metric("e1") for _ in range(20)), gateway.emit_prewarm_metric("e1")
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == [".lock", "launch-endpoint-autoscaling.e1.json"]
    metric = await gateway.read_metric("e1")
    assert metric is not None
    assert metric.expires_in is not None
    assert metric.expires_in > PREWARM_EXPIRY_SECONDS - 5


# --- the kind: selected by profile or key, plugins welcome ----------------------------------------------


@pytest.mark.parametrize(
    ("provider", "expected"),
    [
        ("aws", "RedisInferenceAutoscalingMetricsGateway"),
        ("gcp", "RedisInferenceAutoscalingMetricsGateway"),
        ("onprem", "RedisInferenceAutoscalingMetricsGateway"),
        ("azure", "ServiceBusInferenceAutoscalingMetricsGateway"),
        ("local", "LocalInferenceAutoscalingMetricsGateway"),
    ],
)
def test_each_profile_names_its_backend(provider: str, expected: str, tmp_path: Path) -> None:
    from model_engine_infra import build_infra
    from model_engine_infra.config import InfraConfig
    from model_engine_infra.registry import get_provider

    config = InfraConfig(
        cloud_provider=provider,
        local_data_dir=str(tmp_path),
        redis_host="127.0.0.1",
        **get_provider(provider).sample_config,
    )
    infra = build_infra(config)
    assert type(infra.autoscaling_metrics).__name__ == expected
    infra.close()


def test_the_key_overrides_the_profile_and_plugins_register(tmp_path: Path) -> None:
    from model_engine_infra import build_infra
    from model_engine_infra.config import InfraConfig
    from model_engine_infra.registry import register_backend, unregister_backend

    config = InfraConfig(cloud_provider="aws", autoscaling_metrics_backend="local", local_data_dir=str(tmp_path))
    assert isinstance(build_infra(config).autoscaling_metrics, LocalInferenceAutoscalingMetricsGateway)
    register_backend("autoscaling_metrics", "plugmetrics", f"{__name__}:_plugin_gateway")
    try:
        plugged = InfraConfig(cloud_provider="aws", autoscaling_metrics_backend="plugmetrics", local_data_dir="x")
        assert build_infra(plugged).autoscaling_metrics == ("plugin", "x")
    finally:
        unregister_backend("autoscaling_metrics", "plugmetrics")


def _plugin_gateway(config: Any, infra: Any) -> Any:
    return ("plugin", config.local_data_dir)


def test_an_unknown_backend_name_fails_at_load(tmp_path: Path) -> None:
    from model_engine_infra import load_config

    with pytest.raises(ConfigError, match=r"MODEL_ENGINE_INFRA_AUTOSCALING_METRICS_BACKEND.*kafka"):
        load_config(env={"MODEL_ENGINE_INFRA_AUTOSCALING_METRICS_BACKEND": "kafka"})


def test_servicebus_metrics_without_a_namespace_are_a_finding_and_refused_when_built(tmp_path: Path) -> None:
    from model_engine_infra import build_infra
    from model_engine_infra.config import InfraConfig

    config = InfraConfig(cloud_provider="azure", celery_broker_type_redis=True, redis_host="127.0.0.1")
    assert any(f.key == "azure.servicebus_namespace" and "KEDA" in f.message for f in config.findings())
    with pytest.raises(ConfigError, match="servicebus_namespace"):
        build_infra(config).autoscaling_metrics  # noqa: B018


@pytest.mark.parametrize("server", ["silent", "refusing"])
def test_through_the_deployments_wiring_a_dead_redis_is_a_typed_error_within_the_socket_timeout(
    server: str, tmp_path: Path
) -> None:
    """``infra.autoscaling_metrics`` on onprem with redis_socket_timeout 0.5 s: never a hang."""
    import time

    from model_engine_infra import build_infra
    from model_engine_infra.config import InfraConfig

    with contextlib.ExitStack() as stack:
        port = stack.enter_context(silent_server()) if server == "silent" else closed_port()
        config = InfraConfig(cloud_provider="onprem", redis_host="127.0.0.1", redis_port=port, redis_socket_timeout=0.5)
        infra = stack.enter_context(build_infra(config))
        started = time.monotonic()
        with pytest.raises(BrokerUnavailableError, match=f"127.0.0.1:{port}"):
            asyncio.run(infra.autoscaling_metrics.emit_inference_autoscaling_metric("e1"))
        assert time.monotonic() - started < 5  # the 0.5 s timeout, not redis-py's retries times reconnects


@pytest.mark.parametrize("endpoint_id", ["End1", "e1-", "e1_"])
async def test_servicebus_refuses_ids_the_service_would_fold_or_refuse(
    namespace: FakeServiceBusNamespace, endpoint_id: str
) -> None:
    """As the Service Bus queue delegate does: upper case would share a queue; a name must end alphanumeric."""
    from model_engine_infra.errors import InvalidQueueNameError

    gateway = _sb_gateway(namespace, client=namespace.client())
    with pytest.raises(InvalidQueueNameError):
        await gateway.create_or_update_resources(endpoint_id)
    assert namespace.queue_names() == []
    await gateway.close()


def test_the_script_in_the_docs_is_the_one_that_runs() -> None:
    from model_engine_infra.autoscaling.redis import EMIT_SCRIPT

    text = (Path(__file__).resolve().parents[1] / "docs" / "autoscaling.md").read_text()
    assert f"```text\n{EMIT_SCRIPT}```" in text
