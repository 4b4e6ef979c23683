"""``config show`` / ``config check`` / ``providers``: what a person sees, secrets redacted."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from model_engine_infra.cli import app
from model_engine_infra.cli.providers_cmd import support_matrix_markdown

EXAMPLES = Path(__file__).resolve().parents[1] / "examples" / "deploy"
DOCS = Path(__file__).resolve().parents[1] / "docs"
runner = CliRunner()


def run(*args: str, env: dict[str, str] | None = None) -> tuple[int, str]:
    base = {"ML_INFRA_SERVICES_CONFIG_PATH": "", "DEPLOY_SERVICE_CONFIG_PATH": "", "COLUMNS": "250"}
    result = runner.invoke(app, list(args), env={**base, **(env or {})})
    return result.exit_code, result.output


def test_show_lists_values_and_sources() -> None:
    code, out = run("config", "show", "--config", str(EXAMPLES / "aws" / "values.yaml"))
    assert code == 0
    assert "cache_redis_aws_secret_name" in out
    assert "model-engine/prod/redis" in out
    assert "config.values.launch.cache_redis_aws_secret_name" in out


def test_show_redacts_secrets(tmp_path: Path) -> None:
    canary = "canary-7f3e9"
    path = tmp_path / "c.yaml"
    path.write_text(f"cloud_provider: onprem\ncache_redis_onprem_url: redis://app:{canary}@redis:6379/0\n")
    code, out = run(
        "config",
        "show",
        "--config",
        str(path),
        env={"REDIS_AUTH_TOKEN": canary, "MODEL_ENGINE_SECRET_X": canary},
    )
    assert code == 0
    assert canary not in out
    assert "redis://app:***@redis:6379/0" in out


def test_show_redacts_passwords_in_plain_url_keys(tmp_path: Path) -> None:
    canary = "canary-5d21a"
    path = tmp_path / "c.yaml"
    path.write_text(
        "cloud_provider: onprem\n"
        f"prometheus_server_address: http://admin:{canary}@prom:9090\n"
        f'registry_endpoint_url: "https://reg.internal:5000"\n'
        f'cache_redis_onprem_url: "redis://u:{canary}@redis:6379/0\\n"\n'  # a trailing newline, as written
    )
    code, out = run("config", "show", "--config", str(path))
    assert code == 0, out
    assert canary not in out
    assert "http://admin:***@prom:9090" in out


def test_show_masks_a_password_followed_by_whitespace(tmp_path: Path) -> None:
    canary = "canary-77f0e"
    path = tmp_path / "c.yaml"
    path.write_text(f'cloud_provider: onprem\nprometheus_server_address: "http://admin:{canary}@prom:9090\\n"\n')
    code, out = run("config", "show", "--config", str(path))
    assert code == 0, out
    assert canary not in out
    assert "http://admin:***@prom:9090" in out


def test_sdk_endpoint_with_a_password_is_refused_masked(tmp_path: Path) -> None:
    canary = "canary-0b9c4"
    path = tmp_path / "c.yaml"
    path.write_text(f'cloud_provider: onprem\ns3_endpoint_url: "https://minio:{canary}@minio.internal:9000\\n"\n')
    for command in (["config", "show"], ["config", "check", "--json"]):
        code, out = run(*command, "--config", str(path))
        assert code == 1, out
        assert canary not in out
        assert "s3_endpoint_url" in out
        assert "s3_access_key_id" in out  # the fix names the config keys for the credentials


@pytest.mark.parametrize("path", sorted(EXAMPLES.glob("*/*.yaml")), ids=lambda p: f"{p.parent.name}/{p.name}")
def test_check_examples_pass_clean(path: Path) -> None:
    """The shipped deployment examples are complete: no error and no finding above info."""
    code, out = run("config", "check", "--config", str(path), "--json")
    report = json.loads(out)
    assert report["errors"] == []
    assert [f for f in report["findings"] if f["severity"] != "info"] == []
    assert code == 0 == report["exit_code"]


def test_check_reports_errors_with_exit_1(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("cloud_provider: gpc\n")
    code, out = run("config", "check", "--config", str(path), "--json")
    report = json.loads(out)
    assert code == 1
    assert report["errors"][0]["key"] == "cloud_provider"
    assert "did you mean 'gcp'" in report["errors"][0]["message"]


def test_check_clean_config_exits_0(tmp_path: Path) -> None:
    path = tmp_path / "local.yaml"
    path.write_text("cloud_provider: local\n")
    code, out = run("config", "check", "--config", str(path))
    assert code == 0
    assert "config OK" in out


def test_check_finds_risky_values(tmp_path: Path) -> None:
    path = tmp_path / "risky.yaml"
    path.write_text(
        "celeryBrokerType: sqs\ncelery_enable_sha256: true\n"
        "config:\n  values:\n    infra: {cloud_provider: onprem}\n"
        "    launch: {vllm_repository: public.ecr.aws/b2z8n5q1/vllm}\n"
    )
    code, out = run("config", "check", "--config", str(path), "--json")
    report = json.loads(out)
    assert code == 2
    keys = {(f["severity"], f["key"]) for f in report["findings"]}
    assert ("high", "celeryBrokerType") in keys
    assert ("high", "config.values.launch.vllm_repository") in keys
    assert ("warning", "config.values.launch.tensorrt_llm_repository") in keys  # relative
    assert ("high", "config.values.infra.prometheus_server_address") in keys
    assert ("warning", "celery_enable_sha256") in keys


def test_check_warns_about_near_miss_keys(tmp_path: Path) -> None:
    path = tmp_path / "typo.yaml"
    path.write_text("cloud_provider: onprem\nprometheus_server_adress: http://p\n")
    code, out = run("config", "check", "--config", str(path), "--json")
    messages = [f["message"] for f in json.loads(out)["findings"]]
    assert any("prometheus_server_adress" in m and "prometheus_server_address" in m for m in messages)
    assert code == 2


def test_elasticache_on_azure_is_flagged(tmp_path: Path) -> None:
    path = tmp_path / "az.yaml"
    path.write_text("celeryBrokerType: elasticache\ncloud_provider: azure\ncache_redis_azure_host: h:6380\n")
    _, out = run("config", "check", "--config", str(path), "--json")
    assert any("not Service Bus" in f["message"] for f in json.loads(out)["findings"])


def test_providers_table() -> None:
    code, out = run("providers")
    assert code == 0
    for word in ("aws", "azure", "gcp", "onprem", "local", "Service Bus", "Artifact Registry"):
        assert word in out


def test_support_matrix_doc_is_current() -> None:
    doc = DOCS / "support-matrix.md"
    assert doc.read_text(encoding="utf-8") == support_matrix_markdown(), (
        "docs/support-matrix.md is stale: run `model-engine-infra providers --markdown -o docs/support-matrix.md`"
    )


def test_providers_markdown_to_stdout() -> None:
    code, out = run("providers", "--markdown")
    assert code == 0
    assert out == support_matrix_markdown()


def test_configuration_reference_doc_is_current() -> None:
    from model_engine_infra.cli.config_cmd import config_reference_markdown

    doc = DOCS / "configuration.md"
    assert doc.read_text(encoding="utf-8") == config_reference_markdown(), (
        "docs/configuration.md is stale: run `model-engine-infra config reference -o docs/configuration.md`"
    )
    for key in (
        "cloud_provider",
        "celeryBrokerType",
        "SERVICEBUS_KEEP_ALIVE_INTERVAL",
        "image.gatewayRepository",
    ):
        assert key in doc.read_text(encoding="utf-8")
