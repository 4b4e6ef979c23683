"""Wire compatibility with llm-engine's workers: both directions, per broker, on real servers.

The other side is a stock Celery app and worker configured as upstream configures its own
(`upstream_celery.py`, written from upstream's settings, never imported). For each broker:

- our send -> their worker -> our ``get_task`` (through the llm-engine adapters, so the answers are
  upstream's: SUCCESS with ``status_code`` taken out of the result, FAILURE with its traceback);
- their send (a stock app) -> our queue delegate counts it -> their worker runs it -> our
  ``get_task`` reads the result their worker stored.

Redis on redis-server at 24 h (database 3, onprem's inference queue) and 1 h (database 0, onprem's
infra queue; gcp) with the cache URL on database 15, which the broker must not use; results in S3
on the moto server (onprem) or Redis database 1 (gcp). SQS on the moto server with S3 results. Service
Bus through the SDK-boundary fake (the worker runs in a thread of this process, as the fake lives
here) with results in Azurite. Worker processes run in their own process group, start within
`upstream_celery.READY_TIMEOUT` and are stopped (SIGTERM, then SIGKILL) in ``finally``.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
from pydantic import SecretStr

import upstream_celery as upstream
from model_engine_infra import build_infra
from model_engine_infra.compat import llm_engine
from model_engine_infra.compat.llm_engine import TaskStatus
from model_engine_infra.config import InfraConfig
from model_engine_infra.infra import Infra
from model_engine_infra.testing.servers import RunningServer

pytestmark = pytest.mark.integration

RESULT_TIMEOUT = 60.0


def wait_final(gateway: llm_engine.LLMEngineTaskQueueGateway, task_id: str) -> Any:
    deadline = time.monotonic() + RESULT_TIMEOUT
    while (answer := gateway.get_task(task_id)).status in (TaskStatus.PENDING, TaskStatus.STARTED):
        assert time.monotonic() < deadline, f"task {task_id} is still {answer.status.value}"
        time.sleep(0.1)
    return answer


Run = Callable[[Any], Any]


@pytest.fixture
def run() -> Iterator[Run]:
    """One event loop for the test: the Redis component's async pool binds to the loop that first uses it."""
    with asyncio.Runner() as runner:
        yield runner.run


@contextmanager
def infra_of(config: InfraConfig, run: Run, **kwargs: Any) -> Iterator[Infra]:
    infra = build_infra(config, **kwargs)
    try:
        yield infra
    finally:
        run(infra.aclose())


def waiting(infra: Infra, endpoint_id: str, run: Run) -> int:
    """What upstream's resource gateway reads: ``ApproximateNumberOfMessages`` or ``active_message_count``."""
    answer = run(llm_engine.queue_delegate(infra).get_queue_attributes(endpoint_id))
    if "Attributes" in answer:
        return int(answer["Attributes"]["ApproximateNumberOfMessages"])
    return int(answer["active_message_count"])


def create_queue(infra: Infra, endpoint_id: str, run: Run) -> tuple[str, str | None]:
    info = run(
        llm_engine.queue_delegate(infra).create_queue_if_not_exists(
            endpoint_id, "wire test", "wire", {"team": "ml"}, queue_message_timeout_seconds=300
        )
    )
    return info.queue_name, info.queue_url


def our_send_their_worker(gateway: llm_engine.LLMEngineTaskQueueGateway, queue: str, worker: Any) -> None:
    """Our two tasks (one succeeds, one fails) run by their worker; our get_task reads upstream's answers.

    Sent while the worker runs: a queue that is not an endpoint's (the builder's) exists once its worker
    declared it, and ``send_task`` never creates one.
    """
    with worker():
        ok = gateway.send_task(upstream.EXEC_FUNC, queue, args=upstream.predict_args({"args": {"prompt": "hi"}}))
        bad = gateway.send_task(upstream.PRE_LIRA, queue, args=upstream.predict_args({"fail": "model crashed"}))
        done, failed = wait_final(gateway, ok.task_id), wait_final(gateway, bad.task_id)
    assert (done.status, done.status_code) == (TaskStatus.SUCCESS, 200)
    assert done.result == {"result": {"echo": {"prompt": "hi"}, "arrival_type": "datetime"}}
    assert failed.status is TaskStatus.FAILURE
    assert "model crashed" in failed.result
    assert "RuntimeError: model crashed" in failed.traceback


def their_send_our_count(
    infra: Infra,
    gateway: llm_engine.LLMEngineTaskQueueGateway,
    endpoint_id: str,
    queue: str,
    app: Any,
    worker: Any,
    run: Run,
) -> None:
    """A stock app's task is counted by our delegate, run by their worker, and read by our get_task."""
    before = waiting(infra, endpoint_id, run)
    sent = app.send_task(upstream.EXEC_FUNC, args=upstream.predict_args({"args": [1, 2]}), queue=queue)
    assert waiting(infra, endpoint_id, run) == before + 1
    with worker():
        done = wait_final(gateway, sent.id)
        deadline = time.monotonic() + RESULT_TIMEOUT
        while waiting(infra, endpoint_id, run) != 0:  # acked after the result is stored
            assert time.monotonic() < deadline, "their worker did not take the task from our count"
            time.sleep(0.1)
    assert (done.status, done.status_code, done.result) == (
        TaskStatus.SUCCESS,
        200,
        {"result": {"echo": [1, 2], "arrival_type": "datetime"}},
    )


def new_endpoint() -> str:
    return "w" + uuid.uuid4().hex[:10]


# --- Redis -----------------------------------------------------------------------------------------------


@pytest.fixture
def aws_env(mei_moto_server: RunningServer, monkeypatch: pytest.MonkeyPatch) -> RunningServer:
    """Test credentials for every boto3 client; endpoints are passed explicitly except to stock kombu SQS."""
    for name, value in mei_moto_server.sdk_env.items():
        if name != "AWS_ENDPOINT_URL":
            monkeypatch.setenv(name, value)
    return mei_moto_server


def _bucket(moto: RunningServer) -> str:
    import boto3

    name = f"wire-{uuid.uuid4().hex[:10]}"
    boto3.client("s3", endpoint_url=moto.url, region_name="us-east-1").create_bucket(Bucket=name)
    return name


@contextmanager
def onprem_infra(redis: RunningServer, moto: RunningServer, run: Run) -> Iterator[tuple[Infra, str]]:
    bucket = _bucket(moto)
    config = InfraConfig(
        cloud_provider="onprem",
        cache_redis_onprem_url=SecretStr(f"redis://{redis.host}:{redis.port}/15"),  # the cache's db is not the broker's
        s3_bucket=bucket,
        s3_endpoint_url=moto.url,
        default_region="us-east-1",
    )
    with infra_of(config, run) as infra:
        yield infra, bucket


@pytest.mark.parametrize(("visibility", "which"), [("VISIBILITY_24H", "inference"), ("VISIBILITY_1H", "infra")])
def test_onprem_redis_both_directions(
    mei_redis_server: RunningServer, aws_env: RunningServer, tmp_path: Path, visibility: str, which: str, run: Run
) -> None:
    with onprem_infra(mei_redis_server, aws_env, run) as (infra, bucket):
        infra_gateway, inference_gateway = llm_engine.task_queue_gateways(infra)
        gateway = inference_gateway if which == "inference" else infra_gateway
        settings = upstream.UpstreamSettings(
            broker="redis",
            backend="s3",
            visibility=visibility,
            redis_host=mei_redis_server.host,
            redis_port=mei_redis_server.port,
            s3_bucket=bucket,
            s3_endpoint_url=aws_env.url,
        )
        endpoint_id = new_endpoint()
        queue, _ = create_queue(infra, endpoint_id, run)

        def worker() -> Any:
            return upstream.worker_process(settings, queue, tmp_path)

        our_send_their_worker(gateway, queue, worker)
        # the delegate counts the broker's databases: inference (3) and endpoint creation (0)
        their_send_our_count(infra, gateway, endpoint_id, queue, upstream.upstream_app(settings), worker, run)
        _assert_results_in_s3(aws_env, bucket)


def _assert_results_in_s3(moto: RunningServer, bucket: str) -> None:
    import boto3

    keys = [o["Key"] for o in boto3.client("s3", endpoint_url=moto.url).list_objects_v2(Bucket=bucket)["Contents"]]
    assert keys
    assert all(key.startswith("tmp/celery/celery-task-meta-") for key in keys), keys


def test_gcp_redis_both_directions(mei_redis_server: RunningServer, tmp_path: Path, run: Run) -> None:
    config = InfraConfig(
        cloud_provider="gcp",
        gcp_project_id="wire-project",
        docker_repo_prefix="us-docker.pkg.dev/wire-project/repo",
        cache_redis_gcp_url=SecretStr(f"redis://{mei_redis_server.host}:{mei_redis_server.port}/15"),
    )
    settings = upstream.UpstreamSettings(
        broker="redis", backend="redis", redis_host=mei_redis_server.host, redis_port=mei_redis_server.port
    )
    with infra_of(config, run) as infra:
        infra_gateway, inference_gateway = llm_engine.task_queue_gateways(infra)
        assert infra_gateway is inference_gateway  # gcp: one queue, Redis 1 h
        endpoint_id = new_endpoint()
        queue, _ = create_queue(infra, endpoint_id, run)

        def worker() -> Any:
            return upstream.worker_process(settings, queue, tmp_path)

        our_send_their_worker(inference_gateway, queue, worker)
        their_send_our_count(infra, inference_gateway, endpoint_id, queue, upstream.upstream_app(settings), worker, run)


# --- SQS ---------------------------------------------------------------------------------------------------


def test_sqs_both_directions(aws_env: RunningServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, run: Run) -> None:
    bucket = _bucket(aws_env)
    config = InfraConfig(
        cloud_provider="aws",
        default_region="us-east-1",
        s3_bucket=bucket,
        s3_endpoint_url=aws_env.url,
        sqs_endpoint_url=aws_env.url,
        redis_host="unused.invalid",  # the cache Redis the validation asks for on aws; Celery does not use it
    )
    with infra_of(config, run) as infra:
        infra_gateway, inference_gateway = llm_engine.task_queue_gateways(infra)
        assert infra_gateway is inference_gateway
        endpoint_id = new_endpoint()
        queue, url = create_queue(infra, endpoint_id, run)
        assert url is not None
        settings = upstream.UpstreamSettings(
            broker="sqs", backend="s3", s3_bucket=bucket, s3_endpoint_url=aws_env.url, sqs_queue_urls={queue: url}
        )
        endpoint_env = {"AWS_ENDPOINT_URL": aws_env.url}  # stock kombu SQS (upstream's sqs://) finds moto this way

        def worker() -> Any:
            return upstream.worker_process(settings, queue, tmp_path, env=endpoint_env)

        our_send_their_worker(inference_gateway, queue, worker)
        monkeypatch.setenv("AWS_ENDPOINT_URL", aws_env.url)  # for the stock producer app in this process
        producer = upstream.upstream_app(settings)
        try:
            their_send_our_count(infra, inference_gateway, endpoint_id, queue, producer, worker, run)
        finally:
            producer.close()
        _assert_results_in_s3(aws_env, bucket)


# --- Service Bus (fake) with results in Azurite ---------------------------------------------------------------


@contextmanager
def worker_thread(app: Any, queue: str) -> Iterator[Any]:
    """A stock worker in a thread (the Service Bus fake lives in this process): ready on entry, stopped on exit."""
    from celery.contrib.testing.worker import start_worker
    from kombu.connection import Connection

    real_drain: Callable[..., Any] = Connection.drain_events

    def short_drain(connection: Connection, **kwargs: Any) -> Any:  # stop in < 1 s, not Celery's 2 s cycles
        if kwargs.get("timeout") is not None:
            kwargs["timeout"] = min(kwargs["timeout"], 0.2)
        return real_drain(connection, **kwargs)

    with (
        mock.patch.object(Connection, "drain_events", short_drain),
        start_worker(
            app, pool="solo", perform_ping_check=False, queues=[queue], shutdown_timeout=15, use_eventloop=False
        ) as worker,
    ):
        yield worker


def test_servicebus_both_directions(
    mei_azurite_server: RunningServer, monkeypatch: pytest.MonkeyPatch, run: Run
) -> None:
    from azure.storage.blob import BlobServiceClient

    from model_engine_infra.testing.servicebus import FakeServiceBusNamespace, patch_kombu_servicebus

    monkeypatch.delenv("AZURE_STORAGE_CONNECTION_STRING", raising=False)  # our config alone must lead there
    namespace = FakeServiceBusNamespace("wire-ns", max_receive_wait=0.05)
    config = InfraConfig(
        cloud_provider="azure",
        servicebus_namespace=namespace.name,
        abs_account_name=mei_azurite_server.extra["account_name"],
        abs_account_key=SecretStr(mei_azurite_server.extra["account_key"]),
        abs_endpoint_url=mei_azurite_server.extra["blob_endpoint"],
        abs_container_name="artifacts",  # the artifacts' container: results go to Celery's "celery"
        redis_host="unused.invalid",
    )
    settings = upstream.UpstreamSettings(
        broker="servicebus",
        backend="abs",
        servicebus_namespace=namespace.name,
        abs_connection_string=mei_azurite_server.extra["connection_string"],
    )
    from model_engine_infra.queues.servicebus import ServiceBusQueueEndpointResourceDelegate

    # the provider's delegate, on the fake namespace
    delegate = ServiceBusQueueEndpointResourceDelegate(namespace.name, admin_client=namespace.admin_client())
    with patch_kombu_servicebus(namespace), infra_of(config, run, overrides={"queue_delegate": delegate}) as infra:
        infra_gateway, inference_gateway = llm_engine.task_queue_gateways(infra)
        assert infra_gateway is inference_gateway
        endpoint_id = new_endpoint()
        queue, _ = create_queue(infra, endpoint_id, run)
        app = upstream.upstream_app(settings)
        app.conf.broker_transport_options = {**app.conf.broker_transport_options, "polling_interval": 0.05}

        def worker() -> Any:
            return worker_thread(app, queue)

        our_send_their_worker(inference_gateway, queue, worker)
        their_send_our_count(infra, inference_gateway, endpoint_id, queue, app, worker, run)
    blobs = BlobServiceClient.from_connection_string(mei_azurite_server.extra["connection_string"])
    names = [blob.name for blob in blobs.get_container_client("celery").list_blobs()]
    assert names
    assert all(name.startswith("celery-task-meta-") for name in names), names
