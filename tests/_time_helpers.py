"""Time that moves only when something sleeps: waits are observed, never spent.

:class:`FakeTime` is a clock plus a ``sleep`` that records each wait and moves the
clock (and any emulator given to it) forward by exactly that much. Code that takes
``sleep``/``clock`` arguments gets them directly (GraphClient); the init flow's wait
(``onboarding.acquire_with_wait``) gets them through :func:`fake_init_wait`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest


@dataclass
class FakeTime:
    """A clock (wall and monotonic in one) moved only by :meth:`sleep`, which records."""

    t: float = 1_800_000_000.0  # a whole second: HTTP dates have one-second resolution
    slept: list[float] = field(default_factory=list)
    emulators: list[Any] = field(default_factory=list)  # advanced along with the clock

    def sleep(self, seconds: float) -> None:
        assert seconds >= 0
        self.slept.append(seconds)
        self.t += seconds
        for emu in self.emulators:
            emu.advance(seconds)

    def clock(self) -> float:
        return self.t


def fake_init_wait(monkeypatch: pytest.MonkeyPatch, *emulators: Any) -> FakeTime:
    """Make init's propagation wait (``acquire_with_wait``, whose ``sleep`` and ``clock``
    are injectable) run on a :class:`FakeTime` that also advances ``emulators``' clocks:
    the emulator then sees the seconds pass that init believes it waited."""
    from graphkit import onboarding

    fake = FakeTime(emulators=list(emulators))
    defaults = onboarding.acquire_with_wait.__kwdefaults__
    assert defaults is not None and {"sleep", "clock"} <= set(defaults)
    monkeypatch.setitem(defaults, "sleep", fake.sleep)
    monkeypatch.setitem(defaults, "clock", fake.clock)
    return fake


def capture_emulators(monkeypatch: pytest.MonkeyPatch, into: list[Any]) -> None:
    """Append every Emulator started from now on (e.g. the demo's own) to ``into``."""
    from graphkit.emulator import Emulator

    real_start = Emulator.start

    def start(self: Any) -> Any:
        into.append(self)
        return real_start(self)

    monkeypatch.setattr(Emulator, "start", start)
