"""Where the emulator listens: `graphkit emulator serve --port N` listens on N, and the
server answers on 127.0.0.1 only (its admin API has no authentication).

"Another address" means another address of this machine (127.0.0.2, or an interface's
own address): connecting to it never leaves the machine. Each such address is used only
once a listener on all addresses proved it reachable, so the checks can fail.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import requests
from _onboarding_helpers import closed_port


def _own_ipv4_addresses() -> list[str]:
    """127.0.0.2 and this machine's own IPv4 interface addresses (Linux /proc), but
    not 127.0.0.1."""
    found = ["127.0.0.2"]
    try:
        lines = Path("/proc/net/fib_trie").read_text().splitlines()
    except OSError:
        lines = []
    for previous, line in itertools.pairwise(lines):
        if line.strip() == "/32 host LOCAL":
            address = previous.strip().removeprefix("|-- ")
            if address not in found and address != "127.0.0.1":
                found.append(address)
    return found


def _connects(address: str, port: int) -> bool:
    try:
        with socket.create_connection((address, port), timeout=10):
            return True
    except OSError:
        return False


@pytest.fixture(scope="module")
def other_addresses() -> list[str]:
    """The addresses that reach a listener bound to every address (0.0.0.0)."""
    with socket.socket() as probe:
        probe.bind(("0.0.0.0", 0))
        probe.listen(8)
        port = probe.getsockname()[1]
        usable = [a for a in _own_ipv4_addresses() if _connects(a, port)]
    if not usable:
        pytest.skip("this machine has no local address other than 127.0.0.1")
    return usable


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


@contextlib.contextmanager
def _serving(*args: str) -> Iterator[subprocess.Popen[str]]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "graphkit", "emulator", "serve", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()


def test_serve_listens_on_the_port_given(other_addresses: list[str]) -> None:
    port = closed_port()  # free a moment ago
    with _serving("--port", str(port), "--users", "3", "--json") as proc:
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


def test_ctrl_c_right_after_clients_connected_stops_serve() -> None:
    # A signal arriving while connection threads run used to be noticed by nobody: the
    # server kept running after Ctrl-C. (communicate's timeout only guards a hang.)
    with _serving("--users", "1", "--json") as proc:
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
