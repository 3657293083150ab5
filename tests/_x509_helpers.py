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
