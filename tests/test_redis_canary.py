"""Canary passwords and tokens planted in every Redis credential source must never show up.

Checked: ``repr``/``str`` of every object on the path, logging at DEBUG, exception messages,
``model-engine-infra config show``, and Celery's worker startup banner.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import boto3
import botocore.session
import pytest
from moto import mock_aws
from pydantic import SecretStr
from typer.testing import CliRunner

from model_engine_infra import InfraConfig
from model_engine_infra.errors import InfraError
from model_engine_infra.redis.celery import celery_settings_for, celery_ssl_options
from model_engine_infra.redis.connection import ManagedRedisConnection, _auth_error, connection_from_config
from model_engine_infra.redis.credentials import RefreshingCredentialProvider, clear_shared_providers
from model_engine_infra.redis.sources import parse_url
from model_engine_infra.redis.tokens import ElastiCacheIamTokenSource, MemorystoreTokenSource
from model_engine_infra.secrets.aws import SecretsManagerStore
from model_engine_infra.testing.azure_identity import FakeTokenCredential
from model_engine_infra.testing.redis import ScriptedTokenSource

CANARY = "canary-7f3a"


@pytest.fixture(autouse=True)
def _providers() -> Iterator[None]:
    yield
    clear_shared_providers()


class CanaryGoogle:
    token: str | None = None
    expiry = None

    def refresh(self, request: object) -> None:
        self.token = f"{CANARY}-adc"


def plant_secrets(sm: Any) -> None:
    sm.create_secret(Name="cache/url", SecretString=json.dumps({"cache-url": f"rediss://:{CANARY}-sm1@h:6379/1"}))
    sm.create_secret(
        Name="infra/redis",
        SecretString=json.dumps({"host": "h", "port": 6379, "auth_token": f"{CANARY}-sm2", "scheme": "rediss"}),
    )


def every_connection(sm: Any) -> list[ManagedRedisConnection]:
    store = SecretsManagerStore(sm, region="us-east-1")
    session = botocore.session.get_session()
    session.set_credentials("AKIDCANARY", f"{CANARY}-aws-secret-key")
    configs: list[tuple[InfraConfig, dict[str, Any]]] = [
        (InfraConfig(cloud_provider="onprem", cache_redis_onprem_url=f"redis://u:{CANARY}-onprem@h:1/0"), {}),
        (InfraConfig(cloud_provider="aws", cache_redis_aws_url=f"redis://:{CANARY}-awsurl@h:1/0"), {}),
        (InfraConfig(cloud_provider="gcp", cache_redis_gcp_url=f"rediss://:{CANARY}-gcp@h:1/0"), {}),
        (InfraConfig(cloud_provider="onprem", redis_host="h", redis_auth_token=SecretStr(f"{CANARY}-token")), {}),
        (InfraConfig(cloud_provider="aws", cache_redis_aws_secret_name="cache/url"), {"secrets": store}),
        (InfraConfig(cloud_provider="aws", redis_aws_secret_name="infra/redis"), {"secrets": store}),
        (
            InfraConfig(cloud_provider="azure", cache_redis_azure_host="c:6380", azure_object_id="oid"),
            {"azure_credential": FakeTokenCredential(prefix=f"{CANARY}-entra")},
        ),
        (
            InfraConfig(
                cloud_provider="aws",
                redis_host="h",
                redis_iam_auth="elasticache",
                redis_iam_user="u",
                redis_iam_cache_name="c",
            ),
            {"aws_session": session},
        ),
        (
            InfraConfig(cloud_provider="gcp", redis_host="h", redis_iam_auth="memorystore"),
            {"google_credentials": CanaryGoogle()},
        ),
    ]
    return [connection_from_config(config, **kwargs) for config, kwargs in configs]


def shown(conn: ManagedRedisConnection) -> list[str]:
    provider = conn.credential_provider
    assert provider is not None
    token = provider.current_token()
    objects: list[Any] = [conn, conn.source, conn.source.target, conn.source.tokens, provider, token]
    texts = [repr(o) for o in objects] + [str(o) for o in objects]
    texts += [conn.redacted_url(), *celery_settings_for(conn)[0:1], json.dumps(celery_settings_for(conn)[1])]
    return texts


def test_no_canary_in_repr_str_logs_or_celery_settings(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    with mock_aws():
        sm = boto3.client("secretsmanager", region_name="us-east-1")
        plant_secrets(sm)
        caplog.clear()  # planting them is the test's doing; from here on only the library runs
        connections = every_connection(sm)
        secrets_seen = []
        for conn in connections:
            provider = conn.credential_provider
            assert provider is not None
            secrets_seen.append(provider.get_credentials()[-1])
            provider.refresh_now()
            secrets_seen.append(provider.get_credentials()[-1])
            provider.report_rejected()
            conn.client()
            current = provider.get_credentials()[-1]
            secrets_seen.append(current)
            for text in shown(conn):
                assert CANARY not in text, text
                for secret in secrets_seen:
                    assert secret not in text
            assert quote(current, safe="") in conn.url()  # the one documented door: a URL snapshot
            conn.close()
    assert len(secrets_seen) == 27
    logged = caplog.text + " ".join(str(r.args) for r in caplog.records)
    assert CANARY not in logged
    for secret in secrets_seen:
        assert secret not in logged


def test_no_canary_in_exception_messages(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    messages: list[str] = []
    for bad in (f"http://u:{CANARY}@h:1/0", f"redis://u:{CANARY}@h:notaport/0", f"redis://u:{CANARY}@h:1/x"):
        with pytest.raises(InfraError) as info:
            parse_url(bad, origin="cache_redis_onprem_url")
        messages.append(str(info.value))
    failing = ScriptedTokenSource([f"{CANARY}-1"])
    provider = RefreshingCredentialProvider(failing)  # type: ignore[arg-type]
    failing.fail = RuntimeError(f"upstream said {CANARY}")  # even an SDK error quoting a secret stays out
    with pytest.raises(InfraError) as fetch_error:
        provider.get_credentials()
    messages.append(str(fetch_error.value))

    class Conn:
        credential_provider = provider
        host, port, path = "h", 6380, ""

    messages.append(str(_auth_error(Conn(), Exception("WRONGPASS invalid username-password pair"))))
    for message in messages:
        assert CANARY not in message, message
    assert CANARY not in caplog.text


def test_no_canary_in_config_show() -> None:
    from model_engine_infra.cli import app

    env = {
        "MODEL_ENGINE_INFRA_CLOUD_PROVIDER": "onprem",
        "REDIS_HOST": "h",
        "REDIS_AUTH_TOKEN": f"{CANARY}-env-token",
        "MODEL_ENGINE_INFRA_CACHE_REDIS_ONPREM_URL": f"redis://u:{CANARY}-onprem@h:1/0",
        "MODEL_ENGINE_SECRET_REDIS": f"{CANARY}-secret",
    }
    result = CliRunner().invoke(app, ["config", "show"], env=env)
    assert result.exit_code == 0, result.output
    assert "REDIS_AUTH_TOKEN" in result.output or "redis_auth_token" in result.output
    assert CANARY not in result.output


@pytest.mark.filterwarnings("ignore:You're running the worker with superuser privileges")
def test_no_canary_in_celery_startup_banner() -> None:
    from celery import Celery
    from celery.apps.worker import Worker

    conn = connection_from_config(
        InfraConfig(cloud_provider="onprem", redis_host="h", redis_auth_token=SecretStr(f"{CANARY}-celery"))
    )
    url, options = celery_settings_for(conn)
    app = Celery("canary", set_as_current=False)
    tls = celery_ssl_options(conn)
    app.conf.update(
        broker_url=url,
        result_backend=url,
        broker_transport_options=options,
        broker_use_ssl=tls,
        redis_backend_use_ssl=tls,
    )
    worker = Worker(app=app, hostname="canary@test", no_color=True, quiet=True)
    banner = worker.startup_info(artlines=False)
    assert "redis" in banner
    assert CANARY not in banner
    conn.close()


def test_elasticache_and_memorystore_tokens_are_not_in_their_repr() -> None:
    session = botocore.session.get_session()
    session.set_credentials("AKID", "secret")
    source = ElastiCacheIamTokenSource("u", "c", "us-east-1", session=session)
    token = source.fetch()
    assert token.password not in repr(source) + repr(token)
    google = MemorystoreTokenSource(credentials=CanaryGoogle(), request=object())
    assert CANARY not in repr(google) + repr(google.fetch())
