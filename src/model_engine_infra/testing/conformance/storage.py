"""Conformance for stores: `FilesystemGateway` and `LLMArtifactGateway` together, as `Infra` serves them.

Subclass `StoreConformance` and provide a ``store_target`` fixture returning a `StoreTarget`: an
`Infra` whose ``filesystem`` and ``artifacts`` serve the store, a fresh folder URI for the test, and a
way to write an object with the store's own API (bypassing the gateway), used to plant hostile keys.

The second half builds targets for the project's own stores (local disk, S3 and S3-compatible).
"""

from __future__ import annotations

import os
import re
import urllib.parse
import urllib.request
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import pytest

from ...config.model import InfraConfig
from ...errors import (
    InvalidURIError,
    ObjectDecodeError,
    ObjectNotFoundError,
    ObjectTooLargeError,
    StorageError,
    UnsafeObjectKeyError,
)
from ...infra import Infra, build_infra

MIB = 1024 * 1024
# Several parts of the 8 MiB writers and several ranges of the 1-2 MiB test downloads.
MULTI_CHUNK = os.urandom(9 * MIB + 123)
HOSTILE_KEYS = ("../x", "a/../../x", "/etc/x", "a\\..\\x")


@dataclass
class StoreTarget:
    """One store under test. ``put_raw`` writes with the store's own API, bypassing our gateway."""

    name: str
    infra: Infra
    root: str  # a fresh folder URI for this test
    put_raw: Callable[[str, bytes], None]  # (key relative to root, bytes)
    hostile_keys: tuple[str, ...] = HOSTILE_KEYS  # the escaping keys this store can hold
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
    import requests

    if url.startswith("file:"):
        with urllib.request.urlopen(url) as answer:
            data: bytes = answer.read()
            return data
    answer = requests.get(url, timeout=30)
    assert answer.status_code == 200, (answer.status_code, answer.text[:300])
    return answer.content


def put(url: str, data: bytes, headers: dict[str, str]) -> None:
    import requests

    if url.startswith("file:"):
        Path(urllib.request.url2pathname(url.removeprefix("file://"))).write_bytes(data)
        return
    answer = requests.put(url, data=data, headers=headers, timeout=30)
    assert answer.status_code in (200, 201), (answer.status_code, answer.text[:300])


def write(store_target: StoreTarget, relative: str, data: bytes) -> str:
    uri = store_target.uri(relative)
    with store_target.fs.open(uri, "wb") as stream:
        stream.write(data)
    return uri


def write_then_fail(store_target: StoreTarget, uri: str) -> None:
    with store_target.fs.open(uri, "wb") as stream:
        stream.write(MULTI_CHUNK)
        raise RuntimeError("boom")


def files_under(folder: Path) -> list[str]:
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())


class StoreConformance:
    """The contract every store keeps. Provide a ``store_target`` fixture."""

    #: ``generate_signed_url`` gives URLs a plain HTTP client (or urllib, for file://) can GET and PUT
    supports_signed_urls: ClassVar[bool] = True

    @pytest.fixture
    def out(self, tmp_path: Path) -> Path:
        """A download target of its own (a local store keeps its objects in ``tmp_path``)."""
        return tmp_path / "out"

    # --- round trips ----------------------------------------------------------------------------
    def test_text_round_trip(self, store_target: StoreTarget) -> None:
        uri = store_target.uri("notes/readme.txt")
        with store_target.fs.open(uri, "w") as stream:
            stream.write("héllo wörld\nline two ✓\n")
        with store_target.fs.open(uri, "r") as stream:
            assert stream.read() == "héllo wörld\nline two ✓\n"
        with store_target.fs.open(uri, "r", encoding="latin-1") as stream:
            assert stream.read() == "héllo wörld\nline two ✓\n".encode().decode("latin-1")

    def test_text_read_of_bytes_that_are_not_utf8(self, store_target: StoreTarget) -> None:
        """A raw UnicodeDecodeError before: now the object and the fix ('rb' or encoding=) are named."""
        uri = store_target.uri("notes/latin1.txt")
        write(store_target, "notes/latin1.txt", "café\nzweite Zeile\n".encode("latin-1"))
        for read in (lambda s: s.read(), lambda s: s.readline(), lambda s: list(s), lambda s: s.readlines()):
            with store_target.fs.open(uri, "r") as stream, pytest.raises(ObjectDecodeError) as err:
                read(stream)
            assert "latin1.txt" in str(err.value)
            assert "'rb'" in str(err.value)
            assert "encoding=" in str(err.value)
            assert isinstance(err.value, StorageError)
            assert isinstance(err.value, ValueError)
        with store_target.fs.open(uri, "r", encoding="latin-1") as stream:
            assert stream.read() == "café\nzweite Zeile\n"
        with store_target.fs.open(uri, "r", errors="replace") as stream:
            assert stream.readline() == "caf\ufffd\n"

    def test_binary_round_trip_zero_byte_and_multi_chunk(self, store_target: StoreTarget) -> None:
        small = bytes(range(256)) * 3
        for name, data in (("small.bin", small), ("empty.bin", b""), ("big.bin", MULTI_CHUNK)):
            uri = write(store_target, name, data)
            with store_target.fs.open(uri, "rb") as stream:
                assert stream.read() == data, name
            assert store_target.fs.exists(uri)
        with store_target.fs.open(store_target.uri("big.bin"), "rb") as stream:  # chunked reads stream in pieces
            pieces = iter(lambda: stream.read(MIB), b"")
            assert b"".join(pieces) == MULTI_CHUNK

    def test_unicode_and_space_keys(self, store_target: StoreTarget, out: Path) -> None:
        names = ["dir with space/file name.txt", "ünï/çødé €.json", "odd/100%25 #1?.txt"]
        for i, name in enumerate(names):
            write(store_target, name, f"value {i}".encode())
        for i, name in enumerate(names):
            with store_target.fs.open(store_target.uri(name), "rb") as stream:
                assert stream.read() == f"value {i}".encode()
        assert sorted(store_target.fs.list(store_target.root)) == sorted(store_target.uri(n) for n in names)
        store_target.artifacts.download_files(store_target.root, out)
        assert files_under(out) == sorted(names)

    # --- listing ----------------------------------------------------------------------------------
    def test_listing_nested_prefixes_and_prefix_collision(self, store_target: StoreTarget) -> None:
        for name in ("models/llama/config.json", "models/llama/sub/deeper/w.bin", "models/llama-2/x.bin"):
            write(store_target, name, b"{}")
        expected = [store_target.uri("models/llama/config.json"), store_target.uri("models/llama/sub/deeper/w.bin")]
        assert sorted(store_target.fs.list(store_target.uri("models/llama"))) == expected
        assert sorted(store_target.fs.list(store_target.uri("models/llama/"))) == expected
        assert sorted(store_target.artifacts.list_files(store_target.uri("models/llama"))) == expected
        assert len(store_target.fs.list(store_target.uri("models"))) == 3
        assert store_target.fs.list(store_target.uri("models/llam")) == []
        assert store_target.fs.list(store_target.uri("nothing-here")) == []

    def test_download_folder_is_not_a_prefix(self, store_target: StoreTarget, out: Path) -> None:
        write(store_target, "models/llama/config.json", b'{"a": 1}')
        write(store_target, "models/llama/sub/w.bin", b"weights")
        write(store_target, "models/llama-2/other.bin", b"not me")
        paths = store_target.artifacts.download_files(store_target.uri("models/llama"), out / "out")
        assert sorted(Path(p).relative_to(out / "out").as_posix() for p in paths) == [
            "config.json",
            "sub/w.bin",
        ]
        assert files_under(out / "out") == ["config.json", "sub/w.bin"]
        assert (out / "out/sub/w.bin").read_bytes() == b"weights"

    def test_download_single_object_and_progress(self, store_target: StoreTarget, out: Path) -> None:
        uri = write(store_target, "one/model.safetensors", MULTI_CHUNK)
        seen: list[int] = []
        paths = store_target.artifacts.download_files(uri, out, progress=seen.append)
        assert paths == [str(out / "model.safetensors")]
        assert (out / "model.safetensors").read_bytes() == MULTI_CHUNK
        assert sum(seen) == len(MULTI_CHUNK)
        assert len(seen) > 1

    def test_parallel_download_of_many_files(self, store_target: StoreTarget, out: Path) -> None:
        blobs = {f"shard-{i:02d}.bin": os.urandom(1000 + i) for i in range(20)}
        blobs["big/multi.bin"] = MULTI_CHUNK[: 3 * MIB + 5]
        for name, data in blobs.items():
            write(store_target, name, data)
        store_target.artifacts.download_files(store_target.root, out, max_concurrency=6)
        assert files_under(out) == sorted(blobs)
        for name, data in blobs.items():
            assert (out / name).read_bytes() == data

    # --- missing objects and foreign URIs ------------------------------------------------------
    def test_missing_objects(self, store_target: StoreTarget, out: Path) -> None:
        missing = store_target.uri("no/such/object")
        with pytest.raises(ObjectNotFoundError):
            store_target.fs.open(missing, "rb")
        with pytest.raises(ObjectNotFoundError):
            store_target.fs.open(missing, "r")
        assert store_target.fs.exists(missing) is False
        store_target.fs.delete(missing)  # a no-op
        with pytest.raises(ObjectNotFoundError):
            store_target.artifacts.download_files(missing, out)
        with pytest.raises(ObjectNotFoundError):
            store_target.artifacts.get_model_config(store_target.uri("no/model"))
        assert store_target.artifacts.list_files(missing) == []
        assert not out.exists() or list(out.iterdir()) == []

    def test_delete(self, store_target: StoreTarget) -> None:
        uri = write(store_target, "gone.txt", b"x")
        store_target.fs.delete(uri)
        assert store_target.fs.exists(uri) is False
        assert store_target.fs.list(store_target.root) == []

    def test_foreign_and_malformed_uris(self, store_target: StoreTarget) -> None:
        for bad in (store_target.foreign_uri, "ftp://host/x", ""):
            with pytest.raises(InvalidURIError) as info:
                store_target.fs.open(bad, "rb")
            assert "accepts" in str(info.value)
        with pytest.raises(ValueError, match="mode"):
            store_target.fs.open(store_target.uri("x"), "a")

    # --- parallel uploads ------------------------------------------------------------------------
    def test_upload_files_round_trip(self, store_target: StoreTarget, tmp_path: Path, out: Path) -> None:
        local = tmp_path / "to-upload"
        blobs = {f"shard-{i:02d}.bin": os.urandom(1000 + i) for i in range(12)}
        blobs.update({"nested/dir with space/ünï €.json": b'{"a": 1}', "empty.bin": b"", "big/multi.bin": MULTI_CHUNK})
        for name, data in blobs.items():
            (local / name).parent.mkdir(parents=True, exist_ok=True)
            (local / name).write_bytes(data)
        (local / "link.bin").symlink_to(local / "empty.bin")  # links are skipped, as rclone does
        seen: list[int] = []
        target = store_target.uri("uploaded")
        uris = store_target.artifacts.upload_files(local, target, max_concurrency=4, progress=seen.append)
        assert sorted(uris) == sorted(store_target.uri(f"uploaded/{name}") for name in blobs)
        assert sum(seen) == sum(len(data) for data in blobs.values())
        assert sorted(o.key for o in store_target.artifacts.list_objects(target)) == sorted(blobs)
        store_target.artifacts.download_files(target, out)
        assert files_under(out) == sorted(blobs)
        for name, data in blobs.items():
            assert (out / name).read_bytes() == data, name

    def test_upload_a_single_file_to_a_name_or_into_a_folder(self, store_target: StoreTarget, tmp_path: Path) -> None:
        source = tmp_path / "weights.bin"
        source.write_bytes(b"w" * 5000)
        named = store_target.uri("one/renamed.bin")
        assert store_target.artifacts.upload_files(source, named) == [named]
        into = store_target.uri("two") + "/"
        assert store_target.artifacts.upload_files(source, into) == [store_target.uri("two/weights.bin")]
        for uri in (named, store_target.uri("two/weights.bin")):
            with store_target.fs.open(uri, "rb") as stream:
                assert stream.read() == b"w" * 5000
        with pytest.raises(ObjectNotFoundError, match="nothing to upload"):
            store_target.artifacts.upload_files(tmp_path / "missing", named)

    def test_failed_upload_leaves_no_object(self, store_target: StoreTarget, tmp_path: Path) -> None:
        source = tmp_path / "big.bin"
        source.write_bytes(MULTI_CHUNK)
        uri = store_target.uri("failed/big.bin")

        def fail(_: int) -> None:
            raise RuntimeError("stop the upload")

        with pytest.raises(RuntimeError, match="stop the upload"):
            store_target.artifacts.upload_files(source, uri, max_concurrency=2, progress=fail)
        assert store_target.fs.exists(uri) is False
        assert store_target.fs.list(store_target.uri("failed")) == []

    # --- writes: overwrite, failure, abandonment -------------------------------------------------
    def test_overwrite_replaces_and_failed_write_keeps_old(self, store_target: StoreTarget) -> None:
        uri = write(store_target, "cfg.json", b"version 1")
        write(store_target, "cfg.json", b"version 2, longer")
        with store_target.fs.open(uri, "rb") as stream:
            assert stream.read() == b"version 2, longer"
        with pytest.raises(RuntimeError):
            write_then_fail(store_target, uri)  # parts already sent
        with store_target.fs.open(uri, "rb") as stream:
            assert stream.read() == b"version 2, longer"

    def test_failed_or_abandoned_write_leaves_no_object(self, store_target: StoreTarget) -> None:
        failed, dropped, small = (
            store_target.uri("failed.bin"),
            store_target.uri("dropped.bin"),
            store_target.uri("small.txt"),
        )
        with pytest.raises(RuntimeError):
            write_then_fail(store_target, failed)
        stream = store_target.fs.open(dropped, "wb")
        stream.write(MULTI_CHUNK)
        del stream  # abandoned without close
        text = store_target.fs.open(small, "w")
        text.write("half")
        text.discard()
        for uri in (failed, dropped, small):
            assert store_target.fs.exists(uri) is False
        assert store_target.fs.list(store_target.root) == []

    def test_download_overwrite_semantics(self, store_target: StoreTarget, out: Path) -> None:
        write(store_target, "w/a.bin", b"remote-a")
        write(store_target, "w/b.bin", b"remote-b")
        out.mkdir()
        (out / "a.bin").write_bytes(b"local-a!")  # same size: taken as complete
        (out / "b.bin").write_bytes(b"short")  # different size: incomplete, replaced
        store_target.artifacts.download_files(store_target.uri("w"), out)
        assert (out / "a.bin").read_bytes() == b"local-a!"
        assert (out / "b.bin").read_bytes() == b"remote-b"
        store_target.artifacts.download_files(store_target.uri("w"), out, overwrite=True)
        assert (out / "a.bin").read_bytes() == b"remote-a"
        assert files_under(out) == ["a.bin", "b.bin"]

    # --- signed URLs --------------------------------------------------------------------------
    def test_signed_urls_fetch_and_upload(self, store_target: StoreTarget) -> None:
        uri = write(store_target, "signed/file name ü.bin", b"signed bytes")
        if not self.supports_signed_urls:
            with pytest.raises(StorageError, match=re.escape(uri)):
                store_target.fs.generate_signed_url(uri, expiration=600)
            return
        url = store_target.fs.generate_signed_url(uri, expiration=600)
        assert fetch(url) == b"signed bytes"
        target = store_target.uri("signed/put.bin")
        put(store_target.fs.generate_signed_url(target, method="PUT"), b"put bytes", store_target.put_headers)
        with store_target.fs.open(target, "rb") as stream:
            assert stream.read() == b"put bytes"
        with pytest.raises(ValueError, match="method"):
            store_target.fs.generate_signed_url(uri, method="DELETE")
        with pytest.raises(ValueError, match="expiration"):
            store_target.fs.generate_signed_url(uri, expiration=8 * 24 * 3600)

    # --- model artifacts ----------------------------------------------------------------------
    def test_model_config_and_fine_tuned_weights(self, store_target: StoreTarget) -> None:
        write(store_target, "hf/llama/config.json", b'{"model_type": "llama", "hidden_size": 4096}')
        assert store_target.artifacts.get_model_config(store_target.uri("hf/llama")) == {
            "model_type": "llama",
            "hidden_size": 4096,
        }
        write(store_target, "ft/alice/my-model/adapter.bin", b"w")
        write(store_target, "ft/alice/my-model-2/adapter.bin", b"w")
        assert store_target.artifacts.get_model_weights_urls("alice", "my-model") == [
            store_target.uri("ft/alice/my-model/adapter.bin")
        ]

    def test_model_config_is_read_whole_only_under_its_cap(
        self, store_target: StoreTarget, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """16 MiB in production (a 4 KiB cap here, to keep the test small); bad JSON is a StorageError."""
        from ...storage import base

        monkeypatch.setattr(base, "MAX_MODEL_CONFIG_BYTES", 4096)
        write(store_target, "big/config.json", b'{"pad": "' + b"x" * 8192 + b'"}')
        with pytest.raises(ObjectTooLargeError, match=r"config\.json") as err:
            store_target.artifacts.get_model_config(store_target.uri("big"))
        assert isinstance(err.value, StorageError)
        write(store_target, "edge/config.json", b'{"a": "' + b"x" * (4096 - 10) + b'"}')  # exactly the cap
        assert len(store_target.artifacts.get_model_config(store_target.uri("edge"))["a"]) == 4096 - 10
        write(store_target, "empty/config.json", b"")
        for name, body in (("empty", b""), ("deep", b"[" * 3_000), ("latin", '{"é": 1}'.encode("latin-1"))):
            if body:
                write(store_target, f"{name}/config.json", body)
            with pytest.raises(StorageError, match="not valid JSON"):
                store_target.artifacts.get_model_config(store_target.uri(name))

    # --- safety ---------------------------------------------------------------------------------
    def test_hostile_keys_write_nothing(self, store_target: StoreTarget, out: Path) -> None:
        target = out / "deep" / "target"
        for i, key in enumerate(store_target.hostile_keys):
            folder = f"hostile-{i}"
            store_target.put_raw(f"{folder}/fine.txt", b"fine")
            store_target.put_raw(f"{folder}/{key}", b"evil")
            with pytest.raises(UnsafeObjectKeyError):
                store_target.artifacts.download_files(store_target.uri(folder), target)
        assert [p for p in out.rglob("*") if p.is_file()] == []  # rglob of a missing folder is empty
        assert not (out / "x").exists()
        assert not (out / "deep" / "x").exists()

    def test_factories_share_one_client(self, store_target: StoreTarget) -> None:
        infra = build_infra(store_target.infra.config)
        client = getattr(infra.filesystem, "client", None)
        assert getattr(infra.artifacts, "client", None) is client
        infra.close()


# --- the project's own stores: target builders ---------------------------------------------------


def local_store_target(tmp_path: Path, style: str) -> StoreTarget:
    """Local disk under ``tmp_path``, addressed by ``file://`` URIs (``style="file"``) or plain paths."""
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

    return StoreTarget(f"local-{style}", build_infra(config), root, put_raw, hostile_keys=("a\\..\\x",))


def s3_store_target(name: str, config: InfraConfig, root: str) -> StoreTarget:
    """S3 (any endpoint ``config`` names); artifacts use 1 MiB parts so tests cover ranged GETs."""
    from ...storage.s3 import S3Artifacts
    from ...storage.transfer import TransferSettings

    bucket, folder = split_root(root)
    filesystem = build_infra(config).filesystem
    client = filesystem.client  # type: ignore[attr-defined]
    if bucket not in [b["Name"] for b in client.list_buckets().get("Buckets", [])]:
        client.create_bucket(Bucket=bucket)
    transfer = TransferSettings(max_concurrency=8, part_size=MIB)
    artifacts = S3Artifacts(
        client, fine_tuned_weights_prefix=config.hf_user_fine_tuned_weights_prefix, transfer=transfer
    )
    infra = build_infra(config, overrides={"filesystem": filesystem, "artifacts": artifacts})

    def put_raw(key: str, data: bytes) -> None:
        client.put_object(Bucket=bucket, Key=f"{folder}/{key}", Body=data)

    return StoreTarget(name, infra, root, put_raw)


def fresh_root(scheme: str, bucket: str) -> str:
    """A new folder per test, so tests share a bucket without seeing each other's objects."""
    return f"{scheme}://{bucket}/contract-{uuid.uuid4().hex[:12]}"


def split_root(root: str) -> tuple[str, str]:
    bucket, _, folder = root.split("://", 1)[1].partition("/")
    return bucket, folder
