"""Task sending: the gateway vs Celery's own ``app.send_task`` vs raw kombu, on one redis-server.

All three publish the same protocol-2 message to the same queue of the same app, interleaved in
rounds; the figure per method is its best round. Raw kombu publishes a body serialized once in
advance through a producer held for the whole round, with no retry wrapper: the floor.

Then the same gateway-vs-Celery comparison with publish signals on: OpenTelemetry's Celery
instrumentation connected (a producer span per send, exported to memory), as a traced service runs.

Then the Service Bus fake: connections opened by 100 publishes after warm-up, the same with
``broker_pool_limit=0`` (what the reference system once shipped), and what the first publish
after a forced idle drop costs.

    python benchmarks/celery_send.py --count 2000 --rounds 5
"""

from __future__ import annotations

import argparse
import tempfile
import time
import uuid
from collections.abc import Callable

from model_engine_infra.config import InfraConfig
from model_engine_infra.tasks.gateway import CeleryTaskQueueGateway
from model_engine_infra.testing.queues import declare_queue
from model_engine_infra.testing.servers import start_redis

QUEUE = "bench-q"
TASK = "tasks.predict"
ARGS = [{"prompt": "Summarise the following text in one sentence. " * 4, "max_tokens": 64}]


def best_rounds(methods: dict[str, Callable[[], None]], rounds: int, flush: Callable[[], None]) -> dict[str, float]:
    """Warm up every method, then run them interleaved; the best round of each."""
    for run in methods.values():  # warm-up: connections, declarations, imports
        run()
    flush()
    times: dict[str, list[float]] = {name: [] for name in methods}
    for _ in range(rounds):
        for name, run in methods.items():
            started = time.perf_counter()
            run()
            times[name].append(time.perf_counter() - started)
        flush()
    return {name: min(values) for name, values in times.items()}


def traced(run: Callable[[], dict[str, float]]) -> dict[str, float]:
    """``run()`` with opentelemetry-instrumentation-celery connected to Celery's publish signals."""
    from opentelemetry.instrumentation.celery import CeleryInstrumentor
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    instrumentor = CeleryInstrumentor()
    instrumentor.instrument(tracer_provider=provider)
    try:
        figures = run()
        if not exporter.get_finished_spans():
            raise RuntimeError("no producer span was recorded: the signals did not fire")
        return figures
    finally:
        instrumentor.uninstrument()


def redis_figures(count: int, rounds: int) -> None:
    import redis
    from kombu.serialization import dumps

    with tempfile.TemporaryDirectory() as folder, start_redis(folder) as server:
        config = InfraConfig(cloud_provider="onprem", redis_host="127.0.0.1", celery_backend_protocol="redis")
        gateway = CeleryTaskQueueGateway.from_config(config, redis=server.url)
        declare_queue(gateway, QUEUE)  # send_task refuses queues nobody created
        app = gateway.app
        body = (ARGS, {}, dict.fromkeys(("callbacks", "errbacks", "chain", "chord")))
        content_type, content_encoding, data = dumps(body, serializer="json")
        template = app.amqp.as_task_v2("x", TASK, args=ARGS).headers

        def via_gateway() -> None:
            for _ in range(count):
                gateway.send_task(TASK, QUEUE, args=ARGS)

        def via_celery() -> None:
            for _ in range(count):
                app.send_task(TASK, args=ARGS, queue=QUEUE)

        def via_kombu() -> None:
            with app.producer_pool.acquire(block=True) as producer:
                for _ in range(count):
                    task_id = str(uuid.uuid4())
                    producer.publish(
                        data,
                        exchange="",
                        routing_key=QUEUE,
                        content_type=content_type,
                        content_encoding=content_encoding,
                        headers={**template, "id": task_id, "root_id": task_id},
                        correlation_id=task_id,
                        delivery_mode=2,
                    )

        methods: dict[str, Callable[[], None]] = {
            "gateway.send_task": via_gateway,
            "app.send_task": via_celery,
            "kombu Producer.publish": via_kombu,
        }
        client = redis.Redis.from_url(server.url)

        def flush() -> None:
            client.delete(QUEUE)

        best = best_rounds(methods, rounds, flush)
        print(f"\nredis-server, {count} publishes per round, best of {rounds} rounds")
        print(f"{'method':<26}{'best':>10}{'msg/s':>10}")
        for name, seconds in best.items():
            print(f"{name:<26}{seconds:>9.3f}s{count / seconds:>10.0f}")
        gateway_rate, celery_rate, kombu_rate = (count / best[name] for name in methods)
        print(f"gateway / Celery send_task: {gateway_rate / celery_rate:.2f}x  (target >= 0.95x)")
        print(f"gateway / raw kombu:        {gateway_rate / kombu_rate:.2f}x  (stretch >= 0.8x)")
        print(f"Celery send_task / raw kombu: {celery_rate / kombu_rate:.2f}x")

        signalled = {"gateway.send_task": via_gateway, "app.send_task": via_celery}
        on = traced(lambda: best_rounds(signalled, rounds, flush))
        print("\nwith publish signals on (opentelemetry-instrumentation-celery, a producer span per send)")
        for name, seconds in on.items():
            print(
                f"{name:<26}{seconds:>9.3f}s{count / seconds:>10.0f}  ({best[name] / seconds:.2f}x of its rate without)"
            )
        print(f"gateway / Celery send_task, signals on: {on['app.send_task'] / on['gateway.send_task']:.2f}x")
        gateway.close()


def servicebus_figures() -> None:
    from model_engine_infra.testing.servicebus import FakeServiceBusNamespace, patch_kombu_servicebus

    config = InfraConfig(
        cloud_provider="azure", servicebus_namespace="bench-ns", celery_backend_protocol="redis", redis_host="r"
    )
    print("\nService Bus fake")
    for label, overrides in (("default pool (10)", {}), ("broker_pool_limit=0", {"broker_pool_limit": 0})):
        namespace = FakeServiceBusNamespace("bench-ns")
        with patch_kombu_servicebus(namespace):
            gateway = CeleryTaskQueueGateway.from_config(config, **overrides)
            declare_queue(gateway, "sb-q")
            gateway.send_task(TASK, "sb-q", args=ARGS)
            opened, clients = namespace.stats.connections_opened, namespace.stats.clients_created
            for _ in range(100):
                gateway.send_task(TASK, "sb-q", args=ARGS)
            print(
                f"{label:<22} 100 publishes after warm-up: "
                f"{namespace.stats.connections_opened - opened} connections, "
                f"{namespace.stats.clients_created - clients} clients opened"
            )
            if overrides:
                continue
            namespace.drop_connections()  # amqp:connection:forced
            retries, attempts = namespace.stats.sdk_retries, namespace.stats.send_attempts
            started = time.perf_counter()
            gateway.send_task(TASK, "sb-q", args=ARGS)
            print(
                f"{'':<22} first publish after a forced drop: {namespace.stats.sdk_retries - retries} retry, "
                f"{namespace.stats.send_attempts - attempts} send attempts, no error to the caller "
                f"({(time.perf_counter() - started) * 1000:.1f} ms here; the SDK's back-off is "
                f"{namespace.stats.backoff_seconds:.1f} s on the service)"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--count", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    redis_figures(args.count, args.rounds)
    servicebus_figures()


if __name__ == "__main__":
    main()
