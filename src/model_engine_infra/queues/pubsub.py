"""Google Cloud Pub/Sub endpoint queues: one topic and one subscription per endpoint.

Both are named ``launch-endpoint-id-{endpoint_id}`` in ``gcp_project_id`` (as llm-engine's own
Pub/Sub delegate names them, and as kombu's ``gcpubsub`` transport finds them when Celery routes a
task to that queue with ``queue_name_prefix`` empty). Creation is idempotent and brings an existing
queue in line: the subscription's ack deadline follows ``queue_message_timeout_seconds`` and both
resources get the endpoint's labels (sanitised to Pub/Sub's rules, see `pubsub_labels`).

The ack deadline is clamped to Pub/Sub's range, 10 .. 600 s (no timeout: 600 s). The service
refuses anything longer, so a longer timeout would make queue creation fail outright; a worker
that holds a message longer keeps extending its deadline (kombu's transport does), so a task is
redelivered only when its worker is gone for 600 s. Subscriptions are created never to expire.

Pub/Sub has no call that counts a subscription's messages: ``approximate_message_count`` is None
(unknown) — never a made-up number. The count lives in Cloud Monitoring, as the metric
``pubsub.googleapis.com/subscription/num_undelivered_messages`` (see docs/queues.md).

The SDK's clients are synchronous; they are created once and called on the delegate's own thread
pool, never on the event loop.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

from ..errors import BrokerUnavailableError, ConfigError, InvalidQueueSettingError, QueueError, QueueNotFoundError
from .base import QueueAttributes, QueueEndpointResourceDelegate, QueueInfo
from .pubsub_labels import queue_labels, split_labels

if TYPE_CHECKING:
    from ..config.model import InfraConfig
    from ..infra import Infra

__all__ = [
    "COUNT_METRIC",
    "MAX_ACK_DEADLINE_SECONDS",
    "MIN_ACK_DEADLINE_SECONDS",
    "PubSubQueueEndpointResourceDelegate",
    "ack_deadline_for",
    "build_delegate",
]

MIN_ACK_DEADLINE_SECONDS = 10
MAX_ACK_DEADLINE_SECONDS = 600  # Pub/Sub refuses longer ack deadlines
#: Where the number of waiting messages of a subscription is (Cloud Monitoring).
COUNT_METRIC = "pubsub.googleapis.com/subscription/num_undelivered_messages"
DEFAULT_TIMEOUT_SECONDS = 30.0
DELETED_TOPIC = "_deleted-topic_"
_T = TypeVar("_T")


def ack_deadline_for(timeout_seconds: int | None) -> int:
    """The subscription's ack deadline for an endpoint message timeout: clamped to 10 .. 600 s."""
    if timeout_seconds is None:
        return MAX_ACK_DEADLINE_SECONDS
    if isinstance(timeout_seconds, bool) or not isinstance(timeout_seconds, int) or timeout_seconds <= 0:
        raise InvalidQueueSettingError(
            f"queue_message_timeout_seconds must be a positive whole number of seconds, not {timeout_seconds!r}"
        )
    return max(MIN_ACK_DEADLINE_SECONDS, min(timeout_seconds, MAX_ACK_DEADLINE_SECONDS))


class PubSubQueueEndpointResourceDelegate(QueueEndpointResourceDelegate):
    """Endpoint queues in one Google Cloud project.

    ``publisher`` / ``subscriber`` inject ``google.cloud.pubsub_v1`` clients (or the test fake in
    `model_engine_infra.testing.pubsub`); otherwise both are built on first use with Application
    Default Credentials and reused.
    """

    broker_name: ClassVar[str] = "Pub/Sub"
    max_queue_name_length: ClassVar[int] = 255  # Pub/Sub's limit on topic and subscription ids

    def __init__(
        self,
        project_id: str,
        *,
        publisher: Any | None = None,
        subscriber: Any | None = None,
        timeout: float = DEFAULT_TIMEOUT_SECONDS,
        max_workers: int = 16,
    ) -> None:
        if not project_id or not project_id.strip():
            raise ConfigError(
                "is empty", key="gcp_project_id", fix="set gcp_project_id (env GCP_PROJECT_ID) to the project's id"
            )
        self.project_id = project_id.strip()
        self.timeout = timeout
        self._publisher = publisher
        self._subscriber = subscriber
        self._lock = threading.Lock()
        self._pool = ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="pubsub-delegate")

    def __repr__(self) -> str:
        return f"PubSubQueueEndpointResourceDelegate(project={self.project_id!r})"

    def topic_path(self, endpoint_id: str) -> str:
        return f"projects/{self.project_id}/topics/{self.queue_name(endpoint_id)}"

    def subscription_path(self, endpoint_id: str) -> str:
        return f"projects/{self.project_id}/subscriptions/{self.queue_name(endpoint_id)}"

    def _clients(self) -> tuple[Any, Any]:
        with self._lock:
            if self._publisher is None or self._subscriber is None:
                from google.cloud import pubsub_v1

                if self._publisher is None:
                    self._publisher = pubsub_v1.PublisherClient()
                if self._subscriber is None:
                    self._subscriber = pubsub_v1.SubscriberClient()
            return self._publisher, self._subscriber

    async def _run(self, action: str, queue_name: str, call: Callable[[Any, Any], _T]) -> _T:
        """Run ``call(publisher, subscriber)`` on the pool; SDK errors become ours (NotFound/AlreadyExists pass)."""
        from google.api_core import exceptions as gexc
        from google.auth import exceptions as auth_exceptions

        def invoke() -> _T:
            return call(*self._clients())

        where = f"Pub/Sub in project {self.project_id!r}"
        try:
            return await asyncio.get_running_loop().run_in_executor(self._pool, invoke)
        except (gexc.NotFound, gexc.AlreadyExists):
            raise
        except (gexc.PermissionDenied, gexc.Unauthenticated) as err:
            raise BrokerUnavailableError(
                f"{where} refused to {action} {queue_name!r} ({type(err).__name__}): give the service's identity "
                "roles/pubsub.editor on the project"
            ) from err
        except auth_exceptions.DefaultCredentialsError as err:
            raise BrokerUnavailableError(
                f"no Google credentials to {action} {queue_name!r} on {where}: use Workload Identity, or set "
                "GOOGLE_APPLICATION_CREDENTIALS"
            ) from err
        except (gexc.InvalidArgument, gexc.FailedPrecondition, gexc.OutOfRange) as err:
            raise QueueError(f"{where} rejected {action} {queue_name!r}: {err.message}") from err
        except (gexc.GoogleAPIError, auth_exceptions.TransportError, OSError) as err:
            raise BrokerUnavailableError(
                f"cannot reach {where} to {action} {queue_name!r} ({type(err).__name__}); check the network and "
                "gcp_project_id, then retry"
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
        topic, subscription = self.topic_path(endpoint_id), self.subscription_path(endpoint_id)
        deadline = ack_deadline_for(queue_message_timeout_seconds)
        labels = queue_labels(endpoint_id, endpoint_created_by, endpoint_labels)
        timeout = self.timeout

        def create(publisher: Any, subscriber: Any) -> None:
            from google.api_core.exceptions import AlreadyExists, NotFound

            try:
                publisher.create_topic(request={"name": topic, "labels": labels}, timeout=timeout)
            except AlreadyExists:
                publisher.update_topic(
                    request={"topic": {"name": topic, "labels": labels}, "update_mask": {"paths": ["labels"]}},
                    timeout=timeout,
                )
            settings = {"ack_deadline_seconds": deadline, "labels": labels, "expiration_policy": {}}
            try:
                subscriber.create_subscription(
                    request={"name": subscription, "topic": topic, **settings}, timeout=timeout
                )
            except AlreadyExists:
                subscriber.update_subscription(
                    request={
                        "subscription": {"name": subscription, **settings},
                        "update_mask": {"paths": list(settings)},
                    },
                    timeout=timeout,
                )
            except NotFound as err:  # the topic was deleted between the two calls
                raise QueueError(f"topic {topic!r} disappeared while its subscription was created; retry") from err

        await self._run("create", name, create)
        return QueueInfo(queue_name=name, queue_url=None)

    async def delete_queue(self, endpoint_id: str) -> None:
        name = self.queue_name(endpoint_id)
        topic, subscription = self.topic_path(endpoint_id), self.subscription_path(endpoint_id)
        timeout = self.timeout

        def delete(publisher: Any, subscriber: Any) -> None:
            from google.api_core.exceptions import NotFound

            try:
                subscriber.delete_subscription(request={"subscription": subscription}, timeout=timeout)
            except NotFound:
                pass
            try:
                publisher.delete_topic(request={"topic": topic}, timeout=timeout)
            except NotFound:
                pass

        await self._run("delete", name, delete)

    async def get_queue_attributes(self, endpoint_id: str, *, include_tags: bool = False) -> QueueAttributes:
        """The subscription's settings and labels; the message count is None (unknown, see `COUNT_METRIC`)."""
        from google.api_core.exceptions import NotFound

        name = self.queue_name(endpoint_id)
        subscription = self.subscription_path(endpoint_id)
        timeout = self.timeout

        def read(publisher: Any, subscriber: Any) -> Any:
            return subscriber.get_subscription(request={"subscription": subscription}, timeout=timeout)

        try:
            resource = await self._run("read", name, read)
        except NotFound as err:
            raise QueueNotFoundError(
                f"Pub/Sub subscription {name!r} does not exist in project {self.project_id!r}"
            ) from err
        endpoint_labels, creator = split_labels(dict(resource.labels))
        raw = {
            "name": name,
            "subscription": resource.name,
            "topic": resource.topic,
            "topic_deleted": resource.topic == DELETED_TOPIC,
            "ack_deadline_seconds": resource.ack_deadline_seconds,
            "labels": dict(resource.labels),
            # Pub/Sub cannot count here; the count is a Cloud Monitoring metric.
            "num_undelivered_messages": None,
            "count_metric": COUNT_METRIC,
        }
        return QueueAttributes(
            name=name,
            approximate_message_count=None,
            approximate_in_flight_count=None,
            raw=raw,
            endpoint_labels=endpoint_labels,
            endpoint_created_by=creator,
        )

    async def close(self) -> None:
        self._pool.shutdown(wait=False)
        for client in (self._publisher, self._subscriber):
            close = getattr(client, "close", None)
            transport = getattr(client, "transport", None)
            if callable(close):
                await asyncio.to_thread(close)
            elif transport is not None and callable(getattr(transport, "close", None)):
                await asyncio.to_thread(transport.close)


def build_delegate(config: InfraConfig, infra: Infra) -> PubSubQueueEndpointResourceDelegate:
    if not config.gcp_project_id:
        raise ConfigError(
            "is not set; the Pub/Sub broker needs the project its topics live in",
            key="gcp_project_id",
            fix="set gcp_project_id in the config (or the GCP_PROJECT_ID environment variable)",
        )
    return PubSubQueueEndpointResourceDelegate(config.gcp_project_id)
