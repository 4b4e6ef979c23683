"""kombu's Redis transport, with worker connections that hand a lost connection back to kombu.

A worker's event loop reads the pub/sub connection (fanout queues: Celery's remote control, which
``celery inspect`` and autoscalers use) only when its socket is readable. When Redis drops the
connection -- a credential rotation that kills clients, a failover, an idle timeout -- redis-py's
own retry reconnects *inside* that read and then waits on the fresh connection, with no timeout,
for a message that never comes: the worker stops consuming tasks, silently, until restarted.

Here the worker's connections (kombu's asynchronous pool: the BRPOP client and the pub/sub
client) do not retry inside redis-py. The error reaches kombu, which restarts the consumer:
new connections, credentials fetched again from the provider, every queue and fanout
subscription declared again. Publishing (the synchronous pool) keeps redis-py's retries.
"""

from __future__ import annotations

from typing import Any

from kombu.transport import redis as kombu_redis
from redis.backoff import NoBackoff
from redis.retry import Retry


class Channel(kombu_redis.Channel):  # type: ignore[misc]
    def _connparams(self, asynchronous: bool = False) -> dict[str, Any]:
        params: dict[str, Any] = super()._connparams(asynchronous=asynchronous)  # type: ignore[no-untyped-call]
        if asynchronous:
            params["retry"] = Retry(NoBackoff(), 0)
        return params


class Transport(kombu_redis.Transport):  # type: ignore[misc]
    Channel = Channel
