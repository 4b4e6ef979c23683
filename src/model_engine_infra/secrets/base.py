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
        value = _parse(self._fetch(name))
        with self._lock:
            self._cache[name] = (now + self._ttl, value)
        return value

    def invalidate(self, name: str | None = None) -> None:
        with self._lock:
            if name is None:
                self._cache.clear()
            else:
                self._cache.pop(name, None)


def _parse(raw: str | dict[str, Any]) -> str | JSONObject:
    if isinstance(raw, dict):
        return raw
    text = raw.strip()
    if text.startswith("{"):
        try:
            value = json.loads(text)
        except json.JSONDecodeError:
            return raw
        if isinstance(value, dict):
            return cast(JSONObject, value)
    return raw
