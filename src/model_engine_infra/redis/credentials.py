"""A cached, refresh-ahead, single-flight Redis `CredentialProvider`, shared per process and source.

Why: redis-py asks a provider for credentials on every new connection. The reference system tracked
one global expiry, fetched only after the token had expired (so commands waited on Entra ID) and
baked the token into URLs. Here a token is fetched once, refreshed in the background at 80% of its
lifetime, and a failed refresh keeps the still-valid token and retries with jittered backoff; a
caller blocks only when no valid token exists, and then all callers share one fetch.

kombu and Celery instantiate a provider class by dotted path with no arguments, once per pool, so
providers are also kept in a process-wide registry keyed by source: `kombu_class_path(key)` names
a class (made on demand by this module's ``__getattr__``) whose instances delegate to the shared
provider.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import random
import threading
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import redis.exceptions
from redis.credentials import CredentialProvider

from ..errors import CredentialFetchError, InfraError, RedisAuthError
from .tokens import Token, TokenSource

__all__ = [
    "RedisAuthenticationError",
    "RefreshingCredentialProvider",
    "TokenUnavailableError",
    "acquire_shared",
    "clear_shared_providers",
    "kombu_class_path",
    "release_shared",
    "shared_provider",
]

log = logging.getLogger(__name__)
INF = float("inf")
Credentials = tuple[str] | tuple[str, str]


class TokenUnavailableError(CredentialFetchError, redis.exceptions.ConnectionError):
    """No valid token could be had; also a redis-py ``ConnectionError`` so pools discard and retry."""


class RedisAuthenticationError(RedisAuthError, redis.exceptions.AuthenticationError):
    """Redis refused the credentials; also redis-py's ``AuthenticationError`` so its retry applies."""

    # OSError's __init__ (via PermissionError) runs instead of redis-py's, which sets these; its repr needs them
    error_type = redis.exceptions.ExceptionType.AUTH
    status_code = None


@dataclass(frozen=True)
class _Snapshot:
    creds: Credentials = field(repr=False)  # frames holding a snapshot are shown with repr (tracebacks, Sentry)
    token: Token
    fetched_at: float
    refresh_at: float
    expires_at: float
    generation: int


class _Flight:
    """One fetch in progress; every caller that needs a token while it runs waits on the same one."""

    def __init__(self, started: float) -> None:
        self.started = started
        self.done = threading.Event()
        self.error: BaseException | None = None


_LIVE: weakref.WeakSet[RefreshingCredentialProvider] = weakref.WeakSet()


class RefreshingCredentialProvider(CredentialProvider):
    """Hands redis-py a cached token and keeps it fresh in a background thread.

    ``get_credentials`` costs an attribute read and a clock call while the token is fresh. Past
    ``refresh_ratio`` of its lifetime it still returns the valid token at once and wakes the
    refresher. Only with no valid token (first use, expired, or rejected by the server) does a caller
    wait, at most ``fetch_timeout`` seconds, on the single fetch in flight.
    """

    def __init__(
        self,
        source: TokenSource,
        *,
        refresh_ratio: float = 0.8,
        fetch_timeout: float = 10.0,
        backoff_base: float = 0.5,
        backoff_cap: float = 30.0,
        min_forced_interval: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
        rng: Callable[[], float] = random.random,
    ) -> None:
        if not 0 < refresh_ratio < 1:
            raise ValueError("refresh_ratio must be between 0 and 1")
        self.source = source
        self.description = source.description
        self._ratio = refresh_ratio
        self._fetch_timeout = fetch_timeout
        self._backoff_base = backoff_base
        self._backoff_cap = backoff_cap
        self._min_forced_interval = min_forced_interval
        self._clock = clock
        self._rng = rng
        self._snapshot: _Snapshot | None = None
        self._listeners: list[Callable[[Token], None]] = []
        self._closed = False
        self.fetch_count = 0
        self.failure_count = 0
        self._init_runtime()
        _LIVE.add(self)

    def _init_runtime(self) -> None:
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._flight: _Flight | None = None
        self._scheduler: threading.Thread | None = None
        self._next_attempt = -INF
        self._last_forced = -INF
        self._generation = 0 if self._snapshot is None else self._snapshot.generation

    def __repr__(self) -> str:
        return f"RefreshingCredentialProvider(source={self.description!r}, state={self.state()!r})"

    # --- the hot path -------------------------------------------------------------------------

    def get_credentials(self) -> Credentials:
        snap = self._snapshot
        if snap is not None:
            now = self._clock()
            if now < snap.refresh_at:
                return snap.creds
            if now < snap.expires_at:
                self._kick(now)
                return snap.creds
        return self._wait_for_token()

    async def get_credentials_async(self) -> Credentials:
        snap = self._snapshot
        if snap is not None:
            now = self._clock()
            if now < snap.refresh_at:
                return snap.creds
            if now < snap.expires_at:
                self._kick(now)
                return snap.creds
        return await asyncio.get_running_loop().run_in_executor(None, self._wait_for_token)

    # --- state ----------------------------------------------------------------------------------

    def state(self) -> str:
        """``no token``, ``valid for N s``, ``refreshing ...`` or ``expired``: safe to log."""
        snap = self._snapshot
        if snap is None:
            return "no token"
        left = snap.expires_at - self._clock()
        if left <= 0:
            return "expired"
        if left == INF:
            return "valid until rejected"
        return f"valid for {left:.0f} s"

    def current_token(self) -> Token | None:
        """The cached token if still valid (for `url()` snapshots); never fetches."""
        snap = self._snapshot
        if snap is None or self._clock() >= snap.expires_at:
            return None
        return snap.token

    def add_listener(self, callback: Callable[[Token], None]) -> Callable[[], None]:
        """Call ``callback(token)`` after each successful refresh (re-auth live connections); returns an undo."""
        with self._lock:
            self._listeners.append(callback)

        def remove() -> None:
            with self._lock:
                if callback in self._listeners:
                    self._listeners.remove(callback)

        return remove

    def report_rejected(self) -> None:
        """Redis refused the current token: the next caller fetches a new one (at most once a second)."""
        with self._lock:
            now = self._clock()
            snap = self._snapshot
            if snap is None or now - self._last_forced < self._min_forced_interval:
                return
            self._last_forced = now
            self._snapshot = _Snapshot(snap.creds, snap.token, snap.fetched_at, -INF, -INF, snap.generation)
        log.info("Redis rejected the credentials from %s; fetching new ones", self.description)

    def refresh_now(self, *, wait: bool = True) -> None:
        """Fetch a new token now (joining a fetch in flight); with ``wait`` raise if it fails."""
        flight = self._begin_flight()
        if not wait:
            return
        if not flight.done.wait(self._fetch_timeout):
            raise TokenUnavailableError(f"{self.description} did not answer within {self._fetch_timeout:g} s")
        if flight.error is not None:
            raise self._fetch_error(flight.error) from flight.error

    def close(self) -> None:
        """Stop the refresher; the cached token stays usable until it expires."""
        self._closed = True
        self._wake.set()

    # --- blocking path --------------------------------------------------------------------------

    def _wait_for_token(self) -> Credentials:
        deadline = time.monotonic() + self._fetch_timeout
        while True:
            snap = self._snapshot
            if snap is not None and self._clock() < snap.expires_at:
                return snap.creds
            flight = self._begin_flight()
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not flight.done.wait(remaining):
                raise TokenUnavailableError(
                    f"no valid Redis credentials: {self.description} did not answer within {self._fetch_timeout:g} s"
                )
            if flight.error is not None:
                snap = self._snapshot
                if snap is not None and self._clock() < snap.expires_at:
                    return snap.creds
                raise self._fetch_error(flight.error) from flight.error

    def _fetch_error(self, err: BaseException) -> TokenUnavailableError:
        detail = str(err) if isinstance(err, InfraError) else type(err).__name__
        return TokenUnavailableError(f"no valid Redis credentials: {self.description} failed ({detail})")

    # --- fetching -------------------------------------------------------------------------------

    def _begin_flight(self) -> _Flight:
        with self._lock:
            now = time.monotonic()
            flight = self._flight
            if flight is not None and not flight.done.is_set() and now - flight.started < self._fetch_timeout:
                return flight  # single-flight: join the fetch in progress
            flight = self._flight = _Flight(now)
        threading.Thread(target=self._run_flight, args=(flight,), name="redis-credentials-fetch", daemon=True).start()
        self._ensure_scheduler()
        return flight

    def _run_flight(self, flight: _Flight) -> None:
        with self._lock:
            self.fetch_count += 1
        try:
            token = self.source.fetch()
            if not isinstance(token.password, str) or not token.password:
                raise CredentialFetchError(f"{self.description} returned an empty token")
            if token.expires_in is not None and token.expires_in <= 0:
                raise CredentialFetchError(f"{self.description} returned a token that has already expired")
        except BaseException as err:
            flight.error = err
            with self._lock:
                self.failure_count += 1
            log.warning(
                "fetching Redis credentials from %s failed (%s); current token: %s",
                self.description,
                type(err).__name__,
                self.state(),
            )
            flight.done.set()
            self._wake.set()
            return
        self._install(token)
        flight.done.set()
        self._wake.set()
        with self._lock:
            listeners = list(self._listeners)
        for listener in listeners:
            try:
                listener(token)
            except Exception as err:  # a listener must never break the refresher
                log.warning("a Redis credential listener failed: %s", type(err).__name__)

    def _install(self, token: Token) -> None:
        now = self._clock()
        expires_at = now + token.expires_in if token.expires_in is not None else INF
        if token.refresh_in is not None:
            refresh_at = min(now + token.refresh_in, expires_at)
        elif token.expires_in is not None:
            refresh_at = now + self._ratio * token.expires_in
        else:
            refresh_at = INF
        with self._lock:
            self._generation += 1
            self._snapshot = _Snapshot(token.credentials(), token, now, refresh_at, expires_at, self._generation)
            self._next_attempt = refresh_at
        log.debug("new Redis credentials from %s: %s", self.description, self.state())

    # --- background refresh -----------------------------------------------------------------------

    def _kick(self, now: float) -> None:
        if now >= self._next_attempt and (self._scheduler is None or not self._wake.is_set()):
            self._ensure_scheduler()
            self._wake.set()

    def _ensure_scheduler(self) -> None:
        if self._scheduler is not None or self._closed:
            return
        with self._lock:
            if self._scheduler is None:
                self._scheduler = threading.Thread(target=self._schedule, name="redis-credentials-refresh", daemon=True)
                self._scheduler.start()

    def _schedule(self) -> None:
        failures = 0
        while not self._closed:
            snap = self._snapshot
            now = self._clock()
            if snap is None or now < self._next_attempt or snap.refresh_at == INF:
                delay = None if snap is None or self._next_attempt == INF else self._next_attempt - now
                self._wake.wait(None if delay is None else max(0.0, min(delay, 60.0)))
                self._wake.clear()
                continue
            before = snap.generation
            flight = self._begin_flight()
            flight.done.wait(self._fetch_timeout)
            current = self._snapshot
            if current is not None and current.generation != before:
                failures = 0
                continue
            failures += 1
            delay = min(self._backoff_cap, self._backoff_base * 2 ** (failures - 1)) * (0.5 + self._rng())
            with self._lock:
                self._next_attempt = self._clock() + delay
            log.debug("next Redis credential refresh attempt in %.1f s", delay)


def _after_fork_in_child() -> None:
    """Threads and locks do not survive ``fork`` (Celery prefork): start fresh, keep cached tokens."""
    for provider in list(_LIVE):
        provider._init_runtime()
    global _REGISTRY_LOCK
    _REGISTRY_LOCK = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


# --- the process-wide registry (for kombu/Celery, which instantiate providers by class path) --------

_CLASS_PREFIX = "SharedRedisCredentials_"
_REGISTRY: dict[str, tuple[str, RefreshingCredentialProvider, int]] = {}
_REGISTRY_LOCK = threading.Lock()
_CLASSES: dict[str, type[CredentialProvider]] = {}


def _digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()[:16]


def acquire_shared(key: str, factory: Callable[[], RefreshingCredentialProvider]) -> RefreshingCredentialProvider:
    """The process's provider for source ``key``, made by ``factory`` on first use; pair with `release_shared`."""
    digest = _digest(key)
    with _REGISTRY_LOCK:
        entry = _REGISTRY.get(digest)
        provider = entry[1] if entry is not None else factory()
        _REGISTRY[digest] = (key, provider, (entry[2] if entry is not None else 0) + 1)
    return provider


def release_shared(key: str) -> None:
    """Drop one reference; the last one stops the provider's refresher."""
    digest = _digest(key)
    with _REGISTRY_LOCK:
        entry = _REGISTRY.get(digest)
        if entry is None:
            return
        if entry[2] > 1:
            _REGISTRY[digest] = (entry[0], entry[1], entry[2] - 1)
            return
        del _REGISTRY[digest]
    entry[1].close()


def shared_provider(key: str) -> RefreshingCredentialProvider | None:
    entry = _REGISTRY.get(_digest(key))
    return entry[1] if entry is not None else None


def clear_shared_providers() -> None:
    """Stop and forget every shared provider (tests)."""
    with _REGISTRY_LOCK:
        entries = list(_REGISTRY.values())
        _REGISTRY.clear()
    for _, provider, _count in entries:
        provider.close()


def kombu_class_path(key: str) -> str:
    """A dotted path kombu/Celery can instantiate with no arguments to reach the shared provider."""
    return f"{__name__}.{_CLASS_PREFIX}{_digest(key)}"


class _SharedCredentials(CredentialProvider):
    """Instantiated by kombu/Celery with no arguments; delegates to the registered provider."""

    digest = ""

    def __init__(self) -> None:
        self._provider: RefreshingCredentialProvider | None = None

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"

    def _resolve(self) -> RefreshingCredentialProvider:
        if self._provider is None:
            entry = _REGISTRY.get(self.digest)
            if entry is None:
                raise TokenUnavailableError(
                    f"no Redis credential provider {self.digest} is registered in this process; call "
                    "celery_redis_settings(config, infra) (which builds infra.redis) before Celery connects"
                )
            self._provider = entry[1]
        return self._provider

    def get_credentials(self) -> Credentials:
        return self._resolve().get_credentials()

    async def get_credentials_async(self) -> Credentials:
        return await self._resolve().get_credentials_async()


def __getattr__(name: str) -> Any:
    """Make ``SharedRedisCredentials_<digest>`` classes on demand, so a dotted path always resolves."""
    if not name.startswith(_CLASS_PREFIX):
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    cls = _CLASSES.get(name)
    if cls is None:
        cls = _CLASSES[name] = type(name, (_SharedCredentials,), {"digest": name[len(_CLASS_PREFIX) :]})
    return cls
