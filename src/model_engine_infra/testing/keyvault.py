"""A fake ``azure.keyvault.secrets.SecretClient``: secrets in memory, the SDK's real exceptions.

There is no Key Vault emulator; this fake answers ``get_secret``/``set_secret`` like the service,
raises ``ResourceNotFoundError`` for a missing secret, and can be told to fail (403, network).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

__all__ = ["FakeKeyVaultSecret", "FakeSecretClient"]


@dataclass(frozen=True)
class _Properties:
    name: str
    version: str
    enabled: bool = True


@dataclass(frozen=True)
class FakeKeyVaultSecret:
    """Shaped like ``azure.keyvault.secrets.KeyVaultSecret``."""

    name: str
    value: str | None = field(repr=False)
    properties: _Properties


class FakeSecretClient:
    """``fail`` is raised by every call while set; use `fail_forbidden` / `fail_unreachable` for SDK errors."""

    def __init__(self, vault_url: str = "https://fake-vault.vault.azure.net", secrets: dict[str, str] | None = None):
        self.vault_url = vault_url
        self._secrets: dict[str, list[str]] = {name: [value] for name, value in (secrets or {}).items()}
        self._lock = threading.Lock()
        self.calls = 0
        self.fail: BaseException | None = None

    def __repr__(self) -> str:
        return f"FakeSecretClient({self.vault_url!r}, {len(self._secrets)} secrets)"

    def fail_forbidden(self) -> None:
        from azure.core.exceptions import HttpResponseError

        error = HttpResponseError(message="Forbidden: caller lacks get permission")
        error.status_code = 403
        self.fail = error

    def fail_unreachable(self) -> None:
        from azure.core.exceptions import ServiceRequestError

        self.fail = ServiceRequestError("fake network failure")

    def set_secret(self, name: str, value: str, **kwargs: Any) -> FakeKeyVaultSecret:
        with self._lock:
            versions = self._secrets.setdefault(name, [])
            versions.append(value)
            return FakeKeyVaultSecret(name, value, _Properties(name, str(len(versions))))

    def get_secret(self, name: str, version: str | None = None, **kwargs: Any) -> FakeKeyVaultSecret:
        from azure.core.exceptions import ResourceNotFoundError

        with self._lock:
            self.calls += 1
            if self.fail is not None:
                raise self.fail
            versions = self._secrets.get(name)
            if not versions:
                raise ResourceNotFoundError(message=f"(SecretNotFound) A secret with (name/id) {name} was not found")
            index = int(version) - 1 if version else len(versions) - 1
            return FakeKeyVaultSecret(name, versions[index], _Properties(name, str(index + 1)))

    def close(self) -> None:
        """``SecretClient`` has ``close``; nothing to release here."""
