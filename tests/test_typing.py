"""A user's service type-checks under ``mypy --strict``, and nothing it gets from us is ``Any``.

``tests/typecheck/public_api.py`` calls the public API the way a service does and pins each type
with ``assert_type``; ``--disallow-any-expr`` fails on any expression whose type is or contains
``Any`` (so a return type loosened to ``Any`` fails here). ``examples/service`` is the worked
example, checked with the plain ``--strict`` a service would use. Both run mypy in a subprocess
against this checkout's ``src`` (also the nox ``typecheck`` session).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def mypy(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "MYPYPATH": str(ROOT / "src")}
    return subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--follow-imports=silent", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=840,
    )


@pytest.mark.timeout(900)
def test_public_api_types_have_no_any() -> None:
    done = mypy("--disallow-any-expr", "tests/typecheck/public_api.py")
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.timeout(900)
def test_example_service_type_checks_strictly() -> None:
    done = mypy("examples/service")
    assert done.returncode == 0, done.stdout + done.stderr
