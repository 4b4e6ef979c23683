"""Conformance for endpoint-queue delegates (`QueueEndpointResourceDelegate`).

Subclass `QueueDelegateConformance`, set its capability flags, and provide a ``queue_target``
fixture returning a `QueueTarget`: the delegate, plus a way to put messages on a queue *with the
broker's own API* (never through the delegate), so the counts check the delegate against what the
broker really holds.

The second half of this module builds targets for the project's own brokers (kombu's filesystem
transport, SQS, Redis lists, Service Bus, Pub/Sub); their SDKs are imported only when a builder is called.
"""

from __future__ import annotations

import asyncio
import datetime
import json
import socket
import uuid
from collections.abc import Awaitable, Callable
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import pytest

from ...errors import BrokerUnavailableError, InvalidQueueNameError, QueueNotFoundError
from ...queues.base import QUEUE_NAME_PREFIX, QueueEndpointResourceDelegate, QueueInfo

LABELS = {"team": "ml", "product": "demo"}
CREATOR = "alice"


@dataclass
class QueueTarget:
    """A delegate plus the broker-side tools the suite needs to check it."""

    delegate: QueueEndpointResourceDelegate
    #: put ``count`` messages on the queue named like this, with the broker's own API (or kombu)
    put_messages: Callable[[str, int], Awaitable[None]]
    #: a delegate for the same broker kind that cannot reach it
    unreachable: Callable[[], QueueEndpointResourceDelegate]
    #: the message timeout the broker keeps for the queue (visibility, lock, stored value)
    read_timeout: Callable[[str], Awaitable[float | None]]
    #: receive ``count`` messages and hold them unacknowledged; None where the broker cannot
    take_in_flight: Callable[[str, int], Awaitable[None]] | None = None
    #: make the queue as the broker's kombu transport does when a task is sent before the delegate ran
    #: (with the transport's own defaults), with one message on it; None: ``put_messages(name, 1)``
    create_like_transport: Callable[[str], Awaitable[None]] | None = None
    name: str = "queue delegate"
    cleanups: list[Callable[[], None]] = field(default_factory=list)


def new_endpoint_id() -> str:
    return "e" + uuid.uuid4().hex[:12]


def closed_port() -> int:
    """A local port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class QueueDelegateConformance:
    """The contract every endpoint-queue delegate keeps. Provide a ``queue_target`` fixture."""

    #: ``approximate_in_flight_count`` reports messages received but not acknowledged (else it is None)
    supports_inflight_count: ClassVar[bool] = True
    #: the endpoint labels come back from ``get_queue_attributes`` (else None)
    keeps_labels: ClassVar[bool] = True
    #: the creator comes back from ``get_queue_attributes`` (else None)
    keeps_creator: ClassVar[bool] = True
    #: ``QueueInfo.queue_url`` is set (and ends with the queue name); else it is None
    has_queue_urls: ClassVar[bool] = False
    #: the longest message timeout the broker keeps; longer requests are capped to it (None: no cap)
    max_message_timeout_seconds: ClassVar[int | None] = None
    #: the broker can count a queue's messages; else ``approximate_message_count`` is None (unknown), never a guess
    counts_messages: ClassVar[bool] = True

    def _count(self, count: int) -> int | None:
        """What ``approximate_message_count`` must say when the broker holds ``count`` messages."""
        return count if self.counts_messages else None

    async def _create(self, target: QueueTarget, endpoint_id: str, timeout: int | None = None) -> QueueInfo:
        return await target.delegate.create_queue_if_not_exists(
            endpoint_id=endpoint_id,
            endpoint_name=f"demo {endpoint_id}",
            endpoint_created_by=CREATOR,
            endpoint_labels=LABELS,
            queue_message_timeout_seconds=timeout,
        )

    @pytest.mark.asyncio
    async def test_create_returns_the_compatible_name(self, queue_target: QueueTarget) -> None:
        endpoint_id = new_endpoint_id()
        info = await self._create(queue_target, endpoint_id)
        assert info.queue_name == f"launch-endpoint-id-{endpoint_id}"
        if self.has_queue_urls:
            assert info.queue_url is not None
            assert info.queue_url.endswith(info.queue_name)
        else:
            assert info.queue_url is None

    @pytest.mark.asyncio
    async def test_create_twice_is_idempotent(self, queue_target: QueueTarget) -> None:
        endpoint_id = new_endpoint_id()
        first = await self._create(queue_target, endpoint_id, timeout=120)
        second = await self._create(queue_target, endpoint_id, timeout=120)
        assert first == second
        attributes = await queue_target.delegate.get_queue_attributes(endpoint_id)
        assert attributes.name == first.queue_name
        assert attributes.approximate_message_count == self._count(0)

    @pytest.mark.asyncio
    async def test_delete_of_a_missing_queue_is_a_noop(self, queue_target: QueueTarget) -> None:
        await queue_target.delegate.delete_queue(new_endpoint_id())

    @pytest.mark.asyncio
    async def test_delete_removes_the_queue_and_is_repeatable(self, queue_target: QueueTarget) -> None:
        endpoint_id = new_endpoint_id()
        info = await self._create(queue_target, endpoint_id)
        await queue_target.put_messages(info.queue_name, 2)
        await queue_target.delegate.delete_queue(endpoint_id)
        with pytest.raises(QueueNotFoundError):
            await queue_target.delegate.get_queue_attributes(endpoint_id)
        await queue_target.delegate.delete_queue(endpoint_id)

    @pytest.mark.asyncio
    async def test_attributes_of_a_missing_queue_raise_not_found(self, queue_target: QueueTarget) -> None:
        with pytest.raises(QueueNotFoundError, match="launch-endpoint-id-"):
            await queue_target.delegate.get_queue_attributes(new_endpoint_id())

    @pytest.mark.asyncio
    async def test_unreachable_broker_raises_broker_unavailable_never_zero(self, queue_target: QueueTarget) -> None:
        delegate = queue_target.unreachable()
        endpoint_id = new_endpoint_id()
        with pytest.raises(BrokerUnavailableError):
            await delegate.get_queue_attributes(endpoint_id)
        with pytest.raises(BrokerUnavailableError):
            await delegate.create_queue_if_not_exists(endpoint_id, "n", CREATOR, LABELS)
        with pytest.raises(BrokerUnavailableError):
            await delegate.delete_queue(endpoint_id)

    @pytest.mark.asyncio
    @pytest.mark.parametrize(
        "endpoint_id", ["has space", "a/b", "a.b", "a:b", "semi;colon", "ünï", "", "*", "trailing-newline\n"]
    )
    async def test_invalid_endpoint_ids_are_refused_before_any_call(
        self, queue_target: QueueTarget, endpoint_id: str
    ) -> None:
        # The unreachable delegate would raise BrokerUnavailableError if any call went out.
        delegate = queue_target.unreachable()
        with pytest.raises(InvalidQueueNameError):
            await delegate.create_queue_if_not_exists(endpoint_id, "n", CREATOR, LABELS)
        with pytest.raises(InvalidQueueNameError):
            await delegate.get_queue_attributes(endpoint_id)
        with pytest.raises(InvalidQueueNameError):
            await delegate.delete_queue(endpoint_id)

    @pytest.mark.asyncio
    async def test_name_length_limit_is_the_brokers(self, queue_target: QueueTarget) -> None:
        limit = type(queue_target.delegate).max_queue_name_length
        room = limit - len(QUEUE_NAME_PREFIX)
        too_long = "x" * (room + 1)
        with pytest.raises(InvalidQueueNameError, match=str(limit)):
            await queue_target.unreachable().create_queue_if_not_exists(too_long, "n", CREATOR, LABELS)
        longest = uuid.uuid4().hex[:8] + "x" * (room - 8)
        info = await self._create(queue_target, longest)
        assert len(info.queue_name) == limit
        await queue_target.delegate.delete_queue(longest)

    @pytest.mark.asyncio
    async def test_message_counts_follow_the_broker(self, queue_target: QueueTarget) -> None:
        endpoint_id = new_endpoint_id()
        info = await self._create(queue_target, endpoint_id)
        await queue_target.put_messages(info.queue_name, 3)
        attributes = await queue_target.delegate.get_queue_attributes(endpoint_id)
        assert attributes.approximate_message_count == self._count(3)
        assert attributes.raw

    @pytest.mark.asyncio
    async def test_messages_in_flight_still_count(self, queue_target: QueueTarget) -> None:
        endpoint_id = new_endpoint_id()
        info = await self._create(queue_target, endpoint_id)
        await queue_target.put_messages(info.queue_name, 3)
        if queue_target.take_in_flight is None:
            assert not self.supports_inflight_count, "a broker that reports in-flight messages must take some"
            attributes = await queue_target.delegate.get_queue_attributes(endpoint_id)
            assert attributes.approximate_in_flight_count is None
            return
        await queue_target.take_in_flight(info.queue_name, 2)
        attributes = await queue_target.delegate.get_queue_attributes(endpoint_id)
        assert attributes.approximate_message_count == self._count(3)
        if self.supports_inflight_count:
            assert attributes.approximate_in_flight_count == 2
        else:
            assert attributes.approximate_in_flight_count is None

    @pytest.mark.asyncio
    async def test_labels_and_creator_round_trip_where_kept(self, queue_target: QueueTarget) -> None:
        endpoint_id = new_endpoint_id()
        await self._create(queue_target, endpoint_id)
        attributes = await queue_target.delegate.get_queue_attributes(endpoint_id, include_tags=True)
        assert attributes.endpoint_labels == (LABELS if self.keeps_labels else None)
        assert attributes.endpoint_created_by == (CREATOR if self.keeps_creator else None)

    @pytest.mark.asyncio
    async def test_works_from_any_event_loop(self, queue_target: QueueTarget) -> None:
        """``asyncio.run`` twice, a loop per thread, and this test's own loop all use one delegate."""
        delegate = queue_target.delegate
        endpoint_id = new_endpoint_id()
        await self._create(queue_target, endpoint_id)

        empty = self._count(0)

        async def count() -> int | None:
            return (await delegate.get_queue_attributes(endpoint_id)).approximate_message_count

        def two_runs() -> list[int | None]:
            return [asyncio.run(count()), asyncio.run(count())]

        assert await asyncio.to_thread(two_runs) == [empty, empty]
        assert await asyncio.gather(*(asyncio.to_thread(asyncio.run, count()) for _ in range(3))) == [empty] * 3
        other = new_endpoint_id()
        await asyncio.to_thread(asyncio.run, self._create(queue_target, other))
        assert await count() == empty
        await delegate.delete_queue(other)
        with pytest.raises(QueueNotFoundError):
            await asyncio.to_thread(asyncio.run, delegate.get_queue_attributes(other))
        await delegate.delete_queue(endpoint_id)

    @pytest.mark.asyncio
    async def test_bulk_read_answers_what_single_reads_do(self, queue_target: QueueTarget) -> None:
        ids = [new_endpoint_id() for _ in range(3)]
        for endpoint_id in ids:
            await self._create(queue_target, endpoint_id)
        info = await self._create(queue_target, ids[1])
        await queue_target.put_messages(info.queue_name, 2)
        missing = new_endpoint_id()
        for include_tags in (False, True):
            many = await queue_target.delegate.get_queue_attributes_many([*ids, missing], include_tags=include_tags)
            singles = [await queue_target.delegate.get_queue_attributes(i, include_tags=include_tags) for i in ids]
            assert list(many) == [*ids, missing]
            assert many[missing] is None
            assert [many[i] for i in ids] == singles
        counts = [self._count(n) for n in (0, 2, 0)]
        assert [many[i].approximate_message_count for i in ids] == counts  # type: ignore[union-attr]
        assert await queue_target.delegate.get_queue_attributes_many([]) == {}

    @pytest.mark.asyncio
    async def test_bulk_read_checks_every_id_first_and_never_guesses(self, queue_target: QueueTarget) -> None:
        delegate = queue_target.unreachable()
        with pytest.raises(InvalidQueueNameError):
            await delegate.get_queue_attributes_many([new_endpoint_id(), "a/b"])
        with pytest.raises(BrokerUnavailableError):
            await delegate.get_queue_attributes_many([new_endpoint_id(), new_endpoint_id()])

    @pytest.mark.asyncio
    async def test_many_concurrent_single_reads_all_succeed(self, queue_target: QueueTarget) -> None:
        ids = [new_endpoint_id() for _ in range(5)]
        for endpoint_id in ids:
            await self._create(queue_target, endpoint_id)
        answers = await asyncio.gather(*(queue_target.delegate.get_queue_attributes(ids[i % 5]) for i in range(200)))
        assert [a.name for a in answers] == [f"{QUEUE_NAME_PREFIX}{ids[i % 5]}" for i in range(200)]

    @pytest.mark.asyncio
    async def test_message_timeout_is_applied(self, queue_target: QueueTarget) -> None:
        endpoint_id = new_endpoint_id()
        info = await self._create(queue_target, endpoint_id, timeout=600)
        assert await queue_target.read_timeout(info.queue_name) == self._kept(600)

    def _kept(self, seconds: int) -> float:
        """The message timeout the broker keeps for a requested one (capped where the broker caps it)."""
        cap = self.max_message_timeout_seconds
        return float(seconds if cap is None else min(seconds, cap))

    @pytest.mark.asyncio
    async def test_create_again_brings_the_queue_in_line_with_the_request(self, queue_target: QueueTarget) -> None:
        endpoint_id = new_endpoint_id()
        first = await self._create(queue_target, endpoint_id, timeout=120)
        labels = {"team": "other", "product": "renamed"}
        again = await queue_target.delegate.create_queue_if_not_exists(endpoint_id, "renamed", "bob", labels, 600)
        assert again == first
        assert await queue_target.read_timeout(again.queue_name) == self._kept(600)
        attributes = await queue_target.delegate.get_queue_attributes(endpoint_id, include_tags=True)
        assert attributes.endpoint_labels == (labels if self.keeps_labels else None)
        assert attributes.endpoint_created_by == ("bob" if self.keeps_creator else None)

    @pytest.mark.asyncio
    async def test_a_queue_the_transport_made_first_follows_the_request(self, queue_target: QueueTarget) -> None:
        """A task sent before the endpoint's queue existed: kombu made the queue, with its own settings."""
        endpoint_id = new_endpoint_id()
        name = QUEUE_NAME_PREFIX + endpoint_id
        if queue_target.create_like_transport is not None:
            await queue_target.create_like_transport(name)
        else:
            await queue_target.put_messages(name, 1)
        await self._create(queue_target, endpoint_id, timeout=600)
        assert await queue_target.read_timeout(name) == self._kept(600)
        attributes = await queue_target.delegate.get_queue_attributes(endpoint_id, include_tags=True)
        assert attributes.endpoint_labels == (LABELS if self.keeps_labels else None)
        assert attributes.endpoint_created_by == (CREATOR if self.keeps_creator else None)
        assert attributes.approximate_message_count == self._count(1)  # the transport's message is still there


# --- the project's own brokers: flags and target builders ------------------------------------------------


class LocalQueueDelegateConformance(QueueDelegateConformance):
    """kombu's filesystem broker: a message file is gone once taken, so nothing is ever in flight."""

    supports_inflight_count = False


class SQSQueueDelegateConformance(QueueDelegateConformance):
    keeps_labels = False  # the tag template carries id, name and creator only
    has_queue_urls = True


class RedisQueueDelegateConformance(QueueDelegateConformance):
    """Redis lists in kombu's layout: defaults throughout."""


class ServiceBusQueueDelegateConformance(QueueDelegateConformance):
    supports_inflight_count = False  # the service does not report locked messages
    max_message_timeout_seconds = 300  # the service's cap on lock_duration


class PubSubQueueDelegateConformance(QueueDelegateConformance):
    """Pub/Sub cannot count a subscription's messages at all (Cloud Monitoring can, minutes late)."""

    counts_messages = False
    supports_inflight_count = False
    max_message_timeout_seconds = 600  # Pub/Sub's cap on ack deadlines


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


def _kombu_queue(name: str) -> Any:
    """How Celery declares a queue it routes to by name: a direct exchange of the same name."""
    from kombu.entity import Exchange, Queue

    exchange: Any = Exchange
    queue: Any = Queue
    return queue(name, exchange(name, type="direct"), routing_key=name)


def kombu_put(connection: Any, name: str, count: int) -> None:
    queue = _kombu_queue(name)
    with connection.clone() as conn:
        producer = conn.Producer()
        for i in range(count):
            producer.publish({"n": i}, exchange=queue.exchange, routing_key=name, declare=[queue])


def kombu_hold_unacked(connection: Any, name: str, count: int, stack: ExitStack) -> None:
    """Fetch ``count`` messages without acking them; the connection stays open until ``stack`` closes."""
    conn = stack.enter_context(connection.clone())
    channel = conn.channel()
    stack.callback(channel.close)
    for _ in range(count):
        assert channel.basic_get(name, no_ack=False) is not None


def local_queue_target(tmp_path: Path) -> QueueTarget:
    from kombu.connection import Connection

    from ...queues.local import LocalQueueEndpointResourceDelegate, broker_paths_for, ensure_broker_dirs

    paths = broker_paths_for(tmp_path / "data")
    options = {k: v for k, v in paths.items() if k != "meta_folder"}
    connection: Any = Connection("filesystem://", transport_options=options)  # type: ignore[no-untyped-call]
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")

    async def put(name: str, count: int) -> None:
        await asyncio.to_thread(kombu_put, connection, name, count)

    async def read_timeout(name: str) -> float | None:
        meta = json.loads((Path(paths["meta_folder"]) / f"{name}.json").read_text())
        return float(meta["queue_message_timeout_seconds"])

    async def create_like_transport(name: str) -> None:
        ensure_broker_dirs(paths)  # what the Celery app does before kombu writes
        await put(name, 1)

    return QueueTarget(
        name="local",
        delegate=LocalQueueEndpointResourceDelegate(paths),
        put_messages=put,
        unreachable=lambda: LocalQueueEndpointResourceDelegate(broker_paths_for(blocker / "data")),
        read_timeout=read_timeout,
        create_like_transport=create_like_transport,
    )


def sqs_queue_target(*, endpoint_url: str | None) -> QueueTarget:
    """SQS at ``endpoint_url`` (None: wherever boto3 points, e.g. moto's ``mock_aws``)."""
    import boto3
    from botocore.config import Config

    from ...queues.sqs import SQSQueueEndpointResourceDelegate

    client = boto3.client("sqs", region_name="us-east-1", endpoint_url=endpoint_url)
    fast_fail = Config(retries={"total_max_attempts": 1}, connect_timeout=1, read_timeout=2)
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

    async def create_like_transport(name: str) -> None:
        def create() -> None:  # kombu's SQS channel: its visibility_timeout (1800 s), no tags, no policy
            made = client.create_queue(QueueName=name, Attributes={"VisibilityTimeout": "1800"})
            client.send_message(QueueUrl=made["QueueUrl"], MessageBody="{}")

        await asyncio.to_thread(create)

    return QueueTarget(
        name="sqs",
        delegate=delegate,
        put_messages=put,
        unreachable=lambda: SQSQueueEndpointResourceDelegate(
            region="us-east-1", endpoint_url=f"http://127.0.0.1:{closed_port()}", client_config=fast_fail
        ),
        read_timeout=read_timeout,
        take_in_flight=take,
        create_like_transport=create_like_transport,
    )


def redis_queue_target(
    *, async_client: Any, kombu_connection: Any, unreachable: Callable[[], Any], stack: ExitStack
) -> QueueTarget:
    """Redis lists read by the delegate, written and held by real kombu.

    ``async_client`` is a client, or (as `build_delegate` passes) a callable giving the running loop's client.
    """
    from ...queues.redis import META_SUFFIX, RedisQueueEndpointResourceDelegate

    client_for_loop = async_client if callable(async_client) else (lambda: async_client)

    async def put(name: str, count: int) -> None:
        await asyncio.to_thread(kombu_put, kombu_connection, name, count)

    async def take(name: str, count: int) -> None:
        await asyncio.to_thread(kombu_hold_unacked, kombu_connection, name, count, stack)

    async def read_timeout(name: str) -> float | None:
        value = await client_for_loop().hget(name + META_SUFFIX, "queue_message_timeout_seconds")
        return float(value)

    return QueueTarget(
        name="redis",
        delegate=RedisQueueEndpointResourceDelegate(async_client),
        put_messages=put,
        unreachable=lambda: RedisQueueEndpointResourceDelegate(unreachable()),
        read_timeout=read_timeout,
        take_in_flight=take,
    )


def servicebus_queue_target() -> QueueTarget:
    """Service Bus through the SDK-boundary fake (`model_engine_infra.testing.servicebus`)."""
    from azure.servicebus import ServiceBusMessage, ServiceBusReceiveMode

    from ...queues.servicebus import ServiceBusQueueEndpointResourceDelegate
    from ..servicebus import FakeServiceBusNamespace

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
        duration: Any = namespace.admin_client().get_queue(name).lock_duration
        return float(duration.total_seconds())

    async def create_like_transport(name: str) -> None:
        # kombu's Service Bus channel: create_queue with its peek_lock_seconds (60 s), nothing else
        namespace.admin_client().create_queue(name, lock_duration=datetime.timedelta(seconds=60))
        await put(name, 1)

    def unreachable() -> QueueEndpointResourceDelegate:
        down = FakeServiceBusNamespace("down-ns")
        down.faults.unreachable = True
        return ServiceBusQueueEndpointResourceDelegate(down.name, admin_client=down.admin_client())

    return QueueTarget(
        name="servicebus",
        delegate=ServiceBusQueueEndpointResourceDelegate(namespace.name, admin_client=namespace.admin_client()),
        put_messages=put,
        unreachable=unreachable,
        read_timeout=read_timeout,
        take_in_flight=take,
        create_like_transport=create_like_transport,
    )


def pubsub_queue_target() -> QueueTarget:
    """Pub/Sub through the SDK-boundary fake (`model_engine_infra.testing.pubsub`): messages are
    published with the publisher client and held with a pull, never through the delegate."""
    from ...queues.pubsub import PubSubQueueEndpointResourceDelegate
    from ..pubsub import FakePubSub

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

    async def create_like_transport(name: str) -> None:
        # kombu's Pub/Sub channel: a topic and a subscription with its ack_deadline_seconds (240 s), no labels
        topic = publisher.topic_path(project, name)
        publisher.create_topic(request={"name": topic})
        subscription = subscriber.subscription_path(project, name)
        subscriber.create_subscription(request={"name": subscription, "topic": topic, "ack_deadline_seconds": 240})
        await put(name, 1)

    def unreachable() -> QueueEndpointResourceDelegate:
        down = FakePubSub()
        down.faults.unreachable = True
        return PubSubQueueEndpointResourceDelegate(project, publisher=down.publisher(), subscriber=down.subscriber())

    return QueueTarget(
        name="pubsub",
        delegate=PubSubQueueEndpointResourceDelegate(project, publisher=publisher, subscriber=subscriber),
        put_messages=put,
        unreachable=unreachable,
        read_timeout=read_timeout,
        take_in_flight=take,
        create_like_transport=create_like_transport,
    )
