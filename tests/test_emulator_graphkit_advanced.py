"""graphkit itself against Graph's advanced-query rule: for every advanced query it
recognises, `graphkit query` (and GraphClient) must send BOTH `ConsistencyLevel: eventual`
and `$count=true` (aad-advanced-queries.md), or Graph answers 400. The emulator refuses
what Graph refuses, so a 200 here is the proof that both went out."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from _auth_helpers import clean_env, emulator_env, make_identity
from _onboarding_helpers import run_cli


@pytest.fixture
def emu(graphkit_emulator: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    home = clean_env(monkeypatch, tmp_path / "home")
    monkeypatch.setenv("NO_COLOR", "1")
    ident = make_identity(tmp_path / "ident")
    graphkit_emulator.upload_certificate(graphkit_emulator.default_app, ident.cert)
    for name, value in emulator_env(graphkit_emulator, ident.combined, home).items():
        monkeypatch.setenv(name, value)
    return graphkit_emulator


def _graph_requests(emu: Any) -> list[dict[str, Any]]:
    return [e for e in emu.requests() if e["kind"] == "graph"]


def _query_of(entry: dict[str, Any]) -> dict[str, list[str]]:
    return parse_qs(urlsplit(entry["target"]).query)


@pytest.mark.parametrize(
    "flags",
    [
        # The case the issue names: startswith + --orderby (no ne/not/endsWith at all).
        ["--filter", "startswith(displayName,'A')", "--orderby", "displayName"],
        ["--filter", "accountEnabled ne true"],
        ["--filter", "not(accountEnabled eq true)"],
        ["--filter", "endswith(mail,'.onmicrosoft.com')"],
    ],
)
def test_advanced_queries_get_count_true_and_succeed(emu: Any, flags: list[str]) -> None:
    r = run_cli(["query", "/users", *flags, "--select", "displayName,id", "--all", "-o", "jsonl"])
    assert r.exit_code == 0, r.stderr
    sent = _graph_requests(emu)
    assert sent and all(e["status"] == 200 for e in sent)
    assert _query_of(sent[0])["$count"] == ["true"]
    # Graph's total comes back, and graphkit reports it on stderr.
    assert "items in total (@odata.count)" in r.stderr
    assert r.stdout.strip()


def test_a_plain_query_gets_no_count(emu: Any) -> None:
    r = run_cli(["query", "/users", "--filter", "accountEnabled eq true", "-o", "json"])
    assert r.exit_code == 0, r.stderr
    [sent] = _graph_requests(emu)
    assert "$count" not in _query_of(sent)
    assert "@odata.count" not in r.stderr


def test_count_segment_gets_only_the_header(emu: Any) -> None:
    r = run_cli(["query", "/users/$count", "-o", "json"])
    assert r.exit_code == 0, r.stderr
    assert r.stdout.strip() == "250"
    [sent] = _graph_requests(emu)
    assert "$count" not in _query_of(sent)


def test_an_explicit_count_false_is_kept(emu: Any) -> None:
    # What the caller set is never overridden: Graph then refuses, as it would.
    from graphkit.graph import advanced_query

    params, headers = advanced_query(
        f"{emu.graph_url}/v1.0/users", {"$filter": "accountEnabled ne true", "$count": "false"}, {}
    )
    assert params["$count"] == "false"
    assert headers == {"ConsistencyLevel": "eventual"}
    params, headers = advanced_query(
        f"{emu.graph_url}/v1.0/users", {"$filter": "accountEnabled eq true"}, {"X": "1"}
    )
    assert params == {"$filter": "accountEnabled eq true"} and headers == {"X": "1"}
