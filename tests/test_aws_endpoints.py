"""Every AWS service the library calls takes its endpoint (and S3 its static keys) from config keys.

MinIO deployments and tests point S3, SQS, ECR and Secrets Manager elsewhere through
``s3_endpoint_url``, ``sqs_endpoint_url``, ``ecr_endpoint_url`` and
``secretsmanager_endpoint_url`` (env ``S3_ENDPOINT_URL``, ``AWS_ENDPOINT_URL_SQS``,
``AWS_ENDPOINT_URL_ECR``, ``AWS_ENDPOINT_URL_SECRETS_MANAGER``); MinIO's key pair is
``s3_access_key_id`` / ``s3_secret_access_key``. No component relies on ``AWS_ENDPOINT_URL``.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from model_engine_infra import InfraConfig, build_infra, load_config
from model_engine_infra.errors import ConfigError

CANARY = "minio-secret-5c1e0"
ENV = {
    "S3_ENDPOINT_URL": "http://minio.internal:9000",
    "S3_ACCESS_KEY_ID": "model-engine",
    "S3_SECRET_ACCESS_KEY": CANARY,
    "AWS_ENDPOINT_URL_SQS": "http://sqs.internal:4566",
    "AWS_ENDPOINT_URL_ECR": "http://ecr.internal:4566",
    "AWS_ENDPOINT_URL_SECRETS_MANAGER": "http://secrets.internal:4566",
}


@pytest.fixture
def aws_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> InfraConfig:
    for name in ("AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    path = tmp_path / "infra.yaml"
    path.write_text(
        "cloud_provider: aws\ndefault_region: us-west-2\ns3_bucket: b\nredis_host: redis.internal\n"
        "docker_repo_prefix: 111122223333.dkr.ecr.us-west-2.amazonaws.com\n"
    )
    return load_config(path, env=ENV)


def test_keys_load_from_the_environment(aws_config: InfraConfig) -> None:
    assert aws_config.s3_endpoint_url == "http://minio.internal:9000"
    assert aws_config.s3_access_key_id == "model-engine"
    assert aws_config.secret("s3_secret_access_key") == CANARY
    assert aws_config.ecr_endpoint_url == "http://ecr.internal:4566"
    assert aws_config.secretsmanager_endpoint_url == "http://secrets.internal:4566"
    assert aws_config.source_of("ecr_endpoint_url") == "env:AWS_ENDPOINT_URL_ECR"
    assert CANARY not in repr(aws_config)


def test_every_client_uses_its_endpoint(aws_config: InfraConfig) -> None:
    from model_engine_infra.images.ecr import ECRDockerRepository

    with build_infra(aws_config) as infra:
        s3 = infra.filesystem.client  # type: ignore[attr-defined]
        assert s3.meta.endpoint_url == "http://minio.internal:9000"
        credentials = s3._request_signer._credentials
        assert (credentials.access_key, credentials.secret_key) == ("model-engine", CANARY)
        assert infra.secrets._client.meta.endpoint_url == "http://secrets.internal:4566"  # type: ignore[attr-defined]
        assert infra.queue_delegate.endpoint_url == "http://sqs.internal:4566"  # type: ignore[attr-defined]
        repository = infra.docker_repository
        assert isinstance(repository, ECRDockerRepository)
        assert repository.client.meta.endpoint_url == "http://ecr.internal:4566"
        assert CANARY not in repr(infra.filesystem)


def test_celery_s3_results_get_the_key_pair(aws_config: InfraConfig) -> None:
    from model_engine_infra.tasks.settings import backend_settings

    conf = backend_settings(aws_config, "s3")
    assert conf["s3_endpoint_url"] == "http://minio.internal:9000"
    assert (conf["s3_access_key_id"], conf["s3_secret_access_key"]) == ("model-engine", CANARY)


@pytest.mark.parametrize(
    ("env", "key"),
    [
        ({"S3_ACCESS_KEY_ID": "only-the-id"}, "S3_ACCESS_KEY_ID"),
        ({"S3_SECRET_ACCESS_KEY": CANARY}, "S3_SECRET_ACCESS_KEY"),
    ],
)
def test_half_a_key_pair_fails_naming_the_key(env: dict[str, str], key: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(env={"MODEL_ENGINE_INFRA_CLOUD_PROVIDER": "onprem", **env})
    assert info.value.key == key
    assert "S3_ACCESS_KEY_ID and S3_SECRET_ACCESS_KEY" in str(info.value)
    assert CANARY not in str(info.value)


@pytest.mark.parametrize("name", ["AWS_ENDPOINT_URL_ECR", "AWS_ENDPOINT_URL_SECRETS_MANAGER"])
def test_endpoint_must_be_http(name: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(env={name: "ftp://x"})
    assert info.value.key == name
