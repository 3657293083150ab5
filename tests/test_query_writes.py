"""Writes through `graphkit query -X` and GraphClient, against the emulator (issue 13,
"Writes"): create, patch and delete users and groups, bodies from a file, stdin or the
command line, binary answers to a file, a dry run that sends nothing, and the retry rules
per method (429 always; 5xx and dropped connections only for idempotent methods).

Retries wait on a FakeTime (GraphClient) or on a zero Retry-After (the command line), so
nothing really waits.
"""

from __future__ import annotations

import os
from typing import Any

import pytest
from _time_helpers import FakeTime
from conftest import SignedIn

from graphkit.errors import OutcomeUnknownError
from graphkit.graph import GraphClient

DOMAIN = "contoso.onmicrosoft.com"


@pytest.fixture
def env(signed_in_env: SignedIn) -> SignedIn:
    """The signed-in environment, its app allowed to write users and groups (granted
    before its first token, so the token carries the roles)."""
    emu = signed_in_env.emu
    emu.grant(emu.default_app, "User.ReadWrite.All")
    emu.grant(emu.default_app, "Group.ReadWrite.All")
    return signed_in_env


def _new_user(name: str = "ada") -> dict[str, Any]:
    return {
        "accountEnabled": True,
        "displayName": f"{name.capitalize()} Lovelace",
        "mailNickname": name,
        "userPrincipalName": f"{name}@{DOMAIN}",
        "passwordProfile": {"forceChangePasswordNextSignIn": True, "password": "xWwvJ]6NMw+bWH-d"},
    }


def _graph_log(emu: Any) -> list[dict[str, Any]]:
    return [e for e in emu.requests() if e["kind"] == "graph"]


def _client(t: FakeTime) -> GraphClient:
    return GraphClient.from_env(sleep=t.sleep, clock=t.clock)


# ------------------------------------------------------------------ retry rules per method


@pytest.mark.parametrize("method", ["POST", "PATCH"])
@pytest.mark.parametrize("kind", ["503", "504"])
def test_a_5xx_on_post_or_patch_is_not_retried_and_may_have_been_applied(
    env: SignedIn, method: str, kind: str
) -> None:
    emu = env.emu
    target = emu.create_user(**{"userPrincipalName": f"grace@{DOMAIN}", "displayName": "Grace"})
    path, body = (
        ("/users", _new_user())
        if method == "POST"
        else (f"/users/{target['id']}", {"jobTitle": "x"})
    )
    t = FakeTime()
    with _client(t) as c:
        c.get("/users", {"$top": "1"})  # the token, before the fault
        emu.clear_requests()
        emu.add_fault(kind, endpoint="graph", every=1, times=1, retry_after=0)
        with pytest.raises(OutcomeUnknownError) as info:
            c.send(method, path, json_body=body)
    err = info.value
    assert err.exit_code == 10 and err.status == int(kind)
    assert "may have been applied" in str(err)
    [sent] = _graph_log(emu)
    assert sent["method"] == method and sent["status"] == int(kind)
    assert err.client_request_id == sent["client_request_id"]
    assert err.client_request_id in str(err)  # so the user can look it up
    assert t.slept == []


@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE"])
def test_a_503_on_an_idempotent_method_is_retried(env: SignedIn, method: str) -> None:
    emu = env.emu
    user = emu.create_user(**{"userPrincipalName": f"grace@{DOMAIN}", "displayName": "Grace"})
    photo = b"\xff\xd8\xff\xe0" + os.urandom(64)
    t = FakeTime()
    with _client(t) as c:
        c.get("/users", {"$top": "1"})
        emu.clear_requests()
        emu.add_fault("503", endpoint="graph", every=1, times=1, retry_after=0.5)
        if method == "GET":
            resp = c.send("GET", f"/users/{user['id']}")
            assert resp.status_code == 200 and c.decode(resp)["id"] == user["id"]
        elif method == "PUT":
            resp = c.send(
                "PUT",
                f"/users/{user['id']}/photo/$value",
                headers={"Content-Type": "image/jpeg"},
                data=photo,
            )
            assert resp.status_code == 200
        else:
            assert c.send("DELETE", f"/users/{user['id']}").status_code == 204
    log = _graph_log(emu)
    assert [(e["method"], e["status"]) for e in log] == [
        (method, 503),
        (method, 200 if method != "DELETE" else 204),
    ]
    assert log[0]["client_request_id"] == log[1]["client_request_id"]
    assert t.slept == [0.5]
    if method == "PUT":
        assert emu.get_photo(user["id"]) == photo
    if method == "DELETE":
        assert emu.get_user(user["id"]) is None


def test_a_429_on_post_is_retried(env: SignedIn) -> None:
    emu = env.emu
    t = FakeTime()
    with _client(t) as c:
        c.get("/users", {"$top": "1"})
        emu.clear_requests()
        emu.add_fault("429", endpoint="graph", every=1, times=1, retry_after=1.5)
        resp = c.send("POST", "/users", json_body=_new_user())
    assert resp.status_code == 201 and c.decode(resp)["userPrincipalName"] == f"ada@{DOMAIN}"
    assert [(e["method"], e["status"]) for e in _graph_log(emu)] == [("POST", 429), ("POST", 201)]
    assert t.slept == [1.5]


def test_a_dropped_connection_on_patch_is_not_retried(env: SignedIn) -> None:
    emu = env.emu
    user = emu.create_user(**{"userPrincipalName": f"grace@{DOMAIN}", "displayName": "Grace"})
    t = FakeTime()
    with _client(t) as c:
        c.get("/users", {"$top": "1"})
        emu.clear_requests()
        emu.add_fault("reset", endpoint="graph", every=1, times=1)
        with pytest.raises(OutcomeUnknownError) as info:
            c.send("PATCH", f"/users/{user['id']}", json_body={"jobTitle": "Engineer"})
    assert info.value.exit_code == 10
    assert "may have been applied" in str(info.value)
    [sent] = _graph_log(emu)
    assert sent["method"] == "PATCH" and sent["fault"] == "reset"
    assert info.value.client_request_id == sent["client_request_id"]
    assert t.slept == []
