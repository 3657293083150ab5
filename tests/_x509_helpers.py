"""Keys and certificates made with cryptography directly, for the tests that need what
graphkit.crypto rightly refuses to make (short or EC keys, arbitrary validity).

Keys are made once per process (RSA generation is the slow part).
"""

from __future__ import annotations

import datetime as dt
import functools
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID


@functools.cache
def rsa_key(label: str = "main", bits: int = 2048) -> Any:
    """One RSA key per (label, bits): distinct labels give distinct keys."""
    return rsa.generate_private_key(public_exponent=65537, key_size=bits)


def self_signed(
    key: Any, subject: x509.Name | str, *, not_before: dt.datetime, not_after: dt.datetime
) -> x509.Certificate:
    """A self-signed certificate on any key; ``subject`` is a name or a bare CN."""
    if isinstance(subject, str):
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .sign(key, hashes.SHA256())
    )


def reference_thumbprints(pem: bytes) -> dict[str, str]:
    """A PEM certificate's identifiers computed without graphkit (nor cryptography):
    the ``openssl x509 -fingerprint`` values when openssl is installed (else hashlib over
    the base64-decoded PEM body), x5t being base64url of the same digests (RFC 7515
    4.1.7/4.1.8) and the manifest's customKeyIdentifier base64 of the SHA-1 digest."""
    import base64
    import hashlib
    import shutil
    import subprocess

    text = pem.decode("ascii")
    body = text.split("-----BEGIN CERTIFICATE-----", 1)[1].split("-----END CERTIFICATE-----")[0]
    der = base64.b64decode("".join(body.split()))
    digests = {"sha1": hashlib.sha1(der).digest(), "sha256": hashlib.sha256(der).digest()}
    openssl = shutil.which("openssl")
    if openssl is not None:
        for name in digests:
            out = subprocess.run(
                [openssl, "x509", "-noout", "-fingerprint", f"-{name}"],
                input=pem,
                capture_output=True,
                check=True,
                timeout=60,
            ).stdout.decode()
            digests[name] = bytes.fromhex(out.strip().split("=", 1)[1].replace(":", ""))

    def b64url(raw: bytes) -> str:
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")

    return {
        "sha1": digests["sha1"].hex().upper(),
        "sha256": digests["sha256"].hex().upper(),
        "x5t": b64url(digests["sha1"]),
        "x5t#S256": b64url(digests["sha256"]),
        "customKeyIdentifier": base64.b64encode(digests["sha1"]).decode(),
    }
