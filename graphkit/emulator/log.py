"""The request log: one entry per HTTP request the emulator answered (or dropped)."""

from __future__ import annotations

import threading
from typing import Any

__all__ = ["RequestLog"]

# Enough for any test or demo; the oldest entries go first beyond it, so a long-running
# `graphkit emulator serve` does not grow without bound.
MAX_ENTRIES = 20_000


class RequestLog:
    def __init__(self, max_entries: int = MAX_ENTRIES) -> None:
        self._lock = threading.Lock()
        self._entries: list[dict[str, Any]] = []
        self._max = max_entries
        self.total = 0

    def add(self, entry: dict[str, Any]) -> None:
        with self._lock:
            self.total += 1
            self._entries.append(entry)
            if len(self._entries) > self._max:
                del self._entries[: len(self._entries) - self._max]

    def entries(self) -> list[dict[str, Any]]:
        with self._lock:
            return [dict(e) for e in self._entries]

    def clear(self) -> None:
        with self._lock:
            self._entries = []
