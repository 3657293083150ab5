"""Security review: secrets stay secret, tokens go only to the Graph host, files stay private.

Each block tests one fix from the review. Servers run on 127.0.0.1 only; the Graph
side is either the emulator or a small HTTPS capture server that records what it
received (so a test can show that a token did NOT arrive somewhere).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from _auth_helpers import token_cache_file
from _scripted_server import Capture, Seen, start_capture

from graphkit import crypto
from graphkit.errors import ForeignHostError
from graphkit.settings import read_config, save_profile

SECRET_TOKEN = "SECRET-TOKEN-must-not-travel"


# ----------------------------------------------------------------- capture servers


@dataclass
class Tls:
    ca_bundle: Path
    server_pem: Path


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> Tls:
    """A CA and a server certificate for 127.0.0.1 and localhost."""
    directory = tmp_path_factory.mktemp("tls")
    ca_key, ca_cert = crypto.make_ca("graphkit security tests CA")
    key, cert = crypto.issue_server_certificate(ca_key, ca_cert, ("127.0.0.1", "localhost"))
    ca = directory / "ca.pem"
    ca.write_bytes(crypto.dump_certificate(ca_cert))
    pem = directory / "server.pem"
    pem.write_bytes(crypto.dump_certificate(cert) + crypto.dump_private_key(key))
    return Tls(ca, pem)


@pytest.fixture
def servers(tls: Tls) -> Iterator[tuple[Capture, Capture]]:
    """(the Graph host, another host): two capture servers."""
    graph, other = start_capture(tls.server_pem), start_capture(tls.server_pem)
    yield graph, other
    for cap in (graph, other):
        assert cap.httpd is not None
        cap.httpd.shutdown()
        cap.httpd.server_close()


@dataclass
class _Token:
    token: str = SECRET_TOKEN
    expires_on: int = 4_000_000_000
    claims: dict[str, Any] = field(default_factory=dict)


class _FixedCredential:
    """A TokenCredential handing out one known token (the token source is not under test)."""

    def __init__(self, token: str = SECRET_TOKEN) -> None:
        self.token = token

    def get_token(self, *, force_refresh: bool = False) -> Any:
        return _Token(token=self.token)


def _client(graph: Capture, tls: Tls) -> Any:
    from graphkit.graph import GraphClient

    return GraphClient(graph.origin(), _FixedCredential(), ca_bundle=str(tls.ca_bundle))


# ------------------------------------------- the token goes only to the Graph host


def _ambiguous(other: Capture, graph: Capture) -> str:
    """A URL urllib.parse reads as the Graph host but requests sends to ``other``."""
    return f"https://localhost:{other.port}\\@127.0.0.1:{graph.port}/v1.0/users"


def test_the_ambiguous_url_really_goes_elsewhere(
    servers: tuple[Capture, Capture], tls: Tls
) -> None:
    """Control for the tests below: the parser differential exists in this requests."""
    from graphkit.graph import _wire_url

    graph, other = servers
    url = _ambiguous(other, graph)
    assert urlsplit(url).port == graph.port  # what a urllib.parse-only check sees
    assert urlsplit(_wire_url(url)).port == other.port  # where requests connects


def test_ambiguous_url_is_refused_before_any_request(
    servers: tuple[Capture, Capture], tls: Tls
) -> None:
    graph, other = servers
    with _client(graph, tls) as client, pytest.raises(ForeignHostError) as info:
        client.get(_ambiguous(other, graph))
    assert f"localhost:{other.port}" in str(info.value)
    assert "ambiguous" in str(info.value)
    assert graph.seen == [] and other.seen == []


def test_ambiguous_next_link_is_refused(servers: tuple[Capture, Capture], tls: Tls) -> None:
    graph, other = servers
    graph.answers["/v1.0/users"] = (
        200,
        {},
        {"value": [{"id": "1"}], "@odata.nextLink": _ambiguous(other, graph) + "?page=2"},
    )
    with _client(graph, tls) as client:
        pages = client.pages("/users")
        assert next(pages)["value"] == [{"id": "1"}]
        with pytest.raises(ForeignHostError):
            next(pages)
    assert len(graph.seen) == 1 and graph.seen[0].authorization() == [f"Bearer {SECRET_TOKEN}"]
    assert other.seen == []


@pytest.mark.parametrize("form", ["ambiguous", "other-origin"])
def test_redirect_off_the_graph_host_is_followed_without_the_token(
    servers: tuple[Capture, Capture], tls: Tls, form: str
) -> None:
    graph, other = servers
    if form == "ambiguous":
        location = _ambiguous(other, graph).replace("/v1.0/users", "/landed")
    else:
        location = other.origin("localhost") + "/landed"
    graph.answers["/v1.0/users"] = (302, {"Location": location}, {})
    with _client(graph, tls) as client:
        client.get(
            "/users",
            # A caller's own Authorization header, in any spelling, is never sent either.
            headers={"Authorization ": "Bearer caller", " authorization": "Bearer caller2"},
        )
    assert [s.authorization() for s in graph.seen] == [[f"Bearer {SECRET_TOKEN}"]]
    assert len(other.seen) == 1  # the redirect was followed...
    assert other.seen[0].authorization() == []  # ...without any token


@pytest.mark.parametrize(
    "url",
    [
        "https://user:password@127.0.0.1:{port}/v1.0/users",
        "https://user@127.0.0.1:{port}/v1.0/users",
    ],
)
def test_url_with_a_user_name_is_refused(
    servers: tuple[Capture, Capture], tls: Tls, url: str
) -> None:
    graph, _ = servers
    with _client(graph, tls) as client, pytest.raises(ForeignHostError):
        client.get(url.format(port=graph.port))
    assert graph.seen == []


def test_plain_graph_urls_still_work(servers: tuple[Capture, Capture], tls: Tls) -> None:
    graph, _ = servers
    with _client(graph, tls) as client:
        client.get(f"{graph.origin()}/v1.0/users?$filter=mail eq 'a@b.example'")
        client.get(f"https://127.0.0.1:{graph.port}/beta/users/ada@contoso.example")
        assert client.is_graph_url(f"{graph.origin()}/v1.0/users")
        assert not client.is_graph_url(f"https://localhost:{graph.port}/v1.0/users")
    assert [s.authorization() for s in graph.seen] == [[f"Bearer {SECRET_TOKEN}"]] * 2


def test_graph_client_refuses_an_ambiguous_graph_url(tls: Tls) -> None:
    from graphkit.errors import UsageError
    from graphkit.graph import GraphClient

    with pytest.raises(UsageError):
        GraphClient("https://evil.example\\@graph.microsoft.com", _FixedCredential())


# The command line, against the emulator (real msal, real requests).


@pytest.fixture(scope="module")
def client_identity() -> tuple[Any, Any]:
    key = crypto.generate_private_key(2048)
    return key, crypto.self_sign(key, crypto.parse_subject(cn="graphkit-security-tests"))


@dataclass
class Env:
    emu: Any
    home: Path
    vars: dict[str, str]


@pytest.fixture
def emu_env(
    graphkit_emulator: Any,
    client_identity: tuple[Any, Any],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> Env:
    """The environment variables a user of the emulator would set; GRAPHKIT_HOME is new."""
    import os

    emu = graphkit_emulator
    key, cert = client_identity
    emu.upload_certificate(emu.default_app, cert)
    pem = tmp_path / "client.pem"
    pem.write_bytes(crypto.dump_combined_pem(key, cert))
    pem.chmod(0o600)
    for name in list(os.environ):
        if name.startswith(("AZURE_", "GRAPHKIT_")):
            monkeypatch.delenv(name)
    home = tmp_path / "home"
    env = {
        "AZURE_TENANT_ID": emu.default_tenant.id,
        "AZURE_CLIENT_ID": emu.default_app.client_id,
        "AZURE_CLIENT_CERTIFICATE_PATH": str(pem),
        "AZURE_AUTHORITY_HOST": emu.authority_host,
        "GRAPHKIT_GRAPH_URL": emu.graph_url,
        "GRAPHKIT_CA_BUNDLE": emu.ca_bundle,
        "GRAPHKIT_HOME": str(home),
    }
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    return Env(emu, home, env)


def _cli(*args: str) -> Any:
    from typer.testing import CliRunner

    from graphkit.cli import app

    return CliRunner().invoke(app, list(args))


def test_query_refuses_an_ambiguous_url(emu_env: Env) -> None:
    from graphkit.errors import ExitCode

    port = urlsplit(emu_env.emu.graph_url).port
    # requests would connect to localhost:PORT (the emulator itself, so the request
    # would succeed if the token were sent) while urllib.parse reads 127.0.0.1.
    r = _cli("query", f"https://localhost:{port}\\@127.0.0.1:{port}/v1.0/users", "-o", "json")
    assert r.exit_code == ExitCode.USAGE, r.output
    assert "refusing to send the Graph token" in r.stderr
    assert emu_env.emu.requests() == []  # not even a token was fetched


# ------------------------------------------------ secrets typed on the command line


@pytest.mark.parametrize(
    "args",
    [
        # unquoted: the token becomes extra arguments
        ["query", "/users", "-H", "Authorization:", "Bearer", "eyJSECRET.part.two"],
        # no colon: a malformed header
        ["query", "/users", "-H", "Authorization=Bearer eyJSECRET.part.two"],
        ["query", "/users", "--header", "Authorization Bearer eyJSECRET.part.two"],
        ["token", "--passphrase=eyJSECRET.part.two"],
    ],
)
def test_usage_errors_do_not_echo_what_may_be_a_secret(args: list[str]) -> None:
    from graphkit.errors import ExitCode

    r = _cli(*args)
    assert r.exit_code == ExitCode.USAGE
    assert "eyJSECRET" not in r.output
    assert len(r.stderr.strip().splitlines()) == 1 and r.stderr.startswith("graphkit: error:")


def test_header_named_authorization_is_refused_in_any_spelling() -> None:
    from graphkit.errors import ExitCode

    for spelling in ("Authorization: Bearer x", "  authorization : Bearer x", "AUTHORIZATION:x"):
        r = _cli("query", "/users", "-H", spelling)
        assert r.exit_code == ExitCode.USAGE
        assert "Authorization is not allowed" in r.stderr


# ---------------------------------------------------------- msal's own log records

TENANT = "contoso.onmicrosoft.com"
CLIENT_ID = "11111111-2222-4333-8444-555555555555"


@pytest.fixture
def echoing_authority(
    servers: tuple[Capture, Capture], tls: Tls, tmp_path: Path, client_identity: tuple[Any, Any]
) -> tuple[Capture, dict[str, str]]:
    """An identity server whose token endpoint answers with an HTML page echoing the
    request (as some proxies' block pages do), and the environment pointing at it."""
    import os

    server, _ = servers
    base = server.origin()
    server.answers[f"/{TENANT}/v2.0/.well-known/openid-configuration"] = (
        200,
        {},
        {
            "token_endpoint": f"{base}/{TENANT}/oauth2/v2.0/token",
            "authorization_endpoint": f"{base}/{TENANT}/oauth2/v2.0/authorize",
            "issuer": f"{base}/{TENANT}/v2.0",
        },
    )
    server.answers[f"/{TENANT}/oauth2/v2.0/token"] = lambda seen: (
        200,
        {},
        b"<html><body>Blocked by policy. You sent: " + seen.body + b"</body></html>",
    )
    key, cert = client_identity
    pem = tmp_path / "client.pem"
    pem.write_bytes(crypto.dump_combined_pem(key, cert))
    pem.chmod(0o600)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AZURE_", "GRAPHKIT_"))}
    env.update(
        AZURE_TENANT_ID=TENANT,
        AZURE_CLIENT_ID=CLIENT_ID,
        AZURE_CLIENT_CERTIFICATE_PATH=str(pem),
        AZURE_AUTHORITY_HOST=base,
        GRAPHKIT_CA_BUNDLE=str(tls.ca_bundle),
        GRAPHKIT_HOME=str(tmp_path / "home"),
    )
    return server, env


def _assertion_sent(server: Capture) -> str:
    """The client assertion msal posted (proves the echoed page really held it)."""
    from urllib.parse import parse_qs

    posts = [s for s in server.seen if s.method == "POST"]
    assert len(posts) == 1
    assertion = parse_qs(posts[0].body.decode())["client_assertion"][0]
    assert assertion.startswith("eyJ") and assertion.count(".") == 2
    return assertion


@pytest.mark.parametrize("debug", [False, True])
def test_cli_never_prints_the_client_assertion(
    echoing_authority: tuple[Capture, dict[str, str]], debug: bool
) -> None:
    import subprocess
    import sys

    from graphkit.errors import ExitCode

    server, env = echoing_authority
    args = [sys.executable, "-m", "graphkit", *(["--debug"] if debug else []), "token"]
    proc = subprocess.run(args, env=env, capture_output=True, text=True, timeout=120)
    assertion = _assertion_sent(server)
    signature = assertion.rsplit(".", 1)[1]
    assert signature not in proc.stdout + proc.stderr
    assert "eyJ" not in proc.stdout + proc.stderr
    if debug:
        # msal's record is shown in full with --debug, scrubbed.
        assert "client_assertion=[redacted]" in proc.stderr
    else:
        assert proc.returncode == ExitCode.AUTH
        errors = [ln for ln in proc.stderr.splitlines() if "plaintext" not in ln]
        errors = [ln for ln in errors if not ln.startswith("graphkit: warning: no encrypted")]
        assert errors == [
            "graphkit: error: the token endpoint answered with something that is not JSON: "
            "check the authority host; rerun with --debug for details"
        ]


def test_library_with_unconfigured_logging_never_prints_the_client_assertion(
    echoing_authority: tuple[Capture, dict[str, str]],
) -> None:
    """No CLI: Python's last-resort handler prints msal's ERROR record; it is scrubbed."""
    import subprocess
    import sys

    server, env = echoing_authority
    code = (
        "import os\n"
        "from graphkit.tokens import CertificateCredential\n"
        "from graphkit.settings import resolve_settings\n"
        "from graphkit.errors import AuthError\n"
        "try:\n"
        "    CertificateCredential(resolve_settings(env=os.environ)).get_token()\n"
        "except AuthError:\n"
        "    pass\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    _assertion_sent(server)
    assert "Token response is not in json format" in proc.stderr  # msal's record, shown
    assert "client_assertion=[redacted]" in proc.stderr
    assert "eyJ" not in proc.stderr


def test_redact() -> None:
    from graphkit.errors import redact

    text = (
        "client_assertion=abc.def-ghi&x=1 Bearer eyJhbGciOi.eyJzdWIi.c2ln_-x "
        '{"access_token": "opaque123", "token_type": "Bearer"} client_secret=s3cr '
        "Authorization: bearer opaque/tok+en== end"
    )
    assert redact(text) == (
        "client_assertion=[redacted]&x=1 Bearer [redacted] "
        '{"access_token": "[redacted]", "token_type": "Bearer"} client_secret=[redacted] '
        "Authorization: bearer [redacted] end"
    )


# ------------------------------------------- exception texts never reach the user


def test_doctor_reports_an_unexpected_exception_by_type_only() -> None:
    from graphkit.doctor import FAIL, _fail
    from graphkit.errors import ConfigError

    check = _fail("key", RuntimeError("-----BEGIN PRIVATE KEY----- MIIEv..."))
    assert check.status == FAIL
    assert check.detail == "unexpected RuntimeError"
    # graphkit's own errors keep their (secret-free) message and hint.
    mine = _fail("key", ConfigError("no certificate configured", "give --certificate"))
    assert (mine.detail, mine.fix) == ("no certificate configured", "give --certificate")


def test_cli_reports_an_unexpected_exception_by_type_only(capsys: Any) -> None:
    from graphkit.cli._common import report_exception
    from graphkit.errors import ExitCode

    code = report_exception(ValueError("passphrase was hunter2"))
    err = capsys.readouterr().err
    assert code == ExitCode.ERROR
    assert "hunter2" not in err and "ValueError" in err and len(err.splitlines()) == 1


# ------------------------------------------------------- files: links, owners, modes

needs_posix = pytest.mark.skipif(
    __import__("os").name != "posix", reason="POSIX permissions and symbolic links"
)
needs_root = pytest.mark.skipif(
    not hasattr(__import__("os"), "geteuid") or __import__("os").geteuid() != 0,
    reason="only root can give a file to another user",
)
OTHER_UID = 65534  # nobody


@needs_posix
def test_atomic_write_with_force_replaces_a_link_never_what_it_points_to(tmp_path: Path) -> None:
    """Decision: a symbolic link at the target name is replaced by the new file (with
    --force); the file it pointed to is untouched, so a link planted by someone else
    cannot redirect where a key is written, nor clobber another file."""
    from graphkit.files import PRIVATE, atomic_write

    elsewhere = tmp_path / "important.txt"
    elsewhere.write_bytes(b"keep me")
    link = tmp_path / "out.key"
    link.symlink_to(elsewhere)
    atomic_write(link, b"new key", mode=PRIVATE, force=True)
    assert not link.is_symlink()
    assert link.read_bytes() == b"new key"
    assert (link.stat().st_mode & 0o777) == PRIVATE
    assert elsewhere.read_bytes() == b"keep me"


@needs_posix
@pytest.mark.parametrize("dangling", [False, True])
@pytest.mark.parametrize("hard_links", [True, False])
def test_atomic_write_without_force_treats_any_link_as_existing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, dangling: bool, hard_links: bool
) -> None:
    import os

    from graphkit.errors import OutputExistsError
    from graphkit.files import atomic_write

    if not hard_links:  # a filesystem without hard links: the check-then-rename path

        def no_link(src: Any, dst: Any, *args: Any, **kwargs: Any) -> None:
            raise OSError(1, "Operation not permitted")

        monkeypatch.setattr(os, "link", no_link)
    pointee = tmp_path / "pointee"
    if not dangling:
        pointee.write_bytes(b"keep me")
    link = tmp_path / "out.key"
    link.symlink_to(pointee)
    with pytest.raises(OutputExistsError):
        atomic_write(link, b"new key")
    assert link.is_symlink()
    assert pointee.exists() is not dangling
    if not dangling:
        assert pointee.read_bytes() == b"keep me"
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []


@needs_posix
def test_read_private_trusts_only_plain_files_of_ours(tmp_path: Path) -> None:
    from graphkit.files import read_private

    mine = tmp_path / "cache"
    mine.write_bytes(b"data")
    mine.chmod(0o600)
    assert read_private(mine) == b"data"
    assert read_private(tmp_path / "missing") is None
    link = tmp_path / "link"
    link.symlink_to(mine)
    assert read_private(link) is None  # a link is never followed
    mine.chmod(0o620)
    assert read_private(mine) is None  # group-writable
    mine.chmod(0o606)
    assert read_private(mine) is None  # world-writable
    mine.chmod(0o644)
    assert read_private(mine) == b"data"  # readable by others is not our concern here
    assert read_private(tmp_path) is None  # a directory


@needs_root
def test_read_private_refuses_another_users_file(tmp_path: Path) -> None:
    import os

    from graphkit.files import read_private

    theirs = tmp_path / "cache"
    theirs.write_bytes(b"data")
    theirs.chmod(0o600)
    os.chown(theirs, OTHER_UID, OTHER_UID)
    assert read_private(theirs) is None


@needs_posix
def test_read_private_does_not_hang_on_a_fifo(tmp_path: Path) -> None:
    """Someone who can write the directory could put a FIFO where a cache was: opening
    it for reading would wait forever for a writer."""
    import os
    import subprocess
    import sys

    fifo = tmp_path / "msal_http_cache.pickle"
    os.mkfifo(fifo)
    code = "import sys; from graphkit.files import read_private; print(read_private(sys.argv[1]))"
    proc = subprocess.run(
        [sys.executable, "-c", code, str(fifo)], capture_output=True, text=True, timeout=60
    )
    assert proc.stdout.strip() == "None", proc.stderr


@needs_posix
def test_not_private(tmp_path: Path) -> None:
    from graphkit.files import not_private

    d = tmp_path / "d"
    d.mkdir(mode=0o700)
    assert not_private(d) is None
    assert not_private(tmp_path / "missing") is None
    d.chmod(0o755)
    assert not_private(d) is None
    d.chmod(0o770)
    assert not_private(d) == "writable by its group (mode 0770)"
    d.chmod(0o1777)
    assert not_private(d) == "writable by other users (mode 1777)"


# ------------------------------------------- a config file others could change

_PROFILE_TOML = b"""default_profile = "work"

[profiles.work]
tenant = "contoso.onmicrosoft.com"
client_id = "11111111-2222-4333-8444-555555555555"
graph_url = "https://graph.microsoft.com"
"""


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh GRAPHKIT_HOME (mode 0700) holding a config file (mode 0600)."""
    import os

    for name in list(os.environ):
        if name.startswith(("AZURE_", "GRAPHKIT_")):
            monkeypatch.delenv(name)
    directory = tmp_path / "home"
    directory.mkdir(mode=0o700)
    monkeypatch.setenv("GRAPHKIT_HOME", str(directory))
    cfg = directory / "config.toml"
    cfg.write_bytes(_PROFILE_TOML)
    cfg.chmod(0o600)
    return directory


@needs_posix
@pytest.mark.parametrize(
    ("what", "mode", "expected"),
    [
        ("file", 0o666, "config file {cfg} is writable by other users (mode 0666)"),
        ("file", 0o620, "config file {cfg} is writable by its group (mode 0620)"),
        ("dir", 0o777, "config file {cfg} is writable by other users (mode 0777)"),
        ("dir", 0o1777, "config file {cfg} is writable by other users (mode 1777)"),
    ],
)
def test_config_file_others_can_change_is_refused(
    home: Path, what: str, mode: int, expected: str
) -> None:
    """Whoever can write the config chooses graph_url, i.e. where the token goes."""
    from graphkit.errors import ConfigError, ExitCode

    cfg = home / "config.toml"
    (cfg if what == "file" else home).chmod(mode)
    with pytest.raises(ConfigError) as info:
        read_config()
    message = str(info.value)
    if what == "file":
        assert message.startswith(expected.format(cfg=cfg))
        assert f"chmod 600 {cfg}" in message
    else:
        assert f"the directory of config file {cfg} is writable by" in message
        assert f"chmod 700 {home}" in message
    r = _cli("config", "show")
    assert r.exit_code == ExitCode.CONFIG
    assert r.stderr.count("\n") == 1 and "chmod" in r.stderr


@needs_root
@pytest.mark.parametrize("what", ["file", "dir"])
def test_config_owned_by_another_user_is_refused(home: Path, what: str) -> None:
    import os

    from graphkit.errors import ConfigError

    os.chown(home / "config.toml" if what == "file" else home, OTHER_UID, OTHER_UID)
    with pytest.raises(ConfigError, match=r"owned by another user \(uid 65534\)"):
        read_config()


@needs_posix
def test_config_private_or_linked_is_read(home: Path, tmp_path: Path) -> None:

    assert read_config()["default_profile"] == "work"
    (home / "config.toml").chmod(0o644)  # readable by others: not a way to redirect tokens
    home.chmod(0o755)
    assert read_config()["default_profile"] == "work"
    # A config kept elsewhere (dotfiles) and linked in: the file linked to is judged.
    dotfiles = tmp_path / "dotfiles"
    dotfiles.mkdir()
    (home / "config.toml").rename(dotfiles / "graphkit.toml")
    (home / "config.toml").symlink_to(dotfiles / "graphkit.toml")
    assert read_config()["default_profile"] == "work"
    (dotfiles / "graphkit.toml").chmod(0o666)
    with pytest.raises(Exception, match="writable by other users"):
        read_config()


@needs_posix
def test_config_is_not_written_into_a_directory_others_can_write(home: Path) -> None:
    from graphkit.errors import ConfigError

    (home / "config.toml").unlink()
    home.chmod(0o777)
    with pytest.raises(ConfigError, match=r"its directory is writable by other users"):
        save_profile("work", {"tenant": "contoso.onmicrosoft.com"})
    assert not (home / "config.toml").exists()


# ------------------------------------ caches: only files we wrote are ever trusted


class _RunsCode:
    """Unpickling this runs os.mkdir(marker): what a planted pickle could do."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self) -> Any:
        import os

        return (os.mkdir, (self.marker,))


def _hostile_pickle(marker: Path) -> bytes:
    import pickle

    return pickle.dumps({"planted": _RunsCode(str(marker))})


@needs_posix
@pytest.mark.parametrize("form", ["link", "group-writable", "world-writable"])
def test_http_cache_pickle_is_loaded_only_from_our_own_file(tmp_path: Path, form: str) -> None:
    from graphkit.token_cache import HTTP_CACHE_FILE, PersistentHttpCache

    state = tmp_path / "state"
    state.mkdir(mode=0o700)
    marker = tmp_path / "pickle-ran"
    path = state / HTTP_CACHE_FILE
    if form == "link":
        target = tmp_path / "elsewhere.pickle"  # ours, 0600: only the link is wrong
        target.write_bytes(_hostile_pickle(marker))
        target.chmod(0o600)
        path.symlink_to(target)
    else:
        path.write_bytes(_hostile_pickle(marker))
        path.chmod(0o620 if form == "group-writable" else 0o606)
    cache = PersistentHttpCache(path)
    assert not marker.exists()
    assert dict(cache) == {}
    cache["GET discovery"] = "answer"
    cache.save()  # replaces the planted file (or the link), never writes through it
    assert not path.is_symlink() and (path.stat().st_mode & 0o777) == 0o600
    assert dict(PersistentHttpCache(path)) == {"GET discovery": "answer"}
    if form == "link":
        assert target.read_bytes() == _hostile_pickle(marker)
    assert not marker.exists()


@needs_posix
def test_http_cache_of_ours_is_loaded(tmp_path: Path) -> None:
    """Control: the same code path does load a cache we wrote."""
    from graphkit.token_cache import HTTP_CACHE_FILE, PersistentHttpCache

    path = tmp_path / HTTP_CACHE_FILE
    first = PersistentHttpCache(path)
    first["GET k"] = "v"
    first.save()
    assert dict(PersistentHttpCache(path)) == {"GET k": "v"}


@needs_posix
def test_certificate_checks_are_read_only_from_our_own_file(tmp_path: Path) -> None:
    from graphkit.certificates import CERTIFICATE_CHECKS_FILE, _read_checks

    real = tmp_path / "real.json"
    real.write_text(json.dumps({"version": 2, "checks": {"digest": {"sha1": "AB"}}}))
    real.chmod(0o600)
    assert _read_checks(real) == {"digest": {"sha1": "AB"}}
    link = tmp_path / CERTIFICATE_CHECKS_FILE
    link.symlink_to(real)
    assert _read_checks(link) == {}
    real.chmod(0o666)
    assert _read_checks(real) == {}


def _token_raw() -> Any:
    return _cli("token", "--raw")


def _plant_token(cache_file: Path, token: str, how: str, tmp_path: Path) -> Path | None:
    """Put a token cache serving ``token`` where ours was; return a link's target."""
    import os

    data = json.loads(cache_file.read_text())
    for entry in data["AccessToken"].values():
        entry["secret"] = token
    text = json.dumps(data)
    cache_file.unlink()
    if how == "link":
        target = tmp_path / "planted-cache.json"
        target.write_text(text)
        target.chmod(0o600)
        cache_file.symlink_to(target)
        return target
    cache_file.write_text(text)
    if how == "other-user":
        cache_file.chmod(0o600)
        os.chown(cache_file, OTHER_UID, OTHER_UID)
    else:
        cache_file.chmod(0o622)
    return None


@needs_posix
@pytest.mark.parametrize(
    "how",
    [
        "link",
        "writable",
        pytest.param("other-user", marks=needs_root),
    ],
)
def test_planted_token_cache_is_never_served(emu_env: Env, tmp_path: Path, how: str) -> None:
    """Tokens come only from a cache file we wrote: neither the warm path nor msal
    serves a token from a linked, shared or foreign file."""

    first = _token_raw()
    assert first.exit_code == 0, first.stderr
    cache_file = token_cache_file(emu_env.home)
    # Control: our own cache serves the same token without asking the emulator.
    emu_env.emu.clear_requests()
    assert _token_raw().stdout == first.stdout and emu_env.emu.requests() == []
    target = _plant_token(cache_file, "PLANTED-TOKEN", how, tmp_path)
    r = _token_raw()
    assert r.exit_code == 0, r.stderr
    assert "PLANTED-TOKEN" not in r.stdout
    assert r.stdout.startswith("eyJ")
    assert [e["kind"] for e in emu_env.emu.requests()] == ["token"]  # a fresh one
    # The planted file was replaced by ours (a link is replaced, its target untouched).
    assert not cache_file.is_symlink()
    st = cache_file.stat()
    assert (st.st_mode & 0o777) == 0o600 and st.st_uid == __import__("os").getuid()
    if target is not None:
        assert "PLANTED-TOKEN" in target.read_text()


@needs_posix
@pytest.mark.parametrize("mode", [0o777, 0o1777, 0o770])
def test_state_directory_others_can_write_is_refused(emu_env: Env, mode: int) -> None:
    """In a directory others can write they could plant caches, swap files, or put a
    link where msal-extensions opens its lock file for writing."""
    from graphkit.errors import ExitCode

    emu_env.home.mkdir()
    emu_env.home.chmod(mode)
    r = _token_raw()
    assert r.exit_code == ExitCode.CONFIG, r.output
    assert r.stdout == ""
    assert f"state directory {emu_env.home} is writable by" in r.stderr
    assert f"chmod 700 {emu_env.home}" in r.stderr
    assert len(r.stderr.splitlines()) == 1
    assert emu_env.emu.requests() == []
    assert sorted(p.name for p in emu_env.home.iterdir()) == []


@needs_root
def test_state_directory_of_another_user_is_refused(emu_env: Env) -> None:
    import os

    from graphkit.errors import ExitCode

    emu_env.home.mkdir(mode=0o700)
    os.chown(emu_env.home, OTHER_UID, OTHER_UID)
    r = _token_raw()
    assert r.exit_code == ExitCode.CONFIG
    assert "owned by another user (uid 65534)" in r.stderr
    assert emu_env.emu.requests() == []


@needs_posix
def test_state_directory_readable_by_others_is_used(emu_env: Env) -> None:
    """Control: 0755 (what mkdir gives with umask 022) is fine; the files are 0600."""
    emu_env.home.mkdir(mode=0o755)
    emu_env.home.chmod(0o755)
    r = _token_raw()
    assert r.exit_code == 0, r.stderr
    for path in emu_env.home.iterdir():
        if path.name.endswith((".json", ".pickle")):
            assert (path.stat().st_mode & 0o777) == 0o600, path


# ------------------------------------------------------------------ token masking


def test_mask_shows_nothing_of_a_token_that_is_not_a_jwt() -> None:
    from graphkit.cli.token import mask

    jwt_like = "eyJ0eXAiOiJKV1QiLCJhbGciOiJSUzI1NiJ9.eyJhdWQiOiJ4In0.c2ln"
    assert mask(jwt_like).startswith("eyJ0eXAiOiJK…")
    for opaque in ("EwBwA8l6BAAUO9chh8cJscQLmU+LSWpbnr", "abc.def", "short.a.b"):
        shown = mask(opaque)
        assert shown.startswith("…") and opaque[:4] not in shown
        assert f"({len(opaque)} characters" in shown


# ------------------------------------------------------ keys are never overwritten


@needs_posix
@pytest.mark.parametrize("existing", ["file", "link", "dangling-link"])
def test_keygen_never_replaces_an_existing_name_without_force(
    tmp_path: Path, existing: str
) -> None:
    from graphkit.errors import ExitCode

    out = tmp_path / "app.key"
    old_key = tmp_path / "old.key"
    if existing == "file":
        out.write_bytes(b"the old key")
    else:
        if existing == "link":
            old_key.write_bytes(b"the old key")
        out.symlink_to(old_key)
    r = _cli("keygen", "--out", str(out))
    assert r.exit_code == ExitCode.INPUT
    assert "already exists" in r.stderr and "--force" in r.stderr
    if existing == "file":
        assert out.read_bytes() == b"the old key"
    else:
        assert out.is_symlink()
        assert old_key.exists() is (existing == "link")
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []


# ------------------------------------------------------- the emulator: loopback only


def _listening_addresses(port: int) -> list[str]:
    """Local addresses of the TCP sockets listening on ``port`` (Linux /proc)."""
    found = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            address, hex_port = fields[1].rsplit(":", 1)
            if int(hex_port, 16) == port and fields[3] == "0A":  # LISTEN
                found.append(address)
    return found


@pytest.mark.skipif(not Path("/proc/net/tcp").exists(), reason="reads Linux /proc/net/tcp")
def test_emulator_listens_on_loopback_only(graphkit_emulator: Any) -> None:
    """Its admin API has no authentication: nothing beyond this machine may reach it."""
    port = urlsplit(graphkit_emulator.graph_url).port
    assert port
    assert _listening_addresses(port) == ["0100007F"]  # 127.0.0.1, and nothing else


# ---------------------------------------- init writes keys only where others cannot


def _init_no_test(directory: Path) -> Any:
    return _cli(
        "init",
        "--tenant",
        TENANT,
        "--client-id",
        CLIENT_ID,
        "--profile",
        "work",
        "--dir",
        str(directory),
        "--no-test",
        "--json",
    )


@needs_posix
@pytest.mark.parametrize(
    ("layout", "refused_because"),
    [
        ("shared-dir", "writable by other users (mode 0777)"),
        ("sticky-shared-dir", "writable by other users (mode 1777)"),
        ("group-dir", "writable by its group (mode 0770)"),
        ("under-shared-parent", "writable by other users without the sticky bit"),
    ],
)
def test_init_refuses_a_key_directory_others_could_swap(
    home: Path, tmp_path: Path, layout: str, refused_because: str
) -> None:
    """There others could replace the certificate the user is about to upload with
    their own, and then sign in as the app."""
    from graphkit.errors import ExitCode

    (home / "config.toml").unlink()
    shared = tmp_path / "shared"
    shared.mkdir()
    modes = {"shared-dir": 0o777, "sticky-shared-dir": 0o1777, "group-dir": 0o770}
    shared.chmod(modes.get(layout, 0o777))
    target = shared / "keys" if layout == "under-shared-parent" else shared
    r = _init_no_test(target)
    assert r.exit_code == ExitCode.INPUT, r.output
    assert f"not writing keys in {target}" in r.stderr and refused_because in r.stderr
    assert list(shared.iterdir()) == []  # nothing left behind, not even the new directory
    assert not (home / "config.toml").exists()


@needs_posix
def test_init_writes_keys_under_a_sticky_shared_parent(home: Path, tmp_path: Path) -> None:
    """Control: below a sticky world-writable directory (like /tmp) a 0700 directory of
    ours is safe: nobody else may rename it."""
    (home / "config.toml").unlink()
    parent = tmp_path / "tmp-like"
    parent.mkdir()
    parent.chmod(0o1777)
    r = _init_no_test(parent / "keys")
    assert r.exit_code == 0, r.stderr
    made = json.loads(r.stdout)
    key = Path(made["private_key"])
    assert key.parent == parent / "keys"
    assert (key.stat().st_mode & 0o777) == 0o600
    assert (key.parent.stat().st_mode & 0o777) == 0o700


# ------------------------------------- servers echoing a secret back in an error


def test_token_endpoint_error_echoing_the_assertion_is_scrubbed(
    echoing_authority: tuple[Capture, dict[str, str]],
) -> None:
    import subprocess
    import sys

    from graphkit.errors import ExitCode

    server, env = echoing_authority
    server.answers[f"/{TENANT}/oauth2/v2.0/token"] = lambda seen: (
        400,
        {},
        {
            "error": "invalid_request",
            "error_description": "Bad request: " + seen.body.decode(),
        },
    )
    proc = subprocess.run(
        [sys.executable, "-m", "graphkit", "token"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    _assertion_sent(server)
    assert proc.returncode == ExitCode.AUTH, proc.stderr
    assert "client_assertion=[redacted]" in proc.stderr  # the description is shown...
    assert "eyJ" not in proc.stderr  # ...without the assertion


def test_graph_error_echoing_the_token_is_scrubbed(
    servers: tuple[Capture, Capture], tls: Tls
) -> None:
    from graphkit.errors import BadRequestError
    from graphkit.graph import GraphClient

    graph, _ = servers
    jwt_like = "eyJ0eXAiOiJKV1QifQ.eyJhdWQiOiJ4In0.c2lnbmF0dXJl"
    opaque = "opaque-token-0123456789"

    def echo(seen: Seen) -> tuple[int, dict[str, str], Any]:
        message = f"cannot use {seen.authorization()[0]} here"
        return 400, {}, {"error": {"code": "BadRequest", "message": message}}

    graph.answers["/v1.0/users"] = echo
    for token in (jwt_like, opaque):
        credential = _FixedCredential(token)
        with (
            GraphClient(graph.origin(), credential, ca_bundle=str(tls.ca_bundle)) as client,
            pytest.raises(BadRequestError) as info,
        ):
            client.get("/users")
        assert token not in str(info.value)
        assert "cannot use Bearer [redacted] here" in str(info.value)
    assert [s.authorization() for s in graph.seen] == [[f"Bearer {jwt_like}"], [f"Bearer {opaque}"]]


def test_init_smoke_test_shows_no_msal_record(
    echoing_authority: tuple[Capture, dict[str, str]], tmp_path: Path, tls: Tls
) -> None:
    """init authenticates without the connection flags: it installs the handler too."""
    import subprocess
    import sys

    from graphkit.errors import ExitCode

    server, env = echoing_authority
    env = {k: v for k, v in env.items() if not k.startswith("AZURE_")}
    args = ["init", "--tenant", TENANT, "--client-id", CLIENT_ID, "--yes", "--wait", "0"]
    args += ["--authority-host", server.origin(), "--ca-bundle", str(tls.ca_bundle)]
    args += ["--dir", str(tmp_path / "keys")]
    proc = subprocess.run(
        [sys.executable, "-m", "graphkit", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    _assertion_sent(server)
    assert proc.returncode == ExitCode.AUTH, proc.stderr[-2000:]
    assert "eyJ" not in proc.stderr
    assert "Token response is not in json format" not in proc.stderr
    assert "Traceback" not in proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("graphkit: error: the token endpoint answered with something")


@pytest.mark.parametrize("status", [307, 308])
def test_client_assertion_is_not_reposted_to_a_redirect_target(
    echoing_authority: tuple[Capture, dict[str, str]],
    servers: tuple[Capture, Capture],
    status: int,
) -> None:
    """A token endpoint never redirects; a 307/308 would make requests re-send the
    form, client assertion included, wherever the Location says."""
    import subprocess
    import sys

    from graphkit.errors import ExitCode

    server, env = echoing_authority
    _, other = servers
    location = other.origin("localhost") + "/stolen"
    server.answers[f"/{TENANT}/oauth2/v2.0/token"] = (status, {"Location": location}, {})
    proc = subprocess.run(
        [sys.executable, "-m", "graphkit", "token"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    _assertion_sent(server)
    assert proc.returncode == ExitCode.AUTH, proc.stderr[-2000:]
    assert f"answered with a redirect (HTTP {status})" in proc.stderr
    assert other.seen == []


@pytest.mark.parametrize(
    "args",
    [
        ["token", "--passphrase-file", "hunter2-typed-here"],
        ["keygen", "--out", "{tmp}/k.pem", "--passphrase-file", "hunter2-typed-here"],
    ],
)
def test_a_missing_passphrase_file_is_not_named(
    home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, args: list[str]
) -> None:
    """`--passphrase-file hunter2` is a likely slip: the 'file' is the passphrase."""
    from graphkit.errors import ExitCode

    monkeypatch.chdir(tmp_path)
    r = _cli(*(a.format(tmp=tmp_path) for a in args))
    assert r.exit_code in (ExitCode.INPUT, ExitCode.CONFIG)
    assert "hunter2" not in r.output
    assert "the passphrase file does not exist" in r.stderr
    assert not (tmp_path / "k.pem").exists()


def test_value_classes_keep_their_secrets_out_of_repr_and_compare_by_value() -> None:
    from graphkit.retry import RetryPolicy
    from graphkit.tokens import AccessToken

    token = AccessToken("eyJ.secret-token.sig", 1_900_000_000, False, {"roles": ["R"]})
    assert "secret-token" not in repr(token) and "1900000000" in repr(token)
    assert token == AccessToken("eyJ.secret-token.sig", 1_900_000_000, False, {"roles": ["R"]})
    assert token != AccessToken("eyJ.other.sig", 1_900_000_000, False, {"roles": ["R"]})
    assert AccessToken("t", 1, True).claims == {}
    assert repr(RetryPolicy(max_attempts=3)) == "RetryPolicy(max_attempts=3, max_total_wait=120.0)"
