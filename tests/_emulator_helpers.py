"""Helpers shared by tests/test_emulator_*.py: client identities and small HTTP wrappers.

Keys are made once per process (RSA generation is the slow part).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
import json
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt
import requests
from _process_helpers import graphkit_argv
from _x509_helpers import rsa_key, self_signed

PASSPHRASE = b"emulator test passphrase"


@dataclass
class Identity:
    key: Any
    cert: Any
    key_pem: str
    cert_pem: str
    sha1: str  # uppercase hex, as the portal shows it
    combined: Path  # key + certificate PEM
    pfx: Path  # PKCS#12 protected by PASSPHRASE


@functools.cache
def _cert_for(label: str, bits: int) -> Any:
    now = dt.datetime.now(dt.UTC)
    return self_signed(
        rsa_key(label, bits),
        f"emulator-{label}",
        not_before=now - dt.timedelta(days=1),
        not_after=now + dt.timedelta(days=30),
    )


def identity(tmp_path: Path, label: str = "main", bits: int = 2048) -> Identity:
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.serialization import pkcs12

    key = rsa_key(label, bits)
    cert = _cert_for(label, bits)
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    cert_pem = cert.public_bytes(serialization.Encoding.PEM).decode()
    combined = tmp_path / f"{label}-{bits}.pem"
    combined.write_text(key_pem + cert_pem)
    pfx = tmp_path / f"{label}-{bits}.pfx"
    pfx.write_bytes(
        pkcs12.serialize_key_and_certificates(
            b"test", key, cert, None, serialization.BestAvailableEncryption(PASSPHRASE)
        )
    )
    return Identity(
        key, cert, key_pem, cert_pem, cert.fingerprint(hashes.SHA1()).hex().upper(), combined, pfx
    )


def no_ca_env(monkeypatch: Any) -> None:
    """This machine sets REQUESTS_CA_BUNDLE/CURL_CA_BUNDLE, which override msal's
    Session.verify (requests merges the environment over it): tests that pass
    verify=emu.ca_bundle to msal run without them. Wrap with pytest.fixture(autouse=True)."""
    monkeypatch.delenv("REQUESTS_CA_BUNDLE", raising=False)
    monkeypatch.delenv("CURL_CA_BUNDLE", raising=False)


def msal_app(
    emu: Any, client_id: str, credential: dict[str, Any], authority: str | None = None
) -> Any:
    """A fresh msal app (msal memoises 400 answers per app for 60 s)."""
    import msal

    return msal.ConfidentialClientApplication(
        client_id,
        authority=authority or emu.authority(),
        client_credential=credential,
        instance_discovery=False,
        verify=emu.ca_bundle,
    )


def pem_credential(ident: Identity) -> dict[str, Any]:
    return {"private_key": ident.key_pem, "public_certificate": ident.cert_pem}


@dataclass
class HeldUser:
    made: threading.Event  # set once the held user is being made
    release: threading.Event  # lets it be made
    make: Callable[[int], dict[str, Any]]  # the directory's own maker, never held


def hold_user(monkeypatch: Any, emu: Any, index: int, wait: float) -> HeldUser:
    """The generated user at ``index`` of the default tenant, the first time it is
    made, waits for ``release`` (``wait`` seconds at most): a page being sent stops
    there, after its head and the items before it."""
    users = emu.backend.tenant(emu.default_tenant.id).users.base  # the generated users
    held = HeldUser(threading.Event(), threading.Event(), users.get)

    def get(i: int) -> dict[str, Any]:
        if i == index and not held.made.is_set():
            held.made.set()
            held.release.wait(wait)
        return held.make(i)

    monkeypatch.setattr(users, "get", get)
    return held


def token_requests(emu: Any) -> list[dict[str, Any]]:
    return [e for e in emu.requests() if e["kind"] == "token"]


def graph(
    emu: Any,
    path: str,
    token: str | None,
    *,
    method: str = "GET",
    headers: dict[str, str] | None = None,
    **kwargs: Any,
) -> requests.Response:
    """One Graph call with requests (verify= per request beats REQUESTS_CA_BUNDLE)."""
    h = dict(headers or {})
    if token is not None:
        h["Authorization"] = f"Bearer {token}"
    url = path if path.startswith("https://") else f"{emu.graph_url}{path}"
    return requests.request(method, url, headers=h, verify=emu.ca_bundle, timeout=30, **kwargs)


def admin(emu: Any, method: str, path: str, **kwargs: Any) -> requests.Response:
    return requests.request(
        method, f"{emu.base_url}/_emulator{path}", verify=emu.ca_bundle, timeout=30, **kwargs
    )


def page_all(emu: Any, token: str, first: str, headers: dict[str, str] | None = None) -> list[Any]:
    """Follow @odata.nextLink until it is absent; return every item."""
    items: list[Any] = []
    url: str | None = first
    while url:
        r = graph(emu, url, token, headers=headers)
        assert r.status_code == 200, r.text
        body = r.json()
        items.extend(body["value"])
        url = body.get("@odata.nextLink")
    return items


def assertion(
    emu: Any,
    ident: Identity,
    client_id: str,
    *,
    alg: str = "RS256",
    aud: str | None = None,
    iss: str | None = None,
    sub: str | None = None,
    exp: float | None = None,
    nbf: float | None = None,
    iat: float | None = None,
    headers: dict[str, Any] | None = None,
    key: Any = None,
) -> str:
    """A client assertion crafted by hand, with every knob msal does not expose."""
    import base64

    from cryptography.hazmat.primitives import hashes

    now = time.time()
    claims: dict[str, Any] = {
        "aud": aud or f"{emu.authority()}/oauth2/v2.0/token",
        "iss": iss or client_id,
        "sub": sub or client_id,
        "jti": str(uuid.uuid4()),
        "exp": exp if exp is not None else now + 600,
        "iat": iat if iat is not None else now,
    }
    if nbf is not None:
        claims["nbf"] = nbf
    hdr: dict[str, Any]
    if headers is not None:
        hdr = headers
    elif alg == "PS256":
        digest = ident.cert.fingerprint(hashes.SHA256())
        hdr = {"x5t#S256": base64.urlsafe_b64encode(digest).decode().rstrip("=")}
    else:
        digest = ident.cert.fingerprint(hashes.SHA1())
        hdr = {"x5t": base64.urlsafe_b64encode(digest).decode().rstrip("=")}
    return jwt.encode(claims, key or ident.key, algorithm=alg, headers=hdr)


def post_token(emu: Any, tenant: str, form: dict[str, str]) -> requests.Response:
    return requests.post(
        f"{emu.authority_host}/{tenant}/oauth2/v2.0/token",
        data=form,
        verify=emu.ca_bundle,
        timeout=30,
    )


def assertion_form(client_id: str, client_assertion: str, scope: str) -> dict[str, str]:
    return {
        "client_id": client_id,
        "scope": scope,
        "grant_type": "client_credentials",
        "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
        "client_assertion": client_assertion,
    }


def claims_of(token: str) -> dict[str, Any]:
    return dict(jwt.decode(token, options={"verify_signature": False}))


def header_of(token: str) -> dict[str, Any]:
    return dict(jwt.get_unverified_header(token))


def dumps(obj: Any) -> str:
    return json.dumps(obj, indent=1)


@contextlib.contextmanager
def serving(*args: str, sigint: str = "default") -> Iterator[subprocess.Popen[str]]:
    """`graphkit emulator serve ARGS` as a subprocess, killed on the way out if it still runs.

    ``sigint``: the SIGINT disposition the child starts with (``default`` or ``ignored``,
    see :func:`_process_helpers.graphkit_argv`), whatever the test runner inherited."""
    proc = subprocess.Popen(
        graphkit_argv("emulator", "serve", *args, sigint=sigint),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
