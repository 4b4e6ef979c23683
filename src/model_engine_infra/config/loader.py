"""`load_config`: the one place that reads configuration files and the environment.

Order, later wins: the chart's defaults (in `InfraConfig`), then the files — an explicit path, or
else ``ML_INFRA_SERVICES_CONFIG_PATH`` merged with ``DEPLOY_SERVICE_CONFIG_PATH`` — then the
environment variables the deployment injects, then ``MODEL_ENGINE_INFRA_<KEY>`` variables.
Each file may be Helm values (``config.values.infra/launch`` plus top-level chart keys) or a flat
file of keys; both shapes are read as they are. Unknown keys are ignored (the same files feed
other services); a near miss of a known key (``cloud_provder``) is warned about.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import SecretStr, ValidationError

from ..errors import ConfigError, UnknownProviderError, quote
from ..providers import HELM_DEFAULT_PROVIDER
from .keys import HELM_DEFAULT_SOURCE, edit_distance, nearest
from .model import ENV_PREFIX, SECRET_ENV_PREFIX, InfraConfig
from .schema import FIELDS, FieldInfo, helm_index, known_names_by_namespace

INFRA_FILE_ENV = "ML_INFRA_SERVICES_CONFIG_PATH"
SERVICE_FILE_ENV = "DEPLOY_SERVICE_CONFIG_PATH"


class ConfigWarning(UserWarning):
    """A config file holds something that is probably a mistake but not an error."""


@dataclass(frozen=True)
class Setting:
    """One value and where it came from."""

    value: Any
    key: str  # the dotted key path in its file, or the env var name
    source: str  # "path/to/file.yaml" or "env"

    @property
    def where(self) -> str:
        return f"env:{self.key}" if self.source == "env" else f"{self.source}:{self.key}"


def load_config(path: str | os.PathLike[str] | None = None, *, env: Mapping[str, str] | None = None) -> InfraConfig:
    """Read the configuration once; pass the result to `build_infra` and components.

    ``env`` defaults to ``os.environ``; tests pass a plain dict instead of touching the process.
    Raises `ConfigError` naming the key, the bad value and the fix.
    """
    environ: Mapping[str, str] = os.environ if env is None else env
    settings: dict[str, Setting] = {}
    files = _config_files(path, environ)
    for file in files:
        settings.update(_settings_from_file(file))
    if files and "cloud_provider" not in settings:
        settings["cloud_provider"] = Setting(HELM_DEFAULT_PROVIDER, "cloud_provider", HELM_DEFAULT_SOURCE)
    settings.update(_settings_from_env(environ))
    _refuse_nul(settings)
    _profile_path_defaults(settings)
    config = _build(settings, _env_secrets(environ))
    from .validation import validate

    try:
        validate(config)
    except ConfigError as err:
        raise _with_implicit_cloud_note(err, config) from None
    return config


def _with_implicit_cloud_note(err: ConfigError, config: InfraConfig) -> ConfigError:
    """An error judged against the chart's implicit aws says so: the real fix may be cloud_provider."""
    from .findings import implicit_cloud_note

    note = implicit_cloud_note(config)
    if note is None:
        return err
    noted = ConfigError(f"{err}. Note: {note}")
    noted.key, noted.value, noted.source, noted.fix = err.key, err.value, err.source, err.fix
    return noted


def _refuse_nul(settings: Mapping[str, Setting]) -> None:
    """A NUL character (``"\\0"`` in YAML, or an ``env=`` dict) is never meant: paths and SDKs refuse it."""
    for name, setting in settings.items():
        values = setting.value if isinstance(setting.value, list | tuple) else (setting.value,)
        if any(isinstance(value, str) and "\0" in value for value in values):
            secret = FIELDS[name].secret
            raise ConfigError(
                "contains a NUL character",
                key=setting.key,
                value="***" if secret else setting.value,
                source=setting.source,
                fix=f"remove the NUL (\\0) from {setting.key}",
            )


def _profile_path_defaults(settings: dict[str, Setting]) -> None:
    """Path keys the profile defaults (the local provider: folders under ``local_data_dir``)."""
    from ..registry import get_provider

    provider = settings["cloud_provider"].value if "cloud_provider" in settings else InfraConfig().cloud_provider
    try:
        defaults = get_provider(str(provider)).path_defaults
    except UnknownProviderError:
        return  # validation names the unknown provider, with a "did you mean"
    data_dir = settings["local_data_dir"].value if "local_data_dir" in settings else InfraConfig().local_data_dir
    folder = str(Path(str(data_dir)).expanduser().resolve())
    for name, template in defaults.items():
        if name not in settings:
            path = str(Path(template.format(local_data_dir=folder)))
            settings[name] = Setting(path, name, f"default ({provider} provider)")


def _config_files(path: str | os.PathLike[str] | None, environ: Mapping[str, str]) -> list[Path]:
    if path is not None:
        return [_existing(Path(path), "path", "pass the path of an existing YAML file")]
    found = []
    for var in (INFRA_FILE_ENV, SERVICE_FILE_ENV):
        if environ.get(var):
            found.append(_existing(Path(environ[var]), var, f"point {var} at an existing file or unset it"))
    return found


def _existing(path: Path, key: str, fix: str) -> Path:
    if not path.is_file():
        raise ConfigError("config file does not exist", key=key, value=str(path), fix=fix)
    return path


def read_yaml(path: Path) -> dict[str, Any]:
    """Parse one YAML file into a mapping, within the limits of `config.limits` (size, encoding,
    depth, alias expansion); every failure is a `ConfigError` naming the file (and line)."""
    from .limits import decode_config_bytes, file_error, load_yaml_text, read_config_bytes  # imports yaml

    text = decode_config_bytes(read_config_bytes(path), path)
    doc = load_yaml_text(text, path)
    if doc is None:
        return {}
    if not isinstance(doc, dict):
        raise file_error(
            path,
            f"the top level must be a mapping, got {type(doc).__name__}",
            "write the file as `key: value` lines (flat) or as Helm values (config.values.infra...)",
        )
    return doc


def _lookup(doc: Mapping[str, Any], dotted: str) -> tuple[bool, Any]:
    node: Any = doc
    for part in dotted.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return False, None
        node = node[part]
    return True, node


def _settings_from_file(path: Path) -> dict[str, Setting]:
    doc = read_yaml(path)
    source = str(path)
    settings: dict[str, Setting] = {}
    # Helm paths first, in the order each field lists them (first listed wins).
    for name, info in FIELDS.items():
        for helm_path in info.helm:
            found, value = _lookup(doc, helm_path)
            if found and not _unset(value, info):
                settings[name] = Setting(value, helm_path, source)
                break
    # Flat files (and flat keys in any file) name fields directly.
    for name, info in FIELDS.items():
        if name not in settings and name in doc and not _unset(doc[name], info) and not _is_helm_only(name):
            settings[name] = Setting(doc[name], name, source)
    _warn_near_misses(doc, source)
    return settings


def _unset(value: Any, info: FieldInfo) -> bool:
    """``null``, or ``""`` for an optional key: llm-engine's files write ``s3_endpoint_url: ""`` for "not set"."""
    return value is None or (value == "" and info.default is None)


def _is_helm_only(name: str) -> bool:
    return name == "env_secrets"


def _settings_from_env(environ: Mapping[str, str]) -> dict[str, Setting]:
    settings: dict[str, Setting] = {}
    for name, info in FIELDS.items():
        if _is_helm_only(name):
            continue  # MODEL_ENGINE_INFRA_ENV_SECRETS is not a way to set the MODEL_ENGINE_SECRET_* map
        for var in (*info.env, ENV_PREFIX + name.upper()):
            if var in environ and environ[var] != "" and not var.startswith(SECRET_ENV_PREFIX):
                settings[name] = Setting(_env_value(environ[var], info), var, "env")
    return settings


def _env_value(raw: str, info: FieldInfo) -> Any:
    if info.is_sequence:
        return tuple(part.strip() for part in raw.split(",") if part.strip())
    return raw


def _env_secrets(environ: Mapping[str, str]) -> dict[str, SecretStr]:
    return {
        var[len(SECRET_ENV_PREFIX) :]: SecretStr(value)
        for var, value in environ.items()
        if var.startswith(SECRET_ENV_PREFIX) and len(var) > len(SECRET_ENV_PREFIX)
    }


def _build(settings: dict[str, Setting], env_secrets: dict[str, SecretStr]) -> InfraConfig:
    values = {name: _normalise(s.value, FIELDS[name]) for name, s in settings.items()}
    sources = {name: s.where for name, s in settings.items()}
    if env_secrets:  # passed only when present, so an empty store does not count as set
        values["env_secrets"] = env_secrets
        sources["env_secrets"] = f"env:{SECRET_ENV_PREFIX}*"
    try:
        config = InfraConfig(**values)
    except ValidationError as err:
        raise _config_error_from(err, settings) from None
    return config.with_sources(sources)


def _normalise(value: Any, info: FieldInfo) -> Any:
    if info.is_sequence and isinstance(value, str):
        return tuple(part.strip() for part in value.split(",") if part.strip())
    if info.is_sequence and isinstance(value, list):
        return tuple(value)
    if info.is_text and isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)  # YAML reads an unquoted account id or tag as a number
    if info.is_text and isinstance(value, str) and "://" in value:
        return value.strip()  # a URL copied with a trailing newline or space means the URL
    return value


def _config_error_from(err: ValidationError, settings: Mapping[str, Setting]) -> ConfigError:
    first = err.errors()[0]
    name = str(first["loc"][0]) if first["loc"] else "?"
    info = FIELDS.get(name)
    setting = settings.get(name)
    shown = "***" if info is not None and info.secret else (setting.value if setting else first.get("input"))
    key = setting.key if setting else name
    expected = info.expected if info is not None else "a valid value"
    more = f" ({len(err.errors()) - 1} more problem(s) after this one)" if len(err.errors()) > 1 else ""
    return ConfigError(
        f"invalid value {quote(shown)}: {first['msg']}{more}",
        key=key,
        value=shown,
        source=setting.source if setting else None,
        fix=f"set {key} to {expected}",
    )


#: Near-miss hints are checked for at most this many unknown keys per file: a file of 20,000 unknown
#: keys must not take a minute to load (real files hold a few dozen keys besides ours).
MAX_NEAR_MISS_CHECKS = 1000
#: A hint needs at most this many edits (`keys.nearest`).
NEAR_MISS_EDITS = 2


def _warn_near_misses(doc: Mapping[str, Any], source: str) -> None:
    budget = MAX_NEAR_MISS_CHECKS
    for namespace, known in known_names_by_namespace().items():
        found, node = (True, doc) if namespace == "" else _lookup(doc, namespace)
        if not found or not isinstance(node, Mapping):
            continue
        for written in node:
            if not isinstance(written, str) or written in known or len(written) < 5:
                continue
            if budget == 0:
                return
            budget -= 1
            near = nearest(written, known, limit=NEAR_MISS_EDITS)
            if near is not None:
                where = f"{namespace}.{written}" if namespace else written
                meant = f"{namespace}.{near}" if namespace else near
                warnings.warn(
                    f"{source}: unknown key {quote(where)} is ignored; did you mean {meant!r}?",
                    ConfigWarning,
                    stacklevel=4,
                )


__all__ = ["ConfigWarning", "edit_distance", "helm_index", "load_config", "nearest", "read_yaml"]
