"""Conformance for user files (`infra.file_storage`, a `FileStorageGateway` over a store).

Subclass `FileStorageConformance` and provide a ``file_storage_target`` fixture returning a
`FileStorageTarget`: an `Infra` whose ``file_storage`` is under test, plus a way to write and read
objects *behind* the gateway at ``{prefix}/{owner}/{file_id}`` (llm-engine's own key layout), so the
suite checks that files written by either are found by the other, and that no owner ever sees or
reaches another owner's files.

The second half builds targets for the project's own stores (local disk, S3 and S3-compatible);
integration/test_file_storage_servers.py adds Azurite and fake-gcs-server.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from ...config.model import InfraConfig
from ...errors import InfraClosedError, InvalidFileIdError, StorageError
from ...infra import Infra, build_infra
from ...storage.files import FileMetadata, StoreFileStorage
from .storage import fetch

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
class FileStorageTarget:
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


def owner() -> str:
    return f"user-{uuid.uuid4().hex[:10]}"


class FileStorageConformance:
    """The contract of user files on every store. Provide a ``file_storage_target`` fixture.

    No capability flags: every store keeps the same contract (names, isolation, listing, URLs).
    """

    @pytest.mark.asyncio
    async def test_upload_returns_the_filename_and_reads_back(self, file_storage_target: FileStorageTarget) -> None:
        files, who = file_storage_target.files, owner()
        before = datetime.now(timezone.utc) - timedelta(minutes=5)
        file_id = await files.upload_file(who, "train data.jsonl", TEXT.encode())
        assert file_id == "train data.jsonl"
        assert await files.get_file_content(who, file_id) == TEXT
        meta = await files.get_file(who, file_id)
        assert meta is not None
        assert (meta.id, meta.filename, meta.owner, meta.size) == (file_id, file_id, who, len(TEXT.encode()))
        assert meta.updated_at is not None
        assert before <= meta.updated_at <= datetime.now(timezone.utc) + timedelta(minutes=5)

    @pytest.mark.asyncio
    async def test_missing_files_are_none_and_delete_says_false(self, file_storage_target: FileStorageTarget) -> None:
        files, who = file_storage_target.files, owner()
        assert await files.get_file(who, "nope.txt") is None
        assert await files.get_file_content(who, "nope.txt") is None
        assert await files.get_file_bytes(who, "nope.txt") is None
        assert await files.get_url_from_id(who, "nope.txt") is None
        assert await files.delete_file(who, "nope.txt") is False
        assert await files.list_files(who) == []

    @pytest.mark.asyncio
    async def test_upload_replaces_and_delete_removes(self, file_storage_target: FileStorageTarget) -> None:
        files, who = file_storage_target.files, owner()
        await files.upload_file(who, "f.txt", b"one")
        await files.upload_file(who, "f.txt", b"second")
        assert await files.get_file_content(who, "f.txt") == "second"
        assert await files.delete_file(who, "f.txt") is True
        assert await files.get_file(who, "f.txt") is None
        assert file_storage_target.get_raw(f"{who}/f.txt") is None

    @pytest.mark.asyncio
    async def test_binary_and_empty_files(self, file_storage_target: FileStorageTarget) -> None:
        files, who = file_storage_target.files, owner()
        data = bytes(range(256)) * 4
        await files.upload_file(who, "blob.bin", data)
        await files.upload_file(who, "empty", b"")
        assert await files.get_file_bytes(who, "blob.bin") == data
        with pytest.raises(StorageError, match="not UTF-8"):
            await files.get_file_content(who, "blob.bin")
        assert await files.get_file_content(who, "empty") == ""
        meta = await files.get_file(who, "empty")
        assert meta is not None
        assert meta.size == 0

    @pytest.mark.asyncio
    async def test_list_shows_the_owners_files_only(self, file_storage_target: FileStorageTarget) -> None:
        files, base = file_storage_target.files, owner()
        neighbour = base + "x"  # llm-engine listed Prefix=owner, so "a" also saw "ax"'s files
        await files.upload_file(base, "b.txt", b"b")
        await files.upload_file(base, "a.txt", b"aa")
        await files.upload_file(neighbour, "secret.txt", b"s")
        file_storage_target.put_raw(f"{base}/nested/deeper.txt", b"n")  # not a file id of this layout
        listed = await files.list_files(base)
        assert [(f.id, f.size, f.owner) for f in listed] == [("a.txt", 2, base), ("b.txt", 1, base)]
        assert all(isinstance(f, FileMetadata) and f.updated_at is not None for f in listed)
        assert [f.id for f in await files.list_files(neighbour)] == ["secret.txt"]

    @pytest.mark.asyncio
    async def test_files_written_by_llm_engines_layout_are_found_and_vice_versa(
        self, file_storage_target: FileStorageTarget
    ) -> None:
        files, who = file_storage_target.files, owner()
        file_storage_target.put_raw(f"{who}/theirs.jsonl", TEXT.encode())
        assert await files.get_file_content(who, "theirs.jsonl") == TEXT
        assert [f.id for f in await files.list_files(who)] == ["theirs.jsonl"]
        await files.upload_file(who, "ours.jsonl", b"ours")
        assert file_storage_target.get_raw(f"{who}/ours.jsonl") == b"ours"

    @pytest.mark.asyncio
    async def test_url_fetches_the_file(self, file_storage_target: FileStorageTarget) -> None:
        files, who = file_storage_target.files, owner()
        await files.upload_file(who, "u.txt", TEXT.encode())
        url = await files.get_url_from_id(who, "u.txt")
        assert url is not None
        assert await asyncio.to_thread(fetch, url) == TEXT.encode()

    @pytest.mark.asyncio
    @pytest.mark.parametrize("bad", ESCAPES)
    async def test_escaping_names_are_refused_everywhere(
        self, file_storage_target: FileStorageTarget, bad: str
    ) -> None:
        files, who = file_storage_target.files, owner()
        calls: list[Callable[[], Awaitable[object]]] = [
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

    @pytest.mark.asyncio
    async def test_the_gateway_is_closed_with_infra(self, file_storage_target: FileStorageTarget) -> None:
        files = file_storage_target.files
        await file_storage_target.infra.aclose()
        with pytest.raises(InfraClosedError):
            await files.get_file(owner(), "f.txt")


# --- the project's own stores: target builders ---------------------------------------------------


def local_file_storage_target(tmp_path: Path) -> FileStorageTarget:
    """Local disk under ``tmp_path`` (the local provider's default prefix)."""
    infra = build_infra(InfraConfig(cloud_provider="local", local_data_dir=str(tmp_path / "data")))
    root = Path(infra.file_storage.prefix)  # type: ignore[attr-defined]

    def put_raw(relative: str, data: bytes) -> None:
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)

    def get_raw(relative: str) -> bytes | None:
        path = root / relative
        return path.read_bytes() if path.is_file() else None

    return FileStorageTarget("local", infra, put_raw, get_raw)


def s3_file_storage_target(config: InfraConfig, *, name: str = "s3", client: Any | None = None) -> FileStorageTarget:
    """S3 at ``config`` (any endpoint it names) with the default prefix, s3://{s3_bucket}: llm-engine's exact keys."""
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

    return FileStorageTarget(name, infra, put_raw, get_raw)
