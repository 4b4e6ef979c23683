"""`infra.file_storage`: the Files API's user files, on whichever store the prefix names.

llm-engine's ``FileStorageGateway`` keeps a file at ``s3://{s3_bucket}/{owner}/{file_id}``, where
the id is the uploaded file's name. This keeps that layout — ``{file_storage_prefix}/{owner}/{file_id}``,
the prefix defaulting to ``{store}://{s3_bucket}`` of the provider's store — so files written by
either are found by the other, and it works on every store (S3 and MinIO, Blob Storage, GCS, local
disk, a plugin's) through `infra.filesystem`.

Differences from llm-engine, on purpose: an owner or file id that could reach outside the owner's
folder is refused (`InvalidFileIdError`, see `file_ids`); an owner's listing is its own folder only
(llm-engine's ``Prefix=owner`` also listed owner ``ab``'s files for owner ``a``) and costs one
listing, not one request per file; a store that cannot be reached raises instead of looking like
a missing file; ``delete_file`` says False for a file that was not there; ``get_url_from_id`` is None
for a missing file.
"""

from __future__ import annotations

import asyncio
from abc import ABC, abstractmethod
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from ..errors import ConfigError, ObjectNotFoundError, StorageError
from ..lifecycle import Closeable
from .base import FilesystemGateway, ObjectInfo
from .file_ids import check_part

if TYPE_CHECKING:
    from ..config.model import InfraConfig
    from ..infra import Infra

__all__ = ["FileMetadata", "FileStorageGateway", "StoreFileStorage", "build_file_storage", "files_prefix"]

DEFAULT_URL_EXPIRATION_SECONDS = 3600


@dataclass(frozen=True)
class FileMetadata:
    """One user file, with llm-engine's fields (``filename`` is the id, as there).

    ``size`` and ``updated_at`` come from the store; every built-in store fills them, a plugin
    store without `FilesystemGateway.stat` may leave them None.
    """

    id: str
    filename: str
    size: int | None
    owner: str
    updated_at: datetime | None


class FileStorageGateway(Closeable, ABC):
    """llm-engine's file storage interface (``domain/gateways/file_storage_gateway.py``)."""

    @abstractmethod
    async def get_url_from_id(self, owner: str, file_id: str) -> str | None:
        """A URL the owner can fetch the file from, or None if it does not exist."""

    @abstractmethod
    async def upload_file(self, owner: str, filename: str, content: bytes) -> str:
        """Store ``content`` as the owner's file ``filename`` (replacing it); returns the file id."""

    @abstractmethod
    async def get_file(self, owner: str, file_id: str) -> FileMetadata | None:
        """The file's metadata, or None if it does not exist."""

    @abstractmethod
    async def list_files(self, owner: str) -> list[FileMetadata]:
        """Every file of ``owner``."""

    @abstractmethod
    async def delete_file(self, owner: str, file_id: str) -> bool:
        """Delete the file; True when it existed."""

    @abstractmethod
    async def get_file_content(self, owner: str, file_id: str) -> str | None:
        """The file as UTF-8 text, or None if it does not exist."""

    async def close(self) -> None:
        """Release clients; the default holds none."""


class StoreFileStorage(FileStorageGateway):
    """User files under ``prefix`` on ``filesystem`` (any store; `infra.filesystem` routes by scheme).

    Store calls are synchronous and run in a worker thread, never on the event loop.
    """

    def __init__(
        self,
        filesystem: FilesystemGateway,
        prefix: str,
        *,
        url_expiration_seconds: int = DEFAULT_URL_EXPIRATION_SECONDS,
    ) -> None:
        if not prefix or not prefix.strip("/"):
            raise ConfigError(
                "is empty", key="file_storage_prefix", fix="set it to a folder URI, e.g. s3://bucket/files"
            )
        self.filesystem = filesystem
        self.prefix = prefix.rstrip("/")
        self.url_expiration_seconds = url_expiration_seconds

    def __repr__(self) -> str:
        return f"StoreFileStorage(prefix={self.prefix!r})"

    def folder(self, owner: str) -> str:
        """``{prefix}/{owner}/``, the owner checked first."""
        return f"{self.prefix}/{check_part(owner, 'owner')}/"

    def uri(self, owner: str, file_id: str) -> str:
        """``{prefix}/{owner}/{file_id}``, both checked first (llm-engine's key layout)."""
        return self.folder(owner) + check_part(file_id, "file_id")

    def _metadata(self, owner: str, file_id: str, info: ObjectInfo) -> FileMetadata:
        return FileMetadata(id=file_id, filename=file_id, size=info.size, owner=owner, updated_at=info.modified)

    async def get_url_from_id(self, owner: str, file_id: str) -> str | None:
        uri = self.uri(owner, file_id)

        def sign() -> str | None:
            if self.filesystem.stat(uri) is None:
                return None
            return self.filesystem.generate_signed_url(uri, self.url_expiration_seconds, "GET")

        return await asyncio.to_thread(sign)

    async def upload_file(self, owner: str, filename: str, content: bytes | str) -> str:
        uri = self.uri(owner, filename)
        data = content.encode("utf-8") if isinstance(content, str) else bytes(content)

        def write() -> None:
            with self.filesystem.open(uri, "wb") as stream:  # visible only once complete
                stream.write(data)

        await asyncio.to_thread(write)
        return filename

    async def get_file(self, owner: str, file_id: str) -> FileMetadata | None:
        uri = self.uri(owner, file_id)
        info = await asyncio.to_thread(self.filesystem.stat, uri)
        return None if info is None else self._metadata(owner, file_id, info)

    async def list_files(self, owner: str) -> list[FileMetadata]:
        """The owner's files, by id; objects deeper in the folder (or with unsafe names) are not files here."""
        folder = self.folder(owner)
        found = await asyncio.to_thread(self.filesystem.list_info, folder)
        files = []
        for info in found:
            try:
                file_id = check_part(info.key, "file_id")
            except StorageError:
                continue
            files.append(self._metadata(owner, file_id, info))
        return sorted(files, key=lambda f: f.id)

    async def delete_file(self, owner: str, file_id: str) -> bool:
        uri = self.uri(owner, file_id)

        def delete() -> bool:
            if self.filesystem.stat(uri) is None:
                return False
            self.filesystem.delete(uri)
            return True

        return await asyncio.to_thread(delete)

    async def get_file_bytes(self, owner: str, file_id: str) -> bytes | None:
        """The file's bytes, or None if it does not exist."""
        uri = self.uri(owner, file_id)

        def read() -> bytes | None:
            try:
                with self.filesystem.open(uri, "rb") as stream:
                    data: bytes = stream.read()
                    return data
            except ObjectNotFoundError:
                return None

        return await asyncio.to_thread(read)

    async def get_file_content(self, owner: str, file_id: str) -> str | None:
        data = await self.get_file_bytes(owner, file_id)
        if data is None:
            return None
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError:
            raise StorageError(
                f"file {file_id!r} of owner {owner!r} is not UTF-8 text; read it with get_file_bytes"
            ) from None


def files_prefix(config: InfraConfig) -> str:
    """``file_storage_prefix``, else the profile's default for it, else ``{store}://{s3_bucket}``."""
    from pathlib import Path

    from ..selection import profile_of

    if config.file_storage_prefix:
        return config.file_storage_prefix
    profile = profile_of(config)
    template = profile.path_defaults.get("file_storage_prefix")
    if template is not None:
        return str(Path(template.format(local_data_dir=Path(config.local_data_dir).expanduser().resolve())))
    if profile.store is None:
        raise ConfigError(
            f"the {config.cloud_provider} provider has no default store for user files",
            key="file_storage_prefix",
            value=None,
            fix="set file_storage_prefix to a folder URI, e.g. s3://bucket/files",
        )
    return f"{profile.store}://{config.s3_bucket}"


def build_file_storage(config: InfraConfig, infra: Infra) -> StoreFileStorage:
    """User files on `infra.filesystem` (so every scheme's store, built once and shared)."""
    return StoreFileStorage(infra.filesystem, files_prefix(config))
