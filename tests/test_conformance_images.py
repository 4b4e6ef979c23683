"""The registry-client conformance suite over ECR on in-process moto.

integration/test_images_servers.py runs the same `DockerRepositoryConformance` over real servers
(OCI anonymous / basic / bearer, ACR, GAR on docker-registry; ECR on moto server).
"""

from __future__ import annotations

import pytest

from model_engine_infra.testing.conformance.images import (
    ECR_PREFIX,
    DockerRepositoryConformance,
    RegistryTarget,
    ecr_client,
    ecr_target,
    moto_set_pushed_at,
)


class TestECR(DockerRepositoryConformance):
    @pytest.fixture
    def registry_target(self, ecr_moto: dict[str, str]) -> RegistryTarget:
        return ecr_target(ecr_moto, moto_set_pushed_at)


def test_ecr_build_image_is_not_pretended(ecr_moto: dict[str, str]) -> None:
    from model_engine_infra.errors import ImageBuildNotSupportedError

    target = ecr_target(ecr_moto, moto_set_pushed_at)
    with pytest.raises(ImageBuildNotSupportedError, match="build them in CI"):
        target.repository.build_image({})


def test_ecr_ensure_repository_is_idempotent(ecr_moto: dict[str, str]) -> None:
    from model_engine_infra.images.ecr import ECRDockerRepository

    client = ecr_client(**ecr_moto)
    repo = ECRDockerRepository(ECR_PREFIX, client=client)
    repo.ensure_repository("mirror/vllm")
    repo.ensure_repository("mirror/vllm")
    assert client.describe_repositories(repositoryNames=["mirror/vllm"])["repositories"]
