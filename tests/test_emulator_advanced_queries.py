"""Graph's rule for advanced queries, $expand on users, and Graph's own wording for the
refusals scripts meet ($skip, a bad $skiptoken, an absolute URL in $batch).

Sources (docs/FIDELITY.md): microsoft-graph-docs aad-advanced-queries.md, user-list.md,
user-list-manager.md, user-list-memberof.md; msgraph-metadata#135 ($skip);
microsoft-graph-docs-contrib#5103 (Invalid Skip Token).
"""

from __future__ import annotations

import re
from typing import Any

import pytest
from _emulator_helpers import graph, page_all

EVENTUAL = {"ConsistencyLevel": "eventual"}
ADVANCED_HINT = (
    "is not supported because the required parameters might be missing. Try adding "
    "$count=true query parameter and ConsistencyLevel:eventual header."
)


@pytest.fixture
def emu(graphkit_emulator: Any) -> Any:
    return graphkit_emulator


@pytest.fixture
def token(emu: Any) -> str:
    return str(emu.issue_token())


def _error(r: Any) -> tuple[int, str, str]:
    err = r.json()["error"]
    return r.status_code, err["code"], err["message"]


# ------------------------------------------------------------ advanced query parameters


@pytest.mark.parametrize(
    ("query", "operator"),
    [
        ("$filter=accountEnabled ne true", None),
        ("$filter=not(accountEnabled eq true)", None),
        ("$filter=endswith(mail,'.com')", "endsWith"),
    ],
)
def test_negation_and_endswith_need_the_header_and_count(
    emu: Any, token: str, query: str, operator: str | None
) -> None:
    # Before issue 11 the header alone was enough: Graph wants $count=true as well.
    for headers, suffix in ((None, ""), (EVENTUAL, ""), (None, "&$count=true")):
        r = graph(emu, f"/v1.0/users?{query}{suffix}", token, headers=headers)
        status, code, message = _error(r)
        assert (status, code) == (400, "Request_UnsupportedQuery"), (headers, suffix)
        if operator:
            assert message.startswith(f"Operator '{operator}' {ADVANCED_HINT}")
    r = graph(emu, f"/v1.0/users?{query}&$count=true", token, headers=EVENTUAL)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["@odata.count"] == len(page_all(emu, token, f"/v1.0/users?{query}&$count=true",
                                                EVENTUAL))  # fmt: skip


def test_ne_answers_only_the_other_accounts(emu: Any, token: str) -> None:
    everyone = page_all(emu, token, "/v1.0/users?$select=id,accountEnabled&$top=999")
    disabled = {u["id"] for u in everyone if not u["accountEnabled"]}
    got = page_all(
        emu, token, "/v1.0/users?$filter=accountEnabled ne true&$count=true&$select=id", EVENTUAL
    )
    assert {u["id"] for u in got} == disabled


def test_filter_with_orderby_is_an_advanced_query(emu: Any, token: str) -> None:
    query = "/v1.0/users?$filter=startswith(displayName,'A')&$orderby=displayName"
    # The exact case the issue names: no ConsistencyLevel at all.
    assert _error(graph(emu, query, token)) == (
        400,
        "Request_UnsupportedQuery",
        "Sorting not supported for current query.",
    )
    assert _error(graph(emu, query, token, headers=EVENTUAL))[2] == (
        "Sorting not supported for current query."
    )
    r = graph(emu, f"{query}&$count=true", token, headers=EVENTUAL)
    assert r.status_code == 200, r.text
    names = [u["displayName"] for u in r.json()["value"]]
    assert names and all(n.startswith("A") for n in names)
    assert [n.lower() for n in names] == sorted(n.lower() for n in names)
    # $orderby alone on displayName works by default (user-list.md).
    assert graph(emu, "/v1.0/users?$orderby=displayName", token).status_code == 200


def test_orderby_on_an_advanced_only_property(emu: Any, token: str) -> None:
    # aad-advanced-queries.md, "Support for sorting": user createdDateTime is advanced only.
    r = graph(emu, "/v1.0/users?$orderby=createdDateTime", token)
    assert _error(r)[:2] == (400, "Request_UnsupportedQuery")
    r = graph(emu, "/v1.0/users?$orderby=createdDateTime desc&$count=true&$top=5", token,
              headers=EVENTUAL)  # fmt: skip
    assert r.status_code == 200, r.text
    # applications: displayName sorting is advanced only too.
    r = graph(emu, "/v1.0/applications?$orderby=displayName", emu.issue_token())
    assert r.status_code in (400, 403)


def test_search_needs_only_the_header(emu: Any, token: str) -> None:
    # "except for $search": the header without $count=true is enough.
    r = graph(emu, '/v1.0/users?$search="displayName:a"', token, headers=EVENTUAL)
    assert r.status_code == 200, r.text
    assert "@odata.count" not in r.json()


def test_endswith_only_on_the_properties_graph_indexes(emu: Any, token: str) -> None:
    # endsWith works on mail/otherMails/userPrincipalName/proxyAddresses only.
    r = graph(emu, "/v1.0/users?$filter=endswith(displayName,'n')&$count=true", token,
              headers=EVENTUAL)  # fmt: skip
    assert _error(r) == (
        400,
        "Request_UnsupportedQuery",
        "Unsupported or invalid query filter clause specified for property 'displayName' "
        "of resource 'User'.",
    )


def test_count_segment_needs_only_the_header_even_with_advanced_filters(
    emu: Any, token: str
) -> None:
    r = graph(emu, "/v1.0/users/$count?$filter=endswith(mail,'.com')", token, headers=EVENTUAL)
    assert (r.status_code, r.text) == (200, "250")


# ------------------------------------------------------------------------------ $expand


def test_expand_manager_on_users(emu: Any, token: str) -> None:
    r = graph(emu, "/v1.0/users?$expand=manager&$top=20&$select=id,displayName", token)
    assert r.status_code == 200, r.text
    users = r.json()["value"]
    by_id = {u["id"]: u for u in page_all(emu, token, "/v1.0/users?$top=999")}
    assert "manager" not in users[0]  # the top of the tree has none
    for user in users[1:]:
        manager = user["manager"]
        assert manager["@odata.type"] == "#microsoft.graph.user"
        assert manager["id"] in by_id and manager["id"] != user["id"]
        assert manager["displayName"] == by_id[manager["id"]]["displayName"]
    # A nested $select shapes the expanded object.
    r = graph(emu, f"/v1.0/users/{users[5]['id']}?$expand=manager($select=id,mail)", token)
    assert r.status_code == 200, r.text
    assert set(r.json()["manager"]) == {"@odata.type", "id", "mail"}


def test_manager_and_member_of_segments(emu: Any, token: str) -> None:
    users = graph(emu, "/v1.0/users?$top=60", token).json()["value"]
    first, some = users[0], users[50]
    r = graph(emu, f"/v1.0/users/{some['id']}/manager", token)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["@odata.context"].endswith("$metadata#directoryObjects/$entity")
    assert body["@odata.type"] == "#microsoft.graph.user"
    expanded = graph(emu, f"/v1.0/users/{some['id']}?$expand=manager", token).json()
    assert expanded["manager"]["id"] == body["id"]
    missing = graph(emu, f"/v1.0/users/{first['id']}/manager", token)
    assert (missing.status_code, missing.json()["error"]["code"]) == (
        404,
        "Request_ResourceNotFound",
    )

    r = graph(emu, f"/v1.0/users/{some['id']}/memberOf", token)
    assert r.status_code == 200, r.text
    groups = r.json()["value"]
    assert r.json()["@odata.context"].endswith("$metadata#directoryObjects")
    assert all(g["@odata.type"] == "#microsoft.graph.group" for g in groups)
    names = {g["displayName"] for g in groups}
    assert "All Company" in names
    assert ("Graph Admins" in names) == (users.index(some) % 50 == 0)
    expanded = graph(emu, f"/v1.0/users/{some['id']}?$expand=memberOf", token).json()
    assert [g["id"] for g in expanded["memberOf"]] == [g["id"] for g in groups]
    # Membership follows the department (Engineering, Sales, Finance groups).
    full = graph(emu, f"/v1.0/users/{some['id']}?$select=department", token).json()
    assert ("Engineering" in names) == (full["department"] == "Engineering")


def test_expand_refusals(emu: Any, token: str) -> None:
    r = graph(emu, "/v1.0/users?$expand=shoeSize", token)
    assert _error(r)[:2] == (400, "BadRequest")
    r = graph(emu, "/v1.0/groups?$expand=manager", emu.issue_token())
    assert r.status_code in (400, 403)


# ------------------------------------------------------------------- Graph's wording


def test_skip_is_refused_in_graphs_words(emu: Any, token: str) -> None:
    r = graph(emu, "/v1.0/users?$skip=10", token)
    assert _error(r) == (400, "Request_BadRequest", "'$skip' is not supported by the service.")
    assert set(r.json()["error"]["innerError"]) >= {"date", "request-id", "client-request-id"}


def test_malformed_skiptoken_is_invalid_skip_token(emu: Any, token: str) -> None:
    link = graph(emu, "/v1.0/users?$top=5", token).json()["@odata.nextLink"]
    r = graph(emu, re.sub(r"\$skiptoken=[^&]*", "$skiptoken=garbage", link), token)
    assert _error(r) == (400, "", "Invalid Skip Token")


def test_absolute_url_in_batch_gets_a_graph_error_item(emu: Any, token: str) -> None:
    r = graph(
        emu,
        "/v1.0/$batch",
        token,
        method="POST",
        json={
            "requests": [
                {"id": "1", "method": "GET", "url": f"{emu.graph_url}/v1.0/users"},
                {"id": "2", "method": "GET", "url": "/users?$top=1"},
            ]
        },
    )
    assert r.status_code == 200
    items = {i["id"]: i for i in r.json()["responses"]}
    bad = items["1"]
    assert bad["status"] == 400
    assert bad["headers"]["Content-Type"].startswith("application/json")
    assert bad["body"]["error"]["code"] == "BadRequest"
    assert set(bad["body"]["error"]["innerError"]) >= {"date", "request-id", "client-request-id"}
    assert items["2"]["status"] == 200
