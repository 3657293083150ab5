"""Process-wide command-line state, importable before anything heavy (see ``graphkit.cli``)."""

from __future__ import annotations

import sys

__all__ = ["STATE", "interrupted"]


class _State:
    """The process's command-line state (a plain class: no dataclass cost at start-up)."""

    def __init__(self) -> None:
        self.debug = False  # --debug, wherever it was given
        self.interrupted_shown = False  # the one "interrupted" line has been printed


STATE = _State()


def interrupted(detail: str | None = None) -> None:
    """Print ``graphkit: error: interrupted[: detail]`` once per process (Ctrl-C)."""
    if STATE.interrupted_shown:
        return
    STATE.interrupted_shown = True
    line = "graphkit: error: interrupted" + (f": {detail}" if detail else "")
    try:
        sys.stderr.write(line + "\n")
        sys.stderr.flush()
    except (OSError, ValueError):  # stderr closed: nothing more to say
        pass
