"""``doctor``: config check plus live probes of broker, storage, Redis, registry and secrets."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from . import exit_codes
from .images import TagOption, tag_options
from .options import ConfigOption, JsonOption, describe_source
from .output import Output, verdict


def doctor(
    config_path: ConfigOption = None,
    offline: Annotated[bool, typer.Option("--offline", help="Only the checks that need no network.")] = False,
    timeout: Annotated[float, typer.Option(min=0.1, help="Seconds each live probe may take.")] = 15.0,
    tag: TagOption = None,
    as_json: JsonOption = False,
) -> None:
    """Preflight: the config check, then live probes; each failure says what to change.

    Exit 0 healthy, 1 when a check fails, 2 for a bad command line, 3 when checks pass with warnings.
    """
    from ..doctor import Doctor
    from .config_cmd import check_report

    out = Output(as_json=as_json)
    image_tags = tag_options(tag)  # a malformed --tag is a usage error before any probe runs
    judged = check_report(config_path)  # offline and quick: which provider and files the verdicts are about
    report = Doctor(config_path, offline=offline, timeout=timeout, image_tags=image_tags).run()
    code = exit_codes.from_verdicts(r.verdict for r in report.results)
    if as_json:
        document: dict[str, Any] = {
            "ok": code == exit_codes.OK,
            "exit_code": code,
            "provider": judged["provider"],
            "config_source": judged["config_source"],
            "checks": [{**r.as_dict(), "fix": _fix_of(r.message)} for r in report.results],
        }
        out.emit_json(document)
        raise typer.Exit(code)
    provider = judged["provider"]
    out.print("provider: ", f"{provider['name']} ({provider['source']})" if provider else "unknown (config error)")
    out.print("config: ", describe_source(judged["config_source"]))
    rows = [(r.name, verdict(r.verdict), r.message, f"{r.seconds:.2f}") for r in report.results]
    out.table("model-engine-infra doctor", ("check", "verdict", "details", "seconds"), rows)
    raise typer.Exit(code)


def _fix_of(message: str) -> str | None:
    """The advice a failing check carries after ``Fix:`` (or ``Config:``), for scripts."""
    for marker in (". Fix: ", ". Config: "):
        if marker in message:
            return message.split(marker, 1)[1]
    return None
