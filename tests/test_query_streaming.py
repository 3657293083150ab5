"""`graphkit query --all` streams: json lines and CSV are written as items arrive, not
after the last page. No clocks: the tests look at what was written before the next item
(or the next page) could exist."""

from __future__ import annotations

import csv
import io
import json
import re
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest
from _onboarding_helpers import child_env
from conftest import SignedIn

from graphkit import output


class _Stop(Exception):
    """Raised by the source after its items: nothing after it may be needed to write them."""


def _watched_items(n: int, buf: io.StringIO, seen: list[int]) -> Iterator[dict[str, Any]]:
    """``n`` items; before handing out each one, records how many lines ``buf`` holds."""
    for i in range(n):
        seen.append(len(buf.getvalue().splitlines()))
        yield {"id": f"id-{i}", "displayName": f"User {i}"}
    seen.append(len(buf.getvalue().splitlines()))
    raise _Stop


@pytest.mark.parametrize(("fmt", "header_lines"), [("jsonl", 0), ("csv", 1)])
def test_writer_writes_each_item_before_asking_for_the_next(fmt: str, header_lines: int) -> None:
    buf = io.StringIO()
    seen: list[int] = []
    with pytest.raises(_Stop):
        output.write_items(_watched_items(3, buf, seen), fmt, buf, select="id,displayName")
    # When item k was asked for, the k items before it (and the CSV header) were written.
    assert seen == [header_lines, 1 + header_lines, 2 + header_lines, 3 + header_lines]
    text = buf.getvalue()
    if fmt == "jsonl":
        assert [json.loads(line)["id"] for line in text.splitlines()] == ["id-0", "id-1", "id-2"]
    else:
        rows = list(csv.reader(io.StringIO(text)))
        assert rows == [
            ["id", "displayName"],
            ["id-0", "User 0"],
            ["id-1", "User 1"],
            ["id-2", "User 2"],
        ]


def _snapshotted_items(n: int, buf: io.StringIO, seen: list[str]) -> Iterator[dict[str, Any]]:
    """Like :func:`_watched_items`, recording the whole text written so far."""
    for i in range(n):
        seen.append(buf.getvalue())
        yield {"id": f"id-{i}", "displayName": f"User {i}"}
    seen.append(buf.getvalue())
    raise _Stop


@pytest.mark.parametrize("fmt", ["json", "yaml"])
def test_json_and_yaml_write_each_item_before_asking_for_the_next(fmt: str) -> None:
    buf = io.StringIO()
    seen: list[str] = []
    with pytest.raises(_Stop):
        output.write_items(_snapshotted_items(3, buf, seen), fmt, buf, select="id,displayName")
    # When item k was asked for, every item before it was written out (its id and its
    # last field), and nothing of a later one.
    for k, text in enumerate(seen):
        assert [f"User {j}" in text for j in range(3)] == [j < k for j in range(3)], text
    # And the complete output is the format's whole list.
    full = io.StringIO()
    items = ({"id": f"id-{i}", "displayName": f"User {i}"} for i in range(3))
    output.write_items(items, fmt, full, select="id,displayName")
    if fmt == "json":
        assert json.loads(full.getvalue()) == [
            {"id": f"id-{i}", "displayName": f"User {i}"} for i in range(3)
        ]
    else:
        assert full.getvalue() == "".join(
            f"- id: id-{i}\n  displayName: User {i}\n" for i in range(3)
        )


_GUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


@pytest.mark.parametrize("fmt", ["jsonl", "csv", "json", "yaml"])
def test_first_page_reaches_the_pipe_before_the_second_page_arrives(
    signed_in_env: SignedIn, fmt: str
) -> None:
    emu = signed_in_env.emu
    env = child_env(signed_in_env.home, **signed_in_env.env)
    # What a user's shell gives: stdout to a pipe is block-buffered (8 KiB), and one
    # page of ids is smaller than that. graphkit itself must push each page out.
    env.pop("PYTHONUNBUFFERED", None)
    # The second Graph request (page 2) is held back; its log entry is written only once
    # it is answered. The delay only bounds how long a failing run takes.
    emu.add_fault("latency", endpoint="graph", every=2, times=1, delay=60)
    proc = subprocess.Popen(
        [sys.executable, "-m", "graphkit", "query", "/users", "--all", "--select", "id",
         "-o", fmt],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        # Read until page 1's 100 ids have arrived (each on a line of its own in every
        # format); a writer holding them back blocks here until page 2 is answered.
        lines: list[str] = []
        ids: list[str] = []
        while len(ids) < 100:
            line = proc.stdout.readline()
            assert line, "graphkit ended before the first page was written"
            lines.append(line)
            ids += _GUID.findall(line)
        answered = [e for e in emu.requests() if e["kind"] == "graph"]
        still_running = proc.poll() is None
    finally:
        proc.kill()
        proc.communicate()
    # All of page 1 was readable while page 2 had not been answered yet.
    assert len(answered) == 1, "the first page's items were held back until a later page"
    assert still_running
    assert len(set(ids)) == 100
    if fmt == "csv":
        assert lines[0] == "id\n"
    if fmt == "jsonl":
        assert [json.loads(line)["id"] for line in lines] == ids
    if fmt == "json":
        assert lines[0] == "[\n"
    if fmt == "yaml":
        assert all(line.startswith("- id: ") for line in lines)
