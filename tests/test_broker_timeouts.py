"""A broker that stops answering (issue 14): one send, or one read of a task's state, is bounded.

kombu retries a publish at nested levels that each restart their count; the task queue makes every
level draw on one budget (`SendBounds`, `tasks.send_budget`). As in ``test_redis_timeouts.py``, the
bound is asserted by counting what the server sees (connections, HTTP requests, SDK tries), since
each failed attempt waits at most one timeout; ``pytest.mark.timeout`` only guards against a hang.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import fakeredis
import pytest

from model_engine_infra.brokers import servicebus as servicebus_unit
from model_engine_infra.brokers import sqs as sqs_unit
from model_engine_infra.brokers.base import SendBounds
from model_engine_infra.brokers.redis import REDIS_BACKOFF_SECONDS
from model_engine_infra.config import InfraConfig
from model_engine_infra.errors import BrokerUnavailableError
from model_engine_infra.redis.connection import PoolSettings
from model_engine_infra.tasks.app import celery_conf
from model_engine_infra.tasks.gateway import CeleryTaskQueueGateway
from model_engine_infra.tasks.send_budget import send_scope, spend
from model_engine_infra.testing.queues import declare_queue
from model_engine_infra.testing.servicebus import FakeServiceBusNamespace, patch_kombu_servicebus

TIMEOUT = 0.2


def onprem(retries: int = 1) -> InfraConfig:
    return InfraConfig(
        cloud_provider="onprem",
        celery_backend_protocol="redis",
        redis_host="127.0.0.1",  # the test passes its own URL
        redis_socket_timeout=TIMEOUT,
        redis_retries=retries,
    )


# --- socket servers ------------------------------------------------------------------------------


@dataclass
class Listener:
    """A listening socket on a thread; subclasses say what happens to each accepted connection."""

    sock: socket.socket = field(default_factory=socket.socket)
    accepted: int = 0
    stop: threading.Event = field(default_factory=threading.Event)
    conns: list[socket.socket] = field(default_factory=list)

    @property
    def port(self) -> int:
        return int(self.sock.getsockname()[1])

    def start(self) -> None:
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.sock.settimeout(0.05)
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while not self.stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            self.accepted += 1
            self.conns.append(conn)
            threading.Thread(target=self.handle, args=(conn,), daemon=True).start()

    def handle(self, conn: socket.socket) -> None:
        raise NotImplementedError

    def close(self) -> None:
        self.stop.set()
        for conn in self.conns:
            conn.close()
        self.sock.close()


class SilentServer(Listener):
    """Accepts every connection, reads what is sent, never answers."""

    def handle(self, conn: socket.socket) -> None:
        conn.settimeout(0.05)
        while not self.stop.is_set():
            try:
                if not conn.recv(65536):
                    return
            except TimeoutError:
                continue
            except OSError:
                return


@dataclass
class SwitchProxy(Listener):
    """Forwards to ``target`` until `go_silent` (then swallows both ways) or `go_away` (then refuses)."""

    target: int = 0
    silent: bool = False

    def handle(self, conn: socket.socket) -> None:
        upstream = socket.create_connection(("127.0.0.1", self.target))
        self.conns.append(upstream)
        threading.Thread(target=self._pump, args=(upstream, conn), daemon=True).start()
        self._pump(conn, upstream)

    def _pump(self, source: socket.socket, sink: socket.socket) -> None:
        source.settimeout(0.05)
        while not self.stop.is_set():
            try:
                data = source.recv(65536)
            except TimeoutError:
                continue
            except OSError:
                return
            if not data:
                return
            if not self.silent:
                try:
                    sink.sendall(data)
                except OSError:
                    return

    def go_silent(self) -> None:
        self.silent = True

    def go_away(self) -> None:
        """Close every connection and the listener: later connects are refused."""
        self.close()


@pytest.fixture
def silent_server() -> Iterator[SilentServer]:
    server = SilentServer()
    server.start()
    yield server
    server.close()


@pytest.fixture
def refused_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def proxied_redis() -> Iterator[SwitchProxy]:
    """fakeredis behind a real socket, reached through a proxy the test can silence or shut."""
    server = fakeredis.TcpFakeServer(("127.0.0.1", 0), server_type="redis")
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    proxy = SwitchProxy(target=int(server.server_address[1]))
    proxy.start()
    yield proxy
    proxy.close()
    server.shutdown()
    server.server_close()
    thread.join(5)


def redis_gateway(port: int, retries: int = 1) -> CeleryTaskQueueGateway:
    return CeleryTaskQueueGateway.from_config(onprem(retries), redis=f"redis://127.0.0.1:{port}/0")


# --- Redis broker ----------------------------------------------------------------------------------


@pytest.mark.timeout(30)
@pytest.mark.parametrize("retries", [0, 1, 3])
def test_redis_send_to_a_silent_server_makes_one_attempt_per_budget(silent_server: SilentServer, retries: int) -> None:
    """Was 3 connections in 7.5 s with a 0.5 s timeout (kombu's first connect retried for 4 s, pausing 2 s, 4 s)."""
    gateway = redis_gateway(silent_server.port, retries)
    with pytest.raises(BrokerUnavailableError, match=rf"after {1 + retries} attempt\(s\).*not sent"):
        gateway.send_task("tasks.predict", "q1", args=[1])
    assert silent_server.accepted == 1 + retries  # one connection per attempt, none nested


@pytest.mark.timeout(30)
def test_redis_send_to_a_refused_port_is_typed(refused_port: int) -> None:
    gateway = redis_gateway(refused_port, retries=3)
    with pytest.raises(BrokerUnavailableError, match=r"after 4 attempt\(s\)"):
        gateway.send_task("tasks.predict", "q1")


@pytest.mark.timeout(30)
@pytest.mark.parametrize("retries", [0, 3])
def test_every_pause_of_a_send_is_the_budgets(refused_port: int, retries: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """kombu's own intervals (2 s, 4 s ... on the first connect) are off: (A - 1) pauses of the backoff cap."""
    from model_engine_infra.tasks import send_budget

    pauses: list[float] = []
    monkeypatch.setattr(send_budget.time, "sleep", pauses.append)
    with pytest.raises(BrokerUnavailableError):
        redis_gateway(refused_port, retries).send_task("tasks.predict", "q1")
    assert pauses == [REDIS_BACKOFF_SECONDS] * retries


@pytest.mark.timeout(30)
@pytest.mark.parametrize("retries", [1, 2])
def test_redis_broker_that_goes_silent_after_a_send(proxied_redis: SwitchProxy, retries: int) -> None:
    """A pooled connection that stops answering: the queue check, the reconnects and the publish share one budget."""
    gateway = redis_gateway(proxied_redis.port, retries)
    declare_queue(gateway, "q1")
    gateway.send_task("tasks.predict", "q1", args=[0])
    before = proxied_redis.accepted
    proxied_redis.go_silent()
    with pytest.raises(BrokerUnavailableError, match=rf"after {1 + retries} attempt\(s\)"):
        gateway.send_task("tasks.predict", "q1", args=[1])
    # the first attempt used the pooled connection; each further attempt opened one
    assert proxied_redis.accepted - before == retries


@pytest.mark.timeout(30)
def test_redis_broker_that_goes_away_after_a_send(proxied_redis: SwitchProxy) -> None:
    gateway = redis_gateway(proxied_redis.port, retries=2)
    declare_queue(gateway, "q1")
    gateway.send_task("tasks.predict", "q1", args=[0])
    proxied_redis.go_away()
    with pytest.raises(BrokerUnavailableError, match=r"after 3 attempt\(s\)"):
        gateway.send_task("tasks.predict", "q1", args=[1])


@pytest.mark.timeout(30)
@pytest.mark.parametrize("retries", [0, 2])
def test_reading_a_task_from_a_silent_redis_result_backend(silent_server: SilentServer, retries: int) -> None:
    """Was one read with Celery's 120 s socket timeout when the backend came from redis_host or a URL."""
    gateway = redis_gateway(silent_server.port, retries)
    assert gateway.app.conf.redis_socket_timeout == TIMEOUT
    with pytest.raises(BrokerUnavailableError, match="result backend"):
        gateway.get_task("some-id")
    assert silent_server.accepted == 1 + retries


@pytest.mark.timeout(30)
def test_reading_a_task_from_a_refused_result_backend(refused_port: int) -> None:
    with pytest.raises(BrokerUnavailableError, match="result backend"):
        redis_gateway(refused_port, retries=2).get_task("some-id")


def test_the_redis_send_bound_is_the_redis_components() -> None:
    """Same settings, same formula as every other Redis command (docs/security.md)."""
    for config in (onprem(), InfraConfig(cloud_provider="onprem", redis_host="r", redis_retries=3)):
        broker, _ = celery_conf(config)
        bounds = broker.bounds
        assert bounds is not None
        pool = PoolSettings.from_config(config)
        assert pool.backoff_cap == REDIS_BACKOFF_SECONDS
        assert bounds.worst_case_seconds(silent=True) == pytest.approx(pool.worst_case_seconds(silent=True))
        assert bounds.worst_case_seconds() == pytest.approx(pool.worst_case_seconds())
    defaults, _ = celery_conf(InfraConfig(cloud_provider="onprem", redis_host="r"))
    assert defaults.bounds is not None
    assert defaults.bounds.worst_case_seconds(silent=True) == pytest.approx(4.1)


# --- SQS -------------------------------------------------------------------------------------------


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in {
        "AWS_ACCESS_KEY_ID": "t",
        "AWS_SECRET_ACCESS_KEY": "t",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    monkeypatch.delenv("AWS_MAX_ATTEMPTS", raising=False)
    monkeypatch.delenv("AWS_RETRY_MODE", raising=False)


def sqs_gateway(port: int) -> CeleryTaskQueueGateway:
    config = InfraConfig(
        cloud_provider="aws",
        celery_backend_protocol="redis",
        redis_host="127.0.0.1",
        sqs_endpoint_url=f"http://127.0.0.1:{port}",
    )
    return CeleryTaskQueueGateway.from_config(config)


@pytest.mark.timeout(60)
@pytest.mark.usefixtures("aws_env")
def test_sqs_send_to_a_silent_endpoint(silent_server: SilentServer, monkeypatch: pytest.MonkeyPatch) -> None:
    """Was botocore's 60 s read timeout x 5 attempts (x kombu's retries): here SEND_SDK_ATTEMPTS requests."""
    monkeypatch.setattr(sqs_unit, "SEND_READ_TIMEOUT", TIMEOUT)
    gateway = sqs_gateway(silent_server.port)
    with pytest.raises(BrokerUnavailableError, match=r"sqs broker.*not sent"):
        gateway.send_task("tasks.predict", "q1")
    assert silent_server.accepted == sqs_unit.SEND_SDK_ATTEMPTS  # a timed-out connection is not reused


@pytest.mark.timeout(60)
@pytest.mark.usefixtures("aws_env")
def test_sqs_send_to_a_closed_port(refused_port: int) -> None:
    requests: list[str] = []
    gateway = sqs_gateway(refused_port)
    import botocore.endpoint

    real_send = botocore.endpoint.Endpoint._send

    def counted(self: Any, request: Any) -> Any:
        requests.append(request.url)
        return real_send(self, request)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(botocore.endpoint.Endpoint, "_send", counted)
        with pytest.raises(BrokerUnavailableError, match=r"after 1 attempt\(s\)"):
            gateway.send_task("tasks.predict", "q1")
    assert len(requests) == sqs_unit.SEND_SDK_ATTEMPTS


def test_sqs_bound_follows_its_settings() -> None:
    bounds = sqs_unit.send_bounds()
    attempts, connect, read = sqs_unit.SEND_SDK_ATTEMPTS, sqs_unit.SEND_CONNECT_TIMEOUT, sqs_unit.SEND_READ_TIMEOUT
    assert bounds.attempts == 1
    assert bounds.worst_case_seconds() == attempts * (connect + read) + 1 + 2
    config = bounds.producer_options["client-config"]
    assert config["retries"] == {"mode": "standard", "total_max_attempts": attempts}


# --- Service Bus -----------------------------------------------------------------------------------

SB_CONFIG = InfraConfig(
    cloud_provider="azure", servicebus_namespace="unit-ns", celery_backend_protocol="redis", redis_host="127.0.0.1"
)


@pytest.fixture
def namespace() -> Iterator[FakeServiceBusNamespace]:
    ns = FakeServiceBusNamespace("unit-ns")
    with patch_kombu_servicebus(ns):
        yield ns


def test_servicebus_send_that_keeps_failing_spends_the_budget(namespace: FakeServiceBusNamespace) -> None:
    gateway = CeleryTaskQueueGateway.from_config(SB_CONFIG)
    declare_queue(gateway, "q-fail")
    gateway.send_task("tasks.predict", "q-fail", args=[0])
    tries = namespace.stats.send_attempts
    namespace.fail_next_send_attempts(1000)
    with pytest.raises(BrokerUnavailableError, match=r"servicebus broker.*after 2 attempt\(s\)"):
        gateway.send_task("tasks.predict", "q-fail", args=[1])
    # kombu attempts x (kombu's _put: a sender, then a fresh one after a lost connection) x SDK tries
    sdk_tries = 1 + servicebus_unit.SEND_SDK_RETRIES
    assert namespace.stats.send_attempts - tries == servicebus_unit.SEND_ATTEMPTS * 2 * sdk_tries


def test_servicebus_unreachable_namespace_on_the_first_send(namespace: FakeServiceBusNamespace) -> None:
    namespace.faults.unreachable = True
    gateway = CeleryTaskQueueGateway.from_config(SB_CONFIG)
    with pytest.raises(BrokerUnavailableError, match=r"unit-ns\.servicebus\.windows\.net"):
        gateway.send_task("tasks.predict", "q-down", args=[1])


def test_servicebus_clients_get_timeouts(namespace: FakeServiceBusNamespace, monkeypatch: pytest.MonkeyPatch) -> None:
    """kombu passes no timeout to the SDK: the task queue's clients get one per try, and the admin client too."""
    from model_engine_infra.tasks import servicebus_transport

    seen: dict[str, dict[str, Any]] = {}
    classes = namespace.sdk_classes()
    for name in ("ServiceBusClient", "ServiceBusAdministrationClient"):
        real = classes[name]

        def record(*args: Any, _name: str = name, _real: Any = real, **kwargs: Any) -> Any:
            seen[_name] = kwargs
            return _real(*args, **kwargs)

        monkeypatch.setattr(servicebus_transport.azureservicebus, name, record)
    gateway = CeleryTaskQueueGateway.from_config(SB_CONFIG)
    declare_queue(gateway, "q-t")
    gateway.send_task("tasks.predict", "q-t")
    assert seen["ServiceBusClient"]["try_timeout"] == servicebus_unit.SEND_TRY_TIMEOUT
    assert seen["ServiceBusClient"]["retry_total"] == servicebus_unit.SEND_SDK_RETRIES
    assert seen["ServiceBusAdministrationClient"] == {
        "retry_total": servicebus_unit.ADMIN_RETRIES,
        "connection_timeout": servicebus_unit.ADMIN_TIMEOUT,
        "read_timeout": servicebus_unit.ADMIN_TIMEOUT,
    }
    bounds = servicebus_unit.send_bounds()
    assert bounds.worst_case_seconds() is not None


# --- the budget itself -----------------------------------------------------------------------------


def test_outside_a_send_the_errback_does_nothing() -> None:
    """A worker's connections carry no budget: kombu's own limits apply there."""
    spend(ConnectionError("down"))  # no scope: nothing raised
    with send_scope(2):
        spend(ConnectionError("first"))
        with pytest.raises(ConnectionError, match="second"):
            spend(ConnectionError("second"))


def test_a_plugin_broker_keeps_celerys_policy_with_no_known_time() -> None:
    bounds = SendBounds(attempts=4, backoff_seconds=0.5)
    assert bounds.worst_case_seconds() is None
    assert bounds.retry_policy() == {"max_retries": 3, "interval_start": 0, "interval_step": 0, "interval_max": 0}
