"""``demo``: the main job — a tour of every component, on the local provider by default."""

from __future__ import annotations

from typing import Annotated

import typer

from ..ops.tour import Step, Tour
from . import exit_codes
from .options import ConfigOption, JsonOption, load_cli_config
from .output import Output, styled


def demo(
    config_path: ConfigOption = None,
    tasks: Annotated[int, typer.Option(min=1, max=10_000, help="How many inference-like tasks to send.")] = 5,
    as_json: JsonOption = False,
) -> None:
    """Create an endpoint queue, run a Celery worker, send tasks, write and download artifacts.

    Exit 0 when every step passed, 1 when one failed, 2 for a bad command line (--tasks 0).
    """
    out = Output(as_json=as_json)
    config = load_cli_config(config_path, implicit_local_ok=True)  # the local provider is the demo's point

    def show(step: Step) -> None:
        mark = styled("-", "dim") if step.skipped else styled("✓", "green") if step.ok else styled("✗", "red")
        out.info(mark, f" {step.name} ", styled(f"({step.seconds:.2f} s)", "dim"))

    tour = Tour(config, config_path=str(config_path) if config_path else None, n_tasks=tasks, on_step=show)
    out.info(f"model-engine-infra demo on {config.cloud_provider} (state in {config.local_data_dir})")
    report = tour.run()
    code = exit_codes.OK if report.ok else exit_codes.FAILURE
    if as_json:
        steps = [
            {"name": s.name, "ok": s.ok, "skipped": s.skipped, "detail": s.detail, "seconds": round(s.seconds, 3)}
            for s in report.steps
        ]
        out.emit_json(
            {
                "ok": report.ok,
                "exit_code": code,
                "provider": report.provider,
                "seconds": round(report.total_seconds, 3),
                "steps": steps,
            }
        )
        raise typer.Exit(code)
    title = f"demo on {report.provider}: {'OK' if report.ok else 'FAILED'} in {report.total_seconds:.1f} s"
    rows = [(styled(s.name, _colour(s)), s.detail, f"{s.seconds:.2f}") for s in report.steps]
    out.table(title, ("step", "result", "seconds"), rows)
    raise typer.Exit(code)


def _colour(step: Step) -> str:
    return "dim" if step.skipped else "green" if step.ok else "red"
