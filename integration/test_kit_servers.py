"""The testing kit's servers speak the library's config: ``server.config()`` alone points it there.

No ``AWS_ENDPOINT_URL``, ``REDIS_URL`` or connection string: each server's config keys (or its
``env()`` read back by `load_config`) reach every component, and the kit's helpers make buckets,
containers and images for the test to find.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from model_engine_infra import InfraConfig, build_infra, load_config
from model_engine_infra.testing.images import push_test_image
from model_engine_infra.testing.pytest_plugin import report_missing_server
from model_engine_infra.testing.servers import RunningServer, ServerUnavailableError, start_redis, start_registry

pytestmark = pytest.mark.integration


@pytest.fixture
def aws_credentials_only(mei_moto_server: RunningServer, monkeypatch: pytest.MonkeyPatch) -> None:
    """The AWS credential chain as a pod has it (IRSA), but no endpoint in the environment."""
    for name in ("AWS_ENDPOINT_URL", "AWS_PROFILE", "AWS_CONFIG_FILE"):
        monkeypatch.delenv(name, raising=False)
    for name, value in mei_moto_server.env().items():
        if name.startswith("AWS_") and not name.startswith("AWS_ENDPOINT_URL"):
            monkeypatch.setenv(name, value)


def test_redis_config(mei_redis_server: RunningServer) -> None:
    config = InfraConfig(cloud_provider="onprem", **mei_redis_server.config())
    with build_infra(config) as infra:
        client = infra.redis.client()
        client.set("kit:key", "value")
        assert client.get("kit:key") == b"value"


@pytest.mark.parametrize("variant", ["password", "tls"])
def test_redis_config_with_password_or_tls(variant: str, tmp_path: Path) -> None:
    options = {"password": "kit-s3cret"} if variant == "password" else {"tls": True}
    with start_redis(tmp_path, **options) as server:  # type: ignore[arg-type]
        config = InfraConfig(cloud_provider="onprem", **server.config())
        with build_infra(config) as infra:
            assert infra.redis.client().ping() is True


async def test_moto_config_reaches_every_aws_component(
    mei_moto_server: RunningServer, aws_credentials_only: None
) -> None:
    import boto3

    bucket = mei_moto_server.create_bucket(f"kit-{uuid.uuid4().hex[:8]}")
    region = mei_moto_server.config()["default_region"]
    admin = {"endpoint_url": mei_moto_server.url, "region_name": region}
    secret = f"kit/{uuid.uuid4().hex[:8]}"
    boto3.client("secretsmanager", **admin).create_secret(Name=secret, SecretString="s3cret-value")
    repository = f"kit/vllm-{uuid.uuid4().hex[:6]}"
    boto3.client("ecr", **admin).create_repository(repositoryName=repository)
    config = InfraConfig(
        cloud_provider="aws",
        **mei_moto_server.config(),
        docker_repo_prefix=mei_moto_server.extra["ecr_registry"],
        s3_bucket=bucket.removeprefix("s3://"),
        redis_host="unused.invalid",  # the cache Redis every aws deployment names; not used here
    )
    infra = build_infra(config)
    try:
        with infra.filesystem.open(f"{bucket}/hello.txt", "w") as f:
            f.write("hello")
        with infra.filesystem.open(f"{bucket}/hello.txt", "r") as f:
            assert f.read() == "hello"
        assert infra.secrets.get(secret) == "s3cret-value"
        assert infra.docker_repository.image_exists("1.0", repository) is False
        endpoint = f"kit{uuid.uuid4().hex[:8]}"
        info = await infra.queue_delegate.create_queue_if_not_exists(endpoint, "kit", "kit", {}, 60)
        assert info.queue_url is not None
        assert info.queue_url.startswith(mei_moto_server.url)
        await infra.queue_delegate.delete_queue(endpoint)
    finally:
        await infra.aclose()


def test_moto_env_is_the_same_config(mei_moto_server: RunningServer) -> None:
    config = load_config(env={**mei_moto_server.env(), "MODEL_ENGINE_INFRA_CLOUD_PROVIDER": "onprem"})
    for name, value in mei_moto_server.config().items():
        assert (config.secret(name) if name == "s3_secret_access_key" else getattr(config, name)) == value


def test_azurite_config(mei_azurite_server: RunningServer) -> None:
    container = mei_azurite_server.create_bucket(f"kit-{uuid.uuid4().hex[:8]}")
    config = InfraConfig(cloud_provider="azure", redis_host="unused.invalid", **mei_azurite_server.config())
    with build_infra(config) as infra:
        with infra.filesystem.open(f"{container}/weights.bin", "wb") as f:
            f.write(b"\x00\x01")
        with infra.filesystem.open(f"{container}/weights.bin", "rb") as f:
            assert f.read() == b"\x00\x01"


def test_gcs_config(mei_gcs_server: RunningServer) -> None:
    bucket = mei_gcs_server.create_bucket(f"kit-{uuid.uuid4().hex[:8]}")
    config = InfraConfig(cloud_provider="gcp", redis_host="unused.invalid", **mei_gcs_server.config())
    with build_infra(config) as infra:
        with infra.filesystem.open(f"{bucket}/a.txt", "w") as f:
            f.write("gcs")
        with infra.filesystem.open(f"{bucket}/a.txt", "r") as f:
            assert f.read() == "gcs"


def test_registry_config_and_pushed_image(mei_registry_server: RunningServer) -> None:
    repository = f"kit/app-{uuid.uuid4().hex[:6]}"
    digest = push_test_image(mei_registry_server, repository, "1.0")
    assert digest.startswith("sha256:")
    config = InfraConfig(cloud_provider="onprem", **mei_registry_server.config())
    with build_infra(config) as infra:
        assert infra.docker_repository.image_exists("1.0", repository) is True
        assert infra.docker_repository.image_exists("2.0", repository) is False


@pytest.fixture(scope="module")
def private_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    """htpasswd auth over TLS with a private CA: what an on-prem registry usually is."""
    try:
        server = start_registry(tmp_path_factory.mktemp("kit-registry"), htpasswd=("kit", "kit-pass"), tls=True)
    except ServerUnavailableError as err:
        report_missing_server("registry", err)
    with server:
        yield server


def test_registry_config_with_login_and_private_ca(private_registry: RunningServer) -> None:
    push_test_image(private_registry, "kit/secure", "1")
    config = InfraConfig(cloud_provider="onprem", **private_registry.config())
    assert config.registry_ca_bundle == private_registry.extra["ca_cert"]
    with build_infra(config) as infra:
        assert infra.docker_repository.image_exists("1", "kit/secure") is True
