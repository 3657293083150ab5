"""Keys, CSRs and certificates: pure functions over ``cryptography`` objects.

Nothing here touches the file system; PEM/DER/PFX bytes appear only in the
``load_*``/``dump_*`` helpers at the edge. Time is injectable (``now=``) so tests can
travel. Entra ID accepts only RSA keys of at least 2048 bits, so that is what we make
and what we insist on wherever a key is used to authenticate.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import ipaddress
import re
import secrets
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from graphkit.errors import CryptoError

__all__ = [
    "DEFAULT_DAYS",
    "DEFAULT_KEY_SIZE",
    "KEY_SIZES",
    "MAX_DAYS",
    "MAX_RSA_BITS",
    "MIN_RSA_BITS",
    "CertificateBundle",
    "build_csr",
    "certificate_info",
    "dump_certificate",
    "dump_combined_pem",
    "dump_csr",
    "dump_pfx",
    "dump_private_key",
    "generate_private_key",
    "issue_server_certificate",
    "key_matches_certificate",
    "load_certificate_bundle",
    "load_csr",
    "load_private_key",
    "looks_like_pfx",
    "make_ca",
    "parse_san",
    "parse_subject",
    "require_rsa",
    "self_sign",
    "self_sign_csr",
    "thumbprints",
    "verify_self_signature",
]

# Entra ID rejects RSA keys under 2048 bits (AADSTS50032) and non-RSA keys entirely.
MIN_RSA_BITS = 2048
# Entra ID documents no maximum. Key Vault and the portal's tooling stop at 4096, and
# Microsoft's IdentityModel signs nothing with RS256 over 4096 bits; 8192 is the
# largest size any mainstream tool makes on request. Larger keys are refused before
# the key check that would take half a minute (see _checked_key).
MAX_RSA_BITS = 8192
KEY_SIZES = (2048, 3072, 4096)
DEFAULT_KEY_SIZE = 2048  # what the portal's docs use; 3072/4096 cost more per token
# A year, like `openssl req -days 365` in Microsoft's walkthroughs.
DEFAULT_DAYS = 365
# The portal refuses nothing under this, but a self-signed credential older than a few
# years is a liability; 3650 days is the largest a careful tool should mint.
MAX_DAYS = 3650
# RFC 5280's ub-common-name: what cryptography (and every CA) accepts in a CN.
MAX_CN = 64
# Backdate notBefore a little so a client whose clock runs slow still accepts it.
_BACKDATE = dt.timedelta(minutes=5)

PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey | Any


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


# --------------------------------------------------------------------------- keys


def generate_private_key(size: int = DEFAULT_KEY_SIZE) -> rsa.RSAPrivateKey:
    """Generate an RSA key of ``size`` bits (2048, 3072 or 4096).

    Raises:
        CryptoError: the size is not one Entra ID accepts or that we offer.
    """
    if size < MIN_RSA_BITS:
        raise CryptoError(
            f"RSA keys under {MIN_RSA_BITS} bits are refused by Entra ID (AADSTS50032)",
            "use --size 2048, 3072 or 4096",
        )
    if size not in KEY_SIZES:
        raise CryptoError(f"unsupported key size {size}", "use --size 2048, 3072 or 4096")
    return rsa.generate_private_key(public_exponent=65537, key_size=size)


def require_rsa(key: Any, what: str = "key") -> rsa.RSAPrivateKey | rsa.RSAPublicKey:
    """Return ``key`` if it is RSA of at least 2048 bits, else raise CryptoError."""
    if not isinstance(key, rsa.RSAPrivateKey | rsa.RSAPublicKey):
        kind = _key_type(key)
        raise CryptoError(
            f"{what} is {kind}, but Entra ID accepts only RSA certificates",
            "generate an RSA key with `graphkit keygen`",
        )
    if key.key_size < MIN_RSA_BITS:
        raise CryptoError(
            f"{what} is RSA {key.key_size} bits; Entra ID requires at least {MIN_RSA_BITS}",
            "generate a new key with `graphkit keygen --size 2048` (or larger)",
        )
    if key.key_size > MAX_RSA_BITS:
        raise CryptoError(
            f"{what} is RSA {key.key_size} bits; graphkit takes RSA keys of "
            f"{MIN_RSA_BITS} to {MAX_RSA_BITS} bits",
            "make a key of 2048, 3072 or 4096 bits with `graphkit keygen`",
        )
    return key


def dump_private_key(key: Any, passphrase: bytes | None = None) -> bytes:
    """PKCS#8 PEM, encrypted with the best available algorithm when ``passphrase`` is set."""
    enc: serialization.KeySerializationEncryption
    enc = (
        serialization.BestAvailableEncryption(passphrase)
        if passphrase
        else serialization.NoEncryption()
    )
    return bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, enc)
    )


def load_private_key(data: bytes, passphrase: bytes | None = None, *, source: str = "key") -> Any:
    """Load a PEM (PKCS#8 or traditional) or DER private key.

    Raises:
        CryptoError: not a key, truncated, encrypted without passphrase, wrong passphrase.
    """
    if not data.strip():
        raise CryptoError(f"{source} is empty", "give the .key file from `graphkit keygen`")
    pem = b"-----BEGIN" in data
    if not pem and looks_like_pfx(data):
        raise CryptoError(
            f"{source} is a PFX, not a key file",
            "give the PEM key (`openssl pkcs12 -in FILE -nocerts -out key.pem` extracts it)",
        )
    if pem and b"PRIVATE KEY-----" not in data:
        raise CryptoError(f"{source} holds no private key", "give the .key file from keygen")
    if pem:
        block = _pem_block(data, "PRIVATE KEY", source)
        encrypted = b"ENCRYPTED" in block or b"Proc-Type: 4,ENCRYPTED" in block
    else:
        block, encrypted = data, False
    if encrypted and not passphrase:
        raise CryptoError(
            f"{source} is encrypted",
            "give its passphrase with --passphrase-file, GRAPHKIT_KEY_PASSPHRASE "
            "or --prompt-passphrase",
        )
    return _checked_key(_parse_private_key(block, pem, encrypted, passphrase, source), source)


def _parse_private_key(
    block: bytes, pem: bool, encrypted: bool, passphrase: bytes | None, source: str
) -> Any:
    """The key in ``block``, parsed without RSA's slow consistency check (that comes in
    :func:`_checked_key`, once the size is known to be reasonable)."""
    raw_loader = serialization.load_pem_private_key if pem else serialization.load_der_private_key

    def loader(data: bytes, password: bytes | None) -> Any:
        return raw_loader(data, password=password, unsafe_skip_rsa_key_validation=True)

    try:
        return loader(block, password=passphrase if encrypted else None)
    except TypeError:
        # DER input can be encrypted too; we only learn that from the loader.
        if not passphrase:
            raise CryptoError(
                f"{source} is encrypted",
                "give its passphrase with --passphrase-file, GRAPHKIT_KEY_PASSPHRASE "
                "or --prompt-passphrase",
            ) from None
        try:
            return loader(block, password=passphrase)
        except ValueError:
            raise CryptoError(f"wrong passphrase for {source}", "check the passphrase") from None
    except ValueError as exc:
        if encrypted:
            raise CryptoError(f"wrong passphrase for {source}", "check the passphrase") from None
        raise CryptoError(
            f"{source} is not a readable private key ({_reason(exc)})",
            "check that the file is complete and is a PEM or DER private key",
        ) from None
    except UnsupportedAlgorithm:
        raise CryptoError(
            f"{source} uses an unsupported key algorithm",
            "make an RSA key with `graphkit keygen`",
        ) from None


def _checked_key(key: Any, source: str) -> Any:
    """``key``, refused when it is an RSA key over :data:`MAX_RSA_BITS`, then checked.

    The consistency check of an RSA private key tests its primes, and its cost grows
    steeply with the size (about 15 s for 8192 bits, 30 s and more for 16384 on a
    small machine): the size is checked first, so a huge key is refused at once.
    """
    if isinstance(key, rsa.RSAPrivateKey):
        if key.key_size > MAX_RSA_BITS:
            raise CryptoError(
                f"{source} is RSA {key.key_size} bits; graphkit takes RSA keys of "
                f"{MIN_RSA_BITS} to {MAX_RSA_BITS} bits",
                "make a key of 2048, 3072 or 4096 bits with `graphkit keygen`",
            )
        der = key.private_bytes(
            serialization.Encoding.DER,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        try:
            return serialization.load_der_private_key(der, None)
        except ValueError:
            raise CryptoError(
                f"{source} is not a valid RSA key (its numbers are inconsistent)",
                "regenerate it with `graphkit keygen`",
            ) from None
    return key


def _reason(exc: Exception) -> str:
    """What a parser's exception says, short and free of its internal detail."""
    text = str(exc).split("\n")[0].strip()
    if "Unable to load PEM" in text or "base64" in text.lower():
        return "bad base64 in the PEM block"
    if "asn1" in text.lower() or "ParseError" in text or "deserialize" in text:
        return "malformed or cut-short data"
    return text[:80] if text else type(exc).__name__


def _because(exc: Exception) -> str:
    """`` (reason)`` when the exception says something, else nothing."""
    text = str(exc).split("\n")[0].strip()
    return f" ({_reason(exc)})" if text else ""


def _pem_block(data: bytes, label_suffix: str, source: str) -> bytes:
    """Return the first complete PEM block whose label ends with ``label_suffix``."""
    start = -1
    label = b""
    for line_start in _find_all(data, b"-----BEGIN "):
        end = data.find(b"-----", line_start + 11)
        if end < 0:
            break
        candidate = data[line_start + 11 : end]
        if candidate.endswith(label_suffix.encode()):
            start, label = line_start, candidate
            break
    if start < 0:
        raise CryptoError(
            f"{source} holds no {label_suffix} PEM block", "check that you gave the right file"
        )
    footer = b"-----END " + label + b"-----"
    stop = data.find(footer, start)
    if stop < 0:
        raise CryptoError(
            f"{source} is truncated: its PEM block has no END line",
            "the file was cut short; copy or regenerate it",
        )
    return data[start : stop + len(footer)] + b"\n"


def _find_all(data: bytes, needle: bytes) -> Iterable[int]:
    i = data.find(needle)
    while i >= 0:
        yield i
        i = data.find(needle, i + 1)


def public_key_fingerprint(key: Any) -> bytes:
    pub = key.public_key() if hasattr(key, "public_key") else key
    return hashlib.sha256(
        pub.public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    ).digest()


def key_matches_certificate(key: Any, cert: x509.Certificate) -> bool:
    """True when ``key`` is the private half of ``cert``'s public key."""
    return public_key_fingerprint(key) == public_key_fingerprint(cert.public_key())


# ------------------------------------------------------------------- names, SANs


def parse_subject(subject: str | None = None, cn: str | None = None) -> x509.Name:
    """Build a subject from an RFC 4514 string (``CN=app,O=Contoso,C=US``) or a bare CN."""
    if subject and cn:
        raise CryptoError(
            "both --subject and --cn given", "give either --subject or --cn, not both"
        )
    if cn is not None:
        if not cn.strip():
            raise CryptoError("the common name is empty", "give --cn NAME")
        if len(cn.strip()) > MAX_CN:
            raise CryptoError(
                f"the common name is {len(cn.strip())} characters; at most {MAX_CN} fit "
                "in a certificate (RFC 5280)",
                "give a shorter --cn",
            )
        try:
            return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn.strip())])
        except ValueError as exc:
            raise CryptoError(f"invalid common name{_because(exc)}", "give --cn NAME") from None
    if not subject or not subject.strip():
        raise CryptoError("no subject given", "give --subject 'CN=my-app,O=Contoso' or --cn NAME")
    try:
        name = x509.Name.from_rfc4514_string(subject.strip())
    except ValueError as exc:
        raise CryptoError(
            f"invalid subject {subject!r}{_because(exc) or _subject_problem(subject)}",
            "use RFC 4514 form such as 'CN=reports-app,O=Contoso,C=US'",
        ) from None
    if not list(name):
        raise CryptoError("the subject is empty", "give at least CN=NAME")
    return name


# The attribute names RFC 4514 parsing knows (plus dotted OIDs).
_SUBJECT_KEYS = {"CN", "C", "L", "ST", "O", "OU", "STREET", "DC", "UID", "EMAILADDRESS"}


def _subject_problem(subject: str) -> str:
    """A short explanation of why ``subject`` does not parse, when we can tell."""
    for part in re.split(r"(?<!\\)[,+]", subject.strip()):
        key, eq, _value = part.partition("=")
        key = key.strip()
        if not eq:
            return f" ({part.strip()!r} is not KEY=VALUE)" if part.strip() else " (empty part)"
        if key.upper() not in _SUBJECT_KEYS and not re.fullmatch(r"\d+(\.\d+)+", key):
            return f" (unknown attribute {key!r}; use CN, O, OU, L, ST, C, DC, UID)"
    return ""


_SAN_KINDS = ("dns", "email", "uri", "ip")
_SAN_HINT = "use DNS:host, email:addr, URI:scheme://... or IP:address"
_DNS_LABEL = re.compile(r"^[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?$")
_URI = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:[!-~]+$")  # a scheme, then visible ASCII
_EMAIL_LOCAL = re.compile(r"^[A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]{1,64}$")


def _a_label_hint(text: str, kind: str) -> str:
    """How to write a non-ASCII name: its IDNA A-label when Python can make one."""
    if kind == "URI":
        return (
            "certificates carry ASCII names: write the host as an A-label (xn--...) "
            "and percent-encode the rest"
        )
    try:
        host = text.split("@")[-1]
        a_label = host.encode("idna").decode("ascii")
    except (UnicodeError, ValueError):
        return "certificates carry ASCII names: write international names as A-labels (xn--...)"
    shown = text[: len(text) - len(host)] + a_label
    return f"certificates carry ASCII names: write it as {kind}:{shown}"


def _dns_problem(name: str) -> str | None:
    """Why ``name`` is not a DNS name (``*.`` wildcard allowed), or None."""
    body = name[2:] if name.startswith("*.") else name
    body = body[:-1] if body.endswith(".") else body
    if len(body) > 253:
        return "longer than 253 characters"
    for label in body.split("."):
        if not _DNS_LABEL.match(label):
            return f"{label!r} is not a DNS label (letters, digits and '-', up to 63)"
    return None


def parse_san(value: str) -> x509.GeneralName:
    """``DNS:host``, ``email:a@b``, ``URI:https://x``, ``IP:1.2.3.4``, or a bare value (guessed).

    Names are checked here, with the reason in the message: ASCII only (an
    international name is written as its A-label, ``xn--...``, as certificates carry
    it), no empty value, no unknown ``TYPE:`` prefix.

    Raises:
        CryptoError: the value is empty, of an unknown type, or not a valid name.
    """
    shown = value if len(value) <= 80 else value[:77] + "..."
    kind, sep, rest = value.partition(":")
    if sep and kind.strip().lower() in _SAN_KINDS:
        kind = kind.strip().lower()
        if not rest.strip():
            raise CryptoError(f"empty --san {shown!r}: it names nothing", _SAN_HINT)
    else:
        rest = value
        try:
            ipaddress.ip_address(value.strip())
            kind = "ip"
        except ValueError:
            if "://" in value:
                kind = "uri"
            elif "@" in value:
                kind = "email"
            elif sep:
                raise CryptoError(
                    f"unknown --san type {kind.strip()!r} in {shown!r}", _SAN_HINT
                ) from None
            else:
                kind = "dns"
    rest = rest.strip()
    if not rest:
        raise CryptoError(f"empty --san {shown!r}", _SAN_HINT)
    if not rest.isascii():
        label = {"dns": "DNS", "email": "email", "uri": "URI", "ip": "IP"}[kind]
        raise CryptoError(f"--san {shown!r} is not ASCII", _a_label_hint(rest, label))
    if kind == "dns":
        problem = _dns_problem(rest)
        if problem:
            raise CryptoError(f"invalid DNS name in --san {shown!r}: {problem}", _SAN_HINT)
        return x509.DNSName(rest)
    if kind == "email":
        local, at, domain = rest.rpartition("@")
        if not domain:
            problem = "no domain after '@'"
        elif not (at and _EMAIL_LOCAL.match(local)):
            problem = "no valid user name before '@'"
        else:
            problem = _dns_problem(domain)
        if problem:
            raise CryptoError(f"invalid email address in --san {shown!r}: {problem}", _SAN_HINT)
        return x509.RFC822Name(rest)
    if kind == "uri":
        if not _URI.match(rest):
            raise CryptoError(
                f"invalid URI in --san {shown!r}: it needs a scheme and no spaces",
                "use URI:https://host/path",
            )
        return x509.UniformResourceIdentifier(rest)
    try:
        return x509.IPAddress(ipaddress.ip_address(rest))
    except ValueError:
        raise CryptoError(
            f"invalid IP address in --san {shown!r}", "use IP:192.0.2.10 or IP:2001:db8::1"
        ) from None


# ------------------------------------------------------------------ CSR and certs


def build_csr(
    key: Any, subject: x509.Name, sans: Sequence[x509.GeneralName] = ()
) -> x509.CertificateSigningRequest:
    """A SHA-256 signed CSR for ``subject`` with optional SANs."""
    require_rsa(key)
    builder = x509.CertificateSigningRequestBuilder().subject_name(subject)
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(list(sans)), critical=False)
    return builder.sign(key, hashes.SHA256())


def load_csr(data: bytes, source: str = "CSR") -> x509.CertificateSigningRequest:
    try:
        if b"-----BEGIN" in data:
            block = _pem_block(data, "CERTIFICATE REQUEST", source)
            return x509.load_pem_x509_csr(block)
        return x509.load_der_x509_csr(data)
    except ValueError as exc:
        raise CryptoError(
            f"{source} is not a readable certificate request ({_reason(exc)})",
            "give the .csr written by `graphkit csr` or `openssl req`",
        ) from None


@dataclass
class _Extensions:
    """What distinguishes one certificate role from another."""

    ca: bool = False
    key_usage: dict[str, bool] = field(default_factory=dict)
    eku: tuple[x509.ObjectIdentifier, ...] = ()
    sans: Sequence[x509.GeneralName] = ()


def _check_days(days: int) -> None:
    if not 1 <= days <= MAX_DAYS:
        raise CryptoError(f"--days {days} is out of range", f"use 1 to {MAX_DAYS} days")


def _build_certificate(
    *,
    subject: x509.Name,
    issuer: x509.Name,
    public_key: Any,
    signing_key: Any,
    days: int,
    ext: _Extensions,
    issuer_public_key: Any | None = None,
    now: dt.datetime | None = None,
) -> x509.Certificate:
    """The one certificate builder every public function goes through."""
    _check_days(days)
    start = (now or _now()) - _BACKDATE
    usage = {
        "digital_signature": False,
        "content_commitment": False,
        "key_encipherment": False,
        "data_encipherment": False,
        "key_agreement": False,
        "key_cert_sign": False,
        "crl_sign": False,
        "encipher_only": False,
        "decipher_only": False,
    }
    usage.update(ext.key_usage)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)
        # 159 random bits: positive, under the 20-octet limit, unguessable.
        .serial_number(secrets.randbits(159) | 1)
        .not_valid_before(start)
        .not_valid_after(start + _BACKDATE + dt.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=ext.ca, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(**usage), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
    )
    if ext.eku:
        builder = builder.add_extension(x509.ExtendedKeyUsage(list(ext.eku)), critical=False)
    if ext.sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(list(ext.sans)), critical=False)
    if issuer_public_key is not None:
        builder = builder.add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_public_key), critical=False
        )
    return builder.sign(signing_key, hashes.SHA256())


_CLIENT_AUTH = _Extensions(
    key_usage={"digital_signature": True}, eku=(ExtendedKeyUsageOID.CLIENT_AUTH,)
)


def self_sign(
    key: Any,
    subject: x509.Name,
    sans: Sequence[x509.GeneralName] = (),
    days: int = DEFAULT_DAYS,
    *,
    now: dt.datetime | None = None,
) -> x509.Certificate:
    """A self-signed client-authentication certificate, as the portal wants it."""
    require_rsa(key)
    ext = _Extensions(key_usage=_CLIENT_AUTH.key_usage, eku=_CLIENT_AUTH.eku, sans=tuple(sans))
    return _build_certificate(
        subject=subject,
        issuer=subject,
        public_key=key.public_key(),
        signing_key=key,
        days=days,
        ext=ext,
        now=now,
    )


def self_sign_csr(
    key: Any,
    csr: x509.CertificateSigningRequest,
    days: int = DEFAULT_DAYS,
    *,
    now: dt.datetime | None = None,
) -> x509.Certificate:
    """Self-sign ``csr`` with ``key``: subject and SANs from the CSR, signature checked."""
    if not csr.is_signature_valid:
        raise CryptoError("the CSR's signature is invalid", "regenerate it with `graphkit csr`")
    if public_key_fingerprint(csr.public_key()) != public_key_fingerprint(key):
        raise CryptoError(
            "the CSR was not made with this key", "give the --key the CSR was created with"
        )
    try:
        san_ext = csr.extensions.get_extension_for_class(x509.SubjectAlternativeName)
        sans: list[x509.GeneralName] = list(san_ext.value)
    except x509.ExtensionNotFound:
        sans = []
    return self_sign(key, csr.subject, sans, days, now=now)


def make_ca(
    common_name: str = "graphkit emulator CA", days: int = 30, *, now: dt.datetime | None = None
) -> tuple[rsa.RSAPrivateKey, x509.Certificate]:
    """A throwaway certificate authority (for the emulator's TLS)."""
    key = generate_private_key(2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    ext = _Extensions(ca=True, key_usage={"key_cert_sign": True, "crl_sign": True})
    cert = _build_certificate(
        subject=name,
        issuer=name,
        public_key=key.public_key(),
        signing_key=key,
        days=days,
        ext=ext,
        now=now,
    )
    return key, cert


def issue_server_certificate(
    ca_key: Any,
    ca_cert: x509.Certificate,
    hosts: Sequence[str] = ("127.0.0.1", "localhost"),
    days: int = 30,
    *,
    now: dt.datetime | None = None,
) -> tuple[rsa.RSAPrivateKey, x509.Certificate]:
    """A TLS server certificate for ``hosts`` (names or IP addresses) signed by the CA."""
    key = generate_private_key(2048)
    sans = [parse_san(h) for h in hosts]
    ext = _Extensions(
        key_usage={"digital_signature": True, "key_encipherment": True},
        eku=(ExtendedKeyUsageOID.SERVER_AUTH,),
        sans=sans,
    )
    cert = _build_certificate(
        subject=x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hosts[0])]),
        issuer=ca_cert.subject,
        public_key=key.public_key(),
        signing_key=ca_key,
        days=days,
        ext=ext,
        issuer_public_key=ca_key.public_key(),
        now=now,
    )
    return key, cert


def dump_csr(csr: x509.CertificateSigningRequest) -> bytes:
    return csr.public_bytes(serialization.Encoding.PEM)


def dump_certificate(cert: x509.Certificate, der: bool = False) -> bytes:
    return cert.public_bytes(serialization.Encoding.DER if der else serialization.Encoding.PEM)


def dump_combined_pem(key: Any, cert: x509.Certificate, passphrase: bytes | None = None) -> bytes:
    """Key then certificate in one PEM: what AZURE_CLIENT_CERTIFICATE_PATH and az take."""
    return dump_private_key(key, passphrase) + dump_certificate(cert)


def dump_pfx(
    key: Any,
    cert: x509.Certificate,
    passphrase: bytes | None,
    *,
    legacy: bool = False,
    name: bytes | None = None,
) -> bytes:
    """PKCS#12. Modern: AES-256-CBC with PBKDF2 and SHA-256 MAC. Legacy: 3DES/SHA-1,
    for older Windows and Key Vault tooling that cannot read the modern form."""
    if not key_matches_certificate(key, cert):
        raise CryptoError(
            "the key does not match the certificate", "give the key the certificate was made from"
        )
    enc: serialization.KeySerializationEncryption
    if not passphrase:
        enc = serialization.NoEncryption()
    elif legacy:
        enc = (
            serialization.PrivateFormat.PKCS12.encryption_builder()
            .kdf_rounds(2048)
            .key_cert_algorithm(pkcs12.PBES.PBESv1SHA1And3KeyTripleDESCBC)
            # --legacy exists for readers that know only 3DES/SHA-1 PFX (opt-in).
            .hmac_hash(hashes.SHA1())  # nosec B303
            .build(passphrase)
        )
    else:
        enc = (
            serialization.PrivateFormat.PKCS12.encryption_builder()
            .kdf_rounds(50000)
            .key_cert_algorithm(pkcs12.PBES.PBESv2SHA256AndAES256CBC)
            .hmac_hash(hashes.SHA256())
            .build(passphrase)
        )
    return pkcs12.serialize_key_and_certificates(name, key, cert, None, enc)


# --------------------------------------------------------------- loading certs


@dataclass
class CertificateBundle:
    """What a certificate file held: the certificate, and the key if it carried one."""

    certificate: x509.Certificate
    key: Any | None = None
    chain: list[x509.Certificate] = field(default_factory=list)
    form: str = "pem"  # pem | der | pfx


def looks_like_pfx(data: bytes) -> bool:
    # A PKCS#12 PFX is a DER SEQUENCE whose first element is INTEGER 3 (the version).
    if not data or data[0] != 0x30 or b"-----BEGIN" in data[:64]:
        return False
    try:
        n = data[1]
        offset = 2 + (n & 0x7F if n & 0x80 else 0)
        return data[offset : offset + 3] == b"\x02\x01\x03"
    except IndexError:
        return False


def load_certificate_bundle(
    data: bytes,
    passphrase: bytes | None = None,
    *,
    source: str = "certificate",
    key_optional: bool = False,
) -> CertificateBundle:
    """Load PEM, DER, a combined key+certificate PEM, or a PFX (detected from the bytes).

    Args:
        data: the file's bytes.
        passphrase: opens an encrypted key in a combined PEM, or a PFX.
        source: how messages name the file.
        key_optional: for a combined PEM whose key is encrypted and no passphrase is
            given, return the certificate without the key instead of failing (for
            callers that only need the certificate, such as ``thumbprint``).

    Raises:
        CryptoError: nothing certificate-like, truncated PEM, PFX passphrase missing or wrong.
    """
    if not data.strip():
        raise CryptoError(f"{source} is empty", "give a PEM, DER or PFX certificate file")
    if b"-----BEGIN" in data:
        return _load_pem_bundle(data, passphrase, source, key_optional=key_optional)
    if looks_like_pfx(data):
        return _load_pfx(data, passphrase, source)
    try:
        return CertificateBundle(x509.load_der_x509_certificate(data), form="der")
    except ValueError:
        raise CryptoError(
            f"{source} is not a readable certificate (not PEM, DER or PFX, or cut short)",
            "give the .crt/.cer/.pem/.pfx file",
        ) from None


def _pem_key_is_encrypted(data: bytes) -> bool:
    return b"-----BEGIN ENCRYPTED PRIVATE KEY-----" in data or b"Proc-Type: 4,ENCRYPTED" in data


def _load_pem_bundle(
    data: bytes, passphrase: bytes | None, source: str, *, key_optional: bool = False
) -> CertificateBundle:
    if b"-----BEGIN CERTIFICATE-----" not in data:
        if b"PRIVATE KEY-----" in data:
            raise CryptoError(
                f"{source} holds a private key but no certificate",
                "give the .crt from `graphkit selfsign`",
            )
        raise CryptoError(f"{source} holds no PEM certificate", "give the .crt/.pem file")
    certs: list[x509.Certificate] = []
    pos = 0
    begin, end = b"-----BEGIN CERTIFICATE-----", b"-----END CERTIFICATE-----"
    while (start := data.find(begin, pos)) >= 0:
        stop = data.find(end, start)
        if stop < 0:
            raise CryptoError(
                f"{source} is truncated: a certificate has no END line",
                "the file was cut short; copy or regenerate it",
            )
        block = data[start : stop + len(end)]
        try:
            certs.append(x509.load_pem_x509_certificate(block))
        except ValueError as exc:
            raise CryptoError(
                f"{source} holds a corrupted certificate ({_reason(exc)})",
                "copy the file again or regenerate it",
            ) from None
        pos = stop + len(end)
    key = None
    if b"PRIVATE KEY-----" in data and not (
        key_optional and not passphrase and _pem_key_is_encrypted(data)
    ):
        key = load_private_key(data, passphrase, source=source)
    leaf = certs[0]
    if key is not None:
        # In a combined file the leaf is the certificate matching the key.
        leaf = next((c for c in certs if key_matches_certificate(key, c)), certs[0])
    chain = [c for c in certs if c is not leaf]
    return CertificateBundle(leaf, key, chain, form="pem")


# A PKCS#8 RSA key of MAX_RSA_BITS (n and d of 1 KiB, five CRT numbers of 512 bytes)
# takes about 4.7 KB; a key bag larger than this cannot hold one (encrypted, its size
# is the plaintext's, rounded up to a block).
_MAX_KEY_BAG = 6 * 1024
_OID_DATA = bytes.fromhex("2a864886f70d010701")  # 1.2.840.113549.1.7.1
_OID_KEY_BAGS = (
    bytes.fromhex("2a864886f70d010c0a0101"),  # keyBag
    bytes.fromhex("2a864886f70d010c0a0102"),  # pkcs8ShroudedKeyBag
)


def _der(data: bytes, pos: int) -> tuple[int, int, int]:
    """(tag, start of content, end of content) of the DER element at ``pos``.

    Raises:
        ValueError: not DER (an indefinite BER length, or past the end).
    """
    tag = data[pos]
    first = data[pos + 1]
    start = pos + 2
    if first < 0x80:
        length = first
    else:
        count = first & 0x7F
        if not 1 <= count <= 4:
            raise ValueError("indefinite or huge length")
        length = int.from_bytes(data[start : start + count], "big")
        start += count
    end = start + length
    if end > len(data):
        raise ValueError("past the end")
    return tag, start, end


def _children(data: bytes, start: int, end: int) -> Iterable[tuple[int, int, int]]:
    pos = start
    while pos < end:
        element = _der(data, pos)
        yield element
        pos = element[2]


def _pfx_key_bag_size(data: bytes) -> int | None:
    """The size of the largest key bag in a PFX's unencrypted contents, read without
    decrypting anything (a shrouded key bag sits there in the usual layout), or None
    when the structure is not the plain DER expected (then nothing is concluded)."""
    try:
        _, start, end = _der(data, 0)  # PFX
        _version, auth_safe = list(_children(data, start, end))[:2]
        oid, content = list(_children(data, auth_safe[1], auth_safe[2]))[:2]
        if data[oid[1] : oid[2]] != _OID_DATA:
            return None
        octets = next(iter(_children(data, content[1], content[2])))  # [0] -> OCTET STRING
        sequence = _der(data, octets[1])  # AuthenticatedSafe
        largest = 0
        for info in _children(data, sequence[1], sequence[2]):
            kids = list(_children(data, info[1], info[2]))
            if len(kids) < 2 or data[kids[0][1] : kids[0][2]] != _OID_DATA:
                continue  # encryptedData: certificates, usually
            inner = next(iter(_children(data, kids[1][1], kids[1][2])))
            safe_contents = _der(data, inner[1])
            for bag in _children(data, safe_contents[1], safe_contents[2]):
                bag_id, value = list(_children(data, bag[1], bag[2]))[:2]
                if data[bag_id[1] : bag_id[2]] in _OID_KEY_BAGS:
                    largest = max(largest, value[2] - value[1])
        return largest
    except (ValueError, IndexError, StopIteration):
        return None


def _load_pfx(data: bytes, passphrase: bytes | None, source: str) -> CertificateBundle:
    bag = _pfx_key_bag_size(data)
    if bag is not None and bag > _MAX_KEY_BAG:
        # Opening it would check the key for a minute (16384 bits) before we could.
        raise CryptoError(
            f"{source} holds a private key of {bag:,} bytes, too large for an RSA key of "
            f"{MAX_RSA_BITS} bits or less (graphkit takes {MIN_RSA_BITS} to {MAX_RSA_BITS})",
            "make a key of 2048, 3072 or 4096 bits with `graphkit keygen`",
        )
    try:
        loaded = pkcs12.load_pkcs12(data, passphrase)
    except ValueError:
        if not passphrase:
            # Either it needs a passphrase or it is corrupt; try the empty password.
            try:
                loaded = pkcs12.load_pkcs12(data, b"")
            except ValueError:
                raise CryptoError(
                    f"{source} is a PFX that needs a passphrase (or is corrupted)",
                    "give it with --passphrase-file, GRAPHKIT_KEY_PASSPHRASE "
                    "or --prompt-passphrase",
                ) from None
        else:
            # A PFX written without a passphrase opens with none, whatever we were given.
            try:
                loaded = pkcs12.load_pkcs12(data, None)
            except ValueError:
                raise CryptoError(
                    f"wrong passphrase for {source} (or the PFX is corrupted)",
                    "check the passphrase",
                ) from None
    if loaded.cert is None:
        raise CryptoError(
            f"{source} is a PFX without a certificate", "export it again with its certificate"
        )
    key_size = getattr(loaded.key, "key_size", 0)
    if isinstance(loaded.key, rsa.RSAPrivateKey) and key_size > MAX_RSA_BITS:
        raise CryptoError(
            f"{source} holds an RSA {key_size}-bit key; graphkit takes RSA keys of "
            f"{MIN_RSA_BITS} to {MAX_RSA_BITS} bits",
            "make a key of 2048, 3072 or 4096 bits with `graphkit keygen`",
        )
    return CertificateBundle(
        loaded.cert.certificate,
        loaded.key,
        [c.certificate for c in loaded.additional_certs],
        form="pfx",
    )


# --------------------------------------------------------- identifiers and info


def _b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def thumbprints(cert: x509.Certificate) -> dict[str, str]:
    """Every identifier Azure and JWTs use for a certificate.

    ``sha1`` is what the portal and AADSTS700027 show; ``x5t``/``x5t#S256`` go in a
    client assertion's header; ``customKeyIdentifier`` is in the app manifest.
    """
    der = cert.public_bytes(serialization.Encoding.DER)
    sha1 = hashlib.sha1(der, usedforsecurity=False).digest()  # a name (x5t), not a check
    sha256 = hashlib.sha256(der).digest()
    return {
        "sha1": sha1.hex().upper(),
        "sha256": sha256.hex().upper(),
        "x5t": _b64url(sha1),
        "x5t#S256": _b64url(sha256),
        "customKeyIdentifier": base64.b64encode(sha1).decode(),
    }


def _key_type(key: Any) -> str:
    if isinstance(key, rsa.RSAPrivateKey | rsa.RSAPublicKey):
        return "RSA"
    if isinstance(key, ec.EllipticCurvePrivateKey | ec.EllipticCurvePublicKey):
        return f"EC ({key.curve.name})"
    return type(key).__name__.lstrip("_").replace("PublicKey", "").replace("PrivateKey", "")


def certificate_info(cert: x509.Certificate, *, now: dt.datetime | None = None) -> dict[str, Any]:
    """A labelled summary of ``cert`` with warnings, ready for display or JSON."""
    from graphkit.certificates import days_left, expiry_warning_due, renew_step

    now = now or _now()
    pub = cert.public_key()
    size = getattr(pub, "key_size", None)
    not_before = cert.not_valid_before_utc
    not_after = cert.not_valid_after_utc
    left = days_left(not_after, now)
    warnings = []
    if left.expired:
        warnings.append(f"{left}: Entra ID will reject it; {renew_step(expired=True)}")
    elif now < not_before:
        warnings.append("not yet valid: check the local clock or the certificate's dates")
    elif expiry_warning_due(not_before, not_after, now):
        warnings.append(f"{left.expires_phrase()}: {renew_step()}")
    if not isinstance(pub, rsa.RSAPublicKey):
        warnings.append(f"key is {_key_type(pub)}: Entra ID accepts only RSA")
    elif pub.key_size < MIN_RSA_BITS:
        warnings.append(f"RSA {pub.key_size} bits: Entra ID requires at least {MIN_RSA_BITS}")
    elif pub.key_size > MAX_RSA_BITS:
        warnings.append(f"RSA {pub.key_size} bits: graphkit uses keys of at most {MAX_RSA_BITS}")
    info: dict[str, Any] = dict(thumbprints(cert))
    info.update(
        {
            "subject": cert.subject.rfc4514_string(),
            "issuer": cert.issuer.rfc4514_string(),
            "serial": format(cert.serial_number, "X"),
            "not_before": not_before.isoformat(),
            "not_after": not_after.isoformat(),
            "days_left": left.days,
            "validity": str(left),
            "key_type": _key_type(pub),
            "key_size": size,
            "warnings": warnings,
        }
    )
    return info


def verify_self_signature(cert: x509.Certificate) -> bool:
    """True when ``cert`` is signed by its own key (RSA PKCS#1 v1.5)."""
    pub = cert.public_key()
    if not isinstance(pub, rsa.RSAPublicKey) or cert.signature_hash_algorithm is None:
        return False
    try:
        pub.verify(
            cert.signature,
            cert.tbs_certificate_bytes,
            padding.PKCS1v15(),
            cert.signature_hash_algorithm,
        )
    except InvalidSignature:
        return False
    return True
