"""Owners and file ids of user files: single names that can only ever reach their own folder.

A user file lives at ``{prefix}/{owner}/{file_id}``. Both parts come from requests, so each must
be one path segment on every store: not empty, not ``.`` or ``..``, no ``/`` or ``\\``, no NUL or
other control character, nothing that percent-decodes (once or more) into one of those — a
``%2F`` that some layer decodes later would otherwise walk into another owner's folder — no
trailing ``.`` (Blob Storage drops it, so two names would meet), and at most 255 bytes of UTF-8
(a file name on local disks). Anything else raises `InvalidFileIdError` before any store is asked.
"""

from __future__ import annotations

import re
from urllib.parse import unquote

from ..errors import InvalidFileIdError

__all__ = ["MAX_PART_BYTES", "check_part"]

MAX_PART_BYTES = 255
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_MAX_DECODES = 4
RULE = (
    "owners and file ids are single names: not empty, not '.' or '..', no '/', '\\\\', NUL or control "
    "characters, nothing percent-encoded that decodes to those, no trailing '.', at most 255 bytes"
)


def _problem(text: str) -> str | None:
    if text in (".", ".."):
        return "it is '.' or '..'"
    if "/" in text:
        return "it contains '/'"
    if "\\" in text:
        return "it contains a backslash"
    if _CONTROL.search(text):
        return "it contains a NUL or control character"
    return None


def check_part(value: object, what: str) -> str:
    """``value`` when it is a safe owner or file id (``what`` names which), else `InvalidFileIdError`."""
    if not isinstance(value, str):
        raise InvalidFileIdError(f"{what} must be a string, not {type(value).__name__}")
    reason = None
    try:
        size = len(value.encode("utf-8"))
    except UnicodeEncodeError:
        size = -1
    if not value:
        reason = "it is empty"
    elif size < 0:
        reason = "it is not valid Unicode text (a lone surrogate)"
    elif size > MAX_PART_BYTES:
        reason = f"it is longer than {MAX_PART_BYTES} bytes"
    else:
        reason = _problem(value) or ("it ends with '.'" if value.endswith(".") else None)
        decoded = value
        for _ in range(_MAX_DECODES):
            if reason is not None or "%" not in decoded:
                break
            decoded, before = unquote(decoded), decoded
            if decoded == before:
                break
            found = _problem(decoded)
            if found is not None:
                reason = f"it percent-decodes to {decoded!r}, and {found}"
    if reason is not None:
        raise InvalidFileIdError(f"{what} {value!r} is refused: {reason}. Fix: {RULE}")
    return value
