"""kombu's Service Bus transport, with the SDK's transient errors counted as connection errors.

kombu lists only ``ConnectionError`` among the Service Bus transport's ``connection_errors``, so
``Connection.ensure`` — and with it Celery's ``task_publish_retry`` — never retries a publish that
failed with ``ServiceBusConnectionError`` (the 300 s ``amqp:connection:forced`` drop) or a detached
link. This subclass adds them; ``ensure`` then drops the dead connection, builds a fresh client
and publishes again, within ``task_publish_retry_policy``.

Registered as the kombu transport alias ``mei-azureservicebus`` (see `register_transport`); the
broker URL keeps its ``azureservicebus://`` form and Celery's ``broker_transport`` picks the alias.
Importing this module imports the Azure SDK; nothing else in the package does so eagerly.
"""

from __future__ import annotations

from functools import cached_property
from typing import Any

from azure.core.exceptions import ServiceRequestError
from azure.servicebus.exceptions import (
    OperationTimeoutError,
    ServiceBusCommunicationError,
    ServiceBusConnectionError,
    ServiceBusServerBusyError,
)
from kombu.transport import azureservicebus

from ..brokers.servicebus import SERVICEBUS_TRANSPORT_ALIAS, SERVICEBUS_TRANSPORT_TARGET

try:  # the SDK's own AMQP stack (azure-servicebus >= 7.12)
    from azure.servicebus._pyamqp.error import AMQPConnectionError, AMQPLinkError, AMQPSessionError

    _AMQP_ERRORS: tuple[type[BaseException], ...] = (AMQPConnectionError, AMQPLinkError, AMQPSessionError)
except ImportError:  # pragma: no cover - older SDKs
    _AMQP_ERRORS = ()

# Failures after which a new connection can succeed. A timeout or a busy server leaves it unknown
# whether the message arrived, so a retry may deliver it twice: Celery tasks are at-least-once.
TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (
    ServiceBusConnectionError,
    ServiceBusCommunicationError,
    OperationTimeoutError,
    ServiceBusServerBusyError,
    ServiceRequestError,  # the management client (queue declare) could not reach the namespace
    *_AMQP_ERRORS,
)


# Client options the transport options may carry (the task queue's: `brokers.servicebus.send_bounds`).
SEND_CLIENT_OPTIONS = ("try_timeout",)
ADMIN_CLIENT_OPTIONS = ("retry_total", "connection_timeout", "read_timeout")


class Channel(azureservicebus.Channel):  # type: ignore[misc]
    """kombu's channel, with a time bound per SDK try (``try_timeout``) and on the admin client.

    kombu passes only the retry settings to ``ServiceBusClient`` and nothing to the admin client,
    whose azure-core defaults retry 10 times with 300 s read timeouts. Options prefixed ``admin_``
    in the transport options go to the admin client (used to check that a queue exists).
    """

    @cached_property
    def queue_service(self) -> Any:
        options: dict[str, Any] = {
            "retry_total": self.retry_total,
            "retry_backoff_factor": self.retry_backoff_factor,
            "retry_backoff_max": self.retry_backoff_max,
        }
        options.update({k: self.transport_options[k] for k in SEND_CLIENT_OPTIONS if k in self.transport_options})
        client: Any = getattr(azureservicebus, "ServiceBusClient")  # noqa: B009 (looked up at call time: tests swap it)
        if self._connection_string:
            return client.from_connection_string(self._connection_string, **options)
        return client(self._namespace, self._credential, **options)

    @cached_property
    def queue_mgmt_service(self) -> Any:
        options = {
            k: self.transport_options[f"admin_{k}"]
            for k in ADMIN_CLIENT_OPTIONS
            if f"admin_{k}" in self.transport_options
        }
        admin: Any = getattr(azureservicebus, "ServiceBusAdministrationClient")  # noqa: B009 (swapped by tests)
        if self._connection_string:
            return admin.from_connection_string(self._connection_string, **options)
        return admin(self._namespace, self._credential, **options)


class Transport(azureservicebus.Transport):  # type: ignore[misc]
    """Azure Service Bus transport whose publishes Celery retries on transient SDK errors."""

    Channel = Channel
    connection_errors = (*azureservicebus.Transport.connection_errors, *TRANSIENT_ERRORS)
    driver_type = "azureservicebus"
    driver_name = "azureservicebus"


def register_transport() -> str:
    """Make the alias known to kombu (idempotent); returns it."""
    from kombu.transport import TRANSPORT_ALIASES

    TRANSPORT_ALIASES[SERVICEBUS_TRANSPORT_ALIAS] = SERVICEBUS_TRANSPORT_TARGET
    return SERVICEBUS_TRANSPORT_ALIAS
