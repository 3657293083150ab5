"""The token endpoint's answers that issue 11 found wrong, each as Entra ID gives it.

Source of every expected text: captured real answers in MSAL.NET's
tests/Microsoft.Identity.Test.Common/Core/Mocks/MockHelpers.cs (5002738, 5002723, 90014,
700024, 90010) and PROTOCOL.md §2 (700027's current text). See docs/FIDELITY.md.
"""

from __future__ import annotations

import base64
import json
import re
import time
import uuid
from pathlib import Path
from typing import Any

import jwt
import msal
import pytest
import requests
from _emulator_helpers import (
    Identity,
    assertion,
    assertion_form,
    identity,
    msal_app,
    no_ca_env,
    pem_credential,
    post_token,
)
from cryptography.hazmat.primitives import hashes

_no_ca_env = pytest.fixture(autouse=True)(no_ca_env)


@pytest.fixture
def ident(tmp_path: Path) -> Identity:
    return identity(tmp_path)


@pytest.fixture
def emu(graphkit_emulator: Any, ident: Identity) -> Any:
    graphkit_emulator.upload_certificate(graphkit_emulator.default_app, ident.cert)
    return graphkit_emulator


def _post(emu: Any, client_assertion: str, tenant: str | None = None) -> requests.Response:
    form = assertion_form(emu.default_app.client_id, client_assertion, emu.graph_scope)
    return post_token(emu, tenant or emu.default_tenant.id, form)


def _answer(r: requests.Response) -> tuple[int, str, list[int], str]:
    body = r.json()
    text = body["error_description"].split("\r\n", 1)[0]
    return r.status_code, body["error"], body["error_codes"], text


def _x5t(ident: Identity) -> str:
    return base64.urlsafe_b64encode(ident.cert.fingerprint(hashes.SHA1())).decode().rstrip("=")


def _b64(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")


def _claims(emu: Any) -> dict[str, Any]:
    cid = emu.default_app.client_id
    now = time.time()
    return {
        "aud": f"{emu.authority()}/oauth2/v2.0/token",
        "iss": cid,
        "sub": cid,
        "jti": str(uuid.uuid4()),
        "iat": now,
        "exp": now + 600,
    }


# --------------------------------------------------------------------- algorithms


@pytest.mark.parametrize("alg", ["none", "HS256"])
def test_unsupported_algorithm_is_5002738(emu: Any, ident: Identity, alg: str) -> None:
    header = {"alg": alg, "typ": "JWT", "x5t": _x5t(ident)}
    if alg == "none":
        crafted = f"{_b64(header)}.{_b64(_claims(emu))}."
    else:
        crafted = jwt.encode(
            _claims(emu),
            "a shared secret long enough for HS256 (32+ bytes)",
            algorithm=alg,
            headers=header,
        )
    assert _answer(_post(emu, crafted)) == (
        401,
        "invalid_client",
        [5002738],
        f"AADSTS5002738: Invalid JWT token. '{alg}' is not a supported signature algorithm. "
        "Supported signing algorithms are: 'RS256,RS384,RS512'",
    )


@pytest.mark.parametrize("alg", ["RS384", "RS512"])
def test_rs384_and_rs512_are_accepted(emu: Any, ident: Identity, alg: str) -> None:
    r = _post(emu, assertion(emu, ident, emu.default_app.client_id, alg=alg))
    assert r.status_code == 200, r.text
    assert r.json()["token_type"] == "Bearer"


def test_rs384_with_the_wrong_key_is_still_refused(
    emu: Any, ident: Identity, tmp_path: Path
) -> None:
    other = identity(tmp_path, "other")
    crafted = assertion(emu, ident, emu.default_app.client_id, alg="RS512", key=other.key)
    assert _answer(_post(emu, crafted))[:3] == (401, "invalid_client", [700027])


# --------------------------------------------------------------------- key identifiers


def test_header_naming_no_key_is_5002723(emu: Any, ident: Identity) -> None:
    crafted = assertion(emu, ident, emu.default_app.client_id, headers={"typ": "JWT"})
    assert _answer(_post(emu, crafted)) == (
        401,
        "invalid_client",
        [5002723],
        "AADSTS5002723: Invalid JWT token. No certificate SHA-1 thumbprint, certificate "
        "SHA-256 thumbprint, nor keyId specified in token header.",
    )


def test_unknown_key_gets_the_current_700027_text(graphkit_emulator: Any, ident: Identity) -> None:
    emu = graphkit_emulator  # no certificate uploaded
    status, error, codes, text = _answer(
        _post(emu, assertion(emu, ident, emu.default_app.client_id))
    )
    assert (status, error, codes) == (401, "invalid_client", [700027])
    assert text.startswith(
        "AADSTS700027: The certificate with identifier used to sign the client assertion is "
        "not registered on application. [Reason - The key was not found., Thumbprint of key "
        f"used by client: '{ident.sha1}'"
    )
    assert f"app Id '{emu.default_app.client_id}'" in text


# --------------------------------------------------------------------- required claims


@pytest.mark.parametrize("claim", ["aud", "iss"])
def test_missing_aud_or_iss_is_90014(emu: Any, ident: Identity, claim: str) -> None:
    claims = _claims(emu)
    del claims[claim]
    crafted = jwt.encode(claims, ident.key, algorithm="RS256", headers={"x5t": _x5t(ident)})
    assert _answer(_post(emu, crafted)) == (
        400,
        "invalid_request",
        [90014],
        f"AADSTS90014: The required field '{claim}' is missing from the credential. Ensure "
        "that you have all the necessary parameters for the login request.",
    )


# --------------------------------------------------------------------- 700024's dates

_ISO7 = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{7}Z"


def test_700024_prints_dates_as_entra_does(emu: Any, ident: Identity) -> None:
    crafted = assertion(
        emu, ident, emu.default_app.client_id, exp=time.time() - 3600, iat=time.time() - 4000
    )
    status, error, codes, text = _answer(_post(emu, crafted))
    assert (status, error, codes) == (401, "invalid_client", [700024])
    assert re.fullmatch(
        f"AADSTS700024: Client assertion is not within its valid time range. Current time: "
        f"{_ISO7}, assertion valid from {_ISO7}, expiry time of assertion {_ISO7}. Review the "
        r"documentation at https://docs\.microsoft\.com/azure/active-directory/develop/"
        r"active-directory-certificate-credentials \.",
        text,
    ), text


def test_missing_exp_is_700024_with_1970(emu: Any, ident: Identity) -> None:
    claims = _claims(emu)
    del claims["exp"]
    crafted = jwt.encode(claims, ident.key, algorithm="RS256", headers={"x5t": _x5t(ident)})
    status, _, codes, text = _answer(_post(emu, crafted))
    assert (status, codes) == (401, [700024])
    assert "expiry time of assertion 1970-01-01T00:00:00.0000000Z" in text


# --------------------------------------------------------------------- /common & co


@pytest.mark.parametrize("name", ["common", "consumers", "organizations"])
def test_discovery_on_multi_tenant_authorities_answers(emu: Any, name: str) -> None:
    r = requests.get(
        f"{emu.authority_host}/{name}/v2.0/.well-known/openid-configuration",
        verify=emu.ca_bundle,
        timeout=30,
    )
    assert r.status_code == 200, r.text
    doc = r.json()
    assert doc["token_endpoint"] == f"{emu.authority_host}/{name}/oauth2/v2.0/token"
    assert doc["issuer"] == f"{emu.authority_host}/{{tenantid}}/v2.0"
    keys = requests.get(
        f"{emu.authority_host}/{name}/discovery/v2.0/keys", verify=emu.ca_bundle, timeout=30
    )
    assert keys.status_code == 200 and keys.json()["keys"]


@pytest.mark.parametrize("name", ["common", "consumers", "organizations"])
def test_client_credentials_there_is_90010(emu: Any, ident: Identity, name: str) -> None:
    r = _post(emu, assertion(emu, ident, emu.default_app.client_id), tenant=name)
    assert _answer(r) == (
        400,
        "invalid_request",
        [90010],
        "AADSTS90010: The grant type is not supported over the /common or /consumers "
        "endpoints. Please use the /organizations or tenant-specific endpoint.",
    )


@pytest.mark.filterwarnings("ignore:Using /common or /organizations authority")
def test_msal_over_common_gets_90010(emu: Any, ident: Identity) -> None:
    app = msal_app(
        emu,
        emu.default_app.client_id,
        pem_credential(ident),
        authority=f"{emu.authority_host}/common",
    )
    result = app.acquire_token_for_client([emu.graph_scope])
    assert (result.get("error"), result.get("error_codes")) == ("invalid_request", [90010])
    assert isinstance(app, msal.ConfidentialClientApplication)
