"""kombu's Pub/Sub transport, with a publish that waits for the service, and queues left as the delegate made them.

kombu's ``gcpubsub`` channel hands a message to the Pub/Sub client and returns without looking at
the future the client gives back, so a publish the service refuses (a deleted topic, a missing
permission, a network that stays down) is only logged by the client's background thread and the
task is lost without a word. Here the channel waits for that future (bounded by the transport's
``retry_timeout_seconds``), so the failure reaches `send_task` and becomes our typed error.

When a worker declares a queue whose subscription exists, kombu rewrites its ack deadline, expiry
and retention (and asks to change its filter, which Pub/Sub refuses, so kombu logs a warning on
every start). The endpoint queue delegate owns those settings (ack deadline from the endpoint's
message timeout, never expiring), so here an existing subscription is left as it is; a missing one
is created as kombu creates it. Everything else is kombu's, unchanged.
"""

from __future__ import annotations

from typing import Any

from google.api_core.retry import Retry
from kombu.transport import gcpubsub
from kombu.utils.json import dumps


class Channel(gcpubsub.Channel):  # type: ignore[misc]
    def _put(self, queue: str, message: dict[str, Any], **kwargs: Any) -> None:
        name = self.entity_name(queue)
        descriptor = self._queue_cache[name]
        future = self.publisher.publish(
            descriptor.topic_path,
            dumps(message).encode("utf-8"),  # type: ignore[no-untyped-call]
            routing_key=self._get_routing_key(message),  # type: ignore[no-untyped-call]
            retry=Retry(deadline=self.retry_timeout_seconds),
        )
        future.result(timeout=self.retry_timeout_seconds)  # raises what the service said

    def _create_subscription(
        self,
        project_id: str | None = None,
        topic_id: str | None = None,
        topic_path: str | None = None,
        subscription_path: str | None = None,
        filter_args: dict[str, str] | None = None,
        msg_retention: int | None = None,
    ) -> str:
        from google.api_core.exceptions import NotFound

        path = subscription_path or self.subscriber.subscription_path(self.project_id, topic_id)
        try:
            self.subscriber.get_subscription(request={"subscription": path})
        except NotFound:
            create: Any = super()._create_subscription
            created: str = create(project_id, topic_id, topic_path, path, filter_args, msg_retention)
            return created
        return path


class Transport(gcpubsub.Transport):  # type: ignore[misc]
    Channel = Channel
