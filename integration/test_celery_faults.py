"""Broker faults the gateway must ride out: a Redis crash mid-stream, Service Bus idle drops.

Redis: redis-server is SIGKILLed while 5,000 tasks are published and started again on the same
port with its append-only file. Every publish the gateway reported as sent must be in the queue
afterwards (kombu's LPUSH reply comes after Redis wrote the AOF, so a crash loses no acknowledged
write); the ones that failed were reported as `BrokerUnavailableError`; the same gateway keeps
publishing once Redis is back. Service Bus runs on the SDK-boundary fake.
"""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from model_engine_infra.config import InfraConfig
from model_engine_infra.errors import BrokerUnavailableError
from model_engine_infra.tasks.gateway import CeleryTaskQueueGateway
from model_engine_infra.testing.queues import declare_queue
from model_engine_infra.testing.servers import RunningServer, free_port
from model_engine_infra.testing.servicebus import FakeServiceBusNamespace, patch_kombu_servicebus

pytestmark = pytest.mark.integration

PUBLISHES = 5_000
KILL_AT = 1_500
DOWN_SECONDS = 1.0


class DurableRedis:
    """redis-server with an append-only file, on one port across restarts; killed hard on purpose."""

    def __init__(self, binary: str, folder: Path) -> None:
        self.binary, self.folder, self.port = binary, folder, free_port()
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        argv = [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.folder)]
        argv += ["--save", "", "--appendonly", "yes", "--appendfsync", "everysec", "--daemonize", "no"]
        log = (self.folder / "redis.log").open("ab")
        self.process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)
        log.close()
        import redis

        client = redis.Redis(port=self.port, socket_connect_timeout=0.2)
        deadline = time.monotonic() + 10
        while True:
            try:
                if client.ping():
                    return
            except redis.RedisError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.02)

    def kill(self) -> None:
        if self.process is not None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait()
            self.process = None


@pytest.fixture
def durable_redis(mei_redis_server: RunningServer, tmp_path: Path) -> Iterator[DurableRedis]:
    """Needs redis-server installed (the session fixture skips or fails the test as CI wants)."""
    binary = shutil.which("redis-server")
    assert binary is not None, "redis-server is running but not on PATH"
    server = DurableRedis(binary, tmp_path)
    server.start()
    yield server
    server.kill()


def test_redis_crash_during_5000_publishes(durable_redis: DurableRedis) -> None:
    import redis

    # a send's budget: 1 + redis_retries attempts, 0.1 s apart (docs/security.md), so 0.3 s of riding it out
    config = InfraConfig(
        cloud_provider="onprem", redis_host="127.0.0.1", celery_backend_protocol="redis", redis_retries=3
    )
    gateway = CeleryTaskQueueGateway.from_config(config, redis=f"redis://127.0.0.1:{durable_redis.port}/0")
    declare_queue(gateway, "fault-q")  # what the worker consuming it does
    sent: list[str] = []
    refused = 0
    slowest = 0.0
    restarted = threading.Event()

    def restart_later() -> None:
        time.sleep(DOWN_SECONDS)
        durable_redis.start()
        restarted.set()

    for i in range(PUBLISHES):
        if i == KILL_AT:
            durable_redis.kill()
            threading.Thread(target=restart_later, daemon=True).start()
        started = time.monotonic()
        try:
            sent.append(gateway.send_task("tasks.predict", "fault-q", args=[{"i": i}]).task_id)
        except BrokerUnavailableError:
            refused += 1
        slowest = max(slowest, time.monotonic() - started)
    assert restarted.wait(10)

    queued = redis.Redis(port=durable_redis.port, db=3).lrange("fault-q", 0, -1)  # onprem inference: 24 h, db 3
    in_queue = {json.loads(raw)["headers"]["id"] for raw in queued}
    missing = set(sent) - in_queue
    assert not missing, f"{len(missing)} tasks reported as sent were lost"
    assert len(sent) + refused == PUBLISHES
    # a 1 s outage outlasts one send's budget (0.3 s): a few are refused, typed, then it recovers
    assert 1 <= refused <= 10
    assert slowest > 0.15  # publishes really waited on the dead broker
    after = sent[-100:]  # the same gateway, no restart, publishes again
    assert set(after) <= in_queue
    gateway.close()


# --- Service Bus ------------------------------------------------------------------------------------


@pytest.fixture
def namespace() -> Iterator[FakeServiceBusNamespace]:
    ns = FakeServiceBusNamespace("faults-ns")
    with patch_kombu_servicebus(ns):
        yield ns


def servicebus_gateway() -> CeleryTaskQueueGateway:
    config = InfraConfig(
        cloud_provider="azure", servicebus_namespace="faults-ns", celery_backend_protocol="redis", redis_host="r"
    )
    gateway = CeleryTaskQueueGateway.from_config(config)
    declare_queue(gateway, "sb-q")
    return gateway


def test_100_sends_build_one_client(namespace: FakeServiceBusNamespace) -> None:
    gateway = servicebus_gateway()
    credentials = namespace.stats.credentials_created  # the queue's declaration (a worker's job) made one
    gateway.send_task("tasks.predict", "sb-q", args=[0])  # warm-up: credential, client, sender
    before = (namespace.stats.clients_created, namespace.stats.connections_opened, namespace.stats.senders_created)
    for i in range(100):
        gateway.send_task("tasks.predict", "sb-q", args=[i])
    after = (namespace.stats.clients_created, namespace.stats.connections_opened, namespace.stats.senders_created)
    assert before == after == (1, 1, 1)
    assert namespace.stats.credentials_created == credentials + 1
    assert len(namespace.message_bodies("sb-q")) == 101


def test_keep_alive_prevents_the_300s_drop(namespace: FakeServiceBusNamespace) -> None:
    gateway = servicebus_gateway()
    gateway.send_task("tasks.predict", "sb-q", args=[0])
    namespace.clock.advance(301)  # idle past the service's 300 s, keep-alives flowing every 30 s
    gateway.send_task("tasks.predict", "sb-q", args=[1])
    assert namespace.stats.faults_raised == 0
    assert namespace.stats.connections_opened == 1


def test_forced_drop_is_invisible_to_the_caller(namespace: FakeServiceBusNamespace) -> None:
    gateway = servicebus_gateway()
    gateway.send_task("tasks.predict", "sb-q", args=[0])
    assert namespace.drop_connections() == 1  # amqp:connection:forced
    retries = namespace.stats.sdk_retries
    gateway.send_task("tasks.predict", "sb-q", args=[1])  # no error reaches the caller
    assert namespace.stats.sdk_retries - retries <= 1  # one retry, not a rebuilt stack
    assert namespace.stats.clients_created == 1
    assert len(namespace.message_bodies("sb-q")) == 2


def test_idle_link_detach_after_600s(namespace: FakeServiceBusNamespace) -> None:
    """Keep-alives do not stop the service detaching a link that sent nothing for 10 minutes."""
    gateway = servicebus_gateway()
    gateway.send_task("tasks.predict", "sb-q", args=[0])
    namespace.clock.advance(601)
    gateway.send_task("tasks.predict", "sb-q", args=[1])
    assert namespace.stats.faults_raised == 1
    assert namespace.stats.sdk_retries == 1
    assert len(namespace.message_bodies("sb-q")) == 2


def test_without_keep_alive_the_drop_still_costs_one_retry(namespace: FakeServiceBusNamespace) -> None:
    config = InfraConfig(
        cloud_provider="azure",
        servicebus_namespace="faults-ns",
        servicebus_keep_alive_interval=1000,  # longer than the service's 300 s: nothing flows in time
        celery_backend_protocol="redis",
        redis_host="r",
    )
    gateway = CeleryTaskQueueGateway.from_config(config)
    declare_queue(gateway, "sb-q")
    gateway.send_task("tasks.predict", "sb-q", args=[0])
    namespace.clock.advance(301)
    gateway.send_task("tasks.predict", "sb-q", args=[1])
    assert namespace.stats.faults_raised == 1
    assert namespace.stats.sdk_retries == 1
