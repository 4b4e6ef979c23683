"""The registry-client conformance suite over ECR on in-process moto.

integration/test_images_servers.py runs the same `DockerRepositoryConformance` over real servers
(OCI anonymous / basic / bearer, ACR, GAR on docker-registry; ECR on moto server).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime

import pytest

from model_engine_infra.testing.conformance.images import (
    ACCOUNT,
    ECR_PREFIX,
    DockerRepositoryConformance,
    RegistryTarget,
    ecr_client,
    ecr_target,
)


@pytest.fixture
def ecr_moto() -> Iterator[dict[str, str]]:
    """moto with IAM enforced after setup: a user allowed ecr:*, and its keys."""
    import boto3
    from moto import mock_aws, settings
    from moto.core.responses import ActionAuthenticatorMixin

    saved = settings.INITIAL_NO_AUTH_ACTION_COUNT, ActionAuthenticatorMixin.request_count
    settings.INITIAL_NO_AUTH_ACTION_COUNT, ActionAuthenticatorMixin.request_count = 3, 0
    with mock_aws():
        iam = boto3.client("iam", region_name="us-east-1", aws_access_key_id="setup", aws_secret_access_key="setup")
        iam.create_user(UserName="contract")
        policy = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "ecr:*", "Resource": "*"}]}
        iam.put_user_policy(UserName="contract", PolicyName="ecr", PolicyDocument=json.dumps(policy))
        key = iam.create_access_key(UserName="contract")["AccessKey"]
        try:
            yield {"aws_access_key_id": key["AccessKeyId"], "aws_secret_access_key": key["SecretAccessKey"]}
        finally:
            settings.INITIAL_NO_AUTH_ACTION_COUNT, ActionAuthenticatorMixin.request_count = saved


def _moto_set_pushed_at(name: str, tag: str, created: datetime) -> None:
    from moto.ecr.models import ecr_backends

    repository = ecr_backends[ACCOUNT]["us-east-1"].repositories[name]
    for image in repository.images:
        if tag in image.image_tags:
            image.image_pushed_at = int(created.timestamp())


class TestECR(DockerRepositoryConformance):
    @pytest.fixture
    def registry_target(self, ecr_moto: dict[str, str]) -> RegistryTarget:
        return ecr_target(ecr_moto, _moto_set_pushed_at)


def test_ecr_build_image_is_not_pretended(ecr_moto: dict[str, str]) -> None:
    from model_engine_infra.errors import ImageBuildNotSupportedError

    target = ecr_target(ecr_moto, _moto_set_pushed_at)
    with pytest.raises(ImageBuildNotSupportedError, match="build them in CI"):
        target.repository.build_image({})


def test_ecr_ensure_repository_is_idempotent(ecr_moto: dict[str, str]) -> None:
    from model_engine_infra.images.ecr import ECRDockerRepository

    client = ecr_client(**ecr_moto)
    repo = ECRDockerRepository(ECR_PREFIX, client=client)
    repo.ensure_repository("mirror/vllm")
    repo.ensure_repository("mirror/vllm")
    assert client.describe_repositories(repositoryNames=["mirror/vllm"])["repositories"]
