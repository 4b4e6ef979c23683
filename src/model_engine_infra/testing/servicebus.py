"""An in-memory Azure Service Bus namespace at the SDK boundary, for tests that cannot reach Azure.

Service Bus has no emulator that runs here, so this module fakes the SDK objects that code (ours
and ``kombu.transport.azureservicebus``) calls: ``ServiceBusClient`` with its senders and
receivers, ``ServiceBusAdministrationClient``, ``AutoLockRenewer`` and the azure-identity
credentials. `patch_kombu_servicebus` swaps them into kombu's transport module so a real Celery
producer or worker runs against the fake.

Modelled, because callers depend on it:

- queues with the service's name rule (1-260 characters, letters, digits, ``.-_/``, starting and
  ending with a letter or digit, case-insensitive), ``ResourceExistsError`` /
  ``ResourceNotFoundError`` as the SDK raises them, ``lock_duration`` as a ``timedelta`` or ISO
  8601 string, refused outside 5 s .. 5 min with HTTP 400 like the service;
- peek-lock (lock expiry on the fake clock, ``MessageLockLostError`` on a late complete,
  ``MessageAlreadySettled``), abandon, dead-letter, ``max_delivery_count``, receive-and-delete,
  scheduled messages, message time-to-live (capped by the queue's ``default_message_time_to_live``,
  as the service does);
- runtime properties (active — which includes locked messages, as on the service —, dead-letter,
  scheduled and total counts, size in bytes);
- the 256 KB message limit of the Standard tier (on Premium the queue's
  ``max_message_size_in_kilobytes``: 1 MB by default, 1,024 .. 102,400 KB accepted, refused with HTTP
  400 on Standard), measured on the AMQP encoding the SDK itself produces, raising
  ``MessageSizeExceededError``;
- the SDK's retry policy (``retry_total``, ``retry_backoff_factor``, ``retry_backoff_max``), whose
  back-off advances the fake clock instead of sleeping;
- faults: the ``amqp:connection:forced`` drop of a connection idle for more than 300 s with no
  keep-alive flowing, the detach of a link that sent nothing for 600 s (keep-alives do not stop
  it), a detached link on the first send, N failing send attempts, an unreachable namespace;
- counters of credentials, clients, connections, senders, receivers and send attempts.

Not modelled (tests needing these need a real namespace): sessions, topics and subscriptions,
transactions, duplicate detection, auto-forwarding, partitioning, message deferral, the AMQP
wire protocol itself (no sockets, no frames, no real keep-alive thread), token expiry inside a
live connection, throttling by quota, ``max_size_in_megabytes`` enforcement, the asyncio
(``azure.servicebus.aio``) classes, and real-time lock renewal (`FakeAutoLockRenewer` holds a
lock until its renewal window closes on the fake clock). ``receive_messages`` waits in real time
(bounded by ``max_receive_wait``) because a worker thread blocks in it; every other duration is
fake time. See docs/servicebus-fake.md.
"""

from __future__ import annotations

import contextlib
import importlib
import itertools
import re
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from types import ModuleType
from typing import Any

import isodate  # type: ignore[import-untyped]
from azure.core.credentials import AccessToken
from azure.core.exceptions import (
    HttpResponseError,
    ResourceExistsError,
    ResourceNotFoundError,
    ServiceRequestError,
)
from azure.servicebus import ServiceBusMessage, ServiceBusReceiveMode, ServiceBusSubQueue
from azure.servicebus.exceptions import (
    MessageAlreadySettled,
    MessageLockLostError,
    MessageSizeExceededError,
    MessagingEntityNotFoundError,
    OperationTimeoutError,
    ServiceBusCommunicationError,
    ServiceBusConnectionError,
    ServiceBusError,
    ServiceBusServerBusyError,
)
from azure.servicebus.management import QueueProperties

__all__ = [
    "DEFAULT_LOCK_DURATION",
    "IDLE_CONNECTION_TIMEOUT",
    "IDLE_LINK_TIMEOUT",
    "MAX_LOCK_DURATION",
    "MAX_QUEUE_NAME_LENGTH",
    "STANDARD_MAX_MESSAGE_BYTES",
    "FakeAutoLockRenewer",
    "FakeClock",
    "FakeCredential",
    "FakeQueueRuntimeProperties",
    "FakeReceivedMessage",
    "FakeServiceBusAdministrationClient",
    "FakeServiceBusClient",
    "FakeServiceBusFaults",
    "FakeServiceBusNamespace",
    "FakeServiceBusReceiver",
    "FakeServiceBusSender",
    "FakeServiceBusStats",
    "encoded_message_size",
    "patch_kombu_servicebus",
]

STANDARD_MAX_MESSAGE_BYTES = 256 * 1024
PREMIUM_DEFAULT_MAX_MESSAGE_KB = 1024
#: The range Premium accepts for a queue's ``max_message_size_in_kilobytes`` (1 MB .. 100 MB).
PREMIUM_MIN_MAX_MESSAGE_KB = 1024
PREMIUM_MAX_MAX_MESSAGE_KB = 102400
MIN_LOCK_DURATION = timedelta(seconds=5)
MAX_LOCK_DURATION = timedelta(minutes=5)
DEFAULT_LOCK_DURATION = timedelta(minutes=1)
DEFAULT_MAX_DELIVERY_COUNT = 10
IDLE_CONNECTION_TIMEOUT = 300.0
IDLE_LINK_TIMEOUT = 600.0
MAX_QUEUE_NAME_LENGTH = 260
_QUEUE_NAME = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9._/-]*[A-Za-z0-9])?")  # fullmatch: "$" allows a final newline
_FOREVER = timedelta(days=10675199)
_TOKEN_SCOPE = "https://servicebus.azure.net/.default"
_TRANSIENT = (ServiceBusConnectionError, ServiceBusCommunicationError, ServiceBusServerBusyError, OperationTimeoutError)


# --- time ---------------------------------------------------------------------------------------


class FakeClock:
    """Controllable time: ``advance(seconds)`` moves it; nothing in the fake sleeps on it."""

    def __init__(self, start: datetime | None = None) -> None:
        self._start = start or datetime(2025, 1, 1, tzinfo=timezone.utc)
        self._offset = 0.0
        self._lock = threading.Lock()
        self._listeners: list[Callable[[], None]] = []

    def time(self) -> float:
        """Seconds since the clock's start."""
        with self._lock:
            return self._offset

    def now(self) -> datetime:
        return self._start + timedelta(seconds=self.time())

    def advance(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError("a clock only moves forward")
        with self._lock:
            self._offset += seconds
            listeners = list(self._listeners)
        for listener in listeners:
            listener()

    def subscribe(self, listener: Callable[[], None]) -> None:
        """Call ``listener`` after every ``advance`` (the namespace wakes waiting receivers)."""
        with self._lock:
            self._listeners.append(listener)


# --- counters and faults ------------------------------------------------------------------------


@dataclass
class FakeServiceBusStats:
    """What the code under test built and did; every field only grows."""

    credentials_created: int = 0
    tokens_issued: int = 0
    clients_created: int = 0
    admin_clients_created: int = 0
    admin_calls: int = 0
    connections_opened: int = 0
    senders_created: int = 0
    receivers_created: int = 0
    send_calls: int = 0
    send_attempts: int = 0
    sdk_retries: int = 0
    backoff_seconds: float = 0.0
    messages_sent: int = 0
    messages_received: int = 0
    messages_completed: int = 0
    faults_raised: int = 0


@dataclass
class FakeServiceBusFaults:
    """Failures to inject. Flags stay until reset; counters are consumed one attempt at a time.

    ``idle_drop`` / ``link_idle_detach``: model the service's idle connection drop (300 s with no
    traffic and no keep-alive) and idle link detach (600 s without a send, keep-alive or not).
    ``detach_link_on_first_send``: one shot — the next first send on a newly opened sender link
    fails with ``amqp:link:detach-forced``, then the flag clears (a reopened link works).
    ``fail_send_attempts``: the next N send attempts fail with ``send_error`` (each try of the
    SDK's retry is one attempt); with ``send_error_after_delivery`` the
    message is stored before the error (a timeout whose outcome the sender cannot know).
    ``unreachable``: the namespace answers nothing — admin calls raise ``ServiceRequestError``,
    connections ``ServiceBusConnectionError``.
    """

    idle_drop: bool = True
    link_idle_detach: bool = True
    detach_link_on_first_send: bool = False
    fail_send_attempts: int = 0
    send_error: type[ServiceBusError] = ServiceBusConnectionError
    send_error_after_delivery: bool = False
    unreachable: bool = False


# --- stored state -------------------------------------------------------------------------------


@dataclass
class _Stored:
    sequence_number: int
    body: bytes
    size: int
    enqueued_at: float
    expires_at: float | None
    message_id: str | None
    content_type: str | None
    correlation_id: str | None
    subject: str | None
    session_id: str | None
    application_properties: dict[Any, Any]
    scheduled_at: float | None = None
    delivery_count: int = 0
    lock_token: str | None = None
    locked_until: float | None = None
    renew_until: float | None = None
    dead_letter_reason: str | None = None
    dead_letter_description: str | None = None


@dataclass
class _Queue:
    name: str
    settings: dict[str, Any]
    created_at: datetime
    updated_at: datetime
    accessed_at: datetime
    active: list[_Stored] = field(default_factory=list)
    scheduled: list[_Stored] = field(default_factory=list)
    dead_letter: list[_Stored] = field(default_factory=list)

    @property
    def lock_seconds(self) -> float:
        return float(self.settings["lock_duration"].total_seconds())


@dataclass
class _Connection:
    id: int
    keep_alive: float | None
    last_activity: float
    dropped: str | None = None
    closed: bool = False


def _parse_duration(value: timedelta | str | None, *, name: str) -> timedelta | None:
    if value is None or isinstance(value, timedelta):
        return value
    try:
        parsed: Any = isodate.parse_duration(value)
    except (isodate.ISO8601Error, ValueError) as err:
        raise _bad_request(f"{name} {value!r} is not an ISO 8601 duration") from err
    if not isinstance(parsed, timedelta):
        parsed = parsed.totimedelta(start=datetime(2000, 1, 1))
    result: timedelta = parsed
    return result


def _bad_request(message: str) -> HttpResponseError:
    error = HttpResponseError(message=f"SubCode=40000. Bad Request. {message}")
    error.status_code = 400
    return error


def encoded_message_size(message: ServiceBusMessage) -> int:
    """Bytes of the AMQP message the SDK would put on the wire (what the service's limit counts)."""
    try:
        from azure.servicebus._common.utils import transform_outbound_messages
        from azure.servicebus._transport._pyamqp_transport import PyamqpTransport

        outgoing = transform_outbound_messages(message, ServiceBusMessage, PyamqpTransport.to_outgoing_amqp_message)
        return int(PyamqpTransport.get_message_encoded_size(outgoing._message))  # type: ignore[union-attr]
    except (ImportError, AttributeError, TypeError):  # an SDK that moved its internals: close enough
        return len(_body_bytes(message)) + 64 + len(repr(message.application_properties or {}))


def _body_bytes(message: Any) -> bytes:
    body = message.body
    if isinstance(body, bytes):
        return body
    if isinstance(body, str):
        return body.encode()
    if isinstance(body, Iterable):
        parts = list(body)
        if all(isinstance(p, (bytes, bytearray)) for p in parts):
            return b"".join(bytes(p) for p in parts)
        return str(parts if len(parts) != 1 else parts[0]).encode()
    return str(body).encode()


# --- the namespace ------------------------------------------------------------------------------


class FakeServiceBusNamespace:
    """One Service Bus namespace in memory; hands out SDK-compatible clients bound to it.

    ``tier`` is ``"Standard"`` (256 KB messages) or ``"Premium"``. ``max_receive_wait`` caps, in
    real seconds, how long ``receive_messages`` blocks (None: as asked).
    """

    def __init__(
        self,
        name: str = "fake-namespace",
        *,
        tier: str = "Standard",
        clock: FakeClock | None = None,
        idle_timeout: float = IDLE_CONNECTION_TIMEOUT,
        link_idle_timeout: float = IDLE_LINK_TIMEOUT,
        max_receive_wait: float | None = None,
        token_lifetime: float = 3600.0,
    ) -> None:
        if tier not in ("Standard", "Premium"):
            raise ValueError("tier is 'Standard' or 'Premium'")
        self.name = name.split(".", 1)[0]
        self.tier = tier
        self.clock = clock or FakeClock()
        self.idle_timeout = idle_timeout
        self.link_idle_timeout = link_idle_timeout
        self.max_receive_wait = max_receive_wait
        self.token_lifetime = token_lifetime
        self.stats = FakeServiceBusStats()
        self.faults = FakeServiceBusFaults()
        self.connections: list[_Connection] = []
        self._queues: dict[str, _Queue] = {}
        self._sequence = itertools.count(1)
        self._connection_ids = itertools.count(1)
        self._cond = threading.Condition(threading.RLock())
        self.clock.subscribe(self._wake)

    def __repr__(self) -> str:
        return f"FakeServiceBusNamespace({self.fully_qualified_namespace!r}, queues={len(self._queues)})"

    @property
    def fully_qualified_namespace(self) -> str:
        return f"{self.name}.servicebus.windows.net"

    # -- SDK-compatible objects bound to this namespace --
    def credential(self) -> FakeCredential:
        return FakeCredential(namespace=self)

    def client(self, **kwargs: Any) -> FakeServiceBusClient:
        return FakeServiceBusClient(self.fully_qualified_namespace, self.credential(), namespace=self, **kwargs)

    def admin_client(self) -> FakeServiceBusAdministrationClient:
        return FakeServiceBusAdministrationClient(self.fully_qualified_namespace, self.credential(), namespace=self)

    def sdk_classes(self) -> dict[str, Any]:
        """Classes bound to this namespace, under the names the SDK (and kombu) use."""
        bound = {"_fake_namespace": self}
        return {
            "ServiceBusClient": type("ServiceBusClient", (FakeServiceBusClient,), bound),
            "ServiceBusAdministrationClient": type(
                "ServiceBusAdministrationClient", (FakeServiceBusAdministrationClient,), bound
            ),
            "AutoLockRenewer": type("AutoLockRenewer", (FakeAutoLockRenewer,), bound),
            "DefaultAzureCredential": type("DefaultAzureCredential", (FakeCredential,), bound),
            "ManagedIdentityCredential": type("ManagedIdentityCredential", (FakeCredential,), bound),
        }

    # -- faults and inspection --
    def drop_connections(self, condition: str = "amqp:connection:forced") -> int:
        """The service closes every open connection now; returns how many it closed."""
        with self._cond:
            live = [c for c in self.connections if not c.closed and c.dropped is None]
            for conn in live:
                conn.dropped = condition
            return len(live)

    def fail_next_send_attempts(
        self, count: int, error: type[ServiceBusError] = ServiceBusConnectionError, *, after_delivery: bool = False
    ) -> None:
        with self._cond:
            self.faults.fail_send_attempts = count
            self.faults.send_error = error
            self.faults.send_error_after_delivery = after_delivery

    def open_connections(self) -> int:
        with self._cond:
            return sum(1 for c in self.connections if not c.closed and c.dropped is None)

    def queue_names(self) -> list[str]:
        with self._cond:
            return sorted(q.name for q in self._queues.values())

    def message_bodies(self, queue_name: str, *, sub_queue: str = "active") -> list[bytes]:
        """Bodies in a queue (``active``, ``scheduled`` or ``deadletter``), oldest first, locked included."""
        with self._cond:
            queue = self._queue(queue_name)
            self._housekeep(queue)
            bucket = {"active": queue.active, "scheduled": queue.scheduled, "deadletter": queue.dead_letter}[sub_queue]
            return [m.body for m in bucket]

    def message_expiries(self, queue_name: str) -> list[float | None]:
        """Seconds until each active message expires (fake time), oldest first; None for one that never does."""
        with self._cond:
            queue = self._queue(queue_name)
            self._housekeep(queue)
            now = self._now()
            return [None if m.expires_at is None else m.expires_at - now for m in queue.active]

    def locked_count(self, queue_name: str) -> int:
        """Messages under a live peek-lock (the service does not report this; tests may)."""
        with self._cond:
            queue = self._queue(queue_name)
            self._housekeep(queue)
            return sum(1 for m in queue.active if self._is_locked(m))

    # -- internals shared by the clients --
    def _wake(self) -> None:
        with self._cond:
            self._cond.notify_all()

    def _now(self) -> float:
        return self.clock.time()

    def _check_reachable(self, host: str, *, amqp: bool) -> None:
        wanted = {self.fully_qualified_namespace.lower(), self.name.lower()}
        if self.faults.unreachable or host.lower() not in wanted:
            self.stats.faults_raised += 1
            reason = "the namespace does not answer" if self.faults.unreachable else f"cannot resolve {host!r}"
            if amqp:
                raise ServiceBusConnectionError(message=f"Failed to open an AMQP connection: {reason}.")
            raise ServiceRequestError(f"Failed to establish a new connection: {reason}")

    def _queue(self, name: str) -> _Queue:
        queue = self._queues.get(name.lower())
        if queue is None:
            raise ResourceNotFoundError(f"Queue '{name}' does not exist")
        return queue

    def _is_locked(self, message: _Stored) -> bool:
        now = self._now()
        until = max(message.locked_until or 0.0, message.renew_until or 0.0)
        return message.lock_token is not None and until > now

    def _housekeep(self, queue: _Queue) -> None:
        """Apply what time did: scheduled messages enqueue, expired ones leave, locks lapse."""
        now = self._now()
        due = [m for m in queue.scheduled if (m.scheduled_at or 0.0) <= now]
        for message in due:
            queue.scheduled.remove(message)
            message.scheduled_at = None
            message.enqueued_at = now
            queue.active.append(message)
        for message in [m for m in queue.active if m.expires_at is not None and m.expires_at <= now]:
            if self._is_locked(message):
                continue
            queue.active.remove(message)
            if queue.settings["dead_lettering_on_message_expiration"]:
                message.dead_letter_reason = "TTLExpiredException"
                queue.dead_letter.append(message)
        limit = queue.settings["max_delivery_count"]
        for message in list(queue.active):
            if message.lock_token is not None and not self._is_locked(message):
                message.lock_token = None
                message.locked_until = message.renew_until = None
            if message.lock_token is None and message.delivery_count >= limit:
                queue.active.remove(message)
                message.dead_letter_reason = "MaxDeliveryCountExceeded"
                queue.dead_letter.append(message)

    def _open_connection(self, host: str, credential: Any, keep_alive: float | None) -> _Connection:
        self._check_reachable(host, amqp=True)
        if credential is not None and hasattr(credential, "get_token"):
            credential.get_token(_TOKEN_SCOPE)
        with self._cond:
            conn = _Connection(next(self._connection_ids), keep_alive, self._now())
            self.connections.append(conn)
            self.stats.connections_opened += 1
            return conn

    def _check_connection(self, conn: _Connection) -> None:
        """Raise what the SDK raises when the service closed this connection."""
        if self.faults.unreachable:
            conn.dropped = "amqp:connection:forced"
        keep_alive_flows = conn.keep_alive is not None and 0 < conn.keep_alive < self.idle_timeout
        idle = self._now() - conn.last_activity
        if conn.dropped is None and self.faults.idle_drop and not keep_alive_flows and idle > self.idle_timeout:
            conn.dropped = "amqp:connection:forced"
        if conn.dropped is not None:
            self.stats.faults_raised += 1
            raise ServiceBusConnectionError(
                message=f"The connection was inactive for more than the allowed {int(self.idle_timeout)} "
                "milliseconds and is closed by container"
                if conn.dropped == "amqp:connection:forced"
                else "The service closed the connection.",
                condition=conn.dropped,
            )

    def _touch(self, conn: _Connection) -> None:
        conn.last_activity = self._now()


# --- credentials --------------------------------------------------------------------------------


class FakeCredential:
    """Stands in for ``DefaultAzureCredential`` / ``ManagedIdentityCredential``; counts tokens.

    ``fail_with`` makes ``get_token`` raise (e.g. ``ClientAuthenticationError``).
    """

    _fake_namespace: FakeServiceBusNamespace | None = None

    def __init__(self, *args: Any, namespace: FakeServiceBusNamespace | None = None, **kwargs: Any) -> None:
        self._ns = namespace or type(self)._fake_namespace
        self.fail_with: BaseException | None = None
        self.tokens_issued = 0
        if self._ns is not None:
            self._ns.stats.credentials_created += 1

    def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
        if self.fail_with is not None:
            raise self.fail_with
        self.tokens_issued += 1
        lifetime = 3600.0
        if self._ns is not None:
            self._ns.stats.tokens_issued += 1
            lifetime = self._ns.token_lifetime
        return AccessToken(f"fake-token-{uuid.uuid4().hex}", int(time.time() + lifetime))

    def close(self) -> None:
        """Nothing to release."""

    def __enter__(self) -> FakeCredential:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _namespace_of(obj: Any, explicit: FakeServiceBusNamespace | None) -> FakeServiceBusNamespace:
    namespace = explicit or type(obj)._fake_namespace
    if namespace is None:
        raise TypeError(f"{type(obj).__name__} needs namespace=FakeServiceBusNamespace(...)")
    return namespace  # type: ignore[no-any-return]


def _host_of(fully_qualified_namespace: str) -> str:
    host = fully_qualified_namespace
    if "//" in host:
        host = host.split("//", 1)[1]
    return host.split("/", 1)[0].split(":", 1)[0]


def _host_from_connection_string(conn_str: str) -> str:
    parts = dict(p.split("=", 1) for p in conn_str.split(";") if "=" in p)
    endpoint = parts.get("Endpoint")
    if not endpoint:
        raise ValueError("connection string has no Endpoint=sb://NAMESPACE.servicebus.windows.net/")
    return _host_of(endpoint)


# --- administration -----------------------------------------------------------------------------


@dataclass(frozen=True)
class FakeQueueRuntimeProperties:
    """Same attribute names as the SDK's ``QueueRuntimeProperties``."""

    name: str
    active_message_count: int
    dead_letter_message_count: int
    scheduled_message_count: int
    transfer_message_count: int
    transfer_dead_letter_message_count: int
    total_message_count: int
    size_in_bytes: int
    created_at_utc: datetime
    updated_at_utc: datetime
    accessed_at_utc: datetime


class FakeServiceBusAdministrationClient:
    """``ServiceBusAdministrationClient`` for queues (topics and rules are not modelled)."""

    _fake_namespace: FakeServiceBusNamespace | None = None

    def __init__(
        self,
        fully_qualified_namespace: str,
        credential: Any = None,
        *,
        namespace: FakeServiceBusNamespace | None = None,
        **kwargs: Any,
    ) -> None:
        self._ns = _namespace_of(self, namespace)
        self.fully_qualified_namespace = _host_of(fully_qualified_namespace)
        self._credential = credential
        self._token_expires = 0.0
        self._ns.stats.admin_clients_created += 1

    @classmethod
    def from_connection_string(cls, conn_str: str, **kwargs: Any) -> FakeServiceBusAdministrationClient:
        return cls(_host_from_connection_string(conn_str), None, **kwargs)

    def __enter__(self) -> FakeServiceBusAdministrationClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """HTTP pipelines hold nothing the fake needs to release."""

    def _call(self) -> FakeServiceBusNamespace:
        ns = self._ns
        ns.stats.admin_calls += 1
        ns._check_reachable(self.fully_qualified_namespace, amqp=False)
        if (
            self._credential is not None
            and hasattr(self._credential, "get_token")
            and time.time() >= self._token_expires
        ):
            token = self._credential.get_token(_TOKEN_SCOPE)
            self._token_expires = float(token.expires_on) - 300
        return ns

    def create_queue(self, queue_name: str, **kwargs: Any) -> QueueProperties:
        ns = self._call()
        if (
            not isinstance(queue_name, str)
            or len(queue_name) > MAX_QUEUE_NAME_LENGTH
            or not _QUEUE_NAME.fullmatch(queue_name)
        ):
            raise _bad_request(
                f"The entity path/name '{queue_name}' is invalid: 1-{MAX_QUEUE_NAME_LENGTH} letters, digits, "
                "'.', '-', '_', '/', starting and ending with a letter or digit."
            )
        settings = _queue_settings(kwargs, premium=ns.tier == "Premium")
        with ns._cond:
            if queue_name.lower() in ns._queues:
                raise ResourceExistsError(f"The messaging entity '{queue_name}' already exists.")
            now = ns.clock.now()
            ns._queues[queue_name.lower()] = _Queue(queue_name, settings, now, now, now)
            return _properties(ns._queues[queue_name.lower()])

    def update_queue(self, queue: QueueProperties | Mapping[str, Any], **kwargs: Any) -> None:
        ns = self._call()
        values = dict(queue) if isinstance(queue, Mapping) else {k: getattr(queue, k) for k in _SETTING_DEFAULTS}
        name = values.pop("name", None) or getattr(queue, "name", None)
        values.update(kwargs)
        with ns._cond:
            stored = ns._queue(str(name))
            merged = {
                **stored.settings,
                **{k: v for k, v in values.items() if k in _SETTING_DEFAULTS and v is not None},
            }
            stored.settings = _queue_settings(merged, premium=ns.tier == "Premium")
            stored.updated_at = ns.clock.now()

    def get_queue(self, queue_name: str, **kwargs: Any) -> QueueProperties:
        ns = self._call()
        with ns._cond:
            return _properties(ns._queue(queue_name))

    def get_queue_runtime_properties(self, queue_name: str, **kwargs: Any) -> FakeQueueRuntimeProperties:
        ns = self._call()
        with ns._cond:
            return _runtime(ns, ns._queue(queue_name))

    def delete_queue(self, queue_name: str, **kwargs: Any) -> None:
        if not queue_name:
            raise ValueError("queue_name must not be None or empty")
        ns = self._call()
        with ns._cond:
            ns._queue(queue_name)
            del ns._queues[queue_name.lower()]
            ns._cond.notify_all()

    def list_queues(self, **kwargs: Any) -> Iterator[QueueProperties]:
        ns = self._call()
        with ns._cond:
            return iter([_properties(q) for q in sorted(ns._queues.values(), key=lambda q: q.name)])

    def list_queues_runtime_properties(self, **kwargs: Any) -> Iterator[FakeQueueRuntimeProperties]:
        ns = self._call()
        with ns._cond:
            return iter([_runtime(ns, q) for q in sorted(ns._queues.values(), key=lambda q: q.name)])


_SETTING_DEFAULTS: dict[str, Any] = {
    "lock_duration": DEFAULT_LOCK_DURATION,
    "max_delivery_count": DEFAULT_MAX_DELIVERY_COUNT,
    "default_message_time_to_live": _FOREVER,
    "dead_lettering_on_message_expiration": False,
    "max_size_in_megabytes": 1024,
    "requires_session": False,
    "requires_duplicate_detection": False,
    "enable_partitioning": False,
    "enable_batched_operations": True,
    "enable_express": False,
    "auto_delete_on_idle": _FOREVER,
    "duplicate_detection_history_time_window": timedelta(minutes=10),
    "forward_to": None,
    "forward_dead_lettered_messages_to": None,
    "user_metadata": None,
    "status": "Active",
    "max_message_size_in_kilobytes": None,
}


def _queue_settings(kwargs: Mapping[str, Any], *, premium: bool) -> dict[str, Any]:
    settings = dict(_SETTING_DEFAULTS)
    settings.update({k: v for k, v in kwargs.items() if k in _SETTING_DEFAULTS and v is not None})
    for key in (
        "lock_duration",
        "default_message_time_to_live",
        "auto_delete_on_idle",
        "duplicate_detection_history_time_window",
    ):
        settings[key] = _parse_duration(settings[key], name=key)
    lock = settings["lock_duration"]
    if lock > MAX_LOCK_DURATION:
        raise _bad_request("The supplied lock time exceeds the allowed maximum of '5' minutes.")
    if lock < MIN_LOCK_DURATION:
        raise _bad_request("The supplied lock time is below the allowed minimum of '5' seconds.")
    if int(settings["max_delivery_count"]) < 1:
        raise _bad_request("MaxDeliveryCount must be at least 1.")
    metadata = settings["user_metadata"]
    if metadata is not None and len(metadata) > 1024:
        raise _bad_request("UserMetadata is longer than 1024 characters.")
    size_kb = settings["max_message_size_in_kilobytes"]
    if size_kb is not None and not premium:
        raise _bad_request("MaxMessageSizeInKilobytes is only supported on Premium namespaces.")
    if size_kb is not None and not PREMIUM_MIN_MAX_MESSAGE_KB <= int(size_kb) <= PREMIUM_MAX_MAX_MESSAGE_KB:
        raise _bad_request(
            f"MaxMessageSizeInKilobytes must be between {PREMIUM_MIN_MAX_MESSAGE_KB} and {PREMIUM_MAX_MAX_MESSAGE_KB}."
        )
    if premium and size_kb is None:
        settings["max_message_size_in_kilobytes"] = PREMIUM_DEFAULT_MAX_MESSAGE_KB
    return settings


def _properties(queue: _Queue) -> QueueProperties:
    s = queue.settings
    return QueueProperties(
        queue.name,
        authorization_rules=None,
        auto_delete_on_idle=s["auto_delete_on_idle"],
        dead_lettering_on_message_expiration=s["dead_lettering_on_message_expiration"],
        default_message_time_to_live=s["default_message_time_to_live"],
        duplicate_detection_history_time_window=s["duplicate_detection_history_time_window"],
        availability_status="Available",
        enable_batched_operations=s["enable_batched_operations"],
        enable_express=s["enable_express"],
        enable_partitioning=s["enable_partitioning"],
        lock_duration=s["lock_duration"],
        max_delivery_count=s["max_delivery_count"],
        max_size_in_megabytes=s["max_size_in_megabytes"],
        requires_duplicate_detection=s["requires_duplicate_detection"],
        requires_session=s["requires_session"],
        status=s["status"],
        forward_to=s["forward_to"],
        user_metadata=s["user_metadata"],
        forward_dead_lettered_messages_to=s["forward_dead_lettered_messages_to"],
        max_message_size_in_kilobytes=s["max_message_size_in_kilobytes"],
    )


def _runtime(ns: FakeServiceBusNamespace, queue: _Queue) -> FakeQueueRuntimeProperties:
    ns._housekeep(queue)
    everything = [*queue.active, *queue.scheduled, *queue.dead_letter]
    return FakeQueueRuntimeProperties(
        name=queue.name,
        active_message_count=len(queue.active),
        dead_letter_message_count=len(queue.dead_letter),
        scheduled_message_count=len(queue.scheduled),
        transfer_message_count=0,
        transfer_dead_letter_message_count=0,
        total_message_count=len(everything),
        size_in_bytes=sum(m.size for m in everything),
        created_at_utc=queue.created_at,
        updated_at_utc=queue.updated_at,
        accessed_at_utc=queue.accessed_at,
    )


# --- data plane ---------------------------------------------------------------------------------


class FakeServiceBusClient:
    """``ServiceBusClient``: builds senders and receivers; each opens its own connection lazily."""

    _fake_namespace: FakeServiceBusNamespace | None = None

    def __init__(
        self,
        fully_qualified_namespace: str,
        credential: Any = None,
        *,
        namespace: FakeServiceBusNamespace | None = None,
        retry_total: int = 3,
        retry_backoff_factor: float = 0.8,
        retry_backoff_max: float = 120,
        **kwargs: Any,
    ) -> None:
        self._ns = _namespace_of(self, namespace)
        self.fully_qualified_namespace = _host_of(fully_qualified_namespace)
        self._credential = credential
        self.retry_total = retry_total
        self.retry_backoff_factor = retry_backoff_factor
        self.retry_backoff_max = retry_backoff_max
        self._handlers: list[_Handler] = []
        self._ns.stats.clients_created += 1

    @classmethod
    def from_connection_string(cls, conn_str: str, **kwargs: Any) -> FakeServiceBusClient:
        return cls(_host_from_connection_string(conn_str), None, **kwargs)

    def __enter__(self) -> FakeServiceBusClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        for handler in list(self._handlers):
            handler.close()
        self._handlers.clear()

    def get_queue_sender(self, queue_name: str, **kwargs: Any) -> FakeServiceBusSender:
        sender = FakeServiceBusSender(self, queue_name, keep_alive=kwargs.get("keep_alive"))
        self._handlers.append(sender)
        return sender

    def get_queue_receiver(
        self,
        queue_name: str,
        *,
        receive_mode: ServiceBusReceiveMode | str = ServiceBusReceiveMode.PEEK_LOCK,
        sub_queue: ServiceBusSubQueue | str | None = None,
        max_wait_time: float | None = None,
        **kwargs: Any,
    ) -> FakeServiceBusReceiver:
        receiver = FakeServiceBusReceiver(
            self,
            queue_name,
            receive_mode=ServiceBusReceiveMode(receive_mode),
            sub_queue=ServiceBusSubQueue(sub_queue) if sub_queue is not None else None,
            max_wait_time=max_wait_time,
            keep_alive=kwargs.get("keep_alive"),
        )
        self._handlers.append(receiver)
        return receiver

    def _with_retry(self, operation: Callable[[], Any]) -> Any:
        """The SDK's ``_do_retryable_operation``: transient errors retried with exponential back-off."""
        retried = 0
        while True:
            try:
                return operation()
            except _TRANSIENT:
                retried += 1
                if retried > self.retry_total:
                    raise
                backoff = min(self.retry_backoff_max, self.retry_backoff_factor * 2**retried)
                self._ns.stats.sdk_retries += 1
                self._ns.stats.backoff_seconds += backoff
                self._ns.clock.advance(backoff)


class _Handler:
    """What senders and receivers share: a lazily opened connection (and link) that can go stale."""

    def __init__(self, client: FakeServiceBusClient, queue_name: str, keep_alive: float | None) -> None:
        self._client = client
        self._ns = client._ns
        self.entity_name = queue_name
        self.fully_qualified_namespace = client.fully_qualified_namespace
        self._keep_alive = keep_alive
        self._conn: _Connection | None = None
        self._link_last_used = 0.0
        self._link_sends = 0
        self._shutdown = False

    def _check_live(self) -> None:
        if self._shutdown:
            raise ValueError(
                "The handler has already been shutdown. Please use ServiceBusClient to create a new instance."
            )

    def _open(self) -> _Connection:
        if self._conn is None:
            self._conn = self._ns._open_connection(
                self.fully_qualified_namespace, self._client._credential, self._keep_alive
            )
            self._link_last_used = self._ns._now()
            self._link_sends = 0
            with self._ns._cond:
                if self.entity_name.lower() not in self._ns._queues:
                    self._drop()
                    raise MessagingEntityNotFoundError(
                        message=f"The messaging entity '{self._ns.fully_qualified_namespace}/{self.entity_name}' "
                        "could not be found."
                    )
        return self._conn

    def _live_connection(self) -> _Connection:
        """The open connection, or the SDK's error if the service dropped it (the handler is then reset)."""
        conn = self._open()
        try:
            self._ns._check_connection(conn)
        except ServiceBusError:
            self._drop()
            raise
        return conn

    def _drop(self) -> None:
        if self._conn is not None:
            self._conn.closed = True
            self._conn = None

    def _open_with_retry(self) -> None:
        self._check_live()
        self._client._with_retry(self._live_connection)

    def close(self) -> None:
        self._drop()
        self._shutdown = True

    def __enter__(self) -> Any:
        self._open_with_retry()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class FakeServiceBusSender(_Handler):
    """``ServiceBusSender``: ``send_messages`` and ``schedule_messages`` with the SDK's retry policy."""

    def __init__(self, client: FakeServiceBusClient, queue_name: str, keep_alive: float | None = None) -> None:
        super().__init__(client, queue_name, keep_alive)
        self._ns.stats.senders_created += 1

    def send_messages(self, message: Any, *, timeout: float | None = None, **kwargs: Any) -> None:
        self._check_live()
        if timeout is not None and timeout <= 0:
            raise ValueError("The timeout must be greater than 0.")
        messages = self._outgoing(message)
        if not messages:
            return
        self._ns.stats.send_calls += 1
        self._client._with_retry(lambda: self._attempt(messages, None))

    def schedule_messages(self, messages: Any, schedule_time_utc: datetime, **kwargs: Any) -> list[int]:
        self._check_live()
        outgoing = self._outgoing(messages)
        at = (schedule_time_utc - self._ns.clock.now()).total_seconds() + self._ns._now()
        self._ns.stats.send_calls += 1
        result: list[int] = self._client._with_retry(lambda: self._attempt(outgoing, at))
        return result

    def cancel_scheduled_messages(self, sequence_numbers: int | list[int], **kwargs: Any) -> None:
        self._check_live()
        wanted = {sequence_numbers} if isinstance(sequence_numbers, int) else set(sequence_numbers)
        with self._ns._cond:
            queue = self._ns._queue(self.entity_name)
            queue.scheduled = [m for m in queue.scheduled if m.sequence_number not in wanted]

    def _outgoing(self, message: Any) -> list[ServiceBusMessage]:
        items = list(message) if isinstance(message, (list, tuple)) else [message]
        result = []
        for item in items:
            if isinstance(item, Mapping):
                item = ServiceBusMessage(**item)
            if not isinstance(item, ServiceBusMessage):
                raise TypeError(
                    "Only ServiceBusMessage, a dict of its fields or a list of them can be sent, "
                    f"not {type(item).__name__}"
                )
            result.append(item)
        return result

    def _attempt(self, messages: list[ServiceBusMessage], scheduled_at: float | None) -> list[int]:
        ns = self._ns
        ns.stats.send_attempts += 1
        conn = self._live_connection()
        now = ns._now()
        if ns.faults.link_idle_detach and now - self._link_last_used > ns.link_idle_timeout:
            self._fail_link("The link was idle and detached by the service.")
        if ns.faults.detach_link_on_first_send and self._link_sends == 0:
            ns.faults.detach_link_on_first_send = False  # one shot: the reopened link works
            self._fail_link("The link was detached by the service before the first transfer.")
        with ns._cond:
            queue = ns._queue(self.entity_name) if self.entity_name.lower() in ns._queues else None
            if queue is None:
                raise MessagingEntityNotFoundError(
                    message=f"The messaging entity '{self.entity_name}' could not be found."
                )
            limit = (
                STANDARD_MAX_MESSAGE_BYTES
                if ns.tier == "Standard"
                else int(queue.settings["max_message_size_in_kilobytes"]) * 1024
            )
            sizes = [encoded_message_size(m) for m in messages]
            if max(sizes) > limit or (len(messages) > 1 and sum(sizes) > limit):
                raise MessageSizeExceededError(
                    message=f"The received message (size {max(sizes) if len(messages) == 1 else sum(sizes)} bytes) "
                    f"exceeds the limit ({limit} bytes) currently allowed on the link.",
                    condition="amqp:link:message-size-exceeded",
                )
            failing = ns.faults.fail_send_attempts > 0
            if failing:
                ns.faults.fail_send_attempts -= 1
                if not ns.faults.send_error_after_delivery:
                    self._raise_injected()
            numbers = [self._store(queue, m, size, scheduled_at) for m, size in zip(messages, sizes, strict=True)]
            ns.stats.messages_sent += len(messages)
            queue.accessed_at = ns.clock.now()
            ns._cond.notify_all()
        ns._touch(conn)
        self._link_last_used = ns._now()
        self._link_sends += 1
        if failing:
            self._raise_injected()
        return numbers

    def _raise_injected(self) -> None:
        self._ns.stats.faults_raised += 1
        error_type = self._ns.faults.send_error
        if issubclass(error_type, (ServiceBusConnectionError, ServiceBusCommunicationError)):
            self._drop()
        raise error_type(message="Injected fault.")  # type: ignore[call-arg]

    def _fail_link(self, message: str) -> None:
        self._ns.stats.faults_raised += 1
        self._drop()
        raise ServiceBusConnectionError(message=message, condition="amqp:link:detach-forced")

    def _store(self, queue: _Queue, message: ServiceBusMessage, size: int, scheduled_at: float | None) -> int:
        ns = self._ns
        now = ns._now()
        if scheduled_at is None and message.scheduled_enqueue_time_utc is not None:
            scheduled_at = now + (message.scheduled_enqueue_time_utc - ns.clock.now()).total_seconds()
        # The service keeps the shorter of the message's time-to-live and the queue's default.
        default_ttl = queue.settings["default_message_time_to_live"]
        ttl = min(message.time_to_live or default_ttl, default_ttl)
        stored = _Stored(
            sequence_number=next(ns._sequence),
            body=_body_bytes(message),
            size=size,
            enqueued_at=now,
            expires_at=None if ttl >= _FOREVER else (scheduled_at or now) + ttl.total_seconds(),
            message_id=message.message_id or uuid.uuid4().hex,
            content_type=message.content_type,
            correlation_id=message.correlation_id,
            subject=message.subject,
            session_id=message.session_id,
            application_properties=dict(message.application_properties or {}),
            scheduled_at=scheduled_at if scheduled_at is not None and scheduled_at > now else None,
        )
        (queue.scheduled if stored.scheduled_at is not None else queue.active).append(stored)
        return stored.sequence_number


class FakeReceivedMessage:
    """``ServiceBusReceivedMessage``'s attributes as kombu and callers read them."""

    def __init__(self, stored: _Stored, receiver: FakeServiceBusReceiver, settled: bool) -> None:
        ns = receiver._ns
        self._stored = stored
        self._receiver = receiver
        self._lock_token = stored.lock_token
        self._settled = settled
        self.auto_renew_error: BaseException | None = None
        self.body: bytes = stored.body
        self.message_id = stored.message_id
        self.content_type = stored.content_type
        self.correlation_id = stored.correlation_id
        self.subject = stored.subject
        self.session_id = stored.session_id
        self.application_properties = dict(stored.application_properties)
        self.sequence_number = stored.sequence_number
        self.delivery_count = stored.delivery_count
        self.dead_letter_reason = stored.dead_letter_reason
        self.dead_letter_error_description = stored.dead_letter_description
        self.enqueued_time_utc = ns.clock.now() - timedelta(seconds=ns._now() - stored.enqueued_at)
        self.size = stored.size

    def __str__(self) -> str:
        return self.body.decode(errors="replace")

    def __repr__(self) -> str:
        return f"FakeReceivedMessage(sequence_number={self.sequence_number}, delivery_count={self.delivery_count})"

    @property
    def lock_token(self) -> str | None:
        return self._lock_token

    @property
    def locked_until_utc(self) -> datetime | None:
        if self._stored.locked_until is None:
            return None
        ns = self._receiver._ns
        return ns.clock.now() + timedelta(seconds=self._stored.locked_until - ns._now())

    @property
    def _lock_expired(self) -> bool:
        ns = self._receiver._ns
        with ns._cond:
            return not self._settled and (
                self._stored.lock_token != self._lock_token or not ns._is_locked(self._stored)
            )


class FakeServiceBusReceiver(_Handler):
    """``ServiceBusReceiver``: peek-lock or receive-and-delete, settlement, lock renewal."""

    def __init__(
        self,
        client: FakeServiceBusClient,
        queue_name: str,
        *,
        receive_mode: ServiceBusReceiveMode = ServiceBusReceiveMode.PEEK_LOCK,
        sub_queue: ServiceBusSubQueue | None = None,
        max_wait_time: float | None = None,
        keep_alive: float | None = None,
    ) -> None:
        super().__init__(client, queue_name, keep_alive)
        self.receive_mode = receive_mode
        self.sub_queue = sub_queue
        self.max_wait_time = max_wait_time
        self._ns.stats.receivers_created += 1

    @property
    def entity_path(self) -> str:
        return self.entity_name + ("/$DeadLetterQueue" if self.sub_queue is not None else "")

    def receive_messages(
        self, max_message_count: int | None = 1, max_wait_time: float | None = None, **kwargs: Any
    ) -> list[FakeReceivedMessage]:
        self._check_live()
        wait = max_wait_time if max_wait_time is not None else self.max_wait_time
        cap = self._ns.max_receive_wait
        if wait is None or (cap is not None and wait > cap):
            wait = cap
        deadline = None if wait is None else time.monotonic() + wait
        count = max(1, max_message_count or 1)
        conn = self._client._with_retry(self._live_connection)
        self._ns._touch(conn)
        with self._ns._cond:
            while True:
                taken = self._take(count)
                if taken:
                    self._ns._touch(conn)
                    return taken
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return []
                self._ns._cond.wait(remaining)
                if self._shutdown:
                    return []

    def _take(self, count: int) -> list[FakeReceivedMessage]:
        ns = self._ns
        if self.entity_name.lower() not in ns._queues:
            raise MessagingEntityNotFoundError(message=f"The messaging entity '{self.entity_name}' could not be found.")
        queue = ns._queue(self.entity_name)
        ns._housekeep(queue)
        bucket = queue.dead_letter if self.sub_queue is not None else queue.active
        result: list[FakeReceivedMessage] = []
        for stored in list(bucket):
            if len(result) >= count:
                break
            if stored.lock_token is not None:
                continue
            stored.delivery_count += 1
            if self.receive_mode == ServiceBusReceiveMode.RECEIVE_AND_DELETE:
                bucket.remove(stored)
                result.append(FakeReceivedMessage(stored, self, settled=True))
            else:
                stored.lock_token = str(uuid.uuid4())
                stored.locked_until = ns._now() + queue.lock_seconds
                result.append(FakeReceivedMessage(stored, self, settled=False))
        ns.stats.messages_received += len(result)
        queue.accessed_at = ns.clock.now()
        return result

    def peek_messages(self, max_message_count: int = 1, **kwargs: Any) -> list[FakeReceivedMessage]:
        self._check_live()
        self._client._with_retry(self._live_connection)
        with self._ns._cond:
            queue = self._ns._queue(self.entity_name)
            self._ns._housekeep(queue)
            bucket = queue.dead_letter if self.sub_queue is not None else queue.active
            return [FakeReceivedMessage(m, self, settled=True) for m in bucket[:max_message_count]]

    def _settle(self, message: FakeReceivedMessage) -> _Stored:
        self._check_live()
        if message._settled:
            raise MessageAlreadySettled(action="settle")
        if self.receive_mode == ServiceBusReceiveMode.RECEIVE_AND_DELETE:
            raise ValueError("The operation is not supported in 'RECEIVE_AND_DELETE' receive mode.")
        ns = self._ns
        self._client._with_retry(self._live_connection)
        stored = message._stored
        if stored.lock_token != message._lock_token or not ns._is_locked(stored):
            raise MessageLockLostError(message="The lock on the message has expired.")
        message._settled = True
        return stored

    def _bucket_of(self, stored: _Stored) -> list[_Stored]:
        queue = self._ns._queue(self.entity_name)
        return queue.dead_letter if self.sub_queue is not None else queue.active

    def complete_message(self, message: FakeReceivedMessage) -> None:
        with self._ns._cond:
            stored = self._settle(message)
            self._bucket_of(stored).remove(stored)
            self._ns.stats.messages_completed += 1

    def abandon_message(self, message: FakeReceivedMessage) -> None:
        with self._ns._cond:
            stored = self._settle(message)
            stored.lock_token = None
            stored.locked_until = stored.renew_until = None
            self._ns._housekeep(self._ns._queue(self.entity_name))
            self._ns._cond.notify_all()

    def dead_letter_message(
        self, message: FakeReceivedMessage, reason: str | None = None, error_description: str | None = None
    ) -> None:
        with self._ns._cond:
            stored = self._settle(message)
            queue = self._ns._queue(self.entity_name)
            self._bucket_of(stored).remove(stored)
            stored.lock_token = None
            stored.locked_until = stored.renew_until = None
            stored.dead_letter_reason = reason
            stored.dead_letter_description = error_description
            queue.dead_letter.append(stored)

    def renew_message_lock(self, message: FakeReceivedMessage, **kwargs: Any) -> datetime:
        with self._ns._cond:
            stored = message._stored
            if message._settled:
                raise MessageAlreadySettled(action="renew lock")
            if stored.lock_token != message._lock_token or not self._ns._is_locked(stored):
                raise MessageLockLostError(message="The lock on the message has expired.")
            queue = self._ns._queue(self.entity_name)
            stored.locked_until = self._ns._now() + queue.lock_seconds
            until = message.locked_until_utc
            assert until is not None
            return until


class FakeAutoLockRenewer:
    """``AutoLockRenewer`` on fake time: a registered message keeps its lock until
    ``max_lock_renewal_duration`` after registration (or until ``close``)."""

    _fake_namespace: FakeServiceBusNamespace | None = None

    def __init__(
        self, max_lock_renewal_duration: float = 300, on_lock_renew_failure: Any = None, **kwargs: Any
    ) -> None:
        self.max_lock_renewal_duration = max_lock_renewal_duration
        self.on_lock_renew_failure = on_lock_renew_failure
        self._registered: list[FakeReceivedMessage] = []
        self._closed = False

    def register(
        self,
        receiver: FakeServiceBusReceiver,
        renewable: FakeReceivedMessage,
        max_lock_renewal_duration: float | None = None,
        on_lock_renew_failure: Any = None,
    ) -> None:
        if self._closed:
            raise ValueError("The AutoLockRenewer has already been shutdown.")
        ns = receiver._ns
        duration = max_lock_renewal_duration or self.max_lock_renewal_duration
        with ns._cond:
            renewable._stored.renew_until = ns._now() + duration
        self._registered.append(renewable)

    def close(self, wait: bool = True) -> None:
        for message in self._registered:
            ns = message._receiver._ns
            with ns._cond:
                stored = message._stored
                if stored.renew_until is not None:
                    stored.locked_until = max(stored.locked_until or 0.0, min(stored.renew_until, ns._now()))
                    stored.renew_until = None
        self._registered.clear()
        self._closed = True

    def __enter__(self) -> FakeAutoLockRenewer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# --- kombu --------------------------------------------------------------------------------------

_KOMBU_MODULE = "kombu.transport.azureservicebus"
_MISSING = object()


@contextlib.contextmanager
def patch_kombu_servicebus(
    namespace: FakeServiceBusNamespace, *extra_modules: ModuleType | str
) -> Iterator[FakeServiceBusNamespace]:
    """Replace the SDK names kombu's Service Bus transport imported with fakes bound to ``namespace``.

    ``extra_modules`` (modules or dotted names) get the same names replaced where they define them:
    pass the module of a Transport subclass that imported those names itself. Restores on exit.
    """
    kombu_module = importlib.import_module(_KOMBU_MODULE)
    modules = [kombu_module, *(importlib.import_module(m) if isinstance(m, str) else m for m in extra_modules)]
    classes = namespace.sdk_classes()
    saved: list[tuple[ModuleType, str, Any]] = []
    for module in modules:
        for name, fake in classes.items():
            if module is kombu_module or hasattr(module, name):
                saved.append((module, name, getattr(module, name, _MISSING)))
                setattr(module, name, fake)
    try:
        yield namespace
    finally:
        for module, name, original in reversed(saved):
            if original is _MISSING:
                delattr(module, name)
            else:
                setattr(module, name, original)
