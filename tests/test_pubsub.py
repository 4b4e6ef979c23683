"""Pub/Sub: labels, ack deadlines, the delegate's behaviour beyond the contract, the broker unit, the fake."""

from __future__ import annotations

import datetime
import re
from pathlib import Path

import pytest
from google.api_core import exceptions as gexc
from google.cloud.pubsub_v1.publisher import exceptions as publisher_exceptions
from hypothesis import given
from hypothesis import strategies as st

from model_engine_infra import InfraConfig, build_infra
from model_engine_infra.brokers import TaskVisibility, broker_for
from model_engine_infra.brokers.pubsub import BROKER, PUBSUB_MAX_MESSAGE_BYTES
from model_engine_infra.errors import (
    BrokerPermissionError,
    BrokerUnavailableError,
    ConfigError,
    InvalidQueueSettingError,
    MessageTooLargeError,
    QueueError,
    QueueNotFoundError,
)
from model_engine_infra.queues.pubsub import COUNT_METRIC, PubSubQueueEndpointResourceDelegate, ack_deadline_for
from model_engine_infra.queues.pubsub_labels import CREATOR_LABEL, label_key, label_value, queue_labels
from model_engine_infra.rules import Severity
from model_engine_infra.tasks.gateway import CeleryTaskQueueGateway
from model_engine_infra.testing.pubsub import FakePubSub, kombu_on_fake

PROJECT = "unit-project"
KEY = re.compile(r"[a-z][a-z0-9_-]{0,62}")
VALUE = re.compile(r"[a-z0-9_-]{0,63}")


def delegate_on(service: FakePubSub) -> PubSubQueueEndpointResourceDelegate:
    return PubSubQueueEndpointResourceDelegate(PROJECT, publisher=service.publisher(), subscriber=service.subscriber())


def gcp_pubsub(**extra: object) -> InfraConfig:
    return InfraConfig(cloud_provider="gcp", broker="pubsub", gcp_project_id=PROJECT, **extra)  # type: ignore[arg-type]


# --- labels ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "key", "value"),
    [
        ("Team", "team", "team"),
        ("cost center", "cost_center", "cost_center"),
        ("1st", "l_1st", "1st"),
        ("", "l_", ""),
        ("ünï", "l__n_", "_n_"),
        ("x" * 80, "x" * 63, "x" * 63),
        ("_lead", "l__lead", "_lead"),
    ],
)
def test_labels_are_sanitised_to_pubsub_rules(raw: str, key: str, value: str) -> None:
    assert label_key(raw) == key
    assert label_value(raw) == value


@given(st.dictionaries(st.text(max_size=90), st.text(max_size=90), max_size=80), st.text(max_size=90))
def test_any_labels_become_labels_pubsub_accepts(labels: dict[str, str], creator: str) -> None:
    result = queue_labels("e1", creator, labels)
    assert len(result) <= 64
    assert all(KEY.fullmatch(k) and VALUE.fullmatch(v) for k, v in result.items())
    service = FakePubSub()  # the fake checks labels as the service does
    service.publisher().create_topic(request={"name": f"projects/{PROJECT}/topics/t-x", "labels": result})


def test_colliding_and_surplus_labels_are_dropped_not_fatal() -> None:
    labels = {"Team": "a", "team": "b", **{f"k{i:03}": "v" for i in range(70)}}
    result = queue_labels("e1", "Alice@Example.com", labels)
    assert result["team"] == "a"  # sorted order: "Team" comes first
    assert len(result) == 64
    assert result[CREATOR_LABEL] == "alice_example_com"


# --- ack deadlines -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("timeout", "deadline"), [(None, 600), (1, 10), (10, 10), (300, 300), (600, 600), (43200, 600)]
)
def test_ack_deadline_is_clamped_to_pubsubs_range(timeout: int | None, deadline: int) -> None:
    assert ack_deadline_for(timeout) == deadline


@pytest.mark.parametrize("timeout", [0, -5, True, 1.5, "60"])
def test_a_timeout_that_is_not_a_positive_integer_is_a_typed_error(timeout: object) -> None:
    with pytest.raises(InvalidQueueSettingError, match="queue_message_timeout_seconds"):
        ack_deadline_for(timeout)  # type: ignore[arg-type]


# --- the delegate ----------------------------------------------------------------------------------------


async def test_create_brings_an_existing_queue_in_line() -> None:
    service = FakePubSub()
    delegate = delegate_on(service)
    await delegate.create_queue_if_not_exists("e1", "n", "alice", {"team": "a"}, 60)
    await delegate.create_queue_if_not_exists("e1", "n", "bob", {"team": "b"}, 900)
    attributes = await delegate.get_queue_attributes("e1")
    assert attributes.raw["ack_deadline_seconds"] == 600
    assert attributes.endpoint_labels == {"team": "b"}
    assert attributes.endpoint_created_by == "bob"
    topic = service.publisher().get_topic(request={"topic": delegate.topic_path("e1")})
    assert topic.labels["team"] == "b"


async def test_subscriptions_never_expire_and_the_count_is_unknown() -> None:
    service = FakePubSub()
    delegate = delegate_on(service)
    await delegate.create_queue_if_not_exists("e1", "n", "alice", {})
    resource = service.subscriber().get_subscription(request={"subscription": delegate.subscription_path("e1")})
    assert "expiration_policy" in resource
    assert resource.expiration_policy.ttl == datetime.timedelta(0)  # no ttl: never expires
    attributes = await delegate.get_queue_attributes("e1")
    assert attributes.approximate_message_count is None
    assert attributes.raw["num_undelivered_messages"] is None
    assert (
        attributes.raw["count_metric"] == COUNT_METRIC == "pubsub.googleapis.com/subscription/num_undelivered_messages"
    )


async def test_a_deleted_topic_shows_in_the_attributes() -> None:
    service = FakePubSub()
    delegate = delegate_on(service)
    await delegate.create_queue_if_not_exists("e1", "n", "alice", {})
    service.publisher().delete_topic(request={"topic": delegate.topic_path("e1")})
    assert (await delegate.get_queue_attributes("e1")).raw["topic_deleted"] is True
    await delegate.delete_queue("e1")  # the missing topic is no error
    with pytest.raises(QueueNotFoundError):
        await delegate.get_queue_attributes("e1")


async def test_permission_denied_names_the_role() -> None:
    service = FakePubSub()
    service.faults.denied = True
    with pytest.raises(BrokerUnavailableError, match=r"roles/pubsub\.editor"):
        await delegate_on(service).create_queue_if_not_exists("e1", "n", "alice", {})


async def test_a_refused_request_is_a_queue_error_not_an_outage() -> None:
    service = FakePubSub()
    delegate = PubSubQueueEndpointResourceDelegate(
        "bad/project", publisher=service.publisher(), subscriber=service.subscriber()
    )
    with pytest.raises(QueueError, match="rejected create") as err:
        await delegate.create_queue_if_not_exists("e1", "n", "alice", {})
    assert not isinstance(err.value, BrokerUnavailableError)


def test_an_empty_project_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="gcp_project_id"):
        PubSubQueueEndpointResourceDelegate(" ")


# --- selection and the broker unit -----------------------------------------------------------------------


def test_gcp_stays_on_redis_unless_pubsub_is_selected() -> None:
    assert broker_for(InfraConfig(cloud_provider="gcp", gcp_project_id=PROJECT)).name == "redis"  # type: ignore[union-attr]
    unit = broker_for(gcp_pubsub())
    assert unit is BROKER
    assert not unit.counts_in_flight
    assert unit.per_queue_visibility


def test_the_deployment_builds_a_pubsub_delegate_from_gcp_project_id() -> None:
    with build_infra(gcp_pubsub()) as infra:
        delegate = infra.queue_delegate
        assert isinstance(delegate, PubSubQueueEndpointResourceDelegate)
        assert delegate.project_id == PROJECT


def test_without_a_project_the_delegate_names_the_key() -> None:
    with (
        build_infra(InfraConfig(cloud_provider="gcp", broker="pubsub")) as infra,
        pytest.raises(ConfigError, match="gcp_project_id"),
    ):
        _ = infra.queue_delegate


def test_pubsub_off_gcp_is_a_high_finding() -> None:
    config = InfraConfig(cloud_provider="aws", broker="pubsub", gcp_project_id=PROJECT)
    found = [f for f in config.findings() if "Pub/Sub" in f.message]
    assert found
    assert found[0].severity is Severity.HIGH


@pytest.mark.parametrize(
    ("visibility", "deadline"),
    [(TaskVisibility.VISIBILITY_10M, 600), (TaskVisibility.VISIBILITY_1H, 600), (TaskVisibility.VISIBILITY_24H, 600)],
)
def test_task_settings_cap_the_ack_deadline(visibility: TaskVisibility, deadline: int) -> None:
    settings = BROKER.settings(gcp_pubsub(), broker_type=BROKER.broker_type(gcp_pubsub()), visibility=visibility)
    assert settings.url == f"gcpubsub://projects/{PROJECT}"
    assert settings.transport_options["ack_deadline_seconds"] == deadline
    assert settings.transport_options["queue_name_prefix"] == ""
    assert settings.max_message_bytes == PUBSUB_MAX_MESSAGE_BYTES


def test_task_settings_without_a_project_name_the_key() -> None:
    config = InfraConfig(cloud_provider="gcp", broker="pubsub")
    with pytest.raises(ConfigError, match="gcp_project_id"):
        BROKER.settings(config, broker_type="pubsub", visibility=TaskVisibility.VISIBILITY_1H)


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (publisher_exceptions.MessageTooLargeError("big"), MessageTooLargeError),
        (gexc.NotFound("gone"), QueueNotFoundError),
        (gexc.PermissionDenied("no"), BrokerPermissionError),
        (gexc.ServiceUnavailable("down"), BrokerUnavailableError),
    ],
)
def test_publish_errors_become_ours(error: BaseException, expected: type[Exception]) -> None:
    mapped = BROKER.publish_error(error, "predict", "launch-endpoint-id-e1")
    assert isinstance(mapped, expected)
    assert "launch-endpoint-id-e1" in str(mapped)
    assert BROKER.publish_error(ValueError("mine"), "predict", "q") is None


async def test_a_publish_to_a_deleted_queue_fails_instead_of_vanishing(tmp_path: Path) -> None:
    """kombu's own transport drops the publish future; ours waits, so the loss becomes an error."""
    service = FakePubSub()
    config = gcp_pubsub(celery_backend_protocol="file", local_data_dir=str(tmp_path))
    delegate = delegate_on(service)
    info = await delegate.create_queue_if_not_exists("e1", "n", "alice", {})
    with kombu_on_fake(service):
        gateway = CeleryTaskQueueGateway.from_config(config)
        try:
            gateway.send_task("predict", info.queue_name, args=[1])
            assert service.backlog(delegate.subscription_path("e1")) == 1
            service.publisher().delete_topic(request={"topic": delegate.topic_path("e1")})
            with pytest.raises(QueueNotFoundError, match="the task was not sent"):
                gateway.send_task("predict", info.queue_name, args=[2])
        finally:
            gateway.close()


# --- the fake keeps the service's rules ---------------------------------------------------------------------


def test_fake_redelivers_after_the_ack_deadline_and_on_nack() -> None:
    now = [0.0]
    service = FakePubSub(clock=lambda: now[0], max_pull_wait=0)
    publisher, subscriber = service.publisher(), service.subscriber()
    topic, sub = "projects/p/topics/t-1", "projects/p/subscriptions/s-1"
    publisher.create_topic(request={"name": topic})
    subscriber.create_subscription(request={"name": sub, "topic": topic, "ack_deadline_seconds": 10})
    publisher.publish(topic, b"m").result()
    first = subscriber.pull(request={"subscription": sub, "max_messages": 5}).received_messages
    assert [m.message.data for m in first] == [b"m"]
    assert not subscriber.pull(request={"subscription": sub, "max_messages": 5}).received_messages
    now[0] = 11.0
    again = subscriber.pull(request={"subscription": sub, "max_messages": 5}).received_messages
    assert again[0].delivery_attempt == 2
    subscriber.modify_ack_deadline(
        request={"subscription": sub, "ack_ids": [again[0].ack_id], "ack_deadline_seconds": 0}
    )
    last = subscriber.pull(request={"subscription": sub, "max_messages": 5}).received_messages
    subscriber.acknowledge(request={"subscription": sub, "ack_ids": [last[0].ack_id]})
    assert service.backlog(sub) == 0


def test_fake_filters_by_attribute_and_refuses_what_the_service_refuses() -> None:
    service = FakePubSub(max_pull_wait=0)
    publisher, subscriber = service.publisher(), service.subscriber()
    topic = "projects/p/topics/t-1"
    publisher.create_topic(request={"name": topic})
    with pytest.raises(gexc.AlreadyExists):
        publisher.create_topic(request={"name": topic})
    sub = "projects/p/subscriptions/only-a"
    subscriber.create_subscription(request={"name": sub, "topic": topic, "filter": 'attributes.routing_key="a"'})
    publisher.publish(topic, b"1", routing_key="a").result()
    publisher.publish(topic, b"2", routing_key="b").result()
    assert service.backlog(sub) == 1
    for bad in (
        {"name": "projects/p/subscriptions/x", "topic": topic},  # id too short
        {"name": "projects/p/subscriptions/goog-s", "topic": topic},  # reserved prefix
        {"name": "projects/p/subscriptions/s-2", "topic": topic, "ack_deadline_seconds": 601},
        {"name": "projects/p/subscriptions/s-3", "topic": topic, "labels": {"Team": "x"}},
    ):
        with pytest.raises(gexc.InvalidArgument):
            subscriber.create_subscription(request=bad)
    with pytest.raises(gexc.InvalidArgument):
        subscriber.update_subscription(
            request={"subscription": {"name": sub, "filter": ""}, "update_mask": {"paths": ["filter"]}}
        )
    with pytest.raises(publisher_exceptions.MessageTooLargeError):
        publisher.publish(topic, b"x" * (10 * 1000 * 1000 + 1))
    with pytest.raises(gexc.NotFound):
        publisher.publish("projects/p/topics/missing", b"1").result()


async def test_a_worker_declaring_the_queue_leaves_the_delegates_settings() -> None:
    """kombu's transport would rewrite the ack deadline and expiry on every worker start; ours does not."""
    import kombu

    service = FakePubSub(max_pull_wait=0)
    delegate = delegate_on(service)
    info = await delegate.create_queue_if_not_exists("e1", "n", "alice", {}, 120)
    options = BROKER.settings(gcp_pubsub(), broker_type="pubsub", visibility=TaskVisibility.VISIBILITY_1H)
    with kombu_on_fake(service):
        connection = kombu.Connection(
            options.url, transport=options.transport, transport_options=options.transport_options
        )
        queue = kombu.Queue(
            info.queue_name, kombu.Exchange(info.queue_name, type="direct"), routing_key=info.queue_name
        )
        with connection, connection.Consumer(queue, callbacks=[]):
            pass
    attributes = await delegate.get_queue_attributes("e1")
    assert attributes.raw["ack_deadline_seconds"] == 120
    assert "update_subscription" not in service.calls[2:]  # only the delegate's own calls changed it
