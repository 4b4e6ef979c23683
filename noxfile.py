"""nox sessions: tests, integration, lint, typecheck, bench, demo.

Sessions run in the current environment (``.venv`` made by scripts/test.sh) rather than a fresh
virtualenv each: the extras are large and the machine is small. ``nox -s lint typecheck``.
"""

from __future__ import annotations

import nox

nox.options.default_venv_backend = "none"
nox.options.sessions = ["lint", "typecheck", "tests", "integration"]


@nox.session
def tests(session: nox.Session) -> None:
    """Fast unit tests: in-process moto, fakeredis, SDK-boundary fakes."""
    session.run("python", "-m", "pytest", "tests", *session.posargs)


@nox.session
def integration(session: nox.Session) -> None:
    """Real local servers and real worker processes (see docs/testing.md)."""
    session.run("python", "-m", "pytest", "integration", *session.posargs)


@nox.session
def lint(session: nox.Session) -> None:
    session.run("ruff", "check", "src", "tests", "integration", "benchmarks", "examples", "noxfile.py")
    session.run("ruff", "format", "--check", "src", "tests", "integration", "benchmarks", "examples", "noxfile.py")


@nox.session
def typecheck(session: nox.Session) -> None:
    """The library, then what a service sees of it (also run by tests/test_typing.py)."""
    session.run("mypy", "src/model_engine_infra")
    user = ["mypy", "--strict", "--follow-imports=silent"]
    session.run(*user, "--disallow-any-expr", "tests/typecheck/public_api.py", env={"MYPYPATH": "src"})
    session.run(*user, "examples/service", env={"MYPYPATH": "src"})


@nox.session
def bench(session: nox.Session) -> None:
    """Every benchmark script; each prints its own figures and ratios against the anchor tools."""
    import pathlib
    import sys

    session.run("bash", "scripts/install-bench-tools.sh", env={"PYTHON": sys.executable}, external=True)

    for script in sorted(pathlib.Path("benchmarks").glob("*.py")):
        if not script.name.startswith("_"):
            session.run("python", str(script), *session.posargs)


@nox.session
def demo(session: nox.Session) -> None:
    session.run("model-engine-infra", "demo", *session.posargs)
