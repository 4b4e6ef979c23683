"""What a service sees of the public API, as types: checked by ``mypy --strict --disallow-any-expr``.

Not a test module (pytest does not collect it): tests/test_typing.py runs mypy on it. Every
expression here comes from model-engine-infra; ``--disallow-any-expr`` fails the check if any of
them is (or contains) ``Any``, and each ``assert_type`` pins the exact type a user gets.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import IO

import redis
import redis.asyncio
from typing_extensions import assert_type

from model_engine_infra import Infra, InfraConfig, build_infra, load_config
from model_engine_infra.json_types import JSONObject, JSONValue
from model_engine_infra.queues.base import QueueAttributes, QueueInfo
from model_engine_infra.tasks.base import SentTask, TaskState, TaskStatus


def configuration() -> Infra:
    config = load_config()
    assert_type(config, InfraConfig)
    assert_type(config.cloud_provider, str)
    assert_type(config.redis_port, int)
    assert_type(config.secret("redis_auth_token"), str | None)
    assert_type(config.source_of("redis_port"), str)
    return build_infra(config)


def storage(infra: Infra, uri: str) -> None:
    with infra.filesystem.open(uri, "wb") as raw_out:
        assert_type(raw_out, IO[bytes])
        raw_out.write(b"{}")
    with infra.filesystem.open(uri) as raw_in:
        assert_type(raw_in, IO[bytes])
        assert_type(raw_in.read(), bytes)
    with infra.filesystem.open(uri, "w") as text_out:
        assert_type(text_out, IO[str])
        text_out.write("{}")
    with infra.filesystem.open(uri, "r", encoding="utf-8") as text_in:
        assert_type(text_in.read(), str)
    assert_type(infra.filesystem.generate_signed_url(uri, expiration=600), str)
    assert_type(infra.filesystem.exists(uri), bool)
    assert_type(infra.filesystem.list(uri), list[str])
    assert_type(infra.artifacts.download_files(uri, "/tmp/model"), list[str])
    assert_type(infra.artifacts.upload_files("/tmp/model", uri), list[str])
    assert_type(infra.artifacts.get_model_config(uri), JSONObject)


async def queues_and_tasks(infra: Infra) -> None:
    info = await infra.queue_delegate.create_queue_if_not_exists("e1", "demo", "alice", {"team": "ml"}, 600)
    assert_type(info, QueueInfo)
    assert_type(info.queue_url, str | None)
    attributes = await infra.queue_delegate.get_queue_attributes("e1")
    assert_type(attributes, QueueAttributes)
    assert_type(attributes.approximate_message_count, int | None)  # None where the broker cannot count
    assert_type(attributes.raw, Mapping[str, object])
    sent = infra.task_queue.send_task("tasks.predict", info.queue_name, args=["hello"], kwargs={"n": 1})
    assert_type(sent, SentTask)
    state = infra.task_queue.get_task(sent.task_id)
    assert_type(state, TaskState)
    assert_type(state.status, TaskStatus)
    assert_type(state.result, JSONValue)
    await infra.queue_delegate.delete_queue("e1")


def images(infra: Infra) -> None:
    assert_type(infra.docker_repository.image_exists("1.0", "vllm"), bool)
    assert_type(infra.docker_repository.get_image_url("1.0", "vllm"), str)
    assert_type(infra.docker_repository.get_latest_image_tag("vllm"), str)


def redis_and_secrets(infra: Infra) -> None:
    assert_type(infra.redis.client(), redis.Redis)
    assert_type(infra.redis.async_client(), redis.asyncio.Redis)
    assert_type(infra.redis.credential_provider, redis.CredentialProvider | None)
    assert_type(infra.redis.redacted_url(), str)
    assert_type(infra.secrets.get("prod/api-key"), str | JSONObject)
    database = infra.secrets.get_json("prod/database")
    assert_type(database, JSONObject)
    assert_type(database["port"], JSONValue)


async def closing(infra: Infra) -> None:
    await infra.aclose()
    infra.close()
