"""Every command against broken inputs: one line, the documented exit code, never a traceback.

Missing and malformed config files, servers that refuse connections, malformed URIs and bad flags,
for each command in docs/cli.md. The table is the exit-code contract: change a row only together
with the documentation.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from model_engine_infra.cli import app, exit_codes

FAILURE, USAGE = exit_codes.FAILURE, exit_codes.USAGE
CLOSED = "127.0.0.1:9"  # the discard port: nothing listens there
runner = CliRunner()


@pytest.fixture
def files(tmp_path: Path) -> dict[str, str]:
    bad_yaml = tmp_path / "bad.yaml"
    bad_yaml.write_text("cloud_provider: local\nredis_host: [unclosed\n")
    bad_value = tmp_path / "bad-value.yaml"
    bad_value.write_text("cloud_provider: lcoal\n")
    down = tmp_path / "down.yaml"
    down.write_text(
        "cloud_provider: onprem\n"
        "prometheus_server_address: http://127.0.0.1:9\n"
        "celery_broker_type_redis: true\n"
        "redis_host: 127.0.0.1\nredis_port: 9\nredis_socket_timeout: 1\n"
        f"s3_endpoint_url: http://{CLOSED}\n"
        f"docker_repo_prefix: {CLOSED}/models\ninsecure_registries: ['{CLOSED}']\n"
        + "".join(
            f"{key}: {CLOSED}/models/model-engine\n"
            for key in ("gateway_repository", "builder_repository", "cacher_repository", "forwarder_repository")
        )
    )
    local = tmp_path / "local.yaml"
    local.write_text(f"cloud_provider: local\nlocal_data_dir: {tmp_path / 'state'}\n")
    return {
        "missing": str(tmp_path / "missing.yaml"),
        "bad_yaml": str(bad_yaml),
        "bad_value": str(bad_value),
        "down": str(down),
        "local": str(local),
        "nodir": str(tmp_path / "no" / "such" / "dir" / "out.md"),
        "tmp": str(tmp_path),
        "closed": CLOSED,
    }


# (command words, extra arguments, expected exit code); {name} is replaced from `files`.
CONFIG_FILE_CASES = [
    ("config show", []),
    ("config check", []),
    ("doctor", ["--offline"]),
    ("demo", []),
    ("storage ls", ["{tmp}"]),
    ("storage cp", ["{tmp}", "{tmp}/copy"]),
    ("storage sign", ["{local}"]),
    ("images check", []),
    ("images mirror", ["--from-config", "--tag", "vllm=1"]),
    ("worker", ["--queues", "q"]),
]
CASES = [
    # a config file that is missing, does not parse, or holds a bad value: exit 1 on every command
    *[
        (words, ["-c", "{" + kind + "}", *args], FAILURE)
        for words, args in CONFIG_FILE_CASES
        for kind in ("missing", "bad_yaml", "bad_value")
    ],
    # servers that refuse connections
    ("storage ls", ["-c", "{down}", "s3://bucket/models"], FAILURE),
    ("storage cp", ["-c", "{down}", "s3://bucket/models/a.bin", "{tmp}/a.bin"], FAILURE),
    ("storage cp", ["-c", "{down}", "{local}", "s3://bucket/models/a.bin"], FAILURE),
    ("images check", ["-c", "{down}", "--tag", "vllm=1"], FAILURE),
    (
        "images mirror",
        ["--from", CLOSED, "--to", f"{CLOSED}/x", "--image", "a:1", "--insecure-registry", CLOSED],
        FAILURE,
    ),
    ("doctor", ["-c", "{down}", "--timeout", "3", "--tag", "vllm=1"], FAILURE),
    # output files that cannot be written
    ("config reference", ["-o", "{nodir}"], FAILURE),
    ("providers", ["--markdown", "-o", "{nodir}"], FAILURE),
    # bad URIs
    ("storage ls", ["-c", "{local}", "s3:/typo"], USAGE),
    ("storage ls", ["-c", "{local}", "sftp://host/no-store-serves-this"], USAGE),
    ("storage ls", ["-c", "{local}", "s3:///no-bucket"], USAGE),
    ("storage cp", ["-c", "{local}", "https://{closed}/model.bin", "{tmp}/model.bin"], FAILURE),
    ("storage cp", ["-c", "{local}", "{tmp}", "ftp://host/x"], USAGE),
    ("storage sign", ["-c", "{local}", "az:/container/x"], USAGE),
    # bad flags and values
    ("config show", ["--no-such-flag"], USAGE),
    ("config nonsense", [], USAGE),
    ("providers", ["--json", "extra-argument"], USAGE),
    ("doctor", ["-c", "{local}", "--timeout", "soon"], USAGE),
    ("doctor", ["-c", "{local}", "--tag", "vllm"], USAGE),
    ("doctor", ["-c", "{local}", "--tag", "nginx=1"], USAGE),
    ("demo", ["-c", "{local}", "--tasks", "-1"], USAGE),
    ("demo", ["-c", "{local}", "--tasks", "0"], USAGE),
    ("storage ls", [], USAGE),
    ("storage cp", ["-c", "{local}", "{tmp}", "{tmp}/x", "--concurrency", "0"], USAGE),
    ("storage sign", ["-c", "{local}", "{local}", "--method", "DELETE"], USAGE),
    ("storage sign", ["-c", "{local}", "{local}", "--expiration", "0"], USAGE),
    ("images check", ["-c", "{local}", "--tag", "vllm"], USAGE),
    ("images mirror", [], USAGE),
    ("images mirror", ["--from", "a.io", "--to", "b.io", "--image", "x:1", "--tag", "bad"], USAGE),
    ("worker", ["-c", "{local}"], USAGE),
    ("worker", ["-c", "{local}", "--queues", ","], USAGE),
    ("worker", ["-c", "{local}", "--queues", "q", "--pool", "gevent"], USAGE),
    ("worker", ["-c", "{local}", "--queues", "q", "--concurrency", "0"], USAGE),
]


def _id(case: tuple[str, list[str], int]) -> str:
    words, args, code = case
    return f"{words} {' '.join(args)} -> {code}"


@pytest.mark.parametrize("case", CASES, ids=[_id(c) for c in CASES])
@pytest.mark.parametrize("as_json", [False, True], ids=["text", "json"])
def test_broken_input(case: tuple[str, list[str], int], as_json: bool, files: dict[str, str]) -> None:
    words, args, expected = case
    if as_json and "-o" in args:
        expected = USAGE  # --json and -o both say where the output goes
    argv = [*words.split(), *(a.format(**files) for a in args), *(["--json"] if as_json else [])]
    env = {"ML_INFRA_SERVICES_CONFIG_PATH": None, "DEPLOY_SERVICE_CONFIG_PATH": None, "KUBERNETES_SERVICE_HOST": None}
    result = runner.invoke(app, argv, env=env)
    assert "Traceback" not in result.output, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    assert result.exit_code == expected, result.output
    if as_json and "--json" not in args:
        import json

        assert result.stdout.strip().startswith("{"), result.stdout
        assert json.loads(result.stdout)["exit_code"] == expected, result.stdout
    assert result.output.strip(), "a failure must say something"
