"""Checks across keys that a type alone cannot express; each failure is a `ConfigError`."""

from __future__ import annotations

from urllib.parse import urlsplit

from ..errors import ConfigError, InvalidImageReferenceError, UnknownProviderError
from ..images.reference import infer_registry_type, parse_gar_prefix
from ..queues.templates import SAMPLE_VALUES, render_template
from ..redact import redact_url
from .model import InfraConfig
from .schema import FIELDS

URL_SCHEMES = {
    "s3_endpoint_url": ("http", "https"),
    "sqs_endpoint_url": ("http", "https"),
    "registry_endpoint_url": ("http", "https"),
    "prometheus_server_address": ("http", "https"),
    "abs_endpoint_url": ("http", "https"),
    "gcs_endpoint_url": ("http", "https"),
    "cache_redis_aws_url": ("redis", "rediss", "unix"),
    "cache_redis_onprem_url": ("redis", "rediss", "unix"),
    "cache_redis_gcp_url": ("redis", "rediss", "unix"),
}


def key_path(config: InfraConfig, name: str) -> str:
    """The key as the user wrote it: file key path, env var, or the field's Helm path."""
    source = config.source_of(name)
    if source.startswith("env:"):
        return source[4:]
    if ":" in source and not source.startswith("default"):
        return source.rsplit(":", 1)[1]
    helm = FIELDS[name].helm
    return helm[0] if helm else name


def _fail(config: InfraConfig, name: str, message: str, fix: str, value: object = None) -> ConfigError:
    shown = "***" if FIELDS[name].secret else (value if value is not None else getattr(config, name))
    source = config.source_of(name)
    return ConfigError(message, key=key_path(config, name), value=shown, source=source.rsplit(":", 1)[0], fix=fix)


def validate(config: InfraConfig) -> None:
    _check_provider(config)
    _check_positive(config)
    _check_urls(config)
    _check_cache_redis(config)
    _check_registry(config)
    _check_sqs_templates(config)
    _check_broker_pool(config)


def _check_provider(config: InfraConfig) -> None:
    from ..registry import available_providers

    known = available_providers()
    if config.cloud_provider in known:
        return
    from .loader import nearest

    near = nearest(config.cloud_provider, known)
    hint = f"did you mean {near!r}? " if near else ""
    source = config.source_of("cloud_provider")
    raise UnknownProviderError(
        f"unknown cloud provider {config.cloud_provider!r}",
        key=key_path(config, "cloud_provider"),
        value=config.cloud_provider,
        source=source.rsplit(":", 1)[0],
        fix=f"{hint}use one of {', '.join(sorted(known))}, or install the plugin that provides it",
    )


def _check_positive(config: InfraConfig) -> None:
    for name in ("redis_port", "servicebus_keep_alive_interval", "redis_max_connections"):
        value = getattr(config, name)
        if value <= 0:
            raise _fail(config, name, f"must be a positive whole number, got {value}", "set a value above 0")
    if not config.redis_port <= 65535:
        raise _fail(config, "redis_port", f"{config.redis_port} is not a TCP port", "use a port from 1 to 65535")


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


def effective_registry_type(config: InfraConfig) -> str:
    if config.docker_registry_type is not None:
        return config.docker_registry_type
    if config.cloud_provider == "gcp":
        return "gar"
    return infer_registry_type(config.docker_repo_prefix)


def _check_registry(config: InfraConfig) -> None:
    if effective_registry_type(config) != "gar":
        return
    try:
        parse_gar_prefix(config.docker_repo_prefix)
    except InvalidImageReferenceError:
        raise _fail(
            config,
            "docker_repo_prefix",
            f"{config.docker_repo_prefix!r} does not parse as {{location}}-docker.pkg.dev/{{project}}/{{repository}}",
            "set docker_repo_prefix to e.g. 'us-docker.pkg.dev/my-project/my-repo', "
            "or set docker_registry_type: oci for another registry",
        ) from None


def _check_sqs_templates(config: InfraConfig) -> None:
    for name in ("sqs_queue_policy_template", "sqs_queue_tag_template"):
        template = getattr(config, name)
        if template is not None:
            document = render_template(template, SAMPLE_VALUES, key=key_path(config, name))
            if not isinstance(document, dict):
                raise _fail(config, name, "must be a JSON object", "write the template as a JSON object {...}")
            if name == "sqs_queue_tag_template" and not all(isinstance(v, str) for v in document.values()):
                raise _fail(config, name, "tag values must be strings", 'write tags as {"Key": "value"}')


def uses_servicebus(config: InfraConfig) -> bool:
    from ..tasks.broker import BrokerType, broker_type_for

    return broker_type_for(config) is BrokerType.SERVICEBUS


def _check_broker_pool(config: InfraConfig) -> None:
    if config.celery_broker_pool_limit is None:
        return
    if config.celery_broker_pool_limit < 0:
        raise _fail(config, "celery_broker_pool_limit", "must be 0 or more", "remove it to keep Celery's default (10)")
    if config.celery_broker_pool_limit == 0 and uses_servicebus(config):
        raise _fail(
            config,
            "celery_broker_pool_limit",
            "0 disables the connection pool on Service Bus: each publish builds and drops a client, so the "
            "cached client is orphaned and AMQP keep-alives never flow, and Azure drops idle connections "
            "after 300 s (intermittent 503s)",
            "remove it to keep Celery's default pool (10)",
        )
