"""`graphkit query` tables through the real command: on a terminal of 40 and 200
columns (a pty), piped, with NO_COLOR, empty, streamed as pages arrive, and counted.

Never a dropped column or a cut value without a note on stderr; never a cut id.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from _auth_helpers import ENV_VARS, emulator_env

from graphkit import crypto

pexpect = pytest.importorskip("pexpect")

GUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
SGR = re.compile(r"\x1b\[[0-9;]*m")
CONTROL = re.compile(r"\r\x1b\[K|\x1b\[[0-9;]*[A-Za-z]")


@pytest.fixture(scope="module")
def client_pem(tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, Path]:
    key = crypto.generate_private_key(2048)
    cert = crypto.self_sign(key, crypto.parse_subject(cn="graphkit-table-tests"))
    pem = tmp_path_factory.mktemp("ident") / "client.pem"
    pem.write_bytes(crypto.dump_combined_pem(key, cert))
    pem.chmod(0o600)
    return cert, pem


@pytest.fixture
def env(graphkit_emulator: Any, client_pem: tuple[Any, Path], tmp_path: Path) -> dict[str, str]:
    cert, pem = client_pem
    graphkit_emulator.upload_certificate(graphkit_emulator.default_app, cert)
    base = {
        k: v
        for k, v in os.environ.items()
        if k not in ENV_VARS and k not in ("NO_COLOR", "COLUMNS", "LINES")
    }
    return {**base, **emulator_env(graphkit_emulator, pem, tmp_path / "home")}


def _tty(env: dict[str, str], width: int, *args: str, no_color: bool = False) -> str:
    """The command on a terminal ``width`` columns wide: what the terminal received."""
    run_env = dict(env)
    if no_color:
        run_env["NO_COLOR"] = "1"
    child = pexpect.spawn(
        sys.executable,
        ["-m", "graphkit", "query", *args],
        env=run_env,
        encoding="utf-8",
        dimensions=(50, width),
        timeout=90,
    )
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0, child.before
    return str(child.before)


def _screen_lines(text: str) -> list[str]:
    """Lines as shown, without the progress line (rewritten in place) and colour."""
    text = text.replace("\r\n", "\n").replace("\r\x1b[K", "\n")
    lines = [CONTROL.sub("", ln) for ln in text.split("\n")]
    return [ln for ln in lines if not ln.startswith("graphkit: fetched")]


def _piped(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    run = subprocess.run(
        [sys.executable, "-m", "graphkit", "query", *args],
        env={**env, "COLUMNS": "80"},
        capture_output=True,
        text=True,
        timeout=90,
        stdin=subprocess.DEVNULL,
    )
    assert run.returncode == 0, run.stderr
    return run


def _users(env: dict[str, str], *args: str) -> list[dict[str, Any]]:
    return json.loads(_piped(env, "/users", "-o", "json", *args).stdout)


SELECT = ("--select", "displayName,mail,id,jobTitle")


def test_at_40_columns_ids_stay_whole_and_hidden_columns_are_named(env: dict[str, str]) -> None:
    users = _users(env, "--top", "2", *SELECT)
    text = _tty(env, 40, "/users", "--top", "2", *SELECT)
    lines = _screen_lines(text)
    for user in users:
        assert any(user["id"] in ln for ln in lines), (user["id"], text)
    note = next((ln for ln in lines if "hidden" in ln), "")
    assert "widen the terminal" in note and "-o json" in note, text
    shown_header = next(ln for ln in lines if ln.split() and ln.split()[-1] == "id").split()
    hidden = set(SELECT[1].split(",")) - set(shown_header)
    assert hidden and all(col in note for col in hidden), (note, shown_header)
    # Whatever is shown of a non-id column was either whole or cut with "…" and noted.
    if any("…" in ln for ln in lines):
        assert any("cut to fit" in ln for ln in lines), text
    assert "2 items" in text


def test_at_200_columns_every_column_and_value_is_whole(env: dict[str, str]) -> None:
    users = _users(env, "--top", "3", *SELECT)
    text = _tty(env, 200, "/users", "--top", "3", *SELECT)
    assert "hidden" not in text and "…" not in "\n".join(_screen_lines(text)), text
    header = next(ln for ln in _screen_lines(text) if "displayName" in ln)
    assert header.split() == ["displayName", "mail", "id", "jobTitle"]
    for user in users:
        row = next(ln for ln in _screen_lines(text) if user["id"] in ln)
        assert user["mail"] in row and user["displayName"] in row


def test_piped_table_has_no_width_limit_and_no_trailing_spaces(env: dict[str, str]) -> None:
    users = _users(env, "--top", "3")
    run = _piped(env, "/users", "--top", "3", "-o", "table", "--select", "displayName,mail,id")
    lines = run.stdout.splitlines()
    assert len(lines) == 2 + len(users), run.stdout  # header, rule, one line per user
    assert all(ln == ln.rstrip() for ln in lines)
    assert "\x1b[" not in run.stdout
    for user, line in zip(users, lines[2:], strict=True):
        assert user["mail"] in line and user["id"] in line and user["displayName"] in line
    assert max(len(ln) for ln in lines) > 80  # wider than COLUMNS: not wrapped


@pytest.mark.parametrize("no_color", [False, True])
def test_no_color_means_plain_text(env: dict[str, str], no_color: bool) -> None:
    text = _tty(env, 200, "/users", "--top", "2", no_color=no_color)
    assert (SGR.findall(text) == []) is no_color


def test_an_empty_result_says_no_items(env: dict[str, str]) -> None:
    args = ("/users", "--filter", "startswith(displayName,'zzzz-nobody')", "-o", "table")
    text = _tty(env, 100, *args)
    assert "graphkit: no items" in text
    run = _piped(env, *args)
    assert run.stdout == "" and "graphkit: no items" in run.stderr


def test_rows_stream_as_pages_arrive_with_a_final_count(env: dict[str, str]) -> None:
    users = _users(env, "--all", "--select", "id")
    text = _tty(env, 200, "/users", "--all", "--top", "100", "--select", "displayName,id")
    first_row = text.index(users[0]["id"])
    # The first page's rows are on the screen before the last page was fetched.
    assert first_row < text.index("fetched 200 items (2 pages)"), text[:2000]
    assert len(set(GUID.findall(text))) == len(users)
    assert f"graphkit: {len(users):,} items" in text


def test_later_values_that_do_not_fit_are_cut_with_a_note(env: dict[str, str]) -> None:
    users = _users(env, "--top", "1", "--max-items", "60", "--select", "displayName,id")
    width = max(len("displayName"), *(len(u["displayName"]) for u in users[:1]))
    longer = [u for u in users[1:] if len(u["displayName"]) > width]
    text = _tty(env, 200, "/users", "--top", "1", "--max-items", "60", "--select", "displayName,id")
    assert len(set(GUID.findall(text))) == 60  # ids whole, always
    shown = "\n".join(_screen_lines(text))
    assert longer, "the seeded users no longer exercise this"
    assert f"{len(longer)} value" in shown and "cut to fit" in shown, shown
    assert sum("…" in ln and bool(GUID.search(ln)) for ln in shown.splitlines()) == len(longer)
    piped = _piped(env, "/users", "--top", "1", "--max-items", "60", "-o", "table")
    assert "…" not in piped.stdout and "cut" not in piped.stderr


def test_fields_left_out_of_the_default_columns_are_named(env: dict[str, str]) -> None:
    user = _users(env, "--top", "1")[0]
    fields = [k for k in user if not k.startswith("@")]
    text = "\n".join(_screen_lines(_tty(env, 200, "/users", "--top", "1")))
    note = next((ln for ln in text.splitlines() if "fields shown" in ln), "")
    assert f"3 of {len(fields)} fields shown" in note and "--select" in note, text
    assert "mail" in note  # one of those left out, by name
    chosen = _tty(env, 200, "/users", "--top", "1", "--select", ",".join(fields))
    assert "fields shown" not in chosen
