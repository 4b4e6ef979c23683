"""The Azure Service Bus broker: per-endpoint queues and Celery on kombu's Service Bus transport.

Message sizes: Standard namespaces cap a message at 256 KB and refuse a queue's
``max_message_size_in_kilobytes`` (HTTP 400); Premium accepts 1,024 .. 102,400 KB per queue (1 MB by
default). The reference system creates queues with a 20 MB maximum, which only Premium accepts.
Here the limit is ``servicebus_max_message_size_kb``, the tier ``servicebus_tier`` or, unset,
inferred from the size (above 256 KB means Premium); senders refuse larger tasks with
`MessageTooLargeError` before they reach the service, and Premium endpoint queues are created with
the size.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..errors import ConfigError, InfraError
from ..rules import Rule, Severity, error_rule
from .base import (
    KIB,
    PUBLISH_BACKOFF_SECONDS,
    BrokerSettings,
    BrokerType,
    BrokerUnit,
    RedisBroker,
    SdkMinimum,
    SendBounds,
    TaskVisibility,
    queue_missing,
    refused_as_too_large,
)

if TYPE_CHECKING:
    from ..config.model import InfraConfig
    from ..tasks.presence import Presence

SERVICEBUS_TRANSPORT_ALIAS = "mei-azureservicebus"
SERVICEBUS_TRANSPORT_TARGET = "model_engine_infra.tasks.servicebus_transport:Transport"
# A send on the task queue's own clients (workers keep the transport options above): two kombu
# attempts (a failed one drops the client and publishes again over a fresh one); in each, kombu's
# _put tries one sender and, after a lost connection, a fresh one; each sender tries
# 1 + SEND_SDK_RETRIES times, each try bounded by SEND_TRY_TIMEOUT, pausing factor x 2^k between.
# The admin client (does the queue exist?) gets one retry and short HTTP timeouts.
SEND_ATTEMPTS = 2
SEND_SDK_RETRIES = 1
SEND_TRY_TIMEOUT = 3.0
ADMIN_RETRIES = 1
ADMIN_TIMEOUT = 3.0
SDK_BACKOFF_FACTOR = 0.8


@error_rule("servicebus-pool-limit", "celery_broker_pool_limit")
def _pool_limit(config: InfraConfig) -> None:
    """``broker_pool_limit: 0`` orphans the cached client, so keep-alives stop and Azure drops it at 300 s."""
    from ..config.keys import fail

    if config.celery_broker_pool_limit == 0:
        raise fail(
            config,
            "celery_broker_pool_limit",
            "0 disables the connection pool on Service Bus: each publish builds and drops a client, so the "
            "cached client is orphaned and AMQP keep-alives never flow, and Azure drops idle connections "
            "after 300 s (intermittent 503s)",
            "remove it to keep Celery's default pool (10)",
        )


STANDARD_MAX_KB = 256
PREMIUM_MIN_QUEUE_KB = 1024
PREMIUM_MAX_KB = 102400


def servicebus_tier(config: InfraConfig) -> str:
    """``standard`` or ``premium``: the configured tier, else premium exactly when the size needs it."""
    if config.servicebus_tier is not None:
        return config.servicebus_tier
    return "premium" if config.servicebus_max_message_size_kb > STANDARD_MAX_KB else "standard"


@error_rule("servicebus-message-size", "servicebus_max_message_size_kb", "servicebus_tier")
def check_message_size(config: InfraConfig) -> None:
    """The configured message size fits the namespace's tier."""
    from ..config.keys import fail

    size = config.servicebus_max_message_size_kb
    name = "servicebus_max_message_size_kb"
    if size < 1:
        raise fail(config, name, "must be a positive number of KB", f"use {STANDARD_MAX_KB} on standard")
    if size > PREMIUM_MAX_KB:
        raise fail(
            config,
            name,
            f"is above Service Bus's largest message ({PREMIUM_MAX_KB} KB, premium tier)",
            f"use at most {PREMIUM_MAX_KB}, and send references to larger payloads",
        )
    if servicebus_tier(config) == "standard" and size > STANDARD_MAX_KB:
        raise fail(
            config,
            name,
            f"is above the standard tier's {STANDARD_MAX_KB} KB (servicebus_tier is standard)",
            f"use at most {STANDARD_MAX_KB}, or set servicebus_tier: premium on a premium namespace",
        )


def max_message_bytes(config: InfraConfig) -> int:
    """The largest message a sender may send, in bytes."""
    return config.servicebus_max_message_size_kb * KIB


def queue_max_message_size_kb(config: InfraConfig) -> int | None:
    """What endpoint queues are created with: the size on premium (at least its 1,024), None on standard."""
    if servicebus_tier(config) != "premium":
        return None
    return max(config.servicebus_max_message_size_kb, PREMIUM_MIN_QUEUE_KB)


RULES: tuple[Rule, ...] = (_pool_limit, check_message_size)


def send_bounds() -> SendBounds:
    """`SEND_ATTEMPTS` kombu attempts, each two senders' SDK tries or one admin call, all with timeouts."""
    sdk_pauses = sum(SDK_BACKOFF_FACTOR * 2**k for k in range(1, SEND_SDK_RETRIES + 1))
    publish = 2 * ((1 + SEND_SDK_RETRIES) * SEND_TRY_TIMEOUT + sdk_pauses)
    admin = (1 + ADMIN_RETRIES) * 2 * ADMIN_TIMEOUT + ADMIN_RETRIES * SDK_BACKOFF_FACTOR * 2**ADMIN_RETRIES
    per_attempt = max(publish, admin)
    return SendBounds(
        attempts=SEND_ATTEMPTS,
        backoff_seconds=PUBLISH_BACKOFF_SECONDS,
        attempt_seconds=per_attempt,
        silent_attempt_seconds=per_attempt,
        producer_options={
            "retry_total": SEND_SDK_RETRIES,
            "try_timeout": SEND_TRY_TIMEOUT,
            "admin_retry_total": ADMIN_RETRIES,
            "admin_connection_timeout": ADMIN_TIMEOUT,
            "admin_read_timeout": ADMIN_TIMEOUT,
        },
    )


def _denied(err: BaseException, kind: str, task_name: str, queue_name: str) -> InfraError | None:
    """`BrokerPermissionError` with the role to grant, for a send or a queue lookup the namespace refused."""
    from ..errors import BrokerPermissionError

    status = getattr(err, "status_code", None)
    if kind in ("ServiceBusAuthorizationError", "ServiceBusAuthenticationError"):
        fix = "give the identity the 'Azure Service Bus Data Sender' role on the namespace or the queue"
        what = "the send"
    elif kind == "ClientAuthenticationError" or status in (401, 403):
        # the management API (does the queue exist?) needs Manage rights
        fix = (
            "give the identity the 'Azure Service Bus Data Owner' role on the namespace "
            "(send_task reads the queue's properties)"
        )
        what = "the queue lookup"
    else:
        return None
    return BrokerPermissionError(
        f"could not send task {task_name!r} to queue {queue_name!r}: Service Bus refused {what} ({kind}); "
        f"{fix}. The task was not sent"
    )


class ServiceBusBrokerUnit(BrokerUnit):
    name = "servicebus"
    label = "Service Bus"
    extras = ("azure",)
    chart_name = "servicebus"
    chart_hint = "servicebus"
    max_message_bytes = STANDARD_MAX_KB * KIB  # the default; settings() takes servicebus_max_message_size_kb
    counts_in_flight = False  # active_message_count includes locked messages
    per_queue_visibility = True  # lock_duration, at most 300 s
    delegate_target = "model_engine_infra.queues.servicebus:build_delegate"
    transport = SERVICEBUS_TRANSPORT_TARGET
    keys = (
        "servicebus_namespace",
        "servicebus_keep_alive_interval",
        "azure_client_id",
        "celery_broker_pool_limit",
        "servicebus_tier",
        "servicebus_max_message_size_kb",
    )
    replaced_by_redis = (
        Severity.WARNING,
        "celeryBrokerType {chart} on {cloud} means the Redis broker, not Service Bus (some docs say "
        "otherwise). Set celeryBrokerType: servicebus for Service Bus, or celery_broker_type_redis: true "
        "to say Redis on purpose",
    )
    rules = RULES
    sdk_minimum = SdkMinimum(
        "azure-servicebus",
        (7, 14, 3),
        "whose idle-connection regression (azure-sdk-for-python#34212) causes 503s after idle periods",
    )

    def settings(
        self,
        config: InfraConfig,
        *,
        broker_type: BrokerType | str,
        visibility: TaskVisibility,
        redis: RedisBroker | str | None = None,
        endpoint_url: str | None = None,
    ) -> BrokerSettings:
        if not config.servicebus_namespace:
            raise ConfigError(
                "the Service Bus broker needs a namespace",
                key="azure.servicebus_namespace",
                value=None,
                fix="set azure.servicebus_namespace (env SERVICEBUS_NAMESPACE), the part before "
                ".servicebus.windows.net",
            )
        namespace = config.servicebus_namespace.removesuffix(".servicebus.windows.net")
        options: dict[str, Any] = {
            "uamqp_keep_alive_interval": config.servicebus_keep_alive_interval,
            "retry_total": 3,
            "retry_backoff_factor": 0.8,
            "retry_backoff_max": 120,
            "body_encoding": "utf-8",
        }
        return BrokerSettings(
            broker_type,
            f"azureservicebus://DefaultAzureCredential@{namespace}.servicebus.windows.net",
            SERVICEBUS_TRANSPORT_ALIAS,
            options,
            {"broker_connection_retry": True, "broker_connection_retry_on_startup": True},
            max_message_bytes(config),
            "utf-8",
            bounds=send_bounds(),
        )

    def publish_error(self, err: BaseException, task_name: str, queue_name: str) -> InfraError | None:
        seen: BaseException | None = err
        for _ in range(10):  # the cause chain: kombu wraps the SDK's errors in its OperationalError
            if seen is None:
                return None
            kind = type(seen).__name__
            if kind == "MessageSizeExceededError":
                return refused_as_too_large(self.name, task_name, queue_name)
            if kind == "MessagingEntityNotFoundError":
                return queue_missing(self.name, task_name, queue_name)
            denied = _denied(seen, kind, task_name, queue_name)
            if denied is not None:
                return denied
            seen = seen.__cause__ or seen.__context__
        return None

    def check_queue_name(self, name: str) -> str:
        from ..queues.names import servicebus_queue_name

        return servicebus_queue_name(name)

    def queue_presence(self) -> Presence:
        from ..tasks import presence

        return presence.SERVICEBUS


BROKER = ServiceBusBrokerUnit()
