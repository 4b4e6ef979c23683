"""A fake Entra ID credential (``get_token``) that counts calls and can be slow, failing or hanging.

No Entra ID emulator exists; this stands in at the SDK boundary for ``DefaultAzureCredential``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any, NamedTuple

__all__ = ["FakeAccessToken", "FakeTokenCredential"]


class FakeAccessToken(NamedTuple):
    """Shaped like ``azure.core.credentials.AccessToken``."""

    token: str
    expires_on: int


class FakeTokenCredential:
    """``get_token(*scopes)`` returns ``{prefix}-{n}`` valid for ``lifetime`` seconds.

    Set ``delay`` (seconds per call), ``fail`` (an exception to raise; by default the SDK's
    ``ClientAuthenticationError`` via `fail_with_sdk_error`), or call `hang`/`release`.
    """

    def __init__(
        self,
        *,
        lifetime: float = 3600.0,
        delay: float = 0.0,
        prefix: str = "entra-token",
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self.lifetime = lifetime
        self.delay = delay
        self.prefix = prefix
        self.fail: BaseException | None = None
        self.calls = 0
        self.scopes: list[tuple[str, ...]] = []
        self._wall_clock = wall_clock
        self._gate = threading.Event()
        self._gate.set()
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"FakeTokenCredential(calls={self.calls})"

    def hang(self) -> None:
        self._gate.clear()

    def release(self) -> None:
        self._gate.set()

    def fail_with_sdk_error(self, message: str = "fake Entra ID outage") -> None:
        from azure.core.exceptions import ClientAuthenticationError

        self.fail = ClientAuthenticationError(message=message)

    def get_token(self, *scopes: str, **kwargs: Any) -> FakeAccessToken:
        with self._lock:
            self.calls += 1
            number = self.calls
            self.scopes.append(scopes)
        if self.delay:
            time.sleep(self.delay)
        self._gate.wait()
        if self.fail is not None:
            raise self.fail
        return FakeAccessToken(f"{self.prefix}-{number}", int(self._wall_clock() + self.lifetime))

    def close(self) -> None:
        """Credentials in azure-identity have ``close``; nothing to release here."""
