"""The Redis broker: endpoint queues as kombu's Redis lists, Celery on kombu's Redis transport."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..errors import BrokerPermissionError, ConfigError, InfraError, QueueKeyConflictError, clip
from ..rules import Rule
from .base import BrokerSettings, BrokerType, BrokerUnit, RedisBroker, SendBounds, TaskVisibility, with_redis_db

if TYPE_CHECKING:
    from ..config.model import InfraConfig
    from ..tasks.presence import Presence

RULES: tuple[Rule, ...] = ()
# kombu's Redis transport with worker connections that give a lost connection back to kombu, and a
# push that checks, in its one round trip, that the queue exists
REDIS_TRANSPORT_TARGET = "model_engine_infra.tasks.redis_transport:Transport"
# The pause between two attempts of one send: the Redis component's backoff cap (PoolSettings.backoff_cap).
REDIS_BACKOFF_SECONDS = 0.1


def redis_fallback_url(config: InfraConfig) -> str:
    """``redis[s]://REDIS_HOST:REDIS_PORT/0`` when no Redis component supplies a URL."""
    if config.redis_host is None:
        raise ConfigError(
            "the Redis broker needs a Redis server and none is configured",
            key="redis_host",
            value=None,
            fix="set redisHost/REDIS_HOST (and redisPort), or a cache Redis URL",
        )
    scheme = "rediss" if config.redis_enable_tls else "redis"
    return f"{scheme}://{config.redis_host}:{config.redis_port}/0"


def redis_ssl_options(config: InfraConfig, source: RedisBroker) -> dict[str, Any] | None:
    """TLS settings for a ``rediss`` URL: the Redis component's, else from ``redis_unsafe_ssl``."""
    if not source.url.startswith("rediss://"):
        return None
    if source.ssl_options is not None:
        return dict(source.ssl_options)
    import ssl

    return {"ssl_cert_reqs": ssl.CERT_NONE if config.redis_unsafe_ssl else ssl.CERT_REQUIRED}


def redis_source(config: InfraConfig, redis: RedisBroker | str | None) -> RedisBroker:
    """The Redis the broker or result backend reaches: the component's, a URL, else redis_host."""
    return redis if isinstance(redis, RedisBroker) else RedisBroker(redis or redis_fallback_url(config))


def send_bounds(config: InfraConfig, options: dict[str, Any]) -> SendBounds:
    """The Redis component's budget for a send: ``1 + redis_retries`` attempts, one connect + one reply each.

    redis-py's own retries are off on the task queue's connections (``retry_on_timeout: False``), so
    each kombu-level attempt is one connect and one command; kombu's levels share the budget.
    """
    reply = float(options.get("socket_timeout") or config.redis_socket_timeout)
    connect = float(options.get("socket_connect_timeout") or reply)
    return SendBounds(
        attempts=1 + config.redis_retries,
        backoff_seconds=REDIS_BACKOFF_SECONDS,
        attempt_seconds=connect + reply,
        silent_attempt_seconds=reply,
        producer_options={"retry_on_timeout": False},
    )


class RedisBrokerUnit(BrokerUnit):
    """``redis_24h`` (the profile's ``redis_visibility``) only changes the default visibility; a task
    queue built with another (onprem's 1 h endpoint-creation queue) uses that one, in its database."""

    name = "redis"
    label = "Redis"
    extras = ("redis",)
    chart_name = "elasticache"
    chart_hint = "elasticache (or celery_broker_type_redis: true)"
    max_message_bytes = None  # 512 MB per value: not a limit a task payload meets first
    counts_in_flight = True  # kombu's unacked hash
    per_queue_visibility = False  # one visibility_timeout per connection
    delegate_target = "model_engine_infra.queues.redis:build_delegate"
    transport = REDIS_TRANSPORT_TARGET  # kombu's, with a push that checks the queue exists in the same round trip
    keys = (
        "redis_host",
        "redis_port",
        "redis_enable_tls",
        "redis_unsafe_ssl",
        "redis_socket_timeout",
        "redis_health_check_interval",
        "redis_max_connections",
        "celery_broker_pool_limit",
    )
    rules = RULES

    def broker_type(self, config: InfraConfig) -> BrokerType:
        from ..selection import profile_of

        long = profile_of(config).redis_visibility == TaskVisibility.VISIBILITY_24H.value
        return BrokerType.REDIS_24H if long else BrokerType.REDIS

    def uses_redis(self) -> bool:
        return True

    def check_queue_name(self, name: str) -> str:
        from ..queues.names import redis_queue_name

        return redis_queue_name(name)

    def queue_presence(self) -> Presence:
        from ..tasks import presence

        return presence.REDIS

    def publish_error(self, err: BaseException, task_name: str, queue_name: str) -> InfraError | None:
        """WRONGTYPE: a key the queue needs holds another type. The broker is up: say so, not "unreachable"."""
        seen: BaseException | None = err
        for _ in range(10):  # the cause chain (kombu wraps redis-py's ResponseError after its retries)
            if seen is None:
                return None
            text = str(seen)
            if "NOPERM" in text or type(seen).__name__ == "NoPermissionError":
                return BrokerPermissionError(
                    f"could not send task {task_name!r} to queue {queue_name!r}: the Redis user may not run what a "
                    f"send needs ({clip(text, 200)}); its ACL needs +eval +type +exists +lpush on the queue's keys "
                    "(a send is one Lua script). The task was not sent"
                )
            if type(seen).__name__ == "AuthenticationError" or "WRONGPASS" in text:
                return BrokerPermissionError(
                    f"could not send task {task_name!r} to queue {queue_name!r}: Redis refused the credentials "
                    "(AuthenticationError); check the Redis password or IAM settings (docs/redis.md). "
                    "The task was not sent"
                )
            if "WRONGTYPE" in text:
                return QueueKeyConflictError(
                    f"could not send task {task_name!r} to queue {queue_name!r}: Redis holds a key this queue "
                    f"needs ('{queue_name}' or '_kombu.binding.{queue_name}') as another type (WRONGTYPE), so "
                    "every send to it fails; the broker is reachable. Delete or rename that key; the task was not sent"
                )
            seen = seen.__cause__ or seen.__context__
        return None

    def settings(
        self,
        config: InfraConfig,
        *,
        broker_type: BrokerType | str,
        visibility: TaskVisibility,
        redis: RedisBroker | str | None = None,
        endpoint_url: str | None = None,
    ) -> BrokerSettings:
        source = redis_source(config, redis)
        options: dict[str, Any] = {
            "visibility_timeout": visibility.seconds,
            "socket_timeout": config.redis_socket_timeout,
            "socket_connect_timeout": config.redis_socket_timeout,
            "health_check_interval": config.redis_health_check_interval,
            "max_connections": config.redis_max_connections,
            **source.transport_options,
        }
        conf: dict[str, Any] = {}
        ssl_options = redis_ssl_options(config, source)
        if ssl_options is not None:
            conf["broker_use_ssl"] = ssl_options
        # the visibility's own database, as llm-engine's workers and autoscaler expect (not the cache's)
        url = with_redis_db(source.url, visibility.redis_db)
        return BrokerSettings(
            broker_type, url, REDIS_TRANSPORT_TARGET, options, conf, None, "base64", bounds=send_bounds(config, options)
        )


BROKER = RedisBrokerUnit()
