"""A task sent through the gateway runs in a real Celery worker *process* and its result comes back, per broker.

Redis (redis-server, also with a password), SQS (the moto server, results in S3 on the same
server, SHA-256 on), and the local filesystem broker each run ``python -m
model_engine_infra.tasks.worker`` as a separate process, with Celery's event loop (pycurl on SQS).
Round trips through a worker *thread* on every broker, Service Bus's fake included, are the task-queue
conformance suite (`model_engine_infra.testing.conformance.tasks`, run on servers by
test_task_queue_servers.py); its `check_roundtrip` is used here too.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import pytest

from model_engine_infra import build_infra, load_config
from model_engine_infra.tasks.gateway import CeleryTaskQueueGateway
from model_engine_infra.testing.conformance.tasks import check_roundtrip
from model_engine_infra.testing.servers import RunningServer

pytestmark = pytest.mark.integration


READY_TIMEOUT = 120.0  # a busy 2-core machine imports Celery slowly


@contextmanager
def worker_process(
    tmp_path: Path, config_yaml: str, queue: str, *args: str, env: Mapping[str, str] | None = None
) -> Iterator[subprocess.Popen[bytes]]:
    """``python -m model_engine_infra.tasks.worker`` on ``queue``, stopped (SIGTERM) on exit."""
    config = tmp_path / "worker-config.yaml"
    config.write_text(config_yaml)
    ready = tmp_path / f"ready-{queue}"
    log = (tmp_path / f"worker-{queue}.log").open("wb")
    argv = [sys.executable, "-m", "model_engine_infra.tasks.worker", "--config", str(config), "--queues", queue]
    argv += ["--ready-file", str(ready), "--loglevel", "WARNING", *args]
    process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})})
    try:
        deadline = time.monotonic() + READY_TIMEOUT
        while not ready.exists():
            if process.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"worker did not start:\n{(tmp_path / f'worker-{queue}.log').read_text()}")
            time.sleep(0.02)
        yield process
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


def test_redis_roundtrip(mei_redis_server: RunningServer, tmp_path: Path) -> None:
    yaml = f"cloud_provider: onprem\nredis_host: {mei_redis_server.host}\nredis_port: {mei_redis_server.port}\n"
    yaml += "celery_backend_protocol: redis\n"  # onprem's default is S3 (llm-engine's); no MinIO here
    config = load_config(_write(tmp_path, yaml), env={})
    with build_infra(config) as infra, worker_process(tmp_path, yaml, "redis-roundtrip"):
        gateway = infra.task_queue
        assert isinstance(gateway, CeleryTaskQueueGateway)
        check_roundtrip(gateway, "redis-roundtrip")


def test_redis_roundtrip_with_password(tmp_path: Path) -> None:
    """AUTH through the Redis component's credential provider: no password in any broker URL."""
    from model_engine_infra.testing.servers import start_redis

    secret = "celery-s3cret"
    with start_redis(tmp_path / "redis", password=secret) as server:
        yaml = f"cloud_provider: onprem\nredis_host: {server.host}\nredis_port: {server.port}\n"
        yaml += "celery_backend_protocol: redis\n"  # no MinIO here
        yaml += "redis_enable_tls: false\n"  # an AUTH token alone would switch to TLS, as in the reference
        env = {"REDIS_AUTH_TOKEN": secret}
        config = load_config(_write(tmp_path, yaml), env=env)
        with build_infra(config) as infra, worker_process(tmp_path, yaml, "redis-auth", env=env):
            gateway = infra.task_queue
            assert isinstance(gateway, CeleryTaskQueueGateway)
            assert secret not in gateway.app.conf.broker_url
            assert secret not in repr(gateway)
            check_roundtrip(gateway, "redis-auth")


def test_sqs_roundtrip(mei_moto_server: RunningServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import boto3

    for name, value in mei_moto_server.sdk_env.items():
        if name != "AWS_ENDPOINT_URL":  # endpoints are passed explicitly, as production code would
            monkeypatch.setenv(name, value)
    boto3.client("s3", endpoint_url=mei_moto_server.url, region_name="us-east-1").create_bucket(Bucket="sqs-results")
    yaml = (
        "cloud_provider: aws\ndefault_region: us-east-1\ns3_bucket: sqs-results\n"
        f"s3_endpoint_url: {mei_moto_server.url}\ncelery_enable_sha256: true\n"
        "redis_host: unused.invalid\n"  # the cache Redis the validation asks for; Celery does not use it
    )
    config = load_config(_write(tmp_path, yaml), env={})
    gateway = CeleryTaskQueueGateway.from_config(config, sqs_endpoint_url=mei_moto_server.url)
    try:
        with worker_process(tmp_path, yaml, "sqs-roundtrip", "--sqs-endpoint-url", mei_moto_server.url):
            check_roundtrip(gateway, "sqs-roundtrip")
    finally:
        gateway.close()
    sqs = boto3.client("sqs", endpoint_url=mei_moto_server.url, region_name="us-east-1")
    url = sqs.get_queue_url(QueueName="sqs-roundtrip")["QueueUrl"]
    assert sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["VisibilityTimeout"])["Attributes"] == {
        "VisibilityTimeout": "3600"
    }


def test_local_roundtrip(tmp_path: Path) -> None:
    yaml = f"cloud_provider: local\nlocal_data_dir: {tmp_path / 'data'}\n"
    config = load_config(_write(tmp_path, yaml), env={})
    with build_infra(config) as infra, worker_process(tmp_path, yaml, "local-roundtrip"):
        check_roundtrip(infra.task_queue, "local-roundtrip")  # type: ignore[arg-type]


def _write(tmp_path: Path, yaml: str) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(yaml)
    return path
