"""`graphkit query`: what the query options and --header put on the wire, and that one
run pages over one kept-alive connection. Asserted from the emulator's request log."""

from __future__ import annotations

import json
import uuid
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from _onboarding_helpers import run_cli
from conftest import SignedIn

from graphkit.errors import ExitCode


@pytest.fixture
def emu(signed_in_env: SignedIn) -> Any:
    """The emulator, graphkit pointed at it (conftest's signed_in_env)."""
    return signed_in_env.emu


def _graph_requests(emu: Any) -> list[dict[str, Any]]:
    return [e for e in emu.requests() if e["kind"] == "graph"]


def _query_of(entry: dict[str, Any]) -> dict[str, list[str]]:
    """The decoded query string of a logged request, as Graph read it."""
    return parse_qs(urlsplit(entry["target"]).query)


# ------------------------------------------------------------------ query options


def test_orderby_reaches_graph_and_orders_the_items(emu: Any) -> None:
    r = run_cli(
        ["query", "/users", "--orderby", "displayName desc", "--top", "40",
         "--select", "displayName,id", "-o", "jsonl"]
    )  # fmt: skip
    assert r.exit_code == 0, r.stderr
    [sent] = _graph_requests(emu)
    assert _query_of(sent)["$orderby"] == ["displayName desc"]
    names = [json.loads(line)["displayName"].lower() for line in r.stdout.splitlines()]
    assert len(names) == 40
    assert names == sorted(names, reverse=True)


def test_expand_reaches_graph(emu: Any) -> None:
    # The emulator implements no $expand, so its answer is a 400 naming the option; what
    # matters here is that the option was sent, in Graph's spelling.
    run_cli(["query", "/users", "--expand", "manager", "--top", "5", "-o", "json"])
    sent = _graph_requests(emu)
    assert sent, "no Graph request was made"
    assert _query_of(sent[0])["$expand"] == ["manager"]
    assert _query_of(sent[0])["$top"] == ["5"]


def test_header_is_sent_on_every_page(emu: Any) -> None:
    # client-request-id is a header the emulator records, as Graph echoes it back: the
    # observable proof that a --header value went out, on the nextLink pages too.
    crid = str(uuid.uuid4())
    r = run_cli(
        ["query", "/users", "--all", "--select", "id", "-o", "jsonl",
         "--header", f"client-request-id: {crid}"]
    )  # fmt: skip
    assert r.exit_code == 0, r.stderr
    assert len(r.stdout.splitlines()) == 250
    sent = _graph_requests(emu)
    assert len(sent) == 3  # 100 + 100 + 50
    assert [e["client_request_id"] for e in sent] == [crid] * 3


def test_header_client_request_id_is_echoed_in_a_graph_error(emu: Any) -> None:
    crid = str(uuid.uuid4())
    r = run_cli(
        ["query", "users/00000000-0000-0000-0000-000000000000", "-H", f"client-request-id:{crid}"]
    )
    assert r.exit_code == ExitCode.NOT_FOUND
    # Graph's innerError carries the id the request was sent with: the one given by hand.
    assert f"client-request-id {crid}" in r.stderr
    assert _graph_requests(emu)[0]["client_request_id"] == crid


# ------------------------------------------------------------------ one connection per run


def test_all_pages_of_one_run_share_two_kept_alive_connections(emu: Any) -> None:
    r = run_cli(["query", "/users", "--all", "--top", "50", "--select", "id", "-o", "jsonl"])
    assert r.exit_code == 0, r.stderr
    assert len(r.stdout.splitlines()) == 250
    pages = _graph_requests(emu)
    assert len(pages) == 5
    # The client's port is the connection's identity: one requests.Session, kept alive.
    # Page N+1 is asked for while page N's items still arrive, so two connections take
    # turns, never a new one per page.
    assert len({e["peer_port"] for e in pages}) <= 2
