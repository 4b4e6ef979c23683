"""The one contract every `DockerRepository` passes; here over ECR with in-process moto.

``integration/test_images_servers.py`` runs the same `DockerRepositoryContract` over real
servers (OCI anonymous / basic / bearer, ACR, GAR on docker-registry; ECR on moto server) by
subclassing it with its own ``target`` fixture.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from model_engine_infra.errors import (
    ImageNotFoundError,
    InvalidImageReferenceError,
    RegistryAuthError,
    RegistryUnavailableError,
)
from model_engine_infra.images.base import DockerRepository

T0 = datetime(2024, 1, 1, tzinfo=timezone.utc)


@dataclass
class RegistryTarget:
    """What a contract run needs from one registry."""

    repository: DockerRepository
    push: Callable[[str, str, datetime], None]  # (relative repository name, tag, created)
    unauthorized: Callable[[], DockerRepository]  # a client whose login the registry refuses
    unreachable: Callable[[], DockerRepository]  # a client for a registry that does not answer


def unique_name(stem: str = "contract") -> str:
    return f"{stem}/{uuid.uuid4().hex[:10]}"


class DockerRepositoryContract:
    """Subclass with a ``target`` fixture returning a `RegistryTarget`."""

    def test_existing_tag(self, target: RegistryTarget) -> None:
        name = unique_name()
        target.push(name, "1.0", T0)
        assert target.repository.image_exists("1.0", name) is True

    def test_missing_tag(self, target: RegistryTarget) -> None:
        name = unique_name()
        target.push(name, "1.0", T0)
        assert target.repository.image_exists("2.0", name) is False

    def test_missing_repository(self, target: RegistryTarget) -> None:
        name = unique_name("never-pushed")
        assert target.repository.image_exists("1.0", name) is False
        with pytest.raises(ImageNotFoundError):
            target.repository.get_latest_image_tag(name)

    def test_latest_tag(self, target: RegistryTarget) -> None:
        name = unique_name()
        # Lexical order and time order disagree, so sorting by name would fail.
        for offset, tag in enumerate(["zeta-old", "beta-mid", "alpha-new"]):
            target.push(name, tag, T0 + timedelta(days=offset))
        assert target.repository.get_latest_image_tag(name) == "alpha-new"

    def test_auth_failure(self, target: RegistryTarget) -> None:
        name = unique_name()
        target.push(name, "1.0", T0)
        refused = target.unauthorized()
        try:
            with pytest.raises(RegistryAuthError) as caught:
                refused.image_exists("1.0", name)
            with pytest.raises(RegistryAuthError):
                refused.get_latest_image_tag(name)
        finally:
            refused.close()
        assert "hunter2" not in str(caught.value)  # the wrong password never appears in the message

    def test_unreachable_registry(self, target: RegistryTarget) -> None:
        down = target.unreachable()
        try:
            with pytest.raises(RegistryUnavailableError):
                down.image_exists("1.0", "anything")
            with pytest.raises(RegistryUnavailableError):
                down.get_latest_image_tag("anything")
        finally:
            down.close()

    def test_image_url_and_bad_input(self, target: RegistryTarget) -> None:
        repo = target.repository
        assert repo.get_image_url("1.0", "vllm") == f"{repo.docker_repo_prefix}/vllm:1.0"
        assert repo.get_image_url("1.0", "ghcr.io/org/vllm") == "ghcr.io/org/vllm:1.0"
        with pytest.raises(InvalidImageReferenceError):
            repo.image_exists("1.0", "Vllm")
        with pytest.raises(InvalidImageReferenceError):
            repo.image_exists("x" * 129, "vllm")


# --- ECR on in-process moto -------------------------------------------------------------------

ACCOUNT = "123456789012"
PREFIX = f"{ACCOUNT}.dkr.ecr.us-east-1.amazonaws.com"


def ecr_manifest(name: str, tag: str) -> str:
    config_digest = "sha256:" + uuid.uuid5(uuid.NAMESPACE_URL, f"{name}:{tag}").hex * 2
    return json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "size": 2, "digest": config_digest},
            "layers": [],
        }
    )


def _boto_client(**kwargs: Any) -> Any:
    import boto3
    from botocore.config import Config

    return boto3.client(
        "ecr", region_name="us-east-1", config=Config(retries={"max_attempts": 1}, connect_timeout=1), **kwargs
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


def ecr_target(
    keys: dict[str, str],
    set_pushed_at: Callable[[str, str, datetime], None],
    endpoint_url: str | None = None,
) -> RegistryTarget:
    """A `RegistryTarget` over ECR; ``set_pushed_at`` makes push time follow the image's creation time."""
    from model_engine_infra.images.ecr import ECRDockerRepository

    client = _boto_client(endpoint_url=endpoint_url, **keys)

    def push(name: str, tag: str, created: datetime) -> None:
        try:
            client.create_repository(repositoryName=name)
        except client.exceptions.RepositoryAlreadyExistsException:
            pass
        client.put_image(repositoryName=name, imageManifest=ecr_manifest(name, tag), imageTag=tag)
        set_pushed_at(name, tag, created)

    def unauthorized() -> DockerRepository:
        bad = {"aws_access_key_id": "AKIAWRONGWRONGWRONG1", "aws_secret_access_key": "hunter2"}
        return ECRDockerRepository(PREFIX, client=_boto_client(endpoint_url=endpoint_url, **bad))

    def unreachable() -> DockerRepository:
        return ECRDockerRepository(PREFIX, client=_boto_client(endpoint_url="http://127.0.0.1:9", **keys))

    return RegistryTarget(ECRDockerRepository(PREFIX, client=client), push, unauthorized, unreachable)


def _moto_set_pushed_at(name: str, tag: str, created: datetime) -> None:
    from moto.ecr.models import ecr_backends

    repository = ecr_backends[ACCOUNT]["us-east-1"].repositories[name]
    for image in repository.images:
        if tag in image.image_tags:
            image.image_pushed_at = int(created.timestamp())


class TestECRContract(DockerRepositoryContract):
    @pytest.fixture
    def target(self, ecr_moto: dict[str, str]) -> RegistryTarget:
        return ecr_target(ecr_moto, _moto_set_pushed_at)


def test_ecr_build_image_is_not_pretended(ecr_moto: dict[str, str]) -> None:
    from model_engine_infra.errors import ImageBuildNotSupportedError

    target = ecr_target(ecr_moto, _moto_set_pushed_at)
    with pytest.raises(ImageBuildNotSupportedError, match="build them in CI"):
        target.repository.build_image({})


def test_ecr_ensure_repository_is_idempotent(ecr_moto: dict[str, str]) -> None:
    from model_engine_infra.images.ecr import ECRDockerRepository

    client = _boto_client(**ecr_moto)
    repo = ECRDockerRepository(PREFIX, client=client)
    repo.ensure_repository("mirror/vllm")
    repo.ensure_repository("mirror/vllm")
    assert client.describe_repositories(repositoryNames=["mirror/vllm"])["repositories"]
