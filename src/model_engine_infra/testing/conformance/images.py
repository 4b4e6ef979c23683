"""Conformance for registry clients (`DockerRepository`).

Subclass `DockerRepositoryConformance` and provide a ``registry_target`` fixture returning a
`RegistryTarget`: the client, a way to push an image with a given creation time (independent of
the client under test), and clients that the registry refuses or cannot be reached by. The wrong
password used by refused clients is ``hunter2``; it must never appear in a message.

The second half builds an ECR target (the ECR API through boto3, e.g. on moto).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from ...errors import ImageNotFoundError, InvalidImageReferenceError, RegistryAuthError, RegistryUnavailableError
from ...images.base import DockerRepository

T0 = datetime(2024, 1, 1, tzinfo=timezone.utc)
WRONG_PASSWORD = "hunter2"


@dataclass
class RegistryTarget:
    """What a run needs from one registry."""

    repository: DockerRepository
    push: Callable[[str, str, datetime], None]  # (relative repository name, tag, created)
    unauthorized: Callable[[], DockerRepository]  # a client whose login the registry refuses
    unreachable: Callable[[], DockerRepository]  # a client for a registry that does not answer


def unique_name(stem: str = "contract") -> str:
    return f"{stem}/{uuid.uuid4().hex[:10]}"


class DockerRepositoryConformance:
    """The contract every registry client keeps. Provide a ``registry_target`` fixture."""

    def test_existing_tag(self, registry_target: RegistryTarget) -> None:
        name = unique_name()
        registry_target.push(name, "1.0", T0)
        assert registry_target.repository.image_exists("1.0", name) is True

    def test_missing_tag(self, registry_target: RegistryTarget) -> None:
        name = unique_name()
        registry_target.push(name, "1.0", T0)
        assert registry_target.repository.image_exists("2.0", name) is False

    def test_missing_repository(self, registry_target: RegistryTarget) -> None:
        name = unique_name("never-pushed")
        assert registry_target.repository.image_exists("1.0", name) is False
        with pytest.raises(ImageNotFoundError):
            registry_target.repository.get_latest_image_tag(name)

    def test_latest_tag(self, registry_target: RegistryTarget) -> None:
        name = unique_name()
        # Lexical order and time order disagree, so sorting by name would fail.
        for offset, tag in enumerate(["zeta-old", "beta-mid", "alpha-new"]):
            registry_target.push(name, tag, T0 + timedelta(days=offset))
        assert registry_target.repository.get_latest_image_tag(name) == "alpha-new"

    def test_auth_failure(self, registry_target: RegistryTarget) -> None:
        name = unique_name()
        registry_target.push(name, "1.0", T0)
        refused = registry_target.unauthorized()
        try:
            with pytest.raises(RegistryAuthError) as caught:
                refused.image_exists("1.0", name)
            with pytest.raises(RegistryAuthError):
                refused.get_latest_image_tag(name)
        finally:
            refused.close()
        assert WRONG_PASSWORD not in str(caught.value)  # the wrong password never appears in the message

    def test_unreachable_registry(self, registry_target: RegistryTarget) -> None:
        down = registry_target.unreachable()
        try:
            with pytest.raises(RegistryUnavailableError):
                down.image_exists("1.0", "anything")
            with pytest.raises(RegistryUnavailableError):
                down.get_latest_image_tag("anything")
        finally:
            down.close()

    def test_image_url_and_bad_input(self, registry_target: RegistryTarget) -> None:
        repo = registry_target.repository
        assert repo.get_image_url("1.0", "vllm") == f"{repo.docker_repo_prefix}/vllm:1.0"
        assert repo.get_image_url("1.0", "ghcr.io/org/vllm") == "ghcr.io/org/vllm:1.0"
        with pytest.raises(InvalidImageReferenceError):
            repo.image_exists("1.0", "Vllm")
        with pytest.raises(InvalidImageReferenceError):
            repo.image_exists("x" * 129, "vllm")


# --- ECR ----------------------------------------------------------------------------------------------

ACCOUNT = "123456789012"
ECR_PREFIX = f"{ACCOUNT}.dkr.ecr.us-east-1.amazonaws.com"


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


def ecr_client(**kwargs: Any) -> Any:
    """A boto3 ECR client that gives up at once (one attempt, 1 s to connect)."""
    import boto3
    from botocore.config import Config

    return boto3.client(
        "ecr", region_name="us-east-1", config=Config(retries={"max_attempts": 1}, connect_timeout=1), **kwargs
    )


@pytest.fixture
def ecr_moto() -> Iterator[dict[str, str]]:
    """moto with IAM enforced after setup: a user allowed ecr:*, and its keys (for `ecr_target`)."""
    import boto3
    from moto import mock_aws, settings
    from moto.core.responses import ActionAuthenticatorMixin  # type: ignore[attr-defined]  # re-exported, not declared

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


def moto_set_pushed_at(name: str, tag: str, created: datetime) -> None:
    """`ecr_target`'s ``set_pushed_at`` for in-process moto: writes the push time into moto's backend."""
    from moto.ecr.models import ecr_backends

    repository = ecr_backends[ACCOUNT]["us-east-1"].repositories[name]
    for image in repository.images:
        if tag in image.image_tags:
            image.image_pushed_at = int(created.timestamp())


def ecr_target(
    keys: dict[str, str],
    set_pushed_at: Callable[[str, str, datetime], None],
    endpoint_url: str | None = None,
) -> RegistryTarget:
    """ECR with the access ``keys``; ``set_pushed_at`` makes push time follow the image's creation time."""
    from ...images.ecr import ECRDockerRepository

    client = ecr_client(endpoint_url=endpoint_url, **keys)

    def push(name: str, tag: str, created: datetime) -> None:
        try:
            client.create_repository(repositoryName=name)
        except client.exceptions.RepositoryAlreadyExistsException:
            pass
        client.put_image(repositoryName=name, imageManifest=ecr_manifest(name, tag), imageTag=tag)
        set_pushed_at(name, tag, created)

    def unauthorized() -> DockerRepository:
        bad = {"aws_access_key_id": "AKIAWRONGWRONGWRONG1", "aws_secret_access_key": WRONG_PASSWORD}
        return ECRDockerRepository(ECR_PREFIX, client=ecr_client(endpoint_url=endpoint_url, **bad))

    def unreachable() -> DockerRepository:
        return ECRDockerRepository(ECR_PREFIX, client=ecr_client(endpoint_url="http://127.0.0.1:9", **keys))

    return RegistryTarget(ECRDockerRepository(ECR_PREFIX, client=client), push, unauthorized, unreachable)
