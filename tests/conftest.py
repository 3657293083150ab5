"""Shared fixtures. Each block belongs to one area; add yours in a block of its own."""

from __future__ import annotations

# ===================================================================================
# Certificates (issue 2: tests/test_crypto.py, test_cli_certs.py, test_files.py).
# Keys are made once per session (RSA generation is the slow part); files are written
# fresh into each test's tmp_path. Names start with ``certs_`` to stay out of the way.
# ===================================================================================
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

CERTS_PASSPHRASE = b"correct horse battery staple"


@pytest.fixture(scope="session")
def certs_rsa_key() -> Any:
    from graphkit import crypto

    return crypto.generate_private_key(2048)


@pytest.fixture(scope="session")
def certs_other_key() -> Any:
    """A second RSA key: the wrong half for mismatch tests."""
    from graphkit import crypto

    return crypto.generate_private_key(2048)


@pytest.fixture(scope="session")
def certs_ec_key() -> Any:
    """An EC key: graphkit refuses it (Entra ID accepts only RSA)."""
    from cryptography.hazmat.primitives.asymmetric import ec

    return ec.generate_private_key(ec.SECP256R1())


@pytest.fixture(scope="session")
def certs_small_key() -> Any:
    """A 1024-bit RSA key: graphkit refuses it (Entra ID wants 2048 bits or more)."""
    from cryptography.hazmat.primitives.asymmetric import rsa

    return rsa.generate_private_key(public_exponent=65537, key_size=1024)


@dataclass
class CertsDir:
    """A directory holding one key (plain and encrypted), its certificate, passphrases."""

    path: Path
    key: Path  # unencrypted PKCS#8 PEM
    enc_key: Path  # the same key, encrypted with CERTS_PASSPHRASE
    cert: Path  # PEM, self-signed, CN=certs-test
    passfile: Path  # CERTS_PASSPHRASE on line 1
    wrongfile: Path  # another passphrase


@pytest.fixture
def certs_dir(tmp_path: Path, certs_rsa_key: Any) -> CertsDir:
    from graphkit import crypto

    key = tmp_path / "test.key"
    key.write_bytes(crypto.dump_private_key(certs_rsa_key))
    enc = tmp_path / "test-enc.key"
    enc.write_bytes(crypto.dump_private_key(certs_rsa_key, CERTS_PASSPHRASE))
    cert = tmp_path / "test.crt"
    name = crypto.parse_subject("CN=certs-test,O=Contoso,C=US")
    cert.write_bytes(crypto.dump_certificate(crypto.self_sign(certs_rsa_key, name)))
    passfile = tmp_path / "pass.txt"
    passfile.write_bytes(CERTS_PASSPHRASE + b"\n")
    wrongfile = tmp_path / "wrong.txt"
    wrongfile.write_bytes(b"not the passphrase\n")
    return CertsDir(tmp_path, key, enc, cert, passfile, wrongfile)


@pytest.fixture
def certs_cli() -> Callable[..., Any]:
    """Run ``graphkit ARGS`` through Typer's CliRunner with GRAPHKIT_KEY_PASSPHRASE unset
    (unless ``env`` sets it). Returns the Result (stdout and stderr kept apart)."""
    from typer.testing import CliRunner

    from graphkit.cli import app

    runner = CliRunner()

    def run(
        args: Sequence[str | Path], *, input: str | None = None, env: dict[str, str] | None = None
    ) -> Any:
        full_env: dict[str, str | None] = {"GRAPHKIT_KEY_PASSPHRASE": None}
        full_env.update(env or {})
        return runner.invoke(app, [str(a) for a in args], input=input, env=full_env)

    return run


# ============================================================ end of certificates block


# ===================================================================================
# Processes and ports (issue 14). Helpers live in tests/_process_helpers.py.
# ===================================================================================


@pytest.fixture
def refused_port() -> Any:
    """A 127.0.0.1 port that refuses connections for the whole test (held bound, never
    listening: unlike a port bound then released, no other process can take it)."""
    from _process_helpers import refused_port as hold

    with hold() as port:
        yield port


@dataclass
class SignedIn:
    """An emulator, an identity whose certificate its default app knows, a home, and
    the variables set (``env``: for a child process, on top of ``os.environ``)."""

    emu: Any
    ident: Any  # _auth_helpers.Identity
    home: Path
    env: dict[str, str]


@pytest.fixture
def signed_in_env(
    graphkit_emulator: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> SignedIn:
    """Point graphkit (this process's AZURE_*/GRAPHKIT_* environment, no colour) at a
    fresh emulator's default app, signing in with a certificate uploaded to it: after
    this, ``graphkit query /users`` works in-process (CliRunner)."""
    import os

    from _auth_helpers import clean_env, emulator_env, make_identity

    emu = graphkit_emulator
    for name in list(os.environ):  # none of the machine's own settings leak in
        if name.startswith(("AZURE_", "GRAPHKIT_")):
            monkeypatch.delenv(name)
    home = clean_env(monkeypatch, tmp_path / "home")
    ident = make_identity(tmp_path / "ident")
    emu.upload_certificate(emu.default_app, ident.cert)
    env = {**emulator_env(emu, ident.combined, home), "NO_COLOR": "1"}
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return SignedIn(emu, ident, home, env)


# A scripted local HTTP server (tests/_scripted_server.py): ``server_factory()`` starts one.
from _scripted_server import server_factory  # noqa: E402, F401  (a fixture, shared)

# ==================================================== end of processes and ports block
