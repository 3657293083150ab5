"""Faults injected on request: throttling, outages, resets, latency, truncated bodies.

A fault applies to one endpoint kind (``graph``, ``token``, ``any``, or ``batch`` for the
items inside a Graph ``$batch``: each item may be throttled with its own Retry-After), and
fires on
every Nth matching request (``every=N``) or at a seeded probability
(``probability=p, seed=s``), optionally at most ``times`` times. Counting is exact and
thread-safe, so a test can assert precisely which requests were hit.
"""

from __future__ import annotations

import random
import threading
from dataclasses import dataclass, field
from typing import Any

__all__ = ["ENDPOINTS", "KINDS", "Fault", "FaultInjector"]

KINDS = ("429", "503", "504", "reset", "latency", "truncate")
ENDPOINTS = ("graph", "token", "any", "batch")
# Inside a $batch there is no connection to reset or body to cut: statuses and latency only.
BATCH_KINDS = ("429", "503", "504", "latency")
STATUS = {"429": 429, "503": 503, "504": 504}


@dataclass
class Fault:
    """One configured fault and its counters."""

    id: int
    kind: str
    endpoint: str = "graph"
    every: int | None = None
    probability: float | None = None
    seed: int | None = None
    times: int | None = None
    retry_after: float | None = None  # 429/503/504: Retry-After seconds (may be fractional)
    delay: float = 0.0  # latency: seconds added before answering
    matched: int = 0  # matching requests seen
    injected: int = 0  # times it fired
    _rng: random.Random = field(default_factory=random.Random, repr=False)

    def applies_to(self, kind: str) -> bool:
        # "any" covers the services' HTTP requests: not the admin API, not $batch items.
        if kind in ("admin", "batch"):
            return self.endpoint == kind
        if self.endpoint == "any":
            return True
        return self.endpoint == kind

    def exhausted(self) -> bool:
        return self.times is not None and self.injected >= self.times

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "kind": self.kind,
            "endpoint": self.endpoint,
            "every": self.every,
            "probability": self.probability,
            "seed": self.seed,
            "times": self.times,
            "retry_after": self.retry_after,
            "delay": self.delay,
            "matched": self.matched,
            "injected": self.injected,
        }

    @property
    def status(self) -> int | None:
        return STATUS.get(self.kind)


def _format_seconds(value: float) -> str:
    """``1`` for whole seconds, ``1.5`` otherwise (Graph sends both forms)."""
    return str(int(value)) if float(value).is_integer() else repr(float(value))


class FaultInjector:
    """The configured faults; :meth:`select` decides what happens to one request."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._faults: list[Fault] = []
        self._next_id = 1

    def add(
        self,
        kind: str,
        *,
        endpoint: str = "graph",
        every: int | None = None,
        probability: float | None = None,
        seed: int | None = None,
        times: int | None = None,
        retry_after: float | None = None,
        delay: float | None = None,
    ) -> Fault:
        """Configure a fault.

        Raises:
            ValueError: an unknown kind or endpoint, or a bad trigger.
        """
        kind = str(kind)
        if kind not in KINDS:
            raise ValueError(f"unknown fault kind {kind!r}; use one of {', '.join(KINDS)}")
        if endpoint not in ENDPOINTS:
            raise ValueError(f"unknown endpoint {endpoint!r}; use one of {', '.join(ENDPOINTS)}")
        if endpoint == "batch" and kind not in BATCH_KINDS:
            raise ValueError(f"a $batch item fault must be one of {', '.join(BATCH_KINDS)}")
        if (every is None) == (probability is None):
            raise ValueError("give exactly one trigger: every=N or probability=p")
        if every is not None and (isinstance(every, bool) or int(every) < 1):
            raise ValueError("every must be a positive integer")
        if probability is not None and not 0.0 <= float(probability) <= 1.0:
            raise ValueError("probability must be between 0 and 1")
        if times is not None and int(times) < 0:
            raise ValueError("times cannot be negative")
        if retry_after is not None and float(retry_after) < 0:
            raise ValueError("retry_after cannot be negative")
        if kind == "latency" and (delay is None or float(delay) < 0):
            raise ValueError("a latency fault needs delay=seconds (>= 0)")
        with self._lock:
            fault = Fault(
                id=self._next_id,
                kind=kind,
                endpoint=endpoint,
                every=int(every) if every is not None else None,
                probability=float(probability) if probability is not None else None,
                seed=seed,
                times=int(times) if times is not None else None,
                retry_after=float(retry_after) if retry_after is not None else None,
                delay=float(delay or 0.0),
                _rng=random.Random(seed),  # nosec B311  # reproducible fault timing, not a secret
            )
            self._next_id += 1
            self._faults.append(fault)
            return fault

    def remove(self, fault_id: int) -> bool:
        with self._lock:
            before = len(self._faults)
            self._faults = [f for f in self._faults if f.id != fault_id]
            return len(self._faults) != before

    def clear(self) -> None:
        with self._lock:
            self._faults = []

    def list(self) -> list[dict[str, Any]]:
        with self._lock:
            return [f.to_dict() for f in self._faults]

    def select(self, kind: str) -> tuple[float, Fault | None]:
        """For one request of ``kind``: seconds of added latency, and the fault to apply.

        Every matching fault counts the request; latency faults add up, and the first
        other fault that fires is the one applied (a later one that would also fire does
        not count it as injected).
        """
        delay = 0.0
        chosen: Fault | None = None
        with self._lock:
            for fault in self._faults:
                if not fault.applies_to(kind) or fault.exhausted():
                    continue
                fault.matched += 1
                if fault.every is not None:
                    fires = fault.matched % fault.every == 0
                else:
                    fires = fault._rng.random() < (fault.probability or 0.0)
                if not fires:
                    continue
                if fault.kind == "latency":
                    fault.injected += 1
                    delay += fault.delay
                elif chosen is None:
                    fault.injected += 1
                    chosen = fault
        return delay, chosen


def retry_after_header(fault: Fault) -> dict[str, str]:
    if fault.retry_after is None:
        return {}
    return {"Retry-After": _format_seconds(fault.retry_after)}
