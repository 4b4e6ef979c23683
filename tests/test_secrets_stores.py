"""What each secret store does beyond the contract: SDK errors, folders, env fallback, factories."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError, EndpointConnectionError
from moto import mock_aws
from pydantic import SecretStr

from model_engine_infra.config import InfraConfig
from model_engine_infra.errors import SecretError, SecretNotFoundError
from model_engine_infra.secrets import aws, azure, env, kubernetes
from model_engine_infra.secrets.aws import SecretsManagerStore
from model_engine_infra.secrets.azure import KeyVaultStore
from model_engine_infra.secrets.env import EnvSecretStore
from model_engine_infra.secrets.kubernetes import MountedSecretStore
from model_engine_infra.testing.keyvault import FakeSecretClient


class RaisingClient:
    def __init__(self, error: Exception) -> None:
        self.error = error

    def get_secret_value(self, **kwargs: Any) -> Any:
        raise self.error


def client_error(code: str) -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": "m"}}, "GetSecretValue")


def test_aws_access_denied_says_which_permission() -> None:
    store = SecretsManagerStore(RaisingClient(client_error("AccessDeniedException")), region="eu-west-1")
    with pytest.raises(SecretError, match="secretsmanager:GetSecretValue") as info:
        store.get("db")
    assert not isinstance(info.value, SecretNotFoundError)
    assert "eu-west-1" in str(info.value)


def test_aws_unreachable_is_a_secret_error() -> None:
    store = SecretsManagerStore(RaisingClient(EndpointConnectionError(endpoint_url="http://x")))
    with pytest.raises(SecretError, match="could not be reached"):
        store.get("db")


def test_aws_binary_secret_and_factory() -> None:
    with mock_aws():
        boto3.client("secretsmanager", region_name="us-west-2").create_secret(Name="bin", SecretBinary=b"bytes-value")
        config = InfraConfig(cloud_provider="aws", default_region="us-west-2")
        store = aws.build_store(config, None)  # type: ignore[arg-type]
        assert store.get("bin") == "bytes-value"
        assert store.store_name == "AWS Secrets Manager (us-west-2)"


def test_keyvault_forbidden_and_unreachable() -> None:
    fake = FakeSecretClient(secrets={"s": "v"})
    store = KeyVaultStore(fake, keyvault_name="kv")
    fake.fail_forbidden()
    with pytest.raises(SecretError, match="Key Vault Secrets User"):
        store.get("s")
    fake.fail_unreachable()
    with pytest.raises(SecretError, match="could not be reached"):
        store.get("s")
    fake.fail = None
    assert store.get("s") == "v"  # the failures were not cached


@pytest.mark.parametrize("error_name", ["ServiceResponseError", "ServiceResponseTimeoutError", "AzureError"])
def test_keyvault_other_sdk_failures_are_secret_errors(error_name: str) -> None:
    """A read timeout or a connection dropped mid-response is the SDK's ServiceResponseError, not a request error."""
    import azure.core.exceptions

    fake = FakeSecretClient(secrets={"s": "v"})
    store = KeyVaultStore(fake, keyvault_name="kv")
    fake.fail = getattr(azure.core.exceptions, error_name)("fake read timeout")
    with pytest.raises(SecretError, match="could not be reached") as info:
        store.get("s")
    assert "'s'" in str(info.value)


def test_keyvault_factory_points_at_the_vault() -> None:
    config = InfraConfig(cloud_provider="azure", keyvault_name="my-vault")
    store = azure.build_store(config, None)  # type: ignore[arg-type]
    assert store._client.vault_url == "https://my-vault.vault.azure.net"
    assert store.store_name == "Azure Key Vault 'my-vault'"


def test_kubernetes_folder_secret_as_mounted_by_kubelet(tmp_path: Path) -> None:
    # kubelet's atomic writer: ..data -> ..2024_x/, and each key a symlink through ..data
    real = tmp_path / "redis-credentials" / "..2024_01_01"
    real.mkdir(parents=True)
    (real / "host").write_text("r1")
    (real / "auth_token").write_text("canary\n")
    (tmp_path / "redis-credentials" / "..data").symlink_to(real.name)
    for key in ("host", "auth_token"):
        (tmp_path / "redis-credentials" / key).symlink_to(f"..data/{key}")
    store = MountedSecretStore(tmp_path)
    assert store.get("redis-credentials") == {"auth_token": "canary", "host": "r1"}


@pytest.mark.parametrize("name", ["../outside", "/etc/passwd", "a/../../outside", "", "."])
def test_kubernetes_names_never_escape_the_folder(tmp_path: Path, name: str) -> None:
    (tmp_path / "outside").write_text("nope")
    inner = tmp_path / "secrets"
    inner.mkdir()
    with pytest.raises(SecretNotFoundError):
        MountedSecretStore(inner).get(name)


def test_kubernetes_symlink_out_of_the_folder_is_refused(tmp_path: Path) -> None:
    (tmp_path / "outside").write_text("nope")
    inner = tmp_path / "secrets"
    inner.mkdir()
    os.symlink(tmp_path / "outside", inner / "link")
    with pytest.raises(SecretNotFoundError):
        MountedSecretStore(inner).get("link")


def test_kubernetes_falls_back_to_environment(tmp_path: Path) -> None:
    store = MountedSecretStore(tmp_path, {"DB_PASSWORD": SecretStr("from-env")})
    assert store.get("db-password") == "from-env"
    config = InfraConfig(cloud_provider="onprem", secrets_dir=str(tmp_path), env_secrets={"X": SecretStr("y")})
    assert kubernetes.build_store(config, None).get("x") == "y"  # type: ignore[arg-type]


def test_kubernetes_without_folder_uses_environment_only() -> None:
    store = MountedSecretStore(None, {"A": SecretStr("b")})
    assert store.get("A") == "b"
    with pytest.raises(SecretNotFoundError, match="secrets_dir"):
        store.get("missing")


def test_env_store_prefers_variables_then_local_files(tmp_path: Path) -> None:
    secrets_dir = tmp_path / "secrets"
    secrets_dir.mkdir()
    (secrets_dir / "api-key").write_text("from-file")
    (secrets_dir / "only-file").write_text('{"k": "v"}')
    config = InfraConfig(
        cloud_provider="local", local_data_dir=str(tmp_path), env_secrets={"API_KEY": SecretStr("canary-env")}
    )
    store = env.build_store(config, None)  # type: ignore[arg-type]
    assert isinstance(store, EnvSecretStore)
    assert store.get("api-key") == "canary-env"
    assert store.get("only-file") == {"k": "v"}
    assert "canary" not in repr(store)
