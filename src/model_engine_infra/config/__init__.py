"""Configuration: `load_config()` reads files and the environment once; `InfraConfig` holds it.

Names are resolved on first access (PEP 562), so ``import model_engine_infra.config.keys`` — as a
backend's rule does — loads neither pydantic nor the loader.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..rules import Finding, Severity
    from .loader import ConfigWarning, load_config
    from .model import InfraConfig

_LAZY = {
    "ConfigWarning": ".loader",
    "load_config": ".loader",
    "InfraConfig": ".model",
    "Finding": "..rules",
    "Severity": "..rules",
}


def __getattr__(name: str) -> Any:
    module_name = _LAZY.get(name)
    if module_name is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module_name, __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_LAZY])


__all__ = ["ConfigWarning", "Finding", "InfraConfig", "Severity", "load_config"]
