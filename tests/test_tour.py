"""The tour on the local provider with an in-process worker: skips, failures and clean-up."""

from __future__ import annotations

from pathlib import Path

from model_engine_infra import InfraConfig, load_config
from model_engine_infra.tour import Tour


def _config(tmp_path: Path, env: dict[str, str] | None = None) -> InfraConfig:
    path = tmp_path / "local.yaml"
    path.write_text(f"cloud_provider: local\nlocal_data_dir: {tmp_path / 'state'}\n")
    return load_config(path, env=env or {})


def test_thread_worker_tour_skips_what_local_does_not_have(tmp_path: Path) -> None:
    config = _config(tmp_path, {"MODEL_ENGINE_SECRET_DEMO_KEY": "value-never-shown"})
    report = Tour(config, worker="thread", n_tasks=3, secret_name="demo-key").run()
    assert report.ok, [(s.name, s.detail) for s in report.steps]
    assert report.skipped == ["check an image", "use Redis"]
    assert report.step("start Celery worker thread").detail.startswith("in this process")
    assert report.step("collect results").detail.startswith("3 results")
    assert report.step("read a secret").detail.endswith("demo-key (17 characters)")
    assert "value-never-shown" not in str([s.detail for s in report.steps])
    assert not list((tmp_path / "state" / "fine_tuned_weights").rglob("*.json"))  # cleaned up


def test_a_failing_step_stops_the_tour_and_clean_up_still_runs(tmp_path: Path) -> None:
    report = Tour(_config(tmp_path), worker="thread", n_tasks=1, secret_name="absent").run()
    assert not report.ok
    failed = [s for s in report.steps if not s.ok]
    assert [s.name for s in failed] == ["read a secret"]
    assert "SecretNotFoundError" in failed[0].detail
    assert "use Redis" not in [s.name for s in report.steps]  # stopped at the failure
    clean_up = report.steps[-1]
    assert clean_up.name == "clean up"
    assert clean_up.ok
    assert "worker thread stopped" in clean_up.detail
    assert "queue deleted" in clean_up.detail
