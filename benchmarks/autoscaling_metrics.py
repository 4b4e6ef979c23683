"""The autoscaling emit on every inference request: ours against the reference's four calls, same redis-server.

    python benchmarks/autoscaling_metrics.py [--latency-ms 2] [--emits 200] [--rounds 5]

A redis-server behind netsim (``--latency-ms`` per request: a round trip to a Redis in the same
region is 0.3-2 ms; netsim models it as a delay on each answer). The anchor is the reference
implementation's emit: EXPIRE, LPUSH, LTRIM, EXPIRE, awaited one after another on a
``redis.asyncio`` client. Ours: `RedisInferenceAutoscalingMetricsGateway.emit_inference_autoscaling_metric`
(one EVALSHA) on the same kind of client. Each case sends ``--emits`` emits one after another (as
one request path does), to keys spread over 50 endpoints; cases are interleaved round by round
and the medians compared. Target: <= 0.4x the anchor.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
from pathlib import Path

import redis.asyncio

from _bench import interleave_async, report
from model_engine_infra.autoscaling.base import EXPIRY_SECONDS
from model_engine_infra.autoscaling.redis import RedisInferenceAutoscalingMetricsGateway, redis_key
from model_engine_infra.testing.netsim import netsim
from model_engine_infra.testing.servers import start_redis

TARGET = 0.4


async def run(latency_ms: float, emits: int, rounds: int) -> None:
    with (
        tempfile.TemporaryDirectory() as folder,
        start_redis(Path(folder)) as server,
        netsim(server.port, latency_ms=latency_ms) as port,
    ):
        anchor_client = redis.asyncio.Redis(host="127.0.0.1", port=port)
        our_client = redis.asyncio.Redis(host="127.0.0.1", port=port)
        gateway = RedisInferenceAutoscalingMetricsGateway(lambda: our_client, timeout=30)
        endpoints = [f"bench{i}" for i in range(50)]

        async def upstream() -> None:
            for i in range(emits):
                key = redis_key(endpoints[i % len(endpoints)])
                await anchor_client.expire(key, EXPIRY_SECONDS)
                await anchor_client.lpush(key, 1)
                await anchor_client.ltrim(key, 0, 0)
                await anchor_client.expire(key, EXPIRY_SECONDS)

        async def ours() -> None:
            for i in range(emits):
                await gateway.emit_inference_autoscaling_metric(endpoints[i % len(endpoints)])

        await upstream()  # warm both connections, load the script
        await ours()
        timings = await interleave_async(
            {"reference: EXPIRE, LPUSH, LTRIM, EXPIRE": upstream, "ours: one EVALSHA": ours}, rounds
        )
        report(
            f"{emits} emits one after another, redis-server behind netsim {latency_ms:g} ms",
            timings,
            anchor="reference: EXPIRE, LPUSH, LTRIM, EXPIRE",
            target=TARGET,
        )
        await anchor_client.aclose()
        await our_client.aclose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--latency-ms", type=float, default=2.0)
    parser.add_argument("--emits", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    asyncio.run(run(args.latency_ms, args.emits, args.rounds))


if __name__ == "__main__":
    main()
