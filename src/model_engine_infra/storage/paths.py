"""``safe_join``: a key as a path below a folder, by the rule downloads use (`landing.unsafe_reason`).

Downloads themselves do not resolve paths: they plan with `landing.plan_download` and write through
directory descriptors, which also holds when the disk changes after the check.
"""

from __future__ import annotations

import os
from pathlib import Path

from ..errors import UnsafeObjectKeyError
from .landing import unsafe_reason


def safe_join(target: Path, key: str) -> Path:
    """``target / key``, or `UnsafeObjectKeyError` for ``..``, absolute, backslash or empty segments."""
    reason = unsafe_reason(key)
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
