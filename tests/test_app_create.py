"""`graphkit app create` through the real CLI against the emulator: an administrator
signs in with the device code flow (approved through the emulator's API from another
thread while the command polls), the app is created with its certificate, granted, saved
as a profile and tested with real msal and requests. Waits run on injected clocks."""

from __future__ import annotations

import threading
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from _onboarding_helpers import all_files, clean_env, emulator_flags, run_cli
from _time_helpers import FakeTime, fake_init_wait

from graphkit import admin_signin, provisioning
from graphkit.errors import ExitCode

GRAPH_CLI = "14d82eec-204b-4c2f-b7e8-296a70dab67e"


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    return clean_env(monkeypatch, tmp_path / "home")


class Approver:
    """The sign-in's ``sleep``: on the first wait between polls, ``act`` runs in another
    thread (an administrator at the browser); every wait returns once it is done."""

    def __init__(self) -> None:
        self.act: Callable[[], None] | None = None
        self.failure: BaseException | None = None
        self._done: threading.Event | None = None
        self.t = 0.0

    def will(self, act: Callable[[], None]) -> None:
        self.act, self._done, self.failure = act, None, None

    def _run(self, act: Callable[[], None], done: threading.Event) -> None:
        try:
            act()
        except BaseException as exc:  # reported by the test
            self.failure = exc
        finally:
            done.set()

    def sleep(self, seconds: float) -> None:
        if self.act is not None and self._done is None:
            self._done = threading.Event()
            threading.Thread(target=self._run, args=(self.act, self._done), daemon=True).start()
        if self._done is not None:
            assert self._done.wait(60), "the approving thread did not finish"
        self.t += seconds

    def clock(self) -> float:
        return self.t


@pytest.fixture
def approver(monkeypatch: pytest.MonkeyPatch) -> Approver:
    a = Approver()
    defaults = admin_signin.sign_in.__kwdefaults__
    assert defaults is not None
    monkeypatch.setitem(defaults, "sleep", a.sleep)
    monkeypatch.setitem(defaults, "clock", a.clock)
    return a


@pytest.fixture
def waits(graphkit_emulator: Any, monkeypatch: pytest.MonkeyPatch) -> FakeTime:
    """Provisioning's and the test's propagation waits on one fake clock that moves the
    emulator's along: the delays pass without a real second spent."""
    fake = fake_init_wait(monkeypatch, graphkit_emulator)
    defaults = provisioning.provision.__kwdefaults__
    assert defaults is not None
    monkeypatch.setitem(defaults, "sleep", fake.sleep)
    monkeypatch.setitem(defaults, "clock", fake.clock)
    return fake


def _approve_as(emu: Any, user: str) -> Callable[[], None]:
    return lambda: emu.approve_device_code(emu.wait_for_device_code(), user)


def _create(emu: Any, *more: str, name: str = "reports") -> list[str]:
    return [
        "app",
        "create",
        "--name",
        name,
        "--tenant",
        emu.default_tenant.domain,
        *emulator_flags(emu),
        *more,
    ]


def _finish(client_id: str, profile: str, *more: str) -> list[str]:
    """app create --client-id: finish an existing app (hosts from the profile)."""
    return [
        "app",
        "create",
        "--client-id",
        client_id,
        "--profile",
        profile,
        "--permission",
        "User.Read.All",
        "--json",
        *more,
    ]


def _profile(home: Path, name: str) -> dict[str, Any] | None:
    path = home / "config.toml"
    if not path.exists():
        return None
    found: dict[str, Any] | None = tomllib.loads(path.read_text()).get("profiles", {}).get(name)
    return found


def _apps_named(emu: Any, name: str) -> list[Any]:
    with emu.backend.lock:
        return [a for a in emu.backend.apps.values() if a.display_name == name]


def _graph_calls(emu: Any) -> list[dict[str, Any]]:
    return [r for r in emu.requests() if r["kind"] == "graph"]


def _no_secret(*texts: str) -> None:
    for text in texts:
        assert "PRIVATE KEY" not in text
        assert "eyJ" not in text  # no JWT: token, assertion, proof


# ------------------------------------------------------------------- end to end


def test_end_to_end_as_a_privileged_role_administrator(
    graphkit_emulator: Any, home: Path, approver: Approver, waits: FakeTime
) -> None:
    emu = graphkit_emulator
    emu.create_account("pra", roles=["Privileged Role Administrator"])
    # A new service principal is not found for a while, and the certificate given at
    # creation is refused (700027) for a while: both waited out, on the fake clock.
    emu.settings(service_principal_delay=40)
    emu.propagation_delay = 70
    approver.will(_approve_as(emu, "pra"))
    made = run_cli(
        _create(emu, "--permission", "User.Read.All", "--permission", "group.read.all", "--json")
    )
    assert approver.failure is None
    assert made.exit_code == 0, made.stderr
    _no_secret(made.stdout, made.stderr)
    out = made.json()
    # The code and where to enter it, on stderr.
    [flow] = emu.device_codes()
    assert flow["user_code"] in made.stderr and "https://microsoft.com/devicelogin" in made.stderr
    assert flow["client_id"] == GRAPH_CLI
    assert sorted(flow["scopes"]) == [
        "AppRoleAssignment.ReadWrite.All",
        "Application.ReadWrite.All",
    ]
    app = out["app"]
    assert app["app_created"] and app["service_principal_created"]
    assert sorted(app["granted"]) == ["Group.Read.All", "User.Read.All"]
    assert out["signed_in_as"].startswith("pra@")
    client_id = app["client_id"]
    assert emu.application(client_id).object_id == app["object_id"]
    assert set(emu.roles(client_id)) == {"Group.Read.All", "User.Read.All"}
    # The profile: tenant, client id, object id, key, certificate; the key 0600.
    profile = _profile(home, "reports")
    assert profile is not None
    assert profile["client_id"] == client_id and profile["object_id"] == app["object_id"]
    assert profile["tenant"] == emu.default_tenant.domain
    assert Path(profile["private_key"]).stat().st_mode & 0o777 == 0o600
    # Tested as init tests: the token carries the granted roles, after waiting.
    smoke = out["smoke_test"]
    assert sorted(smoke["roles"]) == ["Group.Read.All", "User.Read.All"]
    assert smoke["attempts"] >= 2 and waits.slept
    assert "not found yet" in made.stderr
    tokens = [r for r in emu.requests() if r["kind"] == "token" and r["status"] != 200]
    assert tokens  # refused while propagating, then accepted
    # The new profile works on its own.
    users = run_cli(["query", "/users", "--profile", "reports", "--top", "2", "-o", "json"])
    assert users.exit_code == 0, users.stderr
    assert len(users.json()) == 2


def test_application_administrator_creates_then_a_privileged_role_administrator_finishes(
    graphkit_emulator: Any, home: Path, approver: Approver, waits: FakeTime
) -> None:
    emu = graphkit_emulator
    emu.create_account("appadmin", roles=["Application Administrator"])
    emu.create_account("pra", roles=["Privileged Role Administrator"])
    approver.will(_approve_as(emu, "appadmin"))
    first = run_cli(_create(emu, "--permission", "User.Read.All"))
    assert first.exit_code == ExitCode.PERMISSION, first.stderr
    [app] = _apps_named(emu, "reports")
    error = first.stderr.strip().splitlines()[-1]
    assert error.startswith("graphkit: error: granting User.Read.All was refused")
    assert "Privileged Role Administrator or Global Administrator" in error
    assert app.client_id in error and app.object_id in error
    assert f"--client-id {app.client_id}" in error and "without creating a second app" in error
    assert "Traceback" not in first.stderr
    _no_secret(first.stdout, first.stderr)
    assert emu.roles(app.client_id) == []
    profile = _profile(home, "reports")
    assert profile is not None and profile["client_id"] == app.client_id

    emu.clear_requests()
    approver.will(_approve_as(emu, "pra"))
    second = run_cli(_finish(app.client_id, "reports"))
    assert second.exit_code == 0, second.stderr
    out = second.json()["app"]
    assert not out["app_created"] and not out["certificate_added"]  # the profile's pair
    assert out["granted"] == ["User.Read.All"]
    assert len(_apps_named(emu, "reports")) == 1  # one app, not two
    assert emu.roles(app.client_id) == ["User.Read.All"]
    assert not [
        r
        for r in _graph_calls(emu)
        if r["method"] == "POST" and r["path"].endswith("/applications")
    ]

    # A third run grants nothing twice.
    approver.will(_approve_as(emu, "pra"))
    third = run_cli(_finish(app.client_id, "reports"))
    assert third.exit_code == 0, third.stderr
    assert third.json()["app"]["granted"] == []
    assert third.json()["app"]["already_granted"] == ["User.Read.All"]


def test_client_id_of_an_app_without_the_certificate_adds_it_and_keeps_the_others(
    graphkit_emulator: Any, home: Path, approver: Approver, waits: FakeTime, tmp_path: Path
) -> None:
    from _emulator_helpers import identity

    emu = graphkit_emulator
    emu.create_account("ga", roles=["Global Administrator"])
    app = emu.create_app(display_name="legacy")
    emu.upload_certificate(app.client_id, identity(tmp_path, "other").cert)
    approver.will(_approve_as(emu, "ga"))
    result = run_cli(
        _finish(
            app.client_id, "legacy", "--tenant", emu.default_tenant.domain, *emulator_flags(emu)
        )
    )
    assert result.exit_code == 0, result.stderr
    out = result.json()
    assert out["app"]["certificate_added"] and out["smoke_test"]["roles"] == ["User.Read.All"]
    assert len(emu.key_credentials(app.client_id)) == 2  # the other one kept


# ------------------------------------------------------------------- refusals


@pytest.mark.parametrize(
    ("permission", "said"),
    [
        ("User.Read.Al", "Microsoft Graph has no application permission 'User.Read.Al'"),
        ("User.Read", "User.Read is a delegated permission"),
    ],
)
def test_unknown_or_delegated_permission_creates_nothing(
    graphkit_emulator: Any, home: Path, approver: Approver, permission: str, said: str
) -> None:
    emu = graphkit_emulator
    emu.create_account("pra", roles=["Global Administrator"])
    approver.will(_approve_as(emu, "pra"))
    result = run_cli(_create(emu, "--permission", "User.Read.All", "--permission", permission))
    assert result.exit_code == ExitCode.USAGE, result.stderr
    [line] = [ln for ln in result.stderr.splitlines() if ln.startswith("graphkit: error:")]
    assert said in line and "did you mean User.Read.All" in line
    # Only the read of Graph's service principal was sent: nothing created, no file left.
    assert [r["method"] for r in _graph_calls(emu)] == ["GET"]
    assert not _apps_named(emu, "reports")
    assert _profile(home, "reports") is None
    assert not all_files(home / "credentials")


def test_declined_sign_in_says_so_and_leaves_nothing(
    graphkit_emulator: Any, home: Path, approver: Approver
) -> None:
    emu = graphkit_emulator
    approver.will(lambda: emu.decline_device_code(emu.wait_for_device_code()))
    result = run_cli(_create(emu, "--permission", "User.Read.All"))
    assert result.exit_code == ExitCode.AUTH
    assert "graphkit: error: the sign-in was declined: run the command again" in result.stderr
    assert not _graph_calls(emu) and not all_files(home)


def test_expired_sign_in_code_says_so(
    graphkit_emulator: Any, home: Path, approver: Approver
) -> None:
    emu = graphkit_emulator
    approver.will(lambda: emu.advance(901))
    result = run_cli(_create(emu, "--permission", "User.Read.All"))
    assert result.exit_code == ExitCode.AUTH
    assert "the sign-in code expired before anyone signed in with it" in result.stderr
    assert "https://microsoft.com/devicelogin" in result.stderr


def test_a_profile_of_another_app_is_not_repointed(graphkit_emulator: Any, home: Path) -> None:
    emu = graphkit_emulator
    made = run_cli(["config", "set", "reports", "--client-id", emu.default_app.client_id])
    assert made.exit_code == 0, made.stderr
    result = run_cli(_create(emu, "--permission", "User.Read.All"))
    assert result.exit_code == ExitCode.USAGE
    assert f"profile 'reports' exists already, for app {emu.default_app.client_id}" in result.stderr
    assert not [r for r in emu.requests() if r["kind"] in ("graph", "token")]


# ------------------------------------------------------------------- dry run


def test_dry_run_sends_nothing_to_graph_and_writes_nothing(
    graphkit_emulator: Any, home: Path
) -> None:
    emu = graphkit_emulator
    emu.clear_requests()
    result = run_cli(_create(emu, "--permission", "User.Read.All", "--dry-run"))
    assert result.exit_code == 0, result.stderr
    assert not [r for r in emu.requests() if r["kind"] in ("graph", "token")]
    assert not all_files(home)
    _no_secret(result.stdout, result.stderr)
    lines = result.stdout.splitlines()
    calls = [ln for ln in lines if ln[:1].isdigit()]
    assert [c.split()[1] for c in calls] == ["GET", "GET", "POST", "POST", "POST"]
    assert f"{emu.graph_url}/v1.0/applications?" in calls[1]  # an app of that name?
    assert calls[2].endswith(f"{emu.graph_url}/v1.0/applications")
    assert '"displayName": "reports"' in result.stdout
    assert "characters)" in result.stdout  # the certificate's key, shortened
    assert "<appRole id of User.Read.All>" in result.stdout

    as_json = run_cli(_create(emu, "--permission", "User.Read.All", "--dry-run", "--json"))
    assert as_json.exit_code == 0, as_json.stderr
    body = as_json.json()
    assert body["dry_run"] is True
    assert [c["method"] for c in body["calls"]] == ["GET", "GET", "POST", "POST", "POST"]
    forced = run_cli(
        _create(emu, "--permission", "User.Read.All", "--dry-run", "--force", "--json")
    )
    assert [c["method"] for c in forced.json()["calls"]] == ["GET", "POST", "POST", "POST"]
    assert not [r for r in emu.requests() if r["kind"] in ("graph", "token")]


def test_ctrl_c_once_the_app_exists_keeps_the_profile_and_says_how_to_finish(
    graphkit_emulator: Any, home: Path, approver: Approver, monkeypatch: pytest.MonkeyPatch
) -> None:
    emu = graphkit_emulator
    emu.create_account("pra", roles=["Privileged Role Administrator"])

    def interrupt(client_id: str) -> Any:
        raise KeyboardInterrupt

    monkeypatch.setattr(provisioning, "_create_sp_call", interrupt)  # Ctrl-C at that step
    approver.will(_approve_as(emu, "pra"))
    result = run_cli(_create(emu, "--permission", "User.Read.All"))
    assert result.exit_code == ExitCode.INTERRUPTED
    [app] = _apps_named(emu, "reports")
    [line] = [ln for ln in result.stderr.splitlines() if ln.startswith("graphkit: error:")]
    assert line.startswith("graphkit: error: interrupted: app " + app.client_id)
    assert f"--client-id {app.client_id}" in line
    profile = _profile(home, "reports")
    assert profile is not None and Path(profile["private_key"]).exists()


def test_ctrl_c_before_the_app_exists_leaves_no_file(
    graphkit_emulator: Any, home: Path, approver: Approver, monkeypatch: pytest.MonkeyPatch
) -> None:
    emu = graphkit_emulator
    emu.create_account("pra", roles=["Privileged Role Administrator"])

    def interrupt(*args: Any) -> Any:
        raise KeyboardInterrupt

    monkeypatch.setattr(provisioning, "_create_app_call", interrupt)
    approver.will(_approve_as(emu, "pra"))
    result = run_cli(_create(emu, "--permission", "User.Read.All"))
    assert result.exit_code == ExitCode.INTERRUPTED
    assert "no profile was saved and no key file left" in result.stderr
    assert not all_files(home / "credentials") and _profile(home, "reports") is None


def test_client_id_waits_for_a_service_principal_created_moments_ago(
    graphkit_emulator: Any, home: Path, approver: Approver, waits: FakeTime
) -> None:
    from graphkit.settings import Settings

    emu = graphkit_emulator
    emu.create_account("ga", roles=["Global Administrator"])
    # Someone made the app and its service principal a moment ago (through Graph).
    settings = Settings(
        tenant=emu.default_tenant.domain,
        authority_host=emu.authority_host,
        graph_url=emu.graph_url,
        ca_bundle=str(emu.ca_bundle),
    )
    admin = admin_signin.sign_in(
        settings, on_code=lambda code: emu.approve_device_code(code.user_code, "ga")
    )
    with admin_signin.graph_client(settings, admin) as graph:
        made = graph.request("POST", "/applications", json_body={"displayName": "half"})
        emu.settings(service_principal_delay=100)
        graph.request("POST", "/servicePrincipals", json_body={"appId": made["appId"]})
    approver.will(_approve_as(emu, "ga"))
    result = run_cli(
        _finish(made["appId"], "half", "--tenant", emu.default_tenant.domain, *emulator_flags(emu))
    )
    assert result.exit_code == 0, result.stderr
    out = result.json()["app"]
    assert not out["service_principal_created"] and out["certificate_added"]
    assert out["granted"] == ["User.Read.All"] and out["waited_seconds"] >= 1
    assert "the new service principal is not found yet" in result.stderr
    assert result.json()["smoke_test"]["roles"] == ["User.Read.All"]


def test_dry_run_of_client_id_shows_the_conditional_calls(
    graphkit_emulator: Any, home: Path
) -> None:
    emu = graphkit_emulator
    client_id = emu.default_app.client_id
    result = run_cli(
        _finish(
            client_id,
            "work",
            "--dry-run",
            "--tenant",
            emu.default_tenant.domain,
            *emulator_flags(emu),
        )
    )
    assert result.exit_code == 0, result.stderr
    calls = result.json()["calls"]
    assert [(c["method"], c["url"].split("/v1.0", 1)[1].split("?")[0]) for c in calls] == [
        ("GET", "/servicePrincipals"),
        ("GET", f"/applications(appId='{client_id}')"),
        ("PATCH", "/applications/<the app's object id>"),
        ("GET", "/servicePrincipals"),
        ("POST", "/servicePrincipals"),
        ("GET", "/servicePrincipals/<the app's service principal id>/appRoleAssignments"),
        ("POST", "/servicePrincipals/<Microsoft Graph's service principal id>/appRoleAssignedTo"),
    ]
    assert [c["purpose"].startswith("only if") for c in calls] == [
        False,
        False,
        True,
        False,
        True,
        False,
        True,
    ]
    assert not [r for r in emu.requests() if r["kind"] in ("graph", "token")]
    assert not all_files(home)


def test_a_created_app_rotates_without_reading_its_own_registration(
    graphkit_emulator: Any, home: Path, approver: Approver, waits: FakeTime
) -> None:
    # app create was told the certificate's keyId, so rotate can remove it later with
    # only the permissions the app was created with (no Application.Read.All).
    emu = graphkit_emulator
    emu.create_account("pra", roles=["Privileged Role Administrator"])
    approver.will(_approve_as(emu, "pra"))
    made = run_cli(_create(emu, "--permission", "User.Read.All", "--json"))
    assert made.exit_code == 0, made.stderr
    client_id = made.json()["app"]["client_id"]
    [first] = emu.key_credentials(client_id)
    r = run_cli(["rotate", "--profile", "reports", "--json"])
    assert r.exit_code == 0, r.stderr
    assert r.json()["old_removed"] is True
    [now] = emu.key_credentials(client_id)
    assert now["keyId"] != first["keyId"] and now["keyId"] == r.json()["new_key_id"]
    users = run_cli(["query", "/users", "--profile", "reports", "--top", "1", "-o", "json"])
    assert users.exit_code == 0, users.stderr


def test_a_second_app_of_the_same_name_needs_force(
    graphkit_emulator: Any, home: Path, approver: Approver, waits: FakeTime
) -> None:
    # The profile was deleted (or another machine runs it): a re-run would make a second
    # app of the same name, whose client id nobody expects. It is refused, naming the
    # app that exists and how to finish it, before anything is created.
    emu = graphkit_emulator
    emu.create_account("pra", roles=["Privileged Role Administrator"])
    approver.will(_approve_as(emu, "pra"))
    first = run_cli(_create(emu, "--permission", "User.Read.All", "--json"))
    assert first.exit_code == 0, first.stderr
    client_id = first.json()["app"]["client_id"]
    approver.will(_approve_as(emu, "pra"))
    again = run_cli(_create(emu, "--permission", "User.Read.All", "--profile", "reports2"))
    assert again.exit_code == ExitCode.USAGE, again.stderr
    [line] = [x for x in again.stderr.splitlines() if x.startswith("graphkit: error:")]
    assert "an app named 'reports'" in line and client_id in line
    assert f"--client-id {client_id}" in line and "--force" in line
    assert len(_apps_named(emu, "reports")) == 1
    assert _profile(home, "reports2") is None
    from graphkit.onboarding import credentials_dir

    assert not credentials_dir("reports2").exists()  # no key left behind
    approver.will(_approve_as(emu, "pra"))
    forced = run_cli(
        _create(emu, "--permission", "User.Read.All", "--profile", "reports2", "--force")
    )
    assert forced.exit_code == 0, forced.stderr
    assert len(_apps_named(emu, "reports")) == 2
