"""One contract for `RedisConnection` (`ManagedRedisConnection`) over every credential source.

Sources: a plain URL, a URL with a user and password, ``REDIS_AUTH_TOKEN`` (a password for the
default user), a URL kept in a secret (``cache_redis_aws_secret_name``, Secrets Manager on
moto), and Entra ID tokens (``cache_redis_azure_host``, `FakeTokenCredential`: no Entra ID
emulator exists). Every credential is checked by the server: fakeredis with ACL users here (its
connections swapped in for the component's connection classes, so TLS is not exercised),
redis-server with ACL users, ``requirepass`` and TLS in integration/test_redis_connection_servers.py,
which reruns `RedisConnectionContract` through ``load_contract``.

Documented behaviour asserted here (docs/redis.md): an unreachable server raises
`RedisUnavailableError` (also a redis-py ``ConnectionError``) after the retries, within seconds;
refused credentials raise `RedisAuthError`; ``close()`` is idempotent and afterwards every use
raises `InfraClosedError` (nothing reconnects); the async client works from any event loop.
"""

from __future__ import annotations

import asyncio
import json
import socket
import time
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import ExitStack
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, urlsplit

import fakeredis
import fakeredis.aioredis
import pytest
import redis
from pydantic import SecretStr

from model_engine_infra.config import InfraConfig
from model_engine_infra.errors import InfraClosedError, RedisAuthError, RedisUnavailableError
from model_engine_infra.redis import connection as connection_module
from model_engine_infra.redis.connection import ManagedRedisConnection, connection_from_config
from model_engine_infra.redis.credentials import clear_shared_providers
from model_engine_infra.testing.azure_identity import FakeTokenCredential

KINDS = ["plain-url", "url-password", "auth-token", "secret", "entra-id"]
UNREACHABLE_SECONDS = 10.0


@dataclass
class Endpoint:
    """One Redis server as the cases see it; ``admin`` may run ACL commands."""

    host: str
    port: int
    admin: Any
    #: the default user's password (``requirepass``), when the server has one
    password: str | None = None


@dataclass
class RedisServers:
    """The servers and stores a run provides: in-process fakes here, real servers in integration."""

    open: Endpoint  # default user open; ACL users are added per case
    password: Endpoint  # the default user needs ``password``
    tls: Endpoint  # serves TLS only; ACL users are added per case
    secrets: Any  # a SecretStore
    put_secret: Callable[[str, str], None]
    #: a plain redis-py client for a URL, to check that `url()` works
    client_from_url: Callable[[str], Any]


@dataclass
class RedisCase:
    kind: str
    connection: ManagedRedisConnection
    #: the credential that must never be shown (None: the source has none)
    secret: str | None
    #: what the credential provider hands redis-py (None: no provider expected)
    credentials: tuple[str, ...] | None
    #: the same source pointing at a port nothing listens on
    unreachable: Callable[[], ManagedRedisConnection]
    #: the same source with credentials the server refuses (None: nothing to refuse)
    rejected: Callable[[], ManagedRedisConnection] | None
    client_from_url: Callable[[str], Any]
    cleanups: list[Callable[[], None]] = field(default_factory=list)


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def unique(stem: str) -> str:
    return f"{stem}-{uuid.uuid4().hex[:10]}"


def acl_user(endpoint: Endpoint, cleanups: list[Callable[[], None]]) -> tuple[str, str]:
    user, password = unique("u"), unique("pw")
    endpoint.admin.execute_command("ACL", "SETUSER", user, "on", f">{password}", "~*", "&*", "+@all")
    cleanups.append(lambda: endpoint.admin.execute_command("ACL", "DELUSER", user))
    return user, password


def build_case(kind: str, servers: RedisServers) -> RedisCase:
    """The connection for ``kind``, plus an unreachable and a refused variant of the same source."""
    cleanups: list[Callable[[], None]] = []
    wrong = unique("wrong")
    secret: str | None
    credentials: tuple[str, ...] | None

    if kind == "plain-url":
        ep = servers.open

        def make(port: int, refused: bool) -> ManagedRedisConnection:
            del refused  # nothing to refuse
            url = f"redis://{ep.host}:{port}/0"
            return connection_from_config(InfraConfig(cloud_provider="onprem", cache_redis_onprem_url=SecretStr(url)))

        secret, credentials, refusable = None, None, False
    elif kind == "url-password":
        ep = servers.open
        user, password = acl_user(ep, cleanups)

        def make(port: int, refused: bool) -> ManagedRedisConnection:
            url = f"redis://{user}:{wrong if refused else password}@{ep.host}:{port}/0"
            return connection_from_config(InfraConfig(cloud_provider="onprem", cache_redis_onprem_url=SecretStr(url)))

        secret, credentials, refusable = password, (user, password), True
    elif kind == "auth-token":
        ep = servers.password
        assert ep.password is not None
        password = ep.password

        def make(port: int, refused: bool) -> ManagedRedisConnection:
            config = InfraConfig(
                cloud_provider="onprem",
                redis_host=ep.host,
                redis_port=port,
                redis_auth_token=SecretStr(wrong if refused else password),
                redis_enable_tls=False,
            )
            # a token alone switches TLS on (as in the reference) unless redis_enable_tls was *set*;
            # is_set() only knows values from files or the environment, so say where this one came from
            return connection_from_config(config.with_sources({"redis_enable_tls": "test"}))

        secret, credentials, refusable = password, (password,), True
    elif kind == "secret":
        ep = servers.open
        user, password = acl_user(ep, cleanups)

        def make(port: int, refused: bool) -> ManagedRedisConnection:
            name = unique("infra/cache")
            url = f"redis://{user}:{wrong if refused else password}@{ep.host}:{port}/0"
            servers.put_secret(name, json.dumps({"cache-url": url}))
            config = InfraConfig(cloud_provider="aws", cache_redis_aws_secret_name=name, default_region="us-east-1")
            return connection_from_config(config, secrets=servers.secrets)

        secret, credentials, refusable = password, (user, password), True
    elif kind == "entra-id":
        ep = servers.tls
        prefix = unique("entra")
        user, _ = acl_user(ep, cleanups)
        password = f"{prefix}-1"  # FakeTokenCredential's first token; later ones (a reopened provider) too
        tokens = [f">{prefix}-{n}" for n in range(1, 6)]
        ep.admin.execute_command("ACL", "SETUSER", user, "resetpass", *tokens)

        def make(port: int, refused: bool) -> ManagedRedisConnection:
            config = InfraConfig(
                cloud_provider="azure",
                cache_redis_azure_host=f"{ep.host}:{port}",
                # refused: an identity the cache does not know (the same one would share the good provider)
                azure_object_id=wrong if refused else user,
                redis_unsafe_ssl=True,  # the test server's certificate is self-signed
            )
            return connection_from_config(config, azure_credential=FakeTokenCredential(prefix=prefix))

        secret, credentials, refusable = password, (user, password), True
    else:
        raise ValueError(kind)

    return RedisCase(
        kind=kind,
        connection=make(ep.port, False),
        secret=secret,
        credentials=credentials,
        unreachable=lambda: make(closed_port(), False),
        rejected=(lambda: make(ep.port, True)) if refusable else None,
        client_from_url=servers.client_from_url,
        cleanups=cleanups,
    )


def shown(*texts: str) -> str:
    return "\n".join(texts)


class RedisConnectionContract:
    """The contract every credential source meets; subclass it next to a ``case`` fixture."""

    async def test_sync_and_async_clients_round_trip(self, case: RedisCase) -> None:
        conn = case.connection
        key = unique("k")
        conn.client().set(key, "from-sync")
        assert await conn.async_client().get(key) == b"from-sync"
        await conn.async_client().set(key, "from-async")
        assert conn.client().get(key) == b"from-async"

    async def test_pools_are_built_once(self, case: RedisCase) -> None:
        conn = case.connection
        client = conn.client()
        pool = client.connection_pool
        for _ in range(3):
            assert conn.client() is client
            client.ping()
        assert conn.client().connection_pool is pool
        async_client = conn.async_client()
        await async_client.ping()
        assert conn.async_client() is async_client
        assert conn.async_client().connection_pool is async_client.connection_pool
        for kwargs in (pool.connection_kwargs, async_client.connection_pool.connection_kwargs):
            assert kwargs["credential_provider"] is conn.credential_provider
            assert kwargs.get("password") is None  # never baked into the pool

    def test_url_carries_current_credentials_and_redacted_url_hides_them(self, case: RedisCase) -> None:
        conn = case.connection
        url, redacted = conn.url(), conn.redacted_url()
        if case.secret is None:
            assert url == redacted
            assert "***" not in redacted
        else:
            assert quote(case.secret, safe="") in url
            assert case.secret not in redacted
            assert ":***@" in redacted
        assert urlsplit(redacted).hostname == urlsplit(url).hostname
        client = case.client_from_url(url)  # the server accepts what url() carries
        try:
            assert client.ping() is True
        finally:
            client.close()

    def test_repr_holds_no_secret(self, case: RedisCase) -> None:
        conn = case.connection
        client = conn.client()
        client.ping()
        text = shown(repr(conn), str(conn), repr(conn.credential_provider), repr(client), repr(client.connection_pool))
        assert case.secret is None or case.secret not in text

    def test_credential_provider_is_present_for_token_sources(self, case: RedisCase) -> None:
        provider = case.connection.credential_provider
        if case.credentials is None:
            assert provider is None
            return
        assert provider is not None
        assert provider.get_credentials() == case.credentials

    async def test_unreachable_server_raises_redis_unavailable(self, case: RedisCase) -> None:
        conn = case.unreachable()
        try:
            started = time.monotonic()
            with pytest.raises(RedisUnavailableError) as err:
                conn.client().ping()
            assert isinstance(err.value, redis.exceptions.ConnectionError)  # redis-py's handlers still apply
            with pytest.raises(RedisUnavailableError) as async_err:
                await conn.async_client().ping()
            assert time.monotonic() - started < UNREACHABLE_SECONDS
            assert "unreachable" in str(err.value)
            if case.secret is not None:
                assert case.secret not in shown(str(err.value), str(async_err.value))
        finally:
            await conn.aclose()

    async def test_refused_credentials_raise_redis_auth_error(self, case: RedisCase) -> None:
        if case.rejected is None:
            assert case.credentials is None  # only a source without credentials has nothing to refuse
            return
        conn = case.rejected()
        try:
            with pytest.raises(RedisAuthError) as err:
                conn.client().ping()
            assert isinstance(err.value, redis.exceptions.AuthenticationError)
            with pytest.raises(RedisAuthError):
                await conn.async_client().ping()
            assert "wrong-" not in str(err.value)
        finally:
            await conn.aclose()

    async def test_close_is_idempotent_and_a_closed_connection_is_never_rebuilt(self, case: RedisCase) -> None:
        conn = case.connection
        key = unique("k")
        first = conn.client()
        first.set(key, "kept")
        held_async = conn.async_client()
        assert await held_async.get(key) == b"kept"
        conn.close()
        conn.close()
        with pytest.raises(InfraClosedError):
            conn.client()
        with pytest.raises(InfraClosedError):
            conn.async_client()
        with pytest.raises(InfraClosedError):
            conn.url()
        with pytest.raises(InfraClosedError):  # a client handed out before close does not reconnect either
            first.get(key)
        with pytest.raises(InfraClosedError):
            await held_async.get(key)
        await conn.aclose()
        assert conn.redacted_url()  # still safe to show

    async def test_async_client_works_from_any_event_loop(self, case: RedisCase) -> None:
        conn = case.connection
        key = unique("loops")
        await conn.async_client().set(key, "0")

        async def bump() -> int:
            return int(await conn.async_client().incr(key))

        def two_runs() -> list[int]:
            return [asyncio.run(bump()), asyncio.run(bump())]  # a fresh loop each time

        ran = await asyncio.to_thread(two_runs)  # and a loop in another thread than this test's
        threads = await asyncio.gather(*(asyncio.to_thread(asyncio.run, bump()) for _ in range(3)))
        assert sorted([*ran, *threads, await bump()]) == [1, 2, 3, 4, 5, 6]
        assert len(conn._async_clients) <= 2  # closed loops' clients are dropped, not kept forever


# --- in-process servers: fakeredis behind the component's own connection classes ------------------------


def fake_servers(monkeypatch: pytest.MonkeyPatch, stack: ExitStack) -> RedisServers:
    """Three fakeredis servers reached by host name, a moto Secrets Manager, and the component patched to them."""
    import boto3
    from moto import mock_aws

    from model_engine_infra.secrets.aws import SecretsManagerStore

    by_address: dict[tuple[str, int], fakeredis.FakeServer] = {}
    down = fakeredis.FakeServer()
    down.connected = False

    def endpoint(host: str, port: int, password: str | None = None) -> Endpoint:
        server = fakeredis.FakeServer()
        by_address[(host, port)] = server
        admin: Any = fakeredis.FakeRedis(server=server, protocol=2)
        admin.execute_command("ACL", "SETUSER", "admin", "on", ">admin-pw", "~*", "&*", "+@all")
        if password is not None:
            admin.execute_command("ACL", "SETUSER", "default", "resetpass", f">{password}")
            admin = fakeredis.FakeRedis(server=server, protocol=2, username="admin", password="admin-pw")
        return Endpoint(host, port, admin, password)

    def pick(kwargs: dict[str, Any]) -> fakeredis.FakeServer:
        return by_address.get((kwargs.get("host", ""), int(kwargs.get("port", 0))), down)

    def fake_class(mixin: type, base: Any) -> type:
        def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
            for name in [k for k in kwargs if k.startswith("ssl_")]:
                del kwargs[name]  # TLS is not simulated
            # fakeredis speaks RESP2 only, which has no maintenance notifications; its async
            # connection answers a health-check PING badly, so health checks are off here
            kwargs.update(server=pick(kwargs), protocol=2, maint_notifications_config=None, health_check_interval=0)
            base.__init__(self, *args, **kwargs)

        return type(f"Fake{mixin.__name__}", (mixin, base), {"__init__": __init__})

    sync_cls = fake_class(connection_module._ReportRejection, fakeredis.FakeRedisConnection)
    async_cls = fake_class(connection_module._AsyncReportRejection, fakeredis.aioredis.FakeAsyncRedisConnection)
    for name in ("TokenConnection", "TokenSSLConnection"):
        monkeypatch.setattr(connection_module, name, sync_cls)
    for name in ("AsyncTokenConnection", "AsyncTokenSSLConnection"):
        monkeypatch.setattr(connection_module, name, async_cls)

    def client_from_url(url: str) -> Any:
        parts = urlsplit(url)
        server = by_address[(parts.hostname or "", parts.port or 6379)]
        return fakeredis.FakeRedis(server=server, protocol=2, username=parts.username, password=parts.password)

    stack.enter_context(mock_aws())
    sm = boto3.client("secretsmanager", region_name="us-east-1")
    return RedisServers(
        open=endpoint("redis-open", 6379),
        password=endpoint("redis-password", 6379, password=unique("token")),
        tls=endpoint("redis-tls", 6380),
        secrets=SecretsManagerStore(sm, region="us-east-1"),
        put_secret=lambda name, value: sm.create_secret(Name=name, SecretString=value),
        client_from_url=client_from_url,
    )


async def finish(case: RedisCase) -> None:
    await case.connection.aclose()
    for cleanup in case.cleanups:
        cleanup()
    clear_shared_providers()


@pytest.fixture(params=KINDS)
async def case(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[RedisCase]:
    with ExitStack() as stack:
        built = build_case(request.param, fake_servers(monkeypatch, stack))
        yield built
        await finish(built)


class TestRedisConnectionContract(RedisConnectionContract):
    """The contract on fakeredis (ACL users checked, TLS not)."""
