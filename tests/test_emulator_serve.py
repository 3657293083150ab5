"""Where the emulator listens: `graphkit emulator serve --port N` listens on N, and the
server answers on 127.0.0.1 only (its admin API has no authentication).

"Another address" means another loopback address (127.0.0.2): connecting to it never
leaves the machine. It is used only once a listener bound to it proved it reachable, so
the checks can fail.
"""

from __future__ import annotations

import json
import signal
import socket
import subprocess
from typing import Any
from urllib.parse import urlsplit

import pytest
import requests
from _emulator_helpers import serving
from _process_helpers import SIGINT_STATES, reserved_port

# Only the loopback range: tests never send traffic to any other address, not even
# this machine's own interface addresses.
_OTHER_LOOPBACK = "127.0.0.2"


def _connects(address: str, port: int) -> bool:
    try:
        with socket.create_connection((address, port), timeout=10):
            return True
    except OSError:
        return False


@pytest.fixture(scope="module")
def other_addresses() -> list[str]:
    """Another loopback address, once a listener bound to it proved it usable."""
    with socket.socket() as probe:
        try:
            probe.bind((_OTHER_LOOPBACK, 0))
        except OSError:
            pytest.skip(f"{_OTHER_LOOPBACK} is not usable on this machine")
        probe.listen(8)
        port = probe.getsockname()[1]
        if not _connects(_OTHER_LOOPBACK, port):
            pytest.skip(f"{_OTHER_LOOPBACK} is not reachable on this machine")
    return [_OTHER_LOOPBACK]


def _assert_loopback_only(port: int, others: list[str]) -> None:
    assert _connects("127.0.0.1", port)
    for address in others:
        assert not _connects(address, port), f"the emulator answers on {address}:{port}"


def test_emulator_answers_on_127_0_0_1_only(
    graphkit_emulator: Any, other_addresses: list[str]
) -> None:
    port = urlsplit(graphkit_emulator.graph_url).port
    assert port
    _assert_loopback_only(port, other_addresses)


def test_serve_listens_on_the_port_given(other_addresses: list[str]) -> None:
    # Held (SO_REUSEADDR, not listening) until serve has bound it: nothing else can take
    # the port between "it is free" and serve's bind.
    with (
        reserved_port() as port,
        serving("--port", str(port), "--users", "3", "--json") as proc,
    ):
        assert proc.stdout is not None
        info = json.loads(proc.stdout.readline())
        assert info["graph_url"] == info["authority_host"] == f"https://127.0.0.1:{port}"
        # Really listening there: the admin API answers over TLS with the printed CA.
        r = requests.get(
            f"https://127.0.0.1:{port}/_emulator/", verify=info["ca_bundle"], timeout=30
        )
        assert r.status_code == 200 and r.json()["app"]["client_id"] == info["app"]["client_id"]
        _assert_loopback_only(port, other_addresses)
        proc.send_signal(signal.SIGINT)
        _out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err


@pytest.mark.parametrize("sigint", SIGINT_STATES)
def test_ctrl_c_right_after_clients_connected_stops_serve(sigint: str) -> None:
    # A signal arriving while connection threads run used to be noticed by nobody: the
    # server kept running after Ctrl-C. So did a serve started with SIGINT ignored (a
    # background job's inheritance): serve installs its own handler. (communicate's
    # timeout only guards a hang.)
    with serving("--users", "1", "--json", sigint=sigint) as proc:
        assert proc.stdout is not None
        info = json.loads(proc.stdout.readline())
        port = urlsplit(info["graph_url"]).port
        assert port
        r = requests.get(f"{info['graph_url']}/_emulator/", verify=info["ca_bundle"], timeout=30)
        assert r.status_code == 200
        for _ in range(3):  # and connections that hang up before any TLS
            assert _connects("127.0.0.1", port)
        proc.send_signal(signal.SIGINT)
        try:
            _out, err = proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            pytest.fail("graphkit emulator serve still runs 30 s after Ctrl-C")
    assert proc.returncode == 0, err
    assert "graphkit emulator stopped" in err
