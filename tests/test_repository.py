"""The repository stands alone: nothing in it reaches for files beside it.

A fresh clone has no sibling folders, so a test, benchmark, doc or script that reads one fails only
there. Every file git knows about (tracked, or new and not ignored) is searched.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# Spelled in pieces so this file does not match itself.
OUTSIDE = ("..", "/shared"), ("shared", "/tools"), ("shared", "/examples")
FORBIDDEN = tuple("".join(parts) for parts in OUTSIDE)


def repository_files() -> list[Path]:
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.fail("needs a git checkout and git on PATH to list the repository's files")
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        check=True,
        capture_output=True,
    ).stdout
    return [ROOT / name for name in listed.decode().split("\0") if name and (ROOT / name).is_file()]


def test_the_listing_sees_the_repository() -> None:
    names = {path.relative_to(ROOT).as_posix() for path in repository_files()}
    assert {"README.md", "pyproject.toml", "tests/test_repository.py", "examples/deploy/aws/values.yaml"} <= names


def test_no_file_refers_outside_the_repository() -> None:
    offenders = []
    for path in repository_files():
        text = path.read_bytes().decode("utf-8", errors="replace")
        for number, line in enumerate(text.splitlines(), 1):
            hits = [word for word in FORBIDDEN if word in line]
            if hits:
                offenders.append(f"{path.relative_to(ROOT)}:{number}: {', '.join(hits)}: {line.strip()[:100]}")
    assert offenders == [], "files refer to folders outside the repository:\n" + "\n".join(offenders)
