"""Writes to users and groups on the emulator's Graph side, over real HTTPS with requests,
and the $batch rules issue 13's `graphkit batch` relies on."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from _emulator_helpers import admin, graph, page_all

DOMAIN = "contoso.onmicrosoft.com"


@pytest.fixture
def emu(graphkit_emulator: Any) -> Any:
    return graphkit_emulator


def _token(emu: Any, *roles: str) -> str:
    app = emu.create_app(display_name="writer", roles=list(roles))
    return str(emu.issue_token(app))


@pytest.fixture
def writer(emu: Any) -> str:
    return _token(emu, "User.ReadWrite.All", "Group.ReadWrite.All")


def _new_user(name: str = "ada", **extra: Any) -> dict[str, Any]:
    body = {
        "accountEnabled": True,
        "displayName": f"{name.capitalize()} Lovelace",
        "mailNickname": name,
        "userPrincipalName": f"{name}@{DOMAIN}",
        "passwordProfile": {"forceChangePasswordNextSignIn": True, "password": "xWwvJ]6NMw+bWH-d"},
    }
    body.update(extra)
    return body


def _batch(emu: Any, token: str, requests_: list[dict[str, Any]]) -> Any:
    return graph(emu, "/v1.0/$batch", token, method="POST", json={"requests": requests_})


# ------------------------------------------------------------------------ users


def test_create_user_is_201_with_the_object_and_is_then_listed(emu: Any, writer: str) -> None:
    r = graph(emu, "/v1.0/users", writer, method="POST", json=_new_user(jobTitle="Analyst"))
    assert r.status_code == 201, r.text
    user = r.json()
    assert user["@odata.context"].endswith("/v1.0/$metadata#users/$entity")
    assert user["userPrincipalName"] == f"ada@{DOMAIN}"
    assert user["jobTitle"] == "Analyst"
    assert "passwordProfile" not in user  # write-only
    assert r.headers["Location"].endswith(f"/v1.0/users/{user['id']}")
    one = graph(emu, f"/v1.0/users/{user['id']}", writer).json()
    assert one["displayName"] == "Ada Lovelace"
    by_upn = graph(emu, f"/v1.0/users/ada@{DOMAIN}?$select=id,jobTitle", writer).json()
    assert (by_upn["id"], by_upn["jobTitle"]) == (user["id"], "Analyst")
    everyone = page_all(emu, writer, "/v1.0/users?$top=999&$select=id")
    assert len(everyone) == 251
    assert everyone[-1]["id"] == user["id"]
    found = graph(emu, f"/v1.0/users?$filter=userPrincipalName eq 'ada@{DOMAIN}'", writer)
    assert [u["id"] for u in found.json()["value"]] == [user["id"]]
    ordered = graph(emu, "/v1.0/users?$orderby=displayName&$top=999&$select=displayName", writer)
    names = [u["displayName"] for u in ordered.json()["value"]]
    assert "Ada Lovelace" in names and names == sorted(names, key=str.lower)


@pytest.mark.parametrize(
    "missing", ["accountEnabled", "displayName", "mailNickname", "userPrincipalName"]
)
def test_create_user_without_a_required_property_is_400(
    emu: Any, writer: str, missing: str
) -> None:
    body = _new_user()
    del body[missing]
    r = graph(emu, "/v1.0/users", writer, method="POST", json=body)
    assert r.status_code == 400
    assert r.json()["error"]["code"] == "Request_BadRequest"
    assert f"'{missing}'" in r.json()["error"]["message"]
    assert len(page_all(emu, writer, "/v1.0/users?$top=999")) == 250


def test_create_user_without_a_password_is_400(emu: Any, writer: str) -> None:
    body = _new_user()
    del body["passwordProfile"]
    r = graph(emu, "/v1.0/users", writer, method="POST", json=body)
    assert r.status_code == 400
    assert r.json()["error"]["message"] == "A password must be specified to create a new user."


def test_a_taken_user_principal_name_is_refused_as_graph_does(emu: Any, writer: str) -> None:
    seeded = graph(emu, "/v1.0/users?$top=1", writer).json()["value"][0]
    nick = seeded["userPrincipalName"].split("@")[0]
    body = _new_user(nick, userPrincipalName=seeded["userPrincipalName"])
    r = graph(emu, "/v1.0/users", writer, method="POST", json=body)
    assert r.status_code == 400
    err = r.json()["error"]
    assert err["code"] == "Request_BadRequest"
    assert err["message"] == (
        "Another object with the same value for property userPrincipalName already exists."
    )
    assert err["details"] == [{"code": "ObjectConflict", "target": "userPrincipalName"}]
    assert graph(emu, "/v1.0/users", writer, method="POST", json=_new_user()).status_code == 201
    assert graph(emu, "/v1.0/users", writer, method="POST", json=_new_user()).status_code == 400


def test_unknown_or_read_only_property_and_foreign_domain_are_400(emu: Any, writer: str) -> None:
    r = graph(emu, "/v1.0/users", writer, method="POST", json=_new_user(id="x"))
    assert r.status_code == 400
    r = graph(emu, "/v1.0/users", writer, method="POST", json=_new_user(favouriteColour="x"))
    assert r.status_code == 400
    foreign = _new_user(userPrincipalName="ada@fabrikam.example")
    assert graph(emu, "/v1.0/users", writer, method="POST", json=foreign).status_code == 400
    bad_type = _new_user(accountEnabled="yes")
    assert graph(emu, "/v1.0/users", writer, method="POST", json=bad_type).status_code == 400


def test_patch_is_204_and_changes_only_what_was_sent(emu: Any, writer: str) -> None:
    seeded = graph(emu, "/v1.0/users?$top=3&$select=id,displayName,department", writer)
    user = seeded.json()["value"][2]
    r = graph(emu, f"/v1.0/users/{user['id']}", writer, method="PATCH", json={"jobTitle": "CTO"})
    assert (r.status_code, r.content) == (204, b"")
    after = graph(emu, f"/v1.0/users/{user['id']}?$select=displayName,department,jobTitle", writer)
    assert after.json()["jobTitle"] == "CTO"
    assert after.json()["displayName"] == user["displayName"]
    assert after.json()["department"] == user["department"]
    cto = graph(emu, "/v1.0/users?$filter=jobTitle eq 'CTO'&$select=id", writer).json()["value"]
    assert [u["id"] for u in cto] == [user["id"]]
    cleared = graph(
        emu, f"/v1.0/users/{user['id']}", writer, method="PATCH", json={"displayName": ""}
    )
    assert cleared.status_code == 400  # user-update.md: displayName cannot be cleared
    missing = graph(emu, "/v1.0/users/nobody@" + DOMAIN, writer, method="PATCH", json={})
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "Request_ResourceNotFound"


def test_renaming_a_user_moves_the_name(emu: Any, writer: str) -> None:
    old = graph(emu, "/v1.0/users?$top=1", writer).json()["value"][0]
    new_upn = f"renamed@{DOMAIN}"
    r = graph(
        emu, f"/v1.0/users/{old['id']}", writer, method="PATCH", json={"userPrincipalName": new_upn}
    )
    assert r.status_code == 204
    assert graph(emu, f"/v1.0/users/{new_upn}", writer).json()["id"] == old["id"]
    assert graph(emu, f"/v1.0/users/{old['userPrincipalName']}", writer).status_code == 404
    # The old name is free again.
    body = _new_user(
        old["userPrincipalName"].split("@")[0], userPrincipalName=old["userPrincipalName"]
    )
    assert graph(emu, "/v1.0/users", writer, method="POST", json=body).status_code == 201


@pytest.mark.graphkit_emulator(users=1000)
def test_delete_is_204_then_404_and_paging_sees_every_remaining_user_once(
    emu: Any, writer: str
) -> None:
    before = page_all(emu, writer, "/v1.0/users?$top=999&$select=id")
    doomed = [before[i]["id"] for i in (0, 1, 500, 998, 999)]
    for user_id in doomed:
        r = graph(emu, f"/v1.0/users/{user_id}", writer, method="DELETE")
        assert (r.status_code, r.content) == (204, b"")
        assert graph(emu, f"/v1.0/users/{user_id}", writer).status_code == 404
        assert graph(emu, f"/v1.0/users/{user_id}", writer, method="DELETE").status_code == 404
    created = graph(emu, "/v1.0/users", writer, method="POST", json=_new_user()).json()["id"]
    for top in (999, 100, 7):
        ids = [u["id"] for u in page_all(emu, writer, f"/v1.0/users?$top={top}&$select=id")]
        assert len(ids) == len(set(ids)) == 996
        assert set(ids) == ({u["id"] for u in before} - set(doomed)) | {created}
    count = graph(emu, "/v1.0/users/$count", writer, headers={"ConsistencyLevel": "eventual"}).text
    assert count == "996"


def test_a_deleted_manager_is_no_manager(emu: Any, writer: str) -> None:
    users = graph(emu, "/v1.0/users?$top=2&$select=id", writer).json()["value"]
    report = users[1]["id"]
    assert graph(emu, f"/v1.0/users/{report}/manager", writer).json()["id"] == users[0]["id"]
    assert graph(emu, f"/v1.0/users/{users[0]['id']}", writer, method="DELETE").status_code == 204
    assert graph(emu, f"/v1.0/users/{report}/manager", writer).status_code == 404


@pytest.mark.parametrize(
    ("roles", "post", "patch", "delete"),
    [
        (["User.Read.All"], 403, 403, 403),
        (["Directory.ReadWrite.All"], 201, 204, 403),  # cannot delete users
        (["User.ReadWrite.All"], 201, 204, 204),
    ],
)
def test_user_writes_need_their_permission(
    emu: Any, roles: list[str], post: int, patch: int, delete: int
) -> None:
    token = _token(emu, *roles)
    r = graph(emu, "/v1.0/users", token, method="POST", json=_new_user())
    assert r.status_code == post
    if post == 403:
        assert r.json()["error"]["code"] == "Authorization_RequestDenied"
    target = graph(emu, "/v1.0/users?$top=1&$select=id", emu.issue_token()).json()["value"][0]
    url = f"/v1.0/users/{target['id']}"
    assert graph(emu, url, token, method="PATCH", json={"jobTitle": "x"}).status_code == patch
    assert graph(emu, url, token, method="DELETE").status_code == delete


def test_nothing_is_stored_for_a_seeded_user_that_was_only_read(emu: Any, writer: str) -> None:
    page_all(emu, writer, "/v1.0/users?$top=999")
    overlay = emu.backend.tenant(emu.default_tenant.id).users
    assert not overlay.changed
    state = overlay.export_state()
    assert state["created"] == [] and state["patches"] == {} and state["deleted"] == []
    emu.update_user(graph(emu, "/v1.0/users?$top=1", writer).json()["value"][0]["id"], jobTitle="x")
    state = overlay.export_state()
    assert list(state["patches"].values()) == [{"jobTitle": "x"}]


def test_writes_survive_a_restart_with_a_state_dir(tmp_path: Path) -> None:
    from graphkit.emulator import Emulator

    state = tmp_path / "state"
    with Emulator(users=20, state_dir=state) as emu:
        token = _token(emu, "User.ReadWrite.All", "Group.ReadWrite.All")
        created = graph(emu, "/v1.0/users", token, method="POST", json=_new_user()).json()
        first = graph(emu, "/v1.0/users?$top=2&$select=id", token).json()["value"]
        graph(emu, f"/v1.0/users/{first[0]['id']}", token, method="DELETE")
        graph(emu, f"/v1.0/users/{first[1]['id']}", token, method="PATCH", json={"jobTitle": "Z"})
        group = graph(emu, "/v1.0/groups", token, method="POST", json=_new_group("kept")).json()
    with Emulator(state_dir=state) as emu:
        token = _token(emu, "User.Read.All", "Group.Read.All")
        assert graph(emu, f"/v1.0/users/{created['id']}", token).status_code == 200
        assert graph(emu, f"/v1.0/users/{first[0]['id']}", token).status_code == 404
        patched = graph(emu, f"/v1.0/users/{first[1]['id']}?$select=jobTitle", token).json()
        assert patched["jobTitle"] == "Z"
        assert graph(emu, f"/v1.0/groups/{group['id']}", token).status_code == 200
        assert len(page_all(emu, token, "/v1.0/users?$top=999")) == 20


# ----------------------------------------------------------------------- photos

JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + bytes(range(256)) * 40 + b"\xff\xd9"


def test_a_user_has_no_photo_until_one_is_put(emu: Any, writer: str) -> None:
    uid = graph(emu, "/v1.0/users?$top=1&$select=id", writer).json()["value"][0]["id"]
    url = f"/v1.0/users/{uid}/photo/$value"
    r = graph(emu, url, writer)
    assert r.status_code == 404
    err = r.json()["error"]
    assert err["code"] == "ImageNotFound" and "ImageNotFoundException" in err["message"]
    assert set(err["innerError"]) == {"date", "request-id", "client-request-id"}
    r = graph(emu, url, writer, method="PUT", data=JPEG, headers={"Content-Type": "image/jpeg"})
    assert (r.status_code, r.content) == (200, b"")
    r = graph(emu, url, emu.issue_token())  # the default app: User.Read.All is enough
    assert r.status_code == 200
    assert r.headers["Content-Type"] == "image/jpeg" and r.content == JPEG
    # PATCH replaces it too (profilephoto-update.md: "either PATCH or PUT").
    r = graph(
        emu,
        url,
        writer,
        method="PATCH",
        data=b"\xff\xd8new",
        headers={"Content-Type": "image/jpeg"},
    )
    assert r.status_code == 200 and graph(emu, url, writer).content == b"\xff\xd8new"
    # A deleted user's photo goes with it.
    graph(emu, f"/v1.0/users/{uid}", writer, method="DELETE")
    assert graph(emu, url, writer).json()["error"]["code"] == "Request_ResourceNotFound"


def test_a_photo_needs_its_permission_an_image_type_and_under_4_mb(emu: Any, writer: str) -> None:
    uid = graph(emu, "/v1.0/users?$top=1&$select=id", writer).json()["value"][0]["id"]
    url = f"/v1.0/users/{uid}/photo/$value"
    jpeg = {"Content-Type": "image/jpeg"}
    reader = emu.issue_token()  # User.Read.All: reads a photo, cannot set one
    r = graph(emu, url, reader, method="PUT", data=JPEG, headers=jpeg)
    assert r.status_code == 403
    basic = _token(emu, "User.ReadBasic.All")
    assert graph(emu, url, basic).status_code == 403
    r = graph(
        emu, url, writer, method="PUT", data=b"{}", headers={"Content-Type": "application/json"}
    )
    assert r.status_code == 400
    r = graph(emu, url, writer, method="PUT", data=b"\xff" * (4 * 1024 * 1024), headers=jpeg)
    assert r.status_code == 413
    assert graph(emu, url, writer, method="PUT", data=b"", headers=jpeg).status_code == 400
    assert graph(emu, url, writer).status_code == 404  # nothing was stored
    missing = "/v1.0/users/00000000-0000-0000-0000-000000000000/photo/$value"
    assert graph(emu, missing, writer, method="PUT", data=JPEG, headers=jpeg).status_code == 404


def test_a_photo_survives_a_restart_with_a_state_dir(tmp_path: Path) -> None:
    from graphkit.emulator import Emulator

    state = tmp_path / "state"
    with Emulator(users=5, state_dir=state) as emu:
        uid = emu.backend.tenant(emu.default_tenant.id).users.get(2)["id"]
        emu.set_photo(uid, JPEG)
        assert emu.get_photo(uid) == JPEG
    with Emulator(state_dir=state) as emu:
        assert emu.get_photo(uid) == JPEG
        r = graph(emu, f"/v1.0/users/{uid}/photo/$value", emu.issue_token())
        assert r.content == JPEG


# ----------------------------------------------------------------------- groups


def _new_group(nick: str = "ops", **extra: Any) -> dict[str, Any]:
    body = {
        "displayName": f"{nick.capitalize()} team",
        "mailEnabled": False,
        "mailNickname": nick,
        "securityEnabled": True,
    }
    body.update(extra)
    return body


def test_group_create_patch_delete(emu: Any, writer: str) -> None:
    r = graph(emu, "/v1.0/groups", writer, method="POST", json=_new_group(description="Ops"))
    assert r.status_code == 201, r.text
    group = r.json()
    assert group["@odata.context"].endswith("/v1.0/$metadata#groups/$entity")
    assert (group["displayName"], group["securityEnabled"], group["mail"]) == (
        "Ops team",
        True,
        None,
    )
    url = f"/v1.0/groups/{group['id']}"
    names = [g["displayName"] for g in graph(emu, "/v1.0/groups", writer).json()["value"]]
    assert "Ops team" in names
    r = graph(emu, url, writer, method="PATCH", json={"description": "Operations"})
    assert (r.status_code, r.content) == (204, b"")
    assert graph(emu, url, writer).json()["description"] == "Operations"
    assert graph(emu, url, writer, method="DELETE").status_code == 204
    assert graph(emu, url, writer).status_code == 404
    assert graph(emu, url, writer, method="DELETE").status_code == 404


def test_a_unified_group_gets_a_mail_address(emu: Any, writer: str) -> None:
    body = _new_group("news", mailEnabled=True, securityEnabled=False, groupTypes=["Unified"])
    group = graph(emu, "/v1.0/groups", writer, method="POST", json=body).json()
    assert group["mail"] == f"news@{DOMAIN}"
    assert group["groupTypes"] == ["Unified"]


@pytest.mark.parametrize(
    "missing", ["displayName", "mailEnabled", "mailNickname", "securityEnabled"]
)
def test_group_without_a_required_property_is_400(emu: Any, writer: str, missing: str) -> None:
    body = _new_group()
    del body[missing]
    r = graph(emu, "/v1.0/groups", writer, method="POST", json=body)
    assert r.status_code == 400
    assert f"'{missing}'" in r.json()["error"]["message"]


@pytest.mark.parametrize(
    ("roles", "post", "delete"),
    [
        (["Group.Read.All"], 403, 403),
        (["Directory.ReadWrite.All"], 201, 403),
        (["Group.ReadWrite.All"], 201, 204),
    ],
)
def test_group_writes_need_their_permission(
    emu: Any, roles: list[str], post: int, delete: int
) -> None:
    token = _token(emu, *roles)
    assert graph(emu, "/v1.0/groups", token, method="POST", json=_new_group()).status_code == post
    target = graph(emu, "/v1.0/groups", _token(emu, "Group.Read.All")).json()["value"][0]
    assert graph(emu, f"/v1.0/groups/{target['id']}", token, method="DELETE").status_code == delete


# ------------------------------------------------------------------------ $batch


def test_writes_inside_a_batch(emu: Any, writer: str) -> None:
    r = _batch(
        emu,
        writer,
        [
            {
                "id": "1",
                "method": "POST",
                "url": "/users",
                "body": _new_user(),
                "headers": {"Content-Type": "application/json"},
            },
            {"id": "2", "method": "GET", "url": f"/users/ada@{DOMAIN}", "dependsOn": ["1"]},
            {"id": "3", "method": "DELETE", "url": f"/users/ada@{DOMAIN}", "dependsOn": ["2"]},
        ],
    )
    assert r.status_code == 200
    statuses = {x["id"]: x["status"] for x in r.json()["responses"]}
    assert statuses == {"1": 201, "2": 200, "3": 204}
    assert graph(emu, f"/v1.0/users/ada@{DOMAIN}", writer).status_code == 404


def test_batch_dependency_patterns(emu: Any, writer: str) -> None:
    def item(key: str, *deps: str) -> dict[str, Any]:
        out: dict[str, Any] = {"id": key, "method": "GET", "url": "/users?$top=1"}
        if deps:
            out["dependsOn"] = list(deps)
        return out

    # Parallel, serial, and "same" (every dependsOn names one request) are served.
    assert _batch(emu, writer, [item("a"), item("b"), item("c")]).status_code == 200
    assert _batch(emu, writer, [item("a"), item("b", "a"), item("c", "b")]).status_code == 200
    same = _batch(emu, writer, [item("a"), item("b", "a"), item("c", "a")])
    assert same.status_code == 200
    assert {x["status"] for x in same.json()["responses"]} == {200}
    # A mix, or a request depending on two, is refused as a whole.
    mixed = _batch(emu, writer, [item("a"), item("b", "a"), item("c", "b"), item("d")])
    assert mixed.status_code == 400
    assert mixed.json()["error"]["code"] == "BadRequest"
    two = _batch(emu, writer, [item("a"), item("b"), item("c", "a", "b")])
    assert two.status_code == 400


def test_a_failed_dependency_of_the_same_pattern_is_424(emu: Any, writer: str) -> None:
    r = _batch(
        emu,
        writer,
        [
            {"id": "a", "method": "GET", "url": "/users/nobody@nowhere.example"},
            {"id": "b", "method": "GET", "url": "/users?$top=1", "dependsOn": ["a"]},
            {"id": "c", "method": "PATCH", "url": "/users/x", "body": {}, "dependsOn": ["a"]},
        ],
    )
    statuses = {x["id"]: x["status"] for x in r.json()["responses"]}
    assert statuses == {"a": 404, "b": 424, "c": 424}


def test_admin_api_writes_users(emu: Any, writer: str) -> None:
    r = admin(
        emu, "POST", "/users", json={"userPrincipalName": f"op@{DOMAIN}", "displayName": "Op"}
    )
    assert r.status_code == 201, r.text
    user_id = r.json()["id"]
    assert graph(emu, f"/v1.0/users/{user_id}", writer).json()["displayName"] == "Op"
    assert admin(emu, "PATCH", f"/users/op@{DOMAIN}", json={"jobTitle": "Ops"}).status_code == 200
    assert graph(emu, f"/v1.0/users/{user_id}?$select=jobTitle", writer).json()["jobTitle"] == "Ops"
    dup = admin(
        emu, "POST", "/users", json={"userPrincipalName": f"op@{DOMAIN}", "displayName": "2"}
    )
    assert dup.status_code == 400 and "already exists" in dup.json()["error"]
    assert admin(emu, "DELETE", f"/users/{user_id}").status_code == 204
    assert admin(emu, "DELETE", f"/users/{user_id}").status_code == 404
    assert graph(emu, f"/v1.0/users/{user_id}", writer).status_code == 404


def test_python_api_writes_users(emu: Any, writer: str) -> None:
    user = emu.create_user(userPrincipalName=f"py@{DOMAIN}", displayName="Py")
    assert emu.get_user(f"py@{DOMAIN}")["id"] == user["id"]
    emu.update_user(user["id"], department="Legal")
    dept = graph(emu, f"/v1.0/users/{user['id']}?$select=department", writer).json()
    assert dept["department"] == "Legal"
    with pytest.raises(ValueError, match="already exists"):
        emu.create_user(userPrincipalName=f"py@{DOMAIN}", displayName="Again")
    emu.delete_user(f"py@{DOMAIN}")
    assert emu.get_user(user["id"]) is None
    with pytest.raises(KeyError):
        emu.delete_user(user["id"])
    emu.reset()
    assert len(emu.backend.tenant(emu.default_tenant.id).users) == 250


def test_the_overlay_matches_a_plain_list_under_many_writes() -> None:
    """Positions, lookups and order stay those of a list that was edited the same way."""
    import random

    from graphkit.emulator.users import UserDirectory
    from graphkit.emulator.writes import UserOverlay

    tenant = "0b5e2d4a-1f3c-4e6b-8a9d-7c1e2f3a4b5c"
    counter = iter(range(10**6))
    overlay = UserOverlay(
        UserDirectory(300, seed=7, tenant_id=tenant, domain=DOMAIN, company="C"),
        clock=lambda: 0.0,
        make_id=lambda: f"00000000-0000-4000-8000-{next(counter):012d}",
    )
    model = [overlay.get(i) for i in range(300)]
    rng = random.Random(13)
    for step in range(400):
        action = rng.random()
        if action < 0.4 and model:
            victim = model.pop(rng.randrange(len(model)))
            overlay.delete(victim["id"])
        elif action < 0.7:
            model.append(overlay.create(_new_user(f"n{step}")))
        elif model:
            k = rng.randrange(len(model))
            model[k] = overlay.update(model[k]["id"], {"jobTitle": f"t{step}"})
    assert len(overlay) == len(model)
    assert [overlay.get(i)["id"] for i in range(len(model))] == [u["id"] for u in model]
    for pos, user in enumerate(model):
        assert overlay.index_of_id(user["id"]) == pos
        assert overlay.lookup("userPrincipalName", user["userPrincipalName"]) == [pos]
        assert overlay.find(user["userPrincipalName"])["jobTitle"] == user["jobTitle"]
    by_name = [overlay.get(i)["displayName"].lower() for i in overlay.order("displayName", False)]
    assert by_name == sorted(u["displayName"].lower() for u in model)
