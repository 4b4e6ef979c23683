"""JSON values as types: what secrets, task results and model configs hold.

A service that reads ``infra.secrets.get_json("db")["port"]`` gets a `JSONValue` to narrow
(``isinstance(port, int)``), not an ``Any`` that lets a wrong assumption through type checking.
"""

from __future__ import annotations

from typing import TypeAlias

__all__ = ["JSONObject", "JSONScalar", "JSONValue"]

JSONScalar: TypeAlias = str | int | float | bool | None
JSONValue: TypeAlias = JSONScalar | list["JSONValue"] | dict[str, "JSONValue"]
JSONObject: TypeAlias = dict[str, JSONValue]
