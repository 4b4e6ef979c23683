"""Redis settings kept in Secrets Manager (moto server) reaching a real redis-server, through `build_infra`."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
import redis

from model_engine_infra import InfraConfig, build_infra
from model_engine_infra.redis.connection import ManagedRedisConnection, connection_from_config
from model_engine_infra.redis.credentials import clear_shared_providers
from model_engine_infra.secrets.aws import SecretsManagerStore
from model_engine_infra.testing.redis import rotate_acl_password
from model_engine_infra.testing.servers import RunningServer

pytestmark = pytest.mark.integration


@pytest.fixture
def sm(mei_moto_server: RunningServer) -> Any:
    return boto3.client(
        "secretsmanager",
        region_name="us-east-1",
        endpoint_url=mei_moto_server.url,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


@pytest.fixture
def admin(mei_redis_server: RunningServer) -> Iterator[redis.Redis]:
    client = redis.Redis(host=mei_redis_server.host, port=mei_redis_server.port)
    yield client
    client.close()
    clear_shared_providers()


@pytest.fixture
def user(admin: redis.Redis) -> Iterator[str]:
    name = f"sm-{uuid.uuid4().hex[:8]}"
    admin.execute_command("ACL", "SETUSER", name, "on", ">auth-1", "~*", "&*", "+@all")
    yield name
    admin.execute_command("ACL", "DELUSER", name)


def test_redis_secret_on_moto_server_and_rotation(
    sm: Any, mei_redis_server: RunningServer, admin: redis.Redis, user: str
) -> None:
    name = f"infra/redis-{user}"
    value = {"scheme": "redis://", "host": mei_redis_server.host, "port": mei_redis_server.port, "auth_token": "auth-1"}
    value["username"] = user
    sm.create_secret(Name=name, SecretString=json.dumps(value))
    config = InfraConfig(cloud_provider="aws", redis_aws_secret_name=name, secret_cache_ttl_seconds=60)
    conn = connection_from_config(config, secrets=SecretsManagerStore(sm, region="us-east-1"))
    client = conn.client()
    client.set(f"{user}:k", "v")
    assert "auth-1" not in conn.redacted_url()
    # Rotate the way Secrets Manager rotation does: new value stored, old password revoked.
    sm.put_secret_value(SecretId=name, SecretString=json.dumps({**value, "auth_token": "auth-2"}))
    rotate_acl_password(admin, user, "auth-2")
    assert client.get(f"{user}:k") == b"v"  # the refused password made us re-read the secret
    conn.close()


def test_cache_url_secret_through_build_infra(
    sm: Any, mei_moto_server: RunningServer, mei_redis_server: RunningServer, user: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    for key, val in mei_moto_server.sdk_env.items():
        monkeypatch.setenv(key, val)  # boto3 in the aws provider's secret store finds moto through these
    name = f"cache/{user}"
    url = f"redis://{user}:auth-1@{mei_redis_server.host}:{mei_redis_server.port}/3"
    sm.create_secret(Name=name, SecretString=json.dumps({"cache-url": url}))
    config = InfraConfig(cloud_provider="aws", cache_redis_aws_secret_name=name, default_region="us-east-1")
    with build_infra(config) as infra:
        conn = infra.redis
        assert isinstance(conn, ManagedRedisConnection)
        assert conn.redacted_url() == f"redis://{user}:***@{mei_redis_server.host}:{mei_redis_server.port}/3"
        assert conn.client().ping() is True
        assert conn.url() == url  # the snapshot for tools that need a URL
