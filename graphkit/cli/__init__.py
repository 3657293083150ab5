"""The ``graphkit`` command line.

This package's own module is kept tiny on purpose: :func:`main` is entered before
Typer, Click or any command module is imported, so an interrupt during start-up
(Ctrl-C while the imports run) is reported like any other, as one
``graphkit: error: interrupted`` line and exit status 130, never as a traceback.
The application itself (the root group, the error mapping, the commands) lives in
:mod:`graphkit.cli._app`; ``graphkit.cli.app`` is resolved from there on first use. A
plain command line of a command listed in :mod:`graphkit.cli._direct` (``graphkit
query``: the warm path) runs without Typer, from the same option declarations.
"""

from __future__ import annotations

import sys
from typing import Any

__all__ = ["app", "main"]

INTERRUPTED = 130  # graphkit.errors.ExitCode.INTERRUPTED (not imported: start-up time)


def interruptible() -> None:
    """Make Ctrl-C (SIGINT) raise KeyboardInterrupt however graphkit was started.

    Python installs its SIGINT handler only when SIGINT is not already ignored, and a
    non-interactive shell starts its background jobs (``cmd &``, as some CI runners and
    ``make`` recipes do) with SIGINT ignored: Ctrl-C, or a test's SIGINT, then did nothing.
    """
    import contextlib

    try:
        # The C module under `signal`: the same call, without the enum classes `signal`
        # builds at import (a millisecond of every run, the warm query's included).
        import _signal as signal
    except ImportError:  # pragma: no cover  (another Python implementation)
        import signal

    # Outside the main thread (graphkit embedded in another program) signal() refuses.
    with contextlib.suppress(ValueError):
        signal.signal(signal.SIGINT, signal.default_int_handler)


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point: ``graphkit ARGS``; exits with the command's status."""
    interruptible()
    args = argv if argv is not None else sys.argv[1:]
    try:
        # A plain `graphkit query ...` runs (and exits) without Typer: the warm path.
        from graphkit.cli import _direct

        _direct.run(args)
        from graphkit.cli import _app

        _app.run(args)
    except KeyboardInterrupt:
        # Before the root group's own handler is in place (imports, argument parsing).
        from graphkit.cli._state import STATE, interrupted

        if STATE.debug:
            raise
        interrupted()
        sys.exit(INTERRUPTED)


def __getattr__(name: str) -> Any:
    if name == "app":
        from graphkit.cli._app import app

        return app
    raise AttributeError(f"module 'graphkit.cli' has no attribute {name!r}")
