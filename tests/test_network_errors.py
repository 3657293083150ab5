"""Network failures through the command line: exit status 9 (ExitCode.NETWORK) and one
line saying what could not be reached, never a traceback. Hosts are closed ports on
127.0.0.1: nothing leaves the machine."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from _auth_helpers import make_identity
from _onboarding_helpers import child_env, run_cli
from conftest import SignedIn

from graphkit import graph
from graphkit.errors import ExitCode

TENANT = "contoso.onmicrosoft.com"
CLIENT_ID = "11111111-2222-3333-4444-555555555555"


def _errors(stderr: str) -> list[str]:
    """stderr without the once-only notice about the plaintext token cache."""
    return [ln for ln in stderr.splitlines() if not ln.startswith("graphkit: warning:")]


@pytest.mark.parametrize("command", [["token"], ["query", "/users"]], ids=["token", "query"])
def test_unreachable_authority_exits_network(
    tmp_path: Path, command: list[str], refused_port: int
) -> None:
    ident = make_identity(tmp_path / "ident")
    port = refused_port
    dead = f"https://127.0.0.1:{port}"
    env = child_env(
        tmp_path / "home",
        AZURE_TENANT_ID=TENANT,
        AZURE_CLIENT_ID=CLIENT_ID,
        AZURE_CLIENT_CERTIFICATE_PATH=str(ident.combined),
        AZURE_AUTHORITY_HOST=dead,
        GRAPHKIT_GRAPH_URL=dead,
    )
    proc = subprocess.run(
        [sys.executable, "-m", "graphkit", *command],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == ExitCode.NETWORK == 9, proc.stderr
    assert "Traceback" not in proc.stderr
    assert proc.stdout == ""
    [line] = _errors(proc.stderr)
    assert line.startswith("graphkit: error: ")
    assert f"127.0.0.1:{port}" in line
    # A refused loopback authority is most likely a stopped emulator: the advice says so.
    assert f"nothing is listening at {dead}: if it is the graphkit emulator" in line


def test_graph_connection_failures_exit_network(
    signed_in_env: SignedIn, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The token must come first (its scope names the Graph host, so a closed port cannot
    # stand in for Graph alone): the emulator gives it, then resets every Graph connection.
    emu = signed_in_env.emu
    emu.add_fault("reset", endpoint="graph", every=1)
    # Connection errors are retried with backoff (1, 2, 4, 8 s): shrink it, keep the count.
    monkeypatch.setattr(graph, "BACKOFF_BASE", 0.001)
    r = run_cli(["query", "/users", "-o", "json"])  # exceptions not caught by the runner
    assert r.exit_code == ExitCode.NETWORK
    assert r.stdout == "" and "Traceback" not in r.stderr
    lines = _errors(r.stderr)
    waits, error = lines[:-1], lines[-1]
    assert len(waits) == graph.DEFAULT_MAX_ATTEMPTS - 1
    assert all("connection error" in w for w in waits)
    assert error.startswith("graphkit: error: gave up on ")
    assert emu.graph_url in error and "client-request-id" in error
    # The identity side worked; Graph's connections were what failed.
    log = emu.requests()
    assert [e["kind"] for e in log] == ["discovery", "token"] + ["graph"] * len(lines)
    assert all(e["fault"] == "reset" for e in log[2:])
