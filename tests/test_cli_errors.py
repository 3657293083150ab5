"""Every failure of the command line, from the root group too, is one line and a
documented exit status: usage errors, --debug anywhere, missing values, closed stdout,
Ctrl-C (during start-up and mid-request), and every HTTP status Graph can answer.

Run through the real console script (``python -m graphkit``) in a subprocess.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest
from _auth_helpers import ENV_VARS, emulator_env

from graphkit import crypto
from graphkit.errors import ExitCode

GRAPHKIT = [sys.executable, "-m", "graphkit"]


def _env(home: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ENV_VARS and k != "NO_COLOR"}
    env.pop("PYTHONPROFILEIMPORTTIME", None)
    env["GRAPHKIT_HOME"] = str(home)
    env.update(extra)
    return env


def _run(args: list[str], env: dict[str, str], **kw: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*GRAPHKIT, *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        stdin=kw.pop("stdin", subprocess.DEVNULL),
        **kw,
    )


def _default_sigint() -> None:
    # The child must see Ctrl-C as a shell would deliver it, whatever this runner ignores.
    signal.signal(signal.SIGINT, signal.SIG_DFL)


# ------------------------------------------------------------------ usage errors


@pytest.mark.parametrize(
    "args",
    [
        ["--bogus"],
        ["-v"],
        ["frobnicate"],
        ["token", "--bogus"],
        ["thumbprint"],
        ["query", "/users", "--top", "many"],
        ["config", "frob"],
    ],
)
def test_usage_errors_are_one_line_and_exit_2(tmp_path: Path, args: list[str]) -> None:
    r = _run(args, _env(tmp_path))
    assert r.returncode == ExitCode.USAGE, r.stderr
    lines = r.stderr.splitlines()
    assert len(lines) == 1, r.stderr
    assert lines[0].startswith("graphkit: error: ") and "--help" in lines[0], lines
    assert r.stdout == ""


def test_short_v_points_at_version(tmp_path: Path) -> None:
    r = _run(["-v"], _env(tmp_path))
    assert "--version" in r.stderr


@pytest.mark.parametrize(
    "args",
    [
        ["--debug", "thumbprint", "missing.crt"],
        ["thumbprint", "--debug", "missing.crt"],
        ["thumbprint", "missing.crt", "--debug"],
    ],
)
def test_debug_is_accepted_anywhere(tmp_path: Path, args: list[str]) -> None:
    plain = _run([a for a in args if a != "--debug"], _env(tmp_path), cwd=tmp_path)
    assert plain.returncode == ExitCode.INPUT and "Traceback" not in plain.stderr
    r = _run(args, _env(tmp_path), cwd=tmp_path)
    assert "Traceback" in r.stderr and "InputError" in r.stderr, r.stderr
    assert "No such option" not in r.stderr


def test_debug_after_a_double_dash_is_an_argument(tmp_path: Path) -> None:
    r = _run(["thumbprint", "--", "--debug"], _env(tmp_path), cwd=tmp_path)
    assert r.returncode == ExitCode.INPUT and "--debug does not exist" in r.stderr


def test_init_without_a_tenant_from_a_script_exits_2(tmp_path: Path) -> None:
    r = _run(["init", "--client-id", "11111111-2222-3333-4444-555555555555"], _env(tmp_path))
    assert r.returncode == ExitCode.USAGE, r.stderr
    errors = [ln for ln in r.stderr.splitlines() if ln.startswith("graphkit: error:")]
    assert errors == [r.stderr.strip()] and "--tenant" in errors[0]
    r = _run(["init", "--tenant", "contoso.onmicrosoft.com"], _env(tmp_path))
    assert r.returncode == ExitCode.USAGE and "--client-id" in r.stderr


def test_no_arguments_prints_the_help(tmp_path: Path) -> None:
    r = _run([], _env(tmp_path))
    assert "Commands:" in r.stderr + r.stdout and "Traceback" not in r.stderr


# ------------------------------------------------------------------ against the emulator


@pytest.fixture(scope="module")
def client_pem(tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, Path]:
    key = crypto.generate_private_key(2048)
    cert = crypto.self_sign(key, crypto.parse_subject(cn="graphkit-cli-errors"))
    pem = tmp_path_factory.mktemp("ident") / "client.pem"
    pem.write_bytes(crypto.dump_combined_pem(key, cert))
    pem.chmod(0o600)
    return cert, pem


@pytest.fixture
def emu_env(graphkit_emulator: Any, client_pem: tuple[Any, Path], tmp_path: Path) -> Any:
    cert, pem = client_pem
    graphkit_emulator.upload_certificate(graphkit_emulator.default_app, cert)
    return _env(tmp_path, **emulator_env(graphkit_emulator, pem, tmp_path / "home"))


@pytest.mark.graphkit_emulator(users=3000)
def test_closed_stdout_ends_quietly_with_success(emu_env: dict[str, str]) -> None:
    proc = subprocess.Popen(
        [*GRAPHKIT, "query", "/users", "--all", "-o", "jsonl"],
        env=emu_env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None and proc.stderr is not None
    first = proc.stdout.readline()  # what `| head -1` reads before it exits
    assert first.startswith("{")
    proc.stdout.close()
    err = proc.stderr.read()
    assert proc.wait(timeout=120) == 0, err
    assert [ln for ln in err.splitlines() if "tokens are cached" not in ln] == []


def test_every_graph_status_has_a_class_and_advice(
    emu_env: dict[str, str], graphkit_emulator: Any
) -> None:
    # The case: `$batch` answers GET with 405.
    r = _run(["query", "$batch"], emu_env)
    assert r.returncode == ExitCode.USAGE, r.stderr
    line = r.stderr.strip().splitlines()[-1]
    assert "405" in line and "POST" in line, line


@pytest.mark.parametrize(
    ("status", "code"),
    [
        (400, ExitCode.USAGE),
        (401, ExitCode.AUTH),
        (403, ExitCode.PERMISSION),
        (404, ExitCode.NOT_FOUND),
        (405, ExitCode.USAGE),
        (406, ExitCode.USAGE),
        (409, ExitCode.ERROR),
        (410, ExitCode.NOT_FOUND),
        (412, ExitCode.ERROR),
        (413, ExitCode.USAGE),
        (414, ExitCode.USAGE),
        (415, ExitCode.USAGE),
        (422, ExitCode.USAGE),
        (423, ExitCode.ERROR),
        (424, ExitCode.ERROR),
        (500, ExitCode.ERROR),
        (501, ExitCode.USAGE),
        (502, ExitCode.ERROR),
        (507, ExitCode.ERROR),
        (509, ExitCode.THROTTLED),
        (418, ExitCode.ERROR),
        (599, ExitCode.ERROR),
    ],
)
def test_each_http_status_maps_to_a_documented_class(status: int, code: int) -> None:
    import requests

    from graphkit.graph import GraphClient

    resp = requests.Response()
    resp.status_code = status
    resp._content = b'{"error": {"code": "X", "message": "refused"}}'
    resp.headers["Content-Type"] = "application/json"
    client = GraphClient("https://graph.microsoft.com", object())
    err = client._http_error("GET", "https://graph.microsoft.com/v1.0/users", resp, "crid")
    assert err.exit_code == code, (status, type(err).__name__)
    assert err.hint, f"no advice for {status}"
    assert str(status) in str(err)
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    assert f"| {int(code)} |" in readme


# ------------------------------------------------------------------ Ctrl-C


def _stalled_server() -> tuple[socket.socket, threading.Event]:
    """A TCP listener that accepts and never answers: a request stays in flight."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(8)
    accepted = threading.Event()
    conns: list[socket.socket] = []

    def serve() -> None:
        while True:
            try:
                conn, _ = srv.accept()
            except OSError:
                return
            conns.append(conn)
            accepted.set()

    threading.Thread(target=serve, daemon=True).start()
    return srv, accepted


def _stalled_env(tmp_path: Path, port: int, client_pem: tuple[Any, Path]) -> dict[str, str]:
    return _env(
        tmp_path,
        AZURE_TENANT_ID="contoso.onmicrosoft.com",
        AZURE_CLIENT_ID="11111111-2222-3333-4444-555555555555",
        AZURE_CLIENT_CERTIFICATE_PATH=str(client_pem[1]),
        AZURE_AUTHORITY_HOST=f"https://127.0.0.1:{port}",
        GRAPHKIT_GRAPH_URL=f"https://127.0.0.1:{port}",
    )


def test_ctrl_c_mid_request_is_one_line_and_130(
    tmp_path: Path, client_pem: tuple[Any, Path]
) -> None:
    srv, accepted = _stalled_server()
    try:
        proc = subprocess.Popen(
            [*GRAPHKIT, "token"],
            env=_stalled_env(tmp_path, srv.getsockname()[1], client_pem),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            preexec_fn=_default_sigint,
        )
        assert accepted.wait(60), "graphkit never connected"
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        srv.close()
    lines = [ln for ln in err.splitlines() if "tokens are cached" not in ln]
    assert proc.returncode == ExitCode.INTERRUPTED, err
    assert lines == ["graphkit: error: interrupted"], err
    assert out == ""


@pytest.mark.parametrize("module", ["typer", "graphkit.cli._app"])
def test_ctrl_c_during_start_up_is_one_line_and_130(
    tmp_path: Path, client_pem: tuple[Any, Path], module: str
) -> None:
    """SIGINT while the command line's own imports run (seen with -X importtime)."""
    srv, _ = _stalled_server()
    env = _stalled_env(tmp_path, srv.getsockname()[1], client_pem)
    env["PYTHONPROFILEIMPORTTIME"] = "1"
    try:
        proc = subprocess.Popen(
            [*GRAPHKIT, "token"],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            preexec_fn=_default_sigint,
        )
        assert proc.stderr is not None
        rest = []
        for line in proc.stderr:
            if line.startswith("import time:"):
                if line.split("|")[-1].strip() == module:
                    proc.send_signal(signal.SIGINT)
                    break
            else:
                rest.append(line)
        else:
            pytest.fail("the import was never seen: " + "".join(rest))
        out, err = proc.communicate(timeout=60)
    finally:
        srv.close()
    lines = [ln for ln in "".join(rest).splitlines() + err.splitlines()]
    lines = [ln for ln in lines if not ln.startswith("import time:") and "token cache" not in ln]
    assert proc.returncode == ExitCode.INTERRUPTED, err
    assert lines == ["graphkit: error: interrupted"], lines
    assert out == ""
