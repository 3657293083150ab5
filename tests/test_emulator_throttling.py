"""The emulator's throttling budget (identity and access service limits), on its own clock.

Windows in the HTTP tests are long (an hour) so that the test's own run time can never
slide them; ``emu.advance`` moves the clock instead of sleeping.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from _emulator_helpers import admin, graph, serving

HOUR = 3600.0


@pytest.fixture
def emu(graphkit_emulator: Any) -> Any:
    graphkit_emulator.token_lifetime = int(4 * HOUR)  # tokens outlive the clock's moves
    return graphkit_emulator


@pytest.fixture
def token(emu: Any) -> str:
    return str(emu.issue_token())


def _batch(emu: Any, token: str, items: list[dict[str, Any]]) -> Any:
    return graph(emu, "/v1.0/$batch", token, method="POST", json={"requests": items})


def test_off_by_default(emu: Any, token: str) -> None:
    r = graph(emu, "/v1.0/users", token)
    assert r.status_code == 200
    assert not any(h.lower().startswith("x-ms-resource-unit") for h in r.headers)
    assert emu.throttle_stats()["budget"] == "off"
    assert emu.info()["throttling"] == {"budget": "off", "window": 10.0}


@pytest.mark.parametrize(
    ("path", "units"),
    [
        ("/v1.0/users", 2),
        ("/v1.0/users?$select=id", 1),
        ("/v1.0/users?$top=5", 1),
        ("/v1.0/users?$top=20", 2),
        ("/v1.0/users?$expand=manager", 3),
        ("/v1.0/users?$select=id&$top=5", 1),  # never below 1
        ("/v1.0/users/delta", 1),
        ("/v1.0/groups", 1),
        ("/v1.0/organization", 1),
    ],
)
def test_each_answer_carries_its_cost(emu: Any, token: str, path: str, units: int) -> None:
    emu.grant(emu.default_app, "Directory.Read.All")
    token = str(emu.issue_token())
    emu.set_throttle("large")
    r = graph(emu, path, token)
    assert r.status_code == 200, r.text
    assert r.headers["x-ms-resource-unit"] == str(units)
    assert "x-ms-throttle-limit-percentage" not in r.headers  # far below 0.8


def test_a_user_lookup_and_a_write_cost_one(emu: Any) -> None:
    writer = emu.create_app(roles=["User.ReadWrite.All"])
    token = str(emu.issue_token(writer))
    emu.set_throttle("small")
    user = graph(emu, "/v1.0/users?$top=1", token).json()["value"][0]
    assert graph(emu, f"/v1.0/users/{user['id']}", token).headers["x-ms-resource-unit"] == "1"
    patch = graph(emu, f"/v1.0/users/{user['id']}", token, method="PATCH", json={"jobTitle": "x"})
    assert (patch.status_code, patch.headers["x-ms-resource-unit"]) == (204, "1")
    missing = graph(emu, "/v1.0/users/nobody@contoso.onmicrosoft.com", token)
    assert (missing.status_code, missing.headers["x-ms-resource-unit"]) == (404, "1")


def test_over_the_budget_is_429_with_retry_after_until_the_window_moves(
    emu: Any, token: str
) -> None:
    emu.set_throttle(10, window=HOUR)
    answers = [graph(emu, "/v1.0/users", token) for _ in range(5)]  # 2 RU each: 10 RU
    assert [a.status_code for a in answers] == [200] * 5
    assert "x-ms-throttle-limit-percentage" not in answers[3].headers  # 8/10 is not above
    assert answers[4].headers["x-ms-throttle-limit-percentage"] == "1.00"
    r = graph(emu, "/v1.0/users", token)
    assert r.status_code == 429
    assert r.json()["error"]["code"] == "Request_ThrottledTemporarily"
    assert 0 < float(r.headers["Retry-After"]) <= HOUR
    app, tenant = emu.default_app.client_id, emu.default_tenant.id
    assert r.headers["x-ms-throttle-scope"] == f"Tenant_Application/ReadWrite/{app}/{tenant}"
    assert r.headers["x-ms-throttle-information"] == "ResourceUnitLimitExceeded"
    # A cheaper request that still fits is not refused; a refused one is not charged.
    assert graph(emu, "/v1.0/users?$select=id", token).status_code == 429
    stats = emu.throttle_stats()
    assert (stats["charged"], stats["throttled"]) == (5, 2)
    assert stats["usage"] == [
        {"client_id": app, "tenant_id": tenant, "used": 10, "limit": 10, "window": HOUR}
    ]
    emu.advance(float(r.headers["Retry-After"]))
    assert graph(emu, "/v1.0/users", token).status_code == 200


def test_the_window_slides(emu: Any, token: str) -> None:
    emu.set_throttle(4, window=HOUR)
    assert graph(emu, "/v1.0/users", token).status_code == 200  # t=0, 2 RU
    emu.advance(HOUR / 2)
    assert graph(emu, "/v1.0/users", token).status_code == 200  # t=H/2, 4 RU in the window
    r = graph(emu, "/v1.0/users", token)
    assert r.status_code == 429
    # The first request's units come free H after it, about H/2 from now.
    assert HOUR / 2 - 60 < float(r.headers["Retry-After"]) <= HOUR / 2
    emu.advance(HOUR / 2)
    assert graph(emu, "/v1.0/users", token).status_code == 200
    assert graph(emu, "/v1.0/users", token).status_code == 429  # the second is still in


def test_the_budget_is_per_app_and_tenant(emu: Any, token: str) -> None:
    emu.set_throttle(2, window=HOUR)
    assert graph(emu, "/v1.0/users", token).status_code == 200
    assert graph(emu, "/v1.0/users", token).status_code == 429
    other = str(emu.issue_token(emu.create_app(roles=["User.Read.All"])))
    assert graph(emu, "/v1.0/users", other).status_code == 200


def test_batch_items_are_charged_and_throttled_one_by_one(emu: Any, token: str) -> None:
    ids = [u["id"] for u in graph(emu, "/v1.0/users?$top=5&$select=id", token).json()["value"]]
    emu.set_throttle(3, window=HOUR)
    r = _batch(emu, token, [{"id": str(i), "method": "GET", "url": f"/users/{u}"} for i, u in
                            enumerate(ids)])  # fmt: skip
    assert r.status_code == 200
    responses = sorted(r.json()["responses"], key=lambda x: int(x["id"]))
    assert [x["status"] for x in responses] == [200, 200, 200, 429, 429]
    assert all(x["headers"]["x-ms-resource-unit"] == "1" for x in responses)
    for item in responses[3:]:
        assert 0 < float(item["headers"]["Retry-After"]) <= HOUR
        assert item["headers"]["x-ms-throttle-scope"].startswith("Tenant_Application/")
        assert item["body"]["error"]["code"] == "Request_ThrottledTemporarily"
    assert responses[2]["headers"]["x-ms-throttle-limit-percentage"] == "1.00"
    # Retried alone after its Retry-After, a throttled item succeeds.
    emu.advance(float(responses[3]["headers"]["Retry-After"]))
    again = _batch(emu, token, [{"id": "3", "method": "GET", "url": f"/users/{ids[3]}"}])
    assert again.json()["responses"][0]["status"] == 200


@pytest.mark.parametrize(
    ("users", "budget", "limit"),
    [
        (10, "auto", 3500),
        (250, "auto", 5000),
        (600, "auto", 8000),
        (10, "large", 8000),
        (10, "medium", 5000),
    ],
)
def test_sizes_are_the_documented_ones(users: int, budget: str, limit: int) -> None:
    from graphkit.emulator import Emulator

    with Emulator(users=users, throttle=budget) as emu:
        graph(emu, "/v1.0/users", str(emu.issue_token()))
        assert emu.throttle_stats()["usage"][0]["limit"] == limit
        assert emu.throttle_stats()["usage"][0]["window"] == 10.0


def test_write_quota_is_3000_per_150_seconds() -> None:
    from graphkit.emulator.throttle import ThrottleBudget

    now = [1000.0]
    budget = ThrottleBudget(lambda: now[0], "large")
    args = {"client_id": "a", "tenant_id": "t", "users": 10, "path": "users/x", "query": {}}
    for i in range(3000):
        budget.charge(method="PATCH", **args)
        if i % 700 == 699:
            now[0] += 10.0  # keep under the RU window's 8,000 per 10 s
    with pytest.raises(Exception) as caught:
        budget.charge(method="DELETE", **args)
    err: Any = caught.value
    assert err.status == 429
    assert err.headers["x-ms-throttle-scope"] == "Tenant_Application/Write/a/t"
    assert err.headers["x-ms-throttle-information"] == "WriteLimitExceeded"
    assert budget.charge(method="GET", **args) is not None  # reads still pass
    now[0] += 150.0
    assert budget.charge(method="DELETE", **args) is not None


def test_admin_api_sets_and_reports_the_budget(emu: Any, token: str) -> None:
    assert admin(emu, "GET", "/throttling").json()["budget"] == "off"
    r = admin(emu, "PUT", "/throttling", json={"budget": 4, "window": HOUR})
    assert r.status_code == 200 and r.json()["budget"] == 4
    graph(emu, "/v1.0/users", token)
    graph(emu, "/v1.0/users", token)
    assert graph(emu, "/v1.0/users", token).status_code == 429
    report = admin(emu, "GET", "/throttling").json()
    assert (report["charged"], report["throttled"], report["usage"][0]["used"]) == (2, 1, 4)
    assert admin(emu, "PUT", "/throttling", json={"budget": "huge"}).status_code == 400
    assert admin(emu, "PUT", "/throttling", json={"window": 0}).status_code == 400
    assert admin(emu, "PUT", "/throttling", json={"budget": "off"}).json()["budget"] == "off"
    assert graph(emu, "/v1.0/users", token).status_code == 200


def test_serve_takes_a_throttle_option() -> None:
    with serving("--json", "--users", "5", "--throttle", "small") as proc:
        assert proc.stdout is not None
        info = json.loads(proc.stdout.readline())
        assert info["throttling"] == {"budget": "small", "window": 10.0}


def test_a_bad_throttle_option_is_a_one_line_input_error() -> None:
    from typer.testing import CliRunner

    from graphkit.cli import app

    result = CliRunner().invoke(app, ["emulator", "serve", "--throttle", "lots"])
    assert result.exit_code == 3
    assert result.stderr.startswith("graphkit: error: --throttle lots")
    assert len(result.stderr.strip().splitlines()) == 1
