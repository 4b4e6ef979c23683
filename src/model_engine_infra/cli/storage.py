"""``storage ls``, ``storage cp`` and ``storage sign`` against the configured store (or local disk).

``cp`` into a local folder uses the artifact gateway's safe parallel download (temporary names,
keys checked); from local disk to a store, its parallel upload (files and parts at once, each
object visible only when complete); store to store streams object by object through the
filesystem gateway.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional

import typer
from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn, TransferSpeedColumn

from ..config import load_config
from ..errors import InfraError
from ..storage.local import LocalArtifacts, LocalFilesystem
from ..storage.uri import parse_uri

if TYPE_CHECKING:
    from ..storage.base import FilesystemGateway, LLMArtifactGateway, ObjectInfo

app = typer.Typer(help="List, copy and sign objects in the configured store.", no_args_is_help=True)

ConfigOption = Annotated[
    Optional[Path],  # noqa: UP045  (typer reads the annotation at run time)
    typer.Option(
        "--config", "-c", help="Config file (default: ML_INFRA_SERVICES_CONFIG_PATH / DEPLOY_SERVICE_CONFIG_PATH)."
    ),
]
EXIT_ERROR = 1
EXIT_USAGE = 2
COPY_CHUNK = 1024 * 1024


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
    return parse_uri(uri, accepts=("s3", "az", "gs", "file"), store="the storage CLI").scheme == "file"


@contextmanager
def _session(config_path: Path | None, console: Console) -> Iterator[_Stores]:
    """Build the configured gateways once; any library error becomes a one-line message and exit 1."""
    from ..infra import build_infra

    try:
        config = load_config(config_path)
        with build_infra(config) as infra:
            yield _Stores(infra.filesystem, infra.artifacts)
    except InfraError as err:
        console.print(f"[red]error:[/red] {err}")
        raise typer.Exit(EXIT_ERROR) from None
    except ValueError as err:
        console.print(f"[red]error:[/red] {err}")
        raise typer.Exit(EXIT_USAGE) from None


def _progress(console: Console) -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=False,
    )


@app.command("ls")
def ls(
    uri: Annotated[str, typer.Argument(help="A folder or object: s3://, az://, gs://, file:// or a path.")],
    config_path: ConfigOption = None,
) -> None:
    """List every object under URI (a folder: ``models/llama`` never matches ``models/llama-2``)."""
    console = Console()
    with _session(config_path, console) as stores:
        _, artifacts = stores.for_uri(uri)
        for obj in artifacts.list_objects(uri):
            size = "?" if obj.size is None else str(obj.size)
            console.print(f"{size:>14}  {obj.uri}", highlight=False, soft_wrap=True)


@app.command("cp")
def cp(
    src: Annotated[str, typer.Argument(help="Source object or folder (remote or local).")],
    dst: Annotated[str, typer.Argument(help="Destination object or folder (remote or local).")],
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
) -> None:
    """Copy SRC to DST (either side local) with a progress bar; folders are copied recursively."""
    console = Console(stderr=True)
    with _session(config_path, console) as stores:
        _, src_artifacts = stores.for_uri(src)
        objects = src_artifacts.list_objects(src)
        if not objects:
            console.print(f"[red]error:[/red] nothing at or under {src}")
            raise typer.Exit(EXIT_ERROR)
        single = len(objects) == 1 and objects[0].uri == src
        with _progress(console) as progress:
            task = progress.add_task(f"{src} -> {dst}", total=sum(o.size or 0 for o in objects))

            def advance(n: int) -> None:
                progress.advance(task, n)

            if is_local(dst):
                target = Path(parse_uri(dst, accepts=("file",), store="local disk").key)
                into = dst.endswith("/")  # Path() drops the slash that says "a folder"
                _download(src_artifacts, src, target, objects, single, overwrite, concurrency, advance, into)
            elif is_local(src):
                source = Path(parse_uri(src, accepts=("file",), store="local disk").key)
                _, dst_artifacts = stores.for_uri(dst)
                dst_artifacts.upload_files(source, dst, max_concurrency=concurrency, progress=advance)
            else:
                _stream_copy(stores, objects, dst, single, advance)
    console.print(f"copied {len(objects)} object(s)")


def _download(
    artifacts: LLMArtifactGateway,
    src: str,
    dst: Path,
    objects: list[ObjectInfo],
    single: bool,
    overwrite: bool,
    concurrency: int | None,
    progress: Callable[[int], None],
    into_folder: bool = False,
) -> None:
    if not single:
        artifacts.download_files(src, dst, overwrite, max_concurrency=concurrency, progress=progress)
        return
    dest = dst / objects[0].key if dst.is_dir() or into_folder else dst
    named = dataclasses.replace(objects[0], key=dest.name)
    artifacts.download_objects([named], dest.parent, overwrite, max_concurrency=concurrency, progress=progress)


def _stream_copy(
    stores: _Stores, objects: list[ObjectInfo], dst: str, single: bool, progress: Callable[[int], None]
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


@app.command("sign")
def sign(
    uri: Annotated[str, typer.Argument(help="The object to sign a URL for.")],
    expiration: Annotated[int, typer.Option(help="Seconds the URL stays valid (at most 7 days).")] = 3600,
    method: Annotated[str, typer.Option(help="GET to download, PUT to upload.")] = "GET",
    config_path: ConfigOption = None,
) -> None:
    """Print a signed URL (S3 presigned, Azure SAS, GCS V4; a file:// URL for local disk)."""
    console = Console(stderr=True)
    with _session(config_path, console) as stores:
        filesystem, _ = stores.for_uri(uri)
        url = filesystem.generate_signed_url(uri, expiration=expiration, method=method)
    typer.echo(url)
