"""pytest plugin: the Entra ID + Graph emulator as fixtures, for graphkit's tests and yours.

Registered as the ``graphkit`` pytest11 entry point, so installing graphkit is enough::

    def test_my_script(graphkit_emulator):
        emu = graphkit_emulator
        emu.upload_certificate(emu.default_app, my_cert)
        ...  # point your code at emu.authority_host / emu.graph_url, trust emu.ca_bundle

Fixtures:
    graphkit_emulator: a fresh emulator per test (250 users unless the test is marked
        ``@pytest.mark.graphkit_emulator(users=1000, seed=1, token_lifetime=600)``).
    graphkit_emulator_session: one emulator for the whole session (never reset for you).

This module is imported by every pytest run in an environment with graphkit installed,
so it imports nothing heavy at module level: the emulator is imported inside fixtures.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:  # pragma: no cover
    from graphkit.emulator import Emulator

_MARKER = "graphkit_emulator"
_OPTIONS = {"users", "seed", "token_lifetime", "propagation_delay", "domain"}


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        f"{_MARKER}(users=250, seed=0, token_lifetime=3599, propagation_delay=0, domain=...): "
        "options for the graphkit_emulator fixture",
    )


def _options(request: pytest.FixtureRequest) -> dict[str, Any]:
    marker = request.node.get_closest_marker(_MARKER)
    if marker is None:
        return {}
    if marker.args:
        raise pytest.UsageError(f"@pytest.mark.{_MARKER} takes keyword arguments only")
    unknown = set(marker.kwargs) - _OPTIONS
    if unknown:
        raise pytest.UsageError(
            f"@pytest.mark.{_MARKER}: unknown option(s) {', '.join(sorted(unknown))}; "
            f"use {', '.join(sorted(_OPTIONS))}"
        )
    return dict(marker.kwargs)


@pytest.fixture
def graphkit_emulator(request: pytest.FixtureRequest) -> Iterator[Emulator]:
    """A fresh, running emulator for one test; stopped afterwards."""
    from graphkit.emulator import Emulator

    with Emulator(**_options(request)) as emu:
        yield emu


@pytest.fixture(scope="session")
def graphkit_emulator_session() -> Iterator[Emulator]:
    """One running emulator shared by the session (call ``reset()`` yourself if needed)."""
    from graphkit.emulator import Emulator

    with Emulator() as emu:
        yield emu
