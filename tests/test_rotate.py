"""`graphkit rotate` end to end against the emulator: real msal, requests and HTTPS.

The new certificate gets tokens and the old one is refused (700027) afterwards; with
--keep-old both work; Ctrl-C after each step leaves a working profile and a rerun
finishes; --if-expiring-within leaves a young certificate alone; --dry-run sends no
Graph request. Waits go through an injected sleep that moves the emulator's clock.
"""

from __future__ import annotations

import datetime as dt
import json
import os
from pathlib import Path
from typing import Any

import pytest
from _app_keys_helpers import registered, save_profile, token_for
from _auth_helpers import Identity, make_identity
from _emulator_helpers import no_ca_env
from _onboarding_helpers import clean_env, emulator_flags, run_cli

from graphkit import rotation
from graphkit.errors import ExitCode
from graphkit.settings import config_path, read_config

_no_ca_env = pytest.fixture(autouse=True)(no_ca_env)


@pytest.fixture
def emu(graphkit_emulator: Any) -> Any:
    # The app may read its own registration: rotate finds its object id and keyIds.
    graphkit_emulator.grant(graphkit_emulator.default_app, "Application.Read.All")
    return graphkit_emulator


@pytest.fixture
def ident(emu: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Identity:
    """A profile ``work`` on the emulator's default app, its certificate uploaded."""
    clean_env(monkeypatch, tmp_path / "home")
    ident = make_identity(tmp_path / "keys")
    emu.upload_certificate(emu.default_app, ident.cert)
    save_profile(emu, ident.crt, ident.key_pem)
    return ident


def _profile() -> dict[str, Any]:
    return dict(read_config(config_path())["profiles"]["work"])


def _profile_works(emu: Any) -> None:
    r = run_cli(["token", "--profile", "work", "--force-refresh", "-o", "json"])
    assert r.exit_code == 0, r.stderr


def test_rotate_end_to_end(emu: Any, ident: Identity) -> None:
    r = run_cli(["rotate", "--profile", "work", "--json"])
    assert r.exit_code == 0, r.stderr
    result = r.json()
    assert result["rotated"] is True and result["old_removed"] is True
    assert result["old_thumbprint"] == ident.sha1
    new_cert, new_key = Path(result["new_certificate"]), Path(result["new_private_key"])
    # The profile points at the new pair, under new names beside the old ones.
    profile = _profile()
    assert profile["certificate"] == str(new_cert) and profile["private_key"] == str(new_key)
    assert new_cert.parent == ident.crt.parent and new_cert.name != ident.crt.name
    assert new_key.stat().st_mode & 0o777 == 0o600
    assert profile["object_id"] == emu.default_app.object_id
    # The app holds the new certificate only; the old files are kept, renamed with dates.
    assert registered(emu) == [result["new_thumbprint"]]
    assert not ident.crt.exists() and not ident.key_pem.exists()
    kept = {Path(k).name: Path(v) for k, v in result["renamed"].items()}
    start = ident.cert.not_valid_before_utc.strftime("%Y%m%d")
    end = ident.cert.not_valid_after_utc.strftime("%Y%m%d")
    assert kept["app.crt"].name == f"app-{start}-{end}.crt" and kept["app.crt"].is_file()
    assert kept["app.key"].name == f"app-{start}-{end}.key" and kept["app.key"].is_file()
    # The new certificate gets tokens; the old one is refused as unregistered.
    _profile_works(emu)
    assert "access_token" in token_for(emu, new_cert, new_key)
    old = token_for(emu, kept["app.crt"], kept["app.key"])
    assert 700027 in old.get("error_codes", []), old


def test_keep_old_leaves_both_working(emu: Any, ident: Identity) -> None:
    r = run_cli(["rotate", "--profile", "work", "--keep-old", "--json"])
    assert r.exit_code == 0, r.stderr
    result = r.json()
    assert result["old_removed"] is False
    assert registered(emu) == sorted([ident.sha1, result["new_thumbprint"]])
    kept = {Path(k).name: Path(v) for k, v in result["renamed"].items()}
    assert "access_token" in token_for(emu, kept["app.crt"], kept["app.key"])
    _profile_works(emu)


def test_if_expiring_within_leaves_a_young_certificate_alone(emu: Any, ident: Identity) -> None:
    before = _profile()
    emu.clear_requests()
    r = run_cli(["rotate", "--profile", "work", "--if-expiring-within", "30", "--json"])
    assert r.exit_code == 0, r.stderr
    assert r.json()["rotated"] is False and r.json()["days_left"] >= 364
    assert _profile() == before and registered(emu) == [ident.sha1]
    assert [e for e in emu.requests() if e["kind"] == "graph"] == []
    # A certificate that expires within the window is rotated, and the status says so.
    r = run_cli(["rotate", "--profile", "work", "--if-expiring-within", "400", "--json"])
    assert r.exit_code == ExitCode.ROTATED, r.stderr
    assert r.json()["rotated"] is True
    _profile_works(emu)


def test_dry_run_sends_no_graph_request(emu: Any, ident: Identity) -> None:
    before = sorted(p.name for p in ident.crt.parent.iterdir())
    emu.clear_requests()
    r = run_cli(["rotate", "--profile", "work", "--dry-run"])
    assert r.exit_code == 0, r.stderr
    assert "addKey" in r.stdout and "removeKey" in r.stdout
    assert [e for e in emu.requests() if e["kind"] == "graph"] == []
    assert sorted(p.name for p in ident.crt.parent.iterdir()) == before
    assert registered(emu) == [ident.sha1]


class _Interrupt(rotation.RotationHooks):
    def __init__(self, at: str) -> None:
        self.at = at

    def done(self, step: str) -> None:
        if step == self.at:
            raise KeyboardInterrupt


@pytest.mark.parametrize("step", rotation.STEPS)
def test_ctrl_c_after_each_step_leaves_a_working_profile_and_a_rerun_finishes(
    emu: Any, ident: Identity, step: str
) -> None:
    with pytest.raises(rotation.RotationError) as caught:
        rotation.rotate(rotation.RotateRequest(profile="work"), _Interrupt(step))
    error = caught.value
    assert error.exit_code == ExitCode.INTERRUPTED
    assert "\n" not in str(error) and str(error).startswith("rotation interrupted: ")
    if step in ("added", "verified"):
        assert "the new certificate" in str(error) and "registered but not yet in use" in str(error)
    _profile_works(emu)
    r = run_cli(["rotate", "--profile", "work", "--json"])
    if step == "renamed":  # it had finished but for forgetting the rotation's record
        assert r.exit_code == 0, r.stderr
    else:
        assert r.exit_code == 0, r.stderr
        assert r.json()["rotated"] is True
    _profile_works(emu)
    # Never a third certificate: the app holds only the one the profile uses.
    profile_sha1 = json.loads(
        run_cli(["thumbprint", "-o", "json", _profile()["certificate"]]).stdout
    )["sha1"]
    assert registered(emu) == [profile_sha1]


def test_the_wait_for_a_slow_propagation_counts_down(emu: Any, ident: Identity) -> None:
    emu.propagation_delay = 20
    emu.advance(21)  # the current certificate has propagated; the new one will take 20 s
    waits: list[tuple[float, float, int]] = []
    slept: list[float] = []

    class Hooks(rotation.RotationHooks):
        def waiting(self, retry_in: float, left: float, attempt: int) -> None:
            waits.append((retry_in, left, attempt))

    clock = [0.0]

    def sleep(seconds: float) -> None:  # time passes on the emulator and on our clock
        slept.append(seconds)
        clock[0] += seconds
        emu.advance(seconds)

    result = rotation.rotate(
        rotation.RotateRequest(profile="work", wait=120),
        Hooks(),
        sleep=sleep,
        clock=lambda: clock[0],
    )
    assert result.rotated and result.old_removed
    assert waits and sum(slept) >= 20 and result.waited >= 20
    _profile_works(emu)


def test_an_unregistered_current_certificate_points_to_cert_add_admin(
    emu: Any, ident: Identity
) -> None:
    emu.remove_certificate(emu.default_app, ident.sha1)
    r = run_cli(["rotate", "--profile", "work"])
    assert r.exit_code == ExitCode.CONFIG
    [line] = [x for x in r.stderr.splitlines() if x.startswith("graphkit: error:")]
    assert f"certificate {ident.sha1} is not registered" in line
    assert "graphkit cert add FILE --admin" in line
    assert _profile()["certificate"] == str(ident.crt)


def test_an_expired_certificate_cannot_sign_a_proof(
    emu: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    clean_env(monkeypatch, tmp_path / "home")
    old = make_identity(
        tmp_path / "old", days=1, now=dt.datetime.now(dt.UTC) - dt.timedelta(days=3)
    )
    save_profile(emu, old.combined)
    r = run_cli(["rotate", "--profile", "work"])
    assert r.exit_code == ExitCode.CONFIG
    assert "expired on" in r.stderr and "cannot sign the proof" in r.stderr
    assert "graphkit cert add FILE --admin" in r.stderr


def test_an_app_that_may_not_read_itself_needs_keep_old(emu: Any, ident: Identity) -> None:
    emu.revoke(emu.default_app, "Application.Read.All")
    object_id = emu.default_app.object_id
    r = run_cli(["rotate", "--profile", "work", "--object-id", object_id])
    assert r.exit_code == ExitCode.CONFIG
    assert "may not read its own registration" in r.stderr and "--keep-old" in r.stderr
    assert registered(emu) == [ident.sha1]
    # Without read access, the object id must be given; --keep-old then rotates.
    r = run_cli(["rotate", "--profile", "work", "--keep-old"])
    assert r.exit_code == ExitCode.CONFIG and '"Object ID"' in r.stderr
    r = run_cli(["rotate", "--profile", "work", "--keep-old", "--object-id", object_id, "--json"])
    assert r.exit_code == 0, r.stderr
    assert len(registered(emu)) == 2
    _profile_works(emu)


def test_an_encrypted_key_is_rotated_into_an_encrypted_key(
    emu: Any, ident: Identity, tmp_path: Path
) -> None:
    from _auth_helpers import PASSPHRASE

    pass_file = tmp_path / "pass.txt"
    pass_file.write_bytes(PASSPHRASE + b"\n")
    pass_file.chmod(0o600)
    save_profile(emu, ident.crt, ident.enc_key_pem)
    r = run_cli(["config", "set", "work", "--passphrase-file", str(pass_file)])
    assert r.exit_code == 0, r.stderr
    r = run_cli(["rotate", "--profile", "work", "--json"])
    assert r.exit_code == 0, r.stderr
    new_key = Path(r.json()["new_private_key"])
    assert b"ENCRYPTED PRIVATE KEY" in new_key.read_bytes()
    assert _profile()["passphrase_file"] == str(pass_file.resolve())
    _profile_works(emu)


def test_a_failure_after_the_switch_says_what_the_app_holds_and_a_rerun_finishes(
    emu: Any, ident: Identity
) -> None:
    class FailAfterSwitch(rotation.RotationHooks):
        def done(self, step: str) -> None:
            if step == "switched":  # Graph fails on its side from now on
                emu.add_fault(kind="503", endpoint="graph", every=1)

    with pytest.raises(rotation.RotationError) as caught:
        rotation.rotate(
            rotation.RotateRequest(profile="work"), FailAfterSwitch(), sleep=lambda s: None
        )
    message = str(caught.value)
    assert caught.value.exit_code == ExitCode.OUTCOME_UNKNOWN  # a POST met a 503
    assert "it may have been applied, and a rerun checks which" in message
    assert message.startswith("rotation stopped: ") and "\n" not in message
    assert f"the old one {ident.sha1} is still registered (unless" in message
    assert message.endswith("run graphkit rotate again to remove it")
    emu.clear_faults()
    _profile_works(emu)  # on the new certificate already
    assert len(registered(emu)) == 2
    r = run_cli(["rotate", "--profile", "work", "--json"])
    assert r.exit_code == 0, r.stderr
    assert r.json()["old_removed"] is True
    assert registered(emu) == [r.json()["new_thumbprint"]]


def test_a_stale_key_id_is_not_reported_as_removed(emu: Any, ident: Identity) -> None:
    # The first rotation learns the new certificate's keyId from addKey.
    r = run_cli(["rotate", "--profile", "work", "--keep-old", "--json"])
    assert r.exit_code == 0, r.stderr
    middle = r.json()["new_thumbprint"]
    # An administrator takes it off and uploads it again: it now has another keyId, and
    # the app may no longer read its registration to learn it.
    emu.remove_certificate(emu.default_app, middle)
    emu.upload_certificate(emu.default_app, Path(r.json()["new_certificate"]).read_bytes())
    emu.revoke(emu.default_app, "Application.Read.All")
    for cached in Path(os.environ["GRAPHKIT_HOME"]).glob("msal_token_cache-*"):
        cached.unlink()  # no token cached with that role any more
    r = run_cli(["rotate", "--profile", "work", "--json"])
    assert r.exit_code == 0, r.stderr
    result = r.json()
    assert middle in registered(emu)  # removeKey knew the old keyId only
    assert result["old_removed"] is False
    assert "may still be registered" in result["reason"]
    assert f"graphkit cert remove {middle} --admin" in result["reason"]
    _profile_works(emu)


def test_the_hosts_from_the_environment_are_used_as_by_every_other_command(
    emu: Any, ident: Identity, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The README's way to point graphkit at the emulator: the hosts and the CA in the
    # environment, the profile naming only the app and its certificate.
    r = run_cli(["config", "set", "work", "--unset", "authority_host", "--unset", "graph_url"])
    assert r.exit_code == 0, r.stderr
    r = run_cli(["config", "set", "work", "--unset", "ca_bundle"])
    assert r.exit_code == 0, r.stderr
    monkeypatch.setenv("AZURE_AUTHORITY_HOST", emu.authority_host)
    monkeypatch.setenv("GRAPHKIT_GRAPH_URL", emu.graph_url)
    monkeypatch.setenv("GRAPHKIT_CA_BUNDLE", str(emu.ca_bundle))
    _profile_works(emu)
    # Another app in the environment still plays no part: rotate changes the profile.
    monkeypatch.setenv("AZURE_CLIENT_ID", "00000000-0000-0000-0000-000000000001")
    r = run_cli(["rotate", "--profile", "work", "--json"])
    assert r.exit_code == 0, r.stderr
    assert registered(emu) == [r.json()["new_thumbprint"]]
    monkeypatch.delenv("AZURE_CLIENT_ID")
    _profile_works(emu)


def _set_profile(emu: Any, name: str, client_id: str, ident: Identity) -> None:
    r = run_cli(
        [
            "config",
            "set",
            name,
            "--tenant",
            emu.default_tenant.id,
            "--client-id",
            client_id,
            "--certificate",
            str(ident.crt),
            "--private-key",
            str(ident.key_pem),
            *emulator_flags(emu),
        ]
    )
    assert r.exit_code == 0, r.stderr


def test_other_profiles_using_the_same_certificate_are_not_broken(
    emu: Any, ident: Identity
) -> None:
    # "twin": the same app and files (say, another default); "other": another app that
    # trusts the same certificate. Neither may be left on a removed certificate or on
    # files renamed away.
    other_app = emu.create_app(emu.default_tenant, "other", ["User.Read.All"])
    emu.upload_certificate(other_app, ident.cert)
    _set_profile(emu, "twin", emu.default_app.client_id, ident)
    _set_profile(emu, "other", other_app.client_id, ident)
    dry = run_cli(["rotate", "--profile", "work", "--dry-run"])
    assert "point profile 'twin'" in dry.stdout and "'other'" not in dry.stdout
    r = run_cli(["rotate", "--profile", "work", "--json"])
    assert r.exit_code == 0, r.stderr
    result = r.json()
    assert registered(emu) == [result["new_thumbprint"]]
    twin = read_config(config_path())["profiles"]["twin"]
    assert twin["certificate"] == result["new_certificate"]
    assert twin["private_key"] == result["new_private_key"]
    assert ident.crt.is_file() and ident.key_pem.is_file()  # "other" still uses them
    assert "profile other uses it" in r.stderr
    for name in ("work", "twin", "other"):
        t = run_cli(["token", "--profile", name, "--force-refresh", "-o", "json"])
        assert t.exit_code == 0, (name, t.stderr)
    assert result["also_switched"] == ["twin"]


def test_a_dry_run_refuses_the_object_id_a_run_would_refuse(emu: Any, ident: Identity) -> None:
    real = run_cli(["rotate", "--profile", "work", "--object-id", "not-a-guid"])
    dry = run_cli(["rotate", "--profile", "work", "--object-id", "not-a-guid", "--dry-run"])
    assert real.exit_code == dry.exit_code == ExitCode.CONFIG, dry.stdout
    assert "is not a GUID" in dry.stderr and "not-a-guid" not in dry.stdout


def test_ctrl_c_through_the_cli_is_one_line_saying_what_the_app_holds(
    emu: Any, ident: Identity, monkeypatch: pytest.MonkeyPatch
) -> None:
    from graphkit.cli import app_certs

    monkeypatch.setattr(app_certs, "_stderr_hooks", lambda: _Interrupt("added"))
    r = run_cli(["rotate", "--profile", "work"])
    assert r.exit_code == ExitCode.INTERRUPTED
    errors = [x for x in r.stderr.splitlines() if x.startswith("graphkit: error:")]
    assert len(errors) == 1, r.stderr
    assert errors[0].startswith("graphkit: error: rotation interrupted: the new certificate")
    _profile_works(emu)


def test_a_negative_wait_is_refused_as_app_create_refuses_it(emu: Any, ident: Identity) -> None:
    emu.clear_requests()
    r = run_cli(["rotate", "--profile", "work", "--wait", "-1"])
    assert r.exit_code == ExitCode.USAGE, r.stderr
    assert "--wait -1" in r.stderr
    assert emu.requests() == [] and registered(emu) == [ident.sha1]


def test_a_profile_moved_to_another_app_is_not_rotated_on_the_old_apps_object_id(
    emu: Any, ident: Identity
) -> None:
    r = run_cli(["rotate", "--profile", "work", "--json"])  # the state learns an object id
    assert r.exit_code == 0, r.stderr
    # The app is re-created; the profile is pointed at the new one (no object id known).
    other = emu.create_app(emu.default_tenant, "again", ["User.Read.All"])
    emu.grant(other, "Application.Read.All")
    emu.upload_certificate(other, Path(r.json()["new_certificate"]).read_bytes())
    moved = run_cli(
        ["config", "set", "work", "--client-id", other.client_id, "--unset", "object_id"]
    )
    assert moved.exit_code == 0, moved.stderr
    before = registered(emu)
    r = run_cli(["rotate", "--profile", "work", "--json"])
    assert r.exit_code == 0, r.stderr
    assert registered(emu) == before  # the first app is left alone
    held = [k["customKeyIdentifier"] for k in emu.key_credentials(other)]
    assert len(held) == 1
    assert _profile()["object_id"] == other.object_id
    _profile_works(emu)


def test_a_second_rotate_of_the_profile_at_the_same_time_is_refused(
    emu: Any, ident: Identity
) -> None:
    # A cron run and a manual one overlapping would each add a certificate (a third
    # one left registered) and race on the profile: the second is refused at once.
    from graphkit.files import ensure_private_dir
    from graphkit.settings import state_dir
    from graphkit.token_cache import acquisition_lock

    directory = Path(state_dir()) / "rotation"
    ensure_private_dir(directory)
    with acquisition_lock(directory, "rotate-work", timeout=0) as held:
        assert held  # as a running rotate holds it
        r = run_cli(["rotate", "--profile", "work"])
        assert r.exit_code == ExitCode.ERROR, r.stderr
        assert "another graphkit rotate of profile 'work' is running" in r.stderr
        assert registered(emu) == [ident.sha1]
        dry = run_cli(["rotate", "--profile", "work", "--dry-run"])  # only reads
        assert dry.exit_code == 0, dry.stderr
    r = run_cli(["rotate", "--profile", "work"])
    assert r.exit_code == 0, r.stderr
