"""Queue attributes of many endpoints at once, against the fastest plain client on the same server.

    python benchmarks/queue_delegates.py [--endpoints 1000] [--unacked 5000] [--rounds 3] [--only sqs|redis]

SQS: a moto server behind netsim (20 ms per request, 50 MB/s per connection) holds one queue per
endpoint. The anchor is an aiobotocore client making 32 ``GetQueueAttributes`` calls at once with
the URLs already known (attributes only: no ``GetQueueUrl``, no tags). Ours: the delegate's
``get_queue_attributes_many`` and an ``asyncio.gather`` of single ``get_queue_attributes`` calls,
after a first (cold) bulk read that fills the URL cache. Target: <= 2 s, or <= 1.2x the anchor
where moto itself is the limit.

Redis: a redis-server behind netsim holds 1,000 queues (metadata hash, messages on some lists) and
kombu's ``unacked`` hash with N entries routed to them. The anchor: one HSCAN of ``unacked``
(JSON-parsed, counted by routing key) plus one pipeline of HGETALL + LLEN for every queue. Ours:
``get_queue_attributes_many`` and a ``gather`` of 1,000 single calls on a pool of 32 connections
(the reference implementation ran out of connections here). Target: <= 2x the anchor.

Cases are interleaved round by round; medians and ratios are printed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import boto3
import redis.asyncio
from aiobotocore.session import get_session
from botocore.config import Config

from _bench import LATENCY_MS, RATE_MBPS, interleave_async, report
from model_engine_infra.queues.redis import KOMBU_UNACKED_KEY, META_SUFFIX, RedisQueueEndpointResourceDelegate
from model_engine_infra.queues.sqs import SQSQueueEndpointResourceDelegate
from model_engine_infra.testing.netsim import netsim
from model_engine_infra.testing.servers import start_moto, start_redis

PREFIX = "launch-endpoint-id-"


async def bench_sqs(endpoints: int, rounds: int) -> None:
    os.environ.update(AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing", AWS_DEFAULT_REGION="us-east-1")
    with (
        tempfile.TemporaryDirectory() as folder,
        start_moto(Path(folder)) as server,
        netsim(server.port, latency_ms=LATENCY_MS, rate_mbps=RATE_MBPS) as port,
    ):
        direct = boto3.client("sqs", region_name="us-east-1", endpoint_url=server.url)
        ids = [f"b{i}" for i in range(endpoints)]
        urls = [direct.create_queue(QueueName=PREFIX + i)["QueueUrl"] for i in ids]
        url = f"http://127.0.0.1:{port}"
        urls = [u.replace(server.url, url) for u in urls]
        delegate = SQSQueueEndpointResourceDelegate(region="us-east-1", endpoint_url=url)
        started = time.perf_counter()
        cold = await delegate.get_queue_attributes_many(ids)
        cold_seconds = time.perf_counter() - started
        assert all(cold.values())
        async with get_session().create_client(
            "sqs", region_name="us-east-1", endpoint_url=url, config=Config(max_pool_connections=32)
        ) as anchor:
            gate = asyncio.Semaphore(32)

            async def attributes_only(queue_url: str) -> object:
                async with gate:
                    return await anchor.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["All"])

            async def run_anchor() -> None:
                await asyncio.gather(*(attributes_only(u) for u in urls))

            async def run_many() -> None:
                await delegate.get_queue_attributes_many(ids)

            async def run_gather() -> None:
                await asyncio.gather(*(delegate.get_queue_attributes(i) for i in ids))

            await run_anchor()  # warm the anchor's connections too
            timings = await interleave_async(
                {
                    "aiobotocore, 32 at once, attributes only": run_anchor,
                    "delegate get_queue_attributes_many": run_many,
                    "delegate gather of single calls": run_gather,
                },
                rounds,
            )
        await delegate.close()
    report(
        f"SQS: {endpoints} queues, moto server behind netsim ({LATENCY_MS:g} ms); cold bulk read "
        f"(URLs listed) {cold_seconds:.2f} s",
        timings,
        anchor="aiobotocore, 32 at once, attributes only",
        target=1.2,
    )


def unacked_entry(queue: str, body_bytes: int = 600) -> str:
    """What kombu's redis transport stores for a fetched, unacknowledged Celery message."""
    message = {
        "body": "x" * body_bytes,
        "content-encoding": "utf-8",
        "content-type": "application/json",
        "headers": {"id": "0" * 36, "task": "bench.task", "lang": "py"},
        "properties": {"delivery_info": {"exchange": queue, "routing_key": queue}, "priority": 0},
    }
    return json.dumps([message, queue, queue])


async def bench_redis(endpoints: int, unacked: int, rounds: int) -> None:
    with (
        tempfile.TemporaryDirectory() as folder,
        start_redis(Path(folder)) as server,
        netsim(server.port, latency_ms=LATENCY_MS, rate_mbps=RATE_MBPS) as port,
    ):
        setup = redis.asyncio.Redis(host="127.0.0.1", port=server.port)
        ids = [f"b{i}" for i in range(endpoints)]
        names = [PREFIX + i for i in ids]
        async with setup.pipeline(transaction=False) as pipe:
            for index, name in enumerate(names):
                pipe.hset(name + META_SUFFIX, mapping={"endpoint_id": ids[index], "created_by": "bench"})
                if index % 3 == 0:
                    pipe.lpush(name, "waiting")
                pipe.sadd(f"_kombu.binding.{name}", f"{name}\x06\x16\x06\x16{name}")
            for n in range(unacked):
                pipe.hset(KOMBU_UNACKED_KEY, f"tag-{n}", unacked_entry(names[n % endpoints]))
            await pipe.execute()
        await setup.aclose()
        client = redis.asyncio.Redis(
            connection_pool=redis.asyncio.BlockingConnectionPool(
                host="127.0.0.1", port=port, max_connections=32, timeout=20
            )
        )
        delegate = RedisQueueEndpointResourceDelegate(client)

        async def run_anchor() -> None:
            by_route: Counter[str] = Counter()
            async for _tag, value in client.hscan_iter(KOMBU_UNACKED_KEY, count=1000):
                _message, _exchange, routing_key = json.loads(value)
                by_route[routing_key] += 1
            async with client.pipeline(transaction=False) as pipe:
                for name in names:
                    pipe.hgetall(name + META_SUFFIX)
                    for suffix in ("", "\x06\x163", "\x06\x166", "\x06\x169"):
                        pipe.llen(name + suffix)
                await pipe.execute()

        async def run_many() -> None:
            await delegate.get_queue_attributes_many(ids)

        async def run_gather() -> None:
            await asyncio.gather(*(delegate.get_queue_attributes(i) for i in ids))

        check = await delegate.get_queue_attributes_many(ids)
        assert sum(a.approximate_in_flight_count or 0 for a in check.values() if a) == unacked
        timings = await interleave_async(
            {
                "one HSCAN + pipelined HGETALL/LLEN": run_anchor,
                "delegate get_queue_attributes_many": run_many,
                "delegate gather of 1,000 single calls": run_gather,
            },
            rounds,
        )
        await client.aclose()
    report(
        f"Redis: {endpoints} queues, {unacked} unacked messages, redis-server behind netsim ({LATENCY_MS:g} ms), "
        "pool of 32 connections",
        timings,
        anchor="one HSCAN + pipelined HGETALL/LLEN",
        target=2.0,
    )


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--endpoints", type=int, default=1000)
    parser.add_argument("--unacked", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--only", choices=["sqs", "redis"])
    args = parser.parse_args()
    if args.only in (None, "redis"):
        await bench_redis(args.endpoints, args.unacked, args.rounds)
    if args.only in (None, "sqs"):
        await bench_sqs(args.endpoints, args.rounds)
    sys.stdout.flush()


if __name__ == "__main__":
    asyncio.run(main())
