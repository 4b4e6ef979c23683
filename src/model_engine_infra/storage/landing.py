"""Where downloaded objects land on local disk: planned first, then written through directory descriptors.

Two steps, so that a download engine (ours, or a faster one later) only has to call them:

1. `plan_download` checks every key before anything is written: no ``..``, absolute, backslash or
   empty segment; no segment longer than the filesystem allows; no two keys that need one path as a
   file and as a folder (``a`` and ``a/b``); no existing file where a folder is needed and no folder
   where a file goes. Each problem is a typed error naming the keys.
2. `LandingZone` writes each file relative to an open descriptor of the target folder. Every folder
   below the target is opened with ``O_NOFOLLOW | O_DIRECTORY`` from its parent's descriptor, the
   file is created under a short fixed-length temporary name with ``O_EXCL | O_NOFOLLOW`` and renamed
   with ``os.replace(..., src_dir_fd=, dst_dir_fd=)``. A symbolic link swapped into the tree after
   planning therefore cannot redirect a write: the open fails (``ELOOP``) and the download stops with
   `UnsafeObjectKeyError`. Paths are walked iteratively, so a key 5,000 folders deep needs no recursion
   and no path longer than ``PATH_MAX``.

Every `OSError` becomes a `StorageError` (or a subclass) naming the key and the local path. POSIX only
(Linux, macOS): it relies on ``dir_fd`` support in ``os``.
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
import stat
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

from ..errors import DownloadConflictError, StorageError, StoragePermissionError, UnsafeObjectKeyError

if TYPE_CHECKING:
    from .base import ObjectInfo

# ``.mei.<16 hex>.partial``: 29 bytes whatever the key, so a 255-byte file name still has room.
PARTIAL_PREFIX = ".mei."
PARTIAL_SUFFIX = ".partial"
DEFAULT_NAME_MAX = 255
_DIR_FLAGS = os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
_FILE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
_ROOT_FLAGS = os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | getattr(os, "O_CLOEXEC", 0)


def partial_name() -> str:
    """A temporary file name of fixed length (29 bytes), hidden, recognisable by `is_partial_name`."""
    return f"{PARTIAL_PREFIX}{secrets.token_hex(8)}{PARTIAL_SUFFIX}"


def is_partial_name(name: str) -> bool:
    return name.startswith(PARTIAL_PREFIX) and name.endswith(PARTIAL_SUFFIX)


@dataclass(frozen=True)
class PlannedFile:
    """One object and where it lands: ``parts`` are the key's segments below the target folder."""

    obj: ObjectInfo
    parts: tuple[str, ...]
    path: Path

    @property
    def key(self) -> str:
        return self.obj.key


@dataclass(frozen=True)
class DownloadPlan:
    target: Path
    files: tuple[PlannedFile, ...]


# --- planning ----------------------------------------------------------------------------------------


def key_parts(key: str, *, name_max: int = DEFAULT_NAME_MAX) -> tuple[str, ...]:
    """The segments of ``key`` as a relative local path, or `UnsafeObjectKeyError` saying why not."""
    reason = unsafe_reason(key, name_max=name_max)
    if reason is not None:
        raise UnsafeObjectKeyError(f"object key {shown_key(key)!r} is unsafe: {reason}; nothing was written")
    return tuple(key.split("/"))


def unsafe_reason(key: str, *, name_max: int = DEFAULT_NAME_MAX) -> str | None:
    """Why ``key`` cannot be a path below a folder, or None when it can."""
    if not isinstance(key, str) or not key:
        return "it is empty"
    if "\x00" in key:
        return "it contains a NUL byte"
    if "\\" in key:
        return "it contains a backslash"
    if key.startswith("/") or (len(key) > 1 and key[1] == ":"):
        return "it is absolute"
    for segment in key.split("/"):
        if segment in ("", ".", ".."):
            return "it has an empty, '.' or '..' segment"
        try:
            size = len(os.fsencode(segment))
        except UnicodeError:
            return "it is not valid text for a file name"
        if size > name_max:
            return f"the segment {shown_key(segment)!r} is {size} bytes; this filesystem allows at most {name_max}"
    return None


def shown_key(key: str, limit: int = 120) -> str:
    """A key as messages quote it: cut to ``limit`` characters (a hostile key may be megabytes)."""
    return key if len(key) <= limit else f"{key[: limit - 20]}...{key[-17:]}"


def name_max(folder: Path) -> int:
    """The longest file name (bytes) the filesystem of ``folder`` (or its nearest existing parent) allows."""
    for candidate in (folder, *folder.parents):
        try:
            return int(os.pathconf(candidate, "PC_NAME_MAX"))
        except (OSError, ValueError):
            continue
    return DEFAULT_NAME_MAX


def plan_download(objects: Sequence[ObjectInfo], target: Path) -> DownloadPlan:
    """Check every key and the target before anything is written; see the module docstring."""
    _check_target(target)
    limit = name_max(target)
    files = [PlannedFile(obj, key_parts(obj.key, name_max=limit), target / obj.key) for obj in objects]
    _check_collisions(files)
    _check_existing(target, files)
    return DownloadPlan(target, tuple(files))


def _check_target(target: Path) -> None:
    try:
        info = os.stat(target)  # the target itself may be a symlink to a folder: the caller chose it
    except FileNotFoundError:
        return
    except OSError as err:
        raise _local_error(err, None, target) from err
    if not stat.S_ISDIR(info.st_mode):
        raise DownloadConflictError(
            f"the download target {str(target)!r} is an existing file, not a folder: choose another target "
            "or remove the file (nothing was written)"
        )


def _check_collisions(files: Iterable[PlannedFile]) -> None:
    """``a`` and ``a/b`` (or one key twice) cannot both land: say which keys collide."""
    as_file: dict[tuple[str, ...], str] = {}
    as_folder: dict[tuple[str, ...], str] = {}
    for planned in files:
        if planned.parts in as_file:
            _collision(as_file[planned.parts], planned.key, "both name the same local file")
        if planned.parts in as_folder:
            _collision(planned.key, as_folder[planned.parts], "the first is a file, the second needs it as a folder")
        as_file[planned.parts] = planned.key
        for depth in range(1, len(planned.parts)):
            prefix = planned.parts[:depth]
            if prefix in as_file:
                _collision(as_file[prefix], planned.key, "the first is a file, the second needs it as a folder")
            as_folder.setdefault(prefix, planned.key)


def _collision(first: str, second: str, why: str) -> None:
    raise DownloadConflictError(
        f"object keys {shown_key(first)!r} and {shown_key(second)!r} collide on local disk: {why}; "
        "a local folder cannot hold both (nothing was written)"
    )


def _check_existing(target: Path, files: Sequence[PlannedFile]) -> None:
    """Existing local files where a folder is needed, folders where a file goes, symlinks on the way."""
    seen: set[tuple[str, ...]] = set()
    for planned in files:
        for depth in range(1, len(planned.parts) + 1):
            prefix = planned.parts[:depth]
            is_leaf = depth == len(planned.parts)
            if prefix in seen and not is_leaf:
                continue
            seen.add(prefix)
            try:
                info = os.lstat(target.joinpath(*prefix))
            except FileNotFoundError:
                break  # nothing below exists either
            except OSError:
                break  # e.g. a path longer than PATH_MAX: the descriptor walk checks it when writing
            if stat.S_ISLNK(info.st_mode) and not is_leaf:
                raise UnsafeObjectKeyError(
                    f"object key {shown_key(planned.key)!r} passes through the symbolic link "
                    f"{str(target.joinpath(*prefix))!r}; downloads never follow links (nothing was written)"
                )
            if is_leaf and stat.S_ISDIR(info.st_mode):
                raise DownloadConflictError(
                    f"object key {shown_key(planned.key)!r} would replace the existing folder "
                    f"{str(planned.path)!r}: remove it or choose another target (nothing was written)"
                )
            if not is_leaf and not stat.S_ISDIR(info.st_mode):
                raise DownloadConflictError(
                    f"object key {shown_key(planned.key)!r} needs {str(target.joinpath(*prefix))!r} to be a folder, "
                    "but it is an existing file: remove it or choose another target (nothing was written)"
                )


# --- writing -----------------------------------------------------------------------------------------


class LandingZone:
    """An open descriptor of the target folder; files are written below it without following links."""

    def __init__(self, target: Path) -> None:
        self.target = target
        try:
            target.mkdir(parents=True, exist_ok=True)
            self._fd = os.open(target, _ROOT_FLAGS)
        except OSError as err:
            raise _local_error(err, None, target) from err

    def close(self) -> None:
        if self._fd >= 0:
            fd, self._fd = self._fd, -1
            os.close(fd)

    def __enter__(self) -> LandingZone:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    @contextlib.contextmanager
    def _folder(self, planned: PlannedFile, *, create: bool) -> Iterator[int | None]:
        """A descriptor of the file's folder (None when it does not exist and ``create`` is false)."""
        fd = os.dup(self._fd)
        try:
            for depth, name in enumerate(planned.parts[:-1], start=1):
                if create:
                    with contextlib.suppress(FileExistsError):
                        os.mkdir(name, 0o777, dir_fd=fd)
                try:
                    child = os.open(name, _DIR_FLAGS, dir_fd=fd)
                except FileNotFoundError:
                    if create:
                        raise
                    os.close(fd)
                    fd = -1
                    yield None
                    return
                except OSError as err:
                    raise _component_error(err, planned, depth, _is_link(name, fd)) from err
                os.close(fd)
                fd = child
            yield fd
        finally:
            if fd >= 0:
                os.close(fd)

    def is_complete(self, planned: PlannedFile) -> bool:
        """A regular file (not a link) of the listed size is already there."""
        try:
            with self._folder(planned, create=False) as folder:
                if folder is None:
                    return False
                info = os.stat(planned.parts[-1], dir_fd=folder, follow_symlinks=False)
        except (OSError, StorageError):
            return False
        size = planned.obj.size
        return stat.S_ISREG(info.st_mode) and (size is None or info.st_size == size)

    def write(self, planned: PlannedFile, fill: Callable[[BinaryIO], None]) -> None:
        """Create a temporary file, let ``fill`` write it, check its size and rename it into place."""
        try:
            with self._folder(planned, create=True) as folder:
                assert folder is not None
                self._write_in(folder, planned, fill)
        except StorageError:
            raise
        except OSError as err:
            raise _local_error(err, planned.key, planned.path) from err

    def _write_in(self, folder: int, planned: PlannedFile, fill: Callable[[BinaryIO], None]) -> None:
        temp = partial_name()
        fd = os.open(temp, _FILE_FLAGS, 0o644, dir_fd=folder)
        try:
            with os.fdopen(fd, "wb") as fileobj:
                fill(fileobj)
                fileobj.flush()
                # Not tell(): parallel ranged writers seek around or write with pwrite.
                written = os.fstat(fileobj.fileno()).st_size
            size = planned.obj.size
            if size is not None and written != size:
                raise StorageError(f"{planned.obj.uri}: got {written} of {size} bytes; the transfer was cut short")
            try:
                os.replace(temp, planned.parts[-1], src_dir_fd=folder, dst_dir_fd=folder)
            except IsADirectoryError as err:
                raise DownloadConflictError(
                    f"object key {shown_key(planned.key)!r} would replace the folder {str(planned.path)!r}, "
                    "which appeared during the download"
                ) from err
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temp, dir_fd=folder)
            raise


def _is_link(name: str, folder: int) -> bool:
    try:
        return stat.S_ISLNK(os.stat(name, dir_fd=folder, follow_symlinks=False).st_mode)
    except OSError:
        return False


def _component_error(err: OSError, planned: PlannedFile, depth: int, is_link: bool) -> StorageError:
    """Linux answers ``ENOTDIR`` (not ``ELOOP``) for ``O_NOFOLLOW | O_DIRECTORY`` on a link to a folder."""
    local = "/".join(planned.parts[:depth])
    if err.errno == errno.ELOOP or is_link:
        return UnsafeObjectKeyError(
            f"object key {shown_key(planned.key)!r}: {local!r} below the target became a symbolic link after "
            "planning; downloads never follow links, so nothing was written there"
        )
    if err.errno == errno.ENOTDIR:
        return DownloadConflictError(
            f"object key {shown_key(planned.key)!r} needs {local!r} below the target to be a folder, but it is a "
            "file; remove it or choose another target"
        )
    return _local_error(err, planned.key, planned.path)


def _local_error(err: OSError, key: str | None, path: Path) -> StorageError:
    """The storage error for an `OSError` on local disk, naming the key (when there is one) and the path."""
    if isinstance(err, StorageError):
        return err
    what = f"object key {shown_key(key)!r} to {str(path)!r}" if key is not None else repr(str(path))
    reason = err.strerror or type(err).__name__
    if err.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return StoragePermissionError(f"cannot write {what}: {reason}; check the folder's owner and mode")
    if err.errno in (errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)):
        return StorageError(f"cannot write {what}: the disk is full ({reason}); free space and retry")
    if err.errno == errno.ENAMETOOLONG:
        return UnsafeObjectKeyError(f"cannot write {what}: a name is too long for this filesystem")
    if err.errno in (errno.ENOTDIR, errno.EISDIR, errno.EEXIST):
        return DownloadConflictError(f"cannot write {what}: a file and a folder collide there ({reason})")
    if err.errno == errno.ELOOP:
        return UnsafeObjectKeyError(f"cannot write {what}: a symbolic link is in the way; links are never followed")
    if err.errno == errno.ENOENT:
        return StorageError(f"cannot write {what}: a folder on the way was removed during the download")
    return StorageError(f"cannot write {what}: {reason}")
