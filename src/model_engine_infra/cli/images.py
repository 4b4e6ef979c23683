"""``images check`` and ``images mirror``: catch never-mirrored images before endpoints hang."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated, Any, Optional

import typer
from rich.progress import DownloadColumn, SpinnerColumn, TransferSpeedColumn

from ..config.model import PUBLIC_DEFAULT_REGISTRY
from . import exit_codes
from .guard import BadParameter, GuardedGroup, UsageError
from .options import ConfigOption, JsonOption, load_cli_config
from .output import Output, description_column, styled, verdict

if TYPE_CHECKING:
    from ..config.model import InfraConfig
    from ..images.distribution import CredentialSource
    from ..images.mirror import MirrorProgress

app = typer.Typer(
    cls=GuardedGroup,
    help="Check and mirror the deployment's images.",
    no_args_is_help=True,
    rich_markup_mode=None,
)

TagOption = Annotated[
    Optional[list[str]],  # noqa: UP045
    typer.Option(
        "--tag",
        help="NAME=TAG for images whose tag the config does not hold: vllm, tensorrt-llm, batch; "
        "model-engine overrides the chart's tag. Repeatable.",
    ),
]


def tag_options(tag: list[str] | None) -> dict[str, str]:
    """``--tag`` values parsed; a malformed one is a usage error (exit 2)."""
    from ..errors import InvalidImageReferenceError
    from ..images.check import parse_tag_options

    try:
        return parse_tag_options(tag or [])
    except InvalidImageReferenceError as err:
        raise BadParameter(str(err), param_hint="--tag") from None


@app.command("check")
def check(config_path: ConfigOption = None, tag: TagOption = None, as_json: JsonOption = False) -> None:
    """Ask the registry for every image the deployment refers to.

    Exit 0 when all are found, 1 when any is missing or could not be checked, 2 for a bad --tag.
    """
    from ..images.check import check_images, deployment_images, repository_factory
    from ..infra import build_infra

    out = Output(as_json=as_json)
    tags = tag_options(tag)
    config = load_cli_config(config_path)
    with build_infra(config) as infra:
        rows = check_images(deployment_images(config, tags), infra.docker_repository, repository_factory(config))
    code = exit_codes.FAILURE if any(row.status != "found" for row in rows) else exit_codes.OK
    if as_json:
        images = [{"roles": list(r.roles), "image": r.reference, "status": r.status, "detail": r.detail} for r in rows]
        out.emit_json(
            {
                "ok": code == exit_codes.OK,
                "exit_code": code,
                "provider": config.cloud_provider,
                "docker_repo_prefix": config.docker_repo_prefix,
                "images": images,
            }
        )
        raise typer.Exit(code)
    title = f"images for {config.cloud_provider} (docker_repo_prefix {config.docker_repo_prefix})"
    table_rows = [(", ".join(r.roles), r.reference, verdict(r.status), r.detail) for r in rows]
    out.table(title, ("used by", "image", "status", "detail"), table_rows)
    if any(row.status == "missing" for row in rows):
        out.print(
            styled("Missing images make endpoints hang in INITIALIZING. ", "red"),
            "Mirror them first: model-engine-infra images mirror --from-config --tag NAME=TAG ...",
        )
    elif code != exit_codes.OK:
        out.print(styled("Some images could not be checked; ", "yellow"), "the detail column says why.")
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
    as_json: JsonOption = False,
) -> None:
    """Copy images (multi-platform indexes included) registry to registry; a second run copies nothing.

    Exit 0 when every image is at the target, 1 when one could not be copied, 2 for a bad command line.
    """
    from ..images.distribution import RegistryClient
    from ..images.mirror import default_credentials, mirror

    out = Output(as_json=as_json)
    tags = tag or []
    tag_options(tags)  # a malformed --tag is a usage error before anything is contacted
    config = load_cli_config(config_path) if (config_path is not None or from_config) else None
    images = list(image or [])
    if from_config:
        assert config is not None
        source = source or PUBLIC_DEFAULT_REGISTRY
        target = target or config.docker_repo_prefix
        images += config_images(config, tags, (source, target))
    if not source or not target or not images:
        raise UsageError("give --from, --to and at least one --image (or --from-config)")
    insecure = (*(config.insecure_registries if config else ()), *(insecure_registry or ()))
    ca = ca_bundle or (config.registry_ca_bundle if config else None)
    src_host, dst_host = _host(source), _host(target)
    src_login = _login(from_username, from_password) or default_credentials(src_host, config)
    same = src_host == dst_host and to_username is None
    dst_login = None if same else (_login(to_username, to_password) or default_credentials(dst_host, config))
    common: dict[str, Any] = {
        "insecure_registries": insecure,
        "ca_bundle": ca,
        "trusted_auth_hosts": config.registry_trusted_auth_hosts if config else (),
    }
    src_client = RegistryClient(src_host, credentials=src_login, credentials_hint=_flags_hint("from"), **common)
    dst_client = (
        src_client
        if same
        else RegistryClient(dst_host, credentials=dst_login, credentials_hint=_flags_hint("to"), **common)
    )
    try:
        with _progress(out) as on_event:
            results = mirror(
                images,
                source=source,
                target=target,
                progress=on_event,
                concurrency=concurrency,
                prepare_target=_prepare_target(target, config),
                source_client=src_client,
                target_client=dst_client,
            )
    finally:
        src_client.close()
        if dst_client is not src_client:
            dst_client.close()
    if as_json:
        listed = [
            {
                "image": r.target,
                "digest": r.digest,
                "state": "up to date" if r.up_to_date else "copied",
                "blobs_copied": r.blobs_copied,
                "blobs_skipped": r.blobs_skipped,
                "blobs_mounted": r.blobs_mounted,
                "bytes_copied": r.bytes_copied,
            }
            for r in results
        ]
        out.emit_json({"ok": True, "exit_code": exit_codes.OK, "source": source, "target": target, "images": listed})
        return
    rows = [
        (
            r.target,
            r.digest[:19],
            "up to date" if r.up_to_date else "copied",
            str(r.blobs_copied),
            str(r.blobs_skipped),
            str(r.blobs_mounted),
            f"{r.bytes_copied:,}",
        )
        for r in results
    ]
    columns = ("image", "digest", "state", "blobs copied", "skipped", "mounted", "bytes")
    out.table(f"mirrored {source} -> {target}", columns, rows)


def _flags_hint(side: str) -> str:
    """Where ``images mirror`` takes this side's login: its own flags, not config keys."""
    var = f"MODEL_ENGINE_INFRA_MIRROR_{side.upper()}"
    return f"--{side}-username/--{side}-password (or {var}_USERNAME/{var}_PASSWORD)"


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
    """A progress display fed by mirror events (called from worker threads; rich is thread-safe)."""

    def __init__(self, out: Output) -> None:
        self.progress = out.progress(
            SpinnerColumn(), description_column(), DownloadColumn(), TransferSpeedColumn(), transient=True
        )
        self.task = self.progress.add_task("mirroring", total=None)
        self.counts = {"copied": 0, "skipped": 0, "mounted": 0}

    def __enter__(self) -> Callable[[MirrorProgress], None]:
        self.progress.start()
        return self.on_event

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
