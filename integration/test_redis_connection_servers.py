"""The Redis connection contract on real servers: redis-server with ACL users, ``requirepass`` and TLS.

The tests are `RedisConnectionContract` from tests/contract/test_redis_connection_contract.py,
imported (not copied); only the servers differ. Here every credential crosses a real socket and
is checked by redis-server itself; Entra ID tokens go over TLS (a self-signed certificate, hence
``redis_unsafe_ssl``), the secret-backed URL lives in Secrets Manager on the moto server.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import ExitStack
from typing import Any

import boto3
import pytest
import redis

from contracts import load_contract
from model_engine_infra.secrets.aws import SecretsManagerStore
from model_engine_infra.testing.servers import RunningServer, start_redis

pytestmark = pytest.mark.integration

contract = load_contract("test_redis_connection_contract.py", "redis_connection_contract")


@pytest.fixture(scope="module")
def password_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    with start_redis(tmp_path_factory.mktemp("redis-pw"), password=f"token-{uuid.uuid4().hex[:12]}") as server:
        yield server


@pytest.fixture(scope="module")
def tls_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    with start_redis(tmp_path_factory.mktemp("redis-tls"), tls=True) as server:
        yield server


@pytest.fixture
def servers(
    mei_redis_server: RunningServer,
    password_redis: RunningServer,
    tls_redis: RunningServer,
    mei_moto_server: RunningServer,
) -> Iterator[Any]:
    with ExitStack() as stack:
        password = password_redis.extra["password"]
        admins = [
            redis.Redis(host=mei_redis_server.host, port=mei_redis_server.port),
            redis.Redis(host=password_redis.host, port=password_redis.port, password=password),
            redis.Redis(host=tls_redis.host, port=tls_redis.port, ssl=True, ssl_ca_certs=tls_redis.extra["ca_cert"]),
        ]
        for admin in admins:
            stack.callback(admin.close)
        sm = boto3.client(
            "secretsmanager",
            region_name="us-east-1",
            endpoint_url=mei_moto_server.url,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )
        yield contract.RedisServers(
            open=contract.Endpoint(mei_redis_server.host, mei_redis_server.port, admins[0]),
            password=contract.Endpoint(password_redis.host, password_redis.port, admins[1], password),
            tls=contract.Endpoint(tls_redis.host, tls_redis.port, admins[2]),
            secrets=SecretsManagerStore(sm, region="us-east-1"),
            put_secret=lambda name, value: sm.create_secret(Name=name, SecretString=value),
            client_from_url=redis.Redis.from_url,
        )


@pytest.fixture(params=contract.KINDS)
async def case(request: pytest.FixtureRequest, servers: Any) -> AsyncIterator[Any]:
    built = contract.build_case(request.param, servers)
    yield built
    await contract.finish(built)


class TestRedisConnectionContractOnServers(contract.RedisConnectionContract):  # type: ignore[misc,name-defined]
    """The same contract on redis-server (ACL users, requirepass, TLS) and Secrets Manager on the moto server."""
