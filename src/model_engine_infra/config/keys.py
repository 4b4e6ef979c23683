"""How a key is named in messages, and "did you mean" hints: the helpers every rule shares.

They read only the config instance they are given (its fields' Helm paths and secrecy), so a rule
beside its backend can use them without importing the rest of ``config`` — no import cycles.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from ..errors import ConfigError

if TYPE_CHECKING:
    from .model import InfraConfig


def _extra(config: InfraConfig, name: str) -> dict[str, Any]:
    extra = type(config).model_fields[name].json_schema_extra
    return extra if isinstance(extra, dict) else {}


def is_secret(config: InfraConfig, name: str) -> bool:
    return bool(_extra(config, name).get("secret", False))


def key_path(config: InfraConfig, name: str) -> str:
    """The key as the user wrote it: file key path, env var, or the field's Helm path."""
    source = config.source_of(name)
    if source.startswith("env:"):
        return source[4:]
    if ":" in source and not source.startswith("default"):
        return source.rsplit(":", 1)[1]
    helm = _extra(config, name).get("helm") or []
    return str(helm[0]) if helm else name


def fail(config: InfraConfig, name: str, message: str, fix: str, value: object = None) -> ConfigError:
    """A `ConfigError` for key ``name``, naming it as written, its value (masked if secret) and its source."""
    shown = "***" if is_secret(config, name) else (value if value is not None else getattr(config, name))
    source = config.source_of(name)
    return ConfigError(message, key=key_path(config, name), value=shown, source=source.rsplit(":", 1)[0], fix=fix)


def edit_distance(a: str, b: str) -> int:
    """Levenshtein distance (small strings only: config keys)."""
    previous = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        current = [i]
        for j, cb in enumerate(b, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (ca != cb)))
        previous = current
    return previous[-1]


#: Longer words are never compared (no key or backend name is this long; a 34 MB value must not be walked).
LONGEST_COMPARED = 64
_FEW_CANDIDATES = 12
_CLOSE_RATIO = 0.75


def nearest(word: str, candidates: Iterable[str], *, limit: int = 3) -> str | None:
    """The candidate closest to ``word`` within ``limit`` edits, for "did you mean" hints.

    Bounded work: over-long words are never compared, and among many candidates
    `difflib.get_close_matches` (cheap upper bounds first) picks a few, for which alone the exact edit
    distance is computed (a pure-Python distance to every key made 20,000 unknown keys take 75 s).
    """
    if len(word) > LONGEST_COMPARED:
        return None
    lowered = {candidate.lower(): candidate for candidate in candidates}
    close = (
        list(lowered)
        if len(lowered) <= _FEW_CANDIDATES
        else difflib.get_close_matches(word.lower(), lowered, n=3, cutoff=_CLOSE_RATIO)
    )
    best: tuple[int, str] | None = None
    for candidate in close:
        distance = edit_distance(word.lower(), candidate)
        if distance <= limit and (best is None or distance < best[0]):
            best = (distance, lowered[candidate])
    return best[1] if best else None
