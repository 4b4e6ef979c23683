"""The local secret store: ``MODEL_ENGINE_SECRET_<NAME>`` variables, then files in ``{local_data_dir}/secrets``."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import SecretStr

from ..errors import SecretNotFoundError
from .base import CachedSecretStore
from .kubernetes import ENV_HINT, env_secret, read_secret_path

if TYPE_CHECKING:
    from ..config.model import InfraConfig
    from ..infra import Infra

__all__ = ["EnvSecretStore", "build_store"]


class EnvSecretStore(CachedSecretStore):
    """Variables win over files, so a developer can override one secret without editing files."""

    def __init__(
        self,
        env_secrets: Mapping[str, SecretStr] | None = None,
        secrets_dir: str | Path | None = None,
        *,
        ttl_seconds: float = 300.0,
    ) -> None:
        super().__init__(ttl_seconds=ttl_seconds)
        self._env: Mapping[str, SecretStr] = env_secrets if env_secrets is not None else {}
        self._dir = Path(secrets_dir) if secrets_dir else None
        files = f" and files in {self._dir}" if self._dir else ""
        self.store_name = f"{ENV_HINT} variables{files}"

    def __repr__(self) -> str:
        return f"EnvSecretStore({self.store_name!r})"

    def _fetch(self, name: str) -> str | dict[str, Any]:
        value = env_secret(self._env, name)
        if value is not None:
            return value
        if self._dir is not None:
            found = read_secret_path(self._dir, name)
            if found is not None:
                return found
        raise SecretNotFoundError(
            f"secret {name!r} not found in {self.store_name}. Fix: set {ENV_HINT} or add the file"
        )


def build_store(config: InfraConfig, infra: Infra | None = None) -> EnvSecretStore:
    """The provider factory (local)."""
    secrets_dir = Path(config.local_data_dir) / "secrets"
    return EnvSecretStore(config.env_secrets, secrets_dir, ttl_seconds=config.secret_cache_ttl_seconds)
