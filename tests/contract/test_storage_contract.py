"""The one contract every store passes: `FilesystemGateway` + `LLMArtifactGateway` together.

Here over local disk (file:// and plain paths) and in-process moto S3. ``integration/
test_storage_servers.py`` runs the same `StorageContract` over the moto server (S3 and the MinIO
path), Azurite and fake-gcs-server by subclassing it with its own ``backend`` fixture.
"""

from __future__ import annotations

import os
import urllib.parse
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests

from model_engine_infra import InfraConfig, build_infra
from model_engine_infra.errors import InvalidURIError, ObjectNotFoundError, UnsafeObjectKeyError
from model_engine_infra.infra import Infra

MIB = 1024 * 1024
# Several parts of the 8 MiB writers and several ranges of the 1-2 MiB test downloads.
MULTI_CHUNK = os.urandom(9 * MIB + 123)
HOSTILE_KEYS = ("../x", "a/../../x", "/etc/x", "a\\..\\x")


@dataclass
class Backend:
    """One store under test. ``put_raw`` writes with the SDK directly, bypassing our gateway."""

    name: str
    infra: Infra
    root: str  # a fresh folder URI for this test
    put_raw: Callable[[str, bytes], None]  # (key relative to root, bytes)
    hostile_keys: tuple[str, ...] = HOSTILE_KEYS
    put_headers: dict[str, str] = field(default_factory=dict)  # what a signed PUT needs (Azure blob type)
    foreign_uri: str = "nosuch://elsewhere/x"  # a URI no store serves (every installed scheme is served)

    def uri(self, relative: str) -> str:
        if self.root.startswith("file:"):  # file URIs are percent-encoded; object keys are not
            return f"{self.root}/{urllib.parse.quote(relative)}"
        return f"{self.root}/{relative}"

    @property
    def fs(self) -> Any:
        return self.infra.filesystem

    @property
    def artifacts(self) -> Any:
        return self.infra.artifacts


def fetch(url: str) -> bytes:
    """GET a signed URL with a plain client (urllib for file://, which is what local signs)."""
    if url.startswith("file:"):
        with urllib.request.urlopen(url) as answer:
            data: bytes = answer.read()
            return data
    answer = requests.get(url, timeout=30)
    assert answer.status_code == 200, (answer.status_code, answer.text[:300])
    return answer.content


def put(url: str, data: bytes, headers: dict[str, str]) -> None:
    if url.startswith("file:"):
        Path(urllib.request.url2pathname(url.removeprefix("file://"))).write_bytes(data)
        return
    answer = requests.put(url, data=data, headers=headers, timeout=30)
    assert answer.status_code in (200, 201), (answer.status_code, answer.text[:300])


def write(backend: Backend, relative: str, data: bytes) -> str:
    uri = backend.uri(relative)
    with backend.fs.open(uri, "wb") as stream:
        stream.write(data)
    return uri


def write_then_fail(backend: Backend, uri: str) -> None:
    with backend.fs.open(uri, "wb") as stream:
        stream.write(MULTI_CHUNK)
        raise RuntimeError("boom")


def files_under(folder: Path) -> list[str]:
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())


class StorageContract:
    """Subclass with a ``backend`` fixture returning a `Backend`."""

    @pytest.fixture
    def out(self, tmp_path: Path) -> Path:
        """A download target of its own (a local backend keeps its store in ``tmp_path``)."""
        return tmp_path / "out"

    # --- round trips ----------------------------------------------------------------------------
    def test_text_round_trip(self, backend: Backend) -> None:
        uri = backend.uri("notes/readme.txt")
        with backend.fs.open(uri, "w") as stream:
            stream.write("héllo wörld\nline two ✓\n")
        with backend.fs.open(uri, "r") as stream:
            assert stream.read() == "héllo wörld\nline two ✓\n"
        with backend.fs.open(uri, "r", encoding="latin-1") as stream:
            assert stream.read() == "héllo wörld\nline two ✓\n".encode().decode("latin-1")

    def test_binary_round_trip_zero_byte_and_multi_chunk(self, backend: Backend) -> None:
        small = bytes(range(256)) * 3
        for name, data in (("small.bin", small), ("empty.bin", b""), ("big.bin", MULTI_CHUNK)):
            uri = write(backend, name, data)
            with backend.fs.open(uri, "rb") as stream:
                assert stream.read() == data, name
            assert backend.fs.exists(uri)
        with backend.fs.open(backend.uri("big.bin"), "rb") as stream:  # chunked reads stream in pieces
            pieces = iter(lambda: stream.read(MIB), b"")
            assert b"".join(pieces) == MULTI_CHUNK

    def test_unicode_and_space_keys(self, backend: Backend, out: Path) -> None:
        names = ["dir with space/file name.txt", "ünï/çødé €.json", "odd/100%25 #1?.txt"]
        for i, name in enumerate(names):
            write(backend, name, f"value {i}".encode())
        for i, name in enumerate(names):
            with backend.fs.open(backend.uri(name), "rb") as stream:
                assert stream.read() == f"value {i}".encode()
        assert sorted(backend.fs.list(backend.root)) == sorted(backend.uri(n) for n in names)
        backend.artifacts.download_files(backend.root, out)
        assert files_under(out) == sorted(names)

    # --- listing ----------------------------------------------------------------------------------
    def test_listing_nested_prefixes_and_prefix_collision(self, backend: Backend) -> None:
        for name in ("models/llama/config.json", "models/llama/sub/deeper/w.bin", "models/llama-2/x.bin"):
            write(backend, name, b"{}")
        expected = [backend.uri("models/llama/config.json"), backend.uri("models/llama/sub/deeper/w.bin")]
        assert sorted(backend.fs.list(backend.uri("models/llama"))) == expected
        assert sorted(backend.fs.list(backend.uri("models/llama/"))) == expected
        assert sorted(backend.artifacts.list_files(backend.uri("models/llama"))) == expected
        assert len(backend.fs.list(backend.uri("models"))) == 3
        assert backend.fs.list(backend.uri("models/llam")) == []
        assert backend.fs.list(backend.uri("nothing-here")) == []

    def test_download_folder_is_not_a_prefix(self, backend: Backend, out: Path) -> None:
        write(backend, "models/llama/config.json", b'{"a": 1}')
        write(backend, "models/llama/sub/w.bin", b"weights")
        write(backend, "models/llama-2/other.bin", b"not me")
        paths = backend.artifacts.download_files(backend.uri("models/llama"), out / "out")
        assert sorted(Path(p).relative_to(out / "out").as_posix() for p in paths) == [
            "config.json",
            "sub/w.bin",
        ]
        assert files_under(out / "out") == ["config.json", "sub/w.bin"]
        assert (out / "out/sub/w.bin").read_bytes() == b"weights"

    def test_download_single_object_and_progress(self, backend: Backend, out: Path) -> None:
        uri = write(backend, "one/model.safetensors", MULTI_CHUNK)
        seen: list[int] = []
        paths = backend.artifacts.download_files(uri, out, progress=seen.append)
        assert paths == [str(out / "model.safetensors")]
        assert (out / "model.safetensors").read_bytes() == MULTI_CHUNK
        assert sum(seen) == len(MULTI_CHUNK)
        assert len(seen) > 1

    def test_parallel_download_of_many_files(self, backend: Backend, out: Path) -> None:
        blobs = {f"shard-{i:02d}.bin": os.urandom(1000 + i) for i in range(20)}
        blobs["big/multi.bin"] = MULTI_CHUNK[: 3 * MIB + 5]
        for name, data in blobs.items():
            write(backend, name, data)
        backend.artifacts.download_files(backend.root, out, max_concurrency=6)
        assert files_under(out) == sorted(blobs)
        for name, data in blobs.items():
            assert (out / name).read_bytes() == data

    # --- missing objects and foreign URIs ------------------------------------------------------
    def test_missing_objects(self, backend: Backend, out: Path) -> None:
        missing = backend.uri("no/such/object")
        with pytest.raises(ObjectNotFoundError):
            backend.fs.open(missing, "rb")
        with pytest.raises(ObjectNotFoundError):
            backend.fs.open(missing, "r")
        assert backend.fs.exists(missing) is False
        backend.fs.delete(missing)  # a no-op
        with pytest.raises(ObjectNotFoundError):
            backend.artifacts.download_files(missing, out)
        with pytest.raises(ObjectNotFoundError):
            backend.artifacts.get_model_config(backend.uri("no/model"))
        assert backend.artifacts.list_files(missing) == []
        assert not out.exists() or list(out.iterdir()) == []

    def test_delete(self, backend: Backend) -> None:
        uri = write(backend, "gone.txt", b"x")
        backend.fs.delete(uri)
        assert backend.fs.exists(uri) is False
        assert backend.fs.list(backend.root) == []

    def test_foreign_and_malformed_uris(self, backend: Backend) -> None:
        for bad in (backend.foreign_uri, "ftp://host/x", ""):
            with pytest.raises(InvalidURIError) as info:
                backend.fs.open(bad, "rb")
            assert "accepts" in str(info.value)
        with pytest.raises(ValueError, match="mode"):
            backend.fs.open(backend.uri("x"), "a")

    # --- parallel uploads ------------------------------------------------------------------------
    def test_upload_files_round_trip(self, backend: Backend, tmp_path: Path, out: Path) -> None:
        local = tmp_path / "to-upload"
        blobs = {f"shard-{i:02d}.bin": os.urandom(1000 + i) for i in range(12)}
        blobs.update({"nested/dir with space/ünï €.json": b'{"a": 1}', "empty.bin": b"", "big/multi.bin": MULTI_CHUNK})
        for name, data in blobs.items():
            (local / name).parent.mkdir(parents=True, exist_ok=True)
            (local / name).write_bytes(data)
        (local / "link.bin").symlink_to(local / "empty.bin")  # links are skipped, as rclone does
        seen: list[int] = []
        target = backend.uri("uploaded")
        uris = backend.artifacts.upload_files(local, target, max_concurrency=4, progress=seen.append)
        assert sorted(uris) == sorted(backend.uri(f"uploaded/{name}") for name in blobs)
        assert sum(seen) == sum(len(data) for data in blobs.values())
        assert sorted(o.key for o in backend.artifacts.list_objects(target)) == sorted(blobs)
        backend.artifacts.download_files(target, out)
        assert files_under(out) == sorted(blobs)
        for name, data in blobs.items():
            assert (out / name).read_bytes() == data, name

    def test_upload_a_single_file_to_a_name_or_into_a_folder(self, backend: Backend, tmp_path: Path) -> None:
        source = tmp_path / "weights.bin"
        source.write_bytes(b"w" * 5000)
        named = backend.uri("one/renamed.bin")
        assert backend.artifacts.upload_files(source, named) == [named]
        into = backend.uri("two") + "/"
        assert backend.artifacts.upload_files(source, into) == [backend.uri("two/weights.bin")]
        for uri in (named, backend.uri("two/weights.bin")):
            with backend.fs.open(uri, "rb") as stream:
                assert stream.read() == b"w" * 5000
        with pytest.raises(ObjectNotFoundError, match="nothing to upload"):
            backend.artifacts.upload_files(tmp_path / "missing", named)

    def test_failed_upload_leaves_no_object(self, backend: Backend, tmp_path: Path) -> None:
        source = tmp_path / "big.bin"
        source.write_bytes(MULTI_CHUNK)
        uri = backend.uri("failed/big.bin")

        def fail(_: int) -> None:
            raise RuntimeError("stop the upload")

        with pytest.raises(RuntimeError, match="stop the upload"):
            backend.artifacts.upload_files(source, uri, max_concurrency=2, progress=fail)
        assert backend.fs.exists(uri) is False
        assert backend.fs.list(backend.uri("failed")) == []

    # --- writes: overwrite, failure, abandonment -------------------------------------------------
    def test_overwrite_replaces_and_failed_write_keeps_old(self, backend: Backend) -> None:
        uri = write(backend, "cfg.json", b"version 1")
        write(backend, "cfg.json", b"version 2, longer")
        with backend.fs.open(uri, "rb") as stream:
            assert stream.read() == b"version 2, longer"
        with pytest.raises(RuntimeError):
            write_then_fail(backend, uri)  # parts already sent
        with backend.fs.open(uri, "rb") as stream:
            assert stream.read() == b"version 2, longer"

    def test_failed_or_abandoned_write_leaves_no_object(self, backend: Backend) -> None:
        failed, dropped, small = backend.uri("failed.bin"), backend.uri("dropped.bin"), backend.uri("small.txt")
        with pytest.raises(RuntimeError):
            write_then_fail(backend, failed)
        stream = backend.fs.open(dropped, "wb")
        stream.write(MULTI_CHUNK)
        del stream  # abandoned without close
        text = backend.fs.open(small, "w")
        text.write("half")
        text.discard()
        for uri in (failed, dropped, small):
            assert backend.fs.exists(uri) is False
        assert backend.fs.list(backend.root) == []

    def test_download_overwrite_semantics(self, backend: Backend, out: Path) -> None:
        write(backend, "w/a.bin", b"remote-a")
        write(backend, "w/b.bin", b"remote-b")
        out.mkdir()
        (out / "a.bin").write_bytes(b"local-a!")  # same size: taken as complete
        (out / "b.bin").write_bytes(b"short")  # different size: incomplete, replaced
        backend.artifacts.download_files(backend.uri("w"), out)
        assert (out / "a.bin").read_bytes() == b"local-a!"
        assert (out / "b.bin").read_bytes() == b"remote-b"
        backend.artifacts.download_files(backend.uri("w"), out, overwrite=True)
        assert (out / "a.bin").read_bytes() == b"remote-a"
        assert files_under(out) == ["a.bin", "b.bin"]

    # --- signed URLs --------------------------------------------------------------------------
    def test_signed_urls_fetch_and_upload(self, backend: Backend) -> None:
        uri = write(backend, "signed/file name ü.bin", b"signed bytes")
        url = backend.fs.generate_signed_url(uri, expiration=600)
        assert fetch(url) == b"signed bytes"
        target = backend.uri("signed/put.bin")
        put(backend.fs.generate_signed_url(target, method="PUT"), b"put bytes", backend.put_headers)
        with backend.fs.open(target, "rb") as stream:
            assert stream.read() == b"put bytes"
        with pytest.raises(ValueError, match="method"):
            backend.fs.generate_signed_url(uri, method="DELETE")
        with pytest.raises(ValueError, match="expiration"):
            backend.fs.generate_signed_url(uri, expiration=8 * 24 * 3600)

    # --- model artifacts ----------------------------------------------------------------------
    def test_model_config_and_fine_tuned_weights(self, backend: Backend) -> None:
        write(backend, "hf/llama/config.json", b'{"model_type": "llama", "hidden_size": 4096}')
        assert backend.artifacts.get_model_config(backend.uri("hf/llama")) == {
            "model_type": "llama",
            "hidden_size": 4096,
        }
        write(backend, "ft/alice/my-model/adapter.bin", b"w")
        write(backend, "ft/alice/my-model-2/adapter.bin", b"w")
        assert backend.artifacts.get_model_weights_urls("alice", "my-model") == [
            backend.uri("ft/alice/my-model/adapter.bin")
        ]

    # --- safety ---------------------------------------------------------------------------------
    def test_hostile_keys_write_nothing(self, backend: Backend, out: Path) -> None:
        target = out / "deep" / "target"
        for i, key in enumerate(backend.hostile_keys):
            folder = f"hostile-{i}"
            backend.put_raw(f"{folder}/fine.txt", b"fine")
            backend.put_raw(f"{folder}/{key}", b"evil")
            with pytest.raises(UnsafeObjectKeyError):
                backend.artifacts.download_files(backend.uri(folder), target)
        assert [p for p in out.rglob("*") if p.is_file()] == []  # rglob of a missing folder is empty
        assert not (out / "x").exists()
        assert not (out / "deep" / "x").exists()

    def test_factories_share_one_client(self, backend: Backend) -> None:
        infra = build_infra(backend.infra.config)
        client = getattr(infra.filesystem, "client", None)
        assert getattr(infra.artifacts, "client", None) is client
        infra.close()


# --- the unit-run backends: local disk and in-process moto -------------------------------------


def local_backend(tmp_path: Path, style: str) -> Backend:
    store = tmp_path / "store"
    store.mkdir()
    root = store.as_uri() if style == "file" else str(store)
    config = InfraConfig(
        cloud_provider="local", local_data_dir=str(tmp_path / "data"), hf_user_fine_tuned_weights_prefix=f"{root}/ft"
    )

    def put_raw(key: str, data: bytes) -> None:
        path = store / key  # only names a filesystem can hold: a backslash is an ordinary character here
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)

    return Backend(f"local-{style}", build_infra(config), root, put_raw, hostile_keys=("a\\..\\x",))


def s3_backend(name: str, config: InfraConfig, root: str) -> Backend:
    """A backend on any S3 endpoint; artifacts use small transfer chunks so tests cover ranged GETs."""
    from boto3.s3.transfer import TransferConfig

    from model_engine_infra.storage.s3 import S3Artifacts

    bucket, folder = split_root(root)
    filesystem = build_infra(config).filesystem
    client = filesystem.client  # type: ignore[attr-defined]
    if bucket not in [b["Name"] for b in client.list_buckets().get("Buckets", [])]:
        client.create_bucket(Bucket=bucket)
    transfer = TransferConfig(multipart_threshold=2 * MIB, multipart_chunksize=1 * MIB, max_concurrency=8)
    artifacts = S3Artifacts(
        client, fine_tuned_weights_prefix=config.hf_user_fine_tuned_weights_prefix, transfer_config=transfer
    )
    infra = build_infra(config, overrides={"filesystem": filesystem, "artifacts": artifacts})

    def put_raw(key: str, data: bytes) -> None:
        client.put_object(Bucket=bucket, Key=f"{folder}/{key}", Body=data)

    return Backend(name, infra, root, put_raw)


def fresh_root(scheme: str, bucket: str) -> str:
    """A new folder per test, so tests share a bucket without seeing each other's objects."""
    return f"{scheme}://{bucket}/contract-{uuid.uuid4().hex[:12]}"


def split_root(root: str) -> tuple[str, str]:
    bucket, _, folder = root.split("://", 1)[1].partition("/")
    return bucket, folder


@pytest.fixture
def moto_s3() -> Iterator[None]:
    from moto import mock_aws

    with mock_aws():
        yield


class TestStorageContract(StorageContract):
    @pytest.fixture(params=["local-file", "local-path", "moto"])
    def backend(self, request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
        if request.param.startswith("local"):
            chosen = local_backend(tmp_path, request.param.removeprefix("local-"))
            yield chosen
            chosen.infra.close()
            return
        request.getfixturevalue("moto_s3")
        root = fresh_root("s3", "contract-bucket")
        config = InfraConfig(cloud_provider="aws", hf_user_fine_tuned_weights_prefix=f"{root}/ft")
        chosen = s3_backend("moto", config, root)
        yield chosen
        chosen.infra.close()
