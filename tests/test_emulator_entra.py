"""The emulator's Entra ID side, driven by the real msal and azure-identity (and raw HTTP).

Every error case is asserted on what msal itself returns (error + error_codes). msal
memoises a 400 answer per application object for 60 s, so each attempt uses a fresh one.
"""

from __future__ import annotations

import json
import re
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
import requests
from _emulator_helpers import (
    PASSPHRASE,
    Identity,
    assertion,
    assertion_form,
    claims_of,
    header_of,
    identity,
    msal_app,
    no_ca_env,
    pem_credential,
    post_token,
    token_requests,
)
from cryptography.hazmat.primitives import hashes

# msal is given verify=emu.ca_bundle, which REQUESTS_CA_BUNDLE would override.
_no_ca_env = pytest.fixture(autouse=True)(no_ca_env)


@pytest.fixture
def ident(tmp_path: Path) -> Identity:
    return identity(tmp_path)


@pytest.fixture
def emu(graphkit_emulator: Any, ident: Identity) -> Any:
    """The emulator with the test identity's certificate uploaded to the default app."""
    graphkit_emulator.upload_certificate(graphkit_emulator.default_app, ident.cert)
    return graphkit_emulator


def _acquire(emu: Any, ident: Identity, scopes: list[str]) -> dict[str, Any]:
    """A token request from a fresh msal app with the PEM key and certificate."""
    app = msal_app(emu, emu.default_app.client_id, pem_credential(ident))
    return dict(app.acquire_token_for_client(scopes))


def _ok(result: dict[str, Any]) -> str:
    assert "access_token" in result, result
    return str(result["access_token"])


def _error(result: dict[str, Any], error: str, code: int) -> None:
    assert "access_token" not in result, result
    assert result["error"] == error, result
    assert result["error_codes"] == [code], result
    assert result["error_description"].startswith(f"AADSTS{code}: ")


# ------------------------------------------------------------------- success paths


def test_msal_pem_key_and_certificate_signs_ps256(emu: Any, ident: Identity) -> None:
    app = emu.default_app
    result = msal_app(emu, app.client_id, pem_credential(ident)).acquire_token_for_client(
        [emu.graph_scope]
    )
    token = _ok(result)
    assert result["token_type"] == "Bearer"
    assert result["expires_in"] == 3599
    assert "scope" not in result
    seen = token_requests(emu)
    assert [(e["status"], e["alg"], e["thumbprint_header"]) for e in seen] == [
        (200, "PS256", "x5t#S256")
    ]
    claims = claims_of(token)
    tid = emu.default_tenant.id
    assert claims["aud"] == emu.graph_url
    assert claims["iss"] == f"https://sts.windows.net/{tid}/"
    assert claims["tid"] == tid
    assert claims["appid"] == app.client_id
    assert claims["appidacr"] == "2"
    assert claims["idtyp"] == "app"
    assert claims["oid"] == claims["sub"] == app.service_principal_id
    assert claims["roles"] == ["User.Read.All"]
    assert claims["ver"] == "1.0"
    assert "scp" not in claims
    assert all(isinstance(claims[c], int) for c in ("iat", "nbf", "exp"))
    assert header_of(token)["alg"] == "RS256"


def test_msal_pem_key_and_sha1_thumbprint_signs_rs256(emu: Any, ident: Identity) -> None:
    credential = {"private_key": ident.key_pem, "thumbprint": ident.sha1}
    _ok(
        msal_app(emu, emu.default_app.client_id, credential).acquire_token_for_client(
            [emu.graph_scope]
        )
    )
    assert [(e["alg"], e["thumbprint_header"]) for e in token_requests(emu)] == [("RS256", "x5t")]


def test_msal_pfx_with_passphrase(emu: Any, ident: Identity) -> None:
    credential = {"private_key_pfx_path": str(ident.pfx), "passphrase": PASSPHRASE.decode()}
    _ok(
        msal_app(emu, emu.default_app.client_id, credential).acquire_token_for_client(
            [emu.graph_scope]
        )
    )
    assert [e["alg"] for e in token_requests(emu)] == ["PS256"]


def test_msal_caches_the_token(emu: Any, ident: Identity) -> None:
    app = msal_app(emu, emu.default_app.client_id, pem_credential(ident))
    first = app.acquire_token_for_client([emu.graph_scope])
    second = app.acquire_token_for_client([emu.graph_scope])
    assert first["token_source"] == "identity_provider"
    assert second["token_source"] == "cache"
    assert len(token_requests(emu)) == 1


def test_msal_with_tenant_domain_and_graph_resource(emu: Any, ident: Identity) -> None:
    # Addressed by domain; discovery advertises the GUID endpoint, which msal then uses.
    authority = f"{emu.authority_host}/{emu.default_tenant.domain}"
    app = msal_app(emu, emu.default_app.client_id, pem_credential(ident), authority=authority)
    token = _ok(app.acquire_token_for_client(["https://graph.microsoft.com/.default"]))
    assert claims_of(token)["aud"] == "https://graph.microsoft.com"
    assert token_requests(emu)[0]["path"] == f"/{emu.default_tenant.id}/oauth2/v2.0/token"


def test_msal_with_env_ca_bundle_needs_http_client(
    emu: Any, ident: Identity, monkeypatch: pytest.MonkeyPatch
) -> None:
    # With REQUESTS_CA_BUNDLE pointing elsewhere, msal's verify= is overridden; a session
    # with trust_env off (emu.session()) is the way through.
    import msal

    monkeypatch.setenv("REQUESTS_CA_BUNDLE", "/etc/ssl/certs/ca-certificates.crt")
    app = msal.ConfidentialClientApplication(
        emu.default_app.client_id,
        authority=emu.authority(),
        client_credential=pem_credential(ident),
        instance_discovery=False,
        http_client=emu.session(),
    )
    _ok(app.acquire_token_for_client([emu.graph_scope]))


def test_azure_identity_certificate_credential(emu: Any, ident: Identity) -> None:
    from azure.identity import CertificateCredential

    credential = CertificateCredential(
        emu.default_tenant.id,
        emu.default_app.client_id,
        certificate_path=str(ident.combined),
        authority=emu.authority_host,
        disable_instance_discovery=True,
        connection_verify=emu.ca_bundle,
    )
    token = credential.get_token(emu.graph_scope)
    assert claims_of(token.token)["appid"] == emu.default_app.client_id
    assert token.expires_on > time.time() + 3000
    # azure-identity always signs RS256 with the SHA-1 x5t.
    assert [(e["alg"], e["thumbprint_header"]) for e in token_requests(emu)] == [("RS256", "x5t")]


def test_azure_identity_from_environment(
    emu: Any, ident: Identity, monkeypatch: pytest.MonkeyPatch
) -> None:
    # What `graphkit emulator serve` prints is enough for EnvironmentCredential.
    from azure.identity import EnvironmentCredential

    for name, value in emu.environ().items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("AZURE_CLIENT_CERTIFICATE_PATH", str(ident.combined))
    credential = EnvironmentCredential(disable_instance_discovery=True)
    assert claims_of(credential.get_token(emu.graph_scope).token)["tid"] == emu.default_tenant.id


# --------------------------------------------------------------------- error cases


def test_certificate_not_uploaded_700027(graphkit_emulator: Any, ident: Identity) -> None:
    emu = graphkit_emulator
    result = _acquire(emu, ident, [emu.graph_scope])
    _error(result, "invalid_client", 700027)
    assert "The key was not found" in result["error_description"]
    # msal sent x5t#S256; the message shows that thumbprint in hex.
    sha256 = ident.cert.fingerprint(hashes.SHA256())
    assert sha256.hex().upper() in result["error_description"]


def test_other_key_with_right_thumbprint_700027(emu: Any, ident: Identity, tmp_path: Path) -> None:
    other = identity(tmp_path, "other")
    credential = {"private_key": other.key_pem, "public_certificate": ident.cert_pem}
    result = msal_app(emu, emu.default_app.client_id, credential).acquire_token_for_client(
        [emu.graph_scope]
    )
    _error(result, "invalid_client", 700027)
    assert "did not match the expected signature" in result["error_description"]


def test_wrong_client_id_700016(emu: Any, ident: Identity) -> None:
    result = msal_app(emu, str(uuid.uuid4()), pem_credential(ident)).acquire_token_for_client(
        [emu.graph_scope]
    )
    _error(result, "unauthorized_client", 700016)


def test_unknown_tenant_90002(emu: Any, ident: Identity) -> None:
    # msal asks OIDC discovery first; Entra answers 400 invalid_tenant there, and msal
    # raises ValueError carrying that answer.
    authority = f"{emu.authority_host}/{uuid.uuid4()}"
    with pytest.raises(ValueError) as err:
        msal_app(emu, emu.default_app.client_id, pem_credential(ident), authority=authority)
    text = str(err.value.__context__ or err.value)
    body = json.loads(re.search(r"\{.*\}", text, re.DOTALL).group(0))  # type: ignore[union-attr]
    assert body["error"] == "invalid_tenant"
    assert body["error_codes"] == [90002]
    # The token endpoint says the same.
    answer = post_token(emu, str(uuid.uuid4()), {"grant_type": "client_credentials"})
    assert answer.status_code == 400
    assert answer.json()["error_codes"] == [90002]


def test_tenant_neither_guid_nor_domain_900023(emu: Any) -> None:
    answer = post_token(emu, "not_a_tenant", {"grant_type": "client_credentials"})
    assert answer.status_code == 400
    assert (answer.json()["error"], answer.json()["error_codes"]) == ("invalid_request", [900023])


def test_assertion_outside_time_window_700024(emu: Any, ident: Identity) -> None:
    emu.advance(3600)  # msal's assertion (valid 10 minutes) is an hour old for the emulator
    result = _acquire(emu, ident, [emu.graph_scope])
    _error(result, "invalid_client", 700024)


def test_weak_1024_bit_key_50032(graphkit_emulator: Any, tmp_path: Path) -> None:
    emu = graphkit_emulator
    weak = identity(tmp_path, "weak", bits=1024)  # graphkit refuses such keys: built directly
    emu.upload_certificate(emu.default_app, weak.cert)
    with pytest.warns(Warning):  # PyJWT warns about the short key while msal signs
        result = msal_app(
            emu, emu.default_app.client_id, pem_credential(weak)
        ).acquire_token_for_client([emu.graph_scope])
    _error(result, "invalid_client", 50032)


@pytest.mark.parametrize(
    ("scope", "code"),
    [
        ("https://graph.microsoft.com/User.Read", 1002012),
        ("User.Read.All", 1002012),
    ],
)
def test_bad_scope_invalid_scope(emu: Any, ident: Identity, scope: str, code: int) -> None:
    result = _acquire(emu, ident, [scope])
    _error(result, "invalid_scope", code)


def test_two_resources_70011_and_unknown_resource_500011(emu: Any, ident: Identity) -> None:
    result = _acquire(emu, ident, [emu.graph_scope, "https://vault.azure.net/.default"])
    _error(result, "invalid_scope", 70011)
    result = _acquire(emu, ident, ["https://vault.azure.net/.default"])
    _error(result, "invalid_resource", 500011)


def test_propagation_delay(graphkit_emulator: Any, ident: Identity) -> None:
    emu = graphkit_emulator
    emu.propagation_delay = 30
    emu.upload_certificate(emu.default_app, ident.cert)
    fresh = msal_app(emu, emu.default_app.client_id, pem_credential(ident))
    _error(fresh.acquire_token_for_client([emu.graph_scope]), "invalid_client", 700027)
    emu.advance(31)
    later = msal_app(emu, emu.default_app.client_id, pem_credential(ident))
    _ok(later.acquire_token_for_client([emu.graph_scope]))


# -------------------------------------------------- crafted assertions, raw HTTP


def _post(emu: Any, client_assertion: str, client_id: str | None = None) -> requests.Response:
    cid = client_id or emu.default_app.client_id
    return post_token(
        emu, emu.default_tenant.id, assertion_form(cid, client_assertion, emu.graph_scope)
    )


def _code(answer: requests.Response) -> tuple[int, str, list[int]]:
    body = answer.json()
    return answer.status_code, body["error"], body["error_codes"]


def test_error_body_has_the_real_shape(emu: Any, ident: Identity) -> None:
    answer = requests.post(
        f"{emu.authority()}/oauth2/v2.0/token",
        data={
            "grant_type": "client_credentials",
            "client_id": emu.default_app.client_id,
            "scope": emu.graph_scope,
        },
        headers={"client-request-id": "11111111-2222-3333-4444-555555555555"},
        verify=emu.ca_bundle,
        timeout=30,
    )
    assert answer.status_code == 401
    body = answer.json()
    assert set(body) == {
        "error",
        "error_description",
        "error_codes",
        "timestamp",
        "trace_id",
        "correlation_id",
        "error_uri",
    }
    assert (body["error"], body["error_codes"]) == ("invalid_client", [7000218])
    assert re.fullmatch(
        r"AADSTS7000218: .+\r\nTrace ID: [0-9a-f-]{36}\r\nCorrelation ID: "
        r"11111111-2222-3333-4444-555555555555\r\nTimestamp: \d{4}-\d\d-\d\d \d\d:\d\d:\d\dZ",
        body["error_description"],
        re.DOTALL,
    )
    assert body["correlation_id"] == "11111111-2222-3333-4444-555555555555"
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\dZ", body["timestamp"])
    assert body["error_uri"].endswith("/error?code=7000218")


def test_msal_quirks_accepted(emu: Any, ident: Identity) -> None:
    # Float times, no nbf, padded thumbprint, and the same assertion (same jti) twice.
    import base64

    padded = base64.urlsafe_b64encode(ident.cert.fingerprint(hashes.SHA1())).decode()
    assert padded.endswith("=")
    now = time.time() + 0.5
    crafted = assertion(
        emu, ident, emu.default_app.client_id, exp=now + 600.25, iat=now, headers={"x5t": padded}
    )
    assert "nbf" not in claims_of(crafted)
    for _ in range(2):
        answer = _post(emu, crafted)
        assert answer.status_code == 200, answer.text
        assert set(answer.json()) == {"token_type", "expires_in", "ext_expires_in", "access_token"}


def test_ps256_with_x5t_s256_by_hand(emu: Any, ident: Identity) -> None:
    answer = _post(emu, assertion(emu, ident, emu.default_app.client_id, alg="PS256"))
    assert answer.status_code == 200, answer.text


def test_clock_skew_of_five_minutes(emu: Any, ident: Identity) -> None:
    now = time.time()
    cid = emu.default_app.client_id
    just_expired = assertion(emu, ident, cid, exp=now - 200, iat=now - 800)
    assert _post(emu, just_expired).status_code == 200
    long_expired = assertion(emu, ident, cid, exp=now - 400, iat=now - 1000)
    assert _code(_post(emu, long_expired)) == (401, "invalid_client", [700024])
    not_yet = assertion(emu, ident, cid, nbf=now + 400, iat=now + 400, exp=now + 1000)
    assert _code(_post(emu, not_yet)) == (401, "invalid_client", [700024])


def test_iss_sub_mismatch_700021(emu: Any, ident: Identity) -> None:
    cid = emu.default_app.client_id
    crafted = assertion(emu, ident, cid, iss=str(uuid.uuid4()))
    assert _code(_post(emu, crafted)) == (401, "invalid_client", [700021])
    crafted = assertion(emu, ident, cid, sub=str(uuid.uuid4()))
    assert _code(_post(emu, crafted)) == (401, "invalid_client", [700021])


def test_wrong_audience_rejected(emu: Any, ident: Identity) -> None:
    crafted = assertion(
        emu,
        ident,
        emu.default_app.client_id,
        aud="https://login.microsoftonline.com/common/oauth2/v2.0/token",
    )
    assert _code(_post(emu, crafted)) == (401, "invalid_client", [700023])


def test_audience_with_tenant_domain_accepted(emu: Any, ident: Identity) -> None:
    aud = f"{emu.authority_host}/{emu.default_tenant.domain}/oauth2/v2.0/token"
    assert _post(emu, assertion(emu, ident, emu.default_app.client_id, aud=aud)).status_code == 200


@pytest.mark.parametrize("bad", ["not-a-jwt", "a.b.c", "e30.e30", ""])
def test_malformed_assertion_invalid_request(emu: Any, bad: str) -> None:
    form = assertion_form(emu.default_app.client_id, bad, emu.graph_scope)
    if not bad:
        form.pop("client_assertion")
    answer = post_token(emu, emu.default_tenant.id, form)
    if bad:
        assert _code(answer) == (400, "invalid_request", [50027])
    else:
        assert _code(answer) == (401, "invalid_client", [7000218])


def test_unsupported_grant_and_missing_parameters(emu: Any) -> None:
    tid = emu.default_tenant.id
    assert _code(post_token(emu, tid, {})) == (400, "invalid_request", [900144])
    answer = post_token(emu, tid, {"grant_type": "password"})
    assert _code(answer) == (400, "unsupported_grant_type", [70003])
    answer = post_token(emu, tid, {"grant_type": "client_credentials"})
    assert _code(answer) == (400, "invalid_request", [900144])
    assert "'client_id'" in answer.json()["error_description"]


def test_client_secret_is_refused(emu: Any) -> None:
    form = {
        "grant_type": "client_credentials",
        "client_id": emu.default_app.client_id,
        "client_secret": "s3cret",
        "scope": emu.graph_scope,
    }
    assert _code(post_token(emu, emu.default_tenant.id, form)) == (401, "invalid_client", [7000215])


def test_app_of_another_tenant_is_not_found(emu: Any, ident: Identity) -> None:
    other = emu.create_tenant("fabrikam.onmicrosoft.com")
    app = emu.create_app(other.id, display_name="fab", roles=["User.Read.All"])
    emu.upload_certificate(app, ident.cert)
    # Right app, wrong tenant: 700016.
    result = msal_app(emu, app.client_id, pem_credential(ident)).acquire_token_for_client(
        [emu.graph_scope]
    )
    _error(result, "unauthorized_client", 700016)
    authority = f"{emu.authority_host}/fabrikam.onmicrosoft.com"
    app_ok = msal_app(emu, app.client_id, pem_credential(ident), authority=authority)
    token = _ok(app_ok.acquire_token_for_client([emu.graph_scope]))
    assert claims_of(token)["tid"] == other.id


def test_expired_certificate_700027(emu: Any, ident: Identity) -> None:
    emu.advance(40 * 86400)  # past the certificate's notAfter (30 days)
    now = emu.now()
    crafted = assertion(emu, ident, emu.default_app.client_id, exp=now + 600, iat=now)
    answer = _post(emu, crafted)
    assert _code(answer) == (401, "invalid_client", [700027])
    assert "expired" in answer.json()["error_description"]


def test_roles_absent_without_grants_and_lifetime_configurable(emu: Any, ident: Identity) -> None:
    emu.revoke(emu.default_app, "User.Read.All")
    emu.token_lifetime = 4000
    before = emu.now()  # the emulator's clock brackets the issue: no margin to tune
    result = _acquire(emu, ident, [emu.graph_scope])
    after = emu.now()
    claims = claims_of(_ok(result))
    assert "roles" not in claims
    assert result["expires_in"] == 4000
    assert int(before) + 4000 <= claims["exp"] <= after + 4000


# ------------------------------------------------------------- discovery and JWKS


def test_discovery_and_jwks_verify_the_token(emu: Any, ident: Identity) -> None:
    import jwt

    config = requests.get(
        f"{emu.authority_host}/{emu.default_tenant.domain}/v2.0/.well-known/openid-configuration",
        verify=emu.ca_bundle,
        timeout=30,
    ).json()
    tid = emu.default_tenant.id
    assert config["token_endpoint"] == f"{emu.authority_host}/{tid}/oauth2/v2.0/token"
    assert config["issuer"] == f"{emu.authority_host}/{tid}/v2.0"
    assert config["authorization_endpoint"].endswith("/oauth2/v2.0/authorize")
    assert config["device_authorization_endpoint"].endswith("/oauth2/v2.0/devicecode")
    token = _ok(_acquire(emu, ident, [emu.graph_scope]))
    client = jwt.PyJWKClient(config["jwks_uri"], ssl_context=_ssl_context(emu.ca_bundle))
    signing_key = client.get_signing_key_from_jwt(token)
    claims = jwt.decode(token, signing_key.key, algorithms=["RS256"], audience=emu.graph_url)
    assert claims["tid"] == tid


def _ssl_context(ca: str) -> Any:
    import ssl

    return ssl.create_default_context(cafile=ca)


def test_discovery_on_localhost_uses_localhost(emu: Any) -> None:
    url = f"https://localhost:{emu.port}/{emu.default_tenant.id}/v2.0/.well-known/openid-configuration"
    config = requests.get(url, verify=emu.ca_bundle, timeout=30).json()
    assert config["token_endpoint"].startswith(f"https://localhost:{emu.port}/")
