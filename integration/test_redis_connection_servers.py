"""The Redis connection conformance suite on real servers: redis-server with ACL users, ``requirepass`` and TLS.

The tests are the classes of `model_engine_infra.testing.conformance.redis`, the ones the unit
suite runs; only the servers differ. Here every credential crosses a real socket and
is checked by redis-server itself; Entra ID tokens go over TLS (a self-signed certificate, hence
``redis_unsafe_ssl``), the secret-backed URL lives in Secrets Manager on the moto server.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import ExitStack

import boto3
import pytest
import redis

from model_engine_infra.secrets.aws import SecretsManagerStore
from model_engine_infra.testing.conformance.redis import (
    AuthTokenConformance,
    Endpoint,
    EntraIdConformance,
    PlainUrlConformance,
    RedisServers,
    SecretUrlConformance,
    UrlPasswordConformance,
)
from model_engine_infra.testing.servers import RunningServer, start_redis

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def password_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    with start_redis(tmp_path_factory.mktemp("redis-pw"), password=f"token-{uuid.uuid4().hex[:12]}") as server:
        yield server


@pytest.fixture(scope="module")
def tls_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    with start_redis(tmp_path_factory.mktemp("redis-tls"), tls=True) as server:
        yield server


@pytest.fixture
def redis_servers(
    mei_redis_server: RunningServer,
    password_redis: RunningServer,
    tls_redis: RunningServer,
    mei_moto_server: RunningServer,
) -> Iterator[RedisServers]:
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
        yield RedisServers(
            open=Endpoint(mei_redis_server.host, mei_redis_server.port, admins[0]),
            password=Endpoint(password_redis.host, password_redis.port, admins[1], password),
            tls=Endpoint(tls_redis.host, tls_redis.port, admins[2]),
            secrets=SecretsManagerStore(sm, region="us-east-1"),
            put_secret=lambda name, value: sm.create_secret(Name=name, SecretString=value),
            client_from_url=redis.Redis.from_url,
        )


class TestPlainUrlOnServers(PlainUrlConformance):
    """On redis-server (ACL users, requirepass, TLS); secrets in Secrets Manager on the moto server."""


class TestUrlPasswordOnServers(UrlPasswordConformance):
    """On redis-server (ACL users, requirepass, TLS); secrets in Secrets Manager on the moto server."""


class TestAuthTokenOnServers(AuthTokenConformance):
    """On redis-server (ACL users, requirepass, TLS); secrets in Secrets Manager on the moto server."""


class TestSecretUrlOnServers(SecretUrlConformance):
    """On redis-server (ACL users, requirepass, TLS); secrets in Secrets Manager on the moto server."""


class TestEntraIdOnServers(EntraIdConformance):
    """On redis-server (ACL users, requirepass, TLS); secrets in Secrets Manager on the moto server."""
