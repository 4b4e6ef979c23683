"""The preflight doctor against real servers: healthy setups pass, each broken one fails and says what to change.

onprem = redis-server + moto server as MinIO + docker-registry; aws = moto server (SQS, S3, ECR API,
Secrets Manager) + redis-server. Every broken case is a healthy config with one thing wrong.
"""

from __future__ import annotations

import datetime as dt
import json
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from model_engine_infra.doctor import Doctor, DoctorReport
from model_engine_infra.testing.pytest_plugin import report_missing_server
from model_engine_infra.testing.servers import RunningServer, ServerUnavailableError, free_port, start_registry

sys.path.insert(0, str(Path(__file__).parent))
from model_engine_infra.testing.images import ImagePusher as Pusher

pytestmark = pytest.mark.integration

CREATED = dt.datetime(2025, 1, 1, tzinfo=dt.timezone.utc)
# repository -> tag pushed; the model-engine image is checked at image_tag, the others at their newest tag
IMAGES = {"model-engine": "1.0", "vllm": "0.6.3", "tensorrt-llm": "1", "llm-engine/batch-infer-vllm": "1"}
REG_USER, REG_PASSWORD = "puller", "right-password"
REDIS_USER, REDIS_PASSWORD = "doctor-user", "right-token"


@pytest.fixture(autouse=True)
def _forget_shared_credentials() -> Iterator[None]:
    """Each doctor run builds its own Redis credential provider; none may outlive its test."""
    from model_engine_infra.redis.credentials import clear_shared_providers

    yield
    clear_shared_providers()


def _registry(tmp_path_factory: pytest.TempPathFactory, name: str, **kwargs: Any) -> RunningServer:
    try:
        return start_registry(tmp_path_factory.mktemp(name), **kwargs)
    except ServerUnavailableError as err:
        report_missing_server("registry", err)


def _push_all(pusher: Pusher) -> None:
    for repository, tag in IMAGES.items():
        pusher.image(repository, tag, created=CREATED)
    pusher.close()


@pytest.fixture(scope="module")
def mirror(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    """An on-prem registry holding every image the deployment uses."""
    with _registry(tmp_path_factory, "doctor-registry") as server:
        _push_all(Pusher(server.url))
        yield server


@pytest.fixture(scope="module")
def locked_mirror(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    """The same images behind htpasswd (basic auth)."""
    import httpx

    with _registry(tmp_path_factory, "doctor-registry-auth", htpasswd=(REG_USER, REG_PASSWORD)) as server:
        header = {"Authorization": httpx.BasicAuth(REG_USER, REG_PASSWORD)._auth_header}
        _push_all(Pusher(server.url, lambda repository: header))
        yield server


@pytest.fixture
def redis_user(mei_redis_server: RunningServer) -> Iterator[str]:
    """An ACL user on the shared redis-server (the way managed caches hand out credentials)."""
    import redis

    admin = redis.Redis(host=mei_redis_server.host, port=mei_redis_server.port)
    admin.execute_command("ACL", "SETUSER", REDIS_USER, "on", f">{REDIS_PASSWORD}", "~*", "&*", "+@all")  # type: ignore[no-untyped-call]
    yield REDIS_USER
    admin.execute_command("ACL", "DELUSER", REDIS_USER)  # type: ignore[no-untyped-call]
    admin.close()


def _images(registry: str) -> dict[str, Any]:
    """Every image key in full (no relative names, so no findings), all in ``registry``."""
    return {
        "tag": "1.0",
        "image": {
            f"{role}Repository": f"{registry}/model-engine" for role in ("gateway", "builder", "cacher", "forwarder")
        },
        "vllm_repository": f"{registry}/vllm",
        "tensorrt_llm_repository": f"{registry}/tensorrt-llm",
        "batch_inference_vllm_repository": f"{registry}/llm-engine/batch-infer-vllm",
    }


def _run(tmp_path: Path, values: dict[str, Any], **kwargs: Any) -> DoctorReport:
    path = tmp_path / f"config-{uuid.uuid4().hex[:6]}.yaml"
    path.write_text(yaml.safe_dump(values, sort_keys=False))
    return Doctor(path, env={}, timeout=kwargs.pop("timeout", 15.0), **kwargs).run()


def _result(report: DoctorReport, name: str) -> tuple[str, str]:
    """The verdict, and the message with the fix as a person reads them."""
    found = report.result(name)
    return found.verdict, f"{found.message}. Fix: {found.fix}" if found.fix else found.message


# --- on-prem ----------------------------------------------------------------------------------------


@pytest.fixture
def onprem(
    tmp_path: Path,
    mei_moto_server: RunningServer,
    mei_redis_server: RunningServer,
    mirror: RunningServer,
    monkeypatch: pytest.MonkeyPatch,
) -> dict[str, Any]:
    """A healthy on-prem config: MinIO through s3_endpoint_url, Redis broker, the mirror registry."""
    import boto3

    for name, value in mei_moto_server.sdk_env.items():
        if name != "AWS_ENDPOINT_URL":
            monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    bucket = f"doctor-{uuid.uuid4().hex[:8]}"
    boto3.client("s3", endpoint_url=mei_moto_server.url).create_bucket(Bucket=bucket)
    registry = mirror.extra["registry"]
    return {
        "cloud_provider": "onprem",
        "celeryBrokerType": "elasticache",
        "s3_endpoint_url": mei_moto_server.url,
        "s3_bucket": bucket,
        "hf_user_fine_tuned_weights_prefix": f"s3://{bucket}/fine_tuned_weights",
        "redis_host": mei_redis_server.host,
        "redis_port": mei_redis_server.port,
        "docker_repo_prefix": registry,
        "prometheus_server_address": "http://prometheus:9090",
        **_images(registry),
    }


def test_healthy_onprem_passes(tmp_path: Path, onprem: dict[str, Any]) -> None:
    report = _run(tmp_path, onprem)
    verdicts = {r.name: r.verdict for r in report.results}
    assert verdicts == {
        "config": "ok",
        "dependencies": "skip",
        "broker": "ok",
        "storage": "ok",
        "redis": "ok",
        "registry": "ok",
        "secrets": "skip",
        "file_storage": "ok",
        "autoscaling_metrics": "ok",
    }, [r.as_dict() for r in report.results]
    assert report.exit_code == 0
    assert "4 image(s) found" in _result(report, "registry")[1]
    assert _result(report, "autoscaling_metrics")[1].startswith("redis: created, emitted (pending 1, expires in 60 s)")
    assert "listed, signed and fetched" in _result(report, "file_storage")[1]


def test_wrong_broker_for_the_cloud_fails(tmp_path: Path, onprem: dict[str, Any]) -> None:
    report = _run(tmp_path, {**onprem, "celeryBrokerType": "sqs"})
    verdict, message = _result(report, "config")
    assert verdict == "fail"
    assert "celeryBrokerType is sqs but cloud_provider is onprem" in message
    assert "elasticache (Redis) on gcp/onprem" in message  # what to set instead
    broker_verdict, broker_message = _result(report, "broker")
    assert broker_verdict == "fail"
    assert "celery_broker_type_redis" in broker_message or "remove celeryBrokerType" in broker_message
    assert report.exit_code == 1


def test_missing_prometheus_fails(tmp_path: Path, onprem: dict[str, Any]) -> None:
    values = {k: v for k, v in onprem.items() if k != "prometheus_server_address"}
    report = _run(tmp_path, values, offline=True)
    verdict, message = _result(report, "config")
    assert verdict == "fail"
    assert "prometheus_server_address" in message
    assert "Set it to your Prometheus server's address" in message
    assert report.exit_code == 1


def test_unmirrored_image_fails(tmp_path: Path, onprem: dict[str, Any]) -> None:
    report = _run(tmp_path, onprem, image_tags={"vllm": "0.9.9"})
    verdict, message = _result(report, "registry")
    assert verdict == "fail"
    assert "vllm:0.9.9" in message
    assert "Fix: mirror them with `model-engine-infra images mirror`" in message
    assert report.exit_code == 1


def test_registry_with_a_wrong_password_fails(
    tmp_path: Path, onprem: dict[str, Any], locked_mirror: RunningServer
) -> None:
    registry = locked_mirror.extra["registry"]
    values = {
        **onprem,
        **_images(registry),
        "docker_repo_prefix": registry,
        "registry_username": REG_USER,
        "registry_password": "wrong-password",
    }
    report = _run(tmp_path, values)
    verdict, message = _result(report, "registry")
    assert verdict == "fail"
    assert "wrong-password" not in message
    assert "rejected our credentials (401)" in message
    assert "registry_password" in message
    assert report.exit_code == 1
    right = _run(tmp_path, {**values, "registry_password": REG_PASSWORD})  # the fix the message names
    assert _result(right, "registry")[0] == "ok"


def test_redis_user_with_a_wrong_password_fails(tmp_path: Path, onprem: dict[str, Any], redis_user: str) -> None:
    url = f"redis://{redis_user}:wrong-token@{onprem['redis_host']}:{onprem['redis_port']}/0"
    report = _run(tmp_path, {**onprem, "config": {"values": {"launch": {"cache_redis_onprem_url": url}}}})
    verdict, message = _result(report, "redis")
    assert verdict == "fail"
    assert "wrong-token" not in message
    assert "rejected the password in cache_redis_onprem_url" in message
    assert "Fix:" in message
    assert report.exit_code == 1


def test_redis_url_that_points_nowhere_fails(tmp_path: Path, onprem: dict[str, Any]) -> None:
    report = _run(tmp_path, {**onprem, "redis_port": free_port()}, timeout=10)
    verdict, message = _result(report, "redis")
    assert verdict == "fail"
    assert "REDIS_HOST" in message  # where to point it
    assert _result(report, "broker")[0] == "fail"  # the Redis broker is the same server
    assert report.exit_code == 1


def test_bucket_that_does_not_exist_fails(tmp_path: Path, onprem: dict[str, Any]) -> None:
    report = _run(tmp_path, {**onprem, "hf_user_fine_tuned_weights_prefix": "s3://no-such-bucket-here/weights"})
    verdict, message = _result(report, "storage")
    assert verdict == "fail"
    assert "no-such-bucket-here" in message
    assert "hf_user_fine_tuned_weights_prefix exists" in message
    assert report.exit_code == 1


def test_servicebus_pool_limit_zero_is_a_config_error(tmp_path: Path) -> None:
    values = {
        "cloud_provider": "azure",
        "azure": {"servicebus_namespace": "ns"},
        "config": {"values": {"infra": {"celery_broker_pool_limit": 0}}},
        "cache_redis_azure_host": "cache.redis.cache.windows.net:6380",
    }
    report = _run(tmp_path, values)
    assert [r.name for r in report.results] == ["config"]
    verdict, message = _result(report, "config")
    assert verdict == "fail"
    assert "celery_broker_pool_limit" in message
    assert "remove it to keep Celery's default pool (10)" in message
    assert report.exit_code == 1


# --- aws ------------------------------------------------------------------------------------------


@pytest.fixture
def aws(
    tmp_path: Path, mei_moto_server: RunningServer, mei_redis_server: RunningServer, monkeypatch: pytest.MonkeyPatch
) -> dict[str, Any]:
    """A healthy AWS config: every SDK reaches the moto server through AWS_ENDPOINT_URL."""
    import boto3

    for name, value in mei_moto_server.sdk_env.items():
        monkeypatch.setenv(name, value)
    bucket = f"doctor-aws-{uuid.uuid4().hex[:8]}"
    boto3.client("s3").create_bucket(Bucket=bucket)
    secret = f"doctor/cache-{uuid.uuid4().hex[:6]}"
    boto3.client("secretsmanager").create_secret(
        Name=secret, SecretString=json.dumps({"cache-url": mei_redis_server.url})
    )
    ecr = boto3.client("ecr")
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
            "config": {
                "mediaType": "application/vnd.docker.container.image.v1+json",
                "size": 2,
                "digest": "sha256:" + "0" * 64,
            },
            "layers": [],
        }
    )
    for repository, tag in IMAGES.items():
        try:
            ecr.create_repository(repositoryName=repository)
        except ecr.exceptions.RepositoryAlreadyExistsException:
            pass
        try:
            ecr.put_image(repositoryName=repository, imageManifest=manifest, imageTag=tag)
        except ecr.exceptions.ImageAlreadyExistsException:
            pass
    registry = f"{mei_moto_server.extra['account_id']}.dkr.ecr.us-east-1.amazonaws.com"
    return {
        "cloud_provider": "aws",
        "default_region": "us-east-1",
        "s3_bucket": bucket,
        "hf_user_fine_tuned_weights_prefix": f"s3://{bucket}/fine_tuned_weights",
        "docker_repo_prefix": registry,
        "prometheus_server_address": "http://prometheus:9090",
        "config": {"values": {"launch": {"cache_redis_aws_secret_name": secret}}},
        **_images(registry),
    }


def test_healthy_aws_passes(tmp_path: Path, aws: dict[str, Any]) -> None:
    report = _run(tmp_path, aws)
    verdicts = {r.name: r.verdict for r in report.results}
    assert verdicts == {
        "config": "ok",
        "dependencies": "skip",
        "broker": "ok",
        "storage": "ok",
        "redis": "ok",
        "registry": "ok",
        "secrets": "ok",
        "file_storage": "ok",
        "autoscaling_metrics": "ok",
    }, [r.as_dict() for r in report.results]
    assert report.exit_code == 0


def test_aws_secret_that_does_not_exist_fails(tmp_path: Path, aws: dict[str, Any]) -> None:
    values = {**aws, "config": {"values": {"launch": {"cache_redis_aws_secret_name": "doctor/no-such-secret"}}}}
    report = _run(tmp_path, values)
    verdict, message = _result(report, "secrets")
    assert verdict == "fail"
    assert "doctor/no-such-secret" in message
    assert report.exit_code == 1


# --- azure: expired Entra ID credentials -----------------------------------------------------------


@pytest.fixture(scope="module")
def tls_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    """Azure Cache stand-in: TLS only, as Entra ID auth requires."""
    from model_engine_infra.testing.servers import start_redis

    try:
        server = start_redis(tmp_path_factory.mktemp("doctor-tls-redis"), tls=True)
    except ServerUnavailableError as err:
        report_missing_server("redis", err)
    with server:
        yield server


def test_expired_entra_credential_fails_the_redis_probe(tmp_path: Path, tls_redis: RunningServer) -> None:
    from model_engine_infra.testing.azure_identity import FakeTokenCredential
    from model_engine_infra.testing.fakes import patch_azure_sdk
    from model_engine_infra.testing.servicebus import FakeServiceBusNamespace

    credential = FakeTokenCredential()
    credential.fail_with_sdk_error("AADSTS700024: client assertion is not within its valid time range (expired)")
    values = {
        "cloud_provider": "azure",
        "azure": {"servicebus_namespace": "doctor-ns", "object_id": "doctor-oid"},
        "cache_redis_azure_host": f"{tls_redis.host}:{tls_redis.port}",
        "redis": {"unsafeSsl": True},
        "prometheus_server_address": "http://prometheus:9090",
    }
    with patch_azure_sdk(credential=credential, servicebus=FakeServiceBusNamespace("doctor-ns")):
        report = _run(tmp_path, values, timeout=10)
    verdict, message = _result(report, "redis")
    assert verdict == "fail"
    assert "Entra ID token" in message
    assert "Fix:" in message
    assert "workload identity" in message
    assert credential.calls >= 1
    assert report.exit_code == 1
