"""`--prompt-passphrase` with a mismatched repeat asks again (three tries), as
ssh-keygen does: through the real command on a terminal (a pty)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from graphkit import crypto
from graphkit.errors import CryptoError

pexpect = pytest.importorskip("pexpect")


def _keygen(tmp_path: Path) -> object:
    env = {k: v for k, v in os.environ.items() if k != "GRAPHKIT_KEY_PASSPHRASE"}
    env["GRAPHKIT_HOME"] = str(tmp_path / "home")
    return pexpect.spawn(
        sys.executable,
        ["-m", "graphkit", "keygen", "--out", str(tmp_path / "app.key"), "--prompt-passphrase"],
        env=env,
        encoding="utf-8",
        timeout=60,
    )


def test_a_mismatched_repeat_asks_again(tmp_path: Path) -> None:
    child = _keygen(tmp_path)
    child.expect("Passphrase: ")
    child.sendline("first try")
    child.expect("Repeat passphrase: ")
    child.sendline("typo")
    child.expect("do not match: try again")
    child.expect("Passphrase: ")
    child.sendline("second try")
    child.expect("Repeat passphrase: ")
    child.sendline("second try")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0, child.before
    key = (tmp_path / "app.key").read_bytes()
    crypto.load_private_key(key, b"second try")  # the agreed one, and only it
    with pytest.raises(CryptoError):
        crypto.load_private_key(key, b"first try")


def test_three_mismatches_give_up_with_one_error(tmp_path: Path) -> None:
    child = _keygen(tmp_path)
    for n in range(3):
        child.expect("Passphrase: ")
        child.sendline(f"a{n}")
        child.expect("Repeat passphrase: ")
        child.sendline(f"b{n}")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 3
    errors = [ln for ln in child.before.splitlines() if ln.startswith("graphkit: error:")]
    assert errors == [
        "graphkit: error: the passphrases do not match (3 tries): run the command again"
    ]
    assert not (tmp_path / "app.key").exists()
