"""One contract for every endpoint-queue delegate: local, SQS, Redis and Service Bus.

`QueueDelegateContract` holds the tests; a module runs them by subclassing it and providing a
``backend`` fixture that yields a `QueueBackend`. Here the backends are in-process (kombu's
filesystem transport, moto's ``mock_aws``, fakeredis driven by real kombu, the Service Bus fake);
integration/test_queue_delegate_servers.py runs the same class against moto_server and
redis-server. Messages are put with each broker's own API or with kombu, never through the
delegate, so the counts check the delegate against what the broker really holds.
"""

from __future__ import annotations

import asyncio
import json
import socket
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import fakeredis
import kombu
import kombu.transport.redis
import pytest
from azure.servicebus import ServiceBusMessage, ServiceBusReceiveMode
from botocore.config import Config
from moto import mock_aws

from model_engine_infra.errors import BrokerUnavailableError, InvalidQueueNameError, QueueNotFoundError
from model_engine_infra.queues.base import QUEUE_NAME_PREFIX, QueueEndpointResourceDelegate
from model_engine_infra.queues.local import LocalQueueEndpointResourceDelegate, broker_paths_for
from model_engine_infra.queues.pubsub import PubSubQueueEndpointResourceDelegate
from model_engine_infra.queues.redis import META_SUFFIX, RedisQueueEndpointResourceDelegate
from model_engine_infra.queues.servicebus import ServiceBusQueueEndpointResourceDelegate
from model_engine_infra.queues.sqs import SQSQueueEndpointResourceDelegate
from model_engine_infra.testing.pubsub import FakePubSub
from model_engine_infra.testing.redis import InMemoryRedisConnection
from model_engine_infra.testing.servicebus import FakeServiceBusNamespace

LABELS = {"team": "ml", "product": "demo"}
CREATOR = "alice"
# The reference deployment's templates (cloud-support-matrix, section 2).
POLICY_TEMPLATE = """{
  "Version": "2012-10-17",
  "Id": "__default_policy_ID",
  "Statement": [{"Sid": "__owner_statement", "Effect": "Allow",
                 "Principal": {"AWS": "arn:aws:iam::000000000000:root"}, "Action": "sqs:*",
                 "Resource": "arn:aws:sqs:us-east-1:000000000000:${queue_name}"}]
}"""
TAG_TEMPLATE = """{
  "Spellbook-Serve-Endpoint-Id": "${endpoint_id}",
  "Spellbook-Serve-Endpoint-Name": "${endpoint_name}",
  "Spellbook-Serve-Endpoint-Created-By": "${endpoint_created_by}"
}"""
FAST_FAIL = Config(retries={"total_max_attempts": 1}, connect_timeout=1, read_timeout=2)


@dataclass
class QueueBackend:
    """A delegate plus the broker-side tools the contract needs to check it."""

    name: str
    delegate: QueueEndpointResourceDelegate
    #: put ``count`` messages on the queue with the broker's own API (or kombu)
    put_messages: Callable[[str, int], Awaitable[None]]
    #: a delegate for the same broker kind that cannot reach it
    unreachable: Callable[[], QueueEndpointResourceDelegate]
    #: the message timeout the broker keeps for the queue (visibility, lock, stored value)
    read_timeout: Callable[[str], Awaitable[float | None]]
    #: what the broker keeps for a requested timeout (Service Bus caps at 300 s)
    expected_timeout: Callable[[int], float]
    #: receive ``count`` messages and hold them unacknowledged; None where the broker cannot
    take_in_flight: Callable[[str, int], Awaitable[None]] | None = None
    reports_in_flight: bool = False
    keeps_labels: bool = True
    keeps_creator: bool = True
    has_urls: bool = False
    #: the broker can count a queue's messages; else the count is None (unknown), never a guess
    counts_messages: bool = True
    cleanups: list[Callable[[], None]] = field(default_factory=list)


def new_endpoint_id() -> str:
    return "e" + uuid.uuid4().hex[:12]


def closed_port() -> int:
    """A local port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class QueueDelegateContract:
    """The contract every delegate meets; subclass it next to a ``backend`` fixture."""

    async def _create(self, backend: QueueBackend, endpoint_id: str, timeout: int | None = None) -> Any:
        return await backend.delegate.create_queue_if_not_exists(
            endpoint_id=endpoint_id,
            endpoint_name=f"demo {endpoint_id}",
            endpoint_created_by=CREATOR,
            endpoint_labels=LABELS,
            queue_message_timeout_seconds=timeout,
        )

    async def test_create_returns_the_compatible_name(self, backend: QueueBackend) -> None:
        endpoint_id = new_endpoint_id()
        info = await self._create(backend, endpoint_id)
        assert info.queue_name == f"launch-endpoint-id-{endpoint_id}"
        if backend.has_urls:
            assert info.queue_url is not None
            assert info.queue_url.endswith(info.queue_name)
        else:
            assert info.queue_url is None

    async def test_create_twice_is_idempotent(self, backend: QueueBackend) -> None:
        endpoint_id = new_endpoint_id()
        first = await self._create(backend, endpoint_id, timeout=120)
        second = await self._create(backend, endpoint_id, timeout=120)
        assert first == second
        attributes = await backend.delegate.get_queue_attributes(endpoint_id)
        assert attributes.name == first.queue_name
        assert attributes.approximate_message_count == (0 if backend.counts_messages else None)

    async def test_delete_of_a_missing_queue_is_a_noop(self, backend: QueueBackend) -> None:
        await backend.delegate.delete_queue(new_endpoint_id())

    async def test_delete_removes_the_queue_and_is_repeatable(self, backend: QueueBackend) -> None:
        endpoint_id = new_endpoint_id()
        info = await self._create(backend, endpoint_id)
        await backend.put_messages(info.queue_name, 2)
        await backend.delegate.delete_queue(endpoint_id)
        with pytest.raises(QueueNotFoundError):
            await backend.delegate.get_queue_attributes(endpoint_id)
        await backend.delegate.delete_queue(endpoint_id)

    async def test_attributes_of_a_missing_queue_raise_not_found(self, backend: QueueBackend) -> None:
        with pytest.raises(QueueNotFoundError, match="launch-endpoint-id-"):
            await backend.delegate.get_queue_attributes(new_endpoint_id())

    async def test_unreachable_broker_raises_broker_unavailable_never_zero(self, backend: QueueBackend) -> None:
        delegate = backend.unreachable()
        endpoint_id = new_endpoint_id()
        with pytest.raises(BrokerUnavailableError):
            await delegate.get_queue_attributes(endpoint_id)
        with pytest.raises(BrokerUnavailableError):
            await delegate.create_queue_if_not_exists(endpoint_id, "n", CREATOR, LABELS)
        with pytest.raises(BrokerUnavailableError):
            await delegate.delete_queue(endpoint_id)

    @pytest.mark.parametrize(
        "endpoint_id", ["has space", "a/b", "a.b", "a:b", "semi;colon", "ünï", "", "*", "trailing-newline\n"]
    )
    async def test_invalid_endpoint_ids_are_refused_before_any_call(
        self, backend: QueueBackend, endpoint_id: str
    ) -> None:
        # The unreachable delegate would raise BrokerUnavailableError if any call went out.
        delegate = backend.unreachable()
        with pytest.raises(InvalidQueueNameError):
            await delegate.create_queue_if_not_exists(endpoint_id, "n", CREATOR, LABELS)
        with pytest.raises(InvalidQueueNameError):
            await delegate.get_queue_attributes(endpoint_id)
        with pytest.raises(InvalidQueueNameError):
            await delegate.delete_queue(endpoint_id)

    async def test_name_length_limit_is_the_brokers(self, backend: QueueBackend) -> None:
        limit = type(backend.delegate).max_queue_name_length
        room = limit - len(QUEUE_NAME_PREFIX)
        too_long = "x" * (room + 1)
        with pytest.raises(InvalidQueueNameError, match=str(limit)):
            await backend.unreachable().create_queue_if_not_exists(too_long, "n", CREATOR, LABELS)
        longest = uuid.uuid4().hex[:8] + "x" * (room - 8)
        info = await self._create(backend, longest)
        assert len(info.queue_name) == limit
        await backend.delegate.delete_queue(longest)

    async def test_message_counts_follow_the_broker(self, backend: QueueBackend) -> None:
        endpoint_id = new_endpoint_id()
        info = await self._create(backend, endpoint_id)
        await backend.put_messages(info.queue_name, 3)
        attributes = await backend.delegate.get_queue_attributes(endpoint_id)
        assert attributes.approximate_message_count == (3 if backend.counts_messages else None)
        assert attributes.raw

    async def test_messages_in_flight_still_count(self, backend: QueueBackend) -> None:
        endpoint_id = new_endpoint_id()
        info = await self._create(backend, endpoint_id)
        await backend.put_messages(info.queue_name, 3)
        if backend.take_in_flight is None:
            attributes = await backend.delegate.get_queue_attributes(endpoint_id)
            assert attributes.approximate_in_flight_count is None
            return
        await backend.take_in_flight(info.queue_name, 2)
        attributes = await backend.delegate.get_queue_attributes(endpoint_id)
        assert attributes.approximate_message_count == (3 if backend.counts_messages else None)
        if backend.reports_in_flight:
            assert attributes.approximate_in_flight_count == 2
        else:
            assert attributes.approximate_in_flight_count is None

    async def test_labels_and_creator_round_trip_where_kept(self, backend: QueueBackend) -> None:
        endpoint_id = new_endpoint_id()
        await self._create(backend, endpoint_id)
        attributes = await backend.delegate.get_queue_attributes(endpoint_id, include_tags=True)
        assert attributes.endpoint_labels == (LABELS if backend.keeps_labels else None)
        assert attributes.endpoint_created_by == (CREATOR if backend.keeps_creator else None)

    async def test_works_from_any_event_loop(self, backend: QueueBackend) -> None:
        """``asyncio.run`` twice, a loop per thread, and this test's own loop all use one delegate."""
        delegate = backend.delegate
        endpoint_id = new_endpoint_id()
        await self._create(backend, endpoint_id)

        empty = 0 if backend.counts_messages else None

        async def count() -> int | None:
            return (await delegate.get_queue_attributes(endpoint_id)).approximate_message_count

        def two_runs() -> list[int | None]:
            return [asyncio.run(count()), asyncio.run(count())]

        assert await asyncio.to_thread(two_runs) == [empty, empty]
        assert await asyncio.gather(*(asyncio.to_thread(asyncio.run, count()) for _ in range(3))) == [empty] * 3
        other = new_endpoint_id()
        await asyncio.to_thread(asyncio.run, self._create(backend, other))
        assert await count() == empty
        await delegate.delete_queue(other)
        with pytest.raises(QueueNotFoundError):
            await asyncio.to_thread(asyncio.run, delegate.get_queue_attributes(other))
        await delegate.delete_queue(endpoint_id)

    async def test_bulk_read_answers_what_single_reads_do(self, backend: QueueBackend) -> None:
        ids = [new_endpoint_id() for _ in range(3)]
        for endpoint_id in ids:
            await self._create(backend, endpoint_id)
        info = await self._create(backend, ids[1])
        await backend.put_messages(info.queue_name, 2)
        missing = new_endpoint_id()
        for include_tags in (False, True):
            many = await backend.delegate.get_queue_attributes_many([*ids, missing], include_tags=include_tags)
            singles = [await backend.delegate.get_queue_attributes(i, include_tags=include_tags) for i in ids]
            assert list(many) == [*ids, missing]
            assert many[missing] is None
            assert [many[i] for i in ids] == singles
        counts = [0, 2, 0] if backend.counts_messages else [None] * 3
        assert [many[i].approximate_message_count for i in ids] == counts  # type: ignore[union-attr]
        assert await backend.delegate.get_queue_attributes_many([]) == {}

    async def test_bulk_read_checks_every_id_first_and_never_guesses(self, backend: QueueBackend) -> None:
        delegate = backend.unreachable()
        with pytest.raises(InvalidQueueNameError):
            await delegate.get_queue_attributes_many([new_endpoint_id(), "a/b"])
        with pytest.raises(BrokerUnavailableError):
            await delegate.get_queue_attributes_many([new_endpoint_id(), new_endpoint_id()])

    async def test_many_concurrent_single_reads_all_succeed(self, backend: QueueBackend) -> None:
        ids = [new_endpoint_id() for _ in range(5)]
        for endpoint_id in ids:
            await self._create(backend, endpoint_id)
        answers = await asyncio.gather(*(backend.delegate.get_queue_attributes(ids[i % 5]) for i in range(200)))
        assert [a.name for a in answers] == [f"{QUEUE_NAME_PREFIX}{ids[i % 5]}" for i in range(200)]

    async def test_message_timeout_is_applied(self, backend: QueueBackend) -> None:
        endpoint_id = new_endpoint_id()
        info = await self._create(backend, endpoint_id, timeout=600)
        assert await backend.read_timeout(info.queue_name) == backend.expected_timeout(600)


# --- in-process backends ------------------------------------------------------------------------


def _kombu_queue(name: str) -> kombu.Queue:
    """How Celery declares a queue it routes to by name: a direct exchange of the same name."""
    return kombu.Queue(name, kombu.Exchange(name, type="direct"), routing_key=name)


def kombu_put(connection: kombu.Connection, name: str, count: int) -> None:
    queue = _kombu_queue(name)
    with connection.clone() as conn:
        producer = conn.Producer()
        for i in range(count):
            producer.publish({"n": i}, exchange=queue.exchange, routing_key=name, declare=[queue])


def kombu_hold_unacked(connection: kombu.Connection, name: str, count: int, stack: ExitStack) -> None:
    """Fetch ``count`` messages without acking them; the connection stays open until ``stack`` closes."""
    conn = stack.enter_context(connection.clone())
    channel = conn.channel()
    stack.callback(channel.close)
    for _ in range(count):
        assert channel.basic_get(name, no_ack=False) is not None


def local_backend(tmp_path: Path) -> QueueBackend:
    paths = broker_paths_for(tmp_path / "data")
    options = {k: v for k, v in paths.items() if k != "meta_folder"}
    connection = kombu.Connection("filesystem://", transport_options=options)
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")

    async def put(name: str, count: int) -> None:
        await asyncio.to_thread(kombu_put, connection, name, count)

    async def read_timeout(name: str) -> float | None:
        meta = json.loads((Path(paths["meta_folder"]) / f"{name}.json").read_text())
        return meta["queue_message_timeout_seconds"]  # type: ignore[no-any-return]

    return QueueBackend(
        name="local",
        delegate=LocalQueueEndpointResourceDelegate(paths),
        put_messages=put,
        unreachable=lambda: LocalQueueEndpointResourceDelegate(broker_paths_for(blocker / "data")),
        read_timeout=read_timeout,
        expected_timeout=float,
    )


def sqs_backend(*, endpoint_url: str | None) -> QueueBackend:
    client = boto3.client("sqs", region_name="us-east-1", endpoint_url=endpoint_url)
    delegate = SQSQueueEndpointResourceDelegate(
        region="us-east-1",
        profile="default",
        endpoint_url=endpoint_url,
        policy_template=POLICY_TEMPLATE,
        tag_template=TAG_TEMPLATE,
    )

    def url(name: str) -> str:
        return str(client.get_queue_url(QueueName=name)["QueueUrl"])

    async def put(name: str, count: int) -> None:
        def send() -> None:
            for i in range(count):
                client.send_message(QueueUrl=url(name), MessageBody=json.dumps({"n": i}))

        await asyncio.to_thread(send)

    async def take(name: str, count: int) -> None:
        def receive() -> None:
            taken = 0
            while taken < count:
                answer = client.receive_message(
                    QueueUrl=url(name), MaxNumberOfMessages=count - taken, VisibilityTimeout=600
                )
                taken += len(answer.get("Messages", []))

        await asyncio.to_thread(receive)

    async def read_timeout(name: str) -> float | None:
        attributes = client.get_queue_attributes(QueueUrl=url(name), AttributeNames=["VisibilityTimeout"])
        return float(attributes["Attributes"]["VisibilityTimeout"])

    return QueueBackend(
        name="sqs",
        delegate=delegate,
        put_messages=put,
        unreachable=lambda: SQSQueueEndpointResourceDelegate(
            region="us-east-1", endpoint_url=f"http://127.0.0.1:{closed_port()}", client_config=FAST_FAIL
        ),
        read_timeout=read_timeout,
        expected_timeout=float,
        take_in_flight=take,
        reports_in_flight=True,
        keeps_labels=False,  # the tag template carries id, name and creator only
        has_urls=True,
    )


def redis_backend(
    *, async_client: Any, kombu_connection: kombu.Connection, unreachable: Callable[[], Any], stack: ExitStack
) -> QueueBackend:
    """``async_client`` is a client, or (as `build_delegate` passes) a callable giving the running loop's client."""
    client_for_loop = async_client if callable(async_client) else (lambda: async_client)

    async def put(name: str, count: int) -> None:
        await asyncio.to_thread(kombu_put, kombu_connection, name, count)

    async def take(name: str, count: int) -> None:
        await asyncio.to_thread(kombu_hold_unacked, kombu_connection, name, count, stack)

    async def read_timeout(name: str) -> float | None:
        value = await client_for_loop().hget(name + META_SUFFIX, "queue_message_timeout_seconds")
        return float(value)

    return QueueBackend(
        name="redis",
        delegate=RedisQueueEndpointResourceDelegate(async_client),
        put_messages=put,
        unreachable=lambda: RedisQueueEndpointResourceDelegate(unreachable()),
        read_timeout=read_timeout,
        expected_timeout=float,
        take_in_flight=take,
        reports_in_flight=True,
    )


def servicebus_backend() -> QueueBackend:
    namespace = FakeServiceBusNamespace("contract-ns", max_receive_wait=0.5)
    client = namespace.client()
    held: list[Any] = []

    async def put(name: str, count: int) -> None:
        with client.get_queue_sender(name) as sender:
            sender.send_messages([ServiceBusMessage(json.dumps({"n": i})) for i in range(count)])

    async def take(name: str, count: int) -> None:
        receiver = client.get_queue_receiver(name, receive_mode=ServiceBusReceiveMode.PEEK_LOCK)
        held.append(receiver)
        assert len(receiver.receive_messages(max_message_count=count, max_wait_time=1)) == count

    async def read_timeout(name: str) -> float | None:
        return float(namespace.admin_client().get_queue(name).lock_duration.total_seconds())

    def unreachable() -> QueueEndpointResourceDelegate:
        down = FakeServiceBusNamespace("down-ns")
        down.faults.unreachable = True
        return ServiceBusQueueEndpointResourceDelegate(down.name, admin_client=down.admin_client())

    return QueueBackend(
        name="servicebus",
        delegate=ServiceBusQueueEndpointResourceDelegate(namespace.name, admin_client=namespace.admin_client()),
        put_messages=put,
        unreachable=unreachable,
        read_timeout=read_timeout,
        expected_timeout=lambda seconds: float(min(seconds, 300)),  # the service's cap on lock_duration
        take_in_flight=take,
        reports_in_flight=False,  # the service does not report locked messages
    )


def pubsub_backend() -> QueueBackend:
    """Pub/Sub through the SDK-boundary fake: messages are published with the publisher client."""
    service = FakePubSub()
    publisher, subscriber = service.publisher(), service.subscriber()
    project = "contract-project"

    async def put(name: str, count: int) -> None:
        topic = publisher.topic_path(project, name)
        for i in range(count):
            publisher.publish(topic, json.dumps({"n": i}).encode()).result()
        assert service.backlog(subscriber.subscription_path(project, name)) >= count

    async def take(name: str, count: int) -> None:
        response = subscriber.pull(
            request={"subscription": subscriber.subscription_path(project, name), "max_messages": count}
        )
        assert len(response.received_messages) == count

    async def read_timeout(name: str) -> float | None:
        resource = subscriber.get_subscription(request={"subscription": subscriber.subscription_path(project, name)})
        return float(resource.ack_deadline_seconds)

    def unreachable() -> QueueEndpointResourceDelegate:
        down = FakePubSub()
        down.faults.unreachable = True
        return PubSubQueueEndpointResourceDelegate(project, publisher=down.publisher(), subscriber=down.subscriber())

    return QueueBackend(
        name="pubsub",
        delegate=PubSubQueueEndpointResourceDelegate(project, publisher=publisher, subscriber=subscriber),
        put_messages=put,
        unreachable=unreachable,
        read_timeout=read_timeout,
        expected_timeout=lambda seconds: float(min(seconds, 600)),  # Pub/Sub's cap on ack deadlines
        take_in_flight=take,
        reports_in_flight=False,  # Pub/Sub cannot count at all
        counts_messages=False,
    )


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


@pytest.fixture(params=["local", "sqs", "redis", "servicebus", "pubsub"])
async def backend(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[QueueBackend]:
    with ExitStack() as stack:
        if request.param == "local":
            built = local_backend(tmp_path)
        elif request.param == "sqs":
            stack.enter_context(mock_aws())
            built = sqs_backend(endpoint_url=None)
        elif request.param == "redis":
            server = request.getfixturevalue("fake_redis_server")
            built = redis_backend(
                async_client=InMemoryRedisConnection(server).async_client,  # one client per event loop
                kombu_connection=kombu.Connection("redis://fake-redis:6379/0"),
                unreachable=_unreachable_fake_redis,
                stack=stack,
            )
        elif request.param == "pubsub":
            built = pubsub_backend()
        else:
            built = servicebus_backend()
        yield built
        await built.delegate.close()


class TestQueueDelegateContract(QueueDelegateContract):
    """The contract on in-process brokers."""
