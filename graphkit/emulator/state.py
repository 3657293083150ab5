"""Keeping an emulator's state in a directory across restarts (``--state-dir``).

``state.json`` holds the backend's snapshot (:meth:`Backend.export_state`) and the port;
``tls.json`` and ``ca.pem`` the TLS material (:func:`graphkit.emulator.tls.load_or_mint`).
Every write is atomic (:func:`graphkit.files.atomic_write`), so a crash leaves the previous
state or the new one, never half of one; a snapshot identical to the last one written is
not written again. Nothing here knows about HTTP.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

__all__ = ["STATE_FILE", "StateStore"]

STATE_FILE = "state.json"


class StateStore:
    """One state directory. Raises ValueError for a directory others could tamper with."""

    def __init__(self, directory: str | Path):
        from graphkit.files import ensure_private_dir, not_private

        self.directory = Path(directory).expanduser().absolute()
        ensure_private_dir(self.directory)
        problem = not_private(self.directory)
        if problem:
            raise ValueError(f"state directory {self.directory} is {problem}")
        self.path = self.directory / STATE_FILE
        self._lock = threading.Lock()
        self._last: bytes | None = None

    def load(self) -> dict[str, Any] | None:
        """The stored snapshot, or None when there is none yet.

        Raises:
            ValueError: the file is not private to this user, or not JSON.
        """
        from graphkit.files import read_private

        if not self.path.exists():
            return None
        raw = read_private(self.path)
        if raw is None:
            raise ValueError(f"{self.path} is not a private regular file of this user")
        try:
            data = json.loads(raw)
        except ValueError:
            raise ValueError(f"{self.path} is not JSON (damaged?)") from None
        if not isinstance(data, dict):
            raise ValueError(f"{self.path} does not hold an emulator state")
        self._last = raw
        return data

    def save(self, data: dict[str, Any]) -> bool:
        """Write ``data`` atomically unless it is what was last written; True if written."""
        from graphkit.files import PRIVATE, atomic_write

        raw = json.dumps(data, sort_keys=True, separators=(",", ":")).encode()
        with self._lock:
            if raw == self._last:
                return False
            atomic_write(self.path, raw, mode=PRIVATE, force=True)
            self._last = raw
            return True
