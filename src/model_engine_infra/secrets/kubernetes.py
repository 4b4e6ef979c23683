"""Kubernetes secrets mounted as files, falling back to ``MODEL_ENGINE_SECRET_<NAME>`` variables.

A secret is either one file (``{secrets_dir}/{name}``) or a folder of key files
(``{secrets_dir}/{name}/{key}``, as a mounted Kubernetes Secret looks), read as a dict. Names never
escape ``secrets_dir``. Kubernetes updates mounted files in place, so reads are cached only for the TTL.
"""

from __future__ import annotations

import errno
import re
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import SecretStr

from ..errors import SecretError, SecretNotFoundError
from .base import MAX_SECRET_BYTES, CachedSecretStore, too_large

if TYPE_CHECKING:
    from ..config.model import InfraConfig
    from ..infra import Infra

__all__ = ["MountedSecretStore", "build_store", "env_secret", "read_secret_path"]

ENV_HINT = "MODEL_ENGINE_SECRET_<NAME>"


def read_secret_path(base: Path, name: str) -> str | dict[str, Any] | None:
    """The secret ``name`` under ``base`` (file text or folder dict), None if absent; unsafe names are absent."""
    if not name or name.startswith(("/", "\\")) or any(part in ("", ".", "..") for part in re.split(r"[/\\]", name)):
        return None
    if "\0" in name:  # no file has it; Path would raise ValueError
        return None
    try:
        root = base.resolve()
        path = (base / name).resolve()
    except OSError:  # a name no file system takes (too long): absent
        return None
    if root != path and root not in path.parents:
        return None
    try:
        if path.is_dir():
            files = [child for child in sorted(path.iterdir()) if not child.name.startswith(".") and child.is_file()]
            total = sum(child.stat().st_size for child in files)
            if total > MAX_SECRET_BYTES:
                raise too_large(name, str(base), total)
            return {child.name: _read_text(child).rstrip("\n") for child in files}
        if path.is_file():
            size = path.stat().st_size
            if size > MAX_SECRET_BYTES:
                raise too_large(name, str(base), size)
            return _read_text(path).rstrip("\n")
    except PermissionError as err:
        raise SecretError(f"secret {name!r} under {base} is not readable (permission denied)") from err
    except UnicodeDecodeError as err:
        raise SecretError(f"secret {name!r} under {base} is not UTF-8 text") from err
    except OSError as err:
        if err.errno == errno.ENAMETOOLONG:
            return None  # no file can have that name
        raise SecretError(
            f"secret {name!r} under {base} cannot be read ({err.strerror or type(err).__name__})"
        ) from err
    return None


def _read_text(path: Path) -> str:
    """At most `MAX_SECRET_BYTES` (a file can grow after its size was read, or be a device)."""
    with path.open("rb") as handle:
        data = handle.read(MAX_SECRET_BYTES + 1)
    if len(data) > MAX_SECRET_BYTES:
        raise too_large(path.name, str(path.parent), len(data))
    return data.decode("utf-8")


def env_secret(env: Mapping[str, SecretStr], name: str) -> str | None:
    """``name`` from the ``MODEL_ENGINE_SECRET_*`` variables: exact, then upper case with ``[^A-Z0-9]`` -> ``_``."""
    for candidate in (name, name.upper(), re.sub(r"[^A-Za-z0-9]", "_", name).upper()):
        value = env.get(candidate)
        if value is not None:
            return value.get_secret_value()
    return None


class MountedSecretStore(CachedSecretStore):
    """Mounted secret files first, then environment variables."""

    def __init__(
        self,
        secrets_dir: str | Path | None,
        env_secrets: Mapping[str, SecretStr] | None = None,
        *,
        ttl_seconds: float = 300.0,
    ) -> None:
        super().__init__(ttl_seconds=ttl_seconds)
        self._dir = Path(secrets_dir) if secrets_dir else None
        self._env: Mapping[str, SecretStr] = env_secrets if env_secrets is not None else {}
        where = f"Kubernetes secret files in {self._dir}" if self._dir else "no secrets_dir"
        self.store_name = f"{where} (and {ENV_HINT} variables)"

    def __repr__(self) -> str:
        return f"MountedSecretStore({self.store_name!r})"

    def _fetch(self, name: str) -> str | dict[str, Any]:
        if self._dir is not None:
            value = read_secret_path(self._dir, name)
            if value is not None:
                return value
        value_env = env_secret(self._env, name)
        if value_env is not None:
            return value_env
        raise SecretNotFoundError(
            f"secret {name!r} not found in {self.store_name}. Fix: mount the Kubernetes Secret under "
            f"secrets_dir, or set {ENV_HINT}"
        )


def build_store(config: InfraConfig, infra: Infra | None = None) -> MountedSecretStore:
    """The provider factory (gcp, onprem)."""
    return MountedSecretStore(config.secrets_dir, config.env_secrets, ttl_seconds=config.secret_cache_ttl_seconds)
