"""The file-storage contract over real servers: moto server (AWS and the MinIO path), Azurite, fake-gcs-server.

The suite is `FileStorageConformance` from ``model_engine_infra.testing.conformance.file_storage``,
the class the unit suite runs too; only the ``file_storage_target`` fixture differs. Each target
keeps the default prefix, ``{store}://{s3_bucket}``, so the objects the suite writes behind the
gateway sit at llm-engine's own keys, ``{owner}/{file_id}``.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import SecretStr

from gcp_keys import write_service_account_key
from model_engine_infra import InfraConfig, build_infra
from model_engine_infra.testing.conformance.file_storage import (
    FileStorageConformance,
    FileStorageTarget,
    s3_file_storage_target,
)
from model_engine_infra.testing.servers import RunningServer

pytestmark = pytest.mark.integration


@pytest.fixture(scope="session")
def signing_key(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A service-account key made here: GCS V4 URLs are signed offline with it (the emulator does not check)."""
    return write_service_account_key(tmp_path_factory.mktemp("gcp-files") / "key.json")


def bucket_name() -> str:
    return f"files-{uuid.uuid4().hex[:10]}"


def moto_target(moto: RunningServer, monkeypatch: pytest.MonkeyPatch, *, minio: bool) -> FileStorageTarget:
    for name, value in moto.sdk_env.items():
        if name != "AWS_ENDPOINT_URL" or not minio:
            monkeypatch.setenv(name, value)
    if minio:
        monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
        config = InfraConfig(cloud_provider="onprem", s3_endpoint_url=moto.url, s3_bucket=bucket_name())
    else:
        config = InfraConfig(cloud_provider="aws", default_region="us-east-1", s3_bucket=bucket_name())
    return s3_file_storage_target(config, name="minio-path" if minio else "moto-server")


def azurite_target(azurite: RunningServer) -> FileStorageTarget:
    container = bucket_name()
    config = InfraConfig(
        cloud_provider="azure",
        abs_account_name=azurite.extra["account_name"],
        abs_account_key=SecretStr(azurite.extra["account_key"]),
        abs_endpoint_url=azurite.extra["blob_endpoint"],
        s3_bucket=container,
    )
    infra = build_infra(config)
    client = infra.filesystem.client  # type: ignore[attr-defined]
    with contextlib.suppress(Exception):
        client.create_container(container)
    assert infra.file_storage.prefix == f"az://{container}"  # type: ignore[attr-defined]

    def put_raw(relative: str, data: bytes) -> None:
        client.get_blob_client(container, relative).upload_blob(data, overwrite=True)

    def get_raw(relative: str) -> bytes | None:
        from azure.core.exceptions import ResourceNotFoundError

        try:
            return bytes(client.get_blob_client(container, relative).download_blob().readall())
        except ResourceNotFoundError:
            return None

    return FileStorageTarget("azurite", infra, put_raw, get_raw)


def gcs_target(gcs: RunningServer) -> FileStorageTarget:
    bucket = bucket_name()
    config = InfraConfig(cloud_provider="gcp", gcp_project_id="test", gcs_endpoint_url=gcs.url, s3_bucket=bucket)
    infra = build_infra(config)
    client = infra.filesystem.client  # type: ignore[attr-defined]
    with contextlib.suppress(Exception):
        client.create_bucket(bucket)
    assert infra.file_storage.prefix == f"gs://{bucket}"  # type: ignore[attr-defined]

    def put_raw(relative: str, data: bytes) -> None:
        client.bucket(bucket).blob(relative).upload_from_string(data)

    def get_raw(relative: str) -> bytes | None:
        blob = client.bucket(bucket).blob(relative)
        return bytes(blob.download_as_bytes()) if blob.exists() else None

    return FileStorageTarget("fake-gcs", infra, put_raw, get_raw)


class TestFileStorageOnMotoServer(FileStorageConformance):
    @pytest.fixture
    def file_storage_target(
        self, mei_moto_server: RunningServer, monkeypatch: pytest.MonkeyPatch
    ) -> Iterator[FileStorageTarget]:
        target = moto_target(mei_moto_server, monkeypatch, minio=False)
        yield target
        target.infra.close()


class TestFileStorageOnMinIOPath(FileStorageConformance):
    """``s3_endpoint_url`` on the onprem provider (how MinIO is configured), served by the moto server."""

    @pytest.fixture
    def file_storage_target(
        self, mei_moto_server: RunningServer, monkeypatch: pytest.MonkeyPatch
    ) -> Iterator[FileStorageTarget]:
        target = moto_target(mei_moto_server, monkeypatch, minio=True)
        yield target
        target.infra.close()


class TestFileStorageOnAzurite(FileStorageConformance):
    @pytest.fixture
    def file_storage_target(self, mei_azurite_server: RunningServer) -> Iterator[FileStorageTarget]:
        target = azurite_target(mei_azurite_server)
        yield target
        target.infra.close()


class TestFileStorageOnFakeGCS(FileStorageConformance):
    @pytest.fixture
    def file_storage_target(
        self, mei_gcs_server: RunningServer, monkeypatch: pytest.MonkeyPatch, signing_key: Path
    ) -> Iterator[FileStorageTarget]:
        monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(signing_key))
        target = gcs_target(mei_gcs_server)
        yield target
        target.infra.close()
