"""Passwords in URLs (issue 14, "Secrets"): never handed to an SDK, never shown, whatever the whitespace.

A canary password is put in every URL key and looked for in: ``repr``, log records at DEBUG
(botocore's included), exception text with its whole ``__cause__``/``__context__`` chain, ``config
show``, ``config check --json``, ``storage ls`` and ``doctor --json``.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
from typer.testing import CliRunner

from model_engine_infra import load_config
from model_engine_infra.cli import app
from model_engine_infra.config import InfraConfig
from model_engine_infra.config.first_use import CREDENTIALS_INSTEAD
from model_engine_infra.errors import ConfigError
from model_engine_infra.ops.doctor import _outcome
from model_engine_infra.redact import redact_text, redact_url, scrub_exception_chain
from model_engine_infra.storage.s3 import make_client

CANARY = "Canary-Pw-93c1"
runner = CliRunner()
WHITESPACE = ["", "\n", "\r\n", " ", "\t", "  \n\t"]


def chain_text(err: BaseException) -> str:
    """Every message and repr in the exception's chain."""
    parts: list[str] = []
    seen: set[int] = set()
    current: BaseException | None = err
    pending = [err]
    while pending:
        current = pending.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        parts += [str(current), repr(current)]
        pending += [current.__cause__, current.__context__]  # type: ignore[list-item]
    return "\n".join(parts)


def run_cli(*args: str, env: dict[str, str] | None = None) -> tuple[int, str]:
    base = {"ML_INFRA_SERVICES_CONFIG_PATH": "", "DEPLOY_SERVICE_CONFIG_PATH": "", "COLUMNS": "250"}
    result = runner.invoke(app, list(args), env={**base, **(env or {})})
    return result.exit_code, result.output + (repr(result.exception) if result.exception else "")


@pytest.fixture
def debug_logs(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.DEBUG)
    for name in ("botocore", "boto3", "urllib3", "azure", "model_engine_infra"):
        logging.getLogger(name).setLevel(logging.DEBUG)
    return caplog


def assert_no_canary(*texts: str) -> None:
    for text in texts:
        flattened = "".join(text.split())  # a password split by a newline is still shown
        assert CANARY not in flattened, text


@pytest.mark.parametrize("space", WHITESPACE, ids=repr)
@pytest.mark.parametrize("name", sorted(CREDENTIALS_INSTEAD))
def test_sdk_endpoint_with_userinfo_is_refused_at_load_and_masked(
    tmp_path: Path, debug_logs: pytest.LogCaptureFixture, name: str, space: str
) -> None:
    url = f"http://user:{CANARY}@minio.internal:9000{space}"
    path = tmp_path / "c.yaml"
    path.write_text(json.dumps({"cloud_provider": "onprem", name: url}))
    with pytest.raises(ConfigError) as info:
        load_config(path, env={})
    assert name in str(info.value)
    assert "***" in str(info.value)
    assert_no_canary(chain_text(info.value), debug_logs.text)


@pytest.mark.parametrize("host", ["minio.internal", "my_minio.svc"])
def test_s3_client_is_never_built_from_a_url_with_userinfo(debug_logs: pytest.LogCaptureFixture, host: str) -> None:
    config = InfraConfig(cloud_provider="onprem", s3_endpoint_url=f"http://user:{CANARY}@{host}:9000\n")
    with pytest.raises(ConfigError) as info:
        make_client(config)
    assert_no_canary(chain_text(info.value), debug_logs.text, repr(config))


def test_a_host_botocore_refuses_is_a_config_error_without_its_chain(debug_logs: pytest.LogCaptureFixture) -> None:
    config = InfraConfig(cloud_provider="onprem", s3_endpoint_url="http://my_minio.svc:9000")
    with pytest.raises(ConfigError, match="not a valid DNS name") as info:
        make_client(config)
    assert info.value.__cause__ is None


@pytest.mark.parametrize(
    "command",
    [["storage", "ls", "s3://bucket/x"], ["doctor", "--json"], ["config", "show"], ["config", "check", "--json"]],
)
def test_cli_output_never_shows_the_password(tmp_path: Path, command: list[str]) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(f'cloud_provider: onprem\nredis_host: r\ns3_endpoint_url: "http://user:{CANARY}@my_minio.svc\\n"\n')
    code, out = run_cli(*command, "--config", str(path))
    assert code != 0
    assert_no_canary(out)


@pytest.mark.parametrize("space", WHITESPACE, ids=repr)
def test_repr_and_config_show_mask_plain_url_keys_whatever_the_whitespace(tmp_path: Path, space: str) -> None:
    url = f"http://admin:{CANARY}@prom:9090{space}"
    config = InfraConfig(prometheus_server_address=url, registry_endpoint_url="https://reg:5000")
    assert_no_canary(repr(config), str(config))
    path = tmp_path / "c.yaml"
    path.write_text(json.dumps({"cloud_provider": "local", "prometheus_server_address": url}))
    code, out = run_cli("config", "show", "--config", str(path))
    assert code == 0, out
    assert_no_canary(out)
    assert "admin:***@prom:9090" in out


@pytest.mark.parametrize(
    "url",
    [
        f"http://user:{CANARY}@host",
        f"http://user:{CANARY}@host\n",
        f" http://user:{CANARY}@host:9000/path",
        f"http://user:{CANARY[:4]}\n{CANARY[4:]}@host",
        f"HTTP://user:{CANARY}@host",
        f"user:{CANARY}@host:9000",
        f"http://us/er:{CANARY}@host",
        f"http://user:{CANARY}/x@host",
        f"http://user:{CANARY}#x@host",
        f"http://user:{CANARY}?x@host",
        f"http://user:{CANARY}@x@host",
        f"http://user:{CANARY}@[::1",
        f"https://{CANARY}@github.com/org/repo",
        f"http://host/?x=1&token={CANARY}",
        f"http://host/#access_token={CANARY}",
        f"redis://:{CANARY}@redis:6379/0",
    ],
    ids=repr,
)
def test_redact_url_masks_every_shape(url: str) -> None:
    shown = redact_url(url)
    assert_no_canary(shown)
    assert "***" in shown


@pytest.mark.parametrize(
    "url",
    ["http://host:9000/bucket", "redis://redis:6379/0", "https://h/p?x=1#frag", "http://host/?email=a@b.c"],
)
def test_redact_url_leaves_urls_without_secrets_alone(url: str) -> None:
    assert redact_url(url) == url


def test_redact_text_and_scrubbing_a_foreign_chain() -> None:
    try:
        try:
            raise ValueError(f"Invalid endpoint: http://u:{CANARY}@my_minio.svc:9000")
        except ValueError as inner:
            raise RuntimeError(f"while building the client for http://u:{CANARY}@h") from inner
    except RuntimeError as err:
        scrub_exception_chain(err)
        assert_no_canary(chain_text(err))
    assert_no_canary(redact_text(f"see 'http://a:{CANARY}@x' and <https://b:{CANARY}@y/z>"))


def test_the_doctor_scrubs_a_probes_exception() -> None:
    def probe() -> str:
        raise ValueError(f"Invalid endpoint: http://user:{CANARY}@my_minio.svc")

    result = _outcome("storage", probe, "check the endpoint", 0.0)
    assert result.verdict == "fail"
    assert "Invalid endpoint" in result.message
    assert_no_canary(result.message)
