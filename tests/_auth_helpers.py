"""Shared by the config/auth/token tests: a clean environment, certificate files, and
settings that point at the emulator."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from _x509_helpers import rsa_key, self_signed

from graphkit import crypto
from graphkit.settings import Settings

PASSPHRASE = b"correct horse battery staple"

# Every variable graphkit's settings read: tests must not inherit them.
ENV_VARS = (
    "GRAPHKIT_HOME",
    "GRAPHKIT_PROFILE",
    "GRAPHKIT_CLOUD",
    "GRAPHKIT_GRAPH_URL",
    "GRAPHKIT_CA_BUNDLE",
    "GRAPHKIT_KEY_PASSPHRASE",
    "AZURE_TENANT_ID",
    "AZURE_CLIENT_ID",
    "AZURE_CLIENT_CERTIFICATE_PATH",
    "AZURE_CLIENT_CERTIFICATE_PASSWORD",
    "AZURE_AUTHORITY_HOST",
)


def clean_env(monkeypatch: pytest.MonkeyPatch, home: Path) -> Path:
    """Point GRAPHKIT_HOME at ``home`` and drop every other setting variable."""
    for var in ENV_VARS:
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("GRAPHKIT_HOME", str(home))
    return home


def emulator_env(emu: Any, certificate: Path, home: Path) -> dict[str, str]:
    """The variables (azure-identity's names, and graphkit's) that point the settings at
    ``emu``'s default app, signing in with ``certificate``."""
    return {
        "GRAPHKIT_HOME": str(home),
        "AZURE_TENANT_ID": emu.default_tenant.id,
        "AZURE_CLIENT_ID": emu.default_app.client_id,
        "AZURE_CLIENT_CERTIFICATE_PATH": str(certificate),
        "AZURE_AUTHORITY_HOST": emu.authority_host,
        "GRAPHKIT_GRAPH_URL": emu.graph_url,
        "GRAPHKIT_CA_BUNDLE": emu.ca_bundle,
    }


@dataclass
class Identity:
    """One key and certificate, written in every form graphkit accepts."""

    key: Any
    cert: Any
    key_pem: Path  # unencrypted PKCS#8
    enc_key_pem: Path  # encrypted with PASSPHRASE
    crt: Path  # certificate only (what gets uploaded)
    combined: Path  # key + certificate
    enc_combined: Path  # encrypted key + certificate
    pfx: Path  # PKCS#12 with PASSPHRASE

    @property
    def sha1(self) -> str:
        return crypto.thumbprints(self.cert)["sha1"]

    def forms(self) -> dict[str, dict[str, Any]]:
        """Settings overrides per key form (as flags would give them)."""
        return {
            "key+crt": {"certificate": str(self.crt), "private_key": str(self.key_pem)},
            "combined": {"certificate": str(self.combined)},
            "pfx": {"certificate": str(self.pfx), "passphrase": PASSPHRASE},
            "encrypted-pem": {
                "certificate": str(self.crt),
                "private_key": str(self.enc_key_pem),
                "passphrase": PASSPHRASE,
            },
        }


def make_identity(
    directory: Path,
    *,
    days: int = 365,
    now: dt.datetime | None = None,
    key_index: int = 0,
    bits: int = 2048,
    cn: str = "graphkit-test",
) -> Identity:
    """Write key/cert files into ``directory`` (keys are cached: RSA generation is slow)."""
    directory.mkdir(parents=True, exist_ok=True)
    key = rsa_key(f"identity-{key_index}", bits)
    name = crypto.parse_subject(cn=cn)
    if bits < crypto.MIN_RSA_BITS:  # crypto.self_sign rightly refuses to make one
        start = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5)
        cert = self_signed(key, name, not_before=start, not_after=start + dt.timedelta(days=days))
    else:
        cert = crypto.self_sign(key, name, days=days, now=now)
    paths = {
        "key_pem": crypto.dump_private_key(key),
        "enc_key_pem": crypto.dump_private_key(key, PASSPHRASE),
        "crt": crypto.dump_certificate(cert),
        "combined": crypto.dump_combined_pem(key, cert),
        "enc_combined": crypto.dump_combined_pem(key, cert, PASSPHRASE),
        "pfx": crypto.dump_pfx(key, cert, PASSPHRASE),
    }
    names = {
        "key_pem": "app.key",
        "enc_key_pem": "app.enc.key",
        "crt": "app.crt",
        "combined": "app.pem",
        "enc_combined": "app.enc.pem",
        "pfx": "app.pfx",
    }
    out: dict[str, Path] = {}
    for field_name, data in paths.items():
        p = directory / names[field_name]
        p.write_bytes(data)
        p.chmod(0o600)
        out[field_name] = p
    return Identity(key=key, cert=cert, **out)


def emu_settings(emu: Any, ident: Identity, **kw: Any) -> Settings:
    """Settings for ``emu``'s default app with ``ident``'s combined PEM; ``kw`` overrides."""
    values: dict[str, Any] = {
        "tenant": emu.default_tenant.id,
        "client_id": emu.default_app.client_id,
        "certificate": ident.combined,
        "authority_host": emu.authority_host,
        "graph_url": emu.graph_url,
        "ca_bundle": emu.ca_bundle,
    }
    values.update(kw)
    return Settings(**values)


def token_cache_files(home: Path, *, encrypted: bool = False) -> list[Path]:
    """The token caches (one per authority and certificate) written in ``home``."""
    return sorted(home.glob(f"msal_token_cache-*.{'bin' if encrypted else 'json'}"))


def token_cache_file(home: Path) -> Path:
    """The one plain-file token cache in ``home`` (a path that does not exist if none)."""
    files = token_cache_files(home)
    assert len(files) <= 1, files
    return files[0] if files else home / "msal_token_cache-(none).json"
