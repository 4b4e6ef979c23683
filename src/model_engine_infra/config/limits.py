"""Reading a config file with limits: size, encoding, nesting depth and YAML alias expansion.

A config file is input a person (or a templating tool) wrote, and `config check`, `doctor` and every
service read it at start-up; none of them may hang, run out of memory or print a traceback on a bad
one. So, before any value is used:

- the file is at most `MAX_CONFIG_BYTES` (1 MiB; real Helm values files are a few KiB);
- it is UTF-8 (a UTF-8 byte-order mark is allowed); UTF-16/32 and other bytes are refused by name;
- collections nest at most `MAX_DEPTH` levels (libyaml stops at 1000 on its own; the pure-Python
  parser would hit Python's recursion limit first);
- YAML aliases may add at most `MAX_ALIAS_NODES` nodes to the document in all ("billion laughs": nine
  anchors of nine aliases each expand to 9^9 values while the file stays tiny), and an anchor may not
  contain itself.

The expanded size is counted on the composed node graph, where an alias is a shared reference, so
counting costs one visit per distinct node whatever the expansion. Every refusal is a `ConfigError`
naming the file, the limit and what to change.
"""

from __future__ import annotations

import codecs
from pathlib import Path
from typing import Any

import yaml

from ..errors import ConfigError

MAX_CONFIG_BYTES = 1024 * 1024
MAX_DEPTH = 100
MAX_ALIAS_NODES = 10_000

_BOMS = (
    (codecs.BOM_UTF32_LE, "UTF-32"),
    (codecs.BOM_UTF32_BE, "UTF-32"),
    (codecs.BOM_UTF16_LE, "UTF-16"),
    (codecs.BOM_UTF16_BE, "UTF-16"),
)
_BASE_LOADER: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _ConfigFileLimit(Exception):
    """Raised inside the YAML loader; turned into a `ConfigError` naming the file."""

    def __init__(self, problem: str, fix: str) -> None:
        super().__init__(problem)
        self.problem = problem
        self.fix = fix


def _too_deep() -> _ConfigFileLimit:
    return _ConfigFileLimit(
        f"collections nest deeper than {MAX_DEPTH} levels",
        f"flatten the nesting to at most {MAX_DEPTH} levels (config files need a handful)",
    )


def check_node_graph(root: yaml.Node) -> None:
    """Refuse a composed document that is too deep, refers to itself, or whose aliases expand too far.

    One iterative post-order walk over distinct nodes (aliases are shared node objects): the
    expanded size and depth of each node are memoised, so the walk is linear in the file.
    """
    size: dict[int, int] = {}
    depth: dict[int, int] = {}
    visiting: set[int] = set()
    distinct = 0
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, children_done = stack.pop()
        key = id(node)
        if children_done:
            visiting.discard(key)
            children = _children(node)
            size[key] = 1 + sum(size[id(child)] for child in children)
            depth[key] = 1 + max((depth[id(child)] for child in children), default=0)
            if depth[key] > MAX_DEPTH:
                raise _too_deep()
            if size[key] - distinct > MAX_ALIAS_NODES:
                raise _alias_limit()
            continue
        if key in size:
            continue
        if key in visiting:
            raise _ConfigFileLimit(
                "a YAML anchor contains an alias to itself (an endless value)",
                "remove the alias (*name) that points back into its own anchor (&name)",
            )
        visiting.add(key)
        distinct += 1
        if len(visiting) > MAX_DEPTH:
            raise _too_deep()
        stack.append((node, True))
        stack.extend((child, False) for child in _children(node) if id(child) not in size)


def _alias_limit() -> _ConfigFileLimit:
    return _ConfigFileLimit(
        f"YAML aliases expand the document by more than {MAX_ALIAS_NODES} values",
        "write the values out instead of nesting aliases (*name) of anchors (&name) that hold aliases",
    )


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    if isinstance(node, yaml.MappingNode):
        return [part for pair in node.value for part in pair]
    return []


class LimitedLoader(_BASE_LOADER):  # type: ignore[misc]
    """The safe loader (libyaml's when installed) that checks the node graph before constructing values."""

    def get_single_node(self) -> Any:
        node = super().get_single_node()
        if node is not None:
            check_node_graph(node)
        return node


class PureLimitedLoader(yaml.SafeLoader):
    """The pure-Python safe loader with the same checks, and a depth guard while composing.

    Used where libyaml is not installed; the depth guard stops before Python's recursion limit.
    """

    _depth = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                raise _too_deep()
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def get_single_node(self) -> Any:
        node = super().get_single_node()
        if node is not None:
            check_node_graph(node)
        return node


def decode_config_bytes(data: bytes, path: Path) -> str:
    """UTF-8 text of a config file; any other encoding is a `ConfigError` saying how to convert it."""
    for bom, name in _BOMS:
        if data.startswith(bom):
            raise _encoding_error(path, f"the file is {name} (it starts with a {name} byte-order mark)")
    if b"\x00" in data[:4096]:
        raise _encoding_error(path, "the file holds NUL bytes (is it UTF-16 or binary?)")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        line = data.count(b"\n", 0, err.start) + 1
        column = err.start - (data.rfind(b"\n", 0, err.start) + 1) + 1
        raise _encoding_error(
            path, f"the file is not UTF-8 (byte 0x{data[err.start]:02x} at line {line}, column {column})"
        ) from None


def file_error(path: Path, problem: str, fix: str) -> ConfigError:
    """A `ConfigError` about a whole file: ``key`` is ``"path"``, the message names the file."""
    return ConfigError(f"config file {path}: {problem}", key="path", value=str(path), fix=fix)


def _encoding_error(path: Path, problem: str) -> ConfigError:
    return file_error(path, problem, f"save {path} as UTF-8 (for example: iconv -t UTF-8 {path.name} > fixed.yaml)")


def read_config_bytes(path: Path) -> bytes:
    """The file's bytes, refusing anything over `MAX_CONFIG_BYTES` before reading it."""
    try:
        with path.open("rb") as handle:
            data = handle.read(MAX_CONFIG_BYTES + 1)
    except OSError as err:
        raise file_error(
            path, f"cannot be read: {err.strerror or type(err).__name__}", "check the path and its permissions"
        ) from None
    if len(data) > MAX_CONFIG_BYTES:
        raise file_error(
            path,
            f"is larger than {MAX_CONFIG_BYTES // 1024} KiB, the limit for a config file",
            "point at the Helm values or flat config file itself; real ones are a few KiB",
        )
    return data


def load_yaml_text(text: str, path: Path, *, loader: type[Any] = LimitedLoader) -> Any:
    """Parse one YAML document under the limits; every failure is a `ConfigError` naming ``path``."""
    try:
        return yaml.load(text, Loader=loader)  # a safe loader: a SafeLoader/CSafeLoader subclass
    except _ConfigFileLimit as err:
        raise file_error(path, err.problem, err.fix) from None
    except RecursionError:
        raise file_error(path, _too_deep().problem, _too_deep().fix) from None
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(err, "problem", None) or "invalid YAML"
        if "nesting depth" in str(problem):  # libyaml's own limit (1000 levels)
            raise file_error(path, _too_deep().problem, _too_deep().fix) from None
        fix = f"correct the YAML syntax in {path}{where}"
        raise file_error(path, f"YAML does not parse{where}: {problem}", fix) from None


__all__ = [
    "MAX_ALIAS_NODES",
    "MAX_CONFIG_BYTES",
    "MAX_DEPTH",
    "LimitedLoader",
    "PureLimitedLoader",
    "check_node_graph",
    "decode_config_bytes",
    "file_error",
    "load_yaml_text",
    "read_config_bytes",
]
