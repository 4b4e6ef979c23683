"""Checks across keys that a type alone cannot express; each failure is a `ConfigError`.

The generic checks live here; a backend's own checks live beside it and run through
`model_engine_infra.checks` for the backends this config selects.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from ..errors import UnknownProviderError, quote
from ..redact import redact_url
from .first_use import check_first_use_values
from .keys import fail as _fail
from .keys import key_path, nearest
from .model import InfraConfig
from .schema import FIELDS

URL_SCHEMES = {
    "s3_endpoint_url": ("http", "https"),
    "sqs_endpoint_url": ("http", "https"),
    "ecr_endpoint_url": ("http", "https"),
    "secretsmanager_endpoint_url": ("http", "https"),
    "registry_endpoint_url": ("http", "https"),
    "prometheus_server_address": ("http", "https"),
    "abs_endpoint_url": ("http", "https"),
    "gcs_endpoint_url": ("http", "https"),
    "cache_redis_aws_url": ("redis", "rediss", "unix"),
    "cache_redis_onprem_url": ("redis", "rediss", "unix"),
    "cache_redis_gcp_url": ("redis", "rediss", "unix"),
}


def validate(config: InfraConfig) -> None:
    """The generic checks, then the error-level rules of the backends ``config`` selects."""
    from ..checks import check

    _check_provider(config)
    check_first_use_values(config)
    _check_urls(config)
    _check_cache_redis(config)
    _check_broker_pool(config)
    _check_s3_credentials(config)
    check(config)


def _check_provider(config: InfraConfig) -> None:
    from ..registry import available_providers

    known = available_providers()
    if config.cloud_provider in known:
        return
    near = nearest(config.cloud_provider, known)
    hint = f"did you mean {near!r}? " if near else ""
    source = config.source_of("cloud_provider")
    raise UnknownProviderError(
        f"unknown cloud provider {quote(config.cloud_provider)}",
        key=key_path(config, "cloud_provider"),
        value=config.cloud_provider,
        source=source.rsplit(":", 1)[0],
        fix=f"{hint}use one of {', '.join(sorted(known))}, or install the plugin that provides it",
    )


def _check_urls(config: InfraConfig) -> None:
    for name, schemes in URL_SCHEMES.items():
        raw = getattr(config, name)
        if raw is None:
            continue
        text = config.secret(name) if FIELDS[name].secret else raw
        assert isinstance(text, str)
        if name == "gcs_endpoint_url" and "://" not in text:
            text = "http://" + text  # STORAGE_EMULATOR_HOST may be host:port
        # Never the parser's message or the raw URL: an unencoded '/' or '#' in a password ends the
        # netloc early, and the parser then quotes the password as the "port".
        shown = None if FIELDS[name].secret else redact_url(raw)
        try:
            parts = urlsplit(text)
            parts.port  # noqa: B018  (raises on a bad port)
        except ValueError:
            raise _fail(
                config,
                name,
                "malformed URL: the port is not a number",
                f"write a URL like {schemes[0]}://host:port, percent-encoding '/', '#', '?' and '@' in a password",
                value=shown,
            ) from None
        if parts.scheme not in schemes or (parts.scheme != "unix" and not parts.hostname):
            raise _fail(
                config,
                name,
                "malformed URL: needs a scheme (" + ", ".join(schemes) + ") and a host",
                f"write a URL like {schemes[0]}://host:port",
                value=shown,
            )
    if config.cache_redis_azure_host is not None:
        host, _, port = config.cache_redis_azure_host.rpartition(":")
        if not host or not port.isdigit() or not 0 < int(port) < 65536 or "/" in host:
            raise _fail(
                config,
                "cache_redis_azure_host",
                "must be host:port",
                "write it like my-cache.redis.cache.windows.net:6380",
            )


def _check_cache_redis(config: InfraConfig) -> None:
    """Fail only where llm-engine's ``cache_redis_url`` fails too; keys it ignores are a finding."""
    from .cache_redis import choose_cache_redis, fails_without_fallback

    choice = choose_cache_redis(config)
    if not fails_without_fallback(config, choice):
        return
    name = choice.problem_key or "cache_redis_aws_url"
    raise _fail(config, name, choice.problem or "", choice.fix or "", value="(set)" if choice.key else "(unset)")


def effective_registry_type(config: InfraConfig) -> str | None:
    """The registry type ``config`` selects (see `model_engine_infra.selection.registry_type`)."""
    from ..selection import registry_type

    return registry_type(config)


def _check_broker_pool(config: InfraConfig) -> None:
    """Negative is never valid; 0 on Service Bus is that broker's own rule (``brokers.servicebus``)."""
    if config.celery_broker_pool_limit is not None and config.celery_broker_pool_limit < 0:
        raise _fail(config, "celery_broker_pool_limit", "must be 0 or more", "remove it to keep Celery's default (10)")


def _check_s3_credentials(config: InfraConfig) -> None:
    """A static S3 key pair (MinIO) is given whole or not at all."""
    has_id, has_secret = config.s3_access_key_id is not None, config.s3_secret_access_key is not None
    if has_id == has_secret:
        return
    missing = "s3_secret_access_key" if has_id else "s3_access_key_id"
    given = "s3_access_key_id" if has_id else "s3_secret_access_key"
    raise _fail(
        config,
        given,
        f"{given} is set but {missing} is not",
        "set both (env S3_ACCESS_KEY_ID and S3_SECRET_ACCESS_KEY), or neither to use the AWS credential chain",
    )


__all__ = ["effective_registry_type", "key_path", "validate"]
