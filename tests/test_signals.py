"""Ctrl-C and SIGTERM stop graphkit however it was started.

Python installs its SIGINT handler only when SIGINT is not ignored at start-up, and a
background job of a non-interactive shell (as some CI runners start test runs) begins
with SIGINT ignored; a child inherits that across ``exec``. So every child here starts
with a SIGINT state the test chose (:func:`_process_helpers.graphkit_argv`), both
states are tried, and the "ignored" ones fail when graphkit relies on Python's default.

Synchronisation is by output (the child printed its prompt or its connection details),
never by sleeping; ``timeout=`` values only stop a hung child from hanging the run.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import requests
from _process_helpers import SIGINT_STATES, graphkit_argv

pexpect = pytest.importorskip("pexpect")


def _app_argv(*args: str, sigint: str) -> list[str]:
    """graphkit run through ``graphkit.cli.app(...)`` (Typer's own entry), not ``main``:
    only serve's own handlers can make it stop then. No ``exec`` here, so "default"
    is Python's own default (KeyboardInterrupt), not the kernel's SIG_DFL."""
    disposition = {"default": "default_int_handler", "ignored": "SIG_IGN"}[sigint]
    code = (
        "import signal, sys; "
        f"signal.signal(signal.SIGINT, signal.{disposition}); "
        "from graphkit.cli import app; app(sys.argv[1:], prog_name='graphkit')"
    )
    return [sys.executable, "-c", code, *args]


@pytest.mark.parametrize("entry", ["main", "app"])
@pytest.mark.parametrize("sigint", SIGINT_STATES)
@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_emulator_serve_stops_on_a_signal_however_started(
    entry: str, sigint: str, stop: signal.Signals
) -> None:
    args = ("emulator", "serve", "--users", "1", "--json")
    argv = (
        graphkit_argv(*args, sigint=sigint) if entry == "main" else _app_argv(*args, sigint=sigint)
    )
    with subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) as proc:
        try:
            assert proc.stdout is not None
            info = json.loads(proc.stdout.readline())  # serving now
            r = requests.get(
                f"{info['graph_url']}/_emulator/", verify=info["ca_bundle"], timeout=30
            )
            assert r.status_code == 200
            proc.send_signal(stop)
            try:
                _out, err = proc.communicate(timeout=30)
            except subprocess.TimeoutExpired:
                pytest.fail(f"emulator serve still runs 30 s after {stop.name}")
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
    assert proc.returncode == 0, err
    assert err.strip().splitlines()[-1] == "graphkit emulator stopped"
    assert "Traceback" not in err
    assert not Path(info["ca_bundle"]).exists()  # it cleaned up: a real stop, not a kill


@pytest.mark.parametrize("sigint", SIGINT_STATES)
def test_ctrl_c_at_a_passphrase_prompt_exits_130_with_one_line(tmp_path: Path, sigint: str) -> None:
    command, *argv = graphkit_argv(
        "keygen", "-o", str(tmp_path / "new.key"), "--prompt-passphrase", sigint=sigint
    )
    child = pexpect.spawn(command, argv, encoding="utf-8", timeout=60, cwd=str(tmp_path))
    try:
        child.expect("Passphrase: ")
        child.sendintr()
        child.expect(pexpect.EOF)
    finally:
        child.close()
    assert child.exitstatus == 130, child.before
    lines = [ln for ln in child.before.replace("\r", "").splitlines() if ln.strip()]
    assert lines == ["graphkit: error: interrupted"]
    assert list(tmp_path.iterdir()) == []
