"""The secret-store conformance suite: Secrets Manager (in-process moto), Key Vault (a fake
``SecretClient`` at the SDK boundary), GCP Secret Manager (a fake ``SecretManagerServiceClient``),
Kubernetes secret files, and environment variables.

Unavoidable difference, declared by a flag: Key Vault names allow only letters, digits and ``-``
(Secret Manager's also ``_``), so an AWS-style name such as ``prod/redis`` is "not found" there
(with a message that says why).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from model_engine_infra.secrets.azure import KeyVaultStore
from model_engine_infra.testing.conformance.secrets import (
    EnvSecretsConformance,
    KeyVaultConformance,
    MountedSecretsConformance,
    SecretManagerConformance,
    SecretsManagerConformance,
    SecretTarget,
    env_target,
    key_vault_target,
    mounted_target,
    secret_manager_target,
    secrets_manager_target,
)
from model_engine_infra.testing.keyvault import FakeSecretClient


class TestSecretsManager(SecretsManagerConformance):
    @pytest.fixture
    def secret_target(self) -> Iterator[SecretTarget]:
        import boto3
        from moto import mock_aws

        with mock_aws():
            yield secrets_manager_target(boto3.client("secretsmanager", region_name="us-east-1"))


class TestKeyVault(KeyVaultConformance):
    @pytest.fixture
    def secret_target(self) -> SecretTarget:
        return key_vault_target()


class TestSecretManager(SecretManagerConformance):
    @pytest.fixture
    def secret_target(self) -> SecretTarget:
        return secret_manager_target()


class TestMountedSecrets(MountedSecretsConformance):
    @pytest.fixture
    def secret_target(self, tmp_path: Path) -> SecretTarget:
        return mounted_target(tmp_path)


class TestEnvSecrets(EnvSecretsConformance):
    @pytest.fixture
    def secret_target(self) -> SecretTarget:
        return env_target()


def test_zero_ttl_rereads_every_time() -> None:
    fake = FakeSecretClient(secrets={"s": "v1"})
    store: Any = KeyVaultStore(fake, keyvault_name="kv", ttl_seconds=0)
    store.get("s")
    store.get("s")
    assert fake.calls == 2
