"""The README's main job: ``model-engine-infra demo`` on the local provider, as a user runs it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration


def test_demo_runs_every_step_on_local(tmp_path: Path) -> None:
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("MODEL_ENGINE_INFRA_", "ML_INFRA", "DEPLOY_SERVICE"))
    }
    env["COLUMNS"] = "200"
    result = subprocess.run(
        [sys.executable, "-m", "model_engine_infra.cli", "demo", "--tasks", "4"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert "demo on local: OK" in out
    for step in (
        "create endpoint queue",
        "start Celery worker process",
        "send 4 tasks",
        "collect results",
        "write model artifacts",
        "download model artifacts",
        "clean up",
    ):
        assert step in out
    assert "4 results" in out
    # all state under local_data_dir, and the tour cleaned up after itself
    state = tmp_path / ".model-engine-infra"
    assert state.is_dir()
    assert not any((state / "fine_tuned_weights").rglob("*.safetensors"))


def test_tour_names_the_task_the_worker_registers() -> None:
    from model_engine_infra.ops.tour import PREDICT_TASK
    from model_engine_infra.tasks.demo_tasks import PREDICT

    assert PREDICT == PREDICT_TASK
