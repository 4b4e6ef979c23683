"""Queue attributes for many endpoints at once: the async SQS delegate against blocking boto3 calls.

    python benchmarks/queue_delegates.py [--endpoints 40] [--latency-ms 20]

A moto server behind ``model_engine_infra.testing.netsim`` (first-byte latency per request) holds one queue
per endpoint. Two ways to read every queue's attributes from one event loop, measured in the same run:

- baseline: what the reference system did — synchronous boto3 calls inside ``async`` functions
  (``get_queue_url`` + ``get_queue_attributes``), which block the loop, so they run one by one;
- the delegate: ``asyncio.gather`` over ``get_queue_attributes`` (``get_queue_url`` +
  ``get_queue_attributes`` + ``list_queue_tags``, in worker threads on one shared client).

Prints wall time, the ratio, and the longest stretch the event loop could not run anything else.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import boto3

from model_engine_infra.queues.sqs import SQSQueueEndpointResourceDelegate
from model_engine_infra.testing.netsim import netsim
from model_engine_infra.testing.servers import start_moto


async def with_loop_lag(start_work: Callable[[], Awaitable[Any]]) -> tuple[float, float]:
    """(wall seconds, longest event-loop stall in seconds) while the work ``start_work()`` makes runs."""
    stalls: list[float] = [0.0]
    done = asyncio.Event()

    async def ticker() -> None:
        last = time.monotonic()
        while not done.is_set():
            await asyncio.sleep(0.001)
            now = time.monotonic()
            stalls.append(now - last)
            last = now

    task = asyncio.create_task(ticker())
    await asyncio.sleep(0.01)  # the ticker is running before the work starts
    started = time.monotonic()
    await start_work()
    elapsed = time.monotonic() - started
    done.set()
    await task
    return elapsed, max(stalls)


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--endpoints", type=int, default=40)
    parser.add_argument("--latency-ms", type=float, default=20)
    args = parser.parse_args()
    os.environ.update(AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing")
    with (
        tempfile.TemporaryDirectory() as folder,
        start_moto(Path(folder)) as server,
        netsim(server.port, latency_ms=args.latency_ms) as port,
    ):
        url = f"http://127.0.0.1:{port}"
        delegate = SQSQueueEndpointResourceDelegate(region="us-east-1", endpoint_url=url)
        ids = [f"bench{i}" for i in range(args.endpoints)]
        await asyncio.gather(*(delegate.create_queue_if_not_exists(i, "n", "u", {}) for i in ids))
        client = boto3.client("sqs", region_name="us-east-1", endpoint_url=url)

        async def blocking_attributes(endpoint_id: str) -> dict[str, str]:
            queue_url = client.get_queue_url(QueueName=f"launch-endpoint-id-{endpoint_id}")["QueueUrl"]
            answer = client.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["All"])
            return dict(answer["Attributes"])

        await blocking_attributes(ids[0])  # warm both clients' connection pools
        await delegate.get_queue_attributes(ids[0])
        base, base_stall = await with_loop_lag(lambda: asyncio.gather(*(blocking_attributes(i) for i in ids)))
        ours, our_stall = await with_loop_lag(lambda: asyncio.gather(*(delegate.get_queue_attributes(i) for i in ids)))
    print(f"{args.endpoints} endpoints, moto server behind netsim ({args.latency_ms:g} ms per request)")
    print(
        f"  baseline, blocking boto3 in async code (2 calls each): {base:6.2f} s, loop stalled up to "
        f"{base_stall * 1000:6.0f} ms"
    )
    print(
        f"  delegate, gathered (3 calls each, threads):          {ours:6.2f} s, loop stalled up to "
        f"{our_stall * 1000:6.0f} ms"
    )
    print(f"  ratio delegate / baseline: {ours / base:.2f}x")


if __name__ == "__main__":
    asyncio.run(main())
