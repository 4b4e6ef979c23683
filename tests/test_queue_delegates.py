"""What each queue delegate does beyond the shared contract: settings, layouts, wiring, bad input."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import boto3
import fakeredis
import kombu
import pytest
import redis.asyncio
from azure.core.exceptions import HttpResponseError
from azure.servicebus import ServiceBusMessage
from moto import mock_aws

from model_engine_infra import build_infra, load_config
from model_engine_infra.config import InfraConfig
from model_engine_infra.errors import (
    BrokerPermissionError,
    BrokerUnavailableError,
    ConfigError,
    InvalidQueueNameError,
    QueueError,
)
from model_engine_infra.queues.local import (
    LocalQueueEndpointResourceDelegate,
    broker_paths_for,
    local_broker_paths,
    message_file_queue,
)
from model_engine_infra.queues.redis import (
    KOMBU_UNACKED_INDEX_KEY,
    KOMBU_UNACKED_KEY,
    META_SUFFIX,
    RedisQueueEndpointResourceDelegate,
    kombu_list_keys,
)
from model_engine_infra.queues.servicebus import (
    MAX_LOCK_DURATION,
    ServiceBusQueueEndpointResourceDelegate,
    build_delegate,
    lock_duration_for,
)
from model_engine_infra.queues.sqs import SQSQueueEndpointResourceDelegate
from model_engine_infra.testing.servicebus import FakeServiceBusNamespace, patch_kombu_servicebus

# --- Service Bus --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("timeout", "lock"),
    [(600, 300), (43200, 300), (None, 300), (300, 300), (120, 120), (30, 30), (1, 5)],
)
def test_lock_duration_is_the_timeout_capped_at_the_services_300s(timeout: int | None, lock: int) -> None:
    assert lock_duration_for(timeout) == timedelta(seconds=lock)
    assert lock_duration_for(timeout) <= MAX_LOCK_DURATION == timedelta(seconds=300)


def test_lock_duration_refuses_nonsense() -> None:
    with pytest.raises(ValueError, match="positive"):
        lock_duration_for(0)


async def test_servicebus_creates_queue_with_capped_lock_and_metadata() -> None:
    ns = FakeServiceBusNamespace("sb-ns")
    delegate = ServiceBusQueueEndpointResourceDelegate("sb-ns", admin_client=ns.admin_client())
    await delegate.create_queue_if_not_exists("e1", "demo", "alice", {"team": "ml"}, 600)
    queue = ns.admin_client().get_queue("launch-endpoint-id-e1")
    assert queue.lock_duration == timedelta(seconds=300)
    assert json.loads(queue.user_metadata)["labels"] == {"team": "ml"}
    attributes = await delegate.get_queue_attributes("e1")
    assert attributes.raw["lock_duration_seconds"] == 300
    assert attributes.raw["user_metadata"]["endpoint_name"] == "demo"


async def test_servicebus_queue_created_by_kombu_first_gets_the_300s_lock() -> None:
    """A task sent before the delegate ran: kombu creates the queue with its 60 s lock and never updates it."""
    ns = FakeServiceBusNamespace("sb-ns")
    with patch_kombu_servicebus(ns):
        connection = kombu.Connection("azureservicebus://DefaultAzureCredential@sb-ns.servicebus.windows.net")
        with connection:
            connection.SimpleQueue("launch-endpoint-id-e1").put({"n": 1})
    assert ns.admin_client().get_queue("launch-endpoint-id-e1").lock_duration == timedelta(seconds=60)
    delegate = ServiceBusQueueEndpointResourceDelegate("sb-ns", admin_client=ns.admin_client())
    await delegate.create_queue_if_not_exists("e1", "demo", "alice", {"team": "ml"})
    queue = ns.admin_client().get_queue("launch-endpoint-id-e1")
    assert queue.lock_duration == timedelta(seconds=300)
    attributes = await delegate.get_queue_attributes("e1")
    assert attributes.endpoint_labels == {"team": "ml"}
    assert attributes.approximate_message_count == 1  # kombu's message is still there


async def test_servicebus_create_again_follows_the_request_and_writes_only_what_differs() -> None:
    ns = FakeServiceBusNamespace("sb-ns")
    delegate = ServiceBusQueueEndpointResourceDelegate("sb-ns", admin_client=ns.admin_client())
    await delegate.create_queue_if_not_exists("e1", "demo", "alice", {"team": "ml"}, 60)
    updated_at = ns._queue("launch-endpoint-id-e1").updated_at
    ns.clock.advance(10)
    await delegate.create_queue_if_not_exists("e1", "demo", "alice", {"team": "ml"}, 60)
    assert ns._queue("launch-endpoint-id-e1").updated_at == updated_at  # nothing differed: no update
    await delegate.create_queue_if_not_exists("e1", "demo", "alice", {"team": "other"}, 120)
    queue = ns.admin_client().get_queue("launch-endpoint-id-e1")
    assert queue.lock_duration == timedelta(seconds=120)
    assert json.loads(queue.user_metadata)["labels"] == {"team": "other"}


async def test_servicebus_premium_queues_get_the_configured_message_size() -> None:
    ns = FakeServiceBusNamespace("sb-ns", tier="Premium")
    config = InfraConfig(cloud_provider="azure", servicebus_namespace="sb-ns", servicebus_max_message_size_kb=20480)
    assert build_delegate(config, None).max_message_size_kb == 20480  # type: ignore[arg-type]
    delegate = ServiceBusQueueEndpointResourceDelegate(
        "sb-ns", admin_client=ns.admin_client(), max_message_size_kb=20480
    )
    ns.admin_client().create_queue("launch-endpoint-id-e2")  # as kombu makes it: the tier's 1 MB default
    for endpoint_id in ("e1", "e2"):
        await delegate.create_queue_if_not_exists(endpoint_id, "demo", "alice", {})
        assert ns.admin_client().get_queue(f"launch-endpoint-id-{endpoint_id}").max_message_size_in_kilobytes == 20480
    with ns.client().get_queue_sender("launch-endpoint-id-e1") as sender:
        sender.send_messages(ServiceBusMessage(b"x" * (5 * 1024 * 1024)))  # 5 MB: above Standard's and 1 MB


@pytest.mark.parametrize(
    ("settings", "queue_kb"),
    [
        ({}, None),  # standard, 256 KB: the setting is refused on standard, so it is never sent
        ({"servicebus_max_message_size_kb": 100}, None),
        ({"servicebus_tier": "premium"}, 1024),  # premium's smallest queue setting; senders keep to 256 KB
        ({"servicebus_max_message_size_kb": 2048}, 2048),  # above 256 KB: premium inferred
        ({"servicebus_tier": "premium", "servicebus_max_message_size_kb": 102400}, 102400),
    ],
)
def test_servicebus_queue_size_follows_the_tier(settings: dict[str, Any], queue_kb: int | None) -> None:
    config = InfraConfig(cloud_provider="azure", servicebus_namespace="sb-ns", **settings)
    assert build_delegate(config, None).max_message_size_kb == queue_kb  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        # sizes outside 1..102400 KB fail earlier, at the key's own bounds
        # (tests/test_config_limits.py::test_out_of_range_numbers_fail_at_load_naming_the_key)
        ({"servicebus_tier": "standard", "servicebus_max_message_size_kb": 1024}, "standard tier's 256 KB"),
    ],
)
def test_servicebus_message_size_that_does_not_fit_the_tier_names_the_key(
    settings: dict[str, Any], message: str, tmp_path: Path
) -> None:
    config = InfraConfig(cloud_provider="azure", servicebus_namespace="sb-ns", **settings)
    with pytest.raises(ConfigError, match=f"servicebus_max_message_size_kb.*{message}"):
        build_infra(config).queue_delegate  # noqa: B018
    deployment = tmp_path / "deployment.yaml"
    deployment.write_text("cloud_provider: azure\nservicebus_namespace: sb-ns\ncache_redis_azure_host: cache:6380\n")
    env = {k.upper(): str(v) for k, v in settings.items()}  # SERVICEBUS_TIER, SERVICEBUS_MAX_MESSAGE_SIZE_KB
    with pytest.raises(ConfigError, match=f"SERVICEBUS_MAX_MESSAGE_SIZE_KB.*{message}"):
        load_config(str(deployment), env=env)  # refused at start-up, naming the variable it came from


async def test_servicebus_labels_too_long_for_user_metadata_are_dropped_not_fatal() -> None:
    ns = FakeServiceBusNamespace("sb-ns")
    delegate = ServiceBusQueueEndpointResourceDelegate("sb-ns", admin_client=ns.admin_client())
    await delegate.create_queue_if_not_exists("e2", "demo", "alice", {f"k{i}": "v" * 50 for i in range(40)})
    attributes = await delegate.get_queue_attributes("e2")
    assert attributes.endpoint_labels is None
    assert attributes.endpoint_created_by == "alice"
    assert attributes.raw["user_metadata"]["labels_truncated"] is True


async def test_servicebus_name_must_end_with_a_letter_or_digit() -> None:
    down = FakeServiceBusNamespace("down")
    down.faults.unreachable = True
    delegate = ServiceBusQueueEndpointResourceDelegate("down", admin_client=down.admin_client())
    for endpoint_id in ("abc-", "abc_"):
        with pytest.raises(InvalidQueueNameError, match="end with a letter or digit"):
            await delegate.create_queue_if_not_exists(endpoint_id, "n", "u", {})


class _Refusing:
    """An admin client whose every call answers with one HTTP status."""

    def __init__(self, status: int) -> None:
        self.status = status

    def __getattr__(self, name: str) -> Any:
        def call(*args: Any, **kwargs: Any) -> Any:
            error = HttpResponseError(message="refused")
            error.status_code = self.status
            raise error

        return call


@pytest.mark.parametrize(
    ("status", "error"), [(403, BrokerPermissionError), (503, BrokerUnavailableError), (400, QueueError)]
)
async def test_servicebus_http_errors_map_to_typed_errors(status: int, error: type[Exception]) -> None:
    delegate = ServiceBusQueueEndpointResourceDelegate("sb-ns", admin_client=_Refusing(status))
    with pytest.raises(error, match=str(status)):
        await delegate.get_queue_attributes("e1")


def test_servicebus_namespace_forms_and_missing_config() -> None:
    assert ServiceBusQueueEndpointResourceDelegate("ns").fully_qualified_namespace == "ns.servicebus.windows.net"
    full = ServiceBusQueueEndpointResourceDelegate("sb://ns.servicebus.windows.net/")
    assert full.fully_qualified_namespace == "ns.servicebus.windows.net"
    with pytest.raises(ConfigError, match="servicebus_namespace"):
        build_infra(InfraConfig(cloud_provider="azure")).queue_delegate  # noqa: B018
    delegate = build_infra(InfraConfig(cloud_provider="azure", servicebus_namespace="prod-ns")).queue_delegate
    assert isinstance(delegate, ServiceBusQueueEndpointResourceDelegate)
    assert delegate.fully_qualified_namespace == "prod-ns.servicebus.windows.net"


# --- SQS ----------------------------------------------------------------------------------------


@pytest.fixture
def aws() -> Iterator[Any]:
    with mock_aws():
        yield boto3.client("sqs", region_name="eu-west-1")


async def test_sqs_policy_tags_and_visibility_from_config(aws: Any) -> None:
    config = InfraConfig(
        cloud_provider="aws",
        default_region="eu-west-1",
        sqs_queue_policy_template='{"Statement": [{"Resource": "arn:aws:sqs:eu-west-1:1:${queue_name}"}]}',
        sqs_queue_tag_template='{"owner": "${endpoint_created_by}", "name": "${endpoint_name}"}',
    )
    delegate = build_infra(config).queue_delegate
    assert isinstance(delegate, SQSQueueEndpointResourceDelegate)
    info = await delegate.create_queue_if_not_exists("e1", 'say "hi"', "alice", {}, 99999)
    assert "eu-west-1" in (info.queue_url or "")
    attributes = aws.get_queue_attributes(QueueUrl=info.queue_url, AttributeNames=["All"])["Attributes"]
    assert attributes["VisibilityTimeout"] == "43200"  # SQS's maximum
    assert json.loads(attributes["Policy"])["Statement"][0]["Resource"].endswith(":launch-endpoint-id-e1")
    assert aws.list_queue_tags(QueueUrl=info.queue_url)["Tags"] == {"owner": "alice", "name": 'say "hi"'}
    read = await delegate.get_queue_attributes("e1", include_tags=True)
    assert read.endpoint_created_by == "alice"  # found through the tag the template named
    assert (await delegate.get_queue_attributes("e1")).endpoint_created_by is None  # tags only when asked


async def test_sqs_create_brings_an_existing_queue_in_line_writing_only_what_differs(aws: Any) -> None:
    writes: list[str] = []
    aws.meta.events.register("before-call.sqs.SetQueueAttributes", lambda **kw: writes.append("attributes"))
    aws.meta.events.register("before-call.sqs.TagQueue", lambda **kw: writes.append("tags"))
    delegate = SQSQueueEndpointResourceDelegate(
        region="eu-west-1",
        client=aws,
        policy_template='{"Statement": [{"Resource": "arn:aws:sqs:eu-west-1:1:${queue_name}"}]}',
        tag_template='{"owner": "${endpoint_created_by}", "name": "${endpoint_name}"}',
    )
    first = await delegate.create_queue_if_not_exists("e1", "n", "alice", {}, 60)
    aws.tag_queue(QueueUrl=first.queue_url, Tags={"cost-center": "42"})  # someone else's tag
    writes.clear()
    second = await delegate.create_queue_if_not_exists("e1", "n", "alice", {}, 60)
    assert first == second
    assert writes == []  # nothing differed: nothing written
    await delegate.create_queue_if_not_exists("e1", "renamed", "bob", {}, 900)
    assert writes == ["attributes", "tags"]
    attributes = aws.get_queue_attributes(QueueUrl=first.queue_url, AttributeNames=["VisibilityTimeout"])
    assert attributes["Attributes"]["VisibilityTimeout"] == "900"
    tags = aws.list_queue_tags(QueueUrl=first.queue_url)["Tags"]
    assert tags == {"owner": "bob", "name": "renamed", "cost-center": "42"}


async def test_sqs_queue_created_by_kombu_first_gets_the_requested_timeout(aws: Any) -> None:
    """kombu's SQS transport creates a missing queue with its own visibility timeout (1800 s by default)."""
    url = aws.create_queue(QueueName="launch-endpoint-id-e1", Attributes={"VisibilityTimeout": "1800"})["QueueUrl"]
    delegate = SQSQueueEndpointResourceDelegate(region="eu-west-1", client=aws)
    await delegate.create_queue_if_not_exists("e1", "n", "alice", {}, 600)
    attributes = aws.get_queue_attributes(QueueUrl=url, AttributeNames=["VisibilityTimeout"])
    assert attributes["Attributes"]["VisibilityTimeout"] == "600"


def test_sqs_broken_template_fails_at_build_time() -> None:
    config = InfraConfig(cloud_provider="aws", sqs_queue_tag_template='{"a": "${unknown}"}')
    with pytest.raises(ConfigError, match="sqs_queue_tag_template"):
        build_infra(config).queue_delegate  # noqa: B018


async def test_sqs_unknown_profile_is_a_config_error() -> None:
    delegate = SQSQueueEndpointResourceDelegate(region="us-east-1", profile="no-such-profile")
    with pytest.raises(ConfigError, match="sqs_profile"):
        await delegate.get_queue_attributes("e1")


async def test_sqs_client_is_built_once_and_reused(aws: Any) -> None:
    delegate = SQSQueueEndpointResourceDelegate(region="eu-west-1")
    await asyncio.gather(*(delegate.create_queue_if_not_exists(f"e{i}", "n", "u", {}) for i in range(8)))
    client = delegate._sqs()
    await delegate.get_queue_attributes("e3")
    assert delegate._sqs() is client


class _CountingSQS:
    """Wraps a boto3 SQS client and counts the calls made through it, by operation."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self.calls: dict[str, int] = {}

    def __getattr__(self, name: str) -> Any:
        method = getattr(self.client, name)

        def call(*args: Any, **kwargs: Any) -> Any:
            self.calls[name] = self.calls.get(name, 0) + 1
            return method(*args, **kwargs)

        return call


async def test_sqs_hot_path_is_one_call_per_endpoint(aws: Any) -> None:
    counting = _CountingSQS(aws)
    delegate = SQSQueueEndpointResourceDelegate(region="eu-west-1", client=counting)
    ids = [f"e{i}" for i in range(20)]
    for endpoint_id in ids:
        aws.create_queue(QueueName=f"launch-endpoint-id-{endpoint_id}")
    first = await delegate.get_queue_attributes_many(ids)
    assert counting.calls == {"list_queues": 1, "get_queue_attributes": 20}  # cold: URLs from one listing
    counting.calls.clear()
    await asyncio.gather(*(delegate.get_queue_attributes(i) for i in ids))
    assert await delegate.get_queue_attributes_many(ids) == first
    assert counting.calls == {"get_queue_attributes": 40}  # warm: the URLs are cached, no tags unless asked
    counting.calls.clear()
    await delegate.get_queue_attributes("e1", include_tags=True)
    assert counting.calls == {"get_queue_attributes": 1, "list_queue_tags": 1}


async def test_sqs_a_deleted_queue_leaves_the_url_cache(aws: Any) -> None:
    delegate = SQSQueueEndpointResourceDelegate(region="eu-west-1")
    info = await delegate.create_queue_if_not_exists("e1", "n", "u", {})
    aws.delete_queue(QueueUrl=info.queue_url)  # deleted behind the delegate's back
    assert await delegate.get_queue_attributes_many(["e1"]) == {"e1": None}
    await delegate.create_queue_if_not_exists("e1", "n", "u", {})
    assert (await delegate.get_queue_attributes("e1")).approximate_message_count == 0


async def test_sqs_calls_run_on_the_delegates_own_pool(aws: Any) -> None:
    delegate = SQSQueueEndpointResourceDelegate(region="eu-west-1", concurrency=4)
    await delegate.create_queue_if_not_exists("e1", "n", "u", {})
    seen: list[str] = []
    real = delegate._read

    def spy(*args: Any) -> Any:
        seen.append(threading.current_thread().name)
        return real(*args)

    delegate._read = spy  # type: ignore[method-assign]
    await asyncio.gather(*(delegate.get_queue_attributes("e1") for _ in range(50)))
    assert len(seen) == 50
    assert all(name.startswith("sqs-delegate") for name in seen)
    assert delegate._sqs().meta.config.max_pool_connections == 4
    with pytest.raises(ValueError, match="concurrency"):
        SQSQueueEndpointResourceDelegate(region="eu-west-1", concurrency=0)
    await delegate.close()


# --- Redis --------------------------------------------------------------------------------------


@pytest.fixture
def redis_client() -> Any:
    return fakeredis.FakeAsyncRedis()


async def test_redis_metadata_hash_follows_the_latest_create_but_keeps_the_creation_time(redis_client: Any) -> None:
    delegate = RedisQueueEndpointResourceDelegate(redis_client)
    await delegate.create_queue_if_not_exists("e1", "demo", "alice", {"team": "ml"}, 60)
    key = "launch-endpoint-id-e1" + META_SUFFIX
    created_at = await redis_client.hget(key, "created_at")
    await delegate.create_queue_if_not_exists("e1", "renamed", "bob", {"team": "other"}, 90)
    meta = await redis_client.hgetall(key)
    assert meta[b"created_by"] == b"bob"
    assert meta[b"endpoint_name"] == b"renamed"
    assert json.loads(meta[b"labels"]) == {"team": "other"}
    assert meta[b"queue_message_timeout_seconds"] == b"90"
    assert meta[b"created_at"] == created_at
    await delegate.create_queue_if_not_exists("e1", "renamed", "bob", {"team": "other"})
    assert await redis_client.hget(key, "queue_message_timeout_seconds") is None  # no timeout asked: none kept


async def test_redis_counts_every_priority_list_and_only_this_queues_unacked(redis_client: Any) -> None:
    delegate = RedisQueueEndpointResourceDelegate(redis_client)
    name = "launch-endpoint-id-e1"
    assert kombu_list_keys(name) == [name, f"{name}\x06\x163", f"{name}\x06\x166", f"{name}\x06\x169"]
    await redis_client.lpush(name, "m1", "m2")
    await redis_client.lpush(f"{name}\x06\x169", "urgent")
    unacked = {
        "t1": json.dumps([{}, "", name]),  # default exchange: the routing key is the queue
        "t2": json.dumps([{}, name, name]),  # Celery's per-queue direct exchange, bound below
        "t3": json.dumps([{}, "", "launch-endpoint-id-other"]),
        "t4": "not json",
    }
    await redis_client.hset(KOMBU_UNACKED_KEY, mapping=unacked)
    await redis_client.sadd(f"_kombu.binding.{name}", f"{name}\x06\x16\x06\x16{name}")
    attributes = await delegate.get_queue_attributes("e1")
    assert (attributes.approximate_message_count, attributes.approximate_in_flight_count) == (5, 2)

    await delegate.delete_queue("e1")
    assert sorted(await redis_client.hkeys(KOMBU_UNACKED_KEY)) == [b"t3", b"t4"]
    assert await redis_client.exists(name, f"{name}\x06\x169") == 0
    assert await redis_client.zcard(KOMBU_UNACKED_INDEX_KEY) == 0


async def test_redis_a_thousand_concurrent_reads_share_one_scan_and_one_connection() -> None:
    server = fakeredis.FakeServer()
    pool = redis.asyncio.BlockingConnectionPool(
        connection_class=fakeredis.FakeAsyncRedisConnection, server=server, max_connections=1, timeout=1
    )
    client = redis.asyncio.Redis(connection_pool=pool)
    delegate = RedisQueueEndpointResourceDelegate(client)
    ids = [f"e{i}" for i in range(1000)]
    for i in range(0, 1000, 7):
        await client.lpush(f"launch-endpoint-id-e{i}", "m")
    await client.hset(
        KOMBU_UNACKED_KEY, mapping={f"t{i}": json.dumps([{}, "", f"launch-endpoint-id-e{i % 10}"]) for i in range(50)}
    )
    scans = 0
    real_scan = client.hscan

    async def counting_scan(*args: Any, **kwargs: Any) -> Any:
        nonlocal scans
        scans += 1
        return await real_scan(*args, **kwargs)

    client.hscan = counting_scan  # type: ignore[method-assign]
    answers = await asyncio.gather(
        *(delegate.get_queue_attributes(i) for i in ids if int(i[1:]) % 7 == 0 or int(i[1:]) < 10)
    )
    assert scans == 1  # one pass over unacked for the whole gather
    counts = {a.name: (a.approximate_message_count, a.approximate_in_flight_count) for a in answers}
    assert counts["launch-endpoint-id-e0"] == (6, 5)
    assert counts["launch-endpoint-id-e1"] == (5, 5)
    assert counts["launch-endpoint-id-e7"] == (6, 5)
    assert counts["launch-endpoint-id-e14"] == (1, 0)
    many = await delegate.get_queue_attributes_many(ids)
    assert sum(a is not None for a in many.values()) == len(answers)
    await client.aclose()


async def test_redis_queue_celery_made_without_the_delegate_exists(redis_client: Any) -> None:
    await redis_client.lpush("launch-endpoint-id-e9", "m")
    attributes = await RedisQueueEndpointResourceDelegate(redis_client).get_queue_attributes("e9")
    assert attributes.approximate_message_count == 1
    assert attributes.endpoint_created_by is None


async def test_redis_error_is_never_a_count_of_zero() -> None:
    server = fakeredis.FakeServer()
    server.connected = False
    delegate = RedisQueueEndpointResourceDelegate(fakeredis.FakeAsyncRedis(server=server))
    with pytest.raises(BrokerUnavailableError, match="not 0"):
        await delegate.get_queue_attributes("e1")


def test_redis_delegate_takes_the_async_client_of_the_redis_component() -> None:
    client = fakeredis.FakeAsyncRedis()

    class Connection:
        def async_client(self, db: int | None = None) -> Any:
            assert db == 0  # gcp: inference and endpoint creation both 1 h, database 0
            return client

    infra = build_infra(InfraConfig(cloud_provider="gcp"), overrides={"redis": Connection()})
    delegate = infra.queue_delegate
    assert isinstance(delegate, RedisQueueEndpointResourceDelegate)
    assert delegate._client is client
    assert "password" not in repr(delegate)


# --- local --------------------------------------------------------------------------------------


def test_local_layout_is_under_the_data_dir(tmp_path: Path) -> None:
    paths = local_broker_paths(InfraConfig(cloud_provider="local", local_data_dir=str(tmp_path)))
    assert paths == broker_paths_for(tmp_path)
    broker = tmp_path / "broker"
    assert paths["data_folder_in"] == paths["data_folder_out"] == str(broker / "queue")
    assert paths["control_folder"] == str(broker / "control")
    assert paths["processed_folder"] == str(broker / "processed")
    assert paths["meta_folder"] == str(broker / "meta")


async def test_local_counts_the_files_kombu_writes(tmp_path: Path) -> None:
    config = InfraConfig(cloud_provider="local", local_data_dir=str(tmp_path))
    delegate = build_infra(config).queue_delegate
    assert isinstance(delegate, LocalQueueEndpointResourceDelegate)
    info = await delegate.create_queue_if_not_exists("e1", "n", "u", {})
    options = {k: v for k, v in local_broker_paths(config).items() if k != "meta_folder"}
    queue = kombu.Queue(info.queue_name, kombu.Exchange(info.queue_name), routing_key=info.queue_name)
    with kombu.Connection("filesystem://", transport_options=options) as connection:
        producer = connection.Producer()
        for other in (info.queue_name, info.queue_name, "launch-endpoint-id-e1x"):
            producer.publish(
                {}, exchange=queue.exchange if other == info.queue_name else "", routing_key=other, declare=[queue]
            )
    names = [message_file_queue(p.name) for p in Path(options["data_folder_in"]).iterdir()]
    assert sorted(n for n in names if n) == ["launch-endpoint-id-e1", "launch-endpoint-id-e1", "launch-endpoint-id-e1x"]
    attributes = await delegate.get_queue_attributes("e1")
    assert attributes.approximate_message_count == 2
    await delegate.delete_queue("e1")
    assert [message_file_queue(p.name) for p in Path(options["data_folder_in"]).iterdir()] == ["launch-endpoint-id-e1x"]


def test_message_file_names() -> None:
    assert message_file_queue("123_0a1b.launch-endpoint-id-e1.msg") == "launch-endpoint-id-e1"
    assert message_file_queue(".launch-endpoint-id-e1.json.tmp") is None
    assert message_file_queue("noext") is None


# --- the event loop stays free ------------------------------------------------------------------


class _SlowProxy:
    """Wraps a client so every method call blocks its thread for ``delay`` seconds first."""

    def __init__(self, target: Any, delay: float) -> None:
        self._target = target
        self._delay = delay

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._target, name)
        if not callable(attribute):
            return attribute

        def slow(*args: Any, **kwargs: Any) -> Any:
            time.sleep(self._delay)
            return attribute(*args, **kwargs)

        return slow


async def _largest_loop_gap(work: Any) -> float:
    """Run ``work`` while a ticker measures the longest time the event loop was unavailable."""
    gaps: list[float] = []
    done = asyncio.Event()

    async def ticker() -> None:
        last = time.monotonic()
        while not done.is_set():
            await asyncio.sleep(0.005)
            now = time.monotonic()
            gaps.append(now - last)
            last = now

    task = asyncio.create_task(ticker())
    await asyncio.sleep(0.02)  # the ticker runs before the work starts
    try:
        await work
    finally:
        done.set()
        await task
    return max(gaps)


async def test_sqs_and_servicebus_calls_never_block_the_event_loop(aws: Any) -> None:
    sqs = SQSQueueEndpointResourceDelegate(region="eu-west-1", client=_SlowProxy(aws, 0.15))
    ns = FakeServiceBusNamespace("slow-ns")
    servicebus = ServiceBusQueueEndpointResourceDelegate("slow-ns", admin_client=_SlowProxy(ns.admin_client(), 0.15))
    for delegate in (sqs, servicebus):
        started = time.monotonic()
        gap = await _largest_loop_gap(delegate.create_queue_if_not_exists("e1", "n", "u", {}))
        assert time.monotonic() - started >= 0.15  # the slow calls did run
        assert gap < 0.1
