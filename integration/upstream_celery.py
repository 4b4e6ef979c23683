"""A stock Celery app and worker configured as llm-engine configures its own — written from the facts
of its ``core/celery/app.py`` and ``inference/forwarding/celery_forwarder.py``, not imported.

What upstream's ``celery_app()`` sets, and so what this sets:

- settings: ``task_acks_late``, ``task_reject_on_worker_lost``, ``worker_prefetch_multiplier=1``,
  json results and ``accept_content=("json",)``, ``task_remote_tracebacks``, ``task_time_limit`` =
  the visibility timeout, ``broker_transport_options["visibility_timeout"]`` = the visibility;
- Redis broker: ``redis://HOST:PORT/DB`` where DB is the visibility (1H 0, 10M 1, 1M 2, 24H 3);
- SQS broker: ``sqs://`` with ``region``, ``wait_time_seconds=0``, ``polling_interval=5`` and, in the
  forwarder, ``predefined_queues={queue: {"url": ...}}`` (tests poll every second, not five);
- Service Bus broker: ``azureservicebus://DefaultAzureCredential@NS.servicebus.windows.net`` with
  ``uamqp_keep_alive_interval=30``, ``retry_total=3``, ``retry_backoff_factor=0.8``,
  ``retry_backoff_max=120`` and connection retry on;
- results: ``redis`` at DB 1 of the broker's host; ``s3`` in ``s3_bucket`` under ``tmp/celery/``
  (Celery's key, ``celery-task-meta-<id>``); ``abs`` in the account's ``celery`` container (Celery's
  default) under Celery's key. Here the S3 and blob endpoints point at moto and Azurite.

The tasks are the forwarder's: ``ml_serve.celery_service.exec_func(payload, arrival_timestamp)``
(``track_started``) and its pre-LIRA alias; a payload ``{"fail": "..."}`` raises. A worker runs as
``python upstream_celery.py`` with its settings in ``UPSTREAM_CELERY`` (JSON), writing a ready file
from Celery's ``worker_ready`` signal; `worker_process` starts, waits for and stops one.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from celery import Celery

EXEC_FUNC = "ml_serve.celery_service.exec_func"
PRE_LIRA = "hosted_model_inference.inference.async_inference.tasks.predict"
VISIBILITY_DB = {"VISIBILITY_1H": 0, "VISIBILITY_10M": 1, "VISIBILITY_1M": 2, "VISIBILITY_24H": 3}
VISIBILITY_SECONDS = {"VISIBILITY_1H": 3600, "VISIBILITY_10M": 600, "VISIBILITY_1M": 60, "VISIBILITY_24H": 86400}
READY_TIMEOUT = 60.0
STOP_GRACE = 15.0


@dataclass
class UpstreamSettings:
    """What upstream reads from its config and environment to build one app."""

    broker: str  # redis | sqs | servicebus
    backend: str  # redis | s3 | abs
    visibility: str = "VISIBILITY_1H"
    redis_host: str = "127.0.0.1"
    redis_port: int = 6379
    region: str = "us-east-1"
    s3_bucket: str = "llm-engine"
    s3_endpoint_url: str | None = None  # moto / MinIO; upstream's S3 backend reads s3_endpoint_url too
    servicebus_namespace: str = "llm-engine-sb"
    abs_account_name: str = "devstoreaccount1"
    abs_connection_string: str | None = None  # Azurite; production: DefaultAzureCredential
    sqs_queue_urls: dict[str, str] = field(default_factory=dict)  # the forwarder's predefined_queues
    sqs_polling_interval: float = 1.0  # upstream: 5


def broker_url(settings: UpstreamSettings) -> tuple[str, dict[str, Any]]:
    options: dict[str, Any] = {"visibility_timeout": VISIBILITY_SECONDS[settings.visibility]}
    if settings.broker == "redis":
        db = VISIBILITY_DB[settings.visibility]
        return f"redis://{settings.redis_host}:{settings.redis_port}/{db}", options
    if settings.broker == "sqs":
        options.update(region=settings.region, wait_time_seconds=0, polling_interval=settings.sqs_polling_interval)
        if settings.sqs_queue_urls:
            options["predefined_queues"] = {name: {"url": url} for name, url in settings.sqs_queue_urls.items()}
        return "sqs://", options
    if settings.broker == "servicebus":
        options.update(uamqp_keep_alive_interval=30, retry_total=3, retry_backoff_factor=0.8, retry_backoff_max=120)
        host = f"{settings.servicebus_namespace}.servicebus.windows.net"
        return f"azureservicebus://DefaultAzureCredential@{host}", options
    raise ValueError(f"unknown broker {settings.broker!r}")


def backend_conf(settings: UpstreamSettings) -> dict[str, Any]:
    if settings.backend == "redis":
        return {"result_backend": f"redis://{settings.redis_host}:{settings.redis_port}/1"}
    if settings.backend == "s3":
        conf: dict[str, Any] = {
            "result_backend": "s3://",
            "s3_bucket": settings.s3_bucket,
            "s3_base_path": "tmp/celery/",
            "s3_region": settings.region,
        }
        if settings.s3_endpoint_url:
            conf["s3_endpoint_url"] = settings.s3_endpoint_url
        return conf
    if settings.backend == "abs":
        connection = (
            settings.abs_connection_string
            or f"DefaultAzureCredential@https://{settings.abs_account_name}.blob.core.windows.net"
        )
        return {"result_backend": f"azureblockblob://{connection}"}  # container: Celery's default, "celery"
    raise ValueError(f"unknown backend {settings.backend!r}")


def upstream_app(settings: UpstreamSettings) -> Celery:
    url, transport_options = broker_url(settings)
    seconds = VISIBILITY_SECONDS[settings.visibility]
    changes: dict[str, Any] = {
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "task_track_started": False,
        "task_time_limit": seconds,
        "task_soft_time_limit": None,
        "task_remote_tracebacks": True,
        "worker_prefetch_multiplier": 1,
        "result_serializer": "json",
        "result_compression": None,
        "accept_content": ("json",),
        "broker_transport_options": transport_options,
        **backend_conf(settings),
    }
    if settings.broker == "servicebus":
        changes.update(broker_connection_retry_on_startup=True, broker_connection_retry=True)
    backend = changes.pop("result_backend")
    app = Celery(None, broker=url, backend=backend, changes=changes, set_as_current=False)
    _register_forwarder_tasks(app)
    return app


def exec_func(payload: dict[str, Any], arrival_timestamp: Any, *ignored_args: Any, **kwargs: Any) -> dict[str, Any]:
    """The forwarder's task: the model's answer with a ``status_code`` beside it; ``{"fail": ...}`` raises."""
    if "fail" in payload:
        raise RuntimeError(payload["fail"])
    received = type(arrival_timestamp).__name__  # kombu's json gives a datetime back
    return {"result": {"echo": payload.get("args"), "arrival_type": received}, "status_code": 200}


def exec_func_pre_lira(payload: dict[str, Any], arrival_timestamp: Any, *args: Any, **kwargs: Any) -> Any:
    return exec_func(payload, arrival_timestamp, *args, **kwargs)


def _register_forwarder_tasks(app: Celery) -> None:
    """The same functions on every app (Celery warns when one name maps to two callables in a process)."""
    app.task(name=EXEC_FUNC, track_started=True)(exec_func)
    app.task(name=PRE_LIRA, track_started=True)(exec_func_pre_lira)


def predict_args(payload: Mapping[str, Any]) -> list[Any]:
    """The arguments upstream's async inference gateway sends: the request, then the arrival time."""
    return [dict(payload), datetime.now()]


# --- the worker process --------------------------------------------------------------------------


@contextlib.contextmanager
def worker_process(
    settings: UpstreamSettings, queue: str, folder: Path, *, env: Mapping[str, str] | None = None
) -> Iterator[subprocess.Popen[bytes]]:
    """A stock worker on ``queue`` in its own process group: ready (``worker_ready``) before yield, stopped after.

    Stop: SIGTERM to the group (Celery's warm shutdown), SIGKILL after `STOP_GRACE` s; the log is in ``folder``.
    """
    folder.mkdir(parents=True, exist_ok=True)
    ready = folder / f"ready-{queue}-{time.monotonic_ns()}"
    log_path = folder / f"upstream-worker-{queue}.log"
    child_env = {**os.environ, **(env or {}), "UPSTREAM_CELERY": json.dumps(asdict(settings))}
    with log_path.open("ab") as log:
        process = subprocess.Popen(
            [sys.executable, __file__, queue, str(ready)],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=child_env,
            start_new_session=True,  # its own group: the prefork children stop with it
        )
    try:
        deadline = time.monotonic() + READY_TIMEOUT
        while not ready.exists():
            if process.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"the upstream-configured worker did not start:\n{log_path.read_text()[-4000:]}")
            time.sleep(0.05)
        yield process
    finally:
        _stop_group(process)


def _stop_group(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=STOP_GRACE)
        except subprocess.TimeoutExpired:
            pass
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)  # stragglers of the group we created
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=STOP_GRACE)


def _main(queue: str, ready_file: str) -> None:
    from celery.signals import worker_ready

    settings = UpstreamSettings(**json.loads(os.environ["UPSTREAM_CELERY"]))
    app = upstream_app(settings)

    @worker_ready.connect(weak=False)  # type: ignore[untyped-decorator,misc]
    def mark_ready(**kwargs: Any) -> None:
        Path(ready_file).write_text("ready")

    # as the forwarder starts it: one queue, prefork, fair scheduling (concurrency 1 here)
    worker = app.Worker(queues=[queue], concurrency=1, loglevel="INFO", optimization="fair")
    worker.start()


if __name__ == "__main__":
    _main(sys.argv[1], sys.argv[2])
