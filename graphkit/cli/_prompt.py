"""Answers typed at a prompt, read so that Ctrl-C always interrupts the wait.

CPython's ``input()`` can miss a SIGINT. The signal's C handler only records it;
Python acts on it between bytecodes, or when a blocking system call fails with EINTR.
A ^C that lands after Python's last check and before ``input()`` blocks in ``read()``
therefore leaves the process blocked until a line is typed. graphkit once ignored ^C at
init's prompt for the 60 s a test allowed, under load, when the ^C came just as the
prompt appeared. Before reading, :func:`wait_for_input` waits in ``select()`` on the
terminal and on a signal wakeup pipe. The C handler writes to that pipe whenever the
signal lands, so the wait ends at once and the KeyboardInterrupt is raised.

Rich's prompts read through :data:`STDIN` (their ``stream=`` argument), so every prompt
graphkit asks in a terminal gets this wait.
"""

from __future__ import annotations

import contextlib
import os
import sys
from typing import IO, TYPE_CHECKING, Any, TextIO, cast

if TYPE_CHECKING:
    from rich.console import Console

__all__ = ["STDIN", "InterruptibleStdin", "confirm", "integer", "text", "wait_for_input"]


def wait_for_input(stream: IO[str] | None = None) -> None:
    """Return once ``stream`` (default: ``sys.stdin``) has a line to read; a signal
    that arrives meanwhile (whenever it lands) is acted on at once.

    This applies only to a terminal on POSIX, where a read returns one line at a time,
    so nothing can sit unseen in a buffer. Elsewhere (pipes, files, Windows consoles,
    another thread) it returns at once and the caller reads as before.
    """
    stream = sys.stdin if stream is None else stream
    if os.name != "posix" or stream is None:
        return
    try:
        fd = stream.fileno()
    except (AttributeError, OSError, ValueError):
        return
    if not os.isatty(fd):
        return
    import select
    import signal

    wake_r, wake_w = os.pipe()
    try:
        os.set_blocking(wake_w, False)
        try:
            previous = signal.set_wakeup_fd(wake_w, warn_on_full_buffer=False)
        except ValueError:  # not the main thread: signals are not ours to handle
            return
        try:
            while True:
                ready, _, _ = select.select([fd, wake_r], [], [])
                if fd in ready:
                    return
                # A signal landed. Its Python handler runs as select() returns, and
                # a KeyboardInterrupt leaves from there. Other signals wait on.
                with contextlib.suppress(BlockingIOError):
                    os.read(wake_r, 512)
        finally:
            signal.set_wakeup_fd(previous)
    finally:
        os.close(wake_r)
        os.close(wake_w)


class InterruptibleStdin:
    """What Rich's prompts read from (``stream=``): ``input()`` after
    :func:`wait_for_input`. Rich gets what ``input()`` would have given it: the line
    without its newline (an empty answer is ``""``, which Rich reads as "the
    default"), and EOFError at end of input."""

    def readline(self) -> str:
        wait_for_input()
        return input()


STDIN = cast("TextIO", InterruptibleStdin())


def text(console: Console, label: str, default: str | None = None) -> str:
    """Rich's ``Prompt.ask``, read through :data:`STDIN`."""
    from rich.prompt import Prompt

    if default is None:
        return Prompt.ask(label, console=console, stream=STDIN)
    return Prompt.ask(label, console=console, default=default, stream=STDIN)


def integer(console: Console, label: str, default: int) -> int:
    """Rich's ``IntPrompt.ask``, read through :data:`STDIN`."""
    from rich.prompt import IntPrompt

    return IntPrompt.ask(label, console=console, default=default, stream=STDIN)


def confirm(console: Console, label: str, default: bool, **kw: Any) -> bool:
    """Rich's ``Confirm.ask``, read through :data:`STDIN`."""
    from rich.prompt import Confirm

    return Confirm.ask(label, console=console, default=default, stream=STDIN, **kw)
