"""Google Cloud Secret Manager as a `SecretStore`: ``projects/{project}/secrets/{name}/versions/latest``.

One ``SecretManagerServiceClient`` (Application Default Credentials: Workload Identity on GKE),
reused; values cached for ``secret_cache_ttl_seconds`` like every store, and a failure is never
cached. The payload's CRC32C is checked when the service sends one. The SDK logs whole responses
at DEBUG when client logging is on; for Secret Manager a response is the secret, so those records
are redacted before any handler sees them.
"""

from __future__ import annotations

import logging
import re
from typing import TYPE_CHECKING, Any

from ..errors import ConfigError, SecretError, SecretNotFoundError
from .base import CachedSecretStore

if TYPE_CHECKING:
    from ..config.model import InfraConfig
    from ..infra import Infra

__all__ = ["SecretManagerStore", "build_store", "redact_sdk_response_logs"]

_VALID_NAME = re.compile(r"[A-Za-z0-9_-]{1,255}")  # Secret Manager's secret ids (fullmatch)
DEFAULT_TIMEOUT_SECONDS = 10.0
# The SDK's loggers that write response payloads (the transports) and the fields holding them.
SDK_LOGGERS = tuple(
    f"google.cloud.secretmanager_v1.services.secret_manager_service.transports.{name}"
    for name in ("grpc", "grpc_asyncio", "rest")
)
_PAYLOAD_FIELDS = ("response", "httpResponse", "request", "httpRequest")
REDACTED = "[a Secret Manager payload, redacted by model-engine-infra]"


class _RedactPayloads(logging.Filter):
    """Blank the request/response payloads the SDK attaches to its DEBUG records."""

    def filter(self, record: logging.LogRecord) -> bool:
        for name in _PAYLOAD_FIELDS:
            value = getattr(record, name, None)
            if isinstance(value, dict) and "payload" in value:
                setattr(record, name, {**value, "payload": REDACTED})
        return True


def redact_sdk_response_logs() -> None:
    """Install (once) the filter that keeps secret values out of the SDK's DEBUG logs."""
    for name in SDK_LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, _RedactPayloads) for f in logger.filters):
            logger.addFilter(_RedactPayloads())


class SecretManagerStore(CachedSecretStore):
    """Reads the latest version of a secret through ``client`` (a ``SecretManagerServiceClient`` or the fake)."""

    def __init__(
        self, client: Any, *, project: str, ttl_seconds: float = 300.0, timeout: float = DEFAULT_TIMEOUT_SECONDS
    ) -> None:
        super().__init__(ttl_seconds=ttl_seconds)
        redact_sdk_response_logs()
        self._client = client
        self.project = project
        self.timeout = timeout
        self.store_name = f"GCP Secret Manager (project {project!r})"

    def __repr__(self) -> str:
        return f"SecretManagerStore({self.store_name!r})"

    def _fetch(self, name: str) -> str:
        from google.api_core import exceptions as gexc
        from google.auth import exceptions as auth_exceptions

        if not isinstance(name, str) or not _VALID_NAME.fullmatch(name):
            raise SecretNotFoundError(
                f"secret {name!r} not found in {self.store_name}: Secret Manager names hold only letters, digits, "
                "'-' and '_' (at most 255). Fix: use the secret's id there (e.g. replace '/' with '-')"
            )
        resource = f"projects/{self.project}/secrets/{name}/versions/latest"
        try:
            response = self._client.access_secret_version(request={"name": resource}, timeout=self.timeout)
        except gexc.NotFound as err:
            raise SecretNotFoundError(
                f"secret {name!r} not found in {self.store_name} (or it has no enabled version). "
                "Fix: create it or add a version, or check gcp_project_id"
            ) from err
        except (gexc.PermissionDenied, gexc.Unauthenticated) as err:
            raise SecretError(
                f"access to secret {name!r} in {self.store_name} was denied ({type(err).__name__}). "
                "Fix: grant roles/secretmanager.secretAccessor on the secret to the service's identity"
            ) from err
        except gexc.FailedPrecondition as err:
            raise SecretError(
                f"the latest version of secret {name!r} in {self.store_name} is disabled or destroyed. "
                "Fix: enable it or add a new version"
            ) from err
        except auth_exceptions.DefaultCredentialsError as err:
            raise SecretError(
                f"no Google credentials to read {name!r} from {self.store_name}. "
                "Fix: use Workload Identity, or set GOOGLE_APPLICATION_CREDENTIALS"
            ) from err
        except (gexc.GoogleAPIError, auth_exceptions.TransportError, OSError) as err:
            raise SecretError(
                f"{self.store_name} could not be reached to read {name!r} ({type(err).__name__}); retry later"
            ) from err
        return _payload_text(response, name, self.store_name)

    def close(self) -> None:
        close = getattr(self._client, "close", None) or getattr(getattr(self._client, "transport", None), "close", None)
        if callable(close):
            close()


def _payload_text(response: Any, name: str, store: str) -> str:
    payload = response.payload
    data = bytes(payload.data)
    if "data_crc32c" in payload:
        import google_crc32c

        if google_crc32c.value(data) != payload.data_crc32c:
            raise SecretError(f"secret {name!r} from {store} arrived corrupted (CRC32C mismatch); retry")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise SecretError(f"secret {name!r} in {store} is binary, not UTF-8 text") from None


def build_store(config: InfraConfig, infra: Infra | None = None) -> SecretManagerStore:
    """The backend factory: one client with Application Default Credentials, in ``gcp_project_id``."""
    if not config.gcp_project_id:
        raise ConfigError(
            "is not set; Secret Manager needs the project the secrets live in",
            key="gcp_project_id",
            fix="set gcp_project_id (env GCP_PROJECT_ID) to the project's id",
        )
    from google.auth.exceptions import DefaultCredentialsError
    from google.cloud import secretmanager

    try:
        client = secretmanager.SecretManagerServiceClient()
    except DefaultCredentialsError as err:
        raise SecretError(
            "no Google credentials for GCP Secret Manager. Fix: use Workload Identity, or set "
            "GOOGLE_APPLICATION_CREDENTIALS"
        ) from err
    return SecretManagerStore(client, project=config.gcp_project_id, ttl_seconds=config.secret_cache_ttl_seconds)
