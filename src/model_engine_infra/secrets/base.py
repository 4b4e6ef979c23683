"""The secret-store interface, with a TTL cache that never caches a failure."""

from __future__ import annotations

import json
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any, cast

from ..errors import SecretError
from ..json_types import JSONObject
from ..lifecycle import Closeable

#: The largest secret value read or parsed: a Kubernetes Secret's own limit. Cloud stores cap lower
#: (Secrets Manager and Secret Manager 64 KiB, Key Vault 25 KiB); a bigger value is a mistake.
MAX_SECRET_BYTES = 1024 * 1024


def too_large(name: str, where: str, size: int) -> SecretError:
    return SecretError(
        f"secret {name!r} in {where} is {size} bytes, over the {MAX_SECRET_BYTES // 1024} KiB a secret may hold; "
        "store a reference (a storage URL) to large material instead"
    )


class SecretStore(Closeable, ABC):
    store_name: str = "secret store"

    @abstractmethod
    def get(self, name: str) -> str | JSONObject:
        """The secret's value: a dict when it is a JSON object, else the string."""

    def get_json(self, name: str) -> JSONObject:
        value = self.get(name)
        if isinstance(value, dict):
            return value
        raise SecretError(f"secret {name!r} in {self.store_name} is not a JSON object")

    def close(self) -> None:
        """Release clients; the default holds none."""


class CachedSecretStore(SecretStore):
    """Caches successful reads for ``ttl_seconds``; an error is raised, never remembered."""

    def __init__(self, *, ttl_seconds: float = 300.0, clock: Callable[[], float] = time.monotonic) -> None:
        self._ttl = ttl_seconds
        self._clock = clock
        self._cache: dict[str, tuple[float, str | JSONObject]] = {}
        self._lock = threading.Lock()

    @abstractmethod
    def _fetch(self, name: str) -> str | dict[str, Any]:
        """Read the raw secret (a string, or a dict for a folder of keys); raise `SecretNotFoundError` when absent."""

    def get(self, name: str) -> str | JSONObject:
        now = self._clock()
        with self._lock:
            hit = self._cache.get(name)
        if hit is not None and hit[0] > now:
            return hit[1]
        value = _parse(_bounded(self._fetch(name), name, self.store_name))
        with self._lock:
            self._cache[name] = (now + self._ttl, value)
        return value

    def invalidate(self, name: str | None = None) -> None:
        with self._lock:
            if name is None:
                self._cache.clear()
            else:
                self._cache.pop(name, None)


def _bounded(raw: str | dict[str, Any], name: str, where: str) -> str | dict[str, Any]:
    """``raw`` unless it is over `MAX_SECRET_BYTES` (counted in characters: a cheap upper bound's floor)."""
    size = len(raw) if isinstance(raw, str) else sum(len(str(v)) for v in raw.values())
    if size > MAX_SECRET_BYTES:
        raise too_large(name, where, size)
    return raw


def _parse(raw: str | dict[str, Any]) -> str | JSONObject:
    if isinstance(raw, dict):
        return raw
    text = raw.strip()
    if text.startswith("{"):
        try:
            value = json.loads(text)
        except (json.JSONDecodeError, RecursionError):  # not JSON (or nested past the parser): the string
            return raw
        if isinstance(value, dict):
            return cast(JSONObject, value)
    return raw
