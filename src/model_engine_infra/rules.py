"""A rule is one check of a configuration, declared once, beside the backend it belongs to.

An error-level rule raises `ConfigError` (``load_config`` runs those of the selected backends, so a
bad value fails at start-up); any other rule returns `Finding`s, valid but risky values that
``config check`` and the doctor report. A bottom module: it imports nothing but ``errors``.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from .config.model import InfraConfig

ERROR = "error"


class Severity(str, enum.Enum):
    INFO = "info"
    WARNING = "warning"
    HIGH = "high"

    @property
    def rank(self) -> int:
        return {"info": 0, "warning": 1, "high": 2}[self.value]


@dataclass(frozen=True)
class Finding:
    severity: Severity
    key: str
    message: str

    def as_dict(self) -> dict[str, str]:
        return {"severity": self.severity.value, "key": self.key, "message": self.message}


Check = Callable[["InfraConfig"], "Iterable[Finding] | None"]


@dataclass(frozen=True)
class Rule:
    """``check(config)`` raises `ConfigError` (level ``"error"``) or returns findings (other levels)."""

    name: str
    level: Literal["error", "finding"]
    check: Check
    keys: tuple[str, ...] = ()

    @property
    def is_error(self) -> bool:
        return self.level == ERROR


def error_rule(name: str, *keys: str) -> Callable[[Callable[[InfraConfig], None]], Rule]:
    """Decorator: an error-level rule (the function raises `ConfigError`)."""

    def wrap(check: Callable[[InfraConfig], None]) -> Rule:
        return Rule(name, "error", check, keys)

    return wrap


def finding_rule(name: str, *keys: str) -> Callable[[Callable[[InfraConfig], Iterable[Finding]]], Rule]:
    """Decorator: a finding-level rule (the function returns findings, most often none)."""

    def wrap(check: Callable[[InfraConfig], Iterable[Finding]]) -> Rule:
        return Rule(name, "finding", check, keys)

    return wrap


def run_errors(config: InfraConfig, rules: Iterable[Rule]) -> None:
    """Run the error-level rules; the first failure raises."""
    for rule in rules:
        if rule.is_error:
            rule.check(config)


def run_findings(config: InfraConfig, rules: Iterable[Rule]) -> list[Finding]:
    """Run the finding-level rules; most severe first."""
    found: list[Finding] = []
    for rule in rules:
        if not rule.is_error:
            found.extend(rule.check(config) or ())
    return sorted(found, key=lambda f: -f.severity.rank)
