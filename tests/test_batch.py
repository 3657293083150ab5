"""`graphkit batch`: $batch fan-out with per-item retries (issue 13), against the
emulator through the real command (msal and requests, no mocks), and the concurrency
controller on its own."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from _time_helpers import FakeTime
from typer.testing import CliRunner

from graphkit.batch import MAX_BATCH, BatchItem, BatchRunner, parse_items
from graphkit.cli import app
from graphkit.errors import ExitCode, UsageError
from graphkit.retry import RetryPolicy

runner = CliRunner()


def _ids(emu: Any, n: int) -> list[str]:
    token = emu.issue_token()
    session = emu.session()
    body = session.get(
        f"{emu.graph_url}/v1.0/users",
        params={"$top": n, "$select": "id"},
        headers={"Authorization": f"Bearer {token}"},
    ).json()
    return [u["id"] for u in body["value"]]


def _lines(requests: list[dict[str, Any]]) -> str:
    return "".join(json.dumps(r) + "\n" for r in requests)


def _results(stdout: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stdout.splitlines() if line.strip()]


def _batches(emu: Any) -> list[dict[str, Any]]:
    return [r for r in emu.requests() if r["kind"] == "graph" and "$batch" in r["path"]]


# ---------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('{"method": "GET", "url": "/users"}\nnot json\n', "line 2 is not JSON"),
        ('{"url": "/users"}\n', "line 1 has no method"),
        ('{"method": "FETCH", "url": "/users"}\n', "line 1: method 'FETCH' is not one of"),
        ('{"method": "GET"}\n', "line 1 has no url"),
        ('{"method": "GET", "url": "https://evil.example/v1.0/users"}\n', "line 1: "),
        ('{"id": "a", "method": "GET", "url": "/me"}\n{"id": "a", "method": "GET", "url": "/x"}\n',
         "line 2: id 'a' is already used on line 1"),
        ('{"method": "GET", "url": "/me", "dependsOn": ["9"]}\n', "dependsOn '9' names no item"),
        ('{"method": "GET", "url": "/me", "headers": {"Authorization": "Bearer x"}}\n',
         "Authorization header"),
        ('{"method": "GET", "url": "//evil.example/v1.0/users"}\n', "line 1: "),
        # A $batch goes to one version: a beta request in a v1.0 batch would run as v1.0.
        ('{"method": "GET", "url": "/users"}\n{"method": "GET", "url": "/beta/users"}\n',
         "line 2: /beta/users is a beta request"),
    ],
)  # fmt: skip
def test_bad_input_is_refused_with_its_line_before_anything_is_sent(
    signed_in_env: Any, text: str, message: str
) -> None:
    emu = signed_in_env.emu
    emu.clear_requests()
    r = runner.invoke(app, ["batch", "-"], input=text)
    assert r.exit_code == ExitCode.USAGE, r.output
    assert message in r.stderr and r.stderr.count("\n") == 1
    assert "Traceback" not in r.output
    assert [e for e in emu.requests() if e["kind"] == "graph"] == []


def test_a_dependency_chain_longer_than_a_batch_is_refused() -> None:
    lines = [json.dumps({"id": "0", "method": "GET", "url": "/me"})]
    for n in range(1, MAX_BATCH + 1):
        lines.append(
            json.dumps({"id": str(n), "method": "GET", "url": "/me", "dependsOn": [str(n - 1)]})
        )
    with pytest.raises(UsageError, match=r"21 requests depend on each other"):
        parse_items(lines, "https://graph.microsoft.com")


def test_urls_become_relative_and_the_graph_host_is_allowed() -> None:
    items = parse_items(
        [
            '{"method": "get", "url": "users/1"}',
            '{"method": "GET", "url": "/v1.0/users/2?$select=id"}',
            '{"method": "GET", "url": "https://graph.microsoft.com/v1.0/users/3"}',
        ],
        "https://graph.microsoft.com",
    )
    assert [(i.method, i.url, i.id) for i in items] == [
        ("GET", "/users/1", "1"),
        ("GET", "/users/2?$select=id", "2"),
        ("GET", "/users/3", "3"),
    ]


# ---------------------------------------------------- against the emulator


def test_api_beta_sends_the_batch_to_beta(signed_in_env: Any) -> None:
    emu = signed_in_env.emu
    emu.clear_requests()
    text = _lines(
        [{"method": "GET", "url": "/beta/users?$top=1"}, {"method": "GET", "url": "users?$top=2"}]
    )
    r = runner.invoke(app, ["batch", "-", "--api", "beta"], input=text)
    assert r.exit_code == 0, r.output
    assert [len(x["body"]["value"]) for x in _results(r.stdout)] == [1, 2]
    assert [b["path"] for b in _batches(emu)] == ["/beta/$batch"]
    refused = runner.invoke(
        app,
        ["batch", "-", "--api", "beta"],
        input=_lines([{"method": "GET", "url": "/v1.0/users"}]),
    )
    assert refused.exit_code == ExitCode.USAGE
    assert "line 1: /v1.0/users is a v1.0 request" in refused.stderr


def test_every_item_is_answered_exactly_once_through_per_item_throttling(
    signed_in_env: Any,
) -> None:
    emu = signed_in_env.emu
    ids = _ids(emu, 200)
    emu.clear_requests()
    emu.add_fault(kind="429", endpoint="batch", every=7, retry_after=0)
    text = _lines([{"id": uid, "method": "GET", "url": f"/users/{uid}"} for uid in ids])
    # One batch in flight: which items the every-7th fault hits is then the same on every
    # run (with several, an unlucky item could be hit on all of its 5 attempts).
    r = runner.invoke(app, ["batch", "-", "--concurrency", "1"], input=text)
    assert r.exit_code == 0, r.stderr
    results = _results(r.stdout)
    assert sorted(x["id"] for x in results) == sorted(ids)  # each once, none lost
    assert all(x["status"] == 200 and x["body"]["id"] == x["id"] for x in results)
    fired = sum(f["injected"] for f in emu.faults())
    assert fired >= 200 // 7
    # Only the throttled items were sent again: items answered == 200 + retries.
    sent = sum(len(json.loads(b.get("body") or "{}").get("requests", [])) for b in _batches(emu))
    assert sent in (0, 200 + fired)  # 0 if the log keeps no bodies
    assert "200 requests in" in r.stderr and f"{fired} retries" in r.stderr


def test_ordered_output_follows_the_input(signed_in_env: Any) -> None:
    emu = signed_in_env.emu
    ids = _ids(emu, 45)
    emu.add_fault(kind="429", endpoint="batch", every=3, retry_after=0)
    text = _lines([{"id": uid, "method": "GET", "url": f"/users/{uid}"} for uid in ids])
    r = runner.invoke(app, ["batch", "-", "--ordered", "--concurrency", "1"], input=text)
    assert r.exit_code == 0, r.stderr
    assert [x["id"] for x in _results(r.stdout)] == ids


def test_a_failed_dependency_gives_424_and_the_exit_status_says_so(signed_in_env: Any) -> None:
    emu = signed_in_env.emu
    uid = _ids(emu, 1)[0]
    text = _lines(
        [
            {
                "id": "missing",
                "method": "GET",
                "url": "/users/00000000-0000-0000-0000-000000000000",
            },
            {"id": "after", "method": "GET", "url": f"/users/{uid}", "dependsOn": ["missing"]},
            {"id": "fine", "method": "GET", "url": f"/users/{uid}"},
        ]
    )
    r = runner.invoke(app, ["batch", "-", "--ordered"], input=text)
    assert r.exit_code == ExitCode.ERROR
    assert [(x["id"], x["status"]) for x in _results(r.stdout)] == [
        ("missing", 404),
        ("after", 424),
        ("fine", 200),
    ]
    assert "1 succeeded, 2 failed" in r.stderr


def test_a_throttled_dependency_is_retried_with_the_items_that_failed_because_of_it(
    signed_in_env: Any,
) -> None:
    emu = signed_in_env.emu
    first, second = _ids(emu, 2)
    emu.add_fault(kind="429", endpoint="batch", every=1, times=1, retry_after=0)
    text = _lines(
        [
            {"id": "a", "method": "GET", "url": f"/users/{first}"},
            {"id": "b", "method": "GET", "url": f"/users/{second}", "dependsOn": ["a"]},
        ]
    )
    r = runner.invoke(app, ["batch", "-", "--ordered"], input=text)
    assert r.exit_code == 0, r.stdout + r.stderr
    assert [(x["id"], x["status"]) for x in _results(r.stdout)] == [("a", 200), ("b", 200)]
    assert len(_batches(emu)) == 2


# ------------------------------------------------- concurrency, on its own


def test_concurrency_halves_on_throttling_and_grows_while_there_is_room() -> None:
    answers: list[str] = ["ok"] * 4 + ["429"] + ["ok"] * 6

    def post(body: dict[str, Any]) -> tuple[list[dict[str, Any]], Any]:
        kind = answers.pop(0) if answers else "ok"
        status = 429 if kind == "429" else 200
        responses = [
            {"id": r["id"], "status": status, "headers": {"Retry-After": "0"}, "body": {}}
            for r in body["requests"]
        ]
        return responses, {}

    limits: list[int] = []
    batch = BatchRunner(
        post, retry=RetryPolicy(sleep=lambda s: None), max_concurrency=8, start_concurrency=4
    )
    real = batch._settle

    def spy(*args: Any) -> Any:
        out = real(*args)
        limits.append(batch.concurrency.limit)
        return out

    batch._settle = spy  # type: ignore[method-assign]
    items = [BatchItem(line=n, id=str(n), method="GET", url="/me") for n in range(1, 241)]
    results = list(batch.run(items))
    assert sorted(int(r.id) for r in results) == list(range(1, 241))
    assert all(r.status == 200 for r in results)
    drop = limits.index(min(limits[:6]))
    assert limits[drop] < limits[drop - 1]  # halved on the 429
    assert max(limits) > limits[drop]  # and grew again while there was room


def test_dependency_shapes_graph_refuses_are_refused_with_the_line() -> None:
    def parse(*requests: dict[str, Any]) -> Any:
        return parse_items([json.dumps(r) for r in requests], "https://graph.microsoft.com")

    get = {"method": "GET", "url": "/me"}
    with pytest.raises(UsageError, match="line 3: a request may depend on one other only"):
        parse({**get, "id": "a"}, {**get, "id": "b"}, {**get, "id": "c", "dependsOn": ["a", "b"]})
    with pytest.raises(UsageError, match="in a shape Graph refuses"):
        parse(
            {**get, "id": "a"},
            {**get, "id": "b", "dependsOn": ["a"]},
            {**get, "id": "c", "dependsOn": ["b"]},
            {**get, "id": "d", "dependsOn": ["a"]},
        )
    chain = parse({**get, "id": "a"}, {**get, "id": "b", "dependsOn": ["a"]})
    fan = parse({**get, "id": "r"}, {**get, "id": "x", "dependsOn": ["r"]},
                {**get, "id": "y", "dependsOn": ["r"]})  # fmt: skip
    assert len(chain) == 2 and len(fan) == 3


def test_a_chain_travels_alone_beside_independent_requests(signed_in_env: Any) -> None:
    """Graph refuses a $batch mixing a chain with independent requests."""
    emu = signed_in_env.emu
    ids = _ids(emu, 12)
    emu.clear_requests()
    requests = [{"id": "a", "method": "GET", "url": f"/users/{ids[0]}"}]
    requests += [
        {"id": "b", "method": "GET", "url": f"/users/{ids[1]}", "dependsOn": ["a"]},
        {"id": "c", "method": "GET", "url": f"/users/{ids[2]}", "dependsOn": ["b"]},
    ]
    requests += [{"id": uid, "method": "GET", "url": f"/users/{uid}"} for uid in ids[3:]]
    r = runner.invoke(app, ["batch", "-", "--ordered"], input=_lines(requests))
    assert r.exit_code == 0, r.stdout + r.stderr
    assert [x["status"] for x in _results(r.stdout)] == [200] * 12
    assert len(_batches(emu)) == 2


def test_a_batch_file_larger_than_a_key_file_is_read(signed_in_env: Any, tmp_path: Path) -> None:
    """Thousands of requests make a file of megabytes (20,000 GETs: 1.6 MB): the 1 MiB
    bound of keys and certificates is not the bound of batch input."""
    emu = signed_in_env.emu
    [uid] = _ids(emu, 1)
    source = tmp_path / "requests.jsonl"
    padding = "# " + "x" * (1024 * 1024) + "\n"  # a comment line: skipped, not sent
    source.write_text(padding + _lines([{"method": "GET", "url": f"/users/{uid}"}]))
    r = runner.invoke(app, ["batch", str(source)])
    assert r.exit_code == 0, r.stderr
    assert [x["status"] for x in _results(r.stdout)] == [200]


def test_batch_input_beyond_its_bound_is_refused_before_anything_is_sent(
    signed_in_env: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from graphkit.cli import batch as batch_cli

    emu = signed_in_env.emu
    monkeypatch.setattr(batch_cli, "MAX_INPUT", 1000)
    text = _lines([{"method": "GET", "url": f"/users/{n}"} for n in range(40)])
    assert len(text) > 1000
    source = tmp_path / "requests.jsonl"
    source.write_text(text)
    emu.clear_requests()
    for args, stdin in ((["batch", "-"], text), (["batch", str(source)], None)):
        r = runner.invoke(app, args, input=stdin)
        assert r.exit_code == ExitCode.INPUT, r.output
        assert "is too large" in r.stderr and r.stderr.count("\n") == 1
    r = runner.invoke(app, ["batch", "-"], input=b'{"method": "GET", "url": "/users/\xff"}\n')
    assert r.exit_code == ExitCode.INPUT and "stdin is not UTF-8 text" in r.stderr, r.output
    assert emu.requests() == []


def _new_users(n: int) -> list[dict[str, Any]]:
    return [
        {
            "id": f"u{k}",
            "method": "POST",
            "url": "/users",
            "body": {
                "accountEnabled": True,
                "displayName": f"Batch {k}",
                "mailNickname": f"batch{k}",
                "userPrincipalName": f"batch{k}@contoso.onmicrosoft.com",
                "passwordProfile": {"password": "xWwvJ]6NMw+bWH-d"},
            },
        }
        for k in range(n)
    ]


def test_a_batch_of_writes_that_may_have_been_applied_loses_no_other_result(
    signed_in_env: Any,
) -> None:
    """The second of three $batch requests of POSTs meets a 503: it is not resent (its
    items may have been applied), and that is said per item; the first and third are
    answered and printed as usual, and the status is 10, naming the lines to check."""
    emu = signed_in_env.emu
    emu.grant(emu.default_app, "User.ReadWrite.All")
    emu.clear_requests()
    emu.add_fault("503", endpoint="graph", every=2, times=1, retry_after=0)
    r = runner.invoke(app, ["batch", "-", "--concurrency", "1"], input=_lines(_new_users(45)))
    assert r.exit_code == ExitCode.OUTCOME_UNKNOWN, r.stderr
    results = {x["id"]: x for x in _results(r.stdout)}
    assert sorted(results) == sorted(f"u{k}" for k in range(45))  # each once, none lost
    unknown = sorted((x for x in results.values() if x["status"] != 201), key=lambda x: x["id"])
    assert {x["id"] for x in unknown} == {f"u{k}" for k in range(20, 40)}
    assert all(x["status"] == 503 for x in unknown)
    assert all(x["body"]["error"]["code"] == "outcomeUnknown" for x in unknown)
    [line] = [ln for ln in r.stderr.splitlines() if ln.startswith("graphkit: error: ")]
    assert "20 requests may have been applied" in line and "lines 21-40" in line
    assert [b["status"] for b in _batches(emu)] == [200, 503, 200]
    created = [k for k in range(45) if emu.get_user(f"batch{k}@contoso.onmicrosoft.com")]
    assert created == [*range(20), *range(40, 45)]


@pytest.mark.parametrize("ordered", [False, True])
def test_a_batch_that_fails_as_a_whole_keeps_the_results_already_answered(
    signed_in_env: Any, ordered: bool
) -> None:
    """The second $batch is throttled beyond the retry cap (Retry-After 1000 s): the run
    stops with exit 8, and the first batch's answers are printed, --ordered too."""
    emu = signed_in_env.emu
    ids = _ids(emu, 45)
    emu.clear_requests()
    emu.add_fault("429", endpoint="graph", every=2, times=1, retry_after=1000)
    args = ["batch", "-", "--concurrency", "1", *(["--ordered"] if ordered else [])]
    r = runner.invoke(
        app, args, input=_lines([{"method": "GET", "url": f"/users/{u}"} for u in ids])
    )
    assert r.exit_code == ExitCode.THROTTLED, r.stderr
    assert [x["id"] for x in _results(r.stdout)] == [str(n) for n in range(1, 21)]
    assert [b["status"] for b in _batches(emu)] == [200, 429]  # the third never sent


def test_a_write_item_answered_503_is_not_resent_and_may_have_been_applied(
    signed_in_env: Any,
) -> None:
    """Inside a $batch as outside: 503/504 is retried for GET, PUT and DELETE only. A
    POST item answered 503 is not sent again (a second group of the same name would be
    a duplicate): it is reported as Graph answered it, and the run exits 10."""
    emu = signed_in_env.emu
    emu.grant(emu.default_app, "Group.ReadWrite.All")
    uid = _ids(emu, 1)[0]
    groups = [
        {
            "id": f"g{k}",
            "method": "POST",
            "url": "/groups",
            "body": {
                "displayName": f"Team {k}",
                "mailEnabled": False,
                "mailNickname": f"team{k}",
                "securityEnabled": True,
            },
        }
        for k in range(3)
    ]
    items = [groups[0], {"id": "read", "method": "GET", "url": f"/users/{uid}"}, *groups[1:]]
    emu.clear_requests()
    emu.add_fault("503", endpoint="batch", every=1, times=2, retry_after=0)
    r = runner.invoke(app, ["batch", "-", "--ordered", "--concurrency", "1"], input=_lines(items))
    assert r.exit_code == ExitCode.OUTCOME_UNKNOWN, r.stderr
    results = {x["id"]: x["status"] for x in _results(r.stdout)}
    assert results == {"g0": 503, "read": 200, "g1": 201, "g2": 201}
    assert len(_batches(emu)) == 2  # the GET alone went again
    [line] = [ln for ln in r.stderr.splitlines() if ln.startswith("graphkit: error: ")]
    assert "1 request may have been applied (line 1 of the input)" in line


# ------------------------------------- at the throttling budget (fake clock)


class _Budget:
    """A $batch endpoint with a resource budget of ``limit`` items per ``window``
    seconds (a sliding window, as the emulator's), on a fake clock: an item over the
    budget is answered 429 with the Retry-After that says when there is room again."""

    def __init__(self, clock: Any, limit: int, window: float) -> None:
        self.clock, self.limit, self.window = clock, limit, window
        self.spent: list[float] = []
        self.posts: list[tuple[float, int, float]] = []  # (time, refused, longest wait)

    def post(self, body: dict[str, Any]) -> tuple[list[dict[str, Any]], Any]:
        now = self.clock()
        self.spent = [t for t in self.spent if t > now - self.window]
        responses: list[dict[str, Any]] = []
        refused, longest = 0, 0.0
        for request in body["requests"]:
            if len(self.spent) < self.limit:
                self.spent.append(now)
                responses.append({"id": request["id"], "status": 200, "body": {}})
            else:
                refused += 1
                after = max(self.spent[len(self.spent) - self.limit] + self.window - now, 0.001)
                longest = max(longest, after)
                responses.append(
                    {"id": request["id"], "status": 429, "body": {},
                     "headers": {"Retry-After": f"{after:.3f}"}}
                )  # fmt: skip
        self.posts.append((now, refused, round(longest, 3)))
        return responses, {}


def test_at_the_budget_every_item_succeeds_and_nothing_is_sent_during_a_retry_after() -> None:
    fake = FakeTime()
    budget = _Budget(fake.clock, limit=100, window=1.0)
    runner_ = BatchRunner(
        budget.post, retry=RetryPolicy(sleep=fake.sleep, clock=fake.clock), max_concurrency=1,
        start_concurrency=1,
    )  # fmt: skip
    items = [BatchItem(line=n, id=str(n), method="GET", url="/me") for n in range(1, 1001)]
    results = list(runner_.run(items))
    # Graph: "If the request fails again with a 429 error code, you are still being
    # throttled. Continue to use the recommended Retry-After delay and retry the request
    # until it succeeds" (throttling.md): no item is given up after 5 tries.
    assert sorted(int(r.id) for r in results) == list(range(1, 1001))
    assert all(r.status == 200 for r in results)
    # After a throttled answer, nothing at all is sent before its Retry-After has passed.
    assert any(refused for _, refused, _ in budget.posts)
    for (t0, refused, wait), (t1, _, _) in zip(budget.posts, budget.posts[1:], strict=False):
        if refused:
            assert t1 >= t0 + wait - 1e-9
    # And the budget is used: 1,000 items at 100 per second take about 9 s (the first
    # window's 100 go at once), not much more.
    assert fake.t - FakeTime().t <= 9.0 * 1.1
