"""kombu's Pub/Sub transport, with a publish that waits for the service to take the message.

kombu's ``gcpubsub`` channel hands a message to the Pub/Sub client and returns without looking at
the future the client gives back, so a publish the service refuses (a deleted topic, a missing
permission, a network that stays down) is only logged by the client's background thread and the
task is lost without a word. Here the channel waits for that future (bounded by the transport's
``retry_timeout_seconds``), so the failure reaches `send_task` and becomes our typed error.
Everything else is kombu's, unchanged.
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


class Transport(gcpubsub.Transport):  # type: ignore[misc]
    Channel = Channel
