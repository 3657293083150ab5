"""`graphkit init` tests exactly the profile it saves (the environment's AZURE_* values
do not stand in for it), and every hint it or the demo prints works when copied.

Interactive runs go through a pty (pexpect), as a person at a terminal would.
"""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from _onboarding_helpers import child_env, clean_env

pexpect = pytest.importorskip("pexpect")


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    return clean_env(monkeypatch, tmp_path / "home")


def _exports(emu: Any) -> dict[str, str]:
    """What `graphkit emulator serve` tells the user to export."""
    return {
        "AZURE_TENANT_ID": emu.default_tenant.id,
        "AZURE_CLIENT_ID": emu.default_app.client_id,
        "AZURE_AUTHORITY_HOST": emu.authority_host,
        "GRAPHKIT_GRAPH_URL": emu.graph_url,
        "GRAPHKIT_CA_BUNDLE": str(emu.ca_bundle),
    }


def _interactive_init(emu: Any, home: Path, env: dict[str, str], tenant: str) -> tuple[int, str]:
    child = pexpect.spawn(
        sys.executable,
        ["-m", "graphkit", "init", "--profile", "work", "--days", "30"],
        env=child_env(home, **env),
        encoding="utf-8",
        timeout=90,
        dimensions=(50, 200),
    )
    try:
        child.expect("Tenant")
        child.sendline(tenant)
        child.expect(r"Application \(client\) ID")
        child.sendline("")  # the environment's value, offered as the default
        child.expect("Have you uploaded the certificate")
        cert = re.search(r"Certificate:\s+(\S+\.crt)", child.before)
        assert cert, child.before
        emu.upload_certificate(emu.default_app.client_id, Path(cert.group(1)).read_bytes())
        child.sendline("y")
        child.expect(pexpect.EOF)
        # What a person sees (and copies): the terminal renders bold, it is not text.
        text = re.sub(r"\x1b\[[0-9;]*m", "", child.before)
    finally:
        child.close()
    return child.exitstatus, text


def test_a_tenant_answer_is_what_is_tested_not_the_environment(
    graphkit_emulator: Any, home: Path
) -> None:
    emu = graphkit_emulator
    code, text = _interactive_init(emu, home, _exports(emu), "fabrikam.onmicrosoft.com")
    # The saved profile names a tenant the identity platform does not know: init says so
    # (it tested the profile) instead of testing the environment's tenant and saying Ready.
    assert "Ready" not in text, text
    assert code == 5, text
    assert "AZURE_TENANT_ID" in text and "unset AZURE_TENANT_ID" in text


def test_the_environment_is_offered_and_the_ready_hint_works_when_copied(
    graphkit_emulator: Any, home: Path
) -> None:
    emu = graphkit_emulator
    env = _exports(emu)
    code, text = _interactive_init(emu, home, env, "")  # accept the offered tenant
    assert code == 0, text
    hint = re.search(r"Ready\. Try: (.+)", text)
    assert hint, text
    command = hint.group(1).strip()
    # Copied into a shell without the exports (the profile alone), and with them.
    for shell_env in (child_env(home), child_env(home, **env)):
        run = subprocess.run(
            [
                "bash",
                "-c",
                command.replace("graphkit ", f"{shlex.quote(sys.executable)} -m graphkit ", 1),
            ],
            env=shell_env,
            capture_output=True,
            text=True,
            timeout=90,
        )
        assert run.returncode == 0, (command, run.stderr)


def test_a_shell_variable_that_differs_from_the_profile_is_unset_in_the_hint(
    graphkit_emulator: Any, home: Path
) -> None:
    emu = graphkit_emulator
    other = emu.create_tenant("northwind.onmicrosoft.com")
    env = {**_exports(emu), "AZURE_TENANT_ID": other.id}
    code, text = _interactive_init(emu, home, env, emu.default_tenant.domain)
    assert code == 0, text
    command = re.search(r"Ready\. Try: (.+)", text).group(1).strip()  # type: ignore[union-attr]
    assert command.startswith("env -u AZURE_TENANT_ID "), command
    run = subprocess.run(
        [
            "bash",
            "-c",
            command.replace("graphkit ", f"{shlex.quote(sys.executable)} -m graphkit ", 1),
        ],
        env=child_env(home, **env),
        capture_output=True,
        text=True,
        timeout=90,
    )
    assert run.returncode == 0, (command, run.stderr)


def test_every_hint_the_demo_prints_works_when_copied(tmp_path: Path) -> None:
    env = child_env(tmp_path / "elsewhere")
    run = subprocess.run(
        [sys.executable, "-m", "graphkit", "demo", "--users", "20"],
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert run.returncode == 0, run.stderr
    text = run.stderr
    # The demo's profile and emulator are gone once it ends: no hint may name them.
    hints = re.findall(r"(?:Try|Next): (.+)", text)
    assert hints, text
    assert not any("--profile demo" in h for h in hints), hints
    commands = re.findall(r"`(graphkit [^`]+)`", " ".join(hints))
    assert commands, hints
    for command in commands:
        # Each names a real command with real options (its --help answers).
        args = shlex.split(command)[1:]
        check = subprocess.run(
            [sys.executable, "-m", "graphkit", *args, "--help"],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert check.returncode == 0, (command, check.stderr)
