"""``config show``, ``config check`` and ``config reference``: the effective configuration and what is wrong with it."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any

import typer

from ..config.schema import FIELDS
from . import exit_codes
from .guard import GuardedGroup, UsageError
from .options import (
    IMPLICIT_LOCAL_FIX,
    ConfigOption,
    JsonOption,
    config_source,
    describe_source,
    implicit_local_in_cluster,
    load_cli_config,
    provider_of,
)
from .output import Output, styled, verdict
from .render import config_rows

app = typer.Typer(
    cls=GuardedGroup, help="Show and check the effective configuration.", no_args_is_help=True, rich_markup_mode=None
)

# Kept for callers of the old names; the scheme itself lives in exit_codes.
EXIT_CLEAN, EXIT_ERRORS, EXIT_FINDINGS = exit_codes.OK, exit_codes.FAILURE, exit_codes.WARNINGS


@app.command("show")
def show(
    config_path: ConfigOption = None,
    only_set: Annotated[bool, typer.Option("--only-set", help="Hide keys left at their default.")] = False,
    as_json: JsonOption = False,
) -> None:
    """The effective configuration: every key, its value (secrets redacted) and where it came from.

    Exit 0, or 1 when the configuration cannot be loaded.
    """
    out = Output(as_json=as_json)
    config = load_cli_config(config_path, implicit_local_ok=True)  # showing it is how one finds out
    source, provider = config_source(config_path), provider_of(config)
    problem = implicit_local_in_cluster(config)
    rows = config_rows(config, only_set=only_set)
    if as_json:
        out.emit_json(
            {
                "ok": True,
                "exit_code": exit_codes.OK,
                "provider": provider,
                "config_source": source,
                "warnings": [problem] if problem else [],
                "keys": [{"key": k, "value": v, "source": s} for k, v, s in rows],
            }
        )
        return
    out.info(f"provider: {provider['name']} ({provider['source']})")
    out.info(f"config: {describe_source(source)}")
    if problem:
        out.warn(f"{problem}. Fix: {IMPLICIT_LOCAL_FIX}")
    out.table(None, ("key", "value", "source"), rows)


def check_report(config_path: Path | None, *, env: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Errors and findings as plain data, with the provider and files judged and the exit code.

    The checking is `ops.probes.check_config`, the doctor's config check (so the two cannot
    disagree, and the in-cluster implicit-local rule lives there). Exit code: 1 on an error or a
    high finding (the deployment would break), 3 when the worst is a warning, else 0. ``env``
    defaults to the process environment.
    """
    from ..ops.probes import check_config

    environ = os.environ if env is None else env
    checked = check_config(config_path, env=environ)
    code = exit_codes.from_verdicts([checked.verdict()[0]])
    return {
        "ok": code == exit_codes.OK,
        "exit_code": code,
        "provider": provider_of(checked.config) if checked.config is not None else None,
        "config_source": config_source(config_path, environ),
        "errors": checked.errors,
        "findings": checked.findings,
    }


@app.command("check")
def check(config_path: ConfigOption = None, as_json: JsonOption = False) -> None:
    """Validate offline. Exit 0 clean, 1 on errors or high findings, 3 when the worst finding is a warning."""
    report = check_report(config_path)
    if as_json:
        Output(as_json=True).emit_json(report)
    else:
        _print_report(report)
    raise typer.Exit(report["exit_code"])


def _print_report(report: dict[str, Any]) -> None:
    out = Output()
    provider = report["provider"]
    judged = f"{provider['name']} ({provider['source']})" if provider else "unknown (the config did not load)"
    out.print("provider: ", judged)
    out.print("config: ", describe_source(report["config_source"]))
    for error in report["errors"]:
        out.print(styled("error ", "red"), error["message"])
    if report["findings"]:
        rows = [(verdict(f["severity"]), f["key"], f["message"]) for f in report["findings"]]
        out.table("findings", ("severity", "key", "message"), rows)
    verdicts = {
        exit_codes.OK: styled("config OK", "green"),
        exit_codes.WARNINGS: styled("config valid, with warnings to review", "yellow"),
    }
    failed = "config has errors" if report["errors"] else "config valid, but a high finding will break the deployment"
    out.print(verdicts.get(report["exit_code"], styled(failed, "red")))


REFERENCE_HEADER = """# Configuration reference

Generated from `InfraConfig` by `model-engine-infra config reference -o docs/configuration.md`;
a test fails when this file is stale. Every key can be written:

- in Helm values, at its Helm path (`config.values.infra.*`, `config.values.launch.*`, or a chart key);
- in a flat file (`ML_INFRA_SERVICES_CONFIG_PATH`, `DEPLOY_SERVICE_CONFIG_PATH`), under its own name;
- in the environment, as the variable(s) listed, or as `MODEL_ENGINE_INFRA_<KEY>` (upper case).

Later sources win: defaults, then files (the service config file over the infra file), then the
deployment's variables, then `MODEL_ENGINE_INFRA_<KEY>`. Secrets (marked 🔒) are never printed;
`config show` masks them (`redis://user:***@host:6379/0`). Secrets for the `env` secret store come
from `MODEL_ENGINE_SECRET_<NAME>` variables.
"""


def config_reference_markdown() -> str:
    lines = [
        REFERENCE_HEADER,
        "| key | type | default | Helm path | environment | description |",
        "|---|---|---|---|---|---|",
    ]
    for name, info in FIELDS.items():
        default = "—" if info.default in (None, (), {}) else f"`{info.default}`"
        helm = "<br>".join(f"`{p}`" for p in info.helm) or "—"
        env = "<br>".join(f"`{v}`" for v in info.all_env)
        lock = " 🔒" if info.secret else ""
        lines.append(f"| `{name}`{lock} | {info.type_name} | {default} | {helm} | {env} | {info.doc} |")
    return "\n".join(lines) + "\n"


def config_reference_data() -> list[dict[str, Any]]:
    return [
        {
            "key": name,
            "type": info.type_name,
            "default": None if info.secret else info.default,
            "helm": list(info.helm),
            "env": list(info.all_env),
            "secret": info.secret,
            "description": info.doc,
        }
        for name, info in FIELDS.items()
    ]


@app.command("reference")
def reference(
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Write to this file.")] = None,
    as_json: JsonOption = False,
) -> None:
    """Print the configuration reference (every key: type, default, Helm path, env var) as Markdown."""
    if as_json and output:
        raise UsageError("--json prints the reference on stdout; it does not combine with -o")
    if as_json:
        Output(as_json=True).emit_json({"ok": True, "exit_code": exit_codes.OK, "keys": config_reference_data()})
        return
    text = config_reference_markdown()
    if output:
        output.write_text(text, encoding="utf-8")
    else:
        typer.echo(text, nl=False)
