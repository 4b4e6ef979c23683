"""Storage pieces below the contract: URIs, safe paths, the download engine, signing paths no
local server can exercise (Azure user-delegation SAS, GCS IAM signBlob), SHA-256 uploads, errors."""

from __future__ import annotations

import base64
import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO
from unittest import mock

import pytest
from typer.testing import CliRunner

from model_engine_infra import InfraConfig, build_infra
from model_engine_infra.errors import (
    InvalidURIError,
    ObjectNotFoundError,
    StorageError,
    StoragePermissionError,
    StorageUnavailableError,
    UnsafeObjectKeyError,
)
from model_engine_infra.storage.base import ObjectInfo, download_all
from model_engine_infra.storage.paths import safe_join
from model_engine_infra.storage.streams import PartWriter, WriteStream
from model_engine_infra.storage.uri import parse_uri

ALL = ("s3", "az", "gs", "file")


# --- URIs and paths ------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("uri", "scheme", "bucket", "key"),
    [
        ("s3://bkt/a b/100%25 #1?.txt", "s3", "bkt", "a b/100%25 #1?.txt"),  # keys are taken as written
        ("gs://bkt/ünï/x", "gs", "bkt", "ünï/x"),
        ("azure://ctr/p/q", "az", "ctr", "p/q"),
        ("https://acct123.blob.core.windows.net/ctr/a%20b", "az", "ctr", "a b"),
        ("file:///tmp/a%20b", "file", "", "/tmp/a b"),
        ("relative/path", "file", "", "relative/path"),
    ],
)
def test_parse_uri(uri: str, scheme: str, bucket: str, key: str) -> None:
    parsed = parse_uri(uri, accepts=ALL, store="test")
    assert (parsed.scheme, parsed.bucket, parsed.key) == (scheme, bucket, key)


@pytest.mark.parametrize("uri", ["s3://", "s3:///key", "ftp://h/x", "file://otherhost/x", "https://example.com/c/x"])
def test_malformed_uris(uri: str) -> None:
    with pytest.raises(InvalidURIError, match="accepts"):
        parse_uri(uri, accepts=ALL, store="test")


def test_azure_account_must_match() -> None:
    from model_engine_infra.storage.abs import _Blobs

    client = mock.Mock(account_name="mine")
    with pytest.raises(InvalidURIError, match="mine"):
        _Blobs(client).location("https://other.blob.core.windows.net/ctr/x")


SIGNED = [
    "https://bkt.s3.amazonaws.com/k?X-Amz-Credential=AKIA%2F&X-Amz-Signature=c4n4ry",
    "https://storage.googleapis.com/bkt/k?X-Goog-Algorithm=GOOG4&X-Goog-Signature=c4n4ry",
    "https://other.blob.core.windows.net/ctr/k?sv=2024&sig=c4n4ry",
]


@pytest.mark.parametrize("uri", SIGNED)
def test_refused_signed_url_keeps_its_signature_out_of_the_error(uri: str) -> None:
    from model_engine_infra.storage.abs import _Blobs

    with pytest.raises(InvalidURIError) as info:
        parse_uri(uri, accepts=("s3", "gs"), store="test")
    assert "c4n4ry" not in str(info.value)
    with pytest.raises(InvalidURIError) as info:
        _Blobs(mock.Mock(account_name="mine")).location(uri)
    assert "c4n4ry" not in str(info.value)


def test_azure_errors_on_a_sas_url_keep_the_signature_out() -> None:
    from azure.core.exceptions import ResourceNotFoundError

    from model_engine_infra.storage.abs import AzureBlobFilesystem

    client = mock.Mock(account_name="acct")
    client.get_blob_client.return_value.download_blob.side_effect = ResourceNotFoundError("gone")
    fs = AzureBlobFilesystem(client)
    with pytest.raises(ObjectNotFoundError) as info:
        fs.open("https://acct.blob.core.windows.net/ctr/k?sv=2024&sig=c4n4ry")
    assert "c4n4ry" not in str(info.value)
    assert "ctr/k" in str(info.value)


@pytest.mark.parametrize("key", ["../x", "a/../../x", "/etc/x", "a\\..\\x", "a//b", "", "./x", "C:x"])
def test_safe_join_refuses(tmp_path: Path, key: str) -> None:
    with pytest.raises(UnsafeObjectKeyError):
        safe_join(tmp_path, key)


def test_safe_join_refuses_symlink_escape(tmp_path: Path) -> None:
    (tmp_path / "link").symlink_to("/etc")
    with pytest.raises(UnsafeObjectKeyError):
        safe_join(tmp_path, "link/passwd")


# --- the download engine ----------------------------------------------------------------------------
def _objects(*sizes: int) -> list[ObjectInfo]:
    return [ObjectInfo(f"mem://{i}", f"d/f{i}.bin", size) for i, size in enumerate(sizes)]


def test_short_download_leaves_no_file(tmp_path: Path) -> None:
    def fetch(obj: ObjectInfo, fileobj: BinaryIO, progress: Any) -> None:
        fileobj.write(b"x" * ((obj.size or 0) - 1))  # the server closed early without an error

    with pytest.raises(StorageError, match="cut short"):
        download_all(_objects(10), tmp_path, fetch, overwrite=False, max_concurrency=2, progress=None)
    assert [p for p in tmp_path.rglob("*") if p.is_file()] == []


def test_failed_download_keeps_finished_files_and_no_partial(tmp_path: Path) -> None:
    def fetch(obj: ObjectInfo, fileobj: BinaryIO, progress: Any) -> None:
        fileobj.write(b"x" * 5)
        if obj.uri == "mem://1":
            raise StorageUnavailableError("cut")
        fileobj.write(b"x" * ((obj.size or 0) - 5))

    with pytest.raises(StorageUnavailableError):
        download_all(_objects(10, 10), tmp_path, fetch, overwrite=False, max_concurrency=1, progress=None)
    assert sorted(p.name for p in tmp_path.rglob("*") if p.is_file()) == ["f0.bin"]


def test_ranged_writers_counted_by_file_size(tmp_path: Path) -> None:
    """Writers that seek (Azure, s3transfer) or pwrite (GCS) leave tell() anywhere."""

    def fetch(obj: ObjectInfo, fileobj: BinaryIO, progress: Any) -> None:
        fileobj.seek(5)
        fileobj.write(b"world")
        fileobj.seek(0)
        fileobj.write(b"hello")

    (path,) = download_all(_objects(10), tmp_path, fetch, overwrite=True, max_concurrency=1, progress=None)
    assert Path(path).read_bytes() == b"helloworld"


def test_folder_markers_are_not_files(tmp_path: Path) -> None:
    from model_engine_infra.storage.local import LocalArtifacts

    class Markers(LocalArtifacts):
        def _iter_objects(self, folder_uri: str) -> Iterator[ObjectInfo]:
            yield ObjectInfo(folder_uri + "sub/", "sub/", 0)

    assert Markers(fine_tuned_weights_prefix="").list_objects(str(tmp_path)) == []


# --- write streams ----------------------------------------------------------------------------------
class _Recorder:
    def __init__(self, fail_finish: bool = False) -> None:
        self.calls: list[str] = []
        self.fail_finish = fail_finish

    def upload_part(self, data: bytes) -> None:
        self.calls.append(f"part:{len(data)}")

    def finish(self, data: bytes) -> None:
        self.calls.append(f"finish:{len(data)}")
        if self.fail_finish:
            raise StorageUnavailableError("commit failed")

    def abort(self) -> None:
        self.calls.append("abort")


def test_part_writer_bounds_parts_and_aborts_failed_commit() -> None:
    recorder = _Recorder(fail_finish=True)
    writer = PartWriter(recorder, part_size=4)
    stream = WriteStream(writer, writer.close, writer.abort, "x")  # type: ignore[arg-type]
    stream.write(b"0123456789")
    with pytest.raises(StorageUnavailableError):
        stream.close()
    assert recorder.calls == ["part:4", "part:4", "finish:2", "abort"]


def test_write_stream_exception_discards() -> None:
    recorder = _Recorder()
    writer = PartWriter(recorder, part_size=4)

    def fail() -> None:
        with WriteStream(writer, writer.close, writer.abort, "x") as stream:  # type: ignore[arg-type]
            stream.write(b"abc")
            raise KeyError("x")

    with pytest.raises(KeyError):
        fail()
    assert recorder.calls == ["abort"]


# --- S3 specifics ------------------------------------------------------------------------------------
@pytest.fixture
def s3_infra() -> Iterator[Any]:
    from moto import mock_aws

    with mock_aws():
        infra = build_infra(InfraConfig(cloud_provider="aws", celery_enable_sha256=True))
        infra.filesystem.client.create_bucket(Bucket="bkt")  # type: ignore[attr-defined]
        yield infra
        infra.close()


def test_s3_sha256_checksums(s3_infra: Any) -> None:
    fs = s3_infra.filesystem
    with fs.open("s3://bkt/small", "wb") as stream:
        stream.write(b"abc")
    with fs.open("s3://bkt/big", "wb") as stream:
        stream.write(b"z" * (9 * 1024 * 1024))
    small = fs.client.head_object(Bucket="bkt", Key="small", ChecksumMode="ENABLED")
    assert small["ChecksumSHA256"] == base64.b64encode(__import__("hashlib").sha256(b"abc").digest()).decode()
    big = fs.client.head_object(Bucket="bkt", Key="big", ChecksumMode="ENABLED")
    assert "ChecksumSHA256" in big


def test_s3_client_settings() -> None:
    from model_engine_infra.storage.s3 import make_client

    minio = make_client(
        InfraConfig(cloud_provider="onprem", s3_endpoint_url="http://minio:9000", default_region="eu-west-1")
    )
    assert minio.meta.endpoint_url == "http://minio:9000"
    assert minio.meta.region_name == "eu-west-1"
    assert minio.meta.config.s3["addressing_style"] == "path"
    aws = make_client(InfraConfig(cloud_provider="aws", s3_addressing_style="virtual"))
    assert aws.meta.config.s3["addressing_style"] == "virtual"


def test_s3_error_translation() -> None:
    from botocore.exceptions import ClientError, EndpointConnectionError, NoCredentialsError

    from model_engine_infra.storage.s3 import translate

    def client_error(code: str, status: int) -> ClientError:
        return ClientError({"Error": {"Code": code}, "ResponseMetadata": {"HTTPStatusCode": status}}, "GetObject")

    assert isinstance(translate(client_error("AccessDenied", 403), "s3://b/k"), StoragePermissionError)
    assert isinstance(translate(client_error("404", 404), "s3://b/k"), ObjectNotFoundError)
    assert isinstance(translate(client_error("SlowDown", 503), "s3://b/k"), StorageUnavailableError)
    assert isinstance(translate(NoCredentialsError(), "s3://b/k"), StoragePermissionError)
    unreachable = translate(EndpointConnectionError(endpoint_url="http://u:secret@h"), "s3://b/k", "http://u:secret@h")
    assert isinstance(unreachable, StorageUnavailableError)
    assert "secret" not in str(unreachable)


# --- Azure and GCS signing paths no local server serves ----------------------------------------------
def test_azure_user_delegation_sas_is_fetched_once_and_used() -> None:
    from azure.storage.blob import BlobServiceClient, UserDelegationKey

    from model_engine_infra.storage.abs import AzureBlobFilesystem

    key = UserDelegationKey()
    key.signed_oid, key.signed_tid, key.signed_service, key.signed_version = "oid-1", "tid-1", "b", "2022-11-02"
    key.signed_start, key.signed_expiry = "2024-01-01T00:00:00Z", "2024-01-08T00:00:00Z"
    key.value = base64.b64encode(b"k" * 32).decode()

    class Token:  # a token credential (Entra ID); never asked here, signing needs no request but the key's
        def get_token(self, *scopes: str, **kwargs: Any) -> Any:
            raise AssertionError("not expected")

    client = BlobServiceClient("https://acct.blob.core.windows.net", credential=Token())
    fs = AzureBlobFilesystem(client)
    with mock.patch.object(client, "get_user_delegation_key", return_value=key) as fetch:
        first = fs.generate_signed_url("az://ctr/model/a b.bin", expiration=600)
        second = fs.generate_signed_url("az://ctr/model/c.bin", expiration=600, method="PUT")
    assert fetch.call_count == 1
    assert first.startswith("https://acct.blob.core.windows.net/ctr/model/a%20b.bin?")
    assert "skoid=oid-1" in first
    assert "sp=r" in first
    assert "sp=cw" in second


def test_gcs_signs_through_iam_without_a_key() -> None:
    from google.auth.credentials import AnonymousCredentials

    from model_engine_infra.storage.gcs import GCSFilesystem

    class WorkloadIdentity:  # ADC on GKE: a token, an email, no private key
        valid = True
        token = "access-token"
        service_account_email = "svc@proj.iam.gserviceaccount.com"

    from google.cloud import storage

    client = storage.Client(project="proj", credentials=AnonymousCredentials())
    fs = GCSFilesystem(client, signing_credentials=WorkloadIdentity())
    signature = base64.b64encode(b"sig").decode()
    with mock.patch("google.cloud.storage._signing._sign_message", return_value=signature) as sign:
        url = fs.generate_signed_url("gs://bkt/w.bin", expiration=300)
    assert sign.call_args.args[1:3] == ("access-token", "svc@proj.iam.gserviceaccount.com")
    assert "X-Goog-Signature=" in url
    assert "svc%40proj.iam.gserviceaccount.com" in url


def test_gcs_signing_with_user_credentials_says_what_to_use() -> None:
    """``gcloud auth application-default login`` gives user credentials: no key, no service account."""
    import google.oauth2.credentials
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import storage

    from model_engine_infra.storage.gcs import GCSFilesystem

    user = google.oauth2.credentials.Credentials("user-token")
    client = storage.Client(project="proj", credentials=AnonymousCredentials())
    fs = GCSFilesystem(client, signing_credentials=user)
    with pytest.raises(StoragePermissionError, match="service account") as info:
        fs.generate_signed_url("gs://bkt/w.bin", expiration=300)
    assert "user-token" not in str(info.value)


def test_azure_and_gcs_error_translation() -> None:
    from azure.core.exceptions import ClientAuthenticationError, ResourceNotFoundError, ServiceRequestError
    from google.api_core import exceptions as gexc

    from model_engine_infra.storage import abs as azure_store
    from model_engine_infra.storage import gcs as gcs_store

    assert isinstance(azure_store.translate(ResourceNotFoundError("x"), "az://c/k"), ObjectNotFoundError)
    assert isinstance(azure_store.translate(ClientAuthenticationError("x"), "az://c/k"), StoragePermissionError)
    assert isinstance(azure_store.translate(ServiceRequestError("x"), "az://c/k"), StorageUnavailableError)
    assert isinstance(gcs_store.translate(gexc.Forbidden("x"), "gs://b/k"), StoragePermissionError)
    assert isinstance(gcs_store.translate(gexc.NotFound("x"), "gs://b/k"), ObjectNotFoundError)
    assert isinstance(gcs_store.translate(gexc.ServiceUnavailable("x"), "gs://b/k"), StorageUnavailableError)


def test_azure_needs_an_account() -> None:
    from model_engine_infra.errors import ConfigError
    from model_engine_infra.storage.abs import make_client

    with pytest.raises(ConfigError, match="abs_account_name"):
        make_client(InfraConfig(cloud_provider="azure"))


def test_secrets_stay_out_of_reprs() -> None:
    from pydantic import SecretStr

    config = InfraConfig(
        cloud_provider="azure", abs_account_name="acct", abs_account_key=SecretStr(base64.b64encode(b"k" * 64).decode())
    )
    infra = build_infra(config)
    assert config.secret("abs_account_key") not in repr(infra.filesystem)
    infra.close()


def test_local_weights_default_under_data_dir(tmp_path: Path) -> None:
    infra = build_infra(InfraConfig(cloud_provider="local", local_data_dir=str(tmp_path)))
    assert infra.artifacts.fine_tuned_weights_prefix == str(tmp_path / "fine_tuned_weights")


# --- CLI ---------------------------------------------------------------------------------------------
def test_cli_ls_cp_sign_on_local_disk(tmp_path: Path) -> None:
    from model_engine_infra.cli.storage import app

    config = tmp_path / "config.yaml"
    config.write_text(f"cloud_provider: local\nlocal_data_dir: {tmp_path / 'data'}\n")
    src = tmp_path / "src"
    (src / "sub").mkdir(parents=True)
    (src / "config.json").write_text("{}")
    (src / "sub" / "w.bin").write_bytes(b"w" * 5000)
    runner = CliRunner()
    listed = runner.invoke(app, ["ls", str(src), "--config", str(config)])
    assert listed.exit_code == 0, listed.output
    assert f"{src}/sub/w.bin" in listed.output
    copied = runner.invoke(app, ["cp", src.as_uri(), str(tmp_path / "dst"), "--config", str(config)])
    assert copied.exit_code == 0, copied.output
    assert (tmp_path / "dst" / "sub" / "w.bin").read_bytes() == b"w" * 5000
    one = runner.invoke(app, ["cp", str(src / "config.json"), str(tmp_path / "one.json"), "--config", str(config)])
    assert one.exit_code == 0, one.output
    assert (tmp_path / "one.json").read_text() == "{}"
    signed = runner.invoke(app, ["sign", str(src / "config.json"), "--config", str(config)])
    assert signed.exit_code == 0
    assert signed.output.strip() == (src / "config.json").as_uri()
    missing = runner.invoke(app, ["cp", str(tmp_path / "nope"), str(tmp_path / "x"), "--config", str(config)])
    assert missing.exit_code == 1
    bad = runner.invoke(app, ["sign", str(src / "config.json"), "--method", "DELETE", "--config", str(config)])
    assert bad.exit_code == 2


def test_cli_cp_one_object_into_a_new_folder_named_with_a_slash(tmp_path: Path) -> None:
    from model_engine_infra.cli.storage import app

    config = tmp_path / "config.yaml"
    config.write_text(f"cloud_provider: local\nlocal_data_dir: {tmp_path / 'data'}\n")
    (tmp_path / "config.json").write_text("{}")
    result = CliRunner().invoke(
        app, ["cp", str(tmp_path / "config.json"), f"{tmp_path / 'new'}/", "--config", str(config)]
    )
    assert result.exit_code == 0, result.output
    assert (tmp_path / "new" / "config.json").read_text() == "{}"


def test_cli_upload_and_download_through_s3(tmp_path: Path) -> None:
    from moto import mock_aws

    from model_engine_infra.cli.storage import app

    config = tmp_path / "config.yaml"
    config.write_text("cloud_provider: aws\ncache_redis_aws_url: redis://cache:6379/0\n")
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "a.bin").write_bytes(b"a" * 100)
    runner = CliRunner()
    with mock_aws():
        import boto3

        boto3.client("s3", region_name="us-east-1").create_bucket(Bucket="bkt")
        up = runner.invoke(app, ["cp", str(tmp_path / "model"), "s3://bkt/models/m", "--config", str(config)])
        assert up.exit_code == 0, up.output
        down = runner.invoke(
            app, ["cp", "s3://bkt/models/m/a.bin", str(tmp_path / "back.bin"), "--config", str(config)]
        )
        assert down.exit_code == 0, down.output
        listed = runner.invoke(app, ["ls", "s3://bkt/models", "--config", str(config)])
    assert (tmp_path / "back.bin").read_bytes() == b"a" * 100
    assert "s3://bkt/models/m/a.bin" in listed.output


def test_text_mode_rejects_unknown_kwargs(tmp_path: Path) -> None:
    from model_engine_infra.storage.local import LocalFilesystem

    with pytest.raises(TypeError, match="unexpected"):
        LocalFilesystem().open(str(tmp_path / "x"), "wb", encoding="utf-8")
    assert isinstance(io.BytesIO(), io.IOBase)
