"""Celery result backends ``abs`` and ``gcs`` storing and reading task results on Azurite and fake-gcs-server.

A real Celery worker (in a thread) runs the demo tasks and its backend writes each result; the
gateway reads them back through its own app. Azure pairs the backend with its broker, Service Bus
(the SDK-boundary fake: no emulator exists); GCP with its broker, Redis (redis-server). The
blobs are then listed with each cloud's SDK, so the results are known to be on the emulator, in
llm-engine's layout (Azure: Celery's key, no folder; GCS: ``celery-results/``), and not in some
local fallback.
"""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING

import pytest
from pydantic import SecretStr

from model_engine_infra.config import InfraConfig
from model_engine_infra.tasks import TaskStatus
from model_engine_infra.tasks.gateway import CeleryTaskQueueGateway
from model_engine_infra.tasks.worker import worker_app
from model_engine_infra.testing.conformance.tasks import check_roundtrip, worker_thread
from model_engine_infra.testing.servers import RunningServer

if TYPE_CHECKING:
    from celery import Celery

pytestmark = pytest.mark.integration


def result_ids(names: list[str], folder: str = "celery-results/") -> set[str]:
    prefix = folder + "celery-task-meta-"
    assert all(name.startswith(prefix) for name in names), names
    return {name.removeprefix(prefix) for name in names}


def run_tasks(gateway: CeleryTaskQueueGateway, worker: Celery, queue: str) -> list[str]:
    """The suite's round trip (success, failure with traceback, expiry) plus an unknown id; the ids stored."""
    with worker_thread(worker, queue):
        sent: list[str] = check_roundtrip(gateway, queue)
    assert gateway.get_task(str(uuid.uuid4())).status is TaskStatus.PENDING
    return sent


def test_abs_results_on_azurite(mei_azurite_server: RunningServer, monkeypatch: pytest.MonkeyPatch) -> None:
    from azure.storage.blob import BlobServiceClient

    from model_engine_infra.testing.servicebus import FakeServiceBusNamespace, patch_kombu_servicebus

    monkeypatch.delenv("AZURE_STORAGE_CONNECTION_STRING", raising=False)  # the config alone must lead there
    container = f"results-{uuid.uuid4().hex[:8]}"
    namespace = FakeServiceBusNamespace("backends-ns", max_receive_wait=0.05)
    config = InfraConfig(
        cloud_provider="azure",
        servicebus_namespace=namespace.name,
        abs_account_name=mei_azurite_server.extra["account_name"],
        abs_account_key=SecretStr(mei_azurite_server.extra["account_key"]),
        abs_endpoint_url=mei_azurite_server.extra["blob_endpoint"],
        celery_result_container=container,  # a container per run; the default is Celery's "celery"
    )
    with patch_kombu_servicebus(namespace):
        gateway = CeleryTaskQueueGateway.from_config(config)
        assert gateway.app.conf.result_backend.startswith("azureblockblob://")
        assert mei_azurite_server.extra["account_key"] not in repr(gateway)
        worker = worker_app(config)
        worker.conf.broker_transport_options = {**worker.conf.broker_transport_options, "polling_interval": 0.05}
        try:
            sent = run_tasks(gateway, worker, "abs-results")
        finally:
            gateway.close()
    blobs = BlobServiceClient.from_connection_string(mei_azurite_server.extra["connection_string"])
    stored = [b.name for b in blobs.get_container_client(container).list_blobs()]  # the backend made the container
    assert result_ids(stored, folder="") == set(sent)  # llm-engine's layout: Celery's key, no folder


def test_gcs_results_on_fake_gcs_server(
    mei_gcs_server: RunningServer, mei_redis_server: RunningServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import storage

    monkeypatch.delenv("STORAGE_EMULATOR_HOST", raising=False)  # gcs_endpoint_url alone must lead there
    bucket = f"results-{uuid.uuid4().hex[:8]}"
    client = storage.Client(
        project="test",
        credentials=AnonymousCredentials(),  # type: ignore[no-untyped-call]
        client_options={"api_endpoint": mei_gcs_server.url},
    )
    client.create_bucket(bucket)  # Celery's GCS backend never creates its bucket: the deployment's bucket
    config = InfraConfig(
        cloud_provider="gcp",
        gcp_project_id="test",
        s3_bucket=bucket,
        gcs_endpoint_url=mei_gcs_server.url,
        celery_backend_protocol="gcs",  # gcp's default is Redis (llm-engine's); GCS on request
        redis_host=mei_redis_server.host,
        redis_port=mei_redis_server.port,
    )
    gateway = CeleryTaskQueueGateway.from_config(config, redis=mei_redis_server.url)
    assert gateway.app.conf.result_backend == "model_engine_infra.tasks.gcs_results:EndpointGCSBackend"
    worker = worker_app(config, redis=mei_redis_server.url)
    try:
        sent = run_tasks(gateway, worker, "gcs-results")
    finally:
        gateway.close()
    stored = [b.name for b in client.list_blobs(bucket)]
    assert result_ids(stored) == set(sent)
