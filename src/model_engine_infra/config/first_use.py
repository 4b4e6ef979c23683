"""Checks for values an SDK would only reject at first use: make them fail at load and `config check`.

Each rule here was (or would be) a raw SDK exception on the first request of a running service:

- a Blob endpoint over ``http://`` with token (Entra ID) credentials: the Azure SDK's ``ValueError``;
- an endpoint host botocore refuses (``my_minio.svc``: underscores), or a region it refuses:
  ``ValueError: Invalid endpoint`` / ``InvalidRegionError`` when the client is built;
- an account key that is not base64: ``AzureSigningError`` on every request, reported as "access denied";
- an account, vault or namespace name that cannot form the service's host name;
- user-info (``user:password@``) in an SDK endpoint URL: no SDK takes credentials from there, and
  botocore puts the URL (password included) in its errors and DEBUG logs. Refused, masked;
- a Redis URL the Redis component cannot parse, or ``redis_iam_auth`` without what it needs: both
  were `ConfigError`s only when ``infra.redis`` was first built.
"""

from __future__ import annotations

import base64
import binascii
import re
from typing import TYPE_CHECKING
from urllib.parse import parse_qsl, urlsplit

from ..redact import clean_url, has_userinfo, redact_url
from .keys import fail as _fail

if TYPE_CHECKING:
    from .model import InfraConfig

#: Where each SDK endpoint's credentials belong instead of the URL.
CREDENTIALS_INSTEAD = {
    "s3_endpoint_url": "s3_access_key_id / s3_secret_access_key (MinIO), aws_profile, or the pod's IAM role",
    "sqs_endpoint_url": "AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY, sqs_profile, or the pod's IAM role",
    "ecr_endpoint_url": "AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY, aws_profile, or the pod's IAM role",
    "secretsmanager_endpoint_url": "AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY, aws_profile, or the pod's IAM role",
    "abs_endpoint_url": "ABS_ACCOUNT_KEY (Azurite) or the workload identity",
    "gcs_endpoint_url": "application default credentials (emulators need none)",
    "registry_endpoint_url": "registry_username / registry_password or registry_auth_file",
}
#: Endpoints botocore builds clients for; it refuses host names that are not DNS names.
BOTOCORE_ENDPOINTS = ("s3_endpoint_url", "sqs_endpoint_url", "ecr_endpoint_url", "secretsmanager_endpoint_url")

# botocore.utils.is_valid_endpoint_url / validate_region_name, restated so config imports no SDK.
_DNS_LABEL = re.compile(r"^(?!-)[A-Za-z0-9-]{1,63}(?<!-)\Z")
_REGION = re.compile(r"^[a-zA-Z0-9](?:[a-zA-Z0-9\-]{0,61}[a-zA-Z0-9])?\Z")
_STORAGE_ACCOUNT = re.compile(r"^[a-z0-9]{3,24}\Z")
_KEY_VAULT = re.compile(r"^[A-Za-z](?!.*--)[A-Za-z0-9-]{1,22}[A-Za-z0-9]\Z")


def check_first_use_values(config: InfraConfig) -> None:
    """Raise `ConfigError` (masked, naming the key) for a value its SDK would reject at first use."""
    _sdk_endpoints(config)
    _region(config)
    _blob_storage(config)
    _azure_names(config)
    _redis(config)


def is_dns_name(host: str) -> bool:
    """Whether ``host`` is a DNS name or IP address botocore and the Azure SDK accept."""
    if host.startswith("[") and host.endswith("]"):
        return True  # IPv6 literal; the URL parser has checked it
    labels = host.rstrip(".").split(".")
    return len(host) <= 255 and all(_DNS_LABEL.match(label) for label in labels)


def _host(url: str) -> str:
    rest = clean_url(url).split("://", 1)[-1]
    authority = re.split(r"[/?#]", rest, maxsplit=1)[0]
    host = authority.rpartition("@")[2]
    if host.startswith("["):
        return host.split("]", 1)[0] + "]"
    return host.rsplit(":", 1)[0] if ":" in host else host


def _redis_url(config: InfraConfig, name: str, url: str) -> None:
    """What the Redis component's URL parser refuses, beyond `_check_urls`' scheme/host/port (masked)."""
    parts = urlsplit(clean_url(url))
    params = dict(parse_qsl(parts.query, keep_blank_values=True))
    if parts.scheme == "unix" and not parts.path:
        raise _fail(
            config, name, "a unix:// Redis URL needs a socket path", "write it like unix:///run/redis.sock?db=0"
        )
    db = params.get("db") or (parts.path.lstrip("/") if parts.scheme != "unix" else "") or "0"
    if not db.isdigit():
        raise _fail(
            config,
            name,
            "the Redis database in the URL must be a whole number",
            "write it like rediss://user:password@host:6380/0",
        )


def check_sdk_endpoint(config: InfraConfig, name: str) -> None:
    """One SDK endpoint key's checks; components call it too, for configs built without `load_config`."""
    url = getattr(config, name)
    if url is None:
        return
    if has_userinfo(url):
        raise _fail(
            config,
            name,
            "holds a user name or password; SDK clients never read credentials from the endpoint URL, "
            "and the URL would appear in their errors and logs",
            f"remove 'user:password@' from the URL and give the credentials through {CREDENTIALS_INSTEAD[name]}",
            value=redact_url(url),
        )
    host = _host(url)
    if name in BOTOCORE_ENDPOINTS and not is_dns_name(host):
        raise _fail(
            config,
            name,
            f"host {host!r} is not a valid DNS name (letters, digits and '-' between dots; no '_'), "
            "which botocore refuses when it builds the client",
            "use the service's DNS name (a Kubernetes service name: my-minio.my-namespace.svc) or its IP",
            value=redact_url(url),
        )


def _sdk_endpoints(config: InfraConfig) -> None:
    for name in CREDENTIALS_INSTEAD:
        check_sdk_endpoint(config, name)


def _region(config: InfraConfig) -> None:
    if not _REGION.match(config.default_region):
        raise _fail(
            config,
            "default_region",
            "is not a region name (letters, digits and '-', at most 63 characters)",
            "set it like us-east-1 (AWS), eastus (Azure) or us-central1 (GCP)",
        )


def _blob_storage(config: InfraConfig) -> None:
    key = config.secret("abs_account_key")
    if key is not None:
        try:
            base64.b64decode(key.strip(), validate=True)
        except (binascii.Error, ValueError):
            raise _fail(
                config,
                "abs_account_key",
                "is not base64; every request would be refused as an authentication failure",
                "copy the storage account's key1/key2 exactly (Azure portal: Access keys)",
            ) from None
    url = config.abs_endpoint_url
    if url is not None and key is None and clean_url(url).lower().startswith("http://"):
        raise _fail(
            config,
            "abs_endpoint_url",
            "is plain http:// but no ABS_ACCOUNT_KEY is set: the Azure SDK sends Entra ID tokens over HTTPS only "
            "and refuses the client at first use",
            "use an https:// endpoint, or set ABS_ACCOUNT_KEY (Azurite and other emulators over http)",
            value=redact_url(url),
        )


def _azure_names(config: InfraConfig) -> None:
    account = config.abs_account_name
    if account is not None and not _STORAGE_ACCOUNT.match(account):
        raise _fail(
            config,
            "abs_account_name",
            "is not a storage account name (3 to 24 lowercase letters and digits)",
            "use the account name as the Azure portal shows it, e.g. mystorageaccount",
        )
    if config.is_set("keyvault_name") and not _KEY_VAULT.match(config.keyvault_name):
        raise _fail(
            config,
            "keyvault_name",
            "is not a Key Vault name (3 to 24 letters, digits and single '-', starting with a letter)",
            "use the vault's name as the Azure portal shows it, e.g. my-llm-engine-keyvault",
        )
    namespace = config.servicebus_namespace
    if namespace is not None and not is_dns_name(namespace.strip()):
        raise _fail(
            config,
            "servicebus_namespace",
            "cannot be part of a host name (letters, digits and '-' between dots)",
            "set it to the part before .servicebus.windows.net, e.g. my-servicebus-namespace",
        )


def _redis(config: InfraConfig) -> None:
    for name in ("cache_redis_onprem_url", "cache_redis_aws_url", "cache_redis_gcp_url"):
        url = config.secret(name)
        if url:
            _redis_url(config, name, url)
    if config.redis_iam_auth == "elasticache":
        for name in ("redis_iam_user", "redis_iam_cache_name"):
            if not getattr(config, name):
                raise _fail(
                    config,
                    name,
                    "is needed for ElastiCache IAM auth (redis_iam_auth: elasticache)",
                    f"set {name} (see docs/redis.md), or unset redis_iam_auth",
                )
    if config.redis_iam_auth and config.cache_redis_azure_host and not config.secret("cache_redis_onprem_url"):
        raise _fail(
            config,
            "redis_iam_auth",
            "applies to ElastiCache and Memorystore, not Azure Cache for Redis (cache_redis_azure_host)",
            "unset redis_iam_auth; Azure Cache uses Entra ID tokens already",
        )


__all__ = ["BOTOCORE_ENDPOINTS", "CREDENTIALS_INSTEAD", "check_first_use_values", "check_sdk_endpoint", "is_dns_name"]
