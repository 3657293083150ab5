"""A successful ``--debug`` run shows no secret, for every command that authenticates.

--debug is the switch for "show me everything" (tracebacks, msal's records): whatever
it shows now or later must stay free of secrets. Each command here runs as a
real process against the emulator, signing in with an encrypted key, and must succeed;
its whole output is then searched for every secret it held: any complete JWT (access
token or client assertion), the private key (PEM armour and body), the passphrase.
"""

from __future__ import annotations

import base64
import re
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from _auth_helpers import PASSPHRASE, emulator_env, make_identity
from _onboarding_helpers import child_env
from _process_helpers import graphkit_argv

# Three base64url segments, the first a JSON header: a whole token or assertion. (The
# masked form `token` prints, "eyJ0eXAiOiJK…", is a prefix of the header only.)
_JWT = re.compile(r"eyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}")

Prepare = Callable[[Any, Path, dict[str, str]], list[str]]


def _token(emu: Any, tmp: Path, env: dict[str, str]) -> list[str]:
    return ["token"]


def _token_json(emu: Any, tmp: Path, env: dict[str, str]) -> list[str]:
    return ["token", "--json"]


def _query(emu: Any, tmp: Path, env: dict[str, str]) -> list[str]:
    return ["query", "/users", "--top", "2", "-o", "json"]


def _doctor(emu: Any, tmp: Path, env: dict[str, str]) -> list[str]:
    return ["doctor"]


def _init(emu: Any, tmp: Path, env: dict[str, str]) -> list[str]:
    # init tests the profile it saves: reuse the uploaded pair through a profile.
    passfile = tmp / "pass.txt"
    passfile.write_bytes(PASSPHRASE + b"\n")
    made = subprocess.run(
        graphkit_argv(
            "config", "set", "work",
            "--tenant", env["AZURE_TENANT_ID"],
            "--client-id", env["AZURE_CLIENT_ID"],
            "--certificate", env["AZURE_CLIENT_CERTIFICATE_PATH"],
            "--passphrase-file", str(passfile),
            "--authority-host", emu.authority_host,
            "--graph-url", emu.graph_url,
            "--ca-bundle", emu.ca_bundle,
        ),
        env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    for name in ("AZURE_TENANT_ID", "AZURE_CLIENT_ID", "AZURE_CLIENT_CERTIFICATE_PATH"):
        del env[name]
    return ["init", "--profile", "work", "--yes"]


COMMANDS: dict[str, Prepare] = {
    "token": _token,
    "token --json": _token_json,
    "query": _query,
    "doctor": _doctor,
    "init": _init,
}


@pytest.mark.parametrize("command", list(COMMANDS))
def test_a_successful_debug_run_shows_no_secret(
    graphkit_emulator: Any, tmp_path: Path, command: str
) -> None:
    emu = graphkit_emulator
    ident = make_identity(tmp_path / "ident")
    emu.upload_certificate(emu.default_app, ident.cert)
    home = tmp_path / "home"
    env = child_env(
        home,
        **emulator_env(emu, ident.enc_combined, home),
        GRAPHKIT_KEY_PASSPHRASE=PASSPHRASE.decode(),
    )
    args = COMMANDS[command](emu, tmp_path, env)
    proc = subprocess.run(
        graphkit_argv("--debug", *args), env=env, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    shown = proc.stdout + proc.stderr
    # The run authenticated for real: the emulator issued it a token (or it used one
    # issued to it moments ago: `token --json` says where it came from).
    assert any(e["kind"] == "token" and e["status"] == 200 for e in emu.requests())
    assert _JWT.search(shown) is None, _JWT.search(shown)
    assert "PRIVATE KEY" not in shown
    key_pem = ident.key_pem.read_text()
    body = "".join(line for line in key_pem.splitlines() if "-----" not in line)
    for i in range(0, len(body) - 32, 32):  # no 32-character run of the key's body
        assert body[i : i + 32] not in shown
    der = base64.b64decode(body)
    assert base64.b64encode(der[-64:]).decode()[:40] not in shown
    assert PASSPHRASE.decode() not in shown
