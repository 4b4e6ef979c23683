"""Showing configuration to a person: every value with its source, secrets redacted."""

from __future__ import annotations

from typing import Any

from pydantic import SecretStr

from ..config.model import InfraConfig
from ..config.schema import FIELDS
from ..redact import MASK, redact_url


def shown_value(config: InfraConfig, name: str) -> str:
    """The value as ``config show`` prints it: URLs with passwords masked, other secrets as ***."""
    value: Any = getattr(config, name)
    if value is None:
        return "-"
    if isinstance(value, SecretStr):
        plain = value.get_secret_value()
        return redact_url(plain) if "://" in plain else MASK
    if isinstance(value, dict):
        return ", ".join(f"{k}={MASK}" for k in sorted(value)) or "-"
    if isinstance(value, tuple):
        return ", ".join(str(v) for v in value) or "-"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str) and ("://" in value or "@" in value):
        return redact_url(value)  # an endpoint or Prometheus URL may carry a password too, whatever its whitespace
    return str(value)


def config_rows(config: InfraConfig, *, only_set: bool = False) -> list[tuple[str, str, str]]:
    rows = []
    for name in FIELDS:
        if only_set and not config.is_set(name):
            continue
        rows.append((name, shown_value(config, name), config.source_of(name)))
    return rows
