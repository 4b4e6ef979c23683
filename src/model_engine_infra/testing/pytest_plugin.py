"""pytest plugin: session-scoped real servers and the testing kit's in-process fixtures.

Every fixture here starts with ``mei_`` (model-engine-infra), so none clashes with pytest-redis's
``redis_server`` or a project's own fixtures:

- ``mei_redis_server``, ``mei_moto_server``, ``mei_azurite_server``, ``mei_gcs_server``,
  ``mei_registry_server``: real local servers (`model_engine_infra.testing.servers`), one per
  session, each offering ``.config()`` / ``.env()`` that point the library at it;
- ``mei_fake_infra``, ``mei_infra_config``, ``mei_infra_provider``: a whole `Infra` per provider in
  the test process (`model_engine_infra.testing.fixtures`); see docs/testing-kit.md.

Each server starts in a ``tmp_path_factory`` folder and stops at the end of the session. A server
that is not installed skips the test on a developer's machine (with the install command in the
message) but fails it in CI, where a silently skipped integration suite would hide a broken install
step. Loading the plugin imports only pytest and the standard library; the SDKs, pydantic and the
library itself are imported when a fixture first runs.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from typing import Literal, NoReturn

import pytest

from model_engine_infra.testing.fixtures import mei_fake_infra, mei_infra_config, mei_infra_provider
from model_engine_infra.testing.servers import SERVERS, RunningServer, ServerUnavailableError

__all__ = [
    "mei_azurite_server",
    "mei_fake_infra",
    "mei_gcs_server",
    "mei_infra_config",
    "mei_infra_provider",
    "mei_moto_server",
    "mei_redis_server",
    "mei_registry_server",
    "missing_server_action",
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
def mei_redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    """redis-server, no password; ``.config()`` gives ``redis_host``/``redis_port``."""
    yield from _serve("redis", tmp_path_factory)


@pytest.fixture(scope="session")
def mei_moto_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    """moto_server; ``.config()`` gives the S3, SQS, ECR and Secrets Manager endpoints and S3 keys."""
    yield from _serve("moto", tmp_path_factory)


@pytest.fixture(scope="session")
def mei_azurite_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    """Azurite blob with the well-known dev account; ``.config()`` gives the ``abs_*`` keys."""
    yield from _serve("azurite", tmp_path_factory)


@pytest.fixture(scope="session")
def mei_gcs_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    """fake-gcs-server; ``.config()`` gives ``gcs_endpoint_url`` and ``gcp_project_id``."""
    yield from _serve("gcs", tmp_path_factory)


@pytest.fixture(scope="session")
def mei_registry_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    """Anonymous Distribution registry over HTTP; ``.config()`` gives ``docker_repo_prefix``."""
    yield from _serve("registry", tmp_path_factory)
