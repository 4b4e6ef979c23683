"""Real credential rotation on redis-server with ACL users: clients and Celery keep working.

A rotation as the clouds do it: the new token becomes valid (``ACL SETUSER u >tok-2``), the token
source starts handing it out, then the old one stops working and live connections are dropped
(``ACL SETUSER u resetpass >tok-2`` + ``CLIENT KILL USER u``). Also the harsher case: the server
revokes the token before our refresh, so only a rejected login tells us.
"""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import redis
import redis.asyncio

from model_engine_infra.brokers.redis import REDIS_TRANSPORT_TARGET
from model_engine_infra.errors import CredentialFetchError, RedisAuthError
from model_engine_infra.redis.celery import celery_settings_for
from model_engine_infra.redis.connection import ManagedRedisConnection, PoolSettings
from model_engine_infra.redis.credentials import RefreshingCredentialProvider, clear_shared_providers
from model_engine_infra.redis.sources import RedisSource, RedisTarget
from model_engine_infra.testing.redis import ScriptedTokenSource, rotate_acl_password
from model_engine_infra.testing.servers import RunningServer

pytestmark = pytest.mark.integration


class Rotating(ScriptedTokenSource):
    """Hands out ``self.current``; the test changes it to rotate."""

    def __init__(self, username: str, current: str, lifetime: float = 3600.0) -> None:
        super().__init__(lambda _n: self.current, username=username, lifetime=lifetime)
        self.current = current


@pytest.fixture
def admin(mei_redis_server: RunningServer) -> Iterator[redis.Redis]:
    client = redis.Redis(host=mei_redis_server.host, port=mei_redis_server.port)
    yield client
    client.close()


@pytest.fixture
def user(admin: redis.Redis) -> Iterator[str]:
    name = f"app-{uuid.uuid4().hex[:8]}"
    admin.execute_command("ACL", "SETUSER", name, "on", ">tok-1", "~*", "&*", "+@all")
    yield name
    admin.execute_command("ACL", "DELUSER", name)


@pytest.fixture(autouse=True)
def _providers() -> Iterator[None]:
    yield
    clear_shared_providers()


def connect(server: RunningServer, user: str, source: ScriptedTokenSource) -> ManagedRedisConnection:
    target = RedisTarget("redis", server.host, server.port, 0)
    return ManagedRedisConnection(
        RedisSource(target, source, f"test:{user}:{uuid.uuid4().hex}", "test"),
        PoolSettings(max_connections=60, socket_timeout=5.0, health_check_interval=0),
    )


def add_password(admin: redis.Redis, user: str, password: str) -> None:
    admin.execute_command("ACL", "SETUSER", user, f">{password}")


def test_client_keeps_working_across_a_rotation(mei_redis_server: RunningServer, admin: redis.Redis, user: str) -> None:
    source = Rotating(user, "tok-1")
    conn = connect(mei_redis_server, user, source)
    client = conn.client()
    client.set(f"{user}:k", "v1")
    add_password(admin, user, "tok-2")  # the new token becomes valid
    source.current = "tok-2"
    assert conn.credential_provider is not None
    conn.credential_provider.refresh_now()  # what the background refresher does at 80% of the lifetime
    rotate_acl_password(admin, user, "tok-2")  # the old token stops working; connections dropped
    assert client.get(f"{user}:k") == b"v1"
    whoami = client.execute_command("ACL", "WHOAMI")
    assert whoami == user.encode()
    conn.close()


def test_client_recovers_when_the_server_revokes_the_token_first(
    mei_redis_server: RunningServer, admin: redis.Redis, user: str
) -> None:
    source = Rotating(user, "tok-1")
    conn = connect(mei_redis_server, user, source)
    client = conn.client()
    client.set(f"{user}:k", "v1")
    source.current = "tok-2"
    rotate_acl_password(admin, user, "tok-2")  # revoked before our refresh: only a failed AUTH tells us
    assert client.get(f"{user}:k") == b"v1"
    assert source.calls == 2
    conn.close()


async def test_async_client_keeps_working_across_a_rotation(
    mei_redis_server: RunningServer, admin: redis.Redis, user: str
) -> None:
    source = Rotating(user, "tok-1")
    conn = connect(mei_redis_server, user, source)
    client = conn.async_client()
    await client.set(f"{user}:a", "v1")
    source.current = "tok-2"
    rotate_acl_password(admin, user, "tok-2")
    assert await client.get(f"{user}:a") == b"v1"
    await conn.aclose()


def test_a_token_baked_into_the_url_breaks_on_rotation(
    mei_redis_server: RunningServer, admin: redis.Redis, user: str
) -> None:
    """The control: the reference system's approach fails after the same rotation."""
    baked = redis.Redis.from_url(f"redis://{user}:tok-1@{mei_redis_server.host}:{mei_redis_server.port}/0")
    baked.set(f"{user}:k", "v1")
    rotate_acl_password(admin, user, "tok-2")
    with pytest.raises(redis.AuthenticationError):
        baked.get(f"{user}:k")
    baked.close()


def test_wrong_token_surfaces_as_redis_auth_error(mei_redis_server: RunningServer, user: str) -> None:
    source = Rotating(user, "canary-wrong")
    conn = connect(mei_redis_server, user, source)
    with pytest.raises(RedisAuthError) as info:
        conn.client().ping()
    assert "canary" not in str(info.value)
    assert "rejected" in str(info.value)
    conn.close()


class Switching(ScriptedTokenSource):
    """Hands out (user, token) pairs; switching the user makes an in-place re-auth visible to ACL WHOAMI."""

    def __init__(self, username: str, token: str) -> None:
        super().__init__(lambda _n: self.token, username=username)
        self.token = token

    def switch(self, username: str, token: str) -> None:
        self.username, self.token = username, token


def test_live_connections_reauthenticate_in_place(
    mei_redis_server: RunningServer, admin: redis.Redis, user: str
) -> None:
    other = f"{user}-b"
    admin.execute_command("ACL", "SETUSER", other, "on", ">tok-b", "~*", "&*", "+@all")
    source = Switching(user, "tok-1")
    conn = connect(mei_redis_server, user, source)
    client = conn.client()
    pool = client.connection_pool
    busy = pool.get_connection()  # held by "another thread" during the refresh
    busy.send_command("CLIENT", "ID")
    busy_id = busy.read_response()
    idle_id = client.client_id()  # a second connection, idle in the pool during the refresh
    assert idle_id != busy_id
    source.switch(other, "tok-b")
    assert conn.credential_provider is not None
    conn.credential_provider.refresh_now()
    time.sleep(0.05)  # let the listener mark the connections
    assert client.execute_command("ACL", "WHOAMI") == other.encode()  # re-authenticated at checkout
    assert client.client_id() == idle_id  # in place: no reconnect
    pool.release(busy)  # re-authenticates on release
    busy = pool.get_connection()
    busy.send_command("ACL", "WHOAMI")
    assert busy.read_response() == other.encode()
    busy.send_command("CLIENT", "ID")
    assert busy.read_response() == busy_id
    pool.release(busy)
    conn.close()
    admin.execute_command("ACL", "DELUSER", other)


async def test_async_connections_reauthenticate_on_release(
    mei_redis_server: RunningServer, admin: redis.Redis, user: str
) -> None:
    other = f"{user}-b"
    admin.execute_command("ACL", "SETUSER", other, "on", ">tok-b", "~*", "&*", "+@all")
    source = Switching(user, "tok-1")
    conn = connect(mei_redis_server, user, source)
    client = conn.async_client()
    first_id = await client.client_id()
    source.switch(other, "tok-b")
    assert conn.credential_provider is not None
    conn.credential_provider.refresh_now()
    time.sleep(0.05)  # let the listener mark the connections
    await client.ping()  # re-authenticates when this command releases its connection
    assert await client.execute_command("ACL", "WHOAMI") == other.encode()
    assert await client.client_id() == first_id
    await conn.aclose()
    admin.execute_command("ACL", "DELUSER", other)


# --- 50 concurrent callers at token expiry, on the real server --------------------------------------------


def test_fifty_threads_reconnecting_at_expiry_fetch_once(
    mei_redis_server: RunningServer, admin: redis.Redis, user: str
) -> None:
    source = Rotating(user, "tok-1", lifetime=1.0)
    source.delay = 0.05
    conn = connect(mei_redis_server, user, source)
    provider = conn.credential_provider
    assert provider is not None
    provider.close()  # no background refresh: every caller arrives with the token truly expired
    client = conn.client()
    client.ping()
    add_password(admin, user, "tok-2")
    source.current = "tok-2"
    client.connection_pool.disconnect()  # all 50 commands need new connections, so new credentials
    time.sleep(1.05)
    before = source.calls
    barrier = threading.Barrier(50)
    failures: list[BaseException] = []

    def command(i: int) -> None:
        barrier.wait()
        try:
            client.set(f"{user}:t{i}", i)
        except BaseException as err:  # pragma: no cover - reported below
            failures.append(err)

    threads = [threading.Thread(target=command, args=(i,)) for i in range(50)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []
    assert source.calls - before == 1
    conn.close()


async def test_fifty_tasks_reconnecting_at_expiry_fetch_once(
    mei_redis_server: RunningServer, admin: redis.Redis, user: str
) -> None:
    source = Rotating(user, "tok-1", lifetime=1.0)
    source.delay = 0.05
    conn = connect(mei_redis_server, user, source)
    assert conn.credential_provider is not None
    conn.credential_provider.close()
    client = conn.async_client()
    await client.ping()
    add_password(admin, user, "tok-2")
    source.current = "tok-2"
    await client.connection_pool.disconnect()
    await asyncio.sleep(1.05)
    before = source.calls
    results = await asyncio.gather(*(client.set(f"{user}:a{i}", i) for i in range(50)), return_exceptions=True)
    assert [r for r in results if r is not True] == []
    assert source.calls - before == 1
    await conn.aclose()


@pytest.mark.parametrize("fault", ["hang", "fail"])
def test_broken_token_source_only_matters_once_the_token_expires(
    mei_redis_server: RunningServer, user: str, fault: str
) -> None:
    source = Rotating(user, "tok-1", lifetime=1.5)
    provider = RefreshingCredentialProvider(source, refresh_ratio=0.2, fetch_timeout=0.3, backoff_base=0.05)
    target = RedisTarget("redis", mei_redis_server.host, mei_redis_server.port, 0)
    conn = ManagedRedisConnection(
        RedisSource(target, source, f"test:{user}", "test"),
        PoolSettings(socket_timeout=2.0, health_check_interval=0, retries=2),
        provider=provider,
    )
    client = conn.client()
    client.ping()
    fetched_at = time.monotonic()
    if fault == "hang":
        source.hang()
    else:
        source.fail = ConnectionError("token endpoint down")
    try:
        time.sleep(0.35)  # past the refresh point (0.3 s)
        while time.monotonic() - fetched_at < 1.3:  # the token is still valid
            client.connection_pool.disconnect()  # a new connection per command: a credential lookup each
            started = time.perf_counter()
            client.ping()
            assert time.perf_counter() - started < 0.25  # a wait on the fetch would take >= 0.3 s
            time.sleep(0.02)
        assert source.calls >= 2  # refreshes were attempted (and hung or failed)
        time.sleep(max(0.0, 1.55 - (time.monotonic() - fetched_at)))
        client.connection_pool.disconnect()
        with pytest.raises(CredentialFetchError) as info:
            client.ping()  # now truly expired: the error surfaces
        assert "tok-1" not in str(info.value)
    finally:
        source.release()
        provider.close()
        conn.close()


# --- Celery over the same provider -------------------------------------------------------------------------


def _celery_app(url: str, options: dict[str, Any]) -> Any:
    from celery import Celery

    app = Celery(f"rotation-{uuid.uuid4().hex[:6]}", set_as_current=False)
    app.conf.update(
        broker_url=url,
        broker_transport=REDIS_TRANSPORT_TARGET,  # as the library's Celery apps do: see tasks/redis_transport.py
        result_backend=url,
        broker_transport_options=options,
        redis_backend_credential_provider=options["credential_provider"],
        broker_connection_retry_on_startup=True,
        task_default_queue=f"q-{uuid.uuid4().hex[:6]}",
        worker_hijack_root_logger=False,
    )

    @app.task(name="add", shared=False)
    def add(x: int, y: int) -> int:
        return x + y

    return app


def test_celery_producer_and_worker_survive_rotation(
    mei_redis_server: RunningServer, admin: redis.Redis, user: str
) -> None:
    from model_engine_infra.testing.celery_worker import worker_thread

    source = Rotating(user, "tok-1")
    conn = connect(mei_redis_server, user, source)
    url, options = celery_settings_for(conn)
    assert "tok-1" not in url
    assert "credential_provider=" in url
    app = _celery_app(url, options)
    try:
        with worker_thread(app):
            assert app.send_task("add", args=(1, 2)).get(timeout=60) == 3
            # Several rotations: each kill once had a fair chance of leaving the worker blocked in a
            # pub/sub read for ever (see tasks/redis_transport.py).
            for n, token in enumerate(("tok-2", "tok-3", "tok-4")):
                add_password(admin, user, token)
                source.current = token
                assert conn.credential_provider is not None
                conn.credential_provider.refresh_now()
                killed = rotate_acl_password(admin, user, token)
                assert killed >= 2  # the worker's and the producer's connections were dropped
                assert app.send_task("add", args=(n, 3)).get(timeout=60) == n + 3
                assert app.send_task("add", args=(n, 4)).get(timeout=60) == n + 4
    finally:
        conn.close()
