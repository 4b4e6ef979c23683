"""Parallel uploads of a local folder (or file): what to send, and the default way to send it.

A plan is made before anything is sent: every regular file under the folder, keyed by its path
relative to it (``/``-separated). Symbolic links are skipped, as rclone does by default, so an
upload never reaches outside the folder it was given. Each store writes one object so that nothing
is visible under its name until it is complete (S3 multipart / PutObject, Azure block list commit,
GCS resumable or single-request upload, a local temporary name renamed at the end).

The default runner keeps at most ``max_concurrency`` requests in flight: files smaller than the
store's part threshold go ``max_concurrency`` at a time, one request each; larger files then go one
at a time with ``max_concurrency`` parallel parts. S3 replaces it with one s3transfer manager whose
single pool serves files and parts together.
"""

from __future__ import annotations

import os
import stat
import urllib.parse
from collections.abc import Callable
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path

from ..errors import ObjectNotFoundError, StorageError

Progress = Callable[[int], None]


@dataclass(frozen=True)
class UploadItem:
    """One local file and the object it becomes."""

    path: Path
    uri: str
    size: int


def plan_uploads(local_path: str | os.PathLike[str], uri: str) -> list[UploadItem]:
    """The files under ``local_path`` and their object URIs under the folder ``uri``.

    A single file goes to ``uri`` itself, or into it when ``uri`` ends with ``/``.
    """
    root = Path(local_path)
    try:
        info = root.lstat()
    except FileNotFoundError:
        raise ObjectNotFoundError(f"nothing to upload: {str(root)!r} does not exist") from None
    if stat.S_ISREG(info.st_mode):
        name = urllib.parse.quote(root.name) if uri.startswith("file:") else root.name
        target = f"{uri}{name}" if uri.endswith("/") else uri
        return [UploadItem(root, target, info.st_size)]
    if not stat.S_ISDIR(info.st_mode):
        raise StorageError(f"cannot upload {str(root)!r}: not a regular file or a folder (symbolic links are skipped)")
    folder = uri.rstrip("/")
    items = []
    for directory, subdirs, files in os.walk(root):  # os.walk does not descend into linked folders
        subdirs.sort()
        for name in sorted(files):
            path = Path(directory, name)
            entry = path.lstat()
            if stat.S_ISREG(entry.st_mode):
                key = path.relative_to(root).as_posix()
                if folder.startswith("file:"):  # file URIs are percent-encoded; object keys are not
                    key = urllib.parse.quote(key)
                items.append(UploadItem(path, f"{folder}/{key}", entry.st_size))
    if not items:
        raise ObjectNotFoundError(f"nothing to upload: no regular file under {str(root)!r}")
    return items


def run_uploads(
    items: list[UploadItem],
    upload: Callable[[UploadItem, int, Progress | None], None],
    *,
    part_threshold: int,
    max_concurrency: int,
    progress: Progress | None,
) -> None:
    """Small files ``max_concurrency`` at a time, then large ones each with ``max_concurrency`` parts.

    ``upload(item, part_concurrency, progress)`` sends one file. The first failure stops the run
    (files not started are not sent) and is raised.
    """
    concurrency = max(1, max_concurrency)
    small = [item for item in items if item.size <= part_threshold]
    large = [item for item in items if item.size > part_threshold]
    if small:
        with ThreadPoolExecutor(max_workers=min(concurrency, len(small)), thread_name_prefix="upload") as pool:
            futures = [pool.submit(upload, item, 1, progress) for item in small]
            _, pending = wait(futures, return_when=FIRST_EXCEPTION)
            for future in pending:
                future.cancel()
            for future in futures:
                if future.done() and not future.cancelled() and future.exception() is not None:
                    raise future.exception()  # type: ignore[misc]
    for item in large:
        upload(item, concurrency, progress)
