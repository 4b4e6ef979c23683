"""The conformance kit as a plugin author meets it: cheap to import, and a new backend certified by subclassing."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import pytest

from model_engine_infra.errors import SecretNotFoundError
from model_engine_infra.secrets.base import CachedSecretStore
from model_engine_infra.testing.conformance import SecretStoreConformance, SecretTarget

HEAVY = ("boto3", "botocore", "aiobotocore", "kombu", "celery", "redis", "fakeredis", "moto", "azure", "google")


def test_importing_the_kit_loads_no_sdk_and_no_plugin() -> None:
    code = (
        "import sys\n"
        "import model_engine_infra.testing.conformance as kit\n"
        "assert not [m for m in sys.modules if m.startswith('model_engine_infra.testing.conformance.')]\n"
        "for name in kit.__all__:\n"
        "    getattr(kit, name)\n"
        f"heavy = sorted({{m.split('.')[0] for m in sys.modules}} & set({HEAVY!r}))\n"
        "assert not heavy, heavy\n"
        "assert 'model_engine_infra.testing.pytest_plugin' not in sys.modules\n"
        "assert 'model_engine_infra.testing.servers' not in sys.modules\n"
        "print('ok')\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"


def test_every_kind_is_exported() -> None:
    import model_engine_infra.testing.conformance as kit

    bases = [getattr(kit, name) for name in kit.__all__ if name.endswith("Conformance")]
    assert {base.__name__ for base in bases} == {
        "QueueDelegateConformance",
        "TaskQueueConformance",
        "StoreConformance",
        "FileStorageConformance",
        "SecretStoreConformance",
        "RedisConnectionConformance",
        "DockerRepositoryConformance",
        "AutoscalingMetricsConformance",
    }
    for base in bases:  # every test of a base is a method a subclass inherits
        assert any(name.startswith("test_") for name in vars(base)), base


class DictSecretStore(CachedSecretStore):
    """What a plugin author might write: secrets in a dict, cached like every store."""

    store_name = "dict store"

    def __init__(self, values: dict[str, str]) -> None:
        super().__init__(ttl_seconds=300)
        self._values = values

    def _fetch(self, name: str) -> str | dict[str, Any]:
        if name not in self._values:
            raise SecretNotFoundError(f"secret {name!r} is not in the {self.store_name}")
        return self._values[name]


class TestAPluginSecretStore(SecretStoreConformance):
    """One subclass, one fixture: the whole contract runs on a store this project never saw."""

    @pytest.fixture
    def secret_target(self) -> SecretTarget:
        values: dict[str, str] = {}
        return SecretTarget(DictSecretStore(values), values.__setitem__, name="dict")
