"""Conformance suites: the contract every backend of a kind keeps, as pytest base classes.

One class per kind. Subclass it in a test module, set the capability flags where your backend
differs (class attributes, each documented on the base class), and provide the fixture it names,
which builds your implementation plus the broker- or store-side tools the tests need::

    from model_engine_infra.testing.conformance import SecretStoreConformance, SecretTarget

    class TestMyVault(SecretStoreConformance):
        @pytest.fixture
        def secret_target(self) -> SecretTarget:
            vault = MyVault()
            return SecretTarget(MyVaultStore(vault), put=vault.set)

=====================================  ==========================  =====================
base class                             fixture to provide          builds
=====================================  ==========================  =====================
`QueueDelegateConformance`             ``queue_target``            `QueueTarget`
`TaskQueueConformance`                 ``task_queue_target``       `TaskQueueTarget`
`StoreConformance`                     ``store_target``            `StoreTarget`
`FileStorageConformance`               ``file_storage_target``     `FileStorageTarget`
`SecretStoreConformance`               ``secret_target``           `SecretTarget`
`RedisConnectionConformance`           ``redis_target``            `RedisTarget`
`DockerRepositoryConformance`          ``registry_target``         `RegistryTarget`
`AutoscalingMetricsConformance`        ``autoscaling_target``      `AutoscalingTarget`
=====================================  ==========================  =====================

The project's own backends run through these same classes (its unit and integration suites
subclass them); each kind's module also holds the builders for those backends, which import their
SDKs only when called. Async tests are marked ``pytest.mark.asyncio`` (pytest-asyncio). Importing
this package imports no submodule: each is loaded when one of its names is first used.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # type checkers see the real classes; at run time they load on first use
    from .autoscaling import AutoscalingMetricsConformance, AutoscalingTarget
    from .file_storage import FileStorageConformance, FileStorageTarget
    from .images import DockerRepositoryConformance, RegistryTarget
    from .queues import QueueDelegateConformance, QueueTarget
    from .redis import RedisConnectionConformance, RedisTarget
    from .secrets import SecretStoreConformance, SecretTarget
    from .storage import StoreConformance, StoreTarget
    from .tasks import TaskQueueConformance, TaskQueueTarget

_EXPORTS = {
    "QueueDelegateConformance": "queues",
    "QueueTarget": "queues",
    "TaskQueueConformance": "tasks",
    "TaskQueueTarget": "tasks",
    "StoreConformance": "storage",
    "StoreTarget": "storage",
    "FileStorageConformance": "file_storage",
    "FileStorageTarget": "file_storage",
    "SecretStoreConformance": "secrets",
    "SecretTarget": "secrets",
    "RedisConnectionConformance": "redis",
    "RedisTarget": "redis",
    "DockerRepositoryConformance": "images",
    "RegistryTarget": "images",
    "AutoscalingMetricsConformance": "autoscaling",
    "AutoscalingTarget": "autoscaling",
}

__all__ = [
    "AutoscalingMetricsConformance",
    "AutoscalingTarget",
    "DockerRepositoryConformance",
    "FileStorageConformance",
    "FileStorageTarget",
    "QueueDelegateConformance",
    "QueueTarget",
    "RedisConnectionConformance",
    "RedisTarget",
    "RegistryTarget",
    "SecretStoreConformance",
    "SecretTarget",
    "StoreConformance",
    "StoreTarget",
    "TaskQueueConformance",
    "TaskQueueTarget",
]


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)


def __dir__() -> list[str]:
    return __all__
