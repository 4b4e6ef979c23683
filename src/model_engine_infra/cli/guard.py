"""The one place a command's failure becomes a message and an exit code.

Whatever escapes a command — our typed errors, an SDK's exception, a bug — is printed as one line
on stderr saying what failed and what to do, and the process exits with the code from
`exit_codes`; never a traceback unless ``--debug`` asks for it. With ``--json`` stdout still gets
one JSON document (``{"ok": false, "exit_code": N, "error": {...}}``), so a script can parse it.
"""

from __future__ import annotations

import importlib
import re
import sys
import traceback
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import typer
from rich.text import Text
from typer.core import TyperGroup

from ..errors import InfraError
from . import exit_codes
from .output import make_console, styled

MAX_MESSAGE = 2000
DEBUG_HINT = "run again with --debug for the traceback"
EXTRA_OF_MODULE = {
    "boto3": "aws",
    "botocore": "aws",
    "aiobotocore": "aws",
    "smart_open": "aws",
    "azure": "azure",
    "google": "gcp",
    "celery": "celery",
    "kombu": "celery",
    "redis": "redis",
}
# click's exception classes, wherever this typer keeps them (recent typer vendors click).
_click_exceptions = importlib.import_module(typer.BadParameter.__module__)
UsageError: type[Exception] = _click_exceptions.UsageError
ClickException: type[Exception] = _click_exceptions.ClickException
BadParameter = typer.BadParameter

_USERINFO = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)(?P<user>[^\s/@:]*):[^\s@]*@")


@dataclass
class CliState:
    """What every command shares: read once from the command line before parsing."""

    debug: bool = False
    json: bool = False


class GuardedGroup(TyperGroup):
    """A typer group whose ``main`` turns every exception into a message and a documented exit code."""

    def main(  # type: ignore[override]
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        **extra: Any,
    ) -> Any:
        argv = list(sys.argv[1:] if args is None else args)
        state = CliState(debug=_take_flag(argv, "--debug"), json=_has_flag(argv, "--json"))
        extra.setdefault("obj", state)
        try:
            result = super().main(
                args=argv, prog_name=prog_name, complete_var=complete_var, standalone_mode=False, **extra
            )
            code = result if isinstance(result, int) else exit_codes.OK
        except typer.Exit as stop:
            code = stop.exit_code
        except ClickException as err:  # usage errors (2) and click's own failures (1)
            code = getattr(err, "exit_code", exit_codes.USAGE)
            if state.json:
                kind = "UsageError" if code == exit_codes.USAGE else type(err).__name__
                _emit_json_error(code, kind, getattr(err, "message", str(err)))
            err.show()  # type: ignore[attr-defined]
        except (typer.Abort, KeyboardInterrupt):
            code = exit_codes.INTERRUPTED
            make_console(sys.stderr).print("interrupted")
        except Exception as err:
            code = report(err, state)
        if standalone_mode:
            sys.exit(code)
        return code


def report(err: BaseException, state: CliState) -> int:
    """Print ``err`` as one line (and the traceback with --debug); return the exit code for it."""
    code = exit_codes.FAILURE
    message = describe(err)
    console = make_console(sys.stderr)
    if state.debug:
        console.print("".join(traceback.format_exception(type(err), err, err.__traceback__)).rstrip(), soft_wrap=True)
    if state.json:
        _emit_json_error(code, type(err).__name__, message)
    console.print(Text.assemble(styled("error: ", "red"), message), soft_wrap=True)
    return code


def describe(err: BaseException) -> str:
    """What failed and the fix, on one line, with any URL password masked and a sensible length."""
    if isinstance(err, InfraError):
        text = str(err) or type(err).__name__
    elif isinstance(err, ModuleNotFoundError):
        module = (err.name or "").split(".")[0]
        extra = EXTRA_OF_MODULE.get(module, "all")
        text = f"the Python module {module!r} is not installed. Fix: pip install 'model-engine-infra[{extra}]'"
    elif isinstance(err, OSError) and err.strerror:
        where = f": {err.filename}" if err.filename else ""
        text = f"{err.strerror}{where}"
    else:
        text = (
            f"unexpected {type(err).__name__}: {err}. This is a bug or an unhandled case in "
            f"model-engine-infra; {DEBUG_HINT} and report it"
        )
    return one_line(text)


def one_line(text: str) -> str:
    text = _USERINFO.sub(lambda m: f"{m['scheme']}{m['user']}:***@", text)
    text = " ".join(text.split())
    return text if len(text) <= MAX_MESSAGE else text[: MAX_MESSAGE - 1] + "…"


def _emit_json_error(code: int, kind: str, message: str) -> None:
    import json

    document = {"ok": False, "exit_code": code, "error": {"type": kind, "message": one_line(message)}}
    sys.stdout.write(json.dumps(document, indent=2) + "\n")
    sys.stdout.flush()


def _options(argv: list[str]) -> list[str]:
    """The arguments before ``--`` (after it, ``--debug`` would be a value, not our flag)."""
    return argv[: argv.index("--")] if "--" in argv else argv


def _take_flag(argv: list[str], flag: str) -> bool:
    found = flag in _options(argv)
    if found:
        argv.remove(flag)
    return found


def _has_flag(argv: list[str], flag: str) -> bool:
    return flag in _options(argv)


__all__ = ["BadParameter", "CliState", "GuardedGroup", "UsageError", "describe", "report"]
