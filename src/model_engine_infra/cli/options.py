"""Options every command spells the same way, and how a command finds its configuration.

``-c/--config`` is always the config file; ``--json`` always prints one JSON document on stdout.
The environment is read here, in the command layer, and nowhere deeper: inside a Kubernetes
cluster (``KUBERNETES_SERVICE_HOST`` is set) a configuration that fell back to the local provider
because nothing named one is refused, since it would judge or touch the wrong infrastructure.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Optional

import typer

if TYPE_CHECKING:
    from ..config.model import InfraConfig

ConfigOption = Annotated[
    Optional[Path],  # noqa: UP045  (typer reads the annotation at run time, also on Python 3.9 tooling)
    typer.Option(
        "--config",
        "-c",
        help="Config file (default: ML_INFRA_SERVICES_CONFIG_PATH, DEPLOY_SERVICE_CONFIG_PATH, else the environment).",
    ),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print one JSON document on stdout (errors too).")]

IN_CLUSTER_ENV = "KUBERNETES_SERVICE_HOST"


def config_source(config_path: Path | None, env: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Which files a command judges, and how it found them, for people and for ``--json``."""
    from ..config.loader import INFRA_FILE_ENV, SERVICE_FILE_ENV

    environ = os.environ if env is None else env
    if config_path is not None:
        return {"files": [str(config_path)], "found_by": "--config"}
    named = [(var, environ[var]) for var in (INFRA_FILE_ENV, SERVICE_FILE_ENV) if environ.get(var)]
    if named:
        return {"files": [path for _, path in named], "found_by": ", ".join(var for var, _ in named)}
    return {"files": [], "found_by": "no config file: environment variables and defaults only"}


def describe_source(source: Mapping[str, Any]) -> str:
    if not source["files"]:
        return str(source["found_by"])
    return f"{', '.join(source['files'])} (from {source['found_by']})"


def provider_of(config: InfraConfig) -> dict[str, str]:
    """The provider a command judged and where that choice came from."""
    origin = config.source_of("cloud_provider")
    if origin == "default":
        how = "built-in default: no file and no MODEL_ENGINE_INFRA_CLOUD_PROVIDER named one"
    elif origin.startswith("default"):
        how = "the Helm chart's default: the config file sets no cloud_provider"
    else:
        how = origin
    return {"name": config.cloud_provider, "source": how}


def implicit_local_in_cluster(config: InfraConfig, env: Mapping[str, str] | None = None) -> str | None:
    """The problem with an unchosen local provider inside a cluster, or None."""
    environ = os.environ if env is None else env
    if config.cloud_provider != "local" or config.is_set("cloud_provider") or not environ.get(IN_CLUSTER_ENV):
        return None
    return (
        f"no config file and no cloud_provider, so the provider fell back to local; but this runs inside a "
        f"Kubernetes cluster ({IN_CLUSTER_ENV} is set), where local is almost certainly not the deployment's "
        "infrastructure"
    )


IMPLICIT_LOCAL_FIX = (
    "point ML_INFRA_SERVICES_CONFIG_PATH (or DEPLOY_SERVICE_CONFIG_PATH) at the deployment's config file, pass "
    "--config, or set MODEL_ENGINE_INFRA_CLOUD_PROVIDER (to local, if local is meant)"
)


def load_cli_config(config_path: Path | None, *, implicit_local_ok: bool = False) -> InfraConfig:
    """`load_config` for a command; refuses an unchosen local provider inside a cluster."""
    from ..config import load_config
    from ..errors import ConfigError

    config = load_config(config_path)
    problem = None if implicit_local_ok else implicit_local_in_cluster(config)
    if problem is not None:
        raise ConfigError(problem, key="cloud_provider", fix=IMPLICIT_LOCAL_FIX)
    return config


__all__ = [
    "ConfigOption",
    "JsonOption",
    "config_source",
    "describe_source",
    "implicit_local_in_cluster",
    "load_cli_config",
    "provider_of",
]
