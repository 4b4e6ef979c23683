"""`CeleryTaskQueueGateway`: send a Celery task by name to an endpoint's queue, read its state.

The gateway builds the same protocol-2 message Celery's ``app.send_task`` builds (any Celery
worker accepts it) but serializes the body once, checks its size against the broker's limit
*before* anything is sent, and publishes through the app's one producer pool with Celery's retry
policy. It sends Celery's ``before_task_publish`` / ``after_task_publish`` signals with the
arguments Celery gives them (tracing such as opentelemetry-instrumentation-celery hooks in there)
and skips what a control plane does not use here (routers, result objects, sent events), which
makes it faster, not slower, than Celery's path.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any

from ..brokers import BrokerType, unit_for
from ..brokers.base import SendBounds
from ..config.model import InfraConfig
from ..errors import BrokerUnavailableError, MessageTooLargeError, QueueNotFoundError, TaskArgumentsError
from ..redact import redact_url
from .app import celery_conf
from .base import SentTask, TaskQueueGateway, TaskState, TaskStatus
from .presence import QueueMissing, require_queue
from .send_budget import send_scope, spend
from .settings import BrokerSettings, RedisBroker, TaskVisibility, default_backend_protocol, encoded_size

if TYPE_CHECKING:
    from celery import Celery

    from ..brokers import BrokerUnit
    from ..infra import Infra

# Bytes of kombu envelope around body and headers (properties, delivery info, keys), rounded up.
ENVELOPE_BYTES = 1024
# Below limit minus this margin the header size cannot matter, so it is not measured.
HEADER_MARGIN = 16 * 1024
REPR_MAX = 1024
MAX_EXPIRES_SECONDS = 10 * 365 * 24 * 3600
# The protocol's own framing around the envelope (AMQP message sections, SQS attributes).
WIRE_OVERHEAD = 256


class ProducerCache:
    """Producers that keep their connection and channel between sends, at most ``broker_pool_limit``.

    kombu's ``ProducerPool`` releases the connection and rebuilds the channel binding on every
    acquire, which on Redis costs about a sixth of a publish. Here a free producer is taken as it
    is; a dead connection is revived inside ``publish(retry=True)``. With ``broker_pool_limit: 0``
    Celery's own pool (no pooling) is used, as configured.
    """

    def __init__(self, app: Celery, transport_options: Mapping[str, Any] | None = None) -> None:
        from kombu.messaging import Producer

        self._app = app
        self._transport_options = dict(transport_options or {})  # the send budget's (`SendBounds`)
        self._producer_cls: Any = Producer
        limit = app.conf.broker_pool_limit
        self._limit = limit
        self._free: list[Any] = []
        self._lock = threading.Lock()
        self._slots = threading.BoundedSemaphore(limit) if limit else None

    @contextmanager
    def acquire(self) -> Iterator[Any]:
        if self._slots is None:  # no pooling: a connection per send, closed after it
            producer = self._producer_cls(self._app.connection_for_write(transport_options=self._transport_options))
            try:
                yield producer
            finally:
                producer.connection.release()
            return
        self._slots.acquire()
        try:
            with self._lock:
                producer = self._free.pop() if self._free else None
            if producer is None:
                producer = self._producer_cls(self._app.connection_for_write(transport_options=self._transport_options))
            try:
                yield producer
            except LookupError:  # the queue is missing: the producer is fine
                self._give_back(producer)
                raise
            except BaseException:
                # a send that spent its budget may leave the producer on a channel kombu already
                # collected (ensure() gave up before reviving it): drop it, the next send builds one
                _release_quietly(producer)
                raise
            self._give_back(producer)
        finally:
            self._slots.release()

    def _give_back(self, producer: Any) -> None:
        with self._lock:
            self._free.append(producer)

    def close(self) -> None:
        with self._lock:
            free, self._free = self._free, []
        for producer in free:
            producer.connection.release()


class CeleryTaskQueueGateway(TaskQueueGateway):
    """Sends tasks over one Celery app and its producer pool, built once and reused."""

    def __init__(self, app: Celery, broker: BrokerSettings, *, max_message_bytes: int | None = None) -> None:
        from celery import signals
        from celery.utils.nodenames import anon_nodename
        from kombu.entity import Exchange, Queue
        from kombu.exceptions import OperationalError
        from kombu.serialization import dumps

        self.app = app
        self.broker = broker
        self.max_message_bytes = broker.max_message_bytes if max_message_bytes is None else max_message_bytes
        self._dumps: Any = dumps
        self._exchange_cls: Any = Exchange
        self._queue_cls: Any = Queue
        self._origin = anon_nodename()
        self._bounds = broker.bounds or _policy_bounds(app)
        # every kombu level of one send draws on one budget of attempts (`send_budget`)
        self._retry_policy: dict[str, Any] = {
            **app.conf.task_publish_retry_policy,
            **self._bounds.retry_policy(),
            "errback": spend,
        }
        failover = {
            key: self._retry_policy[key] for key in ("max_retries", "interval_start", "interval_step", "interval_max")
        }
        self._producers = ProducerCache(app, {**self._bounds.producer_options, **failover, "errback": spend})
        self._queues: dict[str, Any] = {}
        self._unit = unit_for(broker.broker_type)
        self._presence = self._unit.queue_presence()  # None: the broker (a plugin) is not asked
        self._lock = threading.Lock()
        if str(app.conf.result_backend or "").startswith(("redis://", "rediss://")):
            # a read of a task's state gets the Redis budget: 1 + redis_retries attempts (`result_backends`)
            retries = app.conf.get("result_backend_max_retries")
            app.conf.result_backend_always_retry = True
            app.conf.result_backend_max_retries = retries if isinstance(retries, int) else 1  # Celery's default: inf
        self._unavailable: tuple[type[BaseException], ...] = (OperationalError, ConnectionError, OSError)
        self._before_publish: Any = signals.before_task_publish
        self._after_publish: Any = signals.after_task_publish

    def __repr__(self) -> str:
        return f"CeleryTaskQueueGateway(broker={self.broker.name}, url={redact_url(self.broker.url)!r})"

    @classmethod
    def from_config(
        cls,
        config: InfraConfig,
        *,
        broker_type: BrokerType | str | None = None,
        task_visibility: TaskVisibility | str | None = None,
        backend_protocol: str | None = None,
        redis: RedisBroker | str | None = None,
        sqs_endpoint_url: str | None = None,
        **overrides: Any,
    ) -> CeleryTaskQueueGateway:
        from .app import build_app

        broker, conf = celery_conf(
            config,
            broker_type=broker_type,
            task_visibility=task_visibility,
            backend_protocol=backend_protocol,
            redis=redis,
            sqs_endpoint_url=sqs_endpoint_url,
        )
        return cls(build_app("model-engine-infra-gateway", broker, {**conf, **overrides}), broker)

    # ------------------------------------------------------------------ sending

    def _queue(self, name: str) -> Any:
        """The kombu queue for ``name``; the broker's name rule runs once per name, before any call."""
        queue = self._queues.get(name)
        if queue is None:
            self._unit.check_queue_name(name)
            with self._lock:
                queue = self._queues.get(name)
                if queue is None:
                    # what Celery's task_create_missing_queues would declare, so workers bind alike
                    queue = self._queue_cls(name, self._exchange_cls(name, "direct"), routing_key=name)
                    self._queues[name] = queue
        return queue

    def _check_size(self, task_name: str, queue_name: str, data: str, headers: dict[str, Any]) -> None:
        limit = self.max_message_bytes
        if limit is None:
            return
        size = encoded_size(self.broker, data, ENVELOPE_BYTES)
        if size <= limit - HEADER_MARGIN:
            return  # far below: headers (a few KB at most) cannot matter, skip the exact count
        size = self._exact_size(queue_name, data, headers)
        if size > limit:
            raise MessageTooLargeError(
                f"task {task_name!r} for queue {queue_name!r} is {size} bytes once encoded for "
                f"{self.broker.name}, over its limit of {limit} bytes; send a reference "
                "(e.g. a storage URL) to the payload instead of the payload itself"
            )

    def _exact_size(self, queue_name: str, data: str, headers: dict[str, Any]) -> int:
        """The envelope kombu's virtual transports will write, encoded as they encode it."""
        import base64

        from kombu.utils.json import dumps as json_dumps

        if self.broker.body_encoding == "base64":
            body: Any = base64.b64encode(data.encode()).decode()
        else:  # kombu hands the transport bytes, which its JSON marks as such
            body = {"__type__": "bytes", "__value__": data}
        envelope = {
            "body": body,
            "content-encoding": "utf-8",
            "content-type": "application/json",
            "headers": headers,
            "properties": {
                "correlation_id": headers["id"],
                "reply_to": "",
                "delivery_mode": 2,
                "delivery_info": {"exchange": "", "routing_key": queue_name},
                "priority": 0,
                "body_encoding": self.broker.body_encoding,
                "delivery_tag": headers["id"],
            },
        }
        encoded: str = json_dumps(envelope)  # type: ignore[no-untyped-call]
        size = len(encoded.encode()) + WIRE_OVERHEAD
        if self.broker.envelope_base64:
            size = 4 * ((size + 2) // 3)
        return size

    def _send_task(
        self, task_name: str, queue_name: str, args: list[Any], kwargs: dict[str, Any], expires: float | None
    ) -> SentTask:
        queue = self._queue(queue_name)  # the name is checked before anything else
        task_id = str(uuid.uuid4())
        body = (args, kwargs, {"callbacks": None, "errbacks": None, "chain": None, "chord": None})
        try:
            content_type, content_encoding, data = self._dumps(body, serializer="json")
        except Exception as err:  # kombu's EncodeError: a set, bytes, an object that JSON cannot carry
            raise TaskArgumentsError(
                f"task {task_name!r} for queue {queue_name!r} has arguments JSON cannot carry ({err}); pass "
                "JSON values (str, int, float, bool, None, lists, dicts with string keys); the task was not sent"
            ) from None
        expires_at = None
        if expires is not None and (
            isinstance(expires, bool)
            or not isinstance(expires, int | float)
            or not -MAX_EXPIRES_SECONDS <= expires <= MAX_EXPIRES_SECONDS  # NaN fails this too
        ):  # negative: already expired (a worker drops it), which a caller may mean
            raise TaskArgumentsError(
                f"task {task_name!r}: expires={expires!r} is not a number of seconds within "
                f"±{MAX_EXPIRES_SECONDS} (10 years); the task was not sent"
            )
        if expires is not None:
            expires_at = (datetime.now(timezone.utc) + timedelta(seconds=expires)).isoformat()
        headers = {
            "lang": "py",
            "task": task_name,
            "id": task_id,
            "shadow": None,
            "eta": None,
            "expires": expires_at,
            "group": None,
            "group_index": None,
            "retries": 0,
            "timelimit": [None, None],
            "root_id": task_id,
            "parent_id": None,
            "argsrepr": _short_repr(args),
            "kwargsrepr": _short_repr(kwargs),
            "origin": self._origin,
            "ignore_result": None,  # what app.send_task sends when not asked (the task decides)
            "replaced_task_nesting": 0,
            "stamped_headers": None,
            "stamps": {},
        }
        self._check_size(task_name, queue_name, data, headers)
        if self._before_publish.receivers:  # what Celery's send_task_message sends; tracing injects headers here
            self._before_publish.send(
                sender=task_name,
                body=body,
                exchange="",
                routing_key=queue_name,
                declare=[queue],
                headers=headers,
                properties={"correlation_id": task_id, "reply_to": ""},
                retry_policy=self._retry_policy,
            )
        try:
            with send_scope(self._bounds.attempts, self._bounds.backoff_seconds), self._producers.acquire() as producer:
                # declare once per connection (kombu forgets on reconnect); maybe_declare on every
                # publish copies the queue and costs more than the publish itself on Redis
                declared = hash(queue) in producer.connection.declared_entities
                in_publish = self._presence is not None and self._presence.in_publish
                if self._presence is not None and not in_publish and (self._presence.every_send or not declared):
                    self._require_queue(producer, task_name, queue_name)
                with require_queue(queue_name if in_publish else None):  # checked by the push, in its round trip
                    producer.publish(
                        data,
                        exchange="",
                        routing_key=queue_name,
                        content_type=content_type,
                        content_encoding=content_encoding,
                        headers=headers,
                        correlation_id=task_id,
                        reply_to="",
                        delivery_mode=2,
                        declare=None if declared or in_publish else [queue],
                        retry=True,
                        retry_policy=self._retry_policy,
                    )
        except QueueNotFoundError:
            raise
        except QueueMissing:
            raise self._not_found(task_name, queue_name) from None
        except self._unavailable as err:
            mapped = self._unit.publish_error(err, task_name, queue_name)  # e.g. Redis WRONGTYPE after retries
            if mapped is not None:
                raise mapped from err
            raise BrokerUnavailableError(
                f"could not send task {task_name!r} to queue {queue_name!r}: the "
                f"{self.broker.name} broker {redact_url(self.broker.url)} is unreachable after "
                f"{self._bounds.attempts} attempt(s) ({type(err).__name__}); the task was not sent"
            ) from err
        except Exception as err:
            mapped = self._unit.publish_error(err, task_name, queue_name)
            if mapped is not None:
                raise mapped from err
            raise
        if self._after_publish.receivers:
            self._after_publish.send(sender=task_name, body=body, headers=headers, exchange="", routing_key=queue_name)
        return SentTask(task_id=task_id)

    def _require_queue(self, producer: Any, task_name: str, queue_name: str) -> None:
        """`QueueNotFoundError` unless the queue exists (see `presence`); retried like a publish."""
        assert self._presence is not None
        exists = self._presence.exists
        try:
            found = exists(producer.channel, queue_name)  # the hot path: one broker call, no wrapper
        except producer.connection.recoverable_connection_errors as err:
            try:
                spend(err)  # one attempt of this send's budget (pauses unless it was the last)
            except type(err):
                from kombu.exceptions import OperationalError

                raise OperationalError(str(err)) from err

            # a dropped connection: retry like a publish (revive, back off, give up as OperationalError)
            def check() -> bool:
                return exists(producer.channel, queue_name)

            found = producer.connection.ensure(producer, check, **self._retry_policy)()
        if not found:
            raise self._not_found(task_name, queue_name)

    def _not_found(self, task_name: str, queue_name: str) -> QueueNotFoundError:
        return QueueNotFoundError(
            f"could not send task {task_name!r}: queue {queue_name!r} does not exist on the "
            f"{self.broker.name} broker. Create it with the queue delegate "
            "(create_queue_if_not_exists) or start a worker that consumes it; the task was not sent"
        )

    # ------------------------------------------------------------------ reading

    def get_task(self, task_id: str) -> TaskState:
        try:
            # one read (AsyncResult's state, result and traceback would read a pending task three times)
            meta = self.app.backend.get_task_meta(task_id)
            state, value, trace = meta.get("status"), meta.get("result"), meta.get("traceback")
        except Exception as err:
            raise BrokerUnavailableError(
                f"could not read task {task_id!r} from the result backend ({type(err).__name__}); retry later"
            ) from err
        try:
            status = TaskStatus(state)
        except ValueError:
            status = TaskStatus.UNKNOWN
        if status is TaskStatus.SUCCESS:
            return TaskState(task_id, status, result=value)
        if status is TaskStatus.FAILURE:
            shown = f"{type(value).__name__}: {value}" if isinstance(value, BaseException) else value
            return TaskState(task_id, status, result=shown, traceback=trace)
        return TaskState(task_id, status)

    def close(self) -> None:
        self._producers.close()
        self.app.close()


def _release_quietly(producer: Any) -> None:
    try:
        producer.connection.release()
    except Exception:  # closing a connection that already failed
        pass


def _policy_bounds(app: Celery) -> SendBounds:
    """A plugin broker's budget: Celery's publish retry policy, with no known time per attempt."""
    policy = app.conf.task_publish_retry_policy
    retries = policy.get("max_retries")
    return SendBounds(
        attempts=1 + (3 if retries is None else int(retries)), backoff_seconds=float(policy.get("interval_max", 1))
    )


def _short_repr(value: Any) -> str:
    """``repr`` cut at Celery's ``argsrepr`` size (1024); arguments are JSON data, so ``repr`` is safe."""
    text = repr(value)
    return text if len(text) <= REPR_MAX else text[: REPR_MAX - 3] + "..."


def redis_source(config: InfraConfig, infra: Infra) -> RedisBroker:
    """The Redis component's broker settings: URL without secrets, credential provider, TLS."""
    from ..redis.celery import celery_redis_settings, celery_ssl_options
    from ..redis.connection import ManagedRedisConnection

    url, options = celery_redis_settings(config, infra)
    connection = infra.redis
    ssl_options = celery_ssl_options(connection) if isinstance(connection, ManagedRedisConnection) else None
    return RedisBroker(url, dict(options), ssl_options)


def build_task_queue(config: InfraConfig, infra: Infra) -> CeleryTaskQueueGateway:
    """The component factory: a task queue on the deployment's one broker (`brokers.broker_for`)."""
    from ..brokers import broker_for

    unit = broker_for(config)
    if unit is None:
        from ..errors import ProviderUnavailableError

        raise ProviderUnavailableError(f"the {config.cloud_provider} provider has no task_queue component")
    return build_task_queue_on(unit, config, infra)


def build_task_queue_on(
    unit: BrokerUnit,
    config: InfraConfig,
    infra: Infra,
    *,
    visibility: TaskVisibility | str | None = None,
    **overrides: Any,
) -> CeleryTaskQueueGateway:
    """A task queue on ``unit`` with tasks hidden for ``visibility`` once delivered, and the config's result backend."""
    kind = unit.broker_type(config)
    uses_redis = unit.uses_redis() or default_backend_protocol(config) == "redis"
    redis = redis_source(config, infra) if uses_redis else None
    return CeleryTaskQueueGateway.from_config(
        config, broker_type=kind, task_visibility=visibility, redis=redis, **overrides
    )
