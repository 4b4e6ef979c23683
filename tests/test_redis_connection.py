"""`ManagedRedisConnection` and `build_redis`: pools from config, one provider, no secret in URLs."""

from __future__ import annotations

import ssl
from collections.abc import Iterator

import fakeredis
import pytest
from kombu.utils.imports import symbol_by_name
from pydantic import SecretStr

from model_engine_infra import InfraConfig, build_infra
from model_engine_infra.errors import ConfigError
from model_engine_infra.redis.celery import celery_redis_settings, celery_settings_for, celery_ssl_options
from model_engine_infra.redis.connection import (
    AsyncTokenSSLConnection,
    AsyncTokenUnixConnection,
    ManagedRedisConnection,
    TokenConnection,
    TokenSSLConnection,
    TokenUnixConnection,
    connection_from_config,
)
from model_engine_infra.redis.credentials import clear_shared_providers, shared_provider
from model_engine_infra.testing.azure_identity import FakeTokenCredential
from model_engine_infra.testing.redis import (  # the fixtures are imported to be used here
    InMemoryRedisConnection,
    fake_redis_connection,  # noqa: F401
    fake_redis_pool,
    fake_redis_server,  # noqa: F401
)


@pytest.fixture(autouse=True)
def _providers() -> Iterator[None]:
    yield
    clear_shared_providers()


def test_build_redis_through_infra_uses_config_pool_settings() -> None:
    config = InfraConfig(
        cloud_provider="onprem",
        cache_redis_onprem_url="redis://:canary-pw@r1:6390/2",
        redis_max_connections=7,
        redis_socket_timeout=1.5,
        redis_health_check_interval=11,
        redis_retries=2,
    )
    with build_infra(config) as infra:
        conn = infra.redis
        assert isinstance(conn, ManagedRedisConnection)
        client = conn.client()
        assert conn.client() is client  # built once
        pool = client.connection_pool
        kwargs = pool.connection_kwargs
        assert pool.max_connections == 7
        assert (kwargs["socket_timeout"], kwargs["health_check_interval"]) == (1.5, 11)
        assert (kwargs["host"], kwargs["port"], kwargs["db"]) == ("r1", 6390, 2)
        assert "password" not in kwargs or kwargs["password"] is None
        assert kwargs["credential_provider"] is conn.credential_provider
        assert kwargs["retry"].get_retries() == 2
        assert pool.timeout == conn.settings.worst_case_seconds() == 3 * 2 * 1.5 + 2 * 0.1
        assert pool.connection_class is TokenConnection
        assert conn.redacted_url() == "redis://:***@r1:6390/2"
        assert conn.url() == "redis://:canary-pw@r1:6390/2"
        assert "canary" not in repr(conn)
        assert conn.async_client() is conn.async_client()


def test_no_credentials_means_no_provider() -> None:
    conn = connection_from_config(InfraConfig(cloud_provider="onprem"))
    assert conn.credential_provider is None
    assert conn.url() == conn.redacted_url() == "redis://redis:6379/0"
    conn.close()


def test_tls_and_unix_pick_token_connection_classes() -> None:
    tls = connection_from_config(InfraConfig(cloud_provider="onprem", cache_redis_onprem_url="rediss://h:6380/0"))
    assert tls.client().connection_pool.connection_class is TokenSSLConnection
    assert tls.async_client().connection_pool.connection_class is AsyncTokenSSLConnection
    unix = connection_from_config(
        InfraConfig(cloud_provider="onprem", cache_redis_onprem_url="unix:///tmp/r.sock?db=1")
    )
    assert unix.client().connection_pool.connection_class is TokenUnixConnection
    assert unix.async_client().connection_pool.connection_class is AsyncTokenUnixConnection
    tls.close()
    unix.close()


def test_azure_connection_shares_one_provider_per_process() -> None:
    config = InfraConfig(
        cloud_provider="azure", cache_redis_azure_host="c.redis.cache.windows.net:6380", azure_object_id="oid"
    )
    credential = FakeTokenCredential()
    first = connection_from_config(config, azure_credential=credential)
    second = connection_from_config(config, azure_credential=FakeTokenCredential())
    assert first.credential_provider is second.credential_provider
    assert first.redacted_url() == "rediss://oid:***@c.redis.cache.windows.net:6380/0"
    # the pool URL carries neither the user (the provider gives it) nor a token
    assert "username" not in first.client().connection_pool.connection_kwargs
    assert first.credential_provider is not None
    assert first.credential_provider.get_credentials() == ("oid", "entra-token-1")
    assert credential.calls == 1
    first.close()
    assert shared_provider(first.source.key) is not None
    second.close()
    assert shared_provider(first.source.key) is None


def test_celery_settings_hold_no_secret_and_name_the_shared_provider() -> None:
    config = InfraConfig(
        cloud_provider="gcp",
        cache_redis_gcp_url="rediss://u:canary@h:6380/1?ssl_ca_certs=/ca.pem",
        redis_max_connections=9,
    )
    conn = connection_from_config(config)
    url, options = celery_settings_for(conn)
    assert "canary" not in url
    assert url.startswith("rediss://h:6380/1?credential_provider=model_engine_infra.redis.credentials.")
    assert options["max_connections"] == 9
    provider = symbol_by_name(options["credential_provider"])()
    assert provider.get_credentials() == ("u", "canary")
    assert celery_ssl_options(conn) == {"ssl_cert_reqs": ssl.CERT_REQUIRED, "ssl_ca_certs": "/ca.pem"}
    conn.close()


def test_celery_settings_through_infra() -> None:
    config = InfraConfig(cloud_provider="onprem", redis_host="r", redis_auth_token=SecretStr("canary"))
    with build_infra(config) as infra:
        url, options = celery_redis_settings(config, infra)
    assert url.startswith("rediss://r:6379/0?credential_provider=")
    assert "canary" not in url + repr(options)


def test_celery_without_credentials_keeps_a_plain_url() -> None:
    conn = connection_from_config(InfraConfig(cloud_provider="onprem", redis_host="r"))
    url, options = celery_settings_for(conn)
    assert url == "redis://r:6379/0"
    assert "credential_provider" not in options
    assert celery_ssl_options(conn) is None


def test_celery_refuses_unix_sockets() -> None:
    conn = connection_from_config(InfraConfig(cloud_provider="onprem", cache_redis_onprem_url="unix:///r.sock"))
    with pytest.raises(ConfigError, match="unix socket"):
        celery_settings_for(conn)


def test_celery_with_a_fake_component_gets_a_snapshot() -> None:
    config = InfraConfig(cloud_provider="local")
    with build_infra(config, overrides={"redis": InMemoryRedisConnection()}) as infra:
        assert celery_redis_settings(config, infra) == ("redis://fakeredis:6379/0", {})


# --- the fakeredis helpers users get ------------------------------------------------------------------------


def test_in_memory_connection_shares_data_between_sync_and_async() -> None:
    conn = InMemoryRedisConnection()
    conn.client().set("k", "v")

    async def read() -> bytes | None:
        return await conn.async_client().get("k")

    import asyncio

    assert asyncio.run(read()) == b"v"
    conn.close()


def test_fake_pool_speaks_resp2() -> None:
    import redis

    server = fakeredis.FakeServer()
    pool = fake_redis_pool(server)
    assert pool.connection_kwargs["protocol"] == 2
    client = redis.Redis(connection_pool=pool)
    client.rpush("q", "a")
    assert fakeredis.FakeRedis(server=server).lrange("q", 0, -1) == [b"a"]


def test_fixture_gives_a_fresh_server(fake_redis_connection: InMemoryRedisConnection) -> None:  # noqa: F811
    assert fake_redis_connection.client().dbsize() == 0
