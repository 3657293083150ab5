"""Days left: one count for every command (thumbprint, doctor, init, config show and
list, token/query warnings), and one expiry-warning rule (30 days, or the last third of
a shorter lifetime) naming one next step. Through the real commands (CliRunner).
"""

from __future__ import annotations

import datetime as dt
import json
import re
from pathlib import Path
from typing import Any

import pytest
from _auth_helpers import clean_env, emulator_env
from _onboarding_helpers import init_args, run_cli
from _x509_helpers import rsa_key, self_signed

from graphkit import certificates, crypto
from graphkit.files import PRIVATE, PUBLIC, atomic_write

NOW = dt.datetime.now(dt.UTC)


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    return clean_env(monkeypatch, tmp_path / "home")


def _pair(directory: Path, *, issued_days_ago: float, lifetime_days: float) -> tuple[Path, Path]:
    """A key and a certificate issued ``issued_days_ago`` for ``lifetime_days``."""
    key = rsa_key("days-left")
    start = NOW - dt.timedelta(days=issued_days_ago)
    cert = self_signed(
        key,
        crypto.parse_subject(cn="days-left"),
        not_before=start,
        not_after=start + dt.timedelta(days=lifetime_days),
    )
    directory.mkdir(parents=True, exist_ok=True)
    key_path, cert_path = directory / "app.key", directory / "app.crt"
    atomic_write(key_path, crypto.dump_private_key(key), mode=PRIVATE, force=True)
    atomic_write(cert_path, crypto.dump_certificate(cert), mode=PUBLIC, force=True)
    return key_path, cert_path


def _profile(key: Path, cert: Path) -> None:
    r = run_cli(
        [
            "config",
            "set",
            "work",
            "--tenant",
            "contoso.onmicrosoft.com",
            "--client-id",
            "11111111-2222-3333-4444-555555555555",
            "--certificate",
            str(cert),
            "--private-key",
            str(key),
        ]
    )
    assert r.exit_code == 0, r.stderr


def _doctor_certificate() -> dict[str, Any]:
    r = run_cli(["doctor", "--profile", "work", "--json"])
    return next(c for c in json.loads(r.stdout)["checks"] if c["name"] == "certificate")


@pytest.mark.parametrize(
    ("issued", "lifetime", "days", "words"),
    [
        (0.001, 365, 364, "364 days left"),  # a new 365-day certificate
        (367.5, 365, -2, "expired 2 days ago"),  # thumbprint said -3, doctor said 2
        (300.5, 301, 0, "expires today"),
    ],
)
def test_every_command_counts_the_same_days(
    home: Path, tmp_path: Path, issued: float, lifetime: float, days: int, words: str
) -> None:
    key, cert = _pair(tmp_path / "pair", issued_days_ago=issued, lifetime_days=lifetime)
    _profile(key, cert)
    thumb = run_cli(["thumbprint", "--json", str(cert)]).json()
    assert thumb["days_left"] == days and thumb["validity"] == words
    text = run_cli(["thumbprint", str(cert)]).stdout
    days_line = next(ln for ln in text.splitlines() if ln.startswith("Days left:"))
    assert (words if days < 0 else str(days)) in days_line
    check = _doctor_certificate()
    assert check["data"]["days_left"] == days and words in check["detail"], check
    listed = run_cli(["config", "list"]).stdout
    assert (
        words in listed
        and crypto.thumbprints(crypto.load_certificate_bundle(cert.read_bytes()).certificate)[
            "sha1"
        ]
        in listed
    )
    assert (
        run_cli(["config", "list", "--json"]).json()["profiles"]["work"]["certificate_status"][
            "days_left"
        ]
        == days
    )
    if days >= 0:
        shown = run_cli(["config", "show", "--profile", "work"]).stdout
        assert words in shown


def test_init_counts_like_thumbprint(graphkit_emulator: Any, home: Path) -> None:
    r = run_cli(init_args(graphkit_emulator, "--no-test"))
    assert r.exit_code == 0, r.stderr
    assert "(364 days left)" in r.stderr  # it said "in 365 days"
    cert = re.search(r"Certificate:\s+(\S+)", r.stderr).group(1)  # type: ignore[union-attr]
    assert run_cli(["thumbprint", "--json", cert]).json()["days_left"] == 364


@pytest.mark.parametrize(
    ("issued", "lifetime", "warns"),
    [
        (0.01, 30, False),  # a fresh 30-day certificate does not nag from its first day
        (19, 30, False),  # 11 days left of 30: not yet the last third
        (21, 30, True),  # 9 days left: the last third
        (0.01, 10, False),
        (7.5, 10, True),
        (300, 365, False),  # 65 days left
        (336, 365, True),  # 29 days left: within 30 days
    ],
)
def test_the_expiry_warning_rule_on_token_and_query(
    graphkit_emulator: Any, home: Path, tmp_path: Path, issued: float, lifetime: int, warns: bool
) -> None:
    key, cert = _pair(tmp_path / "pair", issued_days_ago=issued, lifetime_days=lifetime)
    combined = tmp_path / "pair" / "app.pem"
    key_obj = crypto.load_private_key(key.read_bytes())
    cert_obj = crypto.load_certificate_bundle(cert.read_bytes()).certificate
    atomic_write(combined, crypto.dump_combined_pem(key_obj, cert_obj), mode=PRIVATE, force=True)
    graphkit_emulator.upload_certificate(graphkit_emulator.default_app, cert_obj)
    env = emulator_env(graphkit_emulator, combined, home)
    for args in (["token", "--raw"], ["query", "/users", "--top", "1", "-o", "json"]):
        r = run_cli_env(args, env)
        assert r.exit_code == 0, r.stderr
        warned = [ln for ln in r.stderr.splitlines() if "expires" in ln]
        assert bool(warned) is warns, (args, r.stderr)
        if warns:
            assert certificates.renew_step() in warned[0]


def run_cli_env(args: list[str], env: dict[str, str]) -> Any:
    from typer.testing import CliRunner

    from graphkit.cli import app

    return CliRunner().invoke(app, args, env=env)


def test_every_expiry_message_names_the_same_next_step(
    graphkit_emulator: Any, home: Path, tmp_path: Path
) -> None:
    key, cert = _pair(tmp_path / "pair", issued_days_ago=350, lifetime_days=365)
    _profile(key, cert)
    # A certificate that still works renews itself in one command: rotate.
    step = "`graphkit rotate --profile work`"
    thumb = run_cli(["thumbprint", str(cert)])
    assert "`graphkit rotate --profile NAME`" in thumb.stderr, thumb.stderr
    assert step in (_doctor_certificate()["fix"] or "")
    shown = run_cli(["config", "show", "--profile", "work"])
    assert step in shown.stderr
    r = run_cli(["init", "--profile", "work", "--no-test", "--yes"])
    assert r.exit_code == 0, r.stderr
    assert step in r.stderr


def test_an_expired_certificate_is_renewed_with_an_admin_not_rotate(
    graphkit_emulator: Any, home: Path, tmp_path: Path
) -> None:
    # rotate's proof must be signed by a valid certificate: an expired one cannot.
    key, cert = _pair(tmp_path / "pair", issued_days_ago=400, lifetime_days=365)
    _profile(key, cert)
    fix = _doctor_certificate()["fix"] or ""
    assert "`graphkit rotate --profile" not in fix, fix
    assert "`graphkit init --profile work --new-key`" in fix
    assert "`graphkit cert add --admin" in fix
    thumb = run_cli(["thumbprint", str(cert)])
    assert "`graphkit rotate --profile" not in thumb.stderr
    assert "`graphkit cert add --admin CERT`" in thumb.stderr
    # The first place a user meets it: every token request of the profile.
    token = run_cli(["token", "--profile", "work"])
    assert token.exit_code != 0 and "expired on" in token.stderr
    assert "`graphkit init --profile work --new-key`" in token.stderr, token.stderr
    assert "`graphkit cert add --admin CERT`" in token.stderr
