"""The CLI's contract with people and scripts: literal text, plain pipes, --json everywhere, one exit-code scheme."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from model_engine_infra.cli import app, exit_codes
from model_engine_infra.cli import output as output_module

ANSI = re.compile(r"\x1b\[[0-9;]*m")
# Keys rich would read as markup ([v2], [bold]) or as an emoji code (:smile:), and a hint with brackets.
ODD_KEYS = ("odd/w[v2].txt", "odd/[bold]x[/bold].bin", "odd/a:smile:b.txt")
runner = CliRunner()


def run(*args: str, env: dict[str, str | None] | None = None) -> Any:
    base: dict[str, str | None] = {
        "ML_INFRA_SERVICES_CONFIG_PATH": None,
        "DEPLOY_SERVICE_CONFIG_PATH": None,
        "KUBERNETES_SERVICE_HOST": None,
        "MODEL_ENGINE_INFRA_CLOUD_PROVIDER": None,
        "COLUMNS": "80",
    }
    return runner.invoke(app, list(args), env={**base, **(env or {})})


@pytest.fixture
def local(tmp_path: Path) -> Path:
    path = tmp_path / "local.yaml"
    path.write_text(f"cloud_provider: local\nlocal_data_dir: {tmp_path / 'state'}\n")
    return path


@pytest.fixture
def odd_folder(tmp_path: Path) -> Path:
    for key in ODD_KEYS:
        (tmp_path / "src" / key).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "src" / key).write_bytes(b"x" * 10)
    return tmp_path / "src"


@pytest.fixture
def terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    """Render as rich would in a terminal (colours, boxes), to prove markup is off there too."""
    monkeypatch.setattr(output_module, "is_terminal", lambda stream: True)


# --- the scheme ---------------------------------------------------------------------------------------
def test_exit_codes_are_distinct_and_documented() -> None:
    codes = [exit_codes.OK, exit_codes.FAILURE, exit_codes.USAGE, exit_codes.WARNINGS]
    assert codes == [0, 1, 2, 3]
    assert set(codes) <= set(exit_codes.ALL)
    doc = (Path(__file__).resolve().parents[1] / "docs" / "cli.md").read_text(encoding="utf-8")
    for code in codes:
        assert f"| {code} |" in doc


def test_version() -> None:
    from model_engine_infra import __version__

    result = run("--version")
    assert result.exit_code == 0
    assert result.stdout.strip() == f"model-engine-infra {__version__}"


def test_no_command_is_a_usage_error() -> None:
    result = run()
    assert result.exit_code == exit_codes.USAGE
    assert "Usage" in result.output


# --- literal text ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("mode", ["pipe", "terminal"])
def test_bracketed_keys_print_as_written(mode: str, local: Path, odd_folder: Path, request: Any) -> None:
    if mode == "terminal":
        request.getfixturevalue("terminal")
    result = run("storage", "ls", str(odd_folder), "-c", str(local))
    assert result.exit_code == 0, result.output
    text = ANSI.sub("", result.stdout)
    for key in ODD_KEYS:
        assert f"{odd_folder}/{key}" in text


@pytest.mark.parametrize("mode", ["pipe", "terminal"])
def test_install_hints_keep_their_brackets(mode: str, monkeypatch: pytest.MonkeyPatch, request: Any) -> None:
    from model_engine_infra.cli import providers_cmd

    if mode == "terminal":
        request.getfixturevalue("terminal")
    monkeypatch.setattr(providers_cmd, "extra_installed", lambda extra: False)
    result = run("providers", env={"COLUMNS": "400"})
    assert result.exit_code == 0, result.output
    text = ANSI.sub("", result.stdout)
    assert "pip install 'model-engine-infra[redis]'" in text
    assert "pip install 'model-engine-infra[aws]'" in text


def test_error_messages_keep_their_brackets(local: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from model_engine_infra import infra
    from model_engine_infra.errors import ProviderUnavailableError

    def broken(config: Any) -> Any:
        raise ProviderUnavailableError("the redis package is missing", extra="redis")

    monkeypatch.setattr(infra, "build_infra", broken)
    result = run("storage", "ls", "/tmp", "-c", str(local))
    assert result.exit_code == exit_codes.FAILURE
    assert "pip install 'model-engine-infra[redis]'" in result.stderr
    assert "Traceback" not in result.output


def test_progress_descriptions_are_literal() -> None:
    from rich.text import Text

    column = output_module.description_column()
    assert column.markup is False
    assert output_module.styled("[red]x[/red]").plain == "[red]x[/red]"
    assert isinstance(output_module.verdict("fail"), Text)


# --- plain output in a pipe --------------------------------------------------------------------------------
def test_pipes_get_unwrapped_lines(local: Path, tmp_path: Path) -> None:
    long_name = "models/" + "very-long-segment-" * 8 + "weights.safetensors"
    (tmp_path / "src" / long_name).parent.mkdir(parents=True)
    (tmp_path / "src" / long_name).write_bytes(b"w")
    listed = run("storage", "ls", str(tmp_path / "src"), "-c", str(local))
    assert f"{tmp_path / 'src'}/{long_name}" in listed.stdout.splitlines()[0]

    endpoint = "http://minio.storage-namespace.svc.cluster.local:9000/" + "path-segment/" * 6
    config = tmp_path / "long.yaml"
    config.write_text(f"cloud_provider: local\ns3_endpoint_url: {endpoint}\n")
    shown = run("config", "show", "-c", str(config), "--only-set")
    line = next(line for line in shown.stdout.splitlines() if line.startswith("s3_endpoint_url"))
    assert endpoint in line
    assert line.endswith(f"{config}:s3_endpoint_url")
    for text in (listed.stdout, shown.stdout, run("providers").stdout):
        assert not set("│┃┏━┡╇") & set(text), "a box-drawing table in a pipe"


def test_providers_has_one_line_per_component() -> None:
    from model_engine_infra.registry import COMPONENTS

    lines = run("providers").stdout.splitlines()
    for component in COMPONENTS:
        assert sum(1 for line in lines if line.startswith(component + " ")) == 1


# --- --json on every command -------------------------------------------------------------------------------
def json_of(result: Any) -> Any:
    return json.loads(result.stdout)


def test_json_config_show_check_reference(local: Path) -> None:
    shown = json_of(run("config", "show", "-c", str(local), "--json", "--only-set"))
    assert shown["provider"] == {"name": "local", "source": f"{local}:cloud_provider"}
    assert shown["config_source"] == {"files": [str(local)], "found_by": "--config"}
    assert {"key": "cloud_provider", "value": "local", "source": f"{local}:cloud_provider"} in shown["keys"]
    checked = json_of(run("config", "check", "-c", str(local), "--json"))
    assert checked["exit_code"] == 0
    assert checked["errors"] == []
    assert checked["provider"]["name"] == "local"
    reference = json_of(run("config", "reference", "--json"))
    assert any(k["key"] == "cloud_provider" and k["env"] for k in reference["keys"])
    assert all(k["default"] is None for k in reference["keys"] if k["secret"])


def test_json_providers() -> None:
    data = json_of(run("providers", "--json"))
    assert data["providers"]["aws"]["task_queue"]["backend"]
    assert set(data["providers"]["local"]["filesystem"]) >= {"backend", "extras", "installed", "install"}


def test_json_storage(local: Path, tmp_path: Path) -> None:
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "a.bin").write_bytes(b"a" * 7)
    listed = json_of(run("storage", "ls", str(tmp_path / "src"), "-c", str(local), "--json"))
    assert listed["objects"] == [{"uri": str(tmp_path / "src" / "a.bin"), "key": "a.bin", "size": 7}]
    copied = json_of(run("storage", "cp", str(tmp_path / "src"), str(tmp_path / "dst"), "-c", str(local), "--json"))
    assert (copied["copied"], copied["skipped"], copied["bytes_copied"]) == (1, 0, 7)
    signed = json_of(run("storage", "sign", str(tmp_path / "src" / "a.bin"), "-c", str(local), "--json"))
    assert signed["url"] == (tmp_path / "src" / "a.bin").as_uri()
    assert signed["method"] == "GET"


def test_json_errors_are_json_too(tmp_path: Path) -> None:
    missing = run("config", "show", "-c", str(tmp_path / "nope.yaml"), "--json")
    assert missing.exit_code == exit_codes.FAILURE
    assert json_of(missing) == {
        "ok": False,
        "exit_code": 1,
        "error": {"type": "ConfigError", "message": json_of(missing)["error"]["message"]},
    }
    assert "nope.yaml" in json_of(missing)["error"]["message"]
    usage = run("storage", "ls", "s3:/typo", "--json")
    assert usage.exit_code == exit_codes.USAGE
    assert json_of(usage)["error"]["type"] == "UsageError"
    mirror = run("images", "mirror", "--json")
    assert mirror.exit_code == exit_codes.USAGE
    assert json_of(mirror)["exit_code"] == 2


def test_json_images_check_unreachable(tmp_path: Path) -> None:
    config = tmp_path / "onprem.yaml"
    config.write_text(
        "cloud_provider: onprem\nprometheus_server_address: http://p:9090\ncelery_broker_type_redis: true\n"
        "redis_host: 127.0.0.1\ndocker_repo_prefix: 127.0.0.1:9/models\ninsecure_registries: ['127.0.0.1:9']\n"
        + "".join(f"{k}: 127.0.0.1:9/models/{k}\n" for k in ("gateway_repository", "builder_repository"))
        + "".join(f"{k}: 127.0.0.1:9/models/{k}\n" for k in ("cacher_repository", "forwarder_repository"))
    )
    result = run("images", "check", "-c", str(config), "--tag", "vllm=1", "--json")
    assert result.exit_code == exit_codes.FAILURE
    data = json_of(result)
    assert data["exit_code"] == 1
    assert data["images"]
    assert {row["status"] for row in data["images"]} == {"error"}


# --- what config check and doctor judged -----------------------------------------------------------------
def test_check_names_provider_and_source(local: Path) -> None:
    by_flag = run("config", "check", "-c", str(local))
    assert f"provider: local ({local}:cloud_provider)" in by_flag.stdout
    assert f"config: {local} (from --config)" in by_flag.stdout
    by_env = run("config", "check", env={"ML_INFRA_SERVICES_CONFIG_PATH": str(local)})
    assert f"config: {local} (from ML_INFRA_SERVICES_CONFIG_PATH)" in by_env.stdout
    nothing = run("config", "check", "--json")
    report = json_of(nothing)
    assert report["config_source"]["files"] == []
    assert report["provider"]["name"] == "local"
    assert "built-in default" in report["provider"]["source"]
    assert nothing.exit_code == 0  # outside a cluster, the local default is the point


def test_implicit_local_inside_a_cluster_fails(local: Path) -> None:
    cluster = {"KUBERNETES_SERVICE_HOST": "10.0.0.1"}
    checked = run("config", "check", env=cluster)
    assert checked.exit_code == exit_codes.FAILURE
    assert "KUBERNETES_SERVICE_HOST" in checked.stdout
    assert "ML_INFRA_SERVICES_CONFIG_PATH" in checked.stdout
    listed = run("storage", "ls", "/tmp", env=cluster)
    assert listed.exit_code == exit_codes.FAILURE
    assert "KUBERNETES_SERVICE_HOST" in listed.stderr
    shown = run("config", "show", env=cluster)  # showing is how one finds out
    assert shown.exit_code == 0
    assert "KUBERNETES_SERVICE_HOST" in shown.stderr
    chosen = run("config", "check", env={**cluster, "MODEL_ENGINE_INFRA_CLOUD_PROVIDER": "local"})
    assert chosen.exit_code == 0
    assert run("config", "check", "-c", str(local), env=cluster).exit_code == 0


def test_file_without_cloud_provider_is_a_high_finding_naming_the_cloud(tmp_path: Path) -> None:
    path = tmp_path / "values.yaml"
    path.write_text(
        "azure:\n  servicebus_namespace: ns\n  client_id: abc\n"
        "cache_redis_aws_url: redis://cache:6379/0\n"
        "config:\n  values:\n    infra:\n      prometheus_server_address: http://p\n"
    )
    result = run("config", "check", "-c", str(path), "--json")
    assert result.exit_code == exit_codes.FAILURE
    report = json_of(result)
    assert report["provider"]["name"] == "aws"
    assert "Helm chart" in report["provider"]["source"]
    finding = next(f for f in report["findings"] if f["key"] == "config.values.infra.cloud_provider")
    assert finding["severity"] == "high"
    assert "suggest azure" in finding["message"]
    assert "azure.servicebus_namespace" in finding["message"]


def test_an_error_under_the_implicit_aws_says_so(tmp_path: Path) -> None:
    path = tmp_path / "values.yaml"
    path.write_text("gcp_project_id: my-project\n")  # fails aws validation (no cache Redis)
    report = json_of(run("config", "check", "-c", str(path), "--json"))
    assert report["exit_code"] == 1
    assert "cloud_provider is not set" in report["errors"][0]["message"]
    assert "suggest gcp" in report["errors"][0]["message"]


def test_warnings_only_exit_3(local: Path) -> None:
    local.write_text(local.read_text() + "celery_enable_sha256: true\n")
    result = run("config", "check", "-c", str(local))
    assert result.exit_code == exit_codes.WARNINGS
    assert "warnings to review" in result.stdout


def test_only_set_hides_an_empty_secret_store(local: Path) -> None:
    plain = run("config", "show", "-c", str(local), "--only-set", "--json")
    assert "env_secrets" not in {k["key"] for k in json_of(plain)["keys"]}
    canary = "canary-6d1f0"
    with_secret = run("config", "show", "-c", str(local), "--only-set", env={"MODEL_ENGINE_SECRET_DB": canary})
    assert "env_secrets" in with_secret.stdout
    assert canary not in with_secret.output


# --- storage -----------------------------------------------------------------------------------------------
def test_ls_of_nothing_fails_like_cp(local: Path, tmp_path: Path) -> None:
    for uri in (str(tmp_path / "missing-folder"), str(tmp_path / "missing-file.bin")):
        listed = run("storage", "ls", uri, "-c", str(local))
        copied = run("storage", "cp", uri, str(tmp_path / "out"), "-c", str(local))
        assert listed.exit_code == copied.exit_code == exit_codes.FAILURE
        assert "nothing at or under" in listed.stderr
        assert "nothing at or under" in copied.stderr


def test_ls_of_a_missing_s3_prefix_fails(tmp_path: Path) -> None:
    from moto import mock_aws

    config = tmp_path / "aws.yaml"
    config.write_text("cloud_provider: aws\ncache_redis_aws_url: redis://cache:6379/0\n")
    with mock_aws():
        import boto3

        boto3.client("s3", region_name="us-east-1").create_bucket(Bucket="bkt")
        boto3.client("s3", region_name="us-east-1").put_object(Bucket="bkt", Key="models/a/w.bin", Body=b"w")
        assert run("storage", "ls", "s3://bkt/models", "-c", str(config)).exit_code == 0
        missing = run("storage", "ls", "s3://bkt/models/nope", "-c", str(config))
        assert missing.exit_code == exit_codes.FAILURE
        assert "nothing at or under" in missing.stderr
        no_bucket = run("storage", "ls", "s3://no-such-bucket/x", "-c", str(config))
        assert no_bucket.exit_code == exit_codes.FAILURE
        assert "Traceback" not in no_bucket.output


@pytest.mark.parametrize("uri", ["s3:/typo", "S3:/typo", "gs:bucket/x", "file:/tmp/x", "https:/host/x", "ftp://host/x"])
def test_malformed_uris_are_usage_errors(uri: str, local: Path) -> None:
    for args in (("ls", uri), ("cp", uri, "/tmp/x"), ("cp", "/tmp", uri), ("sign", uri)):
        result = run("storage", *args, "-c", str(local))
        assert result.exit_code == exit_codes.USAGE, (args, result.output)
        assert "Traceback" not in result.output


@pytest.mark.parametrize("uri", ["ftp://host/x", "sftp://host/x", "s3:///no-bucket"])
def test_a_uri_no_store_serves_is_a_usage_error(uri: str, local: Path) -> None:
    result = run("storage", "ls", uri, "-c", str(local))
    assert result.exit_code == exit_codes.USAGE
    assert uri in result.output


def test_cp_rerun_reports_skipped(local: Path, tmp_path: Path) -> None:
    src = tmp_path / "src"
    (src / "sub").mkdir(parents=True)
    for name in ("a.bin", "sub/b.bin", "c.bin"):
        (src / name).write_bytes(b"z" * 100)
    first = run("storage", "cp", str(src), str(tmp_path / "dst"), "-c", str(local))
    assert first.exit_code == 0
    assert "copied 3 object(s), 300 bytes" in first.stdout
    again = run("storage", "cp", str(src), str(tmp_path / "dst"), "-c", str(local))
    assert again.exit_code == 0
    assert "copied 0 object(s)" in again.stdout
    assert "skipped 3 already complete" in again.stdout
    (tmp_path / "dst" / "c.bin").write_bytes(b"short")
    partial = json_of(run("storage", "cp", str(src), str(tmp_path / "dst"), "-c", str(local), "--json"))
    assert (partial["copied"], partial["skipped"]) == (1, 2)
    assert {o["state"] for o in partial["objects"] if o["source"].endswith("c.bin")} == {"copied"}
    forced = json_of(run("storage", "cp", str(src), str(tmp_path / "dst"), "--overwrite", "-c", str(local), "--json"))
    assert (forced["copied"], forced["skipped"]) == (3, 0)
    one = run("storage", "cp", str(src / "a.bin"), str(tmp_path / "one.bin"), "-c", str(local))
    one_again = run("storage", "cp", str(src / "a.bin"), str(tmp_path / "one.bin"), "-c", str(local))
    assert "copied 1 object(s)" in one.stdout
    assert "skipped 1" in one_again.stdout


# --- the guard ---------------------------------------------------------------------------------------------
def test_debug_shows_the_traceback_anywhere_on_the_line(tmp_path: Path) -> None:
    quiet = run("config", "show", "-c", str(tmp_path / "nope.yaml"))
    assert "Traceback" not in quiet.output
    assert quiet.stderr.count("\n") == 1
    for args in (("--debug", "config", "show"), ("config", "show", "--debug")):
        loud = run(*args, "-c", str(tmp_path / "nope.yaml"))
        assert loud.exit_code == exit_codes.FAILURE
        assert "Traceback" in loud.stderr
        assert "ConfigError" in loud.stderr


def test_unexpected_errors_are_one_masked_line(local: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from model_engine_infra import infra

    canary = "canary-pw-31c"

    def broken(config: Any) -> Any:
        raise RuntimeError(f"boom talking to redis://app:{canary}@cache:6379/0\nsecond line")

    monkeypatch.setattr(infra, "build_infra", broken)
    result = run("storage", "ls", "/tmp", "-c", str(local))
    assert result.exit_code == exit_codes.FAILURE
    assert canary not in result.output
    assert "redis://app:***@cache" in result.stderr
    assert result.stderr.count("\n") == 1
    assert "--debug" in result.stderr
    assert "Traceback" not in result.output


def test_missing_sdk_names_the_extra(local: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from model_engine_infra import infra

    def broken(config: Any) -> Any:
        raise ModuleNotFoundError("No module named 'boto3'", name="boto3")

    monkeypatch.setattr(infra, "build_infra", broken)
    result = run("storage", "ls", "/tmp", "-c", str(local))
    assert result.exit_code == exit_codes.FAILURE
    assert "pip install 'model-engine-infra[aws]'" in result.stderr


def test_sub_apps_are_guarded_on_their_own(tmp_path: Path) -> None:
    from model_engine_infra.cli.storage import app as storage_app

    result = runner.invoke(storage_app, ["ls", "/tmp", "-c", str(tmp_path / "nope.yaml")])
    assert result.exit_code == exit_codes.FAILURE
    assert "Traceback" not in result.output


# --- advice that fits the provider ----------------------------------------------------------------------------
def test_s3_credential_advice_fits_the_store() -> None:
    import botocore.exceptions as bexc

    from model_engine_infra.storage.s3 import translate

    minio = str(translate(bexc.NoCredentialsError(), "s3://b/k", "http://minio.storage.svc:9000"))
    assert "IRSA" not in minio
    assert "AWS_ACCESS_KEY_ID" in minio
    assert "minio.storage.svc" in minio
    aws = str(translate(bexc.NoCredentialsError(), "s3://b/k", "https://s3.us-east-1.amazonaws.com"))
    assert "IRSA" in aws


@pytest.mark.parametrize(
    ("credentials", "hint", "expected", "absent"),
    [
        (None, None, "registry_username/registry_password", "--to-username"),
        (None, "--to-username/--to-password", "--to-username/--to-password", "registry_username"),
        ("static", "--to-username/--to-password", "--to-username/--to-password", "registry_username"),
        ("ecr", None, "IAM role", "registry_username"),
    ],
)
def test_registry_advice_names_what_the_caller_can_change(
    credentials: str | None, hint: str | None, expected: str, absent: str
) -> None:
    import httpx

    from model_engine_infra.errors import RegistryAuthError
    from model_engine_infra.images.distribution import Credentials, RegistryClient, StaticCredentials

    class ECRCredentials:  # named like the real one: the advice follows the kind of identity
        def __call__(self, challenge: object, http: object) -> Credentials:
            return Credentials("AWS", "token", False)

    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(401, headers={"WWW-Authenticate": 'Basic realm="registry"'})

    login = {"static": StaticCredentials("u", "wrong"), "ecr": ECRCredentials(), None: None}[credentials]
    session = httpx.Client(transport=httpx.MockTransport(answer))
    extra = {"credentials_hint": hint} if hint else {}
    client = RegistryClient("registry.example.com", credentials=login, session=session, retries=0, **extra)
    with pytest.raises(RegistryAuthError) as caught:
        client.request("GET", "/v2/app/manifests/1", what="checking app:1")
    assert expected in str(caught.value)
    assert absent not in str(caught.value)


# --- doctor and demo --------------------------------------------------------------------------------------------
def test_doctor_names_what_it_judged_and_exits_by_the_scheme(local: Path) -> None:
    healthy = run("doctor", "-c", str(local), "--offline")
    assert healthy.exit_code == exit_codes.OK, healthy.output
    assert f"provider: local ({local}:cloud_provider)" in healthy.stdout
    assert f"config: {local} (from --config)" in healthy.stdout
    local.write_text(local.read_text() + "celery_enable_sha256: true\n")
    warned = run("doctor", "-c", str(local), "--offline", "--json")
    assert warned.exit_code == exit_codes.WARNINGS
    report = json_of(warned)
    assert report["exit_code"] == 3
    assert report["provider"] == {"name": "local", "source": f"{local}:cloud_provider"}
    assert report["config_source"]["files"] == [str(local)]
    assert {c["name"]: c["verdict"] for c in report["checks"]}["config"] == "warn"


def test_doctor_fails_an_implicit_local_inside_a_cluster() -> None:
    result = run("doctor", "--offline", "--json", env={"KUBERNETES_SERVICE_HOST": "10.0.0.1"})
    assert result.exit_code == exit_codes.FAILURE
    config = json_of(result)["checks"][0]
    assert config["name"] == "config"
    assert config["verdict"] == "fail"
    assert "KUBERNETES_SERVICE_HOST" in config["message"]


def test_doctor_output_keeps_brackets(tmp_path: Path) -> None:
    path = tmp_path / "risky.yaml"  # findings are shown as "[high] key: message"
    path.write_text("cloud_provider: onprem\ncelery_broker_type_redis: true\nredis_host: r\n")
    result = run("doctor", "-c", str(path), "--offline")
    assert result.exit_code == exit_codes.FAILURE
    assert "[high] config.values.infra.prometheus_server_address" in result.stdout


def test_demo_json(tmp_path: Path) -> None:
    config = tmp_path / "local.yaml"
    config.write_text(f"cloud_provider: local\nlocal_data_dir: {tmp_path / 'state'}\n")
    result = run("demo", "-c", str(config), "--tasks", "1", "--json")
    assert result.exit_code == 0, result.output
    report = json_of(result)
    assert report["ok"] is True
    assert report["provider"] == "local"
    assert report["steps"]
    assert all(step["ok"] for step in report["steps"])


@pytest.mark.parametrize(
    ("keys", "present", "absent"),
    [
        ({"cloud_provider": "onprem", "redis_host": "r"}, "redis_auth_token", "Entra"),
        ({"cloud_provider": "azure", "cache_redis_azure_host": "c.redis.cache.windows.net"}, "Entra", ""),
    ],
)
def test_doctor_redis_advice_fits_the_configuration(keys: dict[str, str], present: str, absent: str) -> None:
    from model_engine_infra.config import InfraConfig
    from model_engine_infra.ops.probes import redis_fix

    fix = redis_fix(InfraConfig(**keys))
    assert present in fix
    assert not absent or absent not in fix
