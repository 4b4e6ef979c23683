"""The Service Bus fake behaves like the service where tests depend on it (see docs/servicebus-fake.md)."""

from __future__ import annotations

import json
from datetime import timedelta

import kombu
import pytest
from azure.core.exceptions import HttpResponseError, ResourceExistsError, ResourceNotFoundError, ServiceRequestError
from azure.servicebus import ServiceBusMessage, ServiceBusReceiveMode, ServiceBusSubQueue
from azure.servicebus.exceptions import (
    MessageAlreadySettled,
    MessageLockLostError,
    MessageSizeExceededError,
    ServiceBusCommunicationError,
    ServiceBusConnectionError,
)

from model_engine_infra.testing.servicebus import (
    STANDARD_MAX_MESSAGE_BYTES,
    FakeAutoLockRenewer,
    FakeServiceBusNamespace,
    encoded_message_size,
    patch_kombu_servicebus,
)

Q = "launch-endpoint-id-fake"


@pytest.fixture
def namespace() -> FakeServiceBusNamespace:
    ns = FakeServiceBusNamespace("unit-ns", max_receive_wait=0.2)
    ns.admin_client().create_queue(Q, lock_duration=timedelta(seconds=30), max_delivery_count=3)
    return ns


def send(ns: FakeServiceBusNamespace, *bodies: str, **client_kwargs: object) -> None:
    with ns.client(**client_kwargs).get_queue_sender(Q) as sender:
        sender.send_messages([ServiceBusMessage(b) for b in bodies])


def counts(ns: FakeServiceBusNamespace) -> tuple[int, int, int]:
    props = ns.admin_client().get_queue_runtime_properties(Q)
    return props.active_message_count, props.dead_letter_message_count, props.scheduled_message_count


# --- administration ---------------------------------------------------------------------------


def test_admin_mirrors_the_sdks_errors(namespace: FakeServiceBusNamespace) -> None:
    admin = namespace.admin_client()
    with pytest.raises(ResourceExistsError):
        admin.create_queue(Q.upper())  # names are case-insensitive
    with pytest.raises(ResourceNotFoundError):
        admin.get_queue("missing")
    with pytest.raises(ResourceNotFoundError):
        admin.get_queue_runtime_properties("missing")
    with pytest.raises(ResourceNotFoundError):
        admin.delete_queue("missing")
    assert [q.name for q in admin.list_queues()] == [Q]


@pytest.mark.parametrize("lock", [timedelta(seconds=301), timedelta(minutes=10), "PT6M", timedelta(seconds=4)])
def test_lock_duration_outside_5s_to_5min_is_refused_with_400(namespace: FakeServiceBusNamespace, lock: object) -> None:
    with pytest.raises(HttpResponseError) as caught:
        namespace.admin_client().create_queue("other", lock_duration=lock)
    assert caught.value.status_code == 400


def test_lock_duration_accepts_timedelta_and_iso_8601(namespace: FakeServiceBusNamespace) -> None:
    admin = namespace.admin_client()
    admin.create_queue("iso", lock_duration="PT1M")  # what kombu sends
    admin.create_queue("maximum", lock_duration=timedelta(minutes=5))
    assert admin.get_queue("iso").lock_duration == timedelta(minutes=1)
    assert admin.get_queue("maximum").lock_duration == timedelta(minutes=5)
    assert admin.get_queue(Q).lock_duration == timedelta(seconds=30)


@pytest.mark.parametrize("name", ["x" * 261, "ends-with-dash-", "-starts", "has space", "a@b", "", "newline\n"])
def test_invalid_queue_names_are_refused(namespace: FakeServiceBusNamespace, name: str) -> None:
    with pytest.raises(HttpResponseError):
        namespace.admin_client().create_queue(name)


def test_unreachable_namespace_and_wrong_host(namespace: FakeServiceBusNamespace) -> None:
    from model_engine_infra.testing.servicebus import FakeServiceBusAdministrationClient, FakeServiceBusClient

    wrong = FakeServiceBusAdministrationClient("other.servicebus.windows.net", namespace=namespace)
    with pytest.raises(ServiceRequestError):
        wrong.get_queue(Q)
    wrong_client = FakeServiceBusClient("other.servicebus.windows.net", namespace=namespace, retry_total=0)
    with pytest.raises(ServiceBusConnectionError):
        wrong_client.get_queue_sender(Q).send_messages(ServiceBusMessage("x"))
    namespace.faults.unreachable = True
    with pytest.raises(ServiceRequestError):
        namespace.admin_client().get_queue(Q)


# --- peek-lock ----------------------------------------------------------------------------------


def test_peek_lock_expires_on_the_fake_clock_and_redelivers(namespace: FakeServiceBusNamespace) -> None:
    send(namespace, "a")
    client = namespace.client()
    receiver = client.get_queue_receiver(Q)
    (first,) = receiver.receive_messages(max_wait_time=0.1)
    assert first.delivery_count == 1
    assert str(first) == "a"
    assert receiver.receive_messages(max_wait_time=0.05) == []  # locked: nobody else gets it
    assert namespace.locked_count(Q) == 1
    assert counts(namespace) == (1, 0, 0)  # active includes locked, as on the service

    namespace.clock.advance(29)
    assert first._lock_expired is False
    namespace.clock.advance(2)
    assert first._lock_expired is True
    (second,) = receiver.receive_messages(max_wait_time=0.1)
    assert second.delivery_count == 2
    with pytest.raises(MessageLockLostError):
        receiver.complete_message(first)
    receiver.complete_message(second)
    with pytest.raises(MessageAlreadySettled):
        receiver.complete_message(second)
    assert counts(namespace) == (0, 0, 0)


def test_abandon_releases_at_once_and_max_delivery_dead_letters(namespace: FakeServiceBusNamespace) -> None:
    send(namespace, "poison")
    receiver = namespace.client().get_queue_receiver(Q)
    for attempt in range(1, 4):
        (message,) = receiver.receive_messages(max_wait_time=0.1)
        assert message.delivery_count == attempt
        receiver.abandon_message(message)
    assert receiver.receive_messages(max_wait_time=0.05) == []
    assert counts(namespace) == (0, 1, 0)
    dead = namespace.client().get_queue_receiver(Q, sub_queue=ServiceBusSubQueue.DEAD_LETTER)
    (message,) = dead.receive_messages(max_wait_time=0.1)
    assert message.dead_letter_reason == "MaxDeliveryCountExceeded"


def test_receive_and_delete_and_renewal(namespace: FakeServiceBusNamespace) -> None:
    send(namespace, "a", "b")
    client = namespace.client()
    deleting = client.get_queue_receiver(Q, receive_mode=ServiceBusReceiveMode.RECEIVE_AND_DELETE)
    assert [str(m) for m in deleting.receive_messages(max_message_count=1, max_wait_time=0.1)] == ["a"]
    locking = client.get_queue_receiver(Q)
    (held,) = locking.receive_messages(max_wait_time=0.1)
    renewer = FakeAutoLockRenewer(max_lock_renewal_duration=120)
    renewer.register(locking, held)
    namespace.clock.advance(100)  # past the 30 s lock, within the renewal window
    assert held._lock_expired is False
    renewer.close()
    namespace.clock.advance(31)
    assert held._lock_expired is True
    assert counts(namespace) == (1, 0, 0)


def test_scheduled_messages_enqueue_when_due(namespace: FakeServiceBusNamespace) -> None:
    with namespace.client().get_queue_sender(Q) as sender:
        sender.schedule_messages(ServiceBusMessage("later"), namespace.clock.now() + timedelta(seconds=60))
    assert counts(namespace) == (0, 0, 1)
    namespace.clock.advance(61)
    assert counts(namespace) == (1, 0, 0)


# --- size limit ---------------------------------------------------------------------------------


def test_standard_tier_refuses_messages_over_256_kb(namespace: FakeServiceBusNamespace) -> None:
    overhead = encoded_message_size(ServiceBusMessage(b"")) + 8
    fits = ServiceBusMessage(b"x" * (STANDARD_MAX_MESSAGE_BYTES - overhead))
    assert encoded_message_size(fits) <= STANDARD_MAX_MESSAGE_BYTES
    with namespace.client().get_queue_sender(Q) as sender:
        sender.send_messages(fits)
        with pytest.raises(MessageSizeExceededError):
            sender.send_messages(ServiceBusMessage(b"x" * STANDARD_MAX_MESSAGE_BYTES))
    assert namespace.stats.sdk_retries == 0  # not retryable, as in the SDK
    assert counts(namespace) == (1, 0, 0)


def test_premium_tier_takes_a_megabyte() -> None:
    premium = FakeServiceBusNamespace("premium-ns", tier="Premium")
    premium.admin_client().create_queue(Q)
    with premium.client().get_queue_sender(Q) as sender:
        sender.send_messages(ServiceBusMessage(b"x" * 900_000))
        with pytest.raises(MessageSizeExceededError):
            sender.send_messages(ServiceBusMessage(b"x" * 1_100_000))


# --- connection faults --------------------------------------------------------------------------


def test_idle_connection_drop_without_keep_alive(namespace: FakeServiceBusNamespace) -> None:
    sender = namespace.client(retry_total=0).get_queue_sender(Q, keep_alive=0)
    sender.send_messages(ServiceBusMessage("warm"))
    namespace.clock.advance(299)
    sender.send_messages(ServiceBusMessage("still open"))
    namespace.clock.advance(301)
    with pytest.raises(ServiceBusConnectionError, match="amqp:connection:forced"):
        sender.send_messages(ServiceBusMessage("after idle"))
    sender.send_messages(ServiceBusMessage("reconnected"))  # the next send opens a new connection
    assert namespace.stats.connections_opened == 2
    assert counts(namespace) == (3, 0, 0)


def test_sdk_retry_hides_the_idle_drop_with_one_backoff(namespace: FakeServiceBusNamespace) -> None:
    sender = namespace.client(retry_total=3, retry_backoff_factor=0.8).get_queue_sender(Q, keep_alive=0)
    sender.send_messages(ServiceBusMessage("warm"))
    namespace.clock.advance(400)
    sender.send_messages(ServiceBusMessage("after idle"))
    assert namespace.stats.sdk_retries == 1
    assert namespace.stats.backoff_seconds == pytest.approx(1.6)
    assert namespace.stats.connections_opened == 2


def test_keep_alive_prevents_the_300s_drop_but_not_the_600s_link_detach(namespace: FakeServiceBusNamespace) -> None:
    sender = namespace.client(retry_total=0).get_queue_sender(Q, keep_alive=30)
    sender.send_messages(ServiceBusMessage("warm"))
    namespace.clock.advance(500)
    sender.send_messages(ServiceBusMessage("kept alive"))
    namespace.clock.advance(601)
    with pytest.raises(ServiceBusConnectionError, match="detach-forced"):
        sender.send_messages(ServiceBusMessage("idle link"))


def test_detached_link_on_first_send(namespace: FakeServiceBusNamespace) -> None:
    namespace.faults.detach_link_on_first_send = True
    with pytest.raises(ServiceBusConnectionError, match="detach-forced"):
        namespace.client(retry_total=0).get_queue_sender(Q).send_messages(ServiceBusMessage("x"))
    namespace.client(retry_total=1).get_queue_sender(Q).send_messages(ServiceBusMessage("y"))
    assert namespace.message_bodies(Q) == [b"y"]


def test_injected_send_failures_and_ambiguous_timeouts(namespace: FakeServiceBusNamespace) -> None:
    namespace.fail_next_send_attempts(2, ServiceBusCommunicationError)
    namespace.client(retry_total=2).get_queue_sender(Q).send_messages(ServiceBusMessage("third try"))
    assert namespace.stats.send_attempts == 3
    namespace.fail_next_send_attempts(1, ServiceBusConnectionError, after_delivery=True)
    with pytest.raises(ServiceBusConnectionError):
        namespace.client(retry_total=0).get_queue_sender(Q).send_messages(ServiceBusMessage("stored anyway"))
    assert namespace.message_bodies(Q) == [b"third try", b"stored anyway"]


def test_drop_connections_and_connection_counting(namespace: FakeServiceBusNamespace) -> None:
    sender = namespace.client(retry_total=3).get_queue_sender(Q)
    for i in range(100):
        sender.send_messages(ServiceBusMessage(str(i)))
    assert namespace.stats.connections_opened == 1
    assert namespace.drop_connections() == 1
    sender.send_messages(ServiceBusMessage("after drop"))
    assert (namespace.stats.connections_opened, namespace.stats.sdk_retries) == (2, 1)
    assert namespace.stats.clients_created == 1


# --- kombu --------------------------------------------------------------------------------------


def test_kombu_runs_on_the_fake_and_the_patch_is_undone() -> None:
    import kombu.transport.azureservicebus as transport

    original = transport.ServiceBusClient
    ns = FakeServiceBusNamespace("kombu-ns", max_receive_wait=0.2)
    with patch_kombu_servicebus(ns):
        connection = kombu.Connection(
            "azureservicebus://DefaultAzureCredential@kombu-ns", transport_options={"wait_time_seconds": 0.2}
        )
        queue = kombu.Queue("launch-endpoint-id-k", routing_key="launch-endpoint-id-k")
        with connection:
            producer = connection.Producer()
            for i in range(3):
                producer.publish({"i": i}, routing_key=queue.routing_key, declare=[queue])
            with connection.SimpleQueue(queue) as simple:
                message = simple.get(timeout=2)
                assert message.payload == {"i": 0}
                message.ack()
        assert ns.admin_client().get_queue_runtime_properties("launch-endpoint-id-k").active_message_count == 2
        assert ns.admin_client().get_queue("launch-endpoint-id-k").lock_duration == timedelta(seconds=60)
        assert ns.stats.credentials_created >= 1
        assert json.loads(ns.message_bodies("launch-endpoint-id-k")[0])["body"]
    assert transport.ServiceBusClient is original
