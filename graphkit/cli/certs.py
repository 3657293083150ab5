"""keygen, csr, selfsign, thumbprint, export: the OpenSSL steps, done safely.

No ``from __future__ import annotations`` here on purpose: Typer would then ``eval``
every parameter annotation on each start, which costs several milliseconds.
"""

from pathlib import Path
from typing import Annotated, Any

import typer

from graphkit.cli._common import (
    ForceOpt,
    OutputOpt,
    PassphraseFileOpt,
    PromptPassphraseOpt,
    emit,
    output_format,
    read_passphrase,
    say,
    warn,
)
from graphkit.cli._typer_internals import LeanCommand
from graphkit.errors import CryptoError, InputError

SubjectOpt = Annotated[
    str | None,
    typer.Option("--subject", help="RFC 4514 subject, e.g. 'CN=reports-app,O=Contoso,C=US'."),
]
CnOpt = Annotated[str | None, typer.Option("--cn", help="Common name (instead of --subject).")]
SanOpt = Annotated[
    list[str] | None,
    typer.Option("--san", help="Subject alternative name: DNS:host, email:addr, URI:url. Repeat."),
]
KeyOpt = Annotated[Path, typer.Option("--key", help="The private key (PEM or DER).")]


def _load_key(path: Path, passphrase: bytes | None) -> Any:
    from graphkit import crypto
    from graphkit.files import read_bytes

    return crypto.load_private_key(read_bytes(path, "key file"), passphrase, source=f"key {path}")


def _refuse_existing(*targets: Path | None, force: bool) -> None:
    """Fail before any prompt or slow work if an output exists (atomic_write checks again)."""
    from graphkit.files import check_output

    seen: set[Path] = set()
    for target in targets:
        if target is None:
            continue
        if target in seen:
            raise InputError(f"{target} is given for two outputs", "give each output its own path")
        seen.add(target)
        check_output(target, force)


def _sans(values: list[str] | None) -> list[Any]:
    from graphkit import crypto

    return [crypto.parse_san(v) for v in values or []]


def keygen(
    out: Annotated[Path, typer.Option("--out", "-o", help="Where to write the key.")] = Path(
        "graphkit.key"
    ),
    size: Annotated[int, typer.Option("--size", help="RSA key size: 2048, 3072 or 4096.")] = 2048,
    passphrase_file: PassphraseFileOpt = None,
    prompt_passphrase: PromptPassphraseOpt = False,
    force: ForceOpt = False,
) -> None:
    """Generate an RSA private key (PKCS#8 PEM, mode 0600). Replaces `openssl genrsa`."""
    from graphkit import crypto
    from graphkit.files import PRIVATE, atomic_write

    _refuse_existing(out, force=force)
    passphrase = read_passphrase(passphrase_file, prompt_passphrase, confirm=True)
    key = crypto.generate_private_key(size)
    atomic_write(out, crypto.dump_private_key(key, passphrase), mode=PRIVATE, force=force)
    state = "encrypted" if passphrase else "unencrypted"
    say(f"Wrote RSA {size}-bit private key to {out} (mode 0600, {state}).")


def csr(
    key: KeyOpt,
    out: Annotated[Path, typer.Option("--out", "-o", help="Where to write the CSR.")] = Path(
        "graphkit.csr"
    ),
    subject: SubjectOpt = None,
    cn: CnOpt = None,
    san: SanOpt = None,
    passphrase_file: PassphraseFileOpt = None,
    prompt_passphrase: PromptPassphraseOpt = False,
    force: ForceOpt = False,
) -> None:
    """Create a certificate signing request (SHA-256). Replaces `openssl req -new`."""
    from graphkit import crypto
    from graphkit.files import PUBLIC, atomic_write

    name = crypto.parse_subject(subject, cn)
    sans = _sans(san)
    _refuse_existing(out, force=force)
    private = _load_key(key, read_passphrase(passphrase_file, prompt_passphrase))
    crypto.require_rsa(private, f"key {key}")
    request = crypto.build_csr(private, name, sans)
    atomic_write(out, crypto.dump_csr(request), mode=PUBLIC, force=force)
    say(f"Wrote CSR for {name.rfc4514_string()} to {out}.")


def selfsign(
    key: KeyOpt,
    csr_path: Annotated[
        Path | None, typer.Option("--csr", help="Take subject and SANs from this CSR.")
    ] = None,
    out: Annotated[
        Path, typer.Option("--out", "-o", help="Where to write the certificate.")
    ] = Path("graphkit.crt"),
    days: Annotated[int, typer.Option("--days", help="Validity in days (1-3650).")] = 365,
    subject: SubjectOpt = None,
    cn: CnOpt = None,
    san: SanOpt = None,
    der: Annotated[bool, typer.Option("--der", help="Write DER instead of PEM.")] = False,
    passphrase_file: PassphraseFileOpt = None,
    prompt_passphrase: PromptPassphraseOpt = False,
    force: ForceOpt = False,
) -> None:
    """Self-sign a client-authentication certificate. Replaces `openssl x509 -req -signkey`."""
    from graphkit import crypto
    from graphkit.files import PUBLIC, atomic_write, read_bytes

    if not 1 <= days <= crypto.MAX_DAYS:
        raise CryptoError(f"--days {days} is out of range", f"use 1 to {crypto.MAX_DAYS}")
    if csr_path is not None and (subject or cn or san):
        raise InputError(
            "--csr already carries the subject and SANs", "leave out --subject/--cn/--san"
        )
    if csr_path is None and not (subject or cn):
        raise InputError("no subject", "give --csr FILE, or --subject/--cn")
    name = crypto.parse_subject(subject, cn) if csr_path is None else None
    sans = _sans(san)
    _refuse_existing(out, force=force)
    private = _load_key(key, read_passphrase(passphrase_file, prompt_passphrase))
    crypto.require_rsa(private, f"key {key}")
    if csr_path is not None:
        request = crypto.load_csr(read_bytes(csr_path, "CSR file"), f"CSR {csr_path}")
        cert = crypto.self_sign_csr(private, request, days)
    else:
        assert name is not None
        cert = crypto.self_sign(private, name, sans, days)
    atomic_write(out, crypto.dump_certificate(cert, der=der), mode=PUBLIC, force=force)
    tp = crypto.thumbprints(cert)
    say(f"Wrote certificate to {out} ({'DER' if der else 'PEM'}, valid {days} days).")
    say(f"SHA-1 thumbprint (as the portal shows it): {tp['sha1']}")


_LABELS = [
    ("sha1", "Thumbprint (SHA-1, portal)"),
    ("sha256", "SHA-256"),
    ("x5t", "x5t"),
    ("x5t#S256", "x5t#S256"),
    ("customKeyIdentifier", "customKeyIdentifier"),
    ("subject", "Subject"),
    ("issuer", "Issuer"),
    ("serial", "Serial"),
    ("not_before", "Not before"),
    ("not_after", "Not after"),
    ("days_left", "Days left"),
    ("key", "Key"),
]


def thumbprint(
    cert: Annotated[Path, typer.Argument(help="Certificate: PEM, DER, key+cert PEM, or PFX.")],
    as_json: Annotated[bool, typer.Option("--json", help="The same as -o json.")] = False,
    output: OutputOpt = None,
    sha1_only: Annotated[
        bool, typer.Option("--sha1", help="Print only the SHA-1 thumbprint the portal shows.")
    ] = False,
    passphrase_file: PassphraseFileOpt = None,
    prompt_passphrase: PromptPassphraseOpt = False,
) -> None:
    """Print every identifier Azure and JWTs use for a certificate."""
    from graphkit import crypto
    from graphkit.files import read_bytes

    fmt = output_format(output, as_json)
    data = read_bytes(cert, "certificate file")
    passphrase = read_passphrase(passphrase_file, prompt_passphrase)
    # Only the certificate is needed: an encrypted key beside it needs no passphrase.
    bundle = crypto.load_certificate_bundle(
        data, passphrase, source=f"certificate {cert}", key_optional=True
    )
    info = crypto.certificate_info(bundle.certificate)
    if sha1_only:
        typer.echo(info["sha1"])
    elif fmt != "table":
        emit(info, fmt)
    else:
        info["key"] = f"{info['key_type']} {info['key_size'] or ''}".strip()
        if info["days_left"] <= 0:  # "expired 3 days ago", "0 (expires today)"
            validity = info["validity"]
            info["days_left"] = validity if "expired" in validity else f"0 ({validity})"
        width = max(len(label) for _, label in _LABELS)
        for k, label in _LABELS:
            typer.echo(f"{label + ':':<{width + 1}} {info[k]}")
    for w in info["warnings"]:
        warn(w)


def export(
    key: KeyOpt,
    cert: Annotated[
        Path, typer.Option("--cert", help="The certificate: PEM, DER, key+cert PEM or PFX.")
    ],
    pfx: Annotated[Path | None, typer.Option("--pfx", help="Write PKCS#12 here.")] = None,
    pem: Annotated[
        Path | None, typer.Option("--pem", help="Write key + certificate in one PEM here.")
    ] = None,
    der: Annotated[
        Path | None, typer.Option("--der", help="Write the certificate as DER here.")
    ] = None,
    legacy: Annotated[
        bool,
        typer.Option("--legacy", help="PFX with 3DES/SHA-1 for older Windows and Key Vault."),
    ] = False,
    no_passphrase: Annotated[
        bool, typer.Option("--no-passphrase", help="Write the PFX/PEM without a passphrase.")
    ] = False,
    passphrase_file: PassphraseFileOpt = None,
    prompt_passphrase: PromptPassphraseOpt = False,
    force: ForceOpt = False,
) -> None:
    """Bundle a key and certificate as PFX, combined PEM or DER.

    The passphrase (from --passphrase-file, GRAPHKIT_KEY_PASSPHRASE or the prompt)
    opens an encrypted key and protects the PFX and PEM written, unless --no-passphrase.
    """
    from graphkit import crypto
    from graphkit.files import PRIVATE, PUBLIC, read_bytes, write_all

    if not (pfx or pem or der):
        raise InputError("nothing to export", "give one or more of --pfx, --pem, --der")
    _refuse_existing(pfx, pem, der, force=force)
    # When the passphrase will protect what we write, a typo must not lock it: ask twice.
    passphrase = read_passphrase(
        passphrase_file, prompt_passphrase, confirm=bool(pfx or pem) and not no_passphrase
    )
    if pfx and not passphrase and not no_passphrase:
        raise InputError(
            "a PFX needs a passphrase",
            "give --passphrase-file, GRAPHKIT_KEY_PASSPHRASE or --prompt-passphrase, "
            "or pass --no-passphrase",
        )
    private = _load_key(key, passphrase)
    crypto.require_rsa(private, f"key {key}")
    bundle = crypto.load_certificate_bundle(
        read_bytes(cert, "certificate file"),
        passphrase,
        source=f"certificate {cert}",
        key_optional=True,
    )
    if not crypto.key_matches_certificate(private, bundle.certificate):
        raise CryptoError(
            f"key {key} does not match certificate {cert}",
            "give the key the certificate was made from",
        )
    protect = None if no_passphrase else passphrase
    # All or nothing: a failure on the last file leaves none of them (and any file
    # --force was replacing is put back).
    outputs: list[tuple[Path, bytes, int]] = []
    said: list[str] = []
    if pfx:
        data = crypto.dump_pfx(private, bundle.certificate, protect, legacy=legacy)
        outputs.append((pfx, data, PRIVATE))
        flavour = "legacy 3DES/SHA-1" if legacy else "AES-256/PBKDF2"
        said.append(f"Wrote PFX to {pfx} ({flavour}, mode 0600).")
    if pem:
        outputs.append(
            (pem, crypto.dump_combined_pem(private, bundle.certificate, protect), PRIVATE)
        )
        said.append(f"Wrote key + certificate PEM to {pem} (mode 0600).")
    if der:
        outputs.append((der, crypto.dump_certificate(bundle.certificate, der=True), PUBLIC))
        said.append(f"Wrote DER certificate to {der}.")
    write_all(outputs, force=force)
    for line in said:
        say(line)


def register(app: typer.Typer) -> None:
    from graphkit.cli._examples import epilog

    for command in (keygen, csr, selfsign, thumbprint, export):
        app.command(cls=LeanCommand, epilog=epilog(command.__name__))(command)
