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
from typing import Any

__all__ = ["Material", "material"]

# The hosts a client may use to reach the emulator; the server certificate names both.
HOSTS = ("127.0.0.1", "localhost")
# Long enough for any test session or demo; the material is remade per process anyway.
VALID_DAYS = 30


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


def _mint() -> Material:
    from cryptography.hazmat.primitives import serialization

    from graphkit import crypto

    ca_key, ca_cert = crypto.make_ca("graphkit emulator CA", days=VALID_DAYS)
    server_key, server_cert = crypto.issue_server_certificate(
        ca_key, ca_cert, HOSTS, days=VALID_DAYS
    )
    signing_key = crypto.generate_private_key(2048)
    signing_cert = crypto.self_sign(
        signing_key, crypto.parse_subject(cn="graphkit emulator token signing"), days=VALID_DAYS
    )
    der = signing_cert.public_bytes(serialization.Encoding.DER)
    return Material(
        ca_pem=crypto.dump_certificate(ca_cert),
        server_cert_pem=crypto.dump_certificate(server_cert),
        server_key_pem=crypto.dump_private_key(server_key),
        signing_key=signing_key,
        signing_cert_der=der,
        kid=_b64url(hashlib.sha1(der).digest()),
    )
