"""`ManagedRedisConnection`: one sync and one async pool per process, credentials from a provider.

Why: the reference system rebuilt its pool on token expiry (without closing the old one) and put
the token in the URL. Here each pool is built once; new connections ask the shared
`RefreshingCredentialProvider`; after each refresh every live connection re-authenticates
(``AUTH``) at its next checkout or release; a connection the server drops or refuses is retried with jittered
backoff, and a refused token is replaced before the retry.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import weakref
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import redis
import redis.asyncio
import redis.asyncio.connection
import redis.connection
from redis.auth.token import SimpleToken
from redis.backoff import ExponentialWithJitterBackoff

from ..errors import InfraClosedError, InfraError, RedisUnavailableError
from .base import RedisConnection
from .bounded import AsyncBoundedRedis, AsyncBudgetRetry, BoundedRedis, BudgetRetry, worst_case_seconds
from .credentials import (
    RedisAuthenticationError,
    RefreshingCredentialProvider,
    acquire_shared,
    release_shared,
)
from .sources import RedisSource, select_source

if TYPE_CHECKING:
    from ..config.model import InfraConfig
    from ..infra import Infra
    from .tokens import Token

__all__ = ["ManagedRedisConnection", "PoolSettings", "RedisUnreachableError", "build_redis", "connection_from_config"]

log = logging.getLogger(__name__)


def _auth_error(conn: Any, err: Exception) -> RedisAuthenticationError:
    provider = conn.credential_provider
    if isinstance(provider, RefreshingCredentialProvider):
        provider.report_rejected()
        what = provider.description
    else:
        what = "the configured credentials"
    return RedisAuthenticationError(
        f"Redis at {_where(conn)} rejected {what} ({err}). Fix: check the Redis user and that the "
        "identity may use this cache; a rotated token is fetched again on the next attempt"
    )


class RedisUnreachableError(RedisUnavailableError, redis.exceptions.ConnectionError):
    """The server could not be reached; also redis-py's ``ConnectionError``, so its retries and handlers apply."""

    # OSError's __init__ (via ConnectionError) runs instead of redis-py's, which sets these; its repr needs them
    error_type = redis.exceptions.ExceptionType.NETWORK
    status_code = None


def _where(conn: Any) -> str:
    return getattr(conn, "path", "") or f"{getattr(conn, 'host', '?')}:{getattr(conn, 'port', '?')}"


def _unreachable(conn: Any, err: Exception) -> Exception:
    """`RedisUnreachableError` for a failed connect; auth and credential errors pass unchanged."""
    if isinstance(err, (InfraError, redis.exceptions.AuthenticationError)):
        return err
    if not isinstance(err, (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError)):
        return err
    return RedisUnreachableError(
        f"Redis at {_where(conn)} is unreachable ({err}). Fix: check the host, the port, "
        "TLS (rediss://) and that the server is up and reachable from here"
    )


class _ReportRejection:
    """Turns an auth failure into `RedisAuthenticationError` and tells the provider its token is bad.

    A server that cannot be reached raises `RedisUnreachableError` (the package's
    `RedisUnavailableError`) instead of a bare redis-py ``ConnectionError``/``TimeoutError``.
    """

    def connect_check_health(self, *args: Any, **kwargs: Any) -> None:
        try:
            super().connect_check_health(*args, **kwargs)  # type: ignore[misc]
        except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError) as err:
            wrapped = _unreachable(self, err)
            if wrapped is err:
                raise
            raise wrapped from err

    def on_connect_check_health(self, check_health: bool = True) -> None:
        try:
            super().on_connect_check_health(check_health)  # type: ignore[misc]
        except redis.AuthenticationError as err:
            if isinstance(err, RedisAuthenticationError):
                raise
            raise _auth_error(self, err) from err


class _AsyncReportRejection:
    async def connect_check_health(self, *args: Any, **kwargs: Any) -> None:
        try:
            await super().connect_check_health(*args, **kwargs)  # type: ignore[misc]
        except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError) as err:
            wrapped = _unreachable(self, err)
            if wrapped is err:
                raise
            raise wrapped from err

    async def on_connect_check_health(self, check_health: bool = True) -> None:
        try:
            await super().on_connect_check_health(check_health)  # type: ignore[misc]
        except redis.AuthenticationError as err:
            if isinstance(err, RedisAuthenticationError):
                raise
            raise _auth_error(self, err) from err


class TokenConnection(_ReportRejection, redis.Connection):
    pass


class TokenSSLConnection(_ReportRejection, redis.SSLConnection):
    pass


class TokenUnixConnection(_ReportRejection, redis.UnixDomainSocketConnection):
    pass


class AsyncTokenConnection(_AsyncReportRejection, redis.asyncio.Connection):
    pass


class AsyncTokenSSLConnection(_AsyncReportRejection, redis.asyncio.SSLConnection):
    pass


class AsyncTokenUnixConnection(_AsyncReportRejection, redis.asyncio.UnixDomainSocketConnection):
    pass


def _closed_error(where: str) -> InfraClosedError:
    return InfraClosedError(
        f"the Redis connection to {where} was closed (Infra.close()); build a new Infra (or connection) to reconnect"
    )


class TokenBlockingPool(redis.BlockingConnectionPool):
    """A blocking pool whose connections re-authenticate at checkout or release once a new token is pending.

    redis-py's async pools re-authenticate on release through their event dispatcher; the sync
    blocking pool does not, so this one does it on both ends, always in the thread that holds the
    connection (the refresher only marks connections, it never touches their sockets). Once its
    owner closes it, checking a connection out raises `InfraClosedError` instead of reconnecting.
    """

    closed_by_owner = False

    def get_connection(self, *args: Any, **kwargs: Any) -> Any:
        if self.closed_by_owner:
            raise _closed_error(_where_kwargs(self.connection_kwargs))
        connection = super().get_connection(*args, **kwargs)  # type: ignore[no-untyped-call]
        _apply_pending_reauth(connection)
        return connection

    def release(self, connection: Any) -> None:
        _apply_pending_reauth(connection)
        super().release(connection)  # type: ignore[no-untyped-call]


class AsyncTokenBlockingPool(redis.asyncio.BlockingConnectionPool):
    """The async pool of one event loop; refuses checkouts with `InfraClosedError` once its owner closed it."""

    closed_by_owner = False

    async def get_connection(self, *args: Any, **kwargs: Any) -> Any:
        if self.closed_by_owner:
            raise _closed_error(_where_kwargs(self.connection_kwargs))
        return await super().get_connection(*args, **kwargs)  # type: ignore[no-untyped-call]


def _where_kwargs(kwargs: dict[str, Any]) -> str:
    return str(kwargs.get("path") or f"{kwargs.get('host', '?')}:{kwargs.get('port', '?')}")


def _apply_pending_reauth(connection: Any) -> None:
    if getattr(connection, "_re_auth_token", None) is None:
        return
    if connection.is_connected:
        try:
            connection.re_auth()
        except Exception as err:
            log.info("re-authenticating a Redis connection failed (%s); it will reconnect", type(err).__name__)
            connection.disconnect()
    connection._re_auth_token = None


@dataclass(frozen=True)
class PoolSettings:
    """Pool limits and timeouts; `from_config` reads the ``redis_*`` keys.

    One command makes at most ``1 + retries`` attempts in all (see `redis.bounded`); its worst case
    is `worst_case_seconds`. ``pool_timeout`` (waiting for a free pooled connection) defaults to
    that worst case: no longer than one command may hold a connection.
    """

    max_connections: int = 50
    socket_timeout: float = 2.0
    health_check_interval: int = 30
    retries: int = 1
    backoff_base: float = 0.05
    backoff_cap: float = 0.1
    pool_timeout: float | None = None

    @classmethod
    def from_config(cls, config: InfraConfig) -> PoolSettings:
        return cls(
            max_connections=config.redis_max_connections,
            socket_timeout=config.redis_socket_timeout,
            health_check_interval=config.redis_health_check_interval,
            retries=config.redis_retries,
        )

    def worst_case_seconds(self, *, silent: bool = False) -> float:
        """The longest one command can take; ``silent``: against a server that accepts and never answers."""
        return worst_case_seconds(self.socket_timeout, self.retries, self.backoff_cap, silent=silent)

    @property
    def checkout_timeout(self) -> float:
        return self.pool_timeout if self.pool_timeout is not None else self.worst_case_seconds()


class ManagedRedisConnection(RedisConnection):
    """The process's Redis clients for one source. ``provider`` may be injected (tests)."""

    def __init__(
        self,
        source: RedisSource,
        settings: PoolSettings | None = None,
        *,
        provider: RefreshingCredentialProvider | None = None,
    ) -> None:
        self.source = source
        self.settings = settings or PoolSettings()
        self._shared = provider is None and source.tokens is not None
        if provider is None and source.tokens is not None:
            tokens = source.tokens
            provider = acquire_shared(source.key, lambda: RefreshingCredentialProvider(tokens))
        self._provider = provider
        self._remove_listener = provider.add_listener(self._on_new_token) if provider else None
        self._lock = threading.Lock()
        self._clients: dict[int, redis.Redis] = {}  # by database
        # One async client per event loop (and database): an asyncio pool belongs to the loop that made
        # its connections.
        self._async_clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[int, redis.asyncio.Redis]] = (
            weakref.WeakKeyDictionary()
        )
        self._async_outside_loop: dict[int, redis.asyncio.Redis] = {}
        self._pending_disconnects: set[Any] = set()
        self._closed = False

    def __repr__(self) -> str:
        return f"ManagedRedisConnection(url={self.redacted_url()!r}, source={self.source.origin!r})"

    # --- the interface ---------------------------------------------------------------------------

    @property
    def credential_provider(self) -> RefreshingCredentialProvider | None:
        return self._provider

    @property
    def target(self) -> Any:
        return self.source.target

    def client(self, db: int | None = None) -> redis.Redis:
        """The sync client of database ``db`` (default: the URL's), built once. After `close` it raises
        `InfraClosedError` (it never reopens)."""
        chosen = self.source.target.db if db is None else db
        client = self._clients.get(chosen)
        if client is None or self._closed:
            with self._lock:
                self._ensure_open()
                if chosen not in self._clients:
                    options: dict[str, Any] = dict(redis.connection.parse_url(self._pool_url(chosen)))  # type: ignore[no-untyped-call]
                    options.update(self._pool_kwargs(asynchronous=False))
                    pool = TokenBlockingPool(**options)  # type: ignore[no-untyped-call]
                    self._clients[chosen] = BoundedRedis(connection_pool=pool)
                client = self._clients[chosen]
        return client

    def async_client(self, db: int | None = None) -> redis.asyncio.Redis:
        """The async client of the running event loop for database ``db`` (default: the URL's).

        One per loop, so any loop may use the component: ``asyncio.run`` twice, a loop per test or a
        loop per thread each get their own pool; a loop's clients are dropped once that loop is
        closed. Called outside any loop, it returns one client that binds to the first loop using it
        (prefer calling it inside the loop). Another database shares host, port, TLS and credentials
        (the Celery broker keeps each task visibility in its own).
        """
        chosen = self.source.target.db if db is None else db
        try:
            loop: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            loop = None
        with self._lock:
            self._ensure_open()
            self._drop_closed_loops()
            clients = self._async_outside_loop if loop is None else self._async_clients.setdefault(loop, {})
            client = clients.get(chosen)
            if client is None:
                options: dict[str, Any] = dict(redis.asyncio.connection.parse_url(self._pool_url(chosen)))
                options.update(self._pool_kwargs(asynchronous=True))
                client = clients[chosen] = AsyncBoundedRedis(connection_pool=AsyncTokenBlockingPool(**options))
            return client

    def url(self) -> str:
        """A URL with the current credentials, for tools that need one: it stops working when they expire."""
        self._ensure_open()
        if self._provider is None:
            return self.source.target.url()
        token = self._provider.current_token()
        if token is None:
            self._provider.get_credentials()
            token = self._provider.current_token()
        return self.source.target.url(token.password if token else None)

    def redacted_url(self) -> str:
        return self.source.target.redacted_url(self._provider is not None)

    @property
    def closed(self) -> bool:
        return self._closed

    def close(self) -> None:
        """Close every pool and release the shared provider; afterwards every use raises `InfraClosedError`.

        Idempotent. Async pools are disconnected on their own loop when it still runs (scheduled
        there), dropped when their loop is closed; `aclose` awaits the current loop's pool instead.
        """
        with self._lock:
            if self._closed:
                return
            self._closed = True
            clients, self._clients = list(self._clients.values()), {}
            async_clients = self._take_async_clients()
        for client in clients:
            pool: Any = client.connection_pool
            pool.closed_by_owner = True
            pool.disconnect()
        for loop, async_client in async_clients:
            self._disconnect_on_its_loop(loop, async_client)
        if self._remove_listener is not None:
            self._remove_listener()
        if self._shared:
            release_shared(self.source.key)

    async def aclose(self) -> None:
        """Close the running loop's async pool (awaited), then everything `close` does."""
        loop = asyncio.get_running_loop()
        with self._lock:
            current = self._async_clients.pop(loop, {})
        for client in current.values():
            pool: Any = client.connection_pool
            pool.closed_by_owner = True
            await pool.disconnect()
        self.close()

    # --- internals -------------------------------------------------------------------------------

    def _ensure_open(self) -> None:
        if self._closed:
            raise _closed_error(self.redacted_url())

    def _drop_closed_loops(self) -> None:
        """Forget the clients of loops that are closed (caller holds the lock); their sockets close when collected."""
        for loop in [loop for loop in list(self._async_clients) if loop.is_closed()]:
            for client in self._async_clients.pop(loop, {}).values():
                pool: Any = client.connection_pool
                pool.closed_by_owner = True

    def _take_async_clients(self) -> list[tuple[asyncio.AbstractEventLoop | None, redis.asyncio.Redis]]:
        taken: list[tuple[asyncio.AbstractEventLoop | None, redis.asyncio.Redis]] = [
            (loop, client) for loop, clients in list(self._async_clients.items()) for client in clients.values()
        ]
        self._async_clients.clear()
        taken += [(None, client) for client in self._async_outside_loop.values()]
        self._async_outside_loop = {}
        return taken

    def _disconnect_on_its_loop(self, loop: asyncio.AbstractEventLoop | None, client: redis.asyncio.Redis) -> None:
        """Disconnect an async pool from synchronous code: on its loop if that loop still runs."""
        pool: Any = client.connection_pool
        pool.closed_by_owner = True
        if loop is None or loop.is_closed() or not loop.is_running():
            return  # nothing can await it any more; the sockets close when the pool is collected
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            task = loop.create_task(pool.disconnect())
            self._pending_disconnects.add(task)
            task.add_done_callback(self._pending_disconnects.discard)
        else:
            asyncio.run_coroutine_threadsafe(pool.disconnect(), loop)

    def _pool_url(self, db: int) -> str:
        """The target (database ``db``) without credentials; with a provider the user name comes from it."""
        return replace(self.source.target, db=db).url(username=self._provider is None)

    def _pool_kwargs(self, *, asynchronous: bool) -> dict[str, Any]:
        settings = self.settings
        target = self.source.target
        backoff = ExponentialWithJitterBackoff(base=settings.backoff_base, cap=settings.backoff_cap)
        if asynchronous:
            retry: Any = AsyncBudgetRetry(backoff, settings.retries)
            classes: tuple[type, type, type] = (AsyncTokenConnection, AsyncTokenSSLConnection, AsyncTokenUnixConnection)
        else:
            retry = BudgetRetry(backoff, settings.retries)
            classes = (TokenConnection, TokenSSLConnection, TokenUnixConnection)
        plain, ssl, unix = classes
        connection_class = unix if target.scheme == "unix" else ssl if target.tls else plain
        kwargs: dict[str, Any] = {
            "connection_class": connection_class,
            "max_connections": settings.max_connections,
            "timeout": settings.checkout_timeout,
            "socket_timeout": settings.socket_timeout,
            "socket_connect_timeout": settings.socket_timeout,
            "health_check_interval": settings.health_check_interval,
            "retry": retry,
            "credential_provider": self._provider,
        }
        if target.scheme != "unix":
            kwargs["socket_keepalive"] = True
        return kwargs

    def _on_new_token(self, token: Token) -> None:
        """Re-authenticate live connections with the new token at their next checkout or release."""
        if not token.username:
            return  # AUTH without a user name cannot be replayed safely; reconnects pick the token up
        reauth = SimpleToken(token.password, -1, -1, {"oid": token.username})
        for client in list(self._clients.values()):
            _reauth_blocking_pool(client.connection_pool, reauth)
        per_loop = [*list(self._async_clients.values()), self._async_outside_loop]
        for async_client in [client for clients in per_loop for client in list(clients.values())]:
            apool: Any = async_client.connection_pool
            for conn in [*apool._available_connections, *apool._in_use_connections]:
                conn.set_re_auth_token(reauth)  # applied by redis-py when the connection is released


def _reauth_blocking_pool(pool: Any, token: SimpleToken) -> None:
    """Mark every connection; each sends ``AUTH`` at its next checkout or release (see `TokenBlockingPool`)."""
    for conn in list(pool._connections):
        conn.set_re_auth_token(token)


def connection_from_config(
    config: InfraConfig,
    *,
    secrets: Any = None,
    azure_credential: Any = None,
    aws_session: Any = None,
    google_credentials: Any = None,
) -> ManagedRedisConnection:
    """Build from config with injectable SDK objects; ``secrets`` is a `SecretStore` or a callable returning one."""

    def store() -> Any:
        if secrets is None:
            raise RuntimeError("a Redis secret is configured but no secret store was given")
        return secrets() if callable(secrets) and not hasattr(secrets, "get") else secrets

    source = select_source(
        config,
        secrets=store,
        azure_credential=azure_credential,
        aws_session=aws_session,
        google_credentials=google_credentials,
    )
    return ManagedRedisConnection(source, PoolSettings.from_config(config))


def build_redis(config: InfraConfig, infra: Infra) -> ManagedRedisConnection:
    """The provider factory: Secrets Manager / Key Vault / file secrets come from ``infra.secrets``."""
    return connection_from_config(config, secrets=lambda: infra.secrets)
