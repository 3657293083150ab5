"""Provisioning through Graph on the emulator: create an app with its certificate and
permissions, its service principal, Graph's own service principal, appRoleAssignedTo,
the role or permission each call needs, the propagation delays, and addKey/removeKey
proofs refused as Graph refuses them. Real HTTPS, requests and msal."""

from __future__ import annotations

import base64
import datetime as dt
import time
from pathlib import Path
from typing import Any

import jwt
import pytest
import requests
from _emulator_helpers import claims_of, graph, identity, msal_app, no_ca_env, pem_credential
from _x509_helpers import rsa_key, self_signed

_no_ca_env = pytest.fixture(autouse=True)(no_ca_env)

GRAPH_APP_ID = "00000003-0000-0000-c000-000000000000"
GRAPH_CLI = "14d82eec-204b-4c2f-b7e8-296a70dab67e"
USER_READ_ALL = "df021288-bdef-4463-88db-98f22de89214"
PROVISIONING = ["Application.ReadWrite.All", "AppRoleAssignment.ReadWrite.All", "User.Read.All"]


@pytest.fixture
def emu(graphkit_emulator: Any) -> Any:
    return graphkit_emulator


def _b64der(cert: Any) -> str:
    from cryptography.hazmat.primitives import serialization

    return base64.b64encode(cert.public_bytes(serialization.Encoding.DER)).decode()


def signin(emu: Any, user: str, scopes: list[str] = PROVISIONING) -> str:
    """A delegated token for ``user``: the device code flow over HTTP, approved through
    the Python API (test_emulator_device_code.py drives it with msal itself)."""
    base = emu.authority()
    scope = " ".join(f"https://graph.microsoft.com/{s}" for s in scopes)
    flow = requests.post(
        f"{base}/oauth2/v2.0/devicecode",
        data={"client_id": GRAPH_CLI, "scope": scope},
        verify=emu.ca_bundle,
        timeout=30,
    ).json()
    emu.approve_device_code(flow["user_code"], user)
    r = requests.post(
        f"{base}/oauth2/v2.0/token",
        data={
            "grant_type": "urn:ietf:params:oauth:grant-type:device_code",
            "client_id": GRAPH_CLI,
            "device_code": flow["device_code"],
        },
        verify=emu.ca_bundle,
        timeout=30,
    )
    assert r.status_code == 200, r.text
    return str(r.json()["access_token"])


def _create_body(cert: Any, name: str = "provisioned") -> dict[str, Any]:
    return {
        "displayName": name,
        "keyCredentials": [{"type": "AsymmetricX509Cert", "usage": "Verify", "key": _b64der(cert)}],
        "requiredResourceAccess": [
            {
                "resourceAppId": GRAPH_APP_ID,
                "resourceAccess": [{"id": USER_READ_ALL, "type": "Role"}],
            }
        ],
    }


def _graph_sp(emu: Any, token: str) -> dict[str, Any]:
    r = graph(
        emu,
        f"/v1.0/servicePrincipals?$filter=appId eq '{GRAPH_APP_ID}'&$select=id,appRoles",
        token,
    )
    assert r.status_code == 200, r.text
    [sp] = r.json()["value"]
    return dict(sp)


def _grant(emu: Any, token: str, graph_sp: dict[str, Any], sp_id: str, role: str) -> Any:
    role_id = next(r["id"] for r in graph_sp["appRoles"] if r["value"] == role)
    return graph(
        emu,
        f"/v1.0/servicePrincipals/{graph_sp['id']}/appRoleAssignedTo",
        token,
        method="POST",
        json={"principalId": sp_id, "resourceId": graph_sp["id"], "appRoleId": role_id},
    )


def _token_for(emu: Any, client_id: str, ident: Any) -> dict[str, Any]:
    return dict(
        msal_app(emu, client_id, pem_credential(ident)).acquire_token_for_client([emu.graph_scope])
    )


# ------------------------------------------------------------------- end to end


def test_create_grant_and_use_an_app_as_a_privileged_role_administrator(
    emu: Any, tmp_path: Path
) -> None:
    cert = identity(tmp_path, "new-app")
    emu.create_account("pra", roles=["Privileged Role Administrator"])
    token = signin(emu, "pra")

    r = graph(emu, "/v1.0/applications", token, method="POST", json=_create_body(cert.cert))
    assert r.status_code == 201, r.text
    created = r.json()
    assert created["displayName"] == "provisioned"
    assert created["keyCredentials"][0]["key"] is None  # only with $select=keyCredentials
    assert created["requiredResourceAccess"][0]["resourceAccess"] == [
        {"id": USER_READ_ALL, "type": "Role"}
    ]
    app_id, object_id = created["appId"], created["id"]
    # The Python API finds it as the client side will (by name, then by client id).
    assert emu.find_application("provisioned").client_id == app_id
    assert emu.application(app_id).object_id == object_id
    # Both addressing forms; the key only with $select=keyCredentials.
    by_app_id = graph(emu, f"/v1.0/applications(appId='{app_id}')?$select=id", token).json()
    assert by_app_id["id"] == object_id
    keys = graph(emu, f"/v1.0/applications/{object_id}?$select=keyCredentials", token).json()
    assert keys["keyCredentials"][0]["key"] == _b64der(cert.cert)

    # No service principal yet: the app cannot get a token (7000229).
    refused = _token_for(emu, app_id, cert)
    assert refused.get("error_codes") == [7000229], refused

    sp = graph(emu, "/v1.0/servicePrincipals", token, method="POST", json={"appId": app_id})
    assert sp.status_code == 201, sp.text
    graph_sp = _graph_sp(emu, token)
    r = _grant(emu, token, graph_sp, sp.json()["id"], "User.Read.All")
    assert r.status_code == 201, r.text
    assert r.json()["appRoleId"] == USER_READ_ALL
    assert r.json()["principalId"] == sp.json()["id"]

    result = _token_for(emu, app_id, cert)
    assert "access_token" in result, result
    claims = claims_of(result["access_token"])
    assert claims["roles"] == ["User.Read.All"] and claims["idtyp"] == "app"
    assert claims["oid"] == sp.json()["id"]
    assert graph(emu, "/v1.0/users?$top=2", result["access_token"]).status_code == 200


def test_application_administrator_creates_but_cannot_grant(emu: Any, tmp_path: Path) -> None:
    cert = identity(tmp_path, "new-app")
    emu.create_account("appadmin", roles=["Application Administrator"])
    emu.create_account("pra", roles=["Privileged Role Administrator"])
    token = signin(emu, "appadmin")
    created = graph(emu, "/v1.0/applications", token, method="POST", json=_create_body(cert.cert))
    assert created.status_code == 201
    sp = graph(
        emu,
        "/v1.0/servicePrincipals",
        token,
        method="POST",
        json={"appId": created.json()["appId"]},
    )
    assert sp.status_code == 201
    graph_sp = _graph_sp(emu, token)
    denied = _grant(emu, token, graph_sp, sp.json()["id"], "User.Read.All")
    assert denied.status_code == 403
    assert denied.json()["error"]["code"] == "Authorization_RequestDenied"
    assert denied.json()["error"]["message"] == "Insufficient privileges to complete the operation."
    assert emu.roles(created.json()["appId"]) == []
    # A Privileged Role Administrator finishes the job on the same app.
    ok = _grant(emu, signin(emu, "pra"), graph_sp, sp.json()["id"], "User.Read.All")
    assert ok.status_code == 201
    assert emu.roles(created.json()["appId"]) == ["User.Read.All"]


def test_app_role_assignments_list_what_the_service_principal_was_granted(
    emu: Any, tmp_path: Path
) -> None:
    cert = identity(tmp_path, "new-app")
    emu.create_account("pra", roles=["Privileged Role Administrator"])
    token = signin(emu, "pra")
    created = graph(emu, "/v1.0/applications", token, method="POST", json=_create_body(cert.cert))
    app_id = created.json()["appId"]
    emu.settings(service_principal_delay=30)
    sp_id = graph(emu, "/v1.0/servicePrincipals", token, method="POST", json={"appId": app_id})
    sp_id = sp_id.json()["id"]
    path = f"/v1.0/servicePrincipals/{sp_id}/appRoleAssignments"
    # Not found until the new service principal has replicated.
    assert graph(emu, path, token).status_code == 404
    emu.advance(30)
    assert graph(emu, path, token).json()["value"] == []
    graph_sp = _graph_sp(emu, token)
    grant = _grant(emu, token, graph_sp, sp_id, "User.Read.All")
    assert grant.status_code == 201
    [listed] = graph(emu, path, token).json()["value"]
    assert listed["id"] == grant.json()["id"]
    assert listed["appRoleId"] == USER_READ_ALL
    assert listed["principalId"] == sp_id and listed["resourceId"] == graph_sp["id"]
    assert listed["principalType"] == "ServicePrincipal"
    # Application.Read.All or more is needed to read them.
    narrow = signin(emu, "pra", ["User.Read"])
    assert graph(emu, path, narrow).status_code == 403


def test_who_may_create_apps_and_service_principals(emu: Any, tmp_path: Path) -> None:
    cert = identity(tmp_path, "new-app")
    emu.create_account("plain")
    emu.create_account("cloud", roles=["Cloud Application Administrator"])
    body = _create_body(cert.cert)
    # Entra's default: any member may register an app (and owns it).
    assert graph(emu, "/v1.0/applications", signin(emu, "plain"), method="POST", json=body).ok
    emu.settings(users_can_register_apps=False)
    plain = signin(emu, "plain")
    assert graph(emu, "/v1.0/applications", plain, method="POST", json=body).status_code == 403
    cloud = signin(emu, "cloud")
    assert graph(emu, "/v1.0/applications", cloud, method="POST", json=body).status_code == 201
    # Without the delegated scope, even an administrator is refused.
    narrow = signin(emu, "cloud", ["User.Read"])
    assert graph(emu, "/v1.0/applications", narrow, method="POST", json=body).status_code == 403
    # App-only: Application.ReadWrite.All, nothing less.
    assert (
        graph(emu, "/v1.0/applications", emu.issue_token(), method="POST", json=body).status_code
        == 403
    )
    emu.grant(emu.default_app, "Application.ReadWrite.All")
    app_only = emu.issue_token()
    made = graph(emu, "/v1.0/applications", app_only, method="POST", json=body)
    assert made.status_code == 201
    # A plain user cannot create the service principal of an app they do not own.
    sp_body = {"appId": made.json()["appId"]}
    assert (
        graph(emu, "/v1.0/servicePrincipals", plain, method="POST", json=sp_body).status_code == 403
    )
    assert graph(emu, "/v1.0/servicePrincipals", app_only, method="POST", json=sp_body).ok
    again = graph(emu, "/v1.0/servicePrincipals", app_only, method="POST", json=sp_body)
    assert again.status_code == 400
    missing = graph(
        emu,
        "/v1.0/servicePrincipals",
        app_only,
        method="POST",
        json={"appId": "11111111-2222-3333-4444-555555555555"},
    )
    assert missing.status_code == 400 and "valid application" in missing.json()["error"]["message"]


def test_granting_app_only_needs_approleassignment(emu: Any, tmp_path: Path) -> None:
    target = emu.create_app(display_name="target")
    emu.grant(emu.default_app, "Application.Read.All")
    token = emu.issue_token()
    graph_sp = _graph_sp(emu, token)
    assert (
        _grant(emu, token, graph_sp, target.service_principal_id, "Group.Read.All").status_code
        == 403
    )
    emu.grant(emu.default_app, "AppRoleAssignment.ReadWrite.All")
    token = emu.issue_token()
    assert (
        _grant(emu, token, graph_sp, target.service_principal_id, "Group.Read.All").status_code
        == 201
    )
    dup = _grant(emu, token, graph_sp, target.service_principal_id, "Group.Read.All")
    assert dup.status_code == 400 and "already exists" in dup.json()["error"]["message"]
    unknown = graph(
        emu,
        f"/v1.0/servicePrincipals/{graph_sp['id']}/appRoleAssignedTo",
        token,
        method="POST",
        json={
            "principalId": target.service_principal_id,
            "resourceId": graph_sp["id"],
            "appRoleId": "00000000-0000-0000-0000-000000000001",
        },
    )
    assert unknown.status_code == 400 and "not found" in unknown.json()["error"]["message"]
    assert emu.roles(target) == ["Group.Read.All"]


def test_graphs_service_principal_has_the_real_permission_ids(emu: Any) -> None:
    emu.grant(emu.default_app, "Application.Read.All")
    token = emu.issue_token()
    r = graph(emu, f"/v1.0/servicePrincipals?$filter=appId eq '{GRAPH_APP_ID}'", token)
    [sp] = r.json()["value"]
    roles = {a["value"]: a["id"] for a in sp["appRoles"]}
    assert roles["User.Read.All"] == USER_READ_ALL
    assert roles["Application.ReadWrite.All"] == "1bfefb4e-e0b5-418b-a88f-73c46d2cc8e9"
    assert roles["AppRoleAssignment.ReadWrite.All"] == "06b708a9-e830-4db3-a914-8e69da51d44f"
    assert roles["Directory.Read.All"] == "7ab1d382-f21e-4acd-a863-ba3e13f7da61"
    scopes = {s["value"]: s["id"] for s in sp["oauth2PermissionScopes"]}
    assert scopes["User.Read"] == "e1fe6dd8-ba31-4d61-89e7-88639da4683d"
    assert scopes["Application.ReadWrite.All"] == "bdfbf15f-ee85-4955-8675-146e8e5296b5"
    assert scopes["AppRoleAssignment.ReadWrite.All"] == "84bccea3-f856-4a8a-967b-dbe0a3d53a64"
    assert all(a["allowedMemberTypes"] == ["Application"] for a in sp["appRoles"])
    one = graph(emu, f"/v1.0/servicePrincipals/{sp['id']}?$select=appId", token).json()
    assert one["appId"] == GRAPH_APP_ID
    # Reading service principals needs a permission.
    emu.revoke(emu.default_app, "Application.Read.All")
    assert graph(emu, "/v1.0/servicePrincipals", emu.issue_token()).status_code == 403


# ------------------------------------------------------------------ propagation


def test_a_new_service_principal_is_not_found_for_a_while(emu: Any, tmp_path: Path) -> None:
    cert = identity(tmp_path, "new-app")
    emu.settings(service_principal_delay=30)
    emu.create_account("ga", roles=["Global Administrator"])
    token = signin(emu, "ga")
    app_id = graph(
        emu, "/v1.0/applications", token, method="POST", json=_create_body(cert.cert)
    ).json()["appId"]
    sp_id = graph(
        emu, "/v1.0/servicePrincipals", token, method="POST", json={"appId": app_id}
    ).json()["id"]
    found = graph(emu, f"/v1.0/servicePrincipals?$filter=appId eq '{app_id}'", token).json()
    assert found["value"] == []
    one = graph(emu, f"/v1.0/servicePrincipals/{sp_id}", token)
    assert one.status_code == 404 and one.json()["error"]["code"] == "Request_ResourceNotFound"
    graph_sp = _graph_sp(emu, token)
    early = _grant(emu, token, graph_sp, sp_id, "User.Read.All")
    assert early.status_code == 400
    assert (
        "does not exist or one of its queried reference-property"
        in early.json()["error"]["message"]
    )
    assert _token_for(emu, app_id, cert).get("error_codes") == [7000229]

    emu.advance(31)
    assert graph(emu, f"/v1.0/servicePrincipals/{sp_id}", token).status_code == 200
    assert _grant(emu, signin(emu, "ga"), graph_sp, sp_id, "User.Read.All").status_code == 201
    assert "access_token" in _token_for(emu, app_id, cert)


def test_the_certificate_given_at_creation_waits_out_the_propagation_delay(
    emu: Any, tmp_path: Path
) -> None:
    cert = identity(tmp_path, "new-app")
    emu.propagation_delay = 20
    emu.create_account("ga", roles=["Global Administrator"])
    token = signin(emu, "ga")
    app_id = graph(
        emu, "/v1.0/applications", token, method="POST", json=_create_body(cert.cert)
    ).json()["appId"]
    graph(emu, "/v1.0/servicePrincipals", token, method="POST", json={"appId": app_id})
    assert _token_for(emu, app_id, cert).get("error_codes") == [700027]
    emu.advance(21)
    assert "access_token" in _token_for(emu, app_id, cert)


# ------------------------------------------------------------------ read, PATCH


def _owned_app_with_a_secret(emu: Any, ident: Any) -> tuple[str, str, str]:
    """An app created by the signed-in user "owner" with ``ident``'s certificate and a
    password credential: (owner's token, appId, its ``(appId='...')`` URL)."""
    emu.create_account("owner")
    token = signin(emu, "owner")
    created = graph(emu, "/v1.0/applications", token, method="POST", json=_create_body(ident.cert))
    app_id = created.json()["appId"]
    emu.add_password_credential(app_id, "ci secret")
    return token, app_id, f"/v1.0/applications(appId='{app_id}')"


def test_patch_by_an_owner_or_admin_replaces_keys_and_keeps_passwords(
    emu: Any, tmp_path: Path
) -> None:
    one, two = identity(tmp_path, "one"), identity(tmp_path, "two")
    emu.create_account("stranger")
    token, app_id, url = _owned_app_with_a_secret(emu, one)
    listed = graph(emu, f"{url}?$select=keyCredentials,passwordCredentials", token).json()
    keep = listed["keyCredentials"]
    new = {"type": "AsymmetricX509Cert", "usage": "Verify", "key": _b64der(two.cert)}
    r = graph(emu, url, token, method="PATCH", json={"keyCredentials": [*keep, new]})
    assert r.status_code == 204, r.text
    after = graph(emu, f"{url}?$select=keyCredentials,passwordCredentials", token).json()
    assert [k["key"] for k in after["keyCredentials"]] == [_b64der(one.cert), _b64der(two.cert)]
    assert [p["displayName"] for p in after["passwordCredentials"]] == ["ci secret"]
    assert after["passwordCredentials"][0]["secretText"] is None
    # PATCH replaces the whole collection.
    r = graph(emu, url, token, method="PATCH", json={"keyCredentials": [new]})
    assert r.status_code == 204
    assert len(emu.key_credentials(app_id)) == 1
    # Someone who neither owns it nor holds an admin role may read but not write.
    other = signin(emu, "stranger")
    assert graph(emu, f"{url}?$select=id", other).status_code == 200
    assert graph(emu, url, other, method="PATCH", json={"displayName": "x"}).status_code == 403


def test_patch_cannot_set_password_credentials(emu: Any, tmp_path: Path) -> None:
    """application-update.md: "Using PATCH to set passwordCredential is not supported"
    (addPassword/removePassword do it): a PATCH naming them changes nothing."""
    token, _app_id, url = _owned_app_with_a_secret(emu, identity(tmp_path, "one"))
    before = graph(emu, f"{url}?$select=keyCredentials,passwordCredentials", token).json()
    r = graph(
        emu,
        url,
        token,
        method="PATCH",
        json={"keyCredentials": before["keyCredentials"], "passwordCredentials": []},
    )
    assert r.status_code == 400, r.text
    assert "passwordCredentials" in r.json()["error"]["message"]
    after = graph(emu, f"{url}?$select=keyCredentials,passwordCredentials", token).json()
    assert after["passwordCredentials"] == before["passwordCredentials"]
    assert after["keyCredentials"] == before["keyCredentials"]


# --------------------------------------------------------------- addKey proofs


def _proof(
    key: Any,
    iss: str,
    *,
    nbf: float | None = None,
    lifetime: int = 600,
    aud: str = "00000002-0000-0000-c000-000000000000",
) -> str:
    start = int(time.time() if nbf is None else nbf)
    claims = {"aud": aud, "iss": iss, "nbf": start, "exp": start + lifetime}
    return jwt.encode(claims, key, algorithm="RS256")


def _padded(token: str) -> str:
    """The same JWT with '=' padding put back on its header and payload."""
    parts = token.split(".")
    parts[:2] = [p + "=" * (-len(p) % 4 or 4) for p in parts[:2]]
    return ".".join(parts)


def test_proofs_refused_as_graph_refuses_them(emu: Any, tmp_path: Path) -> None:
    one, two = identity(tmp_path, "one"), identity(tmp_path, "two")
    app = emu.default_app
    emu.upload_certificate(app, one.cert)
    token = emu.issue_token()  # the app's own token: no permission needed
    url = f"/v1.0/applications/{app.object_id}/addKey"
    new = {"type": "AsymmetricX509Cert", "usage": "Verify", "key": _b64der(two.cert)}
    refused = {
        "aud": _proof(one.key, app.object_id, aud="https://graph.microsoft.com"),
        "iss": _proof(one.key, app.client_id),
        "lifetime": _proof(one.key, app.object_id, lifetime=601),
        "padding": _padded(_proof(one.key, app.object_id)),
        "signer": _proof(two.key, app.object_id),
        "expired": _proof(one.key, app.object_id, nbf=time.time() - 3600),
    }
    for why, proof in refused.items():
        r = graph(emu, url, token, method="POST", json={"keyCredential": new, "proof": proof})
        assert r.status_code == 401, why
        assert r.json()["error"]["code"] == "Authentication_MissingOrMalformed", why
        assert r.json()["error"]["message"] == "Access Token missing or malformed.", why
        assert emu.requests()[-1]["proof_refusal"] == why
    assert len(emu.key_credentials(app)) == 1

    good = _proof(one.key, app.object_id)
    r = graph(emu, url, token, method="POST", json={"keyCredential": new, "proof": good})
    assert r.status_code == 200, r.text
    assert "proof_refusal" not in emu.requests()[-1]


def test_an_app_with_no_valid_certificate_cannot_use_addkey(emu: Any, tmp_path: Path) -> None:
    now = dt.datetime.now(dt.UTC)
    key = rsa_key("short-lived", 2048)
    short = self_signed(
        key, "short", not_before=now - dt.timedelta(days=2), not_after=now + dt.timedelta(days=1)
    )
    app = emu.default_app
    emu.upload_certificate(app, short)
    emu.advance(2 * 86400)  # the only certificate has expired
    new = {"type": "AsymmetricX509Cert", "usage": "Verify", "key": _b64der(identity(tmp_path).cert)}
    r = graph(
        emu,
        f"/v1.0/applications/{app.object_id}/addKey",
        emu.issue_token(),
        method="POST",
        json={"keyCredential": new, "proof": _proof(key, app.object_id, nbf=emu.now())},
    )
    assert r.status_code == 401
    assert emu.requests()[-1]["proof_refusal"] == "no valid certificate"


def test_a_provisioned_app_survives_a_restart(tmp_path: Path) -> None:
    from graphkit.emulator import Emulator

    cert = identity(tmp_path, "new-app")
    with Emulator(users=3, state_dir=str(tmp_path / "state")) as emu:
        emu.create_account("owner")
        token = signin(emu, "owner")
        body = {**_create_body(cert.cert), "isFallbackPublicClient": True}
        created = graph(emu, "/v1.0/applications", token, method="POST", json=body).json()
        emu.add_password_credential(created["appId"], "ci")
    with Emulator(state_dir=str(tmp_path / "state")) as again:
        token = signin(again, "owner")
        url = f"/v1.0/applications/{created['id']}?$select=keyCredentials,passwordCredentials"
        app = graph(again, url, token).json()
        assert app["keyCredentials"][0]["key"] == _b64der(cert.cert)
        assert [p["displayName"] for p in app["passwordCredentials"]] == ["ci"]
        full = graph(again, f"/v1.0/applications/{created['id']}", token).json()
        assert full["isFallbackPublicClient"] is True
        assert full["requiredResourceAccess"] == body["requiredResourceAccess"]
        # Still no service principal, and still owned by its creator (who may create one).
        sp = graph(
            again, "/v1.0/servicePrincipals", token, method="POST", json={"appId": created["appId"]}
        )
        assert sp.status_code == 201, sp.text
