"""``images check`` and ``images mirror``: catch never-mirrored images before endpoints hang."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional

import typer
from rich.console import Console
from rich.progress import DownloadColumn, Progress, SpinnerColumn, TextColumn, TransferSpeedColumn
from rich.table import Table

from ..config import load_config
from ..config.model import PUBLIC_DEFAULT_REGISTRY
from ..errors import InfraError

if TYPE_CHECKING:
    from ..config.model import InfraConfig
    from ..images.distribution import CredentialSource
    from ..images.mirror import MirrorProgress

app = typer.Typer(help="Check and mirror the deployment's images.", no_args_is_help=True)

ConfigOption = Annotated[
    Optional[Path],  # noqa: UP045  (typer reads the annotation at run time)
    typer.Option(
        "--config", "-c", help="Config file (default: ML_INFRA_SERVICES_CONFIG_PATH / DEPLOY_SERVICE_CONFIG_PATH)."
    ),
]
TagOption = Annotated[
    Optional[list[str]],  # noqa: UP045
    typer.Option(
        "--tag",
        help="NAME=TAG for images whose tag the config does not hold: vllm, tensorrt-llm, batch; "
        "model-engine overrides the chart's tag. Repeatable.",
    ),
]
EXIT_OK, EXIT_MISSING, EXIT_ERROR = 0, 1, 2
STATUS_STYLE = {"found": "[green]found[/green]", "missing": "[red]missing[/red]", "error": "[yellow]error[/yellow]"}


@app.command("check")
def check(config_path: ConfigOption = None, tag: TagOption = None) -> None:
    """Ask the registry for every image the deployment refers to. Exit 1 if any is missing, 2 on errors."""
    from ..images.check import (
        check_images,
        deployment_images,
        parse_tag_options,
        repository_factory,
        summary_exit_code,
    )
    from ..infra import build_infra

    console = Console()
    try:
        config = load_config(config_path)
        tags = parse_tag_options(tag or [])
        with build_infra(config) as infra:
            rows = check_images(deployment_images(config, tags), infra.docker_repository, repository_factory(config))
    except InfraError as err:
        console.print(f"[red]error:[/red] {err}")
        raise typer.Exit(EXIT_ERROR) from None
    table = Table(title=f"images for {config.cloud_provider} (docker_repo_prefix {config.docker_repo_prefix})")
    for column in ("used by", "image", "status", "detail"):
        table.add_column(column, overflow="fold")
    for row in rows:
        table.add_row(", ".join(row.roles), row.reference, STATUS_STYLE[row.status], row.detail)
    console.print(table)
    code = summary_exit_code(rows)
    if code == EXIT_MISSING:
        console.print(
            "[red]Missing images make endpoints hang in INITIALIZING.[/red] Mirror them first: "
            "model-engine-infra images mirror --from-config --tag NAME=TAG ..."
        )
    raise typer.Exit(code)


@app.command("mirror")
def mirror_command(
    source: Annotated[Optional[str], typer.Option("--from", help="Source REGISTRY or REGISTRY/PREFIX.")] = None,  # noqa: UP045
    target: Annotated[Optional[str], typer.Option("--to", help="Target REGISTRY or REGISTRY/PREFIX.")] = None,  # noqa: UP045
    image: Annotated[
        Optional[list[str]],  # noqa: UP045
        typer.Option("--image", help="NAME:TAG relative to the prefixes. Repeatable."),
    ] = None,
    from_config: Annotated[
        bool,
        typer.Option(
            "--from-config",
            help=f"Mirror the deployment's own images; --from defaults to {PUBLIC_DEFAULT_REGISTRY}, "
            "--to to docker_repo_prefix.",
        ),
    ] = False,
    config_path: ConfigOption = None,
    tag: TagOption = None,
    from_username: Annotated[Optional[str], typer.Option(envvar="MODEL_ENGINE_INFRA_MIRROR_FROM_USERNAME")] = None,  # noqa: UP045
    from_password: Annotated[
        Optional[str], typer.Option(envvar="MODEL_ENGINE_INFRA_MIRROR_FROM_PASSWORD", show_default=False)  # noqa: UP045
    ] = None,
    to_username: Annotated[Optional[str], typer.Option(envvar="MODEL_ENGINE_INFRA_MIRROR_TO_USERNAME")] = None,  # noqa: UP045
    to_password: Annotated[
        Optional[str], typer.Option(envvar="MODEL_ENGINE_INFRA_MIRROR_TO_PASSWORD", show_default=False)  # noqa: UP045
    ] = None,
    insecure_registry: Annotated[
        Optional[list[str]],  # noqa: UP045
        typer.Option("--insecure-registry", help="Allow plain HTTP to this host[:port] (besides localhost)."),
    ] = None,
    ca_bundle: Annotated[Optional[str], typer.Option(help="PEM CA bundle for private registries.")] = None,  # noqa: UP045
    concurrency: Annotated[int, typer.Option(min=1, max=32, help="Blobs copied in parallel.")] = 6,
) -> None:
    """Copy images (multi-platform indexes included) registry to registry; a second run copies nothing."""
    from ..images.mirror import default_credentials, mirror

    console = Console()
    try:
        config = load_config(config_path) if (config_path is not None or from_config) else None
        images = list(image or [])
        if from_config:
            assert config is not None
            source = source or PUBLIC_DEFAULT_REGISTRY
            target = target or config.docker_repo_prefix
            images += config_images(config, tag or [], (source, target))
        if not source or not target or not images:
            console.print("[red]error:[/red] give --from, --to and at least one --image (or --from-config)")
            raise typer.Exit(EXIT_ERROR)
        insecure = (*(config.insecure_registries if config else ()), *(insecure_registry or ()))
        ca = ca_bundle or (config.registry_ca_bundle if config else None)
        src_host, dst_host = _host(source), _host(target)
        src_login = _login(from_username, from_password) or default_credentials(src_host, config)
        same = src_host == dst_host and to_username is None
        dst_login = None if same else (_login(to_username, to_password) or default_credentials(dst_host, config))
        prepare = _prepare_target(target, config)
        with _progress(console) as (progress, on_event):
            results = mirror(
                images,
                source=source,
                target=target,
                source_credentials=src_login,
                target_credentials=dst_login,
                insecure_registries=insecure,
                trusted_auth_hosts=config.registry_trusted_auth_hosts if config else (),
                ca_bundle=ca,
                progress=on_event,
                concurrency=concurrency,
                prepare_target=prepare,
            )
            progress.stop()
    except InfraError as err:
        console.print(f"[red]error:[/red] {err}")
        raise typer.Exit(EXIT_ERROR) from None
    table = Table(title=f"mirrored {source} -> {target}")
    for column in ("image", "digest", "state", "blobs copied", "skipped", "mounted", "bytes"):
        table.add_column(column, overflow="fold")
    for result in results:
        state = "up to date" if result.up_to_date else "copied"
        table.add_row(
            result.target,
            result.digest[:19],
            state,
            str(result.blobs_copied),
            str(result.blobs_skipped),
            str(result.blobs_mounted),
            f"{result.bytes_copied:,}",
        )
    console.print(table)


def config_images(config: InfraConfig, tag_options: list[str], prefixes: tuple[str, str]) -> list[str]:
    """``NAME:TAG`` for the deployment's images, names relative to the registry prefixes."""
    from ..errors import InvalidImageReferenceError
    from ..images.check import deployment_images, parse_tag_options
    from ..images.reference import split_repository

    names: list[str] = []
    known = (*prefixes, config.docker_repo_prefix, PUBLIC_DEFAULT_REGISTRY)
    for ref in deployment_images(config, parse_tag_options(tag_options)):
        if ref.tag is None:
            role = "model-engine" if ref.roles[0] in ("gateway", "builder", "cacher", "forwarder") else ref.roles[0]
            raise InvalidImageReferenceError(
                f"no tag for {', '.join(ref.roles)} ({ref.repository}): pass --tag {role}=TAG"
            )
        name = ref.repository
        for prefix in known:
            stem = prefix.strip().rstrip("/") + "/"
            if name.startswith(stem):
                name = name[len(stem) :]
                break
        else:
            host, path = split_repository(name)
            if host is not None:  # another registry: keep the path, drop the host
                name = path
        entry = f"{name}:{ref.tag}"
        if entry not in names:
            names.append(entry)
    return names


def _host(prefix: str) -> str:
    return prefix.strip().split("/", 1)[0].lower()


def _login(username: str | None, password: str | None) -> CredentialSource | None:
    if username is None:
        return None
    from ..images.distribution import StaticCredentials

    return StaticCredentials(username, password or "")


def _prepare_target(target: str, config: InfraConfig | None) -> Callable[[str], None] | None:
    """ECR needs repositories created before a push; other registries create them on push."""
    from ..images.reference import infer_registry_type

    if infer_registry_type(target) != "ecr":
        return None
    from ..images.ecr import ECRDockerRepository

    region, profile = (config.default_region, config.aws_profile) if config else ("us-east-1", None)
    return ECRDockerRepository(target, region=region, profile=profile).ensure_repository


class _progress:
    """A rich progress bar fed by mirror events (called from worker threads; rich is thread-safe)."""

    def __init__(self, console: Console) -> None:
        self.progress = Progress(
            SpinnerColumn(),
            TextColumn("{task.description}"),
            DownloadColumn(),
            TransferSpeedColumn(),
            console=console,
            transient=True,
        )
        self.task = self.progress.add_task("mirroring", total=None)
        self.counts = {"copied": 0, "skipped": 0, "mounted": 0}

    def __enter__(self) -> tuple[Progress, Callable[[MirrorProgress], None]]:
        self.progress.start()
        return self.progress, self.on_event

    def __exit__(self, *exc: object) -> None:
        self.progress.stop()

    def on_event(self, event: MirrorProgress) -> None:
        if event.event == "bytes":
            self.progress.advance(self.task, event.transferred)
            return
        kind = event.event.removeprefix("blob_")
        if kind in self.counts:
            self.counts[kind] += 1
        summary = ", ".join(f"{n} {k}" for k, n in self.counts.items())
        self.progress.update(self.task, description=f"{event.image} (blobs: {summary})")
