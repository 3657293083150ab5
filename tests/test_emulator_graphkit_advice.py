"""graphkit's own advice where the emulator (or a real tenant) refuses: a stopped
emulator on a loopback address, and a tenant of `common` (AADSTS90010).

The Graph side lives in graphkit/graph.py, the token side in graphkit/token_errors.py,
the CA bundle's check in graphkit/settings.py; the loopback helpers they share in
graphkit/transport.py. (A refused loopback token endpoint is checked, for `token` and
`query`, in tests/test_network_errors.py.)"""

from __future__ import annotations

import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from _auth_helpers import Identity, clean_env, emu_settings, make_identity
from _onboarding_helpers import child_env

from graphkit import graph, transport
from graphkit.errors import AuthError, ExitCode, NetworkError

TENANT = "contoso.onmicrosoft.com"
CLIENT_ID = "11111111-2222-3333-4444-555555555555"


@dataclass
class _Token:
    token: str = "opaque"
    expires_on: int = field(default_factory=lambda: int(time.time()) + 3600)
    claims: dict[str, Any] = field(default_factory=dict)


class _Credential:
    def get_token(self, *, force_refresh: bool = False) -> _Token:
        return _Token()


@pytest.fixture
def ident(tmp_path: Path) -> Identity:
    return make_identity(tmp_path / "ident")


def test_refused_loopback_graph_names_the_emulator(
    monkeypatch: pytest.MonkeyPatch, refused_port: int
) -> None:
    monkeypatch.setattr(graph, "BACKOFF_BASE", 0.001)
    where = f"https://127.0.0.1:{refused_port}"
    client = graph.GraphClient(where, _Credential(), max_attempts=1)
    with client, pytest.raises(NetworkError) as err:
        client.get("/users")
    text = str(err.value)
    assert text.startswith(f"gave up on {where} after 1 attempt: ConnectionError")
    assert f"nothing is listening at {where}: if it is the graphkit emulator" in text
    assert "graphkit emulator serve" in text
    assert err.value.exit_code == ExitCode.NETWORK


def test_a_remote_host_keeps_the_generic_advice() -> None:
    assert transport.is_loopback("127.0.0.1") and transport.is_loopback("127.4.5.6")
    assert transport.is_loopback("localhost") and transport.is_loopback("[::1]")
    assert not transport.is_loopback("graph.microsoft.com")
    assert not transport.is_loopback("10.0.0.1")
    assert not transport.connection_refused(TimeoutError("timed out"))
    assert transport.connection_refused(ConnectionRefusedError(111, "Connection refused"))


@pytest.mark.filterwarnings("ignore:Using /common or /organizations authority")
def test_tenant_common_gets_advice_to_use_the_directory(
    graphkit_emulator: Any,
    ident: Identity,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from graphkit import tokens

    clean_env(monkeypatch, tmp_path / "home")
    emu = graphkit_emulator
    emu.upload_certificate(emu.default_app, ident.cert)
    settings = emu_settings(emu, ident, tenant="common")
    with pytest.raises(AuthError) as err:
        tokens.CertificateCredential(settings, persist_cache=False).get_token()
    assert err.value.code == 90010
    text = str(err.value)
    assert "'common'" in text
    assert "Directory (tenant) ID" in text and "domain" in text


def test_stopped_emulator_without_state_dir_is_not_a_missing_ca_bundle(tmp_path: Path) -> None:
    # Without --state-dir the CA lives in a temporary directory deleted on exit: the
    # profile's --ca-bundle then no longer exists. What the user must hear is that the
    # emulator is not running (and how to keep the CA), not "CA bundle does not exist".
    import json
    import signal
    from types import SimpleNamespace

    from _emulator_helpers import serving
    from _onboarding_helpers import init_args

    home = tmp_path / "home"
    with serving("--json", "--users", "1") as proc:
        assert proc.stdout is not None
        info = json.loads(proc.stdout.readline())
        emu = SimpleNamespace(
            default_tenant=SimpleNamespace(domain=info["tenant"]["domain"]),
            default_app=SimpleNamespace(client_id=info["app"]["client_id"]),
            authority_host=info["authority_host"],
            graph_url=info["graph_url"],
            ca_bundle=info["ca_bundle"],
        )
        made = subprocess.run(
            [sys.executable, "-m", "graphkit", *init_args(emu, "--no-test", "--json")],
            env=child_env(home),
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert made.returncode == 0, made.stderr
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=30)
    assert not Path(info["ca_bundle"]).exists()
    query = subprocess.run(
        [sys.executable, "-m", "graphkit", "query", "/users", "--profile", "work"],
        env=child_env(home),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert query.returncode != 0
    assert "not running" in query.stderr and "graphkit emulator serve" in query.stderr
    assert "Traceback" not in query.stderr
