"""Configuration: `load_config()` reads files and the environment once; `InfraConfig` holds it."""

from __future__ import annotations

from .findings import Finding, Severity
from .loader import ConfigWarning, load_config
from .model import InfraConfig

__all__ = ["ConfigWarning", "Finding", "InfraConfig", "Severity", "load_config"]
