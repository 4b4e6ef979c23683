"""The ``model-engine-infra`` command: config, providers, demo, storage, images."""

from __future__ import annotations

import importlib
import importlib.util

import typer

from . import config_cmd, demo, doctor_cmd, providers_cmd

app = typer.Typer(
    name="model-engine-infra",
    help="Cloud infrastructure for an ML control plane: check config, list providers, run the demo.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,  # locals may hold secrets
)
app.add_typer(config_cmd.app, name="config")
app.command("providers")(providers_cmd.providers)
app.command("demo")(demo.demo)
app.command("doctor")(doctor_cmd.doctor)

# Sub-commands whose modules live beside this one; each brings its own typer app.
for _name, _help in (
    ("storage", "List, copy and sign objects in the configured store."),
    ("images", "Check that the deployment's images exist; mirror images between registries."),
):
    if importlib.util.find_spec(f"{__name__}.{_name}") is not None:
        _module = importlib.import_module(f"{__name__}.{_name}")
        app.add_typer(_module.app, name=_name, help=_help)


def main() -> None:
    app()


__all__ = ["app", "main"]
