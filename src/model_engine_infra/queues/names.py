"""Queue-name rules, one function per broker: a name is refused before any call if the broker would reject it,
rewrite it, or already uses it for itself.

Two different names must never land in one queue. kombu rewrites names on two brokers (SQS: ``.`` to
``-`` and other punctuation to ``_``; Service Bus: punctuation but ``. - _`` to ``_``), and Service Bus
compares names without case, so ``q.1`` and ``q-1``, or ``Q1`` and ``q1``, would share a queue. Those
names are refused with the name they would become, rather than mapped, so that a queue's name is the
same in our calls, in kombu and in the broker's console.

Each ``*_queue_name`` function returns the name unchanged or raises `InvalidQueueNameError` naming it,
the broker and the fix. `check_queue_name` picks the rule by broker type (the `BrokerType` values).
"""

from __future__ import annotations

import re
import string
from collections.abc import Callable, Mapping

from ..errors import InvalidQueueNameError

SQS_MAX_LENGTH = 80
SERVICEBUS_MAX_LENGTH = 260
REDIS_MAX_LENGTH = 255
PUBSUB_MAX_LENGTH = 255
# kombu names a message file ``{ms}_{uuid4}.{queue}.msg``: 51 characters around the name, 255 per file name.
LOCAL_MAX_LENGTH = 200
SHOWN_MAX = 100

_SQS = re.compile(r"[A-Za-z0-9_-]+")
_SERVICEBUS = re.compile(r"[a-z0-9](?:[a-z0-9._-]*[a-z0-9])?")
_LOCAL = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]*")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_PUBSUB = re.compile(r"[A-Za-z][A-Za-z0-9_-]{2,}")

# Keys kombu's Redis transport and Celery's Redis result backend keep in the broker's database, and the
# metadata hash our Redis queue delegate keeps beside each queue. A list under one of these names breaks
# them (WRONGTYPE on the next SADD/HSET/ZADD), and with them every send.
REDIS_RESERVED_NAMES = frozenset({"unacked", "unacked_index", "unacked_mutex", "unacked_restore_lock"})
REDIS_RESERVED_PREFIXES = ("_kombu.", "celery-task-meta-", "celery-taskset-meta-", "chord-unlock-")
REDIS_RESERVED_SUFFIXES = (":meta",)  # ``{queue}:meta``: the queue delegate's metadata of queue ``{queue}``


def shown(name: object) -> str:
    """A name as messages quote it, cut to a readable length (a hostile name may be megabytes)."""
    text = repr(name)
    return text if len(text) <= SHOWN_MAX else f"{text[: SHOWN_MAX - 20]}...{text[-17:]}"


def _common(name: object, broker: str, max_length: int) -> str:
    if not isinstance(name, str):
        raise InvalidQueueNameError(f"a {broker} queue name must be a string, not {type(name).__name__}")
    if not name:
        raise InvalidQueueNameError(f"the {broker} queue name is empty; give the queue's name")
    if len(name) > max_length:
        raise InvalidQueueNameError(
            f"queue name {shown(name)} has {len(name)} characters; {broker} allows at most {max_length}"
        )
    if _CONTROL.search(name):
        raise InvalidQueueNameError(
            f"queue name {shown(name)} contains a control character (newline, tab, NUL...); {broker} queue names "
            "are printable"
        )
    return name


def _kombu_sqs_name(name: str) -> str:
    """The SQS name kombu's SQS transport sends ``name`` to (``.fifo`` kept, ``.`` to ``-``, punctuation to ``_``)."""
    table = {ord(c): "_" for c in string.punctuation if c not in "-_."}
    table[ord(".")] = "-"
    if name.endswith(".fifo"):
        return name[: -len(".fifo")].translate(table) + ".fifo"
    return name.translate(table)


def sqs_queue_name(name: str) -> str:
    """SQS: 1-80 of ``A-Z a-z 0-9 - _``, or up to 75 of them followed by ``.fifo`` (a FIFO queue)."""
    _common(name, "SQS", SQS_MAX_LENGTH)
    base = name[: -len(".fifo")] if name.endswith(".fifo") else name
    if base and _SQS.fullmatch(base):
        return name
    rewritten = _kombu_sqs_name(name)
    rewritten_base = rewritten[: -len(".fifo")] if rewritten.endswith(".fifo") else rewritten
    if rewritten != name and rewritten_base and _SQS.fullmatch(rewritten_base):
        raise InvalidQueueNameError(
            f"queue name {shown(name)} would be sent to the SQS queue {shown(rewritten)} (kombu rewrites '.' to '-' "
            f"and other punctuation to '_'), which other names also reach; use {shown(rewritten)} itself"
        )
    raise InvalidQueueNameError(
        f"queue name {shown(name)} is not a valid SQS name: use 1-80 letters, digits, '-' and '_' (a FIFO queue "
        "ends in '.fifo')"
    )


def servicebus_queue_name(name: str) -> str:
    """Service Bus: up to 260 of ``a-z 0-9 . - _``, starting and ending with a letter or digit.

    Service Bus allows upper case and ``/`` too, but compares names without case and kombu rewrites ``/``
    to ``_``: either would let two names share one queue.
    """
    _common(name, "Service Bus", SERVICEBUS_MAX_LENGTH)
    if _SERVICEBUS.fullmatch(name):
        return name
    if name != name.lower() and _SERVICEBUS.fullmatch(name.lower()):
        raise InvalidQueueNameError(
            f"queue name {shown(name)} has upper-case letters; Service Bus ignores case, so it is the same queue as "
            f"{shown(name.lower())}: use {shown(name.lower())}"
        )
    raise InvalidQueueNameError(
        f"queue name {shown(name)} is not a valid Service Bus name here: use lower-case letters, digits, '.', '-' "
        "and '_'; it must start and end with a letter or digit (kombu rewrites '/' and other punctuation to '_')"
    )


def redis_queue_name(name: str) -> str:
    """Redis: any printable name up to 255 characters that is not one of kombu's, Celery's or our own keys."""
    _common(name, "Redis", REDIS_MAX_LENGTH)
    reserved = (
        name in REDIS_RESERVED_NAMES
        or name.startswith(REDIS_RESERVED_PREFIXES)
        or name.endswith(REDIS_RESERVED_SUFFIXES)
    )
    if reserved:
        raise InvalidQueueNameError(
            f"queue name {shown(name)} is a key the Redis broker keeps for itself (kombu's 'unacked*' and "
            "'_kombu.*' keys, Celery's result keys, or a queue's ':meta'); a queue there would break every send. "
            "Choose another name"
        )
    return name


def local_queue_name(name: str) -> str:
    """The local filesystem broker: up to 200 of ``A-Z a-z 0-9 . - _``, not starting with '.'."""
    _common(name, "local filesystem broker", LOCAL_MAX_LENGTH)
    if _LOCAL.fullmatch(name):
        return name
    raise InvalidQueueNameError(
        f"queue name {shown(name)} cannot be a file name on the local broker: use letters, digits, '.', '-' and "
        "'_', not starting with '.'"
    )


def _kombu_pubsub_name(name: str) -> str:
    """The topic/subscription id kombu's Pub/Sub transport uses for ``name`` ('.' to '-', punctuation to '_')."""
    table = {ord(c): "_" for c in string.punctuation if c not in "-_."}
    table[ord(".")] = "-"
    return name.translate(table)


def pubsub_queue_name(name: str) -> str:
    """Pub/Sub: 3-255 of ``A-Z a-z 0-9 - _``, starting with a letter, not starting with ``goog``.

    Pub/Sub ids allow ``. ~ + %`` too, but kombu's transport rewrites punctuation other than ``- _``
    (``.`` to ``-``), which would let two names share a topic.
    """
    _common(name, "Pub/Sub", PUBSUB_MAX_LENGTH)
    if _PUBSUB.fullmatch(name) and not name.lower().startswith("goog"):
        return name
    if name.lower().startswith("goog"):
        raise InvalidQueueNameError(f"queue name {shown(name)} starts with 'goog', which Pub/Sub keeps for itself")
    rewritten = _kombu_pubsub_name(name)
    if rewritten != name and _PUBSUB.fullmatch(rewritten):
        raise InvalidQueueNameError(
            f"queue name {shown(name)} would be sent to the Pub/Sub topic {shown(rewritten)} (kombu rewrites '.' to "
            f"'-' and other punctuation to '_'), which other names also reach; use {shown(rewritten)} itself"
        )
    raise InvalidQueueNameError(
        f"queue name {shown(name)} is not a valid Pub/Sub name here: use 3-255 letters, digits, '-' and '_', "
        "starting with a letter"
    )


QUEUE_NAME_RULES: Mapping[str, Callable[[str], str]] = {
    "sqs": sqs_queue_name,
    "servicebus": servicebus_queue_name,
    "redis": redis_queue_name,
    "redis_24h": redis_queue_name,
    "local": local_queue_name,
    "pubsub": pubsub_queue_name,
}


def check_queue_name(broker: str, name: str) -> str:
    """``name`` checked by the rule of ``broker`` (a `BrokerType` value); an unknown broker has no rule."""
    rule = QUEUE_NAME_RULES.get(str(getattr(broker, "value", broker)))
    return rule(name) if rule is not None else name
