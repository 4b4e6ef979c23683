"""Every adapter method of `model_engine_infra.compat.llm_engine`, with the shapes upstream's callers read.

The adapters sit on a `fake_infra` per provider (moto SQS and S3, the Service Bus fake, fakeredis,
local disk, the recording task queue, the in-memory registry); the contract suites in
tests/test_conformance_llm_engine.py runs the same adapters through the conformance suites.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pydantic
import pytest

from model_engine_infra.compat import llm_engine
from model_engine_infra.compat.llm_engine import QueueInfo, TaskStatus
from model_engine_infra.errors import (
    BrokerUnavailableError,
    ImageBuildNotSupportedError,
    ImageNotFoundError,
    ObjectNotFoundError,
    QueueNotFoundError,
)
from model_engine_infra.tasks.base import SentTask, TaskState
from model_engine_infra.tasks.base import TaskStatus as NativeStatus
from model_engine_infra.testing.fakes import FakeInfra, fake_infra

LABELS = {"team": "ml", "product": "demo", "priority": 3}


@pytest.fixture
def infra_for(tmp_path: Path) -> Iterator[Any]:
    with contextlib.ExitStack() as stack:

        def make(provider: str) -> FakeInfra:
            return stack.enter_context(fake_infra(provider, tmp_path / provider))

        yield make


async def _create(delegate: llm_engine.LLMEngineQueueDelegate, endpoint_id: str) -> QueueInfo:
    result: QueueInfo = await delegate.create_queue_if_not_exists(
        endpoint_id=endpoint_id,
        endpoint_name="demo",
        endpoint_created_by="alice",
        endpoint_labels=LABELS,
        queue_message_timeout_seconds=120,
    )
    return result


# --- queue delegate ------------------------------------------------------------------------------


def test_endpoint_id_to_queue_name_is_static() -> None:
    assert llm_engine.LLMEngineQueueDelegate.endpoint_id_to_queue_name("abc") == "launch-endpoint-id-abc"


async def test_sqs_shape_is_boto3s(infra_for: Any) -> None:
    infra = infra_for("aws")
    delegate = llm_engine.queue_delegate(infra)
    assert delegate.shape == "sqs"
    name, url = await _create(delegate, "e1")
    assert name == "launch-endpoint-id-e1"
    assert url is not None
    assert url.endswith("/launch-endpoint-id-e1")
    assert isinstance(await _create(delegate, "e1"), tuple)
    attributes = await delegate.get_queue_attributes("e1")
    assert set(attributes) == {"Attributes"}
    assert attributes["Attributes"]["ApproximateNumberOfMessages"] == "0"
    assert attributes["Attributes"]["VisibilityTimeout"] == "120"
    assert "QueueUrl" not in attributes["Attributes"]
    assert "Tags" not in attributes["Attributes"]
    await delegate.delete_queue("e1")
    with pytest.raises(QueueNotFoundError):
        await delegate.get_queue_attributes("e1")
    await delegate.delete_queue("e1")  # a missing queue is a no-op, as upstream


async def test_sqs_counts_visible_messages_as_approximate_number(infra_for: Any) -> None:
    import boto3

    infra = infra_for("aws")
    delegate = llm_engine.queue_delegate(infra)
    _, url = await _create(delegate, "e2")
    client = boto3.client("sqs", region_name="us-east-1")
    for i in range(3):
        client.send_message(QueueUrl=url, MessageBody=str(i))
    client.receive_message(QueueUrl=url, MaxNumberOfMessages=1, VisibilityTimeout=600)
    counts = (await delegate.get_queue_attributes("e2"))["Attributes"]
    assert (counts["ApproximateNumberOfMessages"], counts["ApproximateNumberOfMessagesNotVisible"]) == ("2", "1")


async def test_servicebus_shape(infra_for: Any) -> None:
    from azure.servicebus import ServiceBusMessage

    infra = infra_for("azure")
    delegate = llm_engine.queue_delegate(infra)
    assert delegate.shape == "servicebus"
    info = await _create(delegate, "e3")
    assert info == QueueInfo("launch-endpoint-id-e3", None)
    with infra.fakes.servicebus.client().get_queue_sender(info.queue_name) as sender:
        sender.send_messages([ServiceBusMessage("a"), ServiceBusMessage("b")])
    assert await delegate.get_queue_attributes("e3") == {
        "name": "launch-endpoint-id-e3",
        "total_message_count": 2,
        "active_message_count": 2,
    }
    await delegate.delete_queue("e3")
    with pytest.raises(QueueNotFoundError):
        await delegate.get_queue_attributes("e3")


async def _push(infra: FakeInfra, queue: str, count: int) -> None:
    client = infra.redis.async_client()
    for i in range(count):
        await client.lpush(queue, json.dumps({"n": i}))


async def test_redis_shape_on_gcp(infra_for: Any) -> None:
    infra = infra_for("gcp")
    delegate = llm_engine.queue_delegate(infra)
    assert delegate.shape == "redis"
    assert await _create(delegate, "e4") == ("launch-endpoint-id-e4", None)
    await _push(infra, "launch-endpoint-id-e4", 2)
    assert await delegate.get_queue_attributes("e4") == {
        "name": "launch-endpoint-id-e4",
        "Attributes": {"ApproximateNumberOfMessages": "2", "ApproximateNumberOfMessagesNotVisible": "0"},
    }


async def test_onprem_shape_and_url(infra_for: Any) -> None:
    infra = infra_for("onprem")
    delegate = llm_engine.queue_delegate(infra)
    assert delegate.shape == "onprem"
    assert await _create(delegate, "e5") == ("launch-endpoint-id-e5", "launch-endpoint-id-e5")
    await _push(infra, "launch-endpoint-id-e5", 1)
    assert await delegate.get_queue_attributes("e5") == {
        "name": "launch-endpoint-id-e5",
        "Attributes": {
            "ApproximateNumberOfMessages": "1",
            "ApproximateNumberOfMessagesNotVisible": "0",
            "QueueName": "launch-endpoint-id-e5",
        },
        "ResponseMetadata": {"HTTPStatusCode": 200},
    }
    await delegate.delete_queue("e5")


async def test_redis_queue_made_before_the_swap_counts_zero_when_empty(infra_for: Any) -> None:
    """Upstream never wrote metadata: an empty list is indistinguishable from a missing queue, and is 0."""
    delegate = llm_engine.queue_delegate(infra_for("gcp"))
    attributes = await delegate.get_queue_attributes("never-created")
    assert attributes["Attributes"]["ApproximateNumberOfMessages"] == "0"


async def test_redis_broker_error_raises_never_zero(infra_for: Any) -> None:
    infra = infra_for("onprem")
    infra.fakes.redis_server.connected = False
    delegate = llm_engine.queue_delegate(infra)
    with pytest.raises(BrokerUnavailableError, match="not 0"):
        await delegate.get_queue_attributes("e6")


async def test_pubsub_shape_is_upstreams_unknown_count() -> None:
    from model_engine_infra.queues.base import QueueAttributes

    class PubSubLike:
        broker_name = "Pub/Sub"

        async def get_queue_attributes(self, endpoint_id: str) -> QueueAttributes:
            return QueueAttributes(f"launch-endpoint-id-{endpoint_id}", None)

    delegate = llm_engine.LLMEngineQueueDelegate(PubSubLike(), shape=llm_engine.queue_shape(PubSubLike(), "gcp"))  # type: ignore[arg-type]
    assert delegate.shape == "pubsub"
    assert await delegate.get_queue_attributes("e7") == {
        "name": "launch-endpoint-id-e7",
        "num_undelivered_messages": -1,
    }


class EndpointResourceInfraException(Exception):
    """Stands in for upstream's exception class of the same name."""


async def test_errors_map_onto_upstream_exceptions(infra_for: Any) -> None:
    delegate = llm_engine.queue_delegate(infra_for("aws"), errors={QueueNotFoundError: EndpointResourceInfraException})
    with pytest.raises(EndpointResourceInfraException, match="launch-endpoint-id-missing") as caught:
        await delegate.get_queue_attributes("missing")
    assert isinstance(caught.value.__cause__, QueueNotFoundError)


async def test_unmapped_errors_and_other_attributes_pass_through(infra_for: Any) -> None:
    infra = infra_for("aws")
    delegate = llm_engine.queue_delegate(infra, errors={KeyError: EndpointResourceInfraException})
    with pytest.raises(QueueNotFoundError):
        await delegate.get_queue_attributes("missing")
    assert delegate.max_queue_name_length == infra.queue_delegate.max_queue_name_length
    assert "shape='sqs'" in repr(delegate)
    await delegate.close()


# --- task queues ---------------------------------------------------------------------------------


def test_task_queue_gateways_are_the_pair_upstream_wires(infra_for: Any) -> None:
    infra = infra_for("aws")
    infra_gateway, inference_gateway = llm_engine.task_queue_gateways(infra)
    assert infra_gateway is inference_gateway  # one broker, one component
    sent = inference_gateway.send_task("predict", "launch-endpoint-id-q", args=[1], kwargs=None, expires=60)
    assert sent == llm_engine.CreateAsyncTaskV1Response(task_id=sent.task_id)
    recorded = infra.fakes.tasks.sent[-1]
    assert (recorded.name, recorded.queue, recorded.args, dict(recorded.kwargs), recorded.expires) == (
        "predict",
        "launch-endpoint-id-q",
        (1,),
        {},
        60,
    )


def test_send_task_takes_positional_arguments(infra_for: Any) -> None:
    infra = infra_for("local")
    _, gateway = llm_engine.task_queue_gateways(infra)
    sent = gateway.send_task("predict", "q", ["a"], {"k": 1})
    assert gateway.get_task(sent.task_id).status is TaskStatus.PENDING
    assert infra.fakes.tasks.sent[-1].kwargs == {"k": 1}


async def test_send_task_async_does_not_block_the_loop(infra_for: Any) -> None:
    infra = infra_for("local")
    _, gateway = llm_engine.task_queue_gateways(infra)
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0)

    def slow_send(*args: Any, **kwargs: Any) -> SentTask:
        import time

        time.sleep(0.05)
        return SentTask("slow")

    infra.fakes.tasks._send_task = slow_send  # what the gateway's own send_task_async runs in a thread
    task = asyncio.create_task(ticker())
    try:
        sent = await gateway.send_task_async("predict", "q", args=[1])
    finally:
        task.cancel()
    assert sent.task_id == "slow"
    assert ticks > 1


class StateGateway:
    """Any object with the gateway's methods will do: a fixed state, and an async send of its own."""

    def __init__(self, state: TaskState) -> None:
        self.state = state
        self.async_sends: list[tuple[Any, ...]] = []

    def send_task(self, *args: Any, **kwargs: Any) -> SentTask:
        raise AssertionError("the async path must use send_task_async")

    async def send_task_async(self, *args: Any) -> SentTask:
        self.async_sends.append(args)
        return SentTask("native-async")

    def get_task(self, task_id: str) -> TaskState:
        return self.state


@pytest.mark.parametrize(
    ("native", "expected"),
    [
        (NativeStatus.PENDING, TaskStatus.PENDING),
        (NativeStatus.RETRY, TaskStatus.PENDING),
        (NativeStatus.STARTED, TaskStatus.STARTED),
        (NativeStatus.REVOKED, TaskStatus.UNDEFINED),
        (NativeStatus.UNKNOWN, TaskStatus.UNDEFINED),
    ],
)
def test_unfinished_states_read_as_upstreams(native: NativeStatus, expected: TaskStatus) -> None:
    gateway = llm_engine.LLMEngineTaskQueueGateway(StateGateway(TaskState("t", native)))
    assert gateway.get_task("t") == llm_engine.GetAsyncTaskV1Response("t", expected)


def test_success_moves_status_code_out_of_the_result() -> None:
    result = {"status_code": 201, "output": "hi"}
    gateway = llm_engine.LLMEngineTaskQueueGateway(StateGateway(TaskState("t", NativeStatus.SUCCESS, result=result)))
    answer = gateway.get_task("t")
    assert (answer.status, answer.result, answer.status_code, answer.traceback) == (
        TaskStatus.SUCCESS,
        {"output": "hi"},
        201,
        None,
    )
    assert result == {"status_code": 201, "output": "hi"}  # the gateway's value is not mutated
    plain = llm_engine.LLMEngineTaskQueueGateway(StateGateway(TaskState("t", NativeStatus.SUCCESS, result=[1, 2])))
    assert plain.get_task("t").result == [1, 2]
    assert plain.get_task("t").status_code is None


def test_failure_is_a_string_with_the_traceback() -> None:
    state = TaskState("t", NativeStatus.FAILURE, result="ValueError: boom", traceback="Traceback ...")
    answer = llm_engine.LLMEngineTaskQueueGateway(StateGateway(state)).get_task("t")
    assert (answer.status, answer.result, answer.traceback, answer.status_code) == (
        TaskStatus.FAILURE,
        "ValueError: boom",
        "Traceback ...",
        None,
    )


def test_upstreams_pydantic_dtos_can_be_the_answers() -> None:
    class UpstreamStatus(str, __import__("enum").Enum):
        PENDING = "PENDING"
        STARTED = "STARTED"
        SUCCESS = "SUCCESS"
        FAILURE = "FAILURE"
        UNDEFINED = "UNDEFINED"

    class GetAsyncTaskV1Response(pydantic.BaseModel):
        task_id: str
        status: UpstreamStatus
        result: Any = None
        traceback: str | None = None
        status_code: int | None = None

    state = TaskState("t", NativeStatus.SUCCESS, result={"status_code": 200, "x": 1})
    gateway = llm_engine.LLMEngineTaskQueueGateway(StateGateway(state), get_response=GetAsyncTaskV1Response)
    answer = gateway.get_task("t")
    assert isinstance(answer, GetAsyncTaskV1Response)
    assert answer.status is UpstreamStatus.SUCCESS
    assert answer.status_code == 200


class FakeSpan:
    def __init__(self, name: str) -> None:
        self.name = name
        self.input: Any = None
        self.output: Any = None


class FakeTracingGateway:
    """Upstream's TracingGateway interface: create_span and encode_trace_kwargs."""

    def __init__(self) -> None:
        self.spans: list[FakeSpan] = []

    @contextlib.contextmanager
    def create_span(self, name: str) -> Iterator[FakeSpan]:
        span = FakeSpan(name)
        self.spans.append(span)
        yield span

    def encode_trace_kwargs(self) -> dict[str, Any]:
        return {"_trace": "abc"}


async def test_tracing_gateway_span_and_trace_kwargs(infra_for: Any) -> None:
    infra = infra_for("local")
    tracing = FakeTracingGateway()
    _, gateway = llm_engine.task_queue_gateways(infra, tracing_gateway=tracing)
    sent = gateway.send_task("predict", "q", args=[{"p": 1}], kwargs={"k": 2})
    assert infra.fakes.tasks.sent[-1].kwargs == {"k": 2, "_trace": "abc"}
    span = tracing.spans[-1]
    assert span.name == "send_task_to_queue"
    assert span.input == {"queue_name": "q", "args": [{"p": 1}], "task_id": sent.task_id, "task_name": "predict"}
    assert span.output == {"task_id": sent.task_id}
    native = StateGateway(TaskState("t", NativeStatus.PENDING))
    traced = llm_engine.LLMEngineTaskQueueGateway(native, tracing_gateway=tracing)
    assert (await traced.send_task_async("predict", "q", args=[2])).task_id == "native-async"
    assert native.async_sends == [("predict", "q", [2], {"_trace": "abc"}, None)]
    assert tracing.spans[-1].output == {"task_id": "native-async"}


class BrokerUnavailableException(Exception):
    """Stands in for upstream's exception class of the same name."""


def test_task_errors_map(infra_for: Any) -> None:
    infra = infra_for("local")

    def down(*args: Any, **kwargs: Any) -> SentTask:
        raise BrokerUnavailableError("the broker is down")

    infra.fakes.tasks.send_task = down
    _, gateway = llm_engine.task_queue_gateways(infra, errors={BrokerUnavailableError: BrokerUnavailableException})
    with pytest.raises(BrokerUnavailableException, match="the broker is down"):
        gateway.send_task("predict", "q")


# --- files and artifacts --------------------------------------------------------------------------


def test_filesystem_open_defaults_to_text_and_ignores_aws_profile(infra_for: Any) -> None:
    fs = llm_engine.filesystem_gateway(infra_for("aws"))
    uri = "s3://fake-bucket/notes/a.txt"
    with fs.open(uri, "w", aws_profile="ml-worker") as stream:
        stream.write("héllo")
    with fs.open(uri, aws_profile="ml-worker") as stream:
        assert stream.read() == "héllo"
    with fs.open(uri, "rb") as stream:
        assert stream.read() == "héllo".encode()
    assert fs.exists(uri)  # our other methods are still there


def test_filesystem_signed_url(infra_for: Any) -> None:
    fs = llm_engine.filesystem_gateway(infra_for("aws"))
    url = fs.generate_signed_url("s3://fake-bucket/x.bin", expiration=600, aws_profile="p")
    assert "X-Amz-Expires=600" in url
    assert "x.bin" in url
    assert "X-Amz-Expires=3600" in fs.generate_signed_url("s3://fake-bucket/x.bin")
    put_url = fs.generate_signed_url("s3://fake-bucket/x.bin", method="PUT")
    assert put_url != url
    with pytest.raises(ValueError, match="method"):
        fs.generate_signed_url("s3://fake-bucket/x.bin", method="DELETE")


def _put(infra: FakeInfra, uri: str, data: bytes) -> None:
    with infra.filesystem.open(uri, "wb") as stream:
        stream.write(data)


def test_artifacts_list_files_gives_keys(infra_for: Any) -> None:
    infra = infra_for("aws")
    artifacts = llm_engine.llm_artifact_gateway(infra)
    for key in ("models/llama/config.json", "models/llama/w/1.bin", "models/llama-2/x.bin"):
        _put(infra, f"s3://fake-bucket/{key}", b"{}")
    assert sorted(artifacts.list_files("s3://fake-bucket/models/llama", aws_profile="p")) == [
        "models/llama/config.json",
        "models/llama/w/1.bin",
    ]
    assert artifacts.list_files("s3://fake-bucket/nothing") == []


def test_artifacts_list_files_on_local_disk(infra_for: Any, tmp_path: Path) -> None:
    infra = infra_for("local")
    folder = tmp_path / "weights"
    (folder / "sub").mkdir(parents=True)
    (folder / "sub" / "a.bin").write_bytes(b"a")
    artifacts = llm_engine.llm_artifact_gateway(infra)
    assert artifacts.list_files(str(folder)) == [str(folder / "sub" / "a.bin")]


def test_artifacts_download_files(infra_for: Any, tmp_path: Path) -> None:
    infra = infra_for("aws")
    artifacts = llm_engine.llm_artifact_gateway(infra)
    _put(infra, "s3://fake-bucket/m/config.json", b'{"a": 1}')
    _put(infra, "s3://fake-bucket/m/sub/w.bin", b"weights")
    out = tmp_path / "out"
    paths = artifacts.download_files("s3://fake-bucket/m", str(out), aws_profile="p")
    assert sorted(paths) == [str(out / "config.json"), str(out / "sub" / "w.bin")]
    (out / "config.json").write_bytes(b'{"b": 2}')  # same size: kept unless overwrite
    artifacts.download_files("s3://fake-bucket/m", str(out))
    assert (out / "config.json").read_bytes() == b'{"b": 2}'
    artifacts.download_files("s3://fake-bucket/m", str(out), True)
    assert (out / "config.json").read_bytes() == b'{"a": 1}'
    with pytest.raises(ObjectNotFoundError):
        artifacts.download_files("s3://fake-bucket/none", str(out))


def test_artifacts_model_weights_urls_use_upstreams_layout(infra_for: Any) -> None:
    infra = infra_for("aws")
    artifacts = llm_engine.llm_artifact_gateway(infra)
    base = "s3://fake-bucket/fine_tuned_weights/alice"
    _put(infra, f"{base}/models--meta-llama--Llama-2-7b/adapter.bin", b"w")
    _put(infra, f"{base}/models--meta-llama--Llama-2-7b-chat/adapter.bin", b"w")
    assert artifacts.get_model_weights_urls("alice", "meta-llama/Llama-2-7b", aws_profile="p") == [
        f"{base}/models--meta-llama--Llama-2-7b/adapter.bin"
    ]
    assert llm_engine.model_cache_directory_name("org/name") == "models--org--name"


def test_artifacts_model_config(infra_for: Any) -> None:
    infra = infra_for("aws")
    artifacts = llm_engine.llm_artifact_gateway(infra)
    _put(infra, "s3://fake-bucket/hf/llama/config.json", b'{"model_type": "llama"}')
    assert artifacts.get_model_config("s3://fake-bucket/hf/llama", aws_profile="p") == {"model_type": "llama"}
    with pytest.raises(ObjectNotFoundError):
        artifacts.get_model_config("s3://fake-bucket/hf/none")


class ObjectNotFoundException(Exception):
    """Stands in for upstream's exception class of the same name."""


def test_artifact_errors_map(infra_for: Any) -> None:
    artifacts = llm_engine.llm_artifact_gateway(infra_for("aws"), errors={ObjectNotFoundError: ObjectNotFoundException})
    with pytest.raises(ObjectNotFoundException):
        artifacts.get_model_config("s3://fake-bucket/hf/none")


# --- images ----------------------------------------------------------------------------------------


def test_docker_repository(infra_for: Any) -> None:
    infra = infra_for("onprem")
    infra.fakes.registry.push("vllm", "0.6.0")
    repo = llm_engine.docker_repository(infra)
    assert repo.image_exists("0.6.0", "vllm") is True
    assert repo.image_exists("0.6.0", "vllm", aws_profile="ml-admin") is True
    assert repo.image_exists("0.7.0", "vllm", None) is False
    assert repo.get_image_url("0.6.0", "vllm") == "registry.fake.internal/ml/vllm:0.6.0"
    assert repo.get_latest_image_tag("vllm") == "0.6.0"
    with pytest.raises(ImageNotFoundError):
        repo.get_latest_image_tag("never-pushed")
    assert repo.docker_repo_prefix == "registry.fake.internal/ml"


@pytest.mark.parametrize(
    ("name", "valid"), [("vllm", True), ("launch/inference/pytorch", True), ("a_b-c", True), ("Vllm", False)]
)
def test_is_repo_name_is_upstreams_rule(infra_for: Any, name: str, valid: bool) -> None:
    assert llm_engine.docker_repository(infra_for("local")).is_repo_name(name) is valid


def test_build_image_is_a_typed_refusal(infra_for: Any) -> None:
    repo = llm_engine.docker_repository(infra_for("local"))
    with pytest.raises(ImageBuildNotSupportedError, match="build them in CI"):
        repo.build_image({"repo": "x"})


class DockerRepositoryException(Exception):
    """Stands in for an upstream exception class."""


def test_docker_errors_map(infra_for: Any) -> None:
    repo = llm_engine.docker_repository(infra_for("local"), errors={ImageNotFoundError: DockerRepositoryException})
    with pytest.raises(DockerRepositoryException):
        repo.get_latest_image_tag("never-pushed")


# --- inference autoscaling metrics -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("provider", "backend"), [("aws", "redis"), ("gcp", "redis"), ("onprem", "redis"), ("azure", "servicebus")]
)
async def test_autoscaling_metrics_gateway_is_upstreams_interface(infra_for: Any, provider: str, backend: str) -> None:
    """Upstream's four calls, the backend its wiring picked for the cloud, KEDA's names."""
    infra = infra_for(provider)
    gateway = llm_engine.autoscaling_metrics_gateway(infra)
    await gateway.create_or_update_resources("end_abc")
    await gateway.emit_prewarm_metric("end_abc")
    await gateway.emit_inference_autoscaling_metric("end_abc")
    metric = await gateway.read_metric("end_abc")  # ours, forwarded
    assert metric is not None
    assert metric.pending == (1 if backend == "redis" else 2)
    if backend == "redis":
        key = "launch-endpoint-autoscaling:end_abc"
        assert infra.redis.client().lrange(key, 0, -1) == [b"1"]
        assert infra.redis.client().ttl(key) > 3590  # the prewarm's hour stands
    else:
        assert infra.fakes.servicebus is not None
        assert "launch-endpoint-autoscaling.end_abc" in infra.fakes.servicebus.queue_names()
    await gateway.delete_resources("end_abc")
    assert await gateway.read_metric("end_abc") is None
    assert "Gateway" in repr(gateway)


class MetricsUnavailable(Exception):
    """Stands in for an upstream exception class."""


async def test_autoscaling_metrics_errors_map(infra_for: Any) -> None:
    gateway = llm_engine.autoscaling_metrics_gateway(
        infra_for("azure"), errors={QueueNotFoundError: MetricsUnavailable}
    )
    with pytest.raises(MetricsUnavailable, match="create_or_update_resources") as caught:
        await gateway.emit_inference_autoscaling_metric("never_created")  # the queue was never created
    assert isinstance(caught.value.__cause__, QueueNotFoundError)
