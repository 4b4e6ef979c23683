"""The preflight doctor on the local provider: healthy, and each way it must fail loudly."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from model_engine_infra.cli import app
from model_engine_infra.config import InfraConfig
from model_engine_infra.doctor import Doctor
from model_engine_infra.infra import Infra, build_infra


def local_config(tmp_path: Path, extra: str = "") -> Path:
    path = tmp_path / "local.yaml"
    path.write_text(f"cloud_provider: local\nlocal_data_dir: {tmp_path / 'state'}\n{extra}")
    return path


def verdicts(report: Any) -> dict[str, str]:
    return {r.name: r.verdict for r in report.results}


def test_healthy_local(tmp_path: Path) -> None:
    report = Doctor(local_config(tmp_path), env={}).run()
    assert verdicts(report) == {
        "config": "ok",
        "dependencies": "skip",
        "broker": "ok",
        "storage": "ok",
        "redis": "skip",
        "registry": "skip",
        "secrets": "skip",
        "file_storage": "ok",
        "autoscaling_metrics": "ok",
    }
    assert report.exit_code == 0
    metrics = next(r for r in report.results if r.name == "autoscaling_metrics")
    assert "local: created, emitted (pending 1, expires in 60 s)" in metrics.message


def test_config_error_stops_with_exit_1(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("cloud_provider: lcoal\n")
    report = Doctor(path, env={}).run()
    assert [r.name for r in report.results] == ["config"]
    assert report.exit_code == 1
    assert "did you mean 'local'" in report.results[0].message


def test_findings_give_exit_2(tmp_path: Path) -> None:
    report = Doctor(local_config(tmp_path, "celery_enable_sha256: true\n"), env={}, offline=True).run()
    assert verdicts(report)["config"] == "warn"
    assert report.exit_code == 2


def test_redis_pointing_nowhere_fails_with_a_fix(tmp_path: Path) -> None:
    report = Doctor(local_config(tmp_path, "cache_redis_onprem_url: redis://127.0.0.1:1/0\n"), env={}, timeout=10).run()
    redis = next(r for r in report.results if r.name == "redis")
    assert redis.verdict == "fail"
    assert "unreachable" in redis.message
    assert redis.fix is not None
    assert "cache_redis_onprem_url" in redis.fix  # the key actually in play, not every Redis key
    assert "Entra ID" not in redis.fix
    assert report.exit_code == 1


def test_storage_that_cannot_be_written_fails(tmp_path: Path) -> None:
    blocker = tmp_path / "file-not-folder"
    blocker.write_text("x")
    report = Doctor(local_config(tmp_path, f"hf_user_fine_tuned_weights_prefix: {blocker}/weights\n"), env={}).run()
    storage = next(r for r in report.results if r.name == "storage")
    assert storage.verdict == "fail"
    assert storage.fix is not None
    assert "hf_user_fine_tuned_weights_prefix" in storage.fix


def test_user_files_that_cannot_be_written_fail(tmp_path: Path) -> None:
    blocker = tmp_path / "file-not-folder"
    blocker.write_text("x")
    report = Doctor(local_config(tmp_path, f"file_storage_prefix: {blocker}/files\n"), env={}).run()
    files = next(r for r in report.results if r.name == "file_storage")
    assert files.verdict == "fail"
    assert files.fix is not None
    assert "file_storage_prefix" in files.fix


def test_a_broker_that_cannot_count_passes_on_the_accepted_send(tmp_path: Path) -> None:
    """Pub/Sub (here its fake): no count to wait for; the doctor says arrival was not checked."""
    from model_engine_infra.testing.pubsub import FakePubSub, kombu_on_fake

    service = FakePubSub()
    path = tmp_path / "gcp.yaml"
    path.write_text(
        f"cloud_provider: gcp\nbroker: pubsub\ngcp_project_id: p1\ncelery_backend_protocol: file\n"
        f"local_data_dir: {tmp_path / 'state'}\ndocker_repo_prefix: us-docker.pkg.dev/p1/r\n"
    )

    def factory(config: InfraConfig) -> Infra:
        from model_engine_infra.queues.pubsub import PubSubQueueEndpointResourceDelegate

        delegate = PubSubQueueEndpointResourceDelegate(
            "p1", publisher=service.publisher(), subscriber=service.subscriber()
        )
        return build_infra(config, overrides={"queue_delegate": delegate})

    with kombu_on_fake(service):
        report = Doctor(path, env={}, infra_factory=factory).run()
    broker = next(r for r in report.results if r.name == "broker")
    assert broker.verdict == "ok", broker.message
    assert "cannot count messages" in broker.message


def test_old_servicebus_sdk_is_caught(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.metadata

    path = tmp_path / "az.yaml"
    path.write_text("cloud_provider: azure\ncache_redis_azure_host: h:6380\nprometheus_server_address: http://p\n")
    real = importlib.metadata.version
    monkeypatch.setattr(
        importlib.metadata, "version", lambda name: "7.11.4" if name == "azure-servicebus" else real(name)
    )
    report = Doctor(path, env={}, offline=True).run()
    deps = next(r for r in report.results if r.name == "dependencies")
    assert deps.verdict == "fail"
    assert "7.14.3" in deps.message
    assert deps.fix == "upgrade it to 7.14.3+"


def test_unavailable_component_is_skipped(tmp_path: Path) -> None:
    class NoSecrets(Infra):
        @property
        def secrets(self) -> Any:
            from model_engine_infra.errors import ProviderUnavailableError

            raise ProviderUnavailableError("no secret store here")

    def factory(config: InfraConfig) -> Infra:
        base = build_infra(config)
        return NoSecrets(config, base.provider)

    report = Doctor(local_config(tmp_path, "cache_redis_aws_secret_name: s\n"), env={}, infra_factory=factory)
    result = next(r for r in report.run().results if r.name == "secrets")
    assert result.verdict == "skip"


def test_cli_doctor_offline_json(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["doctor", "--config", str(local_config(tmp_path)), "--offline", "--json"])
    assert result.exit_code == 0, result.output
    assert '"verdict": "ok"' in result.output


def test_a_missing_sdk_fails_instead_of_skipping(tmp_path: Path) -> None:
    class NoBoto(Infra):
        @property
        def secrets(self) -> Any:
            from model_engine_infra.errors import ProviderUnavailableError

            raise ProviderUnavailableError("aws secrets needs the module 'boto3'", extra="aws", missing_module="boto3")

    def factory(config: InfraConfig) -> Infra:
        return NoBoto(config, build_infra(config).provider)

    report = Doctor(local_config(tmp_path, "cache_redis_aws_secret_name: s\n"), env={}, infra_factory=factory).run()
    result = next(r for r in report.results if r.name == "secrets")
    assert result.verdict == "fail"
    assert "model-engine-infra[aws]" in result.message
    assert report.exit_code == 1


def test_the_database_secret_of_the_chart_is_checked(tmp_path: Path) -> None:
    path = tmp_path / "local.yaml"
    path.write_text(
        f"cloud_provider: local\nlocal_data_dir: {tmp_path / 'state'}\nsecrets: {{cloudDatabaseSecretName: DB_URL}}\n"
    )
    missing = next(r for r in Doctor(path, env={}).run().results if r.name == "secrets")
    assert missing.verdict == "fail"
    assert "DB_URL" in missing.message
    present = next(
        r for r in Doctor(path, env={"MODEL_ENGINE_SECRET_DB_URL": "postgres://x"}).run().results if r.name == "secrets"
    )
    assert present.verdict == "ok"
    assert "postgres://x" not in present.message


# --- the Python API: diagnose(config), plain data, no CLI -----------------------------------------------


def test_diagnose_takes_a_loaded_config_and_says_what_it_judged(tmp_path: Path) -> None:
    from model_engine_infra import load_config
    from model_engine_infra.doctor import diagnose

    path = local_config(tmp_path)
    report = diagnose(load_config(path, env={}), offline=True)
    assert report.provider == "local"
    assert report.provider_source == f"{path}:cloud_provider"
    assert report.config_sources == [str(path)]
    assert report.as_dict()["checks"][0] == {
        "name": "config",
        "verdict": "ok",
        "message": "no errors, no findings",
        "fix": None,
        "seconds": report.results[0].as_dict()["seconds"],
    }


def test_without_a_file_the_report_says_so(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from model_engine_infra.doctor import diagnose

    monkeypatch.chdir(tmp_path)
    report = diagnose(None, env={}, offline=True)
    assert report.provider == "local"
    assert report.provider_source == "default"
    assert report.config_sources == ["no config file (defaults and environment)"]


def test_the_doctor_api_loads_neither_typer_nor_rich() -> None:
    import subprocess
    import sys

    code = (
        "import sys\n"
        "from model_engine_infra.doctor import diagnose\n"
        "from model_engine_infra.config import InfraConfig\n"
        "import tempfile\n"
        "d = tempfile.mkdtemp()\n"
        "config = InfraConfig(cloud_provider='local', local_data_dir=d, hf_user_fine_tuned_weights_prefix=d + '/w')\n"
        "report = diagnose(config, timeout=20)\n"
        "assert report.exit_code == 0, report.as_dict()\n"
        "loaded = sorted(m for m in sys.modules if m.split('.')[0] in ('typer', 'rich'))\n"
        "assert not loaded, loaded\n"
        "assert 'model_engine_infra.cli' not in sys.modules\n"
        "print('ok')\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"


def _probes(run: Any) -> tuple[Any, ...]:
    from model_engine_infra.ops.probes import LIVE_PROBES, Probe

    return tuple(Probe(p.name, run, p.fix) for p in LIVE_PROBES)


def test_live_probes_run_at_the_same_time(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each probe waits for all the others: only a concurrent doctor passes."""
    import threading

    from model_engine_infra.ops import doctor as doctor_module

    everyone = threading.Barrier(len(doctor_module.LIVE_PROBES), timeout=30)
    callers: list[str] = []

    def run(ctx: Any) -> str:
        everyone.wait()
        return "met the others"

    monkeypatch.setattr(doctor_module, "LIVE_PROBES", _probes(run))
    report = Doctor(
        local_config(tmp_path), env={}, timeout=60, on_result=lambda r: callers.append(threading.current_thread().name)
    ).run()
    assert [r.name for r in report.results] == list(doctor_module.CHECKS)
    assert {r.name: r.verdict for r in report.results if r.name not in ("config", "dependencies")} == dict.fromkeys(
        ("broker", "storage", "redis", "registry", "secrets", "file_storage", "autoscaling_metrics"), "ok"
    )
    assert set(callers) == {threading.main_thread().name}  # progress arrives in the caller's thread
    assert len(callers) == len(doctor_module.CHECKS)


def test_hanging_probes_share_one_time_limit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import threading

    from model_engine_infra.ops import doctor as doctor_module

    never = threading.Event()
    monkeypatch.setattr(doctor_module, "LIVE_PROBES", _probes(lambda ctx: never.wait(60) and "late"))
    started = time.monotonic()
    report = Doctor(local_config(tmp_path), env={}, timeout=1.0).run()
    elapsed = time.monotonic() - started
    never.set()
    hung = [r for r in report.results if r.name not in ("config", "dependencies")]
    assert {r.verdict for r in hung} == {"fail"}
    assert all("no answer within 1 s" in r.message and r.fix for r in hung)
    assert elapsed < 4  # seven probes of 1 s each in turn would take 7 s; together they take one limit


def test_cli_doctor_bad_tag_is_a_usage_error_not_a_traceback(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["doctor", "--config", str(local_config(tmp_path)), "--offline", "--tag", "vllm"])
    assert result.exit_code == 2, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert "NAME=TAG" in result.output
    assert "Traceback" not in result.output


def test_cli_doctor_names_the_provider_and_the_config_source(tmp_path: Path) -> None:
    path = local_config(tmp_path)
    result = CliRunner().invoke(app, ["doctor", "--config", str(path), "--offline"], env={"COLUMNS": "400"})
    assert result.exit_code == 0, result.output
    assert f"provider: local (from {path}:cloud_provider); config: {path}" in result.output
    as_json = CliRunner().invoke(app, ["doctor", "--config", str(path), "--offline", "--json"])
    assert '"provider": "local"' in as_json.output
    assert str(path) in as_json.output


def test_cli_doctor_shows_the_fix(tmp_path: Path) -> None:
    path = local_config(tmp_path, "cache_redis_onprem_url: redis://127.0.0.1:1/0\n")
    result = CliRunner().invoke(app, ["doctor", "--config", str(path)], env={"COLUMNS": "400"})
    assert result.exit_code == 1, result.output
    assert "Fix: check that cache_redis_onprem_url points at a reachable Redis server" in result.output


def test_inside_a_cluster_an_unchosen_local_provider_fails(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from model_engine_infra.doctor import diagnose

    monkeypatch.chdir(tmp_path)
    report = diagnose(None, env={"KUBERNETES_SERVICE_HOST": "10.0.0.1"}, timeout=30)
    assert [r.name for r in report.results] == ["config"]  # nothing else is judged against the wrong cloud
    config = report.result("config")
    assert config.verdict == "fail"
    assert "KUBERNETES_SERVICE_HOST" in config.message
    assert "ML_INFRA_SERVICES_CONFIG_PATH" in config.message
    assert report.provider == "local"
    assert report.exit_code == 1
    chosen = diagnose(None, env={"KUBERNETES_SERVICE_HOST": "10.0.0.1", "MODEL_ENGINE_INFRA_CLOUD_PROVIDER": "local"})
    assert chosen.result("config").verdict == "ok"  # local on purpose is fine


def test_autoscaling_metrics_on_a_redis_pointing_nowhere_fail_with_a_fix(tmp_path: Path) -> None:
    config = local_config(
        tmp_path, "autoscaling_metrics_backend: redis\ncache_redis_onprem_url: redis://127.0.0.1:1/0\n"
    )
    report = Doctor(config, env={}, timeout=10).run()
    metrics = next(r for r in report.results if r.name == "autoscaling_metrics")
    assert metrics.verdict == "fail"
    assert "cannot emit the autoscaling metric" in metrics.message
    assert metrics.fix is not None
    assert "autoscaling_metrics_backend" in metrics.fix  # the fix names the keys


def test_autoscaling_metrics_on_redis_pass_through_the_deployments_connection(tmp_path: Path) -> None:
    from model_engine_infra.testing.redis import InMemoryRedisConnection

    def factory(config: InfraConfig) -> Infra:
        return build_infra(config, overrides={"redis": InMemoryRedisConnection()})

    config = local_config(tmp_path, "autoscaling_metrics_backend: redis\nredis_host: 127.0.0.1\n")
    report = Doctor(config, env={}, infra_factory=factory).run()
    metrics = next(r for r in report.results if r.name == "autoscaling_metrics")
    assert metrics.verdict == "ok", metrics.message
    assert metrics.message.startswith("redis: created, emitted (pending 1, expires in 60 s)")
