"""``GET /users/delta`` on the emulator: a full round, then only the changes, over HTTPS."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import pytest
from _emulator_helpers import admin, graph

DOMAIN = "contoso.onmicrosoft.com"
WEEK = 7 * 24 * 3600


@pytest.fixture
def emu(graphkit_emulator: Any) -> Any:
    return graphkit_emulator


@pytest.fixture
def token(emu: Any) -> str:
    app = emu.create_app(display_name="sync", roles=["User.ReadWrite.All"])
    return str(emu.issue_token(app))


def _round(emu: Any, token: str, first: str, headers: dict[str, str] | None = None) -> Any:
    """Follow nextLinks to the deltaLink: (items, deltaLink, pages)."""
    items: list[dict[str, Any]] = []
    url: str | None = first
    pages = 0
    while True:
        r = graph(emu, url or "", token, headers=headers)
        assert r.status_code == 200, r.text
        body = r.json()
        pages += 1
        items.extend(body["value"])
        assert ("@odata.nextLink" in body) != ("@odata.deltaLink" in body)
        url = body.get("@odata.nextLink")
        if url is None:
            return items, body["@odata.deltaLink"], pages


def test_first_round_pages_every_user_once_and_ends_with_an_opaque_delta_link(
    emu: Any, token: str
) -> None:
    items, link, pages = _round(emu, token, "/v1.0/users/delta")
    assert pages == 3  # 250 users, 100 a page
    ids = [u["id"] for u in items]
    assert len(ids) == len(set(ids)) == 250
    assert set(items[0]) == {
        "businessPhones", "displayName", "givenName", "jobTitle", "mail", "mobilePhone",
        "officeLocation", "preferredLanguage", "surname", "userPrincipalName", "id",
    }  # fmt: skip
    parts = urlsplit(link)
    assert f"{parts.scheme}://{parts.netloc}" == emu.graph_url
    assert parts.path == "/v1.0/users/delta"
    assert parts.query.startswith("$deltatoken=")
    again, _link, _pages = _round(emu, token, link)
    assert again == []  # nothing changed


def test_select_is_kept_in_the_tokens(emu: Any, token: str) -> None:
    first = graph(emu, "/v1.0/users/delta?$select=displayName,jobTitle", token).json()
    assert first["@odata.context"].endswith("$metadata#users(displayName,jobTitle)")
    assert "$select" not in first["@odata.nextLink"]  # encoded in the token
    items, _link, _ = _round(emu, token, "/v1.0/users/delta?$select=displayName,jobTitle")
    assert all(set(u) == {"displayName", "jobTitle", "id"} for u in items)


@pytest.mark.parametrize("option", ["$top=5", "$orderby=displayName", "$expand=manager"])
def test_top_orderby_expand_are_refused(emu: Any, token: str, option: str) -> None:
    r = graph(emu, f"/v1.0/users/delta?{option}", token)
    assert r.status_code == 400
    assert r.json()["error"]["code"] == "Request_UnsupportedQuery"


def test_filter_by_id_only(emu: Any, token: str) -> None:
    some = graph(emu, "/v1.0/users?$top=2&$select=id", token).json()["value"]
    query = " or ".join(f"id eq '{u['id']}'" for u in some)
    items, link, _ = _round(emu, token, f"/v1.0/users/delta?$filter={query}")
    assert sorted(u["id"] for u in items) == sorted(u["id"] for u in some)
    emu.update_user(some[0]["id"], jobTitle="Tracked")
    other = graph(emu, "/v1.0/users?$top=3&$select=id", token).json()["value"][2]
    emu.update_user(other["id"], jobTitle="Not tracked")
    changes, _link, _ = _round(emu, token, link)
    assert [c["id"] for c in changes] == [some[0]["id"]]
    bad = graph(emu, "/v1.0/users/delta?$filter=displayName eq 'x'", token)
    assert bad.status_code == 400


def test_three_changes_and_a_deletion_then_exactly_those(emu: Any, token: str) -> None:
    _items, link, _ = _round(emu, token, "/v1.0/users/delta")
    seeded = graph(emu, "/v1.0/users?$top=4&$select=id", token).json()["value"]
    # Through Graph's writes, the admin API and the Python API.
    created = graph(
        emu,
        "/v1.0/users",
        token,
        method="POST",
        json={
            "accountEnabled": True,
            "displayName": "New Hire",
            "mailNickname": "newhire",
            "userPrincipalName": f"newhire@{DOMAIN}",
            "passwordProfile": {"password": "xWwvJ]6NMw+bWH-d"},
        },
    ).json()
    url = f"/v1.0/users/{seeded[0]['id']}"
    assert graph(emu, url, token, method="PATCH", json={"jobTitle": "Boss"}).status_code == 204
    assert admin(emu, "PATCH", f"/users/{seeded[1]['id']}", json={"officeLocation": "Oslo"}).ok
    emu.delete_user(seeded[2]["id"])
    changes, link2, _ = _round(emu, token, link)
    by_id = {c["id"]: c for c in changes}
    assert len(changes) == 4
    assert by_id[created["id"]]["displayName"] == "New Hire"
    assert by_id[seeded[0]["id"]]["jobTitle"] == "Boss"
    assert by_id[seeded[1]["id"]]["officeLocation"] == "Oslo"
    assert by_id[seeded[2]["id"]] == {"id": seeded[2]["id"], "@removed": {"reason": "changed"}}
    # The next round starts after them.
    assert _round(emu, token, link2)[0] == []
    emu.delete_user(created["id"], permanent=True)
    gone, _link, _ = _round(emu, token, link2)
    assert gone == [{"id": created["id"], "@removed": {"reason": "deleted"}}]


def test_a_change_to_an_unselected_property_does_not_show(emu: Any, token: str) -> None:
    _items, link, _ = _round(emu, token, "/v1.0/users/delta?$select=displayName")
    a, b = graph(emu, "/v1.0/users?$top=2&$select=id", token).json()["value"]
    emu.update_user(a["id"], jobTitle="Unselected")
    emu.update_user(b["id"], displayName="Renamed Person")
    changes, _link, _ = _round(emu, token, link)
    assert changes == [{"displayName": "Renamed Person", "id": b["id"]}]


def test_prefer_return_minimal_sends_only_the_changed_properties(emu: Any, token: str) -> None:
    _items, link, _ = _round(emu, token, "/v1.0/users/delta?$select=displayName,jobTitle,mail")
    user = graph(emu, "/v1.0/users?$top=1&$select=id,displayName", token).json()["value"][0]
    emu.update_user(user["id"], jobTitle="Minimal")
    full, _l, _ = _round(emu, token, link)
    assert full == [
        {"displayName": user["displayName"], "jobTitle": "Minimal", "mail": full[0]["mail"],
         "id": user["id"]}
    ]  # fmt: skip
    minimal, _l, _ = _round(emu, token, link, headers={"Prefer": "return=minimal"})
    assert minimal == [{"jobTitle": "Minimal", "id": user["id"]}]


def test_deltatoken_latest_starts_from_now(emu: Any, token: str) -> None:
    emu.update_user(graph(emu, "/v1.0/users?$top=1", token).json()["value"][0]["id"], jobTitle="x")
    body = graph(emu, "/v1.0/users/delta?$deltatoken=latest", token).json()
    assert body["value"] == [] and "@odata.nextLink" not in body
    link = body["@odata.deltaLink"]
    assert "latest" not in link
    user = emu.create_user(userPrincipalName=f"later@{DOMAIN}", displayName="Later")
    changes, _l, _ = _round(emu, token, link)
    assert [c["id"] for c in changes] == [user["id"]]


def test_many_changes_are_paged_too(emu: Any, token: str) -> None:
    _items, link, _ = _round(emu, token, "/v1.0/users/delta?$select=id")
    made = {emu.create_user(userPrincipalName=f"u{i}@{DOMAIN}", displayName=f"U {i}")["id"]
            for i in range(150)}  # fmt: skip
    changes, _l, pages = _round(emu, token, link)
    assert pages == 2
    assert [c["id"] for c in changes if c["id"] in made] == [c["id"] for c in changes]
    assert {c["id"] for c in changes} == made


def test_an_expired_token_is_400_sync_state_not_found(emu: Any, token: str) -> None:
    _items, link, _ = _round(emu, token, "/v1.0/users/delta?$select=displayName")
    emu.advance(WEEK - 60)
    token = str(emu.issue_token(emu.create_app(roles=["User.Read.All"])))  # a week later
    assert graph(emu, link, token).status_code == 200  # still valid within seven days
    emu.advance(120)  # now it is older than seven days
    r = graph(emu, link, token)
    # errors.md and the Microsoft 365 Developer Blog (2020-07-03): BadRequest,
    # syncStateNotFound, "The sync state generation is not found. ..."
    assert r.status_code == 400
    assert r.json()["error"]["code"] == "syncStateNotFound"
    assert r.json()["error"]["message"].startswith("The sync state generation is not found.")
    items, fresh, _ = _round(emu, token, "/v1.0/users/delta?$select=displayName")
    assert len(items) == 250 and set(items[0]) == {"displayName", "id"}
    assert graph(emu, fresh, token).status_code == 200


def test_a_sync_reset_is_410_gone_with_a_location_to_start_over(emu: Any, token: str) -> None:
    _items, link, _ = _round(emu, token, "/v1.0/users/delta?$select=displayName")
    assert admin(emu, "POST", "/delta/reset", json={}).status_code == 200
    r = graph(emu, link, token)
    assert r.status_code == 410 and r.json()["error"]["code"] == "resyncRequired"
    location = r.headers["Location"]
    assert urlsplit(location).path == "/v1.0/users/delta"
    items, link, _ = _round(emu, token, location)
    assert len(items) == 250 and set(items[0]) == {"displayName", "id"}
    emu.reset_delta()
    assert graph(emu, link, token).status_code == 410


def test_a_tampered_token_is_an_unknown_sync_state(emu: Any, token: str) -> None:
    _items, link, _ = _round(emu, token, "/v1.0/users/delta")
    tampered = link[:-3] + ("AAA" if not link.endswith("AAA") else "BBB")
    r = graph(emu, tampered, token)
    assert r.status_code == 400 and r.json()["error"]["code"] == "syncStateNotFound"


def test_a_token_of_another_tenant_is_unknown_here(emu: Any, token: str) -> None:
    _items, link, _ = _round(emu, token, "/v1.0/users/delta")
    other = emu.create_tenant("fabrikam.onmicrosoft.com", users=3)
    app = emu.create_app(other, roles=["User.Read.All"])
    foreign = str(emu.issue_token(app))
    r = graph(emu, link, foreign)
    assert r.status_code == 400 and r.json()["error"]["code"] == "syncStateNotFound"
    assert len(_round(emu, foreign, "/v1.0/users/delta")[0]) == 3


def test_delta_needs_a_user_read_permission_beyond_basic(emu: Any) -> None:
    basic = str(emu.issue_token(emu.create_app(roles=["User.ReadBasic.All"])))
    assert graph(emu, "/v1.0/users/delta", basic).status_code == 403
    directory = str(emu.issue_token(emu.create_app(roles=["Directory.Read.All"])))
    assert graph(emu, "/v1.0/users/delta", directory).status_code == 200
