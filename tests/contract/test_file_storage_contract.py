"""One contract for `infra.file_storage` on every store: local disk and S3 (in-process moto) here;
integration/test_file_storage_servers.py runs the same class on moto server (AWS and the MinIO
path), Azurite and fake-gcs-server.

Each target can also write and read objects *behind* the gateway, at ``{prefix}/{owner}/{file_id}``
— llm-engine's own key layout — so the suite checks that files written by either are found by the
other, and that no owner ever sees or reaches another owner's files.
"""

from __future__ import annotations

import asyncio
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
import requests

from model_engine_infra import InfraConfig, build_infra
from model_engine_infra.errors import InvalidFileIdError, StorageError
from model_engine_infra.infra import Infra
from model_engine_infra.storage.files import FileMetadata, StoreFileStorage

TEXT = '{"prompt": "héllo wörld"}\n'
# Names that try to leave an owner's folder or are not names at all; every method refuses each.
ESCAPES = [
    "",
    ".",
    "..",
    "../other",
    "a/b",
    "/abs",
    "a\\b",
    "..\\x",
    "%2F",
    "a%2fb",
    "%2e%2e",
    "%252F",
    "a%5Cb",
    "x\x00y",
    "%00",
    "line\nbreak",
    "trailing.",
    "x" * 256,
]


@dataclass
class FileTarget:
    """A file storage plus raw access to its store, to check the gateway against what is stored."""

    name: str
    infra: Infra
    #: write bytes at ``{prefix}/{relative}`` without the gateway
    put_raw: Callable[[str, bytes], None]
    #: read bytes at ``{prefix}/{relative}`` without the gateway (None when missing)
    get_raw: Callable[[str], bytes | None]

    @property
    def files(self) -> StoreFileStorage:
        storage = self.infra.file_storage
        assert isinstance(storage, StoreFileStorage)
        return storage


def fetch(url: str) -> bytes:
    if url.startswith("file:"):
        with urllib.request.urlopen(url) as answer:
            data: bytes = answer.read()
            return data
    answer = requests.get(url, timeout=30)
    assert answer.status_code == 200, (answer.status_code, answer.text[:300])
    return answer.content


def owner() -> str:
    return f"user-{uuid.uuid4().hex[:10]}"


class FileStorageContract:
    """Subclass with a ``target`` fixture returning a `FileTarget`."""

    async def test_upload_returns_the_filename_and_reads_back(self, target: FileTarget) -> None:
        who = owner()
        before = datetime.now(timezone.utc) - timedelta(minutes=5)
        file_id = await target.files.upload_file(who, "train data.jsonl", TEXT.encode())
        assert file_id == "train data.jsonl"
        assert await target.files.get_file_content(who, file_id) == TEXT
        meta = await target.files.get_file(who, file_id)
        assert meta is not None
        assert (meta.id, meta.filename, meta.owner, meta.size) == (file_id, file_id, who, len(TEXT.encode()))
        assert meta.updated_at is not None
        assert before <= meta.updated_at <= datetime.now(timezone.utc) + timedelta(minutes=5)

    async def test_missing_files_are_none_and_delete_says_false(self, target: FileTarget) -> None:
        who = owner()
        assert await target.files.get_file(who, "nope.txt") is None
        assert await target.files.get_file_content(who, "nope.txt") is None
        assert await target.files.get_file_bytes(who, "nope.txt") is None
        assert await target.files.get_url_from_id(who, "nope.txt") is None
        assert await target.files.delete_file(who, "nope.txt") is False
        assert await target.files.list_files(who) == []

    async def test_upload_replaces_and_delete_removes(self, target: FileTarget) -> None:
        who = owner()
        await target.files.upload_file(who, "f.txt", b"one")
        await target.files.upload_file(who, "f.txt", b"second")
        assert await target.files.get_file_content(who, "f.txt") == "second"
        assert await target.files.delete_file(who, "f.txt") is True
        assert await target.files.get_file(who, "f.txt") is None
        assert target.get_raw(f"{who}/f.txt") is None

    async def test_binary_and_empty_files(self, target: FileTarget) -> None:
        who = owner()
        data = bytes(range(256)) * 4
        await target.files.upload_file(who, "blob.bin", data)
        await target.files.upload_file(who, "empty", b"")
        assert await target.files.get_file_bytes(who, "blob.bin") == data
        with pytest.raises(StorageError, match="not UTF-8"):
            await target.files.get_file_content(who, "blob.bin")
        assert await target.files.get_file_content(who, "empty") == ""
        meta = await target.files.get_file(who, "empty")
        assert meta is not None
        assert meta.size == 0

    async def test_list_shows_the_owners_files_only(self, target: FileTarget) -> None:
        base = owner()
        neighbour = base + "x"  # llm-engine listed Prefix=owner, so "a" also saw "ax"'s files
        await target.files.upload_file(base, "b.txt", b"b")
        await target.files.upload_file(base, "a.txt", b"aa")
        await target.files.upload_file(neighbour, "secret.txt", b"s")
        target.put_raw(f"{base}/nested/deeper.txt", b"n")  # not a file id of this layout
        listed = await target.files.list_files(base)
        assert [(f.id, f.size, f.owner) for f in listed] == [("a.txt", 2, base), ("b.txt", 1, base)]
        assert all(isinstance(f, FileMetadata) and f.updated_at is not None for f in listed)
        assert [f.id for f in await target.files.list_files(neighbour)] == ["secret.txt"]

    async def test_files_written_by_llm_engines_layout_are_found_and_vice_versa(self, target: FileTarget) -> None:
        who = owner()
        target.put_raw(f"{who}/theirs.jsonl", TEXT.encode())
        assert await target.files.get_file_content(who, "theirs.jsonl") == TEXT
        assert [f.id for f in await target.files.list_files(who)] == ["theirs.jsonl"]
        await target.files.upload_file(who, "ours.jsonl", b"ours")
        assert target.get_raw(f"{who}/ours.jsonl") == b"ours"

    async def test_url_fetches_the_file(self, target: FileTarget) -> None:
        who = owner()
        await target.files.upload_file(who, "u.txt", TEXT.encode())
        url = await target.files.get_url_from_id(who, "u.txt")
        assert url is not None
        assert await asyncio.to_thread(fetch, url) == TEXT.encode()

    @pytest.mark.parametrize("bad", ESCAPES)
    async def test_escaping_names_are_refused_everywhere(self, target: FileTarget, bad: str) -> None:
        who = owner()
        files = target.files
        calls = [
            lambda: files.upload_file(who, bad, b"x"),
            lambda: files.upload_file(bad, "f.txt", b"x"),
            lambda: files.get_file(who, bad),
            lambda: files.get_file(bad, "f.txt"),
            lambda: files.get_file_content(who, bad),
            lambda: files.get_url_from_id(bad, "f.txt"),
            lambda: files.delete_file(who, bad),
            lambda: files.list_files(bad),
        ]
        for call in calls:
            with pytest.raises(InvalidFileIdError):
                await call()
        assert await files.list_files(who) == []

    async def test_the_gateway_is_closed_with_infra(self, target: FileTarget) -> None:
        from model_engine_infra.errors import InfraClosedError

        files = target.files
        await target.infra.aclose()
        with pytest.raises(InfraClosedError):
            await files.get_file(owner(), "f.txt")


# --- in-process targets ----------------------------------------------------------------------------------


def local_target(tmp_path: Path) -> FileTarget:
    infra = build_infra(InfraConfig(cloud_provider="local", local_data_dir=str(tmp_path / "data")))
    root = Path(infra.file_storage.prefix)  # type: ignore[attr-defined]

    def put_raw(relative: str, data: bytes) -> None:
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)

    def get_raw(relative: str) -> bytes | None:
        path = root / relative
        return path.read_bytes() if path.is_file() else None

    return FileTarget("local", infra, put_raw, get_raw)


def s3_target(config: InfraConfig, *, client: Any | None = None) -> FileTarget:
    """S3 at ``config`` with the default prefix, s3://{s3_bucket}: llm-engine's exact keys."""
    infra = build_infra(config)
    raw = client or infra.filesystem.client  # type: ignore[attr-defined]
    bucket = config.s3_bucket
    if bucket not in [b["Name"] for b in raw.list_buckets().get("Buckets", [])]:
        raw.create_bucket(Bucket=bucket)
    assert infra.file_storage.prefix == f"s3://{bucket}"  # type: ignore[attr-defined]

    def put_raw(relative: str, data: bytes) -> None:
        raw.put_object(Bucket=bucket, Key=relative, Body=data)

    def get_raw(relative: str) -> bytes | None:
        try:
            return bytes(raw.get_object(Bucket=bucket, Key=relative)["Body"].read())
        except raw.exceptions.NoSuchKey:
            return None

    return FileTarget("s3", infra, put_raw, get_raw)


@pytest.fixture(params=["local", "s3"])
def target(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[FileTarget]:
    if request.param == "local":
        built = local_target(tmp_path)
        yield built
    else:
        from moto import mock_aws

        with mock_aws():
            built = s3_target(InfraConfig(cloud_provider="aws", default_region="us-east-1", s3_bucket="files-bucket"))
            yield built
    built.infra.close()


class TestFileStorageContract(FileStorageContract):
    """The contract on local disk and in-process moto."""
