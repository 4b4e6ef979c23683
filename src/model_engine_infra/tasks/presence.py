"""Whether a queue exists, asked before a task is sent to it: one function per broker.

``send_task`` never creates a queue. A queue exists once the queue delegate created it
(``create_queue_if_not_exists``) or a worker consuming it declared it; a send to any other name
raises `QueueNotFoundError` and nothing is stored. A queue created by a send would have none of the
settings the delegate gives (visibility timeout, policy, tags, lock duration) and no consumer: the task
would wait forever, which is worse than an error the caller sees.

Each broker unit says how (`BrokerUnit.queue_presence`). SQS and Service Bus are asked once per
queue and connection (kombu then caches the queue's URL or sender, and the broker itself answers
"not found" for a queue deleted later; Pub/Sub likewise, asked for the subscription).
Redis and the local broker would silently recreate a
deleted queue on the next push, so they are asked on every send: on Redis inside the push itself
(one Lua script checks and pushes in one round trip, `tasks.redis_transport`), on the local broker
with two ``stat`` calls.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..queues.local import local_queue_exists


def sqs_queue_exists(channel: Any, name: str) -> bool:
    """kombu's own lookup (``ListQueues``, the name as prefix; cached per channel), without its create-if-missing."""
    from kombu.transport.SQS.exceptions import DoesNotExistQueueException

    try:
        channel._resolve_queue_url(name)
    except DoesNotExistQueueException:
        return False
    return True


def servicebus_queue_exists(channel: Any, name: str) -> bool:
    from azure.core.exceptions import ResourceNotFoundError

    try:
        with channel.queue_mgmt_service as admin:  # kombu builds a new admin client per access: close it
            admin.get_queue(name)
    except ResourceNotFoundError:
        return False
    return True


def redis_queue_exists(channel: Any, name: str) -> bool:
    """The delegate's metadata hash, a worker's binding, or waiting messages (kombu's lists)."""
    from ..queues.redis import KOMBU_BINDING_KEY, META_SUFFIX, kombu_list_keys  # only where Redis is used

    keys = [name + META_SUFFIX, KOMBU_BINDING_KEY.format(exchange=name), *kombu_list_keys(name)]
    return bool(channel.client.exists(*keys))


def pubsub_queue_exists(channel: Any, name: str) -> bool:
    """The subscription kombu's Pub/Sub transport would read ``name`` from (the delegate creates it)."""
    from google.api_core.exceptions import NotFound

    path = channel.subscriber.subscription_path(channel.project_id, channel.entity_name(name))
    try:
        channel.subscriber.get_subscription(request={"subscription": path})
    except NotFound:
        return False
    return True


def filesystem_queue_exists(channel: Any, name: str) -> bool:
    return local_queue_exists(Path(channel.data_folder_in), Path(channel.control_folder), name)


_REQUIRED: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "model_engine_infra_required_queue", default=None
)


class QueueMissing(LookupError):
    """A push that required its queue found none (`require_queue`); nothing was stored."""


@contextlib.contextmanager
def require_queue(name: str | None) -> Iterator[None]:
    """A transport that checks inside its push (``Presence.in_publish``) pushes to ``name`` only if it exists."""
    token = _REQUIRED.set(name)
    try:
        yield
    finally:
        _REQUIRED.reset(token)


def required_queue() -> str | None:
    """The queue the current push must find (None: push as kombu does)."""
    return _REQUIRED.get()


@dataclass(frozen=True)
class Presence:
    """How one broker answers "does this queue exist": the check, and whether to ask on every send."""

    exists: Callable[[Any, str], bool]
    every_send: bool
    # the transport checks inside the push (`redis_transport.require_queue`): no separate call, no declare
    in_publish: bool = False


# What each built-in broker unit answers from ``queue_presence()`` (`model_engine_infra.brokers`).
SQS = Presence(sqs_queue_exists, every_send=False)
SERVICEBUS = Presence(servicebus_queue_exists, every_send=False)
REDIS = Presence(redis_queue_exists, every_send=True, in_publish=True)
LOCAL = Presence(filesystem_queue_exists, every_send=True)
# Once per queue and connection: a later publish to a deleted topic fails with NotFound (our transport waits for it).
PUBSUB = Presence(pubsub_queue_exists, every_send=False)
