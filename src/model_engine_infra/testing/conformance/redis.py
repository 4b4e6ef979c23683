"""Conformance for Redis connections (`RedisConnection`), one credential source at a time.

Subclass `RedisConnectionConformance` and provide a ``redis_target`` fixture returning a
`RedisTarget`: the connection, the credential that must never be shown, what the credential
provider hands redis-py, and variants of the same source that point at a closed port or carry
credentials the server refuses. Every credential must be checked by a server (ACL users).

Documented behaviour asserted here (docs/redis.md): an unreachable server raises
`RedisUnavailableError` (also a redis-py ``ConnectionError``) after the retries, within seconds;
refused credentials raise `RedisAuthError`; ``close()`` is idempotent and afterwards every use
raises `InfraClosedError` (nothing reconnects); the async client works from any event loop.

The second half builds targets for the project's own sources — a plain URL, a URL with a user and
password, ``REDIS_AUTH_TOKEN``, a URL kept in a secret, Entra ID tokens — against the servers a run
provides (`RedisServers`): `BuiltinRedisConformance` subclasses need only a ``redis_servers`` fixture.
"""

from __future__ import annotations

import asyncio
import json
import socket
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar
from urllib.parse import quote, urlsplit

import pytest
from pydantic import SecretStr

from ...config.model import InfraConfig
from ...errors import InfraClosedError, RedisAuthError, RedisUnavailableError

if TYPE_CHECKING:
    from ...redis.connection import ManagedRedisConnection

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
class RedisTarget:
    """One connection under test and what the suite checks it against."""

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


def build_target(kind: str, servers: RedisServers) -> RedisTarget:
    """The connection for ``kind``, plus an unreachable and a refused variant of the same source."""
    from ...redis.connection import connection_from_config
    from ..azure_identity import FakeTokenCredential

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

    return RedisTarget(
        kind=kind,
        connection=make(ep.port, False),
        secret=secret,
        credentials=credentials,
        unreachable=lambda: make(closed_port(), False),
        rejected=(lambda: make(ep.port, True)) if refusable else None,
        client_from_url=servers.client_from_url,
        cleanups=cleanups,
    )


def redis_exceptions() -> Any:
    """redis-py's exceptions module: our errors must still meet redis-py's own handlers."""
    import redis.exceptions

    return redis.exceptions


def shown(*texts: str) -> str:
    return "\n".join(texts)


class RedisConnectionConformance:
    """The contract every Redis connection keeps, whatever its credential source. Provide a ``redis_target`` fixture."""

    #: credentials reach redis-py through a credential provider (never baked into a pool); else there are none
    uses_credential_provider: ClassVar[bool] = True

    @pytest.mark.asyncio
    async def test_sync_and_async_clients_round_trip(self, redis_target: RedisTarget) -> None:
        conn = redis_target.connection
        key = unique("k")
        conn.client().set(key, "from-sync")
        assert await conn.async_client().get(key) == b"from-sync"
        await conn.async_client().set(key, "from-async")
        assert conn.client().get(key) == b"from-async"

    @pytest.mark.asyncio
    async def test_pools_are_built_once(self, redis_target: RedisTarget) -> None:
        conn = redis_target.connection
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

    def test_url_carries_current_credentials_and_redacted_url_hides_them(self, redis_target: RedisTarget) -> None:
        conn = redis_target.connection
        url, redacted = conn.url(), conn.redacted_url()
        if redis_target.secret is None:
            assert url == redacted
            assert "***" not in redacted
        else:
            assert quote(redis_target.secret, safe="") in url
            assert redis_target.secret not in redacted
            assert ":***@" in redacted
        assert urlsplit(redacted).hostname == urlsplit(url).hostname
        client = redis_target.client_from_url(url)  # the server accepts what url() carries
        try:
            assert client.ping() is True
        finally:
            client.close()

    def test_repr_holds_no_secret(self, redis_target: RedisTarget) -> None:
        conn = redis_target.connection
        client = conn.client()
        client.ping()
        text = shown(repr(conn), str(conn), repr(conn.credential_provider), repr(client), repr(client.connection_pool))
        assert redis_target.secret is None or redis_target.secret not in text

    def test_credential_provider_is_present_for_token_sources(self, redis_target: RedisTarget) -> None:
        provider = redis_target.connection.credential_provider
        if not self.uses_credential_provider:
            assert redis_target.credentials is None
            assert provider is None
            return
        assert provider is not None
        assert provider.get_credentials() == redis_target.credentials

    @pytest.mark.asyncio
    async def test_unreachable_server_raises_redis_unavailable(self, redis_target: RedisTarget) -> None:
        conn = redis_target.unreachable()
        try:
            started = time.monotonic()
            with pytest.raises(RedisUnavailableError) as err:
                conn.client().ping()
            assert isinstance(err.value, redis_exceptions().ConnectionError)  # redis-py's handlers still apply
            with pytest.raises(RedisUnavailableError) as async_err:
                await conn.async_client().ping()
            assert time.monotonic() - started < UNREACHABLE_SECONDS
            assert "unreachable" in str(err.value)
            if redis_target.secret is not None:
                assert redis_target.secret not in shown(str(err.value), str(async_err.value))
        finally:
            await conn.aclose()

    @pytest.mark.asyncio
    async def test_refused_credentials_raise_redis_auth_error(self, redis_target: RedisTarget) -> None:
        if redis_target.rejected is None:
            assert redis_target.credentials is None  # only a source without credentials has nothing to refuse
            return
        conn = redis_target.rejected()
        try:
            with pytest.raises(RedisAuthError) as err:
                conn.client().ping()
            assert isinstance(err.value, redis_exceptions().AuthenticationError)
            with pytest.raises(RedisAuthError):
                await conn.async_client().ping()
            assert "wrong-" not in str(err.value)
        finally:
            await conn.aclose()

    @pytest.mark.asyncio
    async def test_close_is_idempotent_and_a_closed_connection_is_never_rebuilt(
        self, redis_target: RedisTarget
    ) -> None:
        conn = redis_target.connection
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

    @pytest.mark.asyncio
    async def test_async_client_works_from_any_event_loop(self, redis_target: RedisTarget) -> None:
        conn = redis_target.connection
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


# --- the project's own credential sources ------------------------------------------------------------


class BuiltinRedisConformance(RedisConnectionConformance):
    """A source of `connection_from_config`; the run provides a ``redis_servers`` fixture (`RedisServers`)."""

    kind: ClassVar[str]

    @pytest.fixture
    async def redis_target(self, redis_servers: RedisServers) -> AsyncIterator[RedisTarget]:
        built = build_target(self.kind, redis_servers)
        yield built
        await finish(built)


class PlainUrlConformance(BuiltinRedisConformance):
    kind = "plain-url"
    uses_credential_provider = False


class UrlPasswordConformance(BuiltinRedisConformance):
    kind = "url-password"


class AuthTokenConformance(BuiltinRedisConformance):
    kind = "auth-token"


class SecretUrlConformance(BuiltinRedisConformance):
    kind = "secret"


class EntraIdConformance(BuiltinRedisConformance):
    kind = "entra-id"


async def finish(redis_target: RedisTarget) -> None:
    from ...redis.credentials import clear_shared_providers

    await redis_target.connection.aclose()
    for cleanup in redis_target.cleanups:
        cleanup()
    clear_shared_providers()
