"""``doctor``: the config check, then live probes of every component (docs/doctor.md lists them).

The checking is `ops.doctor.diagnose`; this module only renders its report: live progress on
stderr in a terminal, then the provider, the config source and the table (plain lines in a pipe),
or one JSON document with ``--json``. The exit code is `exit_codes.from_verdicts` of the checks.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.live import Live
from rich.table import Table

from ..ops.doctor import CHECKS, CheckResult, DoctorReport, diagnose
from . import exit_codes
from .images import TagOption, tag_options
from .options import ConfigOption, JsonOption, config_source, describe_source, provider_json
from .output import Output, is_terminal, styled, verdict


def doctor(
    config_path: ConfigOption = None,
    offline: Annotated[bool, typer.Option("--offline", help="Only the checks that need no network.")] = False,
    timeout: Annotated[
        float, typer.Option(min=0.1, help="Seconds the live probes may take (they run at once).")
    ] = 15.0,
    tag: TagOption = None,
    as_json: JsonOption = False,
) -> None:
    """Preflight: the config check, then live probes; each failure says what to change.

    Exit 0 healthy, 1 when a check fails, 2 for a bad command line, 3 when checks pass with warnings.
    """
    out = Output(as_json=as_json)
    image_tags = tag_options(tag)  # a malformed --tag is a usage error before any probe runs
    report = _diagnose(out, config_path, offline=offline, timeout=timeout, image_tags=image_tags)
    code = exit_codes.from_verdicts(r.verdict for r in report.results)
    provider = provider_json(report.provider, report.provider_source or "") if report.provider else None
    source = config_source(config_path)
    if as_json:
        document: dict[str, Any] = {
            "ok": code == exit_codes.OK,
            "exit_code": code,
            "provider": provider,
            "config_source": source,
            "checks": [r.as_dict() for r in report.results],
        }
        out.emit_json(document)
        raise typer.Exit(code)
    out.print("provider: ", f"{provider['name']} ({provider['source']})" if provider else "unknown (config error)")
    out.print("config: ", describe_source(source))
    rows = [(r.name, verdict(r.verdict), _details(r), f"{r.seconds:.2f}") for r in report.results]
    out.table("model-engine-infra doctor", ("check", "verdict", "details", "seconds"), rows)
    raise typer.Exit(code)


def _diagnose(
    out: Output, config_path: Path | None, *, offline: bool, timeout: float, image_tags: dict[str, str]
) -> DoctorReport:
    """`diagnose`, with a live check list on stderr when it is a terminal (and not for ``--json``)."""
    if out.as_json or not is_terminal(out.stderr.file):
        return diagnose(config_path, offline=offline, timeout=timeout, image_tags=image_tags)
    expected = CHECKS[:2] if offline else CHECKS
    seen: dict[str, CheckResult] = {}
    with Live(_progress(expected, seen), console=out.stderr, transient=True, auto_refresh=False) as live:

        def show(result: CheckResult) -> None:  # called in this thread, as each result arrives
            seen[result.name] = result
            live.update(_progress(expected, seen), refresh=True)

        return diagnose(config_path, offline=offline, timeout=timeout, image_tags=image_tags, on_result=show)


def _progress(expected: tuple[str, ...], seen: dict[str, CheckResult]) -> Table:
    table = Table(title="model-engine-infra doctor", show_header=False, box=None)
    for name in expected:
        result = seen.get(name)
        table.add_row(name, verdict(result.verdict) if result else styled("…", "dim"))
    return table


def _details(result: CheckResult) -> str:
    """The message, and on a failure what to change (one line in a pipe, two in a terminal table)."""
    return f"{result.message}\nFix: {result.fix}" if result.fix else result.message
