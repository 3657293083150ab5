"""Hardening (issue 10): secrets that a hostile or echoing server sends back never
reach any output, no credential travels through netrc, a clear-text proxy or a
redirect, and the client assertion goes only to the configured authority.

The servers are the loopback capture servers of test_security; the clients are the
real msal and requests.
"""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from test_security import (  # the capture servers and their fixtures
    TENANT,
    Capture,
    Seen,
    Tls,
    _assertion_sent,
    _FixedCredential,
    client_identity,
    echoing_authority,
    servers,
    tls,
)

from graphkit.errors import ExitCode, GraphError

__all__ = ["client_identity", "echoing_authority", "servers", "tls"]  # fixtures, used

OPAQUE = "opaque-secret-token-0123456789abcdef"  # no JWT: only its value can find it


def _gk(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "graphkit", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def _error_lines(stderr: str) -> int:
    return sum(1 for line in stderr.splitlines() if line.startswith("graphkit: error:"))


# ------------------------------------------------ echoed ids in Graph errors


@pytest.mark.parametrize("status", [400, 401, 403, 404, 429, 500])
def test_graph_error_ids_and_headers_echoing_the_token_are_redacted(
    servers: tuple[Capture, Capture], tls: Tls, status: int
) -> None:
    from graphkit.graph import GraphClient

    graph, _ = servers

    def echo(seen: Seen) -> tuple[int, dict[str, str], Any]:
        sent = seen.authorization()[0]
        body = {
            "error": {
                "code": f"Code{sent}",
                "message": "no",
                "innerError": {"request-id": sent, "client-request-id": sent},
            }
        }
        return status, {"request-id": sent, "Retry-After": "0"}, body

    graph.answers["/v1.0/users"] = echo
    with (
        GraphClient(
            graph.origin(),
            _FixedCredential(OPAQUE),
            ca_bundle=str(tls.ca_bundle),
            max_attempts=1,
        ) as client,
        pytest.raises(GraphError) as info,
    ):
        client.get("/users")
    err = info.value
    assert graph.seen and graph.seen[0].authorization() == [f"Bearer {OPAQUE}"]
    shown = " ".join(
        str(x) for x in (err, err.code, err.request_id, err.client_request_id, err.hint)
    )
    assert OPAQUE not in shown
    assert "[redacted]" in str(err)


@pytest.mark.parametrize("debug", [False, True])
def test_token_endpoint_error_fields_echoing_the_assertion_are_redacted(
    echoing_authority: tuple[Capture, dict[str, str]], debug: bool
) -> None:
    server, env = echoing_authority

    def refuse(seen: Seen) -> tuple[int, dict[str, str], Any]:
        echoed = seen.body.decode()
        return (
            400,
            {},
            {
                "error": f"invalid_request {echoed}",
                "error_description": "AADSTS90014: The required field is missing.",
                "error_codes": [90014],
                "correlation_id": echoed,
                "trace_id": echoed,
            },
        )

    server.answers[f"/{TENANT}/oauth2/v2.0/token"] = refuse
    proc = _gk(env, *(["--debug"] if debug else []), "token")
    assertion = _assertion_sent(server)
    assert proc.returncode != 0
    for stream in (proc.stdout, proc.stderr):
        assert assertion not in stream
        assert assertion.split(".")[2] not in stream  # not even the signature
    if not debug:
        assert proc.returncode == ExitCode.AUTH
        assert _error_lines(proc.stderr) == 1, proc.stderr


def test_doctor_json_echoing_the_assertion_is_redacted(
    echoing_authority: tuple[Capture, dict[str, str]],
) -> None:
    server, env = echoing_authority
    server.answers[f"/{TENANT}/oauth2/v2.0/token"] = lambda seen: (
        400,
        {},
        {
            "error": "invalid_client",
            "error_description": "no",
            "correlation_id": seen.body.decode(),
        },
    )
    proc = _gk(env, "doctor", "--json")
    assertion = _assertion_sent(server)
    assert assertion not in proc.stdout and assertion not in proc.stderr
    data = json.loads(proc.stdout)
    assert any(c["status"] == "fail" for c in data["checks"])


# ------------------------------------------------------- msal's HTTP cache


def test_msal_http_cache_keys_are_as_token_cache_expects() -> None:
    """token_cache.discovery_only relies on how msal keys its http_cache."""
    import msal.throttled_http_client as thc
    from msal.individual_cache import _ExpiringMapping

    from graphkit.token_cache import _DISCOVERY_PREFIX, _MSAL_INDEX_KEY

    assert _ExpiringMapping._INDEX == _MSAL_INDEX_KEY
    source = Path(thc.__file__).read_text()
    assert '"GET {} hash={} 2xx"' in source, "msal's discovery cache key changed"
    assert '"POST {} ' in source, "msal's token-answer cache key changed"
    assert _DISCOVERY_PREFIX == "GET "


@pytest.mark.parametrize("answer", ["429-echo", "503-echo", "200-retry-after"])
def test_token_endpoint_answers_never_reach_the_http_cache_file(
    echoing_authority: tuple[Capture, dict[str, str]], answer: str
) -> None:
    from graphkit.token_cache import HTTP_CACHE_FILE

    server, env = echoing_authority
    token = "eyJhbGciOiJub25lIn0.eyJhdWQiOiJ4In0.c2VjcmV0LXNpZ25hdHVyZQ"
    if answer == "200-retry-after":
        server.answers[f"/{TENANT}/oauth2/v2.0/token"] = (
            200,
            {"Retry-After": "120"},
            {"token_type": "Bearer", "expires_in": 3599, "access_token": token},
        )
    else:
        status = int(answer[:3])
        server.answers[f"/{TENANT}/oauth2/v2.0/token"] = lambda seen: (
            status,
            {"Retry-After": "120"},
            {"error": "temporarily_unavailable", "error_description": seen.body.decode()},
        )
    _gk(env, "token", "--raw")
    assertion = _assertion_sent(server)
    cache = Path(env["GRAPHKIT_HOME"]) / HTTP_CACHE_FILE
    assert cache.exists()  # discovery was kept
    raw = cache.read_bytes()
    assert assertion.encode() not in raw and token.encode() not in raw
    data = pickle.loads(raw)
    assert data and all(k == "_index_" or k.startswith("GET ") for k in data)


# --------------------------------------------------------------- netrc


def test_netrc_credentials_are_never_sent(
    echoing_authority: tuple[Capture, dict[str, str]],
    servers: tuple[Capture, Capture],
    tls: Tls,
    tmp_path: Path,
) -> None:
    """An entry for the login or Graph host would replace the assertion's form auth
    and the bearer token with Basic auth and the netrc password."""
    from graphkit.graph import GraphClient

    server, env = echoing_authority
    graph, _ = servers
    netrc = tmp_path / "netrc"
    netrc.write_text("machine 127.0.0.1 login alice password netrc-password-0123456789\n")
    netrc.chmod(0o600)
    env = {**env, "NETRC": str(netrc)}
    _gk(env, "token", "--raw")
    post = next(s for s in server.seen if s.method == "POST")
    assert post.authorization() == []
    old = os.environ.get("NETRC")
    os.environ["NETRC"] = str(netrc)
    try:
        with GraphClient(
            graph.origin(), _FixedCredential(OPAQUE), ca_bundle=str(tls.ca_bundle)
        ) as client:
            client.get("/users")
    finally:
        if old is None:
            del os.environ["NETRC"]
        else:
            os.environ["NETRC"] = old
    assert graph.seen[-1].authorization() == [f"Bearer {OPAQUE}"]


# ------------------------------------------------------------ clear-text proxy


class _PlainCapture:
    """A plain-http server recording request lines and Authorization headers."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, list[str]]] = []
        owner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                owner.seen.append((self.path, self.headers.get_all("Authorization") or []))
                raw = json.dumps({"value": [{"id": "1"}]}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def test_a_token_never_goes_in_clear_through_a_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    from graphkit.graph import GraphClient

    graph, proxy = _PlainCapture(), _PlainCapture()
    try:
        for var in ("HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"):
            monkeypatch.setenv(var, proxy.url)
        for var in ("NO_PROXY", "no_proxy"):
            monkeypatch.delenv(var, raising=False)
        with GraphClient(graph.url, _FixedCredential(OPAQUE)) as client:
            assert client.get("/users")["value"] == [{"id": "1"}]
    finally:
        graph.close()
        proxy.close()
    assert proxy.seen == []
    assert graph.seen == [("/v1.0/users", [f"Bearer {OPAQUE}"])]


# ---------------------------------------- the assertion goes only to the authority


def test_a_token_endpoint_on_another_host_gets_no_assertion(
    echoing_authority: tuple[Capture, dict[str, str]], servers: tuple[Capture, Capture]
) -> None:
    server, env = echoing_authority
    _, other = servers
    elsewhere = other.origin("localhost")
    server.answers[f"/{TENANT}/v2.0/.well-known/openid-configuration"] = (
        200,
        {},
        {
            "token_endpoint": f"{elsewhere}/{TENANT}/oauth2/v2.0/token",
            "authorization_endpoint": f"{elsewhere}/{TENANT}/oauth2/v2.0/authorize",
            "issuer": f"{elsewhere}/{TENANT}/v2.0",
        },
    )
    proc = _gk(env, "token")
    assert proc.returncode == ExitCode.AUTH, proc.stderr
    assert other.seen == []
    assert not [s for s in server.seen if s.method == "POST"]
    assert f"localhost:{other.port}" in proc.stderr and _error_lines(proc.stderr) == 1


@pytest.mark.parametrize("status", [302, 307])
def test_discovery_answering_a_redirect_is_not_followed(
    echoing_authority: tuple[Capture, dict[str, str]],
    servers: tuple[Capture, Capture],
    status: int,
) -> None:
    server, env = echoing_authority
    _, other = servers
    server.answers[f"/{TENANT}/v2.0/.well-known/openid-configuration"] = (
        status,
        {"Location": other.origin("localhost") + "/x/v2.0/.well-known/openid-configuration"},
        {},
    )
    proc = _gk(env, "token")
    assert proc.returncode == ExitCode.AUTH, proc.stderr
    assert other.seen == []
    assert f"answered with a redirect (HTTP {status})" in proc.stderr


# ------------------------------------------------------------ files on disk


def test_atomic_write_never_changes_a_mode_by_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another user who can write the directory could swap the temporary name for a
    link between close and chmod: the mode is set on the open descriptor instead."""
    from graphkit import files

    def chmod_by_path(*args: Any, **kwargs: Any) -> None:
        raise AssertionError(f"chmod by path: {args}")

    monkeypatch.setattr(files.os, "chmod", chmod_by_path)
    old = os.umask(0o077)
    try:
        out = files.atomic_write(tmp_path / "x.crt", b"cert", mode=files.PUBLIC)
    finally:
        os.umask(old)
    assert out.stat().st_mode & 0o777 == 0o644


def _killed_writer(directory: Path) -> None:
    """A real process, SIGKILLed in the middle of a write, as a crash or OOM kill."""
    code = (
        "import os, signal, sys\n"
        "from graphkit import files\n"
        "def die(fd): os.kill(os.getpid(), signal.SIGKILL)\n"
        "files._fsync = die\n"
        f"files.atomic_write({str(directory / 'app.key')!r}, b'k' * 4096)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], timeout=60, check=False)
    assert proc.returncode == -9


def test_a_killed_write_leaves_no_temporary_file_after_the_next_run(tmp_path: Path) -> None:
    from graphkit import files

    _killed_writer(tmp_path)
    stray = [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")]
    assert len(stray) == 1 and stray[0].startswith(".app.key.")
    assert not (tmp_path / "app.key").exists()
    files.atomic_write(tmp_path / "other.crt", b"c", mode=files.PUBLIC)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["other.crt"]


def test_a_live_writers_temporary_file_is_left_alone(tmp_path: Path) -> None:
    from graphkit import files

    mine = tmp_path / f".x.key.{os.getpid()}-{'a' * 12}.tmp"
    mine.write_bytes(b"in progress")
    other_pid = os.getppid()  # alive: the test runner's parent
    theirs = tmp_path / f".y.key.{other_pid}-{'b' * 12}.tmp"
    theirs.write_bytes(b"in progress")
    not_ours = tmp_path / ".notes.tmp"
    not_ours.write_bytes(b"a user's file")
    assert files.remove_stale_temporaries(tmp_path) == []
    assert mine.exists() and theirs.exists() and not_ours.exists()


@pytest.mark.parametrize("force", [False, True])
def test_export_is_all_or_nothing_on_a_full_disk(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, force: bool
) -> None:
    """ENOSPC on the third file: no file is left, and (with --force) the old ones are back."""
    import errno

    from typer.testing import CliRunner

    from graphkit import crypto, files
    from graphkit.cli import app

    key = crypto.generate_private_key(2048)
    cert = crypto.self_sign(key, crypto.parse_subject(cn="export-test"))
    (tmp_path / "k.pem").write_bytes(crypto.dump_private_key(key))
    (tmp_path / "c.crt").write_bytes(crypto.dump_certificate(cert))
    outs = {name: tmp_path / name for name in ("a.pfx", "a.pem", "a.der")}
    if force:
        for path in outs.values():
            path.write_bytes(b"old " + path.name.encode())
    calls = {"n": 0}
    real = files._fsync

    def third_fails(fd: int) -> None:
        calls["n"] += 1
        if calls["n"] == 3:
            raise OSError(errno.ENOSPC, "No space left on device")
        real(fd)

    monkeypatch.setattr(files, "_fsync", third_fails)
    pw = tmp_path / "pw"
    pw.write_text("correct horse\n")
    args = ["export", "--key", str(tmp_path / "k.pem"), "--cert", str(tmp_path / "c.crt")]
    args += ["--pfx", str(outs["a.pfx"]), "--pem", str(outs["a.pem"]), "--der", str(outs["a.der"])]
    args += ["--passphrase-file", str(pw)] + (["--force"] if force else [])
    r = CliRunner().invoke(app, args)
    assert r.exit_code == ExitCode.INPUT, r.output
    assert "No space left on device" in r.stderr and "nothing was changed" in r.stderr
    assert "Wrote" not in r.stderr
    for path in outs.values():
        if force:
            assert path.read_bytes() == b"old " + path.name.encode()
        else:
            assert not path.exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []


def test_export_with_force_replaces_all_three(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from graphkit import crypto
    from graphkit.cli import app

    key = crypto.generate_private_key(2048)
    cert = crypto.self_sign(key, crypto.parse_subject(cn="export-test"))
    (tmp_path / "k.pem").write_bytes(crypto.dump_private_key(key))
    (tmp_path / "c.crt").write_bytes(crypto.dump_certificate(cert))
    pem, der = tmp_path / "a.pem", tmp_path / "a.der"
    pem.write_bytes(b"old")
    der.write_bytes(b"old")
    args = ["export", "--key", str(tmp_path / "k.pem"), "--cert", str(tmp_path / "c.crt")]
    args += ["--pem", str(pem), "--der", str(der), "--no-passphrase", "--force"]
    r = CliRunner().invoke(app, args)
    assert r.exit_code == 0, r.output
    assert b"BEGIN CERTIFICATE" in pem.read_bytes() and der.read_bytes()[:1] == b"\x30"
    assert pem.stat().st_mode & 0o777 == 0o600
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.der", "a.pem", "c.crt", "k.pem"]


# ----------------------------------------------- one token for many processes


def test_sixteen_cold_processes_make_at_most_two_token_requests(
    graphkit_emulator: Any, tmp_path: Path
) -> None:
    """A cron burst or a parallel CI matrix sharing a state directory: a lock around
    acquisition makes the others wait, then find the token in the cache."""
    from _auth_helpers import emulator_env, make_identity

    emu = graphkit_emulator
    ident = make_identity(tmp_path / "ident")
    emu.upload_certificate(emu.default_app.client_id, ident.cert)
    home = tmp_path / "home"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AZURE_", "GRAPHKIT_"))}
    env.update(emulator_env(emu, ident.combined, home), NO_COLOR="1")
    cmd = [sys.executable, "-m", "graphkit", "query", "/users", "--top", "1", "-o", "json"]
    procs = [
        subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(16)
    ]
    results = [(p.communicate(timeout=300), p.returncode) for p in procs]
    for (out, err), code in results:
        assert code == 0, err
        assert len(json.loads(out)) == 1
    kinds = [r["kind"] for r in emu.requests()]
    assert kinds.count("graph") == 16
    assert 1 <= kinds.count("token") <= 2, kinds.count("token")


def test_a_full_disk_while_saving_the_token_keeps_it_and_blames_no_other_process(
    graphkit_emulator: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: Any
) -> None:
    import errno
    import logging

    from _auth_helpers import emu_settings, make_identity
    from msal_extensions import filelock

    from graphkit import tokens

    emu = graphkit_emulator
    ident = make_identity(tmp_path / "ident")
    emu.upload_certificate(emu.default_app.client_id, ident.cert)
    monkeypatch.setenv("GRAPHKIT_HOME", str(tmp_path / "home"))
    real = filelock.CrossPlatLock._create_lock_file

    def full_disk(self: Any, content: bytes) -> None:
        # What open(lock, "xb").write(...) does on a full disk: the name, no content.
        with open(self._lockpath, "xb"):
            pass
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(filelock.CrossPlatLock, "_create_lock_file", full_disk)
    with caplog.at_level(logging.WARNING, logger="graphkit"):
        token = tokens.CertificateCredential(emu_settings(emu, ident)).get_token()
    assert token.token and token.from_cache is False  # not lost
    assert "No space left on device" in caplog.text and "another process" not in caplog.text
    assert not list((tmp_path / "home").glob("*.lockfile"))
    monkeypatch.setattr(filelock.CrossPlatLock, "_create_lock_file", real)
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="graphkit"):
        tokens.CertificateCredential(emu_settings(emu, ident)).get_token()
    assert "another process" not in caplog.text


# --------------------------------------------- config and caches, trusted


def _config_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    from graphkit.settings import save_profile

    home = tmp_path / "home"
    monkeypatch.setenv("GRAPHKIT_HOME", str(home))
    save_profile("work", {"tenant": "contoso.onmicrosoft.com"})
    return home


@pytest.mark.skipif(os.name != "posix", reason="POSIX permissions")
def test_a_linked_config_whose_directory_others_can_write_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from graphkit.errors import ConfigError
    from graphkit.settings import read_config

    home = _config_home(tmp_path, monkeypatch)
    dotfiles = tmp_path / "dotfiles"
    dotfiles.mkdir()
    (home / "config.toml").rename(dotfiles / "graphkit.toml")
    (home / "config.toml").symlink_to(dotfiles / "graphkit.toml")
    assert read_config()["default_profile"] == "work"  # control: a private target dir
    dotfiles.chmod(0o777)  # others could now swap the file the link points to
    with pytest.raises(ConfigError, match=r"lies under .*dotfiles, which is writable by other"):
        read_config()


@pytest.mark.skipif(os.name != "posix", reason="POSIX permissions")
def test_a_config_below_a_directory_others_can_write_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A private GRAPHKIT_HOME inside a shared, non-sticky directory: others can rename
    the whole home away and put their own in its place."""
    from graphkit.errors import ConfigError
    from graphkit.settings import read_config

    shared = tmp_path / "shared"
    shared.mkdir()
    home = shared / "home"
    monkeypatch.setenv("GRAPHKIT_HOME", str(home))
    from graphkit.settings import save_profile

    save_profile("work", {"tenant": "contoso.onmicrosoft.com"})
    assert read_config()["default_profile"] == "work"
    shared.chmod(0o777)
    with pytest.raises(ConfigError, match=r"lies under .*shared, which is writable by other"):
        read_config()
    shared.chmod(0o1777)  # the sticky bit (as on /tmp): they cannot rename ours
    assert read_config()["default_profile"] == "work"


@pytest.mark.skipif(os.name != "posix", reason="POSIX permissions")
def test_a_cache_below_a_directory_others_can_write_is_not_trusted(tmp_path: Path) -> None:
    from graphkit import files

    shared = tmp_path / "shared"
    state = shared / "state"
    state.mkdir(parents=True, mode=0o700)
    cache = state / "cache.json"
    files.atomic_write(cache, b"{}")
    assert files.read_private(cache) == b"{}"
    shared.chmod(0o777)
    assert files.read_private(cache) is None


def test_a_config_that_is_not_a_regular_file_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from graphkit.errors import ConfigError
    from graphkit.settings import read_config

    home = tmp_path / "home"
    home.mkdir(mode=0o700)
    monkeypatch.setenv("GRAPHKIT_HOME", str(home))
    os.mkfifo(home / "config.toml", 0o600)
    with pytest.raises(ConfigError, match="not a regular file"):
        read_config()


# ------------------------------------- every command against echoing servers


def _jwt(claims: dict[str, Any]) -> str:
    import base64

    def part(obj: Any) -> str:
        return base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b"=").decode()

    return f"{part({'alg': 'RS256', 'typ': 'JWT'})}.{part(claims)}.c2lnbmF0dXJlLXNlY3JldA"


COMMANDS = [
    ["token"],
    ["token", "--json"],
    ["query", "/users"],
    ["query", "/users", "-o", "json"],
    ["query", "/organization", "-o", "jsonl"],
    ["doctor"],
    ["doctor", "--json"],
    ["config", "show"],
    ["config", "show", "--json"],
]


@pytest.mark.parametrize("debug", [False, True], ids=["plain", "debug"])
@pytest.mark.parametrize("args", COMMANDS, ids=lambda a: " ".join(a))
def test_no_secret_reaches_any_output_or_file(
    echoing_authority: tuple[Capture, dict[str, str]],
    client_identity: tuple[Any, Any],
    args: list[str],
    debug: bool,
) -> None:
    """One server plays the identity platform (issuing a token) and Graph, and echoes
    everything it was sent into its error messages, ids and headers."""
    import time

    from graphkit import crypto

    server, env = echoing_authority
    token = _jwt({"aud": server.origin(), "exp": int(time.time()) + 3600, "roles": ["X"]})
    server.answers[f"/{TENANT}/oauth2/v2.0/token"] = (
        200,
        {},
        {"token_type": "Bearer", "expires_in": 3599, "access_token": token},
    )

    def echo(seen: Seen) -> tuple[int, dict[str, str], Any]:
        sent = " ".join(f"{k}: {v}" for k, v in seen.headers)
        error = {"code": sent, "message": sent, "innerError": {"request-id": sent}}
        return 403, {"request-id": sent}, {"error": error}

    for path in ("/v1.0/users", "/v1.0/organization"):
        server.answers[path] = echo
    env = {**env, "GRAPHKIT_GRAPH_URL": server.origin(), "NO_COLOR": "1"}
    proc = _gk(env, *(["--debug"] if debug else []), *args)
    posts = [s for s in server.seen if s.method == "POST"]
    assertions = [a for s in posts for a in [_form(s.body).get("client_assertion", "")] if a]
    key, _ = client_identity
    key_b64 = "".join(crypto.dump_private_key(key).decode().splitlines()[1:-1])
    secrets = [token, token.split(".")[2], *assertions, key_b64[40:100]]
    if args[0] != "config":
        assert assertions, "the command authenticated"
    for secret in secrets:
        assert secret not in proc.stdout, (args, "stdout")
        assert secret not in proc.stderr, (args, "stderr")
    home = Path(env["GRAPHKIT_HOME"])
    for written in home.rglob("*"):
        if not written.is_file():
            continue
        data = written.read_bytes()
        for secret in [*assertions, key_b64[40:100]]:
            assert secret.encode() not in data, written
        if not written.name.startswith("msal_token_cache-"):  # the token cache, 0600
            assert token.encode() not in data, written
    assert "Traceback" not in proc.stderr or debug


def _form(body: bytes) -> dict[str, str]:
    from urllib.parse import parse_qs

    return {k: v[0] for k, v in parse_qs(body.decode()).items()}


# ------------------------------------------------------------- paging faults


@pytest.mark.parametrize(
    "link",
    ["{same}", "{same}#@x", "{other}"],
    ids=["its-own-url", "own-url-with-fragment", "a-cycle-of-two"],
)
def test_a_repeated_next_link_ends_the_run_without_repeating_items(
    servers: tuple[Capture, Capture], tls: Tls, link: str
) -> None:
    from graphkit.graph import GraphClient

    graph, _ = servers
    same = f"{graph.origin()}/v1.0/users?page=1"
    other = f"{graph.origin()}/v1.0/users?page=2"
    pages = {
        "1": {"value": [{"id": "a"}], "@odata.nextLink": link.format(same=same, other=other)},
        "2": {"value": [{"id": "b"}], "@odata.nextLink": same},
    }

    def answer(seen: Seen) -> tuple[int, dict[str, str], Any]:
        page = seen.path.split("page=", 1)[1] if "page=" in seen.path else "1"
        return 200, {}, pages[page]

    graph.answers["/v1.0/users"] = answer
    items: list[str] = []
    with (
        GraphClient(graph.origin(), _FixedCredential(), ca_bundle=str(tls.ca_bundle)) as client,
        pytest.raises(GraphError, match="already returned"),
    ):
        for item in client.iter("/users?page=1"):
            items.append(item["id"])
    assert items == (["a", "b"] if link == "{other}" else ["a"])
    assert len(graph.seen) == len(items)  # the repeated page was never fetched again


@pytest.mark.graphkit_emulator(users=2300, token_lifetime=30)
def test_a_token_shorter_than_the_reuse_margin_still_serves_many_requests(
    graphkit_emulator: Any, tmp_path: Path
) -> None:
    """With tokens living 30 s (under the 60 s margin) every page fetched a new token
    (26 token requests for 23 pages); now one token serves while it is fresh."""
    from _auth_helpers import emu_settings, make_identity

    from graphkit import tokens
    from graphkit.graph import GraphClient

    emu = graphkit_emulator
    ident = make_identity(tmp_path / "ident")
    emu.upload_certificate(emu.default_app.client_id, ident.cert)
    credential = tokens.CertificateCredential(emu_settings(emu, ident), persist_cache=False)
    frozen = [emu.now()]
    with GraphClient(
        emu.graph_url, credential, ca_bundle=emu.ca_bundle, now=lambda: frozen[0]
    ) as client:
        ids = [u["id"] for u in client.iter("/users", {"$top": 100})]
        kinds = [r["kind"] for r in emu.requests()]
        assert len(ids) == 2300 and kinds.count("graph") == 23
        assert kinds.count("token") == 1
        frozen[0] += 16  # past half of its 30 s: renewed before the next request
        client.get("/users", {"$top": 1})
    kinds = [r["kind"] for r in emu.requests()]
    assert kinds.count("token") == 2


# ------------------------------------------------------------------------ soak


@pytest.mark.graphkit_emulator(users=20_000, token_lifetime=60)
def test_soak_paging_through_faults_and_expiring_tokens(
    graphkit_emulator: Any, tmp_path: Path
) -> None:
    """20,000 users, 100 a page, with 10% of Graph requests and 10% of token requests
    failing (429 / 503 / 504 / reset, seeded), and tokens that expire several times
    during the run (the emulator's clock advances by every wait): every id exactly once.
    Waits are injected, so the run takes seconds, and what was waited is bounded."""
    import time

    from _auth_helpers import emu_settings, make_identity

    from graphkit import tokens
    from graphkit.graph import GraphClient
    from graphkit.retry import RetryPolicy

    emu = graphkit_emulator
    ident = make_identity(tmp_path / "ident")
    emu.upload_certificate(emu.default_app.client_id, ident.cert)
    for n, kind in enumerate(("429", "503", "504", "reset")):
        for endpoint in ("graph", "token"):
            emu.add_fault(kind=kind, endpoint=endpoint, probability=0.025, seed=n, retry_after=None)
    slept: list[float] = []
    clock = [emu.now()]

    def sleep(seconds: float) -> None:  # time passes for graphkit and the emulator alike
        slept.append(seconds)
        clock[0] += seconds
        emu.advance(seconds)

    def page_time() -> float:
        return clock[0]

    credential = tokens.CertificateCredential(
        emu_settings(emu, ident),
        persist_cache=False,
        retry=RetryPolicy(sleep=sleep, clock=page_time),
    )
    started = time.monotonic()
    with GraphClient(
        emu.graph_url, credential, ca_bundle=emu.ca_bundle, sleep=sleep, clock=page_time,
        now=page_time,
    ) as client:  # fmt: skip
        ids = []
        for n, user in enumerate(client.iter("/users", {"$top": 100}), 1):
            ids.append(user["id"])
            if n % 100 == 0:  # each page takes 2 s: tokens expire during the run
                clock[0] += 2
                emu.advance(2)
    seconds = time.monotonic() - started
    assert len(ids) == 20_000 and len(set(ids)) == 20_000
    faults = {(f["endpoint"], f["kind"]): f["injected"] for f in emu.faults()}
    log = emu.requests()
    token_requests = sum(1 for r in log if r["kind"] == "token")
    graph_faults = sum(v for (e, _), v in faults.items() if e == "graph")
    token_faults = sum(v for (e, _), v in faults.items() if e == "token")
    print(
        f"soak: {len(ids)} items, {graph_faults} Graph faults, {token_faults} token faults, "
        f"{token_requests} token requests, {sum(slept):.0f} s waited (injected), "
        f"{seconds:.1f} s wall"
    )
    assert graph_faults >= 10 and token_faults >= 1  # the faults really fired
    assert token_requests >= 400 // 60  # a token lives 60 s; the run takes over 400 s
    assert sum(slept) < 120 * 200  # no request waited past its cap
