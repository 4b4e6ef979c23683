"""The testing kit a service's own tests use: fixtures from the pytest plugin, fakes, task assertions."""

from __future__ import annotations

import asyncio
import datetime as dt
import re
from pathlib import Path
from typing import Any

import pytest

from model_engine_infra import InfraConfig
from model_engine_infra.errors import ImageNotFoundError, RegistryUnavailableError
from model_engine_infra.infra import build_infra
from model_engine_infra.tasks.base import TaskStatus
from model_engine_infra.testing.conformance.images import DockerRepositoryConformance, RegistryTarget
from model_engine_infra.testing.fakes import (
    FAKE_PROVIDERS,
    FakeDockerRepository,
    FakeInfra,
    RecordingTaskQueue,
    assert_task_sent,
    complete_task,
    fake_config,
    patch_azure_sdk,
    sent_tasks,
)

ALL = list(FAKE_PROVIDERS)


def test_default_provider_is_local(mei_fake_infra: FakeInfra, mei_infra_config: InfraConfig) -> None:
    assert mei_fake_infra.config is mei_infra_config
    assert mei_fake_infra.provider.name == "local"


@pytest.mark.parametrize("mei_fake_infra", ["aws", "gcp"], indirect=True)
def test_infra_config_follows_the_fake_infra_parameter(
    mei_fake_infra: FakeInfra, mei_infra_config: InfraConfig
) -> None:
    assert mei_infra_config.cloud_provider == mei_fake_infra.config.cloud_provider


@pytest.mark.parametrize("mei_infra_provider", ["onprem"])
def test_infra_provider_can_be_parametrized_directly(mei_infra_provider: str, mei_fake_infra: FakeInfra) -> None:
    assert mei_fake_infra.config.cloud_provider == "onprem"


@pytest.mark.parametrize("mei_infra_config", ["azure"], indirect=True)
def test_infra_config_alone_picks_the_provider(mei_infra_config: InfraConfig, mei_fake_infra: FakeInfra) -> None:
    assert mei_fake_infra.config.cloud_provider == "azure"


@pytest.mark.parametrize("mei_fake_infra", ALL, indirect=True)
async def test_every_component_works_in_process(mei_fake_infra: FakeInfra) -> None:
    infra = mei_fake_infra
    info = await infra.queue_delegate.create_queue_if_not_exists("e1", "demo", "alice", {"team": "ml"}, 60)
    attrs = await infra.queue_delegate.get_queue_attributes("e1")
    assert attrs.name == info.queue_name == "launch-endpoint-id-e1"

    sent = infra.task_queue.send_task("tasks.predict", info.queue_name, args=[{"prompt": "hi"}])
    assert infra.task_queue.get_task(sent.task_id).status is TaskStatus.PENDING
    complete_task(infra, sent.task_id, {"output": "hi"})
    assert infra.task_queue.get_task(sent.task_id).result == {"output": "hi"}

    uri = f"{infra.config.hf_user_fine_tuned_weights_prefix}/m/config.json"
    with infra.filesystem.open(uri, "w") as f:
        f.write('{"model_type": "demo"}')
    assert infra.artifacts.get_model_config(f"{infra.config.hf_user_fine_tuned_weights_prefix}/m") == {
        "model_type": "demo"
    }
    assert infra.filesystem.generate_signed_url(uri, expiration=60)

    infra.fakes.put_secret("api-key", "s3cret")
    assert infra.secrets.get("api-key") == "s3cret"

    infra.redis.client().set("k", b"v")
    assert await infra.redis.async_client().get("k") == b"v"  # one in-memory server behind both

    infra.fakes.registry.push("vllm", "0.6.3")
    assert infra.docker_repository.image_exists("0.6.3", "vllm")

    await infra.queue_delegate.delete_queue("e1")


def test_assert_task_sent_matches_name_queue_and_arguments(mei_fake_infra: FakeInfra) -> None:
    mei_fake_infra.task_queue.send_task("tasks.predict", "q1", args=[1], kwargs={"x": 2})
    mei_fake_infra.task_queue.send_task("tasks.predict", "q2", args=[3])
    mei_fake_infra.task_queue.send_task("tasks.other", "q1")

    assert [t.queue for t in sent_tasks(mei_fake_infra, "tasks.predict")] == ["q1", "q2"]
    assert len(sent_tasks(mei_fake_infra, queue="q1")) == 2
    found = assert_task_sent(mei_fake_infra, "tasks.predict", queue="q1", args=[1], kwargs={"x": 2})
    assert found.kwargs == {"x": 2}
    assert_task_sent(mei_fake_infra, "tasks.predict", count=2)

    with pytest.raises(AssertionError, match=re.escape("no task 'tasks.predict' to queue 'q3' was sent; sent: ")):
        assert_task_sent(mei_fake_infra, "tasks.predict", queue="q3")
    with pytest.raises(AssertionError, match="sent 2 time"):
        assert_task_sent(mei_fake_infra, "tasks.predict", count=1)


def test_a_registered_handler_stands_in_for_the_worker(mei_fake_infra: FakeInfra) -> None:
    mei_fake_infra.fakes.tasks.register("tasks.add", lambda a, b: a + b)
    mei_fake_infra.fakes.tasks.register("tasks.crash", lambda: 1 / 0)
    ok = mei_fake_infra.task_queue.send_task("tasks.add", "q", args=[2, 3])
    bad = mei_fake_infra.task_queue.send_task("tasks.crash", "q")
    assert mei_fake_infra.task_queue.get_task(ok.task_id).result == 5
    failed = mei_fake_infra.task_queue.get_task(bad.task_id)
    assert failed.status is TaskStatus.FAILURE
    assert failed.result == "ZeroDivisionError: division by zero"
    assert "ZeroDivisionError" in (failed.traceback or "")


def test_unknown_task_ids_are_pending_like_celery() -> None:
    assert RecordingTaskQueue().get_task("nope").status is TaskStatus.PENDING


def test_task_helpers_need_the_recording_gateway(tmp_path: Path) -> None:
    infra = build_infra(InfraConfig(cloud_provider="local", local_data_dir=str(tmp_path)))
    with pytest.raises(TypeError, match="not a RecordingTaskQueue"):
        sent_tasks(infra)


def test_fake_registry_answers_like_a_registry() -> None:
    registry = FakeDockerRepository("registry.example.com/ml")
    old = dt.datetime(2024, 1, 1, tzinfo=dt.timezone.utc)
    assert registry.push("vllm", "0.5", pushed_at=old) == "registry.example.com/ml/vllm:0.5"
    registry.push("vllm", "0.6")
    assert registry.get_latest_image_tag("vllm") == "0.6"
    assert not registry.image_exists("0.7", "vllm")
    with pytest.raises(ImageNotFoundError):
        registry.get_latest_image_tag("tgi")
    registry.fail = RegistryUnavailableError("registry down")
    with pytest.raises(RegistryUnavailableError):
        registry.image_exists("0.6", "vllm")


def test_fake_config_is_valid_for_every_provider(tmp_path: Path) -> None:
    from model_engine_infra.config.validation import validate

    for provider in ALL:
        config = fake_config(provider, tmp_path, vllm_repository="my/vllm")
        validate(config)
        assert config.vllm_repository == "my/vllm"
    with pytest.raises(ValueError, match="no fake for provider"):
        fake_config("ibm", tmp_path)


@pytest.mark.parametrize("mei_fake_infra", ["aws"], indirect=True)
def test_aws_fakes_run_on_moto_in_process(mei_fake_infra: FakeInfra) -> None:
    import boto3

    info = asyncio.run(mei_fake_infra.queue_delegate.create_queue_if_not_exists("e2", "n", "me", {}, 30))
    queues = boto3.client("sqs", region_name="us-east-1").list_queues()["QueueUrls"]
    assert any(url.endswith(info.queue_name) for url in queues)
    asyncio.run(mei_fake_infra.queue_delegate.close())


def test_patch_azure_sdk_swaps_and_restores() -> None:
    import importlib

    from model_engine_infra.testing.azure_identity import FakeTokenCredential
    from model_engine_infra.testing.keyvault import FakeSecretClient
    from model_engine_infra.testing.servicebus import FakeServiceBusNamespace

    identity: Any = importlib.import_module("azure.identity")
    keyvault: Any = importlib.import_module("azure.keyvault.secrets")
    management: Any = importlib.import_module("azure.servicebus.management")
    originals = (identity.DefaultAzureCredential, keyvault.SecretClient, management.ServiceBusAdministrationClient)
    credential, vault, namespace = FakeTokenCredential(), FakeSecretClient(), FakeServiceBusNamespace("kit-ns")
    with patch_azure_sdk(credential=credential, servicebus=namespace, secret_client=vault):
        assert identity.DefaultAzureCredential() is credential
        assert keyvault.SecretClient("https://v", credential) is vault
        admin = management.ServiceBusAdministrationClient("kit-ns.servicebus.windows.net", credential)
        admin.create_queue("q1")
        assert namespace.queue_names() == ["q1"]
    assert (identity.DefaultAzureCredential, keyvault.SecretClient, management.ServiceBusAdministrationClient) == (
        originals
    )


class TestFakeDockerRepositoryContract(DockerRepositoryConformance):
    """The in-memory registry keeps the contract every real registry client keeps."""

    @pytest.fixture
    def registry_target(self) -> Any:
        from model_engine_infra.errors import InfraError, RegistryAuthError

        repository = FakeDockerRepository("registry.example.com/ml")

        def failing(error: InfraError) -> FakeDockerRepository:
            broken = FakeDockerRepository("registry.example.com/ml")
            broken.fail = error
            return broken

        return RegistryTarget(
            repository,
            lambda name, tag, created: repository.push(name, tag, pushed_at=created),
            lambda: failing(RegistryAuthError("registry refused the login")),
            lambda: failing(RegistryUnavailableError("registry does not answer")),
        )
