"""``doctor``: config check plus live probes of broker, storage, Redis, registry and secrets."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from ..doctor import Doctor


def doctor(
    config_path: Annotated[Path | None, typer.Option("--config", "-c", help="Config file to check.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
    offline: Annotated[bool, typer.Option("--offline", help="Only the checks that need no network.")] = False,
    timeout: Annotated[float, typer.Option(help="Seconds each live probe may take.")] = 15.0,
    tag: Annotated[
        list[str] | None, typer.Option("--tag", help="Image tags to check, NAME=TAG (vllm=0.6.3); repeatable.")
    ] = None,
) -> None:
    """Preflight: exit 0 healthy, 1 failing, 2 warnings. Each failure says what to change."""
    from ..images.check import parse_tag_options

    report = Doctor(config_path, offline=offline, timeout=timeout, image_tags=parse_tag_options(tag or [])).run()
    if as_json:
        typer.echo(
            json.dumps({"exit_code": report.exit_code, "checks": [r.as_dict() for r in report.results]}, indent=2)
        )
        raise typer.Exit(report.exit_code)
    table = Table(title="model-engine-infra doctor")
    for column in ("check", "verdict", "details", "seconds"):
        table.add_column(column, overflow="fold")
    colours = {"ok": "green", "warn": "yellow", "fail": "red", "skip": "dim"}
    for r in report.results:
        table.add_row(r.name, f"[{colours[r.verdict]}]{r.verdict}[/]", r.message, f"{r.seconds:.2f}")
    Console().print(table)
    raise typer.Exit(report.exit_code)
