"""Redis helpers for tests of code that uses ``infra.redis``: fakeredis components and token sources.

fakeredis speaks RESP2 only, so every pool here is built with ``protocol=2`` (a RESP3 handshake
fails against it). For credential rotation against a real server use `rotate_acl_password` with
``model_engine_infra.testing.servers.start_redis``.
"""

from __future__ import annotations

import asyncio
import threading
import time
import weakref
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import fakeredis
import pytest
import redis
import redis.asyncio

from ..errors import InfraClosedError
from ..redis.base import RedisConnection
from ..redis.tokens import Token

__all__ = [
    "InMemoryRedisConnection",
    "ScriptedTokenSource",
    "fake_redis_connection",
    "fake_redis_pool",
    "fake_redis_server",
    "rotate_acl_password",
]

FAKE_URL = "redis://fakeredis:6379/0"


def fake_redis_pool(server: fakeredis.FakeServer | None = None, **kwargs: Any) -> redis.ConnectionPool:
    """A redis-py pool whose connections talk to ``server`` in memory (RESP2), for code that builds its own clients."""
    return redis.ConnectionPool(  # type: ignore[no-untyped-call]
        connection_class=fakeredis.FakeRedisConnection,
        server=server or fakeredis.FakeServer(),
        protocol=2,
        **kwargs,
    )


class InMemoryRedisConnection(RedisConnection):
    """A `RedisConnection` on fakeredis: pass it as ``build_infra(config, overrides={"redis": ...})``.

    Sync and async clients share one ``FakeServer``, so data written by one is seen by the other.
    ``credential_provider`` is whatever you give (fakeredis ignores AUTH unless the server requires it).
    """

    def __init__(
        self, server: fakeredis.FakeServer | None = None, *, credential_provider: redis.CredentialProvider | None = None
    ) -> None:
        self.server = server or fakeredis.FakeServer()
        self._provider = credential_provider
        self._clients: dict[int, redis.Redis] = {}  # by database
        # like ManagedRedisConnection: one async client per event loop (and database), so any loop may use it
        self._async_clients: weakref.WeakKeyDictionary[Any, dict[int, redis.asyncio.Redis]] = (
            weakref.WeakKeyDictionary()
        )
        self._async_outside_loop: dict[int, redis.asyncio.Redis] = {}
        self._closed = False

    def __repr__(self) -> str:
        return "InMemoryRedisConnection()"

    @property
    def credential_provider(self) -> redis.CredentialProvider | None:
        return self._provider

    def client(self, db: int | None = None) -> redis.Redis:
        self._ensure_open()
        chosen = db or 0
        if chosen not in self._clients:
            self._clients[chosen] = fakeredis.FakeRedis(server=self.server, db=chosen, protocol=2)
        return self._clients[chosen]

    def async_client(self, db: int | None = None) -> redis.asyncio.Redis:
        """The running loop's client of database ``db`` (one per loop); outside a loop, one that binds to its first."""
        self._ensure_open()
        chosen = db or 0
        try:
            loop: Any = asyncio.get_running_loop()
        except RuntimeError:
            loop = None
        for closed in [old for old in list(self._async_clients) if old.is_closed()]:
            del self._async_clients[closed]
        clients = self._async_outside_loop if loop is None else self._async_clients.setdefault(loop, {})
        client = clients.get(chosen)
        if client is None:
            client = clients[chosen] = fakeredis.FakeAsyncRedis(server=self.server, db=chosen, protocol=2)
        return client

    def _ensure_open(self) -> None:
        if self._closed:
            raise InfraClosedError("the in-memory Redis connection was closed; build a new one")

    def url(self) -> str:
        """A placeholder URL: nothing listens there; fakeredis lives in this process only."""
        return FAKE_URL

    def redacted_url(self) -> str:
        return FAKE_URL

    def close(self) -> None:
        self._closed = True
        clients, self._clients = list(self._clients.values()), {}
        for client in clients:
            client.close()
        self._async_clients.clear()
        self._async_outside_loop = {}


class ScriptedTokenSource:
    """A `TokenSource` for tests: hands out ``tokens`` in turn, counts fetches, can be slow, fail or hang.

    ``lifetime`` is each token's ``expires_in`` (None: never expires). ``fail`` makes fetches raise
    it; ``hang()`` blocks fetches until ``release()``.
    """

    def __init__(
        self,
        tokens: Sequence[str] | Callable[[int], str] = ("tok-1",),
        *,
        username: str | None = "app",
        lifetime: float | None = 3600.0,
        delay: float = 0.0,
        description: str = "scripted test token source",
    ) -> None:
        self._tokens = tokens
        self.username = username
        self.lifetime = lifetime
        self.delay = delay
        self.description = description
        self.fail: BaseException | None = None
        self.calls = 0
        self._gate = threading.Event()
        self._gate.set()
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"ScriptedTokenSource(calls={self.calls})"

    def hang(self) -> None:
        self._gate.clear()

    def release(self) -> None:
        self._gate.set()

    def fetch(self) -> Token:
        with self._lock:
            index = self.calls
            self.calls += 1
        if self.delay:
            time.sleep(self.delay)
        self._gate.wait()
        if self.fail is not None:
            raise self.fail
        tokens = self._tokens
        password = tokens(index) if callable(tokens) else tokens[min(index, len(tokens) - 1)]
        return Token(self.username, password, expires_in=self.lifetime)


def rotate_acl_password(admin: redis.Redis, user: str, new_password: str, *, kill: bool = True) -> int:
    """Real rotation on redis-server: replace ``user``'s passwords, then drop its live connections."""
    admin.execute_command("ACL", "SETUSER", user, "on", "resetpass", f">{new_password}", "~*", "&*", "+@all")  # type: ignore[no-untyped-call]
    if not kill:
        return 0
    return int(admin.execute_command("CLIENT", "KILL", "USER", user))  # type: ignore[no-untyped-call]


@pytest.fixture
def fake_redis_server() -> fakeredis.FakeServer:
    """A fresh in-memory Redis server per test."""
    return fakeredis.FakeServer()


@pytest.fixture
def fake_redis_connection(fake_redis_server: fakeredis.FakeServer) -> Iterator[InMemoryRedisConnection]:
    """An `InMemoryRedisConnection` on ``fake_redis_server``, closed after the test."""
    connection = InMemoryRedisConnection(fake_redis_server)
    yield connection
    connection.close()
