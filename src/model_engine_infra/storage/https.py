"""The read-only ``https`` store: model weights and files published at plain HTTPS URLs.

Reads stream through one reused ``httpx`` client (redirects followed, as CDNs and the Hugging
Face hub answer), so a multi-GB file never sits in memory. There is nothing to list, write or
delete over plain HTTPS: those raise `StoragePermissionError`. A URL that carries a signature in
its query (a presigned URL) is shown with the signature masked in every message.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import IO, TYPE_CHECKING, Any, BinaryIO

import httpx

from ..errors import (
    InvalidURIError,
    ObjectNotFoundError,
    StorageError,
    StoragePermissionError,
    StorageUnavailableError,
)
from .base import FilesystemGateway, LLMArtifactGateway, ObjectInfo, Progress
from .local import check_signing
from .store import Store
from .streams import ChunkedReader, parse_mode, reader_stream
from .transfer import TransferSettings
from .uploads import UploadItem
from .uri import shown

if TYPE_CHECKING:
    from ..config.model import InfraConfig

CHUNK = 1024 * 1024
TIMEOUT = httpx.Timeout(30.0, connect=10.0)


def _check_url(uri: str) -> str:
    if not isinstance(uri, str) or not uri.lower().startswith("https://"):
        raise InvalidURIError(f"the HTTPS store cannot serve {shown(uri) if uri else uri!r}: it accepts https:// URLs")
    return uri


def _raise_for(response: httpx.Response, uri: str) -> None:
    status = response.status_code
    if status < 400:
        return
    if status in (404, 410):
        raise ObjectNotFoundError(f"{shown(uri)}: no such file (HTTP {status})")
    if status in (401, 403):
        raise StoragePermissionError(f"{shown(uri)}: access denied (HTTP {status}); is the URL signed or public?")
    if status == 429 or status >= 500:
        raise StorageUnavailableError(f"{shown(uri)}: the server answered HTTP {status}; retry later")
    raise StorageError(f"{shown(uri)}: the server answered HTTP {status}")


@contextlib.contextmanager
def _errors(uri: str) -> Iterator[None]:
    try:
        yield
    except httpx.HTTPError as err:
        raise StorageUnavailableError(f"{shown(uri)}: could not reach the server ({type(err).__name__})") from err


def _refuse_plain_http(request: httpx.Request) -> None:
    """Every request, redirects included, stays on HTTPS: a hop to ``http://`` would drop TLS for the bytes."""
    if request.url.scheme != "https":
        raise StoragePermissionError(
            f"refusing to follow a redirect to plain HTTP ({request.url.scheme}://{request.url.host}): the HTTPS "
            "store reads only over HTTPS"
        )


def make_client(**options: Any) -> httpx.Client:
    """The store's one client: redirects followed (CDNs, the Hugging Face hub), but never to plain HTTP."""
    # identity: sizes from HEAD are the bytes written (no transparent gzip to undo or miscount)
    defaults: dict[str, Any] = {
        "follow_redirects": True,
        "timeout": TIMEOUT,
        "headers": {"Accept-Encoding": "identity"},
        "event_hooks": {"request": [_refuse_plain_http]},
    }
    return httpx.Client(**{**defaults, **options})


def _read_only(uri: str, what: str) -> StoragePermissionError:
    return StoragePermissionError(f"{shown(uri)}: the HTTPS store is read-only and cannot {what}")


class HttpsFilesystem(FilesystemGateway):
    """GET and HEAD on ``https://`` URLs through one client; everything else is refused."""

    def __init__(self, client: httpx.Client | None = None) -> None:
        self.client = client or make_client()

    def __repr__(self) -> str:
        return "HttpsFilesystem()"

    def open(self, uri: str, mode: str = "rb", **kwargs: Any) -> IO[Any]:
        writing, binary = parse_mode(mode, kwargs)
        _check_url(uri)
        if writing:
            raise _read_only(uri, "write")
        with _errors(uri):
            response = self.client.send(self.client.build_request("GET", uri), stream=True)
        try:
            _raise_for(response, uri)
        except BaseException:
            response.close()
            raise
        chunks = response.iter_bytes(CHUNK)

        def read(size: int) -> bytes:
            with _errors(uri):
                return next(chunks, b"")

        return reader_stream(ChunkedReader(read, response.close), binary, kwargs, 256 * 1024, shown(uri))

    def generate_signed_url(self, uri: str, expiration: int = 3600, method: str = "GET") -> str:
        """The URL itself: it is already what a client fetches (a presigned URL stays presigned)."""
        if check_signing(expiration, method) != "GET":
            raise _read_only(_check_url(uri), "sign an upload")
        return _check_url(uri)

    def exists(self, uri: str) -> bool:
        return _size(self.client, uri, missing_ok=True) is not None

    def list(self, uri: str) -> list[str]:
        """HTTPS cannot list a folder: the URL itself when it exists, else nothing."""
        return [uri] if self.exists(uri) else []

    def delete(self, uri: str) -> None:
        raise _read_only(_check_url(uri), "delete")

    def close(self) -> None:
        self.client.close()


def _size(client: httpx.Client, uri: str, *, missing_ok: bool) -> int | None:
    _check_url(uri)
    with _errors(uri):
        response = client.head(uri)
    if missing_ok and response.status_code in (404, 410):
        return None
    _raise_for(response, uri)
    length = response.headers.get("content-length")
    return int(length) if length and length.isdigit() else -1


class HttpsArtifacts(LLMArtifactGateway):
    """Single files at HTTPS URLs: downloaded streaming, with the shared safe download engine."""

    def __init__(
        self, client: httpx.Client, *, fine_tuned_weights_prefix: str, transfer: TransferSettings | None = None
    ) -> None:
        super().__init__(fine_tuned_weights_prefix=fine_tuned_weights_prefix, transfer=transfer)
        self.client = client

    def _iter_objects(self, folder_uri: str) -> Iterator[ObjectInfo]:
        return iter(())  # no listing over HTTPS: a path is one file

    def _object_size(self, uri: str) -> int | None:
        size = _size(self.client, uri, missing_ok=True)
        return None if size is None else (size if size >= 0 else None)

    def list_objects(self, path: str) -> list[ObjectInfo]:
        size = _size(self.client, path, missing_ok=True)
        if size is None:
            return []
        name = path.split("?", 1)[0].rstrip("/").rsplit("/", 1)[-1]
        return [ObjectInfo(uri=path, key=name, size=size if size >= 0 else None)]

    def _download_object(self, obj: ObjectInfo, fileobj: BinaryIO, progress: Progress | None) -> None:
        with _errors(obj.uri), self.client.stream("GET", _check_url(obj.uri)) as response:
            _raise_for(response, obj.uri)
            for chunk in response.iter_bytes(CHUNK):
                fileobj.write(chunk)
                if progress is not None:
                    progress(len(chunk))

    def _read_bytes(self, uri: str, limit: int | None = None) -> bytes:
        with _errors(uri):
            request = self.client.build_request("GET", _check_url(uri))
            response = self.client.send(request, stream=True)
        try:
            _raise_for(response, uri)
            data = bytearray()
            with _errors(uri):
                for chunk in response.iter_bytes(CHUNK):
                    data += chunk
                    if limit is not None and len(data) > limit:
                        break  # over the cap: the rest is never read
            return bytes(data)
        finally:
            response.close()

    def _upload_object(self, item: UploadItem, part_concurrency: int, progress: Progress | None) -> None:
        raise _read_only(item.uri, "upload")


def build_store(config: InfraConfig) -> Store:
    """The ``https`` store: one client for files and artifacts."""
    from .routing import weights_prefix

    filesystem = HttpsFilesystem()
    artifacts = HttpsArtifacts(
        filesystem.client,
        fine_tuned_weights_prefix=weights_prefix(config),
        transfer=TransferSettings.from_config(config),
    )
    return Store(filesystem, artifacts)
