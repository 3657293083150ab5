"""Shell completion: `graphkit --install-completion` / `--show-completion` for bash, zsh,
fish and PowerShell, and completions that work in a real bash."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

BIN = Path(sys.executable).parent


def _env(home: Path, **extra: str) -> dict[str, str]:
    env = {
        "HOME": str(home),
        "PATH": f"{BIN}:/usr/bin:/bin",
        "GRAPHKIT_HOME": str(home / "gk"),
    }
    env.update(extra)
    return env


def _graphkit(home: Path, *args: str, **extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "graphkit", *args],
        env=_env(home, **extra),
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )


@pytest.mark.parametrize(
    ("shell", "marker"),
    [
        ("bash", "complete -o default -F _graphkit_completion graphkit"),
        ("zsh", "#compdef graphkit"),
        ("fish", "complete --command graphkit"),
        ("powershell", "Register-ArgumentCompleter"),
        ("pwsh", "Register-ArgumentCompleter"),
    ],
)
def test_show_completion_for_each_shell(tmp_path: Path, shell: str, marker: str) -> None:
    r = _graphkit(tmp_path, "--show-completion", shell)
    assert r.returncode == 0, r.stderr
    assert marker in r.stdout and "_GRAPHKIT_COMPLETE" in r.stdout


def test_an_unknown_shell_is_one_line_and_exit_2(tmp_path: Path) -> None:
    r = _graphkit(tmp_path, "--show-completion", "tcsh")
    assert r.returncode == 2 and r.stderr.count("\n") == 1
    assert r.stderr.startswith("graphkit: error: 'tcsh' is not a shell") and "bash" in r.stderr


def test_the_shell_is_detected_when_not_named(tmp_path: Path) -> None:
    if not shutil.which("bash"):
        pytest.skip("no bash")
    r = subprocess.run(
        ["bash", "-c", f"{sys.executable} -m graphkit --show-completion"],
        env=_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 0, r.stderr
    assert "complete -o default -F _graphkit_completion graphkit" in r.stdout


def test_installed_bash_completion_completes_commands_and_options(tmp_path: Path) -> None:
    if not shutil.which("bash"):
        pytest.skip("no bash")
    r = _graphkit(tmp_path, "--install-completion", "bash")
    assert r.returncode == 0, r.stderr
    script = tmp_path / ".bash_completions" / "graphkit.sh"
    assert script.is_file() and str(script) in (tmp_path / ".bashrc").read_text()
    if not (BIN / "graphkit").exists():
        pytest.skip("no graphkit console script beside this interpreter")

    def complete(*words: str) -> list[str]:
        line = " ".join(words)
        run = subprocess.run(
            [
                "bash",
                "-c",
                f"source {script}; COMP_WORDS=({line}); COMP_CWORD={len(words) - 1}; "
                '_graphkit_completion graphkit; printf "%s\\n" "${COMPREPLY[@]}"',
            ],
            env=_env(tmp_path),
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert run.returncode == 0, run.stderr
        return run.stdout.split()

    assert complete("graphkit", "qu") == ["query"]
    assert "--all" in complete("graphkit", "query", "--al")
    assert complete("graphkit", "config", "li") == ["list"]
    assert "--profile" in complete("graphkit", "token", "--pro")


def test_help_lists_the_completion_options(tmp_path: Path) -> None:
    # (Its speed is scripts/bench_startup.py's: completion is built only when asked for.)
    r = _graphkit(tmp_path, "--help")
    assert r.returncode == 0
    assert "--install-completion [SHELL]" in r.stdout and "--show-completion [SHELL]" in r.stdout
