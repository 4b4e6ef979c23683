"""Conformance for secret stores (`SecretStore`).

Subclass `SecretStoreConformance`, set its flags, and provide a ``secret_target`` fixture returning a
`SecretTarget`: the store, and a way to create or update a secret behind its back. Values used by
the suite start with ``canary`` where they must never show up in a message or repr.

The second half builds targets for the project's own stores (Secrets Manager, Key Vault through a
fake ``SecretClient``, GCP Secret Manager through a fake ``SecretManagerServiceClient``, Kubernetes
secret files, environment variables).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import pytest

from ...errors import SecretError, SecretNotFoundError
from ...secrets.base import SecretStore


@dataclass
class SecretTarget:
    store: SecretStore
    #: create or update a secret's value, behind the store's back
    put: Callable[[str, str], object]
    name: str = "secret store"


def unique(stem: str = "contract") -> str:
    return f"{stem}-{uuid.uuid4().hex[:8]}"


class SecretStoreConformance:
    """The contract every secret store keeps. Provide a ``secret_target`` fixture."""

    #: names like ``prod/redis`` work; else they are "not found" with a message naming the characters allowed
    supports_slash_names: ClassVar[bool] = True
    #: reads are cached (and ``invalidate(name)`` rereads); else every read sees the current value
    caches_values: ClassVar[bool] = True

    def test_plain_string(self, secret_target: SecretTarget) -> None:
        name = unique()
        secret_target.put(name, "canary-plain")
        assert secret_target.store.get(name) == "canary-plain"

    def test_json_object_becomes_a_dict(self, secret_target: SecretTarget) -> None:
        name = unique()
        secret_target.put(name, json.dumps({"host": "h", "port": 6379}))
        assert secret_target.store.get(name) == {"host": "h", "port": 6379}
        assert secret_target.store.get_json(name)["port"] == 6379

    def test_get_json_of_text_names_secret_and_store_not_value(self, secret_target: SecretTarget) -> None:
        name = unique()
        secret_target.put(name, "canary-not-json")
        with pytest.raises(SecretError) as info:
            secret_target.store.get_json(name)
        assert name in str(info.value)
        assert secret_target.store.store_name in str(info.value)
        assert "canary" not in str(info.value)

    def test_missing_secret(self, secret_target: SecretTarget) -> None:
        name = unique("missing")
        with pytest.raises(SecretNotFoundError) as info:
            secret_target.store.get(name)
        assert isinstance(info.value, KeyError)
        message = str(info.value)
        assert f"'{name}'" in message
        assert secret_target.store.store_name in message
        assert not message.startswith('"')

    def test_failure_is_never_cached(self, secret_target: SecretTarget) -> None:
        name = unique()
        with pytest.raises(SecretNotFoundError):
            secret_target.store.get(name)
        secret_target.put(name, "now-there")
        assert secret_target.store.get(name) == "now-there"

    def test_values_are_cached_for_the_ttl_and_invalidate_rereads(self, secret_target: SecretTarget) -> None:
        name = unique()
        secret_target.put(name, "v1")
        assert secret_target.store.get(name) == "v1"
        secret_target.put(name, "v2")
        if not self.caches_values:
            assert secret_target.store.get(name) == "v2"
            return
        assert secret_target.store.get(name) == "v1"
        secret_target.store.invalidate(name)  # type: ignore[attr-defined]
        assert secret_target.store.get(name) == "v2"

    def test_repr_holds_no_value(self, secret_target: SecretTarget) -> None:
        name = unique()
        secret_target.put(name, "canary-repr")
        secret_target.store.get(name)
        assert "canary" not in repr(secret_target.store)

    def test_aws_style_names(self, secret_target: SecretTarget) -> None:
        name = f"prod/{unique()}"
        if not self.supports_slash_names:
            with pytest.raises(SecretNotFoundError, match="names hold only letters, digits"):
                secret_target.store.get(name)
            return
        secret_target.put(name, "slashed")
        assert secret_target.store.get(name) == "slashed"


# --- the project's own stores: flags and target builders -------------------------------------------------


class SecretsManagerConformance(SecretStoreConformance):
    """AWS Secrets Manager: defaults throughout."""


class KeyVaultConformance(SecretStoreConformance):
    supports_slash_names = False  # Key Vault names allow only letters, digits and '-'


class SecretManagerConformance(SecretStoreConformance):
    """GCP Secret Manager."""

    supports_slash_names = False  # Secret Manager names allow only letters, digits, '-' and '_'


class MountedSecretsConformance(SecretStoreConformance):
    """Kubernetes secret files: defaults throughout."""


class EnvSecretsConformance(SecretStoreConformance):
    """Environment variables: defaults throughout."""


def secrets_manager_target(client: Any) -> SecretTarget:
    """Secrets Manager through ``client`` (a boto3 ``secretsmanager`` client, e.g. on moto)."""
    from ...secrets.aws import SecretsManagerStore

    def put(name: str, value: str) -> None:
        try:
            client.put_secret_value(SecretId=name, SecretString=value)
        except client.exceptions.ResourceNotFoundException:
            client.create_secret(Name=name, SecretString=value)

    return SecretTarget(SecretsManagerStore(client, region="us-east-1"), put, name="aws")


def key_vault_target() -> SecretTarget:
    """Key Vault through the SDK-boundary fake (`model_engine_infra.testing.keyvault`)."""
    from ...secrets.azure import KeyVaultStore
    from ..keyvault import FakeSecretClient

    fake = FakeSecretClient()
    return SecretTarget(KeyVaultStore(fake, keyvault_name="contract-kv"), fake.set_secret, name="azure")


def secret_manager_target(project: str = "contract-project") -> SecretTarget:
    """GCP Secret Manager through the SDK-boundary fake (`model_engine_infra.testing.secretmanager`)."""
    from ...secrets.gcp import SecretManagerStore
    from ..secretmanager import FakeSecretManagerClient

    fake = FakeSecretManagerClient(project=project)
    return SecretTarget(SecretManagerStore(fake, project=project), fake.set_secret, name="gcp")


def mounted_target(folder: Path) -> SecretTarget:
    """Kubernetes secret files under ``folder``."""
    from ...secrets.kubernetes import MountedSecretStore

    def put(name: str, value: str) -> None:
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(value + "\n")

    return SecretTarget(MountedSecretStore(folder), put, name="kubernetes")


def env_target() -> SecretTarget:
    """``MODEL_ENGINE_SECRET_<NAME>`` variables, as `load_config` hands them over."""
    from pydantic import SecretStr

    from ...secrets.env import EnvSecretStore

    env: dict[str, SecretStr] = {}

    def put(name: str, value: str) -> None:
        env[name.upper().replace("-", "_").replace("/", "_")] = SecretStr(value)

    return SecretTarget(EnvSecretStore(env), put, name="env")
