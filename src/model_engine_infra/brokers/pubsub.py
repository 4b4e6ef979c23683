"""The Google Cloud Pub/Sub broker: a topic and a subscription per endpoint, Celery on kombu's ``gcpubsub``.

Optional on gcp (the profile's broker stays Redis): ``broker: pubsub`` selects it, and then the
endpoint queue delegate and every task queue use Pub/Sub, in ``gcp_project_id``. kombu's transport
routes a task for queue ``Q`` to topic ``Q`` and subscription ``Q`` (``queue_name_prefix`` is empty
here), the same resources the delegate creates, so the delegate's labels and settings apply to
the queue Celery uses. The transport is kombu's, except that a publish waits for the service to
take the message (`tasks.pubsub_transport`): a refused publish is an error, not a lost task.

Pub/Sub caps ack deadlines at 600 s: a task visibility above that is clamped to 600 s, and kombu's
transport extends the deadline of every message its worker still holds, so a long task is
redelivered only when its worker is gone. The service cannot count a subscription's messages
(``counts_in_flight`` is False and the delegate reports the count as unknown).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..errors import BrokerPermissionError, BrokerUnavailableError, ConfigError, InfraError
from ..rules import Rule
from .base import (
    BrokerSettings,
    BrokerType,
    BrokerUnit,
    RedisBroker,
    TaskVisibility,
    queue_missing,
    refused_as_too_large,
)

if TYPE_CHECKING:
    from ..config.model import InfraConfig
    from ..tasks.presence import Presence

PUBSUB_TRANSPORT_TARGET = "model_engine_infra.tasks.pubsub_transport:Transport"
PUBSUB_MAX_ACK_DEADLINE_SECONDS = 600
PUBSUB_MAX_MESSAGE_BYTES = 10 * 1000 * 1000  # one publish request, as the SDK checks it
# kombu's transport sets a subscription's retention and expiry to this; 31 days is Pub/Sub's longest retention.
PUBSUB_RETENTION_SECONDS = 31 * 24 * 3600
PUBSUB_PUBLISH_TIMEOUT_SECONDS = 30
RULES: tuple[Rule, ...] = ()


class PubSubBrokerUnit(BrokerUnit):
    name = "pubsub"
    label = "Pub/Sub"
    extras = ("gcp",)
    chart_name = None  # the chart's celeryBrokerType has no Pub/Sub value: select it with `broker: pubsub`
    max_message_bytes = PUBSUB_MAX_MESSAGE_BYTES
    max_visibility_seconds = PUBSUB_MAX_ACK_DEADLINE_SECONDS
    counts_in_flight = False  # Pub/Sub has no count call at all (Cloud Monitoring has the metric)
    per_queue_visibility = True  # each subscription has its own ack deadline
    delegate_target = "model_engine_infra.queues.pubsub:build_delegate"
    transport = PUBSUB_TRANSPORT_TARGET  # kombu's gcpubsub, waiting for each publish to be taken
    keys = ("gcp_project_id", "celery_broker_pool_limit")
    rules = RULES

    def broker_type(self, config: InfraConfig) -> BrokerType:
        return BrokerType.PUBSUB

    def settings(
        self,
        config: InfraConfig,
        *,
        broker_type: BrokerType | str,
        visibility: TaskVisibility,
        redis: RedisBroker | str | None = None,
        endpoint_url: str | None = None,
    ) -> BrokerSettings:
        if not config.gcp_project_id:
            raise ConfigError(
                "the Pub/Sub broker needs the project its topics live in",
                key="gcp_project_id",
                value=None,
                fix="set gcp_project_id (env GCP_PROJECT_ID) to the project's id",
            )
        options: dict[str, Any] = {
            "queue_name_prefix": "",  # topic and subscription are named after the queue, as the delegate names them
            "ack_deadline_seconds": min(visibility.seconds, PUBSUB_MAX_ACK_DEADLINE_SECONDS),
            "expiration_seconds": PUBSUB_RETENTION_SECONDS,
            # how long one publish (and the client's retries) may take before send_task fails
            "retry_timeout_seconds": PUBSUB_PUBLISH_TIMEOUT_SECONDS,
        }
        return BrokerSettings(
            broker_type,
            f"gcpubsub://projects/{config.gcp_project_id}",
            PUBSUB_TRANSPORT_TARGET,
            options,
            {},
            self.max_message_bytes,
            "base64",
        )

    def check_queue_name(self, name: str) -> str:
        from ..queues.names import pubsub_queue_name

        return pubsub_queue_name(name)

    def queue_presence(self) -> Presence:
        from ..tasks import presence

        return presence.PUBSUB

    def publish_error(self, err: BaseException, task_name: str, queue_name: str) -> InfraError | None:
        from google.api_core import exceptions as gexc
        from google.cloud.pubsub_v1.publisher import exceptions as publisher_exceptions

        if isinstance(err, publisher_exceptions.MessageTooLargeError):
            return refused_as_too_large(self.name, task_name, queue_name)
        if isinstance(err, gexc.NotFound):
            return queue_missing(self.name, task_name, queue_name)
        if isinstance(err, (gexc.PermissionDenied, gexc.Unauthenticated)):
            return BrokerPermissionError(
                f"could not send task {task_name!r} to queue {queue_name!r}: Pub/Sub refused it "
                f"({type(err).__name__}); give the identity roles/pubsub.editor. The task was not sent"
            )
        if isinstance(err, (gexc.GoogleAPIError, TimeoutError)):
            return BrokerUnavailableError(
                f"could not send task {task_name!r} to queue {queue_name!r}: Pub/Sub did not take it "
                f"({type(err).__name__}); the task was not sent"
            )
        return None


BROKER = PubSubBrokerUnit()
