"""A cached token answers only for what obtained it (issue 8), end to end.

Real msal and requests against the emulator, through the real command line:

- a token obtained with certificate A is never served for certificate B of the same
  app: across profiles, flags and the environment, on the warm path (the token cache
  read without msal) and on msal's own path;
- after an administrator grants a permission, `query` succeeds on its first try (a
  403 answered to a cached token is retried once with a fresh one), `query
  --force-refresh` exists, and the fresh token `doctor` obtains replaces the cached one;
- a combined PEM or a PFX, by flag or environment, signs with its own key even when
  the profile names another key.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from _auth_helpers import PASSPHRASE, Identity, clean_env, make_identity
from typer.testing import CliRunner

from graphkit.cli import app
from graphkit.errors import ExitCode

runner = CliRunner()


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("NO_COLOR", "1")
    return clean_env(monkeypatch, tmp_path / "home")


@pytest.fixture(scope="module")
def ident_a(tmp_path_factory: pytest.TempPathFactory) -> Identity:
    return make_identity(tmp_path_factory.mktemp("a"), key_index=0, cn="cert-a")


@pytest.fixture(scope="module")
def ident_b(tmp_path_factory: pytest.TempPathFactory) -> Identity:
    return make_identity(tmp_path_factory.mktemp("b"), key_index=1, cn="cert-b")


def _gk(*args: str | Path) -> Any:
    return runner.invoke(app, [str(a) for a in args])


def _connection(emu: Any) -> list[str]:
    return [
        "--tenant", emu.default_tenant.id,
        "--client-id", emu.default_app.client_id,
        "--authority-host", emu.authority_host,
        "--graph-url", emu.graph_url,
        "--ca-bundle", emu.ca_bundle,
    ]  # fmt: skip


def _profile(emu: Any, name: str, ident: Identity) -> None:
    r = _gk(
        "config", "set", name, *_connection(emu),
        "--certificate", ident.crt, "--private-key", ident.key_pem,
    )  # fmt: skip
    assert r.exit_code == 0, r.stderr


def _token(*args: str | Path) -> Any:
    return _gk("token", "--json", *args)


def _token_requests(emu: Any) -> int:
    return sum(1 for r in emu.requests() if r["kind"] == "token")


def _forget_authorities(home: Path) -> None:
    """Drop the index the warm path needs, so that the next run asks msal's cache."""
    index = home / "msal_authorities.json"
    assert index.exists()
    index.unlink()


# ------------------------------------------- a token never crosses certificates


@pytest.mark.parametrize("path", ["warm", "msal"])
def test_another_profile_with_an_unregistered_certificate_gets_no_cached_token(
    graphkit_emulator: Any, home: Path, ident_a: Identity, ident_b: Identity, path: str
) -> None:
    emu = graphkit_emulator
    emu.upload_certificate(emu.default_app.client_id, ident_a.cert)
    _profile(emu, "a", ident_a)
    _profile(emu, "b", ident_b)  # same app; this certificate was never uploaded
    r = _token("--profile", "a")
    assert r.exit_code == 0, r.stderr
    assert json.loads(r.stdout)["from_cache"] is False
    # A's token is cached: A itself is served from the cache...
    assert json.loads(_token("--profile", "a").stdout)["from_cache"] is True
    if path == "msal":
        _forget_authorities(home)
    before = _token_requests(emu)
    r = _token("--profile", "b")
    # ...but B must go to the identity platform, which refuses the unknown certificate.
    assert r.exit_code == ExitCode.AUTH, r.stdout
    assert ident_b.sha1 in r.stderr and "not registered" in r.stderr
    assert _token_requests(emu) == before + 1
    r = _gk("query", "/users", "--top", "1", "--profile", "b")
    assert r.exit_code == ExitCode.AUTH


@pytest.mark.parametrize("how", ["flag", "env"])
@pytest.mark.parametrize("path", ["warm", "msal"])
def test_a_certificate_by_flag_or_environment_gets_no_token_of_another(
    graphkit_emulator: Any,
    home: Path,
    ident_a: Identity,
    ident_b: Identity,
    monkeypatch: pytest.MonkeyPatch,
    how: str,
    path: str,
) -> None:
    emu = graphkit_emulator
    emu.upload_certificate(emu.default_app.client_id, ident_a.cert)
    _profile(emu, "a", ident_a)
    assert _token("--profile", "a").exit_code == 0
    if path == "msal":
        _forget_authorities(home)
    before = _token_requests(emu)
    if how == "flag":
        r = _token("--profile", "a", "--certificate", ident_b.combined)
    else:
        monkeypatch.setenv("AZURE_CLIENT_CERTIFICATE_PATH", str(ident_b.combined))
        r = _token("--profile", "a")
    assert r.exit_code == ExitCode.AUTH, r.stdout
    assert ident_b.sha1 in r.stderr
    assert _token_requests(emu) == before + 1


def test_two_registered_certificates_each_get_their_own_token(
    graphkit_emulator: Any, home: Path, ident_a: Identity, ident_b: Identity
) -> None:
    """During a certificate change both work, and each is proven by its own token."""
    emu = graphkit_emulator
    for ident in (ident_a, ident_b):
        emu.upload_certificate(emu.default_app.client_id, ident.cert)
    _profile(emu, "a", ident_a)
    _profile(emu, "b", ident_b)
    first_a = json.loads(_token("--profile", "a").stdout)
    first_b = json.loads(_token("--profile", "b").stdout)
    assert first_a["from_cache"] is first_b["from_cache"] is False
    assert json.loads(_token("--profile", "a").stdout)["from_cache"] is True
    assert json.loads(_token("--profile", "b").stdout)["from_cache"] is True
    assert _token_requests(emu) == 2


# ------------------------------------------------------ roles granted meanwhile


def test_query_after_a_grant_succeeds_on_its_first_try(
    graphkit_emulator: Any, home: Path, ident_a: Identity
) -> None:
    emu = graphkit_emulator
    emu.upload_certificate(emu.default_app.client_id, ident_a.cert)
    _profile(emu, "a", ident_a)
    assert "Organization.Read.All" not in emu.roles(emu.default_app)
    r = _gk("query", "/organization", "--profile", "a")
    assert r.exit_code == ExitCode.PERMISSION
    assert "Organization.Read.All" in r.stderr
    emu.grant(emu.default_app, "Organization.Read.All")
    r = _gk("query", "/organization", "--profile", "a", "-o", "json")
    assert r.exit_code == 0, r.stderr
    assert json.loads(r.stdout)[0]["id"] == emu.default_tenant.id
    # The fresh token replaced the cached one: the next run is served from the cache.
    before = _token_requests(emu)
    assert _gk("query", "/organization", "--profile", "a").exit_code == 0
    assert _token_requests(emu) == before


def test_a_403_with_a_fresh_token_says_so(
    graphkit_emulator: Any, home: Path, ident_a: Identity
) -> None:
    emu = graphkit_emulator
    emu.upload_certificate(emu.default_app.client_id, ident_a.cert)
    _profile(emu, "a", ident_a)
    assert _gk("token", "--profile", "a").exit_code == 0
    before = _token_requests(emu)
    r = _gk("query", "/organization", "--profile", "a")
    assert r.exit_code == ExitCode.PERMISSION
    # Retried once with a fresh token, and the message says whose roles it quotes.
    assert _token_requests(emu) == before + 1
    assert "fresh token" in r.stderr
    assert [k["kind"] for k in emu.requests()].count("graph") == 2


def test_query_force_refresh_asks_the_identity_platform(
    graphkit_emulator: Any, home: Path, ident_a: Identity
) -> None:
    emu = graphkit_emulator
    emu.upload_certificate(emu.default_app.client_id, ident_a.cert)
    _profile(emu, "a", ident_a)
    assert _gk("query", "/users", "--top", "1", "--profile", "a").exit_code == 0
    before = _token_requests(emu)
    assert _gk("query", "/users", "--top", "1", "--profile", "a").exit_code == 0
    assert _token_requests(emu) == before
    r = _gk("query", "/users", "--top", "1", "--profile", "a", "--force-refresh")
    assert r.exit_code == 0, r.stderr
    assert _token_requests(emu) == before + 1


def test_doctor_stores_the_fresh_token_it_obtained(
    graphkit_emulator: Any, home: Path, ident_a: Identity
) -> None:
    emu = graphkit_emulator
    emu.upload_certificate(emu.default_app.client_id, ident_a.cert)
    _profile(emu, "a", ident_a)
    assert _gk("token", "--profile", "a").exit_code == 0  # cached: User.Read.All only
    emu.grant(emu.default_app, "Organization.Read.All")
    r = _gk("doctor", "--profile", "a")
    assert r.exit_code == 0, r.stdout + r.stderr
    before = _token_requests(emu)
    r = _token("--profile", "a")
    data = json.loads(r.stdout)
    assert data["from_cache"] is True
    assert "Organization.Read.All" in data["roles"]
    assert _token_requests(emu) == before


# ---------------------------------------- a file that holds its own key uses it


@pytest.mark.parametrize("form", ["combined", "pfx"])
@pytest.mark.parametrize("how", ["flag", "env"])
def test_a_combined_pem_or_pfx_signs_with_its_own_key_beside_a_profile_key(
    graphkit_emulator: Any,
    home: Path,
    ident_a: Identity,
    ident_b: Identity,
    monkeypatch: pytest.MonkeyPatch,
    form: str,
    how: str,
) -> None:
    emu = graphkit_emulator
    emu.upload_certificate(emu.default_app.client_id, ident_b.cert)
    _profile(emu, "p", ident_a)  # the profile names A's key
    path = ident_b.combined if form == "combined" else ident_b.pfx
    monkeypatch.setenv("GRAPHKIT_KEY_PASSPHRASE", PASSPHRASE.decode())
    if how == "flag":
        r = _token("--profile", "p", "--certificate", path)
    else:
        monkeypatch.setenv("AZURE_CLIENT_CERTIFICATE_PATH", str(path))
        r = _token("--profile", "p")
    assert r.exit_code == 0, r.stderr
    assert json.loads(r.stdout)["from_cache"] is False
    r = _gk("query", "/users", "--top", "1", "--profile", "p", "--certificate", path)
    assert r.exit_code == 0, r.stderr


def test_a_private_key_given_in_the_same_run_is_paired_with_a_combined_pem(
    graphkit_emulator: Any, home: Path, ident_a: Identity, ident_b: Identity
) -> None:
    """An explicit --private-key still wins: it was given for that very certificate."""
    emu = graphkit_emulator
    emu.upload_certificate(emu.default_app.client_id, ident_b.cert)
    _profile(emu, "p", ident_a)
    r = _token(
        "--profile", "p", "--certificate", ident_b.combined, "--private-key", ident_a.key_pem
    )
    assert r.exit_code == ExitCode.CONFIG
    assert "does not match" in r.stderr


# ------------------------------------------------ one load of the certificate


def test_a_cold_token_parses_the_certificate_once(
    graphkit_emulator: Any, home: Path, ident_a: Identity, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Checked, warned about and signed with: the files are parsed one time in all."""
    from graphkit import certificates, crypto

    emu = graphkit_emulator
    emu.upload_certificate(emu.default_app.client_id, ident_a.cert)
    certificates._LOADED.clear()  # as in a new process
    parsed: list[str] = []
    real = crypto.load_certificate_bundle

    def counting(data: bytes, *args: Any, **kwargs: Any) -> Any:
        parsed.append(kwargs.get("source", ""))
        return real(data, *args, **kwargs)

    monkeypatch.setattr(crypto, "load_certificate_bundle", counting)
    r = _token(*_connection(emu), "--certificate", ident_a.crt, "--private-key", ident_a.key_pem)
    assert r.exit_code == 0, r.stderr
    assert json.loads(r.stdout)["from_cache"] is False
    assert parsed == [f"certificate {ident_a.crt}"]
