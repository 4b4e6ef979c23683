"""The provider registry: lazy resolution, plugins, missing extras, component caching."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from model_engine_infra import build_infra, load_config, register_provider
from model_engine_infra.config import InfraConfig
from model_engine_infra.errors import ProviderUnavailableError, UnknownProviderError
from model_engine_infra.registry import (
    BUILTIN_PROVIDERS,
    COMPONENTS,
    Component,
    ProviderSpec,
    available_backends,
    available_providers,
    get_provider,
    import_target,
    unregister_provider,
)

HEAVY = (
    "boto3",
    "botocore",
    "aiobotocore",
    "azure",
    "google",
    "celery",
    "kombu",
    "redis",
    "smart_open",
    "httpx",
)


def test_builtins_are_available() -> None:
    assert set(BUILTIN_PROVIDERS) <= set(available_providers())


@pytest.mark.parametrize("name", sorted(BUILTIN_PROVIDERS))
def test_every_builtin_wires_every_component(name: str) -> None:
    spec = get_provider(name)
    assert spec.name == name
    rows = spec.describe()
    assert [row.component for row in rows] == list(COMPONENTS)
    for row in rows:
        assert row.label, row
        if row.kind is not None:
            assert row.backend in available_backends(row.kind), row


def test_import_loads_no_cloud_sdk_in_a_fresh_interpreter() -> None:
    code = textwrap.dedent(
        f"""
        import sys
        import model_engine_infra
        from model_engine_infra import load_config, build_infra
        infra = build_infra(load_config(env={{}}))
        heavy = {HEAVY!r}
        loaded = sorted(m for m in sys.modules if m.split('.')[0] in heavy)
        print(",".join(loaded))
        """
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "", f"imported at start-up: {out.stdout}"


def test_register_provider_at_run_time(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "my_plugin.py").write_text(
        textwrap.dedent(
            """
            from model_engine_infra.registry import Component, ProviderSpec

            def build_secrets(config, infra):
                return {"built_for": config.cloud_provider}

            PROVIDER = ProviderSpec(
                name="acme",
                description="a plugin",
                components={"secrets": Component("my_plugin:build_secrets", "acme vault")},
            )
            """
        )
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    register_provider("acme", "my_plugin:PROVIDER")
    try:
        config = load_config(env={"MODEL_ENGINE_INFRA_CLOUD_PROVIDER": "acme"})
        infra = build_infra(config)
        assert infra.secrets == {"built_for": "acme"}
        assert infra.secrets is infra.secrets  # cached
        with pytest.raises(ProviderUnavailableError, match="acme provider has no queue_delegate"):
            _ = infra.queue_delegate
    finally:
        unregister_provider("acme")
    with pytest.raises(UnknownProviderError):
        load_config(env={"MODEL_ENGINE_INFRA_CLOUD_PROVIDER": "acme"})


def test_entry_point_plugins_are_found(monkeypatch: pytest.MonkeyPatch) -> None:
    import model_engine_infra.registry as registry

    monkeypatch.setattr(registry, "_entry_point_targets", lambda: {"ep-cloud": "x.y:PROVIDER"})
    assert "ep-cloud" in available_providers()


def test_unknown_provider_from_get_provider() -> None:
    with pytest.raises(UnknownProviderError, match="use one of"):
        get_provider("nope")


def test_missing_sdk_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    def factory(config: InfraConfig, infra: Any) -> Any:
        import azure_sdk_that_is_not_installed  # type: ignore[import-not-found]  # noqa: F401

        return None

    spec = ProviderSpec(
        name="fake-azure",
        description="",
        components={"secrets": Component(f"{__name__}:_factory_needing_azure", "Key Vault", ("azure",))},
    )
    globals()["_factory_needing_azure"] = factory
    from model_engine_infra.infra import Infra

    infra = Infra(InfraConfig(), spec)
    with pytest.raises(ProviderUnavailableError) as info:
        _ = infra.secrets
    assert "pip install 'model-engine-infra[azure]'" in str(info.value)
    assert info.value.extra == "azure"


def test_import_target_missing_module_names_extra() -> None:
    with pytest.raises(ProviderUnavailableError) as info:
        import_target("google_not_here.cloud:thing", extras=("gcp",))
    assert "model-engine-infra[gcp]" in str(info.value)


def test_overrides_replace_components() -> None:
    sentinel = object()
    infra = build_infra(InfraConfig(), overrides={"redis": sentinel})
    assert infra.redis is sentinel
    assert "redis" in infra.built_components()
    assert "local" in repr(infra)


def test_unknown_component_name() -> None:
    with pytest.raises(AttributeError, match="no component"):
        build_infra(InfraConfig()).component("database")


def test_close_runs_sync_and_async_closers() -> None:
    closed: list[str] = []

    class Sync:
        def close(self) -> None:
            closed.append("sync")

    class Async:
        async def close(self) -> None:
            closed.append("async")

    infra = build_infra(InfraConfig(), overrides={"redis": Sync(), "queue_delegate": Async()})
    infra.close()
    assert sorted(closed) == ["async", "sync"]
    assert infra.built_components() == []


@pytest.mark.parametrize("use_async", [False, True])
async def test_close_closes_every_component_when_one_fails(use_async: bool) -> None:
    closed: list[str] = []

    class Broken:
        def close(self) -> None:
            raise OSError("connection reset")

    class BrokenAsync:
        async def close(self) -> None:
            raise OSError("connection reset")

    class Sync:
        def close(self) -> None:
            closed.append("sync")

    class Async:
        async def close(self) -> None:
            closed.append("async")

    components = {"redis": Broken(), "secrets": BrokenAsync(), "queue_delegate": Async(), "filesystem": Sync()}
    infra = build_infra(InfraConfig(), overrides=components)
    closing = infra.aclose() if use_async else asyncio.to_thread(infra.close)
    with pytest.raises(OSError, match="connection reset"):
        await closing
    assert sorted(closed) == ["async", "sync"]
    assert infra.built_components() == []


async def test_aclose_inside_a_loop() -> None:
    closed: list[str] = []

    class Async:
        async def close(self) -> None:
            closed.append("async")

    infra = build_infra(InfraConfig(), overrides={"queue_delegate": Async()})
    await infra.aclose()
    assert closed == ["async"]


@pytest.mark.parametrize(
    ("env", "component", "must_not_load"),
    [
        (
            {
                "MODEL_ENGINE_INFRA_CLOUD_PROVIDER": "azure",
                "MODEL_ENGINE_INFRA_CACHE_REDIS_AZURE_HOST": "h:6380",
                "ABS_ACCOUNT_NAME": "acct",
            },
            "filesystem",
            ("azure.servicebus", "kombu", "celery", "redis", "boto3", "google"),
        ),
        (
            {"MODEL_ENGINE_INFRA_CLOUD_PROVIDER": "aws", "MODEL_ENGINE_INFRA_REDIS_HOST": "r"},
            "filesystem",
            ("kombu", "celery", "redis", "azure", "google"),
        ),
        (
            {"MODEL_ENGINE_INFRA_CLOUD_PROVIDER": "onprem", "MODEL_ENGINE_INFRA_DOCKER_REPO_PREFIX": "reg.internal"},
            "docker_repository",
            ("kombu", "celery", "redis", "boto3", "azure", "google"),
        ),
    ],
)
def test_a_component_imports_only_its_own_sdk(
    env: dict[str, str], component: str, must_not_load: tuple[str, ...]
) -> None:
    code = textwrap.dedent(
        f"""
        import sys
        from model_engine_infra import build_infra, load_config
        infra = build_infra(load_config(env={env!r}))
        infra.component({component!r})
        bad = {must_not_load!r}
        print(",".join(sorted(m for m in sys.modules if any(m == b or m.startswith(b + ".") for b in bad))))
        """
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "", f"building {component} imported: {out.stdout}"


async def test_aclose_prefers_a_components_aclose() -> None:
    closed: list[str] = []

    class Both:
        def close(self) -> None:
            closed.append("close")

        async def aclose(self) -> None:
            closed.append("aclose")

    infra = build_infra(InfraConfig(), overrides={"redis": Both()})
    await infra.aclose()
    assert closed == ["aclose"]
