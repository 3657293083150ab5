"""Shared by test_init.py, test_doctor.py and test_demo.py (issue 5)."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import _auth_helpers
import pytest
from _auth_helpers import ENV_VARS

from graphkit import onboarding


def clean_env(monkeypatch: pytest.MonkeyPatch, home: Path) -> Path:
    """:func:`_auth_helpers.clean_env`, and no colour."""
    monkeypatch.setenv("NO_COLOR", "1")
    return _auth_helpers.clean_env(monkeypatch, home)


def child_env(home: Path, **extra: str) -> dict[str, str]:
    """The environment for a `python -m graphkit` child process."""
    env = {k: v for k, v in os.environ.items() if k not in ENV_VARS}
    env.update(
        {"GRAPHKIT_HOME": str(home), "NO_COLOR": "1", "COLUMNS": "200", "PYTHONUNBUFFERED": "1"}
    )
    env.update(extra)
    return env


@dataclass
class Run:
    exit_code: int
    stdout: str
    stderr: str

    def json(self) -> Any:
        return json.loads(self.stdout)


def run_cli(args: Sequence[str]) -> Run:
    """Run graphkit in this process (CliRunner); stdin is not a terminal."""
    from typer.testing import CliRunner

    from graphkit.cli import app

    result = CliRunner().invoke(app, list(args), catch_exceptions=False)
    return Run(result.exit_code, result.stdout, result.stderr)


def emulator_flags(emu: Any) -> list[str]:
    return [
        "--authority-host",
        emu.authority_host,
        "--graph-url",
        emu.graph_url,
        "--ca-bundle",
        str(emu.ca_bundle),
    ]


def init_args(emu: Any, *more: str, profile: str = "work") -> list[str]:
    return [
        "init",
        "--profile",
        profile,
        "--tenant",
        emu.default_tenant.domain,
        "--client-id",
        emu.default_app.client_id,
        *emulator_flags(emu),
        *more,
    ]


def init_request(emu: Any, **kw: Any) -> onboarding.InitRequest:
    """Profile "work" for ``emu``'s default app, stopping before the test (``kw`` adds
    fields)."""
    return onboarding.InitRequest(
        tenant=emu.default_tenant.domain,
        client_id=emu.default_app.client_id,
        profile="work",
        connection={
            "authority_host": emu.authority_host,
            "graph_url": emu.graph_url,
            "ca_bundle": str(emu.ca_bundle),
        },
        test=False,
        **kw,
    )


def all_files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file()) if root.exists() else []


def python() -> str:
    return sys.executable
