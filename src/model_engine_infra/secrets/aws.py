"""AWS Secrets Manager as a `SecretStore`: one client, reused; results cached with a TTL."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from ..errors import SecretError, SecretNotFoundError
from .base import CachedSecretStore

if TYPE_CHECKING:
    from ..config.model import InfraConfig
    from ..infra import Infra

__all__ = ["SecretsManagerStore", "build_store"]

_NOT_FOUND = ("ResourceNotFoundException",)
_DENIED = ("AccessDeniedException", "AccessDenied", "UnrecognizedClientException")


class _RedactSecretBodies(logging.Filter):
    """botocore logs whole response bodies at DEBUG; a ``GetSecretValue`` body is the secret itself."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            text = record.getMessage()
        except Exception:
            return True
        if "SecretString" in text or "SecretBinary" in text:
            record.msg = "Response body: [a Secrets Manager secret value, redacted by model-engine-infra]"
            record.args = ()
        return True


def redact_botocore_secret_logs() -> None:
    """Install (once) the filter that keeps secret values out of botocore's DEBUG logs."""
    logger = logging.getLogger("botocore.parsers")
    if not any(isinstance(f, _RedactSecretBodies) for f in logger.filters):
        logger.addFilter(_RedactSecretBodies())


class SecretsManagerStore(CachedSecretStore):
    """Reads ``SecretString`` (or UTF-8 ``SecretBinary``); ``client`` is a boto3 ``secretsmanager`` client."""

    def __init__(self, client: Any, *, region: str | None = None, ttl_seconds: float = 300.0) -> None:
        super().__init__(ttl_seconds=ttl_seconds)
        redact_botocore_secret_logs()
        self._client = client
        region = region or getattr(getattr(client, "meta", None), "region_name", None)
        self.store_name = f"AWS Secrets Manager ({region})" if region else "AWS Secrets Manager"

    def __repr__(self) -> str:
        return f"SecretsManagerStore({self.store_name!r})"

    def _fetch(self, name: str) -> str:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            response = self._client.get_secret_value(SecretId=name)
        except ClientError as err:
            code = err.response.get("Error", {}).get("Code", "")
            if code in _NOT_FOUND:
                raise SecretNotFoundError(
                    f"secret {name!r} not found in {self.store_name}. Fix: create it, or check the name and region"
                ) from err
            if code in _DENIED:
                raise SecretError(
                    f"access to secret {name!r} in {self.store_name} was denied ({code}). "
                    "Fix: grant secretsmanager:GetSecretValue to the service's role"
                ) from err
            raise SecretError(f"reading secret {name!r} from {self.store_name} failed ({code})") from err
        except BotoCoreError as err:
            raise SecretError(
                f"{self.store_name} could not be reached to read secret {name!r} ({type(err).__name__})"
            ) from err
        if response.get("SecretString") is not None:
            return str(response["SecretString"])
        binary = response.get("SecretBinary")
        if binary is None:
            raise SecretNotFoundError(f"secret {name!r} in {self.store_name} has no value")
        try:
            return bytes(binary).decode("utf-8")
        except UnicodeDecodeError:
            raise SecretError(f"secret {name!r} in {self.store_name} is binary, not UTF-8 text") from None


def build_store(config: InfraConfig, infra: Infra | None = None) -> SecretsManagerStore:
    """The provider factory: one boto3 client for the configured region, profile and endpoint."""
    import boto3

    from ..config.first_use import check_sdk_endpoint

    check_sdk_endpoint(config, "secretsmanager_endpoint_url")
    session = boto3.Session(profile_name=config.aws_profile) if config.aws_profile else boto3.Session()
    client = session.client(
        "secretsmanager", region_name=config.default_region, endpoint_url=config.secretsmanager_endpoint_url
    )
    return SecretsManagerStore(client, region=config.default_region, ttl_seconds=config.secret_cache_ttl_seconds)
