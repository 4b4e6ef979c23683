"""A store plugin in one module: ``mem://bucket/key`` objects held in this process's memory.

Registered under the URI scheme ``mem`` through the entry-point group ``model_engine_infra.store``
(see ``pyproject.toml`` beside this file), so ``infra.filesystem`` and ``infra.artifacts`` serve
``mem://`` URIs next to the profile's own store. `build_store` is the entry point's target: it gets
the config and returns a `Store` (the scheme's files and model artifacts). The download engine,
safe key checks and parallel uploads come from `LLMArtifactGateway`; the plugin supplies the
primitives. Objects live as long as the `Store` (one per `Infra`); memory cannot be fetched over
HTTP, so signing a URL is refused with a typed error (``supports_signed_urls = False`` in its
conformance subclass).
"""

from __future__ import annotations

import io
import threading
from collections.abc import Iterable
from typing import IO, TYPE_CHECKING, Any, BinaryIO

from model_engine_infra.config import InfraConfig
from model_engine_infra.errors import InvalidURIError, ObjectNotFoundError, StorageError
from model_engine_infra.storage.base import FilesystemGateway, LLMArtifactGateway, ObjectInfo, Progress
from model_engine_infra.storage.store import Store
from model_engine_infra.storage.streams import TextReader, parse_mode, text_kwargs, upload_stream

if TYPE_CHECKING:
    from model_engine_infra.storage.uploads import UploadItem

SCHEME = "mem"
CHUNK = 1024 * 1024


def split(uri: str) -> tuple[str, str]:
    """``mem://bucket/key`` -> ``(bucket, key)``; anything else is refused, naming what is accepted."""
    if not isinstance(uri, str) or not uri.startswith(f"{SCHEME}://"):
        raise InvalidURIError(f"the memory store cannot serve {uri!r}: it accepts {SCHEME}://bucket/key URIs")
    bucket, _, key = uri.removeprefix(f"{SCHEME}://").partition("/")
    if not bucket:
        raise InvalidURIError(f"{uri!r} names no bucket: the memory store accepts {SCHEME}://bucket/key URIs")
    return bucket, key


class Objects:
    """The bytes of every object, by URI; one lock, because gateways are used from many threads."""

    def __init__(self) -> None:
        self._data: dict[str, bytes] = {}
        self._lock = threading.Lock()

    def put(self, uri: str, data: bytes) -> None:
        split(uri)
        with self._lock:
            self._data[uri] = bytes(data)

    def get(self, uri: str) -> bytes:
        with self._lock:
            if uri not in self._data:
                raise ObjectNotFoundError(f"{uri} does not exist")
            return self._data[uri]

    def size(self, uri: str) -> int | None:
        with self._lock:
            data = self._data.get(uri)
        return None if data is None else len(data)

    def under(self, folder_uri: str) -> list[tuple[str, int]]:
        with self._lock:
            return [(uri, len(data)) for uri, data in self._data.items() if uri.startswith(folder_uri)]

    def delete(self, uri: str) -> None:
        with self._lock:
            self._data.pop(uri, None)


class _Upload:
    """Parts collected in memory; the object appears whole in `finish`, never before."""

    def __init__(self, objects: Objects, uri: str) -> None:
        self.objects, self.uri, self.parts = objects, uri, bytearray()

    def upload_part(self, data: bytes) -> None:
        self.parts += data

    def finish(self, data: bytes) -> None:
        self.objects.put(self.uri, bytes(self.parts + data))

    def abort(self) -> None:
        self.parts.clear()


class MemoryFilesystem(FilesystemGateway):
    def __init__(self, objects: Objects) -> None:
        self.objects = objects

    def open(self, uri: str, mode: str = "rb", **kwargs: Any) -> IO[Any]:
        writing, binary = parse_mode(mode, kwargs)
        split(uri)
        if writing:
            return upload_stream(_Upload(self.objects, uri), binary, kwargs, uri, CHUNK)
        data = self.objects.get(uri)
        if binary:
            return io.BytesIO(data)
        return TextReader(io.BytesIO(data), uri, **text_kwargs(kwargs))  # decoding errors name the object

    def generate_signed_url(self, uri: str, expiration: int = 3600, method: str = "GET") -> str:
        raise StorageError(f"{uri}: objects in memory cannot be reached by URL; read them with open()")

    def exists(self, uri: str) -> bool:
        split(uri)
        return self.objects.size(uri) is not None

    def list(self, uri: str) -> list[str]:
        split(uri)
        return sorted(found for found, _ in self.objects.under(uri.rstrip("/") + "/"))

    def delete(self, uri: str) -> None:
        split(uri)
        self.objects.delete(uri)


class MemoryArtifacts(LLMArtifactGateway):
    def __init__(self, objects: Objects, *, fine_tuned_weights_prefix: str) -> None:
        super().__init__(fine_tuned_weights_prefix=fine_tuned_weights_prefix)
        self.objects = objects

    def _iter_objects(self, folder_uri: str) -> Iterable[ObjectInfo]:
        split(folder_uri)
        for uri, size in self.objects.under(folder_uri):
            yield ObjectInfo(uri=uri, key=uri.removeprefix(folder_uri), size=size)

    def _object_size(self, uri: str) -> int | None:
        split(uri)
        return self.objects.size(uri)

    def _download_object(self, obj: ObjectInfo, fileobj: BinaryIO, progress: Progress | None) -> None:
        data = self.objects.get(obj.uri)
        for start in range(0, len(data), CHUNK):
            chunk = data[start : start + CHUNK]
            fileobj.write(chunk)
            if progress is not None:
                progress(len(chunk))

    def _read_bytes(self, uri: str, limit: int | None = None) -> bytes:
        split(uri)
        data = self.objects.get(uri)
        return data if limit is None else data[: limit + 1]

    def _upload_object(self, item: UploadItem, part_concurrency: int, progress: Progress | None) -> None:
        parts = bytearray()
        with open(item.path, "rb") as source:
            while chunk := source.read(CHUNK):
                parts += chunk
                if progress is not None:
                    progress(len(chunk))
        self.objects.put(item.uri, bytes(parts))  # visible only once the whole file is read


def build_store(config: InfraConfig) -> Store:
    """The entry point's target: the ``mem`` scheme's files and artifacts, sharing one set of objects."""
    objects = Objects()
    return Store(
        MemoryFilesystem(objects),
        MemoryArtifacts(objects, fine_tuned_weights_prefix=config.hf_user_fine_tuned_weights_prefix),
    )
