"""Every setting each broker and result backend gets, and the bad inputs that must be refused."""

from __future__ import annotations

from pathlib import Path

import pytest

from model_engine_infra import load_config
from model_engine_infra.config import InfraConfig
from model_engine_infra.errors import ConfigError
from model_engine_infra.tasks import BrokerType
from model_engine_infra.tasks.app import TaskVisibility, celery_app, celery_conf
from model_engine_infra.tasks.settings import (
    SERVICEBUS_TRANSPORT_ALIAS,
    RedisBroker,
    backend_settings,
    default_backend_protocol,
    encoded_size,
)

AZURE = InfraConfig(
    cloud_provider="azure", servicebus_namespace="my-ns", abs_account_name="acct", abs_container_name="c"
)


# --- Service Bus ---------------------------------------------------------------------------------


def test_servicebus_broker_settings() -> None:
    broker, conf = celery_conf(AZURE)
    assert broker.url == "azureservicebus://DefaultAzureCredential@my-ns.servicebus.windows.net"
    assert conf["broker_url"] == broker.url
    assert conf["broker_transport"] == SERVICEBUS_TRANSPORT_ALIAS
    assert conf["broker_transport_options"] == {
        "uamqp_keep_alive_interval": 30,
        "retry_total": 3,
        "retry_backoff_factor": 0.8,
        "retry_backoff_max": 120,
        "body_encoding": "utf-8",
    }
    assert conf["broker_connection_retry"] is True
    assert conf["broker_connection_retry_on_startup"] is True
    assert "broker_pool_limit" not in conf  # Celery's default pool (10) stays
    assert broker.max_message_bytes == 256 * 1024


def test_servicebus_namespace_given_in_full() -> None:
    config = AZURE.model_copy(update={"servicebus_namespace": "my-ns.servicebus.windows.net"})
    assert celery_conf(config)[0].url.endswith("@my-ns.servicebus.windows.net")


def test_keep_alive_interval_from_the_environment() -> None:
    env = {
        "MODEL_ENGINE_INFRA_CLOUD_PROVIDER": "azure",
        "SERVICEBUS_NAMESPACE": "ns1",
        "SERVICEBUS_KEEP_ALIVE_INTERVAL": "12",
        "MODEL_ENGINE_INFRA_CACHE_REDIS_AZURE_HOST": "cache.redis.cache.windows.net:6380",
        "ABS_ACCOUNT_NAME": "acct",
        "ABS_CONTAINER_NAME": "c",
    }
    _, conf = celery_conf(load_config(None, env=env))
    assert conf["broker_transport_options"]["uamqp_keep_alive_interval"] == 12


def test_servicebus_without_namespace() -> None:
    with pytest.raises(ConfigError, match="namespace") as err:
        celery_conf(InfraConfig(cloud_provider="azure"))
    assert "SERVICEBUS_NAMESPACE" in (err.value.fix or "")


def test_pool_limit_zero_refused_on_servicebus_by_validation() -> None:
    env = {
        "MODEL_ENGINE_INFRA_CLOUD_PROVIDER": "azure",
        "SERVICEBUS_NAMESPACE": "ns1",
        "MODEL_ENGINE_INFRA_CELERY_BROKER_POOL_LIMIT": "0",
        "MODEL_ENGINE_INFRA_CACHE_REDIS_AZURE_HOST": "cache.redis.cache.windows.net:6380",
    }
    with pytest.raises(ConfigError, match="keep-alives never flow") as err:
        load_config(None, env=env)
    assert err.value.key == "MODEL_ENGINE_INFRA_CELERY_BROKER_POOL_LIMIT"


def test_pool_limit_zero_refused_on_servicebus_by_the_app_too() -> None:
    """A config built in code skips load_config's validation; the app factory still refuses."""
    with pytest.raises(ConfigError, match="keep-alives never flow"):
        celery_conf(AZURE.model_copy(update={"celery_broker_pool_limit": 0}))


def test_pool_limit_honoured_elsewhere() -> None:
    config = InfraConfig(cloud_provider="onprem", redis_host="r", celery_broker_pool_limit=0)
    assert celery_conf(config)[1]["broker_pool_limit"] == 0
    config = AZURE.model_copy(update={"celery_broker_pool_limit": 20})
    assert celery_conf(config)[1]["broker_pool_limit"] == 20


def test_servicebus_app_uses_the_retrying_transport() -> None:
    from kombu.transport import resolve_transport

    from model_engine_infra.tasks.servicebus_transport import TRANSIENT_ERRORS, Transport

    app = celery_app("t", config=AZURE)
    with app.connection_for_write() as conn:  # no I/O: the transport class is resolved lazily
        assert conn.transport_cls == SERVICEBUS_TRANSPORT_ALIAS
        assert conn.get_transport_cls() is Transport
    assert resolve_transport(SERVICEBUS_TRANSPORT_ALIAS) is Transport
    from azure.servicebus.exceptions import ServiceBusCommunicationError, ServiceBusConnectionError

    for error in (ServiceBusConnectionError, ServiceBusCommunicationError, *TRANSIENT_ERRORS):
        assert error in Transport.connection_errors
    from kombu.transport.azureservicebus import Transport as KombuTransport

    assert ServiceBusConnectionError not in KombuTransport.connection_errors  # why the subclass exists


# --- SQS -----------------------------------------------------------------------------------------


def test_sqs_broker_settings() -> None:
    config = InfraConfig(cloud_provider="aws", default_region="eu-west-3")
    broker, conf = celery_conf(config)
    assert broker.url == "sqs://"
    assert conf["broker_transport_options"] == {
        "region": "eu-west-3",
        "visibility_timeout": 3600,
        "wait_time_seconds": 20,
    }
    assert "broker_transport" not in conf
    assert broker.max_message_bytes == 256 * 1024


@pytest.mark.parametrize(("visibility", "seconds"), [("VISIBILITY_10M", 600), ("1h", 3600), ("visibility_1h", 3600)])
def test_sqs_visibility(visibility: str, seconds: int) -> None:
    _, conf = celery_conf(InfraConfig(cloud_provider="aws"), task_visibility=visibility)
    assert conf["broker_transport_options"]["visibility_timeout"] == seconds


def test_sqs_refuses_24h_visibility() -> None:
    with pytest.raises(ConfigError, match="at most 12 hours"):
        celery_conf(InfraConfig(cloud_provider="aws"), task_visibility=TaskVisibility.VISIBILITY_24H)


def test_sqs_endpoint_for_tests() -> None:
    broker, conf = celery_conf(InfraConfig(cloud_provider="aws"), sqs_endpoint_url="http://127.0.0.1:5000")
    assert broker.url == "sqs://127.0.0.1:5000"
    assert conf["broker_transport_options"]["is_secure"] is False
    with pytest.raises(ConfigError, match="http"):
        celery_conf(InfraConfig(cloud_provider="aws"), sqs_endpoint_url="127.0.0.1:5000")


def test_sqs_region_is_the_delegates_region() -> None:
    """The broker and the queue delegate both read default_region: they cannot disagree."""
    config = InfraConfig(cloud_provider="aws", default_region="ap-south-1")
    assert celery_conf(config)[1]["broker_transport_options"]["region"] == config.default_region


# --- Redis ---------------------------------------------------------------------------------------


def test_redis_24h_visibility_on_prem() -> None:
    """llm-engine's VISIBILITY_24H: 24 h, in database 3."""
    broker, conf = celery_conf(InfraConfig(cloud_provider="onprem", redis_host="redis.svc", redis_port=6380))
    assert broker.broker_type is BrokerType.REDIS_24H
    assert broker.url == "redis://redis.svc:6380/3"
    assert conf["broker_transport_options"]["visibility_timeout"] == 86400


def test_redis_visibility_follows_the_argument() -> None:
    config = InfraConfig(cloud_provider="gcp", redis_host="r", gcp_project_id="p")
    assert celery_conf(config)[1]["broker_transport_options"]["visibility_timeout"] == 3600
    assert celery_conf(config, task_visibility="10m")[1]["broker_transport_options"]["visibility_timeout"] == 600
    # REDIS_24H makes 24 h the default; an explicit visibility (onprem's 1 h endpoint-creation queue) wins
    _, conf = celery_conf(config, broker_type="redis_24h")
    assert (conf["broker_transport_options"]["visibility_timeout"], conf["broker_url"]) == (86400, "redis://r:6379/3")
    _, conf = celery_conf(config, broker_type="redis_24h", task_visibility="1h")
    assert (conf["broker_transport_options"]["visibility_timeout"], conf["broker_url"]) == (3600, "redis://r:6379/0")


def test_redis_source_with_credential_provider() -> None:
    provider = object()
    source = RedisBroker("rediss://app@cache:6380/0", {"credential_provider": provider})
    config = InfraConfig(cloud_provider="onprem", celery_backend_protocol="redis")
    broker, conf = celery_conf(config, redis=source)
    assert broker.url == "rediss://app@cache:6380/3"  # the visibility's database, not the source's
    assert conf["broker_transport_options"]["credential_provider"] is provider
    assert conf["result_backend"] == "rediss://app@cache:6380/1"  # llm-engine keeps results in database 1
    assert conf["redis_backend_credential_provider"] is provider
    assert conf["broker_use_ssl"]["ssl_cert_reqs"] is not None


def test_broker_settings_repr_hides_a_redis_password() -> None:
    """A plain URL (``worker --redis-url``, a non-managed Redis component) may carry the password."""
    source = RedisBroker("redis://app:hunter2@cache:6379/0")
    broker, _ = celery_conf(InfraConfig(cloud_provider="onprem", celery_backend_protocol="redis"), redis=source)
    assert broker.url == "redis://app:hunter2@cache:6379/3"  # Celery still gets the real URL
    for shown in (repr(source), repr(broker), str(broker)):
        assert "hunter2" not in shown
        assert "app:***@cache:6379" in shown


def test_redis_without_any_source() -> None:
    with pytest.raises(ConfigError, match="Redis") as err:
        celery_conf(InfraConfig(cloud_provider="onprem"))
    assert err.value.key == "redis_host"


def test_redis_transport_options_from_config() -> None:
    config = InfraConfig(
        cloud_provider="gcp", redis_host="r", gcp_project_id="p", redis_socket_timeout=2.5, redis_max_connections=7
    )
    options = celery_conf(config)[1]["broker_transport_options"]
    assert options["socket_timeout"] == 2.5
    assert options["max_connections"] == 7


# --- visibility ----------------------------------------------------------------------------------


@pytest.mark.parametrize("value", ["VISIBILITY_2H", "forever", "", "86400"])
def test_unknown_visibility(value: str) -> None:
    with pytest.raises(ConfigError, match="unknown task visibility") as err:
        TaskVisibility.from_name(value)
    assert "VISIBILITY_24H" in (err.value.fix or "")


def test_unknown_visibility_through_the_app() -> None:
    with pytest.raises(ConfigError, match="unknown task visibility"):
        celery_conf(InfraConfig(cloud_provider="aws"), task_visibility="VISIBILITY_3H")


def test_visibility_seconds_and_databases_are_llm_engines() -> None:
    assert [(v.value, v.seconds, v.redis_db) for v in TaskVisibility] == [
        ("VISIBILITY_1M", 60, 2),
        ("VISIBILITY_10M", 600, 1),
        ("VISIBILITY_1H", 3600, 0),
        ("VISIBILITY_24H", 86400, 3),
    ]
    assert TaskVisibility.from_name("1m") is TaskVisibility.VISIBILITY_1M
    assert TaskVisibility.from_name(3) is TaskVisibility.VISIBILITY_24H  # llm-engine's IntEnum value
    assert TaskVisibility.from_name("0") is TaskVisibility.VISIBILITY_1H


# --- result backends -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cloud", "protocol"), [("aws", "s3"), ("azure", "abs"), ("gcp", "redis"), ("onprem", "s3"), ("local", "file")]
)
def test_default_backend_per_cloud(cloud: str, protocol: str) -> None:
    assert default_backend_protocol(InfraConfig(cloud_provider=cloud)) == protocol


def test_backend_override() -> None:
    assert default_backend_protocol(InfraConfig(cloud_provider="aws", celery_backend_protocol="redis")) == "redis"


def test_s3_backend_for_minio() -> None:
    config = InfraConfig(cloud_provider="onprem", s3_bucket="results", s3_endpoint_url="http://minio:9000")
    conf = backend_settings(config, "s3")
    assert conf["result_backend"] == "model_engine_infra.tasks.results:ChecksummedS3Backend"
    assert conf["s3_bucket"] == "results"
    assert conf["s3_endpoint_url"] == "http://minio:9000"
    assert conf["s3_addressing_style"] == "path"
    assert conf["s3_checksum_sha256"] is False
    assert conf["s3_base_path"] == "tmp/celery/"  # where llm-engine's workers put them
    assert backend_settings(config.model_copy(update={"celery_result_prefix": "results"}), "s3")["s3_base_path"] == (
        "results/"
    )


def test_abs_backend_uses_entra_id() -> None:
    conf = backend_settings(AZURE, "abs")
    assert conf["result_backend"] == "azureblockblob://DefaultAzureCredential@https://acct.blob.core.windows.net"
    # llm-engine's workers: Celery's "celery" container, no prefix (not the artifacts' container)
    assert (conf["azureblockblob_container_name"], conf["azureblockblob_base_path"]) == ("celery", "")
    moved = AZURE.model_copy(update={"celery_result_container": "results", "celery_result_prefix": "/runs/"})
    conf = backend_settings(moved, "abs")
    assert (conf["azureblockblob_container_name"], conf["azureblockblob_base_path"]) == ("results", "runs/")


def test_abs_backend_needs_account() -> None:
    with pytest.raises(ConfigError, match="storage account"):
        backend_settings(InfraConfig(cloud_provider="azure"), "abs")


def test_gcs_backend() -> None:
    conf = backend_settings(InfraConfig(cloud_provider="gcp", s3_bucket="b", gcp_project_id="proj"), "gcs")
    assert conf["result_backend"] == "model_engine_infra.tasks.gcs_results:EndpointGCSBackend"
    assert (conf["gcs_bucket"], conf["gcs_project"], conf["gcs_endpoint_url"]) == ("b", "proj", None)
    with pytest.raises(ConfigError, match="project"):
        backend_settings(InfraConfig(cloud_provider="gcp"), "gcs")


def test_file_backend(tmp_path: Path) -> None:
    conf = backend_settings(InfraConfig(local_data_dir=str(tmp_path)), "file")
    assert conf["result_backend"] == f"file://{tmp_path.resolve()}/results"
    assert (tmp_path / "results").is_dir()


def test_unknown_backend() -> None:
    with pytest.raises(ConfigError, match="unknown result backend"):
        backend_settings(InfraConfig(), "mongodb")


# --- SHA-256 -------------------------------------------------------------------------------------


def test_sha256_settings() -> None:
    config = InfraConfig(cloud_provider="aws", celery_enable_sha256=True)
    _, conf = celery_conf(config)
    assert conf["security_digest"] == "sha256"
    assert conf["s3_checksum_sha256"] is True
    _, plain = celery_conf(InfraConfig(cloud_provider="aws"))
    assert "security_digest" not in plain
    assert plain["s3_checksum_sha256"] is False


# --- sizes ---------------------------------------------------------------------------------------


def test_encoded_size_per_encoding() -> None:
    sqs = celery_conf(InfraConfig(cloud_provider="aws"))[0]
    sb = celery_conf(AZURE)[0]
    body = 'x"' * 300  # 600 bytes, half of them quotes
    assert encoded_size(sb, body, 0) == 900  # utf-8 inside a JSON string: quotes double
    assert encoded_size(sqs, body, 0) == 4 * ((4 * 200 + 2) // 3)  # base64 body, then base64 envelope
