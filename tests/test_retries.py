"""What the README promises about retries, with the waits themselves observed.

"Throttling (429) and transient failures (503, 504, dropped connections) are retried,
honouring Retry-After (fractional seconds too) or backing off exponentially with jitter
(5 attempts, at most 120 s per request)". GraphClient takes its ``sleep`` and clocks as
arguments: here a fake time that moves only when slept, so every test sees exactly
what was slept (not only what was announced), and nothing really waits. The numbers
(5, 120) are read from the README, not from graphkit's constants.
"""

from __future__ import annotations

import email.utils
import re
from collections.abc import Callable
from typing import Any

import pytest
from _onboarding_helpers import run_cli
from _readme import readme_text
from _scripted_server import FakeCredential, Scripted, Seen
from _time_helpers import FakeTime
from conftest import SignedIn

from graphkit.errors import NetworkError, ThrottledError
from graphkit.graph import GraphClient

_PROMISE = re.search(
    r"\((\d+)\s+attempts, at most (\d+) s per request\)", " ".join(readme_text().split())
)
assert _PROMISE, "the README no longer states the retry budget"
README_ATTEMPTS, README_CAP = int(_PROMISE.group(1)), float(_PROMISE.group(2))


def _client(url: str, t: FakeTime, **kw: Any) -> GraphClient:
    return GraphClient(url, FakeCredential(), sleep=t.sleep, clock=t.clock, now=t.clock, **kw)


def _error(code: str) -> dict[str, Any]:
    return {"error": {"code": code, "message": "emulated", "innerError": {}}}


def test_every_announced_wait_is_really_slept(server_factory: Callable[[], Scripted]) -> None:
    srv = server_factory()
    srv.script = [
        (429, {"Retry-After": "0.25"}, _error("TooManyRequests")),
        (503, {"Retry-After": "3"}, _error("serviceNotAvailable")),
        (504, {}, b"gateway timeout"),
    ]
    t = FakeTime()
    announced: list[float] = []
    with _client(srv.url, t, on_wait=lambda s, why: announced.append(s)) as c:
        assert c.get("/users") == {"value": []}
    assert len(srv.seen) == 4
    assert t.slept == announced  # what stderr says is what happens
    assert t.slept[:2] == [0.25, 3.0]  # Retry-After honoured, fraction included
    assert 2.0 <= t.slept[2] <= 4.0  # no Retry-After on the third try: 4 s, jittered


def test_backoff_doubles_and_each_wait_is_jittered(server_factory: Callable[[], Scripted]) -> None:
    srv = server_factory()
    srv.default = lambda req: (503, {}, _error("serviceNotAvailable"))
    factors: list[float] = []
    for _ in range(10):
        t = FakeTime()
        with _client(srv.url, t, max_total_wait=10_000) as c, pytest.raises(ThrottledError):
            c.get("/users")
        assert len(t.slept) == README_ATTEMPTS - 1
        # Exponential: 1, 2, 4, 8 s before jitter; jitter keeps each in [half, whole].
        factors += [wait / 2**i for i, wait in enumerate(t.slept)]
    assert all(0.5 <= f <= 1.0 for f in factors), factors
    # Jitter spreads clients out: 40 draws from [0.5, 1] are not all one value (the
    # chance that they span less than half the interval is below 1e-10).
    assert max(factors) - min(factors) > 0.25, factors


def test_a_request_waits_at_most_the_documented_cap(
    server_factory: Callable[[], Scripted],
) -> None:
    srv = server_factory()
    srv.default = lambda req: (429, {"Retry-After": "50"}, _error("TooManyRequests"))
    t = FakeTime()
    with _client(srv.url, t) as c, pytest.raises(ThrottledError) as info:  # the defaults
        c.get("/users")
    # 50 + 50 s fit in 120 s; a third 50 s would not: graphkit gives up instead of waiting.
    assert t.slept == [50.0, 50.0]
    assert sum(t.slept) <= README_CAP
    assert len(srv.seen) == 3
    assert f"the {README_CAP:g} s cap" in str(info.value)


def test_the_documented_number_of_attempts(server_factory: Callable[[], Scripted]) -> None:
    srv = server_factory()
    srv.default = lambda req: (429, {"Retry-After": "1"}, _error("TooManyRequests"))
    t = FakeTime()
    with _client(srv.url, t) as c, pytest.raises(ThrottledError) as info:
        c.get("/users")
    assert len(srv.seen) == README_ATTEMPTS
    assert t.slept == [1.0] * (README_ATTEMPTS - 1)
    assert f"after {README_ATTEMPTS} attempts" in str(info.value)


# A date already past gives no usable wait (issue 10: it made five immediate retries):
# the first backoff applies, 1 s times a jitter factor in [0.5, 1).
@pytest.mark.parametrize(
    ("offset", "expected"), [(7, (7.0, 7.0)), (-30, (0.5, 1.0))], ids=["ahead", "past"]
)
def test_retry_after_as_an_http_date(
    server_factory: Callable[[], Scripted], offset: int, expected: tuple[float, float]
) -> None:
    t = FakeTime()

    def answer(req: Seen) -> tuple[int, dict[str, str], Any]:
        when = email.utils.formatdate(t.clock() + offset, usegmt=True)  # RFC 9110 form
        return 503, {"Retry-After": when}, _error("serviceNotAvailable")

    srv = server_factory()
    srv.script = [answer]
    with _client(srv.url, t) as c:
        assert c.get("/users") == {"value": []}
    low, high = expected
    assert len(t.slept) == 1 and low <= t.slept[0] <= high


def test_a_read_timeout_is_retried_then_a_network_error(signed_in_env: SignedIn) -> None:
    emu = signed_in_env.emu
    emu.add_fault("latency", endpoint="graph", every=1, delay=5.0)  # 50 x the read timeout
    t = FakeTime()
    with (
        GraphClient.from_env(timeout=(10.0, 0.1), sleep=t.sleep, clock=t.clock) as c,
        pytest.raises(NetworkError) as info,
    ):
        c.get("/users")
    assert info.value.exit_code == 9
    assert "ReadTimeout" in str(info.value)
    # The fault fired on every try (its counter: the log records a request only once it
    # is answered, after the delay), and there were the documented number of tries.
    [fault] = emu.faults()
    assert fault["kind"] == "latency"
    assert fault["matched"] == fault["injected"] == README_ATTEMPTS
    assert len(t.slept) == README_ATTEMPTS - 1


def test_504_until_retries_run_out_exits_8(signed_in_env: SignedIn) -> None:
    emu = signed_in_env.emu
    emu.add_fault("504", endpoint="graph", every=1, retry_after=0)
    r = run_cli(["query", "/users", "-o", "json"])
    assert r.exit_code == 8, r.stderr
    assert r.stdout == ""
    last = r.stderr.strip().splitlines()[-1]
    assert last.startswith("graphkit: error: ") and "504" in last
    graph_calls = [e for e in emu.requests() if e["kind"] == "graph"]
    assert [(e["status"], e["fault"]) for e in graph_calls] == [(504, "504")] * README_ATTEMPTS
