"""``storage ls``, ``storage cp`` and ``storage sign`` against the configured store (or local disk).

``cp`` into a local folder uses the artifact gateway's safe parallel download (temporary names,
keys checked, complete files skipped); from local disk to a store, its parallel upload (files and
parts at once, each object visible only when complete); store to store streams object by object
through the filesystem gateway. A URI argument that is malformed, or that the configured provider
cannot serve, is a usage error (exit 2); a URI that names nothing is a failure (exit 1), for ``ls``
as for ``cp``.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, BinaryIO, Literal

import typer
from rich.progress import BarColumn, DownloadColumn, TimeRemainingColumn, TransferSpeedColumn

from ..errors import InvalidURIError, ObjectNotFoundError
from ..storage.base import download_all
from ..storage.local import LocalArtifacts, LocalFilesystem
from ..storage.uri import parse_uri
from . import exit_codes
from .guard import BadParameter, GuardedGroup, UsageError
from .options import ConfigOption, JsonOption, load_cli_config
from .output import Output, description_column

if TYPE_CHECKING:
    from ..storage.base import FilesystemGateway, LLMArtifactGateway, ObjectInfo, Progress
    from ..storage.pump import SocketBody
    from ..storage.transfer import RangeSink

app = typer.Typer(
    cls=GuardedGroup,
    help="List, copy and sign objects in the configured store.",
    no_args_is_help=True,
    rich_markup_mode=None,
)

COPY_CHUNK = 1024 * 1024
SCHEMES = ("s3", "az", "gs", "file")
TYPO_SCHEMES = ("s3", "gs", "az", "azure", "file", "http", "https")
NOTHING_FIX = "check the bucket or container and the path; `storage ls` of the parent folder shows what is there"


@dataclasses.dataclass
class _Stores:
    """The configured provider's gateways, and local disk for local paths."""

    filesystem: FilesystemGateway
    artifacts: LLMArtifactGateway
    local_fs: FilesystemGateway = dataclasses.field(default_factory=LocalFilesystem)
    local_artifacts: LLMArtifactGateway = dataclasses.field(
        default_factory=lambda: LocalArtifacts(fine_tuned_weights_prefix="")
    )

    def for_uri(self, uri: str) -> tuple[FilesystemGateway, LLMArtifactGateway]:
        if is_local(uri):
            return self.local_fs, self.local_artifacts
        return self.filesystem, self.artifacts


def is_local(uri: str) -> bool:
    """A plain path or a ``file://`` URI: local disk, whatever the provider's default store is."""
    from ..storage.routing import scheme_of

    return scheme_of(uri) in (None, "file")


def checked_uri(uri: str, what: str) -> str:
    """``uri`` if a store can take it; a usage error (exit 2) otherwise.

    ``s3:/bucket`` (one slash) would otherwise be taken as a local path and list nothing; a scheme no
    store serves (``ftp://``) or a malformed bucket (``s3:///key``) is refused before any connection.
    """
    from ..registry import available_backends
    from ..storage.routing import scheme_of

    lowered = uri.lower()
    for typo in TYPO_SCHEMES:
        if lowered.startswith(f"{typo}:") and not lowered.startswith(f"{typo}://"):
            rest = uri[len(typo) + 1 :].lstrip("/")
            raise BadParameter(f"{uri!r} is not a URI: did you mean {typo}://{rest}?", param_hint=what)
    scheme = scheme_of(uri)
    if scheme is None:
        return uri  # a local path
    served = available_backends("store")
    if scheme not in served:
        accepted = ", ".join(f"{s}://" for s in served)
        raise BadParameter(
            f"no store serves {uri!r}: the accepted forms are {accepted} and local paths", param_hint=what
        )
    if scheme in SCHEMES:
        try:
            parse_uri(uri, accepts=SCHEMES, store="the storage CLI")
        except InvalidURIError as err:
            raise BadParameter(str(err), param_hint=what) from None
    return uri


@contextmanager
def _session(config_path: Path | None) -> Iterator[_Stores]:
    """The configured gateways, closed afterwards; a URI they cannot serve is a usage error."""
    from ..infra import build_infra

    config = load_cli_config(config_path)
    with build_infra(config) as infra:
        try:
            yield _Stores(infra.filesystem, infra.artifacts)
        except InvalidURIError as err:  # every URI here came from the command line
            raise UsageError(str(err)) from None


def _transfer_progress(out: Output) -> Any:
    return out.progress(
        description_column(), BarColumn(), DownloadColumn(), TransferSpeedColumn(), TimeRemainingColumn()
    )


def _nothing_at(uri: str) -> ObjectNotFoundError:
    return ObjectNotFoundError(f"nothing at or under {uri}: no such object or folder. Fix: {NOTHING_FIX}")


@app.command("ls")
def ls(
    uri: Annotated[
        str, typer.Argument(metavar="URI", help="A folder or object: s3://, az://, gs://, file:// or a path.")
    ],
    config_path: ConfigOption = None,
    as_json: JsonOption = False,
) -> None:
    """List every object under URI (a folder: ``models/llama`` never matches ``models/llama-2``).

    Exit 0 when something is listed, 1 when nothing is at or under URI, 2 for a malformed URI.
    """
    out = Output(as_json=as_json)
    checked_uri(uri, "URI")
    with _session(config_path) as stores:
        _, artifacts = stores.for_uri(uri)
        objects = artifacts.list_objects(uri)
    if not objects:
        raise _nothing_at(uri)
    if as_json:
        listed = [{"uri": o.uri, "key": o.key, "size": o.size} for o in objects]
        out.emit_json({"ok": True, "exit_code": exit_codes.OK, "uri": uri, "objects": listed})
        return
    for obj in objects:
        size = "?" if obj.size is None else str(obj.size)
        out.print(f"{size:>14}  {obj.uri}")


@dataclasses.dataclass
class CopyReport:
    """What ``cp`` did to each object: ``copied`` or ``skipped`` (already complete at the destination)."""

    source: str
    destination: str
    objects: list[dict[str, Any]] = dataclasses.field(default_factory=list)

    def count(self, state: str) -> int:
        return sum(1 for o in self.objects if o["state"] == state)

    @property
    def bytes_copied(self) -> int:
        return sum(o["size"] or 0 for o in self.objects if o["state"] == "copied")

    def as_dict(self) -> dict[str, Any]:
        return {
            "ok": True,
            "exit_code": exit_codes.OK,
            "source": self.source,
            "destination": self.destination,
            "copied": self.count("copied"),
            "skipped": self.count("skipped"),
            "bytes_copied": self.bytes_copied,
            "objects": self.objects,
        }

    def summary(self) -> str:
        line = f"copied {self.count('copied')} object(s), {self.bytes_copied:,} bytes"
        skipped = self.count("skipped")
        if skipped:
            line += f"; skipped {skipped} already complete at the destination (--overwrite replaces them)"
        return line


@app.command("cp")
def cp(
    src: Annotated[str, typer.Argument(metavar="SRC", help="Source object or folder (remote or local).")],
    dst: Annotated[str, typer.Argument(metavar="DST", help="Destination object or folder (remote or local).")],
    overwrite: Annotated[bool, typer.Option(help="Replace complete local files of the same size.")] = False,
    concurrency: Annotated[
        int | None,
        typer.Option(
            min=1,
            max=256,
            help="Requests in flight, shared by files and the parts of large files (default: storage_max_concurrency).",
        ),
    ] = None,
    config_path: ConfigOption = None,
    as_json: JsonOption = False,
) -> None:
    """Copy SRC to DST (either side local) with a progress bar; folders are copied recursively.

    Into a local folder, files already complete (same size) are skipped unless --overwrite.
    Exit 0 when done, 1 when SRC names nothing or a transfer fails, 2 for a malformed URI.
    """
    out = Output(as_json=as_json)
    checked_uri(src, "SRC")
    checked_uri(dst, "DST")
    with _session(config_path) as stores:
        _, src_artifacts = stores.for_uri(src)
        objects = src_artifacts.list_objects(src)
        if not objects:
            raise _nothing_at(src)
        single = len(objects) == 1 and objects[0].uri == src
        report = CopyReport(src, dst)
        with _transfer_progress(out) as progress:
            task = progress.add_task(f"{src} -> {dst}", total=sum(o.size or 0 for o in objects))

            def advance(n: int) -> None:
                progress.advance(task, n)

            if is_local(dst):
                target = Path(parse_uri(dst, accepts=("file",), store="local disk").key)
                into = dst.endswith("/")  # Path() drops the slash that says "a folder"
                _download(src_artifacts, target, objects, single, overwrite, concurrency, advance, into, report)
            elif is_local(src):
                source = Path(parse_uri(src, accepts=("file",), store="local disk").key)
                _upload(stores.for_uri(dst)[1], source, dst, concurrency, advance, report)
            else:
                _stream_copy(stores, objects, dst, single, advance, report)
    if as_json:
        out.emit_json(report.as_dict())
    else:
        out.print(report.summary())


def _download(
    artifacts: LLMArtifactGateway,
    dst: Path,
    objects: list[ObjectInfo],
    single: bool,
    overwrite: bool,
    concurrency: int | None,
    progress: Callable[[int], None],
    into_folder: bool,
    report: CopyReport,
) -> None:
    """Through the shared safe engine; whatever it does not fetch was already complete (skipped)."""
    if single:
        dest = dst / objects[0].key if dst.is_dir() or into_folder else dst
        objects = [dataclasses.replace(objects[0], key=dest.name)]
        dst = dest.parent
    fetched: set[str] = set()
    lock = threading.Lock()
    # The store's primitives under the shared safe engine (as `download_objects` runs them), each
    # noting what it fetched: a large object goes in ranges, the rest whole.
    primitive, ranges, opener = artifacts._download_object, artifacts._range_reader(), artifacts._range_opener()

    def fetch(obj: ObjectInfo, fileobj: BinaryIO, on_bytes: Progress | None) -> None:
        primitive(obj, fileobj, on_bytes)
        with lock:
            fetched.add(obj.uri)

    def read_range(obj: ObjectInfo, start: int, stop: int, sink: RangeSink) -> None:
        assert ranges is not None
        ranges(obj, start, stop, sink)
        with lock:
            fetched.add(obj.uri)

    def open_range(obj: ObjectInfo, sink: RangeSink) -> SocketBody | None:
        assert opener is not None
        body = opener(obj, sink)
        with lock:
            fetched.add(obj.uri)
        return body

    paths = download_all(
        objects,
        dst,
        fetch,
        overwrite=overwrite,
        max_concurrency=artifacts.transfer.concurrency(concurrency),
        progress=progress,
        read_range=read_range if ranges is not None else None,
        open_range=open_range if opener is not None else None,
        settings=artifacts.transfer,
    )
    for obj, path in zip(objects, paths, strict=True):
        state = "copied" if obj.uri in fetched else "skipped"
        report.objects.append({"source": obj.uri, "destination": path, "size": obj.size, "state": state})


def _upload(
    artifacts: LLMArtifactGateway,
    source: Path,
    dst: str,
    concurrency: int | None,
    progress: Progress,
    report: CopyReport,
) -> None:
    """The store's parallel upload; every planned file is sent (uploads skip nothing)."""
    from ..storage.uploads import plan_uploads

    planned = plan_uploads(source, dst)
    artifacts.upload_files(source, dst, max_concurrency=concurrency, progress=progress)
    for item in planned:
        report.objects.append({"source": str(item.path), "destination": item.uri, "size": item.size, "state": "copied"})


def _stream_copy(
    stores: _Stores,
    objects: list[ObjectInfo],
    dst: str,
    single: bool,
    progress: Callable[[int], None],
    report: CopyReport,
) -> None:
    """Object by object through the streams: each lands whole on close or not at all."""
    for obj in objects:
        src_fs, _ = stores.for_uri(obj.uri)
        if single:
            target = f"{dst.rstrip('/')}/{obj.key}" if dst.endswith("/") else dst
        else:
            target = f"{dst.rstrip('/')}/{obj.key}"
        dst_fs, _ = stores.for_uri(target)
        with src_fs.open(obj.uri, "rb") as source, dst_fs.open(target, "wb") as sink:
            while chunk := source.read(COPY_CHUNK):
                sink.write(chunk)
                progress(len(chunk))
        report.objects.append({"source": obj.uri, "destination": target, "size": obj.size, "state": "copied"})


@app.command("sign")
def sign(
    uri: Annotated[str, typer.Argument(metavar="URI", help="The object to sign a URL for.")],
    expiration: Annotated[
        int, typer.Option(min=1, max=7 * 24 * 3600, help="Seconds the URL stays valid (at most 7 days).")
    ] = 3600,
    method: Annotated[
        Literal["GET", "PUT"], typer.Option(case_sensitive=False, help="GET to download, PUT to upload.")
    ] = "GET",
    config_path: ConfigOption = None,
    as_json: JsonOption = False,
) -> None:
    """Print a signed URL (S3 presigned, Azure SAS, GCS V4; a file:// URL for local disk). Exit 0, 1 or 2."""
    out = Output(as_json=as_json)
    checked_uri(uri, "URI")
    with _session(config_path) as stores:
        filesystem, _ = stores.for_uri(uri)
        url = filesystem.generate_signed_url(uri, expiration=expiration, method=method.upper())
    if as_json:
        document = {"ok": True, "exit_code": exit_codes.OK, "uri": uri, "method": method.upper()}
        out.emit_json({**document, "expires_in": expiration, "url": url})
    else:
        typer.echo(url)
