"""Every Redis URL source, the fallback chain, IAM and TLS overlays, and bad secret shapes."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws

from model_engine_infra.config import InfraConfig, load_config
from model_engine_infra.errors import ConfigError, CredentialFetchError
from model_engine_infra.redis.sources import RedisSource, parse_url, select_source
from model_engine_infra.redis.tokens import (
    ElastiCacheIamTokenSource,
    EntraIdTokenSource,
    MemorystoreTokenSource,
    SecretTokenSource,
    StaticTokenSource,
)
from model_engine_infra.secrets.aws import SecretsManagerStore
from model_engine_infra.secrets.base import SecretStore
from model_engine_infra.testing.azure_identity import FakeTokenCredential


@pytest.fixture
def sm() -> Iterator[Any]:
    with mock_aws():
        yield boto3.client("secretsmanager", region_name="us-east-1")


@pytest.fixture
def store(sm: Any) -> SecretsManagerStore:
    return SecretsManagerStore(sm, region="us-east-1")


def choose(config: InfraConfig, store: SecretStore | None = None, **kwargs: Any) -> RedisSource:
    def secrets() -> SecretStore:
        assert store is not None, "no secret store expected for this source"
        return store

    return select_source(config, secrets=secrets, **kwargs)


def password_of(source: RedisSource) -> str | None:
    return source.tokens.fetch().password if source.tokens else None


# --- plain URLs and the order ----------------------------------------------------------------------


def test_onprem_url_wins_over_every_other_source() -> None:
    config = InfraConfig(
        cloud_provider="onprem",
        cache_redis_onprem_url="redis://onprem:6379/2",
        cache_redis_aws_url="redis://aws:6379/15",
        redis_host="host-fallback",
    )
    source = choose(config)
    assert (source.target.host, source.target.db, source.origin) == ("onprem", 2, "cache_redis_onprem_url")


def test_aws_url_password_moves_out_of_the_url() -> None:
    config = InfraConfig(cloud_provider="aws", cache_redis_aws_url="rediss://user:p%40ss@cache.aws:6379/15")
    source = choose(config)
    assert isinstance(source.tokens, StaticTokenSource)
    assert source.tokens.fetch().credentials() == ("user", "p@ss")
    assert source.target.url() == "rediss://user@cache.aws:6379/15"
    assert "p@ss" not in repr(source)


def test_gcp_url_is_used_after_the_exclusive_keys() -> None:
    config = InfraConfig(cloud_provider="gcp", cache_redis_gcp_url="redis://memorystore:6379/3")
    source = choose(config)
    assert (source.target.host, source.target.db, source.tokens) == ("memorystore", 3, None)


def test_unix_socket_url() -> None:
    target, password = parse_url("unix://:pw@/run/redis.sock?db=4", origin="x")
    assert (target.scheme, target.path, target.db, password) == ("unix", "/run/redis.sock", 4, "pw")
    assert target.url() == "unix:///run/redis.sock?db=4"


def test_query_password_is_a_credential_not_an_option() -> None:
    target, password = parse_url("redis://h:1/0?password=pw&socket_timeout=3", origin="x")
    assert password == "pw"
    assert target.query == (("socket_timeout", "3"),)


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("http://h:6379/0", "scheme"),
        ("redis://h:notaport/0", "port"),
        ("redis://h:6379/x", "database"),
        ("redis:///0", "no host"),
    ],
)
def test_bad_urls_are_config_errors_without_the_password(url: str, problem: str) -> None:
    with pytest.raises(ConfigError, match=problem) as info:
        parse_url(url.replace("//", "//u:canary-pw@", 1), origin="cache_redis_aws_url")
    assert "canary" not in str(info.value)
    assert info.value.key == "cache_redis_aws_url"


# --- the fallback chain ----------------------------------------------------------------------------------


def test_default_is_redis_redis_6379_0() -> None:
    source = choose(InfraConfig(cloud_provider="onprem"))
    assert source.target.url() == "redis://redis:6379/0"
    assert source.tokens is None


def test_host_and_port_from_the_environment() -> None:
    config = load_config(
        None, env={"MODEL_ENGINE_INFRA_CLOUD_PROVIDER": "onprem", "REDIS_HOST": "r1", "REDIS_PORT": "6390"}
    )
    assert choose(config).target.url() == "redis://r1:6390/0"


def test_port_alone_keeps_the_default_host() -> None:
    config = load_config(None, env={"MODEL_ENGINE_INFRA_CLOUD_PROVIDER": "onprem", "REDIS_PORT": "6391"})
    assert choose(config).target.url() == "redis://redis:6391/0"


def test_auth_token_means_tls_as_in_the_reference_system() -> None:
    env = {"MODEL_ENGINE_INFRA_CLOUD_PROVIDER": "onprem", "REDIS_HOST": "r1", "REDIS_AUTH_TOKEN": "canary-tok"}
    source = choose(load_config(None, env=env))
    assert source.target.scheme == "rediss"
    assert password_of(source) == "canary-tok"
    assert "canary" not in source.target.url()


def test_explicit_tls_setting_overrides_the_token_rule() -> None:
    env = {
        "MODEL_ENGINE_INFRA_CLOUD_PROVIDER": "onprem",
        "REDIS_HOST": "r1",
        "REDIS_AUTH_TOKEN": "tok",
        "MODEL_ENGINE_INFRA_REDIS_ENABLE_TLS": "false",
    }
    assert choose(load_config(None, env=env)).target.scheme == "redis"


def test_unsafe_ssl_turns_certificate_checks_off() -> None:
    config = InfraConfig(cloud_provider="onprem", redis_host="r", redis_enable_tls=True, redis_unsafe_ssl=True)
    query = dict(choose(config).target.query)
    assert query == {"ssl_cert_reqs": "none", "ssl_check_hostname": "false"}


def test_url_tls_choice_is_kept_over_unsafe_ssl() -> None:
    config = InfraConfig(
        cloud_provider="onprem",
        cache_redis_onprem_url="rediss://r:6380/0?ssl_cert_reqs=required",
        redis_unsafe_ssl=True,
    )
    assert dict(choose(config).target.query) == {"ssl_cert_reqs": "required"}


# --- Secrets Manager sources ----------------------------------------------------------------------------


def test_cache_url_secret(sm: Any, store: SecretsManagerStore) -> None:
    sm.create_secret(Name="prod/redis", SecretString=json.dumps({"cache-url": "rediss://:canary-pw@c.aws:6379/15"}))
    source = choose(InfraConfig(cloud_provider="aws", cache_redis_aws_secret_name="prod/redis"), store)
    assert source.target.url() == "rediss://c.aws:6379/15"
    assert isinstance(source.tokens, SecretTokenSource)
    assert password_of(source) == "canary-pw"
    assert "canary" not in repr(source)


def test_cache_url_secret_follows_rotation(sm: Any, store: SecretsManagerStore) -> None:
    sm.create_secret(Name="prod/redis", SecretString=json.dumps({"cache-url": "redis://:old@c:6379/0"}))
    source = choose(InfraConfig(cloud_provider="aws", cache_redis_aws_secret_name="prod/redis"), store)
    assert source.tokens is not None
    assert source.tokens.fetch().password == "old"  # the value read while building
    sm.put_secret_value(SecretId="prod/redis", SecretString=json.dumps({"cache-url": "redis://:new@c:6379/0"}))
    token = source.tokens.fetch()
    assert token.password == "new"
    assert token.refresh_in == 300.0


def test_redis_secret_with_query_params_and_scheme(sm: Any, store: SecretsManagerStore) -> None:
    value = {
        "scheme": "rediss://",
        "host": "master.prod.cache.amazonaws.com",
        "port": "6379",
        "auth_token": "canary-auth",
        "query_params": "?ssl_cert_reqs=required",
    }
    sm.create_secret(Name="infra/redis", SecretString=json.dumps(value))
    source = choose(InfraConfig(cloud_provider="aws", redis_aws_secret_name="infra/redis"), store)
    assert source.target.url() == "rediss://master.prod.cache.amazonaws.com:6379/0?ssl_cert_reqs=required"
    assert password_of(source) == "canary-auth"


def test_redis_secret_without_token_or_scheme(sm: Any, store: SecretsManagerStore) -> None:
    sm.create_secret(Name="infra/redis", SecretString=json.dumps({"host": "h", "port": 6379}))
    source = choose(InfraConfig(cloud_provider="aws", redis_aws_secret_name="infra/redis"), store)
    assert (source.target.url(), source.tokens) == ("redis://h:6379/0", None)


@pytest.mark.parametrize(
    ("key", "value", "field"),
    [
        ("cache_redis_aws_secret_name", {"url": "redis://h:1/0"}, "cache-url"),
        ("cache_redis_aws_secret_name", {"cache-url": "nope://canary@h"}, "cache-url"),
        ("redis_aws_secret_name", {"host": "h", "port": "sixty", "auth_token": "canary"}, "port"),
        ("redis_aws_secret_name", {"host": "h", "port": 70000, "auth_token": "canary"}, "port"),
        ("redis_aws_secret_name", {"port": 6379, "auth_token": "canary"}, "host"),
        ("redis_aws_secret_name", {"host": "h", "auth_token": "canary"}, "port"),
        ("redis_aws_secret_name", {"host": "h", "port": 1, "scheme": "http"}, "scheme"),
        ("redis_aws_secret_name", {"host": "h", "port": 1, "auth_token": 12345}, "auth_token"),
    ],
)
def test_bad_secret_shapes_name_secret_and_field(
    sm: Any, store: SecretsManagerStore, key: str, value: dict[str, Any], field: str
) -> None:
    sm.create_secret(Name="bad/secret", SecretString=json.dumps(value))
    with pytest.raises(ConfigError) as info:
        choose(InfraConfig(cloud_provider="aws", **{key: "bad/secret"}), store)
    message = str(info.value)
    assert "'bad/secret'" in message
    assert f"'{field}'" in message
    assert "canary" not in message
    assert "sixty" not in message


def test_non_json_secret(sm: Any, store: SecretsManagerStore) -> None:
    sm.create_secret(Name="bad/secret", SecretString="redis://:canary@h:1/0")
    with pytest.raises(ConfigError, match=r"'bad/secret'.*not a JSON object") as info:
        choose(InfraConfig(cloud_provider="aws", redis_aws_secret_name="bad/secret"), store)
    assert "canary" not in str(info.value)


def test_missing_secret_is_a_credential_fetch_error(store: SecretsManagerStore) -> None:
    with pytest.raises(CredentialFetchError, match=r"'nope/redis'.*not found"):
        choose(InfraConfig(cloud_provider="aws", cache_redis_aws_secret_name="nope/redis"), store)


# --- Azure and IAM -----------------------------------------------------------------------------------------


def test_azure_host_uses_entra_id_and_tls() -> None:
    config = InfraConfig(
        cloud_provider="azure", cache_redis_azure_host="c.redis.cache.windows.net:6380", azure_object_id="oid-1"
    )
    credential = FakeTokenCredential()
    source = choose(config, azure_credential=credential)
    assert source.target.url() == "rediss://oid-1@c.redis.cache.windows.net:6380/0"
    assert source.target.redacted_url(True) == "rediss://oid-1:***@c.redis.cache.windows.net:6380/0"
    assert isinstance(source.tokens, EntraIdTokenSource)
    assert source.tokens.fetch().credentials() == ("oid-1", "entra-token-1")


def test_azure_host_needs_the_object_id() -> None:
    config = InfraConfig(cloud_provider="azure", cache_redis_azure_host="c.redis.cache.windows.net:6380")
    with pytest.raises(ConfigError, match="AZURE_OBJECT_ID"):
        choose(config)


def test_elasticache_iam_forces_tls_and_signs_tokens() -> None:
    config = InfraConfig(
        cloud_provider="aws",
        redis_host="master.c.cache.amazonaws.com",
        redis_iam_auth="elasticache",
        redis_iam_user="svc-user",
        redis_iam_cache_name="my-group",
    )
    source = choose(config)
    assert source.target.url() == "rediss://svc-user@master.c.cache.amazonaws.com:6379/0"
    assert isinstance(source.tokens, ElastiCacheIamTokenSource)
    assert source.key == "elasticache-iam:us-east-1:my-group:svc-user"


@pytest.mark.parametrize("missing", ["redis_iam_user", "redis_iam_cache_name"])
def test_elasticache_iam_needs_user_and_cache(missing: str) -> None:
    values = {"redis_iam_user": "u", "redis_iam_cache_name": "c"}
    values.pop(missing)
    config = InfraConfig(cloud_provider="aws", redis_host="h", redis_iam_auth="elasticache", **values)
    with pytest.raises(ConfigError, match=missing):
        choose(config)


def test_memorystore_iam_uses_adc_tokens() -> None:
    config = InfraConfig(
        cloud_provider="gcp", cache_redis_gcp_url="redis://10.0.0.3:6379/0", redis_iam_auth="memorystore"
    )
    source = choose(config, google_credentials=object())
    assert isinstance(source.tokens, MemorystoreTokenSource)
    assert source.target.url() == "redis://10.0.0.3:6379/0"


def test_iam_does_not_apply_to_azure() -> None:
    config = InfraConfig(
        cloud_provider="azure",
        cache_redis_azure_host="c:6380",
        azure_object_id="o",
        redis_iam_auth="elasticache",
    )
    with pytest.raises(ConfigError, match="redis_iam_auth"):
        choose(config)
