"""Redis credentials on the hot path, and commands issued while a slow refresh is in flight.

    python benchmarks/redis_credentials.py

1. Median cost of ``get_credentials()`` with a warm cache (target <= 5 us), against redis-py's
   static ``UsernamePasswordCredentialProvider`` and against asking the token source every time
   (what a provider without a cache does).
2. A new connection + PING issued while a 500 ms refresh is in flight (target: waits 0 ms on it),
   against the reference system's approach of fetching only once the token has expired.
Uses a real redis-server when one is installed (started on a free port), else credential lookups only.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from collections.abc import Callable

from redis.credentials import UsernamePasswordCredentialProvider

from model_engine_infra.redis.credentials import RefreshingCredentialProvider
from model_engine_infra.redis.tokens import Token
from model_engine_infra.testing.azure_identity import FakeTokenCredential
from model_engine_infra.testing.redis import ScriptedTokenSource

BATCH = 10_000
BATCHES = 30
REFRESH_SECONDS = 0.5


def per_call_us(fn: Callable[[], object]) -> float:
    """Median over batches of the mean cost of one call, in microseconds."""
    samples = []
    for _ in range(BATCHES):
        started = time.perf_counter()
        for _ in range(BATCH):
            fn()
        samples.append((time.perf_counter() - started) / BATCH * 1e6)
    return statistics.median(samples)


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class EntraSource:
    """The Entra ID source over a fake credential with no network: the cheapest possible fetch."""

    description = "fake Entra ID"

    def __init__(self) -> None:
        self.credential = FakeTokenCredential()

    def fetch(self) -> Token:
        access = self.credential.get_token("https://redis.azure.com/.default")
        return Token("oid", access.token, expires_in=access.expires_on - time.time())


def hot_path() -> None:
    provider = RefreshingCredentialProvider(ScriptedTokenSource(["tok"], lifetime=3600))  # type: ignore[arg-type]
    provider.get_credentials()
    ours = per_call_us(provider.get_credentials)
    static = per_call_us(UsernamePasswordCredentialProvider("app", "tok").get_credentials)
    source = EntraSource()
    uncached = per_call_us(source.fetch)
    provider.close()
    print("1. get_credentials() with a warm cache (median of batch means)")
    print(f"   refreshing provider:              {ours:7.3f} us   (target <= 5 us: {'PASS' if ours <= 5 else 'FAIL'})")
    print(f"   redis-py static provider:         {static:7.3f} us   ratio ours/static = {ours / static:.2f}")
    print(f"   no cache (fetch every time, fake): {uncached:6.3f} us   ratio uncached/ours = {uncached / ours:.1f}")
    print("   (a real Entra ID fetch is an HTTPS round trip: tens of milliseconds)")


def lookup_during_refresh() -> tuple[list[float], float]:
    """Credential lookups while a 500 ms refresh runs, and the wait when refreshing only after expiry."""
    clock = Clock()
    source = ScriptedTokenSource(lambda n: f"tok-{n}", lifetime=100, delay=REFRESH_SECONDS)
    provider = RefreshingCredentialProvider(source, clock=clock)  # type: ignore[arg-type]
    provider.get_credentials()  # first token (500 ms)
    clock.now = 85.0  # past 80% of the lifetime: the next lookup starts a background refresh
    waits = []
    deadline = time.perf_counter() + REFRESH_SECONDS * 0.8
    while time.perf_counter() < deadline:
        started = time.perf_counter()
        provider.get_credentials()
        waits.append((time.perf_counter() - started) * 1000)
        time.sleep(0.001)
    refreshes_in_flight = source.calls == 2
    clock.now = 250.0  # the reference system's way: nothing refreshed ahead, token expired
    provider.close()
    provider2 = RefreshingCredentialProvider(source, clock=clock)  # type: ignore[arg-type]
    started = time.perf_counter()
    provider2.get_credentials()
    expired_wait = (time.perf_counter() - started) * 1000
    provider2.close()
    assert refreshes_in_flight
    return waits, expired_wait


def command_during_refresh() -> tuple[float, float] | None:
    """New connection + PING on redis-server: baseline vs. while a 500 ms refresh is in flight (ms)."""
    try:
        from model_engine_infra.testing.servers import ServerUnavailableError, start_redis
    except ImportError:  # pragma: no cover
        return None
    import redis

    from model_engine_infra.redis.connection import ManagedRedisConnection, PoolSettings
    from model_engine_infra.redis.sources import RedisSource, RedisTarget

    try:
        server = start_redis(tempfile.mkdtemp(prefix="bench-redis-"))
    except ServerUnavailableError:
        return None
    with server:
        admin = redis.Redis(host=server.host, port=server.port)
        admin.execute_command("ACL", "SETUSER", "bench", "on", ">tok-0", ">tok-1", ">tok-2", "~*", "&*", "+@all")
        clock = Clock()
        source = ScriptedTokenSource(lambda n: f"tok-{n}", username="bench", lifetime=100, delay=REFRESH_SECONDS)
        provider = RefreshingCredentialProvider(source, clock=clock)  # type: ignore[arg-type]
        target = RedisTarget("redis", server.host, server.port)
        conn = ManagedRedisConnection(
            RedisSource(target, source, "bench", "bench"), PoolSettings(health_check_interval=0), provider=provider
        )
        client = conn.client()

        def reconnect_and_ping() -> float:
            client.connection_pool.disconnect()
            started = time.perf_counter()
            client.ping()
            return (time.perf_counter() - started) * 1000

        client.ping()
        baseline = statistics.median(reconnect_and_ping() for _ in range(50))
        clock.now = 85.0
        during = []
        deadline = time.perf_counter() + REFRESH_SECONDS * 0.8
        while time.perf_counter() < deadline:
            during.append(reconnect_and_ping())
        conn.close()
        provider.close()
        admin.close()
        return baseline, statistics.median(during)


def main() -> None:
    hot_path()
    waits, expired_wait = lookup_during_refresh()
    print(f"2. credential lookups while a {REFRESH_SECONDS * 1000:.0f} ms refresh is in flight ({len(waits)} lookups)")
    print(f"   median wait {statistics.median(waits):.4f} ms, max {max(waits):.4f} ms   (target 0 ms)")
    print(f"   refreshing only after expiry (reference system): first caller waits {expired_wait:.0f} ms")
    result = command_during_refresh()
    if result is None:
        print("   redis-server not installed: connection + PING figures skipped")
        return
    baseline, during = result
    print("3. new connection + AUTH + PING on redis-server (median)")
    print(f"   no refresh running: {baseline:.3f} ms; during a 500 ms refresh: {during:.3f} ms")
    print(f"   extra wait caused by the refresh: {max(0.0, during - baseline):.3f} ms")


if __name__ == "__main__":
    main()
