"""`celery_app()`: one configured Celery app for a config's broker and result backend.

The settings themselves live in `settings.py` (pure data, unit-tested); this module only imports
Celery and applies them. Producers (`CeleryTaskQueueGateway`) and workers (`tasks.worker`) build
their app here, so both ends agree on broker, encoding and result backend.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from ..brokers import BrokerType, broker_type_for
from ..config.model import InfraConfig
from .settings import (
    SERVICEBUS_TRANSPORT_ALIAS,
    BrokerSettings,
    RedisBroker,
    TaskVisibility,
    backend_settings,
    broker_settings,
    coerce_broker_type,
    default_backend_protocol,
)

if TYPE_CHECKING:
    from celery import Celery

__all__ = ["TaskVisibility", "build_app", "celery_app", "celery_conf"]


def celery_conf(
    config: InfraConfig,
    *,
    broker_type: BrokerType | str | None = None,
    task_visibility: TaskVisibility | str | None = None,
    backend_protocol: str | None = None,
    redis: RedisBroker | str | None = None,
    sqs_endpoint_url: str | None = None,
) -> tuple[BrokerSettings, dict[str, Any]]:
    """The broker settings and the full Celery configuration, without importing Celery."""
    kind = broker_type_for(config) if broker_type is None else _broker_type(broker_type)
    visibility = TaskVisibility.from_name(task_visibility or default_visibility(kind))
    broker = broker_settings(config, kind, visibility=visibility, redis=redis, sqs_endpoint_url=sqs_endpoint_url)
    protocol = backend_protocol or default_backend_protocol(config)
    conf: dict[str, Any] = {
        "broker_url": broker.url,
        "broker_transport_options": dict(broker.transport_options),
        "task_serializer": "json",
        "result_serializer": "json",
        "accept_content": ["json"],
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "task_create_missing_queues": True,
        "task_publish_retry": True,
        "task_publish_retry_policy": {
            "max_retries": 3,
            "interval_start": 0,
            "interval_step": 0.2,
            "interval_max": 0.5,
        },
        "broker_connection_retry": True,
        "broker_connection_retry_on_startup": True,
        "worker_enable_remote_control": False,  # needs fanout: SNS on SQS, topics on Service Bus
        "worker_send_task_events": False,
        "worker_hijack_root_logger": False,
        "result_expires": 86400,
        **broker.conf,
        **backend_settings(config, protocol, redis=redis),
    }
    if broker.transport is not None:
        conf["broker_transport"] = broker.transport
    if config.celery_enable_sha256:
        conf["security_digest"] = "sha256"
    return broker, conf


def default_visibility(kind: BrokerType | str) -> TaskVisibility:
    """24 h on ``redis_24h`` (llm-engine's on-prem inference queue), else 1 h."""
    return TaskVisibility.VISIBILITY_24H if kind == BrokerType.REDIS_24H else TaskVisibility.VISIBILITY_1H


def _broker_type(value: BrokerType | str) -> BrokerType | str:
    """A `BrokerType` (or its name), or the name of a plugin broker."""
    if isinstance(value, str) and not isinstance(value, BrokerType):
        from ..registry import available_backends

        name = value.lower()
        if name not in {b.value for b in BrokerType} and name in available_backends("broker"):
            return name
    return coerce_broker_type(value)


def celery_app(
    name: str | None,
    *,
    config: InfraConfig,
    broker_type: BrokerType | str | None = None,
    task_visibility: TaskVisibility | str | None = None,
    backend_protocol: str | None = None,
    redis: RedisBroker | str | None = None,
    sqs_endpoint_url: str | None = None,
    include: Sequence[str] = (),
    **overrides: Any,
) -> Celery:
    """A Celery app for ``config``'s broker (or ``broker_type``) and result backend.

    ``redis`` is the Redis broker/backend source: a `RedisBroker` (URL without secrets plus a
    kombu ``credential_provider``) or a plain URL; without it ``redis_host``/``redis_port`` are
    used. ``sqs_endpoint_url`` points SQS elsewhere (tests: the moto server); production leaves it
    unset. ``overrides`` are extra Celery settings applied last.
    """
    broker, conf = celery_conf(
        config,
        broker_type=broker_type,
        task_visibility=task_visibility,
        backend_protocol=backend_protocol,
        redis=redis,
        sqs_endpoint_url=sqs_endpoint_url,
    )
    return build_app(name, broker, {**conf, **overrides}, include=include)


def build_app(name: str | None, broker: BrokerSettings, conf: dict[str, Any], *, include: Sequence[str] = ()) -> Celery:
    """A Celery app with ``conf`` applied; registers the Service Bus transport alias when used."""
    from celery import Celery

    if broker.transport == SERVICEBUS_TRANSPORT_ALIAS:
        from .servicebus_transport import register_transport

        register_transport()
    app = Celery(name or "model-engine-infra", include=list(include), set_as_current=False)
    app.conf.update(conf)
    return app
