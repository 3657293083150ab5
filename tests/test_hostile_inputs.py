"""Hostile inputs (issue 10): the corpus in tests/data/hostile_inputs.json, each entry run
through the real command (Typer's CliRunner on graphkit's own app, so the error mapping
of ``graphkit.cli`` is what answers), and the hostile Graph answers of the same file run
through GraphClient against a scripted loopback server.

Every entry must end with graphkit's one-line ``graphkit: error: ...`` carrying the
entry's message fragment and its exit code: never "unexpected X", never a traceback,
never a hang (the CLI entries run under a watchdog of their own).
"""

from __future__ import annotations

import json
import os
import re
import stat
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from test_security import client_identity, echoing_authority, servers, tls
from typer.testing import CliRunner

from graphkit import crypto
from graphkit import graph as graph_mod
from graphkit.cli import app
from graphkit.errors import GraphkitError

__all__ = ["client_identity", "echoing_authority", "servers", "tls"]  # fixtures, used

DATA = Path(__file__).parent / "data"
CORPUS = json.loads((DATA / "hostile_inputs.json").read_text(encoding="utf-8"))
CLI = CORPUS["cli"]
ANSWERS = CORPUS["graph_answers"]

_REPEAT = re.compile(r"\{(.+?)\*(\d+)\}")
_NAMED = ("key", "cert", "pem", "tmp", "data")


def test_the_corpus_is_large_and_well_formed() -> None:
    assert len(CLI) + len(ANSWERS) >= 40
    ids = [e["id"] for e in CLI + ANSWERS]
    assert len(ids) == len(set(ids))
    for entry in CLI:
        assert entry["exit"] in (2, 3, 4, 5, 6, 7, 8, 9), entry["id"]  # classified, never 1
        assert entry["message"], entry["id"]


def _expand(text: str, names: dict[str, str]) -> str:
    for name in _NAMED:
        text = text.replace("{" + name + "}", names[name])
    return _REPEAT.sub(lambda m: m.group(1) * int(m.group(2)), text)


def _make_files(spec: dict[str, Any], tmp: Path, names: dict[str, str]) -> None:
    for rel, what in spec.items():
        path = tmp / rel
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        if what == "@fifo":
            os.mkfifo(path, 0o600)
        elif isinstance(what, dict) and "size" in what:
            path.write_bytes(b"\0" * int(what["size"]))
        elif isinstance(what, dict) and "concat" in what:
            path.write_bytes(b"".join(Path(_expand(f, names)).read_bytes() for f in what["concat"]))
            path.chmod(int(what.get("mode", "600"), 8))
        else:
            text = what["text"] if isinstance(what, dict) else what
            path.write_bytes(_expand(text, names).encode("utf-8", "surrogateescape"))
            path.chmod(int(what.get("mode", "644"), 8) if isinstance(what, dict) else 0o644)


@pytest.fixture(scope="module")
def identity(tmp_path_factory: pytest.TempPathFactory, certs_rsa_key: Any) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("hostile-identity")
    cert = crypto.self_sign(certs_rsa_key, crypto.parse_subject(cn="hostile-inputs"))
    files = {
        "key": (crypto.dump_private_key(certs_rsa_key), 0o600),
        "cert": (crypto.dump_certificate(cert), 0o644),
        "pem": (crypto.dump_combined_pem(certs_rsa_key, cert), 0o600),
    }
    out = {}
    for name, (data, mode) in files.items():
        path = d / f"identity.{name}"
        path.write_bytes(data)
        path.chmod(mode)
        out[name] = path
    return out


@pytest.fixture(scope="module")
def emulator_vars(graphkit_emulator_session: Any, identity: dict[str, Path]) -> dict[str, str]:
    emu = graphkit_emulator_session
    emu.upload_certificate(emu.default_app, identity["cert"].read_bytes())
    return {
        "AZURE_TENANT_ID": emu.default_tenant.id,
        "AZURE_CLIENT_ID": emu.default_app.client_id,
        "AZURE_CLIENT_CERTIFICATE_PATH": str(identity["pem"]),
        "AZURE_AUTHORITY_HOST": emu.authority_host,
        "GRAPHKIT_GRAPH_URL": emu.graph_url,
        "GRAPHKIT_CA_BUNDLE": emu.ca_bundle,
    }


def _run_with_watchdog(args: list[str], env: dict[str, Any], seconds: float = 120) -> Any:
    """CliRunner.invoke in a thread: a hang fails the test instead of stalling the run."""
    result: list[Any] = []
    worker = threading.Thread(
        target=lambda: result.append(CliRunner().invoke(app, args, env=env)), daemon=True
    )
    worker.start()
    worker.join(seconds)
    assert result, f"graphkit {args[0]} did not finish within {seconds:g} s (a hang)"
    return result[0]


@pytest.mark.parametrize("entry", CLI, ids=[e["id"] for e in CLI])
def test_hostile_cli_input(
    entry: dict[str, Any],
    tmp_path: Path,
    identity: dict[str, Path],
    request: pytest.FixtureRequest,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    names = {k: str(v) for k, v in identity.items()} | {"tmp": str(tmp_path), "data": str(DATA)}
    _make_files(entry.get("files", {}), tmp_path, names)
    for var in list(os.environ):
        if var.startswith(("AZURE_", "GRAPHKIT_")):
            monkeypatch.delenv(var)
    env: dict[str, Any] = {"GRAPHKIT_HOME": str(tmp_path / "home")}
    if entry.get("emulator"):
        env.update(request.getfixturevalue("emulator_vars"))
    env.update({k: _expand(v, names) for k, v in entry.get("env", {}).items()})
    args = [_expand(a, names) for a in entry["argv"]]

    result = _run_with_watchdog(args, env)

    errors = [ln for ln in result.stderr.splitlines() if ln.startswith("graphkit: error: ")]
    assert result.exit_code == entry["exit"], (result.exit_code, result.stderr[-500:])
    assert len(errors) == 1, result.stderr[-500:]
    assert entry["message"] in errors[0], errors[0]
    assert "unexpected" not in errors[0] and "Traceback" not in result.stderr
    assert ": " in errors[0][len("graphkit: error: ") :]  # what is wrong: what to do


# ------------------------------------------------------------------ hostile Graph answers


class _Scripted(ThreadingHTTPServer):
    daemon_threads = True
    answers: list[tuple[int, dict[str, str], Any]]


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Scripted

    def do_GET(self) -> None:
        status, headers, body = (
            self.server.answers.pop(0) if self.server.answers else (200, {}, {"value": []})
        )
        if isinstance(body, dict) and set(body) == {"@raw"}:  # bytes as they are, not JSON
            data = _expand(body["@raw"], {n: "" for n in _NAMED}).encode()
        else:
            data = b"" if body is None else json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for k, v in headers.items():
            self.send_header(k, v.encode("latin-1", "replace").decode("latin-1"))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def scripted() -> Iterator[_Scripted]:
    srv = _Scripted(("127.0.0.1", 0), _Handler)
    srv.answers = []
    threading.Thread(target=srv.serve_forever, args=(0.05,), daemon=True).start()
    yield srv
    srv.shutdown()
    srv.server_close()


class _Token:
    def __init__(self) -> None:
        import time

        self.token = "hostile-answers-token-0123456789"
        self.expires_on = int(time.time()) + 3600


class _Credential:
    def get_token(self, *, force_refresh: bool = False) -> _Token:
        return _Token()


@pytest.mark.parametrize("entry", ANSWERS, ids=[e["id"] for e in ANSWERS])
def test_hostile_graph_answer(
    entry: dict[str, Any], scripted: _Scripted, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A Retry-After that is absurd, negative or past is ignored for a backoff (never an
    OverflowError, never an immediate retry); a malformed nextLink or Location is a
    GraphkitError naming it."""
    monkeypatch.setattr(graph_mod, "BACKOFF_BASE", 0.01)
    scripted.answers = [(s, dict(h), b) for s, h, b in entry["answers"]]
    waits: list[float] = []
    url = f"http://127.0.0.1:{scripted.server_address[1]}"
    with graph_mod.GraphClient(
        url, _Credential(), on_wait=lambda s, r: waits.append(s), max_total_wait=30
    ) as client:
        if entry["outcome"] == "backoff":
            assert list(client.iter("/users")) == []
            # Backoff, not the header's value: 0.01 s times a jitter factor in [0.5, 1).
            assert len(waits) == 1 and 0.005 <= waits[0] <= 0.01, waits
            return
        with pytest.raises(GraphkitError) as info:
            list(client.iter("/users"))
    assert int(info.value.exit_code) == entry["exit"], info.value
    assert entry["message"] in str(info.value)


@pytest.mark.parametrize("protection", ["none", "aes", "3des"])
def test_a_pfx_with_a_16384_bit_key_is_refused_before_it_is_opened(protection: str) -> None:
    """Opening a PFX checks its key (a minute for 16384 bits): the size of its key bag
    is read first, in each layout cryptography writes (OpenSSL's is the same)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.serialization import pkcs12

    key = serialization.load_pem_private_key(
        (DATA / "rsa16384.key").read_bytes(), None, unsafe_skip_rsa_key_validation=True
    )
    cert = x509.load_pem_x509_certificate((DATA / "rsa16384.crt").read_bytes())
    builder = serialization.PrivateFormat.PKCS12.encryption_builder()
    enc: Any = {
        "none": serialization.NoEncryption(),
        "aes": builder.kdf_rounds(1000)
        .key_cert_algorithm(pkcs12.PBES.PBESv2SHA256AndAES256CBC)
        .hmac_hash(hashes.SHA256())
        .build(b"pw"),
        "3des": builder.kdf_rounds(1000)
        .key_cert_algorithm(pkcs12.PBES.PBESv1SHA1And3KeyTripleDESCBC)
        .hmac_hash(hashes.SHA1())
        .build(b"pw"),
    }[protection]
    pfx = pkcs12.serialize_key_and_certificates(b"big", key, cert, None, enc)
    with pytest.raises(GraphkitError, match="too large for an RSA key of 8192 bits or less"):
        crypto.load_certificate_bundle(pfx, b"pw")


def test_a_pfx_with_a_4096_bit_key_still_opens(certs_rsa_key: Any) -> None:
    key = crypto.generate_private_key(4096)
    cert = crypto.self_sign(key, crypto.parse_subject(cn="4096"))
    for legacy in (False, True):
        pfx = crypto.dump_pfx(key, cert, b"pw", legacy=legacy)
        assert crypto._pfx_key_bag_size(pfx) is not None
        assert crypto.load_certificate_bundle(pfx, b"pw").certificate == cert


def test_the_16384_bit_key_in_the_corpus_is_real() -> None:
    """The corpus's big key is a genuine RSA key: refused for its size, not its shape."""
    from cryptography.hazmat.primitives import serialization

    data = (DATA / "rsa16384.key").read_bytes()
    key = serialization.load_pem_private_key(data, None, unsafe_skip_rsa_key_validation=True)
    assert key.key_size == 16384  # type: ignore[union-attr]
    assert stat.S_ISREG(os.stat(DATA / "rsa16384.key").st_mode)


# ------------------------------------------------------------------ a hostile identity server

_DEEP = b"[" * 100_000 + b"]" * 100_000


@pytest.mark.parametrize("where", ["discovery", "token"])
def test_identity_server_json_nested_100000_deep(
    echoing_authority: tuple[Any, dict[str, str]], where: str
) -> None:
    """msal parses the identity server's answers with json.loads: one nested 100,000
    deep is a malformed answer (graphkit's error), not a RecursionError."""
    import subprocess
    import sys

    from test_security import TENANT

    server, env = echoing_authority
    path = (
        f"/{TENANT}/v2.0/.well-known/openid-configuration"
        if where == "discovery"
        else f"/{TENANT}/oauth2/v2.0/token"
    )
    server.answers[path] = (200, {}, _DEEP)
    proc = subprocess.run(
        [sys.executable, "-m", "graphkit", "token"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    errors = [ln for ln in proc.stderr.splitlines() if ln.startswith("graphkit: error: ")]
    assert len(errors) == 1 and "unexpected" not in errors[0], proc.stderr[-500:]
    assert proc.returncode in (4, 5, 9), (proc.returncode, errors)
