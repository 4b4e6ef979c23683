"""The llm-engine adapters through the same conformance suites as the components they wrap.

Each adapter answers in upstream's shapes; a thin *view* reads those answers back into our
interface (a count from ``Attributes.ApproximateNumberOfMessages``, a status from upstream's
values), so the unchanged suites check that nothing is lost or softened on the way: typed errors,
idempotency, counts on every broker, round trips through a real worker, safe downloads, registry
answers. Where the adapter differs from our interface on purpose, the test is overridden here with
upstream's expectation (Redis: a missing queue reads as 0, on-prem queue URLs are the names;
statuses: REVOKED reads UNDEFINED; artifacts: keys from ``list_files``, Hugging Face cache names
for fine-tuned weights).
"""

from __future__ import annotations

import asyncio
import dataclasses
import threading
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import AsyncExitStack, ExitStack
from pathlib import Path
from typing import Any, ClassVar

import fakeredis
import kombu
import kombu.transport.redis
import pytest
import redis.asyncio

from model_engine_infra import InfraConfig
from model_engine_infra.compat import llm_engine
from model_engine_infra.compat.llm_engine import TaskStatus
from model_engine_infra.queues.base import QUEUE_NAME_PREFIX, QueueAttributes, QueueEndpointResourceDelegate
from model_engine_infra.tasks.base import SentTask, TaskState
from model_engine_infra.tasks.base import TaskStatus as NativeStatus
from model_engine_infra.tasks.demo_tasks import FAIL, PREDICT
from model_engine_infra.testing.conformance.images import (
    DockerRepositoryConformance,
    RegistryTarget,
    ecr_target,
    moto_set_pushed_at,
)
from model_engine_infra.testing.conformance.queues import (
    LocalQueueDelegateConformance,
    PubSubQueueDelegateConformance,
    QueueTarget,
    RedisQueueDelegateConformance,
    ServiceBusQueueDelegateConformance,
    SQSQueueDelegateConformance,
    local_queue_target,
    new_endpoint_id,
    pubsub_queue_target,
    redis_queue_target,
    servicebus_queue_target,
    sqs_queue_target,
)
from model_engine_infra.testing.conformance.storage import (
    StoreConformance,
    StoreTarget,
    fresh_root,
    local_store_target,
    s3_store_target,
    write,
)
from model_engine_infra.testing.conformance.tasks import (
    LocalTaskQueueConformance,
    PubSubTaskQueueConformance,
    RedisTaskQueueConformance,
    ServiceBusTaskQueueConformance,
    SQSTaskQueueConformance,
    TaskQueueTarget,
    broker_db_url,
    closed_port,
    local_task_queue_target,
    pubsub_task_queue_target,
    redis_task_queue_target,
    servicebus_task_queue_target,
    sqs_task_queue_target,
    worker_thread,
)
from model_engine_infra.testing.redis import InMemoryRedisConnection

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
    kind = type(  # the suite reads the broker's name rule and length limit from the delegate's type
        f"{type(delegate).__name__}View",
        (QueueDelegateView,),
        {
            "max_queue_name_length": type(delegate).max_queue_name_length,
            "broker_name": type(delegate).broker_name,
            "check_queue_name": lambda self, name: delegate.check_queue_name(name),
        },
    )
    view: QueueDelegateView = kind(adapter, reports_in_flight=reports_in_flight)
    return view


class AdaptedQueues:
    """Mixin: the suite runs on `queue_delegate` views; upstream's answers carry no labels or creator."""

    keeps_labels: ClassVar[bool] = False
    keeps_creator: ClassVar[bool] = False
    cloud: ClassVar[str]
    supports_inflight_count: ClassVar[bool]
    #: upstream's Redis delegates answer 0 for a missing queue (an empty list and no list are alike there)
    missing_reads_zero: ClassVar[bool] = False

    def adapted(self, target: QueueTarget) -> QueueTarget:
        native_unreachable = target.unreachable
        flag = self.supports_inflight_count
        return dataclasses.replace(
            target,
            delegate=view_of(target.delegate, self.cloud, flag),
            unreachable=lambda: view_of(native_unreachable(), self.cloud, flag),
        )

    async def _create_view(self, queue_target: QueueTarget, endpoint_id: str) -> Any:
        return await queue_target.delegate.create_queue_if_not_exists(endpoint_id, "demo", "alice", {"team": "ml"})

    @pytest.mark.asyncio
    async def test_delete_removes_the_queue_and_is_repeatable(self, queue_target: QueueTarget) -> None:
        if not self.missing_reads_zero:
            await super().test_delete_removes_the_queue_and_is_repeatable(queue_target)  # type: ignore[misc]
            return
        endpoint_id = new_endpoint_id()
        info = await self._create_view(queue_target, endpoint_id)
        await queue_target.put_messages(info.queue_name, 2)
        await queue_target.delegate.delete_queue(endpoint_id)
        assert (await queue_target.delegate.get_queue_attributes(endpoint_id)).approximate_message_count == 0
        await queue_target.delegate.delete_queue(endpoint_id)

    @pytest.mark.asyncio
    async def test_attributes_of_a_missing_queue_raise_not_found(self, queue_target: QueueTarget) -> None:
        if not self.missing_reads_zero:
            await super().test_attributes_of_a_missing_queue_raise_not_found(queue_target)  # type: ignore[misc]
            return
        attributes = await queue_target.delegate.get_queue_attributes(new_endpoint_id())
        assert attributes.approximate_message_count == 0

    @pytest.mark.asyncio
    async def test_works_from_any_event_loop(self, queue_target: QueueTarget) -> None:
        if not self.missing_reads_zero:
            await super().test_works_from_any_event_loop(queue_target)  # type: ignore[misc]
            return
        delegate = queue_target.delegate
        endpoint_id = new_endpoint_id()
        await self._create_view(queue_target, endpoint_id)

        async def count() -> int:
            return int((await delegate.get_queue_attributes(endpoint_id)).approximate_message_count or 0)

        def two_runs() -> list[int]:
            return [asyncio.run(count()), asyncio.run(count())]

        assert await asyncio.to_thread(two_runs) == [0, 0]
        assert await asyncio.gather(*(asyncio.to_thread(asyncio.run, count()) for _ in range(3))) == [0, 0, 0]
        await delegate.delete_queue(endpoint_id)
        assert await asyncio.to_thread(asyncio.run, count()) == 0  # gone reads as empty, as upstream

    @pytest.mark.asyncio
    async def test_bulk_read_answers_what_single_reads_do(self, queue_target: QueueTarget) -> None:
        """Upstream has no bulk read; ours over the adapter answers as its single reads (Redis: missing reads 0)."""
        if not self.missing_reads_zero:
            await super().test_bulk_read_answers_what_single_reads_do(queue_target)  # type: ignore[misc]
            return
        ids = [new_endpoint_id() for _ in range(2)]
        for endpoint_id in ids:
            await self._create_view(queue_target, endpoint_id)
        await queue_target.put_messages(QUEUE_NAME_PREFIX + ids[1], 2)
        many = await queue_target.delegate.get_queue_attributes_many([*ids, new_endpoint_id()])
        assert [a.approximate_message_count for a in many.values() if a is not None] == [0, 2, 0]


class TestLocalQueueDelegateAdapter(AdaptedQueues, LocalQueueDelegateConformance):  # type: ignore[misc]
    cloud = "local"
    missing_reads_zero = True  # the local delegate imitates upstream's Redis answer

    @pytest.fixture
    async def queue_target(self, tmp_path: Path) -> AsyncIterator[QueueTarget]:
        target = self.adapted(local_queue_target(tmp_path))
        yield target
        await target.delegate.close()


class TestSQSQueueDelegateAdapter(AdaptedQueues, SQSQueueDelegateConformance):  # type: ignore[misc]
    cloud = "aws"

    @pytest.fixture
    async def queue_target(self) -> AsyncIterator[QueueTarget]:
        from moto import mock_aws

        with mock_aws():
            target = self.adapted(sqs_queue_target(endpoint_url=None))
            yield target
            await target.delegate.close()


@pytest.fixture
def fake_redis_server(monkeypatch: pytest.MonkeyPatch) -> fakeredis.FakeServer:
    """A fakeredis server that real kombu (sync) and the delegate (asyncio) both talk to."""
    server = fakeredis.FakeServer()

    class SharedConnection(fakeredis.FakeRedisConnection):  # type: ignore[misc]
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            kwargs["server"] = server
            super().__init__(*args, **kwargs)

    monkeypatch.setattr(kombu.transport.redis.Channel, "connection_class", SharedConnection)
    return server


def _unreachable_fake_redis() -> Any:
    down = fakeredis.FakeServer()
    down.connected = False
    return fakeredis.FakeAsyncRedis(server=down)


class RedisAdapted(AdaptedQueues, RedisQueueDelegateConformance):  # type: ignore[misc]
    missing_reads_zero = True

    @pytest.fixture
    async def queue_target(self, fake_redis_server: fakeredis.FakeServer) -> AsyncIterator[QueueTarget]:
        with ExitStack() as stack:
            target = self.adapted(
                redis_queue_target(
                    async_client=InMemoryRedisConnection(fake_redis_server).async_client,
                    kombu_connection=kombu.Connection("redis://fake-redis:6379/0"),
                    unreachable=_unreachable_fake_redis,
                    stack=stack,
                )
            )
            yield target
            await target.delegate.close()


class TestRedisQueueDelegateAdapterGcp(RedisAdapted):
    cloud = "gcp"


class TestRedisQueueDelegateAdapterOnprem(RedisAdapted):
    cloud = "onprem"
    has_queue_urls = True  # upstream's on-prem delegate answers the queue name as its URL


class TestServiceBusQueueDelegateAdapter(AdaptedQueues, ServiceBusQueueDelegateConformance):  # type: ignore[misc]
    cloud = "azure"

    @pytest.fixture
    async def queue_target(self) -> AsyncIterator[QueueTarget]:
        target = self.adapted(servicebus_queue_target())
        yield target
        await target.delegate.close()


class TestPubSubQueueDelegateAdapter(AdaptedQueues, PubSubQueueDelegateConformance):  # type: ignore[misc]
    cloud = "gcp"

    @pytest.fixture
    async def queue_target(self) -> AsyncIterator[QueueTarget]:
        target = self.adapted(pubsub_queue_target())
        yield target
        await target.delegate.close()


# --- task queues ----------------------------------------------------------------------------------------

_NATIVE = {status.value: NativeStatus(status.value) for status in TaskStatus if status is not TaskStatus.UNDEFINED}


class TaskQueueView:
    """Our gateway interface read back from the adapter; what the suite inspects otherwise is the gateway's."""

    def __init__(self, adapter: llm_engine.LLMEngineTaskQueueGateway, native: Any) -> None:
        self.adapter = adapter
        self.native = native

    def __getattr__(self, name: str) -> Any:  # max_message_bytes, app, close, broker
        return getattr(self.native, name)

    def send_task(self, name: str, queue: str, args: Any = (), kwargs: Any = None, expires: Any = None) -> Any:
        return SentTask(self.adapter.send_task(name, queue, list(args), kwargs, expires).task_id)

    def get_task(self, task_id: str) -> TaskState:
        answer = self.adapter.get_task(task_id)
        status = _NATIVE.get(answer.status.value, NativeStatus.UNKNOWN)
        return TaskState(task_id, status, answer.result, answer.traceback)


def wait_final(adapter: llm_engine.LLMEngineTaskQueueGateway, task_id: str, timeout: float = 20.0) -> Any:
    deadline = time.monotonic() + timeout
    while (answer := adapter.get_task(task_id)).status in (TaskStatus.PENDING, TaskStatus.STARTED):
        assert time.monotonic() < deadline, f"task {task_id} still pending"
        time.sleep(0.02)
    return answer


class AdaptedTasks:
    """Mixin: the suite runs on `task_queue_gateways` views; the round trip asserts upstream's values."""

    def adapted(self, target: TaskQueueTarget) -> TaskQueueTarget:
        native_unreachable = target.unreachable

        def unreachable() -> Any:
            gateway = native_unreachable()
            return TaskQueueView(llm_engine.LLMEngineTaskQueueGateway(gateway), gateway)

        view = TaskQueueView(llm_engine.LLMEngineTaskQueueGateway(target.gateway), target.gateway)
        return dataclasses.replace(target, gateway=view, unreachable=unreachable)  # type: ignore[arg-type]

    @pytest.mark.asyncio
    async def test_round_trip_through_a_worker(self, task_queue_target: TaskQueueTarget) -> None:
        """Upstream's values: SUCCESS with the result, FAILURE as text with a traceback, an expired task UNDEFINED."""
        queue = "adapter-rt-" + uuid.uuid4().hex[:8]
        adapter = task_queue_target.gateway.adapter  # type: ignore[attr-defined]
        with worker_thread(task_queue_target.worker_app(), queue):
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


async def _finish(target: TaskQueueTarget) -> None:
    target.gateway.close()
    await target.delegate.close()


class TestLocalTaskQueueAdapter(AdaptedTasks, LocalTaskQueueConformance):  # type: ignore[misc]
    @pytest.fixture
    async def task_queue_target(self, tmp_path: Path) -> AsyncIterator[TaskQueueTarget]:
        target = self.adapted(local_task_queue_target(tmp_path))
        yield target
        await _finish(target)


class TestServiceBusTaskQueueAdapter(AdaptedTasks, ServiceBusTaskQueueConformance):  # type: ignore[misc]
    @pytest.fixture
    async def task_queue_target(self, tmp_path: Path) -> AsyncIterator[TaskQueueTarget]:
        async with AsyncExitStack() as stack:
            target = self.adapted(servicebus_task_queue_target(tmp_path, stack))
            yield target
            await _finish(target)


class TestPubSubTaskQueueAdapter(AdaptedTasks, PubSubTaskQueueConformance):  # type: ignore[misc]
    @pytest.fixture
    async def task_queue_target(self, tmp_path: Path) -> AsyncIterator[TaskQueueTarget]:
        async with AsyncExitStack() as stack:
            target = self.adapted(pubsub_task_queue_target(tmp_path, stack))
            yield target
            await _finish(target)


@pytest.fixture
def fake_redis_url() -> Iterator[str]:
    """fakeredis behind a real socket in this process (kombu's poller and Celery's backend reach it)."""
    server = fakeredis.TcpFakeServer(("127.0.0.1", 0), server_type="redis")
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), name="fakeredis-tcp", daemon=True)
    thread.start()
    host, port = server.server_address[:2]
    try:
        yield f"redis://{host!s}:{port}/0"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


class TestRedisTaskQueueAdapter(AdaptedTasks, RedisTaskQueueConformance):  # type: ignore[misc]
    @pytest.fixture
    async def task_queue_target(self, fake_redis_url: str) -> AsyncIterator[TaskQueueTarget]:
        async_client = redis.asyncio.Redis.from_url(broker_db_url(fake_redis_url))
        target = self.adapted(
            redis_task_queue_target(
                url=fake_redis_url, async_client=async_client, unreachable_url=f"redis://127.0.0.1:{closed_port()}/0"
            )
        )
        yield target
        await _finish(target)
        await async_client.aclose()


class TestSQSTaskQueueAdapter(AdaptedTasks, SQSTaskQueueConformance):  # type: ignore[misc]
    @pytest.fixture
    async def task_queue_target(self) -> AsyncIterator[TaskQueueTarget]:
        from moto import mock_aws

        with mock_aws():
            target = self.adapted(sqs_task_queue_target(endpoint_url=None, bucket="contract-results"))
            yield target
            await _finish(target)


# --- files and artifacts ------------------------------------------------------------------------------------


@dataclasses.dataclass
class AdaptedStoreTarget(StoreTarget):
    @property
    def fs(self) -> Any:
        return llm_engine.filesystem_gateway(self.infra)

    @property
    def artifacts(self) -> Any:
        return llm_engine.llm_artifact_gateway(self.infra)


def _key(target: StoreTarget, relative: str) -> str:
    uri = target.uri(relative)
    return uri if uri.startswith("/") or uri.startswith("file:") else uri.split("://", 1)[1].partition("/")[2]


class AdaptedStores(StoreConformance):
    """`filesystem_gateway(infra)` and `llm_artifact_gateway(infra)` through the store suite."""

    @staticmethod
    def adapted(target: StoreTarget) -> AdaptedStoreTarget:
        return AdaptedStoreTarget(**{f.name: getattr(target, f.name) for f in dataclasses.fields(target)})

    def test_listing_nested_prefixes_and_prefix_collision(self, store_target: StoreTarget) -> None:
        """Upstream's list_files answers keys inside the bucket; a path is still a folder."""
        for name in ("models/llama/config.json", "models/llama/sub/deeper/w.bin", "models/llama-2/x.bin"):
            write(store_target, name, b"{}")
        expected = [_key(store_target, "models/llama/config.json"), _key(store_target, "models/llama/sub/deeper/w.bin")]
        assert sorted(store_target.artifacts.list_files(store_target.uri("models/llama"))) == expected
        assert sorted(store_target.artifacts.list_files(store_target.uri("models/llama/"))) == expected
        assert store_target.artifacts.list_files(store_target.uri("models/llam")) == []

    def test_model_config_and_fine_tuned_weights(self, store_target: StoreTarget) -> None:
        """Fine-tuned weights live under upstream's Hugging Face cache name, ``models--org--name``."""
        write(store_target, "hf/llama/config.json", b'{"model_type": "llama"}')
        assert store_target.artifacts.get_model_config(store_target.uri("hf/llama")) == {"model_type": "llama"}
        write(store_target, "ft/alice/models--org--my-model/adapter.bin", b"w")
        write(store_target, "ft/alice/models--org--my-model-2/adapter.bin", b"w")
        assert store_target.artifacts.get_model_weights_urls("alice", "org/my-model") == [
            store_target.uri("ft/alice/models--org--my-model/adapter.bin")
        ]


class TestLocalPathsAdapters(AdaptedStores):
    @pytest.fixture
    def store_target(self, tmp_path: Path) -> Iterator[StoreTarget]:
        target = local_store_target(tmp_path, "path")
        yield self.adapted(target)
        target.infra.close()


class TestS3OnMotoAdapters(AdaptedStores):
    @pytest.fixture
    def store_target(self) -> Iterator[StoreTarget]:
        from moto import mock_aws

        with mock_aws():
            root = fresh_root("s3", "contract-bucket")
            config = InfraConfig(cloud_provider="aws", hf_user_fine_tuned_weights_prefix=f"{root}/ft")
            target = s3_store_target("moto", config, root)
            yield self.adapted(target)
            target.infra.close()


# --- images -------------------------------------------------------------------------------------------------


class TestDockerRepositoryAdapter(DockerRepositoryConformance):
    """`docker_repository(infra)` over ECR through the registry suite."""

    @pytest.fixture
    def registry_target(self, ecr_moto: dict[str, str]) -> RegistryTarget:
        native = ecr_target(ecr_moto, moto_set_pushed_at)
        return dataclasses.replace(
            native,
            repository=llm_engine.LLMEngineDockerRepository(native.repository),  # type: ignore[arg-type]
            unauthorized=lambda: llm_engine.LLMEngineDockerRepository(native.unauthorized()),  # type: ignore[arg-type,return-value]
            unreachable=lambda: llm_engine.LLMEngineDockerRepository(native.unreachable()),  # type: ignore[arg-type,return-value]
        )
