"""Shared by test_app_certs.py and test_rotate.py: a saved profile on the emulator's
default app, the certificates the app holds, and whether a pair gets tokens."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

from _emulator_helpers import msal_app
from _onboarding_helpers import emulator_flags, run_cli


def save_profile(emu: Any, certificate: Path, private_key: Path | None = None) -> None:
    """Profile ``work`` (the default) on ``emu``'s default app, with this certificate."""
    key = ["--private-key", str(private_key)] if private_key else []
    r = run_cli(
        [
            "config",
            "set",
            "work",
            "--tenant",
            emu.default_tenant.id,
            "--client-id",
            emu.default_app.client_id,
            "--certificate",
            str(certificate),
            *key,
            *emulator_flags(emu),
        ]
    )
    assert r.exit_code == 0, r.stderr


def registered(emu: Any) -> list[str]:
    """The SHA-1 thumbprints of the certificates the app holds (customKeyIdentifier)."""
    return sorted(
        base64.b64decode(k["customKeyIdentifier"]).hex().upper()
        for k in emu.key_credentials(emu.default_app)
    )


def token_for(emu: Any, cert: Path, key: Path) -> dict[str, Any]:
    """msal's own answer for the default app signing in with this pair (a fresh app)."""
    credential = {"private_key": key.read_text(), "public_certificate": cert.read_text()}
    app = msal_app(emu, emu.default_app.client_id, credential)
    return dict(app.acquire_token_for_client([emu.graph_scope]))
