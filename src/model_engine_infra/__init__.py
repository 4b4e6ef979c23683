"""model-engine-infra: one interface to an ML control plane's cloud infrastructure.

    from model_engine_infra import load_config, build_infra
    infra = build_infra(load_config())

Importing this package loads no cloud SDK, Celery, kombu or redis module; each component imports
what it needs the first time it is used. The names below are resolved on first access (PEP 562),
so ``import model_engine_infra.errors`` or ``.testing`` alone does not load pydantic either.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_LAZY = {
    "load_config": "model_engine_infra.config",
    "InfraConfig": "model_engine_infra.config",
    "build_infra": "model_engine_infra.infra",
    "Infra": "model_engine_infra.infra",
    "available_providers": "model_engine_infra.registry",
    "register_provider": "model_engine_infra.registry",
    "errors": "model_engine_infra.errors",
}

if TYPE_CHECKING:
    from . import errors
    from .config import InfraConfig, load_config
    from .infra import Infra, build_infra
    from .registry import available_providers, register_provider


def __getattr__(name: str) -> Any:
    module_name = _LAZY.get(name)
    if module_name is None:
        raise AttributeError(f"module 'model_engine_infra' has no attribute {name!r}")
    module = importlib.import_module(module_name)
    value = module if name == "errors" else getattr(module, name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_LAZY])


__all__ = [
    "Infra",
    "InfraConfig",
    "available_providers",
    "build_infra",
    "errors",
    "load_config",
    "register_provider",
]
