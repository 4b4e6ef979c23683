"""The storage contract over real servers: moto server (S3 and the MinIO path), Azurite, fake-gcs-server.

The suite is `StoreConformance` from ``model_engine_infra.testing.conformance.storage``, the class
the unit suite runs too. Below it, what only a real network shows: downloads cut mid-object by
the network simulator (``model_engine_infra.testing.netsim``, ``reset_after``) and a server that
refuses connections.
"""

from __future__ import annotations

import contextlib
import urllib.parse
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
import requests
from pydantic import SecretStr

from gcp_keys import write_service_account_key
from model_engine_infra import InfraConfig, build_infra
from model_engine_infra.errors import StorageError, StorageUnavailableError
from model_engine_infra.testing.conformance.storage import (
    MULTI_CHUNK,
    StoreConformance,
    StoreTarget,
    fresh_root,
    s3_store_target,
    split_root,
    write,
)
from model_engine_infra.testing.netsim import netsim
from model_engine_infra.testing.servers import RunningServer

pytestmark = pytest.mark.integration

MIB = 1024 * 1024


# --- how each server is reached ----------------------------------------------------------------


@pytest.fixture(scope="session")
def gcp_signing_key(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A service-account key made here: V4 URLs are signed offline with it (the emulator does not check)."""
    return write_service_account_key(tmp_path_factory.mktemp("gcp") / "key.json")


def s3_config(moto: RunningServer, style: str, root: str, endpoint: str | None = None) -> InfraConfig:
    """``moto-server``: endpoint from AWS_ENDPOINT_URL like any boto3 app; ``minio``: s3_endpoint_url."""
    if style == "minio":
        endpoint = endpoint or moto.url
        return InfraConfig(
            cloud_provider="onprem", s3_endpoint_url=endpoint, hf_user_fine_tuned_weights_prefix=f"{root}/ft"
        )
    return InfraConfig(cloud_provider="aws", hf_user_fine_tuned_weights_prefix=f"{root}/ft")


def aws_env(monkeypatch: pytest.MonkeyPatch, moto: RunningServer, with_endpoint: bool) -> None:
    for name, value in moto.sdk_env.items():
        if name != "AWS_ENDPOINT_URL" or with_endpoint:
            monkeypatch.setenv(name, value)
    if not with_endpoint:
        monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)


def azure_config(azurite: RunningServer, root: str, endpoint: str | None = None) -> InfraConfig:
    return InfraConfig(
        cloud_provider="azure",
        abs_account_name=azurite.extra["account_name"],
        abs_account_key=SecretStr(azurite.extra["account_key"]),
        abs_endpoint_url=endpoint or azurite.extra["blob_endpoint"],
        hf_user_fine_tuned_weights_prefix=f"{root}/ft",
    )


def gcs_config(gcs: RunningServer, root: str, endpoint: str | None = None) -> InfraConfig:
    return InfraConfig(
        cloud_provider="gcp",
        gcp_project_id="test",
        gcs_endpoint_url=endpoint or gcs.url,
        hf_user_fine_tuned_weights_prefix=f"{root}/ft",
    )


def azure_target(azurite: RunningServer, root: str) -> StoreTarget:
    from azure.storage.blob import ContainerSasPermissions, generate_container_sas

    from model_engine_infra.storage.abs import AzureBlobArtifacts, make_client
    from model_engine_infra.storage.transfer import TransferSettings

    config = azure_config(azurite, root)
    container, folder = split_root(root)
    filesystem = build_infra(config).filesystem
    with contextlib.suppress(Exception):  # created by an earlier test
        filesystem.client.create_container(container)
    small_ranges = make_client(config, max_single_get_size=MIB, max_chunk_get_size=MIB)
    artifacts = AzureBlobArtifacts(
        small_ranges,
        fine_tuned_weights_prefix=config.hf_user_fine_tuned_weights_prefix,
        transfer=TransferSettings(max_concurrency=8, part_size=MIB),
    )
    infra = build_infra(config, overrides={"filesystem": filesystem, "artifacts": artifacts})
    sas = generate_container_sas(
        azurite.extra["account_name"],
        container,
        account_key=azurite.extra["account_key"],
        permission=ContainerSasPermissions(create=True, write=True),
        expiry=datetime.now(timezone.utc) + timedelta(hours=1),
    )

    def put_raw(key: str, data: bytes) -> None:
        name = f"{folder}/{key}"
        if any(part in (".", "..") for part in name.split("/")):
            # The SDK (and any HTTP client) would collapse dot segments; encoded dots reach the server.
            path = "/".join("%2E" * len(p) if p in (".", "..") else urllib.parse.quote(p) for p in name.split("/"))
            answer = requests.put(
                f"{azurite.extra['blob_endpoint']}/{container}/{path}?{sas}",
                data=data,
                headers={"x-ms-blob-type": "BlockBlob"},
                timeout=30,
            )
            assert answer.status_code == 201, answer.text
            return
        filesystem.client.get_blob_client(container, name).upload_blob(data, overwrite=True)

    # Azure stores a backslash as '/', so 'a\..\x' arrives as 'a/../x': still refused.
    return StoreTarget("azurite", infra, root, put_raw, put_headers={"x-ms-blob-type": "BlockBlob"})


def gcs_target(gcs: RunningServer, root: str) -> StoreTarget:
    from model_engine_infra.storage.gcs import GCSArtifacts
    from model_engine_infra.storage.transfer import TransferSettings

    config = gcs_config(gcs, root)
    bucket, folder = split_root(root)
    filesystem = build_infra(config).filesystem
    with contextlib.suppress(Exception):  # created by an earlier test
        filesystem.client.create_bucket(bucket)
    artifacts = GCSArtifacts(
        filesystem.client,
        fine_tuned_weights_prefix=config.hf_user_fine_tuned_weights_prefix,
        transfer=TransferSettings(max_concurrency=8, part_size=MIB),
    )
    infra = build_infra(config, overrides={"filesystem": filesystem, "artifacts": artifacts})

    def put_raw(key: str, data: bytes) -> None:
        filesystem.client.bucket(bucket).blob(f"{folder}/{key}").upload_from_string(data)

    return StoreTarget("fake-gcs", infra, root, put_raw)


class TestS3OnMotoServer(StoreConformance):
    """boto3's endpoint from AWS_ENDPOINT_URL, like any boto3 app pointed at LocalStack."""

    @pytest.fixture
    def store_target(self, mei_moto_server: RunningServer, monkeypatch: pytest.MonkeyPatch) -> Iterator[StoreTarget]:
        aws_env(monkeypatch, mei_moto_server, with_endpoint=True)
        root = fresh_root("s3", "contract-bucket")
        target = s3_store_target("moto-server", s3_config(mei_moto_server, "aws", root), root)
        yield target
        target.infra.close()


class TestMinIOPath(StoreConformance):
    """The on-prem path: the endpoint from s3_endpoint_url only."""

    @pytest.fixture
    def store_target(self, mei_moto_server: RunningServer, monkeypatch: pytest.MonkeyPatch) -> Iterator[StoreTarget]:
        aws_env(monkeypatch, mei_moto_server, with_endpoint=False)
        root = fresh_root("s3", "contract-bucket")
        target = s3_store_target("minio-path", s3_config(mei_moto_server, "minio", root), root)
        yield target
        target.infra.close()


class TestAzureBlobOnAzurite(StoreConformance):
    @pytest.fixture
    def store_target(self, mei_azurite_server: RunningServer) -> Iterator[StoreTarget]:
        target = azure_target(mei_azurite_server, fresh_root("az", "contract"))
        yield target
        target.infra.close()


class TestGCSOnFakeGCS(StoreConformance):
    @pytest.fixture
    def store_target(
        self, mei_gcs_server: RunningServer, monkeypatch: pytest.MonkeyPatch, gcp_signing_key: Path
    ) -> Iterator[StoreTarget]:
        monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(gcp_signing_key))
        target = gcs_target(mei_gcs_server, fresh_root("gs", "contract-bucket"))
        yield target
        target.infra.close()


# --- faults through netsim ------------------------------------------------------------------------


@contextlib.contextmanager
def proxied(target: RunningServer, **conditions: Any) -> Iterator[str]:
    """The network simulator between us and ``target``; yields the proxy's base URL."""
    with netsim(target.port, **conditions) as port:
        yield f"http://127.0.0.1:{port}"


def proxied_artifacts(kind: str, server: RunningServer, proxy: str, root: str, transfer: Any = None) -> Any:
    """An artifact gateway whose traffic goes through ``proxy``, with short retry budgets."""
    if kind == "s3":
        from model_engine_infra.storage.s3 import S3Artifacts, make_client

        config = s3_config(server, "minio", root, endpoint=proxy)
        return S3Artifacts(
            make_client(config), fine_tuned_weights_prefix=f"{root}/ft", owns_client=True, transfer=transfer
        )
    if kind == "azure":
        from azure.storage.blob import ExponentialRetry

        from model_engine_infra.storage.abs import AzureBlobArtifacts, make_client

        config = azure_config(server, root, endpoint=f"{proxy}/{server.extra['account_name']}")
        quick = ExponentialRetry(initial_backoff=0, increment_base=1, retry_total=1)
        client = make_client(config, retry_policy=quick)
        return AzureBlobArtifacts(client, fine_tuned_weights_prefix=f"{root}/ft", owns_client=True, transfer=transfer)
    from google.cloud.storage.retry import DEFAULT_RETRY

    from model_engine_infra.storage.gcs import GCSArtifacts, make_client

    config = gcs_config(server, root, endpoint=proxy)
    quick = DEFAULT_RETRY.with_timeout(2)
    return GCSArtifacts(
        make_client(config), fine_tuned_weights_prefix=f"{root}/ft", retry=quick, owns_client=True, transfer=transfer
    )


SERVERS = {"s3": "mei_moto_server", "azure": "mei_azurite_server", "gcs": "mei_gcs_server"}


def direct_target(kind: str, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch, root: str) -> StoreTarget:
    server = request.getfixturevalue(SERVERS[kind])
    if kind == "s3":
        aws_env(monkeypatch, server, with_endpoint=False)
        return s3_store_target("minio-path", s3_config(server, "minio", root), root)
    return azure_target(server, root) if kind == "azure" else gcs_target(server, root)


@pytest.mark.parametrize("kind", ["s3", "azure", "gcs"])
def test_interrupted_download_leaves_no_partial_file(
    kind: str, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    scheme = {"s3": "s3", "azure": "az", "gcs": "gs"}[kind]
    root = fresh_root(scheme, "contract-bucket" if kind != "azure" else "contract")
    target = direct_target(kind, request, monkeypatch, root)
    write(target, "model/weights.bin", MULTI_CHUNK[: 3 * MIB])
    server = request.getfixturevalue(SERVERS[kind])
    # Cut every connection after 100 kB: google-resumable-media resumes within its 2 s retry budget and
    # we resume 3 times, so at 300 kB a quick run could assemble the 3 MiB from the pieces.
    with proxied(server, reset_after=100_000) as proxy:
        artifacts = proxied_artifacts(kind, server, proxy, root)
        with pytest.raises(StorageError) as info:
            artifacts.download_files(f"{root}/model", tmp_path / "out")
        artifacts.close()
    assert isinstance(info.value, StorageUnavailableError), repr(info.value)
    assert [p.name for p in (tmp_path / "out").rglob("*") if p.is_file()] == []  # no final, no .partial
    target.infra.close()


@pytest.mark.parametrize("kind", ["s3", "azure", "gcs"])
def test_a_download_in_parts_resumes_each_cut_range(
    kind: str, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Every second connection is reset mid-body: each cut range resumes from its last byte (Azure
    reads its ranges from one thread, `pump.Pump`; S3 and GCS one thread per range)."""
    from model_engine_infra.storage.transfer import TransferSettings

    scheme = {"s3": "s3", "azure": "az", "gcs": "gs"}[kind]
    root = fresh_root(scheme, "contract-bucket" if kind != "azure" else "contract")
    target = direct_target(kind, request, monkeypatch, root)
    payload = MULTI_CHUNK[: 6 * MIB]
    write(target, "model/weights.bin", payload)
    server = request.getfixturevalue(SERVERS[kind])
    parts = TransferSettings(max_concurrency=4, part_size=2 * MIB)
    with proxied(server, reset_after=700_000, reset_every=2) as proxy:
        artifacts = proxied_artifacts(kind, server, proxy, root, transfer=parts)
        paths = artifacts.download_files(f"{root}/model", tmp_path / "out")
        artifacts.close()
    assert [Path(path).read_bytes() == payload for path in paths] == [True]
    target.infra.close()


@pytest.mark.parametrize("kind", ["s3", "azure", "gcs"])
def test_a_download_in_parts_cut_on_every_connection_leaves_no_partial_file(
    kind: str, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from model_engine_infra.storage.transfer import TransferSettings

    scheme = {"s3": "s3", "azure": "az", "gcs": "gs"}[kind]
    root = fresh_root(scheme, "contract-bucket" if kind != "azure" else "contract")
    target = direct_target(kind, request, monkeypatch, root)
    write(target, "model/weights.bin", MULTI_CHUNK[: 6 * MIB])
    server = request.getfixturevalue(SERVERS[kind])
    parts = TransferSettings(max_concurrency=4, part_size=2 * MIB)
    with proxied(server, reset_after=300_000) as proxy:
        artifacts = proxied_artifacts(kind, server, proxy, root, transfer=parts)
        with pytest.raises(StorageUnavailableError):
            artifacts.download_files(f"{root}/model", tmp_path / "out")
        artifacts.close()
    assert [p.name for p in (tmp_path / "out").rglob("*") if p.is_file()] == []
    target.infra.close()


@pytest.mark.parametrize("kind", ["s3", "azure", "gcs"])
def test_refused_connection_is_storage_unavailable(
    kind: str, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    server = request.getfixturevalue(SERVERS[kind])
    if kind == "s3":
        aws_env(monkeypatch, server, with_endpoint=False)
    scheme = {"s3": "s3", "azure": "az", "gcs": "gs"}[kind]
    root = fresh_root(scheme, "contract-bucket")
    with proxied(server, refuse=True) as proxy:
        artifacts = proxied_artifacts(kind, server, proxy, root)
        with pytest.raises(StorageUnavailableError):
            artifacts.list_files(f"{root}/model")
        artifacts.close()


# --- reads through a cut connection: typed errors on every store's read path (issue 14) ---------------


def proxied_filesystem(kind: str, server: RunningServer, proxy: str, root: str) -> Any:
    """A filesystem gateway whose traffic goes through ``proxy``, with short retry budgets."""
    if kind == "s3":
        from model_engine_infra.storage.s3 import S3Filesystem, make_client

        return S3Filesystem(make_client(s3_config(server, "minio", root, endpoint=proxy)))
    if kind == "azure":
        from azure.storage.blob import ExponentialRetry

        from model_engine_infra.storage.abs import AzureBlobFilesystem, make_client

        config = azure_config(server, root, endpoint=f"{proxy}/{server.extra['account_name']}")
        quick = ExponentialRetry(initial_backoff=0, increment_base=1, retry_total=1)
        return AzureBlobFilesystem(make_client(config, retry_policy=quick))
    from google.cloud.storage.retry import DEFAULT_RETRY

    from model_engine_infra.storage.gcs import GCSFilesystem, make_client

    config = gcs_config(server, root, endpoint=proxy)
    return GCSFilesystem(make_client(config), retry=DEFAULT_RETRY.with_timeout(2))


def read_to_end(fs: Any, uri: str, mode: str) -> None:
    with fs.open(uri, mode) as stream:
        while stream.read(64 * 1024):
            pass


@pytest.mark.parametrize("mode", ["rb", "r"])
@pytest.mark.parametrize("kind", ["s3", "azure", "gcs"])
def test_read_through_a_cut_connection_is_storage_unavailable(
    kind: str, mode: str, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``filesystem.open(uri).read()`` with the connection reset mid-body: a typed error, never the SDK's."""
    scheme = {"s3": "s3", "azure": "az", "gcs": "gs"}[kind]
    root = fresh_root(scheme, "contract-bucket" if kind != "azure" else "contract")
    target = direct_target(kind, request, monkeypatch, root)
    uri = write(target, "model/notes.txt", b"line of text\n" * 250_000)  # 3.25 MB
    server = request.getfixturevalue(SERVERS[kind])
    # GCS reads in ranges (256 KiB, or 8 KiB under a text wrapper) and retries each: cut inside the smallest.
    with proxied(server, reset_after=5_000 if kind == "gcs" else 300_000) as proxy:
        fs = proxied_filesystem(kind, server, proxy, root)
        with pytest.raises(StorageError) as info:
            read_to_end(fs, uri, mode)
        fs.close()
    assert isinstance(info.value, StorageUnavailableError), repr(info.value)
    assert "model/notes.txt" in str(info.value)
    target.infra.close()


def test_cli_copy_between_buckets_through_a_cut_prints_one_line(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """``storage cp s3://... s3://...`` through a cut: exit 1 with one line, no traceback, nothing at the target."""
    from typer.testing import CliRunner

    from model_engine_infra.cli import app

    moto = request.getfixturevalue("mei_moto_server")
    root = fresh_root("s3", "contract-bucket")
    target = direct_target("s3", request, monkeypatch, root)
    write(target, "src/weights.bin", MULTI_CHUNK[: 3 * MIB])
    with proxied(moto, reset_after=300_000) as proxy:
        config = tmp_path / "config.yaml"
        config.write_text(f"cloud_provider: onprem\ns3_endpoint_url: {proxy}\n")
        result = CliRunner().invoke(
            app, ["storage", "cp", f"{root}/src/weights.bin", f"{root}/dst/weights.bin", "-c", str(config)]
        )
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    assert "retry later" in result.output
    assert target.fs.exists(f"{root}/dst/weights.bin") is False
    target.infra.close()


# --- S3 bodies read straight from the socket ------------------------------------------------------


def test_s3_download_reads_the_socket_and_checks_the_checksum(
    mei_moto_server: RunningServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Whole objects carrying a CRC32 (boto3's default on upload) go through `_read_socket`, which
    checks it. (moto's server closes every connection after its response, so reuse is asserted in
    the unit suite, not here.)"""
    from model_engine_infra.storage import s3 as s3_module

    root = fresh_root("s3", "contract-bucket")
    aws_env(monkeypatch, mei_moto_server, with_endpoint=False)
    target = s3_store_target("minio-path", s3_config(mei_moto_server, "minio", root), root)
    payloads = {f"model/shard-{i}.bin": bytes([i]) * (MIB // 2 + i) for i in range(5)}  # one GET each
    for key, data in payloads.items():
        write(target, key, data)

    checked: list[bool] = []
    real_read_socket = s3_module._read_socket

    def spy(reader: Any, body: Any, response: dict[str, Any], sink: Any, uri: str) -> None:
        checked.append(getattr(body, "checksum", None) is not None)
        real_read_socket(reader, body, response, sink, uri)

    monkeypatch.setattr(s3_module, "_read_socket", spy)
    target.infra.artifacts.download_files(f"{root}/model", tmp_path / "out", max_concurrency=1)

    assert checked == [True] * 5  # every body came with a CRC32 and was checked
    for key, data in payloads.items():
        assert (tmp_path / "out" / key.removeprefix("model/")).read_bytes() == data
    target.infra.close()
