"""pytest plugin: session-scoped real servers (redis, moto, Azurite, fake-gcs-server, registry).

It also registers the testing kit's in-process fixtures (``infra_provider``, ``infra_config``,
``fake_infra``) from `model_engine_infra.testing.fixtures`; see docs/testing-kit.md.

Each fixture starts its server once per session in a ``tmp_path_factory`` folder and stops it at
the end. A server that is not installed skips the test on a developer's machine (with the install
command in the message) but fails it in CI, where a silently skipped integration suite would hide
a broken install step.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from typing import Literal, NoReturn

import pytest

from model_engine_infra.testing.fixtures import fake_infra, infra_config, infra_provider
from model_engine_infra.testing.servers import SERVERS, RunningServer, ServerUnavailableError

__all__ = [
    "azurite_server",
    "fake_infra",
    "gcs_server",
    "infra_config",
    "infra_provider",
    "missing_server_action",
    "moto_server",
    "redis_server",
    "registry_server",
    "report_missing_server",
    "require_server",
]


def missing_server_action(env: Mapping[str, str]) -> Literal["fail", "skip"]:
    """ "fail" when ``CI`` is ``true`` or ``1`` (any case), else "skip"."""
    return "fail" if env.get("CI", "").strip().lower() in {"true", "1"} else "skip"


def report_missing_server(name: str, err: ServerUnavailableError) -> NoReturn:
    """Skip (or, in CI, fail) the current test, saying how to install the missing server."""
    message = f"{name} server not available: {err}"
    if missing_server_action(os.environ) == "fail":
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


def require_server(name: str, tmp_path_factory: pytest.TempPathFactory) -> RunningServer:
    """Start server ``name`` (a key of ``SERVERS``) in a fresh temp folder, or skip/fail if not installed.

    The caller owns the returned server and must ``stop()`` it (or use it in a ``with`` block).
    """
    try:
        return SERVERS[name](tmp_path_factory.mktemp(name))
    except ServerUnavailableError as err:
        report_missing_server(name, err)


def _serve(name: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    with require_server(name, tmp_path_factory) as server:
        yield server


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    """redis-server, no password; ``.url`` is ``redis://127.0.0.1:PORT/0``."""
    yield from _serve("redis", tmp_path_factory)


@pytest.fixture(scope="session")
def moto_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    """moto_server; ``.env`` holds AWS_ENDPOINT_URL and test credentials for boto3."""
    yield from _serve("moto", tmp_path_factory)


@pytest.fixture(scope="session")
def azurite_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    """Azurite blob; ``.extra['connection_string']`` uses the well-known dev account."""
    yield from _serve("azurite", tmp_path_factory)


@pytest.fixture(scope="session")
def gcs_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    """fake-gcs-server; ``.env['STORAGE_EMULATOR_HOST']`` points google-cloud-storage at it."""
    yield from _serve("gcs", tmp_path_factory)


@pytest.fixture(scope="session")
def registry_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    """Anonymous Distribution registry over HTTP; ``.extra['registry']`` is ``127.0.0.1:PORT``."""
    yield from _serve("registry", tmp_path_factory)
