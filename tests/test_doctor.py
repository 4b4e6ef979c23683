"""The preflight doctor on the local provider: healthy, and each way it must fail loudly."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from model_engine_infra.cli import app
from model_engine_infra.config import InfraConfig
from model_engine_infra.doctor import Doctor, _run_with_limit
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
    }
    assert report.exit_code == 0


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
    assert "Fix:" in redis.message
    assert "REDIS_HOST" in redis.message
    assert report.exit_code == 1


def test_storage_that_cannot_be_written_fails(tmp_path: Path) -> None:
    blocker = tmp_path / "file-not-folder"
    blocker.write_text("x")
    report = Doctor(local_config(tmp_path, f"hf_user_fine_tuned_weights_prefix: {blocker}/weights\n"), env={}).run()
    storage = next(r for r in report.results if r.name == "storage")
    assert storage.verdict == "fail"
    assert "hf_user_fine_tuned_weights_prefix" in storage.message


def test_user_files_that_cannot_be_written_fail(tmp_path: Path) -> None:
    blocker = tmp_path / "file-not-folder"
    blocker.write_text("x")
    report = Doctor(local_config(tmp_path, f"file_storage_prefix: {blocker}/files\n"), env={}).run()
    files = next(r for r in report.results if r.name == "file_storage")
    assert files.verdict == "fail"
    assert "file_storage_prefix" in files.message


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


def test_a_hanging_probe_fails_after_its_time_limit() -> None:
    started = time.perf_counter()
    verdict, message = _run_with_limit(lambda: time.sleep(5) or "late", 0.2)
    assert verdict == "fail"
    assert "no answer within" in message
    assert time.perf_counter() - started < 2


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
