"""Child processes and ports whose state the test decides, not the runner.

- :func:`graphkit_argv`: the command line of a ``python -m graphkit`` child that starts
  with SIGINT in a state the test chose. A child inherits an ignored SIGINT across
  ``exec`` (a background job of a non-interactive shell, as some CI runners start the
  test run, ignores it), so a test that sends a signal says which state it means.
- :func:`refused_port`: a loopback port that refuses connections for as long as it is
  held (bound, never listening: no other process can take it meanwhile).
- :func:`reserved_port`: a port for a server to bind itself (``--port N``): held with
  ``SO_REUSEADDR`` until the server has bound it, so nothing else can take it between
  "this port is free" and the server's bind.
"""

from __future__ import annotations

import contextlib
import socket
import sys
from collections.abc import Iterator

SIGINT_STATES = ("default", "ignored")
_DISPOSITION = {"default": "SIG_DFL", "ignored": "SIG_IGN"}


def graphkit_argv(*args: str, sigint: str = "default") -> list[str]:
    """``python -m graphkit ARGS`` whose process starts with SIGINT ``default`` or
    ``ignored``: a small launcher sets the disposition and ``exec``s graphkit (same pid;
    no ``preexec_fn``, which is unsafe in a process running threads)."""
    code = (
        "import os, signal, sys; "
        f"signal.signal(signal.SIGINT, signal.{_DISPOSITION[sigint]}); "
        "os.execv(sys.executable, [sys.executable, '-m', 'graphkit', *sys.argv[1:]])"
    )
    return [sys.executable, "-c", code, *args]


@contextlib.contextmanager
def refused_port(host: str = "127.0.0.1") -> Iterator[int]:
    """A port on ``host`` where a connection is refused while the block runs."""
    with socket.socket() as holder:
        holder.bind((host, 0))  # bound, not listening: the kernel answers RST
        yield int(holder.getsockname()[1])


@contextlib.contextmanager
def reserved_port(host: str = "127.0.0.1") -> Iterator[int]:
    """A free port that only an ``SO_REUSEADDR`` server (the emulator is one) can bind
    while the block runs; leave the block once the server listens."""
    with socket.socket() as holder:
        holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        holder.bind((host, 0))
        yield int(holder.getsockname()[1])
