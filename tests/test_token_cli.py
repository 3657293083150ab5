"""`graphkit token` end to end: real msal and requests against the emulator."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from _auth_helpers import (
    PASSPHRASE,
    Identity,
    clean_env,
    emulator_env,
    make_identity,
    token_cache_file,
    token_cache_files,
)
from typer.testing import CliRunner

from graphkit import tokens
from graphkit.cli import app
from graphkit.cli.token import mask, relative
from graphkit.errors import ExitCode

runner = CliRunner()


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("NO_COLOR", "1")
    return clean_env(monkeypatch, tmp_path / "home")


@pytest.fixture(scope="module")
def ident(tmp_path_factory: pytest.TempPathFactory) -> Identity:
    return make_identity(tmp_path_factory.mktemp("ident"))


# ------------------------------------------------------------------ formatting


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (3540, "in 59 min"),
        (3599.9, "in 59 min"),
        (59, "in 59 s"),
        (-120, "2 min ago"),
        (3900, "in 1 h 5 min"),
        (7200, "in 2 h"),
        (90000, "in 1 d 1 h"),
    ],
)
def test_relative(seconds: float, text: str) -> None:
    assert relative(seconds) == text


def test_mask_shows_only_the_header() -> None:
    token = "eyJ0eXAiOiJKV1QiLCJhbGciOiJSUzI1NiJ9." + "x" * 400 + ".sig"
    shown = mask(token)
    assert shown.startswith("eyJ0eXAiOiJK…") and "x" * 5 not in shown
    assert str(len(token)) in shown


def test_raw_and_json_together_is_a_usage_error(home: Path) -> None:
    r = runner.invoke(app, ["token", "--raw", "--json"])
    assert r.exit_code == ExitCode.USAGE
    assert "cannot be combined" in r.stderr


def test_nothing_configured_is_a_config_error(home: Path) -> None:
    r = runner.invoke(app, ["token"])
    assert r.exit_code == ExitCode.CONFIG
    assert r.stderr.startswith("graphkit: error: no tenant configured")
    assert r.stderr.count("\n") == 1


# ------------------------------------------------------------ against the emulator


def _upload(emu: Any, ident: Identity) -> Any:
    app_ = emu.default_app
    emu.upload_certificate(app_.client_id, ident.cert)
    return app_


def _env_vars(emu: Any, ident: Identity, home: Path) -> dict[str, str]:
    return {
        **emulator_env(emu, ident.pfx, home),
        "AZURE_CLIENT_CERTIFICATE_PASSWORD": PASSPHRASE.decode(),
    }


def _use_env_vars(emu: Any, ident: Identity, home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Upload ident's certificate and point graphkit at the emulator by environment."""
    _upload(emu, ident)
    for k, v in _env_vars(emu, ident, home).items():
        monkeypatch.setenv(k, v)


def _kinds(emu: Any) -> list[str]:
    return [r["kind"] for r in emu.requests()]


def _token_json(args: list[str]) -> dict[str, Any]:
    r = runner.invoke(app, ["token", "--json", *args])
    assert r.exit_code == 0, r.stderr
    data: dict[str, Any] = json.loads(r.stdout)
    return data


def test_token_from_a_profile(
    graphkit_emulator: Any, ident: Identity, home: Path, tmp_path: Path
) -> None:
    emu = graphkit_emulator
    _upload(emu, ident)
    passfile = tmp_path / "pass"
    passfile.write_bytes(PASSPHRASE + b"\n")
    r = runner.invoke(
        app,
        [
            "config", "set", "emu",
            "--tenant", emu.default_tenant.domain,
            "--client-id", emu.default_app.client_id,
            "--certificate", str(ident.enc_combined),
            "--passphrase-file", str(passfile),
            "--authority-host", emu.authority_host,
            "--graph-url", emu.graph_url,
            "--ca-bundle", emu.ca_bundle,
        ],
    )  # fmt: skip
    assert r.exit_code == 0, r.stderr
    data = _token_json([])
    assert data["profile"] == "emu"
    assert data["from_cache"] is False
    assert data["tenant"] == emu.default_tenant.id
    assert data["app_id"] == emu.default_app.client_id
    assert data["audience"] == emu.graph_url
    assert data["roles"] == ["User.Read.All"]
    assert data["scope"] == f"{emu.graph_url}/.default"
    assert "access_token" not in data and "…" in data["access_token_masked"]
    assert 3000 < data["expires_in"] <= 3600


def test_token_from_azure_identity_env_vars(
    graphkit_emulator: Any, ident: Identity, home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    emu = graphkit_emulator
    _use_env_vars(emu, ident, home, monkeypatch)
    data = _token_json(["--show-token"])
    assert data["from_cache"] is False and data["profile"] is None
    assert tokens.decode_claims(data["access_token"])["appid"] == emu.default_app.client_id


@pytest.mark.parametrize("form", ["key+crt", "combined", "pfx", "encrypted-pem"])
def test_token_from_flags_each_key_form(
    graphkit_emulator: Any, ident: Identity, home: Path, tmp_path: Path, form: str
) -> None:
    emu = graphkit_emulator
    _upload(emu, ident)
    f = ident.forms()[form]
    args = [
        "--tenant", emu.default_tenant.id,
        "--client-id", emu.default_app.client_id,
        "--certificate", f["certificate"],
        "--authority-host", emu.authority_host,
        "--graph-url", emu.graph_url,
        "--ca-bundle", emu.ca_bundle,
    ]  # fmt: skip
    if "private_key" in f:
        args += ["--private-key", f["private_key"]]
    if "passphrase" in f:
        passfile = tmp_path / "pass"
        passfile.write_bytes(f["passphrase"] + b"\n")
        args += ["--passphrase-file", str(passfile)]
    data = _token_json(args)
    assert data["roles"] == ["User.Read.All"] and data["from_cache"] is False
    # The same flags again: from the cache, not a single request.
    emu.clear_requests()
    assert _token_json(args)["from_cache"] is True
    assert emu.requests() == []


def test_human_output_raw_and_show_token(
    graphkit_emulator: Any, ident: Identity, home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    emu = graphkit_emulator
    _use_env_vars(emu, ident, home, monkeypatch)
    r = runner.invoke(app, ["token", "--raw"])
    assert r.exit_code == 0, r.stderr
    token = r.stdout.strip()
    assert r.stdout == token + "\n" and token.count(".") == 2

    import time

    import jwt

    before = time.time()
    r = runner.invoke(app, ["token"])
    after = time.time()
    assert r.exit_code == 0, r.stderr
    out = r.stdout
    assert token not in out and token[:12] in out
    for label in ("Expires", "Issued", "Audience", "Tenant", "App id", "Roles", "Source"):
        assert label in out
    # "Expires in ...", counted from some moment of the run: every second of it is a
    # candidate (no margin to tune; test_relative pins the wording itself).
    exp = jwt.decode(token, options={"verify_signature": False})["exp"]
    candidates = {relative(exp - at) for at in range(int(before), int(after) + 2)}
    [expires] = [line for line in out.splitlines() if "Expires" in line]
    assert any(text in expires for text in candidates), (expires, candidates)
    assert "User.Read.All" in out and "token cache" in out

    r = runner.invoke(app, ["token", "--show-token"])
    assert r.exit_code == 0
    assert token in r.stdout.splitlines()


def test_warm_second_run_makes_zero_requests_in_a_new_process(
    graphkit_emulator: Any, ident: Identity, home: Path
) -> None:
    emu = graphkit_emulator
    _upload(emu, ident)
    env = {**os.environ, **_env_vars(emu, ident, home), "NO_COLOR": "1"}
    cmd = [sys.executable, "-m", "graphkit", "token", "--json"]
    first = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    assert first.returncode == 0, first.stderr
    assert json.loads(first.stdout)["from_cache"] is False
    assert sorted(_kinds(emu)) == ["discovery", "token"]
    emu.clear_requests()
    second = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    assert second.returncode == 0, second.stderr
    assert json.loads(second.stdout)["from_cache"] is True
    assert emu.requests() == []
    # The plaintext-cache notice came once, with the first run.
    notice = "tokens are cached in"
    if token_cache_file(home).exists():  # no encrypted store on this machine
        assert notice in first.stderr
    assert notice not in second.stderr


def test_force_refresh_gets_a_new_token(
    graphkit_emulator: Any, ident: Identity, home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    emu = graphkit_emulator
    _use_env_vars(emu, ident, home, monkeypatch)
    first = _token_json(["--show-token"])
    emu.clear_requests()
    emu.advance(5)  # tokens carry whole-second iat: make the new one distinguishable
    forced = _token_json(["--show-token", "--force-refresh"])
    assert forced["from_cache"] is False
    assert forced["access_token"] != first["access_token"]
    assert _kinds(emu) == ["token"]
    emu.clear_requests()
    again = _token_json(["--show-token"])
    assert again["from_cache"] is True and again["access_token"] == forced["access_token"]
    assert emu.requests() == []


def test_700027_is_one_line_advice_with_auth_exit_code(
    graphkit_emulator: Any, ident: Identity, home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    emu = graphkit_emulator  # no certificate uploaded
    for k, v in _env_vars(emu, ident, home).items():
        monkeypatch.setenv(k, v)
    r = runner.invoke(app, ["token"])
    assert r.exit_code == ExitCode.AUTH
    # (A first run may also carry the one-time plaintext-cache notice.)
    errors = [line for line in r.stderr.splitlines() if "error" in line.split(":")[1]]
    assert errors == [r.stderr.splitlines()[-1]]
    assert r.stderr.splitlines()[-1] + "\n" == (
        f"graphkit: error: certificate {ident.sha1} is not registered on app "
        f"{emu.default_app.client_id}: upload the public certificate from {ident.pfx} "
        "(the .crt/.cer, never the key) under Certificates & secrets, or wait a few "
        "minutes after uploading\n"
    )
    assert r.stdout == ""


def test_expiring_certificate_warns_on_stderr(
    graphkit_emulator: Any, home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    emu = graphkit_emulator
    soon = make_identity(
        tmp_path / "soon", days=30, now=dt.datetime.now(dt.UTC) - dt.timedelta(days=22), key_index=2
    )
    _upload(emu, soon)
    for k, v in _env_vars(emu, soon, home).items():
        monkeypatch.setenv(k, v)
    r = runner.invoke(app, ["token", "--raw"])
    assert r.exit_code == 0, r.stderr
    assert "graphkit: warning: certificate" in r.stderr and "expires in 7 days" in r.stderr
    assert r.stdout.count(".") == 2  # stdout is still only the token


def test_eight_concurrent_processes_share_the_cache(
    graphkit_emulator: Any, ident: Identity, home: Path
) -> None:
    emu = graphkit_emulator
    _upload(emu, ident)
    env = {**os.environ, **_env_vars(emu, ident, home), "NO_COLOR": "1"}
    cmd = [sys.executable, "-m", "graphkit", "token", "--json"]
    procs = [
        subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(8)
    ]
    results = [(p.communicate(timeout=180), p.returncode) for p in procs]
    for (out, err), code in results:
        assert code == 0, err
        data = json.loads(out)
        assert data["roles"] == ["User.Read.All"]
        assert "Traceback" not in err and "not saved" not in err
    # The cache is whole and readable: JSON (where it is a plain file), and a further
    # run is served from it.
    plain = token_cache_file(home)
    if plain.exists():
        assert json.loads(plain.read_text()).get("AccessToken")
        assert plain.stat().st_mode & 0o777 == 0o600
    else:
        assert token_cache_files(home, encrypted=True)
    emu.clear_requests()
    last = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    assert last.returncode == 0, last.stderr
    assert json.loads(last.stdout)["from_cache"] is True
    assert emu.requests() == []
