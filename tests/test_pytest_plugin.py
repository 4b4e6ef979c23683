"""The pytest plugin: every fixture it registers is prefixed, and loading it imports nothing heavy.

Both are checked in a fresh pytest process (this one has long imported everything), on a test
folder outside the repository.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from model_engine_infra.testing import pytest_plugin

HEAVY = (
    "azure",
    "boto3",
    "botocore",
    "celery",
    "fakeredis",
    "google",
    "httpx",
    "kombu",
    "model_engine_infra.config",
    "moto",
    "pydantic",
    "redis",
    "rich",
    "typer",
    "yaml",
)


def run_pytest(folder: Path, *args: str) -> subprocess.CompletedProcess[str]:
    src = str(Path(pytest_plugin.__file__).resolve().parents[2])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([src, os.environ.get("PYTHONPATH", "")])}
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "--rootdir", str(folder), *args, str(folder)],
        cwd=folder,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )


def test_loading_the_plugin_imports_nothing_heavy(tmp_path: Path) -> None:
    (tmp_path / "test_probe.py").write_text(
        textwrap.dedent(
            f"""
            import sys

            HEAVY = {HEAVY!r}

            def test_plugin_is_loaded_and_light(request):
                assert request.config.pluginmanager.has_plugin("model_engine_infra")
                loaded = sorted(n for n in sys.modules for h in HEAVY if n == h or n.startswith(h + "."))
                assert loaded == [], loaded
            """
        )
    )
    done = run_pytest(tmp_path, "-q")
    assert done.returncode == 0, done.stdout + done.stderr


def test_using_a_fixture_imports_what_it_needs(tmp_path: Path) -> None:
    (tmp_path / "test_uses_fixture.py").write_text(
        textwrap.dedent(
            """
            import sys

            def test_fake_infra(mei_fake_infra):
                assert mei_fake_infra.config.cloud_provider == "local"
                assert "pydantic" in sys.modules
            """
        )
    )
    done = run_pytest(tmp_path, "-q")
    assert done.returncode == 0, done.stdout + done.stderr


def test_every_fixture_of_the_plugin_is_prefixed(tmp_path: Path) -> None:
    done = run_pytest(tmp_path, "--fixtures", "-q")
    ours: list[str] = []
    in_ours = False
    for line in done.stdout.splitlines():
        if line.startswith("-") and "fixtures defined from" in line:
            in_ours = "model_engine_infra" in line
        elif in_ours and line and not line.startswith(" "):
            ours.append(line.split()[0])
    assert sorted(ours) == [
        "mei_azurite_server",
        "mei_fake_infra",
        "mei_gcs_server",
        "mei_infra_config",
        "mei_infra_provider",
        "mei_moto_server",
        "mei_redis_server",
        "mei_registry_server",
    ], done.stdout


@pytest.mark.parametrize("name", ["redis_server", "moto_server", "fake_infra", "infra_config"])
def test_no_unprefixed_names_are_exported(name: str) -> None:
    assert not hasattr(pytest_plugin, name)
