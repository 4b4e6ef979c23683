"""Autoscaling metrics as a Service Bus queue per endpoint (azure): one client, one sender per queue.

KEDA's ``azure-servicebus`` trigger counts the active messages of
``launch-endpoint-autoscaling.{endpoint_id}``; every inference request adds a message that lives
60 s, a prewarm one that lives an hour, and nobody consumes them. ``create_or_update_resources``
creates the queue with a default time-to-live of an hour, so a message sent without one (the
reference implementation passes the expiry as the send *timeout*, not as the message's TTL) still
leaves the queue instead of holding the endpoint up forever.

The reference opens a credential, a client, a connection and a sender for every inference request.
Here one ``ServiceBusClient`` lives as long as the gateway and each queue's sender is kept (the
most recent `max_senders`, least recently used closed first). A sender the service dropped (the
idle ``amqp:connection:forced`` after 300 s, a detached link) is rebuilt and the send retried once,
on top of the SDK's own retry. The SDK is synchronous: calls run on the gateway's own small thread
pool, and each sender sends one message at a time (senders are not thread-safe).
"""

from __future__ import annotations

import asyncio
import threading
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

from azure.core.exceptions import (
    AzureError,
    ClientAuthenticationError,
    HttpResponseError,
    ResourceExistsError,
    ResourceNotFoundError,
)
from azure.servicebus import ServiceBusMessage
from azure.servicebus.exceptions import (
    MessagingEntityNotFoundError,
    ServiceBusAuthenticationError,
    ServiceBusAuthorizationError,
    ServiceBusCommunicationError,
    ServiceBusConnectionError,
    ServiceBusError,
)

from ..errors import BrokerUnavailableError, ConfigError, QueueError, QueueNotFoundError
from .base import (
    PREWARM_EXPIRY_SECONDS,
    SERVICEBUS_QUEUE_PREFIX,
    AutoscalingMetric,
    InferenceAutoscalingMetricsGateway,
)

if TYPE_CHECKING:
    from ..config.model import InfraConfig
    from ..infra import Infra

__all__ = [
    "DEFAULT_MAX_SENDERS",
    "DEFAULT_SEND_TIMEOUT",
    "KEYS",
    "ServiceBusInferenceAutoscalingMetricsGateway",
    "build_gateway",
    "queue_name",
]

#: The config keys this backend reads.
KEYS = ("servicebus_namespace", "servicebus_keep_alive_interval", "azure_client_id")
#: Seconds one send may take, the SDK's retries included (its ``timeout``).
DEFAULT_SEND_TIMEOUT = 10.0
#: Senders kept open at once (each holds an AMQP link); the least recently used is closed beyond it.
DEFAULT_MAX_SENDERS = 256
#: Threads running SDK calls; sends to one queue are serialised on its sender anyway.
DEFAULT_CONCURRENCY = 8
#: The SDK's retry policy, with a short back-off: this call sits on the inference request path.
RETRY_TOTAL = 3
RETRY_BACKOFF_FACTOR = 0.5
RETRY_BACKOFF_MAX = 2.0
_QUEUE_TTL = timedelta(seconds=PREWARM_EXPIRY_SECONDS)
_STALE = (ServiceBusConnectionError, ServiceBusCommunicationError)
_T = TypeVar("_T")


def queue_name(endpoint_id: str) -> str:
    """The queue KEDA's ScaledObject reads for ``endpoint_id``."""
    return SERVICEBUS_QUEUE_PREFIX + endpoint_id


def _fully_qualified(namespace: str) -> str:
    host = namespace.strip()
    if "//" in host:
        host = host.split("//", 1)[1]
    host = host.split("/", 1)[0]
    return host if "." in host else f"{host}.servicebus.windows.net"


@dataclass
class _Sender:
    sender: Any
    lock: threading.Lock = field(default_factory=threading.Lock)


class ServiceBusInferenceAutoscalingMetricsGateway(InferenceAutoscalingMetricsGateway):
    """Autoscaling queues in one Service Bus namespace.

    ``client`` / ``admin_client`` inject a ``ServiceBusClient`` / ``ServiceBusAdministrationClient``
    (or the test fakes); otherwise each is built on first use with ``credential`` (default
    ``DefaultAzureCredential()``) and kept. ``keep_alive`` is the senders' AMQP keep-alive interval.
    """

    backend_name: ClassVar[str] = "Service Bus"
    # 260 characters in a queue name, less the prefix.
    max_endpoint_id_length: ClassVar[int] = 260 - len(SERVICEBUS_QUEUE_PREFIX)

    def __init__(
        self,
        namespace: str,
        *,
        credential: Any | None = None,
        client: Any | None = None,
        admin_client: Any | None = None,
        keep_alive: int = 30,
        send_timeout: float = DEFAULT_SEND_TIMEOUT,
        max_senders: int = DEFAULT_MAX_SENDERS,
        concurrency: int = DEFAULT_CONCURRENCY,
    ) -> None:
        if not namespace or not namespace.strip():
            raise ConfigError(
                "is empty",
                key="servicebus_namespace",
                fix="set SERVICEBUS_NAMESPACE to the part before .servicebus.windows.net",
            )
        if max_senders < 1 or concurrency < 1 or send_timeout <= 0:
            raise ValueError("max_senders and concurrency must be at least 1, send_timeout positive")
        self.fully_qualified_namespace = _fully_qualified(namespace)
        self.keep_alive = keep_alive
        self.send_timeout = send_timeout
        self.max_senders = max_senders
        self._credential = credential
        self._client = client
        self._admin = admin_client
        self._concurrency = concurrency
        self._senders: OrderedDict[str, _Sender] = OrderedDict()
        self._lock = threading.Lock()
        self._executor: ThreadPoolExecutor | None = None

    def __repr__(self) -> str:
        return f"ServiceBusInferenceAutoscalingMetricsGateway({self.fully_qualified_namespace!r})"

    def check(self, endpoint_id: str) -> str:
        """The shared rule, plus the queue delegate's Service Bus rule: lower case, ending with a letter or digit.

        Service Bus ignores case, so ``E1`` and ``e1`` would share one autoscaling queue.
        """
        from ..queues.names import servicebus_queue_name

        servicebus_queue_name(queue_name(super().check(endpoint_id)))
        return endpoint_id

    # --- clients, built once -----------------------------------------------------------------------

    def _azure_credential(self) -> Any:
        if self._credential is None:
            from azure.identity import DefaultAzureCredential

            self._credential = DefaultAzureCredential()
        return self._credential

    def _data_client(self) -> Any:
        with self._lock:
            if self._client is None:
                from azure.servicebus import ServiceBusClient

                self._client = ServiceBusClient(
                    self.fully_qualified_namespace,
                    self._azure_credential(),
                    retry_total=RETRY_TOTAL,
                    retry_backoff_factor=RETRY_BACKOFF_FACTOR,
                    retry_backoff_max=RETRY_BACKOFF_MAX,
                )
            return self._client

    def _admin_client(self) -> Any:
        with self._lock:
            if self._admin is None:
                from azure.servicebus.management import ServiceBusAdministrationClient

                self._admin = ServiceBusAdministrationClient(self.fully_qualified_namespace, self._azure_credential())
            return self._admin

    def _pool(self) -> ThreadPoolExecutor:
        with self._lock:
            if self._executor is None:
                self._executor = ThreadPoolExecutor(self._concurrency, thread_name_prefix="autoscaling-servicebus")
            return self._executor

    def _sender(self, name: str) -> _Sender:
        client = self._data_client()
        evicted: list[_Sender] = []
        with self._lock:
            slot = self._senders.get(name)
            if slot is None:
                slot = _Sender(client.get_queue_sender(name, keep_alive=self.keep_alive))
                self._senders[name] = slot
                while len(self._senders) > self.max_senders:
                    evicted.append(self._senders.popitem(last=False)[1])
            else:
                self._senders.move_to_end(name)
        for old in evicted:
            _close_quietly(old)
        return slot

    def _discard(self, name: str, slot: _Sender | None = None) -> None:
        """Forget (and close) the queue's sender, unless another thread already replaced it."""
        with self._lock:
            current = self._senders.get(name)
            if current is None or (slot is not None and current is not slot):
                return
            del self._senders[name]
        _close_quietly(current)

    # --- calls ---------------------------------------------------------------------------------------

    async def _run(self, action: str, name: str, call: Callable[[], _T]) -> _T:
        """Run ``call`` on the pool; SDK errors become ours."""
        try:
            return await asyncio.get_running_loop().run_in_executor(self._pool(), call)
        except (QueueError, ValueError):
            raise
        except (ClientAuthenticationError, ServiceBusAuthenticationError, ServiceBusAuthorizationError) as err:
            raise BrokerUnavailableError(
                f"Service Bus {self.fully_qualified_namespace} refused the identity to {action} {name!r} "
                f"({type(err).__name__}): give it the 'Azure Service Bus Data Owner' role on the namespace "
                "(or 'Data Sender' for the gateway and 'Data Owner' for the builder)"
            ) from err
        except HttpResponseError as err:
            status = getattr(err, "status_code", None)
            if status is not None and status < 500 and status not in (401, 403, 408, 429):
                raise QueueError(
                    f"Service Bus {self.fully_qualified_namespace} rejected {action} {name!r} (HTTP {status})"
                ) from err
            raise BrokerUnavailableError(
                f"Service Bus {self.fully_qualified_namespace} failed to {action} {name!r} (HTTP {status}); "
                "retry later, and check the identity's role on the namespace"
            ) from err
        except (ServiceBusError, AzureError) as err:
            raise BrokerUnavailableError(
                f"cannot reach Service Bus {self.fully_qualified_namespace} to {action} {name!r} "
                f"({type(err).__name__}): check servicebus_namespace / SERVICEBUS_NAMESPACE, the network and the "
                "workload identity"
            ) from err

    async def emit_metric(self, endpoint_id: str, expiry_seconds: int) -> None:
        name = queue_name(self.check(endpoint_id))
        if expiry_seconds <= 0:
            raise ValueError(f"expiry_seconds must be positive, not {expiry_seconds}")
        ttl = timedelta(seconds=expiry_seconds)

        def send() -> None:
            for attempt in (1, 2):
                slot = self._sender(name)
                try:
                    with slot.lock:
                        # Only the count matters to KEDA; the body is a placeholder.
                        slot.sender.send_messages(ServiceBusMessage("1", time_to_live=ttl), timeout=self.send_timeout)
                    return
                except MessagingEntityNotFoundError as err:
                    self._discard(name, slot)
                    raise QueueNotFoundError(
                        f"Service Bus queue {name!r} does not exist in {self.fully_qualified_namespace}: call "
                        f"create_or_update_resources({endpoint_id!r}) when the endpoint is created"
                    ) from err
                except _STALE:
                    self._discard(name, slot)  # the service dropped it: a new sender reconnects
                    if attempt == 2:
                        raise
                except ValueError as err:  # "handler has already been shutdown": closed under us
                    self._discard(name, slot)
                    if attempt == 2:
                        raise BrokerUnavailableError(f"the Service Bus sender for {name!r} was closed") from err

        await self._run("send the autoscaling metric to", name, send)

    async def create_or_update_resources(self, endpoint_id: str) -> None:
        """Create the queue (messages expire within an hour by default); an existing one gets that TTL."""
        name = queue_name(self.check(endpoint_id))

        def create() -> None:
            admin = self._admin_client()
            try:
                admin.create_queue(name, default_message_time_to_live=_QUEUE_TTL)
                return
            except ResourceExistsError:
                pass
            properties = admin.get_queue(name)
            if properties.default_message_time_to_live != _QUEUE_TTL:
                properties.default_message_time_to_live = _QUEUE_TTL
                admin.update_queue(properties)

        await self._run("create", name, create)

    async def delete_resources(self, endpoint_id: str) -> None:
        name = queue_name(self.check(endpoint_id))

        def delete() -> None:
            self._discard(name)
            try:
                self._admin_client().delete_queue(name)
            except ResourceNotFoundError:
                pass

        await self._run("delete", name, delete)

    async def read_metric(self, endpoint_id: str) -> AutoscalingMetric | None:
        """The queue's active messages (what KEDA counts); the service does not say when they expire."""
        name = queue_name(self.check(endpoint_id))

        def read() -> int | None:
            try:
                runtime = self._admin_client().get_queue_runtime_properties(name)
            except ResourceNotFoundError:
                return None
            return int(runtime.active_message_count or 0)

        pending = await self._run("read", name, read)
        return AutoscalingMetric(pending=pending, expires_in=None) if pending else None

    async def close(self) -> None:
        with self._lock:
            senders = list(self._senders.values())
            self._senders.clear()
            client, self._client = self._client, None
            admin, self._admin = self._admin, None
            executor, self._executor = self._executor, None

        def close_all() -> None:
            for slot in senders:
                _close_quietly(slot)
            for owner in (client, admin):
                if owner is not None and hasattr(owner, "close"):
                    owner.close()

        await asyncio.to_thread(close_all)
        if executor is not None:
            executor.shutdown(wait=False)


def _close_quietly(slot: _Sender) -> None:
    try:
        with slot.lock:
            slot.sender.close()
    except Exception:  # a sender the service already dropped may fail to close; it is gone either way
        pass


def build_gateway(config: InfraConfig, infra: Infra) -> ServiceBusInferenceAutoscalingMetricsGateway:
    if not config.servicebus_namespace:
        raise ConfigError(
            "is not set",
            key="servicebus_namespace",
            fix="set azure.servicebus_namespace in the Helm values or SERVICEBUS_NAMESPACE",
        )
    credential = None
    if config.azure_client_id:
        from azure.identity import DefaultAzureCredential

        credential = DefaultAzureCredential(managed_identity_client_id=config.azure_client_id)
    return ServiceBusInferenceAutoscalingMetricsGateway(
        config.servicebus_namespace, credential=credential, keep_alive=config.servicebus_keep_alive_interval
    )
