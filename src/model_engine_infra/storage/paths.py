"""Safe local paths for downloads: an object key never escapes the target folder."""

from __future__ import annotations

import os
from pathlib import Path

from ..errors import UnsafeObjectKeyError


def safe_join(target: Path, key: str) -> Path:
    """``target / key``, or `UnsafeObjectKeyError` for ``..``, absolute, backslash or empty segments."""
    reason = _unsafe_reason(key)
    if reason is None:
        dest = (target / key).resolve()
        root = target.resolve()
        if os.path.commonpath([root, dest]) != str(root) or dest == root:
            reason = "it resolves outside the target folder"
    if reason is not None:
        raise UnsafeObjectKeyError(
            f"object key {key!r} is unsafe: {reason}; refusing to download into {target} (nothing was written)"
        )
    return target / key


def _unsafe_reason(key: str) -> str | None:
    if not key:
        return "it is empty"
    if "\x00" in key:
        return "it contains a NUL byte"
    if "\\" in key:
        return "it contains a backslash"
    if key.startswith("/") or (len(key) > 1 and key[1] == ":"):
        return "it is absolute"
    for segment in key.split("/"):
        if segment in ("", ".", ".."):
            return "it has an empty, '.' or '..' segment"
    return None
