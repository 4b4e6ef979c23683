"""pytest fixtures of the testing kit: ``mei_infra_provider``, ``mei_infra_config`` and ``mei_fake_infra``.

Registered by the package's pytest plugin, so a service's tests use them without a conftest::

    @pytest.mark.parametrize("mei_fake_infra", ["aws", "local"], indirect=True)
    def test_predict_sends_a_task(mei_fake_infra):
        ...

The provider comes from, in order: the fixture's own indirect parameter, a parameter of
``mei_fake_infra`` (so ``mei_infra_config`` agrees with it), the ``mei_infra_provider`` fixture
(which a test may parametrize directly), else ``"local"``. Override ``mei_infra_config`` in a
conftest to change the configuration (start from `fakes.fake_config`). Heavy imports happen inside
the fixtures, so loading the plugin costs nothing.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from ..config.model import InfraConfig
    from .fakes import FakeInfra

__all__ = ["mei_fake_infra", "mei_infra_config", "mei_infra_provider"]

DEFAULT_PROVIDER = "local"


def _param(request: pytest.FixtureRequest) -> Any:
    return getattr(request, "param", None)


@pytest.fixture
def mei_infra_provider(request: pytest.FixtureRequest) -> str:
    """The provider name the kit's fixtures build for (``"local"`` unless parametrized)."""
    return str(_param(request) or DEFAULT_PROVIDER)


@pytest.fixture
def mei_infra_config(request: pytest.FixtureRequest, tmp_path: Path) -> InfraConfig:
    """A valid configuration of the chosen provider, with all state under the test's ``tmp_path``."""
    from .fakes import fake_config

    provider = _param(request)
    if provider is None:
        callspec = getattr(request.node, "callspec", None)
        provider = callspec.params.get("mei_fake_infra") if callspec is not None else None
    if provider is None:
        provider = request.getfixturevalue("mei_infra_provider")
    return fake_config(str(provider), tmp_path / "infra")


@pytest.fixture
def mei_fake_infra(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[FakeInfra]:
    """An in-process `FakeInfra` for ``mei_infra_config``'s provider, closed after the test."""
    from .fakes import fake_infra as build_fake_infra

    config: InfraConfig = request.getfixturevalue("mei_infra_config")
    with build_fake_infra(config.cloud_provider, tmp_path / "infra", config=config) as infra:
        yield infra
