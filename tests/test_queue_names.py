"""Queue names per broker (issue 14, "Brokers and queue names"): refused before any call, never rewritten into
another name's queue, never one of the broker's own keys; a wrong-type Redis key is reported as what it is.

The same rules run for every broker through the task-queue contract (``TaskQueueConformance``, run
by ``tests/test_conformance_tasks.py``); here are the rules themselves, the reproduced reports (raw
botocore errors for bad SQS names, ``q.1``/``q-1`` in one SQS queue, a kombu key taken as a queue
that later broke every send with "unreachable after 3 retries"), and their siblings.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import fakeredis
import pytest
import redis

from model_engine_infra.config import InfraConfig
from model_engine_infra.errors import (
    BrokerUnavailableError,
    InvalidQueueNameError,
    QueueError,
    QueueKeyConflictError,
    QueueNotFoundError,
)
from model_engine_infra.queues.names import (
    check_queue_name,
    local_queue_name,
    redis_queue_name,
    servicebus_queue_name,
    sqs_queue_name,
)
from model_engine_infra.tasks.gateway import CeleryTaskQueueGateway
from model_engine_infra.testing.queues import declare_queue

# --- SQS ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["q-1", "Q_1", "x" * 80, "jobs.fifo", "a" * 75 + ".fifo"])
def test_sqs_accepts(name: str) -> None:
    assert sqs_queue_name(name) == name


@pytest.mark.parametrize(
    ("name", "words"),
    [
        ("", "empty"),
        ("with space", "not a valid SQS name"),
        ("x" * 81, "at most 80"),
        ("x" * 100, "at most 80"),
        ("é", "not a valid SQS name"),
        (".fifo", "not a valid SQS name"),
        ("a" * 76 + ".fifo", "at most 80"),
    ],
)
def test_sqs_refuses(name: str, words: str) -> None:
    with pytest.raises(InvalidQueueNameError, match=words):
        sqs_queue_name(name)


@pytest.mark.parametrize(
    ("name", "lands_in"), [("q.1", "q-1"), ("q:1", "q_1"), ("a.b.fifo", "a-b.fifo"), ("q/1", "q_1")]
)
def test_sqs_refuses_names_kombu_would_rewrite(name: str, lands_in: str) -> None:
    """``q.1`` and ``q-1`` both went to SQS queue ``q-1``: the first is refused, naming the second."""
    with pytest.raises(InvalidQueueNameError, match="rewrites") as err:
        sqs_queue_name(name)
    assert repr(lands_in) in str(err.value)
    assert sqs_queue_name(lands_in) == lands_in


def test_sqs_send_with_a_bad_name_is_typed_not_botocore(monkeypatch: pytest.MonkeyPatch) -> None:
    """The reported case: a space, an empty name, 100 characters reached botocore as a raw ClientError."""
    from moto import mock_aws

    for name, value in {
        "AWS_ACCESS_KEY_ID": "t",
        "AWS_SECRET_ACCESS_KEY": "t",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(name, value)
    with mock_aws():
        gateway = CeleryTaskQueueGateway.from_config(
            InfraConfig(cloud_provider="aws", celery_backend_protocol="redis", redis_host="127.0.0.1")
        )
        for bad in ("with space", "", "x" * 100, "q.1", "q:1"):
            with pytest.raises(InvalidQueueNameError):
                gateway.send_task("tasks.predict", bad, args=[1])
        gateway.close()


# --- Service Bus --------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["q-1", "q.1", "q_1", "launch-endpoint-id-e1", "x" * 260])
def test_servicebus_accepts(name: str) -> None:
    assert servicebus_queue_name(name) == name


def test_servicebus_refuses_upper_case_that_would_share_a_queue() -> None:
    with pytest.raises(InvalidQueueNameError, match="ignores case") as err:
        servicebus_queue_name("Q-1")
    assert "'q-1'" in str(err.value)


@pytest.mark.parametrize("name", ["q:1", "q/1", "q 1", "-q", "q-", "q.", "x" * 261, "é"])
def test_servicebus_refuses(name: str) -> None:
    with pytest.raises(InvalidQueueNameError):
        servicebus_queue_name(name)


def test_servicebus_delegate_follows_the_same_rule() -> None:
    from model_engine_infra.queues.servicebus import ServiceBusQueueEndpointResourceDelegate
    from model_engine_infra.testing.servicebus import FakeServiceBusNamespace

    namespace = FakeServiceBusNamespace("names-ns")
    delegate = ServiceBusQueueEndpointResourceDelegate("names-ns", admin_client=namespace.admin_client())
    with pytest.raises(InvalidQueueNameError, match="ignores case"):
        delegate.queue_name("E1")
    assert delegate.queue_name("e1") == "launch-endpoint-id-e1"


# --- Redis ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    [
        "unacked",
        "unacked_index",
        "unacked_mutex",
        "unacked_restore_lock",
        "_kombu.binding.celery",
        "_kombu.binding.launch-endpoint-id-e1",
        "launch-endpoint-id-e1:meta",
        "celery-task-meta-0d8f",
        "celery-taskset-meta-1",
        "celery\x06\x163",  # the default queue's priority-3 list
    ],
)
def test_redis_refuses_the_brokers_own_keys(name: str) -> None:
    with pytest.raises(InvalidQueueNameError):
        redis_queue_name(name)


@pytest.mark.parametrize("name", ["celery", "q.1", "q:1", "Q 1", "launch-endpoint-id-e1", "x" * 255])
def test_redis_accepts(name: str) -> None:
    assert redis_queue_name(name) == name


# --- local -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["a/b", "../x", ".hidden", "..", "a b", "x" * 201, "é"])
def test_local_refuses_what_is_not_a_safe_file_name(name: str) -> None:
    with pytest.raises(InvalidQueueNameError):
        local_queue_name(name)


def test_rules_by_broker_type() -> None:
    assert check_queue_name("redis_24h", "q:1") == "q:1"
    with pytest.raises(InvalidQueueNameError):
        check_queue_name("sqs", "q:1")
    assert check_queue_name("something-else", "any name") == "any name"


def test_long_names_are_cut_in_messages() -> None:
    with pytest.raises(InvalidQueueNameError) as err:
        sqs_queue_name("x" * 1_000_000)
    assert len(str(err.value)) < 300


# --- Redis keys of another type: reported as what they are -------------------------------------------------


@pytest.fixture
def redis_url() -> Iterator[str]:
    server = fakeredis.TcpFakeServer(("127.0.0.1", 0), server_type="redis")
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    host, port = server.server_address[:2]
    try:
        yield f"redis://{host!s}:{port}/0"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def redis_gateway(url: str) -> CeleryTaskQueueGateway:
    return CeleryTaskQueueGateway.from_config(
        InfraConfig(cloud_provider="onprem", celery_backend_protocol="redis"), redis=url
    )


def broker_db(url: str) -> Any:
    """A client on the gateway's database: onprem's inference visibility, 24 h, keeps its queues in 3."""
    from model_engine_infra.brokers.base import TaskVisibility, with_redis_db

    return redis.Redis.from_url(with_redis_db(url, TaskVisibility.VISIBILITY_24H.redis_db))


def test_reserved_name_is_refused_and_the_default_queue_keeps_working(redis_url: str) -> None:
    """The reported case: a queue named like kombu's binding key broke every later send to ``celery``."""
    gateway = redis_gateway(redis_url)
    declare_queue(gateway, "celery")
    with pytest.raises(InvalidQueueNameError, match="keeps for itself"):
        gateway.send_task("tasks.predict", "_kombu.binding.celery", args=[1])
    gateway.send_task("tasks.predict", "celery", args=[1])
    assert broker_db(redis_url).llen("celery") == 1
    gateway.close()


@pytest.mark.parametrize("taken", ["queue", "binding"])
def test_wrong_type_key_is_a_key_conflict_not_unreachable(redis_url: str, taken: str) -> None:
    """A key left by older code (or another program) under the queue's or its binding's name."""
    client = broker_db(redis_url)
    client.hset("jobs:meta", "created_by", "test")  # the queue exists (delegate metadata)
    client.set("jobs" if taken == "queue" else "_kombu.binding.jobs", "not a list")
    gateway = redis_gateway(redis_url)
    started = time.monotonic()
    with pytest.raises(QueueKeyConflictError, match="WRONGTYPE") as err:
        gateway.send_task("tasks.predict", "jobs", args=[1])
    assert time.monotonic() - started < 5
    assert not isinstance(err.value, BrokerUnavailableError)
    assert isinstance(err.value, QueueError)
    assert "broker is reachable" in str(err.value)
    gateway.close()


def test_missing_redis_queue_is_not_created_by_a_send(redis_url: str) -> None:
    gateway = redis_gateway(redis_url)
    with pytest.raises(QueueNotFoundError, match="'nobody-made-me'"):
        gateway.send_task("tasks.predict", "nobody-made-me", args=[1])
    assert broker_db(redis_url).keys("*nobody-made-me*") == []
    gateway.close()


# --- the broker units carry the rules --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("unit_name", "refused"), [("sqs", "q.1"), ("servicebus", "Q1"), ("redis", "unacked"), ("local", "a/b")]
)
def test_every_built_in_broker_unit_has_its_rule_and_presence(unit_name: str, refused: str) -> None:
    from model_engine_infra.brokers import get_unit

    unit = get_unit(unit_name)
    with pytest.raises(InvalidQueueNameError):
        unit.check_queue_name(refused)
    assert unit.check_queue_name("launch-endpoint-id-e1") == "launch-endpoint-id-e1"
    presence = unit.queue_presence()
    assert presence is not None
    assert presence.every_send is (unit_name in ("redis", "local"))


def test_a_plugin_broker_without_hooks_takes_any_name() -> None:
    from model_engine_infra.brokers.base import BrokerUnit

    class Plugin(BrokerUnit):
        name = "plugin"
        label = "Plugin"
        delegate_target = "nowhere:factory"

        def settings(self, config: object, **kwargs: object) -> object:  # type: ignore[override]
            raise AssertionError("not built here")

    assert Plugin().check_queue_name("any name: at all") == "any name: at all"
    assert Plugin().queue_presence() is None
