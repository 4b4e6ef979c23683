"""Autoscaling metrics as a Redis list per endpoint (aws, gcp, onprem): one round trip per emit.

KEDA's ``redis`` trigger reads the length of ``launch-endpoint-autoscaling:{endpoint_id}``; the list
is kept at length 1 (scale from 0 to 1) and expires 60 s after an inference request, an hour after a
prewarm. The reference implementation makes four round trips per emit (EXPIRE, LPUSH, LTRIM,
EXPIRE), on every inference request. Here one short Lua script does the same in one, atomically,
and compares the remaining time first, so an inference request inside a prewarm's hour never cuts
it to a minute (the reference's last EXPIRE did).

The script is sent by SHA (``EVALSHA``); a server that does not know it yet gets it once with
``EVAL``. Each call is bounded by ``timeout`` (the Redis socket timeout): a server that refuses,
never answers or is mid-failover raises `BrokerUnavailableError`, never hangs the request.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

import redis.exceptions

from ..errors import BrokerUnavailableError, InfraError, QueueKeyConflictError, RedisUnavailableError
from .base import REDIS_KEY_PREFIX, AutoscalingMetric, InferenceAutoscalingMetricsGateway

if TYPE_CHECKING:
    from redis.asyncio import Redis

    from ..config.model import InfraConfig
    from ..infra import Infra

__all__ = ["EMIT_SCRIPT", "KEYS", "RedisInferenceAutoscalingMetricsGateway", "build_gateway", "redis_key"]

#: The config keys this backend reads (besides the Redis connection's own).
KEYS = ("redis_socket_timeout",)

#: KEYS[1] the list, ARGV[1] the expiry in ms. Push, trim to one, and extend the expiry only if it
#: would grow: PTTL is -2 for a missing key and -1 for one without expiry, both below any expiry.
EMIT_SCRIPT = """\
local remaining = redis.call('PTTL', KEYS[1])
redis.call('LPUSH', KEYS[1], 1)
redis.call('LTRIM', KEYS[1], 0, 0)
if remaining < tonumber(ARGV[1]) then
  redis.call('PEXPIRE', KEYS[1], ARGV[1])
end
return remaining
"""
_EMIT_SHA = hashlib.sha1(EMIT_SCRIPT.encode()).hexdigest()  # Redis names scripts by SHA-1
_T = TypeVar("_T")


def redis_key(endpoint_id: str) -> str:
    """The list KEDA's ScaledObject reads for ``endpoint_id``."""
    return REDIS_KEY_PREFIX + endpoint_id


def _describe(client: Any) -> str:
    """``host:port/db`` of the client's pool; never the password."""
    kwargs = getattr(getattr(client, "connection_pool", None), "connection_kwargs", {}) or {}
    if "path" in kwargs:
        return f"unix:{kwargs['path']}"
    return f"{kwargs.get('host', '?')}:{kwargs.get('port', '?')}/{kwargs.get('db', 0)}"


class RedisInferenceAutoscalingMetricsGateway(InferenceAutoscalingMetricsGateway):
    """Autoscaling lists on Redis.

    ``client`` returns the ``redis.asyncio.Redis`` of the running event loop
    (`RedisConnection.async_client` does: one pool per loop), so the gateway works from any loop;
    it is called on every operation and the gateway owns none of the clients. ``timeout`` bounds
    each call, retries included.
    """

    backend_name: ClassVar[str] = "Redis"

    def __init__(self, client: Callable[[], Redis], *, timeout: float = 5.0) -> None:
        if timeout <= 0:
            raise ValueError(f"timeout must be positive, not {timeout}")
        self._client = client
        self.timeout = timeout

    def __repr__(self) -> str:
        return f"RedisInferenceAutoscalingMetricsGateway(timeout={self.timeout})"

    async def _call(self, action: str, key: str, call: Callable[[Redis], Awaitable[_T]]) -> _T:
        """Run ``call`` within ``timeout``; transport failures become `BrokerUnavailableError`."""
        client = self._client()
        try:
            return await asyncio.wait_for(call(client), self.timeout)
        except asyncio.TimeoutError as err:
            raise BrokerUnavailableError(
                f"Redis {_describe(client)} did not answer within {self.timeout:g} s to {action} the autoscaling "
                f"metric {key!r}; check the Redis host and port, and that the server is up"
            ) from err
        except redis.exceptions.ResponseError as err:
            if "WRONGTYPE" in str(err):
                raise QueueKeyConflictError(
                    f"Redis key {key!r} on {_describe(client)} holds something other than a list, so KEDA cannot "
                    f"read it; delete the key (it is rebuilt on the next request)"
                ) from err
            raise BrokerUnavailableError(
                f"Redis {_describe(client)} refused to {action} the autoscaling metric {key!r} "
                f"({str(err).split(' ', 1)[0]}); check the Redis user's permissions (EVALSHA, EVAL, LLEN, PTTL, DEL)"
            ) from err
        except RedisUnavailableError as err:  # the connection's own: one type for every backend's outage
            raise BrokerUnavailableError(f"cannot {action} the autoscaling metric {key!r}: {err}") from err
        except InfraError:
            raise  # the connection's other typed errors (credentials) say more than we could
        except (redis.exceptions.RedisError, OSError) as err:
            raise BrokerUnavailableError(
                f"cannot reach Redis {_describe(client)} to {action} the autoscaling metric {key!r} "
                f"({type(err).__name__}); check the Redis host, port and credentials"
            ) from err

    async def emit_metric(self, endpoint_id: str, expiry_seconds: int) -> None:
        key = redis_key(self.check(endpoint_id))
        if expiry_seconds <= 0:
            raise ValueError(f"expiry_seconds must be positive, not {expiry_seconds}")
        milliseconds = int(expiry_seconds * 1000)

        async def emit(client: Redis) -> None:
            try:
                await client.evalsha(_EMIT_SHA, 1, key, milliseconds)  # type: ignore[misc]
            except redis.exceptions.NoScriptError:
                await client.eval(EMIT_SCRIPT, 1, key, milliseconds)  # type: ignore[misc]  # caches it too

        await self._call("emit", key, emit)

    async def create_or_update_resources(self, endpoint_id: str) -> None:
        """Nothing to create: the list appears with the first emit."""
        self.check(endpoint_id)

    async def delete_resources(self, endpoint_id: str) -> None:
        """Delete the list, so a deleted endpoint's prewarm does not linger for its hour."""
        key = redis_key(self.check(endpoint_id))

        async def delete(client: Redis) -> None:
            await client.delete(key)

        await self._call("delete", key, delete)

    async def read_metric(self, endpoint_id: str) -> AutoscalingMetric | None:
        key = redis_key(self.check(endpoint_id))

        async def read(client: Redis) -> tuple[int, int]:
            async with client.pipeline(transaction=False) as pipe:
                pipe.llen(key)
                pipe.pttl(key)
                length, remaining = await pipe.execute()
            return int(length), int(remaining)

        length, remaining = await self._call("read", key, read)
        if length == 0:
            return None
        return AutoscalingMetric(pending=length, expires_in=remaining / 1000 if remaining >= 0 else None)


def build_gateway(config: InfraConfig, infra: Infra) -> RedisInferenceAutoscalingMetricsGateway:
    """On the deployment's Redis (the one ``infra.redis`` reaches), as KEDA's ScaledObjects expect."""
    connection = infra.redis
    return RedisInferenceAutoscalingMetricsGateway(connection.async_client, timeout=config.redis_socket_timeout)
