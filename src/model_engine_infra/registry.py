"""Provider name -> ``"module:attr"`` string, resolved only when that provider is built.

In the style of kombu's transport aliases and fsspec's ``known_implementations``: nothing
cloud-specific is imported until a component of that cloud is asked for, and a missing SDK says
which extra to install. Plugins add providers through the entry-point group
``model_engine_infra.providers`` (value ``"package.module:PROVIDER"``) or `register_provider`.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .errors import ProviderUnavailableError, UnknownProviderError

if TYPE_CHECKING:
    from .config.model import InfraConfig
    from .infra import Infra

ENTRY_POINT_GROUP = "model_engine_infra.providers"
COMPONENTS = (
    "queue_delegate",
    "task_queue",
    "filesystem",
    "artifacts",
    "docker_repository",
    "redis",
    "secrets",
)
EXTRA_MODULES = {
    "aws": ("boto3", "aiobotocore"),
    "azure": ("azure.identity", "azure.servicebus", "azure.storage.blob", "azure.keyvault.secrets"),
    "gcp": ("google.cloud.storage", "google.auth"),
    "celery": ("celery", "kombu"),
    "redis": ("redis",),
    "local": ("celery", "kombu"),
}

BUILTIN_PROVIDERS: dict[str, str] = {
    "aws": "model_engine_infra.providers.aws:PROVIDER",
    "azure": "model_engine_infra.providers.azure:PROVIDER",
    "gcp": "model_engine_infra.providers.gcp:PROVIDER",
    "onprem": "model_engine_infra.providers.onprem:PROVIDER",
    "local": "model_engine_infra.providers.local:PROVIDER",
}
_registered: dict[str, str] = {}


Factory = Callable[["InfraConfig", "Infra"], Any]


@dataclass(frozen=True)
class Component:
    """How one component is built: a ``"module:callable"`` factory and the extras it needs."""

    target: str
    backend: str
    extras: tuple[str, ...] = ()
    tested_with: str = ""  # what the test suite runs it against: emulator, fake, or real cloud

    def resolve(self) -> Factory:
        factory: Factory = import_target(self.target, extras=self.extras)
        return factory


@dataclass(frozen=True)
class ProviderSpec:
    """Wiring only: which factory builds each component of one cloud."""

    name: str
    description: str
    components: Mapping[str, Component] = field(default_factory=dict)


def register_provider(name: str, target: str) -> None:
    """Add or replace a provider at run time; ``target`` is ``"module:ProviderSpec attr"``."""
    _registered[name] = target


def unregister_provider(name: str) -> None:
    _registered.pop(name, None)


def _entry_point_targets() -> dict[str, str]:
    from importlib.metadata import entry_points

    return {ep.name: ep.value for ep in entry_points(group=ENTRY_POINT_GROUP)}


def provider_targets() -> dict[str, str]:
    """Every known provider name -> target: built-ins, then entry points, then run-time registrations."""
    return {**BUILTIN_PROVIDERS, **_entry_point_targets(), **_registered}


def available_providers() -> list[str]:
    return sorted(provider_targets())


def get_provider(name: str) -> ProviderSpec:
    targets = provider_targets()
    if name not in targets:
        raise UnknownProviderError(
            f"unknown cloud provider {name!r}",
            key="cloud_provider",
            value=name,
            fix=f"use one of {', '.join(sorted(targets))}",
        )
    spec = import_target(targets[name])
    if not isinstance(spec, ProviderSpec):
        raise UnknownProviderError(f"{targets[name]} is not a ProviderSpec", key="cloud_provider", value=name)
    return spec


def import_target(target: str, *, extras: tuple[str, ...] = ()) -> Any:
    """Import ``"module:attr.attr"``; a missing third-party module names the extra to install."""
    module_name, _, attr_path = target.partition(":")
    try:
        obj: Any = importlib.import_module(module_name)
    except ModuleNotFoundError as err:
        raise missing_dependency(err, target, extras) from err
    for attr in filter(None, attr_path.split(".")):
        obj = getattr(obj, attr)
    return obj


def missing_dependency(err: ModuleNotFoundError, what: str, extras: tuple[str, ...]) -> ProviderUnavailableError:
    missing = err.name or "?"
    if missing.split(".")[0] == "model_engine_infra":
        return ProviderUnavailableError(f"{what} is not available in this version of model-engine-infra")
    extra = extras[0] if extras else None
    for candidate in extras:
        if any(
            missing == mod or missing.startswith(mod + ".") or mod.startswith(missing)
            for mod in EXTRA_MODULES.get(candidate, ())
        ):
            extra = candidate
            break
    return ProviderUnavailableError(f"{what} needs the module {missing!r}", extra=extra, missing_module=missing)


def extra_installed(extra: str) -> bool:
    """True when every module the extra brings can be found (without importing it)."""
    from importlib.util import find_spec

    for module in EXTRA_MODULES.get(extra, ()):
        try:
            if find_spec(module) is None:
                return False
        except (ImportError, ValueError):
            return False
    return True
