"""keygen, csr, selfsign, thumbprint, export through the command line.

Every command runs through Typer's CliRunner (stdout and stderr apart); one flow runs
as a real ``python -m graphkit`` subprocess. What we write is checked by independent
tools: the ``openssl`` command, cryptography's own loaders, and azure-identity's
CertificateCredential (construction only: it parses the files, nothing is sent).
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import os
import shutil
import stat
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from _x509_helpers import reference_thumbprints, self_signed
from conftest import CERTS_PASSPHRASE, CertsDir
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import ExtendedKeyUsageOID

from graphkit import crypto, files

REPO = Path(__file__).resolve().parents[1]
OPENSSL = shutil.which("openssl")
# The cross-checks against openssl are the point of several tests: in CI (CI=true) a
# missing openssl is a failure, not a silent skip; .ci/run installs it.
if OPENSSL is None and os.environ.get("CI"):
    raise RuntimeError("CI needs the openssl command for the cross-checks: install it")
needs_openssl = pytest.mark.skipif(OPENSSL is None, reason="the openssl command is not installed")

Cli = Callable[..., Any]


# ------------------------------------------------------------------------ helpers


def openssl(*args: str | Path, check: bool = True) -> subprocess.CompletedProcess[str]:
    assert OPENSSL is not None
    proc = subprocess.run(
        [OPENSSL, *map(str, args)], capture_output=True, text=True, timeout=60, check=False
    )
    if check:
        assert proc.returncode == 0, f"openssl {' '.join(map(str, args))}: {proc.stderr}"
    return proc


def openssl_pkcs12(pfx: Path, passin: str, *extra: str) -> subprocess.CompletedProcess[str]:
    """``openssl pkcs12 -info``; retried with ``-legacy`` only if this OpenSSL needs it.

    OpenSSL 3 keeps 3DES in its default provider (only RC2/RC4 need ``-legacy``), so
    our legacy PFX normally opens without the flag; we record which way it opened.
    """
    args = ["pkcs12", "-in", pfx, "-passin", passin, "-info", "-nokeys", *extra]
    proc = openssl(*args, check=False)
    if proc.returncode != 0 and "unsupported" in proc.stderr.lower():
        proc = openssl(*args, "-legacy", check=False)
    return proc


def sha1_colons(digest_hex: str) -> str:
    return ":".join(digest_hex[i : i + 2] for i in range(0, len(digest_hex), 2))


def error_line(result: Any, *fragments: str) -> str:
    """Assert the result is a failure told in exactly one stderr line, and return it."""
    assert result.exit_code != 0, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(
        result.exception
    )
    assert "Traceback" not in result.output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    line = lines[0]
    assert line.startswith("graphkit: error: "), line
    # "<what>: <what to do>"
    assert ": " in line[len("graphkit: error: ") :], line
    for fragment in fragments:
        assert fragment.lower() in line.lower(), (fragment, line)
    assert result.stdout == ""
    return line


def snapshot(directory: Path) -> dict[str, tuple[bytes, int]]:
    """Every file under ``directory`` with its bytes and mode (to prove nothing changed)."""
    return {
        str(p.relative_to(directory)): (p.read_bytes(), stat.S_IMODE(p.stat().st_mode))
        for p in sorted(directory.rglob("*"))
        if p.is_file()
    }


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def foreign_certificate(key: Any, *, cn: str = "foreign") -> x509.Certificate:
    """A certificate graphkit would refuse to make (EC or small RSA), built directly."""
    now = dt.datetime.now(dt.UTC)
    return self_signed(
        key,
        cn,
        not_before=now - dt.timedelta(minutes=5),
        not_after=now + dt.timedelta(days=30 * 12),
    )


def pem_key(key: Any) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


# ------------------------------------------------------------------------- keygen


def test_keygen_default_is_unencrypted_pkcs8_rsa2048_mode_0600(
    certs_cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    result = certs_cli(["keygen"])
    assert result.exit_code == 0, result.output
    key_path = tmp_path / "graphkit.key"
    data = key_path.read_bytes()
    assert data.startswith(b"-----BEGIN PRIVATE KEY-----")
    assert mode(key_path) == 0o600
    key = serialization.load_pem_private_key(data, None)
    assert isinstance(key, rsa.RSAPrivateKey)
    assert key.key_size == 2048
    assert key.private_numbers().public_numbers.e == 65537
    assert result.stdout == ""  # confirmations go to stderr
    assert "graphkit.key" in result.stderr and "unencrypted" in result.stderr


def test_keygen_3072(certs_cli: Cli, tmp_path: Path) -> None:
    out = tmp_path / "big.key"
    result = certs_cli(["keygen", "--size", "3072", "--out", out])
    assert result.exit_code == 0, result.output
    key = serialization.load_pem_private_key(out.read_bytes(), None)
    assert isinstance(key, rsa.RSAPrivateKey) and key.key_size == 3072


def test_keygen_4096(certs_cli: Cli, tmp_path: Path) -> None:
    out = tmp_path / "biggest.key"
    result = certs_cli(["keygen", "--size", "4096", "--out", out])
    assert result.exit_code == 0, result.output
    key = serialization.load_pem_private_key(out.read_bytes(), None)
    assert isinstance(key, rsa.RSAPrivateKey) and key.key_size == 4096
    assert mode(out) == 0o600
    if OPENSSL is not None:  # and as OpenSSL reads it
        text = openssl("pkey", "-in", out, "-noout", "-text").stdout
        assert "4096 bit" in text.splitlines()[0]


def test_keygen_creates_missing_directories_0700(certs_cli: Cli, tmp_path: Path) -> None:
    out = tmp_path / "new" / "nested" / "app.key"
    result = certs_cli(["keygen", "--out", out])
    assert result.exit_code == 0, result.output
    assert mode(out) == 0o600
    assert mode(tmp_path / "new") == 0o700
    assert mode(tmp_path / "new" / "nested") == 0o700


@needs_openssl
@pytest.mark.parametrize("how", ["file", "env", "prompt"])
def test_keygen_encrypted_opens_with_openssl_pkey(certs_cli: Cli, tmp_path: Path, how: str) -> None:
    out = tmp_path / "enc.key"
    secret = "s3cret passphrase"
    args: list[str | Path] = ["keygen", "--out", out]
    kwargs: dict[str, Any] = {}
    if how == "file":
        passfile = tmp_path / "pass.txt"
        passfile.write_text(secret + "\n")
        args += ["--passphrase-file", passfile]
    elif how == "env":
        kwargs["env"] = {"GRAPHKIT_KEY_PASSPHRASE": secret}
    else:
        args += ["--prompt-passphrase"]
        kwargs["input"] = f"{secret}\n{secret}\n"
    result = certs_cli(args, **kwargs)
    assert result.exit_code == 0, result.output
    assert secret not in result.output
    data = out.read_bytes()
    assert data.startswith(b"-----BEGIN ENCRYPTED PRIVATE KEY-----")
    assert mode(out) == 0o600

    (tmp_path / "right").write_text(secret + "\n")
    (tmp_path / "wrong").write_text("something else\n")
    opened = openssl("pkey", "-in", out, "-passin", f"file:{tmp_path / 'right'}", "-noout")
    assert opened.returncode == 0
    refused = openssl(
        "pkey", "-in", out, "-passin", f"file:{tmp_path / 'wrong'}", "-noout", check=False
    )
    assert refused.returncode != 0
    # And cryptography agrees.
    key = serialization.load_pem_private_key(data, secret.encode())
    assert isinstance(key, rsa.RSAPrivateKey)


def test_keygen_explicit_option_beats_environment(certs_cli: Cli, tmp_path: Path) -> None:
    passfile = tmp_path / "pass.txt"
    passfile.write_text("from-the-file\n")
    out = tmp_path / "k.key"
    result = certs_cli(
        ["keygen", "--out", out, "--passphrase-file", passfile],
        env={"GRAPHKIT_KEY_PASSPHRASE": "from-the-env"},
    )
    assert result.exit_code == 0, result.output
    serialization.load_pem_private_key(out.read_bytes(), b"from-the-file")


def test_keygen_force_replaces_and_keeps_0600(certs_cli: Cli, certs_dir: CertsDir) -> None:
    before = certs_dir.key.read_bytes()
    refused = certs_cli(["keygen", "--out", certs_dir.key])
    error_line(refused, "already exists", "--force")
    assert refused.exit_code == 3
    assert certs_dir.key.read_bytes() == before
    replaced = certs_cli(["keygen", "--out", certs_dir.key, "--force"])
    assert replaced.exit_code == 0, replaced.output
    assert certs_dir.key.read_bytes() != before
    assert mode(certs_dir.key) == 0o600


def test_keygen_interrupted_write_leaves_nothing(
    certs_cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken_fsync(fd: int) -> None:
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(files, "_fsync", broken_fsync)
    result = certs_cli(["keygen", "--out", tmp_path / "k.key"])
    error_line(result, "cannot write")
    assert list(tmp_path.iterdir()) == []


# ---------------------------------------------------------------------------- csr


@needs_openssl
def test_csr_subject_and_sans_verified_by_openssl(certs_cli: Cli, certs_dir: CertsDir) -> None:
    out = certs_dir.path / "app.csr"
    result = certs_cli(
        [
            "csr",
            "--key",
            certs_dir.key,
            "--out",
            out,
            "--subject",
            "CN=reports-app,O=Contoso,C=US",
            "--san",
            "DNS:reports.contoso.example",
            "--san",
            "email:ops@contoso.example",
            "--san",
            "URI:https://contoso.example/reports",
        ]
    )
    assert result.exit_code == 0, result.output
    assert mode(out) == 0o644
    verified = openssl("req", "-in", out, "-verify", "-noout")
    assert "verify OK" in verified.stdout + verified.stderr

    csr = x509.load_pem_x509_csr(out.read_bytes())
    assert csr.is_signature_valid
    assert csr.signature_hash_algorithm is not None
    assert csr.signature_hash_algorithm.name == "sha256"
    assert csr.subject.rfc4514_string() == "CN=reports-app,O=Contoso,C=US"
    sans = csr.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert sans.get_values_for_type(x509.DNSName) == ["reports.contoso.example"]
    assert sans.get_values_for_type(x509.RFC822Name) == ["ops@contoso.example"]
    assert sans.get_values_for_type(x509.UniformResourceIdentifier) == [
        "https://contoso.example/reports"
    ]
    key = serialization.load_pem_private_key(certs_dir.key.read_bytes(), None)
    assert csr.public_key() == key.public_key()


def test_csr_cn_from_encrypted_key(certs_cli: Cli, certs_dir: CertsDir) -> None:
    out = certs_dir.path / "app.csr"
    result = certs_cli(
        [
            "csr",
            "--key",
            certs_dir.enc_key,
            "--cn",
            "reports-app",
            "--out",
            out,
            "--passphrase-file",
            certs_dir.passfile,
        ]
    )
    assert result.exit_code == 0, result.output
    csr = x509.load_pem_x509_csr(out.read_bytes())
    assert csr.subject.rfc4514_string() == "CN=reports-app"
    assert CERTS_PASSPHRASE.decode() not in result.output


def test_csr_default_output_name(
    certs_cli: Cli, certs_dir: CertsDir, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(certs_dir.path)
    result = certs_cli(["csr", "--key", certs_dir.key, "--cn", "x"])
    assert result.exit_code == 0, result.output
    x509.load_pem_x509_csr((certs_dir.path / "graphkit.csr").read_bytes())


# ----------------------------------------------------------------------- selfsign


def _check_client_auth_certificate(cert: x509.Certificate, key: Any) -> None:
    assert cert.signature_hash_algorithm is not None
    assert cert.signature_hash_algorithm.name == "sha256"
    assert crypto.key_matches_certificate(key, cert)
    assert cert.issuer == cert.subject
    assert crypto.verify_self_signature(cert)
    bc = cert.extensions.get_extension_for_class(x509.BasicConstraints)
    assert bc.critical and bc.value.ca is False
    ku = cert.extensions.get_extension_for_class(x509.KeyUsage).value
    assert ku.digital_signature
    assert not (ku.key_cert_sign or ku.crl_sign or ku.key_encipherment)
    eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(eku) == [ExtendedKeyUsageOID.CLIENT_AUTH]
    ski = cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    assert ski == x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    assert 0 < cert.serial_number < 2**159


@needs_openssl
def test_selfsign_from_csr(certs_cli: Cli, certs_dir: CertsDir, certs_rsa_key: Any) -> None:
    csr_path = certs_dir.path / "app.csr"
    crt = certs_dir.path / "app.crt"
    assert (
        certs_cli(
            [
                "csr",
                "--key",
                certs_dir.key,
                "--out",
                csr_path,
                "--subject",
                "CN=reports-app,O=Contoso,C=US",
                "--san",
                "DNS:reports.contoso.example",
            ]
        ).exit_code
        == 0
    )
    result = certs_cli(
        ["selfsign", "--key", certs_dir.key, "--csr", csr_path, "--out", crt, "--days", "90"]
    )
    assert result.exit_code == 0, result.output
    assert mode(crt) == 0o644
    cert = x509.load_pem_x509_certificate(crt.read_bytes())
    _check_client_auth_certificate(cert, certs_rsa_key)
    assert cert.subject.rfc4514_string() == "CN=reports-app,O=Contoso,C=US"
    sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert sans.get_values_for_type(x509.DNSName) == ["reports.contoso.example"]
    lifetime = cert.not_valid_after_utc - dt.datetime.now(dt.UTC)
    assert dt.timedelta(days=89, hours=23) < lifetime <= dt.timedelta(days=90)
    # The thumbprint printed is the one openssl computes.
    fp = openssl("x509", "-in", crt, "-noout", "-fingerprint", "-sha1").stdout
    assert crypto.thumbprints(cert)["sha1"] in fp.replace(":", "")
    assert crypto.thumbprints(cert)["sha1"] in result.stderr
    # Moduli of certificate and key agree.
    mod_cert = openssl("x509", "-in", crt, "-noout", "-modulus").stdout.strip()
    mod_key = openssl("rsa", "-in", certs_dir.key, "-noout", "-modulus").stdout.strip()
    assert mod_cert == mod_key and mod_cert.startswith("Modulus=")


@needs_openssl
def test_selfsign_direct_from_encrypted_key_der(
    certs_cli: Cli, certs_dir: CertsDir, certs_rsa_key: Any
) -> None:
    crt = certs_dir.path / "app.cer"
    result = certs_cli(
        [
            "selfsign",
            "--key",
            certs_dir.enc_key,
            "--cn",
            "reports-app",
            "--san",
            "reports.contoso.example",
            "--der",
            "--out",
            crt,
        ],
        env={"GRAPHKIT_KEY_PASSPHRASE": CERTS_PASSPHRASE.decode()},
    )
    assert result.exit_code == 0, result.output
    cert = x509.load_der_x509_certificate(crt.read_bytes())
    _check_client_auth_certificate(cert, certs_rsa_key)
    lifetime = cert.not_valid_after_utc - dt.datetime.now(dt.UTC)
    assert dt.timedelta(days=364, hours=23) < lifetime <= dt.timedelta(days=365)
    mod_cert = openssl("x509", "-inform", "DER", "-in", crt, "-noout", "-modulus").stdout
    mod_key = openssl(
        "rsa",
        "-in",
        certs_dir.enc_key,
        "-passin",
        f"file:{certs_dir.passfile}",
        "-noout",
        "-modulus",
    ).stdout
    assert mod_cert.strip() == mod_key.strip()


def test_selfsign_serials_are_random(certs_cli: Cli, certs_dir: CertsDir) -> None:
    serials = set()
    for i in range(3):
        out = certs_dir.path / f"c{i}.crt"
        assert (
            certs_cli(["selfsign", "--key", certs_dir.key, "--cn", "x", "--out", out]).exit_code
            == 0
        )
        serials.add(x509.load_pem_x509_certificate(out.read_bytes()).serial_number)
    assert len(serials) == 3


@pytest.mark.parametrize("days", [1, 3650])
def test_selfsign_days_bounds_accepted(certs_cli: Cli, certs_dir: CertsDir, days: int) -> None:
    out = certs_dir.path / "c.crt"
    # Bracketed by the clock read before and after (certificate times have whole
    # seconds): no margin to tune, whatever the machine's speed.
    before = dt.datetime.now(dt.UTC).replace(microsecond=0)
    result = certs_cli(
        ["selfsign", "--key", certs_dir.key, "--cn", "x", "--days", str(days), "-o", out]
    )
    after = dt.datetime.now(dt.UTC)
    assert result.exit_code == 0, result.output
    cert = x509.load_pem_x509_certificate(out.read_bytes())
    # Valid for exactly the days asked from the moment it was made...
    assert before + dt.timedelta(days=days) <= cert.not_valid_after_utc
    assert cert.not_valid_after_utc <= after + dt.timedelta(days=days)
    # ...and already valid then (a few minutes' backdating absorbs clock skew).
    assert cert.not_valid_before_utc <= before
    assert before - cert.not_valid_before_utc <= dt.timedelta(minutes=10)


# --------------------------------------------------------------------- thumbprint


@pytest.fixture
def exported(certs_cli: Cli, certs_dir: CertsDir) -> dict[str, Path]:
    """The test certificate in every form: PEM, DER, combined PEM, both PFX flavours."""
    d = certs_dir.path
    out = {
        "pem": certs_dir.cert,
        "der": d / "test.der",
        "combined": d / "combined.pem",
        "combined_enc": d / "combined-enc.pem",
        "pfx": d / "test.pfx",
        "pfx_legacy": d / "legacy.pfx",
        "pfx_open": d / "open.pfx",
    }
    base = ["export", "--key", certs_dir.key, "--cert", certs_dir.cert]
    pw = ["--passphrase-file", certs_dir.passfile]
    for args in (
        [*base, "--der", out["der"], "--pem", out["combined"], "--no-passphrase"],
        [*base, "--pfx", out["pfx"], "--pem", out["combined_enc"], *pw],
        [*base, "--pfx", out["pfx_legacy"], "--legacy", *pw],
        [*base, "--pfx", out["pfx_open"], "--no-passphrase"],
    ):
        result = certs_cli(args)
        assert result.exit_code == 0, result.output
    return out


@needs_openssl
@pytest.mark.parametrize(
    "form", ["pem", "der", "combined", "combined_enc", "pfx", "pfx_legacy", "pfx_open"]
)
def test_thumbprint_every_form_matches_openssl(
    certs_cli: Cli, certs_dir: CertsDir, exported: dict[str, Path], form: str
) -> None:
    args: list[str | Path] = ["thumbprint", exported[form], "--json"]
    if form in ("pfx", "pfx_legacy"):
        args += ["--passphrase-file", certs_dir.passfile]
    result = certs_cli(args)
    assert result.exit_code == 0, result.output
    info = json.loads(result.stdout)

    der = x509.load_pem_x509_certificate(certs_dir.cert.read_bytes()).public_bytes(
        serialization.Encoding.DER
    )
    sha1 = hashlib.sha1(der).digest()
    sha256 = hashlib.sha256(der).digest()
    fp1 = openssl("x509", "-in", certs_dir.cert, "-noout", "-fingerprint", "-sha1").stdout
    fp256 = openssl("x509", "-in", certs_dir.cert, "-noout", "-fingerprint", "-sha256").stdout
    assert fp1.strip().split("=", 1)[1] == sha1_colons(info["sha1"])
    assert fp256.strip().split("=", 1)[1] == sha1_colons(info["sha256"])
    assert info["sha1"] == sha1.hex().upper()
    assert info["sha256"] == sha256.hex().upper()
    assert info["x5t"] == base64.urlsafe_b64encode(sha1).decode().rstrip("=")
    assert info["x5t#S256"] == base64.urlsafe_b64encode(sha256).decode().rstrip("=")
    assert "=" not in info["x5t"] + info["x5t#S256"]
    assert info["customKeyIdentifier"] == base64.b64encode(sha1).decode()
    assert info["subject"] == "CN=certs-test,O=Contoso,C=US"
    assert info["issuer"] == info["subject"]
    assert info["key_type"] == "RSA" and info["key_size"] == 2048
    assert info["days_left"] in (364, 365)
    assert info["warnings"] == []
    assert result.stderr == ""


def test_thumbprint_labelled_text(certs_cli: Cli, certs_dir: CertsDir) -> None:
    result = certs_cli(["thumbprint", certs_dir.cert])
    assert result.exit_code == 0, result.output
    cert = x509.load_pem_x509_certificate(certs_dir.cert.read_bytes())
    tp = reference_thumbprints(certs_dir.cert.read_bytes())  # openssl's, not graphkit's
    text = result.stdout
    for label, value in [
        ("Thumbprint (SHA-1, portal):", tp["sha1"]),
        ("SHA-256:", tp["sha256"]),
        ("x5t:", tp["x5t"]),
        ("x5t#S256:", tp["x5t#S256"]),
        ("customKeyIdentifier:", tp["customKeyIdentifier"]),
        ("Subject:", "CN=certs-test,O=Contoso,C=US"),
        ("Issuer:", "CN=certs-test,O=Contoso,C=US"),
        ("Serial:", format(cert.serial_number, "X")),
        ("Not before:", cert.not_valid_before_utc.isoformat()),
        ("Not after:", cert.not_valid_after_utc.isoformat()),
        ("Days left:", "36"),
        ("Key:", "RSA 2048"),
    ]:
        line = next((ln for ln in text.splitlines() if ln.startswith(label)), None)
        assert line is not None, (label, text)
        assert value in line, (label, line)


def test_thumbprint_sha1_only(certs_cli: Cli, certs_dir: CertsDir) -> None:
    result = certs_cli(["thumbprint", "--sha1", certs_dir.cert])
    assert result.exit_code == 0, result.output
    cert = x509.load_pem_x509_certificate(certs_dir.cert.read_bytes())
    expected = hashlib.sha1(cert.public_bytes(serialization.Encoding.DER)).hexdigest().upper()
    assert result.stdout == expected + "\n"


def test_thumbprint_pfx_prompt(
    certs_cli: Cli, certs_dir: CertsDir, exported: dict[str, Path]
) -> None:
    result = certs_cli(
        ["thumbprint", "--sha1", exported["pfx"], "--prompt-passphrase"],
        input=CERTS_PASSPHRASE.decode() + "\n",
    )
    assert result.exit_code == 0, result.output
    assert len(result.stdout.strip()) == 40


@pytest.mark.parametrize(
    ("case", "warning"),
    [
        ("expired", "expired"),
        ("not_yet_valid", "not yet valid"),
        ("expiring", "expires in"),
        ("ec", "only RSA"),
        ("small", "1024 bits"),
    ],
)
def test_thumbprint_warnings(
    certs_cli: Cli,
    tmp_path: Path,
    certs_rsa_key: Any,
    certs_ec_key: Any,
    certs_small_key: Any,
    case: str,
    warning: str,
) -> None:
    now = dt.datetime.now(dt.UTC)
    name = crypto.parse_subject(cn="warn")
    if case == "expired":
        cert = crypto.self_sign(certs_rsa_key, name, days=30, now=now - dt.timedelta(days=400))
    elif case == "not_yet_valid":
        cert = crypto.self_sign(certs_rsa_key, name, days=30, now=now + dt.timedelta(days=10))
    elif case == "expiring":
        cert = crypto.self_sign(certs_rsa_key, name, days=30, now=now - dt.timedelta(days=22))
    elif case == "ec":
        cert = foreign_certificate(certs_ec_key)
    else:
        cert = foreign_certificate(certs_small_key)
    path = tmp_path / "warn.crt"
    path.write_bytes(crypto.dump_certificate(cert))
    result = certs_cli(["thumbprint", path, "--json"])
    assert result.exit_code == 0, result.output
    info = json.loads(result.stdout)  # stdout stays pure data
    warnings = [ln for ln in result.stderr.splitlines() if ln]
    assert len(warnings) == 1, result.stderr
    assert warnings[0].startswith("graphkit: warning: ")
    assert warning in warnings[0]
    assert info["warnings"] and warning in info["warnings"][0]
    if case == "expired":
        assert info["days_left"] < -300
    if case == "ec":
        assert info["key_type"].startswith("EC")


# ------------------------------------------------------------------------- export


@needs_openssl
def test_export_pfx_both_flavours_open_in_openssl(
    certs_cli: Cli, certs_dir: CertsDir, exported: dict[str, Path]
) -> None:
    passin = f"file:{certs_dir.passfile}"
    modern = openssl_pkcs12(exported["pfx"], passin)
    assert modern.returncode == 0, modern.stderr
    info = modern.stdout + modern.stderr
    assert "AES-256-CBC" in info and "PBKDF2" in info
    assert "TripleDES" not in info and "RC2" not in info

    legacy = openssl_pkcs12(exported["pfx_legacy"], passin)
    assert legacy.returncode == 0, legacy.stderr
    info = legacy.stdout + legacy.stderr
    assert "pbeWithSHA1And3-KeyTripleDES-CBC" in info
    assert "MAC: sha1" in info
    assert "AES" not in info

    open_pfx = openssl_pkcs12(exported["pfx_open"], "pass:")
    assert open_pfx.returncode == 0, open_pfx.stderr

    # The wrong passphrase is refused; the certificate inside is ours.
    (certs_dir.path / "w").write_text("wrong\n")
    for pfx in (exported["pfx"], exported["pfx_legacy"]):
        assert openssl_pkcs12(pfx, f"file:{certs_dir.path / 'w'}").returncode != 0
        cert_pem = openssl("pkcs12", "-in", pfx, "-passin", passin, "-nokeys", "-clcerts").stdout
        assert x509.load_pem_x509_certificate(cert_pem.encode()) == x509.load_pem_x509_certificate(
            certs_dir.cert.read_bytes()
        )
        key_mod = openssl("pkcs12", "-in", pfx, "-passin", passin, "-nocerts", "-nodes").stdout
        mod_from_pfx = subprocess.run(
            [OPENSSL or "openssl", "rsa", "-noout", "-modulus"],
            input=key_mod,
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        mod_cert = openssl("x509", "-in", certs_dir.cert, "-noout", "-modulus").stdout
        assert mod_from_pfx == mod_cert


def test_export_files_load_without_msal(
    certs_dir: CertsDir, exported: dict[str, Path], certs_rsa_key: Any
) -> None:
    cert = x509.load_pem_x509_certificate(certs_dir.cert.read_bytes())
    for name in ("pfx", "pfx_legacy"):
        loaded = pkcs12.load_pkcs12(exported[name].read_bytes(), CERTS_PASSPHRASE)
        assert loaded.cert is not None and loaded.cert.certificate == cert
        assert loaded.key is not None and crypto.key_matches_certificate(loaded.key, cert)
        with pytest.raises(ValueError):
            pkcs12.load_pkcs12(exported[name].read_bytes(), b"wrong")
    open_pfx = pkcs12.load_pkcs12(exported["pfx_open"].read_bytes(), None)
    assert open_pfx.key is not None

    combined = exported["combined"].read_bytes()
    assert combined.index(b"PRIVATE KEY") < combined.index(b"BEGIN CERTIFICATE")
    assert serialization.load_pem_private_key(combined, None).public_key() == (
        certs_rsa_key.public_key()
    )
    assert x509.load_pem_x509_certificate(combined) == cert
    enc = exported["combined_enc"].read_bytes()
    assert b"ENCRYPTED PRIVATE KEY" in enc
    serialization.load_pem_private_key(enc, CERTS_PASSPHRASE)
    assert x509.load_der_x509_certificate(exported["der"].read_bytes()) == cert

    for name in ("pfx", "pfx_legacy", "pfx_open", "combined", "combined_enc"):
        assert mode(exported[name]) == 0o600, name
    assert mode(exported["der"]) == 0o644


def test_export_azure_identity_accepts_pem_and_pfx(
    certs_dir: CertsDir, exported: dict[str, Path]
) -> None:
    from azure.identity import CertificateCredential

    tenant = "00000000-0000-0000-0000-000000000001"
    client = "00000000-0000-0000-0000-000000000002"
    for name, password in [
        ("combined", None),
        ("combined_enc", CERTS_PASSPHRASE),
        ("pfx", CERTS_PASSPHRASE),
        ("pfx_legacy", CERTS_PASSPHRASE),
    ]:
        CertificateCredential(
            tenant, client, certificate_path=str(exported[name]), password=password
        )
    # Construction really parses the files: a wrong password is refused.
    for name in ("combined_enc", "pfx"):
        with pytest.raises(ValueError):
            CertificateCredential(
                tenant, client, certificate_path=str(exported[name]), password=b"wrong"
            )
    # And the thumbprint azure-identity computes (it sends it as x5t) is ours.
    from azure.identity._credentials.certificate import get_client_credential

    cert = x509.load_pem_x509_certificate(certs_dir.cert.read_bytes())
    credential = get_client_credential(str(exported["pfx"]), password=CERTS_PASSPHRASE)
    assert str(credential["thumbprint"]).upper() == crypto.thumbprints(cert)["sha1"]


def test_export_prompt_asks_twice(certs_dir: CertsDir) -> None:
    # On a terminal (a pty), as a person sees it: two hidden prompts, then the PFX.
    pexpect = pytest.importorskip("pexpect")
    from _process_helpers import graphkit_argv

    pfx = certs_dir.path / "p.pfx"
    args = ["export", "--key", certs_dir.key, "--cert", certs_dir.cert, "--pfx", pfx]
    exe, *argv = graphkit_argv(*map(str, args), "--prompt-passphrase")
    child = pexpect.spawn(exe, argv, encoding="utf-8", timeout=60)
    try:
        child.expect_exact("Passphrase: ")
        child.sendline("pw-one")
        child.expect_exact("Repeat passphrase: ")
        child.sendline("pw-one")
        child.expect(pexpect.EOF)
    finally:
        child.close()
    assert child.exitstatus == 0, child.before
    assert "pw-one" not in child.before  # hidden: never echoed
    pkcs12.load_pkcs12(pfx.read_bytes(), b"pw-one")


def test_export_force(certs_cli: Cli, certs_dir: CertsDir, exported: dict[str, Path]) -> None:
    before = exported["pfx_open"].read_bytes()
    args = [
        "export",
        "--key",
        certs_dir.key,
        "--cert",
        certs_dir.cert,
        "--pfx",
        exported["pfx_open"],
        "--no-passphrase",
    ]
    error_line(certs_cli(args), "already exists")
    assert exported["pfx_open"].read_bytes() == before
    result = certs_cli([*args, "--force"])
    assert result.exit_code == 0, result.output
    assert exported["pfx_open"].read_bytes() != before  # fresh salt / MAC
    assert mode(exported["pfx_open"]) == 0o600


def test_export_key_from_combined_cert_file(
    certs_cli: Cli, certs_dir: CertsDir, exported: dict[str, Path]
) -> None:
    """--cert may be a combined PEM; its (encrypted) key is not needed."""
    der = certs_dir.path / "again.der"
    result = certs_cli(
        ["export", "--key", certs_dir.key, "--cert", exported["combined_enc"], "--der", der]
    )
    assert result.exit_code == 0, result.output
    assert der.read_bytes() == exported["der"].read_bytes()


# ------------------------------------------------------------------------ bad input


@dataclass
class Bad:
    """One bad invocation: its arguments, what the error line must say, the exit status."""

    args: list[str | Path]
    says: tuple[str, ...]
    code: int = 3
    input: str | None = None
    env: dict[str, str] | None = None


def _truncate(data: bytes) -> bytes:
    return data[: len(data) // 2]


def _drop_body_line(data: bytes) -> bytes:
    lines = data.splitlines(keepends=True)
    return b"".join(lines[:3] + lines[4:])


def _bad_base64(data: bytes) -> bytes:
    lines = data.splitlines(keepends=True)
    return b"".join([*lines[:2], b"!!!! not base64 !!!!\n", *lines[3:]])


BAD_CASES: dict[str, Callable[[CertsDir, dict[str, Any]], Bad]] = {}


def bad(name: str) -> Callable[[Callable[..., Bad]], Callable[..., Bad]]:
    def register(fn: Callable[..., Bad]) -> Callable[..., Bad]:
        BAD_CASES[name] = fn
        return fn

    return register


def _write(d: CertsDir, name: str, data: bytes) -> Path:
    path = d.path / name
    path.write_bytes(data)
    return path


# keygen
bad("keygen-1024")(
    lambda d, k: Bad(["keygen", "-o", d.path / "n.key", "--size", "1024"], ("2048",))
)
bad("keygen-size-5000")(
    lambda d, k: Bad(["keygen", "-o", d.path / "n.key", "--size", "5000"], ("size 5000",))
)
bad("keygen-output-exists")(
    lambda d, k: Bad(["keygen", "-o", d.key], ("already exists", "--force"))
)
bad("keygen-prompt-mismatch")(
    lambda d, k: Bad(
        ["keygen", "-o", d.path / "n.key", "--prompt-passphrase"],
        ("do not match",),
        input="one\ntwo\n",
    )
)
bad("keygen-prompt-empty")(
    lambda d, k: Bad(
        ["keygen", "-o", d.path / "n.key", "--prompt-passphrase"], ("empty",), input="\n\n"
    )
)
bad("keygen-passphrase-file-missing")(
    lambda d, k: Bad(
        ["keygen", "-o", d.path / "n.key", "--passphrase-file", d.path / "nope"],
        ("does not exist",),
    )
)
bad("keygen-passphrase-file-empty")(
    lambda d, k: Bad(
        ["keygen", "-o", d.path / "n.key", "--passphrase-file", _write(d, "empty.txt", b"\n")],
        ("empty",),
    )
)
bad("keygen-file-and-prompt")(
    lambda d, k: Bad(
        ["keygen", "-o", d.path / "n.key", "--passphrase-file", d.passfile, "--prompt-passphrase"],
        ("choose one",),
    )
)
bad("keygen-passphrase-as-argument")(
    lambda d, k: Bad(
        ["keygen", "-o", d.path / "n.key", "--passphrase", "hunter2"],
        ("never taken as an argument", "--passphrase-file"),
        code=2,
    )
)
bad("keygen-passphrase-equals-argument")(
    lambda d, k: Bad(
        ["keygen", "-o", d.path / "n.key", "--passphrase=hunter2"],
        ("never taken as an argument",),
        code=2,
    )
)

# csr: the key
_csr = ["csr", "--cn", "x", "--out"]
bad("csr-key-missing")(
    lambda d, k: Bad([*_csr, d.path / "n.csr", "--key", d.path / "nope.key"], ("does not exist",))
)
bad("csr-key-garbage")(
    lambda d, k: Bad(
        [*_csr, d.path / "n.csr", "--key", _write(d, "g.key", os.urandom(600))],
        ("not a readable private key",),
    )
)
bad("csr-key-empty")(
    lambda d, k: Bad([*_csr, d.path / "n.csr", "--key", _write(d, "e.key", b"")], ("is empty",))
)
bad("csr-key-is-a-pfx")(
    lambda d, k: Bad([*_csr, d.path / "n.csr", "--key", k["pfx"]], ("is a PFX", "openssl pkcs12"))
)
bad("csr-key-is-a-certificate")(
    lambda d, k: Bad([*_csr, d.path / "n.csr", "--key", d.cert], ("no private key",))
)
bad("csr-key-truncated")(
    lambda d, k: Bad(
        [*_csr, d.path / "n.csr", "--key", _write(d, "t.key", _truncate(d.key.read_bytes()))],
        ("truncated",),
    )
)
bad("csr-key-corrupted")(
    lambda d, k: Bad(
        [*_csr, d.path / "n.csr", "--key", _write(d, "c.key", _drop_body_line(d.key.read_bytes()))],
        ("not a readable private key",),
    )
)
bad("csr-key-bad-base64")(
    lambda d, k: Bad(
        [*_csr, d.path / "n.csr", "--key", _write(d, "b.key", _bad_base64(d.key.read_bytes()))],
        ("not a readable private key",),
    )
)
bad("csr-key-encrypted-no-passphrase")(
    lambda d, k: Bad(
        [*_csr, d.path / "n.csr", "--key", d.enc_key], ("is encrypted", "--passphrase-file")
    )
)
bad("csr-key-wrong-passphrase")(
    lambda d, k: Bad(
        [*_csr, d.path / "n.csr", "--key", d.enc_key, "--passphrase-file", d.wrongfile],
        ("wrong passphrase",),
    )
)
bad("csr-key-wrong-passphrase-env")(
    lambda d, k: Bad(
        [*_csr, d.path / "n.csr", "--key", d.enc_key],
        ("wrong passphrase",),
        env={"GRAPHKIT_KEY_PASSPHRASE": "nope"},
    )
)
bad("csr-key-ec")(
    lambda d, k: Bad([*_csr, d.path / "n.csr", "--key", k["ec_key"]], ("EC", "only RSA", "keygen"))
)
bad("csr-key-1024")(
    lambda d, k: Bad([*_csr, d.path / "n.csr", "--key", k["small_key"]], ("1024", "2048"))
)
bad("csr-output-exists")(
    lambda d, k: Bad([*_csr, d.cert, "--key", d.key], ("already exists", "--force"))
)
# csr: the subject
for _i, (_subject, _says) in enumerate(
    [
        ("garbage", "not KEY=VALUE"),
        ("CN=a,Q=b", "unknown attribute 'Q'"),
        ("CN=a,C=USA", "length"),
        ("CN=", "invalid subject"),
        ("CN=a,,O=b", "invalid subject"),
    ]
):
    bad(f"csr-subject-invalid-{_i}")(
        lambda d, k, s=_subject, says=_says: Bad(
            ["csr", "--key", d.key, "--out", d.path / "n.csr", "--subject", s],
            ("invalid subject", says, "RFC 4514"),
        )
    )
bad("csr-no-subject")(
    lambda d, k: Bad(["csr", "--key", d.key, "--out", d.path / "n.csr"], ("no subject",))
)
bad("csr-subject-and-cn")(
    lambda d, k: Bad(
        ["csr", "--key", d.key, "--out", d.path / "n.csr", "--subject", "CN=a", "--cn", "b"],
        ("either --subject or --cn",),
    )
)
bad("csr-empty-cn")(
    lambda d, k: Bad(["csr", "--key", d.key, "--out", d.path / "n.csr", "--cn", " "], ("empty",))
)
bad("csr-bad-san-ip")(
    lambda d, k: Bad(
        [*_csr, d.path / "n.csr", "--key", d.key, "--san", "IP:999.1.1.1"], ("invalid IP",)
    )
)

# selfsign
_ss = ["selfsign", "--cn", "x", "--out"]
for _days in ("0", "99999", "-1", "3651"):
    bad(f"selfsign-days-{_days}")(
        lambda d, k, days=_days: Bad(
            [*_ss, d.path / "n.crt", "--key", d.key, "--days", days], ("out of range", "3650")
        )
    )
bad("selfsign-days-not-a-number")(
    lambda d, k: Bad(
        [*_ss, d.path / "n.crt", "--key", d.key, "--days", "abc"], ("not a valid integer",), code=2
    )
)
bad("selfsign-key-ec")(
    lambda d, k: Bad([*_ss, d.path / "n.crt", "--key", k["ec_key"]], ("only RSA",))
)
bad("selfsign-key-1024")(
    lambda d, k: Bad([*_ss, d.path / "n.crt", "--key", k["small_key"]], ("1024",))
)
bad("selfsign-key-missing")(
    lambda d, k: Bad([*_ss, d.path / "n.crt", "--key", d.path / "nope.key"], ("does not exist",))
)
bad("selfsign-key-encrypted-no-passphrase")(
    lambda d, k: Bad([*_ss, d.path / "n.crt", "--key", d.enc_key], ("is encrypted",))
)
bad("selfsign-key-wrong-passphrase")(
    lambda d, k: Bad(
        [*_ss, d.path / "n.crt", "--key", d.enc_key, "--prompt-passphrase"],
        ("wrong passphrase",),
        input="nope\n",
    )
)
bad("selfsign-csr-missing")(
    lambda d, k: Bad(
        ["selfsign", "--key", d.key, "--csr", d.path / "nope.csr", "-o", d.path / "n.crt"],
        ("does not exist",),
    )
)
bad("selfsign-csr-garbage")(
    lambda d, k: Bad(
        [
            "selfsign",
            "--key",
            d.key,
            "--csr",
            _write(d, "g.csr", b"\x30\x82garbage"),
            "-o",
            d.path / "n.crt",
        ],
        ("not a readable certificate request",),
    )
)
bad("selfsign-csr-other-key")(
    lambda d, k: Bad(
        ["selfsign", "--key", d.key, "--csr", k["other_csr"], "-o", d.path / "n.crt"],
        ("not made with this key",),
    )
)
bad("selfsign-csr-bad-signature")(
    lambda d, k: Bad(
        ["selfsign", "--key", d.key, "--csr", k["tampered_csr"], "-o", d.path / "n.crt"],
        ("signature is invalid",),
    )
)
bad("selfsign-csr-and-subject")(
    lambda d, k: Bad(
        ["selfsign", "--key", d.key, "--csr", k["csr"], "--cn", "x", "-o", d.path / "n.crt"],
        ("already carries",),
    )
)
bad("selfsign-no-subject")(
    lambda d, k: Bad(["selfsign", "--key", d.key, "-o", d.path / "n.crt"], ("no subject",))
)
bad("selfsign-output-exists")(lambda d, k: Bad([*_ss, d.cert, "--key", d.key], ("already exists",)))

# thumbprint
bad("thumbprint-missing")(
    lambda d, k: Bad(["thumbprint", d.path / "nope.crt"], ("does not exist",))
)
bad("thumbprint-directory")(lambda d, k: Bad(["thumbprint", d.path], ("is a directory",)))
bad("thumbprint-empty")(lambda d, k: Bad(["thumbprint", _write(d, "e.crt", b"")], ("is empty",)))
bad("thumbprint-garbage")(
    lambda d, k: Bad(["thumbprint", _write(d, "g.crt", os.urandom(700))], ("not PEM, DER or PFX",))
)
bad("thumbprint-text-garbage")(
    lambda d, k: Bad(
        ["thumbprint", _write(d, "t.crt", b"hello, I am not a certificate\n")],
        ("not PEM, DER or PFX",),
    )
)
bad("thumbprint-key-only")(
    lambda d, k: Bad(["thumbprint", d.key], ("private key but no certificate",))
)
bad("thumbprint-pem-truncated")(
    lambda d, k: Bad(
        ["thumbprint", _write(d, "t.crt", _truncate(d.cert.read_bytes()))], ("truncated",)
    )
)
bad("thumbprint-pem-corrupted")(
    lambda d, k: Bad(
        ["thumbprint", _write(d, "c.crt", _drop_body_line(d.cert.read_bytes()))],
        ("corrupted certificate",),
    )
)
bad("thumbprint-pem-bad-base64")(
    lambda d, k: Bad(
        ["thumbprint", _write(d, "b.crt", _bad_base64(d.cert.read_bytes()))],
        ("corrupted certificate",),
    )
)
bad("thumbprint-der-truncated")(
    lambda d, k: Bad(
        ["thumbprint", _write(d, "t.der", _truncate(k["der"]))], ("not a readable certificate",)
    )
)
bad("thumbprint-pfx-no-passphrase")(
    lambda d, k: Bad(["thumbprint", k["pfx"]], ("needs a passphrase", "--passphrase-file"))
)
bad("thumbprint-pfx-wrong-passphrase")(
    lambda d, k: Bad(
        ["thumbprint", k["pfx"], "--passphrase-file", d.wrongfile], ("wrong passphrase",)
    )
)
bad("thumbprint-pfx-truncated")(
    lambda d, k: Bad(
        [
            "thumbprint",
            _write(d, "t.pfx", _truncate(k["pfx"].read_bytes())),
            "--passphrase-file",
            d.passfile,
        ],
        ("wrong passphrase", "corrupted"),
    )
)

# export
_ex = ["export", "--cert"]
bad("export-nothing")(
    lambda d, k: Bad([*_ex, d.cert, "--key", d.key], ("nothing to export", "--pfx"))
)
bad("export-pfx-needs-passphrase")(
    lambda d, k: Bad(
        [*_ex, d.cert, "--key", d.key, "--pfx", d.path / "n.pfx"],
        ("needs a passphrase", "--no-passphrase"),
    )
)
bad("export-key-cert-mismatch")(
    lambda d, k: Bad(
        [*_ex, d.cert, "--key", k["other_key"], "--pem", d.path / "n.pem", "--no-passphrase"],
        ("does not match",),
    )
)
bad("export-key-ec")(
    lambda d, k: Bad(
        [*_ex, d.cert, "--key", k["ec_key"], "--pem", d.path / "n.pem", "--no-passphrase"],
        ("only RSA",),
    )
)
bad("export-cert-missing")(
    lambda d, k: Bad(
        [*_ex, d.path / "nope.crt", "--key", d.key, "--der", d.path / "n.der"], ("does not exist",)
    )
)
bad("export-cert-garbage")(
    lambda d, k: Bad(
        [*_ex, _write(d, "g.crt", os.urandom(300)), "--key", d.key, "--der", d.path / "n.der"],
        ("not PEM, DER or PFX",),
    )
)
bad("export-key-encrypted-no-passphrase")(
    lambda d, k: Bad(
        [*_ex, d.cert, "--key", d.enc_key, "--der", d.path / "n.der"], ("is encrypted",)
    )
)
bad("export-key-wrong-passphrase")(
    lambda d, k: Bad(
        [
            *_ex,
            d.cert,
            "--key",
            d.enc_key,
            "--pfx",
            d.path / "n.pfx",
            "--passphrase-file",
            d.wrongfile,
        ],
        ("wrong passphrase",),
    )
)
bad("export-output-exists")(
    lambda d, k: Bad(
        [
            *_ex,
            d.cert,
            "--key",
            d.key,
            "--pfx",
            d.path / "n.pfx",
            "--pem",
            d.key,
            "--no-passphrase",
        ],
        ("already exists",),
    )
)
bad("export-same-output-twice")(
    lambda d, k: Bad(
        [
            *_ex,
            d.cert,
            "--key",
            d.key,
            "--pfx",
            d.path / "n.out",
            "--pem",
            d.path / "n.out",
            "--no-passphrase",
        ],
        ("two outputs",),
    )
)
bad("export-prompt-mismatch")(
    lambda d, k: Bad(
        [*_ex, d.cert, "--key", d.key, "--pfx", d.path / "n.pfx", "--prompt-passphrase"],
        ("do not match",),
        input="one\ntwo\n",
    )
)


@pytest.fixture
def bad_material(
    certs_dir: CertsDir,
    certs_ec_key: Any,
    certs_small_key: Any,
    certs_other_key: Any,
    certs_rsa_key: Any,
) -> dict[str, Any]:
    """Files the bad-input cases point at, written before the directory is snapshotted."""
    d = certs_dir
    name = crypto.parse_subject(cn="x")
    other_csr = crypto.build_csr(certs_other_key, name)
    good_csr = crypto.build_csr(certs_rsa_key, name)
    der = bytearray(good_csr.public_bytes(serialization.Encoding.DER))
    der[-10] ^= 0xFF  # inside the signature: still parses, no longer verifies
    cert = x509.load_pem_x509_certificate(d.cert.read_bytes())
    return {
        "ec_key": _write(d, "ec.key", pem_key(certs_ec_key)),
        "small_key": _write(d, "small.key", pem_key(certs_small_key)),
        "other_key": _write(d, "other.key", pem_key(certs_other_key)),
        "other_csr": _write(d, "other.csr", crypto.dump_csr(other_csr)),
        "csr": _write(d, "good.csr", crypto.dump_csr(good_csr)),
        "tampered_csr": _write(d, "tampered.csr", bytes(der)),
        "der": crypto.dump_certificate(cert, der=True),
        "pfx": _write(d, "test.pfx", crypto.dump_pfx(certs_rsa_key, cert, CERTS_PASSPHRASE)),
    }


@pytest.mark.parametrize("case", sorted(BAD_CASES))
def test_bad_input_one_line_no_traceback_nothing_written(
    certs_cli: Cli, certs_dir: CertsDir, bad_material: dict[str, Any], case: str
) -> None:
    spec = BAD_CASES[case](certs_dir, bad_material)
    before = snapshot(certs_dir.path)
    result = certs_cli(spec.args, input=spec.input, env=spec.env)
    line = error_line(result, *spec.says)
    assert result.exit_code == spec.code, line
    assert snapshot(certs_dir.path) == before, "a failed command changed the directory"
    for secret in (CERTS_PASSPHRASE.decode(), "hunter2", "PRIVATE KEY", "MII"):
        assert secret not in result.output


@pytest.mark.parametrize(
    "case", sorted(c for c in BAD_CASES if "argument" not in c and "not-a-number" not in c)
)
def test_bad_input_with_debug_shows_the_traceback_and_keeps_the_status(
    certs_cli: Cli, certs_dir: CertsDir, bad_material: dict[str, Any], case: str
) -> None:
    spec = BAD_CASES[case](certs_dir, bad_material)
    result = certs_cli(["--debug", *spec.args], input=spec.input, env=spec.env)
    assert result.exit_code == spec.code, result.stderr
    assert "Traceback (most recent call last)" in result.stderr
    assert "graphkit.errors." in result.stderr  # the GraphkitError raised, by its class
    # (The traceback quotes source lines, such as _pem_block(data, "PRIVATE KEY", ...).)
    for secret in (CERTS_PASSPHRASE.decode(), "hunter2"):
        assert secret not in result.output


def test_every_command_has_bad_input_cases() -> None:
    for command in ("keygen", "csr", "selfsign", "thumbprint", "export"):
        assert any(case.startswith(command + "-") for case in BAD_CASES), command


# ----------------------------------------------------------- a real subprocess


def _graphkit(*args: str | Path, cwd: Path, env: dict[str, str] | None = None) -> Any:
    full_env = {k: v for k, v in os.environ.items() if k != "GRAPHKIT_KEY_PASSPHRASE"}
    full_env.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "graphkit", *map(str, args)],
        cwd=cwd,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@needs_openssl
def test_python_dash_m_graphkit_whole_flow(tmp_path: Path) -> None:
    passfile = tmp_path / "pass.txt"
    passfile.write_text("subprocess pass\n")
    steps = [
        ["keygen", "--passphrase-file", passfile],
        [
            "csr",
            "--key",
            "graphkit.key",
            "--subject",
            "CN=reports-app,O=Contoso,C=US",
            "--passphrase-file",
            passfile,
        ],
        [
            "selfsign",
            "--key",
            "graphkit.key",
            "--csr",
            "graphkit.csr",
            "--passphrase-file",
            passfile,
        ],
        [
            "export",
            "--key",
            "graphkit.key",
            "--cert",
            "graphkit.crt",
            "--pfx",
            "app.pfx",
            "--pem",
            "app.pem",
            "--passphrase-file",
            passfile,
        ],
    ]
    for step in steps:
        proc = _graphkit(*step, cwd=tmp_path)
        assert proc.returncode == 0, (step, proc.stderr)
        assert "Traceback" not in proc.stderr
    assert mode(tmp_path / "graphkit.key") == 0o600
    assert mode(tmp_path / "graphkit.csr") == 0o644
    assert mode(tmp_path / "graphkit.crt") == 0o644
    assert mode(tmp_path / "app.pfx") == 0o600
    assert mode(tmp_path / "app.pem") == 0o600

    proc = _graphkit("thumbprint", "--sha1", "graphkit.crt", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    fp = openssl("x509", "-in", tmp_path / "graphkit.crt", "-noout", "-fingerprint", "-sha1")
    assert proc.stdout.strip() == fp.stdout.strip().split("=", 1)[1].replace(":", "")
    verified = openssl("req", "-in", tmp_path / "graphkit.csr", "-verify", "-noout")
    assert "verify OK" in verified.stdout + verified.stderr
    assert openssl_pkcs12(tmp_path / "app.pfx", f"file:{passfile}").returncode == 0


def test_python_dash_m_graphkit_error_and_debug(tmp_path: Path) -> None:
    proc = _graphkit("thumbprint", "missing.crt", cwd=tmp_path)
    assert proc.returncode == 3
    assert proc.stdout == ""
    assert proc.stderr.splitlines() == [
        "graphkit: error: certificate file missing.crt does not exist: check the path"
    ]
    debug = _graphkit("--debug", "thumbprint", "missing.crt", cwd=tmp_path)
    assert debug.returncode != 0
    assert "Traceback (most recent call last)" in debug.stderr
    assert "InputError" in debug.stderr

    # A passphrase given as an argument is refused and never echoed.
    proc = _graphkit("keygen", "--passphrase", "hunter2", cwd=tmp_path)
    assert proc.returncode == 2
    assert "hunter2" not in proc.stdout + proc.stderr
    assert len(proc.stderr.splitlines()) == 1
    assert not (tmp_path / "graphkit.key").exists()


# -------------------------------------------------------------- the import rule


def _imported(*args: str) -> set[str]:
    """Top-level packages imported by ``python -X importtime -m graphkit ARGS``."""
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "graphkit", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=REPO,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    names = set()
    for line in proc.stderr.splitlines():
        if line.startswith("import time:") and line.count("|") == 2:
            names.add(line.rsplit("|", 1)[1].strip().split(".")[0])
    assert "typer" in names  # the parse worked
    return names


def test_help_imports_no_cryptography_msal_requests() -> None:
    names = _imported("--help")
    assert not names & {"cryptography", "msal", "requests"}, sorted(
        names & {"cryptography", "msal", "requests"}
    )


def test_thumbprint_imports_no_msal_requests(certs_dir: CertsDir) -> None:
    names = _imported("thumbprint", str(certs_dir.cert))
    assert "cryptography" in names
    assert not names & {"msal", "requests"}, sorted(names & {"msal", "requests"})


def test_help_sys_modules_check() -> None:
    """The same rule seen from inside: sys.modules after rendering --help."""
    code = (
        "import sys\n"
        "from graphkit.cli import main\n"
        "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
        "print('MODULES: ' + ' '.join(sorted({m.split('.')[0] for m in sys.modules})))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    )
    # Only the last line lists modules: the help text before it may use the same words.
    last = proc.stdout.strip().splitlines()[-1]
    assert last.startswith("MODULES: ")
    loaded = set(last.split()[1:])
    assert "graphkit" in loaded
    assert not loaded & {"cryptography", "msal", "requests"}


def test_thumbprint_skips_pydantic(certs_dir: CertsDir) -> None:
    """Typer would convert values through pydantic (~80 ms); LeanParams avoids it."""
    assert "pydantic" not in _imported("thumbprint", str(certs_dir.cert))


# ------------------------------------------------------------ the lazy runner


def _eager(*args: str) -> tuple[int, str, str]:
    """What Typer prints when it builds the whole command tree."""
    code = f"from graphkit.cli import app\napp(args={list(args)!r}, prog_name='graphkit')\n"
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False
    )
    return proc.returncode, proc.stdout, proc.stderr


@pytest.mark.parametrize(
    "args", [["--help"], [], ["keygen", "--help"], ["config", "--help"], ["--version"]]
)
def test_lazy_help_is_identical_to_full_tree(tmp_path: Path, args: list[str]) -> None:
    proc = _graphkit(*args, cwd=tmp_path)
    assert (proc.returncode, proc.stdout, proc.stderr) == _eager(*args)
    assert "Usage: graphkit" in proc.stdout + proc.stderr or args == ["--version"]


def test_lazy_runner_restores_the_tree_and_handles_unknown_commands(
    certs_dir: CertsDir, capsys: pytest.CaptureFixture[str]
) -> None:
    from graphkit.cli import _typer_internals, app

    before = (list(app.registered_commands), list(app.registered_groups))
    with pytest.raises(SystemExit) as done:
        _typer_internals.run(app, ["thumbprint", "--sha1", str(certs_dir.cert)])
    assert done.value.code in (0, None)
    assert len(capsys.readouterr().out.strip()) == 40
    assert (app.registered_commands, app.registered_groups) == before

    with pytest.raises(SystemExit) as unknown:
        _typer_internals.run(app, ["no-such-command"])
    assert unknown.value.code == 2
    assert (app.registered_commands, app.registered_groups) == before
