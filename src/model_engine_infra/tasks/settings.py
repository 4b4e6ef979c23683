"""Broker and result-backend settings for each `BrokerType`, as plain data (no Celery import).

`celery_app()` turns these into a Celery app; keeping them pure lets the unit tests check every
setting of every broker without a broker, and lets ``config check`` explain what will run.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from ..config.model import InfraConfig
from ..errors import ConfigError
from ..redact import redact_url
from .broker import BrokerType, broker_type_for

SERVICEBUS_TRANSPORT_ALIAS = "mei-azureservicebus"
SERVICEBUS_TRANSPORT_TARGET = "model_engine_infra.tasks.servicebus_transport:Transport"
LOCAL_TRANSPORT_TARGET = "model_engine_infra.tasks.local_transport:Transport"
REDIS_TRANSPORT_TARGET = "model_engine_infra.tasks.redis_transport:Transport"
SQS_MAX_VISIBILITY_SECONDS = 12 * 3600
LOCAL_POLLING_INTERVAL = 0.05
# Payload limits the broker enforces, after the transport's encoding (see `encoded_size`).
KIB = 1024
MAX_MESSAGE_BYTES: dict[BrokerType, int | None] = {
    BrokerType.SQS: 256 * KIB,
    BrokerType.SERVICEBUS: 256 * KIB,  # Standard tier; Premium allows more only when configured
    BrokerType.REDIS: None,  # 512 MB per value: not a limit a task payload meets first
    BrokerType.REDIS_24H: None,
    BrokerType.LOCAL: None,
}
BACKEND_PROTOCOLS = ("redis", "s3", "abs", "gcs", "file")
CLOUD_DEFAULT_BACKEND = {"aws": "s3", "azure": "abs", "gcp": "gcs", "onprem": "redis", "local": "file"}
S3_BACKEND = "model_engine_infra.tasks.results:ChecksummedS3Backend"
GCS_BACKEND = "model_engine_infra.tasks.gcs_results:EndpointGCSBackend"  # Celery's GCSBackend needs Firestore (chords)


class TaskVisibility(str, enum.Enum):
    """How long a delivered, unacknowledged task stays hidden before another worker may take it."""

    VISIBILITY_10M = "VISIBILITY_10M"
    VISIBILITY_1H = "VISIBILITY_1H"
    VISIBILITY_24H = "VISIBILITY_24H"

    @property
    def seconds(self) -> int:
        return {"VISIBILITY_10M": 600, "VISIBILITY_1H": 3600, "VISIBILITY_24H": 86400}[self.value]

    @classmethod
    def from_name(cls, value: TaskVisibility | str) -> TaskVisibility:
        """Accept a member, its name (any case) or a short form (``10m``, ``1h``, ``24h``)."""
        if isinstance(value, cls):
            return value
        text = str(value).strip().upper()
        for member in cls:
            if text in (member.value, member.value.removeprefix("VISIBILITY_")):
                return member
        raise ConfigError(
            f"unknown task visibility {value!r}",
            key="task_visibility",
            value=value,
            fix="use one of " + ", ".join(m.value for m in cls),
        )


@dataclass(frozen=True)
class RedisBroker:
    """A Redis URL without secrets plus kombu transport options (e.g. ``credential_provider``)."""

    url: str
    transport_options: Mapping[str, Any] = field(default_factory=dict)
    # ``broker_use_ssl`` / ``redis_backend_use_ssl`` for rediss (None: derived from the config)
    ssl_options: Mapping[str, Any] | None = None

    def __repr__(self) -> str:  # a plain URL (``--redis-url``) may carry the password
        return f"RedisBroker(url={redact_url(self.url)!r}, transport_options={dict(self.transport_options)!r})"


@dataclass(frozen=True)
class BrokerSettings:
    broker_type: BrokerType
    url: str
    transport: str | None
    transport_options: dict[str, Any]
    conf: dict[str, Any]
    max_message_bytes: int | None
    # How the transport encodes a body: "base64" grows it by 4/3, "utf-8" leaves it as is.
    body_encoding: str
    # SQS base64-encodes the whole envelope again (kombu's ``sqs_base64_encoding``).
    envelope_base64: bool = False

    def __repr__(self) -> str:  # the URL may carry a Redis password; show it redacted
        return (
            f"BrokerSettings(broker_type={self.broker_type.value!r}, url={redact_url(self.url)!r}, "
            f"transport={self.transport!r}, max_message_bytes={self.max_message_bytes!r})"
        )


def coerce_broker_type(value: BrokerType | str) -> BrokerType:
    if isinstance(value, BrokerType):
        return value
    try:
        return BrokerType(str(value).lower())
    except ValueError:
        raise ConfigError(
            f"unknown broker type {value!r}",
            key="broker_type",
            value=value,
            fix="use one of " + ", ".join(b.value for b in BrokerType),
        ) from None


BROKER_CLOUDS: dict[BrokerType, tuple[str, ...]] = {
    BrokerType.SQS: ("aws",),
    BrokerType.SERVICEBUS: ("azure",),
    BrokerType.LOCAL: ("local",),
}


def check_broker_for_cloud(config: InfraConfig, broker_type: BrokerType) -> None:
    """SQS only on aws, Service Bus only on azure, the filesystem broker only on local; Redis anywhere."""
    clouds = BROKER_CLOUDS.get(broker_type)
    if clouds is None or config.cloud_provider in clouds:
        return
    raise ConfigError(
        f"the {broker_type.value} broker does not exist on cloud_provider {config.cloud_provider!r} "
        f"(it needs {' or '.join(clouds)}); every async endpoint would fail",
        key="celeryBrokerType",
        value=broker_type.value,
        fix=f"remove celeryBrokerType to follow the cloud ({broker_type_for_cloud(config).value}), "
        "or set celery_broker_type_redis: true for Redis",
    )


def broker_type_for_cloud(config: InfraConfig) -> BrokerType:
    return broker_type_for(config.model_copy(update={"celery_broker_type": None, "celery_broker_type_redis": None}))


def redis_fallback_url(config: InfraConfig) -> str:
    """``redis[s]://REDIS_HOST:REDIS_PORT/0`` when no Redis component supplies a URL."""
    if config.redis_host is None:
        raise ConfigError(
            "the Redis broker needs a Redis server and none is configured",
            key="redis_host",
            value=None,
            fix="set redisHost/REDIS_HOST (and redisPort), or a cache Redis URL",
        )
    scheme = "rediss" if config.redis_enable_tls else "redis"
    return f"{scheme}://{config.redis_host}:{config.redis_port}/0"


def redis_ssl_options(config: InfraConfig, source: RedisBroker) -> dict[str, Any] | None:
    """TLS settings for a ``rediss`` URL: the Redis component's, else from ``redis_unsafe_ssl``."""
    if not source.url.startswith("rediss://"):
        return None
    if source.ssl_options is not None:
        return dict(source.ssl_options)
    import ssl

    return {"ssl_cert_reqs": ssl.CERT_NONE if config.redis_unsafe_ssl else ssl.CERT_REQUIRED}


def _servicebus(config: InfraConfig) -> BrokerSettings:
    if not config.servicebus_namespace:
        raise ConfigError(
            "the Service Bus broker needs a namespace",
            key="azure.servicebus_namespace",
            value=None,
            fix="set azure.servicebus_namespace (env SERVICEBUS_NAMESPACE), the part before .servicebus.windows.net",
        )
    if config.celery_broker_pool_limit == 0:
        raise ConfigError(
            "0 disables the connection pool on Service Bus: each publish builds and drops a client, so "
            "AMQP keep-alives never flow and Azure drops the idle connection after 300 s",
            key="celery_broker_pool_limit",
            value=0,
            fix="remove it to keep Celery's default pool (10)",
        )
    namespace = config.servicebus_namespace.removesuffix(".servicebus.windows.net")
    options = {
        "uamqp_keep_alive_interval": config.servicebus_keep_alive_interval,
        "retry_total": 3,
        "retry_backoff_factor": 0.8,
        "retry_backoff_max": 120,
        "body_encoding": "utf-8",
    }
    return BrokerSettings(
        BrokerType.SERVICEBUS,
        f"azureservicebus://DefaultAzureCredential@{namespace}.servicebus.windows.net",
        SERVICEBUS_TRANSPORT_ALIAS,
        options,
        {"broker_connection_retry": True, "broker_connection_retry_on_startup": True},
        MAX_MESSAGE_BYTES[BrokerType.SERVICEBUS],
        "utf-8",
    )


def _sqs(config: InfraConfig, visibility: TaskVisibility, endpoint_url: str | None) -> BrokerSettings:
    if visibility.seconds > SQS_MAX_VISIBILITY_SECONDS:
        raise ConfigError(
            f"SQS allows a visibility timeout of at most 12 hours, {visibility.value} asks for "
            f"{visibility.seconds // 3600} hours",
            key="task_visibility",
            value=visibility.value,
            fix="use VISIBILITY_1H or VISIBILITY_10M on SQS",
        )
    url = "sqs://"
    options: dict[str, Any] = {
        "region": config.default_region,
        "visibility_timeout": visibility.seconds,
        "wait_time_seconds": 20,
    }
    if endpoint_url is not None:
        parts = urlsplit(endpoint_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ConfigError(
                "the SQS endpoint must be an http(s) URL",
                key="sqs_endpoint_url",
                value=endpoint_url,
                fix="write it like http://127.0.0.1:5000",
            )
        url = f"sqs://{parts.hostname}" + (f":{parts.port}" if parts.port else "")
        options["is_secure"] = parts.scheme == "https"
    return BrokerSettings(
        BrokerType.SQS, url, None, options, {}, MAX_MESSAGE_BYTES[BrokerType.SQS], "base64", envelope_base64=True
    )


def _redis(
    config: InfraConfig, broker_type: BrokerType, visibility: TaskVisibility, redis: RedisBroker | str | None
) -> BrokerSettings:
    if broker_type is BrokerType.REDIS_24H:
        visibility = TaskVisibility.VISIBILITY_24H
    source = redis if isinstance(redis, RedisBroker) else RedisBroker(redis or redis_fallback_url(config))
    options: dict[str, Any] = {
        "visibility_timeout": visibility.seconds,
        "socket_timeout": config.redis_socket_timeout,
        "socket_connect_timeout": config.redis_socket_timeout,
        "health_check_interval": config.redis_health_check_interval,
        "max_connections": config.redis_max_connections,
        **source.transport_options,
    }
    conf: dict[str, Any] = {}
    ssl_options = redis_ssl_options(config, source)
    if ssl_options is not None:
        conf["broker_use_ssl"] = ssl_options
    return BrokerSettings(broker_type, source.url, REDIS_TRANSPORT_TARGET, options, conf, None, "base64")


def _local(config: InfraConfig) -> BrokerSettings:
    from ..queues.local import ensure_broker_dirs, local_broker_paths

    paths = local_broker_paths(config)  # the queue delegate counts messages in the same folders
    ensure_broker_dirs(paths)
    options: dict[str, Any] = {k: v for k, v in paths.items() if k != "meta_folder"}
    options.update(polling_interval=LOCAL_POLLING_INTERVAL, store_processed=False)
    return BrokerSettings(BrokerType.LOCAL, "filesystem://", LOCAL_TRANSPORT_TARGET, options, {}, None, "base64")


def broker_settings(
    config: InfraConfig,
    broker_type: BrokerType,
    *,
    visibility: TaskVisibility = TaskVisibility.VISIBILITY_1H,
    redis: RedisBroker | str | None = None,
    sqs_endpoint_url: str | None = None,
) -> BrokerSettings:
    """Everything Celery needs to reach the broker of ``broker_type``."""
    check_broker_for_cloud(config, broker_type)
    if broker_type is BrokerType.SERVICEBUS:
        settings = _servicebus(config)
    elif broker_type is BrokerType.SQS:
        settings = _sqs(config, visibility, sqs_endpoint_url or config.sqs_endpoint_url)
    elif broker_type in (BrokerType.REDIS, BrokerType.REDIS_24H):
        settings = _redis(config, broker_type, visibility, redis)
    else:
        settings = _local(config)
    if config.celery_broker_pool_limit is not None:
        settings.conf["broker_pool_limit"] = config.celery_broker_pool_limit
    return settings


def default_backend_protocol(config: InfraConfig) -> str:
    if config.celery_backend_protocol is not None:
        return config.celery_backend_protocol
    return CLOUD_DEFAULT_BACKEND.get(config.cloud_provider, "redis")


def backend_settings(config: InfraConfig, protocol: str, *, redis: RedisBroker | str | None = None) -> dict[str, Any]:
    """Celery ``result_backend`` and its companion settings for ``protocol``."""
    if protocol not in BACKEND_PROTOCOLS:
        raise ConfigError(
            f"unknown result backend {protocol!r}",
            key="celery_backend_protocol",
            value=protocol,
            fix="use one of " + ", ".join(BACKEND_PROTOCOLS),
        )
    if protocol == "file":
        folder = Path(config.local_data_dir).expanduser().resolve() / "results"
        folder.mkdir(parents=True, exist_ok=True)
        return {"result_backend": f"file://{folder}"}
    if protocol == "redis":
        source = redis if isinstance(redis, RedisBroker) else RedisBroker(redis or redis_fallback_url(config))
        conf: dict[str, Any] = {"result_backend": source.url}
        provider = source.transport_options.get("credential_provider")
        if provider is not None:
            conf["redis_backend_credential_provider"] = provider
        ssl_options = redis_ssl_options(config, source)
        if ssl_options is not None:
            conf["redis_backend_use_ssl"] = ssl_options
        return conf
    if protocol == "s3":
        return {
            "result_backend": S3_BACKEND,
            "s3_bucket": config.s3_bucket,
            "s3_base_path": "celery-results/",
            "s3_endpoint_url": config.s3_endpoint_url,
            # Celery's S3 backend settings; None leaves the AWS credential chain in charge
            "s3_access_key_id": config.s3_access_key_id,
            "s3_secret_access_key": config.secret("s3_secret_access_key"),
            "s3_region": config.default_region,
            "s3_addressing_style": config.s3_addressing_style or ("path" if config.s3_endpoint_url else None),
            "s3_checksum_sha256": bool(config.celery_enable_sha256),
        }
    if protocol == "abs":
        return _abs_backend(config)
    if not config.gcp_project_id:
        raise ConfigError(
            "the gcs result backend needs a project",
            key="gcp_project_id",
            value=None,
            fix="set gcp_project_id (env GCP_PROJECT_ID), or celery_backend_protocol: redis",
        )
    return {
        "result_backend": GCS_BACKEND,
        "gcs_bucket": config.s3_bucket,
        "gcs_project": config.gcp_project_id,
        "gcs_base_path": "celery-results",
        "gcs_endpoint_url": config.gcs_endpoint_url,
    }


def _abs_backend(config: InfraConfig) -> dict[str, Any]:
    account, container = config.abs_account_name, config.abs_container_name
    if not account or not container:
        raise ConfigError(
            "the abs result backend needs a storage account and a container",
            key="azure.abs_account_name" if not account else "azure.abs_container_name",
            value=None,
            fix="set ABS_ACCOUNT_NAME and ABS_CONTAINER_NAME",
        )
    endpoint = config.abs_endpoint_url or f"https://{account}.blob.core.windows.net"
    key = config.secret("abs_account_key")
    if key:  # Azurite and tests; production uses Entra ID
        connection = (
            f"DefaultEndpointsProtocol={urlsplit(endpoint).scheme};AccountName={account};AccountKey={key};"
            f"BlobEndpoint={endpoint};"
        )
        url = "azureblockblob://" + connection
    else:
        url = f"azureblockblob://DefaultAzureCredential@{endpoint}"
    return {
        "result_backend": url,
        "azureblockblob_container_name": container,
        "azureblockblob_base_path": "celery-results/",
    }


def encoded_size(settings: BrokerSettings, body: str | bytes, overhead: int) -> int:
    """Bytes the broker will see for a serialized body plus ``overhead`` bytes of envelope."""
    size = len(body)
    if settings.body_encoding == "base64":
        size = 4 * ((size + 2) // 3)
    elif isinstance(body, str):
        # utf-8: the body travels as a JSON string inside the envelope, so quotes and backslashes double
        size += body.count('"') + body.count("\\")
    size += overhead
    if settings.envelope_base64:
        size = 4 * ((size + 2) // 3)
    return size
