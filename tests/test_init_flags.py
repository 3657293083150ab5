"""`graphkit init` for automation: --dir, --size and --days really shape what is made."""

from __future__ import annotations

import stat
from pathlib import Path
from typing import Any

import pytest
from _onboarding_helpers import all_files, clean_env, init_args, run_cli
from cryptography.hazmat.primitives.asymmetric import rsa

from graphkit import crypto


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    return clean_env(monkeypatch, tmp_path / "home")


def test_dir_size_and_days(graphkit_emulator: Any, home: Path, tmp_path: Path) -> None:
    emu = graphkit_emulator
    target = tmp_path / "keys" / "reports"  # does not exist yet
    made = run_cli(
        init_args(emu, "--dir", str(target), "--size", "3072", "--days", "42", "--no-test",
                  "--json")
    )  # fmt: skip
    assert made.exit_code == 0, made.stderr
    info = made.json()
    key_path, cert_path = Path(info["private_key"]), Path(info["certificate"])

    # --dir: both files there, the directory made private; nothing in the default place.
    assert key_path.parent == cert_path.parent == target
    assert stat.S_IMODE(target.stat().st_mode) == 0o700
    assert stat.S_IMODE(key_path.stat().st_mode) == 0o600
    assert not (home / "credentials").exists()
    assert [p for p in all_files(home) if p.suffix in (".key", ".crt")] == []

    # --size: the key really is 3072 bits, and the certificate is its pair.
    key = crypto.load_private_key(key_path.read_bytes())
    assert isinstance(key, rsa.RSAPrivateKey) and key.key_size == 3072
    cert = crypto.load_certificate_bundle(cert_path.read_bytes()).certificate
    assert cert.public_key().public_numbers() == key.public_key().public_numbers()

    # --days: valid for 42 days (graphkit back-dates the start by minutes for clock skew).
    assert (cert.not_valid_after_utc - cert.not_valid_before_utc).days == 42

    # The saved profile uses that pair: after the upload, a token and a Graph call work.
    emu.upload_certificate(emu.default_app, cert)
    users = run_cli(["query", "/users", "--profile", "work", "--top", "2", "-o", "json"])
    assert users.exit_code == 0, users.stderr
    assert len(users.json()) == 2
