"""Backends registered by kind, and providers as profiles: names -> ``"module:attr"`` strings.

In the style of kombu's transport aliases and fsspec's ``known_implementations``: each kind
(``broker``, ``store``, ``registry``, ``secrets``, ``result_backend``, ``redis_credentials``,
``autoscaling_metrics``) maps a
name to a ``"module:attr"`` target that is imported the first time it is used, so nothing
cloud-specific loads until a component needs it, and a missing SDK names the extra to install.

A *provider* is a `Profile`: plain data naming the default backend of each kind for one cloud.
Explicit config keys override a profile's choice (``broker``, ``docker_registry_type``, ...).

Plugins add backends through the entry-point group ``model_engine_infra.<kind>`` (providers:
``model_engine_infra.providers``) or at run time with `register_backend` / `register_provider`.
Taking a built-in's name is refused unless ``replace=True``; an entry point that tries is
ignored with a warning. What each kind's target resolves to:

- ``broker``: a `model_engine_infra.brokers.base.BrokerUnit` instance;
- ``store``: a callable ``(config) -> Store`` (a URI scheme's filesystem and artifacts);
- ``registry``: a callable ``(config) -> DockerRepository``;
- ``secrets``: a callable ``(config) -> SecretStore``;
- ``result_backend``: a callable ``(config, redis) -> dict`` of Celery result-backend settings;
- ``redis_credentials``: a callable ``(source, config, **clients) -> RedisSource`` (a token overlay);
- ``autoscaling_metrics``: a callable ``(config, infra) -> InferenceAutoscalingMetricsGateway``.
"""

from __future__ import annotations

import importlib
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .builtin_backends import BUILTIN_BACKENDS, EXTRA_MODULES
from .errors import BackendConflictError, ProviderUnavailableError, UnknownBackendError, UnknownProviderError

if TYPE_CHECKING:
    from .config.model import InfraConfig
    from .infra import Infra

KINDS = ("broker", "store", "registry", "secrets", "result_backend", "redis_credentials", "autoscaling_metrics")
PROVIDER_KIND = "provider"
ENTRY_POINT_GROUP = "model_engine_infra.providers"
COMPONENTS = (
    "queue_delegate",
    "task_queue",
    "filesystem",
    "artifacts",
    "docker_repository",
    "redis",
    "secrets",
    "autoscaling_metrics",
    "file_storage",
)
# The kind whose backend builds each component (redis has one implementation; its credentials vary).
COMPONENT_KINDS: dict[str, str | None] = {
    "queue_delegate": "broker",
    "task_queue": "broker",
    "filesystem": "store",
    "artifacts": "store",
    "docker_repository": "registry",
    "redis": None,
    "secrets": "secrets",
    "autoscaling_metrics": "autoscaling_metrics",
    "file_storage": "store",  # user files on the stores, under file_storage_prefix
}


class BackendWarning(UserWarning):
    """An installed plugin's entry point was ignored (it tried to take a built-in name)."""


@dataclass(frozen=True)
class Backend:
    """One registry entry: where its code lives, the extras it needs, where its rules live.

    ``rules`` is a ``"module:attr"`` of a sequence of `config.findings.Rule`, in a module light
    enough for ``load_config`` to import (no SDK); ``keys`` are the config keys the backend reads.
    """

    target: str
    extras: tuple[str, ...] = ()
    label: str = ""
    rules: str | None = None
    keys: tuple[str, ...] = ()

    def resolve(self, what: str | None = None) -> Any:
        return import_target(self.target, extras=self.extras, what=what)


BUILTINS: dict[str, dict[str, Backend]] = {
    kind: {name: Backend(*entry) for name, entry in entries.items()} for kind, entries in BUILTIN_BACKENDS.items()
}
BUILTIN_PROVIDERS: dict[str, str] = {name: b.target for name, b in BUILTINS[PROVIDER_KIND].items()}
_registered: dict[str, dict[str, Backend]] = {kind: {} for kind in BUILTINS}


# --- registration ----------------------------------------------------------------------------------


def _check_kind(kind: str) -> None:
    if kind not in BUILTINS:
        raise UnknownBackendError(
            f"unknown backend kind {kind!r}", key="kind", value=kind, fix=f"use one of {', '.join(KINDS)}"
        )


def register_backend(
    kind: str,
    name: str,
    target: str | Backend,
    *,
    replace: bool = False,
    extras: tuple[str, ...] = (),
    rules: str | None = None,
    keys: tuple[str, ...] = (),
) -> None:
    """Register backend ``name`` of ``kind`` at run time; ``target`` is ``"module:attr"``.

    Taking the name of a built-in (or of an earlier registration) raises `BackendConflictError`
    unless ``replace=True``.
    """
    _check_kind(kind)
    if ":" not in (target.target if isinstance(target, Backend) else target):
        raise ValueError(f"backend target {target!r} is not 'module:attr'")
    taken = name in BUILTINS[kind] or name in _registered[kind]
    if taken and not replace:
        raise BackendConflictError(
            f"a {kind} backend named {name!r} is already registered ({_lookup(kind, name).target}); "
            "pass replace=True to replace it on purpose"
        )
    _registered[kind][name] = target if isinstance(target, Backend) else Backend(target, extras, rules=rules, keys=keys)


def unregister_backend(kind: str, name: str) -> None:
    """Forget a run-time registration (built-ins stay)."""
    _check_kind(kind)
    _registered[kind].pop(name, None)


def entry_point_group(kind: str) -> str:
    return ENTRY_POINT_GROUP if kind == PROVIDER_KIND else f"model_engine_infra.{kind}"


def _group_targets(group: str) -> dict[str, str]:
    from importlib.metadata import entry_points

    return {ep.name: ep.value for ep in entry_points(group=group)}


def _entry_point_targets() -> dict[str, str]:
    """The providers' entry points (tests replace this to simulate an installed plugin)."""
    return _group_targets(ENTRY_POINT_GROUP)


def _entry_points(kind: str) -> dict[str, Backend]:
    found = {}
    targets = _entry_point_targets() if kind == PROVIDER_KIND else _group_targets(entry_point_group(kind))
    for name, target in targets.items():
        if name in BUILTINS[kind]:
            warnings.warn(
                f"entry point {target!r} in group {entry_point_group(kind)!r} tries to replace the built-in "
                f"{kind} backend {name!r} and is ignored; register it under another name, or call "
                f"register_backend({kind!r}, {name!r}, ..., replace=True)",
                BackendWarning,
                stacklevel=3,
            )
            continue
        found[name] = Backend(target)
    return found


def backends(kind: str) -> dict[str, Backend]:
    """Every known backend of ``kind``: built-ins, then entry points, then run-time registrations."""
    _check_kind(kind)
    return {**BUILTINS[kind], **_entry_points(kind), **_registered[kind]}


def available_backends(kind: str) -> list[str]:
    return sorted(backends(kind))


def _lookup(kind: str, name: str) -> Backend:
    known = backends(kind)
    if name not in known:
        raise UnknownBackendError(
            f"no {kind} backend is named {name!r}",
            key=kind,
            value=name,
            fix=f"use one of {', '.join(sorted(known))}, or install the plugin that provides it",
        )
    return known[name]


def get_backend(kind: str, name: str) -> Backend:
    """The registry entry (not yet imported) of backend ``name`` of ``kind``."""
    return _lookup(kind, name)


def resolve_backend(kind: str, name: str) -> Any:
    """Import and return backend ``name`` of ``kind``; a missing SDK raises `ProviderUnavailableError`."""
    entry = _lookup(kind, name)
    return entry.resolve(what=f"the {kind} backend {name!r} ({entry.label or entry.target})")


def backend_keys(kind: str, name: str) -> tuple[str, ...]:
    """The config keys backend ``name`` reads (a broker unit declares its own; importing it loads no SDK)."""
    entry = _lookup(kind, name)
    if entry.keys or kind != "broker":
        return entry.keys
    return tuple(getattr(resolve_backend(kind, name), "keys", ()))


def backend_rules(kind: str, name: str) -> tuple[Any, ...]:
    """The rules backend ``name`` declares (`config.findings.Rule`), importing only its rules module."""
    entry = _lookup(kind, name)
    if entry.rules is None:
        return ()
    return tuple(import_target(entry.rules, extras=entry.extras))


# --- providers are profiles ----------------------------------------------------------------------

Factory = Callable[["InfraConfig", "Infra"], Any]


@dataclass(frozen=True)
class Component:
    """An explicit ``"module:callable"`` factory for one component, when a profile's kinds do not say it."""

    target: str
    backend: str
    extras: tuple[str, ...] = ()
    tested_with: str = ""  # what the test suite runs it against: emulator, fake, or real cloud

    def resolve(self) -> Factory:
        factory: Factory = import_target(self.target, extras=self.extras)
        return factory


@dataclass(frozen=True)
class ComponentRow:
    """One cell of the support matrix: what a profile uses for a component."""

    component: str
    kind: str | None
    backend: str | None  # the backend name in its kind, None when the component has no kind
    label: str
    extras: tuple[str, ...]
    tested_with: str


@dataclass(frozen=True)
class Profile:
    """A provider: plain data naming the default backend of each kind on one cloud.

    A ``None`` backend means the profile has no default for that kind (a config key may still
    select one). ``components`` gives explicit factories that win over the kinds (plugins may wire
    a component this way). The other fields are facts about deployments on this cloud that
    generic rules read, so that no rule needs to know a cloud's name.
    """

    name: str
    description: str
    broker: str | None = None
    store: str | None = None
    registry: str | None = None
    # True: the registry type follows docker_repo_prefix (ECR/ACR/GAR hosts, else OCI), and
    # ``registry`` only labels the usual case; False: ``registry`` is used whatever the prefix.
    registry_from_prefix: bool = True
    secrets: str | None = None
    result_backend: str | None = None
    redis_credentials: str | None = None  # None: the password or token the Redis source gives
    autoscaling_metrics: str | None = None  # where KEDA's scale-from-zero signal lives
    # Brokers that exist where this profile runs; a selected broker outside it is a finding (and
    # refused when built). Empty: any broker.
    brokers: tuple[str, ...] = ()
    # The task visibility the Redis broker always uses here (the chart's on-prem 24 h), or None.
    redis_visibility: str | None = None
    # The cache-Redis key deployments of this cloud set; when set, some cache Redis is required.
    cache_redis_key: str | None = None
    # llm-engine's cache-Redis keys on this cloud, in its order after cache_redis_onprem_url (empty:
    # every key, in the general order); keys it stops on here (an AWS key on Azure).
    cache_redis_keys: tuple[str, ...] = ()
    cache_redis_refused: tuple[str, ...] = ()
    # A cluster deployment (KEDA, Prometheus, control-plane images); False for one machine.
    cluster: bool = True
    # True when the chart's docker_repo_prefix default means nothing here and it must be set.
    registry_prefix_required: bool = False
    # Defaults of path keys, ``{local_data_dir}`` replaced by that folder (resolved).
    path_defaults: Mapping[str, str] = field(default_factory=dict)
    # Values that make a minimal valid config of this profile (test fakes, examples).
    sample_config: Mapping[str, Any] = field(default_factory=dict)
    # Per component: a label for the support matrix and what the test suite runs it against.
    labels: Mapping[str, str] = field(default_factory=dict)
    tested_with: Mapping[str, str] = field(default_factory=dict)
    extras: Mapping[str, tuple[str, ...]] = field(default_factory=dict)  # per component, when not the backend's
    components: Mapping[str, Component] = field(default_factory=dict)

    def backend(self, kind: str) -> str | None:
        """This profile's default backend of ``kind``."""
        _check_kind(kind)
        value: str | None = getattr(self, kind)
        return value

    def describe(self) -> list[ComponentRow]:
        """One row per component: the backend, its label, extras, and what it is tested against."""
        rows = []
        for component in COMPONENTS:
            explicit = self.components.get(component)
            if explicit is not None:
                rows.append(
                    ComponentRow(component, None, None, explicit.backend, explicit.extras, explicit.tested_with)
                )
                continue
            kind = COMPONENT_KINDS[component]
            name = self.backend(kind) if kind else None
            entry = _safe_lookup(kind, name) if kind and name else None
            extras: tuple[str, ...] = entry.extras if entry else ()
            if component == "redis":
                extras = ("redis",)
            elif component == "task_queue" and extras != ("local",):
                extras = tuple(dict.fromkeys(("celery", *extras)))
            extras = self.extras.get(component, extras)
            label = self.labels.get(component) or (entry.label if entry else "")
            rows.append(ComponentRow(component, kind, name, label, extras, self.tested_with.get(component, "")))
        return rows


def _safe_lookup(kind: str, name: str) -> Backend | None:
    try:
        return _lookup(kind, name)
    except UnknownBackendError:
        return None


ProviderSpec = Profile  # the name plugins written for earlier versions use


def register_provider(name: str, target: str, *, replace: bool = False) -> None:
    """Add a provider at run time; ``target`` is ``"module:attr"`` of a `Profile`."""
    if name in BUILTINS[PROVIDER_KIND] and not replace:
        raise BackendConflictError(
            f"{name!r} is a built-in provider; pass replace=True to replace it on purpose, or pick another name"
        )
    _registered[PROVIDER_KIND][name] = Backend(target)


def unregister_provider(name: str) -> None:
    _registered[PROVIDER_KIND].pop(name, None)


def provider_targets() -> dict[str, str]:
    """Every known provider name -> target: built-ins, then entry points, then run-time registrations."""
    return {name: entry.target for name, entry in backends(PROVIDER_KIND).items()}


def available_providers() -> list[str]:
    return sorted(provider_targets())


def get_provider(name: str) -> Profile:
    targets = provider_targets()
    if name not in targets:
        raise UnknownProviderError(
            f"unknown cloud provider {name!r}",
            key="cloud_provider",
            value=name,
            fix=f"use one of {', '.join(sorted(targets))}",
        )
    spec = import_target(targets[name])
    if not isinstance(spec, Profile):
        raise UnknownProviderError(f"{targets[name]} is not a Profile", key="cloud_provider", value=name)
    return spec


# --- importing targets ---------------------------------------------------------------------------


def import_target(target: str, *, extras: tuple[str, ...] = (), what: str | None = None) -> Any:
    """Import ``"module:attr.attr"``; a missing third-party module names the extra to install."""
    module_name, _, attr_path = target.partition(":")
    try:
        obj: Any = importlib.import_module(module_name)
    except ModuleNotFoundError as err:
        raise missing_dependency(err, what or target, extras) from err
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
