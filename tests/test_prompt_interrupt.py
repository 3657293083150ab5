"""Ctrl-C interrupts a prompt whenever it lands (graphkit.cli._prompt).

The flake this pins: init once ignored ^C at its upload prompt for 60 s under load.
CPython's ``input()`` acts on SIGINT only between bytecodes or when its blocking
``read()`` fails with EINTR. An interrupt recorded while no EINTR reaches that read is
not acted on until a line is typed. That happens when the ^C lands just before the
read starts, or when the signal is delivered to another thread. A thread calling
``PyErr_SetInterrupt`` (what the C signal handler does) while the main thread waits
at the prompt reproduces it every time.
"""

from __future__ import annotations

import os
import sys
import textwrap

import pytest

pexpect = pytest.importorskip("pexpect")

pytestmark = pytest.mark.skipif(os.name != "posix", reason="a pseudo-terminal is POSIX")

# The child answers a prompt on a pseudo-terminal, while a thread records an interrupt
# once the main thread is blocked waiting for the answer.
CHILD = textwrap.dedent(
    """
    import ctypes, os, signal, sys, threading, time
    from rich.console import Console
    from graphkit.cli import _prompt

    console = Console(stderr=True)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    main = threading.get_native_id()

    def blocked():
        # Linux tells whether the main thread sleeps in the kernel; elsewhere, wait.
        try:
            with open(f"/proc/self/task/{main}/stat") as fh:
                return fh.read().rsplit(")", 1)[1].split()[0] == "S"
        except OSError:
            time.sleep(0.5)
            return True

    def interrupt():
        while not blocked():
            time.sleep(0.01)
        ctypes.pythonapi.PyErr_SetInterrupt()
        print("RECORDED", flush=True)

    threading.Thread(target=interrupt, daemon=True).start()
    try:
        answer = READ
        print("ANSWER", repr(answer))
    except KeyboardInterrupt:
        print("INTERRUPTED")
    """
)


def _run(read: str) -> str:
    child = pexpect.spawn(
        sys.executable,
        ["-c", CHILD.replace("READ", read)],
        encoding="utf-8",
        timeout=60,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    )
    try:
        child.expect("RECORDED")
        # A reader that missed the interrupt still waits: this line would end it.
        index = child.expect(["INTERRUPTED", pexpect.TIMEOUT], timeout=30)
        if index == 1:
            child.sendline("typed")
            child.expect(pexpect.EOF)
            return "missed: " + child.before.strip()
        child.expect(pexpect.EOF)
        return "interrupted"
    finally:
        child.close(force=True)


def test_a_prompt_is_interrupted_while_it_waits_for_a_line() -> None:
    assert _run("_prompt.STDIN.readline()") == "interrupted"


@pytest.mark.parametrize(
    "read",
    [
        "_prompt.text(console, 'Tenant')",
        "_prompt.integer(console, 'Days', 365)",
        "_prompt.confirm(console, 'Test now', True)",
    ],
)
def test_the_prompts_init_asks_are_interrupted_too(read: str) -> None:
    assert _run(read) == "interrupted"


def test_an_answer_and_end_of_input_still_read_as_before() -> None:
    child = pexpect.spawn(
        sys.executable,
        [
            "-c",
            "from graphkit.cli._prompt import STDIN\n"
            "print('ANSWER', repr(STDIN.readline()))\n"
            "try:\n    STDIN.readline()\nexcept EOFError:\n    print('EOF')",
        ],
        encoding="utf-8",
        timeout=60,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    )
    try:
        child.sendline("work")
        child.expect("ANSWER 'work'")
        child.sendeof()
        child.expect("EOF")
        child.expect(pexpect.EOF)
    finally:
        child.close(force=True)
