"""The file and artifact interfaces, and the download engine every store shares.

A store implements a few primitives (list a folder, size of one object, stream one object into a
file, and, for stores that can, read one byte range); `LLMArtifactGateway` turns them into safe,
parallel downloads: keys are checked before anything is written, each file lands under a
temporary name and is renamed when complete (both in `landing`), large objects are read in parts
by the same pool of requests as the small files (`transfer`), and complete files of the right size
are skipped unless ``overwrite``.
"""

from __future__ import annotations

import builtins
import inspect
import json
import os
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import IO, Any, BinaryIO, Literal, cast, overload

from ..errors import ObjectNotFoundError, ObjectTooLargeError, StorageError, clip
from ..json_types import JSONObject
from ..lifecycle import Closeable
from .landing import DownloadPlan, LandingZone, plan_download
from .transfer import RangeOpener, RangeReader, TransferSettings, run_download
from .uploads import UploadItem, plan_uploads, run_uploads

Progress = Callable[[int], None]
# The modes every store supports (storage/streams.py); text is UTF-8 unless ``encoding`` says otherwise.
OpenBinaryMode = Literal["rb", "wb"]
OpenTextMode = Literal["r", "rt", "w", "wt"]


@dataclass(frozen=True)
class ObjectInfo:
    """One object: its full URI, its key relative to the listed folder, its size if known.

    ``version`` (ETag or generation) lets a store pin the ranged reads of one download to the
    version it listed, so an object replaced mid-download fails instead of mixing two versions.
    """

    uri: str
    key: str
    size: int | None
    version: str | None = None
    modified: datetime | None = None  # when the object was last written, where the store says


class FilesystemGateway(Closeable, ABC):
    """Streaming open, signed URLs and the few file operations the control plane needs."""

    @overload
    def open(self, uri: str, mode: OpenBinaryMode = "rb", **kwargs: Any) -> IO[bytes]: ...
    @overload
    def open(self, uri: str, mode: OpenTextMode, **kwargs: Any) -> IO[str]: ...
    @overload
    def open(self, uri: str, mode: str, **kwargs: Any) -> IO[Any]: ...  # a mode known only at run time
    @abstractmethod
    def open(self, uri: str, mode: str = "rb", **kwargs: Any) -> IO[Any]:
        """A stream; a write that fails or is abandoned leaves nothing under ``uri``.

        Typed by ``mode``: ``"rb"``/``"wb"`` give ``IO[bytes]``, ``"r"``/``"w"`` ``IO[str]``.
        """

    @abstractmethod
    def generate_signed_url(self, uri: str, expiration: int = 3600, method: str = "GET") -> str: ...

    @abstractmethod
    def exists(self, uri: str) -> bool: ...

    @abstractmethod
    def list(self, uri: str) -> list[str]:
        """URIs of every object under the folder ``uri`` (recursive)."""

    @abstractmethod
    def delete(self, uri: str) -> None:
        """Delete one object; deleting a missing object is a no-op."""

    def stat(self, uri: str) -> ObjectInfo | None:
        """Size and last-modified time of the object ``uri``, or None when it does not exist.

        The built-in stores answer with one metadata request; this default (for plugin stores)
        knows only whether the object exists.
        """
        if not self.exists(uri):
            return None
        return ObjectInfo(uri, uri.rstrip("/").rsplit("/", 1)[-1], None)

    def list_info(self, uri: str) -> builtins.list[ObjectInfo]:
        """Every object under the folder ``uri`` (recursive), keys relative to it, with size and time.

        The built-in stores take both from the listing itself (no request per object); this
        default (for plugin stores) builds them from `list`, without sizes or times.
        """
        folder = uri.rstrip("/") + "/"
        return [
            ObjectInfo(u, u[len(folder) :] if u.startswith(folder) else u.rsplit("/", 1)[-1], None)
            for u in self.list(uri)
        ]

    def close(self) -> None:
        """Release clients; the default holds none."""


class LLMArtifactGateway(Closeable, ABC):
    """Model artifacts: listing, safe parallel downloads, fine-tuned weights, model config."""

    def __init__(self, *, fine_tuned_weights_prefix: str, transfer: TransferSettings | None = None) -> None:
        self.fine_tuned_weights_prefix = fine_tuned_weights_prefix.rstrip("/")
        self.transfer = transfer or TransferSettings()

    # --- primitives a store implements -----------------------------------------------------------
    @abstractmethod
    def _iter_objects(self, folder_uri: str) -> Iterable[ObjectInfo]:
        """Objects under ``folder_uri`` (which ends with '/'), keys relative to it."""

    @abstractmethod
    def _object_size(self, uri: str) -> int | None:
        """Size of the single object ``uri``, None when it does not exist."""

    @abstractmethod
    def _download_object(self, obj: ObjectInfo, fileobj: BinaryIO, progress: Progress | None) -> None:
        """Stream ``obj`` into ``fileobj`` in chunks (parallel ranges for large objects)."""

    def _range_reader(self) -> RangeReader | None:
        """``read_range(obj, start, stop, sink)`` for stores that read byte ranges (large objects then go
        in parts through the shared pool), or None: each object is one `_download_object` call."""
        return None

    def _range_opener(self) -> RangeOpener | None:
        """``open_range(obj, start, stop)`` for stores whose ranged GETs can be read from the socket
        (`pump.SocketBody`): the parts of a large object are then read by one thread, not one each."""
        return None

    @abstractmethod
    def _read_bytes(self, uri: str, limit: int | None = None) -> bytes:
        """A small object's bytes (config.json); `ObjectNotFoundError` when missing.

        With ``limit``, at most ``limit + 1`` bytes are read (a store may stop at the declared size):
        the caller refuses more than ``limit`` (`read_capped`).
        """

    @abstractmethod
    def _upload_object(self, item: UploadItem, part_concurrency: int, progress: Progress | None) -> None:
        """Write one local file as the object ``item.uri``, visible only once complete."""

    #: Files above this size are sent in parallel parts (see `run_uploads`).
    upload_part_threshold: int = 8 * 1024 * 1024

    # --- behaviour shared by every store --------------------------------------------------------
    def list_objects(self, path: str) -> list[ObjectInfo]:
        """A prefix is a folder: ``models/llama`` matches ``models/llama/...`` only; else one object."""
        folder = path.rstrip("/") + "/"
        objects = [obj for obj in self._iter_objects(folder) if obj.key and not _folder_marker(obj)]
        if objects or path.endswith("/"):
            return sorted(objects, key=lambda o: o.key)
        size = self._object_size(path)
        if size is None:
            return []
        return [ObjectInfo(uri=path, key=path.rstrip("/").rsplit("/", 1)[-1], size=size)]

    def list_files(self, path: str) -> list[str]:
        return [obj.uri for obj in self.list_objects(path)]

    def download_files(
        self,
        path: str,
        target_path: str | os.PathLike[str],
        overwrite: bool = False,
        *,
        max_concurrency: int | None = None,
        progress: Progress | None = None,
    ) -> list[str]:
        """Download the folder (or single object) ``path`` into ``target_path``; returns local paths.

        At most ``max_concurrency`` requests at once (default: the ``storage_max_concurrency`` key),
        shared by the small files and the parts of the large ones.
        """
        objects = self.list_objects(path)
        if not objects:
            raise ObjectNotFoundError(f"nothing to download: no object at or under {path!r}")
        return self.download_objects(
            objects, target_path, overwrite, max_concurrency=max_concurrency, progress=progress
        )

    def download_objects(
        self,
        objects: list[ObjectInfo],
        target_path: str | os.PathLike[str],
        overwrite: bool = False,
        *,
        max_concurrency: int | None = None,
        progress: Progress | None = None,
    ) -> list[str]:
        """Download listed ``objects`` (from `list_objects`) to ``target_path / obj.key``; returns local paths."""
        return download_all(
            objects,
            Path(target_path),
            self._download_object,
            overwrite=overwrite,
            max_concurrency=self.transfer.concurrency(max_concurrency),
            progress=progress,
            read_range=self._range_reader(),
            open_range=self._range_opener(),
            settings=self.transfer,
        )

    def upload_files(
        self,
        local_path: str | os.PathLike[str],
        uri: str,
        *,
        max_concurrency: int | None = None,
        progress: Progress | None = None,
    ) -> list[str]:
        """Upload the folder (or file) ``local_path`` under the folder ``uri``; returns the object URIs.

        Files and parts go in parallel, at most ``max_concurrency`` requests at a time (default: the
        ``storage_max_concurrency`` key); each object appears only when complete. Symbolic links are
        skipped (see `plan_uploads`).
        """
        items = plan_uploads(local_path, uri)
        self._upload_many(items, self.transfer.concurrency(max_concurrency), _locked(progress))
        return [item.uri for item in items]

    def _upload_many(self, items: list[UploadItem], max_concurrency: int, progress: Progress | None) -> None:
        """Send every item; stores with a shared transfer pool override this."""
        run_uploads(
            items,
            self._upload_object,
            part_threshold=self.upload_part_threshold,
            max_concurrency=max_concurrency,
            progress=progress,
        )

    def get_model_weights_urls(self, owner: str, model_name: str) -> list[str]:
        return self.list_files(f"{self.fine_tuned_weights_prefix}/{owner}/{model_name}")

    def get_model_config(self, path: str) -> JSONObject:
        """The model's ``config.json``, read whole only up to `MAX_MODEL_CONFIG_BYTES` (16 MiB)."""
        uri = path.rstrip("/") + "/config.json"
        raw = read_capped(self, uri, MAX_MODEL_CONFIG_BYTES)
        try:
            value = json.loads(raw)
        except (ValueError, RecursionError) as err:  # bytes that are not UTF-8 are a ValueError too
            raise StorageError(
                f"{uri} is not valid JSON ({clip(str(err) or type(err).__name__, 200)}); "
                "a model's config.json must be a UTF-8 JSON object"
            ) from None
        if not isinstance(value, dict):
            raise StorageError(f"{uri} holds JSON that is not an object")
        return cast(JSONObject, value)

    def close(self) -> None:
        """Release clients; the default holds none."""


#: A model's config.json is a few KB; 16 MiB leaves room for any real one and bounds the memory a
#: hostile or mistaken object (weights uploaded as config.json) can take.
MAX_MODEL_CONFIG_BYTES = 16 * 1024 * 1024


def too_large(uri: str, limit: int, size: int | None = None) -> ObjectTooLargeError:
    found = f"{size} bytes" if size is not None else f"more than {limit} bytes"
    cap = f"{limit / (1024 * 1024):g} MiB" if limit >= 1024 * 1024 else f"{limit} bytes"
    return ObjectTooLargeError(
        f"{uri} is {found}, over the {cap} this library reads whole for it; "
        "is it the file you meant (not weights or an archive)?"
    )


def read_bytes(artifacts: LLMArtifactGateway, uri: str, limit: int | None) -> bytes:
    """``artifacts._read_bytes(uri, limit)``; a store written before ``limit`` existed reads whole."""
    method = artifacts._read_bytes
    try:
        takes_limit = "limit" in inspect.signature(method).parameters
    except (TypeError, ValueError):
        takes_limit = False
    return method(uri, limit) if takes_limit else method(uri)


def read_capped(artifacts: LLMArtifactGateway, uri: str, limit: int) -> bytes:
    """``uri``'s bytes, or `ObjectTooLargeError` if it holds more than ``limit`` (never more is kept)."""
    data = read_bytes(artifacts, uri, limit)
    if len(data) > limit:
        raise too_large(uri, limit)
    return data


def download_all(
    objects: list[ObjectInfo],
    target: Path,
    fetch: Callable[[ObjectInfo, BinaryIO, Progress | None], None],
    *,
    overwrite: bool,
    max_concurrency: int,
    progress: Progress | None,
    after_plan: Callable[[DownloadPlan], None] | None = None,
    read_range: RangeReader | None = None,
    settings: TransferSettings | None = None,
    open_range: RangeOpener | None = None,
) -> list[str]:
    """Plan (every key checked before anything is written), then download in parallel.

    Each file is written under a temporary name through directory descriptors that never follow
    links (`LandingZone`) and renamed when complete. With ``read_range`` large objects go in parts
    (`transfer.plan_parts`); whole objects and parts share one pool of ``max_concurrency`` requests.
    ``after_plan`` runs between the two steps; tests use it to change the disk under a download.
    """
    plan = plan_download(objects, target)  # raises before anything is written
    if after_plan is not None:
        after_plan(plan)
    with LandingZone(target) as zone:
        todo = [planned for planned in plan.files if overwrite or not zone.is_complete(planned)]
        run_download(
            zone,
            todo,
            fetch=fetch,
            read_range=read_range,
            open_range=open_range if read_range is not None else None,
            settings=settings or TransferSettings(),
            concurrency=max(1, max_concurrency),
            progress=_locked(progress),
        )
    return [str(planned.path) for planned in plan.files]


def _folder_marker(obj: ObjectInfo) -> bool:
    """A zero-byte ``dir/`` object some consoles create to show a folder; it is not a file."""
    return obj.key.endswith("/") and not obj.size


def _locked(progress: Progress | None) -> Progress | None:
    """Progress callbacks come from worker threads; serialise them for the caller."""
    if progress is None:
        return None
    lock = threading.Lock()

    def report(n: int) -> None:
        with lock:
            progress(n)

    return report
