"""The download engine's planner, its config keys, and its one pool of requests (files and parts together)."""

from __future__ import annotations

import base64
import io
import threading
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO

import pytest

from model_engine_infra import InfraConfig, load_config
from model_engine_infra.errors import ConfigError, StorageError, StorageUnavailableError
from model_engine_infra.storage.base import LLMArtifactGateway, ObjectInfo
from model_engine_infra.storage.transfer import (
    MIB,
    RangeReader,
    RangeSink,
    TransferSettings,
    plan_parts,
)
from model_engine_infra.storage.uploads import UploadItem

GIB = 1024 * MIB


# --- the planner ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("size", "concurrency", "parts", "part"),
    [
        (GIB, 16, 8, 128 * MIB),  # the case: 8 GETs of 128 MiB, not 128 of 8 MiB
        (128 * MIB, 16, 8, 16 * MIB),  # at most 8 streams per object
        (512 * MIB, 16, 8, 64 * MIB),
        (10 * GIB, 16, 80, 128 * MIB),  # at most 128 MiB
        (GIB, 4, 8, 128 * MIB),  # fewer connections: still capped at 128 MiB
        (256 * MIB, 4, 4, 64 * MIB),
        (100 * MIB, 3, 3, 34 * MIB),  # rounded up to a MiB
        (12 * MIB, 16, 2, 8 * MIB),  # never below 8 MiB
        (4 * MIB, 16, 1, 4 * MIB),  # a small object is one request
        (8 * MIB, 16, 1, 8 * MIB),
    ],
)
def test_parts_adapt_to_the_object_size(size: int, concurrency: int, parts: int, part: int) -> None:
    ranges = plan_parts(size, concurrency, TransferSettings())
    assert len(ranges) == parts
    assert ranges[0] == (0, min(part, size))
    assert all(stop - start == part for start, stop in ranges[:-1])
    assert [start for start, _ in ranges[1:]] == [stop for _, stop in ranges[:-1]]  # contiguous
    assert ranges[-1][1] == size


def test_an_empty_object_is_one_empty_range() -> None:
    assert plan_parts(0, 16, TransferSettings()) == [(0, 0)]


def test_a_configured_part_size_is_used_as_is() -> None:
    settings = TransferSettings.from_config(InfraConfig(storage_part_size_mb=256, storage_max_concurrency=4))
    assert settings.max_concurrency == 4
    assert plan_parts(GIB, 4, settings) == [(i * 256 * MIB, (i + 1) * 256 * MIB) for i in range(4)]
    assert plan_parts(GIB, 16, settings) == plan_parts(GIB, 4, settings)  # fixed: not by concurrency
    assert plan_parts(200 * MIB, 16, settings) == [(0, 200 * MIB)]  # no larger than one part: one request
    small = TransferSettings.from_config(InfraConfig(storage_part_size_mb=5))
    assert plan_parts(12 * MIB, 16, small) == [(0, 5 * MIB), (5 * MIB, 10 * MIB), (10 * MIB, 12 * MIB)]


def test_defaults_are_the_config_defaults() -> None:
    assert TransferSettings.from_config(InfraConfig()) == TransferSettings()


# --- the config keys ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("storage_max_concurrency", 0),
        ("storage_max_concurrency", 1000),
        ("storage_max_concurrency", "lots"),
        ("storage_part_size_mb", 4),  # below S3's 5 MiB part
        ("storage_part_size_mb", 10_000),
        ("storage_part_size_mb", -1),
    ],
)
def test_bad_transfer_values_name_the_key(tmp_path: Path, key: str, value: object) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(f"cloud_provider: aws\n{key}: {value}\n")
    with pytest.raises(ConfigError) as info:
        load_config(path, env={})
    assert info.value.key is not None
    assert key in info.value.key
    assert key in str(info.value)


def test_transfer_keys_from_helm_values_and_env(tmp_path: Path) -> None:
    path = tmp_path / "values.yaml"
    path.write_text("config:\n  values:\n    infra:\n      cloud_provider: local\n      storage_part_size_mb: 128\n")
    config = load_config(path, env={"MODEL_ENGINE_INFRA_STORAGE_MAX_CONCURRENCY": "32"})
    assert (config.storage_part_size_mb, config.storage_max_concurrency) == (128, 32)
    with pytest.raises(ConfigError) as info:
        load_config(path, env={"MODEL_ENGINE_INFRA_STORAGE_MAX_CONCURRENCY": "0"})
    assert "MODEL_ENGINE_INFRA_STORAGE_MAX_CONCURRENCY" in str(info.value)


@pytest.mark.parametrize("store", ["s3", "az", "gs"])
def test_object_stores_declare_the_transfer_keys(store: str) -> None:
    from model_engine_infra.registry import backend_keys

    assert {"storage_max_concurrency", "storage_part_size_mb"} <= set(backend_keys("store", store))


def test_a_call_may_not_ask_for_no_concurrency() -> None:
    with pytest.raises(StorageError, match="max_concurrency"):
        TransferSettings().concurrency(0)
    with pytest.raises(ConfigError, match="storage_max_concurrency"):
        TransferSettings(max_concurrency=0)


# --- the engine: one pool for files and parts ---------------------------------------------------------------


class MemoryRanges(LLMArtifactGateway):
    """A ranged store in memory that records every request (its range and the thread serving it)."""

    def __init__(self, blobs: dict[str, bytes], settings: TransferSettings, block: int = 64 * 1024) -> None:
        super().__init__(fine_tuned_weights_prefix="mem://ft", transfer=settings)
        self.blobs = blobs
        self.block = block
        self.requests: list[tuple[str, int, int, str]] = []
        self.in_flight = 0
        self.peak = 0
        self._lock = threading.Lock()
        self.cut_once: set[str] = set()  # keys whose first request breaks half-way
        self.fail: set[str] = set()  # keys whose every request fails
        self.extra: set[str] = set()  # keys whose server ignores the range

    def _iter_objects(self, folder_uri: str) -> Iterator[ObjectInfo]:
        for key, data in sorted(self.blobs.items()):
            yield ObjectInfo(f"mem://b/{key}", key, len(data), "v1")

    def _object_size(self, uri: str) -> int | None:
        return None

    def _download_object(self, obj: ObjectInfo, fileobj: BinaryIO, progress: Any) -> None:
        raise AssertionError("a ranged store's downloads go through _read_range")

    def _read_bytes(self, uri: str) -> bytes:
        return b""

    def _upload_object(self, item: UploadItem, part_concurrency: int, progress: Any) -> None:
        raise AssertionError("not used")

    def _range_reader(self) -> RangeReader:
        return self._read_range

    def _read_range(self, obj: ObjectInfo, start: int, stop: int, sink: RangeSink) -> None:
        with self._lock:
            self.requests.append((obj.key, start, stop, threading.current_thread().name))
            self.in_flight += 1
            self.peak = max(self.peak, self.in_flight)
        try:
            data = self.blobs[obj.uri.removeprefix("mem://b/")]
            if obj.key in self.fail:
                raise StorageUnavailableError(f"{obj.uri}: connection refused")
            if obj.key in self.extra:
                start, stop = 0, len(data)
            end = stop
            if obj.key in self.cut_once:
                self.cut_once.discard(obj.key)
                end = start + (stop - start) // 2
            for offset in range(start, end, self.block):
                sink.write(data[offset : min(offset + self.block, end)])
                threading.Event().wait(0.001)  # let the other requests run
            if end != stop:
                raise StorageUnavailableError(f"{obj.uri}: connection reset")
        finally:
            with self._lock:
                self.in_flight -= 1


def blobs(big: int, small: int, count: int) -> dict[str, bytes]:
    found = {f"small/{i:02d}.bin": bytes([i]) * small for i in range(count)}
    found["big.bin"] = bytes(range(256)) * (big // 256)
    return found


def settings(concurrency: int) -> TransferSettings:
    return TransferSettings(max_concurrency=concurrency, min_part_size=256 * 1024, max_part_size=MIB)


def test_files_and_parts_share_one_pool(tmp_path: Path) -> None:
    store = MemoryRanges(blobs(4 * MIB, 100_000, 12), settings(4))
    progress: list[int] = []
    paths = store.download_files("mem://b/", tmp_path, progress=progress.append)
    assert len(paths) == 13
    for key, data in store.blobs.items():
        assert (tmp_path / key).read_bytes() == data
    big_parts = sorted((start, stop) for key, start, stop, _ in store.requests if key == "big.bin")
    assert big_parts == [(i * MIB, (i + 1) * MIB) for i in range(4)]  # 4 MiB over 4 connections
    # Whole files are read by the thread that lands them, parts by the request threads: one budget of
    # 4 requests in flight holds for both.
    threads = {name for *_, name in store.requests}
    assert {name.split("_")[0] for name in threads} == {"download", "landing"}
    assert store.peak == 4
    assert sum(progress) == sum(len(data) for data in store.blobs.values())


def test_a_single_small_file_is_read_in_the_callers_thread(tmp_path: Path) -> None:
    """No thread is started for one request: the download costs the caller nothing but its block."""
    store = MemoryRanges({"one.bin": b"x" * 100_000}, settings(8))
    store.download_files("mem://b/", tmp_path)
    assert [name for *_, name in store.requests] == [threading.current_thread().name]
    assert (tmp_path / "one.bin").read_bytes() == b"x" * 100_000


def test_the_call_overrides_the_configured_concurrency(tmp_path: Path) -> None:
    store = MemoryRanges(blobs(2 * MIB, 300_000, 6), settings(8))
    store.download_files("mem://b/", tmp_path, max_concurrency=2)
    assert store.peak == 2
    assert sum(1 for key, *_ in store.requests if key == "big.bin") == 2  # parts follow the call's concurrency


def test_a_cut_part_resumes_where_it_stopped(tmp_path: Path) -> None:
    store = MemoryRanges(blobs(4 * MIB, 10, 1), settings(4))
    store.cut_once = {"big.bin"}
    store.download_files("mem://b/", tmp_path)
    assert (tmp_path / "big.bin").read_bytes() == store.blobs["big.bin"]
    first, *rest = [(start, stop) for key, start, stop, _ in store.requests if key == "big.bin"]
    resumed = [r for r in rest if r[1] == first[1] and r[0] != first[0]]
    assert resumed == [(first[0] + (first[1] - first[0]) // 2, first[1])]


def test_a_part_that_keeps_failing_stops_the_download_and_leaves_no_partial(tmp_path: Path) -> None:
    store = MemoryRanges(blobs(4 * MIB, 10, 3), settings(2))
    store.fail = {"big.bin"}
    with pytest.raises(StorageUnavailableError, match=r"big\.bin"):
        store.download_files("mem://b/", tmp_path)
    assert sum(1 for key, *_ in store.requests if key == "big.bin") >= 3  # retried before giving up
    assert not any(p.name.endswith(".partial") for p in tmp_path.rglob("*"))
    assert not (tmp_path / "big.bin").exists()


def test_a_server_that_ignores_the_range_is_refused(tmp_path: Path) -> None:
    store = MemoryRanges(blobs(4 * MIB, 10, 1), settings(4))
    store.extra = {"big.bin"}
    with pytest.raises(StorageError, match="more bytes than the range"):
        store.download_files("mem://b/", tmp_path)
    assert not (tmp_path / "big.bin").exists()
    assert not any(p.name.endswith(".partial") for p in tmp_path.rglob("*"))


def test_download_objects_of_one_object_goes_in_parts(tmp_path: Path) -> None:
    """What `storage cp` uses for a single large object: the same parts as a folder download."""
    store = MemoryRanges(blobs(4 * MIB, 10, 0), settings(4))
    (obj,) = store.list_objects("mem://b/")
    store.download_objects([ObjectInfo(obj.uri, "renamed.bin", obj.size, obj.version)], tmp_path)
    assert (tmp_path / "renamed.bin").read_bytes() == store.blobs["big.bin"]
    assert len(store.requests) == 4


def test_small_pieces_are_gathered_before_each_write(tmp_path: Path) -> None:
    """GCS hands over 8 KiB pieces: they reach the file (and progress) 64 KiB at a time."""
    import os

    reports: list[int] = []
    with open(tmp_path / "f", "wb") as out:
        sink = RangeSink(out.fileno(), 0, MIB + 5, "mem://x", reports.append, ())
        data = os.urandom(MIB + 5)
        for offset in range(0, len(data), 8192):
            sink.write(data[offset : offset + 8192])
        sink.flush()
    assert (tmp_path / "f").read_bytes() == data
    assert reports == [64 * 1024] * 16 + [5]


def test_pieces_of_a_block_or_more_are_written_as_they_come(tmp_path: Path) -> None:
    """Azure and S3 hand 64 KiB or more: written at once, after whatever small pieces came first."""
    reports: list[int] = []
    data = bytes(range(256)) * 1024
    with open(tmp_path / "f", "wb") as out:
        sink = RangeSink(out.fileno(), 0, len(data), "mem://x", reports.append, ())
        sink.write(data[:100])
        sink.write(data[100 : 100 + 128 * 1024])
        sink.write(data[100 + 128 * 1024 :])
        sink.flush()
    assert (tmp_path / "f").read_bytes() == data
    assert reports == [100, 128 * 1024, len(data) - 100 - 128 * 1024]


# --- Azure: ranges stream through the SDK's generated operation --------------------------------------------


def test_azure_ranges_stream_through_the_sdks_download_operation() -> None:
    """The installed SDK still has the operation `_stream_range` streams with (else it would buffer chunks)."""
    from azure.storage.blob import BlobClient

    blob = BlobClient("https://acct.blob.core.windows.net", "c", "b")
    assert callable(blob._client.blob.download)


def test_azure_ranges_fall_back_to_download_blob_without_it() -> None:
    from model_engine_infra.storage.abs import _stream_range

    calls: list[dict[str, Any]] = []

    class Downloader:
        def chunks(self) -> Iterator[bytes]:
            yield b"ab"
            yield b"c"

    class OldBlob:  # an SDK without BlobClient._client.blob.download
        def download_blob(self, **options: Any) -> Downloader:
            calls.append(options)
            return Downloader()

    assert b"".join(_stream_range(OldBlob(), 5, 8, False, '"etag"')) == b"abc"
    assert calls[0]["offset"] == 5
    assert calls[0]["length"] == 3
    assert calls[0]["etag"] == '"etag"'


# --- S3: the socket read and its checks ----------------------------------------------------------


class _Crc32:
    """botocore's checksum interface (update, b64digest) over zlib."""

    def __init__(self) -> None:
        self.value = 0

    def update(self, data: Any) -> None:
        self.value = zlib.crc32(data, self.value)

    def b64digest(self) -> str:
        return base64.b64encode(self.value.to_bytes(4, "big")).decode()


class _Body:
    def __init__(self, checksum: _Crc32 | None) -> None:
        self.checksum = checksum
        self.released = 0
        self._raw_stream = self

    def release_conn(self) -> None:
        self.released += 1


def _reader(data: bytes) -> Any:
    stream = io.BytesIO(data)
    return stream.readinto


def _sink_into(path: Path, size: int) -> tuple[Any, RangeSink]:
    handle = open(path, "wb")  # noqa: SIM115 - closed by the caller
    return handle, RangeSink(handle.fileno(), 0, size, "s3://b/k", None, ())


def _headers(value: str) -> dict[str, Any]:
    return {"ContentLength": 3 * MIB, "ResponseMetadata": {"HTTPHeaders": {"x-amz-checksum-crc32": value}}}


@pytest.mark.parametrize("with_checksum", [True, False])
def test_s3_socket_read_lands_the_body_and_checks_its_crc32(tmp_path: Path, with_checksum: bool) -> None:
    from model_engine_infra.storage.s3 import _read_socket

    data = bytes(range(256)) * (3 * MIB // 256)
    body = _Body(_Crc32() if with_checksum else None)
    right = base64.b64encode(zlib.crc32(data).to_bytes(4, "big")).decode()
    handle, sink = _sink_into(tmp_path / "f", len(data))
    with handle:
        _read_socket(_reader(data), body, _headers(right), sink, "s3://b/k")
        sink.flush()
    assert (tmp_path / "f").read_bytes() == data
    assert body.released == 1  # the connection went back to the pool


def test_s3_socket_read_refuses_bytes_that_do_not_match_the_checksum(tmp_path: Path) -> None:
    from model_engine_infra.storage.s3 import _read_socket

    data = b"x" * (3 * MIB)
    handle, sink = _sink_into(tmp_path / "f", len(data))
    with handle, pytest.raises(StorageError, match=r"s3://b/k: the bytes read do not match the object's checksum"):
        _read_socket(_reader(data), _Body(_Crc32()), _headers("AAAAAA=="), sink, "s3://b/k")


def test_s3_socket_read_that_ends_early_is_a_cut_connection(tmp_path: Path) -> None:
    """http.client's ``readinto`` ends quietly when the server goes away; the count catches it."""
    from model_engine_infra.storage.s3 import _errors, _read_socket

    short = b"x" * MIB
    handle, sink = _sink_into(tmp_path / "f", 3 * MIB)
    client = type("Client", (), {"meta": type("Meta", (), {"endpoint_url": "http://127.0.0.1:9"})()})()
    with handle, pytest.raises(StorageUnavailableError, match="IncompleteRead"), _errors("s3://b/k", client):
        _read_socket(_reader(short), _Body(None), _headers(""), sink, "s3://b/k")
    assert sink.position == MIB  # what arrived is kept for the resume
