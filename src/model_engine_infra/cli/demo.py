"""``demo``: the main job — a tour of every component, on the local provider by default."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from ..config import load_config
from ..errors import ConfigError, InfraError
from ..ops.tour import Step, Tour


def demo(
    config_path: Annotated[
        Path | None, typer.Option("--config", "-c", help="Run the tour against this configuration instead.")
    ] = None,
    tasks: Annotated[int, typer.Option(help="How many inference-like tasks to send.")] = 5,
) -> None:
    """Create an endpoint queue, run a Celery worker, send tasks, write and download artifacts."""
    console = Console()
    try:
        config = load_config(config_path)
        tour = Tour(config, config_path=str(config_path) if config_path else None, n_tasks=tasks, on_step=_show)
    except (ConfigError, InfraError) as err:
        console.print(f"[red]error:[/red] {err}")
        raise typer.Exit(1) from None

    console.print(f"model-engine-infra demo on [bold]{config.cloud_provider}[/bold] (state in {config.local_data_dir})")
    report = tour.run()
    table = Table(title=f"demo on {report.provider}: {'OK' if report.ok else 'FAILED'} in {report.total_seconds:.1f} s")
    for column in ("step", "result", "seconds"):
        table.add_column(column, overflow="fold")
    for step in report.steps:
        colour = "green" if step.ok else "red"
        table.add_row(f"[{colour}]{step.name}[/]", step.detail, f"{step.seconds:.2f}")
    console.print(table)
    if not report.ok:
        raise typer.Exit(1)


def _show(step: Step) -> None:
    mark = "[green]✓[/green]" if step.ok else "[red]✗[/red]"
    Console().print(f"{mark} {step.name} [dim]({step.seconds:.2f} s)[/dim]")
