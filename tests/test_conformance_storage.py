"""The store conformance suite over local disk (``file://`` URIs and plain paths) and in-process moto S3.

integration/test_storage_servers.py runs the same `StoreConformance` over the moto server (S3 and
the MinIO path), Azurite and fake-gcs-server.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from model_engine_infra import InfraConfig
from model_engine_infra.testing.conformance.storage import (
    StoreConformance,
    StoreTarget,
    fresh_root,
    local_store_target,
    s3_store_target,
)


class TestLocalFileURIs(StoreConformance):
    @pytest.fixture
    def store_target(self, tmp_path: Path) -> Iterator[StoreTarget]:
        target = local_store_target(tmp_path, "file")
        yield target
        target.infra.close()


class TestLocalPaths(StoreConformance):
    @pytest.fixture
    def store_target(self, tmp_path: Path) -> Iterator[StoreTarget]:
        target = local_store_target(tmp_path, "path")
        yield target
        target.infra.close()


class TestS3OnMoto(StoreConformance):
    @pytest.fixture
    def store_target(self) -> Iterator[StoreTarget]:
        from moto import mock_aws

        with mock_aws():
            root = fresh_root("s3", "contract-bucket")
            config = InfraConfig(cloud_provider="aws", hf_user_fine_tuned_weights_prefix=f"{root}/ft")
            target = s3_store_target("moto", config, root)
            yield target
            target.infra.close()
