"""Key material the emulator needs: a CA, a TLS server certificate, a token-signing key.

Minting RSA keys costs tens of milliseconds each, so the material is made once per
process and shared by every emulator started in it (a test session starts many).
The CA is a throwaway: its private key never leaves this process's memory.
"""

from __future__ import annotations

import base64
import hashlib
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["Material", "load_or_mint", "material"]

# The hosts a client may use to reach the emulator; the server certificate names both.
HOSTS = ("127.0.0.1", "localhost")
# Long enough for any test session or demo; the material is remade per process anyway.
VALID_DAYS = 30
# With --state-dir the CA is kept: it lives long, and the server certificate it signs is
# re-issued (same CA, so stored --ca-bundle paths stay valid) when it nears its end.
STATE_CA_DAYS = 3650
RENEW_BEFORE_DAYS = 2
TLS_STATE_FILE = "tls.json"  # 0600: the CA's, server's and token-signing private keys
CA_FILE = "ca.pem"  # 0644: what clients trust


@dataclass(frozen=True)
class Material:
    """PEM bytes for the TLS side, and the key Entra-side tokens are signed with."""

    ca_pem: bytes
    server_cert_pem: bytes
    server_key_pem: bytes
    signing_key: Any  # rsa.RSAPrivateKey
    signing_cert_der: bytes
    kid: str  # base64url SHA-1 of the signing certificate, as Entra's JWKS uses


_lock = threading.Lock()
_material: Material | None = None


def _b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def material() -> Material:
    """The process-wide material, minted on first use."""
    global _material
    with _lock:
        if _material is None:
            _material = _mint()
        return _material


def _mint(ca_days: int = VALID_DAYS) -> Material:
    return _assemble(*_mint_parts(ca_days))


def _mint_parts(ca_days: int) -> tuple[Any, Any, Any, Any, Any, Any]:
    from graphkit import crypto

    ca_key, ca_cert = crypto.make_ca("graphkit emulator CA", days=ca_days)
    server_key, server_cert = crypto.issue_server_certificate(
        ca_key, ca_cert, HOSTS, days=VALID_DAYS
    )
    signing_key = crypto.generate_private_key(2048)
    signing_cert = crypto.self_sign(
        signing_key, crypto.parse_subject(cn="graphkit emulator token signing"), days=ca_days
    )
    return ca_key, ca_cert, server_key, server_cert, signing_key, signing_cert


def _assemble(
    ca_key: Any, ca_cert: Any, server_key: Any, server_cert: Any, signing_key: Any, signing: Any
) -> Material:
    from cryptography.hazmat.primitives import serialization

    from graphkit import crypto

    der = signing.public_bytes(serialization.Encoding.DER)
    return Material(
        ca_pem=crypto.dump_certificate(ca_cert),
        server_cert_pem=crypto.dump_certificate(server_cert),
        server_key_pem=crypto.dump_private_key(server_key),
        signing_key=signing_key,
        signing_cert_der=der,
        kid=_b64url(hashlib.sha1(der, usedforsecurity=False).digest()),  # a key id: a name
    )


def load_or_mint(state_dir: Path) -> Material:
    """The material kept in ``state_dir`` (made and written there the first time).

    The CA and the token-signing key survive restarts, so a stored ``--ca-bundle`` and
    tokens already issued (and cached by clients) stay valid. Files are written
    atomically: ``tls.json`` (private keys) 0600, ``ca.pem`` 0644.
    """
    import datetime as dt
    import json

    from cryptography import x509

    from graphkit import crypto
    from graphkit.files import PRIVATE, PUBLIC, atomic_write, read_private

    path = state_dir / TLS_STATE_FILE
    raw = read_private(path) if path.exists() else None
    if path.exists() and raw is None:
        raise ValueError(f"{path} is not private to this user (or not a regular file)")
    if raw is not None:
        data = json.loads(raw)
        ca_key = crypto.load_private_key(data["ca_key"].encode(), source="emulator CA key")
        ca_cert = x509.load_pem_x509_certificate(data["ca_cert"].encode())
        server_key = crypto.load_private_key(data["server_key"].encode(), source="server key")
        server_cert = x509.load_pem_x509_certificate(data["server_cert"].encode())
        signing_key = crypto.load_private_key(data["signing_key"].encode(), source="signing")
        signing = x509.load_pem_x509_certificate(data["signing_cert"].encode())
        left = server_cert.not_valid_after_utc - dt.datetime.now(dt.UTC)
        renew = left < dt.timedelta(days=RENEW_BEFORE_DAYS)
        if renew:
            server_key, server_cert = crypto.issue_server_certificate(
                ca_key, ca_cert, HOSTS, days=VALID_DAYS
            )
    else:
        parts = _mint_parts(STATE_CA_DAYS)
        ca_key, ca_cert, server_key, server_cert, signing_key, signing = parts
        renew = True
    if renew:
        data = {
            "ca_key": crypto.dump_private_key(ca_key).decode(),
            "ca_cert": crypto.dump_certificate(ca_cert).decode(),
            "server_key": crypto.dump_private_key(server_key).decode(),
            "server_cert": crypto.dump_certificate(server_cert).decode(),
            "signing_key": crypto.dump_private_key(signing_key).decode(),
            "signing_cert": crypto.dump_certificate(signing).decode(),
        }
        atomic_write(path, json.dumps(data).encode(), mode=PRIVATE, force=True)
    material = _assemble(ca_key, ca_cert, server_key, server_cert, signing_key, signing)
    ca = state_dir / CA_FILE
    if not ca.exists() or ca.read_bytes() != material.ca_pem:
        atomic_write(ca, material.ca_pem, mode=PUBLIC, force=True)
    return material
