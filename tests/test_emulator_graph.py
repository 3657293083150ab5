"""The emulator's Microsoft Graph side, over real HTTPS with requests."""

from __future__ import annotations

import base64
import email.utils
import json
import time
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from _emulator_helpers import admin, graph, hold_user, identity, page_all

EVENTUAL = {"ConsistencyLevel": "eventual"}


@pytest.fixture
def emu(graphkit_emulator: Any) -> Any:
    return graphkit_emulator


@pytest.fixture
def token(emu: Any) -> str:
    return str(emu.issue_token())


# -------------------------------------------------------------------------- paging


@pytest.mark.graphkit_emulator(users=1000)
@pytest.mark.parametrize("top", [999, 100, 7])
def test_paging_yields_each_user_exactly_once(emu: Any, token: str, top: int) -> None:
    items = page_all(emu, token, f"/v1.0/users?$top={top}")
    ids = [u["id"] for u in items]
    assert len(ids) == 1000
    assert len(set(ids)) == 1000
    pages = [e for e in emu.requests() if e["path"] == "/v1.0/users"]
    assert len(pages) == -(-1000 // top)


@pytest.mark.graphkit_emulator(users=1000)
def test_next_link_is_a_full_url_on_the_emulator_keeping_the_query(emu: Any, token: str) -> None:
    body = graph(emu, "/v1.0/users?$top=5&$select=displayName,id", token).json()
    link = urlsplit(body["@odata.nextLink"])
    assert f"{link.scheme}://{link.netloc}" == emu.graph_url
    assert link.path == "/v1.0/users"
    assert "$select=displayName,id" in link.query
    assert "$top=5" in link.query
    assert "$skiptoken=" in link.query
    assert body["@odata.context"] == f"{emu.graph_url}/v1.0/$metadata#users(displayName,id)"
    assert all(set(u) == {"displayName", "id"} for u in body["value"])


@pytest.mark.graphkit_emulator(users=1000)
def test_a_page_sends_its_next_link_before_any_item_is_made(
    emu: Any, token: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The first item waits until the client has the head (a server that makes the
    # items first sends them only after this).
    held = hold_user(monkeypatch, emu, 0, 10)
    made, release, make = held.made, held.release, held.make
    session = emu.session()
    try:
        r = session.get(f"{emu.graph_url}/v1.0/users?$top=300&$select=id",
                        headers={"Authorization": f"Bearer {token}"}, stream=True)  # fmt: skip
        chunks = r.iter_content(None)
        head = next(chunks)  # the first chunk, while no item is made
        assert head.startswith(b'{"@odata.context":') and head.endswith(b'"value":[')
        link = json.loads(head + b"]}")["@odata.nextLink"]
        assert "$skiptoken=" in link and made.wait(10)
        release.set()
        body = json.loads(head + b"".join(chunks))
    finally:
        release.set()
    # The whole answer: the bytes json.dumps makes of it, items in order, the same link.
    assert body["@odata.nextLink"] == link and len(body["value"]) == 300
    assert [u["id"] for u in body["value"]] == [make(i)["id"] for i in range(300)]
    again = session.get(f"{emu.graph_url}/v1.0/users?$top=300&$select=id",
                        headers={"Authorization": f"Bearer {token}"})  # fmt: skip
    assert again.content == json.dumps(body, separators=(",", ":")).encode()


@pytest.mark.graphkit_emulator(users=1000)
@pytest.mark.parametrize("write", ["delete", "update"])
def test_a_write_while_a_page_is_sent_leaves_the_page_as_it_was_asked_for(
    emu: Any, token: str, monkeypatch: pytest.MonkeyPatch, write: str
) -> None:
    import threading

    held = hold_user(monkeypatch, emu, 100, 10)  # item 100 waits while the test writes
    made, release, make = held.made, held.release, held.make
    before = [make(i) for i in range(300)]
    session = emu.session()
    answer: list[Any] = []
    url, auth = f"{emu.graph_url}/v1.0/users?$top=300", {"Authorization": f"Bearer {token}"}
    reader = threading.Thread(target=lambda: answer.append(session.get(url, headers=auth)))
    reader.start()
    try:
        assert made.wait(10)
        if write == "delete":  # the directory shifts under the page: 299 users after 0
            emu.delete_user(before[0]["id"])
        else:
            emu.update_user(before[150]["id"], jobTitle="Changed")
    finally:
        release.set()
        reader.join(10)
    (r,) = answer
    assert r.status_code == 200
    # The page as the directory stood when it was asked for: every user once, unchanged.
    assert [u["id"] for u in r.json()["value"]] == [u["id"] for u in before]
    assert r.json()["value"][150]["jobTitle"] == before[150]["jobTitle"]


def test_default_page_is_100_and_last_page_has_no_next_link(emu: Any, token: str) -> None:
    first = graph(emu, "/v1.0/users", token).json()
    assert len(first["value"]) == 100
    items = page_all(emu, token, "/v1.0/users")
    assert len(items) == 250
    last = graph(emu, "/v1.0/users?$top=999", token).json()
    assert len(last["value"]) == 250
    assert "@odata.nextLink" not in last


@pytest.mark.parametrize("top", ["0", "1000", "-1", "abc"])
def test_top_out_of_range_is_400(emu: Any, token: str, top: str) -> None:
    r = graph(emu, f"/v1.0/users?$top={top}", token)
    assert r.status_code == 400
    assert r.json()["error"]["code"] in ("Request_UnsupportedQuery", "BadRequest")


def test_tampered_skiptoken_is_400(emu: Any, token: str) -> None:
    link = graph(emu, "/v1.0/users?$top=5", token).json()["@odata.nextLink"]
    r = graph(emu, link.replace("$skiptoken=", "$skiptoken=x"), token)
    assert r.status_code == 400
    # A skiptoken from another query is refused too.
    token_part = link.split("$skiptoken=")[1]
    r = graph(
        emu, f"/v1.0/users?$top=5&$filter=accountEnabled eq true&$skiptoken={token_part}", token
    )
    assert r.status_code == 400


def test_users_are_deterministic_across_emulators(emu: Any, token: str) -> None:
    from graphkit.emulator import Emulator

    mine = graph(emu, "/v1.0/users?$top=3", token).json()["value"]
    with Emulator() as other:
        theirs = graph(other, "/v1.0/users?$top=3", other.issue_token()).json()["value"]
    assert mine == theirs
    with Emulator(seed=1) as seeded:
        different = graph(seeded, "/v1.0/users?$top=3", seeded.issue_token()).json()["value"]
    assert different != mine


# ------------------------------------------------------------------ select, filter


def test_v1_default_properties_and_beta_all(emu: Any, token: str) -> None:
    v1 = graph(emu, "/v1.0/users?$top=1", token).json()["value"][0]
    assert "accountEnabled" not in v1
    assert {"id", "displayName", "userPrincipalName", "mail"} <= set(v1)
    beta = graph(emu, "/beta/users?$top=1", token).json()["value"][0]
    assert "accountEnabled" in beta
    selected = graph(emu, "/v1.0/users?$top=1&$select=AccountEnabled", token).json()["value"][0]
    assert set(selected) == {"accountEnabled"}


def test_select_unknown_property_is_400(emu: Any, token: str) -> None:
    r = graph(emu, "/v1.0/users?$select=shoeSize", token)
    assert r.status_code == 400
    assert "shoeSize" in r.json()["error"]["message"]


def _all_users(emu: Any, token: str) -> list[dict[str, Any]]:
    return page_all(emu, token, "/beta/users?$top=999")


def test_filter_eq_and_startswith(emu: Any, token: str) -> None:
    everyone = _all_users(emu, token)
    target = everyone[42]
    upn = target["userPrincipalName"]
    r = graph(emu, f"/v1.0/users?$filter=userPrincipalName eq '{upn.upper()}'", token)
    assert [u["id"] for u in r.json()["value"]] == [target["id"]]
    name = target["displayName"]
    expected = {u["id"] for u in everyone if u["displayName"] == name}
    got = page_all(emu, token, f"/v1.0/users?$filter=displayName eq '{name}'&$top=7")
    assert {u["id"] for u in got} == expected
    prefix = target["givenName"][:2].lower()
    expected = {u["id"] for u in everyone if u["displayName"].lower().startswith(prefix)}
    got = page_all(emu, token, f"/v1.0/users?$filter=startswith(displayName,'{prefix}')&$top=5")
    assert {u["id"] for u in got} == expected
    assert expected and len(expected) < len(everyone)
    mail_prefix = target["mail"][:4]
    got = page_all(emu, token, f"/v1.0/users?$filter=startswith(mail,'{mail_prefix}')")
    assert {u["id"] for u in got} == {
        u["id"] for u in everyone if u["mail"].startswith(mail_prefix)
    }


def test_filter_startswith_user_principal_name(emu: Any, token: str) -> None:
    everyone = _all_users(emu, token)
    prefix = everyone[42]["userPrincipalName"][:3]
    expected = {
        u["id"] for u in everyone if u["userPrincipalName"].lower().startswith(prefix.lower())
    }
    assert expected and len(expected) < len(everyone)
    # Across pages ($top=5), and case-insensitively as Graph compares strings.
    got = page_all(
        emu, token, f"/v1.0/users?$filter=startswith(userPrincipalName,'{prefix.upper()}')&$top=5"
    )
    ids = [u["id"] for u in got]
    assert len(ids) == len(set(ids))
    assert set(ids) == expected


def test_filter_account_enabled_and_combinations(emu: Any, token: str) -> None:
    everyone = _all_users(emu, token)
    disabled = {u["id"] for u in everyone if not u["accountEnabled"]}
    assert 0 < len(disabled) < len(everyone)
    got = page_all(emu, token, "/v1.0/users?$filter=accountEnabled eq false&$top=10")
    assert {u["id"] for u in got} == disabled
    first = everyone[0]
    query = (
        f"/v1.0/users?$filter=accountEnabled eq {str(first['accountEnabled']).lower()} and "
        f"(mail eq '{first['mail']}' or mail eq 'nobody@example.com')"
    )
    assert [u["id"] for u in graph(emu, query, token).json()["value"]] == [first["id"]]


def test_filter_errors(emu: Any, token: str) -> None:
    r = graph(emu, "/v1.0/users?$filter=shoeSize eq 'x'", token)
    assert (r.status_code, r.json()["error"]["code"]) == (400, "Request_UnsupportedQuery")
    r = graph(emu, "/v1.0/users?$filter=displayName eq", token)
    assert (r.status_code, r.json()["error"]["code"]) == (400, "BadRequest")
    # Advanced operators need ConsistencyLevel: eventual.
    r = graph(emu, "/v1.0/users?$filter=endswith(mail,'.com')", token)
    assert (r.status_code, r.json()["error"]["code"]) == (400, "Request_UnsupportedQuery")
    r = graph(emu, "/v1.0/users?$filter=endswith(mail,'.com')&$count=true", token, headers=EVENTUAL)
    assert r.status_code == 200
    assert r.json()["@odata.count"] == 250


def test_count_and_search_need_consistency_level(emu: Any, token: str) -> None:
    r = graph(emu, '/v1.0/users?$search="displayName:a"', token)
    assert (r.status_code, r.json()["error"]["code"]) == (400, "Request_UnsupportedQuery")
    # Changed by issue 11 (aad-advanced-queries.md, "Error handling for advanced queries"):
    # without the header Graph silently ignores $count=true, and refuses the /$count
    # segment with Request_BadRequest "$count is not currently supported.".
    r = graph(emu, "/v1.0/users?$count=true", token)
    assert r.status_code == 200 and "@odata.count" not in r.json()
    r = graph(emu, "/v1.0/users/$count", token)
    assert (r.status_code, r.json()["error"]) == (
        400,
        {**r.json()["error"], "code": "Request_BadRequest",
         "message": "$count is not currently supported."},
    )  # fmt: skip
    r = graph(emu, "/v1.0/users?$count=true&$top=10", token, headers=EVENTUAL)
    assert r.json()["@odata.count"] == 250
    # Only on the first page.
    second = graph(emu, r.json()["@odata.nextLink"], token, headers=EVENTUAL).json()
    assert "@odata.count" not in second
    r = graph(emu, "/v1.0/users/$count", token, headers=EVENTUAL)
    assert (r.status_code, r.text) == (200, "250")
    assert r.headers["Content-Type"].startswith("text/plain")


def test_search_by_display_name_token(emu: Any, token: str) -> None:
    everyone = _all_users(emu, token)
    surname = everyone[3]["surname"]
    expected = {u["id"] for u in everyone if u["surname"] == surname}
    got = page_all(emu, token, f'/v1.0/users?$search="displayName:{surname[:3]}"', EVENTUAL)
    assert expected <= {u["id"] for u in got}
    assert all(
        any(w.lower().startswith(surname[:3].lower()) for w in u["displayName"].split())
        for u in got
    )
    r = graph(emu, "/v1.0/users?$search=nonsense", token, headers=EVENTUAL)
    assert r.status_code == 400


def test_orderby_display_name(emu: Any, token: str) -> None:
    got = page_all(emu, token, "/v1.0/users?$orderby=displayName&$top=60")
    names = [u["displayName"].lower() for u in got]
    assert names == sorted(names)
    assert len(got) == 250


# ----------------------------------------------------------------- single entities


def test_user_by_id_and_by_upn(emu: Any, token: str) -> None:
    first = graph(emu, "/v1.0/users?$top=1", token).json()["value"][0]
    by_id = graph(emu, f"/v1.0/users/{first['id']}", token).json()
    by_upn = graph(emu, f"/v1.0/users/{first['userPrincipalName']}?$select=id,mail", token).json()
    assert by_id["id"] == first["id"]
    assert by_id["@odata.context"].endswith("$metadata#users/$entity")
    assert {k: v for k, v in by_upn.items() if not k.startswith("@")} == {
        "id": first["id"],
        "mail": first["mail"],
    }
    missing = graph(emu, f"/v1.0/users/{uuid.uuid4()}", token)
    assert (missing.status_code, missing.json()["error"]["code"]) == (
        404,
        "Request_ResourceNotFound",
    )


@pytest.mark.graphkit_emulator(users=100_000)
def test_hundred_thousand_users_lookups_are_cheap(emu: Any, token: str) -> None:
    r = graph(emu, "/v1.0/users/$count", token, headers=EVENTUAL)
    assert r.text == "100000"
    last = graph(emu, "/v1.0/users?$top=1&$orderby=displayName desc", token)
    assert last.status_code == 200
    body = graph(emu, "/v1.0/users?$top=999", token).json()
    some = body["value"][-1]
    got = graph(
        emu, f"/v1.0/users?$filter=userPrincipalName eq '{some['userPrincipalName']}'", token
    )
    assert [u["id"] for u in got.json()["value"]] == [some["id"]]


def test_me_is_400_for_app_only(emu: Any, token: str) -> None:
    r = graph(emu, "/v1.0/me", token)
    assert r.status_code == 400
    assert r.json()["error"]["message"] == (
        "/me request is only valid with delegated authentication flow."
    )


def test_organization_and_groups(emu: Any) -> None:
    emu.grant(emu.default_app, "Directory.Read.All")
    token = emu.issue_token()
    org = graph(emu, "/v1.0/organization", token).json()["value"]
    assert [o["id"] for o in org] == [emu.default_tenant.id]
    assert org[0]["verifiedDomains"][0]["name"] == emu.default_tenant.domain
    groups = graph(emu, "/v1.0/groups", token).json()["value"]
    assert len(groups) >= 3
    one = graph(emu, f"/v1.0/groups/{groups[0]['id']}", token).json()
    assert one["displayName"] == groups[0]["displayName"]
    security = graph(emu, "/v1.0/groups?$filter=securityEnabled eq true", token).json()["value"]
    assert {g["id"] for g in security} == {g["id"] for g in groups if g["securityEnabled"]}


def test_trailing_slash_and_case_are_tolerated(emu: Any, token: str) -> None:
    assert graph(emu, "/v1.0/users/?$top=1", token).status_code == 200
    assert graph(emu, "/V1.0/Users?$top=1", token).status_code == 200


def test_unknown_segment_is_400(emu: Any, token: str) -> None:
    r = graph(emu, "/v1.0/widgets", token)
    assert r.status_code == 400
    assert r.json()["error"]["message"] == "Resource not found for the segment 'widgets'."


# -------------------------------------------------------------- authentication


def test_missing_role_is_403(emu: Any) -> None:
    token = emu.issue_token()
    for path in ("/v1.0/organization", "/v1.0/groups"):
        r = graph(emu, path, token)
        assert r.status_code == 403
        assert r.json()["error"]["code"] == "Authorization_RequestDenied"
        assert r.json()["error"]["message"] == "Insufficient privileges to complete the operation."
    emu.revoke(emu.default_app, "User.Read.All")
    r = graph(emu, "/v1.0/users", emu.issue_token())
    assert r.status_code == 403


def test_roles_come_from_the_token_not_the_current_grants(emu: Any) -> None:
    token = emu.issue_token()
    emu.revoke(emu.default_app, "User.Read.All")
    assert graph(emu, "/v1.0/users", token).status_code == 200
    assert graph(emu, "/v1.0/users", emu.issue_token()).status_code == 403


def test_expired_token_is_401(emu: Any, token: str) -> None:
    assert graph(emu, "/v1.0/users?$top=1", token).status_code == 200
    emu.advance(3600)
    r = graph(emu, "/v1.0/users?$top=1", token)
    assert r.status_code == 401
    assert r.json()["error"]["code"] == "InvalidAuthenticationToken"
    assert "expired" in r.json()["error"]["message"]
    assert "WWW-Authenticate" in r.headers


@pytest.mark.parametrize(
    "authorization",
    [None, "Bearer ", "Bearer not.a.token", "Basic dXNlcjpwYXNz"],
)
def test_missing_or_malformed_token_is_401(emu: Any, authorization: str | None) -> None:
    headers = {"Authorization": authorization} if authorization is not None else {}
    r = graph(emu, "/v1.0/users", None, headers=headers)
    assert (r.status_code, r.json()["error"]["code"]) == (401, "InvalidAuthenticationToken")


def test_forged_token_is_401(emu: Any, token: str) -> None:
    import jwt
    from _emulator_helpers import claims_of, rsa_key

    forged = jwt.encode(claims_of(token), rsa_key("forger"), algorithm="RS256")
    assert graph(emu, "/v1.0/users", forged).status_code == 401
    wrong_aud = emu.issue_token(resource="https://vault.azure.net")
    r = graph(emu, "/v1.0/users", wrong_aud)
    assert r.status_code == 401
    assert "audience" in r.json()["error"]["message"]


def test_error_shape_echoes_client_request_id(emu: Any) -> None:
    crid = str(uuid.uuid4())
    r = graph(emu, "/v1.0/users", None, headers={"client-request-id": crid})
    inner = r.json()["error"]["innerError"]
    assert inner["client-request-id"] == crid
    assert inner["request-id"] == r.headers["request-id"]
    assert r.headers["client-request-id"] == crid
    assert len(inner["date"]) == 19 and inner["date"][10] == "T"


def test_date_header_follows_the_emulator_clock(emu: Any, token: str) -> None:
    before = email.utils.parsedate_to_datetime(
        graph(emu, "/v1.0/users?$top=1", token).headers["Date"]
    )
    emu.advance(86400)
    after = email.utils.parsedate_to_datetime(
        graph(emu, "/v1.0/users?$top=1", token).headers["Date"]
    )
    assert (after - before).total_seconds() >= 86400 - 5


def test_an_http_1_0_client_gets_a_page_whole_with_its_length(emu: Any, token: str) -> None:
    import socket
    import ssl

    host, port = urlsplit(emu.graph_url).hostname, urlsplit(emu.graph_url).port
    context = ssl.create_default_context(cafile=emu.ca_bundle)
    with (
        socket.create_connection((host, port), timeout=30) as raw,
        context.wrap_socket(raw, server_hostname=host) as tls,
    ):
        tls.sendall(f"GET /v1.0/users?$top=5 HTTP/1.0\r\nHost: {host}:{port}\r\n"
                    f"Authorization: Bearer {token}\r\n\r\n".encode())  # fmt: skip
        answer = b""
        while chunk := tls.recv(65536):
            answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    headers = head.decode().lower()
    assert "transfer-encoding" not in headers  # HTTP/1.0 has no chunks
    assert f"content-length: {len(body)}" in headers
    assert len(json.loads(body)["value"]) == 5


def test_keep_alive_reuses_the_connection(emu: Any, token: str) -> None:
    session = emu.session()
    headers = {"Authorization": f"Bearer {token}"}
    emu.clear_requests()
    for _ in range(3):
        r = session.get(f"{emu.graph_url}/v1.0/users?$top=2", headers=headers)
        assert r.status_code == 200
        # A collection page goes out as it is made: chunked, and the connection stays.
        assert r.headers["Transfer-Encoding"] == "chunked"
        assert len(r.json()["value"]) == 2
        one = session.get(f"{emu.graph_url}/v1.0/users/{r.json()['value'][0]['id']}",
                          headers=headers)  # fmt: skip
        assert one.headers["Content-Length"] == str(len(one.content))
    assert len({e["peer_port"] for e in emu.requests()}) == 1
    session.close()
    graph(emu, "/v1.0/users?$top=2", token)  # a new connection
    assert len({e["peer_port"] for e in emu.requests()}) == 2


# ------------------------------------------------------------------- applications


def _b64der(cert: Any) -> str:
    from cryptography.hazmat.primitives import serialization

    return base64.b64encode(cert.public_bytes(serialization.Encoding.DER)).decode()


def test_application_keycredentials_patch_replaces(emu: Any, tmp_path: Path) -> None:
    one = identity(tmp_path, "one")
    two = identity(tmp_path, "two")
    app = emu.default_app
    emu.grant(app, "Application.ReadWrite.All")
    token = emu.issue_token()
    emu.upload_certificate(app, one.cert)

    got = graph(emu, f"/v1.0/applications/{app.object_id}", token).json()
    assert got["appId"] == app.client_id
    assert [k["key"] for k in got["keyCredentials"]] == [None]  # key only with $select
    by_app_id = graph(emu, f"/v1.0/applications(appId='{app.client_id}')", token).json()
    assert by_app_id["id"] == app.object_id
    selected = graph(
        emu, f"/v1.0/applications/{app.object_id}?$select=keyCredentials", token
    ).json()
    existing = selected["keyCredentials"]
    assert existing[0]["key"] == _b64der(one.cert)
    assert existing[0]["customKeyIdentifier"] == base64.b64encode(bytes.fromhex(one.sha1)).decode()
    assert existing[0]["type"] == "AsymmetricX509Cert" and existing[0]["usage"] == "Verify"

    # PATCH with only the new one REPLACES the collection: the old one is gone.
    new = {"type": "AsymmetricX509Cert", "usage": "Verify", "key": _b64der(two.cert)}
    r = graph(
        emu,
        f"/v1.0/applications/{app.object_id}",
        token,
        method="PATCH",
        json={"keyCredentials": [new]},
    )
    assert r.status_code == 204
    keys = emu.key_credentials(app)
    assert [k["key"] for k in keys] == [_b64der(two.cert)]
    # To add, send the existing ones too (an existing keyId without key keeps it).
    r = graph(
        emu,
        f"/v1.0/applications(appId='{app.client_id}')",
        token,
        method="PATCH",
        json={"keyCredentials": [{"keyId": keys[0]["keyId"]}, {**new, "key": _b64der(one.cert)}]},
    )
    assert r.status_code == 204
    assert {k["key"] for k in emu.key_credentials(app)} == {_b64der(one.cert), _b64der(two.cert)}
    bad = graph(
        emu,
        f"/v1.0/applications/{app.object_id}",
        token,
        method="PATCH",
        json={"keyCredentials": [{"key": "bm90IGEgY2VydA=="}]},
    )
    assert bad.status_code == 400


def test_application_permissions(emu: Any) -> None:
    app = emu.default_app
    r = graph(emu, f"/v1.0/applications/{app.object_id}", emu.issue_token())
    assert r.status_code == 403
    emu.grant(app, "Application.Read.All")
    token = emu.issue_token()
    assert graph(emu, f"/v1.0/applications/{app.object_id}", token).status_code == 200
    r = graph(
        emu,
        f"/v1.0/applications/{app.object_id}",
        token,
        method="PATCH",
        json={"displayName": "renamed"},
    )
    assert r.status_code == 403
    # OwnedBy lets an app manage its own registration.
    emu.revoke(app, "Application.Read.All")
    emu.grant(app, "Application.ReadWrite.OwnedBy")
    token = emu.issue_token()
    r = graph(
        emu,
        f"/v1.0/applications/{app.object_id}",
        token,
        method="PATCH",
        json={"displayName": "renamed"},
    )
    assert r.status_code == 204
    listed = graph(emu, f"/v1.0/applications?$filter=appId eq '{app.client_id}'", token).json()
    assert [a["displayName"] for a in listed["value"]] == ["renamed"]
    assert graph(emu, f"/v1.0/applications/{uuid.uuid4()}", token).status_code == 404


def test_uploaded_certificate_shows_in_the_admin_view(emu: Any, tmp_path: Path) -> None:
    one = identity(tmp_path, "one")
    emu.upload_certificate(emu.default_app, one.cert)
    got = admin(emu, "GET", f"/apps/{emu.default_app.client_id}").json()
    assert len(got["certificates"]) == 1


# -------------------------------------------------------------------------- $batch


def _batch(emu: Any, token: str, requests_: list[dict[str, Any]]) -> Any:
    return graph(emu, "/v1.0/$batch", token, method="POST", json={"requests": requests_})


def test_batch_per_item_status_and_headers(emu: Any, token: str) -> None:
    r = _batch(
        emu,
        token,
        [
            {"id": "1", "method": "GET", "url": "/users?$top=2"},
            {"id": "2", "method": "GET", "url": "/organization"},
            {"id": "3", "method": "GET", "url": "users/$count", "headers": EVENTUAL},
        ],
    )
    assert r.status_code == 200
    by_id = {x["id"]: x for x in r.json()["responses"]}
    assert by_id["1"]["status"] == 200 and len(by_id["1"]["body"]["value"]) == 2
    assert by_id["1"]["headers"]["Content-Type"].startswith("application/json")
    assert by_id["2"]["status"] == 403
    assert by_id["2"]["body"]["error"]["code"] == "Authorization_RequestDenied"
    assert (by_id["3"]["status"], by_id["3"]["body"]) == (200, "250")


def test_batch_failed_dependency_is_424(emu: Any, token: str) -> None:
    r = _batch(
        emu,
        token,
        [
            {"id": "a", "method": "GET", "url": "/users/does-not-exist@nowhere.example"},
            {"id": "b", "method": "GET", "url": "/users?$top=1", "dependsOn": ["a"]},
            {"id": "c", "method": "GET", "url": "/users?$top=1", "dependsOn": ["b"]},
        ],
    )
    # A serial batch (Graph allows only serial, parallel or same-dependency batches: see
    # test_emulator_writes.py for the refusal of a mixed one).
    statuses = {x["id"]: x["status"] for x in r.json()["responses"]}
    assert statuses == {"a": 404, "b": 424, "c": 424}


def test_batch_limits(emu: Any, token: str) -> None:
    many = [{"id": str(i), "method": "GET", "url": "/users?$top=1"} for i in range(21)]
    assert _batch(emu, token, many).status_code == 400
    assert _batch(emu, token, many[:20]).status_code == 200
    unknown_dep = [{"id": "1", "method": "GET", "url": "/users", "dependsOn": ["9"]}]
    assert _batch(emu, token, unknown_dep).status_code == 400
    assert (
        graph(emu, "/v1.0/$batch", None, method="POST", json={"requests": many[:1]}).status_code
        == 401
    )


def test_batch_items_use_the_outer_token(emu: Any) -> None:
    emu.revoke(emu.default_app, "User.Read.All")
    r = _batch(emu, emu.issue_token(), [{"id": "1", "method": "GET", "url": "/users"}])
    assert r.json()["responses"][0]["status"] == 403


def test_requests_are_logged_with_their_kind(emu: Any, token: str) -> None:
    emu.clear_requests()
    graph(emu, "/v1.0/users?$top=1", token)
    graph(emu, "/v1.0/me", token)
    log = emu.requests()
    assert [(e["method"], e["path"], e["status"], e["kind"]) for e in log] == [
        ("GET", "/v1.0/users", 200, "graph"),
        ("GET", "/v1.0/me", 400, "graph"),
    ]
    assert log[0]["target"] == "/v1.0/users?$top=1"
    assert time.time() - 60 < log[0]["time"] < time.time() + 60


def _proof(key: Any, iss: str, *, lifetime: int = 600, aud: str | None = None) -> str:
    import jwt

    now = int(time.time())
    claims = {
        "aud": aud or "00000002-0000-0000-c000-000000000000",
        "iss": iss,
        "nbf": now,
        "exp": now + lifetime,
    }
    return jwt.encode(claims, key, algorithm="RS256")


def test_add_key_and_remove_key_with_proof(emu: Any, tmp_path: Path) -> None:
    one, two = identity(tmp_path, "one"), identity(tmp_path, "two")
    app = emu.default_app
    token = emu.issue_token()  # an app may roll its own keys without any permission
    url = f"/v1.0/applications/{app.object_id}"
    new_key = {"type": "AsymmetricX509Cert", "usage": "Verify", "key": _b64der(two.cert)}
    body = {
        "keyCredential": new_key,
        "passwordCredential": None,
        "proof": _proof(one.key, app.object_id),
    }
    # No valid certificate yet: addKey is refused (PATCH must add the first one), with
    # Graph's one answer to a proof it cannot accept.
    r = graph(emu, f"{url}/addKey", token, method="POST", json=body)
    assert r.status_code == 401
    assert r.json()["error"]["code"] == "Authentication_MissingOrMalformed"
    assert emu.requests()[-1]["proof_refusal"] == "no valid certificate"
    emu.upload_certificate(app, one.cert)

    bad_proofs = {
        "appId as iss": _proof(one.key, app.client_id),
        "over 10 minutes": _proof(one.key, app.object_id, lifetime=601),
        "wrong aud": _proof(one.key, app.object_id, aud="https://graph.microsoft.com"),
        "unknown signer": _proof(two.key, app.object_id),
    }
    for why, proof in bad_proofs.items():
        r = graph(emu, f"{url}/addKey", token, method="POST", json={**body, "proof": proof})
        assert r.status_code == 401, why
    assert len(emu.key_credentials(app)) == 1

    r = graph(emu, f"{url}/addKey", token, method="POST", json=body)
    assert r.status_code == 200, r.text
    added = r.json()
    assert added["key"] is None and added["customKeyIdentifier"]
    assert [k["key"] for k in emu.key_credentials(app)] == [_b64der(one.cert), _b64der(two.cert)]

    old_id = emu.key_credentials(app)[0]["keyId"]
    r = graph(
        emu,
        f"/v1.0/applications(appId='{app.client_id}')/removeKey",
        token,
        method="POST",
        json={"keyId": old_id, "proof": _proof(two.key, app.object_id)},
    )
    assert r.status_code == 204
    assert [k["keyId"] for k in emu.key_credentials(app)] == [added["keyId"]]


def test_add_key_for_another_app_needs_permission(emu: Any, tmp_path: Path) -> None:
    one = identity(tmp_path, "one")
    other = emu.create_app(display_name="other")
    emu.upload_certificate(other, one.cert)
    body = {
        "keyCredential": {"key": _b64der(identity(tmp_path, "two").cert)},
        "proof": _proof(one.key, other.object_id),
    }
    url = f"/v1.0/applications/{other.object_id}/addKey"
    assert graph(emu, url, emu.issue_token(), method="POST", json=body).status_code == 403
    emu.grant(emu.default_app, "Application.ReadWrite.All")
    assert graph(emu, url, emu.issue_token(), method="POST", json=body).status_code == 200


@pytest.mark.graphkit_emulator(users=1000)
def test_concurrent_clients_each_page_everything(emu: Any, token: str) -> None:
    from concurrent.futures import ThreadPoolExecutor

    def crawl(top: int) -> list[str]:
        session = emu.session()
        headers = {"Authorization": f"Bearer {token}"}
        url: str | None = f"{emu.graph_url}/v1.0/users?$top={top}&$select=id"
        ids: list[str] = []
        while url:
            body = session.get(url, headers=headers).json()
            ids += [u["id"] for u in body["value"]]
            url = body.get("@odata.nextLink")
        session.close()
        return ids

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(crawl, [50, 61, 77, 100, 128, 250, 333, 999]))
    assert all(len(r) == 1000 and len(set(r)) == 1000 for r in results)
    assert all(set(r) == set(results[0]) for r in results)
