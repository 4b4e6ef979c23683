"""pytest fixtures of the testing kit: ``infra_provider``, ``infra_config`` and ``fake_infra``.

Registered by the package's pytest plugin, so a service's tests use them without a conftest::

    @pytest.mark.parametrize("fake_infra", ["aws", "local"], indirect=True)
    def test_predict_sends_a_task(fake_infra):
        ...

The provider comes from, in order: the fixture's own indirect parameter, a parameter of
``fake_infra`` (so ``infra_config`` agrees with it), the ``infra_provider`` fixture (which a test
may parametrize directly), else ``"local"``. Override ``infra_config`` in a conftest to change the
configuration (start from `fakes.fake_config`). Heavy imports happen inside the fixtures, so
loading the plugin costs nothing.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from ..config.model import InfraConfig
    from .fakes import FakeInfra

__all__ = ["fake_infra", "infra_config", "infra_provider"]

DEFAULT_PROVIDER = "local"


def _param(request: pytest.FixtureRequest) -> Any:
    return getattr(request, "param", None)


@pytest.fixture
def infra_provider(request: pytest.FixtureRequest) -> str:
    """The provider name the kit's fixtures build for (``"local"`` unless parametrized)."""
    return str(_param(request) or DEFAULT_PROVIDER)


@pytest.fixture
def infra_config(request: pytest.FixtureRequest, tmp_path: Path) -> InfraConfig:
    """A valid configuration of the chosen provider, with all state under the test's ``tmp_path``."""
    from .fakes import fake_config

    provider = _param(request)
    if provider is None:
        callspec = getattr(request.node, "callspec", None)
        provider = callspec.params.get("fake_infra") if callspec is not None else None
    if provider is None:
        provider = request.getfixturevalue("infra_provider")
    return fake_config(str(provider), tmp_path / "infra")


@pytest.fixture
def fake_infra(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[FakeInfra]:
    """An in-process `FakeInfra` for ``infra_config``'s provider, closed after the test."""
    from .fakes import fake_infra as build_fake_infra

    config: InfraConfig = request.getfixturevalue("infra_config")
    with build_fake_infra(config.cloud_provider, tmp_path / "infra", config=config) as infra:
        yield infra
