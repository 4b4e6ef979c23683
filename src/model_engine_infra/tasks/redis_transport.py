"""kombu's Redis transport, with worker connections that hand a lost connection back to kombu, and a
push that checks, in the same round trip, that its queue exists.

Workers. A worker's event loop reads the pub/sub connection (fanout queues: Celery's remote control,
which ``celery inspect`` and autoscalers use) only when its socket is readable. When Redis drops the
connection -- a credential rotation that kills clients, a failover, an idle timeout -- redis-py's
own retry reconnects *inside* that read and then waits on the fresh connection, with no timeout,
for a message that never comes: the worker stops consuming tasks, silently, until restarted.
Here the worker's connections (kombu's asynchronous pool: the BRPOP client and the pub/sub
client) do not retry inside redis-py. The error reaches kombu, which restarts the consumer:
new connections, credentials fetched again from the provider, every queue and fanout
subscription declared again. Publishing (the synchronous pool) keeps redis-py's retries, except on
the task queue's own connections, whose sends draw on one budget (`tasks.send_budget`).

Sends. ``send_task`` never creates a queue (`tasks.presence`). On Redis the check was one ``EXISTS``
before each ``LPUSH``: a second round trip per send. Inside `presence.require_queue`, this channel's
``_put`` runs both in one Lua script instead: the message is pushed only if one of the queue's keys
(the delegate's metadata hash, a worker's binding, a waiting message) exists, and otherwise nothing
is stored and `presence.QueueMissing` is raised. The check and the push are atomic, so a queue
deleted between them cannot be recreated by the push. Outside it (workers, Celery's own publishes)
it is kombu's ``_put``, unchanged. Redis runs the script with ``EVAL`` (the text is ~300 bytes; no
client-side SHA-1 as ``EVALSHA`` would need); kombu's worker already needs Lua.
"""

from __future__ import annotations

from typing import Any

from kombu.transport import redis as kombu_redis
from kombu.utils.json import dumps
from redis.backoff import NoBackoff
from redis.retry import Retry

from ..queues.redis import KOMBU_BINDING_KEY, META_SUFFIX
from .presence import QueueMissing, required_queue

__all__ = ["PUSH_IF_QUEUE_EXISTS", "Channel", "Transport"]

# KEYS[1]: the list to push to; KEYS[2]: the delegate's metadata hash; KEYS[3]: the workers' binding
# set; KEYS[4..]: the queue's lists. Any of KEYS[2..] existing means the queue exists. A binding key
# of another type would break every worker's declare: refused as WRONGTYPE, as kombu's SADD would.
PUSH_IF_QUEUE_EXISTS = """
local binding = redis.call('TYPE', KEYS[3]).ok
if binding ~= 'none' and binding ~= 'set' then
  return redis.error_reply('WRONGTYPE the binding key ' .. KEYS[3] .. ' holds a ' .. binding .. ', not a set')
end
if redis.call('EXISTS', unpack(KEYS, 2)) == 0 then return 0 end
redis.call('LPUSH', KEYS[1], ARGV[1])
return 1
"""


class Channel(kombu_redis.Channel):  # type: ignore[misc]
    def _connparams(self, asynchronous: bool = False) -> dict[str, Any]:
        params: dict[str, Any] = super()._connparams(asynchronous=asynchronous)  # type: ignore[no-untyped-call]
        if asynchronous:
            params["retry"] = Retry(NoBackoff(), 0)
        return params

    def _put(self, queue: str, message: Any, **kwargs: Any) -> None:
        kombu: Any = super()
        if required_queue() != queue or kwargs.get("_publish_batch") is not None or queue in (self._expires or {}):
            kombu._put(queue, message, **kwargs)
            return
        list_key: Any = self._q_for_pri
        target = list_key(queue, self._get_message_priority(message, reverse=False))  # type: ignore[no-untyped-call]
        presence = [queue + META_SUFFIX, KOMBU_BINDING_KEY.format(exchange=queue)]
        presence += [list_key(queue, step) for step in self.priority_steps]
        encoded = dumps(message)  # type: ignore[no-untyped-call]
        pushed = self._push_client().eval(PUSH_IF_QUEUE_EXISTS, 1 + len(presence), target, *presence, encoded)
        if not pushed:
            raise QueueMissing(queue)

    def _push_client(self) -> Any:
        """One client over the channel's pool, kept while the pool is (kombu builds a client per push,
        and building one costs more than the push itself: redis-py fills its response-callback table)."""
        pool = self.pool
        client = self.__dict__.get("_mei_push_client")
        if client is None or client.connection_pool is not pool:
            client = self._create_client()  # type: ignore[no-untyped-call]
            self.__dict__["_mei_push_client"] = client
        return client


class Transport(kombu_redis.Transport):  # type: ignore[misc]
    Channel = Channel
