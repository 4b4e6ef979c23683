"""The example service's own tests: the same tests on aws and local, only the fixture parameter differs.

``mei_fake_infra`` comes from model-engine-infra's pytest plugin (installed with the package): on aws
it is SQS, S3 and Secrets Manager on moto in this process, on local the filesystem broker and disk;
both use fakeredis, an in-memory registry and a task queue that records what was sent.
"""

from __future__ import annotations

import pytest
from model_service import API_KEY_SECRET, PREDICT_TASK, ModelService

from model_engine_infra.testing.fakes import FakeInfra, assert_task_sent, complete_task, sent_tasks

CLOUDS = pytest.mark.parametrize("mei_fake_infra", ["aws", "local"], indirect=True)
AUTH = {"Authorization": "Bearer test-key"}


@pytest.fixture
def service(mei_fake_infra: FakeInfra) -> ModelService:
    mei_fake_infra.fakes.put_secret(API_KEY_SECRET, "test-key")
    mei_fake_infra.fakes.registry.push(mei_fake_infra.config.vllm_repository, "0.6.3")
    return ModelService(mei_fake_infra)


async def _endpoint(service: ModelService, name: str = "llama") -> str:
    created = await service.handle("POST", "/endpoints", {"name": name, "image_tag": "0.6.3"}, AUTH)
    assert created.status == 201, created.body
    return str(created.body["endpoint_id"])


@CLOUDS
@pytest.mark.asyncio
async def test_create_endpoint_makes_its_queue(service: ModelService, mei_fake_infra: FakeInfra) -> None:
    endpoint_id = await _endpoint(service)
    attributes = await mei_fake_infra.queue_delegate.get_queue_attributes(endpoint_id)
    assert attributes.approximate_message_count == 0
    shown = await service.handle("GET", f"/endpoints/{endpoint_id}", headers=AUTH)
    assert shown.body == {"name": "llama", "image_tag": "0.6.3", "queue_name": attributes.name, "waiting": 0}


@CLOUDS
@pytest.mark.asyncio
async def test_predict_sends_one_task_to_the_endpoints_queue(service: ModelService, mei_fake_infra: FakeInfra) -> None:
    endpoint_id = await _endpoint(service)
    queue = mei_fake_infra.queue_delegate.queue_name(endpoint_id)

    accepted = await service.handle("POST", f"/endpoints/{endpoint_id}/predict", {"prompt": "hello"}, AUTH)

    assert accepted.status == 202
    task = assert_task_sent(mei_fake_infra, PREDICT_TASK, queue=queue, kwargs={"prompt": "hello"}, count=1)
    assert task.task_id == accepted.body["task_id"]
    pending = await service.handle("GET", f"/tasks/{task.task_id}", headers=AUTH)
    assert (pending.status, pending.body) == (202, {"status": "pending"})
    complete_task(mei_fake_infra, task.task_id, {"output": "olleh"})  # what the worker would do
    done = await service.handle("GET", f"/tasks/{task.task_id}", headers=AUTH)
    assert done.body == {"status": "done", "result": {"output": "olleh"}}


@CLOUDS
@pytest.mark.asyncio
async def test_refusals_send_nothing(service: ModelService, mei_fake_infra: FakeInfra) -> None:
    assert (await service.handle("POST", "/endpoints", {"name": "x", "image_tag": "0.6.3"})).status == 401
    missing_image = await service.handle("POST", "/endpoints", {"name": "tgi", "image_tag": "9.9"}, AUTH)
    assert missing_image.status == 409
    assert "mirror it first" in str(missing_image.body["error"])
    assert (await service.handle("POST", "/endpoints/nope/predict", {"prompt": "hi"}, AUTH)).status == 404
    endpoint_id = await _endpoint(service)
    too_long = {"prompt": "x" * 20_000}
    assert (await service.handle("POST", f"/endpoints/{endpoint_id}/predict", too_long, AUTH)).status == 422
    assert sent_tasks(mei_fake_infra) == []


@CLOUDS
@pytest.mark.asyncio
async def test_weights_upload_and_signed_download(service: ModelService) -> None:
    endpoint_id = await _endpoint(service)
    put = await service.handle("PUT", f"/endpoints/{endpoint_id}/weights/config.json", b'{"layers": 2}', AUTH)
    assert put.status == 201
    link = await service.handle("GET", f"/endpoints/{endpoint_id}/weights/config.json", headers=AUTH)
    assert link.status == 200
    assert str(link.body["url"]).startswith(("https://", "file://"))
    assert (await service.handle("GET", f"/endpoints/{endpoint_id}/weights/other.bin", headers=AUTH)).status == 404


@CLOUDS
@pytest.mark.asyncio
async def test_delete_removes_the_queue(service: ModelService, mei_fake_infra: FakeInfra) -> None:
    from model_engine_infra.errors import QueueNotFoundError

    endpoint_id = await _endpoint(service)
    assert (await service.handle("DELETE", f"/endpoints/{endpoint_id}", headers=AUTH)).status == 204
    with pytest.raises(QueueNotFoundError):
        await mei_fake_infra.queue_delegate.get_queue_attributes(endpoint_id)
    assert (await service.handle("GET", f"/endpoints/{endpoint_id}", headers=AUTH)).status == 404
