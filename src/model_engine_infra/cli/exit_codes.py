"""The one exit-code scheme every ``model-engine-infra`` command follows (docs/cli.md).

Scripts branch on these: 0 means go, 1 means something is wrong or missing, 2 means the command
line itself was wrong, and 3 means it passed but left something for a person to review.
"""

from __future__ import annotations

from collections.abc import Iterable

OK = 0
"""Everything checked out, or the command did what it was asked."""

FAILURE = 1
"""Something is wrong or missing: a config error, a failing probe, a missing image or object, an
unreachable server, a failed copy."""

USAGE = 2
"""The command line is wrong: an unknown flag, a bad argument value, a malformed URI argument."""

WARNINGS = 3
"""It passed, with warnings to review (``config check``, ``doctor``)."""

INTERRUPTED = 130
"""Stopped by Ctrl-C (128 + SIGINT), as shells report it."""

ALL = {
    OK: "ok",
    FAILURE: "failure: something is wrong or missing",
    USAGE: "usage error: the command line is wrong",
    WARNINGS: "passed with warnings to review",
    INTERRUPTED: "interrupted",
}


def from_verdicts(verdicts: Iterable[str]) -> int:
    """A report's code: any ``fail`` is a failure, else any ``warn`` is warnings, else ok."""
    seen = set(verdicts)
    return FAILURE if "fail" in seen else WARNINGS if "warn" in seen else OK


__all__ = ["ALL", "FAILURE", "INTERRUPTED", "OK", "USAGE", "WARNINGS", "from_verdicts"]
