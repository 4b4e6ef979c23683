"""How each component of `Infra` is built from the backends a configuration selects.

``infra.queue_delegate`` and ``infra.task_queue`` come from the one broker unit; ``filesystem``
and ``artifacts`` route each URI to the store of its scheme; ``docker_repository`` and
``secrets`` resolve the selected backend by name in the registry. Nothing is imported until a
component is built, and a profile's explicit ``components`` entries win over all of this.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .errors import ConfigError, ProviderUnavailableError
from .registry import COMPONENT_KINDS, get_backend, resolve_backend
from .selection import profile_of, selected

if TYPE_CHECKING:
    from .config.model import InfraConfig
    from .infra import Infra

FACTORIES = {
    "queue_delegate": "model_engine_infra.components:build_queue_delegate",
    "task_queue": "model_engine_infra.tasks.gateway:build_task_queue",
    "filesystem": "model_engine_infra.storage.routing:build_filesystem",
    "artifacts": "model_engine_infra.storage.routing:build_artifacts",
    "docker_repository": "model_engine_infra.components:build_docker_repository",
    "redis": "model_engine_infra.redis.connection:build_redis",
    "secrets": "model_engine_infra.components:build_secrets",
    "autoscaling_metrics": "model_engine_infra.components:build_autoscaling_metrics",
    "file_storage": "model_engine_infra.storage.files:build_file_storage",
}


def backend_of(config: InfraConfig, component: str) -> str | None:
    """The backend name that builds ``component`` for ``config`` (None: none selected; redis: ``redis``)."""
    kind = COMPONENT_KINDS[component]
    return "redis" if kind is None else selected(config, kind)


def extras_of(config: InfraConfig, component: str) -> tuple[str, ...]:
    """The extras ``component`` needs on ``config`` (for "pip install ..." in errors)."""
    kind = COMPONENT_KINDS[component]
    name = backend_of(config, component)
    extras: tuple[str, ...] = get_backend(kind, name).extras if kind and name else ()
    if component == "redis":
        return ("redis",)
    if component == "task_queue" and extras != ("local",):
        return tuple(dict.fromkeys(("celery", *extras)))
    return extras


def unavailable(config: InfraConfig, component: str) -> ProviderUnavailableError:
    return ProviderUnavailableError(f"the {config.cloud_provider} provider has no {component} component")


def build_queue_delegate(config: InfraConfig, infra: Infra) -> Any:
    """The endpoint queue delegate of the deployment's one broker (refused where that broker does not exist)."""
    from .brokers import broker_for, check_fits

    unit = broker_for(config)
    if unit is None:
        raise unavailable(config, "queue_delegate")
    check_fits(config, unit)
    return unit.build_delegate(config, infra)


def build_docker_repository(config: InfraConfig, infra: Infra | None = None) -> Any:
    """The registry class for ``docker_registry_type`` (or the type the prefix implies, or the profile's)."""
    explicit = "docker_repo_prefix" in config.model_fields_set or config.is_set("docker_repo_prefix")
    if profile_of(config).registry_prefix_required and not explicit:
        raise ConfigError(
            f"no image registry is configured for the {config.cloud_provider} provider",
            key="docker_repo_prefix",
            value=config.docker_repo_prefix,
            fix="set docker_repo_prefix to your registry, e.g. 'localhost:5000' or 'registry.internal/ml' "
            "(plain HTTP only for localhost, 127.0.0.0/8 and insecure_registries)",
        )
    name = selected(config, "registry")
    if name is None:
        raise unavailable(config, "docker_repository")
    return resolve_backend("registry", name)(config)


def build_secrets(config: InfraConfig, infra: Infra | None = None) -> Any:
    name = selected(config, "secrets")
    if name is None:
        raise unavailable(config, "secrets")
    return resolve_backend("secrets", name)(config)


def build_autoscaling_metrics(config: InfraConfig, infra: Infra) -> Any:
    """The inference autoscaling metrics gateway (KEDA's signal) of the selected backend."""
    name = selected(config, "autoscaling_metrics")
    if name is None:
        raise unavailable(config, "autoscaling_metrics")
    return resolve_backend("autoscaling_metrics", name)(config, infra)
