"""Which backend of each kind a configuration selects: an explicit config key, else its profile's.

The one place that answers "which broker, which registry, which result backend": components
are built from it, ``load_config`` runs the rules of what it selects, and ``config check`` and the
doctor report it. Imports no backend: names only.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .registry import KINDS, Profile, get_provider
from .rules import Rule, error_rule

if TYPE_CHECKING:
    from .config.model import InfraConfig

# The chart's celeryBrokerType values, and the broker each one means (elasticache is Redis everywhere).
CHART_BROKERS = {"sqs": "sqs", "servicebus": "servicebus", "elasticache": "redis", "redis": "redis"}
CHART_DEFAULT_BROKER = "sqs"  # what the chart uses when celeryBrokerType is not set


def profile_of(config: InfraConfig) -> Profile:
    return get_provider(config.cloud_provider)


def chart_broker(config: InfraConfig) -> str | None:
    """The broker the chart's own keys select (what llm-engine's services will use), or None."""
    if config.celery_broker_type_redis:
        return "redis"
    if config.celery_broker_type is not None:
        return CHART_BROKERS[config.celery_broker_type]
    return None


def broker_name(config: InfraConfig) -> str | None:
    """``broker``, else ``celery_broker_type_redis: true`` (Redis), else ``celeryBrokerType``, else the profile's."""
    if config.broker is not None:
        return config.broker
    return chart_broker(config) or profile_of(config).broker


def registry_type(config: InfraConfig) -> str | None:
    """``docker_registry_type``, else the type the prefix implies (or the profile's, where it does not follow it)."""
    if config.docker_registry_type is not None:
        return config.docker_registry_type
    profile = profile_of(config)
    if not profile.registry_from_prefix:
        return profile.registry
    from .image_reference import infer_registry_type

    return infer_registry_type(config.docker_repo_prefix)


def result_backend_name(config: InfraConfig) -> str | None:
    if config.celery_backend_protocol is not None:
        return config.celery_backend_protocol
    return profile_of(config).result_backend


def redis_credentials_name(config: InfraConfig) -> str | None:
    if config.redis_iam_auth is not None:
        return config.redis_iam_auth
    return profile_of(config).redis_credentials


def autoscaling_metrics_name(config: InfraConfig) -> str | None:
    if config.autoscaling_metrics_backend is not None:
        return config.autoscaling_metrics_backend
    return profile_of(config).autoscaling_metrics


def secrets_name(config: InfraConfig) -> str | None:
    """``secrets_backend``, else the profile's secret store."""
    if config.secrets_backend is not None:
        return config.secrets_backend
    return profile_of(config).secrets


def selected(config: InfraConfig, kind: str) -> str | None:
    """The backend of ``kind`` this config selects (``store``: the default store, for paths without a scheme)."""
    if kind == "autoscaling_metrics":
        return autoscaling_metrics_name(config)
    if kind == "secrets":
        return secrets_name(config)
    if kind == "broker":
        return broker_name(config)
    if kind == "registry":
        return registry_type(config)
    if kind == "result_backend":
        return result_backend_name(config)
    if kind == "redis_credentials":
        return redis_credentials_name(config)
    return profile_of(config).backend(kind)


def selected_backends(config: InfraConfig) -> dict[str, str | None]:
    """Kind -> the backend this config selects (None: none; e.g. no IAM token overlay for Redis)."""
    return {kind: selected(config, kind) for kind in KINDS}


# Config keys that name a backend, and the kind they name it in.
NAMING_KEYS = {
    "broker": "broker",
    "docker_registry_type": "registry",
    "celery_backend_protocol": "result_backend",
    "redis_iam_auth": "redis_credentials",
    "autoscaling_metrics_backend": "autoscaling_metrics",
    "secrets_backend": "secrets",
}


@error_rule("backend-names-known", *NAMING_KEYS)
def _names_known(config: InfraConfig) -> None:
    """A key that names a backend names one that is registered (built in, or by an installed plugin)."""
    from .config.keys import fail
    from .registry import available_backends

    for key, kind in NAMING_KEYS.items():
        value = getattr(config, key)
        known = available_backends(kind)
        if value is not None and value not in known:
            raise fail(
                config,
                key,
                f"no {kind.replace('_', ' ')} backend is named {value!r}",
                f"use one of {', '.join(known)}, or install the plugin that provides it",
            )


RULES: tuple[Rule, ...] = (_names_known,)
