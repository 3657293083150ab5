"""The README's exit-code table, pinned with literal numbers through the real command.

Comparing an exit status with ``ExitCode.X`` cannot catch a change to ``ExitCode``
itself (two codes swapped, say): scripts branch on the numbers, so the numbers are
written here, and the table's rows are read from the README.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from _auth_helpers import make_identity
from _onboarding_helpers import run_cli
from _process_helpers import graphkit_argv, refused_port
from _readme import readme_table
from conftest import SignedIn

pexpect = pytest.importorskip("pexpect")

Case = Callable[[SignedIn, Path, pytest.MonkeyPatch], tuple[int, str]]


def _cli(*args: str) -> tuple[int, str]:
    r = run_cli(list(args))
    return r.exit_code, r.stderr


def _usage(env: SignedIn, tmp: Path, mp: pytest.MonkeyPatch) -> tuple[int, str]:
    return _cli("query", "/users", "--bogus")


def _input(env: SignedIn, tmp: Path, mp: pytest.MonkeyPatch) -> tuple[int, str]:
    return _cli("thumbprint", str(tmp / "missing.crt"))


def _config(env: SignedIn, tmp: Path, mp: pytest.MonkeyPatch) -> tuple[int, str]:
    mp.delenv("AZURE_TENANT_ID")  # no tenant anywhere: configuration incomplete
    return _cli("token")


def _auth(env: SignedIn, tmp: Path, mp: pytest.MonkeyPatch) -> tuple[int, str]:
    other = make_identity(tmp / "other", key_index=1)  # never uploaded: AADSTS700027
    mp.setenv("AZURE_CLIENT_CERTIFICATE_PATH", str(other.combined))
    return _cli("token")


def _permission(env: SignedIn, tmp: Path, mp: pytest.MonkeyPatch) -> tuple[int, str]:
    return _cli("query", "/organization")  # the app has User.Read.All only: 403


def _not_found(env: SignedIn, tmp: Path, mp: pytest.MonkeyPatch) -> tuple[int, str]:
    return _cli("query", "/users/00000000-0000-0000-0000-000000000000")


def _throttled(env: SignedIn, tmp: Path, mp: pytest.MonkeyPatch) -> tuple[int, str]:
    env.emu.add_fault("429", endpoint="graph", every=1, retry_after=0)
    return _cli("query", "/users")


def _network(env: SignedIn, tmp: Path, mp: pytest.MonkeyPatch) -> tuple[int, str]:
    with refused_port() as port:
        mp.setenv("AZURE_AUTHORITY_HOST", f"https://127.0.0.1:{port}")
        return _cli("token")


def _unclassified(env: SignedIn, tmp: Path, mp: pytest.MonkeyPatch) -> tuple[int, str]:
    other = make_identity(tmp / "other", key_index=1)
    mp.setenv("AZURE_CLIENT_CERTIFICATE_PATH", str(other.combined))
    return _cli("doctor")  # a failed check: "The exit status is 1 when any check fails"


def _outcome_unknown(env: SignedIn, tmp: Path, mp: pytest.MonkeyPatch) -> tuple[int, str]:
    env.emu.grant(env.emu.default_app, "User.ReadWrite.All")
    env.emu.add_fault("503", endpoint="graph", every=1, retry_after=0)
    user = {
        "accountEnabled": True,
        "displayName": "Ada",
        "mailNickname": "ada",
        "userPrincipalName": "ada@contoso.onmicrosoft.com",
        "passwordProfile": {"password": "xWwvJ]6NMw+bWH-d"},
    }
    return _cli("query", "/users", "-X", "POST", "--body", json.dumps(user))


def _interrupted(env: SignedIn, tmp: Path, mp: pytest.MonkeyPatch) -> tuple[int, str]:
    command, *argv = graphkit_argv("keygen", "-o", str(tmp / "k.key"), "--prompt-passphrase")
    child = pexpect.spawn(command, argv, encoding="utf-8", timeout=60)
    try:
        child.expect("Passphrase: ")
        child.sendintr()  # Ctrl-C, from the terminal
        child.expect(pexpect.EOF)
    finally:
        child.close()
    assert child.exitstatus is not None, "killed by the signal instead of exiting"
    return child.exitstatus, child.before.replace("\r", "")


def _rotated(env: SignedIn, tmp: Path, mp: pytest.MonkeyPatch) -> tuple[int, str]:
    env.emu.grant(env.emu.default_app, "Application.Read.All")  # it reads its keyIds
    code, stderr = _cli(
        "config",
        "set",
        "work",
        "--tenant",
        env.env["AZURE_TENANT_ID"],
        "--client-id",
        env.env["AZURE_CLIENT_ID"],
        "--certificate",
        env.env["AZURE_CLIENT_CERTIFICATE_PATH"],
        "--authority-host",
        env.env["AZURE_AUTHORITY_HOST"],
        "--graph-url",
        env.env["GRAPHKIT_GRAPH_URL"],
        "--ca-bundle",
        env.env["GRAPHKIT_CA_BUNDLE"],
    )
    assert code == 0, stderr
    return _cli("rotate", "--profile", "work", "--if-expiring-within", "400")


CASES: dict[int, tuple[str, Case]] = {
    1: ("doctor with a failing check", _unclassified),
    2: ("unknown option", _usage),
    3: ("missing file", _input),
    4: ("no tenant configured", _config),
    5: ("certificate not registered (AADSTS700027)", _auth),
    6: ("Graph 403", _permission),
    7: ("Graph 404", _not_found),
    8: ("429 until the retries run out", _throttled),
    9: ("connection refused", _network),
    10: ("503 on a POST: it may have been applied", _outcome_unknown),
    11: ("rotate --if-expiring-within rotated", _rotated),
    130: ("Ctrl-C at a prompt", _interrupted),
}


def test_the_table_in_the_readme_is_the_one_tested() -> None:
    documented = [int(s) for s in readme_table("status", "## Exit codes")]
    assert documented == [0, *CASES]


@pytest.mark.parametrize(
    "status", list(CASES), ids=[f"{s}-{CASES[s][0].replace(' ', '_')}" for s in CASES]
)
def test_each_kind_of_failure_exits_with_its_documented_status(
    status: int, signed_in_env: SignedIn, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _what, case = CASES[status]
    code, stderr = case(signed_in_env, tmp_path, monkeypatch)
    assert code == status, stderr
    assert "Traceback" not in stderr
    errors = [ln for ln in stderr.splitlines() if ln.startswith("graphkit: error: ")]
    if status == 11:  # not a failure: it rotated
        assert errors == [], stderr
    elif status != 1:  # doctor reports in its table; every other failure is one line
        assert len(errors) == 1, stderr


def test_success_is_0(signed_in_env: SignedIn) -> None:
    assert _cli("query", "/users", "--top", "1")[0] == 0
