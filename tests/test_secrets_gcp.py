"""GCP Secret Manager: errors, integrity, log redaction, and choosing a secret store with secrets_backend."""

from __future__ import annotations

import io
import json
import logging
from typing import Any

import pytest
from google.cloud import secretmanager

from model_engine_infra import InfraConfig, build_infra, load_config
from model_engine_infra.errors import ConfigError, SecretError, SecretNotFoundError
from model_engine_infra.secrets.env import EnvSecretStore
from model_engine_infra.secrets.gcp import SDK_LOGGERS, SecretManagerStore
from model_engine_infra.secrets.kubernetes import MountedSecretStore
from model_engine_infra.testing.secretmanager import FakeSecretManagerClient

CANARY = "canary-7f3a-secret-value"
GCP_ENV = {
    "MODEL_ENGINE_INFRA_CLOUD_PROVIDER": "gcp",
    "MODEL_ENGINE_INFRA_DOCKER_REPO_PREFIX": "us-docker.pkg.dev/p1/r",
}


def store_with(**secrets: str) -> tuple[SecretManagerStore, FakeSecretManagerClient]:
    fake = FakeSecretManagerClient(secrets, project="p1")
    return SecretManagerStore(fake, project="p1"), fake


def test_reads_the_latest_enabled_version() -> None:
    store, fake = store_with(db=CANARY)
    fake.set_secret("db", "second")
    assert store.get("db") == "second"
    fake.disable_latest("db")
    store.invalidate("db")
    assert store.get("db") == CANARY  # "latest" is the newest enabled version


def test_a_disabled_only_version_is_an_error_that_says_so() -> None:
    store, fake = store_with(db=CANARY)
    fake.disable_latest("db")
    with pytest.raises(SecretError, match="disabled or destroyed") as err:
        store.get("db")
    assert CANARY not in str(err.value)


@pytest.mark.parametrize(
    ("fail", "expected", "says"),
    [
        ("fail_permission_denied", SecretError, r"roles/secretmanager\.secretAccessor"),
        ("fail_deadline_exceeded", SecretError, "could not be reached"),
        ("fail_not_found", SecretNotFoundError, "not found"),
    ],
)
def test_service_errors_become_ours_and_are_never_cached(fail: str, expected: type[Exception], says: str) -> None:
    store, fake = store_with(db=CANARY)
    getattr(fake, fail)()
    with pytest.raises(expected, match=says) as err:
        store.get("db")
    assert "'db'" in str(err.value)
    assert "project 'p1'" in str(err.value)
    assert CANARY not in str(err.value)
    fake.fail = None
    assert store.get("db") == CANARY


def test_the_request_names_the_latest_version_in_the_project() -> None:
    seen: list[Any] = []

    class Recording(FakeSecretManagerClient):
        def access_secret_version(self, request: Any = None, **kwargs: Any) -> Any:
            seen.append((request, kwargs.get("timeout")))
            return super().access_secret_version(request, **kwargs)

    fake = Recording({"db": "v"}, project="p1")
    SecretManagerStore(fake, project="p1", timeout=3.0).get("db")
    assert seen == [({"name": "projects/p1/secrets/db/versions/latest"}, 3.0)]


def test_a_corrupted_payload_is_refused() -> None:
    class Corrupting(FakeSecretManagerClient):
        def access_secret_version(self, request: Any = None, **kwargs: Any) -> Any:
            response = super().access_secret_version(request, **kwargs)
            response.payload.data_crc32c = response.payload.data_crc32c + 1
            return response

    store = SecretManagerStore(Corrupting({"db": CANARY}, project="p1"), project="p1")
    with pytest.raises(SecretError, match="CRC32C") as err:
        store.get("db")
    assert CANARY not in str(err.value)


def test_binary_secrets_are_refused_without_showing_them() -> None:
    fake = FakeSecretManagerClient(project="p1")
    fake.set_secret("blob", b"\xff\xfe" + CANARY.encode())
    with pytest.raises(SecretError, match="not UTF-8") as err:
        SecretManagerStore(fake, project="p1").get("blob")
    assert CANARY not in str(err.value)


def test_json_secrets_become_dicts() -> None:
    store, _ = store_with(redis=json.dumps({"host": "h", "auth_token": CANARY}))
    assert store.get_json("redis")["host"] == "h"
    assert CANARY not in repr(store)


def test_the_sdks_debug_logs_never_carry_the_secret() -> None:
    """The SDK attaches whole responses to DEBUG records when client logging is on; they are blanked."""
    store_with()  # a store installs the filter
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(message)s %(response)s"))
    for name in SDK_LOGGERS:
        logger = logging.getLogger(name)
        logger.addHandler(handler)
        logger.setLevel(logging.DEBUG)
        try:
            response = secretmanager.AccessSecretVersionResponse(payload={"data": CANARY.encode()})
            payload = type(response).to_json(response)
            logger.debug("Received response", extra={"response": {"payload": payload, "status": "OK"}})
        finally:
            logger.removeHandler(handler)
            logger.setLevel(logging.NOTSET)
    text = stream.getvalue()
    assert "Received response" in text
    assert CANARY not in text
    assert CANARY.encode().hex() not in text


# --- choosing the store -------------------------------------------------------------------------------------


def test_gcp_keeps_kubernetes_secret_files_by_default(tmp_path: Any) -> None:
    config = InfraConfig(cloud_provider="gcp", gcp_project_id="p1", secrets_dir=str(tmp_path))
    with build_infra(config) as infra:
        assert isinstance(infra.secrets, MountedSecretStore)


def test_secrets_backend_selects_secret_manager(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = FakeSecretManagerClient({"db": CANARY}, project="p1")
    monkeypatch.setattr(secretmanager, "SecretManagerServiceClient", lambda: fake)
    config = load_config(
        env={
            **GCP_ENV,
            "GCP_PROJECT_ID": "p1",
            "MODEL_ENGINE_INFRA_SECRETS_BACKEND": "gcpsecretmanager",
        }
    )
    with build_infra(config) as infra:
        assert isinstance(infra.secrets, SecretManagerStore)
        assert infra.secrets.get("db") == CANARY


def test_secrets_backend_overrides_any_provider() -> None:
    config = InfraConfig(cloud_provider="aws", secrets_backend="env", env_secrets={})
    with build_infra(config) as infra:
        assert isinstance(infra.secrets, EnvSecretStore)


def test_an_unknown_secrets_backend_fails_at_load_naming_the_key() -> None:
    with pytest.raises(ConfigError, match="MODEL_ENGINE_INFRA_SECRETS_BACKEND") as err:
        load_config(env={**GCP_ENV, "MODEL_ENGINE_INFRA_SECRETS_BACKEND": "gcpsecrets"})
    assert "gcpsecretmanager" in str(err.value)  # the fix lists the registered stores


def test_secret_manager_without_a_project_names_the_key() -> None:
    config = InfraConfig(cloud_provider="gcp", secrets_backend="gcpsecretmanager")
    with build_infra(config) as infra, pytest.raises(ConfigError, match="gcp_project_id"):
        _ = infra.secrets
