"""A fake Google Cloud Pub/Sub at the SDK boundary: ``PublisherClient`` and ``SubscriberClient``.

No Pub/Sub emulator can run here, so this fake answers the calls the queue delegate and kombu's
``gcpubsub`` transport make, with the service's rules and the SDK's real types and exceptions
(``google.pubsub_v1.types`` messages; ``AlreadyExists``, ``NotFound``, ``InvalidArgument``,
``PermissionDenied``, ``ServiceUnavailable`` from ``google.api_core.exceptions``)::

    service = FakePubSub()
    publisher, subscriber = service.publisher(), service.subscriber()

What it models: topics and subscriptions per project (create, get, update, delete; names, labels
and ack deadlines checked as the service checks them), publishing (a message goes to every
subscription of its topic whose ``attributes.KEY = "VALUE"`` filter matches), unary ``pull`` with
leases that expire after the ack deadline (then the message is delivered again),
``acknowledge``, ``modify_ack_deadline``, ``seek`` to a time (drops older messages), the 10 MB
message limit, a deleted topic leaving its subscriptions detached, and faults
(`FakePubSub.faults`: unreachable, permission denied).

What it does not model: streaming pull (``subscribe``), ordering keys, exactly-once delivery,
dead-letter and retry policies, push subscriptions, filters other than ``attributes.KEY="VALUE"``,
message retention and subscription expiry over time, snapshots, schemas, IAM, flow control and
batching settings, quotas, and Cloud Monitoring (so there is no undelivered-message count here
either).
"""

from __future__ import annotations

import contextlib
import datetime
import itertools
import re
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import Future
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

from google.api_core import exceptions as gexc
from google.pubsub_v1 import types

__all__ = [
    "FakeMetricServiceClient",
    "FakePubSub",
    "FakePublisherClient",
    "FakeSubscriberClient",
    "PubSubFaults",
    "kombu_on_fake",
]

MAX_MESSAGE_BYTES = 10 * 1000 * 1000  # the service's limit on one publish request
MIN_ACK_DEADLINE, MAX_ACK_DEADLINE, DEFAULT_ACK_DEADLINE = 10, 600, 10
MAX_LABELS = 64
_RESOURCE_ID = re.compile(r"[A-Za-z][A-Za-z0-9\-_.~+%]{2,254}")
_LABEL_KEY = re.compile(r"[a-z][a-z0-9_-]{0,62}")
_LABEL_VALUE = re.compile(r"[a-z0-9_-]{0,63}")
_FILTER = re.compile(r'\s*attributes\.([A-Za-z0-9_-]+)\s*=\s*"([^"]*)"\s*')
_UPDATABLE_SUBSCRIPTION = {
    "ack_deadline_seconds",
    "labels",
    "expiration_policy",
    "expiration_policy.ttl",
    "message_retention_duration",
    "enable_exactly_once_delivery",
    "retain_acked_messages",
    "push_config",
    "retry_policy",
    "dead_letter_policy",
}
_UPDATABLE_TOPIC = {"labels", "message_retention_duration"}
DELETED_TOPIC = "_deleted-topic_"


@dataclass
class PubSubFaults:
    """Switches that make every call fail the way the service or the network does."""

    unreachable: bool = False  # ServiceUnavailable, as the SDK raises when it cannot connect
    denied: bool = False  # PermissionDenied (the identity lacks roles/pubsub.editor)
    #: projects whose calls fail as if unreachable (one service can then serve a project that is "down")
    unreachable_projects: set[str] = field(default_factory=set)

    def check(self, path: str = "") -> None:
        project = path.split("/")[1] if path.startswith("projects/") and path.count("/") >= 1 else None
        if self.unreachable or (project is not None and project in self.unreachable_projects):
            raise gexc.ServiceUnavailable("fake Pub/Sub: failed to connect to all addresses")
        if self.denied:
            raise gexc.PermissionDenied("fake Pub/Sub: User not authorized to perform this action.")


@dataclass
class _Message:
    message_id: str
    data: bytes
    attributes: dict[str, str]
    publish_time: datetime.datetime


@dataclass
class _Lease:
    message: _Message
    deadline: float
    attempt: int


@dataclass
class _Subscription:
    resource: types.Subscription
    backlog: list[_Message] = field(default_factory=list)
    leases: dict[str, _Lease] = field(default_factory=dict)  # ack_id -> lease
    attempts: dict[str, int] = field(default_factory=dict)  # message_id -> deliveries so far


def _request(request: Any, kwargs: Mapping[str, Any], names: Iterable[str]) -> dict[str, Any]:
    """The SDK's calling forms: a ``request`` (dict or proto) or flattened keyword arguments, not both."""
    flattened = {name: kwargs[name] for name in names if kwargs.get(name) is not None}
    if request is not None and flattened:
        raise ValueError("If the `request` argument is set, then none of the individual field arguments should be set.")
    if request is None:
        return flattened
    if isinstance(request, Mapping):
        return dict(request)
    return {name: getattr(request, name) for name in type(request).meta.fields}


def _check_id(path: str, kind: str) -> None:
    parts = path.split("/")
    if len(parts) != 4 or parts[0] != "projects" or parts[2] != kind or not parts[1]:
        raise gexc.InvalidArgument(f"Invalid resource name given (name={path}). Refer to the naming documentation.")
    resource_id = parts[3]
    if not _RESOURCE_ID.fullmatch(resource_id) or resource_id.lower().startswith("goog"):
        raise gexc.InvalidArgument(f"Invalid resource name given (name={path}). Refer to the naming documentation.")


def _check_labels(labels: Mapping[str, str]) -> None:
    if len(labels) > MAX_LABELS:
        raise gexc.InvalidArgument(f"Too many labels: {len(labels)} (at most {MAX_LABELS}).")
    for key, value in labels.items():
        if not _LABEL_KEY.fullmatch(key):
            raise gexc.InvalidArgument(f"Invalid label key: {key!r}.")
        if not _LABEL_VALUE.fullmatch(value):
            raise gexc.InvalidArgument(f"Invalid label value: {value!r} (key {key!r}).")


def _check_ack_deadline(seconds: int) -> None:
    if seconds != 0 and not MIN_ACK_DEADLINE <= seconds <= MAX_ACK_DEADLINE:
        raise gexc.InvalidArgument(
            f"Invalid ack_deadline_seconds: {seconds}; it must be between {MIN_ACK_DEADLINE} and {MAX_ACK_DEADLINE}."
        )


def _parse_filter(text: str) -> tuple[str, str] | None:
    if not text:
        return None
    match = _FILTER.fullmatch(text)
    if match is None:
        raise gexc.InvalidArgument(f'the fake models only attributes.KEY="VALUE" filters, not {text!r}')
    return match[1], match[2]


def _mask_paths(mask: Any) -> list[str]:
    if mask is None:
        return []
    if isinstance(mask, Mapping):
        return list(mask.get("paths", []))
    return list(mask.paths)


class FakePubSub:
    """One fake Pub/Sub service (every project); its clients share the state.

    ``clock`` drives ack deadlines (tests pass a fake clock to expire leases without waiting);
    ``max_pull_wait`` bounds how long a ``pull`` on an empty subscription waits for a message.
    """

    def __init__(self, *, clock: Callable[[], float] = time.monotonic, max_pull_wait: float = 0.2) -> None:
        self.clock = clock
        self.max_pull_wait = max_pull_wait
        self.faults = PubSubFaults()
        self.topics: dict[str, types.Topic] = {}
        self.subscriptions: dict[str, _Subscription] = {}
        self.calls: list[str] = []
        self._ids = itertools.count(1)
        self._changed = threading.Condition()

    def __repr__(self) -> str:
        return f"FakePubSub({len(self.topics)} topics, {len(self.subscriptions)} subscriptions)"

    def publisher(self) -> FakePublisherClient:
        return FakePublisherClient(self)

    def subscriber(self) -> FakeSubscriberClient:
        return FakeSubscriberClient(self)

    def monitoring(self) -> FakeMetricServiceClient:
        return FakeMetricServiceClient()

    # --- helpers for tests ------------------------------------------------------------------------
    def backlog(self, subscription: str) -> int:
        """Messages published to ``subscription`` and not yet acknowledged (leased ones included)."""
        with self._changed:
            sub = self._subscription(subscription)
            return len(sub.backlog) + len(sub.leases)

    def _enter(self, call: str, path: str = "") -> None:
        self.calls.append(call)
        self.faults.check(path)

    def _subscription(self, path: str) -> _Subscription:
        sub = self.subscriptions.get(path)
        if sub is None:
            raise gexc.NotFound(f"Resource not found (resource={path.rsplit('/', 1)[-1]}).")
        return sub

    def _release_expired(self, sub: _Subscription) -> None:
        now = self.clock()
        for ack_id, lease in list(sub.leases.items()):
            if lease.deadline <= now:
                del sub.leases[ack_id]
                sub.backlog.insert(0, lease.message)


class _Client:
    def __init__(self, service: FakePubSub) -> None:
        self._service = service
        self.closed = False

    @staticmethod
    def topic_path(project: str, topic: str) -> str:
        return f"projects/{project}/topics/{topic}"

    @staticmethod
    def subscription_path(project: str, subscription: str) -> str:
        return f"projects/{project}/subscriptions/{subscription}"

    def close(self) -> None:
        self.closed = True

    def __enter__(self) -> Any:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class FakePublisherClient(_Client):
    """Shaped like ``google.cloud.pubsub_v1.PublisherClient``."""

    def create_topic(self, request: Any = None, **kwargs: Any) -> types.Topic:
        fields = _request(request, kwargs, ("name",))
        topic = types.Topic(fields)
        service = self._service
        with service._changed:
            service._enter("create_topic", topic.name)
            _check_id(topic.name, "topics")
            _check_labels(topic.labels)
            if topic.name in service.topics:
                raise gexc.AlreadyExists("Topic already exists")
            service.topics[topic.name] = topic
            return types.Topic(topic)

    def get_topic(self, request: Any = None, **kwargs: Any) -> types.Topic:
        path = _request(request, kwargs, ("topic",))["topic"]
        service = self._service
        with service._changed:
            service._enter("get_topic", path)
            topic = service.topics.get(path)
            if topic is None:
                raise gexc.NotFound(f"Resource not found (resource={path.rsplit('/', 1)[-1]}).")
            return types.Topic(topic)

    def update_topic(self, request: Any = None, **kwargs: Any) -> types.Topic:
        fields = _request(request, kwargs, ("topic", "update_mask"))
        change = types.Topic(fields["topic"])
        paths = _mask_paths(fields.get("update_mask"))
        service = self._service
        with service._changed:
            service._enter("update_topic", change.name)
            topic = service.topics.get(change.name)
            if topic is None:
                raise gexc.NotFound(f"Resource not found (resource={change.name.rsplit('/', 1)[-1]}).")
            if not paths or any(p not in _UPDATABLE_TOPIC for p in paths):
                raise gexc.InvalidArgument(f"Invalid update_mask provided in the UpdateTopicRequest: {paths}")
            if "labels" in paths:
                _check_labels(change.labels)
            for path in paths:
                setattr(topic, path, getattr(change, path))
            return types.Topic(topic)

    def delete_topic(self, request: Any = None, **kwargs: Any) -> None:
        path = _request(request, kwargs, ("topic",))["topic"]
        service = self._service
        with service._changed:
            service._enter("delete_topic", path)
            if path not in service.topics:
                raise gexc.NotFound(f"Resource not found (resource={path.rsplit('/', 1)[-1]}).")
            del service.topics[path]
            for sub in service.subscriptions.values():
                if sub.resource.topic == path:
                    sub.resource.topic = DELETED_TOPIC

    def publish(
        self, topic: str, data: bytes, ordering_key: str = "", retry: Any = None, timeout: Any = None, **attrs: Any
    ) -> Future[str]:
        """Like the SDK: type and size errors raise at once; a service error comes out of the future."""
        from google.cloud.pubsub_v1.publisher import exceptions as publisher_exceptions

        if not isinstance(data, bytes):
            raise TypeError("Data being published to Pub/Sub must be sent as a bytestring.")
        for key, value in attrs.items():
            if not isinstance(value, str):
                raise TypeError(f"All attributes being published to Pub/Sub must be sent as text strings ({key}).")
        size = len(data) + sum(len(k) + len(v.encode()) for k, v in attrs.items())
        if size > MAX_MESSAGE_BYTES:
            raise publisher_exceptions.MessageTooLargeError(
                f"The message being published would produce too large a publish request that would exceed the "
                f"maximum allowed size on the backend ({MAX_MESSAGE_BYTES} bytes)."
            )
        future: Future[str] = Future()
        service = self._service
        with service._changed:
            try:
                service._enter("publish", topic)
                if topic not in service.topics:
                    raise gexc.NotFound(f"Resource not found (resource={topic.rsplit('/', 1)[-1]}).")
            except gexc.GoogleAPICallError as err:
                future.set_exception(err)
                return future
            message = _Message(str(next(service._ids)), data, dict(attrs), datetime.datetime.now(datetime.timezone.utc))
            for sub in service.subscriptions.values():
                if sub.resource.topic != topic:
                    continue
                wanted = _parse_filter(sub.resource.filter)
                if wanted is None or message.attributes.get(wanted[0]) == wanted[1]:
                    sub.backlog.append(message)
            service._changed.notify_all()
        future.set_result(message.message_id)
        return future


class FakeSubscriberClient(_Client):
    """Shaped like ``google.cloud.pubsub_v1.SubscriberClient``."""

    def create_subscription(self, request: Any = None, **kwargs: Any) -> types.Subscription:
        fields = _request(request, kwargs, ("name", "topic", "push_config", "ack_deadline_seconds"))
        resource = types.Subscription(fields)
        service = self._service
        with service._changed:
            service._enter("create_subscription", resource.name)
            _check_id(resource.name, "subscriptions")
            _check_labels(resource.labels)
            _check_ack_deadline(resource.ack_deadline_seconds)
            _parse_filter(resource.filter)
            if resource.name in service.subscriptions:
                raise gexc.AlreadyExists("Subscription already exists")
            if resource.topic not in service.topics:
                raise gexc.NotFound(f"Resource not found (resource={resource.topic.rsplit('/', 1)[-1]}).")
            if not resource.ack_deadline_seconds:
                resource.ack_deadline_seconds = DEFAULT_ACK_DEADLINE
            service.subscriptions[resource.name] = _Subscription(resource)
            return types.Subscription(resource)

    def get_subscription(self, request: Any = None, **kwargs: Any) -> types.Subscription:
        path = _request(request, kwargs, ("subscription",))["subscription"]
        service = self._service
        with service._changed:
            service._enter("get_subscription", path)
            return types.Subscription(service._subscription(path).resource)

    def update_subscription(self, request: Any = None, **kwargs: Any) -> types.Subscription:
        fields = _request(request, kwargs, ("subscription", "update_mask"))
        change = types.Subscription(fields["subscription"])
        paths = _mask_paths(fields.get("update_mask"))
        service = self._service
        with service._changed:
            service._enter("update_subscription", change.name)
            sub = service._subscription(change.name)
            if not paths or any(p not in _UPDATABLE_SUBSCRIPTION for p in paths):
                raise gexc.InvalidArgument(f"Invalid update_mask provided in the UpdateSubscriptionRequest: {paths}")
            if "labels" in paths:
                _check_labels(change.labels)
            if "ack_deadline_seconds" in paths:
                _check_ack_deadline(change.ack_deadline_seconds)
            for path in paths:
                name = path.split(".", 1)[0]
                setattr(sub.resource, name, getattr(change, name))
            return types.Subscription(sub.resource)

    def delete_subscription(self, request: Any = None, **kwargs: Any) -> None:
        path = _request(request, kwargs, ("subscription",))["subscription"]
        service = self._service
        with service._changed:
            service._enter("delete_subscription", path)
            service._subscription(path)
            del service.subscriptions[path]

    def pull(
        self, request: Any = None, *, retry: Any = None, timeout: float | None = None, **kwargs: Any
    ) -> types.PullResponse:
        fields = _request(request, kwargs, ("subscription", "max_messages", "return_immediately"))
        path, most = fields["subscription"], int(fields.get("max_messages") or 0)
        if most <= 0:
            raise gexc.InvalidArgument("max_messages must be positive")
        service = self._service
        wait_until = time.monotonic() + min(service.max_pull_wait, timeout if timeout is not None else 60.0)
        with service._changed:
            service._enter("pull", path)
            while True:
                sub = service._subscription(path)
                service._release_expired(sub)
                if sub.backlog or time.monotonic() >= wait_until:
                    break
                service._changed.wait(max(0.0, wait_until - time.monotonic()))
            received = []
            deadline = service.clock() + sub.resource.ack_deadline_seconds
            for message in sub.backlog[:most]:
                attempt = sub.attempts.get(message.message_id, 0) + 1
                sub.attempts[message.message_id] = attempt
                ack_id = f"ack-{next(service._ids)}"
                sub.leases[ack_id] = _Lease(message, deadline, attempt)
                received.append(
                    {
                        "ack_id": ack_id,
                        "delivery_attempt": attempt,
                        "message": {
                            "data": message.data,
                            "attributes": message.attributes,
                            "message_id": message.message_id,
                            "publish_time": message.publish_time,
                        },
                    }
                )
            del sub.backlog[: len(received)]
            return types.PullResponse(received_messages=received)

    def acknowledge(self, request: Any = None, *, retry: Any = None, timeout: Any = None, **kwargs: Any) -> None:
        fields = _request(request, kwargs, ("subscription", "ack_ids"))
        service = self._service
        with service._changed:
            service._enter("acknowledge", fields["subscription"])
            sub = service._subscription(fields["subscription"])
            for ack_id in fields.get("ack_ids", []):
                lease = sub.leases.pop(ack_id, None)  # an expired or unknown ack id is ignored, as by the service
                if lease is not None:
                    sub.attempts.pop(lease.message.message_id, None)

    def modify_ack_deadline(
        self, request: Any = None, *, retry: Any = None, timeout: Any = None, **kwargs: Any
    ) -> None:
        fields = _request(request, kwargs, ("subscription", "ack_ids", "ack_deadline_seconds"))
        seconds = int(fields.get("ack_deadline_seconds", 0))
        if not 0 <= seconds <= MAX_ACK_DEADLINE:
            raise gexc.InvalidArgument(f"Invalid ack_deadline_seconds: {seconds}")
        service = self._service
        with service._changed:
            service._enter("modify_ack_deadline", fields["subscription"])
            sub = service._subscription(fields["subscription"])
            for ack_id in fields.get("ack_ids", []):
                lease = sub.leases.get(ack_id)
                if lease is None:
                    continue
                if seconds == 0:  # nack: deliver again now
                    del sub.leases[ack_id]
                    sub.backlog.insert(0, lease.message)
                else:
                    lease.deadline = service.clock() + seconds
            service._changed.notify_all()

    def seek(self, request: Any = None, **kwargs: Any) -> types.SeekResponse:
        """Seek to a time: messages published before it count as acknowledged (kombu's purge)."""
        fields = _request(request, kwargs, ("subscription", "time"))
        when = fields.get("time")
        service = self._service
        with service._changed:
            service._enter("seek", fields["subscription"])
            sub = service._subscription(fields["subscription"])
            if isinstance(when, datetime.datetime):
                cutoff = when if when.tzinfo else when.astimezone(datetime.timezone.utc)
                sub.backlog = [m for m in sub.backlog if m.publish_time >= cutoff]
                sub.leases = {a: lease for a, lease in sub.leases.items() if lease.message.publish_time >= cutoff}
            return types.SeekResponse()


class FakeMetricServiceClient:
    """Cloud Monitoring's ``MetricServiceClient`` as far as kombu's transport uses it: no time series.

    kombu asks it for ``num_undelivered_messages`` when a queue is declared; the fake does not model
    Cloud Monitoring, so the answer is an empty series (kombu reads 0).
    """

    def list_time_series(self, *args: Any, **kwargs: Any) -> Iterator[Any]:
        return iter(())


@contextlib.contextmanager
def kombu_on_fake(service: FakePubSub) -> Iterator[FakePubSub]:
    """Point kombu's ``gcpubsub`` transport (and so Celery on Pub/Sub) at ``service`` while inside.

    The transport builds its clients from module-level names, so this swaps them for the block
    (tests only) and clears the transport's class-level queue cache before and after.
    """
    import importlib

    gcpubsub: Any = importlib.import_module("kombu.transport.gcpubsub")
    saved = (gcpubsub.PublisherClient, gcpubsub.SubscriberClient, gcpubsub.monitoring_v3)
    gcpubsub.PublisherClient = service.publisher
    gcpubsub.SubscriberClient = service.subscriber
    gcpubsub.monitoring_v3 = SimpleNamespace(MetricServiceClient=service.monitoring)
    gcpubsub.Channel._queue_cache.clear()
    try:
        yield service
    finally:
        gcpubsub.PublisherClient, gcpubsub.SubscriberClient, gcpubsub.monitoring_v3 = saved
        gcpubsub.Channel._queue_cache.clear()
