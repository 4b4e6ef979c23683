"""Local disk: ``file://`` URIs and plain paths, with the same atomic-write and download guarantees.

The local provider uses it for everything; the other providers' users meet it in ``storage cp``.
A "signed URL" here is the file's ``file://`` URL: there is nothing to sign on one machine.
"""

from __future__ import annotations

import builtins
import errno
import os
import re
import secrets
from collections.abc import Callable, Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, BinaryIO

from ..errors import ObjectNotFoundError, StorageError, StoragePermissionError
from .base import FilesystemGateway, LLMArtifactGateway, ObjectInfo, Progress
from .store import Store
from .streams import ChunkedReader, WriteStream, parse_mode, reader_stream, text_kwargs
from .uploads import UploadItem
from .uri import parse_uri

if TYPE_CHECKING:
    from ..config.model import InfraConfig

STORE = "local disk"
CHUNK = 1024 * 1024
_TEMP_NAME = re.compile(r"^\..+\.[0-9a-f]{8,32}\.(partial|tmp)\Z")  # in-flight writes and downloads


def check_signing(expiration: int, method: str) -> str:
    """Validate the arguments every store's ``generate_signed_url`` takes; returns the method upper-cased."""
    upper = method.upper()
    if upper not in ("GET", "PUT"):
        raise ValueError(f"method must be 'GET' or 'PUT', not {method!r}")
    if not 1 <= expiration <= 7 * 24 * 3600:
        raise ValueError(f"expiration must be between 1 and 604800 seconds (7 days), not {expiration}")
    return upper


def _path(uri: str) -> Path:
    return Path(parse_uri(uri, accepts=("file",), store=STORE).key)


def _styled(uri: str, path: Path) -> str:
    """``path`` written the way ``uri`` was: a ``file://`` URI or a plain path."""
    return path.absolute().as_uri() if uri.startswith("file:") else str(path)


class _Errors:
    """Turn OS errors into the storage error types, naming the path."""

    def __init__(self, uri: str) -> None:
        self.uri = uri

    def __enter__(self) -> None:
        return None

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, _: object) -> None:
        if exc is None or isinstance(exc, StorageError):
            return
        if isinstance(exc, (FileNotFoundError, IsADirectoryError, NotADirectoryError)):
            raise ObjectNotFoundError(f"no file at {self.uri!r}") from exc
        if isinstance(exc, PermissionError):
            message = f"permission denied for {self.uri!r}; check the file's owner and mode"
            raise StoragePermissionError(message) from exc
        if isinstance(exc, OSError):
            raise StorageError(f"local disk failed on {self.uri!r}: {exc.strerror or type(exc).__name__}") from exc


def _make_parents(path: Path) -> None:
    """``mkdir -p`` of ``path``'s folder without recursion (pathlib's recurses once per missing level)."""
    missing = []
    folder = path.parent
    while not folder.is_dir():
        missing.append(folder)
        if folder.parent == folder:
            break
        folder = folder.parent
    for folder in reversed(missing):
        try:
            folder.mkdir()
        except FileExistsError:
            if not folder.is_dir():
                raise


def _reader(uri: str, path: Path, binary: bool, kwargs: dict[str, Any]) -> Any:
    """A buffered reader whose errors are storage errors naming ``uri`` (a disk can fail mid-read too)."""
    source = open(path, "rb")  # noqa: SIM115 - closed by the reader

    def read(size: int) -> bytes:
        with _Errors(uri):
            return source.read(size)

    try:
        return reader_stream(ChunkedReader(read, source.close), binary, kwargs, CHUNK, uri)
    except BaseException:
        source.close()
        raise


class LocalFilesystem(FilesystemGateway):
    """Files on this machine; writes go to a temporary name renamed into place on close."""

    def open(self, uri: str, mode: str = "rb", **kwargs: Any) -> IO[Any]:
        writing, binary = parse_mode(mode, kwargs)
        path = _path(uri)
        extra = {} if binary else text_kwargs(kwargs)
        with _Errors(uri):
            if not writing:
                return _reader(uri, path, binary, kwargs)  # type: ignore[no-any-return]
            _make_parents(path)
            # A short fixed-length name: ``.{name}.{uuid}`` overflowed NAME_MAX for names near 255 bytes.
            temp = path.with_name(f".mei.{secrets.token_hex(8)}.tmp")
            stream = open(temp, "wb" if binary else "w", **extra)  # noqa: SIM115 - closed by WriteStream

        def commit() -> None:
            with _Errors(uri):
                stream.close()
                os.replace(temp, path)

        def discard() -> None:
            try:
                stream.close()
            finally:
                temp.unlink(missing_ok=True)

        return WriteStream(stream, commit, discard, uri)  # type: ignore[return-value]

    def generate_signed_url(self, uri: str, expiration: int = 3600, method: str = "GET") -> str:
        """The file's ``file://`` URL; local files need no signature and the URL does not expire."""
        check_signing(expiration, method)
        return _path(uri).absolute().as_uri()

    def exists(self, uri: str) -> bool:
        return _probe(uri, Path.is_file)

    def list(self, uri: str) -> list[str]:
        return [obj.uri for obj in _walk(uri)]

    def delete(self, uri: str) -> None:
        with _Errors(uri):
            _path(uri).unlink(missing_ok=True)

    def stat(self, uri: str) -> ObjectInfo | None:
        path = _path(uri)
        try:
            found = path.stat()
        except (FileNotFoundError, NotADirectoryError):
            return None
        except OSError as err:
            if err.errno == errno.ENAMETOOLONG:
                return None  # no file can have that name
            with _Errors(uri):
                raise
        if not _probe(uri, Path.is_file):
            return None
        return ObjectInfo(uri, path.name, found.st_size, None, _modified(found.st_mtime))

    def list_info(self, uri: str) -> builtins.list[ObjectInfo]:
        return list(_walk(uri))


def _modified(mtime: float) -> datetime:
    return datetime.fromtimestamp(mtime, tz=timezone.utc)


def _probe(uri: str, test: Callable[[Path], bool]) -> bool:
    """``test(path)`` (``Path.is_file`` / ``is_dir``); a name no file system takes is simply absent."""
    try:
        return test(_path(uri))
    except OSError as err:
        if err.errno == errno.ENAMETOOLONG:
            return False
        with _Errors(uri):
            raise


def _walk(folder_uri: str) -> Iterator[ObjectInfo]:
    root = _path(folder_uri)
    if not _probe(folder_uri, Path.is_dir):
        return
    entries = []
    for directory, _dirs, files in os.walk(root):
        for name in files:
            if _TEMP_NAME.match(name):
                continue
            path = Path(directory, name)
            try:
                found = path.stat()
            except OSError:  # a dangling symlink or a file removed while listing
                continue
            key = path.relative_to(root).as_posix()
            entries.append(ObjectInfo(_styled(folder_uri, path), key, found.st_size, None, _modified(found.st_mtime)))
    yield from sorted(entries, key=lambda obj: obj.key)


class LocalArtifacts(LLMArtifactGateway):
    """Model artifacts in a local folder, copied with the shared safe download engine."""

    def _iter_objects(self, folder_uri: str) -> Iterator[ObjectInfo]:
        return _walk(folder_uri)

    def _object_size(self, uri: str) -> int | None:
        if not _probe(uri, Path.is_file):
            return None
        with _Errors(uri):
            return _path(uri).stat().st_size

    def _download_object(self, obj: ObjectInfo, fileobj: BinaryIO, progress: Progress | None) -> None:
        with _Errors(obj.uri), open(_path(obj.uri), "rb") as source:
            while chunk := source.read(CHUNK):
                fileobj.write(chunk)
                if progress is not None:
                    progress(len(chunk))

    def _read_bytes(self, uri: str, limit: int | None = None) -> bytes:
        with _Errors(uri), open(_path(uri), "rb") as source:
            return source.read() if limit is None else source.read(limit + 1)

    def _upload_object(self, item: UploadItem, part_concurrency: int, progress: Progress | None) -> None:
        """Copied under a temporary name in the target folder, renamed when complete."""
        path = _path(item.uri)
        with _Errors(item.uri):
            _make_parents(path)
            temp = path.with_name(f".mei.{secrets.token_hex(8)}.tmp")  # fits beside a 255-byte name
            try:
                with open(item.path, "rb") as source, open(temp, "wb") as sink:
                    while chunk := source.read(CHUNK):
                        sink.write(chunk)
                        if progress is not None:
                            progress(len(chunk))
                os.replace(temp, path)
            finally:
                temp.unlink(missing_ok=True)


def build_store(config: InfraConfig) -> Store:
    """The ``file`` store: ``file://`` URIs and plain paths on this machine."""
    from .routing import weights_prefix
    from .transfer import TransferSettings

    artifacts = LocalArtifacts(
        fine_tuned_weights_prefix=weights_prefix(config), transfer=TransferSettings.from_config(config)
    )
    return Store(LocalFilesystem(), artifacts)
