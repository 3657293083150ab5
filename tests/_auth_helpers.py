"""Shared by the config/auth/token tests: a clean environment and certificate files."""

from __future__ import annotations

import datetime as dt
import functools
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from graphkit import crypto

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
    key = _key_n(key_index, bits)
    name = crypto.parse_subject(cn=cn)
    if bits < crypto.MIN_RSA_BITS:
        cert = _weak_self_sign(key, name, days)
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


@functools.cache
def _key_n(index: int, bits: int) -> Any:
    del index  # distinct cache entries give distinct keys
    if bits < 2048:
        from cryptography.hazmat.primitives.asymmetric import rsa

        return rsa.generate_private_key(public_exponent=65537, key_size=bits)
    return crypto.generate_private_key(bits)


def _weak_self_sign(key: Any, name: Any, days: int) -> Any:
    """A certificate on a short key (crypto.self_sign rightly refuses to make one)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes

    now = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5)
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + dt.timedelta(days=days))
        .sign(key, hashes.SHA256())
    )
