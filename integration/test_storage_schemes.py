"""Storage by URI scheme: an on-prem deployment (S3/MinIO by default) reads gs:// and https:// too.

fake-gcs-server stands in for GCS (reached through ``gcs_endpoint_url``); a local TLS server with
a self-signed CA (trusted through ``SSL_CERT_FILE``, as httpx reads it) serves the https:// files.
"""

from __future__ import annotations

import functools
import http.server
import json
import ssl
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from model_engine_infra import InfraConfig, build_infra
from model_engine_infra.errors import ObjectNotFoundError, StoragePermissionError
from model_engine_infra.testing.servers import RunningServer, self_signed_cert

pytestmark = pytest.mark.integration

BUCKET = "onprem-reads-gcs"


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        return


@pytest.fixture
def https_site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """``https://127.0.0.1:PORT`` serving ``tmp_path/site``, its CA trusted through SSL_CERT_FILE."""
    site = tmp_path / "site"
    (site / "models" / "tiny").mkdir(parents=True)
    (site / "models" / "tiny" / "config.json").write_text(json.dumps({"model_type": "tiny"}))
    (site / "models" / "tiny" / "weights.bin").write_bytes(b"w" * 300_000)
    cert, key = self_signed_cert(tmp_path / "tls")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Quiet, directory=str(site)))
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    monkeypatch.setenv("SSL_CERT_FILE", str(cert))
    try:
        yield f"https://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def gcs_object(mei_gcs_server: RunningServer) -> str:
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import storage

    client = storage.Client(
        project="test",
        credentials=AnonymousCredentials(),  # type: ignore[no-untyped-call]
        client_options={"api_endpoint": mei_gcs_server.url},
    )
    bucket = client.bucket(BUCKET)
    if not bucket.exists():
        client.create_bucket(BUCKET)
    bucket.blob("weights/m/config.json").upload_from_string(json.dumps({"hidden": 8}))
    bucket.blob("weights/m/model.bin").upload_from_string(b"g" * 1000)
    return f"gs://{BUCKET}/weights/m"


def onprem_config(tmp_path: Path, mei_gcs_server: RunningServer) -> InfraConfig:
    return InfraConfig(
        cloud_provider="onprem",
        s3_endpoint_url="http://127.0.0.1:9",  # the profile's store: never reached by these reads
        gcs_endpoint_url=mei_gcs_server.url,
        local_data_dir=str(tmp_path / "data"),
    )


def test_onprem_reads_gs_through_gcs_endpoint_url(
    tmp_path: Path, mei_gcs_server: RunningServer, gcs_object: str
) -> None:
    infra = build_infra(onprem_config(tmp_path, mei_gcs_server))
    try:
        with infra.filesystem.open(f"{gcs_object}/config.json", "rb") as f:
            assert json.loads(f.read()) == {"hidden": 8}
        assert infra.artifacts.get_model_config(gcs_object) == {"hidden": 8}
        paths = infra.artifacts.download_files(gcs_object, tmp_path / "out")
        assert sorted(Path(p).name for p in paths) == ["config.json", "model.bin"]
        assert (tmp_path / "out" / "model.bin").read_bytes() == b"g" * 1000
        assert infra.filesystem._stores.default_scheme == "s3"  # type: ignore[attr-defined]
        assert sorted(infra.filesystem._stores._built) == ["gs"]  # type: ignore[attr-defined]  # S3 never built
    finally:
        infra.close()


def test_onprem_reads_https_files(tmp_path: Path, mei_gcs_server: RunningServer, https_site: str) -> None:
    infra = build_infra(onprem_config(tmp_path, mei_gcs_server))
    model = f"{https_site}/models/tiny"
    try:
        with infra.filesystem.open(f"{model}/config.json", "r") as f:
            assert json.load(f) == {"model_type": "tiny"}
        assert infra.filesystem.exists(f"{model}/weights.bin")
        assert not infra.filesystem.exists(f"{model}/missing.bin")
        assert infra.artifacts.get_model_config(model) == {"model_type": "tiny"}
        [path] = infra.artifacts.download_files(f"{model}/weights.bin", tmp_path / "out")
        assert Path(path).read_bytes() == b"w" * 300_000
        with pytest.raises(ObjectNotFoundError):
            infra.filesystem.open(f"{model}/missing.bin", "rb")
        with pytest.raises(StoragePermissionError, match="read-only"):
            infra.filesystem.open(f"{model}/new.bin", "wb")
        with pytest.raises(StoragePermissionError, match="read-only"):
            infra.filesystem.delete(f"{model}/weights.bin")
    finally:
        infra.close()


def test_https_read_through_a_cut_connection_is_storage_unavailable(https_site: str) -> None:
    """The HTTPS store's read path through netsim's ``reset_after``: a typed error naming the URL."""
    from model_engine_infra.errors import StorageError, StorageUnavailableError
    from model_engine_infra.storage.https import HttpsFilesystem
    from model_engine_infra.testing.netsim import netsim

    port = int(https_site.rsplit(":", 1)[1])
    with netsim(port, reset_after=100_000) as proxy:
        fs = HttpsFilesystem()
        with pytest.raises(StorageError) as info:
            read_all(fs, f"https://127.0.0.1:{proxy}/models/tiny/weights.bin")
        fs.close()
    assert isinstance(info.value, StorageUnavailableError), repr(info.value)
    assert "weights.bin" in str(info.value)


def read_all(fs: object, url: str) -> None:
    with fs.open(url, "rb") as stream:  # type: ignore[attr-defined]
        while stream.read(64 * 1024):
            pass
