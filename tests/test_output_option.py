"""One -o/--output on every command that prints data (token, thumbprint, doctor, config
show and list, init, query), --json kept as its alias; -o tsv as az writes it; JSON
coloured on a terminal (a pty), plain when piped or with NO_COLOR."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from _auth_helpers import ENV_VARS, clean_env, emulator_env
from _onboarding_helpers import init_args, run_cli

from graphkit import crypto

SGR = re.compile(r"\x1b\[[0-9;]*m")


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    return clean_env(monkeypatch, tmp_path / "home")


@pytest.fixture
def world(graphkit_emulator: Any, home: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """A tested profile 'work' on the emulator, and its certificate file."""
    r = run_cli(init_args(graphkit_emulator, "--no-test", "--json"))
    assert r.exit_code == 0, r.stderr
    summary = r.json()
    graphkit_emulator.upload_certificate(
        graphkit_emulator.default_app, Path(summary["certificate"]).read_bytes()
    )
    return {"emu": graphkit_emulator, "cert": summary["certificate"], "home": home}


def _commands(world: dict[str, Any]) -> list[list[str]]:
    return [
        ["token", "--profile", "work"],
        ["thumbprint", world["cert"]],
        ["doctor", "--profile", "work"],
        ["config", "show", "--profile", "work"],
        ["config", "list"],
        ["init", "--profile", "work", "--no-test"],
    ]


def test_o_json_is_what_json_was_on_every_command(world: dict[str, Any]) -> None:
    for args in _commands(world):
        old = run_cli([*args, "--json"])
        new = run_cli([*args, "-o", "json"])
        long = run_cli([*args, "--output", "json"])
        assert old.exit_code == new.exit_code == long.exit_code == 0, (args, new.stderr)
        a, b, c = old.json(), new.json(), long.json()
        for data in (a, b, c):  # times and fresh values differ between runs: shapes only
            assert isinstance(data, dict) and data
        assert set(a) == set(b) == set(c), args


def test_o_yaml_and_tsv_on_every_command(world: dict[str, Any]) -> None:
    for args in _commands(world):
        y = run_cli([*args, "-o", "yaml"])
        assert y.exit_code == 0, (args, y.stderr)
        assert y.stdout.strip() and not y.stdout.lstrip().startswith("{"), args
        t = run_cli([*args, "-o", "tsv"])
        assert t.exit_code == 0, (args, t.stderr)
        lines = t.stdout.splitlines()
        assert lines and all('"' not in ln or "{" in ln for ln in lines), (args, t.stdout)
        assert any("\t" in ln for ln in lines) or len(lines) == 1, (args, t.stdout)


def test_unknown_or_conflicting_formats_are_usage_errors(world: dict[str, Any]) -> None:
    r = run_cli(["thumbprint", world["cert"], "-o", "xml"])
    assert r.exit_code == 2 and "tsv" in r.stderr
    r = run_cli(["token", "--profile", "work", "--json", "-o", "yaml"])
    assert r.exit_code == 2
    r = run_cli(["token", "--profile", "work", "--raw", "-o", "json"])
    assert r.exit_code == 2


def test_thumbprint_tsv_is_one_line_of_fields(world: dict[str, Any]) -> None:
    info = run_cli(["thumbprint", world["cert"], "-o", "json"]).json()
    line = run_cli(["thumbprint", world["cert"], "-o", "tsv"]).stdout.rstrip("\n")
    fields = line.split("\t")
    assert fields[0] == info["sha1"] and info["subject"] in fields


def test_config_list_tsv_is_a_line_per_profile(world: dict[str, Any]) -> None:
    run_cli(["config", "set", "lab", "--tenant", "lab.example.com"])
    lines = run_cli(["config", "list", "-o", "tsv"]).stdout.splitlines()
    assert [ln.split("\t")[0] for ln in lines] == ["lab", "work"]
    work = lines[1].split("\t")
    sha1 = run_cli(["thumbprint", "--sha1", world["cert"]]).stdout.strip()
    assert sha1 in work and "364" in work


# ------------------------------------------------------------------ query -o tsv


@pytest.fixture
def qenv(world: dict[str, Any], tmp_path: Path) -> dict[str, str]:
    key = crypto.generate_private_key(2048)
    cert = crypto.self_sign(key, crypto.parse_subject(cn="graphkit-output-tests"))
    pem = tmp_path / "client.pem"
    pem.write_bytes(crypto.dump_combined_pem(key, cert))
    pem.chmod(0o600)
    world["emu"].upload_certificate(world["emu"].default_app, cert)
    base = {k: v for k, v in os.environ.items() if k not in ENV_VARS and k != "NO_COLOR"}
    return {**base, **emulator_env(world["emu"], pem, tmp_path / "qhome")}


def _query(env: dict[str, str], *args: str) -> str:
    r = subprocess.run(
        [sys.executable, "-m", "graphkit", "query", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=90,
        stdin=subprocess.DEVNULL,
    )
    assert r.returncode == 0, r.stderr
    return r.stdout


def test_query_tsv_as_az_does_it(qenv: dict[str, str]) -> None:
    users = json.loads(_query(qenv, "/users", "--top", "5", "--select", "displayName,mail,id"))
    ids = _query(qenv, "/users", "--top", "5", "--query", "[].id", "-o", "tsv")
    assert ids.splitlines() == [u["id"] for u in users]  # one value per line
    rows = _query(qenv, "/users", "--top", "5", "--select", "displayName,mail,id", "-o", "tsv")
    assert [ln.split("\t") for ln in rows.splitlines()] == [
        [u["displayName"], u["mail"] or "", u["id"]] for u in users
    ]
    assert '"' not in rows


# ------------------------------------------------------------------ colour


pexpect = pytest.importorskip("pexpect")


@pytest.mark.parametrize("no_color", [False, True])
def test_json_is_coloured_on_a_terminal_unless_no_color(
    qenv: dict[str, str], world: dict[str, Any], no_color: bool
) -> None:
    env = dict(qenv)
    if no_color:
        env["NO_COLOR"] = "1"
    for args in (
        ["thumbprint", world["cert"], "-o", "json"],
        ["query", "/users", "--top", "2", "-o", "json"],
    ):
        child = pexpect.spawn(
            sys.executable, ["-m", "graphkit", *args], env=env, encoding="utf-8", timeout=60
        )
        child.expect(pexpect.EOF)
        child.close()
        text = str(child.before)
        assert child.exitstatus == 0, text
        assert (SGR.findall(text) == []) is no_color, (args, text[:300])
        plain = SGR.sub("", text)
        start = min(i for i in (plain.find("{"), plain.find("[")) if i >= 0)
        json.JSONDecoder().raw_decode(plain[start:])  # colour aside, it is the JSON
    piped = _query(env, "/users", "--top", "2", "-o", "json")
    assert "\x1b[" not in piped and json.loads(piped)
