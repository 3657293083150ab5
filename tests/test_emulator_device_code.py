"""The device code flow and signed-in users: msal's real PublicClientApplication, raw
HTTP for each refusal, and the admin and Python APIs that drive them."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest
import requests
from _emulator_helpers import admin, claims_of, graph, no_ca_env

_no_ca_env = pytest.fixture(autouse=True)(no_ca_env)

GRAPH_CLI = "14d82eec-204b-4c2f-b7e8-296a70dab67e"
GRAPH = "https://graph.microsoft.com"
DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"


@pytest.fixture
def emu(graphkit_emulator: Any) -> Any:
    # One second between polls keeps msal's own polling loop short (it sleeps `interval`).
    graphkit_emulator.settings(device_code_interval=1)
    return graphkit_emulator


def _public_app(emu: Any, client_id: str = GRAPH_CLI) -> Any:
    import msal

    return msal.PublicClientApplication(
        client_id, authority=emu.authority(), instance_discovery=False, verify=emu.ca_bundle
    )


def _start(emu: Any, scope: str = f"{GRAPH}/Application.ReadWrite.All") -> dict[str, Any]:
    r = requests.post(
        f"{emu.authority()}/oauth2/v2.0/devicecode",
        data={"client_id": GRAPH_CLI, "scope": f"{scope} openid profile offline_access"},
        verify=emu.ca_bundle,
        timeout=30,
    )
    assert r.status_code == 200, r.text
    return dict(r.json())


def _poll(emu: Any, device_code: str, client_id: str = GRAPH_CLI) -> requests.Response:
    return requests.post(
        f"{emu.authority()}/oauth2/v2.0/token",
        data={"grant_type": DEVICE_GRANT, "client_id": client_id, "device_code": device_code},
        verify=emu.ca_bundle,
        timeout=30,
    )


def test_msal_device_flow_approved_from_another_thread(emu: Any) -> None:
    admin_user = emu.create_account("ada", roles=["Privileged Role Administrator"])
    app = _public_app(emu)
    flow = app.initiate_device_flow(
        scopes=[f"{GRAPH}/AppRoleAssignment.ReadWrite.All", f"{GRAPH}/User.Read.All"]
    )
    assert {"device_code", "user_code", "verification_uri", "expires_in", "interval"} <= set(flow)
    assert flow["verification_uri"] == "https://microsoft.com/devicelogin"
    assert flow["expires_in"] == 900 and flow["interval"] == 1
    assert flow["user_code"] in flow["message"] and flow["verification_uri"] in flow["message"]

    failures: list[BaseException] = []

    def approve() -> None:
        try:
            # Wait (on a condition, no sleep) until msal has polled once and been told
            # to wait, then approve through the admin API as the signed-in admin.
            emu.wait_for_device_code_poll(flow["user_code"], polls=1)
            r = admin(
                emu, "POST", f"/device-codes/{flow['user_code']}/approve", json={"user": "ada"}
            )
            assert r.status_code == 200, r.text
        except BaseException as exc:  # reported by the main thread
            failures.append(exc)

    approver = threading.Thread(target=approve)
    approver.start()
    result = app.acquire_token_by_device_flow(
        flow, exit_condition=lambda f: bool(failures) or f["expires_at"] < time.time()
    )
    approver.join()
    assert not failures, failures
    assert "access_token" in result, result

    pending = [e for e in emu.requests() if e["kind"] == "token" and e.get("error_code") == 70016]
    assert pending, "msal was never told authorization_pending"
    claims = claims_of(result["access_token"])
    assert claims["scp"] == "AppRoleAssignment.ReadWrite.All User.Read.All"
    assert claims["oid"] == admin_user["id"]
    assert claims["upn"] == "ada@contoso.onmicrosoft.com"
    assert claims["appid"] == GRAPH_CLI
    assert "idtyp" not in claims and "roles" not in claims
    assert "e8611ab8-c189-46e8-94e1-60213ab1f814" in claims["wids"]
    # The delegated token works against Graph with its delegated scope.
    assert graph(emu, "/v1.0/users?$top=1", result["access_token"]).status_code == 200


def test_msal_sees_a_declined_request(emu: Any) -> None:
    emu.create_account("bob")
    app = _public_app(emu)
    flow = app.initiate_device_flow(scopes=[f"{GRAPH}/User.Read"])
    assert emu.wait_for_device_code() == flow["user_code"]
    emu.decline_device_code(flow["user_code"])
    result = app.acquire_token_by_device_flow(flow)
    assert result.get("error") == "authorization_declined", result


def test_pending_slow_down_declined_expired_each_as_entra_answers(emu: Any) -> None:
    emu.create_account("ada", roles=["Global Administrator"])
    flow = _start(emu)
    r = _poll(emu, flow["device_code"])
    assert r.status_code == 400
    body = r.json()
    assert body["error"] == "authorization_pending" and body["error_codes"] == [70016]
    assert body["error_description"].startswith("AADSTS70016: ")

    admin(emu, "POST", f"/device-codes/{flow['user_code']}/slow-down", json={"times": 1})
    r = _poll(emu, flow["device_code"])
    assert r.json()["error"] == "slow_down"
    [listed] = [d for d in emu.device_codes() if d["user_code"] == flow["user_code"]]
    assert listed["interval"] == 1 + 5 and listed["polls"] == 2
    assert _poll(emu, flow["device_code"]).json()["error"] == "authorization_pending"

    # Approval: the next poll gets the tokens, once; a second redemption is refused.
    emu.approve_device_code(flow["user_code"], "ada@contoso.onmicrosoft.com")
    ok = _poll(emu, flow["device_code"])
    assert ok.status_code == 200, ok.text
    assert set(ok.json()) >= {"access_token", "token_type", "expires_in", "scope"}
    assert _poll(emu, flow["device_code"]).json()["error"] == "invalid_grant"

    declined = _start(emu)
    admin(emu, "POST", f"/device-codes/{declined['user_code']}/decline")
    assert _poll(emu, declined["device_code"]).json()["error"] == "authorization_declined"

    expired = _start(emu)
    emu.advance(901)
    r = _poll(emu, expired["device_code"])
    assert r.json()["error"] == "expired_token" and r.json()["error_codes"] == [70020]
    # An expired code can no longer be approved into tokens either.
    emu.approve_device_code(expired["user_code"], "ada")
    assert _poll(emu, expired["device_code"]).json()["error"] == "expired_token"


def test_unknown_device_code_client_or_tenant(emu: Any) -> None:
    flow = _start(emu)
    assert _poll(emu, "not-a-device-code").json()["error"] == "invalid_grant"
    # The device code belongs to the client that asked for it.
    other = "04b07795-8ddb-461a-bbee-02f9e1bf7b46"
    assert _poll(emu, flow["device_code"], other).json()["error"] == "invalid_grant"
    r = requests.post(
        f"{emu.authority()}/oauth2/v2.0/devicecode",
        data={"client_id": "11111111-2222-3333-4444-555555555555", "scope": "User.Read"},
        verify=emu.ca_bundle,
        timeout=30,
    )
    assert r.status_code == 400 and r.json()["error_codes"] == [700016]
    r = requests.post(
        f"{emu.authority_host}/fabrikam.onmicrosoft.com/oauth2/v2.0/devicecode",
        data={"client_id": GRAPH_CLI, "scope": "User.Read"},
        verify=emu.ca_bundle,
        timeout=30,
    )
    assert r.json()["error_codes"] == [90002]


def test_approval_needs_a_signed_in_user_of_the_tenant(emu: Any) -> None:
    other = emu.create_tenant("fabrikam.onmicrosoft.com")
    emu.create_account("eve", tenant=other)
    flow = _start(emu)
    r = admin(emu, "POST", f"/device-codes/{flow['user_code']}/approve", json={"user": "eve"})
    assert r.status_code == 404
    assert _poll(emu, flow["device_code"]).json()["error"] == "authorization_pending"


def test_users_with_directory_roles_through_both_apis(emu: Any) -> None:
    roles = [
        "Global Administrator",
        "Privileged Role Administrator",
        "Application Administrator",
        "Cloud Application Administrator",
    ]
    for i, role in enumerate(roles):
        emu.create_account(f"admin{i}", roles=[role])
    r = admin(emu, "POST", "/accounts", json={"user_principal_name": "plain", "roles": []})
    assert r.status_code == 201, r.text
    assert r.json()["user_principal_name"] == "plain@contoso.onmicrosoft.com"
    listed = admin(emu, "GET", "/accounts").json()["users"]
    assert [u["roles"] for u in listed] == [[r] for r in roles] + [[]]
    assert emu.accounts() == listed
    # Refusals: an unknown role, the same user twice, a foreign domain.
    bad = admin(emu, "POST", "/accounts", json={"user_principal_name": "x", "roles": ["Root"]})
    assert bad.status_code == 400 and "directory role" in bad.json()["error"]
    assert admin(emu, "POST", "/accounts", json={"user_principal_name": "plain"}).status_code == 400
    foreign = admin(emu, "POST", "/accounts", json={"user_principal_name": "a@evil.example"})
    assert foreign.status_code == 400


def test_users_and_settings_survive_a_restart(tmp_path: Any) -> None:
    from graphkit.emulator import Emulator

    with Emulator(users=3, state_dir=str(tmp_path / "state")) as emu:
        emu.create_account("ada", roles=["Application Administrator"])
        emu.settings(service_principal_delay=30, users_can_register_apps=False)
    with Emulator(state_dir=str(tmp_path / "state")) as again:
        assert [u["roles"] for u in again.accounts()] == [["Application Administrator"]]
        assert again.settings()["service_principal_delay"] == 30
        assert again.settings()["users_can_register_apps"] is False


def test_a_custom_client_needs_public_client_flows(emu: Any) -> None:
    emu.create_account("ada", roles=["Global Administrator"])
    custom = emu.create_app(display_name="my admin client")
    flow = requests.post(
        f"{emu.authority()}/oauth2/v2.0/devicecode",
        data={"client_id": custom.client_id, "scope": "User.Read"},
        verify=emu.ca_bundle,
        timeout=30,
    ).json()
    emu.approve_device_code(flow["user_code"], "ada")
    r = _poll(emu, flow["device_code"], custom.client_id)
    assert r.status_code == 401 and r.json()["error_codes"] == [7000218]
    # "Allow public client flows" on: the same request now gets its token.
    emu.grant(emu.default_app, "Application.ReadWrite.All")
    token = emu.issue_token()
    patched = graph(
        emu,
        f"/v1.0/applications/{custom.object_id}",
        token,
        method="PATCH",
        json={"isFallbackPublicClient": True},
    )
    assert patched.status_code == 204
    ok = _poll(emu, flow["device_code"], custom.client_id)
    assert ok.status_code == 200, ok.text
    assert claims_of(ok.json()["access_token"])["appid"] == custom.client_id


def test_organizations_authority_signs_in_the_users_home_tenant(emu: Any) -> None:
    fabrikam = emu.create_tenant("fabrikam.onmicrosoft.com")
    user = emu.create_account("ada", tenant=fabrikam)
    base = f"{emu.authority_host}/organizations/oauth2/v2.0"
    flow = requests.post(
        f"{base}/devicecode",
        data={"client_id": GRAPH_CLI, "scope": "User.Read"},
        verify=emu.ca_bundle,
        timeout=30,
    ).json()
    emu.approve_device_code(flow["user_code"], "ada@fabrikam.onmicrosoft.com")
    r = requests.post(
        f"{base}/token",
        data={
            "grant_type": DEVICE_GRANT,
            "client_id": GRAPH_CLI,
            "device_code": flow["device_code"],
        },
        verify=emu.ca_bundle,
        timeout=30,
    )
    assert r.status_code == 200, r.text
    claims = claims_of(r.json()["access_token"])
    assert claims["tid"] == fabrikam.id and claims["oid"] == user["id"]
    assert claims["scp"] == "User.Read"
