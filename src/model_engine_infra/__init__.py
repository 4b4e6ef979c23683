"""model-engine-infra: one interface to an ML control plane's cloud infrastructure.

    from model_engine_infra import load_config, build_infra
    infra = build_infra(load_config())

Importing this package loads no cloud SDK, Celery, kombu or redis module; each component imports
what it needs the first time it is used.
"""

from __future__ import annotations

from . import errors
from .config import InfraConfig, load_config
from .infra import Infra, build_infra
from .registry import available_providers, register_provider

__version__ = "0.1.0"

__all__ = [
    "Infra",
    "InfraConfig",
    "available_providers",
    "build_infra",
    "errors",
    "load_config",
    "register_provider",
]
