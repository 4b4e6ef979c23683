"""A Redis that stops answering (issue 14): one command's cost is bounded by the settings.

A tiny socket server accepts connections and never answers; another port refuses. The bound is
asserted by counting what the server sees (connections, commands sent), not by timing: each attempt
waits at most one socket timeout, so ``attempts x timeout`` follows. ``pytest.mark.timeout`` only
guards against a regression to the old 17x multiplication.
"""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest
import redis

from model_engine_infra.config import InfraConfig
from model_engine_infra.errors import BrokerUnavailableError, RedisUnavailableError
from model_engine_infra.queues.redis import RedisQueueEndpointResourceDelegate
from model_engine_infra.redis.bounded import worst_case_seconds
from model_engine_infra.redis.connection import ManagedRedisConnection, PoolSettings
from model_engine_infra.redis.sources import from_url

TIMEOUT = 0.2


@dataclass
class SilentServer:
    """Accepts every connection, reads what is sent, never answers."""

    port: int
    accepted: int = 0
    received: bytearray = field(default_factory=bytearray)
    sockets: list[socket.socket] = field(default_factory=list)

    @property
    def commands(self) -> int:
        return bytes(self.received).count(b"*")  # RESP arrays: one per command sent


@pytest.fixture
def silent_server() -> Iterator[SilentServer]:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    listener.settimeout(0.05)
    server = SilentServer(listener.getsockname()[1])
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except OSError:
                continue
            conn.settimeout(0.05)
            server.accepted += 1
            server.sockets.append(conn)
            threading.Thread(target=drain, args=(conn,), daemon=True).start()

    def drain(conn: socket.socket) -> None:
        while not stop.is_set():
            try:
                data = conn.recv(65536)
            except TimeoutError:
                continue
            except OSError:
                return
            if not data:
                return
            server.received.extend(data)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield server
    stop.set()
    thread.join()
    for conn in server.sockets:
        conn.close()
    listener.close()


@pytest.fixture
def refused_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def connection(port: int, retries: int) -> ManagedRedisConnection:
    settings = PoolSettings(socket_timeout=TIMEOUT, retries=retries, health_check_interval=30)
    return ManagedRedisConnection(from_url(f"redis://127.0.0.1:{port}/0", origin="test"), settings)


@pytest.mark.timeout(30)
@pytest.mark.parametrize("retries", [0, 1, 3])
def test_sync_command_against_a_silent_server_makes_one_attempt_per_budget(
    silent_server: SilentServer, retries: int
) -> None:
    conn = connection(silent_server.port, retries)
    try:
        with pytest.raises(RedisUnavailableError, match="unreachable"):
            conn.client().ping()
    finally:
        conn.close()
    assert silent_server.accepted == 1 + retries  # one connection per attempt, none nested
    assert silent_server.commands <= 1 + retries  # one handshake command waited for per attempt


@pytest.mark.timeout(30)
@pytest.mark.parametrize("retries", [0, 2])
async def test_async_command_against_a_silent_server(silent_server: SilentServer, retries: int) -> None:
    conn = connection(silent_server.port, retries)
    try:
        with pytest.raises(RedisUnavailableError):
            await conn.async_client().ping()
    finally:
        await conn.aclose()
    assert silent_server.accepted == 1 + retries


@pytest.mark.timeout(30)
async def test_queue_delegate_on_a_silent_redis(silent_server: SilentServer) -> None:
    conn = connection(silent_server.port, retries=1)
    delegate = RedisQueueEndpointResourceDelegate(conn.async_client)
    try:
        with pytest.raises(BrokerUnavailableError, match="not 0"):
            await delegate.get_queue_attributes("e1")
        with pytest.raises(BrokerUnavailableError):
            await delegate.create_queue_if_not_exists("e1", "n", "me", {})
    finally:
        await conn.aclose()
    assert silent_server.accepted == 2 * 2  # two calls, two attempts each


@pytest.mark.timeout(30)
def test_a_pipeline_is_one_budget(silent_server: SilentServer) -> None:
    conn = connection(silent_server.port, retries=1)
    try:
        with pytest.raises(redis.exceptions.ConnectionError), conn.client().pipeline() as pipe:
            pipe.set("a", 1).get("a").execute()
    finally:
        conn.close()
    assert silent_server.accepted == 2


@pytest.mark.timeout(30)
async def test_a_refused_connection_fails_fast_sync_and_async(refused_port: int) -> None:
    conn = connection(refused_port, retries=3)
    try:
        with pytest.raises(RedisUnavailableError, match="unreachable"):
            conn.client().ping()
        with pytest.raises(RedisUnavailableError):
            await conn.async_client().ping()
    finally:
        await conn.aclose()


def test_the_documented_worst_case_follows_the_settings() -> None:
    defaults = PoolSettings.from_config(InfraConfig())
    assert (defaults.socket_timeout, defaults.retries) == (2.0, 1)
    assert defaults.worst_case_seconds(silent=True) == worst_case_seconds(2.0, 1, 0.1, silent=True) == 4.1
    assert defaults.worst_case_seconds() == 8.1
    assert defaults.checkout_timeout == defaults.worst_case_seconds()  # waiting for a pooled connection
    custom = PoolSettings.from_config(InfraConfig(redis_socket_timeout=0.5, redis_retries=3))
    assert custom.worst_case_seconds(silent=True) == pytest.approx(4 * 0.5 + 3 * 0.1)


@pytest.mark.timeout(30)
def test_one_budget_per_command_not_per_thread(silent_server: SilentServer) -> None:
    """Each command gets its own budget: a failed command does not use up the next one's attempts."""
    conn = connection(silent_server.port, retries=1)
    try:
        for _ in range(2):
            with pytest.raises(RedisUnavailableError):
                conn.client().get("k")
    finally:
        conn.close()
    assert silent_server.accepted == 4


def test_loops_do_not_share_a_budget() -> None:
    """The budget lives in a context variable: two loops' commands count separately."""
    from model_engine_infra.redis.bounded import _SCOPE, retry_scope

    async def inside() -> bool:
        with retry_scope():
            return _SCOPE.get() is not None

    assert _SCOPE.get() is None
    assert asyncio.run(inside()) is True
    assert _SCOPE.get() is None
