"""The llm-engine adapters through the same contract suites as the components they wrap.

Each adapter answers in upstream's shapes; a thin *view* reads those answers back into our
interface (a count from ``Attributes.ApproximateNumberOfMessages``, a status from upstream's
values), so the unchanged contract checks that nothing is lost or softened on the way: typed
errors, idempotency, counts on every broker, round trips through a real worker, safe downloads.
Where the adapter differs from our interface on purpose, the test is overridden here with
upstream's expectation (Redis: a missing queue reads as 0; statuses: REVOKED reads UNDEFINED;
artifacts: keys from ``list_files``, Hugging Face cache names for fine-tuned weights).
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import AsyncExitStack, ExitStack
from pathlib import Path
from typing import Any

import fakeredis
import kombu
import pytest
import redis.asyncio
import test_docker_repository_contract as docker_contract
import test_queue_delegate_contract as queue_contract
import test_storage_contract as storage_contract
import test_task_queue_contract as task_contract
from moto import mock_aws

from model_engine_infra.compat import llm_engine
from model_engine_infra.compat.llm_engine import TaskStatus
from model_engine_infra.queues.base import QueueAttributes, QueueEndpointResourceDelegate
from model_engine_infra.tasks.base import SentTask, TaskState
from model_engine_infra.tasks.base import TaskStatus as NativeStatus
from model_engine_infra.tasks.demo_tasks import FAIL, PREDICT

fake_redis_server = queue_contract.fake_redis_server
fake_redis_url = task_contract.fake_redis_url
moto_s3 = storage_contract.moto_s3
ecr_moto = docker_contract.ecr_moto

# --- endpoint queues ---------------------------------------------------------------------------------


class QueueDelegateView(QueueEndpointResourceDelegate):
    """Our delegate interface read back from an adapter's upstream-shaped answers."""

    def __init__(self, adapter: llm_engine.LLMEngineQueueDelegate, *, reports_in_flight: bool) -> None:
        self.adapter = adapter
        self.reports_in_flight = reports_in_flight

    async def create_queue_if_not_exists(self, *args: Any, **kwargs: Any) -> Any:
        return await self.adapter.create_queue_if_not_exists(*args, **kwargs)

    async def delete_queue(self, endpoint_id: str) -> None:
        await self.adapter.delete_queue(endpoint_id)

    async def get_queue_attributes(self, endpoint_id: str, **_: Any) -> QueueAttributes:
        answer = await self.adapter.get_queue_attributes(endpoint_id)
        name = self.adapter.endpoint_id_to_queue_name(endpoint_id)
        if self.adapter.shape == "pubsub":  # upstream's answer: -1 while the count is unknown
            assert set(answer) == {"name", "num_undelivered_messages"}
            undelivered = int(answer["num_undelivered_messages"])
            return QueueAttributes(answer["name"], None if undelivered < 0 else undelivered, None, raw=answer)
        if self.adapter.shape == "servicebus":
            assert set(answer) == {"name", "total_message_count", "active_message_count"}
            return QueueAttributes(answer["name"], int(answer["active_message_count"]), None, raw=answer)
        counts = answer["Attributes"]
        if self.adapter.shape != "sqs":
            assert answer["name"] == name
        waiting = int(counts["ApproximateNumberOfMessages"])
        in_flight = int(counts["ApproximateNumberOfMessagesNotVisible"])
        return QueueAttributes(name, waiting + in_flight, in_flight if self.reports_in_flight else None, raw=answer)

    async def close(self) -> None:
        await self.adapter.close()


def view_of(delegate: QueueEndpointResourceDelegate, cloud: str, reports_in_flight: bool) -> QueueDelegateView:
    adapter = llm_engine.LLMEngineQueueDelegate(delegate, shape=llm_engine.queue_shape(delegate, cloud))
    # the contract reads the broker's name-length limit from the delegate's type
    kind = type(
        f"{type(delegate).__name__}View",
        (QueueDelegateView,),
        {"max_queue_name_length": type(delegate).max_queue_name_length, "broker_name": type(delegate).broker_name},
    )
    view: QueueDelegateView = kind(adapter, reports_in_flight=reports_in_flight)
    return view


def adapted(backend: Any, cloud: str) -> Any:
    native_unreachable = backend.unreachable
    return dataclasses.replace(
        backend,
        delegate=view_of(backend.delegate, cloud, backend.reports_in_flight),
        unreachable=lambda: view_of(native_unreachable(), cloud, backend.reports_in_flight),
        keeps_labels=False,  # upstream's answers carry no labels or creator
        keeps_creator=False,
    )


QUEUE_BACKENDS = {
    "local": "local",
    "sqs": "aws",
    "redis-gcp": "gcp",
    "redis-onprem": "onprem",
    "servicebus": "azure",
    "pubsub": "gcp",
}


@pytest.fixture(params=list(QUEUE_BACKENDS))
async def queue_backend(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Any]:
    with ExitStack() as stack:
        if request.param == "local":
            built = queue_contract.local_backend(tmp_path)
        elif request.param == "sqs":
            stack.enter_context(mock_aws())
            built = queue_contract.sqs_backend(endpoint_url=None)
        elif request.param.startswith("redis"):
            server = request.getfixturevalue("fake_redis_server")
            built = queue_contract.redis_backend(
                async_client=fakeredis.FakeAsyncRedis(server=server),
                kombu_connection=kombu.Connection("redis://fake-redis:6379/0"),
                unreachable=queue_contract._unreachable_fake_redis,
                stack=stack,
            )
        elif request.param == "pubsub":
            built = queue_contract.pubsub_backend()
        else:
            built = queue_contract.servicebus_backend()
        view = adapted(built, QUEUE_BACKENDS[request.param])
        yield view
        await view.delegate.close()


class TestQueueDelegateAdapterContract(queue_contract.QueueDelegateContract):  # type: ignore[misc]
    """`queue_delegate(infra)` on every broker, through the endpoint-queue contract."""

    @pytest.fixture
    def backend(self, queue_backend: Any) -> Any:
        return queue_backend

    def _missing_reads_zero(self, backend: Any) -> bool:
        return bool(backend.delegate.adapter.shape in ("redis", "onprem"))

    async def test_delete_removes_the_queue_and_is_repeatable(self, backend: Any) -> None:
        if not self._missing_reads_zero(backend):
            await super().test_delete_removes_the_queue_and_is_repeatable(backend)
            return
        endpoint_id = queue_contract.new_endpoint_id()
        info = await self._create(backend, endpoint_id)
        await backend.put_messages(info.queue_name, 2)
        await backend.delegate.delete_queue(endpoint_id)
        assert (await backend.delegate.get_queue_attributes(endpoint_id)).approximate_message_count == 0
        await backend.delegate.delete_queue(endpoint_id)

    async def test_attributes_of_a_missing_queue_raise_not_found(self, backend: Any) -> None:
        if not self._missing_reads_zero(backend):
            await super().test_attributes_of_a_missing_queue_raise_not_found(backend)
            return
        attributes = await backend.delegate.get_queue_attributes(queue_contract.new_endpoint_id())
        assert attributes.approximate_message_count == 0

    async def test_works_from_any_event_loop(self, backend: Any) -> None:
        if not self._missing_reads_zero(backend):
            await super().test_works_from_any_event_loop(backend)
            return
        delegate = backend.delegate
        endpoint_id = queue_contract.new_endpoint_id()
        await self._create(backend, endpoint_id)

        async def count() -> int:
            return int((await delegate.get_queue_attributes(endpoint_id)).approximate_message_count)

        def two_runs() -> list[int]:
            return [asyncio.run(count()), asyncio.run(count())]

        assert await asyncio.to_thread(two_runs) == [0, 0]
        assert await asyncio.gather(*(asyncio.to_thread(asyncio.run, count()) for _ in range(3))) == [0, 0, 0]
        await delegate.delete_queue(endpoint_id)
        assert await asyncio.to_thread(asyncio.run, count()) == 0  # Redis: gone reads as empty, as upstream

    async def test_bulk_read_answers_what_single_reads_do(self, backend: Any) -> None:
        """Upstream has no bulk read; ours over the adapter answers as its single reads (Redis: missing reads 0)."""
        if not self._missing_reads_zero(backend):
            await super().test_bulk_read_answers_what_single_reads_do(backend)
            return
        ids = [queue_contract.new_endpoint_id() for _ in range(2)]
        for endpoint_id in ids:
            await self._create(backend, endpoint_id)
        await backend.put_messages(queue_contract.QUEUE_NAME_PREFIX + ids[1], 2)
        missing = queue_contract.new_endpoint_id()
        many = await backend.delegate.get_queue_attributes_many([*ids, missing])
        assert [many[i].approximate_message_count for i in [*ids, missing]] == [0, 2, 0]

    async def test_create_returns_the_compatible_name(self, backend: Any) -> None:
        if backend.delegate.adapter.shape != "onprem":
            await super().test_create_returns_the_compatible_name(backend)
            return
        endpoint_id = queue_contract.new_endpoint_id()
        info = await self._create(backend, endpoint_id)
        assert info == (f"launch-endpoint-id-{endpoint_id}", f"launch-endpoint-id-{endpoint_id}")


# --- task queues ----------------------------------------------------------------------------------


_NATIVE = {status.value: NativeStatus(status.value) for status in TaskStatus if status is not TaskStatus.UNDEFINED}


class TaskQueueView:
    """Our gateway interface read back from the adapter; what the contract inspects otherwise is the gateway's."""

    def __init__(self, adapter: llm_engine.LLMEngineTaskQueueGateway, native: Any) -> None:
        self.adapter = adapter
        self.native = native

    def __getattr__(self, name: str) -> Any:  # max_message_bytes, app, close
        return getattr(self.native, name)

    def send_task(
        self, task_name: str, queue_name: str, args: Any = (), kwargs: Any = None, expires: Any = None
    ) -> Any:
        return SentTask(self.adapter.send_task(task_name, queue_name, list(args), kwargs, expires).task_id)

    def get_task(self, task_id: str) -> TaskState:
        answer = self.adapter.get_task(task_id)
        status = _NATIVE.get(answer.status.value, NativeStatus.UNKNOWN)
        return TaskState(task_id, status, answer.result, answer.traceback)


def task_view(backend: Any) -> Any:
    native_unreachable = backend.unreachable

    def unreachable() -> TaskQueueView:
        gateway = native_unreachable()
        return TaskQueueView(llm_engine.LLMEngineTaskQueueGateway(gateway), gateway)

    adapter = llm_engine.LLMEngineTaskQueueGateway(backend.gateway)
    return dataclasses.replace(backend, gateway=TaskQueueView(adapter, backend.gateway), unreachable=unreachable)


@pytest.fixture(params=["local", "servicebus", "redis", "sqs", "pubsub"])
async def task_backend(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Any]:
    async with AsyncExitStack() as stack:
        if request.param == "local":
            built = task_contract.local_backend(tmp_path)
        elif request.param == "servicebus":
            built = task_contract.servicebus_backend(tmp_path, stack)
        elif request.param == "redis":
            url = request.getfixturevalue("fake_redis_url")
            async_client = redis.asyncio.Redis.from_url(task_contract.broker_db_url(url))
            stack.push_async_callback(async_client.aclose)
            built = task_contract.redis_backend(
                url=url, async_client=async_client, unreachable_url=f"redis://127.0.0.1:{task_contract.closed_port()}/0"
            )
        elif request.param == "pubsub":
            built = task_contract.pubsub_backend(tmp_path, stack)
        else:
            stack.enter_context(mock_aws())
            built = task_contract.sqs_backend(endpoint_url=None, bucket="contract-results")
        yield task_view(built)
        built.gateway.close()
        await built.delegate.close()


def wait_final(adapter: llm_engine.LLMEngineTaskQueueGateway, task_id: str, timeout: float = 20.0) -> Any:
    deadline = time.monotonic() + timeout
    while (answer := adapter.get_task(task_id)).status in (TaskStatus.PENDING, TaskStatus.STARTED):
        assert time.monotonic() < deadline, f"task {task_id} still pending"
        time.sleep(0.02)
    return answer


class TestTaskQueueAdapterContract(task_contract.TaskQueueContract):  # type: ignore[misc]
    """`task_queue_gateways(infra)` on every broker, through the task-queue contract."""

    @pytest.fixture
    def backend(self, task_backend: Any) -> Any:
        return task_backend

    async def test_round_trip_through_a_worker(self, backend: Any) -> None:
        """Upstream's values: SUCCESS with the result, FAILURE as text with a traceback, an expired task UNDEFINED."""
        _, queue = await self._queue(backend)
        adapter = backend.gateway.adapter
        with task_contract.worker_thread(backend.worker_app(), queue):
            ok = adapter.send_task(PREDICT, queue, args=[{"prompt": "the quick brown fox"}])
            bad = adapter.send_task(FAIL, queue, kwargs={"message": "model crashed"})
            expired = adapter.send_task(PREDICT, queue, args=[{"prompt": "late"}], expires=-1)
            done, failed, late = (wait_final(adapter, t.task_id) for t in (ok, bad, expired))
        assert (done.status, done.result, done.status_code) == (
            TaskStatus.SUCCESS,
            {"output": "fox brown quick the", "num_prompt_tokens": 4, "model": "demo"},
            None,
        )
        assert failed.status is TaskStatus.FAILURE
        assert "model crashed" in failed.result
        assert "ValueError: model crashed" in failed.traceback
        assert late.status is TaskStatus.UNDEFINED  # REVOKED has no upstream value
        assert adapter.get_task(str(uuid.uuid4())).status is TaskStatus.PENDING


# --- files and artifacts ------------------------------------------------------------------------------


@dataclasses.dataclass
class AdaptedStorage(storage_contract.Backend):  # type: ignore[misc]
    @property
    def fs(self) -> Any:
        return llm_engine.filesystem_gateway(self.infra)

    @property
    def artifacts(self) -> Any:
        return llm_engine.llm_artifact_gateway(self.infra)


def _key(backend: Any, relative: str) -> str:
    uri = backend.uri(relative)
    return uri if uri.startswith("/") or uri.startswith("file:") else uri.split("://", 1)[1].partition("/")[2]


class TestStorageAdapterContract(storage_contract.StorageContract):  # type: ignore[misc]
    """`filesystem_gateway(infra)` and `llm_artifact_gateway(infra)` through the storage contract."""

    @pytest.fixture(params=["local-path", "moto"])
    def backend(self, request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Any]:
        if request.param == "local-path":
            chosen = storage_contract.local_backend(tmp_path, "path")
        else:
            request.getfixturevalue("moto_s3")
            root = storage_contract.fresh_root("s3", "contract-bucket")
            config = storage_contract.InfraConfig(cloud_provider="aws", hf_user_fine_tuned_weights_prefix=f"{root}/ft")
            chosen = storage_contract.s3_backend("moto", config, root)
        adapted_backend = AdaptedStorage(**{f.name: getattr(chosen, f.name) for f in dataclasses.fields(chosen)})
        yield adapted_backend
        chosen.infra.close()

    def test_listing_nested_prefixes_and_prefix_collision(self, backend: Any) -> None:
        """Upstream's list_files answers keys inside the bucket; a path is still a folder."""
        for name in ("models/llama/config.json", "models/llama/sub/deeper/w.bin", "models/llama-2/x.bin"):
            storage_contract.write(backend, name, b"{}")
        expected = [_key(backend, "models/llama/config.json"), _key(backend, "models/llama/sub/deeper/w.bin")]
        assert sorted(backend.artifacts.list_files(backend.uri("models/llama"))) == expected
        assert sorted(backend.artifacts.list_files(backend.uri("models/llama/"))) == expected
        assert backend.artifacts.list_files(backend.uri("models/llam")) == []

    def test_model_config_and_fine_tuned_weights(self, backend: Any) -> None:
        """Fine-tuned weights live under upstream's Hugging Face cache name, ``models--org--name``."""
        storage_contract.write(backend, "hf/llama/config.json", b'{"model_type": "llama"}')
        assert backend.artifacts.get_model_config(backend.uri("hf/llama")) == {"model_type": "llama"}
        storage_contract.write(backend, "ft/alice/models--org--my-model/adapter.bin", b"w")
        storage_contract.write(backend, "ft/alice/models--org--my-model-2/adapter.bin", b"w")
        assert backend.artifacts.get_model_weights_urls("alice", "org/my-model") == [
            backend.uri("ft/alice/models--org--my-model/adapter.bin")
        ]


# --- images ----------------------------------------------------------------------------------------------


class TestDockerRepositoryAdapterContract(docker_contract.DockerRepositoryContract):  # type: ignore[misc]
    """`docker_repository(infra)` over ECR through the registry contract."""

    @pytest.fixture
    def target(self, ecr_moto: dict[str, str]) -> Any:
        native = docker_contract.ecr_target(ecr_moto, docker_contract._moto_set_pushed_at)
        return dataclasses.replace(
            native,
            repository=llm_engine.LLMEngineDockerRepository(native.repository),
            unauthorized=lambda: llm_engine.LLMEngineDockerRepository(native.unauthorized()),
            unreachable=lambda: llm_engine.LLMEngineDockerRepository(native.unreachable()),
        )
