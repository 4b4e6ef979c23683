"""Options every command spells the same way, and how a command finds its configuration.

``-c/--config`` is always the config file; ``--json`` always prints one JSON document on stdout.
The environment is read here, in the command layer, and nowhere deeper: inside a Kubernetes
cluster (``KUBERNETES_SERVICE_HOST`` is set) a configuration that fell back to the local provider
because nothing named one is refused, since it would judge or touch the wrong infrastructure
(the rule is `ops.probes.implicit_local_in_cluster`, the one ``doctor`` and ``config check`` apply).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Optional

import typer

from ..ops.probes import IMPLICIT_LOCAL_FIX

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
    return provider_json(config.cloud_provider, config.source_of("cloud_provider"))


def provider_json(name: str, origin: str) -> dict[str, str]:
    """``{name, source}`` for ``--json`` and the ``provider:`` line; ``origin`` is `InfraConfig.source_of`'s."""
    if origin == "default":
        how = "built-in default: no file and no MODEL_ENGINE_INFRA_CLOUD_PROVIDER named one"
    elif origin.startswith("default"):
        how = "the Helm chart's default: the config file sets no cloud_provider"
    else:
        how = origin
    return {"name": name, "source": how}


def implicit_local_in_cluster(config: InfraConfig, env: Mapping[str, str] | None = None) -> str | None:
    """The problem with an unchosen local provider inside a cluster, or None (the rule is `ops.probes`')."""
    from ..ops.probes import implicit_local_in_cluster as rule

    return rule(config, os.environ if env is None else env)


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
    "IMPLICIT_LOCAL_FIX",
    "ConfigOption",
    "JsonOption",
    "config_source",
    "describe_source",
    "implicit_local_in_cluster",
    "load_cli_config",
    "provider_json",
    "provider_of",
]
