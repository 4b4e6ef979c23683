"""Event loops, threads and shutdown (issue 14): ``async with``, ``with`` inside a loop, use after close.

Every provider's components are built in process by the testing kit (`fake_infra`: moto for aws
and onprem storage, the Service Bus and Key Vault fakes for azure, fakeredis for Redis). That the
queue delegate works from any event loop is a case of the delegate contract
(`QueueDelegateConformance`, run by tests/test_conformance_queues.py and on redis-server in integration/); for the Redis
connection, of the Redis contract.
"""

from __future__ import annotations

import asyncio
import gc
import threading
import warnings
from pathlib import Path
from typing import IO, Any

import pytest
from moto import mock_aws

from model_engine_infra import InfraConfig, build_infra
from model_engine_infra.errors import AsyncCloseRequiredError, InfraClosedError
from model_engine_infra.infra import Infra
from model_engine_infra.storage.base import FilesystemGateway
from model_engine_infra.testing.fakes import FAKE_PROVIDERS, fake_infra

COMPONENTS = ("queue_delegate", "task_queue", "filesystem", "artifacts", "docker_repository", "redis", "secrets")


def use_everything(infra: Infra) -> None:
    """One call on each component (sync parts; the delegate through asyncio.run)."""
    prefix = infra.config.hf_user_fine_tuned_weights_prefix
    infra.filesystem.exists(f"{prefix}/nothing")
    infra.artifacts.list_files(f"{prefix}/nothing")
    infra.task_queue.send_task("tasks.x", "launch-endpoint-id-e1", args=[])
    infra.docker_repository.image_exists("1.0", "vllm")
    infra.redis.client().ping()
    asyncio.run(infra.queue_delegate.create_queue_if_not_exists("e1", "n", "me", {}))


def no_unawaited_coroutine_warnings(caught: list[warnings.WarningMessage]) -> None:
    gc.collect()
    assert [w for w in caught if "was never awaited" in str(w.message)] == []


@pytest.mark.parametrize("provider", FAKE_PROVIDERS)
def test_after_close_every_component_raises_infra_closed_and_nothing_is_rebuilt(tmp_path: Path, provider: str) -> None:
    with fake_infra(provider, tmp_path) as infra:
        held = {name: infra.component(name) for name in COMPONENTS}
        use_everything(infra)
        infra.close()
        assert infra.closed
        assert infra.built_components() == []
        for name in COMPONENTS:
            with pytest.raises(InfraClosedError, match="build_infra"):
                getattr(infra, name)
        prefix = infra.config.hf_user_fine_tuned_weights_prefix
        calls = {
            "filesystem": lambda: held["filesystem"].exists(f"{prefix}/x"),
            "artifacts": lambda: held["artifacts"].list_files(f"{prefix}/x"),
            "task_queue": lambda: held["task_queue"].send_task("tasks.x", "launch-endpoint-id-e1", args=[]),
            "docker_repository": lambda: held["docker_repository"].image_exists("1.0", "vllm"),
            "redis": lambda: held["redis"].client(),
            "secrets": lambda: held["secrets"].get("anything"),
            "queue_delegate": lambda: asyncio.run(held["queue_delegate"].get_queue_attributes("e1")),
        }
        for call in calls.values():
            with pytest.raises(InfraClosedError, match="closed"):
                call()
        assert held["redis"].redacted_url()  # safe to show after close (reprs use it)
        infra.close()  # idempotent


@pytest.mark.parametrize("provider", FAKE_PROVIDERS)
async def test_async_with_closes_everything(tmp_path: Path, provider: str) -> None:
    with fake_infra(provider, tmp_path) as built, warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        async with built as infra:
            await infra.queue_delegate.create_queue_if_not_exists("e1", "n", "me", {})
            await infra.redis.async_client().set("k", "v")
            assert await infra.redis.async_client().get("k") == b"v"
        assert infra.closed
        with pytest.raises(InfraClosedError):
            await infra.queue_delegate.get_queue_attributes("e1")
    no_unawaited_coroutine_warnings(caught)


async def test_with_inside_a_running_loop_closes_what_it_can_and_names_the_rest(tmp_path: Path) -> None:
    """On aws the SQS delegate closes asynchronously (its client is closed in a worker thread)."""
    with fake_infra("aws", tmp_path) as built, warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        infra = built
        await infra.queue_delegate.create_queue_if_not_exists("e1", "n", "me", {})
        infra.filesystem.exists(f"{infra.config.hf_user_fine_tuned_weights_prefix}/x")
        with pytest.raises(AsyncCloseRequiredError, match=r"queue_delegate.*async with"), infra:
            pass  # `with infra:` exits (closes) inside this test's running loop
        assert infra.closed
        with pytest.raises(InfraClosedError):
            infra.filesystem.exists("s3://x/y")
        await infra.aclose()  # finishes what close could not
        assert infra._awaiting_aclose == {}
    no_unawaited_coroutine_warnings(caught)


async def test_with_inside_a_running_loop_is_quiet_when_everything_closes_synchronously(tmp_path: Path) -> None:
    with fake_infra("local", tmp_path) as built, warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with built as infra:
            await infra.queue_delegate.create_queue_if_not_exists("e1", "n", "me", {})
            await infra.redis.async_client().set("k", "v")
        assert infra.closed
    no_unawaited_coroutine_warnings(caught)


def test_with_outside_a_loop_runs_async_closers_to_completion(tmp_path: Path) -> None:
    with mock_aws(), warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        config = InfraConfig(cloud_provider="aws", cache_redis_aws_url="redis://r:6379/0")  # type: ignore[arg-type]
        with build_infra(config) as infra:
            delegate = infra.queue_delegate
            asyncio.run(delegate.create_queue_if_not_exists("e1", "n", "me", {}))
        assert delegate.is_closed
    no_unawaited_coroutine_warnings(caught)


class SlowFilesystem(FilesystemGateway):
    """A store whose ``open`` reads a file that ``close`` closes: the failure the issue saw."""

    def __init__(self, path: Path) -> None:
        self.handle: IO[str] = path.open()
        self.inside = threading.Event()
        self.go_on = threading.Event()

    def open(self, uri: str, mode: str = "rb", **kwargs: Any) -> IO[Any]:
        self.inside.set()
        self.go_on.wait(10)
        self.handle.read()  # ValueError: I/O operation on closed file, once closed
        return self.handle

    def generate_signed_url(self, uri: str, expiration: int = 3600, method: str = "GET") -> str:
        return uri

    def exists(self, uri: str) -> bool:
        return True

    def list(self, uri: str) -> list[str]:
        return []

    def delete(self, uri: str) -> None:
        pass

    def close(self) -> None:
        self.handle.close()


def test_a_call_running_while_another_thread_closes_raises_infra_closed(tmp_path: Path) -> None:
    (tmp_path / "f").write_text("x")
    store = SlowFilesystem(tmp_path / "f")
    infra = build_infra(InfraConfig(cloud_provider="local"), overrides={"filesystem": store})
    outcome: list[BaseException] = []

    def worker() -> None:
        try:
            infra.filesystem.open("file:///x")
        except BaseException as err:
            outcome.append(err)

    thread = threading.Thread(target=worker)
    thread.start()
    assert store.inside.wait(10)
    infra.close()  # closes the file under the running call
    store.go_on.set()
    thread.join(10)
    assert len(outcome) == 1
    assert isinstance(outcome[0], InfraClosedError), repr(outcome[0])
    assert isinstance(outcome[0].__cause__, ValueError)  # the raw error stays reachable


@pytest.mark.timeout(60)
@pytest.mark.parametrize("provider", ["local", "aws"])
def test_threads_hammering_components_during_close_see_only_infra_closed(tmp_path: Path, provider: str) -> None:
    with fake_infra(provider, tmp_path) as infra:
        prefix = infra.config.hf_user_fine_tuned_weights_prefix
        with infra.filesystem.open(f"{prefix}/f.txt", "w") as f:
            f.write("x")
        started = threading.Barrier(5)
        errors: list[BaseException] = []

        def worker() -> None:
            started.wait()
            while True:  # until close stops it; a thread still alive at join fails the test
                try:
                    infra.filesystem.exists(f"{prefix}/f.txt")
                    infra.redis.client().set("k", "v")
                    infra.task_queue.send_task("tasks.x", "launch-endpoint-id-e1", args=[])
                except BaseException as err:
                    errors.append(err)
                    return

        threads = [threading.Thread(target=worker) for _ in range(4)]
        for thread in threads:
            thread.start()
        started.wait()
        infra.close()
        for thread in threads:
            thread.join(30)
        assert not any(thread.is_alive() for thread in threads)
        assert len(errors) == 4
        assert all(isinstance(err, InfraClosedError) for err in errors), [repr(e) for e in errors]


@pytest.mark.parametrize("provider", FAKE_PROVIDERS)
def test_async_components_of_every_provider_work_from_any_event_loop(tmp_path: Path, provider: str) -> None:
    """Through `build_infra`'s wiring: asyncio.run twice, then a loop in another thread."""
    with fake_infra(provider, tmp_path) as infra:

        async def round_trip(endpoint_id: str) -> int:
            await infra.queue_delegate.create_queue_if_not_exists(endpoint_id, "n", "me", {})
            await infra.redis.async_client().incr("runs")
            await infra.autoscaling_metrics.create_or_update_resources(endpoint_id)
            await infra.autoscaling_metrics.emit_inference_autoscaling_metric(endpoint_id)
            assert await infra.autoscaling_metrics.read_metric(endpoint_id) is not None
            return (await infra.queue_delegate.get_queue_attributes(endpoint_id)).approximate_message_count

        assert asyncio.run(round_trip("e1")) == 0
        assert asyncio.run(round_trip("e2")) == 0
        in_thread: list[int] = []
        thread = threading.Thread(target=lambda: in_thread.append(asyncio.run(round_trip("e3"))))
        thread.start()
        thread.join(30)
        assert in_thread == [0]
        assert infra.redis.client().get("runs") == b"3"
