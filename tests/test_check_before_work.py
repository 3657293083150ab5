"""README: "the commands check before asking for a passphrase or doing any work".

With an output that already exists (and no --force), keygen, csr, selfsign and export
refuse at once: on a terminal no passphrase prompt appears (a pty shows exactly what a
person would see), and in-process no key is generated, read or signed (spies around
graphkit.crypto's working functions). Each spy is shown to see the work when --force
lets it happen, so the "nothing happened" checks can fail.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from _process_helpers import graphkit_argv
from conftest import CertsDir

from graphkit import crypto

pexpect = pytest.importorskip("pexpect")

# The functions that are each command's slow or secret-touching work.
WORK = ("generate_private_key", "load_private_key", "self_sign", "build_csr", "dump_pfx")

Args = Callable[[CertsDir, Path], list[str]]
COMMANDS: dict[str, tuple[Args, str]] = {
    # command: (its arguments writing to ``out``, the work it does first)
    "keygen": (lambda d, out: ["keygen", "-o", str(out)], "generate_private_key"),
    "csr": (
        lambda d, out: ["csr", "--cn", "x", "--key", str(d.enc_key), "--out", str(out)],
        "load_private_key",
    ),
    "selfsign": (
        lambda d, out: ["selfsign", "--cn", "x", "--key", str(d.enc_key), "--out", str(out)],
        "load_private_key",
    ),
    "export": (
        lambda d, out: [
            "export",
            "--key",
            str(d.enc_key),
            "--cert",
            str(d.cert),
            "--pfx",
            str(out),
        ],
        "load_private_key",
    ),
}
PASSPHRASE = "correct horse battery staple"  # conftest's CERTS_PASSPHRASE


@pytest.fixture
def spies(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Names of graphkit.crypto's working functions, in the order they were called."""
    calls: list[str] = []
    for name in WORK:
        real = getattr(crypto, name)

        def spy(*args: Any, _real: Any = real, _name: str = name, **kw: Any) -> Any:
            calls.append(_name)
            return _real(*args, **kw)

        monkeypatch.setattr(crypto, name, spy)
    return calls


def _existing(d: CertsDir) -> Path:
    out = d.path / "existing.out"
    out.write_bytes(b"keep me\n")
    return out


@pytest.mark.parametrize("command", list(COMMANDS))
def test_no_prompt_on_a_terminal_when_the_output_exists(certs_dir: CertsDir, command: str) -> None:
    args, _work = COMMANDS[command]
    out = _existing(certs_dir)
    exe, *argv = graphkit_argv(*args(certs_dir, out), "--prompt-passphrase")
    child = pexpect.spawn(exe, argv, encoding="utf-8", timeout=60, cwd=str(certs_dir.path))
    try:
        # Either a prompt (the bug) or the end: answer a prompt so a buggy run still ends.
        seen = child.expect(["Passphrase: ", pexpect.EOF])
        prompted = seen == 0
        if prompted:
            child.sendline(PASSPHRASE)
            child.sendline(PASSPHRASE)
            child.expect(pexpect.EOF)
    finally:
        child.close()
    assert not prompted, f"{command} asked for a passphrase before refusing: {child.before}"
    assert child.exitstatus == 3
    assert f"graphkit: error: {out} already exists" in child.before
    assert out.read_bytes() == b"keep me\n"


@pytest.mark.parametrize("command", list(COMMANDS))
def test_no_work_when_the_output_exists(
    certs_dir: CertsDir, certs_cli: Any, spies: list[str], command: str
) -> None:
    args, _work = COMMANDS[command]
    out = _existing(certs_dir)
    r = certs_cli([*args(certs_dir, out), "--prompt-passphrase"], input=f"{PASSPHRASE}\n" * 2)
    assert r.exit_code == 3, r.stderr
    assert "already exists" in r.stderr
    assert spies == []
    assert out.read_bytes() == b"keep me\n"


@pytest.mark.parametrize("command", list(COMMANDS))
def test_the_spies_do_see_the_work_when_it_happens(
    certs_dir: CertsDir, certs_cli: Any, spies: list[str], command: str
) -> None:
    args, work = COMMANDS[command]
    out = _existing(certs_dir)
    r = certs_cli(
        [*args(certs_dir, out), "--prompt-passphrase", "--force"], input=f"{PASSPHRASE}\n" * 2
    )
    assert r.exit_code == 0, r.stderr
    assert spies[0] == work
    assert out.read_bytes() != b"keep me\n"
