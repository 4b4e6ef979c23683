"""Azure Service Bus endpoint queues, through the administration client and ``DefaultAzureCredential``.

Queues are created here rather than left to kombu, because kombu creates a missing queue with its
own ``peek_lock_seconds`` (60 s) and never updates an existing one. The lock duration follows the
endpoint's message timeout, capped at 300 s: the service refuses anything above 5 minutes (HTTP
400), so a longer timeout would make queue creation fail outright. Creating a queue that exists —
kombu's, or an earlier create with other settings — updates its lock duration, labels and (on
Premium) maximum message size to what was asked, so a queue kombu made first gets the 300 s lock.
Counts come from the queue's runtime properties; the service does not report how many messages are locked, so
``approximate_in_flight_count`` is None (``active_message_count`` includes locked messages).
The admin client is synchronous and is called in a worker thread, never on the event loop.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Callable, Mapping
from datetime import timedelta
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

from azure.core.exceptions import (
    AzureError,
    HttpResponseError,
    ResourceExistsError,
    ResourceNotFoundError,
)

from ..errors import (
    BrokerPermissionError,
    BrokerUnavailableError,
    ConfigError,
    InvalidQueueSettingError,
    QueueError,
    QueueNotFoundError,
)
from .base import QueueAttributes, QueueEndpointResourceDelegate, QueueInfo
from .names import servicebus_queue_name

if TYPE_CHECKING:
    from ..config.model import InfraConfig
    from ..infra import Infra

__all__ = [
    "DEFAULT_QUEUE_MESSAGE_TIMEOUT_SECONDS",
    "MAX_LOCK_DURATION",
    "MIN_LOCK_DURATION",
    "ServiceBusQueueEndpointResourceDelegate",
    "build_delegate",
    "lock_duration_for",
]

#: The service's bounds on a queue's peek-lock; values outside are refused with HTTP 400.
MAX_LOCK_DURATION = timedelta(minutes=5)
MIN_LOCK_DURATION = timedelta(seconds=5)
#: Used when no timeout is given; the same default as the SQS delegate (capped like any other).
DEFAULT_QUEUE_MESSAGE_TIMEOUT_SECONDS = 43200
#: The service's limit on ``user_metadata``, where labels and creator are kept.
MAX_USER_METADATA = 1024
_T = TypeVar("_T")


def lock_duration_for(timeout_seconds: int | None) -> timedelta:
    """The queue's lock duration for an endpoint message timeout: capped to 5 s .. 300 s."""
    seconds = DEFAULT_QUEUE_MESSAGE_TIMEOUT_SECONDS if timeout_seconds is None else timeout_seconds
    if seconds <= 0:
        raise InvalidQueueSettingError(f"queue_message_timeout_seconds must be positive, not {seconds}")
    lock = min(timedelta(seconds=seconds), MAX_LOCK_DURATION)
    return max(lock, MIN_LOCK_DURATION)


def _fully_qualified(namespace: str) -> str:
    host = namespace.strip()
    if "//" in host:
        host = host.split("//", 1)[1]
    host = host.split("/", 1)[0]
    return host if "." in host else f"{host}.servicebus.windows.net"


def _user_metadata(endpoint_id: str, name: str, created_by: str, labels: Mapping[str, str]) -> str:
    """JSON that fits the service's 1024 characters: labels are dropped (and flagged) if too long."""
    document: dict[str, Any] = {
        "endpoint_id": endpoint_id,
        "endpoint_name": name,
        "created_by": created_by,
        "labels": dict(labels),
    }
    text = json.dumps(document, separators=(",", ":"), sort_keys=True)
    if len(text) <= MAX_USER_METADATA:
        return text
    document = {"endpoint_id": endpoint_id, "created_by": created_by[:200], "labels_truncated": True}
    return json.dumps(document, separators=(",", ":"), sort_keys=True)


def _parse_metadata(text: str | None) -> dict[str, Any]:
    if not text:
        return {}
    try:
        value = json.loads(text)
    except json.JSONDecodeError:
        return {}
    return value if isinstance(value, dict) else {}


class ServiceBusQueueEndpointResourceDelegate(QueueEndpointResourceDelegate):
    """Endpoint queues in one Service Bus namespace.

    ``admin_client`` injects a ``ServiceBusAdministrationClient`` (or the test fake); otherwise one
    is built on first use with ``credential`` or ``DefaultAzureCredential()`` and reused.
    ``max_message_size_kb`` is given only on Premium namespaces (Standard refuses the setting).
    """

    broker_name: ClassVar[str] = "Service Bus"
    max_queue_name_length: ClassVar[int] = 260

    def __init__(
        self,
        namespace: str,
        *,
        admin_client: Any | None = None,
        credential: Any | None = None,
        max_message_size_kb: int | None = None,
    ) -> None:
        if not namespace or not namespace.strip():
            raise ConfigError(
                "is empty",
                key="servicebus_namespace",
                fix="set SERVICEBUS_NAMESPACE to the part before .servicebus.windows.net",
            )
        self.fully_qualified_namespace = _fully_qualified(namespace)
        #: the queues' ``max_message_size_in_kilobytes`` (Premium only; None leaves the tier's default)
        self.max_message_size_kb = max_message_size_kb
        self._admin = admin_client
        self._credential = credential
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"ServiceBusQueueEndpointResourceDelegate({self.fully_qualified_namespace!r})"

    def check_queue_name(self, name: str) -> str:
        """Service Bus's rule: ends with a letter or digit, and lower case (it ignores case)."""
        return servicebus_queue_name(name)

    def _admin_client(self) -> Any:
        with self._lock:
            if self._admin is None:
                from azure.servicebus.management import ServiceBusAdministrationClient

                credential = self._credential
                if credential is None:
                    from azure.identity import DefaultAzureCredential

                    credential = DefaultAzureCredential()
                self._admin = ServiceBusAdministrationClient(self.fully_qualified_namespace, credential)
            return self._admin

    async def _run(self, action: str, queue_name: str, call: Callable[[Any], _T]) -> _T:
        """Run ``call(admin_client)`` in a thread; SDK errors become ours (not-found passes through)."""

        def invoke() -> _T:
            return call(self._admin_client())

        try:
            return await asyncio.to_thread(invoke)
        except (ResourceNotFoundError, ResourceExistsError):
            raise
        except HttpResponseError as err:
            status = getattr(err, "status_code", None)
            if status in (401, 403):
                raise BrokerPermissionError(
                    f"Service Bus {self.fully_qualified_namespace} refused to {action} {queue_name!r} (HTTP {status}): "
                    "give the identity the 'Azure Service Bus Data Owner' role on the namespace"
                ) from err
            if status is not None and status < 500 and status != 429:
                raise QueueError(
                    f"Service Bus {self.fully_qualified_namespace} rejected {action} {queue_name!r} "
                    f"(HTTP {status}): {err.message}"
                ) from err
            raise BrokerUnavailableError(
                f"Service Bus {self.fully_qualified_namespace} failed to {action} {queue_name!r} (HTTP {status}); "
                "retry later"
            ) from err
        except AzureError as err:
            raise BrokerUnavailableError(
                f"cannot reach Service Bus {self.fully_qualified_namespace} to {action} {queue_name!r} "
                f"({type(err).__name__}): check servicebus_namespace / SERVICEBUS_NAMESPACE, the network and "
                "the workload identity"
            ) from err

    async def create_queue_if_not_exists(
        self,
        endpoint_id: str,
        endpoint_name: str,
        endpoint_created_by: str,
        endpoint_labels: Mapping[str, str],
        queue_message_timeout_seconds: int | None = None,
    ) -> QueueInfo:
        name = self.queue_name(endpoint_id)
        lock = lock_duration_for(queue_message_timeout_seconds)
        assert lock <= MAX_LOCK_DURATION  # the service refuses longer locks; never send one
        metadata = _user_metadata(endpoint_id, endpoint_name, endpoint_created_by, endpoint_labels)
        wanted: dict[str, Any] = {"lock_duration": lock, "user_metadata": metadata}
        if self.max_message_size_kb is not None:
            wanted["max_message_size_in_kilobytes"] = self.max_message_size_kb

        def create(admin: Any) -> None:
            try:
                admin.create_queue(name, **wanted)
                return
            except ResourceExistsError:
                pass
            # It exists (an earlier create, or kombu's with its 60 s lock): bring it in line with the request.
            properties = admin.get_queue(name)
            stale = {key: value for key, value in wanted.items() if getattr(properties, key, None) != value}
            if stale:
                for key, value in stale.items():
                    setattr(properties, key, value)
                admin.update_queue(properties)

        await self._run("create", name, create)
        return QueueInfo(queue_name=name, queue_url=None)

    async def delete_queue(self, endpoint_id: str) -> None:
        name = self.queue_name(endpoint_id)

        def delete(admin: Any) -> None:
            try:
                admin.delete_queue(name)
            except ResourceNotFoundError:
                pass

        await self._run("delete", name, delete)

    async def get_queue_attributes(self, endpoint_id: str, *, include_tags: bool = False) -> QueueAttributes:
        name = self.queue_name(endpoint_id)

        def read(admin: Any) -> tuple[Any, Any]:
            return admin.get_queue_runtime_properties(name), admin.get_queue(name)

        try:
            runtime, properties = await self._run("read", name, read)
        except ResourceNotFoundError as err:
            raise QueueNotFoundError(
                f"Service Bus queue {name!r} does not exist in {self.fully_qualified_namespace}"
            ) from err
        metadata = _parse_metadata(getattr(properties, "user_metadata", None))
        lock = getattr(properties, "lock_duration", None)
        raw = {
            "name": runtime.name,
            "active_message_count": runtime.active_message_count,
            "dead_letter_message_count": runtime.dead_letter_message_count,
            "scheduled_message_count": runtime.scheduled_message_count,
            "total_message_count": runtime.total_message_count,
            "size_in_bytes": runtime.size_in_bytes,
            "lock_duration_seconds": lock.total_seconds() if isinstance(lock, timedelta) else None,
            "max_delivery_count": getattr(properties, "max_delivery_count", None),
            "max_message_size_in_kilobytes": getattr(properties, "max_message_size_in_kilobytes", None),
            "user_metadata": metadata,
        }
        labels = metadata.get("labels")
        return QueueAttributes(
            name=name,
            approximate_message_count=int(runtime.active_message_count or 0),
            approximate_in_flight_count=None,
            raw=raw,
            endpoint_labels=dict(labels) if isinstance(labels, dict) else None,
            endpoint_created_by=metadata.get("created_by"),
        )

    async def close(self) -> None:
        admin = self._admin
        if admin is not None and hasattr(admin, "close"):
            await asyncio.to_thread(admin.close)


def build_delegate(config: InfraConfig, infra: Infra) -> ServiceBusQueueEndpointResourceDelegate:
    if not config.servicebus_namespace:
        raise ConfigError(
            "is not set",
            key="servicebus_namespace",
            fix="set azure.servicebus_namespace in the Helm values or SERVICEBUS_NAMESPACE",
        )
    from ..brokers.servicebus import queue_max_message_size_kb

    return ServiceBusQueueEndpointResourceDelegate(
        config.servicebus_namespace, max_message_size_kb=queue_max_message_size_kb(config)
    )
