"""Celery result backends, one function each: ``(config, redis) -> Celery settings``.

Registered under the ``result_backend`` kind (``redis``, ``s3``, ``abs``, ``gcs``, ``file``); the
profile names the default and ``celery_backend_protocol`` overrides it. Pure data: no Celery import.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from ..brokers.base import REDIS_RESULTS_DB, RedisBroker, with_redis_db
from ..brokers.redis import redis_source, redis_ssl_options
from ..errors import ConfigError

if TYPE_CHECKING:
    from ..config.model import InfraConfig

S3_BACKEND = "model_engine_infra.tasks.results:ChecksummedS3Backend"
REDIS_READ_BACKOFF_MS = 100  # the pause between two reads of a task's state: the Redis component's backoff cap
GCS_BACKEND = "model_engine_infra.tasks.gcs_results:EndpointGCSBackend"  # Celery's GCSBackend needs Firestore (chords)


def file_backend(config: InfraConfig, redis: RedisBroker | str | None = None) -> dict[str, Any]:
    folder = Path(config.local_data_dir).expanduser().resolve() / "results"
    folder.mkdir(parents=True, exist_ok=True)
    return {"result_backend": f"file://{folder}"}


#: Where llm-engine's workers store results (its ``core/celery/app.py`` and Celery's defaults).
S3_RESULTS_PREFIX = "tmp/celery/"
ABS_RESULTS_CONTAINER = "celery"
GCS_RESULTS_PREFIX = "celery-results"


def redis_backend(config: InfraConfig, redis: RedisBroker | str | None = None) -> dict[str, Any]:
    """Database 1 of the broker's Redis, as llm-engine keeps results (apart from the broker's databases)."""
    source = redis_source(config, redis)
    conf: dict[str, Any] = {"result_backend": with_redis_db(source.url, REDIS_RESULTS_DB)}
    provider = source.transport_options.get("credential_provider")
    if provider is not None:
        conf["redis_backend_credential_provider"] = provider
    ssl_options = redis_ssl_options(config, source)
    if ssl_options is not None:
        conf["redis_backend_use_ssl"] = ssl_options
    # the result backend reaches Redis like the broker does: redis_socket_timeout for connect and
    # reply (Celery's default is 120 s), and ``1 + redis_retries`` attempts for a read (the task
    # queue turns ``result_backend_always_retry`` on; workers keep Celery's own retries)
    conf["redis_socket_timeout"] = config.redis_socket_timeout
    conf["redis_socket_connect_timeout"] = config.redis_socket_timeout
    conf["result_backend_max_retries"] = config.redis_retries
    conf["result_backend_base_sleep_between_retries_ms"] = REDIS_READ_BACKOFF_MS
    conf["result_backend_max_sleep_between_retries_ms"] = REDIS_READ_BACKOFF_MS
    return conf


def s3_backend(config: InfraConfig, redis: RedisBroker | str | None = None) -> dict[str, Any]:
    return {
        "result_backend": S3_BACKEND,
        "s3_bucket": config.s3_bucket,
        "s3_base_path": _prefix(config, S3_RESULTS_PREFIX),
        "s3_endpoint_url": config.s3_endpoint_url,
        # Celery's S3 backend settings; None leaves the AWS credential chain in charge
        "s3_access_key_id": config.s3_access_key_id,
        "s3_secret_access_key": config.secret("s3_secret_access_key"),
        "s3_region": config.default_region,
        "s3_addressing_style": config.s3_addressing_style or ("path" if config.s3_endpoint_url else None),
        "s3_checksum_sha256": bool(config.celery_enable_sha256),
    }


def abs_backend(config: InfraConfig, redis: RedisBroker | str | None = None) -> dict[str, Any]:
    """Celery's blob backend in the account's ``celery`` container, blobs ``celery-task-meta-<id>`` (llm-engine's)."""
    account = config.abs_account_name
    container = config.celery_result_container or ABS_RESULTS_CONTAINER
    if not account:
        raise ConfigError(
            "the abs result backend needs a storage account",
            key="azure.abs_account_name",
            value=None,
            fix="set ABS_ACCOUNT_NAME",
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
        "azureblockblob_base_path": _prefix(config, ""),
    }


def _prefix(config: InfraConfig, default: str) -> str:
    """``celery_result_prefix`` as a folder (ending in ``/``: Celery joins base path and key as they are)."""
    prefix = config.celery_result_prefix
    if prefix is None:
        return default
    return prefix.strip("/") + "/" if prefix.strip("/") else ""


def gcs_backend(config: InfraConfig, redis: RedisBroker | str | None = None) -> dict[str, Any]:
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
        "gcs_base_path": config.celery_result_prefix or GCS_RESULTS_PREFIX,
        "gcs_endpoint_url": config.gcs_endpoint_url,
    }
