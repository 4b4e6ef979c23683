"""The Redis connection conformance suite on fakeredis, one class per credential source.

Every credential is checked by the server: fakeredis with ACL users here (its connections swapped in
for the component's connection classes, so TLS is not exercised); redis-server with ACL users,
``requirepass`` and TLS in integration/test_redis_connection_servers.py, which runs the same classes.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack
from typing import Any
from urllib.parse import urlsplit

import fakeredis
import fakeredis.aioredis
import pytest

from model_engine_infra.redis import connection as connection_module
from model_engine_infra.testing.conformance.redis import (
    AuthTokenConformance,
    Endpoint,
    EntraIdConformance,
    PlainUrlConformance,
    RedisServers,
    SecretUrlConformance,
    UrlPasswordConformance,
    unique,
)


def fake_servers(monkeypatch: pytest.MonkeyPatch, stack: ExitStack) -> RedisServers:
    """Three fakeredis servers reached by host name, a moto Secrets Manager, and the component patched to them."""
    import boto3
    from moto import mock_aws

    from model_engine_infra.secrets.aws import SecretsManagerStore

    by_address: dict[tuple[str, int], fakeredis.FakeServer] = {}
    down = fakeredis.FakeServer()
    down.connected = False

    def endpoint(host: str, port: int, password: str | None = None) -> Endpoint:
        server = fakeredis.FakeServer()
        by_address[(host, port)] = server
        admin: Any = fakeredis.FakeRedis(server=server, protocol=2)
        admin.execute_command("ACL", "SETUSER", "admin", "on", ">admin-pw", "~*", "&*", "+@all")
        if password is not None:
            admin.execute_command("ACL", "SETUSER", "default", "resetpass", f">{password}")
            admin = fakeredis.FakeRedis(server=server, protocol=2, username="admin", password="admin-pw")
        return Endpoint(host, port, admin, password)

    def pick(kwargs: dict[str, Any]) -> fakeredis.FakeServer:
        return by_address.get((kwargs.get("host", ""), int(kwargs.get("port", 0))), down)

    def fake_class(mixin: type, base: Any) -> type:
        def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
            for name in [k for k in kwargs if k.startswith("ssl_")]:
                del kwargs[name]  # TLS is not simulated
            # fakeredis speaks RESP2 only, which has no maintenance notifications; its async
            # connection answers a health-check PING badly, so health checks are off here
            kwargs.update(server=pick(kwargs), protocol=2, maint_notifications_config=None, health_check_interval=0)
            base.__init__(self, *args, **kwargs)

        return type(f"Fake{mixin.__name__}", (mixin, base), {"__init__": __init__})

    sync_cls = fake_class(connection_module._ReportRejection, fakeredis.FakeRedisConnection)
    async_cls = fake_class(connection_module._AsyncReportRejection, fakeredis.aioredis.FakeAsyncRedisConnection)
    for name in ("TokenConnection", "TokenSSLConnection"):
        monkeypatch.setattr(connection_module, name, sync_cls)
    for name in ("AsyncTokenConnection", "AsyncTokenSSLConnection"):
        monkeypatch.setattr(connection_module, name, async_cls)

    def client_from_url(url: str) -> Any:
        parts = urlsplit(url)
        server = by_address[(parts.hostname or "", parts.port or 6379)]
        return fakeredis.FakeRedis(server=server, protocol=2, username=parts.username, password=parts.password)

    stack.enter_context(mock_aws())
    sm = boto3.client("secretsmanager", region_name="us-east-1")
    return RedisServers(
        open=endpoint("redis-open", 6379),
        password=endpoint("redis-password", 6379, password=unique("token")),
        tls=endpoint("redis-tls", 6380),
        secrets=SecretsManagerStore(sm, region="us-east-1"),
        put_secret=lambda name, value: sm.create_secret(Name=name, SecretString=value),
        client_from_url=client_from_url,
    )


@pytest.fixture
def redis_servers(monkeypatch: pytest.MonkeyPatch) -> Iterator[RedisServers]:
    with ExitStack() as stack:
        yield fake_servers(monkeypatch, stack)


class TestPlainUrl(PlainUrlConformance):
    """The contract on fakeredis (ACL users checked, TLS not)."""


class TestUrlPassword(UrlPasswordConformance):
    """The contract on fakeredis (ACL users checked, TLS not)."""


class TestAuthToken(AuthTokenConformance):
    """The contract on fakeredis (ACL users checked, TLS not)."""


class TestSecretUrl(SecretUrlConformance):
    """The contract on fakeredis (ACL users checked, TLS not)."""


class TestEntraId(EntraIdConformance):
    """The contract on fakeredis (ACL users checked, TLS not)."""
