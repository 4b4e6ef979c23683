"""``config show`` and ``config check``: the effective configuration and what is wrong with it."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from ..config import load_config
from ..config.findings import Severity
from ..config.schema import FIELDS
from ..errors import ConfigError
from .render import config_rows

app = typer.Typer(help="Show and check the effective configuration.", no_args_is_help=True)
ConfigOption = Annotated[
    Path | None,
    typer.Option(
        "--config",
        "-c",
        help="Config file (default: ML_INFRA_SERVICES_CONFIG_PATH / DEPLOY_SERVICE_CONFIG_PATH).",
    ),
]

EXIT_CLEAN, EXIT_ERRORS, EXIT_FINDINGS = 0, 1, 2


@app.command("show")
def show(
    config_path: ConfigOption = None,
    only_set: Annotated[bool, typer.Option("--only-set", help="Hide keys left at their default.")] = False,
) -> None:
    """The effective configuration: every key, its value (secrets redacted) and where it came from."""
    console = Console()
    try:
        config = load_config(config_path)
    except ConfigError as err:
        console.print(f"[red]error:[/red] {err}")
        raise typer.Exit(EXIT_ERRORS) from None
    table = Table(title=f"model-engine-infra config ({config.cloud_provider})")
    for column in ("key", "value", "source"):
        table.add_column(column, overflow="fold")
    for row in config_rows(config, only_set=only_set):
        table.add_row(*row)
    console.print(table)


def check_report(config_path: Path | None, *, env: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Errors and findings as plain data, with the exit code ``config check`` uses."""
    from ..ops.probes import check_config

    checked = check_config(config_path, env=env)
    errors, findings = checked.errors, checked.findings
    serious = [f for f in findings if f["severity"] in (Severity.WARNING.value, Severity.HIGH.value)]
    code = EXIT_ERRORS if errors else EXIT_FINDINGS if serious else EXIT_CLEAN
    return {"ok": code == EXIT_CLEAN, "exit_code": code, "errors": errors, "findings": findings}


@app.command("check")
def check(
    config_path: ConfigOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
) -> None:
    """Validate offline. Exit 0 when clean, 1 on errors, 2 when only findings (warning or above)."""
    report = check_report(config_path)
    if as_json:
        typer.echo(json.dumps(report, indent=2))
    else:
        _print_report(report)
    raise typer.Exit(report["exit_code"])


def _print_report(report: dict[str, Any]) -> None:
    console = Console()
    for error in report["errors"]:
        console.print(f"[red]error[/red] {error['message']}")
    if report["findings"]:
        table = Table(title="findings")
        for column in ("severity", "key", "message"):
            table.add_column(column, overflow="fold")
        colours = {"high": "red", "warning": "yellow", "info": "cyan"}
        for f in report["findings"]:
            table.add_row(f"[{colours[f['severity']]}]{f['severity']}[/]", f["key"], f["message"])
        console.print(table)
    verdict = {EXIT_CLEAN: "[green]config OK[/green]", EXIT_ERRORS: "[red]config has errors[/red]"}
    console.print(verdict.get(report["exit_code"], "[yellow]config valid, with findings to review[/yellow]"))


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


@app.command("reference")
def reference(
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Write to this file.")] = None,
) -> None:
    """Print the configuration reference (every key: type, default, Helm path, env var) as Markdown."""
    text = config_reference_markdown()
    if output:
        output.write_text(text, encoding="utf-8")
    else:
        typer.echo(text, nl=False)
