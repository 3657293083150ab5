"""GraphClient: paging, retries, token refresh, errors and the foreign-host rule.

Two levels: a tiny scripted HTTP server (tests/_scripted_server.py: exact control over each
answer, and a "foreign" server that records whatever reaches it), and the real
emulator (graphkit.testing's ``graphkit_emulator``) with the real msal credential.
requests is never mocked.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from _scripted_server import FakeCredential, Scripted
from conftest import SignedIn

from graphkit import graph as graph_mod
from graphkit.errors import (
    BadRequestError,
    ExitCode,
    ForeignHostError,
    NetworkError,
    NotFoundError,
    PermissionDeniedError,
    ThrottledError,
    UnauthorizedError,
)
from graphkit.graph import GraphClient, encode_params, needs_eventual_consistency, required_role


@pytest.fixture(autouse=True)
def fast_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(graph_mod, "BACKOFF_BASE", 0.01)


def _client(url: str, cred: Any = None, **kw: Any) -> GraphClient:
    return GraphClient(url, cred or FakeCredential(), **kw)


def _graph_error(code: str, message: str = "boom") -> dict[str, Any]:
    return {
        "error": {
            "code": code,
            "message": message,
            "innerError": {"request-id": "req-123", "date": "2026-01-01T00:00:00"},
        }
    }


# ------------------------------------------------------------------ pure helpers


def test_encode_params_keeps_odata_readable() -> None:
    q = encode_params({"$filter": "startswith(displayName,'A b')", "$top": 5, "$count": True})
    assert q == "$filter=startswith(displayName,'A%20b')&$top=5&$count=true"


@pytest.mark.parametrize(
    ("url", "params", "expected"),
    [
        ("https://g/v1.0/users", {"$count": "true"}, True),
        ("https://g/v1.0/users", {"$search": '"displayName:a"'}, True),
        ("https://g/v1.0/users", {"$filter": "accountEnabled ne false"}, True),
        ("https://g/v1.0/users", {"$filter": "NOT(startswith(mail,'a'))"}, True),
        ("https://g/v1.0/users", {"$filter": "endsWith(mail,'@x.com')"}, True),
        ("https://g/v1.0/users", {"$filter": "displayName eq 'ne not'"}, False),
        ("https://g/v1.0/users", {"$filter": "a eq 'b'", "$orderby": "displayName"}, True),
        ("https://g/v1.0/users?$count=true", None, True),
        ("https://g/v1.0/users/$count", None, True),
        ("https://g/v1.0/users", {"$select": "id", "$top": "5"}, False),
    ],
)
def test_needs_eventual_consistency(url: str, params: Any, expected: bool) -> None:
    assert needs_eventual_consistency(url, params) is expected


def test_required_role() -> None:
    assert required_role("https://g/v1.0/users/abc") == "User.Read.All"
    assert required_role("https://g/beta/groups") == "Group.Read.All"
    assert required_role("https://g/v1.0/me") is None


def test_url_building() -> None:
    c = _client("https://graph.example.com/")
    assert c.url("/users") == "https://graph.example.com/v1.0/users"
    assert c.url("users/abc") == "https://graph.example.com/v1.0/users/abc"
    assert c.url("beta/users") == "https://graph.example.com/beta/users"
    assert c.url("https://GRAPH.example.com:443/v1.0/x") == "https://GRAPH.example.com:443/v1.0/x"
    assert _client("https://g.example", api="beta").url("/users") == "https://g.example/beta/users"


@pytest.mark.parametrize(
    "url",
    [
        "https://evil.example.com/v1.0/users",
        "http://graph.example.com/v1.0/users",  # scheme differs
        "https://graph.example.com:8443/v1.0/users",  # port differs
        "https://graph.example.com@evil.example.com/v1.0/users",  # userinfo trick
    ],
)
def test_foreign_urls_refused_without_a_request(url: str) -> None:
    cred = FakeCredential()
    c = _client("https://graph.example.com", cred)
    with pytest.raises(ForeignHostError) as info:
        c.get(url)
    assert info.value.exit_code == ExitCode.USAGE
    assert "refusing to send the Graph token" in str(info.value)
    assert c.requests_sent == 0 and cred.calls == []


# ------------------------------------------------------------------ scripted server


def test_paging_and_headers(server_factory: Callable[[], Scripted]) -> None:
    srv = server_factory()
    srv.script = [
        (
            200,
            {},
            {
                "value": [{"id": "1"}, {"id": "2"}],
                "@odata.nextLink": srv.url + "/v1.0/users?$skiptoken=a",
            },
        ),
        (200, {}, {"value": [{"id": "3"}], "@odata.nextLink": "/v1.0/users?$skiptoken=b"}),
        (200, {}, {"value": [{"id": "4"}]}),
    ]
    cred = FakeCredential()
    with _client(srv.url, cred) as c:
        ids = [u["id"] for u in c.iter("/users", {"$count": "true", "$top": 2})]
    assert ids == ["1", "2", "3", "4"]
    assert [s.path for s in srv.seen] == [
        "/v1.0/users?$count=true&$top=2",
        "/v1.0/users?$skiptoken=a",
        "/v1.0/users?$skiptoken=b",
    ]
    crids = {s.headers["client-request-id"] for s in srv.seen}
    assert len(crids) == 3  # a fresh GUID per request
    assert all(s.headers["authorization"] == "Bearer tok-1" for s in srv.seen)
    assert all(s.headers["consistencylevel"] == "eventual" for s in srv.seen)
    assert cred.calls == [False]  # the token is reused across pages


def test_max_items_stops_paging(server_factory: Callable[[], Scripted]) -> None:
    srv = server_factory()
    pages = iter(range(1, 100))  # a new skiptoken per page: a repeated one ends paging
    srv.default = lambda req: (
        200,
        {},
        {
            "value": [{"id": "x"}] * 3,
            "@odata.nextLink": srv.url + f"/v1.0/users?$skiptoken={next(pages)}",
        },
    )
    with _client(srv.url) as c:
        assert len(list(c.iter("/users", max_items=7))) == 7
    assert len(srv.seen) == 3


def test_single_object_iterates_as_itself(server_factory: Callable[[], Scripted]) -> None:
    srv = server_factory()
    srv.script = [(200, {}, {"id": "abc", "displayName": "Ada"})]
    with _client(srv.url) as c:
        assert list(c.iter("users/abc")) == [{"id": "abc", "displayName": "Ada"}]


def test_429_fractional_retry_after(server_factory: Callable[[], Scripted]) -> None:
    srv = server_factory()
    srv.script = [(429, {"Retry-After": "0.25"}, _graph_error("TooManyRequests"))]
    waits: list[tuple[float, str]] = []
    with _client(srv.url, on_wait=lambda s, r: waits.append((s, r))) as c:
        assert c.get("/users") == {"value": []}
    assert waits == [(0.25, "Graph answered 429 (throttled); retry 1 of 4")]
    assert srv.seen[1].headers["retry-attempt"] == "1"
    assert srv.seen[0].headers["client-request-id"] == srv.seen[1].headers["client-request-id"]


def test_503_and_504_back_off_then_succeed(server_factory: Callable[[], Scripted]) -> None:
    srv = server_factory()
    srv.script = [(503, {}, _graph_error("ServiceUnavailable")), (504, {}, b"gateway")]
    waits: list[float] = []
    with _client(srv.url, on_wait=lambda s, r: waits.append(s)) as c:
        assert c.get("/users") == {"value": []}
    # Exponential backoff with jitter: base*1*[0.5,1], then base*2*[0.5,1].
    assert 0.005 <= waits[0] <= 0.01 and 0.01 <= waits[1] <= 0.02


def test_connection_reset_is_retried(server_factory: Callable[[], Scripted]) -> None:
    srv = server_factory()
    srv.script = [(0, {}, "RESET")]
    waits: list[str] = []
    with _client(srv.url, on_wait=lambda s, r: waits.append(r)) as c:
        assert c.get("/users") == {"value": []}
    assert len(srv.seen) == 2 and waits[0].startswith("connection error")


def test_exhausted_retries_raise_throttled(server_factory: Callable[[], Scripted]) -> None:
    srv = server_factory()
    srv.default = lambda req: (
        429,
        {"Retry-After": "0.01"},
        _graph_error("TooManyRequests", "slow down"),
    )
    with _client(srv.url, max_attempts=3) as c, pytest.raises(ThrottledError) as info:
        c.get("/users")
    err = info.value
    assert err.exit_code == ExitCode.THROTTLED and len(srv.seen) == 3
    assert err.client_request_id == srv.seen[0].headers["client-request-id"]
    assert "after 3 attempts" in str(err) and "req-123" in str(err)
    assert err.client_request_id in str(err)


def test_total_wait_cap(server_factory: Callable[[], Scripted]) -> None:
    srv = server_factory()
    srv.default = lambda req: (429, {"Retry-After": "30"}, _graph_error("TooManyRequests"))
    with _client(srv.url, max_total_wait=5) as c, pytest.raises(ThrottledError) as info:
        c.get("/users")
    assert len(srv.seen) == 1 and "cap" in str(info.value)


def test_unreachable_host_is_a_network_error(refused_port: int) -> None:
    with (
        _client(f"http://127.0.0.1:{refused_port}", max_attempts=2) as c,
        pytest.raises(NetworkError) as info,
    ):
        c.get("/users")
    assert info.value.exit_code == ExitCode.NETWORK and "client-request-id" in str(info.value)


def test_401_refreshes_once(server_factory: Callable[[], Scripted]) -> None:
    srv = server_factory()
    srv.script = [(401, {}, _graph_error("InvalidAuthenticationToken", "expired"))]
    cred = FakeCredential()
    with _client(srv.url, cred) as c:
        assert c.get("/users") == {"value": []}
    assert cred.calls == [False, True]
    assert [s.headers["authorization"] for s in srv.seen] == ["Bearer tok-1", "Bearer tok-2"]


def test_401_twice_is_an_auth_error(server_factory: Callable[[], Scripted]) -> None:
    srv = server_factory()
    srv.default = lambda req: (401, {}, _graph_error("InvalidAuthenticationToken", "bad aud"))
    cred = FakeCredential()
    with _client(srv.url, cred) as c, pytest.raises(UnauthorizedError) as info:
        c.get("/users")
    assert info.value.exit_code == ExitCode.AUTH and cred.calls == [False, True]


def test_403_names_the_missing_role(server_factory: Callable[[], Scripted]) -> None:
    srv = server_factory()
    srv.script = [(403, {}, _graph_error("Authorization_RequestDenied", "Insufficient privileges"))]
    with (
        _client(srv.url, FakeCredential(roles=["Group.Read.All"])) as c,
        pytest.raises(PermissionDeniedError) as info,
    ):
        c.get("/users")
    text = str(info.value)
    assert info.value.exit_code == ExitCode.PERMISSION
    assert "User.Read.All" in text and "admin consent" in text and "Group.Read.All" in text
    assert "Authorization_RequestDenied" in text and "req-123" in text


def test_404_and_400(server_factory: Callable[[], Scripted]) -> None:
    srv = server_factory()
    srv.script = [
        (404, {}, _graph_error("Request_ResourceNotFound", "no such user")),
        (400, {}, _graph_error("Request_UnsupportedQuery", "bad filter")),
    ]
    with _client(srv.url) as c:
        with pytest.raises(NotFoundError) as nf:
            c.get("users/nope")
        with pytest.raises(BadRequestError) as br:
            c.get("/users", {"$filter": "x"})
    assert nf.value.exit_code == ExitCode.NOT_FOUND and "no such user" in str(nf.value)
    assert br.value.exit_code == ExitCode.USAGE


def test_foreign_next_link_refused(server_factory: Callable[[], Scripted]) -> None:
    graph, foreign = server_factory(), server_factory()
    graph.script = [
        (
            200,
            {},
            {"value": [{"id": "1"}], "@odata.nextLink": foreign.url + "/v1.0/users?$skiptoken=x"},
        )
    ]
    got: list[Any] = []
    with _client(graph.url) as c, pytest.raises(ForeignHostError) as info:
        got.extend(c.iter("/users"))
    assert got == [{"id": "1"}]
    assert "nextLink" in str(info.value) and foreign.url in str(info.value)
    assert foreign.seen == []


def test_redirect_to_foreign_host_carries_no_token(server_factory: Callable[[], Scripted]) -> None:
    graph, foreign = server_factory(), server_factory()
    graph.script = [(302, {"Location": foreign.url + "/blob"}, {})]
    foreign.script = [(200, {}, {"ok": True})]
    with _client(graph.url) as c:
        assert c.get("/reports/x", headers={"X-Extra": "1"}) == {"ok": True}
    assert "authorization" in graph.seen[0].headers
    assert "authorization" not in foreign.seen[0].headers


# ------------------------------------------------------------------ against the emulator


@pytest.fixture
def emu_env(signed_in_env: SignedIn, monkeypatch: pytest.MonkeyPatch) -> Any:
    import certifi

    # Not the emulator's CA: GraphClient must pass verify= on each request.
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", certifi.where())
    return signed_in_env.emu


@pytest.mark.graphkit_emulator(users=1200, token_lifetime=400)
def test_token_expiring_mid_paging_is_refreshed_once(emu_env: Any) -> None:
    emu = emu_env
    with GraphClient.from_env() as graph:
        items = graph.iter("/users", {"$select": "id"})
        ids = [next(items)["id"] for _ in range(100)]  # the whole first page
        emu.advance(401)  # the token is now expired, as far as the emulator knows
        ids += [u["id"] for u in items]
        assert graph.token_refreshes == 1
    assert len(ids) == len(set(ids)) == 1200
    log = emu.requests()
    assert [e["kind"] for e in log].count("token") == 2
    assert [e["status"] for e in log if e["kind"] == "graph"].count(401) == 1
    assert [e["status"] for e in log if e["kind"] == "graph"].count(200) == 12


def test_library_get_iter_and_errors(emu_env: Any) -> None:
    emu = emu_env
    with GraphClient.from_env(api="beta") as graph:
        first = graph.get("/users", {"$top": "5", "$select": "id,displayName"})
        assert len(first["value"]) == 5 and "@odata.nextLink" in first
        some = list(graph.iter("users", {"$top": "7"}, max_items=10))
        assert len(some) == 10
        one = graph.get(f"users/{some[3]['id']}")
        assert one["id"] == some[3]["id"]
        with pytest.raises(NotFoundError) as info:
            graph.get("users/00000000-0000-0000-0000-000000000000")
        assert info.value.request_id and info.value.client_request_id
        assert info.value.client_request_id in str(info.value)
        with pytest.raises(ForeignHostError):
            graph.get("https://localhost:" + emu.graph_url.rsplit(":", 1)[1] + "/beta/users")
    paths = [e["path"] for e in emu.requests() if e["kind"] == "graph"]
    assert paths[0] == "/beta/users" and len(paths) == 5  # get, 2 pages, get, the 404


def test_emulator_429_with_fractional_retry_after(emu_env: Any) -> None:
    emu = emu_env
    emu.add_fault("429", endpoint="graph", every=1, times=2, retry_after=0.15)
    waits: list[float] = []
    with GraphClient.from_env(on_wait=lambda s, r: waits.append(s)) as graph:
        assert len(graph.get("/users")["value"]) == 100
    assert waits == [0.15, 0.15]
    log = [(e["fault"], e["status"]) for e in emu.requests() if e["kind"] == "graph"]
    assert log == [("429", 429), ("429", 429), (None, 200)]


def test_emulator_exhausted_retries(emu_env: Any) -> None:
    emu = emu_env
    emu.add_fault("503", endpoint="graph", every=1)
    with GraphClient.from_env(max_attempts=3) as graph, pytest.raises(ThrottledError) as info:
        graph.get("/users")
    assert info.value.status == 503 and info.value.exit_code == ExitCode.THROTTLED
    assert [e["status"] for e in emu.requests() if e["kind"] == "graph"] == [503] * 3


def test_emulator_truncated_body_is_retried(emu_env: Any) -> None:
    emu = emu_env
    emu.add_fault("truncate", endpoint="graph", every=1, times=1)
    with GraphClient.from_env() as graph:
        assert len(list(graph.iter("/users"))) == 250
    faults = [e["fault"] for e in emu.requests() if e["kind"] == "graph"]
    assert faults[0] == "truncate" and faults.count("truncate") == 1  # the cut, then retried


def test_client_request_ids_are_random_version_4_uuids() -> None:
    import uuid

    from graphkit.graph import _request_id

    ids = [_request_id() for _ in range(2000)]
    assert len(set(ids)) == len(ids)
    for text in ids:
        parsed = uuid.UUID(text)
        assert str(parsed) == text  # the text uuid4() gives: lowercase, hyphenated
        assert parsed.version == 4 and parsed.variant == uuid.RFC_4122
