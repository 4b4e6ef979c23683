"""One tour, five clouds: the same steps through ``build_infra(load_config(...))``, only the config differs.

Each provider's deployment is a YAML file written by the ``deployment`` fixture, backed by real
local servers: aws = moto server (SQS, S3, ECR API, Secrets Manager) + redis-server; azure =
Azurite + the Service Bus fake + fake Entra ID tokens (Redis over TLS with an ACL user, ACR token
exchange) + the Key Vault fake; gcp = fake-gcs-server + redis-server + docker-registry as Artifact
Registry; onprem = moto server as MinIO + redis-server + docker-registry; local = nothing. The
Celery worker runs in this process (the Service Bus fake lives in memory) for every provider.

Every component is reached through config keys alone (``registry_endpoint_url`` points Artifact
Registry's ``/v2`` API at docker-registry). Cloud identity with no local server is faked at the SDK
boundary by the fixture (Entra ID, Google ADC), never in the test body.
"""

from __future__ import annotations

import datetime as dt
import json
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from model_engine_infra import build_infra, load_config
from model_engine_infra.ops.tour import Tour
from model_engine_infra.testing.pytest_plugin import report_missing_server
from model_engine_infra.testing.servers import RunningServer, ServerUnavailableError, start_redis, start_registry

sys.path.insert(0, str(Path(__file__).parent))
from gcp_keys import write_service_account_key
from model_engine_infra.testing.images import ImagePusher as Pusher
from registry_fakes import TokenServer

pytestmark = pytest.mark.integration

PROVIDERS = ["aws", "azure", "gcp", "onprem", "local"]
SECRET = "model-engine-tour"
SECRET_VALUE = "tour-secret-value"
IMAGE, TAG = "vllm", "0.6.3"
ADC_TOKEN = "fake-adc-token"
ENTRA_PREFIX = "entra-token"
REDIS_OBJECT_ID = "tour-object-id"
GAR_PREFIX = "us-docker.pkg.dev/tour-project/images"
CREATED = dt.datetime(2025, 1, 1, tzinfo=dt.timezone.utc)


@dataclass
class Deployment:
    """What differs between clouds: the config file, the environment it is loaded with, and fixes."""

    provider: str
    config_path: Path
    env: dict[str, str] = field(default_factory=dict)  # what load_config reads (never os.environ)
    absent: frozenset[str] = frozenset()  # tour steps that do not apply to this deployment


# --- servers only this file needs ------------------------------------------------------------------


class EntraTokens(set[str]):
    """Every token the fake Entra ID credential hands out (``entra-token-N``)."""

    def __contains__(self, token: object) -> bool:
        return isinstance(token, str) and token.startswith(ENTRA_PREFIX + "-")


def _server(name: str, start: Any, folder: Path, **kwargs: Any) -> RunningServer:
    try:
        server: RunningServer = start(folder, **kwargs)
    except ServerUnavailableError as err:
        report_missing_server(name, err)
    return server


@pytest.fixture(scope="module")
def anonymous_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    """On-prem's registry, with the test image pushed."""
    with _server("registry", start_registry, tmp_path_factory.mktemp("e2e-registry")) as server:
        pusher = Pusher(server.url)
        pusher.image(IMAGE, TAG, created=CREATED)
        pusher.close()
        yield server


@pytest.fixture(scope="module")
def token_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TokenServer]:
    server = TokenServer(
        tmp_path_factory.mktemp("e2e-token"), {"oauth2accesstoken": ADC_TOKEN, "pusher": "push-pw"}, EntraTokens()
    )
    yield server
    server.stop()


@pytest.fixture(scope="module")
def token_registry(tmp_path_factory: pytest.TempPathFactory, token_server: TokenServer) -> Iterator[RunningServer]:
    """The registry behind ACR and Artifact Registry (bearer tokens), with the test image in both layouts."""
    folder = tmp_path_factory.mktemp("e2e-token-registry")
    with _server("registry", start_registry, folder, token_auth=token_server.registry_auth()) as server:

        def auth(repository: str) -> dict[str, str]:
            return {"Authorization": "Bearer " + token_server.mint([f"repository:{repository}:pull,push"])}

        pusher = Pusher(server.url, auth)
        pusher.image(IMAGE, TAG, created=CREATED)  # ACR: repositories at the registry's root
        pusher.image(f"tour-project/images/{IMAGE}", TAG, created=CREATED)  # GAR: project/repository/name
        pusher.close()
        yield server


@pytest.fixture(scope="module")
def tls_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    """Azure Cache stand-in: TLS only; the ACL user is the identity's object id, passwords are Entra tokens."""
    import redis

    with _server("redis", start_redis, tmp_path_factory.mktemp("e2e-tls-redis"), tls=True) as server:
        admin = redis.Redis(host=server.host, port=server.port, ssl=True, ssl_ca_certs=server.extra["ca_cert"])
        passwords = [f">{ENTRA_PREFIX}-{n}" for n in range(1, 41)]
        admin.execute_command("ACL", "SETUSER", REDIS_OBJECT_ID, "on", *passwords, "~*", "&*", "+@all")  # type: ignore[no-untyped-call]
        admin.close()
        yield server


# --- one deployment per provider -----------------------------------------------------------------


def _write(folder: Path, values: dict[str, Any]) -> Path:
    import yaml

    path = folder / "deployment.yaml"
    path.write_text(yaml.safe_dump(values, sort_keys=False))
    return path


def _aws(request: pytest.FixtureRequest, folder: Path, monkeypatch: pytest.MonkeyPatch) -> Deployment:
    import boto3

    moto: RunningServer = request.getfixturevalue("mei_moto_server")
    mei_redis_server: RunningServer = request.getfixturevalue("mei_redis_server")
    for name, value in moto.sdk_env.items():  # like any boto3 app pointed at LocalStack: AWS_ENDPOINT_URL
        monkeypatch.setenv(name, value)
    bucket = "tour-aws"
    boto3.client("s3").create_bucket(Bucket=bucket)
    sm = boto3.client("secretsmanager")
    for name, value in ((SECRET, SECRET_VALUE), ("tour/cache-redis", json.dumps({"cache-url": mei_redis_server.url}))):
        try:
            sm.create_secret(Name=name, SecretString=value)
        except sm.exceptions.ResourceExistsException:
            sm.put_secret_value(SecretId=name, SecretString=value)
    ecr = boto3.client("ecr")
    try:
        ecr.create_repository(repositoryName=IMAGE)
    except ecr.exceptions.RepositoryAlreadyExistsException:
        pass
    manifest = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
        "config": {
            "mediaType": "application/vnd.docker.container.image.v1+json",
            "size": 2,
            "digest": "sha256:" + "0" * 64,
        },
        "layers": [],
    }
    try:
        ecr.put_image(repositoryName=IMAGE, imageManifest=json.dumps(manifest), imageTag=TAG)
    except ecr.exceptions.ImageAlreadyExistsException:
        pass
    path = _write(
        folder,
        {
            "cloud_provider": "aws",
            "default_region": "us-east-1",
            "s3_bucket": bucket,
            "hf_user_fine_tuned_weights_prefix": f"s3://{bucket}/fine_tuned_weights",
            "docker_repo_prefix": f"{moto.extra['account_id']}.dkr.ecr.us-east-1.amazonaws.com",
            "prometheus_server_address": "http://prometheus:9090",
            "config": {"values": {"launch": {"cache_redis_aws_secret_name": "tour/cache-redis"}}},
        },
    )
    return Deployment("aws", path)


def _azure(request: pytest.FixtureRequest, folder: Path) -> Deployment:
    from azure.core.exceptions import ResourceExistsError
    from azure.storage.blob import BlobServiceClient

    from model_engine_infra.testing.azure_identity import FakeTokenCredential
    from model_engine_infra.testing.fakes import patch_azure_sdk
    from model_engine_infra.testing.keyvault import FakeSecretClient
    from model_engine_infra.testing.servicebus import FakeServiceBusNamespace

    azurite: RunningServer = request.getfixturevalue("mei_azurite_server")
    mei_redis_server: RunningServer = request.getfixturevalue("tls_redis")
    registry: RunningServer = request.getfixturevalue("token_registry")
    container = "tour"
    blobs = BlobServiceClient.from_connection_string(azurite.extra["connection_string"])
    try:
        blobs.create_container(container)
    except ResourceExistsError:
        pass
    blobs.close()
    namespace = FakeServiceBusNamespace("tour-ns", max_receive_wait=0.05)
    vault = FakeSecretClient("https://tour-vault.vault.azure.net", {SECRET: SECRET_VALUE})
    patch = patch_azure_sdk(
        credential=FakeTokenCredential(prefix=ENTRA_PREFIX), servicebus=namespace, secret_client=vault
    )
    patch.__enter__()
    request.addfinalizer(lambda: patch.__exit__(None, None, None))
    path = _write(
        folder,
        {
            "cloud_provider": "azure",
            "azure": {
                "servicebus_namespace": "tour-ns",
                "abs_account_name": azurite.extra["account_name"],
                "abs_container_name": container,
                "object_id": REDIS_OBJECT_ID,
                "keyvault_name": "tour-vault",
            },
            "abs_account_key": azurite.extra["account_key"],
            "abs_endpoint_url": azurite.extra["blob_endpoint"],
            "hf_user_fine_tuned_weights_prefix": f"az://{container}/fine_tuned_weights",
            "cache_redis_azure_host": f"{mei_redis_server.host}:{mei_redis_server.port}",
            "redis": {"unsafeSsl": True},
            "docker_repo_prefix": registry.extra["registry"],
            "docker_registry_type": "acr",
            "prometheus_server_address": "http://prometheus:9090",
        },
    )
    return Deployment("azure", path)


def _gcp(request: pytest.FixtureRequest, folder: Path, monkeypatch: pytest.MonkeyPatch) -> Deployment:
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import storage

    gcs: RunningServer = request.getfixturevalue("mei_gcs_server")
    mei_redis_server: RunningServer = request.getfixturevalue("mei_redis_server")
    registry: RunningServer = request.getfixturevalue("token_registry")
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", gcs.url)  # Celery's GCS result backend reads it
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(_service_account_key(folder)))  # V4 signing
    bucket = "tour-gcs"
    client = storage.Client(
        project="tour-project",
        credentials=AnonymousCredentials(),  # type: ignore[no-untyped-call]
        client_options={"api_endpoint": gcs.url},
    )
    if client.lookup_bucket(bucket) is None:
        client.create_bucket(bucket)
    secrets = folder / "secrets"
    secrets.mkdir()
    (secrets / SECRET).write_text(SECRET_VALUE)
    path = _write(
        folder,
        {
            "cloud_provider": "gcp",
            "gcp_project_id": "tour-project",
            "gcs_endpoint_url": gcs.url,
            "s3_bucket": bucket,
            "hf_user_fine_tuned_weights_prefix": f"gs://{bucket}/fine_tuned_weights",
            "cache_redis_gcp_url": mei_redis_server.url,
            "docker_repo_prefix": GAR_PREFIX,
            "registry_endpoint_url": registry.url,
            "secrets_dir": str(secrets),
            "prometheus_server_address": "http://prometheus:9090",
        },
    )
    # Google's ADC is the service-account key above, with an access token already issued (no token
    # endpoint here): faked at the SDK boundary, as the Azure SDK is for azure.
    import google.auth

    real_default = google.auth.default

    def default_with_token(*args: Any, **kwargs: Any) -> tuple[Any, str | None]:
        credentials, project = real_default(*args, **kwargs)
        credentials.token = ADC_TOKEN
        credentials.expiry = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None) + dt.timedelta(hours=1)
        return credentials, project

    monkeypatch.setattr(google.auth, "default", default_with_token)
    return Deployment("gcp", path)


def _onprem(request: pytest.FixtureRequest, folder: Path, monkeypatch: pytest.MonkeyPatch) -> Deployment:
    import boto3

    moto: RunningServer = request.getfixturevalue("mei_moto_server")
    mei_redis_server: RunningServer = request.getfixturevalue("mei_redis_server")
    registry: RunningServer = request.getfixturevalue("anonymous_registry")
    for name, value in moto.sdk_env.items():
        if name != "AWS_ENDPOINT_URL":  # MinIO is reached through s3_endpoint_url only
            monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    bucket = "tour-minio"
    boto3.client("s3", endpoint_url=moto.url).create_bucket(Bucket=bucket)
    secrets = folder / "secrets"
    secrets.mkdir()
    (secrets / SECRET).write_text(SECRET_VALUE)
    path = _write(
        folder,
        {
            "cloud_provider": "onprem",
            "s3_bucket": bucket,
            "s3_endpoint_url": moto.url,
            "hf_user_fine_tuned_weights_prefix": f"s3://{bucket}/fine_tuned_weights",
            "redis_host": mei_redis_server.host,
            "redis_port": mei_redis_server.port,
            "docker_repo_prefix": registry.extra["registry"],
            "secrets_dir": str(secrets),
            "prometheus_server_address": "http://prometheus:9090",
        },
    )
    return Deployment("onprem", path)


def _local(folder: Path) -> Deployment:
    path = _write(folder, {"cloud_provider": "local", "local_data_dir": str(folder / "state")})
    env = {"MODEL_ENGINE_SECRET_MODEL_ENGINE_TOUR": SECRET_VALUE}
    return Deployment("local", path, env=env, absent=frozenset({"check an image", "use Redis"}))


def _service_account_key(folder: Path) -> Path:
    """A key made here: V4 URLs are signed offline with it (the emulator does not check them)."""
    return write_service_account_key(folder / "service-account.json", project_id="tour-project")


@pytest.fixture
def deployment(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Deployment]:
    from model_engine_infra.redis.credentials import clear_shared_providers

    provider = request.param
    if provider == "aws":
        chosen = _aws(request, tmp_path, monkeypatch)
    elif provider == "azure":
        chosen = _azure(request, tmp_path)
    elif provider == "gcp":
        chosen = _gcp(request, tmp_path, monkeypatch)
    elif provider == "onprem":
        chosen = _onprem(request, tmp_path, monkeypatch)
    else:
        chosen = _local(tmp_path)
    yield chosen
    clear_shared_providers()


# --- the test: no cloud in sight --------------------------------------------------------------------


@pytest.mark.parametrize("deployment", PROVIDERS, indirect=True)
def test_the_same_tour_runs_on_every_cloud(deployment: Deployment) -> None:
    config = load_config(deployment.config_path, env=deployment.env)
    infra = build_infra(config)
    tour = Tour(config, infra=infra, worker="thread", n_tasks=4, secret_name=SECRET, image_tags={IMAGE: TAG})

    report = tour.run()

    failed = [f"{step.name}: {step.detail}" for step in report.steps if not step.ok]
    assert report.ok, failed
    assert report.provider == deployment.provider
    assert set(report.skipped) == deployment.absent
    assert report.step("collect results").detail.startswith("4 results, e.g. {'output':")
    assert report.step("download model artifacts").detail.startswith("3 files, 2,097,")
    assert SECRET_VALUE not in " ".join(step.detail for step in report.steps)  # named, never shown
    assert report.steps[-1].name == "clean up"
