"""`graphkit doctor` against the emulator: a healthy profile, then each planted fault."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest
from _onboarding_helpers import clean_env, init_request, run_cli
from _readme import readme_table

from graphkit import crypto, doctor, onboarding
from graphkit.files import PRIVATE, PUBLIC, atomic_write


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    return clean_env(monkeypatch, tmp_path / "home")


@pytest.fixture
def profile(graphkit_emulator: Any, home: Path) -> onboarding.InitResult:
    """A complete profile "work" whose certificate is uploaded to the default app."""
    emu = graphkit_emulator
    result = onboarding.run_init(init_request(emu))
    emu.upload_certificate(emu.default_app.client_id, result.credentials.cert_path.read_bytes())
    return result


def _doctor(*args: str) -> tuple[int, dict[str, Any], str]:
    run = run_cli(["doctor", "--profile", "work", "--json", *args])
    report = run.json()
    statuses = {c["name"]: c["status"] for c in report["checks"]}
    return run.exit_code, {"report": report, "status": statuses}, run.stderr


def _check(report: dict[str, Any], name: str) -> dict[str, Any]:
    found: dict[str, Any] = next(c for c in report["report"]["checks"] if c["name"] == name)
    return found


def _replace_pair(result: onboarding.InitResult, key: Any, cert: Any) -> None:
    atomic_write(
        result.credentials.key_path, crypto.dump_private_key(key), mode=PRIVATE, force=True
    )
    atomic_write(
        result.credentials.cert_path, crypto.dump_certificate(cert), mode=PUBLIC, force=True
    )


def test_healthy_profile_passes_everything(profile: onboarding.InitResult) -> None:
    code, rep, _ = _doctor()
    assert code == 0
    assert rep["report"]["ok"] is True
    # In the README's order (its table, read independently of doctor.CHECKS).
    assert list(rep["status"]) == readme_table("check", "### When something stops working")
    assert set(rep["status"].values()) == {"pass"}, rep
    assert "User.Read.All" in _check(rep, "roles")["detail"]
    # The human form: one line per check, and a verdict.
    human = run_cli(["doctor", "--profile", "work"])
    assert human.exit_code == 0
    assert human.stdout.count("PASS") == len(doctor.CHECKS)
    assert "OK: 8 passed" in human.stdout


def test_mismatched_key(profile: onboarding.InitResult) -> None:
    other = crypto.generate_private_key(2048)
    atomic_write(
        profile.credentials.key_path, crypto.dump_private_key(other), mode=PRIVATE, force=True
    )
    code, rep, _ = _doctor()
    assert code == 1
    assert rep["status"]["key"] == "fail"
    assert "does not match" in _check(rep, "key")["detail"]
    assert "--new-key" in _check(rep, "key")["fix"]
    assert rep["status"]["token"] == "skip"


def test_expired_certificate(graphkit_emulator: Any, profile: onboarding.InitResult) -> None:
    key = crypto.generate_private_key(2048)
    past = dt.datetime.now(dt.UTC) - dt.timedelta(days=40)
    cert = crypto.self_sign(key, crypto.parse_subject(cn="old"), days=10, now=past)
    _replace_pair(profile, key, cert)
    code, rep, _ = _doctor()
    assert code == 1
    assert rep["status"]["key"] == "pass"
    assert rep["status"]["certificate"] == "fail"
    assert "expired" in _check(rep, "certificate")["detail"]
    assert rep["status"]["token"] == "fail"


def test_certificate_expiring_soon_warns_and_token_query_warn_too(
    graphkit_emulator: Any, profile: onboarding.InitResult
) -> None:
    emu = graphkit_emulator
    key = crypto.generate_private_key(2048)
    # 8 of 30 days left: in the last third (a fresh short certificate does not warn).
    cert = crypto.self_sign(
        key,
        crypto.parse_subject(cn="soon"),
        days=30,
        now=dt.datetime.now(dt.UTC) - dt.timedelta(days=22),
    )
    _replace_pair(profile, key, cert)
    emu.upload_certificate(emu.default_app.client_id, crypto.dump_certificate(cert))
    code, rep, _ = _doctor()
    assert code == 0  # a warning alone does not fail
    assert rep["status"]["certificate"] == "warn"
    assert "expires in" in _check(rep, "certificate")["detail"]
    assert rep["status"]["graph"] == "pass"
    for args in (["token"], ["query", "/users", "--top", "1", "--output", "json"]):
        run = run_cli([*args, "--profile", "work"])
        assert run.exit_code == 0, run.stderr
        assert "expires in" in run.stderr and "warning" in run.stderr


def test_skewed_clock(graphkit_emulator: Any, profile: onboarding.InitResult) -> None:
    graphkit_emulator.advance(3600)  # the server's clock is an hour ahead of ours
    code, rep, _ = _doctor()
    assert code == 1
    clock = _check(rep, "clock")
    assert clock["status"] == "fail"
    assert "behind" in clock["detail"] and clock["fix"]
    assert clock["data"]["skew_seconds"] < -3000


def test_missing_role(graphkit_emulator: Any, profile: onboarding.InitResult) -> None:
    emu = graphkit_emulator
    emu.revoke(emu.default_app.client_id, "User.Read.All")
    code, rep, _ = _doctor("--path", "/users")
    assert code == 1
    assert rep["status"]["token"] == "pass"
    assert rep["status"]["roles"] == "fail"
    assert "admin consent" in _check(rep, "roles")["fix"]
    assert rep["status"]["graph"] == "fail"
    assert "User.Read.All" in _check(rep, "graph")["fix"]


def test_unreachable_host(profile: onboarding.InitResult, refused_port: int) -> None:
    dead = f"https://127.0.0.1:{refused_port}"
    code, rep, _ = _doctor("--authority-host", dead)
    assert code == 1
    assert rep["status"]["discovery"] == "fail"
    assert "cannot reach" in _check(rep, "discovery")["detail"]
    assert rep["status"]["clock"] == "skip"
    assert rep["status"]["token"] == "skip"


def test_unreachable_graph_host(profile: onboarding.InitResult, refused_port: int) -> None:
    # The token's scope names the Graph host ({graph_url}/.default): Entra refuses a token
    # for a resource it does not know (AADSTS500011), so the token check is the one that
    # fails, and what needs a token is skipped, not reported as a second failure.
    code, rep, _ = _doctor("--graph-url", f"https://127.0.0.1:{refused_port}")
    assert code == 1
    assert [name for name, status in rep["status"].items() if status != "pass"] == [
        "token",
        "roles",
        "graph",
    ]
    assert rep["status"]["token"] == "fail"
    assert rep["status"]["roles"] == rep["status"]["graph"] == "skip"
    assert f"127.0.0.1:{refused_port} is not known" in _check(rep, "token")["detail"]


def test_no_configuration(home: Path) -> None:
    code, rep, _ = _doctor_no_profile()
    assert code == 1
    assert rep["configuration"] == "fail"
    assert set(list(rep.values())[1:]) == {"skip"}


def _doctor_no_profile() -> tuple[int, dict[str, str], str]:
    run = run_cli(["doctor", "--json"])
    report = run.json()
    return run.exit_code, {c["name"]: c["status"] for c in report["checks"]}, run.stderr


def test_clock_thresholds() -> None:
    when = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    header = when.strftime("%a, %d %b %Y %H:%M:%S GMT")
    t = when.timestamp()
    assert doctor._check_clock(header, t + 1, 0.1).status == "pass"
    assert doctor._check_clock(header, t + 90, 0.1).status == "warn"
    assert doctor._check_clock(header, t - 400, 0.1).status == "fail"
    assert doctor._check_clock(None, t, 0.1).status == "warn"
