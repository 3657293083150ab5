"""Defaults, checked against the numbers the README documents (read from the README,
so a change to either side alone fails), through the real command."""

from __future__ import annotations

import datetime as dt
import json
import re
import signal
from pathlib import Path
from typing import Any

import pytest
import requests
from _emulator_helpers import identity, no_ca_env, pem_credential, serving
from _onboarding_helpers import clean_env, init_args, run_cli
from _readme import readme_text
from _time_helpers import fake_init_wait
from cryptography import x509


def _documented(pattern: str) -> int:
    found = re.search(pattern, " ".join(readme_text().split()))
    assert found, f"the README no longer says {pattern!r}"
    return int(found.group(1))


def test_selfsign_validity_defaults_to_the_documented_days(certs_cli: Any, certs_dir: Any) -> None:
    days = _documented(r"`--days` from 1 to 3650 \(default (\d+)\)")
    out = certs_dir.path / "default.crt"
    before = dt.datetime.now(dt.UTC).replace(microsecond=0)
    result = certs_cli(["selfsign", "--key", certs_dir.key, "--cn", "x", "-o", out])
    after = dt.datetime.now(dt.UTC)
    assert result.exit_code == 0, result.stderr
    cert = x509.load_pem_x509_certificate(out.read_bytes())
    assert before + dt.timedelta(days=days) <= cert.not_valid_after_utc
    assert cert.not_valid_after_utc <= after + dt.timedelta(days=days)


def test_keygen_size_defaults_to_the_smallest_documented_size(
    certs_cli: Any, tmp_path: Path
) -> None:
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    smallest = _documented(r"RSA only \(Entra ID refuses anything else\), (\d+), 3072 or 4096")
    out = tmp_path / "k.key"
    result = certs_cli(["keygen", "-o", out])
    assert result.exit_code == 0, result.stderr
    key = load_pem_private_key(out.read_bytes(), None)
    assert isinstance(key, rsa.RSAPrivateKey) and key.key_size == smallest


def test_init_waits_the_documented_default_for_propagation(
    graphkit_emulator: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    wait = _documented(r"for up to `--wait` seconds \(default (\d+)\)")
    clean_env(monkeypatch, tmp_path / "home")
    fake = fake_init_wait(monkeypatch, graphkit_emulator)
    # Never uploaded: refused (AADSTS700027) for the whole default wait, then given up.
    result = run_cli(init_args(graphkit_emulator, "--yes"))
    assert result.exit_code == 5, result.stderr
    assert sum(fake.slept) == pytest.approx(wait)


def test_emulator_serve_seeds_the_documented_number_of_users(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import msal

    no_ca_env(monkeypatch)
    users = _documented(r"any number of deterministic users, (\d+) by default")
    ident = identity(tmp_path)
    with serving("--json", "--certificate", str(ident.combined)) as proc:
        assert proc.stdout is not None
        info = json.loads(proc.stdout.readline())
        app = msal.ConfidentialClientApplication(
            info["app"]["client_id"],
            authority=info["authority"],
            client_credential=pem_credential(ident),
            instance_discovery=False,
            verify=info["ca_bundle"],
        )
        token = app.acquire_token_for_client([info["scope"]])["access_token"]
        count = requests.get(
            f"{info['graph_url']}/v1.0/users/$count",
            headers={"Authorization": f"Bearer {token}", "ConsistencyLevel": "eventual"},
            verify=info["ca_bundle"],
            timeout=30,
        )
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=30)
    assert proc.returncode == 0
    assert count.status_code == 200 and int(count.text) == users
