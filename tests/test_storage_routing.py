"""Routing by URI scheme, and the read-only HTTPS store against an in-process transport."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from model_engine_infra import build_infra
from model_engine_infra.config import InfraConfig
from model_engine_infra.errors import InvalidURIError, ObjectNotFoundError, StoragePermissionError
from model_engine_infra.storage.https import HttpsArtifacts, HttpsFilesystem
from model_engine_infra.storage.routing import scheme_of

CANARY = "SIGNATURE-CANARY-93f1"


@pytest.mark.parametrize(
    ("uri", "scheme"),
    [
        ("s3://b/k", "s3"),
        ("gs://b/k", "gs"),
        ("az://c/k", "az"),
        ("azure://c/k", "az"),
        ("https://acct.blob.core.windows.net/c/k", "az"),
        ("https://example.com/model/config.json", "https"),
        ("file:///tmp/x", "file"),
        ("mem://x/y", "mem"),
        ("relative/path", None),
        ("/abs/path", None),
    ],
)
def test_scheme_of(uri: str, scheme: str | None) -> None:
    assert scheme_of(uri) == scheme


def test_a_scheme_no_store_serves(tmp_path: Path) -> None:
    infra = build_infra(InfraConfig(cloud_provider="local", local_data_dir=str(tmp_path)))
    with pytest.raises(InvalidURIError, match="accepts") as info:
        infra.filesystem.open("ftp://host/x", "rb")
    assert "s3://" in str(info.value)
    assert "https://" in str(info.value)
    infra.close()


def test_each_store_is_built_once_and_shared(tmp_path: Path) -> None:
    infra = build_infra(InfraConfig(cloud_provider="local", local_data_dir=str(tmp_path)))
    (tmp_path / "f.txt").write_text("x")
    assert infra.filesystem.exists(str(tmp_path / "f.txt"))
    assert infra.artifacts.list_files(str(tmp_path / "f.txt")) == [str(tmp_path / "f.txt")]
    stores = infra.filesystem._stores  # type: ignore[attr-defined]
    assert stores is infra.artifacts._stores  # type: ignore[attr-defined]
    assert sorted(stores._built) == ["file"]
    infra.close()


def _client(handler: object) -> httpx.Client:
    return httpx.Client(transport=httpx.MockTransport(handler), follow_redirects=True)  # type: ignore[arg-type]


def test_https_store_streams_and_masks_signatures() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/secret.bin":
            return httpx.Response(403)
        if request.url.path == "/gone.bin":
            return httpx.Response(404)
        return httpx.Response(200, content=b"abc" * 1000, headers={"content-length": "3000"})

    client = _client(handler)
    fs = HttpsFilesystem(client)
    with fs.open("https://files.example/ok.bin", "rb") as f:
        assert f.read() == b"abc" * 1000
    signed = f"https://files.example/secret.bin?X-Amz-Signature={CANARY}"
    with pytest.raises(StoragePermissionError) as info:
        fs.open(signed, "rb")
    assert CANARY not in str(info.value)
    with pytest.raises(ObjectNotFoundError):
        fs.open("https://files.example/gone.bin", "rb")
    assert fs.generate_signed_url("https://files.example/ok.bin") == "https://files.example/ok.bin"
    with pytest.raises(StoragePermissionError, match="read-only"):
        fs.generate_signed_url("https://files.example/ok.bin", method="PUT")
    with pytest.raises(InvalidURIError):
        fs.open("http://files.example/ok.bin", "rb")
    artifacts = HttpsArtifacts(client, fine_tuned_weights_prefix="https://files.example/ft")
    [obj] = artifacts.list_objects("https://files.example/model/ok.bin")
    assert (obj.key, obj.size) == ("ok.bin", 3000)
    assert artifacts.list_objects("https://files.example/gone.bin") == []
    fs.close()
