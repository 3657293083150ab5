"""`graphkit emulator serve --state-dir DIR`: the CA, tenants, apps, certificates, grants,
settings and clock survive a restart (written atomically), and the port is reused when
it is free. The headline check is a real restart with a stored profile: `graphkit query
/users` works before, fails with exit 9 while the emulator is down, and works after."""

from __future__ import annotations

import json
import signal
import socket
import stat
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import requests
from _emulator_helpers import identity, serving
from _onboarding_helpers import child_env, init_args

from graphkit.emulator import Emulator
from graphkit.errors import ExitCode, InputError


def _start(state: Path, *more: str) -> tuple[subprocess.Popen[str], dict[str, Any]]:
    cm = serving("--json", "--state-dir", str(state), *more)
    proc = cm.__enter__()
    assert proc.stdout is not None
    line = proc.stdout.readline()
    assert line, proc.stderr.read() if proc.stderr else "no output"
    info = json.loads(line)
    info["_cm"] = cm
    return proc, info


def _stop(proc: subprocess.Popen[str], info: dict[str, Any]) -> None:
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    info["_cm"].__exit__(None, None, None)


def _as_emu(info: dict[str, Any]) -> Any:
    """What init_args needs, from the served emulator's --json line."""
    return SimpleNamespace(
        default_tenant=SimpleNamespace(domain=info["tenant"]["domain"]),
        default_app=SimpleNamespace(client_id=info["app"]["client_id"]),
        authority_host=info["authority_host"],
        graph_url=info["graph_url"],
        ca_bundle=info["ca_bundle"],
    )


def _graphkit(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "graphkit", *args],
        env=child_env(home),
        capture_output=True,
        text=True,
        timeout=120,
    )


def _admin(info: dict[str, Any], method: str, path: str, **kw: Any) -> requests.Response:
    return requests.request(
        method, f"{info['graph_url']}/_emulator{path}", verify=info["ca_bundle"], timeout=30, **kw
    )


def test_restart_with_a_stored_profile(tmp_path: Path) -> None:
    state, home = tmp_path / "state", tmp_path / "home"
    proc, first = _start(state, "--users", "7")
    try:
        emu = _as_emu(first)
        made = _graphkit(home, *init_args(emu, "--no-test", "--json"))
        assert made.returncode == 0, made.stderr
        cert = Path(json.loads(made.stdout)["certificate"])
        cid = first["app"]["client_id"]
        up = _admin(first, "POST", f"/apps/{cid}/certificates", data=cert.read_bytes())
        assert up.status_code == 201, up.text
        assert _admin(first, "POST", f"/apps/{cid}/grants", json={"role": "Group.Read.All"}).ok
        moved = _admin(first, "POST", "/clock/advance", json={"seconds": 120}).json()
        assert _admin(first, "POST", "/tenants", json={"domain": "fabrikam.example.com"}).ok

        before = _graphkit(home, "query", "/users", "--profile", "work", "-o", "json")
        assert before.returncode == 0, before.stderr
        users = json.loads(before.stdout)
        assert len(users) == 7
    finally:
        _stop(proc, first)

    # Down: the stored profile's query fails as a network error naming the address.
    port = first["graph_url"].rsplit(":", 1)[1]
    down = _graphkit(home, "query", "/users", "--profile", "work", "-o", "json")
    assert down.returncode == ExitCode.NETWORK, down.stderr
    assert f"127.0.0.1:{port}" in down.stderr and "Traceback" not in down.stderr
    # The token is cached, so Graph is what refuses: the advice names the emulator.
    assert "if it is the graphkit emulator, it is not running" in down.stderr
    # The CA stays where the profile points (without --state-dir it is deleted).
    assert Path(first["ca_bundle"]).is_file()

    proc, second = _start(state, "--users", "999")  # the stored state wins
    try:
        assert second["graph_url"] == first["graph_url"]  # the port was free: reused
        assert second["ca_bundle"] == first["ca_bundle"]
        assert second["tenant"] == first["tenant"]
        assert second["app"]["client_id"] == first["app"]["client_id"]
        assert second["app"]["certificates"] == 1
        assert second["app"]["roles"] == ["Group.Read.All", "User.Read.All"]
        assert second["state_dir"] == str(state.absolute())
        domains = {t["domain"] for t in _admin(second, "GET", "/tenants").json()["tenants"]}
        assert domains == {"contoso.onmicrosoft.com", "fabrikam.example.com"}
        clock = _admin(second, "POST", "/clock/advance", json={"seconds": 0}).json()
        assert clock["offset"] == moved["offset"] == 120

        after = _graphkit(home, "query", "/users", "--profile", "work", "-o", "json")
        assert after.returncode == 0, after.stderr
        assert json.loads(after.stdout) == users  # same seed, same tenant: same users
    finally:
        _stop(proc, second)

    # The files: written atomically (no temporaries left), secrets 0600, the CA public.
    names = sorted(p.name for p in state.iterdir())
    assert names == ["ca.pem", "state.json", "tls.json"]
    assert stat.S_IMODE((state / "state.json").stat().st_mode) == 0o600
    assert stat.S_IMODE((state / "tls.json").stat().st_mode) == 0o600
    assert stat.S_IMODE((state / "ca.pem").stat().st_mode) == 0o644
    assert stat.S_IMODE(state.stat().st_mode) == 0o700
    assert b"PRIVATE KEY" not in (state / "state.json").read_bytes()
    assert b"PRIVATE KEY" not in (state / "ca.pem").read_bytes()


def test_a_taken_port_gives_another_one(tmp_path: Path) -> None:
    state = tmp_path / "state"
    with Emulator(users=3, state_dir=state) as emu:
        port = emu.port
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", port))
        squatter.listen(1)
        with Emulator(state_dir=state) as again:
            second = again.port
            assert second != port
    with Emulator(state_dir=state) as third:  # the last port used is the one kept
        assert third.port == second


def test_python_api_state_survives(tmp_path: Path) -> None:
    state = tmp_path / "state"
    ident = identity(tmp_path)
    with Emulator(users=4, seed=3, token_lifetime=900, state_dir=state) as emu:
        tenant = emu.create_tenant("tailspin.example.com", users=2)
        app = emu.create_app(tenant, "reporter", ["User.Read.All"])
        emu.upload_certificate(app, ident.cert)
        emu.grant(app, "Directory.Read.All")
        emu.revoke(emu.default_app, "User.Read.All")
        emu.propagation_delay = 5
        emu.advance(42)
        keys = emu.key_credentials(app)
        token = emu.issue_token(app)
        ca = Path(emu.ca_bundle).read_bytes()
    with Emulator(state_dir=state) as emu:
        assert emu.key_credentials(app) == keys
        assert emu.roles(app) == ["Directory.Read.All", "User.Read.All"]
        assert emu.roles(emu.default_app) == []
        assert emu.token_lifetime == 900 and emu.propagation_delay == 5
        assert emu.backend.clock.offset == 42
        assert len(emu.backend.tenant("tailspin.example.com").users) == 2
        assert Path(emu.ca_bundle).read_bytes() == ca
        # A token issued before the restart is still good: the signing key was kept.
        r = requests.get(
            f"{emu.graph_url}/v1.0/users?$top=1",
            headers={"Authorization": f"Bearer {token}"},
            verify=emu.ca_bundle,
            timeout=30,
        )
        assert r.status_code == 200, r.text
        # New ids do not collide with the old ones (the counter was kept).
        other = emu.create_app(tenant, "second")
        assert other.client_id not in (app.client_id, emu.default_app.client_id)


def test_a_failed_write_leaves_the_previous_state(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from graphkit import files

    state = tmp_path / "state"
    with Emulator(users=1, state_dir=state) as emu:
        emu.grant(emu.default_app, "Group.Read.All")
        saved = (state / "state.json").read_bytes()

        def boom(fd: int) -> None:
            raise OSError(28, "No space left on device")

        monkeypatch.setattr(files, "_fsync", boom)
        with pytest.raises(InputError, match="No space left on device"):
            emu.grant(emu.default_app, "Directory.Read.All")
        monkeypatch.undo()
        assert (state / "state.json").read_bytes() == saved
        emu.grant(emu.default_app, "Organization.Read.All")  # the next write has it all
        roles = json.loads((state / "state.json").read_bytes())["backend"]["apps"][0]["roles"]
        assert "Directory.Read.All" in roles and "Organization.Read.All" in roles
        assert sorted(p.name for p in state.iterdir()) == ["ca.pem", "state.json", "tls.json"]


def test_a_state_dir_others_can_write_is_refused(tmp_path: Path) -> None:
    state = tmp_path / "open"
    state.mkdir()
    state.chmod(0o777)
    with pytest.raises(ValueError, match="writable by other users"):
        Emulator(state_dir=state)
    from _onboarding_helpers import run_cli

    r = run_cli(["emulator", "serve", "--state-dir", str(state)])
    assert r.exit_code == ExitCode.INPUT
    assert r.stderr.startswith("graphkit: error: --state-dir: state directory")


def test_certificate_flag_on_every_restart(tmp_path: Path) -> None:
    # `serve --state-dir D --certificate C` in a service script: the second start finds C
    # already uploaded and keeps one copy (it used to be refused as a duplicate).
    state, ident = tmp_path / "state", identity(tmp_path)
    for _ in range(2):
        proc, info = _start(state, "--users", "1", "--certificate", str(ident.combined))
        try:
            assert info["app"]["certificates"] == 1
            path = info["environment"]["AZURE_CLIENT_CERTIFICATE_PATH"]
            assert path == str(ident.combined.absolute())
        finally:
            _stop(proc, info)
