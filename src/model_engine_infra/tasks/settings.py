"""Broker and result-backend settings as plain data (no Celery import), from the selected units.

`celery_app()` turns these into a Celery app; keeping them pure lets the unit tests check every
setting of every broker without a broker, and lets ``config check`` explain what will run. Each
broker's settings come from its unit (`model_engine_infra.brokers`), each result backend's from
its registered function (`tasks.result_backends`).
"""

from __future__ import annotations

from typing import Any

from ..brokers import BrokerSettings, BrokerType, RedisBroker, TaskVisibility, check_fits, unit_for
from ..brokers.local import LOCAL_POLLING_INTERVAL, LOCAL_TRANSPORT_TARGET
from ..brokers.redis import redis_fallback_url, redis_ssl_options
from ..brokers.servicebus import SERVICEBUS_TRANSPORT_ALIAS, SERVICEBUS_TRANSPORT_TARGET
from ..brokers.sqs import SQS_MAX_VISIBILITY_SECONDS
from ..config.model import InfraConfig
from ..errors import ConfigError

__all__ = [
    "BACKEND_PROTOCOLS",
    "LOCAL_POLLING_INTERVAL",
    "LOCAL_TRANSPORT_TARGET",
    "SERVICEBUS_TRANSPORT_ALIAS",
    "SERVICEBUS_TRANSPORT_TARGET",
    "SQS_MAX_VISIBILITY_SECONDS",
    "BrokerSettings",
    "RedisBroker",
    "TaskVisibility",
    "backend_settings",
    "broker_settings",
    "check_broker_for_cloud",
    "coerce_broker_type",
    "default_backend_protocol",
    "encoded_size",
    "redis_fallback_url",
    "redis_ssl_options",
]

BACKEND_PROTOCOLS = ("redis", "s3", "abs", "gcs", "file")  # the built-in result backends


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


def check_broker_for_cloud(config: InfraConfig, broker_type: BrokerType | str) -> None:
    """Refuse a broker the provider does not offer (the rule lives in `brokers.check_fits`)."""
    check_fits(config, unit_for(broker_type))


def broker_settings(
    config: InfraConfig,
    broker_type: BrokerType | str,
    *,
    visibility: TaskVisibility = TaskVisibility.VISIBILITY_1H,
    redis: RedisBroker | str | None = None,
    sqs_endpoint_url: str | None = None,
) -> BrokerSettings:
    """Everything Celery needs to reach the broker of ``broker_type``, from that broker's unit."""
    unit = unit_for(broker_type)
    check_fits(config, unit)
    unit.check(config)
    settings = unit.settings(
        config, broker_type=broker_type, visibility=visibility, redis=redis, endpoint_url=sqs_endpoint_url
    )
    if config.celery_broker_pool_limit is not None:
        settings.conf["broker_pool_limit"] = config.celery_broker_pool_limit
    return settings


def default_backend_protocol(config: InfraConfig) -> str:
    """``celery_backend_protocol``, else the provider's result backend."""
    from ..selection import result_backend_name

    name = result_backend_name(config)
    if name is None:
        raise ConfigError(
            f"the {config.cloud_provider} provider names no result backend and none is configured",
            key="celery_backend_protocol",
            value=None,
            fix="set celery_backend_protocol to one of " + ", ".join(BACKEND_PROTOCOLS),
        )
    return name


def uses_redis(config: InfraConfig) -> bool:
    """True when the deployment's broker or its result backend is Redis: Celery then needs the Redis component."""
    from ..brokers import broker_for

    unit = broker_for(config)
    return (unit is not None and unit.uses_redis()) or default_backend_protocol(config) == "redis"


def backend_settings(config: InfraConfig, protocol: str, *, redis: RedisBroker | str | None = None) -> dict[str, Any]:
    """Celery ``result_backend`` and its companion settings for ``protocol``."""
    from ..registry import available_backends, resolve_backend

    known = available_backends("result_backend")
    if protocol not in known:
        raise ConfigError(
            f"unknown result backend {protocol!r}",
            key="celery_backend_protocol",
            value=protocol,
            fix="use one of " + ", ".join(known),
        )
    settings: dict[str, Any] = resolve_backend("result_backend", protocol)(config, redis)
    return settings


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
