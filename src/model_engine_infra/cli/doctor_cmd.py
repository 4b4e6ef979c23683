"""``doctor``: config check plus live probes of broker, storage, Redis, registry and secrets."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.live import Live
from rich.markup import escape
from rich.table import Table

from ..doctor import CHECKS, CheckResult, DoctorReport, diagnose
from ..errors import InvalidImageReferenceError

COLOURS = {"ok": "green", "warn": "yellow", "fail": "red", "skip": "dim"}


def doctor(
    config_path: Annotated[Path | None, typer.Option("--config", "-c", help="Config file to check.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
    offline: Annotated[bool, typer.Option("--offline", help="Only the checks that need no network.")] = False,
    timeout: Annotated[float, typer.Option(help="Seconds the live probes may take (they run at once).")] = 15.0,
    tag: Annotated[
        list[str] | None, typer.Option("--tag", help="Image tags to check, NAME=TAG (vllm=0.6.3); repeatable.")
    ] = None,
) -> None:
    """Preflight: exit 0 healthy, 1 failing, 2 warnings. Each failure says what to change."""
    from ..images.check import parse_tag_options

    try:
        image_tags = parse_tag_options(tag or [])
    except InvalidImageReferenceError as err:
        raise typer.BadParameter(str(err), param_hint="--tag") from None
    if as_json:
        report = diagnose(config_path, offline=offline, timeout=timeout, image_tags=image_tags)
        typer.echo(json.dumps(report.as_dict(), indent=2))
        raise typer.Exit(report.exit_code)
    console = Console()
    expected = CHECKS[:2] if offline else CHECKS
    seen: dict[str, CheckResult] = {}
    with Live(_progress(expected, seen), console=console, transient=True, auto_refresh=False) as live:

        def show(result: CheckResult) -> None:
            seen[result.name] = result
            live.update(_progress(expected, seen), refresh=True)

        report = diagnose(config_path, offline=offline, timeout=timeout, image_tags=image_tags, on_result=show)
    console.print(_judged(report), soft_wrap=True)
    console.print(_final_table(report))
    raise typer.Exit(report.exit_code)


def _progress(expected: tuple[str, ...], seen: dict[str, CheckResult]) -> Table:
    table = Table(title="model-engine-infra doctor", show_header=False, box=None)
    for name in expected:
        result = seen.get(name)
        mark = f"[{COLOURS[result.verdict]}]{result.verdict}[/]" if result else "[dim]…[/]"
        table.add_row(name, mark)
    return table


def _judged(report: DoctorReport) -> str:
    """Which provider and which configuration the verdicts are about."""
    provider = f"{report.provider} (from {report.provider_source})" if report.provider else "unknown (config error)"
    return escape(f"provider: {provider}; config: {', '.join(report.config_sources)}")


def _final_table(report: DoctorReport) -> Table:
    table = Table(title="model-engine-infra doctor")
    for column in ("check", "verdict", "details", "seconds"):
        table.add_column(column, overflow="fold")
    for r in report.results:
        details = f"{r.message}\nFix: {r.fix}" if r.fix else r.message
        table.add_row(r.name, f"[{COLOURS[r.verdict]}]{r.verdict}[/]", escape(details), f"{r.seconds:.2f}")
    return table
