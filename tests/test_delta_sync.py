"""`graphkit query /users/delta --delta-state FILE`: the real command against the emulator.

A first run prints every user and saves the deltaLink; the next prints exactly the changes
made since through the emulator's API (a removed user with Graph's ``@removed``); a failure
midway leaves the saved state as it was, so no change is ever skipped.
"""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path
from typing import Any

import pytest
from _onboarding_helpers import Run, run_cli
from conftest import SignedIn

from graphkit.settings import save_profile

DOMAIN = "contoso.onmicrosoft.com"


def _sync(state: Path, *more: str) -> Run:
    return run_cli(["query", "/users/delta", "--delta-state", str(state), "-o", "jsonl", *more])


def _lines(r: Run) -> list[dict[str, Any]]:
    return [json.loads(line) for line in r.stdout.splitlines()]


def _graph_requests(emu: Any) -> list[dict[str, Any]]:
    return [e for e in emu.requests() if e.get("kind") == "graph"]


def _error_line(r: Run) -> str:
    lines = r.stderr.strip().splitlines()
    errors = [line for line in lines if line.startswith("graphkit: error: ")]
    assert len(errors) == 1 and "Traceback" not in r.stderr, r.stderr
    return errors[0]


@pytest.fixture
def state(tmp_path: Path) -> Path:
    return tmp_path / "sync" / "users.delta.json"


def _first_sync(state: Path, *more: str) -> list[dict[str, Any]]:
    state.parent.mkdir(exist_ok=True)
    r = _sync(state, *more)
    assert r.exit_code == 0, r.stderr
    return _lines(r)


def test_first_sync_then_exactly_the_changes_then_nothing(
    signed_in_env: SignedIn, state: Path
) -> None:
    emu = signed_in_env.emu
    everyone = _first_sync(state)
    listed = _lines(run_cli(["query", "/users", "--all", "-o", "jsonl", "--select", "id"]))
    assert len(everyone) == 250
    assert sorted(u["id"] for u in everyone) == sorted(u["id"] for u in listed)
    saved = json.loads(state.read_text())
    assert saved["delta_link"].startswith(f"{emu.graph_url}/v1.0/users/delta?$deltatoken=")
    assert stat.S_IMODE(state.stat().st_mode) == 0o600

    # Three changes (a creation, two updates) and a deletion, through the emulator's API.
    a, b, c = everyone[0]["id"], everyone[1]["id"], everyone[2]["id"]
    hired = emu.create_user(userPrincipalName=f"hire@{DOMAIN}", displayName="New Hire")
    emu.update_user(a, jobTitle="Boss")
    emu.update_user(b, officeLocation="Oslo")
    emu.delete_user(c)
    second = _sync(state)
    assert second.exit_code == 0, second.stderr
    changes = {u["id"]: u for u in _lines(second)}
    assert len(_lines(second)) == 4 and set(changes) == {hired["id"], a, b, c}
    assert changes[hired["id"]]["displayName"] == "New Hire"
    assert changes[a]["jobTitle"] == "Boss"
    assert changes[b]["officeLocation"] == "Oslo"
    assert changes[c] == {"id": c, "@removed": {"reason": "changed"}}  # Graph's, as it is
    assert "4 changes" in second.stderr

    third = _sync(state)
    assert third.exit_code == 0, third.stderr
    assert third.stdout == ""


def test_a_table_shows_why_an_object_was_removed(signed_in_env: SignedIn, state: Path) -> None:
    emu = signed_in_env.emu
    everyone = _first_sync(state, "--select", "displayName")
    gone, renamed = everyone[5]["id"], everyone[6]["id"]
    emu.delete_user(gone, permanent=True)
    emu.update_user(renamed, displayName="Renamed Person")
    r = run_cli(
        ["query", "/users/delta", "--delta-state", str(state), "-o", "table",
         "--select", "displayName"]
    )  # fmt: skip
    assert r.exit_code == 0, r.stderr
    header, _rule, *rows = r.stdout.splitlines()
    assert header.split() == ["displayName", "id", "@removed"]
    assert len(rows) == 2
    assert next(row.split() for row in rows if gone in row) == [gone, "deleted"]
    assert next(row.split() for row in rows if renamed in row) == ["Renamed", "Person", renamed]


def test_a_sync_reset_is_one_line_exit_7_and_delta_reset_starts_over(
    signed_in_env: SignedIn, state: Path
) -> None:
    emu = signed_in_env.emu
    _first_sync(state)
    before = state.read_bytes()
    emu.reset_delta()
    r = _sync(state)
    assert r.exit_code == 7 and r.stdout == ""
    line = _error_line(r)
    assert "410 resyncRequired" in line and "--delta-reset" in line and str(state) in line
    assert state.read_bytes() == before
    again = _sync(state, "--delta-reset")
    assert again.exit_code == 0, again.stderr
    assert len(_lines(again)) == 250
    assert state.read_bytes() != before
    assert _sync(state).stdout == ""


def test_a_state_graph_does_not_know_is_sync_state_not_found(
    signed_in_env: SignedIn, state: Path
) -> None:
    _first_sync(state)
    saved = json.loads(state.read_text())
    saved["delta_link"] = saved["delta_link"][:-4] + "AAAA"  # a token Graph cannot read
    state.write_text(json.dumps(saved))
    r = _sync(state)
    assert r.exit_code == 7
    assert "400 syncStateNotFound" in _error_line(r)
    assert len(_lines(_sync(state, "--delta-reset"))) == 250


def test_a_page_failing_midway_leaves_the_old_state_so_nothing_is_skipped(
    signed_in_env: SignedIn, state: Path
) -> None:
    emu = signed_in_env.emu
    _first_sync(state)
    before = state.read_bytes()
    made = {
        emu.create_user(userPrincipalName=f"u{i}@{DOMAIN}", displayName=f"U {i}")["id"]
        for i in range(150)
    }  # two pages of changes
    # The first page comes; the second fails on every try (the 2nd to 6th request).
    for every in (2, 3, 5):
        emu.add_fault("503", every=every, retry_after=0)
    r = _sync(state)
    assert r.exit_code == 8, r.stderr
    assert len(_lines(r)) == 100  # the first page was printed...
    assert state.read_bytes() == before  # ...but the state is the old one
    assert sorted(os.listdir(state.parent)) == [state.name]  # no temporary left behind
    emu.clear_faults()
    again = _sync(state)
    assert again.exit_code == 0, again.stderr
    assert {u["id"] for u in _lines(again)} == made  # all of them, the first page again


def test_a_first_round_failing_midway_saves_nothing(signed_in_env: SignedIn, state: Path) -> None:
    state.parent.mkdir()
    for every in (2, 3, 5):
        signed_in_env.emu.add_fault("503", every=every, retry_after=0)
    r = _sync(state)
    assert r.exit_code == 8
    assert not state.exists()


def test_a_state_of_another_profile_tenant_or_query_is_refused(
    signed_in_env: SignedIn, state: Path
) -> None:
    emu, ident = signed_in_env.emu, signed_in_env.ident
    shared = {"certificate": str(ident.combined)}
    save_profile("work", shared)  # the first profile saved is the default
    save_profile("other", shared)
    _first_sync(state)
    assert json.loads(state.read_text())["profile"] == "work"
    before = state.read_bytes()

    other_profile = _sync(state, "--profile", "other")
    assert other_profile.exit_code == 3
    line = _error_line(other_profile)
    assert "belongs to another profile ('work', not 'other')" in line
    assert "--delta-reset" in line

    tenant = emu.create_tenant("fabrikam.onmicrosoft.com", users=3)
    app = emu.create_app(tenant, roles=["User.Read.All"])
    emu.upload_certificate(app, ident.cert)
    foreign = _sync(state, "--tenant", tenant.id, "--client-id", app.client_id)
    assert foreign.exit_code == 3
    assert f"belongs to another tenant ({emu.default_tenant.id}, not {tenant.id})" in (
        _error_line(foreign)
    )

    query = _sync(state, "--select", "displayName")
    assert query.exit_code == 3
    assert "belongs to another query (/v1.0/users/delta, not " in _error_line(query)
    assert state.read_bytes() == before
    # Starting over in the file is the user's explicit choice.
    restarted = _sync(state, "--select", "displayName", "--delta-reset")
    assert restarted.exit_code == 0 and len(_lines(restarted)) == 250


def test_refused_before_anything_is_sent(signed_in_env: SignedIn, tmp_path: Path) -> None:
    emu = signed_in_env.emu
    mine = tmp_path / "notes.json"
    mine.write_text('{"my": "own file"}\n')
    for args, code, words in [
        (["/users", "--delta-state", str(tmp_path / "s.json")], 2, "is not one"),
        (["/users/delta", "--delta-reset"], 2, "--delta-reset needs --delta-state"),
        (
            ["/users/delta", "--delta-state", str(tmp_path / "s.json"), "--max-items", "3"],
            2,
            "--max-items cannot be combined with --delta-state",
        ),
        (["/users/delta", "--delta-state", str(mine)], 3, "is not a graphkit delta state"),
        (
            ["/users/delta", "--delta-state", str(mine), "--delta-reset"],
            3,
            "is not a graphkit delta state",
        ),
    ]:
        emu.clear_requests()
        r = run_cli(["query", *args])
        assert r.exit_code == code, (args, r.stderr)
        assert words in _error_line(r)
        assert _graph_requests(emu) == []
    assert mine.read_text() == '{"my": "own file"}\n'  # never replaced
    assert not (tmp_path / "s.json").exists()


def test_a_state_of_another_graphkit_version_starts_over_with_delta_reset(
    signed_in_env: SignedIn, state: Path
) -> None:
    # The error for such a file says "add --delta-reset to start over in it": that works.
    _first_sync(state)
    old = json.loads(state.read_text())
    old["version"] = 0
    state.write_text(json.dumps(old))
    refused = _sync(state)
    assert refused.exit_code == 3
    line = _error_line(refused)
    assert "of another graphkit version" in line and "--delta-reset" in line
    restarted = _sync(state, "--delta-reset")
    assert restarted.exit_code == 0, restarted.stderr
    assert len(_lines(restarted)) == 250
    assert json.loads(state.read_text())["version"] == 1


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full")
def test_output_that_cannot_be_written_leaves_the_old_state_and_says_why(
    signed_in_env: SignedIn, state: Path
) -> None:
    """stdout on a full disk (/dev/full): one line naming the failure, not 'unexpected
    OSError', and the state stays, so the next run prints these changes again."""
    import subprocess

    from _process_helpers import graphkit_argv

    emu = signed_in_env.emu
    _first_sync(state)
    before = state.read_bytes()
    emu.create_user(userPrincipalName=f"new@{DOMAIN}", displayName="New")
    argv = graphkit_argv("query", "/users/delta", "--delta-state", str(state), "-o", "jsonl")
    with open("/dev/full", "w") as full:
        proc = subprocess.run(
            argv, stdout=full, stderr=subprocess.PIPE, env={**os.environ}, text=True, timeout=120
        )
    assert proc.returncode == 1, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("graphkit: error: "), proc.stderr
    assert "No space left on device" in lines[0] and "unexpected" not in lines[0]
    assert state.read_bytes() == before
    [again] = _lines(_sync(state))
    assert again["displayName"] == "New"
