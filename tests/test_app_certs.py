"""`graphkit cert list|add|remove` against the emulator: real msal, requests and HTTPS.

With the app's own certificate (addKey/removeKey and a proof, no permission needed),
the certificate in use protected by --force, and the administrator's read-modify-write
PATCH that keeps every other credential.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from _app_keys_helpers import registered, save_profile, token_for
from _auth_helpers import Identity, make_identity
from _emulator_helpers import no_ca_env
from _onboarding_helpers import clean_env, run_cli

from graphkit import admin_signin
from graphkit.errors import ExitCode

_no_ca_env = pytest.fixture(autouse=True)(no_ca_env)


@pytest.fixture
def emu(graphkit_emulator: Any) -> Any:
    return graphkit_emulator


@pytest.fixture
def ident(emu: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Identity:
    """A profile ``work`` (the default) on the emulator's default app, its certificate
    uploaded."""
    clean_env(monkeypatch, tmp_path / "home")
    ident = make_identity(tmp_path / "keys")
    emu.upload_certificate(emu.default_app, ident.cert)
    save_profile(emu, ident.combined)
    return ident


def _gets_tokens(emu: Any, ident: Identity) -> bool:
    return "access_token" in token_for(emu, ident.crt, ident.key_pem)


def test_list_marks_the_certificate_in_use(emu: Any, ident: Identity, tmp_path: Path) -> None:
    other = make_identity(tmp_path / "other", key_index=1, cn="next-cert")
    emu.upload_certificate(emu.default_app, other.cert)
    r = run_cli(["cert", "list", "--json"])
    assert r.exit_code == ExitCode.PERMISSION, r.stderr
    assert "Application.Read.All" in r.stderr  # it may not read itself: says what to grant
    emu.grant(emu.default_app, "Application.Read.All")
    r = run_cli(["cert", "list", "--json"])
    assert r.exit_code == 0, r.stderr
    rows = {row["thumbprint"]: row for row in r.json()}
    assert sorted(rows) == sorted([ident.sha1, other.sha1])
    assert rows[ident.sha1]["in_use"] is True and rows[other.sha1]["in_use"] is False
    assert rows[other.sha1]["display_name"] == "CN=next-cert"
    assert 363 <= rows[other.sha1]["days_left"] <= 365
    keys = {k["keyId"] for k in emu.key_credentials(emu.default_app)}
    assert {row["key_id"] for row in rows.values()} == keys
    table = run_cli(["cert", "list"])
    assert table.exit_code == 0, table.stderr
    [mine] = [line for line in table.stdout.splitlines() if ident.sha1 in line]
    assert mine.lstrip().startswith("*")


def test_add_and_remove_with_the_apps_own_certificate(
    emu: Any, ident: Identity, tmp_path: Path
) -> None:
    # No permission at all: the object id is given, the proof does the rest.
    assert emu.roles(emu.default_app) == ["User.Read.All"]
    oid = emu.default_app.object_id
    other = make_identity(tmp_path / "other", key_index=1)
    r = run_cli(["cert", "add", str(other.crt), "--object-id", oid, "--json"])
    assert r.exit_code == 0, r.stderr
    added = r.json()
    assert added["thumbprint"] == other.sha1
    assert registered(emu) == sorted([ident.sha1, other.sha1])
    assert _gets_tokens(emu, other)
    proofs = [e for e in emu.requests() if e["path"].endswith("/addKey")]
    assert [e["status"] for e in proofs] == [200]
    # Without reading the list, a keyId names it.
    r = run_cli(["cert", "remove", added["key_id"], "--object-id", oid])
    assert r.exit_code == 0, r.stderr
    assert registered(emu) == [ident.sha1]
    assert not _gets_tokens(emu, other)


def test_remove_by_thumbprint_when_the_app_may_read_itself(
    emu: Any, ident: Identity, tmp_path: Path
) -> None:
    emu.grant(emu.default_app, "Application.Read.All")
    other = make_identity(tmp_path / "other", key_index=1)
    emu.upload_certificate(emu.default_app, other.cert)
    shown = ":".join(other.sha1[i : i + 2] for i in range(0, 40, 2)).lower()  # openssl's form
    r = run_cli(["cert", "remove", shown])
    assert r.exit_code == 0, r.stderr
    assert registered(emu) == [ident.sha1]
    r = run_cli(["cert", "remove", other.sha1])
    assert r.exit_code == ExitCode.NOT_FOUND
    assert f"holds no certificate {other.sha1}" in r.stderr


def test_removing_the_certificate_in_use_needs_force(emu: Any, ident: Identity) -> None:
    emu.grant(emu.default_app, "Application.Read.All")
    r = run_cli(["cert", "remove", ident.sha1])
    assert r.exit_code == ExitCode.USAGE
    [line] = [x for x in r.stderr.splitlines() if x.startswith("graphkit: error:")]
    assert "is the one profile work signs in with" in line and "AADSTS700027" in line
    assert "--force" in line and "graphkit rotate" in line
    assert registered(emu) == [ident.sha1]
    r = run_cli(["cert", "remove", ident.sha1, "--force"])
    assert r.exit_code == 0, r.stderr
    assert "tokens are now refused" in r.stderr
    assert registered(emu) == []
    r = run_cli(["token", "--force-refresh"])
    assert r.exit_code == ExitCode.AUTH


def test_a_certificate_to_add_is_checked_before_anything_is_sent(
    emu: Any, ident: Identity, tmp_path: Path
) -> None:
    emu.clear_requests()
    r = run_cli(["cert", "add", str(tmp_path / "missing.crt")])
    assert r.exit_code == ExitCode.INPUT
    r = run_cli(["cert", "remove", "not-a-thumbprint"])
    assert r.exit_code == ExitCode.USAGE
    assert emu.requests() == []


# ---------------------------------------- --admin: the administrator's PATCH


@pytest.fixture
def approve_as(emu: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    """``approve_as(user)``: from then on, the administrator sign-in's first wait
    between polls approves its device code as ``user`` (through the emulator's API, as
    the person at the browser would); waits cost no time."""
    t = [0.0]
    who: list[str] = []

    def sleep(seconds: float) -> None:
        t[0] += seconds
        try:
            code = emu.wait_for_device_code(timeout=0.1)
        except TimeoutError:
            return  # approved already
        emu.approve_device_code(code, who[-1])

    defaults = admin_signin.sign_in.__kwdefaults__
    assert defaults is not None
    monkeypatch.setitem(defaults, "sleep", sleep)
    monkeypatch.setitem(defaults, "clock", lambda: t[0])
    return who.append


def test_cert_add_and_remove_admin_keep_two_other_certificates_and_a_password(
    emu: Any, ident: Identity, tmp_path: Path, approve_as: Any
) -> None:
    app = emu.default_app
    two = make_identity(tmp_path / "two", key_index=1)
    three = make_identity(tmp_path / "three", key_index=2)
    new = make_identity(tmp_path / "new", key_index=3)
    emu.upload_certificate(app, two.cert)
    emu.upload_certificate(app, three.cert)
    emu.add_password_credential(app, "ci secret")
    before = {k["keyId"]: k for k in emu.key_credentials(app)}
    passwords = emu.backend.app(app.client_id).passwords
    before_passwords = [dict(p) for p in passwords]
    emu.create_account("ada", roles=["Application Administrator"])
    approve_as("ada")
    r = run_cli(["cert", "add", str(new.crt), "--admin", "--json"])
    assert r.exit_code == 0, r.stderr
    assert "Sign in as an administrator" in r.stderr and "Signed in as ada" in r.stderr
    assert r.json()["thumbprint"] == new.sha1 and r.json()["key_id"]
    assert registered(emu) == sorted([ident.sha1, two.sha1, three.sha1, new.sha1])
    kept = {k["keyId"]: k for k in emu.key_credentials(app)}
    assert all(kept[key_id] == entry for key_id, entry in before.items())
    assert [dict(p) for p in emu.backend.app(app.client_id).passwords] == before_passwords
    assert _gets_tokens(emu, new)
    # The listing, as the administrator.
    r = run_cli(["cert", "list", "--admin", "--json"])
    assert r.exit_code == 0, r.stderr
    assert sorted(row["thumbprint"] for row in r.json()) == registered(emu)
    # Remove it again the same way: the other three certificates and the password stay.
    r = run_cli(["cert", "remove", new.sha1, "--admin"])
    assert r.exit_code == 0, r.stderr
    assert {k["keyId"]: k for k in emu.key_credentials(app)} == before
    assert [dict(p) for p in emu.backend.app(app.client_id).passwords] == before_passwords
    patches = [e for e in emu.requests() if e["method"] == "PATCH"]
    assert [e["status"] for e in patches] == [204, 204]
    # The certificate in use is protected here too; a plain user may not write.
    r = run_cli(["cert", "remove", ident.sha1, "--admin"])
    assert r.exit_code == ExitCode.USAGE and "--force" in r.stderr
    emu.create_account("bob")
    approve_as("bob")
    r = run_cli(["cert", "add", str(new.crt), "--admin"])
    assert r.exit_code == ExitCode.PERMISSION, r.stderr
    [line] = [x for x in r.stderr.splitlines() if x.startswith("graphkit: error:")]
    assert "Application Administrator" in line and "application permission" not in line
    assert {k["keyId"]: k for k in emu.key_credentials(app)} == before


def test_cert_add_admin_rescues_an_app_whose_certificate_expired(
    emu: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, approve_as: Any
) -> None:
    import datetime as dt

    clean_env(monkeypatch, tmp_path / "home")
    old = make_identity(
        tmp_path / "old", days=1, now=dt.datetime.now(dt.UTC) - dt.timedelta(days=3)
    )
    fresh = make_identity(tmp_path / "fresh", key_index=1)
    save_profile(emu, old.combined)
    r = run_cli(["cert", "add", str(fresh.crt)])  # the expired one cannot sign a proof
    assert r.exit_code == ExitCode.CONFIG and "expired" in r.stderr
    emu.create_account("ada", roles=["Cloud Application Administrator"])
    approve_as("ada")
    r = run_cli(["cert", "add", str(fresh.crt), "--admin"])
    assert r.exit_code == 0, r.stderr
    assert _gets_tokens(emu, fresh)


def test_a_refused_proof_says_why_and_shows_no_token_or_proof(
    emu: Any, ident: Identity, tmp_path: Path
) -> None:
    # A token in the cache, then the emulator's clock 20 minutes on: the proof graphkit
    # signs now has expired by the time Graph reads it (as with a computer's clock
    # that is 20 minutes slow).
    assert run_cli(["token", "--profile", "work"]).exit_code == 0
    emu.advance(20 * 60)
    other = make_identity(tmp_path / "other", key_index=1)
    r = run_cli(["cert", "add", str(other.crt), "--object-id", emu.default_app.object_id])
    assert r.exit_code == ExitCode.AUTH, r.stderr
    [line] = [x for x in r.stderr.splitlines() if x.startswith("graphkit: error:")]
    assert f"Graph refused the proof signed by certificate {ident.sha1}" in line
    assert "graphkit cert add FILE --admin" in line
    assert emu.requests()[-1]["proof_refusal"] == "expired"
    assert "eyJ" not in r.stderr + r.stdout
    assert registered(emu) == [ident.sha1]


def test_a_key_id_that_may_be_the_certificate_in_use_needs_force(emu: Any, ident: Identity) -> None:
    # The app may not read itself, so nothing tells which certificate the keyId names:
    # it may be the one the profile signs in with.
    [key] = emu.key_credentials(emu.default_app)
    oid = emu.default_app.object_id
    r = run_cli(["cert", "remove", key["keyId"], "--object-id", oid])
    assert r.exit_code == ExitCode.USAGE, r.stderr
    [line] = [x for x in r.stderr.splitlines() if x.startswith("graphkit: error:")]
    assert "cannot tell" in line and "--force" in line
    assert registered(emu) == [ident.sha1]
    r = run_cli(["cert", "remove", key["keyId"], "--object-id", oid, "--force"])
    assert r.exit_code == 0, r.stderr
    assert registered(emu) == []


def test_cert_remove_admin_by_key_id_protects_the_certificate_in_use(
    emu: Any, ident: Identity, approve_as: Any
) -> None:
    # Named by keyId, the certificate in use is recognised only in the registration
    # the administrator reads: refused there, before any PATCH.
    [key] = emu.key_credentials(emu.default_app)
    emu.create_account("ada", roles=["Application Administrator"])
    approve_as("ada")
    r = run_cli(["cert", "remove", key["keyId"], "--admin"])
    assert r.exit_code == ExitCode.USAGE, r.stderr
    assert "is the one profile work signs in with" in r.stderr and "--force" in r.stderr
    assert registered(emu) == [ident.sha1]
    assert not [e for e in emu.requests() if e["method"] == "PATCH"]
    approve_as("ada")
    r = run_cli(["cert", "remove", key["keyId"], "--admin", "--force"])
    assert r.exit_code == 0, r.stderr
    assert registered(emu) == []
    assert "tokens are now refused" in r.stderr  # says what broke, as by thumbprint


def test_adding_a_certificate_the_app_holds_says_so_not_to_check_query_options(
    emu: Any, ident: Identity
) -> None:
    oid = emu.default_app.object_id
    r = run_cli(["cert", "add", str(ident.crt), "--object-id", oid])
    assert r.exit_code == ExitCode.USAGE, r.stderr  # Graph's 400
    [line] = [x for x in r.stderr.splitlines() if x.startswith("graphkit: error:")]
    assert f"addKey refused certificate {ident.sha1}" in line
    assert "already on the application" in line  # Graph's own words kept
    assert "--filter" not in line and "graphkit cert list" in line
    assert registered(emu) == [ident.sha1]


def test_an_object_id_of_another_app_is_refused_before_its_certificates_change(
    emu: Any, ident: Identity, tmp_path: Path, approve_as: Any
) -> None:
    # A mistyped --object-id (another app's) must not make the PATCH land on that app.
    other_app = emu.create_app(emu.default_tenant, "other", ["User.Read.All"])
    new = make_identity(tmp_path / "new", key_index=3)
    emu.create_account("ada", roles=["Application Administrator"])
    approve_as("ada")
    r = run_cli(["cert", "add", str(new.crt), "--admin", "--object-id", other_app.object_id])
    assert r.exit_code == ExitCode.CONFIG, r.stderr
    [line] = [x for x in r.stderr.splitlines() if x.startswith("graphkit: error:")]
    assert other_app.client_id in line and emu.default_app.client_id in line
    assert emu.key_credentials(other_app) == []
    assert registered(emu) == [ident.sha1]
    assert not [e for e in emu.requests() if e["method"] == "PATCH"]
