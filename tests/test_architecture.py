"""The shape of the library: backends by kind, providers as profiles, one broker, a ground floor, no cycles."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
import textwrap
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from model_engine_infra import build_infra, load_config
from model_engine_infra.brokers import broker_for, unit_for
from model_engine_infra.config import InfraConfig
from model_engine_infra.errors import BackendConflictError, ConfigError, UnknownBackendError
from model_engine_infra.registry import (
    BUILTIN_PROVIDERS,
    BUILTINS,
    COMPONENTS,
    KINDS,
    BackendWarning,
    available_backends,
    get_provider,
    register_backend,
    register_provider,
    unregister_backend,
    unregister_provider,
)

SRC = Path(__file__).resolve().parents[1] / "src"
EXAMPLES = Path(__file__).resolve().parents[2] / "shared" / "examples"
PLUGIN = "arch_plugin"


# --- registry per kind -------------------------------------------------------------------------------


def test_every_kind_has_its_builtins() -> None:
    assert set(available_backends("broker")) >= {"sqs", "servicebus", "redis", "local"}
    assert set(available_backends("store")) >= {"s3", "az", "gs", "file", "https"}
    assert set(available_backends("registry")) >= {"ecr", "acr", "gar", "oci"}
    assert set(available_backends("secrets")) >= {"secretsmanager", "keyvault", "kubernetes", "env"}
    assert set(available_backends("result_backend")) >= {"redis", "s3", "abs", "gcs", "file"}
    assert set(available_backends("redis_credentials")) >= {"elasticache", "memorystore"}


@pytest.mark.parametrize("kind", KINDS)
def test_replacing_a_builtin_needs_replace_true(kind: str) -> None:
    name = next(iter(BUILTINS[kind]))
    with pytest.raises(BackendConflictError, match="replace=True"):
        register_backend(kind, name, "somewhere:else")
    register_backend(kind, name, "somewhere:else", replace=True)
    try:
        assert name in available_backends(kind)
    finally:
        unregister_backend(kind, name)
    assert BUILTINS[kind][name].target != "somewhere:else"


def test_an_entry_point_cannot_take_a_builtin_name(monkeypatch: pytest.MonkeyPatch) -> None:
    import model_engine_infra.registry as registry

    groups = {"model_engine_infra.store": {"s3": "evil:STORE", "mem": "good:STORE"}}
    monkeypatch.setattr(registry, "_group_targets", lambda group: groups.get(group, {}))
    with pytest.warns(BackendWarning, match="ignored"):
        known = registry.backends("store")
    assert known["s3"].target == BUILTINS["store"]["s3"].target
    assert known["mem"].target == "good:STORE"


def test_unknown_kind_and_name() -> None:
    with pytest.raises(UnknownBackendError, match="kind"):
        available_backends("database")
    from model_engine_infra.registry import resolve_backend

    with pytest.raises(UnknownBackendError, match="use one of"):
        resolve_backend("broker", "kafka")


def test_a_missing_sdk_names_the_extra() -> None:
    from model_engine_infra.errors import ProviderUnavailableError
    from model_engine_infra.registry import resolve_backend

    register_backend("secrets", "needs-sdk", "no_such_sdk_module.vault:build", extras=("azure",))
    try:
        with pytest.raises(ProviderUnavailableError) as info:
            resolve_backend("secrets", "needs-sdk")
    finally:
        unregister_backend("secrets", "needs-sdk")
    assert "model-engine-infra[azure]" in str(info.value)


# --- a plugin backend of every kind, selected by a plugin profile, built -----------------------------------

PLUGIN_SOURCE = '''
from model_engine_infra.brokers.local import LocalBrokerUnit
from model_engine_infra.registry import Profile
from model_engine_infra.rules import Finding, Severity, error_rule, finding_rule
from model_engine_infra.storage.local import LocalArtifacts, LocalFilesystem
from model_engine_infra.storage.store import Store


@error_rule("plugin-broker-env", "env")
def _no_prod(config):
    from model_engine_infra.config.keys import fail

    if config.env == "forbidden":
        raise fail(config, "env", "the plugin broker refuses this env", "use another env")


@finding_rule("plugin-broker-note")
def _note(config):
    return [Finding(Severity.INFO, "broker", "plugin broker in use")]


class PluginBroker(LocalBrokerUnit):
    name = "plugbroker"
    label = "plugin broker"
    rules = (_no_prod, _note)


BROKER = PluginBroker()
RULES = BROKER.rules


class MemFilesystem(LocalFilesystem):
    """mem://x/y is the file <root>/x/y: enough to prove the routing reaches a plugin store."""

    def __init__(self, root):
        self.root = root

    def _path(self, uri):
        return "file://" + self.root + "/" + uri.split("://", 1)[-1]

    def open(self, uri, mode="rb", **kwargs):
        import os

        path = self._path(uri)
        os.makedirs(os.path.dirname(path[len("file://"):]), exist_ok=True)
        return super().open(path, mode, **kwargs)

    def exists(self, uri):
        return super().exists(self._path(uri))


def build_store(config):
    root = config.local_data_dir + "/mem"
    return Store(MemFilesystem(root), LocalArtifacts(fine_tuned_weights_prefix=root))


class Repo:
    def __init__(self, config):
        self.prefix = config.docker_repo_prefix


class Secrets:
    def __init__(self, config):
        self.env = config.env

    def get(self, name):
        return f"{name}@{self.env}"


def result_backend(config, redis=None):
    return {"result_backend": "file:///tmp/plugin-results", "plugin_marker": True}


def token_overlay(source, config, **clients):
    from dataclasses import replace

    return replace(source, origin="plugin-token:" + source.origin)


PROFILE = Profile(
    name="plugcloud",
    description="a plugin cloud",
    broker="plugbroker",
    store="mem",
    registry="plugreg",
    registry_from_prefix=False,
    secrets="plugsecrets",
    result_backend="plugresults",
    redis_credentials="plugtokens",
    cluster=False,
)
'''


@pytest.fixture
def plugin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[InfraConfig]:
    (tmp_path / f"{PLUGIN}.py").write_text(PLUGIN_SOURCE)
    monkeypatch.syspath_prepend(str(tmp_path))
    registrations = [
        ("broker", "plugbroker", f"{PLUGIN}:BROKER"),
        ("store", "mem", f"{PLUGIN}:build_store"),
        ("registry", "plugreg", f"{PLUGIN}:Repo"),
        ("secrets", "plugsecrets", f"{PLUGIN}:Secrets"),
        ("result_backend", "plugresults", f"{PLUGIN}:result_backend"),
        ("redis_credentials", "plugtokens", f"{PLUGIN}:token_overlay"),
    ]
    for kind, name, target in registrations:
        register_backend(kind, name, target, rules=f"{PLUGIN}:RULES" if kind == "broker" else None)
    register_provider("plugcloud", f"{PLUGIN}:PROFILE")
    try:
        yield load_config(
            env={
                "MODEL_ENGINE_INFRA_CLOUD_PROVIDER": "plugcloud",
                "MODEL_ENGINE_INFRA_LOCAL_DATA_DIR": str(tmp_path / "data"),
                "MODEL_ENGINE_INFRA_ENV": "staging",
            }
        )
    finally:
        unregister_provider("plugcloud")
        for kind, name, _ in registrations:
            unregister_backend(kind, name)
        sys.modules.pop(PLUGIN, None)


def test_plugin_broker_builds_delegate_and_task_queue(plugin: InfraConfig) -> None:
    infra = build_infra(plugin)
    unit = broker_for(plugin)
    assert unit is not None
    assert unit.name == "plugbroker"
    assert type(infra.queue_delegate).__name__ == "LocalQueueEndpointResourceDelegate"
    assert infra.task_queue.broker.name == "plugbroker"  # type: ignore[attr-defined]
    assert unit_for(infra.task_queue.broker.broker_type) is unit  # type: ignore[attr-defined]
    infra.close()


def test_plugin_broker_rules_run_at_load_and_in_findings(plugin: InfraConfig, tmp_path: Path) -> None:
    assert any(f.message == "plugin broker in use" for f in plugin.findings())
    env = {
        "MODEL_ENGINE_INFRA_CLOUD_PROVIDER": "plugcloud",
        "MODEL_ENGINE_INFRA_LOCAL_DATA_DIR": str(tmp_path / "data"),
        "MODEL_ENGINE_INFRA_ENV": "forbidden",
    }
    with pytest.raises(ConfigError, match="plugin broker refuses") as info:
        load_config(env=env)
    assert info.value.key == "MODEL_ENGINE_INFRA_ENV"


def test_plugin_store_serves_its_scheme(plugin: InfraConfig, tmp_path: Path) -> None:
    infra = build_infra(plugin)
    with infra.filesystem.open("mem://bucket/a.txt", "wb") as f:
        f.write(b"hello")
    assert infra.filesystem.exists("mem://bucket/a.txt")
    assert (tmp_path / "data" / "mem" / "bucket" / "a.txt").read_bytes() == b"hello"
    with infra.filesystem.open("bucket/a.txt", "rb") as f:  # a path without a scheme: the profile's store
        assert f.read() == b"hello"
    infra.close()


def test_plugin_registry_secrets_result_backend_and_redis_credentials(plugin: InfraConfig) -> None:
    from model_engine_infra.redis.connection import connection_from_config
    from model_engine_infra.tasks.app import celery_conf

    infra = build_infra(plugin)
    assert type(infra.docker_repository).__name__ == "Repo"
    assert infra.secrets.get("db") == "db@staging"
    _, conf = celery_conf(plugin)
    assert conf["plugin_marker"] is True
    connection = connection_from_config(plugin, secrets=lambda: infra.secrets)
    assert connection.source.origin.startswith("plugin-token:")
    infra.close()


# --- every profile x every component: built, and on one broker ----------------------------------------

# Registry prefixes by registry backend (not by cloud), so each profile's registry class builds.
PREFIXES = {
    "ecr": "123456789012.dkr.ecr.us-east-1.amazonaws.com",
    "acr": "fake.azurecr.io",
    "gar": "us-docker.pkg.dev/fake-project/fake-repo",
    "oci": "localhost:5000",
}


def profile_config(name: str, tmp_path: Path, **overrides: Any) -> InfraConfig:
    profile = get_provider(name)
    values: dict[str, Any] = {
        "cloud_provider": name,
        "local_data_dir": str(tmp_path / "data"),
        "secrets_dir": str(tmp_path / "secrets"),
        "redis_host": "127.0.0.1",
        "gcs_endpoint_url": "http://127.0.0.1:9",  # anonymous client, never reached here
        "docker_repo_prefix": PREFIXES[profile.registry or "oci"],
        **profile.sample_config,
    }
    values.update(overrides)
    return InfraConfig(**values)


@pytest.fixture
def fake_adc(monkeypatch: pytest.MonkeyPatch) -> None:
    """Artifact Registry asks for Application Default Credentials when built: anonymous ones here."""
    import google.auth
    from google.auth.credentials import AnonymousCredentials

    monkeypatch.setattr(google.auth, "default", lambda **_: (AnonymousCredentials(), "fake-project"))


@pytest.mark.parametrize("name", sorted(BUILTIN_PROVIDERS))
def test_every_profile_builds_every_component_on_one_broker(name: str, tmp_path: Path, fake_adc: None) -> None:
    config = profile_config(name, tmp_path)
    infra = build_infra(config)
    try:
        for component in COMPONENTS:
            assert infra.component(component) is not None, component
        infra.filesystem._stores.default()  # type: ignore[attr-defined]  # the profile's store is built too
        unit = broker_for(config)
        assert unit is not None
        assert unit.name == get_provider(name).broker
        delegate_module = unit.delegate_target.partition(":")[0]
        assert type(infra.queue_delegate).__module__ == delegate_module
        assert unit_for(infra.task_queue.broker.broker_type) is unit  # type: ignore[attr-defined]
    finally:
        infra.close()


@pytest.mark.parametrize("name", ["aws", "azure"])
def test_forcing_redis_moves_delegate_and_task_queue_together(name: str, tmp_path: Path) -> None:
    """The bug this shape fixes: aws + celery_broker_type_redis built an SQS delegate and a Redis task queue."""
    config = profile_config(name, tmp_path, celery_broker_type_redis=True)
    infra = build_infra(config)
    try:
        assert type(infra.queue_delegate).__name__ == "RedisQueueEndpointResourceDelegate"
        assert infra.task_queue.broker.name == "redis"  # type: ignore[attr-defined]
    finally:
        infra.close()


def test_broker_key_and_chart_keys_must_agree(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("cloud_provider: onprem\nbroker: redis\ncelery_broker_type_redis: true\n")
    assert load_config(path, env={}).broker == "redis"
    path.write_text("cloud_provider: aws\nredis_host: r\nbroker: sqs\ncelery_broker_type_redis: true\n")
    with pytest.raises(ConfigError, match="different brokers") as info:
        load_config(path, env={})
    assert info.value.key == "broker"
    path.write_text("cloud_provider: onprem\nbroker: kafka\n")
    with pytest.raises(ConfigError, match="no broker backend is named 'kafka'"):
        load_config(path, env={})


@pytest.mark.parametrize(
    ("key", "value", "builtin"),
    [
        ("docker_registry_type", "quay", "oci"),
        ("celery_backend_protocol", "mongodb", "gcs"),
        ("redis_iam_auth", "vault", "memorystore"),
    ],
)
def test_keys_naming_a_backend_name_a_registered_one(tmp_path: Path, key: str, value: str, builtin: str) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(f"cloud_provider: onprem\n{key}: {value}\n")
    with pytest.raises(ConfigError, match=f"named '{value}'") as info:
        load_config(path, env={})
    assert info.value.key == key
    assert builtin in (info.value.fix or "")


def test_keys_select_plugin_backends(plugin: InfraConfig) -> None:
    """The profile's choice is only a default: explicit keys select another backend, a plugin's too."""
    from model_engine_infra.selection import selected_backends

    config = plugin.model_copy(update={"docker_registry_type": "oci", "celery_backend_protocol": "file"})
    chosen = selected_backends(config)
    assert (chosen["registry"], chosen["result_backend"]) == ("oci", "file")
    onprem = InfraConfig(cloud_provider="onprem", docker_registry_type="plugreg", docker_repo_prefix="r.example")
    assert type(build_infra(onprem).docker_repository).__name__ == "Repo"


def test_a_broker_off_its_cloud_is_a_finding_and_refused_when_built(tmp_path: Path) -> None:
    config = profile_config("onprem", tmp_path, broker="sqs")
    assert any(f.severity.value == "high" and "SQS exists only on aws" in f.message for f in config.findings())
    with pytest.raises(ConfigError, match="does not exist on cloud_provider 'onprem'"):
        _ = build_infra(config).queue_delegate


def test_a_task_queue_per_visibility_on_the_one_broker(tmp_path: Path) -> None:
    config = profile_config("gcp", tmp_path)
    infra = build_infra(config)
    unit = broker_for(config)
    assert unit is not None
    long = unit.task_queue(config, infra, visibility="VISIBILITY_24H")
    short = unit.task_queue(config, infra, visibility="VISIBILITY_10M")
    try:
        assert long.broker.transport_options["visibility_timeout"] == 86400  # type: ignore[attr-defined]
        assert short.broker.transport_options["visibility_timeout"] == 600  # type: ignore[attr-defined]
    finally:
        long.close()
        short.close()
        infra.close()


def test_broker_units_declare_their_capabilities() -> None:
    from model_engine_infra.brokers import get_unit

    sqs, servicebus, redis, local = (get_unit(n) for n in ("sqs", "servicebus", "redis", "local"))
    assert sqs.max_message_bytes == servicebus.max_message_bytes == 256 * 1024
    assert redis.max_message_bytes is None
    assert local.max_message_bytes is None
    assert sqs.counts_in_flight
    assert redis.counts_in_flight
    assert not servicebus.counts_in_flight
    assert sqs.per_queue_visibility
    assert servicebus.per_queue_visibility
    assert not redis.per_queue_visibility


def test_profiles_describe_the_support_matrix() -> None:
    rows = {row.component: row for row in get_provider("aws").describe()}
    assert rows["queue_delegate"].backend == "sqs"
    assert rows["queue_delegate"].extras == ("aws",)
    assert rows["task_queue"].extras == ("celery", "aws")
    assert rows["docker_repository"].label == "ECR"


# --- the ground floor and the import graph -----------------------------------------------------------

COMPONENT_PACKAGES = ("queues", "tasks", "storage", "images", "redis", "secrets", "cli", "testing")


def _examples() -> list[str]:
    return sorted(str(p) for p in EXAMPLES.glob("*.yaml")) if EXAMPLES.is_dir() else []


def test_config_is_the_ground_floor(tmp_path: Path) -> None:
    flat = tmp_path / "flat.yaml"
    flat.write_text("cloud_provider: gcp\ndocker_repo_prefix: us-docker.pkg.dev/p/r\n")
    files = [None, str(flat), *_examples()]
    code = textwrap.dedent(
        f"""
        import json, sys
        import model_engine_infra.config
        from model_engine_infra.config import load_config
        for path in {files!r}:
            config = load_config(path, env={{}})
            config.findings()
        forbidden = {COMPONENT_PACKAGES!r}
        loaded = sorted(
            m for m in sys.modules
            if m.startswith("model_engine_infra.") and m.split(".")[1] in forbidden
        )
        print(json.dumps(loaded))
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, env={"PYTHONPATH": str(SRC)}
    )
    assert json.loads(out.stdout) == [], "config loaded component modules"


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(tree: ast.AST) -> Iterator[ast.Import | ast.ImportFrom]:
    """Every import statement, inside functions too, except those only a type checker runs."""
    for child in ast.iter_child_nodes(tree):
        if isinstance(child, ast.If) and _is_type_checking(child):
            for node in child.orelse:
                yield from _imports_of(node)
            continue
        yield from _imports_of(child)


def _imports_of(node: ast.AST) -> Iterator[ast.Import | ast.ImportFrom]:
    if isinstance(node, (ast.Import, ast.ImportFrom)):
        yield node
    yield from _imports(node)


def import_graph() -> dict[str, set[str]]:
    root = SRC / "model_engine_infra"
    modules: dict[str, tuple[Path, bool]] = {}
    for path in root.rglob("*.py"):
        parts = list(path.relative_to(SRC).with_suffix("").parts)
        package = parts[-1] == "__init__"
        modules[".".join(parts[:-1] if package else parts)] = (path, package)
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, (path, package) in modules.items():
        here = name if package else name.rpartition(".")[0]
        for node in _imports(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            else:
                base = node.module or ""
                if node.level:
                    parts = here.split(".")
                    base = ".".join(parts[: len(parts) - node.level + 1] + ([node.module] if node.module else []))
                targets = [base, *(f"{base}.{alias.name}" for alias in node.names)]
            graph[name].update(t for t in targets if t in modules and t != name)
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return [*stack[stack.index(nxt) :], nxt]
            if nxt not in state:
                found = visit(nxt)
                if found:
                    return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state:
            found = visit(node)
            if found:
                return found
    return None


def test_the_import_graph_finds_a_planted_cycle() -> None:
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_no_import_cycles_in_src() -> None:
    graph = import_graph()
    assert "model_engine_infra.images.transfer" in graph["model_engine_infra.images.mirror"]  # function-level
    assert find_cycle(graph) is None, " -> ".join(find_cycle(graph) or [])


def test_no_module_outside_backends_and_profiles_names_a_cloud() -> None:
    """Registry, config, selection, rules, brokers' selection and the fakes decide by backend, never by cloud.

    The clouds are named in their profiles (``providers/<cloud>.py``, and the list of them in
    ``providers/__init__.py``), in the built-in backend table (``builtin_backends.py``), and in each
    backend's own module.
    """
    clouds = ("aws", "azure", "gcp", "onprem")
    neutral = [
        "registry.py",
        "selection.py",
        "checks.py",
        "components.py",
        "rules.py",
        "infra.py",
        "brokers/__init__.py",
        "brokers/base.py",
        "config/model.py",
        "config/loader.py",
        "config/validation.py",
        "config/findings.py",
        "config/keys.py",
        "tasks/broker.py",
        "tasks/settings.py",
        "images/oci.py",
        "storage/routing.py",
        "testing/fakes.py",
        "doctor.py",
        "ops/probes.py",
        "ops/doctor.py",
        "ops/tour.py",
        "cli/doctor_cmd.py",
        "cli/demo.py",
        "cli/providers_cmd.py",
    ]
    for relative in neutral:
        tree = ast.parse((SRC / "model_engine_infra" / relative).read_text(encoding="utf-8"))
        docstrings = {
            id(node.body[0].value)
            for node in ast.walk(tree)
            if isinstance(node, (ast.Module, ast.FunctionDef, ast.ClassDef, ast.AsyncFunctionDef))
            and node.body
            and isinstance(node.body[0], ast.Expr)
        }
        for node in ast.walk(tree):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings:
                assert node.value not in clouds, f"{relative} names the cloud {node.value!r}"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert set(BUILTIN_PROVIDERS) == {"aws", "azure", "gcp", "onprem", "local"}


@pytest.mark.parametrize("kind", KINDS)
def test_every_builtin_backend_declares_real_config_keys(kind: str) -> None:
    from model_engine_infra.registry import backend_keys, backend_rules

    for name in BUILTINS[kind]:
        keys = backend_keys(kind, name)
        assert set(keys) <= set(InfraConfig.model_fields), (kind, name)
        for rule in backend_rules(kind, name):
            assert set(rule.keys) <= set(InfraConfig.model_fields), (kind, name, rule.name)
