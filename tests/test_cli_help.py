"""Every command's help ends with two or three examples that parse, and the command
lists show each command's whole first sentence (Click cut them at 45 columns)."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys

import pytest

from graphkit.cli._examples import EXAMPLES


def _graphkit(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "graphkit", *args],
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
        env={"COLUMNS": "80", "PATH": "/usr/bin:/bin"},
    )


def _listed(help_text: str) -> dict[str, str]:
    """``{command: its text}`` from a help's Commands section (wrapped lines joined)."""
    section = help_text.split("Commands:", 1)[1]
    rows: dict[str, str] = {}
    name = None
    for line in section.splitlines():
        m = re.match(r"^  (\S+)\s{2,}(.*)$", line)
        if m:
            name = m.group(1)
            rows[name] = m.group(2).strip()
        elif name and line.startswith("   "):
            rows[name] += " " + line.strip()
    return rows


COMMANDS = sorted(EXAMPLES)


def test_every_command_has_examples() -> None:
    names: set[str] = set()
    for name in _listed(_graphkit("--help").stdout):
        group = _graphkit(name, "--help").stdout
        if "Commands:" in group:  # a group (config, emulator, app...): its commands
            names |= {f"{name} {n}" for n in _listed(group)}
        else:
            names.add(name)
    assert names == set(EXAMPLES)


@pytest.mark.parametrize("name", COMMANDS)
def test_help_ends_with_examples_that_parse(name: str) -> None:
    r = _graphkit(*name.split(), "--help")
    assert r.returncode == 0, r.stderr
    tail = r.stdout.rstrip().split("Examples:")
    assert len(tail) == 2, r.stdout
    lines = [ln.strip() for ln in tail[1].strip().splitlines()]
    assert 2 <= len(lines) <= 3 or name in ("config use", "config delete"), lines
    for line in lines:
        command = re.search(r"graphkit [^)>]*", line)
        assert command, line
        args = shlex.split(command.group(0))[1:]
        check = _graphkit(*args, "--help")  # options are checked before --help runs
        assert check.returncode == 0, (line, check.stderr)


@pytest.mark.parametrize("group", [(), ("config",), ("emulator",)])
def test_command_lists_show_whole_first_sentences(group: tuple[str, ...]) -> None:
    listed = _listed(_graphkit(*group, "--help").stdout)
    assert listed
    for name, text in listed.items():
        assert not text.endswith("..."), (name, text)
        if (*group, name) in (("config",), ("emulator",)):
            continue
        own = _graphkit(*group, name, "--help").stdout
        body = " ".join(own.split("\n\n", 1)[1].split())  # after the Usage line
        assert body.startswith(text), (name, text, body[:200])
        assert text.endswith("."), (name, text)
