"""Shared by test_init.py, test_doctor.py and test_demo.py (issue 5)."""

from __future__ import annotations

import json
import os
import socket
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

# Every variable graphkit's settings read: a test must not inherit them.
ENV_VARS = (
    "GRAPHKIT_HOME",
    "GRAPHKIT_PROFILE",
    "GRAPHKIT_CLOUD",
    "GRAPHKIT_GRAPH_URL",
    "GRAPHKIT_CA_BUNDLE",
    "GRAPHKIT_KEY_PASSPHRASE",
    "AZURE_TENANT_ID",
    "AZURE_CLIENT_ID",
    "AZURE_CLIENT_CERTIFICATE_PATH",
    "AZURE_CLIENT_CERTIFICATE_PASSWORD",
    "AZURE_AUTHORITY_HOST",
)


def clean_env(monkeypatch: pytest.MonkeyPatch, home: Path) -> Path:
    for var in ENV_VARS:
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("GRAPHKIT_HOME", str(home))
    monkeypatch.setenv("NO_COLOR", "1")
    return home


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


def closed_port() -> int:
    """A local port nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def all_files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file()) if root.exists() else []


def python() -> str:
    return sys.executable
