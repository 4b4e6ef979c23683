"""The ``model-engine-infra`` command: config, providers, doctor, demo, storage, images, worker.

Every command takes ``-c/--config`` and ``--json``, exits with a code from `exit_codes`, and never
prints a traceback unless ``--debug`` is given (see `guard`). docs/cli.md documents each one.
"""

from __future__ import annotations

from typing import Annotated

import typer

from . import config_cmd, demo, doctor_cmd, images, providers_cmd, storage, worker_cmd
from .guard import GuardedGroup

app = typer.Typer(
    name="model-engine-infra",
    cls=GuardedGroup,
    help="Cloud infrastructure for an ML control plane: check config, probe services, move objects and images, "
    "run a worker or the demo.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,  # the guard prints one line; --debug prints the traceback
    pretty_exceptions_show_locals=False,  # locals may hold secrets
    rich_markup_mode=None,  # help texts hold brackets ('model-engine-infra[aws]') that markup would eat
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"model-engine-infra {package_version()}")
        raise typer.Exit()


def package_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("model-engine-infra")
    except PackageNotFoundError:  # run from a source tree that is not installed
        from .. import __version__

        return __version__


@app.callback()
def _root(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = False,
    debug: Annotated[
        bool, typer.Option("--debug", help="On failure, print the traceback too (accepted anywhere on the line).")
    ] = False,
) -> None:
    """Exit codes: 0 ok, 1 something is wrong or missing, 2 usage error, 3 passed with warnings."""


app.add_typer(config_cmd.app, name="config")
app.command("providers")(providers_cmd.providers)
app.command("doctor")(doctor_cmd.doctor)
app.command("demo")(demo.demo)
app.add_typer(storage.app, name="storage", help="List, copy and sign objects in the configured store.")
app.add_typer(
    images.app, name="images", help="Check that the deployment's images exist; mirror images between registries."
)
app.command("worker")(worker_cmd.worker)


def main() -> None:
    app()


__all__ = ["app", "main"]
