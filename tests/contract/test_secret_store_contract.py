"""The one contract every `SecretStore` passes: Secrets Manager (in-process moto), Key Vault (a fake
``SecretClient`` at the SDK boundary), GCP Secret Manager (a fake ``SecretManagerServiceClient``),
Kubernetes secret files, and environment variables.

Unavoidable difference, asserted here: Key Vault names allow only letters, digits and ``-`` (Secret
Manager's also ``_``), so an AWS-style name such as ``prod/redis`` is "not found" there (with a
message that says why).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws
from pydantic import SecretStr

from model_engine_infra.errors import SecretError, SecretNotFoundError
from model_engine_infra.secrets.aws import SecretsManagerStore
from model_engine_infra.secrets.azure import KeyVaultStore
from model_engine_infra.secrets.base import CachedSecretStore
from model_engine_infra.secrets.env import EnvSecretStore
from model_engine_infra.secrets.gcp import SecretManagerStore
from model_engine_infra.secrets.kubernetes import MountedSecretStore
from model_engine_infra.testing.keyvault import FakeSecretClient
from model_engine_infra.testing.secretmanager import FakeSecretManagerClient


@dataclass
class SecretTarget:
    store: CachedSecretStore
    put: Callable[[str, str], None]  # create or update a secret's value
    slash_names: bool = True


@pytest.fixture(params=["aws", "azure", "gcp", "kubernetes", "env"])
def target(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[SecretTarget]:
    kind = request.param
    if kind == "aws":
        with mock_aws():
            client = boto3.client("secretsmanager", region_name="us-east-1")

            def put_aws(name: str, value: str) -> None:
                try:
                    client.put_secret_value(SecretId=name, SecretString=value)
                except client.exceptions.ResourceNotFoundException:
                    client.create_secret(Name=name, SecretString=value)

            yield SecretTarget(SecretsManagerStore(client, region="us-east-1"), put_aws)
        return
    if kind == "azure":
        fake = FakeSecretClient()
        yield SecretTarget(KeyVaultStore(fake, keyvault_name="contract-kv"), fake.set_secret, slash_names=False)
        return
    if kind == "gcp":
        secret_manager = FakeSecretManagerClient(project="contract-project")
        store = SecretManagerStore(secret_manager, project="contract-project")
        yield SecretTarget(store, secret_manager.set_secret, slash_names=False)
        return
    if kind == "kubernetes":

        def put_file(name: str, value: str) -> None:
            path = tmp_path / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(value + "\n")

        yield SecretTarget(MountedSecretStore(tmp_path), put_file)
        return
    env: dict[str, SecretStr] = {}

    def put_env(name: str, value: str) -> None:
        env[name.upper().replace("-", "_").replace("/", "_")] = SecretStr(value)

    yield SecretTarget(EnvSecretStore(env), put_env)


def unique(stem: str = "contract") -> str:
    return f"{stem}-{uuid.uuid4().hex[:8]}"


class TestSecretStoreContract:
    def test_plain_string(self, target: SecretTarget) -> None:
        name = unique()
        target.put(name, "canary-plain")
        assert target.store.get(name) == "canary-plain"

    def test_json_object_becomes_a_dict(self, target: SecretTarget) -> None:
        name = unique()
        target.put(name, json.dumps({"host": "h", "port": 6379}))
        assert target.store.get(name) == {"host": "h", "port": 6379}
        assert target.store.get_json(name)["port"] == 6379

    def test_get_json_of_text_names_secret_and_store_not_value(self, target: SecretTarget) -> None:
        name = unique()
        target.put(name, "canary-not-json")
        with pytest.raises(SecretError) as info:
            target.store.get_json(name)
        assert name in str(info.value)
        assert target.store.store_name in str(info.value)
        assert "canary" not in str(info.value)

    def test_missing_secret(self, target: SecretTarget) -> None:
        name = unique("missing")
        with pytest.raises(SecretNotFoundError) as info:
            target.store.get(name)
        assert isinstance(info.value, KeyError)
        message = str(info.value)
        assert f"'{name}'" in message
        assert target.store.store_name in message
        assert not message.startswith('"')

    def test_failure_is_never_cached(self, target: SecretTarget) -> None:
        name = unique()
        with pytest.raises(SecretNotFoundError):
            target.store.get(name)
        target.put(name, "now-there")
        assert target.store.get(name) == "now-there"

    def test_values_are_cached_for_the_ttl_and_invalidate_rereads(self, target: SecretTarget) -> None:
        name = unique()
        target.put(name, "v1")
        assert target.store.get(name) == "v1"
        target.put(name, "v2")
        assert target.store.get(name) == "v1"
        target.store.invalidate(name)
        assert target.store.get(name) == "v2"

    def test_repr_holds_no_value(self, target: SecretTarget) -> None:
        name = unique()
        target.put(name, "canary-repr")
        target.store.get(name)
        assert "canary" not in repr(target.store)

    def test_aws_style_names(self, target: SecretTarget) -> None:
        name = f"prod/{unique()}"
        if not target.slash_names:
            with pytest.raises(SecretNotFoundError, match="names hold only letters, digits"):
                target.store.get(name)
            return
        target.put(name, "slashed")
        assert target.store.get(name) == "slashed"


def test_zero_ttl_rereads_every_time() -> None:
    fake = FakeSecretClient(secrets={"s": "v1"})
    store: Any = KeyVaultStore(fake, keyvault_name="kv", ttl_seconds=0)
    store.get("s")
    store.get("s")
    assert fake.calls == 2
