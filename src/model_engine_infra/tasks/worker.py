"""Run a Celery worker for a configuration: demos, tests, and a local stand-in for an endpoint.

    python -m model_engine_infra.tasks.worker --config PATH --queues Q1,Q2 [--include module]

The worker uses the same `celery_app()` as the gateway, so both agree on broker, encoding and
result backend. Gossip, mingle, heartbeats and remote control are off: they need broker features
(fanout) that SQS and Service Bus lack, and they slow the start down. ``--ready-file`` is touched
once the worker consumes, so a parent process can wait for it instead of sleeping.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .settings import RedisBroker

if TYPE_CHECKING:
    from celery import Celery

    from ..config.model import InfraConfig

DEMO_TASKS = "model_engine_infra.tasks.demo_tasks"


def worker_app(
    config: InfraConfig,
    *,
    include: Sequence[str] = (),
    redis: RedisBroker | str | None = None,
    sqs_endpoint_url: str | None = None,
    task_visibility: str | None = None,
    **overrides: Any,
) -> Celery:
    """The worker's app: the config's broker and backend, with the demo tasks and ``include``.

    ``task_visibility`` picks the queue's visibility (on Redis its database), as llm-engine's forwarder
    ``--task-visibility`` does; unset is the inference queue's (on-prem Redis: 24 h).
    """
    from ..brokers import broker_for
    from .app import celery_app
    from .settings import default_backend_protocol

    unit = broker_for(config)
    if redis is None and ((unit is not None and unit.uses_redis()) or default_backend_protocol(config) == "redis"):
        from ..infra import build_infra
        from .gateway import redis_source

        redis = redis_source(config, build_infra(config))
    modules = [DEMO_TASKS, *(m for m in include if m != DEMO_TASKS)]
    return celery_app(
        "model-engine-infra-worker",
        config=config,
        redis=redis,
        sqs_endpoint_url=sqs_endpoint_url,
        task_visibility=task_visibility,
        include=modules,
        **overrides,
    )


def worker_argv(
    queues: Sequence[str],
    *,
    pool: str = "threads",
    concurrency: int = 2,
    loglevel: str = "INFO",
    hostname: str | None = None,
) -> list[str]:
    """Arguments for ``app.worker_main``: fast start, no fanout features."""
    argv = [
        "worker",
        "--queues",
        ",".join(queues),
        "--pool",
        pool,
        "--concurrency",
        str(concurrency),
        "--loglevel",
        loglevel,
        "--without-gossip",
        "--without-mingle",
        "--without-heartbeat",
    ]
    if hostname:
        argv += ["--hostname", hostname]
    return argv


def on_ready(path: str | os.PathLike[str]) -> None:
    """Touch ``path`` when the worker starts consuming."""
    from celery.signals import worker_ready

    def touch(**_: Any) -> None:
        Path(path).write_text(str(os.getpid()))

    worker_ready.connect(touch, weak=False)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m model_engine_infra.tasks.worker", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--config", help="config YAML (default: DEPLOY_SERVICE_CONFIG_PATH, then env only)")
    parser.add_argument("--queues", "-Q", required=True, help="comma-separated queue names to consume")
    parser.add_argument("--include", "-I", action="append", default=[], help="extra task module (repeatable)")
    parser.add_argument("--pool", default="threads", choices=("threads", "solo", "prefork"))
    parser.add_argument("--concurrency", "-c", type=int, default=2)
    parser.add_argument("--loglevel", "-l", default="INFO")
    parser.add_argument("--hostname", "-n", default=None)
    parser.add_argument("--ready-file", default=None, help="file to write the pid to once consuming")
    parser.add_argument("--redis-url", default=None, help="Redis broker/backend URL (default: the config's)")
    parser.add_argument("--sqs-endpoint-url", default=None, help="SQS endpoint (tests: the moto server)")
    parser.add_argument(
        "--task-visibility",
        default=None,
        help="VISIBILITY_1M/10M/1H/24H (on Redis: its database); default: inference's",
    )
    args = parser.parse_args(argv)

    from ..config import load_config

    config = load_config(args.config)
    app = worker_app(
        config,
        include=args.include,
        redis=args.redis_url,
        sqs_endpoint_url=args.sqs_endpoint_url,
        task_visibility=args.task_visibility,
    )
    if args.ready_file:
        on_ready(args.ready_file)
    queues = [q for q in args.queues.split(",") if q]
    app.worker_main(
        worker_argv(
            queues, pool=args.pool, concurrency=args.concurrency, loglevel=args.loglevel, hostname=args.hostname
        )
    )


if __name__ == "__main__":
    main()
