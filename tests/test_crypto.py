"""graphkit.crypto: the pure key, CSR and certificate functions.

Results are checked with cryptography's own verification and, where it adds an
independent opinion, the ``openssl`` command.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import ipaddress
import shutil
import subprocess
from typing import Any

import pytest
from _x509_helpers import self_signed
from conftest import CERTS_PASSPHRASE
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from graphkit import crypto
from graphkit.errors import CryptoError, ExitCode

OPENSSL = shutil.which("openssl")
NOW = dt.datetime(2030, 6, 15, 12, 0, tzinfo=dt.UTC)
NAME = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "reports-app")])


@pytest.fixture(scope="module")
def cert(certs_rsa_key: Any) -> x509.Certificate:
    return crypto.self_sign(certs_rsa_key, NAME, [x509.DNSName("reports.example")], now=NOW)


# --------------------------------------------------------------------------- keys


def test_generate_private_key_sizes() -> None:
    key = crypto.generate_private_key(3072)
    assert isinstance(key, rsa.RSAPrivateKey)
    assert key.key_size == 3072
    assert key.public_key().public_numbers().e == 65537


@pytest.mark.parametrize("size", [512, 1024, 2047])
def test_generate_refuses_small_keys(size: int) -> None:
    with pytest.raises(CryptoError, match="2048") as info:
        crypto.generate_private_key(size)
    assert info.value.hint and "--size" in info.value.hint
    assert info.value.exit_code == ExitCode.INPUT


@pytest.mark.parametrize("size", [2049, 5000, 8192])
def test_generate_refuses_unoffered_sizes(size: int) -> None:
    with pytest.raises(CryptoError, match="unsupported key size"):
        crypto.generate_private_key(size)


def test_require_rsa(certs_rsa_key: Any, certs_ec_key: Any, certs_small_key: Any) -> None:
    assert crypto.require_rsa(certs_rsa_key) is certs_rsa_key
    assert crypto.require_rsa(certs_rsa_key.public_key())
    with pytest.raises(CryptoError, match=r"EC \(secp256r1\).*only RSA"):
        crypto.require_rsa(certs_ec_key)
    with pytest.raises(CryptoError, match="1024 bits"):
        crypto.require_rsa(certs_small_key)
    with pytest.raises(CryptoError, match="1024 bits"):
        crypto.require_rsa(certs_small_key.public_key())


@pytest.mark.parametrize(
    ("encoding", "fmt", "encrypted"),
    [
        (serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, False),
        (serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, True),
        (serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL, False),
        (serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL, True),
        (serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, False),
        (serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, True),
    ],
)
def test_load_private_key_every_form(
    certs_rsa_key: Any, encoding: Any, fmt: Any, encrypted: bool
) -> None:
    enc: Any = (
        serialization.BestAvailableEncryption(CERTS_PASSPHRASE)
        if encrypted
        else serialization.NoEncryption()
    )
    data = certs_rsa_key.private_bytes(encoding, fmt, enc)
    loaded = crypto.load_private_key(data, CERTS_PASSPHRASE if encrypted else None)
    assert loaded.private_numbers() == certs_rsa_key.private_numbers()
    if encrypted:
        with pytest.raises(CryptoError, match="is encrypted") as info:
            crypto.load_private_key(data, None, source="key k.pem")
        assert "--passphrase-file" in (info.value.hint or "")
        with pytest.raises(CryptoError, match=r"wrong passphrase for key k\.pem"):
            crypto.load_private_key(data, b"wrong", source="key k.pem")
    else:
        # A passphrase given for an unencrypted key does no harm.
        assert crypto.load_private_key(data, b"unused").private_numbers() == (
            certs_rsa_key.private_numbers()
        )


def test_dump_private_key_is_pkcs8(certs_rsa_key: Any) -> None:
    plain = crypto.dump_private_key(certs_rsa_key)
    assert plain.startswith(b"-----BEGIN PRIVATE KEY-----")
    enc = crypto.dump_private_key(certs_rsa_key, CERTS_PASSPHRASE)
    assert enc.startswith(b"-----BEGIN ENCRYPTED PRIVATE KEY-----")
    assert CERTS_PASSPHRASE not in enc


@pytest.mark.skipif(OPENSSL is None, reason="openssl not installed")
def test_encrypted_key_uses_a_modern_cipher(certs_rsa_key: Any, tmp_path: Any) -> None:
    path = tmp_path / "k.pem"
    path.write_bytes(crypto.dump_private_key(certs_rsa_key, CERTS_PASSPHRASE))
    out = subprocess.run(
        [str(OPENSSL), "asn1parse", "-in", str(path)], capture_output=True, text=True, check=True
    ).stdout
    assert "PBES2" in out and "PBKDF2" in out
    assert "aes-256-cbc" in out.lower()


def test_load_private_key_refusals(certs_rsa_key: Any, cert: x509.Certificate) -> None:
    pem = crypto.dump_private_key(certs_rsa_key)
    with pytest.raises(CryptoError, match="holds no private key"):
        crypto.load_private_key(crypto.dump_certificate(cert))
    with pytest.raises(CryptoError, match="truncated"):
        crypto.load_private_key(pem[:300])
    with pytest.raises(CryptoError, match="is empty"):
        crypto.load_private_key(b"  \n")
    with pytest.raises(CryptoError, match="not a readable private key"):
        crypto.load_private_key(b"\x30\x03\x02\x01\x00")
    with pytest.raises(CryptoError, match="is a PFX"):
        crypto.load_private_key(crypto.dump_pfx(certs_rsa_key, cert, b"pw"))


def test_load_private_key_picks_the_key_in_a_combined_file(
    certs_rsa_key: Any, cert: x509.Certificate
) -> None:
    both = crypto.dump_certificate(cert) + crypto.dump_private_key(certs_rsa_key)
    assert crypto.load_private_key(both).private_numbers() == certs_rsa_key.private_numbers()


# --------------------------------------------------------------- subjects, SANs


@pytest.mark.parametrize(
    ("subject", "cn", "expected"),
    [
        ("CN=reports-app,O=Contoso,C=US", None, "CN=reports-app,O=Contoso,C=US"),
        ("  CN=a  ", None, "CN=a"),
        ("CN=a+O=b", None, "CN=a+O=b"),
        ("CN=Smith\\, John,O=Contoso", None, "CN=Smith\\, John,O=Contoso"),
        (None, "reports-app", "CN=reports-app"),
        (None, " spaced ", "CN=spaced"),
    ],
)
def test_parse_subject(subject: str | None, cn: str | None, expected: str) -> None:
    assert crypto.parse_subject(subject, cn).rfc4514_string() == expected


@pytest.mark.parametrize(
    ("subject", "cn", "says"),
    [
        (None, None, "no subject"),
        ("", None, "no subject"),
        ("CN=a", "b", "both"),
        (None, "", "empty"),
        ("garbage", None, "not KEY=VALUE"),
        ("CN=a,Q=b", None, "unknown attribute 'Q'"),
        ("CN=a,C=USA", None, "length"),
        ("CN=a,,O=b", None, "empty part"),
    ],
)
def test_parse_subject_refusals(subject: str | None, cn: str | None, says: str) -> None:
    with pytest.raises(CryptoError, match=says) as info:
        crypto.parse_subject(subject, cn)
    assert info.value.hint


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("DNS:reports.example", x509.DNSName("reports.example")),
        ("dns:reports.example", x509.DNSName("reports.example")),
        ("reports.example", x509.DNSName("reports.example")),
        ("email:ops@example.com", x509.RFC822Name("ops@example.com")),
        ("ops@example.com", x509.RFC822Name("ops@example.com")),
        ("URI:https://example.com/x", x509.UniformResourceIdentifier("https://example.com/x")),
        ("https://example.com/x", x509.UniformResourceIdentifier("https://example.com/x")),
        ("IP:127.0.0.1", x509.IPAddress(ipaddress.ip_address("127.0.0.1"))),
        ("::1", x509.IPAddress(ipaddress.ip_address("::1"))),
    ],
)
def test_parse_san(value: str, expected: x509.GeneralName) -> None:
    assert crypto.parse_san(value) == expected


@pytest.mark.parametrize(("value", "says"), [("DNS: ", "empty"), ("IP:300.1.1.1", "invalid IP")])
def test_parse_san_refusals(value: str, says: str) -> None:
    with pytest.raises(CryptoError, match=says):
        crypto.parse_san(value)


# ------------------------------------------------------------------------- CSRs


def test_build_csr(certs_rsa_key: Any) -> None:
    csr = crypto.build_csr(certs_rsa_key, NAME, [x509.DNSName("a.example")])
    assert csr.is_signature_valid
    assert isinstance(csr.signature_hash_algorithm, hashes.SHA256)
    assert csr.subject == NAME
    assert csr.public_key() == certs_rsa_key.public_key()
    san = csr.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    assert list(san.value) == [x509.DNSName("a.example")]
    assert not san.critical
    no_san = crypto.build_csr(certs_rsa_key, NAME)
    with pytest.raises(x509.ExtensionNotFound):
        no_san.extensions.get_extension_for_class(x509.SubjectAlternativeName)


def test_build_csr_refuses_non_rsa(certs_ec_key: Any, certs_small_key: Any) -> None:
    with pytest.raises(CryptoError, match="only RSA"):
        crypto.build_csr(certs_ec_key, NAME)
    with pytest.raises(CryptoError, match="1024"):
        crypto.build_csr(certs_small_key, NAME)


def test_load_csr_pem_der_and_garbage(certs_rsa_key: Any) -> None:
    csr = crypto.build_csr(certs_rsa_key, NAME)
    assert crypto.load_csr(crypto.dump_csr(csr)) == csr
    assert crypto.load_csr(csr.public_bytes(serialization.Encoding.DER)) == csr
    with pytest.raises(CryptoError, match="not a readable certificate request"):
        crypto.load_csr(b"\x30\x82\x01\x00garbage")
    with pytest.raises(CryptoError, match="truncated"):
        crypto.load_csr(crypto.dump_csr(csr)[:200])


# ----------------------------------------------------------------- certificates


def test_self_sign_profile(certs_rsa_key: Any, cert: x509.Certificate) -> None:
    assert cert.subject == cert.issuer == NAME
    assert isinstance(cert.signature_hash_algorithm, hashes.SHA256)
    assert cert.version == x509.Version.v3
    certs_rsa_key.public_key().verify(
        cert.signature,
        cert.tbs_certificate_bytes,
        padding.PKCS1v15(),
        hashes.SHA256(),
    )
    assert crypto.verify_self_signature(cert)
    ext = cert.extensions
    bc = ext.get_extension_for_class(x509.BasicConstraints)
    assert bc.critical and not bc.value.ca and bc.value.path_length is None
    ku = ext.get_extension_for_class(x509.KeyUsage)
    assert ku.critical and ku.value.digital_signature
    assert not any(
        getattr(ku.value, name)
        for name in (
            "content_commitment",
            "key_encipherment",
            "data_encipherment",
            "key_agreement",
            "key_cert_sign",
            "crl_sign",
        )
    )
    eku = ext.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(eku) == [ExtendedKeyUsageOID.CLIENT_AUTH]
    ski = ext.get_extension_for_class(x509.SubjectKeyIdentifier).value
    assert ski.digest == x509.SubjectKeyIdentifier.from_public_key(cert.public_key()).digest
    san = ext.get_extension_for_class(x509.SubjectAlternativeName).value
    assert list(san) == [x509.DNSName("reports.example")]
    # Time is injectable; notBefore is backdated five minutes for slow clocks.
    assert cert.not_valid_before_utc == NOW - dt.timedelta(minutes=5)
    assert cert.not_valid_after_utc == NOW + dt.timedelta(days=crypto.DEFAULT_DAYS)
    assert 0 < cert.serial_number < 2**159


def test_self_sign_serials_differ(certs_rsa_key: Any) -> None:
    serials = {crypto.self_sign(certs_rsa_key, NAME, now=NOW).serial_number for _ in range(5)}
    assert len(serials) == 5


@pytest.mark.parametrize("days", [0, -1, crypto.MAX_DAYS + 1, 99999])
def test_self_sign_days_out_of_range(certs_rsa_key: Any, days: int) -> None:
    with pytest.raises(CryptoError, match="out of range"):
        crypto.self_sign(certs_rsa_key, NAME, days=days)


@pytest.mark.parametrize("days", [1, crypto.MAX_DAYS])
def test_self_sign_days_bounds(certs_rsa_key: Any, days: int) -> None:
    cert = crypto.self_sign(certs_rsa_key, NAME, days=days, now=NOW)
    assert cert.not_valid_after_utc - NOW == dt.timedelta(days=days)


def test_self_sign_refuses_non_rsa(certs_ec_key: Any, certs_small_key: Any) -> None:
    with pytest.raises(CryptoError, match="only RSA"):
        crypto.self_sign(certs_ec_key, NAME)
    with pytest.raises(CryptoError, match="1024"):
        crypto.self_sign(certs_small_key, NAME)


def test_self_sign_csr(certs_rsa_key: Any, certs_other_key: Any) -> None:
    sans = [x509.DNSName("a.example"), x509.RFC822Name("ops@a.example")]
    csr = crypto.build_csr(certs_rsa_key, NAME, sans)
    cert = crypto.self_sign_csr(certs_rsa_key, csr, days=30, now=NOW)
    assert cert.subject == NAME
    assert list(cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value) == (
        sans
    )
    assert cert.not_valid_after_utc - NOW == dt.timedelta(days=30)
    with pytest.raises(CryptoError, match="not made with this key"):
        crypto.self_sign_csr(certs_other_key, csr)
    der = bytearray(csr.public_bytes(serialization.Encoding.DER))
    der[-5] ^= 0x01
    tampered = x509.load_der_x509_csr(bytes(der))
    with pytest.raises(CryptoError, match="signature is invalid"):
        crypto.self_sign_csr(certs_rsa_key, tampered)


def test_make_ca_and_server_certificate() -> None:
    ca_key, ca = crypto.make_ca(now=NOW)
    assert ca.subject == ca.issuer
    bc = ca.extensions.get_extension_for_class(x509.BasicConstraints).value
    assert bc.ca is True
    ku = ca.extensions.get_extension_for_class(x509.KeyUsage).value
    assert ku.key_cert_sign and ku.crl_sign
    assert crypto.verify_self_signature(ca)

    key, server = crypto.issue_server_certificate(ca_key, ca, now=NOW)
    assert server.issuer == ca.subject
    server.verify_directly_issued_by(ca)
    assert crypto.key_matches_certificate(key, server)
    eku = server.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(eku) == [ExtendedKeyUsageOID.SERVER_AUTH]
    san = server.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.IPAddress) == [ipaddress.ip_address("127.0.0.1")]
    assert san.get_values_for_type(x509.DNSName) == ["localhost"]
    aki = server.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value
    ca_ski = ca.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    assert aki.key_identifier == ca_ski.digest
    assert not crypto.verify_self_signature(server)


# ---------------------------------------------------------------- identifiers


def test_thumbprints_independent(cert: x509.Certificate) -> None:
    der = cert.public_bytes(serialization.Encoding.DER)
    tp = crypto.thumbprints(cert)
    assert tp["sha1"] == hashlib.sha1(der).hexdigest().upper()
    assert tp["sha1"] == cert.fingerprint(hashes.SHA1()).hex().upper()
    assert tp["sha256"] == hashlib.sha256(der).hexdigest().upper()
    assert base64.urlsafe_b64decode(tp["x5t"] + "=" * (-len(tp["x5t"]) % 4)) == (
        hashlib.sha1(der).digest()
    )
    assert base64.urlsafe_b64decode(tp["x5t#S256"] + "=" * (-len(tp["x5t#S256"]) % 4)) == (
        hashlib.sha256(der).digest()
    )
    assert not set("+/=") & set(tp["x5t"] + tp["x5t#S256"])
    assert len(tp["x5t"]) == 27 and len(tp["x5t#S256"]) == 43
    assert base64.b64decode(tp["customKeyIdentifier"]) == hashlib.sha1(der).digest()


@pytest.mark.skipif(OPENSSL is None, reason="openssl not installed")
def test_thumbprints_equal_openssl(cert: x509.Certificate, tmp_path: Any) -> None:
    path = tmp_path / "c.pem"
    path.write_bytes(crypto.dump_certificate(cert))
    tp = crypto.thumbprints(cert)
    for algo, key in (("-sha1", "sha1"), ("-sha256", "sha256")):
        out = subprocess.run(
            [str(OPENSSL), "x509", "-in", str(path), "-noout", "-fingerprint", algo],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        assert out.strip().split("=", 1)[1].replace(":", "") == tp[key]


def test_certificate_info(cert: x509.Certificate) -> None:
    info = crypto.certificate_info(cert, now=NOW + dt.timedelta(days=100, hours=1))
    assert info["days_left"] == crypto.DEFAULT_DAYS - 101  # floored, not rounded up
    assert info["subject"] == "CN=reports-app"
    assert info["serial"] == format(cert.serial_number, "X")
    assert info["key_type"] == "RSA" and info["key_size"] == 2048
    assert info["not_before"] == (NOW - dt.timedelta(minutes=5)).isoformat()
    assert info["warnings"] == []
    assert info["sha1"] == crypto.thumbprints(cert)["sha1"]


@pytest.mark.parametrize(
    ("offset_days", "says"),
    [(400, "expired"), (-10, "not yet valid"), (crypto.DEFAULT_DAYS - 10, "expires in 9")],
)
def test_certificate_info_time_warnings(
    cert: x509.Certificate, offset_days: int, says: str
) -> None:
    info = crypto.certificate_info(cert, now=NOW + dt.timedelta(days=offset_days, minutes=1))
    assert len(info["warnings"]) == 1 and says in info["warnings"][0]
    if says == "expired":
        # One count everywhere (certificates.days_left): 35 whole days ago, said as such.
        assert info["days_left"] == -(400 - crypto.DEFAULT_DAYS)
        assert "expired 35 days ago" in info["warnings"][0]


def test_certificate_info_key_warnings(certs_ec_key: Any, certs_small_key: Any) -> None:
    ec_info = crypto.certificate_info(
        self_signed(certs_ec_key, NAME, not_before=NOW, not_after=NOW + dt.timedelta(days=90)),
        now=NOW,
    )
    assert ec_info["key_type"] == "EC (secp256r1)"
    assert ec_info["warnings"] == ["key is EC (secp256r1): Entra ID accepts only RSA"]
    small_info = crypto.certificate_info(
        self_signed(certs_small_key, NAME, not_before=NOW, not_after=NOW + dt.timedelta(days=90)),
        now=NOW,
    )
    assert small_info["key_size"] == 1024
    assert any("1024 bits" in w for w in small_info["warnings"])


# ------------------------------------------------------------- bundles and PFX


def test_key_matches_certificate(
    certs_rsa_key: Any, certs_other_key: Any, cert: x509.Certificate
) -> None:
    assert crypto.key_matches_certificate(certs_rsa_key, cert)
    assert crypto.key_matches_certificate(certs_rsa_key.public_key(), cert)
    assert not crypto.key_matches_certificate(certs_other_key, cert)


@pytest.mark.parametrize("legacy", [False, True])
def test_dump_pfx_round_trip(certs_rsa_key: Any, cert: x509.Certificate, legacy: bool) -> None:
    data = crypto.dump_pfx(certs_rsa_key, cert, CERTS_PASSPHRASE, legacy=legacy, name=b"app")
    assert crypto.looks_like_pfx(data)
    loaded = pkcs12.load_pkcs12(data, CERTS_PASSPHRASE)
    assert loaded.cert is not None and loaded.cert.certificate == cert
    assert loaded.cert.friendly_name == b"app"
    assert loaded.key is not None
    assert crypto.key_matches_certificate(loaded.key, cert)
    bundle = crypto.load_certificate_bundle(data, CERTS_PASSPHRASE)
    assert bundle.form == "pfx" and bundle.certificate == cert and bundle.key is not None
    with pytest.raises(CryptoError, match="wrong passphrase"):
        crypto.load_certificate_bundle(data, b"wrong")
    with pytest.raises(CryptoError, match="needs a passphrase"):
        crypto.load_certificate_bundle(data)


def test_dump_pfx_without_passphrase(certs_rsa_key: Any, cert: x509.Certificate) -> None:
    data = crypto.dump_pfx(certs_rsa_key, cert, None)
    assert crypto.load_certificate_bundle(data).certificate == cert
    # A passphrase given anyway (e.g. from the environment) does not get in the way.
    assert crypto.load_certificate_bundle(data, b"irrelevant").certificate == cert


def test_dump_pfx_refuses_mismatch(certs_other_key: Any, cert: x509.Certificate) -> None:
    with pytest.raises(CryptoError, match="does not match"):
        crypto.dump_pfx(certs_other_key, cert, b"pw")


def test_bundle_pem_der_combined(
    certs_rsa_key: Any, cert: x509.Certificate, certs_other_key: Any
) -> None:
    pem = crypto.dump_certificate(cert)
    der = crypto.dump_certificate(cert, der=True)
    assert crypto.load_certificate_bundle(pem).form == "pem"
    assert crypto.load_certificate_bundle(der).form == "der"
    assert crypto.load_certificate_bundle(der).certificate == cert
    assert not crypto.looks_like_pfx(der)

    combined = crypto.dump_combined_pem(certs_rsa_key, cert)
    bundle = crypto.load_certificate_bundle(combined)
    assert bundle.certificate == cert and bundle.key is not None and bundle.chain == []

    # The leaf is the certificate matching the key, wherever it sits in the file.
    _, ca = crypto.make_ca(now=NOW)
    mixed = crypto.dump_certificate(ca) + combined
    bundle = crypto.load_certificate_bundle(mixed)
    assert bundle.certificate == cert and bundle.chain == [ca]

    encrypted = crypto.dump_combined_pem(certs_rsa_key, cert, CERTS_PASSPHRASE)
    with pytest.raises(CryptoError, match="is encrypted"):
        crypto.load_certificate_bundle(encrypted)
    only_cert = crypto.load_certificate_bundle(encrypted, key_optional=True)
    assert only_cert.certificate == cert and only_cert.key is None
    assert crypto.load_certificate_bundle(encrypted, CERTS_PASSPHRASE).key is not None
    with pytest.raises(CryptoError, match="wrong passphrase"):
        crypto.load_certificate_bundle(encrypted, b"wrong", key_optional=True)


@pytest.mark.parametrize(
    ("data", "says"),
    [
        (b"", "is empty"),
        (b"hello\n", "not PEM, DER or PFX"),
        (b"\x30\x82\x05\x00" + b"\x00" * 40, "not PEM, DER or PFX"),
        (b"-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n", "no PEM certificate"),
    ],
)
def test_bundle_refusals(data: bytes, says: str) -> None:
    with pytest.raises(CryptoError, match=says) as info:
        crypto.load_certificate_bundle(data, source="certificate x.crt")
    assert "x.crt" in str(info.value)
    assert info.value.hint


def test_bundle_truncated_and_corrupted(cert: x509.Certificate, certs_rsa_key: Any) -> None:
    pem = crypto.dump_certificate(cert)
    with pytest.raises(CryptoError, match="truncated"):
        crypto.load_certificate_bundle(pem[: len(pem) // 2])
    lines = pem.splitlines(keepends=True)
    with pytest.raises(CryptoError, match="corrupted certificate") as info:
        crypto.load_certificate_bundle(b"".join(lines[:3] + lines[5:]))
    assert "ParseError" not in str(info.value)  # no parser internals in messages
    with pytest.raises(CryptoError, match="private key but no certificate"):
        crypto.load_certificate_bundle(crypto.dump_private_key(certs_rsa_key))
    pfx = crypto.dump_pfx(certs_rsa_key, cert, b"pw")
    with pytest.raises(CryptoError, match=r"wrong passphrase .*\(or the PFX is corrupted\)"):
        crypto.load_certificate_bundle(pfx[:-40], b"pw")


def test_looks_like_pfx() -> None:
    assert not crypto.looks_like_pfx(b"")
    assert not crypto.looks_like_pfx(b"\x30")
    assert not crypto.looks_like_pfx(b"-----BEGIN CERTIFICATE-----")
    assert crypto.looks_like_pfx(b"\x30\x82\x01\x00\x02\x01\x03")
    assert crypto.looks_like_pfx(b"\x30\x20\x02\x01\x03")
