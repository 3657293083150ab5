"""A throttling budget, as Microsoft Graph's identity and access service applies it.

Off by default. When on, each Graph request (each item of a ``$batch`` too) costs resource
units (RU) against sliding windows per application and tenant; a request that would go
over a limit is refused with 429 and a Retry-After saying when enough units come free, and
is not charged (it was not processed). Time is the emulator's clock, so tests move it with
``emu.advance`` instead of sleeping. Nothing here knows about HTTP beyond header names.

Source: microsoft-graph-docs ``throttling-limits.md``, "Identity and access service limits"
(PROTOCOL §10): the limits table, the base costs (``GET users`` 2, ``GET applications`` 2,
anything else 1; writes 1 and one write), the modifiers (``$select`` -1, ``$expand`` +1,
``$top`` under 20 -1, never below 1), the headers ``x-ms-resource-unit``,
``x-ms-throttle-limit-percentage`` (only above 0.8), ``x-ms-throttle-scope`` and
``x-ms-throttle-information`` on throttled answers.
"""

from __future__ import annotations

import collections
import math
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from graphkit.emulator.errors import GraphApiError

__all__ = ["SIZES", "Charge", "ThrottleBudget", "request_cost"]

# application+tenant pair, resource units per 10 seconds, by tenant size (S < 50 users,
# M 50-500, L > 500).
SIZES: dict[str, int] = {"small": 3500, "medium": 5000, "large": 8000}
RU_WINDOW = 10.0
# Write quota: 3,000 requests per 2 minutes 30 seconds per application+tenant pair.
WRITE_LIMIT, WRITE_WINDOW = 3000, 150.0
# Per application across tenants: 150,000 RU per 20 seconds.
APP_LIMIT, APP_WINDOW = 150_000, 20.0
_WRITES = frozenset({"POST", "PATCH", "PUT", "DELETE"})
_BASE_COST = {("GET", "users"): 2, ("GET", "applications"): 2}


def tenant_size(users: int) -> str:
    """throttling-limits.md note: S under 50 users, M 50 to 500, L above 500."""
    return "small" if users < 50 else ("medium" if users <= 500 else "large")


def request_cost(method: str, path: str, query: Mapping[str, str]) -> int:
    """The resource units a request costs (``path`` without the version, e.g. ``users``)."""
    cost = _BASE_COST.get((method.upper(), path.strip("/").lower()), 1)
    names = {k.lower(): v for k, v in query.items()}
    if "$select" in names:
        cost -= 1
    if "$expand" in names:
        cost += 1
    top = names.get("$top", "").strip()
    if top.isdigit() and int(top) < 20:
        cost -= 1
    return max(cost, 1)


@dataclass
class _Window:
    """Units spent in the last ``length`` seconds (a deque of (time, units))."""

    limit: int
    length: float
    spent: collections.deque[tuple[float, int]] = field(default_factory=collections.deque)
    total: int = 0

    def _expire(self, now: float) -> None:
        while self.spent and self.spent[0][0] <= now - self.length:
            self.total -= self.spent.popleft()[1]

    def room_at(self, now: float, units: int) -> float:
        """0 if ``units`` fit now, else the seconds until they will."""
        self._expire(now)
        if self.total + units <= self.limit:
            return 0.0
        excess = self.total + units - self.limit
        freed = 0
        for t, u in self.spent:
            freed += u
            if freed >= excess:
                return max(t + self.length - now, 0.001)
        return self.length  # more than the whole limit: wait a full window (never fits)

    def take(self, now: float, units: int) -> None:
        self.spent.append((now, units))
        self.total += units


@dataclass
class Charge:
    """What one request was charged, and the headers its answer carries."""

    units: int
    headers: dict[str, str]


def _seconds(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:.3f}".rstrip("0")


class ThrottleBudget:
    """The budget's settings and windows.

    Args:
        clock: the emulator's clock (``backend.now``).
        budget: ``None``/"off" (no throttling), "auto" (by the tenant's number of users),
            "small", "medium", "large", or an explicit number of RU per ``window``.
        window: seconds of the RU window (10 as Graph's; an explicit budget may differ).
    """

    def __init__(
        self, clock: Callable[[], float], budget: Any = None, window: float = RU_WINDOW
    ) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self.configure(budget, window)

    # -- settings

    def configure(self, budget: Any = None, window: float | None = None) -> None:
        """Change the budget (see the class); the windows start empty.

        Raises:
            ValueError: not a budget this knows.
        """
        if isinstance(budget, str):
            budget = budget.strip().lower()
            if budget.isdigit():
                budget = int(budget)
        if budget in (None, "", "off", "none", False):
            budget = None
        elif isinstance(budget, bool) or not (
            budget in ("auto", *SIZES) or (isinstance(budget, int) and budget > 0)
        ):
            raise ValueError(
                f"unknown throttling budget {budget!r}: use off, auto, small, medium, large "
                "or a positive number of resource units"
            )
        length = float(window if window is not None else getattr(self, "window", RU_WINDOW))
        if not length > 0:
            raise ValueError("the throttling window must be a positive number of seconds")
        with self._lock:
            self.budget: Any = budget
            self.window = length
            self._windows: dict[tuple[str, ...], _Window] = {}
            self.throttled = 0
            self.charged = 0

    @property
    def enabled(self) -> bool:
        return self.budget is not None

    def limit_for(self, users: int) -> int:
        if isinstance(self.budget, int):
            return self.budget
        size = tenant_size(users) if self.budget == "auto" else str(self.budget)
        return SIZES[size]

    def settings(self) -> dict[str, Any]:
        return {"budget": self.budget if self.enabled else "off", "window": self.window}

    def usage(self) -> list[dict[str, Any]]:
        """Units spent now per application and tenant (for a load test's report)."""
        now = self._clock()
        with self._lock:
            out = []
            for key, w in sorted(self._windows.items()):
                w._expire(now)
                if key[0] == "ru":
                    out.append(
                        {
                            "client_id": key[1],
                            "tenant_id": key[2],
                            "used": w.total,
                            "limit": w.limit,
                            "window": w.length,
                        }
                    )
            return out

    def stats(self) -> dict[str, Any]:
        return {
            **self.settings(),
            "charged": self.charged,
            "throttled": self.throttled,
            "usage": self.usage(),
        }

    # -- charging

    def _window(self, key: tuple[str, ...], limit: int, length: float) -> _Window:
        w = self._windows.get(key)
        if w is None or w.limit != limit:
            w = self._windows[key] = _Window(limit, length)
        return w

    def charge(
        self,
        *,
        client_id: str,
        tenant_id: str,
        users: int,
        method: str,
        path: str,
        query: Mapping[str, str],
    ) -> Charge | None:
        """Charge one request, or refuse it.

        Returns:
            None when the budget is off, else the :class:`Charge` (its headers go on the
            answer).
        Raises:
            GraphApiError: 429 ``Request_ThrottledTemporarily`` with Retry-After and the
                throttle headers, when a limit would be exceeded.
        """
        if self.budget is None:
            return None
        units = request_cost(method, path, query)
        write = method.upper() in _WRITES
        now = self._clock()
        with self._lock:
            limit = self.limit_for(users)
            pair = self._window(("ru", client_id, tenant_id), limit, self.window)
            checks: list[tuple[_Window, int, str, str]] = [
                (
                    pair,
                    units,
                    f"Tenant_Application/ReadWrite/{client_id}/{tenant_id}",
                    "ResourceUnitLimitExceeded",
                ),
                (
                    self._window(("app", client_id), APP_LIMIT, APP_WINDOW),
                    units,
                    f"Application/ReadWrite/{client_id}/{tenant_id}",
                    "ResourceUnitLimitExceeded",
                ),
            ]
            if write:
                checks.append(
                    (
                        self._window(("write", client_id, tenant_id), WRITE_LIMIT, WRITE_WINDOW),
                        1,
                        f"Tenant_Application/Write/{client_id}/{tenant_id}",
                        "WriteLimitExceeded",
                    )
                )
            for w, n, scope, info in checks:
                wait = w.room_at(now, n)
                if wait > 0:
                    self.throttled += 1
                    raise _throttled(wait, units, scope, info, w)
            for w, n, _, _ in checks:
                w.take(now, n)
            self.charged += 1
            headers = {"x-ms-resource-unit": str(units)}
            used = pair.total / pair.limit
            if used > 0.8:
                headers["x-ms-throttle-limit-percentage"] = f"{used:.2f}"
            return Charge(units, headers)


def _throttled(wait: float, units: int, scope: str, info: str, w: _Window) -> GraphApiError:
    seconds = math.ceil(wait * 1000) / 1000
    headers = {
        "Retry-After": _seconds(seconds),
        "x-ms-resource-unit": str(units),
        "x-ms-throttle-scope": scope,
        "x-ms-throttle-information": info,
        "x-ms-throttle-limit-percentage": f"{min((w.total + units) / w.limit, 1.8):.2f}",
    }
    # The code and words are Azure AD's (its error table: "Your request is throttled
    # temporarily. Please try after {0} seconds."); the status is Graph's 429.
    return GraphApiError(
        429,
        "Request_ThrottledTemporarily",
        f"Your request is throttled temporarily. Please try after {math.ceil(seconds)} seconds.",
        headers,
    )
