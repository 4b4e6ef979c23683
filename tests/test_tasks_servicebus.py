"""Celery on Service Bus through the SDK-boundary fake: publish retry, size limit, unreachable namespace."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from model_engine_infra.brokers.servicebus import SEND_SDK_RETRIES
from model_engine_infra.config import InfraConfig
from model_engine_infra.errors import BrokerUnavailableError, MessageTooLargeError
from model_engine_infra.tasks.gateway import CeleryTaskQueueGateway
from model_engine_infra.testing.queues import declare_queue
from model_engine_infra.testing.servicebus import FakeServiceBusNamespace, patch_kombu_servicebus

CONFIG = InfraConfig(
    cloud_provider="azure", servicebus_namespace="unit-ns", celery_backend_protocol="redis", redis_host="127.0.0.1"
)
SDK_ATTEMPTS = 1 + SEND_SDK_RETRIES  # one try and the task queue's retry_total inside the SDK
KOMBU_ATTEMPTS = 2 * SDK_ATTEMPTS  # kombu's _put resends once over a fresh sender


@pytest.fixture
def namespace() -> Iterator[FakeServiceBusNamespace]:
    ns = FakeServiceBusNamespace("unit-ns")
    with patch_kombu_servicebus(ns):
        yield ns


def test_publish_retry_fires_with_our_transport(namespace: FakeServiceBusNamespace) -> None:
    """Both the SDK's retries and kombu's one resend fail: only Celery's retry policy can save the send."""
    gateway = CeleryTaskQueueGateway.from_config(CONFIG)
    declare_queue(gateway, "q-retry")
    gateway.send_task("tasks.predict", "q-retry", args=[0])
    clients = namespace.stats.clients_created
    namespace.fail_next_send_attempts(KOMBU_ATTEMPTS)
    sent = gateway.send_task("tasks.predict", "q-retry", args=[1])
    assert sent.task_id
    assert len(namespace.message_bodies("q-retry")) == 2
    assert namespace.stats.clients_created == clients + 1  # ensure() dropped the dead client, built one


def test_kombus_own_transport_gives_up(namespace: FakeServiceBusNamespace) -> None:
    """The reason for the subclass: with kombu's transport the same fault reaches the caller."""
    gateway = CeleryTaskQueueGateway.from_config(CONFIG, broker_transport="azureservicebus")
    declare_queue(gateway, "q-plain")
    gateway.send_task("tasks.predict", "q-plain", args=[0])
    namespace.fail_next_send_attempts(KOMBU_ATTEMPTS)
    with pytest.raises(Exception) as err:
        gateway.send_task("tasks.predict", "q-plain", args=[1])
    assert type(err.value).__name__ == "ServiceBusConnectionError"
    assert len(namespace.message_bodies("q-plain")) == 1


def test_unreachable_namespace(namespace: FakeServiceBusNamespace) -> None:
    gateway = CeleryTaskQueueGateway.from_config(CONFIG)
    declare_queue(gateway, "q-down")
    gateway.send_task("tasks.predict", "q-down", args=[0])
    namespace.faults.unreachable = True
    started = time.monotonic()
    with pytest.raises(BrokerUnavailableError, match="servicebus broker") as err:
        gateway.send_task("tasks.predict", "q-down", args=[1])
    assert time.monotonic() - started < 10
    assert "unit-ns.servicebus.windows.net" in str(err.value)
    namespace.faults.unreachable = False
    gateway.send_task("tasks.predict", "q-down", args=[2])  # recovers without a new gateway
    assert len(namespace.message_bodies("q-down")) == 2


def _first_refused(gateway: CeleryTaskQueueGateway, queue: str) -> int:
    """Smallest prompt length refused (by our check, or by the service when the check is off)."""
    low, high = 250_000, 265_000
    while low < high:
        middle = (low + high) // 2
        try:
            gateway.send_task("t", queue, args=[{"prompt": "x" * middle}])
            low = middle + 1
        except MessageTooLargeError:
            high = middle
    return low


def test_size_check_agrees_with_the_service(namespace: FakeServiceBusNamespace) -> None:
    """Ours refuses at most a few hundred bytes before the service would, never after."""
    unchecked = CeleryTaskQueueGateway.from_config(CONFIG)
    unchecked.max_message_bytes = None
    declare_queue(unchecked, "q-service")
    declare_queue(unchecked, "q-ours")
    service_limit = _first_refused(unchecked, "q-service")
    our_limit = _first_refused(CeleryTaskQueueGateway.from_config(CONFIG), "q-ours")
    assert service_limit - 512 <= our_limit <= service_limit
    with pytest.raises(MessageTooLargeError, match="refused") as err:  # the service's own refusal, wrapped
        unchecked.send_task("t", "q-service", args=[{"prompt": "x" * service_limit}])
    assert type(err.value.__cause__).__name__ == "MessageSizeExceededError"


async def test_send_to_a_deleted_queue_is_queue_not_found(namespace: FakeServiceBusNamespace) -> None:
    """The endpoint's queue was deleted (endpoint deleted): a typed error naming it, not the SDK's."""
    from model_engine_infra.errors import QueueNotFoundError
    from model_engine_infra.queues.servicebus import ServiceBusQueueEndpointResourceDelegate

    delegate = ServiceBusQueueEndpointResourceDelegate(
        namespace.fully_qualified_namespace, admin_client=namespace.admin_client()
    )
    info = await delegate.create_queue_if_not_exists("gone", "n", "me", {}, 60)
    gateway = CeleryTaskQueueGateway.from_config(CONFIG)
    gateway.send_task("tasks.predict", info.queue_name, args=[0])
    await delegate.delete_queue("gone")
    with pytest.raises(QueueNotFoundError, match=info.queue_name) as err:
        gateway.send_task("tasks.predict", info.queue_name, args=[1])
    assert "not sent" in str(err.value)
    assert type(err.value.__cause__).__name__ == "MessagingEntityNotFoundError"


def test_premium_limit_comes_from_config_and_matches_the_queue(namespace: FakeServiceBusNamespace) -> None:
    """servicebus_max_message_size_kb: the queue is created with it, and senders refuse above it, not at 256 KB."""
    import asyncio

    from model_engine_infra.brokers.servicebus import queue_max_message_size_kb
    from model_engine_infra.queues.servicebus import ServiceBusQueueEndpointResourceDelegate

    namespace.tier = "Premium"
    config = CONFIG.model_copy(update={"servicebus_max_message_size_kb": 2048})
    delegate = ServiceBusQueueEndpointResourceDelegate(
        "unit-ns", admin_client=namespace.admin_client(), max_message_size_kb=queue_max_message_size_kb(config)
    )
    info = asyncio.run(delegate.create_queue_if_not_exists("big", "n", "me", {}, 60))
    gateway = CeleryTaskQueueGateway.from_config(config)
    assert gateway.max_message_bytes == 2048 * 1024
    gateway.send_task("t", info.queue_name, args=[{"prompt": "x" * (1536 * 1024)}])  # 1.5 MB: sent
    with pytest.raises(MessageTooLargeError, match=str(2048 * 1024)):
        gateway.send_task("t", info.queue_name, args=[{"prompt": "x" * (2100 * 1024)}])
    assert len(namespace.message_bodies(info.queue_name)) == 1
