"""The user-files conformance suite on local disk and S3 (in-process moto).

integration/test_file_storage_servers.py runs the same `FileStorageConformance` on moto server (AWS
and the MinIO path), Azurite and fake-gcs-server.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from model_engine_infra import InfraConfig
from model_engine_infra.testing.conformance.file_storage import (
    FileStorageConformance,
    FileStorageTarget,
    local_file_storage_target,
    s3_file_storage_target,
)


class TestLocalFileStorage(FileStorageConformance):
    @pytest.fixture
    def file_storage_target(self, tmp_path: Path) -> Iterator[FileStorageTarget]:
        target = local_file_storage_target(tmp_path)
        yield target
        target.infra.close()


class TestS3FileStorageOnMoto(FileStorageConformance):
    @pytest.fixture
    def file_storage_target(self) -> Iterator[FileStorageTarget]:
        from moto import mock_aws

        with mock_aws():
            config = InfraConfig(cloud_provider="aws", default_region="us-east-1", s3_bucket="files-bucket")
            target = s3_file_storage_target(config)
            yield target
            target.infra.close()
