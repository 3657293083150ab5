"""`graphkit demo` (and `graphkit init --sandbox`): the whole mission, offline."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from _onboarding_helpers import all_files, child_env, clean_env, python, run_cli
from _time_helpers import capture_emulators, fake_init_wait


def test_demo_prints_token_and_users_table_and_leaves_real_config_alone(
    tmp_path: Path,
) -> None:
    # The user's "real" configuration: the demo must neither read nor change it.
    real = tmp_path / "real-home"
    real.mkdir()
    (real / "config.toml").write_text(
        'default_profile = "mine"\n\n[profiles.mine]\ntenant = "contoso.onmicrosoft.com"\n'
    )
    before = {p: p.read_bytes() for p in all_files(real)}
    env = child_env(real, AZURE_TENANT_ID="00000000-0000-0000-0000-000000000000")
    proc = subprocess.run(
        [python(), "-m", "graphkit", "demo"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        stdin=subprocess.DEVNULL,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    err, out = proc.stderr, proc.stdout
    # init ran against the emulator, with the upload done through its API.
    assert "Thumbprint:" in err and "Uploading" in err
    assert "Token acquired" in err and "GET /users?$top=1 works" in err
    # `graphkit token`'s summary and the /users table.
    assert "$ graphkit token --profile demo" in err
    assert "User.Read.All" in out
    assert "$ graphkit query /users" in err
    assert "displayName" in out or "Display" in out
    assert out.count("@") >= 10  # ten userPrincipalNames
    # The real configuration is untouched, and no demo state was left anywhere in it.
    assert {p: p.read_bytes() for p in all_files(real)} == before


def test_init_sandbox_is_the_demo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    home = clean_env(monkeypatch, tmp_path / "home")
    run = run_cli(["init", "--sandbox", "--profile", "sandbox"])
    assert run.exit_code == 0, run.stderr
    assert "$ graphkit token --profile sandbox" in run.stderr
    assert all_files(home) == []


def test_demo_keeps_home_when_asked_and_waits_out_propagation(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    clean_env(monkeypatch, tmp_path / "untouched")
    # A long delay on the demo's own emulator, waited on its clock: init's sleeps
    # advance it, so no real time passes and no margin decides the outcome.
    fake = fake_init_wait(monkeypatch)
    capture_emulators(monkeypatch, fake.emulators)
    keep = tmp_path / "demo-home"
    run = run_cli(["demo", "--home", str(keep), "--propagation-delay", "30", "--users", "30"])
    assert run.exit_code == 0, run.stderr
    assert "AADSTS700027" in run.stderr
    assert len(fake.emulators) == 1 and fake.slept
    assert 0 < sum(fake.slept) < 60  # waited out, within the demo's 60 s wait
    assert (keep / "config.toml").exists()
    assert (keep / "credentials" / "demo" / "demo.key").exists()
    assert not (tmp_path / "untouched").exists()
