"""Hostile config input (issue 14, "Config input"): every case is a typed `ConfigError`, quickly.

Size, encoding, nesting depth and alias expansion are refused before a value is used; messages quote
a bad value cut short; near-miss hints are bounded; numeric keys have ranges; values an SDK would
only reject at first use fail at load. The time guards (``pytest.mark.timeout``) only catch a
regression to a hang; the bounds themselves are asserted structurally.
"""

from __future__ import annotations

import codecs
import difflib
import math
import warnings
from pathlib import Path
from typing import Any

import boto3
import pytest
from pydantic import SecretStr
from typer.testing import CliRunner

from model_engine_infra import load_config
from model_engine_infra.cli import app
from model_engine_infra.config import ConfigWarning, InfraConfig
from model_engine_infra.config import keys as keys_module
from model_engine_infra.config import loader as loader_module
from model_engine_infra.config.limits import (
    MAX_ALIAS_NODES,
    MAX_CONFIG_BYTES,
    MAX_DEPTH,
    LimitedLoader,
    PureLimitedLoader,
    load_yaml_text,
)
from model_engine_infra.config.schema import FIELDS
from model_engine_infra.config.validation import validate
from model_engine_infra.errors import MAX_MESSAGE_CHARS, MAX_VALUE_CHARS, ConfigError, InfraError, quote

runner = CliRunner()
LOADERS = [LimitedLoader, PureLimitedLoader]


def laughs(levels: int = 9, key: str = "cloud_provider") -> str:
    """The billion-laughs document: each anchor holds nine aliases of the previous one."""
    lines = ["l0: &l0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    for level in range(1, levels + 1):
        aliases = ", ".join([f"*l{level - 1}"] * 9)
        lines.append(f"l{level}: &l{level} [{aliases}]")
    lines.append(f"{key}: *l{levels}")
    return "\n".join(lines) + "\n"


def run_cli(*args: str) -> tuple[int, str]:
    env = {"ML_INFRA_SERVICES_CONFIG_PATH": "", "DEPLOY_SERVICE_CONFIG_PATH": "", "COLUMNS": "250"}
    result = runner.invoke(app, list(args), env=env)
    return result.exit_code, result.output + (repr(result.exception) if result.exception else "")


# --- size -------------------------------------------------------------------------------------------


def test_a_file_over_the_size_cap_is_refused_naming_file_and_cap(tmp_path: Path) -> None:
    path = tmp_path / "huge.yaml"
    path.write_bytes(b"cloud_provider: local\n" + b"# padding\n" * (MAX_CONFIG_BYTES // 10 + 1))
    with pytest.raises(ConfigError) as info:
        load_config(path, env={})
    assert str(path) in str(info.value)
    assert "1024 KiB" in str(info.value)
    assert info.value.key == "path"


def test_a_file_at_the_cap_still_loads(tmp_path: Path) -> None:
    body = b"cloud_provider: local\n"
    path = tmp_path / "big.yaml"
    path.write_bytes(body + b"#" * (MAX_CONFIG_BYTES - len(body) - 1) + b"\n")
    assert load_config(path, env={}).cloud_provider == "local"


# --- alias expansion, depth, self-reference ----------------------------------------------------------


@pytest.mark.timeout(20)
@pytest.mark.parametrize("key", ["cloud_provider", "insecure_registries", "unrelated_key"])
def test_billion_laughs_is_refused_in_a_known_key_a_list_key_or_anywhere(tmp_path: Path, key: str) -> None:
    path = tmp_path / "laughs.yaml"
    path.write_text(laughs(key=key))
    with pytest.raises(ConfigError, match="aliases expand") as info:
        load_config(path, env={})
    assert str(path) in str(info.value)
    assert "Fix:" in str(info.value)


@pytest.mark.parametrize("loader", LOADERS, ids=lambda loader: loader.__name__)
def test_alias_budget_is_counted_in_expanded_nodes(loader: type[Any]) -> None:
    fits = "a: &a [" + ", ".join(["x"] * 99) + "]\n" + "".join(f"k{i}: *a\n" for i in range(MAX_ALIAS_NODES // 101))
    assert len(load_yaml_text(fits, Path("f.yaml"), loader=loader)) > 1
    too_many = fits + "".join(f"m{i}: *a\n" for i in range(MAX_ALIAS_NODES // 100))
    with pytest.raises(ConfigError, match=str(MAX_ALIAS_NODES)):
        load_yaml_text(too_many, Path("f.yaml"), loader=loader)


@pytest.mark.parametrize("loader", LOADERS, ids=lambda loader: loader.__name__)
def test_ordinary_anchors_and_merge_keys_still_work(loader: type[Any]) -> None:
    doc = load_yaml_text("base: &b {x: 1}\nk: {<<: *b, z: 3}\nl: [*b, *b]\n", Path("f.yaml"), loader=loader)
    assert doc["k"] == {"x": 1, "z": 3}
    assert doc["l"] == [{"x": 1}, {"x": 1}]


@pytest.mark.timeout(20)
@pytest.mark.parametrize("loader", LOADERS, ids=lambda loader: loader.__name__)
@pytest.mark.parametrize(
    "text",
    ["[" * 50_000, "{a: " * 50_000, "- " * 50_000 + "x", "[" * (MAX_DEPTH + 1) + "]" * (MAX_DEPTH + 1)],
    ids=["flow-seq-50k", "flow-map-50k", "block-seq-50k", "just-over"],
)
def test_deep_nesting_is_a_config_error_not_a_recursion_error(loader: type[Any], text: str) -> None:
    with pytest.raises(ConfigError, match="nest deeper than") as info:
        load_yaml_text(text, Path("deep.yaml"), loader=loader)
    assert "deep.yaml" in str(info.value)


def test_deep_nesting_through_load_config(tmp_path: Path) -> None:
    path = tmp_path / "deep.yaml"
    path.write_text("[" * 50_000)
    with pytest.raises(ConfigError, match="nest deeper"):
        load_config(path, env={})


@pytest.mark.parametrize("loader", LOADERS, ids=lambda loader: loader.__name__)
def test_nesting_up_to_the_limit_loads(loader: type[Any]) -> None:
    depth = MAX_DEPTH - 1
    value = load_yaml_text("k: " + "[" * depth + "]" * depth, Path("f.yaml"), loader=loader)
    assert isinstance(value["k"], list)


@pytest.mark.parametrize("loader", LOADERS, ids=lambda loader: loader.__name__)
def test_an_anchor_that_contains_itself_is_refused(loader: type[Any]) -> None:
    with pytest.raises(ConfigError, match="alias to itself"):
        load_yaml_text("cloud_provider: &a [1, *a]\n", Path("f.yaml"), loader=loader)


# --- encodings ---------------------------------------------------------------------------------------


ENCODED = {
    "latin-1": "cloud_provider: local\nenv: café\n".encode("latin-1"),
    "utf-16-bom": "cloud_provider: local\n".encode("utf-16"),
    "utf-16-le-no-bom": "cloud_provider: local\n".encode("utf-16-le"),
    "utf-32-bom": codecs.BOM_UTF32_LE + "cloud_provider: local\n".encode("utf-32-le"),
    "binary": bytes(range(256)),
}


@pytest.mark.parametrize("name", sorted(ENCODED))
def test_non_utf8_files_are_config_errors_naming_file_and_fix(tmp_path: Path, name: str) -> None:
    path = tmp_path / f"{name}.yaml"
    path.write_bytes(ENCODED[name])
    with pytest.raises(ConfigError) as info:
        load_config(path, env={})
    text = str(info.value)
    assert str(path) in text
    assert "UTF-8" in text
    assert "Fix:" in text


def test_latin1_error_says_where(tmp_path: Path) -> None:
    path = tmp_path / "l1.yaml"
    path.write_bytes(ENCODED["latin-1"])
    with pytest.raises(ConfigError, match="line 2, column 9"):
        load_config(path, env={})


def test_a_utf8_byte_order_mark_is_accepted(tmp_path: Path) -> None:
    path = tmp_path / "bom.yaml"
    path.write_bytes(codecs.BOM_UTF8 + b"cloud_provider: local\nenv: caf\xc3\xa9\n")
    assert load_config(path, env={}).env == "café"


@pytest.mark.parametrize(
    "command",
    [["config", "show"], ["config", "check"], ["doctor", "--offline"], ["images", "check"], ["storage", "ls", "x"]],
)
@pytest.mark.parametrize("name", ["utf-16-bom", "latin-1"])
def test_cli_commands_report_bad_encodings_without_a_traceback(tmp_path: Path, command: list[str], name: str) -> None:
    path = tmp_path / "bad.yaml"
    path.write_bytes(ENCODED[name])
    code, out = run_cli(*command, "--config", str(path))
    assert code in (1, 2), out  # images check exits 2 on errors
    assert "Traceback" not in out
    assert "UnicodeDecodeError" not in out
    assert "UTF-8" in out


# --- messages quote values cut short ---------------------------------------------------------------------


def test_a_huge_bad_value_is_quoted_cut_short() -> None:
    huge = "x" * 5_000_000
    with pytest.raises(ConfigError) as info:
        load_config(env={"MODEL_ENGINE_INFRA_CLOUD_PROVIDER": huge})
    text = str(info.value)
    assert len(text) < MAX_MESSAGE_CHARS
    assert "characters cut" in text
    assert "Fix:" in text


@pytest.mark.timeout(20)
def test_a_huge_value_in_a_literal_key_of_a_file(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("cloud_provider: local\ns3_addressing_style: " + "y" * 900_000 + "\n")
    with pytest.raises(ConfigError) as info:
        load_config(path, env={})
    assert len(str(info.value)) < MAX_MESSAGE_CHARS
    assert "s3_addressing_style" in str(info.value)


def test_quote_never_walks_a_whole_structure() -> None:
    nested: Any = "lol"
    for _ in range(40):
        nested = [nested] * 9  # 9^40 leaves if walked
    assert len(quote(nested)) <= MAX_VALUE_CHARS + 40
    assert len(quote("z" * 10**6)) < MAX_VALUE_CHARS + 40


def test_every_infra_error_message_is_capped() -> None:
    err = InfraError("start " + "m" * 100_000 + " end")
    text = str(err)
    assert len(text) < MAX_MESSAGE_CHARS + 40
    assert text.startswith("start")
    assert text.endswith("end")


# --- near-miss hints are bounded ---------------------------------------------------------------------------


@pytest.mark.timeout(60)
def test_twenty_thousand_unknown_keys_make_a_bounded_number_of_comparisons(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = []
    real = difflib.get_close_matches

    def counting(*args: Any, **kwargs: Any) -> Any:
        calls.append(args[0])
        return real(*args, **kwargs)

    monkeypatch.setattr(keys_module.difflib, "get_close_matches", counting)
    path = tmp_path / "many.yaml"
    path.write_text("cloud_provider: local\nredis_hots: r\n" + "".join(f"unrelated_{i}: {i}\n" for i in range(20_000)))
    with pytest.warns(ConfigWarning, match="redis_host"):
        load_config(path, env={})
    assert len(calls) <= loader_module.MAX_NEAR_MISS_CHECKS


def test_a_huge_unknown_key_is_not_compared(tmp_path: Path) -> None:
    path = tmp_path / "long.yaml"
    path.write_text("cloud_provider: local\n? " + "k" * 200_000 + "\n: 1\n")  # an explicit key: no length limit
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConfigWarning)
        load_config(path, env={})


# --- numeric ranges ------------------------------------------------------------------------------------------

NUMERIC = [name for name, info in FIELDS.items() if info.expected.startswith(("a number", "a whole number"))]


def test_every_numeric_key_has_bounds() -> None:
    assert NUMERIC
    assert [name for name in NUMERIC if not FIELDS[name].bounds] == []


def _out_of_range(name: str) -> list[str]:
    bounds = dict(FIELDS[name].bounds)
    bad = ["nan", "inf", "-inf", "true"]
    if "ge" in bounds:
        bad.append(str(bounds["ge"] - 1))
    if "gt" in bounds:
        bad.append(str(bounds["gt"]))
    if "le" in bounds:
        bad.append(str(bounds["le"] + 1))
    return bad


@pytest.mark.parametrize(
    ("name", "raw"),
    [(name, raw) for name in NUMERIC for raw in _out_of_range(name)],
)
def test_out_of_range_numbers_fail_at_load_naming_the_key(name: str, raw: str) -> None:
    var = FIELDS[name].all_env[-1]
    with pytest.raises(ConfigError) as info:
        load_config(env={var: raw})
    assert info.value.key == var
    assert "Fix:" in str(info.value)


@pytest.mark.parametrize("raw", ["-5", "nan", "0"])
def test_redis_socket_timeout_from_the_issue(tmp_path: Path, raw: str) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(f"cloud_provider: onprem\nredis_host: r\nredis_socket_timeout: {raw}\n")
    with pytest.raises(ConfigError, match="redis_socket_timeout") as info:
        load_config(path, env={})
    assert "above 0" in str(info.value)


def test_booleans_are_not_numbers(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("cloud_provider: local\nredis_max_connections: true\n")
    with pytest.raises(ConfigError, match="redis_max_connections"):
        load_config(path, env={})


def test_numbers_in_range_load() -> None:
    config = load_config(env={"MODEL_ENGINE_INFRA_REDIS_SOCKET_TIMEOUT": "0.25", "REDIS_PORT": "65535"})
    assert (config.redis_socket_timeout, config.redis_port) == (0.25, 65535)
    assert not math.isnan(config.secret_cache_ttl_seconds)


# --- values that would only fail at first use ------------------------------------------------------------

AZURITE_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="


def _azure(**values: Any) -> InfraConfig:
    return InfraConfig(cloud_provider="azure", cache_redis_azure_host="c.redis.cache.windows.net:6380", **values)


def test_http_blob_endpoint_with_token_credentials_fails_at_load() -> None:
    env = {"MODEL_ENGINE_INFRA_CLOUD_PROVIDER": "azure", "ABS_ENDPOINT_URL": "http://127.0.0.1:10000/acct"}
    env |= {"ABS_ACCOUNT_NAME": "acct", "MODEL_ENGINE_INFRA_CACHE_REDIS_AZURE_HOST": "c.redis.cache.windows.net:6380"}
    with pytest.raises(ConfigError, match="ABS_ENDPOINT_URL") as info:
        load_config(env=env)
    assert "https" in str(info.value)
    load_config(env={**env, "ABS_ACCOUNT_KEY": AZURITE_KEY})  # an emulator over http with its key is fine
    load_config(env={**env, "ABS_ENDPOINT_URL": "https://acct.blob.core.windows.net"})


def test_the_sdk_really_refuses_http_with_a_token() -> None:
    """The rule above mirrors the SDK: an http endpoint with a token credential is its ValueError."""
    from azure.storage.blob import BlobServiceClient

    from model_engine_infra.testing.azure_identity import FakeTokenCredential

    with pytest.raises(ValueError, match="HTTPS"):
        BlobServiceClient("http://127.0.0.1:1/acct", credential=FakeTokenCredential())


def test_an_account_key_that_is_not_base64_fails_at_load_masked() -> None:
    canary = "not-base64-canary!!"
    config = _azure(abs_account_name="acct", abs_account_key=SecretStr(canary))
    with pytest.raises(ConfigError, match="not base64") as info:
        validate(config)
    assert canary not in str(info.value)
    validate(_azure(abs_account_name="acct", abs_account_key=SecretStr(AZURITE_KEY)))


@pytest.mark.parametrize("host", ["my_minio.svc", "-minio", "minio-.svc", "a" * 64 + ".svc"])
def test_endpoint_hosts_botocore_refuses_fail_at_load(host: str) -> None:
    url = f"http://{host}:9000"
    with pytest.raises(ValueError, match="Invalid endpoint"):  # what botocore would say on first use
        boto3.client("s3", endpoint_url=url, region_name="us-east-1", aws_access_key_id="a", aws_secret_access_key="b")
    for key in ("S3_ENDPOINT_URL", "AWS_ENDPOINT_URL_SQS"):
        with pytest.raises(ConfigError, match="not a valid DNS name") as info:
            load_config(env={key: url})
        assert info.value.key == key


@pytest.mark.parametrize("url", ["http://minio.ns.svc.cluster.local:9000", "http://10.0.0.5:9000", "http://[::1]:9000"])
def test_endpoint_hosts_botocore_accepts_load(url: str) -> None:
    boto3.client("s3", endpoint_url=url, region_name="us-east-1", aws_access_key_id="a", aws_secret_access_key="b")
    assert load_config(env={"S3_ENDPOINT_URL": url}).s3_endpoint_url == url


@pytest.mark.parametrize("region", ["us east 1", "us-east-1/", "-us", "x" * 64])
def test_a_region_botocore_refuses_fails_at_load(region: str) -> None:
    from botocore.exceptions import InvalidRegionError

    with pytest.raises(InvalidRegionError):
        boto3.client("sqs", region_name=region, aws_access_key_id="a", aws_secret_access_key="b")
    with pytest.raises(ConfigError, match="region"):
        validate(InfraConfig(default_region=region))


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("abs_account_name", "My_Account"),
        ("abs_account_name", "ab"),
        ("keyvault_name", "kv"),
        ("keyvault_name", "my_vault"),
        ("keyvault_name", "my--vault"),
        ("servicebus_namespace", "my namespace"),
        ("servicebus_namespace", "ns/evil"),
    ],
)
def test_azure_names_that_cannot_form_a_host_fail_at_load(field: str, value: str) -> None:
    with pytest.raises(ConfigError, match=field.split("_")[0]):
        validate(_azure(**{field: value}))


def test_good_azure_names_pass() -> None:
    validate(
        _azure(
            abs_account_name="mystorageaccount",
            keyvault_name="my-llm-engine-keyvault",
            servicebus_namespace="my-ns.servicebus.windows.net",
        )
    )


# --- siblings: other config-like input parsed at load or first use ----------------------------------------


def test_a_deeply_nested_sqs_template_is_a_config_error() -> None:
    env = {"MODEL_ENGINE_INFRA_CLOUD_PROVIDER": "aws", "MODEL_ENGINE_INFRA_CACHE_REDIS_AWS_URL": "redis://r:6379/0"}
    with pytest.raises(ConfigError, match="nested too deeply"):  # the SQS broker's template rule
        load_config(env={**env, "MODEL_ENGINE_INFRA_SQS_QUEUE_POLICY_TEMPLATE": "[" * 100_000})


@pytest.mark.parametrize(
    "content",
    ["[" * 100_000, "[1]", '"text"', '{"auths": ["x"]}', "\xff\xfe{}"],
    ids=["deep", "a-list", "a-string", "auths-a-list", "not-utf8"],
)
def test_a_malformed_docker_config_is_a_config_error(tmp_path: Path, content: str) -> None:
    from model_engine_infra.images.oci import docker_config_login

    path = tmp_path / "config.json"
    path.write_bytes(content.encode("latin-1"))
    with pytest.raises(ConfigError) as info:
        docker_config_login(str(path), "registry.example.com")
    assert info.value.key == "registry_auth_file"


def test_an_empty_docker_config_has_no_login(tmp_path: Path) -> None:
    from model_engine_infra.images.oci import docker_config_login

    path = tmp_path / "config.json"
    for content in ("{}", '{"auths": {}}'):
        path.write_text(content)
        assert docker_config_login(str(path), "registry.example.com") is None


@pytest.mark.parametrize(
    ("values", "key"),
    [
        ({"cache_redis_onprem_url": "redis://:pw@r:6379/zero"}, "cache_redis_onprem_url"),
        ({"cache_redis_gcp_url": "unix://"}, "cache_redis_gcp_url"),
        ({"redis_iam_auth": "elasticache", "redis_iam_cache_name": "c"}, "redis_iam_user"),
        ({"redis_iam_auth": "elasticache", "redis_iam_user": "u"}, "redis_iam_cache_name"),
        ({"redis_iam_auth": "memorystore", "cache_redis_azure_host": "c.redis.cache.windows.net:6380"}, "iam_auth"),
    ],
)
def test_redis_settings_that_failed_when_infra_redis_was_built_fail_at_load(values: dict[str, Any], key: str) -> None:
    config = InfraConfig(cloud_provider="onprem", **values)
    with pytest.raises(ConfigError, match=key) as info:
        validate(config)
    assert "pw" not in str(info.value)
