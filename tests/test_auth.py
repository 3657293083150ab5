"""CertificateCredential: real msal against the emulator (and a few pure pieces)."""

from __future__ import annotations

import base64
import datetime as dt
import json
import os
import pickle
import stat
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from _auth_helpers import (
    PASSPHRASE,
    Identity,
    clean_env,
    emu_settings,
    make_identity,
    token_cache_file,
)

from graphkit import certificates, errors, token_cache, token_errors, tokens
from graphkit.errors import AuthError, ExitCode, NetworkError, ThrottledError
from graphkit.settings import Settings, resolve_settings, validate

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
    assert tokens.decode_claims(_jwt(claims)) == claims
    assert tokens.decode_claims("opaque-token") == {}
    assert tokens.decode_claims("a.!!!.c") == {}


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
    cert = certificates.load(settings)
    exc = token_errors.token_error(_entra_error(error, code), settings, cert)
    assert isinstance(exc, AuthError) and exc.exit_code == ExitCode.AUTH
    assert exc.code == code
    assert expected in str(exc)
    assert "\n" not in str(exc)


def test_700027_names_thumbprint_app_and_file(ident: Identity, home: Path) -> None:
    settings = _settings(ident, certificate=ident.crt, private_key=ident.key_pem)
    cert = certificates.load(settings)
    exc = token_errors.token_error(_entra_error("invalid_client", 700027), settings, cert)
    assert str(exc) == (
        f"certificate {ident.sha1} is not registered on app {CLIENT}: upload {ident.crt} "
        "under Certificates & secrets, or wait a few minutes after uploading"
    )
    # A file holding the key is never what to upload.
    settings = _settings(ident)
    cert = certificates.load(settings)
    exc = token_errors.token_error(_entra_error("invalid_client", 700027), settings, cert)
    assert "the public certificate from" in str(exc) and "never the key" in str(exc)


# ------------------------------------------------------------------ HTTP cache


def test_http_cache_round_trip_and_corruption(tmp_path: Path) -> None:
    path = tmp_path / "state" / token_cache.HTTP_CACHE_FILE
    cache = token_cache.PersistentHttpCache(path)
    assert dict(cache) == {}
    cache.save()
    assert not path.exists()  # nothing to save
    cache["GET x"] = ("answer", 1.5)
    cache.save()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert dict(token_cache.PersistentHttpCache(path)) == {"GET x": ("answer", 1.5)}
    for garbage in (b"", b"\x80\x05not a pickle", pickle.dumps(["a list"]), b"\x00" * 100):
        path.write_bytes(garbage)
        assert dict(token_cache.PersistentHttpCache(path)) == {}
    # A file others could have written is not unpickled.
    path.write_bytes(pickle.dumps({"GET k": "v"}))
    path.chmod(0o666)
    assert dict(token_cache.PersistentHttpCache(path)) == {}
    path.chmod(0o600)
    assert dict(token_cache.PersistentHttpCache(path)) == {"GET k": "v"}


def test_http_cache_concurrent_writers_leave_a_readable_file(tmp_path: Path) -> None:
    path = tmp_path / token_cache.HTTP_CACHE_FILE
    errors: list[BaseException] = []

    def writer(n: int) -> None:
        try:
            for i in range(30):
                c = token_cache.PersistentHttpCache(path)
                c[f"GET w{n}-{i}"] = "x" * (i * 50)
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


def test_connection_refused_is_a_network_error(
    ident: Identity, home: Path, refused_port: int
) -> None:
    settings = _settings(ident, authority_host=f"https://127.0.0.1:{refused_port}")
    credential = tokens.CertificateCredential(settings)
    with pytest.raises(NetworkError, match=r"cannot connect to 127\.0\.0\.1") as err:
        credential.get_token()
    assert err.value.exit_code == ExitCode.NETWORK


def test_certificate_checked_before_any_request(home: Path, tmp_path: Path) -> None:
    settings = _settings(None, certificate=tmp_path / "missing.pem")
    with pytest.raises(errors.ConfigError, match=r"missing\.pem"):
        tokens.CertificateCredential(settings)
    assert not list(home.glob("msal_token_cache*"))


def test_missing_tenant_is_a_config_error(ident: Identity, home: Path) -> None:
    with pytest.raises(errors.ConfigError, match="no tenant"):
        tokens.CertificateCredential(_settings(ident, tenant=None))


def test_expiring_certificate_notice(home: Path, tmp_path: Path) -> None:
    soon = make_identity(
        tmp_path / "soon", days=30, now=dt.datetime.now(dt.UTC) - dt.timedelta(days=22)
    )
    notices: list[str] = []
    tokens.CertificateCredential(_settings(soon), on_notice=notices.append)
    assert len(notices) == 1 and "expires in" in notices[0] and soon.sha1 in notices[0]


def test_notice_handler_default_is_logging(home: Path, tmp_path: Path) -> None:
    soon = make_identity(
        tmp_path / "soon", days=30, now=dt.datetime.now(dt.UTC) - dt.timedelta(days=22)
    )
    got: list[str] = []
    tokens.set_notice_handler(got.append)
    try:
        tokens.CertificateCredential(_settings(soon))
    finally:
        tokens.set_notice_handler(None)
    assert len(got) == 1
    tokens.CertificateCredential(_settings(soon))  # logged, not raised, not printed
    assert len(got) == 1


# ------------------------------------------------------------ against the emulator


def _kinds(emu: Any) -> list[str]:
    return [r["kind"] for r in emu.requests()]


@pytest.mark.parametrize("form", ["key+crt", "combined", "pfx", "encrypted-pem"])
def test_each_key_form_gets_a_token(
    graphkit_emulator: Any, ident: Identity, home: Path, form: str
) -> None:
    emu = graphkit_emulator
    emu.upload_certificate(emu.default_app.client_id, ident.cert)
    overrides = {
        "tenant": emu.default_tenant.domain,
        "client_id": emu.default_app.client_id,
        "authority_host": emu.authority_host,
        "graph_url": emu.graph_url,
        "ca_bundle": emu.ca_bundle,
        **ident.forms()[form],
    }
    settings = resolve_settings(overrides=overrides)
    validate(settings)
    with tokens.CertificateCredential(settings) as credential:
        token = credential.get_token()
        assert token.from_cache is False
        assert token.claims["aud"] == emu.graph_url
        assert token.claims["tid"] == emu.default_tenant.id
        assert token.claims["appid"] == emu.default_app.client_id
        assert token.roles == ["User.Read.All"]
        assert token.expires_in > 3000
        again = credential.get_token()
    assert again.from_cache is True and again.token == token.token
    assert sorted(_kinds(emu)) == ["discovery", "token"]


def test_msal_signs_ps256_with_x5t_s256(
    graphkit_emulator: Any, ident: Identity, home: Path
) -> None:
    emu = graphkit_emulator
    emu.upload_certificate(emu.default_app.client_id, ident.cert)
    tokens.CertificateCredential(
        emu_settings(emu, ident, certificate=ident.pfx, passphrase=PASSPHRASE)
    ).get_token()
    (token_request,) = [r for r in emu.requests() if r["kind"] == "token"]
    assert token_request["alg"] == "PS256"
    assert token_request["thumbprint_header"] == "x5t#S256"


def test_persisted_caches_serve_a_new_credential_without_requests(
    graphkit_emulator: Any, ident: Identity, home: Path
) -> None:
    emu = graphkit_emulator
    emu.upload_certificate(emu.default_app.client_id, ident.cert)
    notices: list[str] = []
    first = tokens.CertificateCredential(emu_settings(emu, ident), on_notice=notices.append)
    token = first.get_token()
    emu.clear_requests()
    second = tokens.CertificateCredential(emu_settings(emu, ident), on_notice=notices.append)
    cached = second.get_token()
    assert cached.from_cache is True and cached.token == token.token
    assert emu.requests() == []
    if first.cache_encrypted is False:
        assert len(notices) == 1 and "0600" in notices[0]
        cache_file = token_cache_file(home)
        assert stat.S_IMODE(cache_file.stat().st_mode) == 0o600
        assert token.token in cache_file.read_text()
    assert stat.S_IMODE(home.stat().st_mode) == 0o700
    http_cache = home / token_cache.HTTP_CACHE_FILE
    assert stat.S_IMODE(http_cache.stat().st_mode) == 0o600
    assert token.token not in http_cache.read_bytes().decode("latin-1")


def test_force_refresh_goes_to_the_token_endpoint(
    graphkit_emulator: Any, ident: Identity, home: Path
) -> None:
    emu = graphkit_emulator
    emu.upload_certificate(emu.default_app.client_id, ident.cert)
    credential = tokens.CertificateCredential(emu_settings(emu, ident))
    token = credential.get_token()
    emu.clear_requests()
    emu.advance(5)  # a new token differs (iat) from the one in the cache
    fresh = credential.get_token(force_refresh=True)
    assert fresh.from_cache is False and fresh.token != token.token
    assert _kinds(emu) == ["token"]
    emu.clear_requests()
    assert tokens.CertificateCredential(emu_settings(emu, ident)).get_token().token == fresh.token
    assert emu.requests() == []


def test_no_persistence_leaves_no_files(
    graphkit_emulator: Any, ident: Identity, home: Path
) -> None:
    emu = graphkit_emulator
    emu.upload_certificate(emu.default_app.client_id, ident.cert)
    credential = tokens.CertificateCredential(emu_settings(emu, ident), persist_cache=False)
    assert credential.get_token().from_cache is False
    assert credential.get_token().from_cache is True
    assert not home.exists()


def test_untrusted_tls_is_a_network_error(
    graphkit_emulator: Any, ident: Identity, home: Path
) -> None:
    emu = graphkit_emulator
    credential = tokens.CertificateCredential(emu_settings(emu, ident, ca_bundle=None))
    with pytest.raises(NetworkError, match="TLS verification failed") as err:
        credential.get_token()
    assert "--ca-bundle" in str(err.value)


def test_stale_cache_lock_is_cleared(graphkit_emulator: Any, ident: Identity, home: Path) -> None:
    emu = graphkit_emulator
    emu.upload_certificate(emu.default_app.client_id, ident.cert)
    probe = tokens.CertificateCredential(emu_settings(emu, ident))
    probe.get_token()
    lock = next(home.glob("*.lockfile"), None) or home / "msal_token_cache-(none).json.lockfile"
    lock.write_text("12345 killed-process")
    old = time.time() - 3600
    os.utime(lock, (old, old))
    credential = tokens.CertificateCredential(emu_settings(emu, ident))
    token = credential.get_token(force_refresh=True)
    emu.clear_requests()
    again = tokens.CertificateCredential(emu_settings(emu, ident)).get_token()
    assert again.from_cache is True and again.token == token.token  # it was saved
    assert emu.requests() == []


def test_token_endpoint_reset_is_retried(
    graphkit_emulator: Any, ident: Identity, home: Path
) -> None:
    emu = graphkit_emulator
    emu.upload_certificate(emu.default_app.client_id, ident.cert)
    emu.add_fault(kind="reset", endpoint="token", every=1, times=1)
    token = tokens.CertificateCredential(emu_settings(emu, ident)).get_token()
    assert token.from_cache is False
    # The reset really happened (the first token request), and the retry got the token.
    attempts = [(e["fault"], e["status"]) for e in emu.requests() if e["kind"] == "token"]
    assert attempts == [("reset", None), (None, 200)]


def _no_wait(slept: list[float]) -> Any:
    from graphkit.retry import RetryPolicy

    return RetryPolicy(sleep=slept.append, jitter=lambda lo, hi: hi)


def _token_requests(emu: Any) -> int:
    return sum(1 for r in emu.requests() if r["kind"] == "token")


@pytest.mark.parametrize("kind", ["503", "504", "429", "reset", "reset-twice"])
def test_token_endpoint_failures_are_retried(
    graphkit_emulator: Any, ident: Identity, home: Path, kind: str
) -> None:
    """A refresh during `query --all` must not abort a long run: 429, 5xx, resets are
    retried with Graph's policy (Retry-After when given, else backoff)."""
    emu = graphkit_emulator
    emu.upload_certificate(emu.default_app.client_id, ident.cert)
    fault = "reset" if kind.startswith("reset") else kind
    times = 2 if kind == "reset-twice" else 1
    retry_after = 2 if kind == "429" else None
    emu.add_fault(kind=fault, endpoint="token", every=1, times=times, retry_after=retry_after)
    slept: list[float] = []
    notices: list[str] = []
    credential = tokens.CertificateCredential(
        emu_settings(emu, ident), retry=_no_wait(slept), on_notice=notices.append
    )
    token = credential.get_token()
    assert token.from_cache is False and token.token
    assert [f["injected"] for f in emu.faults()] == [times]
    if kind == "429":
        assert slept == [2.0]  # the server's Retry-After
        assert "throttling" in notices[-1] and "retry 1 of 4" in notices[-1]
    elif kind.startswith("reset"):
        # urllib3 retries a reset connection itself first: graphkit's own policy
        # only sees what outlasts that.
        assert all(s == 1.0 for s in slept)
    else:
        assert slept == [1.0] and _token_requests(emu) == 2


def test_token_endpoint_503_retries_are_bounded(
    graphkit_emulator: Any, ident: Identity, home: Path
) -> None:
    emu = graphkit_emulator
    emu.upload_certificate(emu.default_app.client_id, ident.cert)
    emu.add_fault(kind="503", endpoint="token", every=1)
    slept: list[float] = []
    credential = tokens.CertificateCredential(emu_settings(emu, ident), retry=_no_wait(slept))
    with pytest.raises(NetworkError, match=r"token endpoint.*after 5 attempts"):
        credential.get_token()
    assert _token_requests(emu) == 5
    assert slept == [1.0, 2.0, 4.0, 8.0]


def test_token_endpoint_429_gives_up_within_the_wait_cap(
    graphkit_emulator: Any, ident: Identity, home: Path
) -> None:
    emu = graphkit_emulator
    emu.upload_certificate(emu.default_app.client_id, ident.cert)
    emu.add_fault(kind="429", endpoint="token", every=1, retry_after=200)
    slept: list[float] = []
    credential = tokens.CertificateCredential(
        emu_settings(emu, ident), persist_cache=False, retry=_no_wait(slept)
    )
    with pytest.raises(ThrottledError, match=r"throttling.*120 s cap"):
        credential.get_token()
    assert slept == [] and _token_requests(emu) == 1


# Each token-endpoint (or discovery) error, provoked for real, gives its advice.


def _error_of(settings: Settings) -> AuthError:
    with pytest.raises(AuthError) as err:
        tokens.CertificateCredential(settings, persist_cache=False).get_token()
    assert "\n" not in str(err.value)
    return err.value


def test_advice_700027_not_uploaded(graphkit_emulator: Any, ident: Identity, home: Path) -> None:
    emu = graphkit_emulator
    settings = emu_settings(emu, ident, certificate=ident.crt, private_key=ident.key_pem)
    err = _error_of(settings)
    assert err.code == 700027
    assert str(err) == (
        f"certificate {ident.sha1} is not registered on app {emu.default_app.client_id}: "
        f"upload {ident.crt} under Certificates & secrets, or wait a few minutes after uploading"
    )


def test_advice_700027_not_yet_propagated(
    graphkit_emulator: Any, ident: Identity, home: Path
) -> None:
    emu = graphkit_emulator
    emu.propagation_delay = 600.0
    emu.upload_certificate(emu.default_app.client_id, ident.cert)
    assert "wait a few minutes after uploading" in str(_error_of(emu_settings(emu, ident)))


def test_advice_700016_unknown_client(graphkit_emulator: Any, ident: Identity, home: Path) -> None:
    emu = graphkit_emulator
    err = _error_of(emu_settings(emu, ident, client_id=CLIENT))
    assert err.code == 700016
    assert f"application {CLIENT} was not found in tenant" in str(err)


def test_advice_90002_unknown_tenant(graphkit_emulator: Any, ident: Identity, home: Path) -> None:
    emu = graphkit_emulator
    err = _error_of(emu_settings(emu, ident, tenant=TENANT))
    assert err.code == 90002 and f"tenant {TENANT} was not found" in str(err)


def test_advice_900023_malformed_tenant(
    graphkit_emulator: Any, ident: Identity, home: Path
) -> None:
    emu = graphkit_emulator
    err = _error_of(emu_settings(emu, ident, tenant="not_a_tenant"))
    assert err.code == 900023 and "'not_a_tenant' is not a valid tenant identifier" in str(err)


def test_advice_700024_clock(graphkit_emulator: Any, ident: Identity, home: Path) -> None:
    emu = graphkit_emulator
    emu.upload_certificate(emu.default_app.client_id, ident.cert)
    emu.advance(3600)  # the emulator's clock is an hour ahead of ours
    err = _error_of(emu_settings(emu, ident))
    assert err.code == 700024 and "check this computer's clock" in str(err)


@pytest.mark.filterwarnings("ignore::jwt.warnings.InsecureKeyLengthWarning")
def test_advice_50032_weak_key(graphkit_emulator: Any, home: Path, tmp_path: Path) -> None:
    emu = graphkit_emulator
    weak = make_identity(tmp_path / "weak", bits=1024)
    emu.upload_certificate(emu.default_app.client_id, weak.cert)
    # validate refuses such a key up front; the credential alone lets the
    # identity platform say so.
    settings = emu_settings(emu, weak)
    err = _error_of(settings)
    assert err.code == 50032 and "too short (1024 bits)" in str(err)


def test_advice_invalid_scope(graphkit_emulator: Any, ident: Identity, home: Path) -> None:
    emu = graphkit_emulator
    emu.upload_certificate(emu.default_app.client_id, ident.cert)
    settings = emu_settings(emu, ident, graph_url=f"{emu.graph_url}/.default {emu.graph_url}")
    err = _error_of(settings)
    assert err.code in (70011, 1002012) and "was refused" in str(err)


def test_advice_500011_unknown_resource(
    graphkit_emulator: Any, ident: Identity, home: Path
) -> None:
    emu = graphkit_emulator
    emu.upload_certificate(emu.default_app.client_id, ident.cert)
    err = _error_of(emu_settings(emu, ident, graph_url="https://graph.example.org"))
    assert err.code == 500011 and "https://graph.example.org is not known" in str(err)
