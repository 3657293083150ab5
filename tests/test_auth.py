"""CertificateCredential: real msal against the emulator (and a few pure pieces)."""

from __future__ import annotations

import base64
import json
import pickle
import socket
import stat
import threading
from pathlib import Path
from typing import Any

import pytest
from _auth_helpers import Identity, clean_env, make_identity

from graphkit import auth, config
from graphkit.config import Settings
from graphkit.errors import AuthError, ExitCode, NetworkError

TENANT = "0c5a7e0d-9f0b-4a57-a3a4-3f3e1f7b8c11"
CLIENT = "8d2f4c71-3b6e-4f0e-9a51-0b4c1d2e3f40"


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    return clean_env(monkeypatch, tmp_path / "home")


@pytest.fixture(scope="module")
def ident(tmp_path_factory: pytest.TempPathFactory) -> Identity:
    return make_identity(tmp_path_factory.mktemp("ident"))


# ------------------------------------------------------------------ pure pieces


def _jwt(claims: dict[str, Any]) -> str:
    def part(d: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(d).encode()).rstrip(b"=").decode()

    return f"{part({'alg': 'RS256', 'typ': 'JWT'})}.{part(claims)}.c2ln"


def test_decode_claims() -> None:
    claims = {"aud": "https://graph.microsoft.com", "roles": ["User.Read.All"], "exp": 5}
    assert auth.decode_claims(_jwt(claims)) == claims
    assert auth.decode_claims("opaque-token") == {}
    assert auth.decode_claims("a.!!!.c") == {}


def _settings(ident: Identity | None = None, **kw: Any) -> Settings:
    base: dict[str, Any] = {
        "tenant": TENANT,
        "client_id": CLIENT,
        "certificate": ident.combined if ident else None,
    }
    base.update(kw)
    return Settings(**base)


def _entra_error(error: str, code: int, text: str = "Something.") -> dict[str, Any]:
    return {
        "error": error,
        "error_description": f"AADSTS{code}: {text}\r\nTrace ID: t\r\nCorrelation ID: c\r\n"
        "Timestamp: 2026-01-09 02:02:12Z",
        "error_codes": [code],
        "trace_id": "t",
        "correlation_id": "c",
    }


@pytest.mark.parametrize(
    ("error", "code", "expected"),
    [
        ("invalid_client", 700016, f"application {CLIENT} was not found in tenant {TENANT}"),
        ("invalid_tenant", 90002, f"tenant {TENANT} was not found"),
        ("invalid_request", 900023, "is not a valid tenant identifier"),
        ("invalid_client", 700024, "outside its valid time range: check this computer's clock"),
        ("invalid_client", 50032, "RSA key is too short (2048 bits)"),
        ("invalid_scope", 1002012, "scope https://graph.microsoft.com/.default was refused"),
        ("invalid_scope", 70011, "was refused"),
        ("invalid_client", 700021, "issuer does not match"),
        ("invalid_resource", 500011, "is not known in tenant"),
        ("invalid_client", 7000999, "refused the request: invalid_client (AADSTS7000999)"),
    ],
)
def test_token_error_advice(
    ident: Identity, home: Path, error: str, code: int, expected: str
) -> None:
    settings = _settings(ident)
    cert = config.load_client_certificate(settings)
    exc = auth.token_error(_entra_error(error, code), settings, cert)
    assert isinstance(exc, AuthError) and exc.exit_code == ExitCode.AUTH
    assert exc.code == code
    assert expected in str(exc)
    assert "\n" not in str(exc)


def test_700027_names_thumbprint_app_and_file(ident: Identity, home: Path) -> None:
    settings = _settings(ident, certificate=ident.crt, private_key=ident.key_pem)
    cert = config.load_client_certificate(settings)
    exc = auth.token_error(_entra_error("invalid_client", 700027), settings, cert)
    assert str(exc) == (
        f"certificate {ident.sha1} is not registered on app {CLIENT}: upload {ident.crt} "
        "under Certificates & secrets, or wait a few minutes after uploading"
    )
    # A file holding the key is never what to upload.
    settings = _settings(ident)
    cert = config.load_client_certificate(settings)
    exc = auth.token_error(_entra_error("invalid_client", 700027), settings, cert)
    assert "the public certificate from" in str(exc) and "never the key" in str(exc)


# ------------------------------------------------------------------ HTTP cache


def test_http_cache_round_trip_and_corruption(tmp_path: Path) -> None:
    path = tmp_path / "state" / auth.HTTP_CACHE_FILE
    cache = auth.PersistentHttpCache(path)
    assert dict(cache) == {}
    cache.save()
    assert not path.exists()  # nothing to save
    cache["GET x"] = ("answer", 1.5)
    cache.save()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert dict(auth.PersistentHttpCache(path)) == {"GET x": ("answer", 1.5)}
    for garbage in (b"", b"\x80\x05not a pickle", pickle.dumps(["a list"]), b"\x00" * 100):
        path.write_bytes(garbage)
        assert dict(auth.PersistentHttpCache(path)) == {}
    # A file others could have written is not unpickled.
    path.write_bytes(pickle.dumps({"k": "v"}))
    path.chmod(0o666)
    assert dict(auth.PersistentHttpCache(path)) == {}
    path.chmod(0o600)
    assert dict(auth.PersistentHttpCache(path)) == {"k": "v"}


def test_http_cache_concurrent_writers_leave_a_readable_file(tmp_path: Path) -> None:
    path = tmp_path / auth.HTTP_CACHE_FILE
    errors: list[BaseException] = []

    def writer(n: int) -> None:
        try:
            for i in range(30):
                c = auth.PersistentHttpCache(path)
                c[f"w{n}-{i}"] = "x" * (i * 50)
                c.save()
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    final = pickle.loads(path.read_bytes())
    assert isinstance(final, dict) and final
    assert not [p for p in path.parent.iterdir() if p.name.endswith(".tmp")]


# ------------------------------------------------------------- network failures


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_connection_refused_is_a_network_error(ident: Identity, home: Path) -> None:
    settings = _settings(ident, authority_host=f"https://127.0.0.1:{_closed_port()}")
    credential = auth.CertificateCredential(settings)
    with pytest.raises(NetworkError, match=r"cannot connect to 127\.0\.0\.1") as err:
        credential.get_token()
    assert err.value.exit_code == ExitCode.NETWORK


def test_certificate_checked_before_any_request(home: Path, tmp_path: Path) -> None:
    settings = _settings(None, certificate=tmp_path / "missing.pem")
    with pytest.raises(config.ConfigError, match=r"missing\.pem"):
        auth.CertificateCredential(settings)
    assert not (home / auth.TOKEN_CACHE_FILE).exists()


def test_missing_tenant_is_a_config_error(ident: Identity, home: Path) -> None:
    with pytest.raises(config.ConfigError, match="no tenant"):
        auth.CertificateCredential(_settings(ident, tenant=None))


def test_expiring_certificate_notice(home: Path, tmp_path: Path) -> None:
    soon = make_identity(tmp_path / "soon", days=10)
    notices: list[str] = []
    auth.CertificateCredential(_settings(soon), on_notice=notices.append)
    assert len(notices) == 1 and "expires in" in notices[0] and soon.sha1 in notices[0]


def test_notice_handler_default_is_logging(home: Path, tmp_path: Path) -> None:
    soon = make_identity(tmp_path / "soon", days=10)
    got: list[str] = []
    auth.set_notice_handler(got.append)
    try:
        auth.CertificateCredential(_settings(soon))
    finally:
        auth.set_notice_handler(None)
    assert len(got) == 1
    auth.CertificateCredential(_settings(soon))  # logged, not raised, not printed
    assert len(got) == 1
