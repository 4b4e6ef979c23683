"""A broker is one unit: the endpoint queue delegate, Celery's settings, limits and rules together.

One `BrokerUnit` per broker (sqs, servicebus, redis, local) supplies everything that depends on
the broker: the queue delegate factory, the Celery broker settings and kombu transport class, the
message-size limit, the mapping of its SDK's publish errors to ours, capability flags, the config
keys it reads and its rules. A deployment selects one broker (see `model_engine_infra.brokers`)
and both the queue delegate and every task queue come from that one unit.

This module and the units import no SDK, Celery or component module at import time, so
``load_config`` can run a unit's rules and ``config check`` can show its settings offline.
"""

from __future__ import annotations

import enum
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from ..errors import ConfigError, InfraError
from ..redact import redact_url
from ..rules import Rule, Severity, run_errors

if TYPE_CHECKING:
    from ..config.model import InfraConfig
    from ..infra import Infra
    from ..queues.base import QueueEndpointResourceDelegate
    from ..tasks.base import TaskQueueGateway
    from ..tasks.presence import Presence

KIB = 1024


class BrokerType(str, enum.Enum):
    SQS = "sqs"
    SERVICEBUS = "servicebus"
    REDIS = "redis"
    REDIS_24H = "redis_24h"
    LOCAL = "local"
    PUBSUB = "pubsub"


class TaskVisibility(str, enum.Enum):
    """How long a delivered, unacknowledged task stays hidden before another worker may take it.

    On Redis each visibility has its own database, as llm-engine's ``TaskVisibility`` numbers them
    (kombu keeps one visibility timeout per database): workers and the autoscaler look there.
    """

    VISIBILITY_1M = "VISIBILITY_1M"
    VISIBILITY_10M = "VISIBILITY_10M"
    VISIBILITY_1H = "VISIBILITY_1H"
    VISIBILITY_24H = "VISIBILITY_24H"

    @property
    def seconds(self) -> int:
        return {"VISIBILITY_1M": 60, "VISIBILITY_10M": 600, "VISIBILITY_1H": 3600, "VISIBILITY_24H": 86400}[self.value]

    @property
    def redis_db(self) -> int:
        """The Redis database of this visibility: 1H 0, 10M 1, 1M 2, 24H 3 (15 stays the cache's)."""
        return {"VISIBILITY_1H": 0, "VISIBILITY_10M": 1, "VISIBILITY_1M": 2, "VISIBILITY_24H": 3}[self.value]

    @classmethod
    def from_name(cls, value: TaskVisibility | str) -> TaskVisibility:
        """Accept a member, its name (any case), a short form (``1m``, ``10m``, ``1h``, ``24h``) or llm-engine's
        integer value (its Redis database, 0 to 3)."""
        if isinstance(value, cls):
            return value
        text = str(value).strip().upper()
        for member in cls:
            if text == str(member.redis_db) and not isinstance(value, bool):
                return member
        for member in cls:
            if text in (member.value, member.value.removeprefix("VISIBILITY_")):
                return member
        raise ConfigError(
            f"unknown task visibility {value!r}",
            key="task_visibility",
            value=value,
            fix="use one of " + ", ".join(m.value for m in cls),
        )


#: The Redis database of the Celery result backend (llm-engine: "db 1 to differentiate from the broker").
REDIS_RESULTS_DB = 1


def with_redis_db(url: str, db: int) -> str:
    """``url`` with its database replaced by ``db``; host, port, user, TLS and query options kept."""
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    if parts.scheme == "unix":  # the database is a query option there
        from urllib.parse import parse_qsl, urlencode

        query = [(k, v) for k, v in parse_qsl(parts.query) if k != "db"]
        return urlunsplit(parts._replace(query=urlencode([("db", str(db)), *query])))
    return urlunsplit(parts._replace(path=f"/{db}"))


@dataclass(frozen=True)
class RedisBroker:
    """A Redis URL without secrets plus kombu transport options (e.g. ``credential_provider``)."""

    url: str
    transport_options: Mapping[str, Any] = field(default_factory=dict)
    # ``broker_use_ssl`` / ``redis_backend_use_ssl`` for rediss (None: derived from the config)
    ssl_options: Mapping[str, Any] | None = None

    def __repr__(self) -> str:  # a plain URL (``--redis-url``) may carry the password
        return f"RedisBroker(url={redact_url(self.url)!r}, transport_options={dict(self.transport_options)!r})"


# Celery's publish retry policy on every built-in broker (``task_publish_retry_policy``): 3 retries.
PUBLISH_ATTEMPTS = 4
PUBLISH_BACKOFF_SECONDS = 0.5


@dataclass(frozen=True)
class SendBounds:
    """How long one send may fail before it gives up, whatever kombu level the failures happen at.

    kombu retries a publish at several nested levels (the publish, a reconnect inside each retry,
    the queue declaration, the first connect), each restarting its own count. The task queue
    counts every failed attempt of one send against one budget of ``attempts``
    (`model_engine_infra.tasks.send_budget`). Each failed attempt waits at most
    ``attempt_seconds`` (``silent_attempt_seconds`` against a server that accepts and never
    answers), with at most ``backoff_seconds`` between attempts. ``producer_options`` are kombu
    transport options for the task queue's own connections only (workers keep theirs).
    """

    attempts: int
    backoff_seconds: float
    attempt_seconds: float | None = None  # None: not known (a plugin broker)
    silent_attempt_seconds: float | None = None
    producer_options: Mapping[str, Any] = field(default_factory=dict)

    def worst_case_seconds(self, *, silent: bool = False) -> float | None:
        """``attempts x attempt + (attempts - 1) x backoff``; None when an attempt's cost is not known."""
        per_attempt = self.silent_attempt_seconds if silent else self.attempt_seconds
        if per_attempt is None:
            return None
        return self.attempts * per_attempt + (self.attempts - 1) * self.backoff_seconds

    def retry_policy(self) -> dict[str, Any]:
        """kombu's ``ensure`` / failover options for this budget: no pauses of kombu's own.

        The task queue adds the errback (`tasks.send_budget.spend`), which counts each failure and
        pauses ``backoff_seconds`` before the next attempt, at whatever level it happens.
        """
        return {"max_retries": self.attempts - 1, "interval_start": 0, "interval_step": 0, "interval_max": 0}


@dataclass(frozen=True)
class BrokerSettings:
    broker_type: BrokerType | str
    url: str
    transport: str | None
    transport_options: dict[str, Any]
    conf: dict[str, Any]
    max_message_bytes: int | None
    # How the transport encodes a body: "base64" grows it by 4/3, "utf-8" leaves it as is.
    body_encoding: str
    # SQS base64-encodes the whole envelope again (kombu's ``sqs_base64_encoding``).
    envelope_base64: bool = False
    # How long a send may fail (None: Celery's publish retry policy, no known time bound).
    bounds: SendBounds | None = None

    @property
    def name(self) -> str:
        """The broker's name for messages (``sqs``, ``redis_24h``, a plugin's name)."""
        return self.broker_type.value if isinstance(self.broker_type, BrokerType) else str(self.broker_type)

    def __repr__(self) -> str:  # the URL may carry a Redis password; show it redacted
        return (
            f"BrokerSettings(broker_type={self.name!r}, url={redact_url(self.url)!r}, "
            f"transport={self.transport!r}, max_message_bytes={self.max_message_bytes!r})"
        )


@dataclass(frozen=True)
class SdkMinimum:
    """An SDK version below which the broker misbehaves in a way no test would show (the doctor checks it)."""

    package: str
    minimum: tuple[int, ...]
    why: str


class BrokerUnit(ABC):
    """Everything one broker supplies. Subclasses set the class attributes and `settings`."""

    name: ClassVar[str]  # the registry name: sqs, servicebus, redis, local, or a plugin's
    label: ClassVar[str]  # for people: "SQS", "Service Bus"
    extras: ClassVar[tuple[str, ...]] = ()
    # The chart's celeryBrokerType value that selects this broker, and what to tell a user to write.
    chart_name: ClassVar[str | None] = None
    chart_hint: ClassVar[str | None] = None
    max_message_bytes: ClassVar[int | None] = None
    max_visibility_seconds: ClassVar[int | None] = None
    # Capabilities: does the delegate report in-flight (delivered, unacknowledged) messages apart;
    # can each endpoint queue have its own visibility timeout (queue_message_timeout_seconds)?
    counts_in_flight: ClassVar[bool] = False
    per_queue_visibility: ClassVar[bool] = False
    delegate_target: ClassVar[str]  # "module:factory(config, infra)" of the endpoint queue delegate
    transport: ClassVar[str | None] = None  # "module:Class" of the kombu transport, when not kombu's own
    # "module:factory(unit, config, infra, *, visibility)" of the task queue: Celery's gateway for every built-in
    task_queue_target: ClassVar[str] = "model_engine_infra.tasks.gateway:build_task_queue_on"
    keys: ClassVar[tuple[str, ...]] = ()  # the config keys this broker reads
    # When a chart choice puts the Redis broker where this one is the profile's default: how bad that is.
    replaced_by_redis: ClassVar[tuple[Severity, str] | None] = None
    rules: tuple[Rule, ...] = ()
    sdk_minimum: ClassVar[SdkMinimum | None] = None  # checked by the doctor's dependencies probe

    def __repr__(self) -> str:
        return f"<broker {self.name}>"

    def broker_type(self, config: InfraConfig) -> BrokerType | str:
        """The `BrokerType` this unit runs as for ``config`` (a plugin: its name)."""
        try:
            return BrokerType(self.name)
        except ValueError:
            return self.name

    def check(self, config: InfraConfig) -> None:
        """Run this broker's error-level rules (``load_config`` does too; a config built by hand may not have)."""
        run_errors(config, self.rules)

    def build_delegate(self, config: InfraConfig, infra: Infra) -> QueueEndpointResourceDelegate:
        """The endpoint queue delegate on this broker."""
        from ..registry import import_target

        self.check(config)
        factory = import_target(self.delegate_target, extras=self.extras, what=f"the {self.label} queue delegate")
        delegate: QueueEndpointResourceDelegate = factory(config, infra)
        return delegate

    @abstractmethod
    def settings(
        self,
        config: InfraConfig,
        *,
        broker_type: BrokerType | str,
        visibility: TaskVisibility,
        redis: RedisBroker | str | None = None,
        endpoint_url: str | None = None,
    ) -> BrokerSettings:
        """Everything Celery needs to reach this broker with tasks hidden for ``visibility`` once delivered."""

    def uses_redis(self) -> bool:
        """True when Celery on this broker needs the Redis component's URL and credentials."""
        return False

    def task_queue(
        self, config: InfraConfig, infra: Infra, *, visibility: TaskVisibility | str | None = None, **overrides: Any
    ) -> TaskQueueGateway:
        """A task queue on this broker whose tasks stay hidden for ``visibility`` once delivered.

        ``infra.task_queue`` is this with the default visibility; a deployment that needs queues of
        several visibilities builds one per visibility here, all on the same broker.
        """
        from ..registry import import_target

        factory = import_target(self.task_queue_target, extras=("celery", *self.extras), what="Celery")
        queue: TaskQueueGateway = factory(self, config, infra, visibility=visibility, **overrides)
        return queue

    def publish_error(self, err: BaseException, task_name: str, queue_name: str) -> InfraError | None:
        """Our error for an SDK error raised while publishing, or None to let it through."""
        return None

    def check_queue_name(self, name: str) -> str:
        """``name`` if this broker takes it unchanged, else `InvalidQueueNameError` (see `queues.names`).

        Run by the task queue before any call; the default (a plugin that says nothing) takes any name.
        """
        return name

    def queue_presence(self) -> Presence | None:
        """How the task queue asks whether a queue exists before sending (`tasks.presence`); None: not asked."""
        return None


def queue_missing(broker: str, task_name: str, queue_name: str) -> InfraError:
    """The error for a publish to a queue that no longer exists (the endpoint was deleted)."""
    from ..errors import QueueNotFoundError

    return QueueNotFoundError(
        f"could not send task {task_name!r}: queue {queue_name!r} does not exist on the {broker} broker "
        "(was the endpoint deleted?); the task was not sent"
    )


def refused_as_too_large(broker: str, task_name: str, queue_name: str) -> InfraError:
    """The error for a publish the broker itself refused for its size."""
    from ..errors import MessageTooLargeError

    return MessageTooLargeError(
        f"the {broker} broker refused task {task_name!r} for queue {queue_name!r} as too large; "
        "send a reference to the payload instead"
    )
