"""One way every store turns SDK exceptions into the package's storage errors."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

from ..errors import StorageError

Translate = Callable[[BaseException, str], "StorageError | None"]


@contextlib.contextmanager
def translated(translate: Translate, uri: str) -> Iterator[None]:
    """Re-raise an SDK error as the `StorageError` ``translate`` maps it to (``from`` the original)."""
    try:
        yield
    except Exception as err:
        mapped = translate(err, uri)
        if mapped is None or mapped is err:
            raise
        raise mapped from err
