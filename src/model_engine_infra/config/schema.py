"""The key table read off `InfraConfig`'s fields: Helm paths, env vars, types, secrecy.

The loader, `config show`, and the generated docs/configuration.md all read this one table, so a
key added to the model is honoured everywhere.
"""

from __future__ import annotations

import functools
import types
import typing
from dataclasses import dataclass
from typing import Any, Literal, Union

from pydantic import SecretStr

from .model import ENV_PREFIX, InfraConfig


@dataclass(frozen=True)
class FieldInfo:
    name: str
    helm: tuple[str, ...]
    env: tuple[str, ...]
    secret: bool
    default: Any
    doc: str
    annotation: Any
    #: numeric bounds as pydantic constraints: (("ge", 1), ("le", 65535)); empty for other keys
    bounds: tuple[tuple[str, Any], ...] = ()

    @property
    def range_text(self) -> str:
        """The bounds in words, e.g. ``from 1 to 65535`` or ``above 0, at most 600``; empty without bounds."""
        limits = dict(self.bounds)
        low = f"from {limits['ge']}" if "ge" in limits else f"above {limits['gt']}" if "gt" in limits else ""
        high = f"to {limits['le']}" if "le" in limits else f"below {limits['lt']}" if "lt" in limits else ""
        if low.startswith("above") and high:
            high = "at most " + high[3:] if high.startswith("to ") else high
            return f"{low}, {high}"
        return " ".join(part for part in (low, high) if part)

    @property
    def is_sequence(self) -> bool:
        return _base_type(self.annotation) is tuple

    @property
    def is_text(self) -> bool:
        base = _base_type(self.annotation)
        return base is str or base is SecretStr

    @property
    def all_env(self) -> tuple[str, ...]:
        generic = ENV_PREFIX + self.name.upper()
        return self.env if generic in self.env else (*self.env, generic)

    @property
    def expected(self) -> str:
        """Words for the fix in an error message: what a good value looks like."""
        ann = self.annotation
        choices = _literal_choices(ann)
        if choices:
            return "one of " + ", ".join(repr(c) for c in choices)
        base = _base_type(ann)
        words: str = {
            int: "a whole number",
            float: "a number",
            bool: "true or false",
            tuple: "a list of strings",
            dict: "a mapping",
        }.get(base, "a string")  # type: ignore[call-overload]
        return f"{words} {self.range_text}" if self.bounds else words

    @property
    def type_name(self) -> str:
        choices = _literal_choices(self.annotation)
        if choices:
            return " | ".join(str(c) for c in choices)
        base = _base_type(self.annotation)
        name = {SecretStr: "secret string", tuple: "list[str]"}.get(base, getattr(base, "__name__", str(base)))
        if self.bounds:
            name = f"{name}, {self.range_text}"
        return f"{name} (optional)" if _is_optional(self.annotation) else str(name)


def _args(ann: Any) -> tuple[Any, ...]:
    return typing.get_args(ann)


def _is_optional(ann: Any) -> bool:
    origin = typing.get_origin(ann)
    return origin in (Union, types.UnionType) and type(None) in _args(ann)


def _strip_optional(ann: Any) -> Any:
    if _is_optional(ann):
        rest = [a for a in _args(ann) if a is not type(None)]
        return rest[0] if len(rest) == 1 else Union[tuple(rest)]  # noqa: UP007
    return ann


def _literal_choices(ann: Any) -> tuple[Any, ...]:
    ann = _strip_optional(ann)
    return _args(ann) if typing.get_origin(ann) is Literal else ()


def _base_type(ann: Any) -> Any:
    ann = _strip_optional(ann)
    if typing.get_origin(ann) is Literal:
        return type(_args(ann)[0])
    return typing.get_origin(ann) or ann


def _build_fields() -> dict[str, FieldInfo]:
    fields = {}
    for name, field in InfraConfig.model_fields.items():
        extra = field.json_schema_extra if isinstance(field.json_schema_extra, dict) else {}
        fields[name] = FieldInfo(
            name=name,
            helm=tuple(typing.cast(list[str], extra.get("helm", []))),
            env=tuple(typing.cast(list[str], extra.get("env", []))),
            secret=bool(extra.get("secret", False)),
            default=field.default,
            doc=field.description or "",
            annotation=field.annotation,
            bounds=_bounds(field.metadata),
        )
    return fields


def _bounds(metadata: list[Any]) -> tuple[tuple[str, Any], ...]:
    """The numeric constraints pydantic keeps in a field's metadata (annotated-types ``Ge``, ``Le``...)."""
    found = []
    for item in metadata:
        for name in ("ge", "gt", "le", "lt"):
            value = getattr(item, name, None)
            if value is not None and type(item).__name__.lower() == name:
                found.append((name, value))
    return tuple(found)


FIELDS: dict[str, FieldInfo] = _build_fields()
SECRET_FIELDS = frozenset(name for name, info in FIELDS.items() if info.secret)


def helm_index() -> dict[str, str]:
    """Helm dotted path -> field name."""
    return {path: name for name, info in FIELDS.items() for path in info.helm}


@functools.lru_cache(maxsize=1)
def known_names_by_namespace() -> dict[str, frozenset[str]]:
    """Known key names under each mapping a file may hold (``""`` is the top level)."""
    spaces: dict[str, set[str]] = {"": set(FIELDS)}
    for path in helm_index():
        namespace, _, leaf = path.rpartition(".")
        spaces.setdefault(namespace, set()).add(leaf)
        # the parents of nested paths are known keys too (config, values, azure, image, ...)
        parts = path.split(".")
        for depth in range(1, len(parts)):
            parent = ".".join(parts[: depth - 1])
            spaces.setdefault(parent, set()).add(parts[depth - 1])
    return {ns: frozenset(names) for ns, names in spaces.items()}
