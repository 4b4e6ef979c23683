"""The tour on the local provider with an in-process worker: skips, failures and clean-up."""

from __future__ import annotations

from pathlib import Path

from model_engine_infra import InfraConfig, load_config
from model_engine_infra.ops.tour import Tour


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


# The tour's component steps and the doctor's checks are the same probes: they agree on what applies.
STEP_OF_CHECK = {"redis": "use Redis", "registry": "check an image", "secrets": "read a secret"}


def test_the_tour_and_the_doctor_skip_the_same_components(tmp_path: Path) -> None:
    from model_engine_infra.doctor import diagnose

    config = _config(tmp_path)
    doctor = diagnose(config, timeout=30)
    tour = Tour(config, worker="thread", n_tasks=1).run()
    assert tour.ok, [(s.name, s.detail) for s in tour.steps]
    skipped_checks = {r.name for r in doctor.results if r.verdict == "skip" and r.name in STEP_OF_CHECK}
    assert skipped_checks == set(STEP_OF_CHECK)
    assert set(tour.skipped) == {STEP_OF_CHECK[name] for name in skipped_checks}
    for name, step in STEP_OF_CHECK.items():  # the same reason, word for word
        assert tour.step(step).detail == f"skipped: {doctor.result(name).message}"


def test_a_configured_redis_is_probed_by_both(tmp_path: Path) -> None:
    from model_engine_infra.doctor import diagnose
    from model_engine_infra.testing.servers import free_port

    config = _config(tmp_path, {"MODEL_ENGINE_INFRA_CACHE_REDIS_ONPREM_URL": f"redis://127.0.0.1:{free_port()}/0"})
    assert diagnose(config, timeout=30).result("redis").verdict == "fail"
    tour = Tour(config, worker="thread", n_tasks=1).run()
    assert [s.name for s in tour.steps if not s.ok] == ["use Redis"]
