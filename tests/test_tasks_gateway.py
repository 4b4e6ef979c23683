"""CeleryTaskQueueGateway without a network: message shape, size limits, errors, SHA-256, wiring."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

from model_engine_infra import build_infra
from model_engine_infra.config import InfraConfig
from model_engine_infra.errors import BrokerUnavailableError, MessageTooLargeError
from model_engine_infra.tasks import BrokerType, TaskStatus
from model_engine_infra.tasks.app import celery_app, celery_conf
from model_engine_infra.tasks.gateway import CeleryTaskQueueGateway
from model_engine_infra.testing.queues import declare_queue
from model_engine_infra.testing.servers import free_port

AZURE = InfraConfig(
    cloud_provider="azure", servicebus_namespace="ns", celery_backend_protocol="redis", redis_host="127.0.0.1"
)
AWS = InfraConfig(cloud_provider="aws", celery_backend_protocol="redis", redis_host="127.0.0.1")


def no_connection(gateway: CeleryTaskQueueGateway) -> None:
    """Make any attempt to reach the broker fail the test."""

    def refuse(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("the gateway tried to reach the broker")

    gateway.app.connection_for_write = refuse


# --- size limits ---------------------------------------------------------------------------------


@pytest.mark.parametrize("config", [AZURE, AWS], ids=["servicebus", "sqs"])
def test_oversize_payload_refused_before_sending(config: InfraConfig) -> None:
    gateway = CeleryTaskQueueGateway.from_config(config)
    no_connection(gateway)
    with pytest.raises(MessageTooLargeError, match=r"over its limit of 262144 bytes") as err:
        gateway.send_task("tasks.predict", "q1", args=[{"prompt": "x" * 300_000}])
    assert "q1" in str(err.value)


def test_sqs_counts_its_double_base64() -> None:
    """kombu base64-encodes the body, then SQS base64-encodes the envelope: 150 KB of JSON is too much."""
    gateway = CeleryTaskQueueGateway.from_config(AWS)
    no_connection(gateway)
    with pytest.raises(MessageTooLargeError):
        gateway.send_task("tasks.predict", "q1", args=["x" * 150_000])


def test_servicebus_counts_escaping() -> None:
    """Quotes double inside the envelope: 140,000 of them do not fit in 256 KB."""
    gateway = CeleryTaskQueueGateway.from_config(AZURE)
    no_connection(gateway)
    with pytest.raises(MessageTooLargeError):
        gateway.send_task("tasks.predict", "q1", kwargs={"prompt": '"' * 140_000})


def test_no_limit_on_redis() -> None:
    broker, _ = celery_conf(InfraConfig(cloud_provider="onprem", redis_host="r"))
    assert broker.max_message_bytes is None


def test_limit_can_be_set() -> None:
    gateway = CeleryTaskQueueGateway(celery_app("t", config=AZURE), celery_conf(AZURE)[0], max_message_bytes=64 * 1024)
    no_connection(gateway)
    with pytest.raises(MessageTooLargeError, match="65536"):
        gateway.send_task("tasks.predict", "q1", args=["x" * 70_000])


# --- the message itself --------------------------------------------------------------------------


@pytest.fixture
def local_gateway(tmp_path: Path) -> Iterator[CeleryTaskQueueGateway]:
    """A gateway on the local provider: kombu's filesystem broker and file results under tmp_path."""
    gateway = CeleryTaskQueueGateway.from_config(
        InfraConfig(cloud_provider="local", local_data_dir=str(tmp_path)),
        include=["model_engine_infra.tasks.demo_tasks"],
    )
    yield gateway
    gateway.close()


def drain(gateway: CeleryTaskQueueGateway, queue: str) -> list[Any]:
    with gateway.app.connection_for_read() as conn:
        simple = conn.SimpleQueue(queue)
        messages = []
        while True:
            try:
                message = simple.get(block=False)
            except simple.Empty:
                return messages
            message.ack()
            messages.append(message)


def test_message_matches_celerys_own(local_gateway: CeleryTaskQueueGateway) -> None:
    app = local_gateway.app
    declare_queue(local_gateway, "shape-q")
    sent = local_gateway.send_task("tasks.predict", "shape-q", args=[{"p": 1}], kwargs={"k": "v"}, expires=60)
    app.send_task("tasks.predict", args=[{"p": 1}], kwargs={"k": "v"}, queue="shape-q", expires=60)
    ours, celerys = drain(local_gateway, "shape-q")
    assert set(ours.headers) == set(celerys.headers)
    assert ours.headers["id"] == ours.headers["root_id"] == sent.task_id
    assert ours.headers["task"] == "tasks.predict"
    assert ours.headers["argsrepr"] == celerys.headers["argsrepr"]
    assert ours.headers["kwargsrepr"] == celerys.headers["kwargsrepr"]
    assert (
        ours.decode()
        == celerys.decode()
        == [[{"p": 1}], {"k": "v"}, dict.fromkeys(("callbacks", "errbacks", "chain", "chord"))]
    )
    assert ours.content_type == celerys.content_type == "application/json"
    assert ours.properties["correlation_id"] == sent.task_id
    expires = datetime.fromisoformat(ours.headers["expires"])
    assert 50 < (expires - datetime.now(timezone.utc)).total_seconds() <= 60


def test_long_arguments_are_cut_in_the_repr(local_gateway: CeleryTaskQueueGateway) -> None:
    declare_queue(local_gateway, "repr-q")
    local_gateway.send_task("tasks.predict", "repr-q", args=["y" * 5000])
    (message,) = drain(local_gateway, "repr-q")
    assert len(message.headers["argsrepr"]) == 1024
    assert message.headers["argsrepr"].endswith("...")
    assert message.decode()[0] == ["y" * 5000]  # the payload itself is whole


def test_a_celery_worker_runs_gateway_tasks(local_gateway: CeleryTaskQueueGateway) -> None:
    from model_engine_infra.testing.celery_worker import worker_thread

    app = local_gateway.app
    declare_queue(local_gateway, "work-q")
    ok = local_gateway.send_task("model_engine_infra.demo.predict", "work-q", args=[{"prompt": "one two"}])
    bad = local_gateway.send_task("model_engine_infra.demo.fail", "work-q", args=["broken"])
    with worker_thread(app, queues=["work-q"]):
        deadline = time.monotonic() + 60
        while local_gateway.get_task(bad.task_id).status is TaskStatus.PENDING:
            assert time.monotonic() < deadline, "the worker did not run the tasks"
            time.sleep(0.02)
    done = local_gateway.get_task(ok.task_id)
    assert done.status is TaskStatus.SUCCESS
    assert done.result == {"output": "two one", "num_prompt_tokens": 2, "model": "demo"}
    failed = local_gateway.get_task(bad.task_id)
    assert failed.status is TaskStatus.FAILURE
    assert failed.result == "ValueError: broken"
    assert failed.traceback is not None
    assert "ValueError: broken" in failed.traceback


def test_unknown_task_is_pending(local_gateway: CeleryTaskQueueGateway) -> None:
    state = local_gateway.get_task("no-such-task")
    assert state.status is TaskStatus.PENDING
    assert state.result is None
    assert state.traceback is None


def test_one_producer_reused(local_gateway: CeleryTaskQueueGateway) -> None:
    made: list[object] = []
    original = local_gateway.app.connection_for_write

    def counting(*args: Any, **kwargs: Any) -> Any:
        made.append(object())
        return original(*args, **kwargs)

    declare_queue(local_gateway, "reuse-q")
    local_gateway.app.connection_for_write = counting
    for _ in range(50):
        local_gateway.send_task("tasks.predict", "reuse-q", args=[1])
    assert len(made) == 1
    assert len(drain(local_gateway, "reuse-q")) == 50


def test_threads_share_at_most_pool_limit_connections(local_gateway: CeleryTaskQueueGateway) -> None:
    import threading

    made: list[object] = []
    original = local_gateway.app.connection_for_write
    lock = threading.Lock()

    def counting(*args: Any, **kwargs: Any) -> Any:
        with lock:
            made.append(object())
        return original(*args, **kwargs)

    declare_queue(local_gateway, "threads-q")
    local_gateway.app.connection_for_write = counting
    ids: list[str] = []

    def send() -> None:
        for _ in range(25):
            task_id = local_gateway.send_task("tasks.predict", "threads-q", args=[1]).task_id
            with lock:
                ids.append(task_id)

    threads = [threading.Thread(target=send) for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert 1 <= len(made) <= local_gateway.app.conf.broker_pool_limit == 10
    assert sorted(m.headers["id"] for m in drain(local_gateway, "threads-q")) == sorted(ids)


# --- errors --------------------------------------------------------------------------------------


def test_broker_down_after_retries() -> None:
    port = free_port()  # nothing listens there
    gateway = CeleryTaskQueueGateway.from_config(
        InfraConfig(cloud_provider="onprem", celery_backend_protocol="redis"),
        redis=f"redis://:hunter2@127.0.0.1:{port}/0",
    )
    started = time.monotonic()
    with pytest.raises(BrokerUnavailableError, match=r"unreachable after 2 attempt\(s\)") as err:  # 1 + redis_retries
        gateway.send_task("tasks.predict", "q1", args=[1])
    assert time.monotonic() - started < 10
    assert "hunter2" not in str(err.value)
    assert err.value.__cause__ is not None
    assert "hunter2" not in repr(gateway)


def test_result_backend_down() -> None:
    port = free_port()
    gateway = CeleryTaskQueueGateway.from_config(
        InfraConfig(cloud_provider="onprem", celery_backend_protocol="redis"),
        redis=f"redis://127.0.0.1:{port}/0",
        redis_socket_timeout=0.5,
        redis_backend_health_check_interval=0,
        result_backend_transport_options={"retry_policy": {"max_retries": 0}},
    )
    with pytest.raises(BrokerUnavailableError, match="result backend"):
        gateway.get_task("some-id")


async def test_sqs_send_to_a_deleted_queue_is_queue_not_found(monkeypatch: pytest.MonkeyPatch) -> None:
    """After the endpoint's queue is deleted, sending names the queue in a typed error, not botocore's."""
    from moto import mock_aws

    from model_engine_infra.errors import QueueError, QueueNotFoundError
    from model_engine_infra.queues.sqs import SQSQueueEndpointResourceDelegate

    aws_env = {"AWS_ACCESS_KEY_ID": "t", "AWS_SECRET_ACCESS_KEY": "t", "AWS_DEFAULT_REGION": "us-east-1"}
    for name, value in aws_env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    with mock_aws():
        config = InfraConfig(cloud_provider="aws", celery_backend_protocol="redis", redis_host="127.0.0.1")
        gateway = CeleryTaskQueueGateway.from_config(config)
        delegate = SQSQueueEndpointResourceDelegate(region="us-east-1")
        info = await delegate.create_queue_if_not_exists("gone", "n", "me", {}, 60)
        gateway.send_task("tasks.predict", info.queue_name, args=[0])
        await delegate.delete_queue("gone")
        with pytest.raises(QueueNotFoundError, match=info.queue_name) as err:
            gateway.send_task("tasks.predict", info.queue_name, args=[1])
        assert "not sent" in str(err.value)
        assert isinstance(err.value, QueueError)
        assert type(err.value.__cause__).__name__ == "QueueDoesNotExist"


# --- SHA-256 -------------------------------------------------------------------------------------


def _called_by_moto() -> bool:
    """moto plays the service: S3's ETag *is* an MD5 computed by the server, not by us."""
    frame = sys._getframe(2)
    while frame is not None:
        if f"{os.sep}moto{os.sep}" in frame.f_code.co_filename:
            return True
        frame = frame.f_back  # type: ignore[assignment]
    return False


@pytest.fixture
def forbid_md5_sha1(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Any MD5 or SHA-1 computed on the client side fails the test (and is recorded)."""
    import botocore.httpchecksum

    used: list[str] = []

    def guard(name: str, real: Any) -> Any:
        def checked(*args: Any, **kwargs: Any) -> Any:
            if _called_by_moto():
                return real(*args, **kwargs)
            used.append(name)
            raise AssertionError(f"{name} used")

        return checked

    real_new = hashlib.new

    def new(name: str, *args: Any, **kwargs: Any) -> Any:
        if name.lower().replace("-", "") in ("md5", "sha1") and not _called_by_moto():
            used.append(name)
            raise AssertionError(f"{name} used")
        return real_new(name, *args, **kwargs)

    monkeypatch.setattr(hashlib, "md5", guard("md5", hashlib.md5))
    monkeypatch.setattr(hashlib, "sha1", guard("sha1", hashlib.sha1))
    monkeypatch.setattr(hashlib, "new", new)
    monkeypatch.setattr(botocore.httpchecksum, "sha1", guard("sha1", botocore.httpchecksum.sha1))
    return used


def test_sha256_everywhere(forbid_md5_sha1: list[str]) -> None:
    import boto3
    from moto import mock_aws

    with mock_aws():
        s3 = boto3.client("s3", region_name="us-east-1")
        s3.create_bucket(Bucket="results")
        config = InfraConfig(
            cloud_provider="aws", s3_bucket="results", celery_enable_sha256=True, celery_backend_protocol="s3"
        )
        gateway = CeleryTaskQueueGateway.from_config(config)
        app = gateway.app
        assert app.conf.security_digest == "sha256"
        sent: list[dict[str, str]] = []
        client = app.backend._s3_resource.meta.client
        client.meta.events.register("before-send.s3.PutObject", lambda request, **_: sent.append(dict(request.headers)))

        app.backend.store_result("task-1", {"answer": 42}, "SUCCESS")
        state = gateway.get_task("task-1")

        assert state.status is TaskStatus.SUCCESS
        assert state.result == {"answer": 42}
        (headers,) = sent
        lowered = {name.lower(): bytes(value).decode() for name, value in headers.items()}
        assert lowered["x-amz-sdk-checksum-algorithm"] == "SHA256"
        # botocore sends the checksum in the header or, streaming, in the trailer it announces
        assert "x-amz-checksum-sha256" in lowered or lowered["x-amz-trailer"] == "x-amz-checksum-sha256"
        assert "content-md5" not in lowered
        assert not [n for n in lowered if n.startswith("x-amz-checksum-") and n != "x-amz-checksum-sha256"]
        head = s3.head_object(Bucket="results", Key="tmp/celery/celery-task-meta-task-1", ChecksumMode="ENABLED")
        assert "ChecksumSHA256" in head
    assert forbid_md5_sha1 == []


def test_without_sha256_no_checksum_algorithm_is_forced() -> None:
    import boto3
    from moto import mock_aws

    with mock_aws():
        boto3.client("s3", region_name="us-east-1").create_bucket(Bucket="results")
        app = celery_app("t", config=InfraConfig(cloud_provider="aws", s3_bucket="results"))
        sent: list[dict[str, str]] = []
        app.backend._s3_resource.meta.client.meta.events.register(
            "before-send.s3.PutObject", lambda request, **_: sent.append(dict(request.headers))
        )
        app.backend.store_result("task-2", 1, "SUCCESS")
        algorithm = {name.lower(): bytes(value).decode() for name, value in sent[0].items()}.get(
            "x-amz-sdk-checksum-algorithm"
        )
        assert algorithm != "SHA256"  # botocore's default (CRC32), not forced


# --- wiring --------------------------------------------------------------------------------------


def test_infra_builds_one_gateway(tmp_path: Path) -> None:
    config = InfraConfig(cloud_provider="onprem", redis_host="127.0.0.1", celery_backend_protocol="redis")
    infra = build_infra(config)
    gateway = infra.task_queue
    assert isinstance(gateway, CeleryTaskQueueGateway)
    assert gateway.broker.broker_type is BrokerType.REDIS_24H
    assert infra.task_queue is gateway


def test_importing_tasks_imports_no_celery() -> None:
    code = (
        "import sys, model_engine_infra.tasks; assert not {'celery', 'kombu'} & set(sys.modules), sorted(sys.modules)"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
