"""The refreshing credential provider: cache, refresh ahead, single-flight, failures, registry."""

from __future__ import annotations

import asyncio
import os
import threading
import time
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone

import pytest
from kombu.utils.imports import symbol_by_name

from model_engine_infra.errors import CredentialFetchError
from model_engine_infra.redis import credentials as creds_mod
from model_engine_infra.redis.credentials import (
    RefreshingCredentialProvider,
    TokenUnavailableError,
    acquire_shared,
    clear_shared_providers,
    kombu_class_path,
    release_shared,
    shared_provider,
)
from model_engine_infra.redis.tokens import (
    ElastiCacheIamTokenSource,
    EntraIdTokenSource,
    MemorystoreTokenSource,
    Token,
)
from model_engine_infra.testing.azure_identity import FakeTokenCredential
from model_engine_infra.testing.redis import ScriptedTokenSource


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture(autouse=True)
def _registry() -> Iterator[None]:
    yield
    clear_shared_providers()


def wait_until(predicate, timeout: float = 3.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached")
        time.sleep(0.005)


def make(source: ScriptedTokenSource, clock: FakeClock, **kwargs: float) -> RefreshingCredentialProvider:
    return RefreshingCredentialProvider(source, clock=clock, rng=lambda: 0.5, **kwargs)  # type: ignore[arg-type]


def test_warm_cache_fetches_once(clock: FakeClock) -> None:
    source = ScriptedTokenSource(["tok-1"], lifetime=100)
    provider = make(source, clock)
    assert [provider.get_credentials() for _ in range(1000)] == [("app", "tok-1")] * 1000
    assert source.calls == 1
    provider.close()


def test_refreshes_ahead_of_expiry_without_waiting(clock: FakeClock) -> None:
    source = ScriptedTokenSource(["tok-1", "tok-2"], lifetime=100, delay=0.3)
    provider = make(source, clock)
    assert provider.get_credentials() == ("app", "tok-1")
    clock.now += 85  # past 80% of the lifetime, still valid
    started = time.perf_counter()
    assert provider.get_credentials() == ("app", "tok-1")
    assert time.perf_counter() - started < 0.15  # did not wait for the 300 ms fetch
    wait_until(lambda: provider.get_credentials() == ("app", "tok-2"))
    assert source.calls == 2
    provider.close()


def test_fifty_threads_at_expiry_share_one_fetch(clock: FakeClock) -> None:
    source = ScriptedTokenSource(lambda n: f"tok-{n + 1}", lifetime=100, delay=0.1)
    provider = make(source, clock)
    provider.get_credentials()
    clock.now += 101  # expired: every caller must wait for a new token
    barrier = threading.Barrier(50)
    results: list[object] = []

    def call() -> None:
        barrier.wait()
        results.append(provider.get_credentials())

    threads = [threading.Thread(target=call) for _ in range(50)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == [("app", "tok-2")] * 50
    assert source.calls == 2  # the first token, then exactly one fetch for 50 callers
    provider.close()


async def test_fifty_tasks_at_expiry_share_one_fetch(clock: FakeClock) -> None:
    source = ScriptedTokenSource(lambda n: f"tok-{n + 1}", lifetime=100, delay=0.1)
    provider = make(source, clock)
    await provider.get_credentials_async()
    clock.now += 101
    results = await asyncio.gather(*(provider.get_credentials_async() for _ in range(50)))
    assert results == [("app", "tok-2")] * 50
    assert source.calls == 2
    provider.close()


def test_failed_refresh_keeps_valid_token_until_it_expires(clock: FakeClock) -> None:
    source = ScriptedTokenSource(["canary-tok-1"], lifetime=100)
    provider = make(source, clock, backoff_base=0.01, backoff_cap=0.02)
    provider.get_credentials()
    source.fail = ConnectionError("token endpoint down")
    clock.now += 90
    assert provider.get_credentials() == ("app", "canary-tok-1")
    wait_until(lambda: provider.failure_count >= 1)
    assert provider.get_credentials() == ("app", "canary-tok-1")  # still valid: no error yet
    clock.now += 11  # now truly expired
    with pytest.raises(TokenUnavailableError) as info:
        provider.get_credentials()
    assert isinstance(info.value, CredentialFetchError)
    assert "scripted test token source" in str(info.value)
    assert "canary" not in str(info.value)
    provider.close()


def test_hanging_source_does_not_block_commands_and_times_out_after_expiry(clock: FakeClock) -> None:
    source = ScriptedTokenSource(["tok-1"], lifetime=100)
    provider = make(source, clock, fetch_timeout=0.3)
    provider.get_credentials()
    source.hang()
    try:
        clock.now += 90
        started = time.perf_counter()
        for _ in range(100):
            assert provider.get_credentials() == ("app", "tok-1")
        assert time.perf_counter() - started < 0.1
        clock.now += 20
        started = time.perf_counter()
        with pytest.raises(TokenUnavailableError, match=r"did not answer within 0\.3 s"):
            provider.get_credentials()
        assert 0.25 < time.perf_counter() - started < 1.0
    finally:
        source.release()
        provider.close()


def test_background_retries_back_off_with_jitter() -> None:
    source = ScriptedTokenSource(["tok-1"], lifetime=10)
    provider = RefreshingCredentialProvider(
        source,  # type: ignore[arg-type]
        refresh_ratio=0.01,  # refresh after 0.1 s of real time
        backoff_base=0.05,
        backoff_cap=0.4,
    )
    provider.get_credentials()
    source.fail = ConnectionError("down")
    time.sleep(0.8)
    attempts = source.calls - 1
    provider.close()
    # delays 0.05, 0.1, 0.2, 0.4 (x 0.5-1.5 jitter) fit about 3-6 attempts in 0.7 s, never a busy loop
    assert 2 <= attempts <= 8


def test_rejected_token_is_replaced_once_per_second(clock: FakeClock) -> None:
    source = ScriptedTokenSource(lambda n: f"tok-{n + 1}", lifetime=100)
    provider = make(source, clock)
    assert provider.get_credentials() == ("app", "tok-1")
    provider.report_rejected()
    assert provider.get_credentials() == ("app", "tok-2")
    provider.report_rejected()  # within a second of the last forced fetch: ignored
    assert provider.get_credentials() == ("app", "tok-2")
    clock.now += 2
    provider.report_rejected()
    assert provider.get_credentials() == ("app", "tok-3")
    assert source.calls == 3
    provider.close()


def test_listeners_hear_each_new_token_and_may_fail(clock: FakeClock) -> None:
    source = ScriptedTokenSource(lambda n: f"tok-{n + 1}", lifetime=100)
    provider = make(source, clock)
    seen: list[str] = []

    def broken(token: Token) -> None:
        raise RuntimeError("listener bug")

    provider.add_listener(broken)
    remove = provider.add_listener(lambda token: seen.append(token.password))
    provider.get_credentials()
    provider.refresh_now()
    wait_until(lambda: len(seen) == 2)
    remove()
    provider.refresh_now()
    time.sleep(0.05)
    assert seen == ["tok-1", "tok-2"]
    provider.close()


def test_empty_or_expired_tokens_are_refused(clock: FakeClock) -> None:
    source = ScriptedTokenSource([""], lifetime=100)
    provider = make(source, clock)
    with pytest.raises(TokenUnavailableError, match="empty token"):
        provider.get_credentials()
    source2 = ScriptedTokenSource(["x"], lifetime=-5)
    with pytest.raises(TokenUnavailableError, match="already expired"):
        make(source2, clock).get_credentials()


def test_repr_and_state_hide_the_token(clock: FakeClock) -> None:
    source = ScriptedTokenSource(["canary-secret"], lifetime=100)
    provider = make(source, clock)
    provider.get_credentials()
    assert "canary" not in repr(provider)
    assert "valid for 100 s" in repr(provider)
    assert "canary" not in repr(provider.current_token())
    provider.close()


def test_traceback_locals_hide_the_token(clock: FakeClock) -> None:
    """Error trackers (Sentry) and ``pytest --showlocals`` print each frame's locals with repr."""
    import traceback

    source = ScriptedTokenSource(["canary-secret"], lifetime=100)
    provider = make(source, clock)
    provider.get_credentials()
    provider.report_rejected()  # the cached snapshot stays in the frames that raise below
    source.fail = RuntimeError("identity endpoint down")
    with pytest.raises(TokenUnavailableError) as info:
        provider.get_credentials()
    shown = "".join(traceback.TracebackException.from_exception(info.value, capture_locals=True).format())
    assert "snap" in shown
    assert "canary" not in shown
    provider.close()


def test_password_only_tokens_give_a_one_tuple() -> None:
    assert Token(None, "pw").credentials() == ("pw",)
    assert Token("u", "pw").credentials() == ("u", "pw")


# --- sources ----------------------------------------------------------------------------------------


def test_entra_id_source_asks_for_the_redis_scope() -> None:
    credential = FakeTokenCredential(lifetime=3600, wall_clock=lambda: 5000.0)
    source = EntraIdTokenSource("object-id-1", credential=credential, wall_clock=lambda: 5000.0)
    token = source.fetch()
    assert (token.username, token.password, token.expires_in) == ("object-id-1", "entra-token-1", 3600)
    assert credential.scopes == [("https://redis.azure.com/.default",)]


def test_elasticache_token_is_a_presigned_connect_request() -> None:
    import botocore.session

    session = botocore.session.get_session()
    session.set_credentials("AKIDEXAMPLE", "canary-aws-secret-key")
    source = ElastiCacheIamTokenSource("iam-user", "my-cache", "us-east-1", session=session)
    token = source.fetch()
    assert token.username == "iam-user"
    assert token.expires_in == 900
    assert token.password.startswith("my-cache/?Action=connect&User=iam-user&")
    for part in ("X-Amz-Algorithm=AWS4-HMAC-SHA256", "X-Amz-Expires=900", "X-Amz-Signature=", "elasticache"):
        assert part in token.password
    assert "canary" not in token.password
    assert "canary" not in repr(source)


def test_elasticache_serverless_adds_resource_type() -> None:
    import botocore.session

    session = botocore.session.get_session()
    session.set_credentials("AKIDEXAMPLE", "secret")
    token = ElastiCacheIamTokenSource("u", "c", "eu-west-1", session=session, serverless=True).fetch()
    assert "ResourceType=ServerlessCache" in token.password


def test_memorystore_token_uses_adc_expiry() -> None:
    class FakeGoogleCredentials:
        token = None
        expiry: datetime | None = None

        def refresh(self, request: object) -> None:
            self.token = "adc-token"
            self.expiry = (datetime.now(timezone.utc) + timedelta(seconds=3599)).replace(tzinfo=None)

    source = MemorystoreTokenSource(None, credentials=FakeGoogleCredentials(), request=object())
    token = source.fetch()
    assert token.credentials() == ("adc-token",)
    assert token.expires_in is not None
    assert 3590 < token.expires_in <= 3600


# --- the process-wide registry for kombu/Celery -------------------------------------------------------


def test_shared_provider_is_one_per_key_and_reachable_by_class_path(clock: FakeClock) -> None:
    source = ScriptedTokenSource(["tok-1"], lifetime=100)
    first = acquire_shared("entra:x@host:6380", lambda: make(source, clock))
    second = acquire_shared("entra:x@host:6380", lambda: pytest.fail("factory must not run twice"))
    assert first is second
    cls = symbol_by_name(kombu_class_path("entra:x@host:6380"))
    instance = cls()  # kombu instantiates with no arguments
    assert instance.get_credentials() == ("app", "tok-1")
    assert "tok" not in repr(instance)
    release_shared("entra:x@host:6380")
    assert shared_provider("entra:x@host:6380") is first
    release_shared("entra:x@host:6380")
    assert shared_provider("entra:x@host:6380") is None


def test_unregistered_class_path_says_what_to_do() -> None:
    cls = symbol_by_name(kombu_class_path("never-registered"))
    with pytest.raises(TokenUnavailableError, match="celery_redis_settings"):
        cls().get_credentials()
    with pytest.raises(AttributeError):
        creds_mod.NotAProvider  # noqa: B018


def test_child_after_fork_keeps_the_token_and_can_refresh(clock: FakeClock) -> None:
    source = ScriptedTokenSource(lambda n: f"tok-{n + 1}", lifetime=100)
    provider = make(source, clock)
    provider.get_credentials()
    pid = os.fork()
    if pid == 0:  # the child: as a Celery prefork worker process
        ok = provider.get_credentials() == ("app", "tok-1")
        provider.refresh_now()
        ok = ok and provider.get_credentials() == ("app", "tok-2")
        os._exit(0 if ok else 1)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    provider.close()
