"""The store-plugin walkthrough of docs/architecture.md, done for real.

``examples/store_plugin`` is one module (``mem_store.py``), one entry point (its ``pyproject.toml``)
and one conformance subclass (``test_mem_store.py``). Here the plugin is installed the way pip
installs it — a ``.dist-info`` folder with ``entry_points.txt`` on ``sys.path`` — and its own tests
run against that installation, so the entry point, not a run-time registration, registers ``mem``.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

PLUGIN = Path(__file__).resolve().parents[1] / "examples" / "store_plugin"
sys.path.insert(0, str(PLUGIN))

from test_mem_store import TestMemStore, test_a_service_reads_and_writes_mem_uris_beside_local_paths  # noqa: E402

__all__ = ["TestMemStore", "test_a_service_reads_and_writes_mem_uris_beside_local_paths"]


def entry_point_line() -> str:
    """``mem = mem_store:build_store``, read from the plugin's pyproject.toml (the one place it is written)."""
    text = (PLUGIN / "pyproject.toml").read_text()
    section = text.split('[project.entry-points."model_engine_infra.store"]\n', 1)[1].split("\n\n", 1)[0]
    (line,) = section.strip().splitlines()
    name, target = (part.strip().strip('"') for part in line.split("=", 1))
    return f"{name} = {target}"


@pytest.fixture(autouse=True)
def installed_plugin(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """What ``pip install ./examples/store_plugin`` leaves behind, on sys.path for this test only."""
    site = tmp_path_factory.mktemp("site")
    dist = site / "mem_store_plugin-0.1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: mem-store-plugin\nVersion: 0.1.0\n")
    (dist / "entry_points.txt").write_text(f"[model_engine_infra.store]\n{entry_point_line()}\n")
    monkeypatch.syspath_prepend(str(site))
    return site


def test_the_entry_point_alone_registers_the_scheme() -> None:
    from model_engine_infra.registry import available_backends, get_backend

    assert "mem" in available_backends("store")
    assert get_backend("store", "mem").target == "mem_store:build_store"


def test_without_the_plugin_mem_uris_are_refused_naming_what_is_accepted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, installed_plugin: Path
) -> None:
    from model_engine_infra import InfraConfig, build_infra
    from model_engine_infra.errors import InvalidURIError

    monkeypatch.setattr(sys, "path", [p for p in sys.path if p != str(installed_plugin)])
    infra = build_infra(InfraConfig(cloud_provider="local", local_data_dir=str(tmp_path)))
    with pytest.raises(InvalidURIError, match="accepts") as refused:
        infra.filesystem.open("mem://models/x", "rb")
    assert "mem://models/x" in str(refused.value)
    infra.close()
