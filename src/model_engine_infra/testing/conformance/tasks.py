"""Conformance for Celery brokers, through the task-queue gateway (`CeleryTaskQueueGateway`).

Subclass `TaskQueueConformance`, set ``max_message_bytes``, and provide a ``task_queue_target``
fixture returning a `TaskQueueTarget`: a gateway on the broker, the matching queue delegate (messages
are counted with it, never through the gateway, so the counts check what the broker really holds), a
worker-side Celery app on the same broker and result backend, and a gateway that cannot reach it.
Round trips run a real Celery worker in a thread without the event loop (``use_eventloop=False``).

The second half builds targets for the project's own brokers (kombu's filesystem transport, Service
Bus and Pub/Sub through their SDK-boundary fakes, Redis, SQS with S3 results). Documented limits: 256
KiB on SQS, 256 KB (Standard tier) on Service Bus and 10 MB on Pub/Sub, counted after each transport's
encoding; none on Redis (512 MB per value, never met first) nor on the filesystem broker.
"""

from __future__ import annotations

import socket
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import AsyncExitStack, ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar
from unittest import mock

import pytest

from ...config.model import InfraConfig
from ...errors import BrokerUnavailableError, InvalidQueueNameError, MessageTooLargeError, QueueNotFoundError
from ...queues.base import QueueEndpointResourceDelegate
from ...tasks.base import TaskStatus

if TYPE_CHECKING:
    from celery import Celery

    from ...tasks.gateway import CeleryTaskQueueGateway

KIB = 1024
WORKER_DRAIN_SECONDS = 0.2
UNREACHABLE_SECONDS = 10.0  # the retry policy gives up in ~1 s; a hang would be the bug
PREDICT = "model_engine_infra.demo.predict"  # tasks.demo_tasks, registered by the worker apps
FAIL = "model_engine_infra.demo.fail"


@dataclass
class TaskQueueTarget:
    """A gateway plus what the suite needs to check it."""

    config: InfraConfig
    gateway: CeleryTaskQueueGateway
    #: counts messages in the broker the gateway sends to
    delegate: QueueEndpointResourceDelegate
    #: a worker-side Celery app on the same broker and result backend (demo tasks registered)
    worker_app: Callable[[], Celery]
    #: a gateway for the same broker kind that cannot reach it
    unreachable: Callable[[], CeleryTaskQueueGateway]
    name: str = "task queue"
    #: counts an endpoint's messages with the broker's own tools where the delegate cannot count
    #: (Pub/Sub: the fake's backlog); None: the delegate's ``approximate_message_count`` is used
    count: Callable[[str], int] | None = None


def new_endpoint_id() -> str:
    return "t" + uuid.uuid4().hex[:12]


def closed_port() -> int:
    """A local port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def no_connection(gateway: CeleryTaskQueueGateway) -> None:
    """Make any attempt of ``gateway`` to reach its broker fail the test."""

    def refuse(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("the gateway tried to reach the broker")

    gateway.app.connection_for_write = refuse


def wait_done(gateway: CeleryTaskQueueGateway, task_id: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while gateway.get_task(task_id).status in (TaskStatus.PENDING, TaskStatus.STARTED):
        assert time.monotonic() < deadline, f"task {task_id} still pending"
        time.sleep(0.02)


def check_roundtrip(gateway: CeleryTaskQueueGateway, queue: str) -> list[str]:
    """A task that succeeds, one that fails and one already expired, through a worker consuming ``queue``; their ids."""
    ok = gateway.send_task(PREDICT, queue, args=[{"prompt": "the quick brown fox"}])
    bad = gateway.send_task(FAIL, queue, kwargs={"message": "model crashed"})
    expired = gateway.send_task(PREDICT, queue, args=[{"prompt": "late"}], expires=-1)
    for task in (ok, bad, expired):
        wait_done(gateway, task.task_id)
    done = gateway.get_task(ok.task_id)
    assert done.status is TaskStatus.SUCCESS
    assert done.result == {"output": "fox brown quick the", "num_prompt_tokens": 4, "model": "demo"}
    assert done.traceback is None
    failed = gateway.get_task(bad.task_id)
    assert failed.status is TaskStatus.FAILURE
    assert failed.result == "ValueError: model crashed"
    assert failed.traceback is not None
    assert "ValueError: model crashed" in failed.traceback
    assert gateway.get_task(expired.task_id).status is TaskStatus.REVOKED  # expires is honoured by the worker
    return [ok.task_id, bad.task_id, expired.task_id]


@contextmanager
def worker_thread(app: Celery, queue: str) -> Iterator[Any]:
    """A real Celery worker (solo pool, no event loop) consuming ``queue`` in a thread of this process."""
    from kombu.connection import Connection

    from ..celery_worker import worker_thread as kit_worker_thread

    real_drain: Any = Connection.drain_events

    def short_drain(connection: Connection, **kwargs: Any) -> Any:
        # Celery's loop drains for 2 s and runs one more cycle after shutdown: 4 s to stop otherwise
        if kwargs.get("timeout") is not None:
            kwargs["timeout"] = min(kwargs["timeout"], WORKER_DRAIN_SECONDS)
        return real_drain(connection, **kwargs)

    app.loader.import_default_modules()  # the demo tasks
    with (
        mock.patch.object(Connection, "drain_events", short_drain),
        kit_worker_thread(app, queues=[queue], use_eventloop=False) as worker,
    ):
        yield worker


async def message_count(target: TaskQueueTarget, endpoint_id: str) -> int | None:
    """The messages the broker holds for ``endpoint_id``: the target's own count, else the delegate's."""
    if target.count is not None:
        return target.count(endpoint_id)
    return (await target.delegate.get_queue_attributes(endpoint_id)).approximate_message_count


class TaskQueueConformance:
    """The contract every Celery broker keeps through the task-queue gateway; provide ``task_queue_target``."""

    #: the broker's documented payload limit after encoding, in bytes (None: no limit a task meets first)
    max_message_bytes: ClassVar[int | None] = None
    #: names the broker rejects, would rewrite into another name's queue, or keeps for itself (refused, no call)
    invalid_queue_names: ClassVar[tuple[str, ...]] = ()
    #: names the broker's rule lets through unchanged
    valid_queue_names: ClassVar[tuple[str, ...]] = ("q-1", "q_1")
    #: a word every refusal of a name must contain (the broker's name), if any
    invalid_name_names_broker: ClassVar[str | None] = None

    async def _queue(self, task_queue_target: TaskQueueTarget) -> tuple[str, str]:
        endpoint_id = new_endpoint_id()
        info = await task_queue_target.delegate.create_queue_if_not_exists(
            endpoint_id=endpoint_id,
            endpoint_name=f"contract {endpoint_id}",
            endpoint_created_by="contract",
            endpoint_labels={"suite": "task-queue"},
            queue_message_timeout_seconds=300,
        )
        return endpoint_id, info.queue_name

    @pytest.mark.asyncio
    async def test_send_returns_an_id_and_the_message_is_queued(self, task_queue_target: TaskQueueTarget) -> None:
        endpoint_id, queue = await self._queue(task_queue_target)
        first = task_queue_target.gateway.send_task(PREDICT, queue, args=[{"prompt": "a"}], kwargs={"sleep_seconds": 0})
        second = task_queue_target.gateway.send_task(PREDICT, queue, args=[{"prompt": "b"}], expires=600)
        assert isinstance(first.task_id, str)
        assert first.task_id
        assert first.task_id != second.task_id
        assert await message_count(task_queue_target, endpoint_id) == 2

    def test_unknown_task_is_pending(self, task_queue_target: TaskQueueTarget) -> None:
        state = task_queue_target.gateway.get_task(str(uuid.uuid4()))
        assert state.status is TaskStatus.PENDING
        assert state.result is None
        assert state.traceback is None

    @pytest.mark.asyncio
    async def test_round_trip_through_a_worker(self, task_queue_target: TaskQueueTarget) -> None:
        endpoint_id, queue = await self._queue(task_queue_target)
        with worker_thread(task_queue_target.worker_app(), queue):
            check_roundtrip(task_queue_target.gateway, queue)
            deadline = time.monotonic() + 30  # the ack follows the stored result by a moment
            while await message_count(task_queue_target, endpoint_id) != 0:
                assert time.monotonic() < deadline, "the worker did not acknowledge every message"
                time.sleep(0.05)

    @pytest.mark.asyncio
    async def test_limit_is_the_documented_one(self, task_queue_target: TaskQueueTarget) -> None:
        assert task_queue_target.gateway.max_message_bytes == self.max_message_bytes
        endpoint_id, queue = await self._queue(task_queue_target)
        # a quarter of the limit (or 64 KiB) of JSON fits on every broker, whatever its encoding
        fits = (self.max_message_bytes or 256 * KIB) // 4
        task_queue_target.gateway.send_task(PREDICT, queue, args=[{"prompt": "x" * fits}])
        assert await message_count(task_queue_target, endpoint_id) == 1

    @pytest.mark.asyncio
    async def test_payload_over_the_limit(self, task_queue_target: TaskQueueTarget) -> None:
        """Over the limit: refused before any connection; without one, 300 KB (over SQS's and Service Bus's) goes."""
        endpoint_id, queue = await self._queue(task_queue_target)
        limit = self.max_message_bytes
        if limit is None:
            task_queue_target.gateway.send_task(PREDICT, queue, args=[{"prompt": "x" * 300_000}])
            assert await message_count(task_queue_target, endpoint_id) == 1
            return
        gateway = task_queue_target.gateway
        no_connection(gateway)
        with pytest.raises(MessageTooLargeError, match=f"over its limit of {limit} bytes") as err:
            gateway.send_task(PREDICT, queue, args=[{"prompt": "x" * (limit + 1)}])
        assert queue in str(err.value)
        assert await message_count(task_queue_target, endpoint_id) == 0

    def test_unreachable_broker_raises_broker_unavailable_in_bounded_time(
        self, task_queue_target: TaskQueueTarget
    ) -> None:
        gateway = task_queue_target.unreachable()
        try:
            started = time.monotonic()
            with pytest.raises(BrokerUnavailableError, match="the task was not sent") as err:
                gateway.send_task(PREDICT, "launch-endpoint-id-" + new_endpoint_id(), args=[1])
            assert time.monotonic() - started < UNREACHABLE_SECONDS
            assert err.value.__cause__ is not None
        finally:
            gateway.close()

    @pytest.mark.asyncio
    async def test_close_is_idempotent(self, task_queue_target: TaskQueueTarget) -> None:
        _, queue = await self._queue(task_queue_target)
        task_queue_target.gateway.send_task(PREDICT, queue, args=[1])
        task_queue_target.gateway.close()
        task_queue_target.gateway.close()

    # --- queues that do not exist: never created by a send (docs/queues.md) ---------------------------

    @pytest.mark.asyncio
    async def test_send_to_a_queue_that_does_not_exist(self, task_queue_target: TaskQueueTarget) -> None:
        endpoint_id = new_endpoint_id()
        queue = task_queue_target.delegate.queue_name(endpoint_id)
        for _ in range(2):  # the first send and the next one alike
            with pytest.raises(QueueNotFoundError, match="the task was not sent") as err:
                task_queue_target.gateway.send_task(PREDICT, queue, args=[1])
            assert queue in str(err.value)
        with pytest.raises(QueueNotFoundError):  # the send created nothing
            await task_queue_target.delegate.get_queue_attributes(endpoint_id)

    @pytest.mark.asyncio
    async def test_send_to_a_deleted_queue(self, task_queue_target: TaskQueueTarget) -> None:
        endpoint_id, queue = await self._queue(task_queue_target)
        task_queue_target.gateway.send_task(PREDICT, queue, args=[0])
        await task_queue_target.delegate.delete_queue(endpoint_id)
        for _ in range(2):
            with pytest.raises(QueueNotFoundError, match=queue):
                task_queue_target.gateway.send_task(PREDICT, queue, args=[1])
        with pytest.raises(QueueNotFoundError):  # not recreated either
            await task_queue_target.delegate.get_queue_attributes(endpoint_id)
        await self._queue_again(task_queue_target, endpoint_id)
        task_queue_target.gateway.send_task(PREDICT, queue, args=[2])  # created again: sends work again
        assert await message_count(task_queue_target, endpoint_id) == 1

    async def _queue_again(self, task_queue_target: TaskQueueTarget, endpoint_id: str) -> None:
        deadline = time.monotonic() + 90  # SQS refuses to recreate a queue for 60 s after deleting it
        while True:
            try:
                await task_queue_target.delegate.create_queue_if_not_exists(endpoint_id, "again", "contract", {})
                return
            except Exception as err:  # QueueError on SQS within the 60 s
                if time.monotonic() > deadline or "60 s" not in str(err):
                    raise
                time.sleep(2)

    def test_queue_declared_by_a_worker_exists(self, task_queue_target: TaskQueueTarget) -> None:
        """A queue no delegate made (a builder service's queue) exists once a worker consumes it."""
        queue = "worker-declared-" + new_endpoint_id()
        with worker_thread(task_queue_target.worker_app(), queue):
            sent = task_queue_target.gateway.send_task(PREDICT, queue, args=[{"prompt": "b a"}])
            wait_done(task_queue_target.gateway, sent.task_id)
        assert task_queue_target.gateway.get_task(sent.task_id).status is TaskStatus.SUCCESS

    # --- queue names: the broker's own rules, before any call -----------------------------------------

    def test_invalid_queue_names_make_no_call(self, task_queue_target: TaskQueueTarget) -> None:
        gateway = task_queue_target.unreachable()  # any call that goes out would fail differently
        try:
            no_connection(gateway)
            for name in (*INVALID_EVERYWHERE, *self.invalid_queue_names):
                with pytest.raises(InvalidQueueNameError) as err:
                    gateway.send_task(PREDICT, name, args=[1])
                assert self.invalid_name_names_broker is None or self.invalid_name_names_broker in str(err.value), name
        finally:
            gateway.close()

    def test_valid_names_pass_the_rule(self, task_queue_target: TaskQueueTarget) -> None:
        from ...queues.names import check_queue_name

        for name in self.valid_queue_names:
            assert check_queue_name(task_queue_target.gateway.broker.name, name) == name


# Names no broker takes: empty, a newline, longer than every broker's limit.
INVALID_EVERYWHERE = ("", "launch-endpoint-id-x\n", "x" * 300)


# --- the project's own brokers: flags and target builders ------------------------------------------------


class LocalTaskQueueConformance(TaskQueueConformance):
    """kombu's filesystem broker: no size limit."""

    invalid_queue_names = ("a b", "a/b", ".hidden", "..", "x" * 201)
    valid_queue_names = ("q-1", "q.1", "Q_1", "x" * 200)


class ServiceBusTaskQueueConformance(TaskQueueConformance):
    max_message_bytes = 256 * KIB  # Standard tier
    invalid_queue_names = ("a b", "Q1", "q:1", "q/1", "-q", "q-", "x" * 261)
    valid_queue_names = ("q-1", "q.1", "q_1", "x" * 260)


class RedisTaskQueueConformance(TaskQueueConformance):
    """Redis: 512 MB per value, never met first."""

    invalid_queue_names = (
        "unacked",
        "unacked_index",
        "unacked_mutex",
        "_kombu.binding.celery",
        "q:meta",
        "celery-task-meta-1",
    )
    valid_queue_names = ("q.1", "q:1", "Q 1", "celery", "x" * 255)


class SQSTaskQueueConformance(TaskQueueConformance):
    max_message_bytes = 256 * KIB
    invalid_queue_names = ("a b", "x" * 81, "q.1", "q:1", "q/1", "é", ".fifo", "a.b.fifo")
    valid_queue_names = ("q-1", "q_1", "Q1", "x" * 80, "jobs.fifo")
    invalid_name_names_broker = "SQS"


class PubSubTaskQueueConformance(TaskQueueConformance):
    """Pub/Sub: 10 MB per message; kombu's name rewrites refused, ``goog`` reserved."""

    max_message_bytes = 10 * 1000 * 1000
    invalid_queue_names = ("a b", "q.1", "q:1", "q/1", "1q", "qq", "goog-q", "é", "x" * 256)
    valid_queue_names = ("q-1", "q_1", "Q1x", "launch-endpoint-id-e1", "x" * 255)


def local_task_queue_target(tmp_path: Path) -> TaskQueueTarget:
    from ...queues.local import LocalQueueEndpointResourceDelegate, broker_paths_for
    from ...tasks.gateway import CeleryTaskQueueGateway
    from ...tasks.worker import worker_app

    config = InfraConfig(cloud_provider="local", local_data_dir=str(tmp_path / "data"))

    def unreachable() -> CeleryTaskQueueGateway:
        """The broker folder replaced by a file after the gateway was built: kombu cannot write there."""
        down = InfraConfig(cloud_provider="local", local_data_dir=str(tmp_path / "down"))
        gateway = CeleryTaskQueueGateway.from_config(down)
        queue = Path(broker_paths_for(tmp_path / "down")["data_folder_in"])
        queue.rmdir()
        queue.write_text("")
        return gateway

    return TaskQueueTarget(
        name="local",
        config=config,
        gateway=CeleryTaskQueueGateway.from_config(config),
        delegate=LocalQueueEndpointResourceDelegate(broker_paths_for(config.local_data_dir)),
        worker_app=lambda: worker_app(config),
        unreachable=unreachable,
    )


def servicebus_task_queue_target(tmp_path: Path, stack: ExitStack | AsyncExitStack) -> TaskQueueTarget:
    """Service Bus through the SDK-boundary fake (no emulator exists); results in files."""
    from ...queues.servicebus import ServiceBusQueueEndpointResourceDelegate
    from ...tasks.gateway import CeleryTaskQueueGateway
    from ...tasks.worker import worker_app
    from ..servicebus import FakeServiceBusNamespace, patch_kombu_servicebus

    namespace = FakeServiceBusNamespace("contract-ns", max_receive_wait=0.05)
    stack.enter_context(patch_kombu_servicebus(namespace))
    config = InfraConfig(
        cloud_provider="azure",
        servicebus_namespace=namespace.name,
        celery_backend_protocol="file",
        local_data_dir=str(tmp_path / "data"),
    )

    def make_worker_app() -> Celery:
        app = worker_app(config)
        app.conf.broker_transport_options = {**app.conf.broker_transport_options, "polling_interval": 0.05}
        return app

    return TaskQueueTarget(
        name="servicebus",
        config=config,
        gateway=CeleryTaskQueueGateway.from_config(config),
        delegate=ServiceBusQueueEndpointResourceDelegate(namespace.name, admin_client=namespace.admin_client()),
        worker_app=make_worker_app,
        # a namespace the fake does not serve answers like one that cannot be resolved
        unreachable=lambda: CeleryTaskQueueGateway.from_config(
            config.model_copy(update={"servicebus_namespace": "down-ns"})
        ),
    )


def broker_db_url(url: str) -> str:
    """``url`` at the database of onprem's inference queue (24 h: 3), where `redis_task_queue_target` sends."""
    from ...brokers.base import TaskVisibility, with_redis_db

    return with_redis_db(url, TaskVisibility.VISIBILITY_24H.redis_db)


def redis_task_queue_target(*, url: str, async_client: Any, unreachable_url: str) -> TaskQueueTarget:
    """The Redis broker (onprem: 24 h visibility, database 3) with Redis results, at ``url``.

    ``async_client`` is the delegate's, on the broker's database: ``Redis.from_url(broker_db_url(url))``.
    """
    from ...queues.redis import RedisQueueEndpointResourceDelegate
    from ...tasks.gateway import CeleryTaskQueueGateway
    from ...tasks.worker import worker_app

    config = InfraConfig(cloud_provider="onprem", celery_backend_protocol="redis")

    def make_worker_app() -> Celery:
        return worker_app(config, redis=url, broker_transport_options={"polling_interval": 0.05})

    return TaskQueueTarget(
        name="redis",
        config=config,
        gateway=CeleryTaskQueueGateway.from_config(config, redis=url),
        delegate=RedisQueueEndpointResourceDelegate(async_client),
        worker_app=make_worker_app,
        unreachable=lambda: CeleryTaskQueueGateway.from_config(config, redis=unreachable_url),
    )


def sqs_task_queue_target(*, endpoint_url: str | None, bucket: str) -> TaskQueueTarget:
    """SQS with S3 results (the aws defaults); ``endpoint_url`` None means in-process moto."""
    import boto3

    from ...queues.sqs import SQSQueueEndpointResourceDelegate
    from ...tasks.gateway import CeleryTaskQueueGateway
    from ...tasks.worker import worker_app

    boto3.client("s3", region_name="us-east-1", endpoint_url=endpoint_url).create_bucket(Bucket=bucket)
    config = InfraConfig(
        cloud_provider="aws",
        default_region="us-east-1",
        s3_bucket=bucket,
        s3_endpoint_url=endpoint_url,
        redis_host="unused.invalid",  # the cache Redis validation asks for on aws; Celery does not use it
    )
    # a worker without long polling: a 20 s receive would hold its shutdown
    worker_options: dict[str, Any] = {"region": "us-east-1", "wait_time_seconds": 0, "polling_interval": 0.1}

    return TaskQueueTarget(
        name="sqs",
        config=config,
        gateway=CeleryTaskQueueGateway.from_config(config, sqs_endpoint_url=endpoint_url),
        delegate=SQSQueueEndpointResourceDelegate(region="us-east-1", endpoint_url=endpoint_url),
        worker_app=lambda: worker_app(config, sqs_endpoint_url=endpoint_url, broker_transport_options=worker_options),
        unreachable=lambda: CeleryTaskQueueGateway.from_config(
            config,
            sqs_endpoint_url=f"http://127.0.0.1:{closed_port()}",
            broker_transport_options={"region": "us-east-1", "client-config": {"retries": {"max_attempts": 1}}},
        ),
    )


def pubsub_task_queue_target(tmp_path: Path, stack: ExitStack | AsyncExitStack) -> TaskQueueTarget:
    """Pub/Sub through the SDK-boundary fake (no emulator can run here); results in files.

    The delegate cannot count (its count is None), so messages are counted by the fake's backlog.
    """
    from ...queues.pubsub import PubSubQueueEndpointResourceDelegate
    from ...tasks.gateway import CeleryTaskQueueGateway
    from ...tasks.worker import worker_app
    from ..pubsub import FakePubSub, kombu_on_fake

    service = FakePubSub(max_pull_wait=0.05)
    stack.enter_context(kombu_on_fake(service))
    service.faults.unreachable_projects.add("down-project")
    config = InfraConfig(
        cloud_provider="gcp",
        broker="pubsub",
        gcp_project_id="contract-project",
        celery_backend_protocol="file",
        local_data_dir=str(tmp_path / "data"),
    )
    delegate = PubSubQueueEndpointResourceDelegate(
        "contract-project", publisher=service.publisher(), subscriber=service.subscriber()
    )

    def count(endpoint_id: str) -> int:
        return service.backlog(delegate.subscription_path(endpoint_id))

    def make_worker_app() -> Celery:
        app = worker_app(config)
        app.conf.broker_transport_options = {**app.conf.broker_transport_options, "wait_time_seconds": 0.05}
        return app

    return TaskQueueTarget(
        name="pubsub",
        config=config,
        gateway=CeleryTaskQueueGateway.from_config(config),
        delegate=delegate,
        worker_app=make_worker_app,
        unreachable=lambda: CeleryTaskQueueGateway.from_config(
            config.model_copy(update={"gcp_project_id": "down-project"})
        ),
        count=count,
    )
