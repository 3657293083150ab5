"""Faults happen exactly as configured, and the request log counts them."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
import requests
from _emulator_helpers import admin, graph, identity, msal_app, no_ca_env, pem_credential

USERS = "/v1.0/users?$top=1"

# msal is given verify=emu.ca_bundle, which REQUESTS_CA_BUNDLE would override.
_no_ca_env = pytest.fixture(autouse=True)(no_ca_env)


@pytest.fixture
def emu(graphkit_emulator: Any) -> Any:
    return graphkit_emulator


@pytest.fixture
def token(emu: Any) -> str:
    return str(emu.issue_token())


def _faulted(emu: Any, kind: str | None = None) -> list[dict[str, Any]]:
    return [e for e in emu.requests() if e["fault"] is not None and kind in (None, e["fault"])]


def test_every_third_graph_request_is_throttled(emu: Any, token: str) -> None:
    fault_id = emu.add_fault(kind="429", endpoint="graph", every=3, retry_after=1.5)
    answers = [graph(emu, USERS, token) for _ in range(9)]
    assert [r.status_code for r in answers] == [200, 200, 429] * 3
    throttled = answers[2]
    assert throttled.headers["Retry-After"] == "1.5"
    error = throttled.json()["error"]
    assert error["code"] == "TooManyRequests"
    assert set(error["innerError"]) == {"date", "request-id", "client-request-id"}
    assert len(_faulted(emu, "429")) == 3
    assert [e["status"] for e in _faulted(emu)] == [429, 429, 429]
    (info,) = emu.faults()
    assert (info["id"], info["matched"], info["injected"]) == (fault_id, 9, 3)


def test_whole_second_retry_after_and_times(emu: Any, token: str) -> None:
    emu.add_fault(kind="503", endpoint="graph", every=1, times=2, retry_after=2)
    answers = [graph(emu, USERS, token) for _ in range(4)]
    assert [r.status_code for r in answers] == [503, 503, 200, 200]
    assert answers[0].headers["Retry-After"] == "2"
    assert answers[0].json()["error"]["code"] == "serviceNotAvailable"
    emu.clear_faults()
    emu.add_fault(kind="504", endpoint="graph", every=2)
    answers = [graph(emu, USERS, token) for _ in range(4)]
    assert [r.status_code for r in answers] == [200, 504, 200, 504]
    assert "Retry-After" not in answers[1].headers  # none configured: clients back off


def test_graph_faults_spare_the_token_endpoint_and_vice_versa(emu: Any, tmp_path: Path) -> None:
    ident = identity(tmp_path)
    emu.upload_certificate(emu.default_app, ident.cert)
    emu.add_fault(kind="503", endpoint="graph", every=1)
    app = msal_app(emu, emu.default_app.client_id, pem_credential(ident))
    token = app.acquire_token_for_client([emu.graph_scope])["access_token"]
    assert graph(emu, USERS, token).status_code == 503
    emu.clear_faults()
    emu.add_fault(kind="503", endpoint="token", every=1)
    assert graph(emu, USERS, token).status_code == 200
    kinds = [(e["kind"], e["status"]) for e in emu.requests()]
    assert kinds == [("discovery", 200), ("token", 200), ("graph", 503), ("graph", 200)]


def test_token_endpoint_429_is_honoured_by_msal(emu: Any, tmp_path: Path) -> None:
    ident = identity(tmp_path)
    emu.upload_certificate(emu.default_app, ident.cert)
    emu.add_fault(kind="429", endpoint="token", every=1, times=1, retry_after=30)
    app = msal_app(emu, emu.default_app.client_id, pem_credential(ident))
    first = app.acquire_token_for_client([emu.graph_scope])
    assert first["error"] == "temporarily_unavailable"
    # msal keeps the 429 for Retry-After seconds and does not ask again.
    second = app.acquire_token_for_client([emu.graph_scope])
    assert second["error"] == "temporarily_unavailable"
    assert [e["status"] for e in emu.requests() if e["kind"] == "token"] == [429]
    # A fresh app asks again, and the fault (times=1) is spent.
    fresh = msal_app(emu, emu.default_app.client_id, pem_credential(ident))
    assert "access_token" in fresh.acquire_token_for_client([emu.graph_scope])


def test_connection_reset(emu: Any, token: str) -> None:
    emu.add_fault(kind="reset", endpoint="graph", every=2)
    assert graph(emu, USERS, token).status_code == 200
    with pytest.raises(requests.exceptions.ConnectionError):
        graph(emu, USERS, token)
    assert graph(emu, USERS, token).status_code == 200
    (reset,) = _faulted(emu, "reset")
    assert reset["status"] is None


def test_truncated_body(emu: Any, token: str) -> None:
    emu.add_fault(kind="truncate", endpoint="graph", every=1, times=1)
    with pytest.raises(requests.exceptions.RequestException):
        graph(emu, "/v1.0/users?$top=50", token)
    assert graph(emu, "/v1.0/users?$top=50", token).status_code == 200
    (cut,) = _faulted(emu, "truncate")
    assert cut["status"] == 200


def test_truncated_token_answer_breaks_msal(emu: Any, tmp_path: Path) -> None:
    ident = identity(tmp_path)
    emu.upload_certificate(emu.default_app, ident.cert)
    emu.add_fault(kind="truncate", endpoint="token", every=1, times=1)
    app = msal_app(emu, emu.default_app.client_id, pem_credential(ident))
    with pytest.raises(requests.exceptions.RequestException):
        app.acquire_token_for_client([emu.graph_scope])
    (cut,) = _faulted(emu, "truncate")
    assert cut["kind"] == "token"


def test_added_latency(emu: Any, token: str) -> None:
    emu.add_fault(kind="latency", endpoint="graph", every=1, delay=0.2)
    start = time.monotonic()
    assert graph(emu, USERS, token).status_code == 200
    assert time.monotonic() - start >= 0.2  # a lower bound: noise only adds
    assert _faulted(emu, "latency")[0]["status"] == 200


def test_latency_stacks_with_another_fault(emu: Any, token: str) -> None:
    emu.add_fault(kind="latency", endpoint="any", every=1, delay=0.01)
    emu.add_fault(kind="429", endpoint="graph", every=1, times=1)
    assert graph(emu, USERS, token).status_code == 429
    assert graph(emu, USERS, token).status_code == 200
    assert [f["injected"] for f in emu.faults()] == [2, 1]


def _pattern(seed: int) -> list[int]:
    from graphkit.emulator import Emulator

    with Emulator(users=5) as emu:
        emu.add_fault(kind="503", endpoint="graph", probability=0.5, seed=seed)
        token = emu.issue_token()
        statuses = [graph(emu, USERS, token).status_code for _ in range(30)]
        assert len(_faulted(emu)) == statuses.count(503) == emu.faults()[0]["injected"]
        return statuses


def test_seeded_probability_is_reproducible() -> None:
    first, again, other = _pattern(7), _pattern(7), _pattern(8)
    assert first == again
    assert 0 < first.count(503) < 30
    assert first != other


def test_any_covers_discovery_and_token_but_not_admin(emu: Any, token: str) -> None:
    emu.add_fault(kind="503", endpoint="any", every=1)
    config = requests.get(
        f"{emu.authority()}/v2.0/.well-known/openid-configuration", verify=emu.ca_bundle, timeout=30
    )
    assert config.status_code == 503
    assert config.json()["error"] == "temporarily_unavailable"
    assert graph(emu, USERS, token).status_code == 503
    assert admin(emu, "GET", "/requests").status_code == 200


def test_faults_through_the_admin_api(emu: Any, token: str) -> None:
    r = admin(
        emu,
        "POST",
        "/faults",
        json={"kind": "429", "endpoint": "graph", "every": 2, "retry_after": 0.25},
    )
    assert r.status_code == 201
    fault_id = r.json()["id"]
    statuses = [graph(emu, USERS, token).status_code for _ in range(4)]
    assert statuses == [200, 429, 200, 429]
    listed = admin(emu, "GET", "/faults").json()["faults"]
    assert [(f["id"], f["injected"], f["retry_after"]) for f in listed] == [(fault_id, 2, 0.25)]
    assert admin(emu, "DELETE", f"/faults/{fault_id}").status_code == 204
    assert admin(emu, "GET", "/faults").json()["faults"] == []
    assert admin(emu, "DELETE", f"/faults/{fault_id}").status_code == 404
    log = admin(emu, "GET", "/requests").json()["requests"]
    assert sum(1 for e in log if e["fault"] == "429") == 2


def test_batch_items_throttled_one_by_one(emu: Any, token: str) -> None:
    emu.add_fault(kind="429", endpoint="batch", every=2, retry_after=3)
    items = [{"id": str(i), "method": "GET", "url": "/users?$top=1"} for i in range(1, 5)]
    r = graph(emu, "/v1.0/$batch", token, method="POST", json={"requests": items})
    assert r.status_code == 200  # the batch itself is fine; items carry their own status
    by_id = {x["id"]: x for x in r.json()["responses"]}
    assert [by_id[str(i)]["status"] for i in range(1, 5)] == [200, 429, 200, 429]
    assert by_id["2"]["headers"]["Retry-After"] == "3"
    assert emu.faults()[0]["injected"] == 2
    assert _faulted(emu) == []  # no HTTP request was faulted
    assert graph(emu, USERS, token).status_code == 200


@pytest.mark.parametrize(
    "bad",
    [
        {"kind": "418", "every": 1},
        {"kind": "429"},
        {"kind": "429", "every": 1, "probability": 0.5},
        {"kind": "429", "every": 0},
        {"kind": "429", "every": 1, "endpoint": "admin"},
        {"kind": "reset", "every": 1, "endpoint": "batch"},
        {"kind": "latency", "every": 1},
        {"kind": "429", "every": 1, "colour": "red"},
    ],
)
def test_bad_fault_configuration_is_refused(emu: Any, bad: dict[str, Any]) -> None:
    r = admin(emu, "POST", "/faults", json=bad)
    assert r.status_code == 400
    assert r.json()["error"]
    with pytest.raises((ValueError, TypeError)):
        emu.add_fault(**bad)
