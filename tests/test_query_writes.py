"""Writes through `graphkit query -X` and GraphClient, against the emulator (issue 13,
"Writes"): create, patch and delete users and groups, bodies from a file, stdin or the
command line, binary answers to a file, a dry run that sends nothing, and the retry rules
per method (429 always; 5xx and dropped connections only for idempotent methods).

Retries wait on a FakeTime (GraphClient) or on a zero Retry-After (the command line), so
nothing really waits.
"""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path
from typing import Any

import pytest
from _time_helpers import FakeTime
from conftest import SignedIn

from graphkit.errors import NotFoundError, OutcomeUnknownError
from graphkit.graph import GraphClient

DOMAIN = "contoso.onmicrosoft.com"


@pytest.fixture
def env(signed_in_env: SignedIn) -> SignedIn:
    """The signed-in environment, its app allowed to write users and groups (granted
    before its first token, so the token carries the roles)."""
    emu = signed_in_env.emu
    emu.grant(emu.default_app, "User.ReadWrite.All")
    emu.grant(emu.default_app, "Group.ReadWrite.All")
    return signed_in_env


def _new_user(name: str = "ada") -> dict[str, Any]:
    return {
        "accountEnabled": True,
        "displayName": f"{name.capitalize()} Lovelace",
        "mailNickname": name,
        "userPrincipalName": f"{name}@{DOMAIN}",
        "passwordProfile": {"forceChangePasswordNextSignIn": True, "password": "xWwvJ]6NMw+bWH-d"},
    }


def _graph_log(emu: Any) -> list[dict[str, Any]]:
    return [e for e in emu.requests() if e["kind"] == "graph"]


def _client(t: FakeTime) -> GraphClient:
    return GraphClient.from_env(sleep=t.sleep, clock=t.clock)


# ------------------------------------------------------------------ retry rules per method


@pytest.mark.parametrize("fault", ["503", "reset"])
def test_a_delete_that_is_404_after_a_retry_says_the_first_attempt_may_have_done_it(
    env: SignedIn, fault: str
) -> None:
    """A DELETE is resent after a 503 or a dropped connection; if the first one was
    applied, the second finds nothing (404): the error says so instead of only 'not
    found', which a script would take for a wrong id."""
    emu = env.emu
    t = FakeTime()
    with _client(t) as c:
        c.get("/users", {"$top": "1"})
        gone = f"/users/gone@{DOMAIN}"
        with pytest.raises(NotFoundError) as plain:
            c.send("DELETE", gone)
        assert "may have" not in str(plain.value)
        emu.add_fault(fault, endpoint="graph", every=1, times=1, retry_after=0)
        with pytest.raises(NotFoundError) as info:
            c.send("DELETE", gone)
    err = info.value
    assert err.exit_code == 7 and err.status == 404
    assert "an earlier attempt" in str(err) and "may have deleted it" in str(err)


@pytest.mark.parametrize("method", ["POST", "PATCH"])
@pytest.mark.parametrize("kind", ["503", "504"])
def test_a_5xx_on_post_or_patch_is_not_retried_and_may_have_been_applied(
    env: SignedIn, method: str, kind: str
) -> None:
    emu = env.emu
    target = emu.create_user(**{"userPrincipalName": f"grace@{DOMAIN}", "displayName": "Grace"})
    path, body = (
        ("/users", _new_user())
        if method == "POST"
        else (f"/users/{target['id']}", {"jobTitle": "x"})
    )
    t = FakeTime()
    with _client(t) as c:
        c.get("/users", {"$top": "1"})  # the token, before the fault
        emu.clear_requests()
        emu.add_fault(kind, endpoint="graph", every=1, times=1, retry_after=0)
        with pytest.raises(OutcomeUnknownError) as info:
            c.send(method, path, json_body=body)
    err = info.value
    assert err.exit_code == 10 and err.status == int(kind)
    assert "may have been applied" in str(err)
    [sent] = _graph_log(emu)
    assert sent["method"] == method and sent["status"] == int(kind)
    assert err.client_request_id == sent["client_request_id"]
    assert err.client_request_id in str(err)  # so the user can look it up
    assert t.slept == []


@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE"])
def test_a_503_on_an_idempotent_method_is_retried(env: SignedIn, method: str) -> None:
    emu = env.emu
    user = emu.create_user(**{"userPrincipalName": f"grace@{DOMAIN}", "displayName": "Grace"})
    photo = b"\xff\xd8\xff\xe0" + os.urandom(64)
    t = FakeTime()
    with _client(t) as c:
        c.get("/users", {"$top": "1"})
        emu.clear_requests()
        emu.add_fault("503", endpoint="graph", every=1, times=1, retry_after=0.5)
        if method == "GET":
            resp = c.send("GET", f"/users/{user['id']}")
            assert resp.status_code == 200 and c.decode(resp)["id"] == user["id"]
        elif method == "PUT":
            resp = c.send(
                "PUT",
                f"/users/{user['id']}/photo/$value",
                headers={"Content-Type": "image/jpeg"},
                data=photo,
            )
            assert resp.status_code == 200
        else:
            assert c.send("DELETE", f"/users/{user['id']}").status_code == 204
    log = _graph_log(emu)
    assert [(e["method"], e["status"]) for e in log] == [
        (method, 503),
        (method, 200 if method != "DELETE" else 204),
    ]
    assert log[0]["client_request_id"] == log[1]["client_request_id"]
    assert t.slept == [0.5]
    if method == "PUT":
        assert emu.get_photo(user["id"]) == photo
    if method == "DELETE":
        assert emu.get_user(user["id"]) is None


def test_a_429_on_post_is_retried(env: SignedIn) -> None:
    emu = env.emu
    t = FakeTime()
    with _client(t) as c:
        c.get("/users", {"$top": "1"})
        emu.clear_requests()
        emu.add_fault("429", endpoint="graph", every=1, times=1, retry_after=1.5)
        resp = c.send("POST", "/users", json_body=_new_user())
    assert resp.status_code == 201 and c.decode(resp)["userPrincipalName"] == f"ada@{DOMAIN}"
    assert [(e["method"], e["status"]) for e in _graph_log(emu)] == [("POST", 429), ("POST", 201)]
    assert t.slept == [1.5]


def test_a_dropped_connection_on_patch_is_not_retried(env: SignedIn) -> None:
    emu = env.emu
    user = emu.create_user(**{"userPrincipalName": f"grace@{DOMAIN}", "displayName": "Grace"})
    t = FakeTime()
    with _client(t) as c:
        c.get("/users", {"$top": "1"})
        emu.clear_requests()
        emu.add_fault("reset", endpoint="graph", every=1, times=1)
        with pytest.raises(OutcomeUnknownError) as info:
            c.send("PATCH", f"/users/{user['id']}", json_body={"jobTitle": "Engineer"})
    assert info.value.exit_code == 10
    assert "may have been applied" in str(info.value)
    [sent] = _graph_log(emu)
    assert sent["method"] == "PATCH" and sent["fault"] == "reset"
    assert info.value.client_request_id == sent["client_request_id"]
    assert t.slept == []


# ------------------------------------------------------------------ the command line


def _cli(*args: str, input: bytes | str | None = None) -> Any:
    """`graphkit query ARGS` in this process (CliRunner), stdout and stderr apart."""
    from typer.testing import CliRunner

    from graphkit.cli import app

    return CliRunner().invoke(app, ["query", *args], input=input, catch_exceptions=False)


def _errors(stderr: str) -> list[str]:
    return [ln for ln in stderr.splitlines() if ln.startswith("graphkit: error: ")]


def test_create_patch_delete_a_user(env: SignedIn, tmp_path: Path) -> None:
    emu = env.emu
    body = tmp_path / "ada.json"
    body.write_text(json.dumps(_new_user()))
    r = _cli("/users", "-X", "post", "--body", f"@{body}", "-o", "json")
    assert r.exit_code == 0, r.stderr
    created = json.loads(r.stdout)  # 201: the created object, printed as a GET's would be
    assert created["userPrincipalName"] == f"ada@{DOMAIN}" and "passwordProfile" not in created
    uid = created["id"]
    assert emu.get_user(uid)["displayName"] == "Ada Lovelace"

    r = _cli(f"/users/{uid}", "-X", "PATCH", "--body", '{"jobTitle": "Analyst"}')
    assert (r.exit_code, r.stdout) == (0, "")  # 204: nothing printed
    r = _cli(f"/users/{uid}", "--select", "jobTitle", "-o", "json")
    assert json.loads(r.stdout)["jobTitle"] == "Analyst"

    r = _cli(f"/users/{uid}", "-X", "Delete")
    assert (r.exit_code, r.stdout) == (0, "")
    r = _cli(f"/users/{uid}")
    assert r.exit_code == 7, r.stderr
    sent = [(e["method"], e["status"]) for e in _graph_log(emu)]
    assert sent == [("POST", 201), ("PATCH", 204), ("GET", 200), ("DELETE", 204), ("GET", 404)]


def test_create_patch_delete_a_group_with_the_body_on_stdin(env: SignedIn) -> None:
    group = {
        "displayName": "Analysts",
        "mailEnabled": False,
        "mailNickname": "analysts",
        "securityEnabled": True,
    }
    r = _cli("/groups", "-X", "POST", "--body", "-", "-o", "yaml", input=json.dumps(group))
    assert r.exit_code == 0, r.stderr
    assert "displayName: Analysts" in r.stdout
    r = _cli("/groups", "--filter", "displayName eq 'Analysts'", "--query", "[0].id", "-o", "tsv")
    gid = r.stdout.strip()
    assert len(gid) == 36, r.stdout
    r = _cli(f"/groups/{gid}", "-X", "PATCH", "--body", "-", input='{"description": "reads"}')
    assert (r.exit_code, r.stdout) == (0, "")
    r = _cli(f"/groups/{gid}", "-o", "json")
    assert json.loads(r.stdout)["description"] == "reads"
    r = _cli(f"/groups/{gid}", "-X", "DELETE")
    assert (r.exit_code, r.stdout) == (0, "")
    assert _cli(f"/groups/{gid}").exit_code == 7


@pytest.mark.parametrize(
    ("where", "expect"),
    [
        ("inline", "--body is not valid JSON: Expecting ',' delimiter at line 1, column 21"),
        ("stdin", "the body on stdin is not valid JSON: Expecting ',' delimiter at line 1"),
        ("file", "is not valid JSON: Expecting ',' delimiter at line 1, column 21"),
    ],
)
def test_invalid_json_is_refused_before_anything_is_sent(
    env: SignedIn, tmp_path: Path, where: str, expect: str
) -> None:
    bad = '{"displayName": "x" "secret": "hunter2"}'
    args, stdin = ["--body", bad], None
    if where == "stdin":
        args, stdin = ["--body", "-"], bad
    elif where == "file":
        (tmp_path / "bad.json").write_text(bad)
        args = ["--body", f"@{tmp_path / 'bad.json'}"]
    env.emu.clear_requests()
    r = _cli("/users", "-X", "POST", *args, input=stdin)
    assert r.exit_code == (3 if where == "file" else 2), r.stderr
    [line] = _errors(r.stderr)
    assert expect in line and "hunter2" not in r.stderr
    assert env.emu.requests() == []  # neither Graph nor the token endpoint


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-be", "utf-32"])
def test_a_json_body_that_is_not_utf8_is_refused_before_anything_is_sent(
    env: SignedIn, tmp_path: Path, encoding: str
) -> None:
    """JSON between systems is UTF-8 (RFC 8259, section 8.1); Windows PowerShell 5's
    Out-File writes UTF-16, which Python's json.loads(bytes) reads without a word."""
    body = tmp_path / "ada.json"
    body.write_bytes(json.dumps(_new_user()).encode(encoding))
    env.emu.clear_requests()
    r = _cli("/users", "-X", "POST", "--body", f"@{body}")
    assert r.exit_code == 3, r.stderr
    [line] = _errors(r.stderr)
    assert "is not UTF-8" in line and "save it as UTF-8" in line
    assert env.emu.requests() == []


def test_a_body_that_is_not_json_goes_as_given_with_its_content_type(
    env: SignedIn, tmp_path: Path
) -> None:
    emu = env.emu
    user = emu.create_user(**{"userPrincipalName": f"grace@{DOMAIN}", "displayName": "Grace"})
    photo = tmp_path / "grace.jpg"
    data = b"\xff\xd8\xff\xe0" + os.urandom(300_000) + b"\xff\xd9"
    photo.write_bytes(data)
    path = f"/users/{user['id']}/photo/$value"
    r = _cli(path, "-X", "PUT", "--body", f"@{photo}", "--content-type", "image/jpeg")
    assert (r.exit_code, r.stdout) == (0, ""), r.stderr
    assert emu.get_photo(user["id"]) == data

    out = tmp_path / "out" / "photo.jpg"
    r = _cli(path, "--output-file", str(out))
    assert (r.exit_code, r.stdout) == (0, ""), r.stderr
    assert out.read_bytes() == data
    # Not secret: the mode a shell's > would give (0666 less the umask), as curl -o does.
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(out.stat().st_mode) == 0o666 & ~umask
    assert f"saved {len(data):,} bytes (image/jpeg)" in r.stderr

    # Never replaced without --force; with it, replaced.
    out.write_bytes(b"old")
    r = _cli(path, "--output-file", str(out))
    assert r.exit_code == 3 and "already exists" in _errors(r.stderr)[0]
    assert out.read_bytes() == b"old"
    r = _cli(path, "--output-file", str(out), "--force")
    assert r.exit_code == 0 and out.read_bytes() == data


def test_a_user_without_a_photo_is_404_and_no_file_is_written(
    env: SignedIn, tmp_path: Path
) -> None:
    user = env.emu.create_user(**{"userPrincipalName": f"grace@{DOMAIN}", "displayName": "Grace"})
    out = tmp_path / "photo.jpg"
    r = _cli(f"/users/{user['id']}/photo/$value", "--output-file", str(out))
    assert r.exit_code == 7
    assert "ImageNotFound" in _errors(r.stderr)[0]
    assert not out.exists()


def test_an_answer_cut_short_leaves_no_file(env: SignedIn, tmp_path: Path) -> None:
    emu = env.emu
    user = emu.create_user(**{"userPrincipalName": f"grace@{DOMAIN}", "displayName": "Grace"})
    emu.set_photo(user["id"], b"\xff\xd8" + os.urandom(200_000))
    _cli("/users", "--top", "1")  # the token first
    emu.add_fault("truncate", endpoint="graph", every=1, times=1)
    out = tmp_path / "photos" / "photo.jpg"
    r = _cli(f"/users/{user['id']}/photo/$value", "--output-file", str(out))
    assert r.exit_code == 9, r.stderr
    assert "cut short" in _errors(r.stderr)[0]
    assert list(out.parent.iterdir()) == []  # no file, and no temporary left


def test_dry_run_prints_the_request_and_sends_nothing(env: SignedIn) -> None:
    emu = env.emu
    emu.clear_requests()
    r = _cli(
        "/users", "-X", "POST", "--body", json.dumps(_new_user()), "--select", "id",
        "-H", "Prefer: return=minimal", "--dry-run",
    )  # fmt: skip
    assert r.exit_code == 0, r.stderr
    head, _, body = r.stdout.partition("\n\n")
    lines = head.splitlines()
    assert lines[0] == f"POST {emu.graph_url}/v1.0/users?$select=id"
    headers = dict(line.split(": ", 1) for line in lines[1:])
    assert headers["Authorization"] == "Bearer ***"
    assert headers["Content-Type"] == "application/json"
    assert headers["Prefer"] == "return=minimal"
    assert len(headers["client-request-id"]) == 36
    assert json.loads(body) == _new_user()
    assert emu.requests() == []  # no Graph request, and no token request either
    assert emu.get_user(f"ada@{DOMAIN}") is None


def test_a_dry_run_needs_no_certificate(
    env: SignedIn, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AZURE_CLIENT_CERTIFICATE_PATH", str(tmp_path / "missing.pem"))
    r = _cli("users/ada@contoso.onmicrosoft.com", "-X", "DELETE", "--dry-run")
    assert r.exit_code == 0, r.stderr
    assert r.stdout.startswith(
        f"DELETE {env.emu.graph_url}/v1.0/users/ada@contoso.onmicrosoft.com\n"
    )
    assert "Authorization: Bearer ***\n" in r.stdout
    assert _cli("users/ada@contoso.onmicrosoft.com", "-X", "DELETE").exit_code == 4  # for real
    assert env.emu.requests() == []


def test_methods_and_flags_that_do_not_fit_are_refused(env: SignedIn, tmp_path: Path) -> None:
    env.emu.clear_requests()
    cases = [
        (["/users", "-X", "TRACE"], "-X/--method 'TRACE' is not a method graphkit query sends"),
        (["/users", "--body", "{}"], "--body with GET"),
        (["/users", "-X", "POST", "--all", "--body", "{}"], "--all and --max-items page"),
        (["/users", "-X", "DELETE", "--max-items", "3"], "--all and --max-items page"),
        (["/users", "--all", "--output-file", str(tmp_path / "f")], "--output-file saves"),
        (["/users", "--force"], "--force replaces an --output-file; there is none"),
        (
            ["/users/delta", "--delta-state", str(tmp_path / "s.json"), "--dry-run"],
            "--delta-state runs a GET round from its saved state; --dry-run cannot",
        ),
        (
            ["/users/delta", "--delta-state", str(tmp_path / "s.json"), "-X", "POST"],
            "-X POST cannot go with it",
        ),
        (
            ["/users", "-X", "POST", "--content-type", "text/plain"],
            "a Content-Type (--content-type or --header) without --body",
        ),
    ]
    for args, expect in cases:
        r = _cli(*args)
        assert r.exit_code == 2, (args, r.stderr)
        [line] = _errors(r.stderr)
        assert expect in line, (args, line)
    assert env.emu.requests() == []


def test_a_503_on_a_cli_post_exits_10_naming_the_client_request_id(env: SignedIn) -> None:
    emu = env.emu
    _cli("/users", "--top", "1")  # the token first
    emu.clear_requests()
    emu.add_fault("503", endpoint="graph", every=1, times=1, retry_after=0)
    r = _cli("/users", "-X", "POST", "--body", json.dumps(_new_user()))
    assert r.exit_code == 10, r.stderr
    [line] = _errors(r.stderr)
    [sent] = _graph_log(emu)
    assert "may have been applied" in line and sent["client_request_id"] in line
    assert r.stdout == ""


def test_a_429_on_a_cli_post_is_retried(env: SignedIn) -> None:
    emu = env.emu
    _cli("/users", "--top", "1")
    emu.clear_requests()
    emu.add_fault("429", endpoint="graph", every=1, times=1, retry_after=0)
    r = _cli("/users", "-X", "POST", "--body", json.dumps(_new_user()), "-o", "json")
    assert r.exit_code == 0, r.stderr
    assert json.loads(r.stdout)["userPrincipalName"] == f"ada@{DOMAIN}"
    assert [e["status"] for e in _graph_log(emu)] == [429, 201]


def test_a_binary_answer_is_never_printed_as_text(env: SignedIn) -> None:
    """Without --output-file a photo goes to stdout as its own bytes when stdout is a
    pipe or a file (as curl does), and the library returns bytes, not mangled text."""
    emu = env.emu
    user = emu.create_user(**{"userPrincipalName": f"grace@{DOMAIN}", "displayName": "Grace"})
    data = b"\xff\xd8\xff\xe0" + bytes(range(256)) * 8
    emu.set_photo(user["id"], data)
    path = f"/users/{user['id']}/photo/$value"
    with GraphClient.from_env() as c:
        assert c.get(path) == data
    r = _cli(path)  # CliRunner: stdout is not a terminal
    assert r.exit_code == 0, r.stderr
    assert r.stdout_bytes == data


def test_a_binary_answer_is_not_written_to_a_terminal(env: SignedIn) -> None:
    pexpect = pytest.importorskip("pexpect")
    import sys

    emu = env.emu
    user = emu.create_user(**{"userPrincipalName": f"grace@{DOMAIN}", "displayName": "Grace"})
    emu.set_photo(user["id"], b"\xff\xd8\xff\xe0" + b"\x1b[2J" * 100)  # would clear the screen
    child = pexpect.spawn(
        sys.executable,
        ["-m", "graphkit", "query", f"/users/{user['id']}/photo/$value"],
        env={**os.environ, **env.env},
        encoding="utf-8",
        codec_errors="replace",
        timeout=60,
    )
    child.expect(pexpect.EOF)
    child.close()
    text = child.before
    assert child.exitstatus == 2, text
    assert "404 bytes of binary data, not printed on a terminal" in text
    assert "--output-file" in text and "\x1b[2J" not in text


def test_a_batch_request_is_resent_after_a_503_only_when_every_item_may_be(
    env: SignedIn,
) -> None:
    from typer.testing import CliRunner

    from graphkit.cli import app

    emu = env.emu
    uid = emu.create_user(**{"userPrincipalName": f"grace@{DOMAIN}", "displayName": "G"})["id"]
    _cli("/users", "--top", "1")  # the token first

    def run(lines: list[dict[str, Any]]) -> Any:
        emu.clear_requests()
        emu.add_fault("503", endpoint="graph", every=1, times=1, retry_after=0)
        text = "".join(json.dumps(line) + "\n" for line in lines)
        return CliRunner().invoke(app, ["batch", "-", "--concurrency", "1"], input=text)

    read = {"method": "GET", "url": f"/users/{uid}"}
    r = run([read])
    assert r.exit_code == 0, r.stderr
    assert [e["status"] for e in _graph_log(emu)] == [503, 200]

    r = run([read, {"method": "POST", "url": "/users", "body": _new_user()}])
    assert r.exit_code == 10, r.stderr
    assert "may have been applied" in _errors(r.stderr)[0]
    assert [e["status"] for e in _graph_log(emu)] == [503]


def test_debug_keeps_the_exit_status_of_a_post_that_may_have_been_applied(
    env: SignedIn,
) -> None:
    """--debug adds the traceback; the status stays 10, so a script that resends on 1
    (Graph failing on its side: retry later) does not resend a POST that may have worked."""
    import subprocess

    from _process_helpers import graphkit_argv

    emu = env.emu
    _cli("/users", "--top", "1")  # the token first
    emu.add_fault("503", endpoint="graph", every=1, times=1, retry_after=0)
    argv = graphkit_argv("--debug", "query", "/users", "-X", "POST", "--body", "-")
    body = json.dumps(_new_user())
    proc = subprocess.run(
        argv, input=body, env={**os.environ}, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 10, proc.stderr[-2000:]
    assert "Traceback (most recent call last)" in proc.stderr
    assert "OutcomeUnknownError" in proc.stderr and "may have been applied" in proc.stderr
    assert proc.stdout == ""


def test_a_write_graph_refuses_as_bad_points_at_the_body_not_at_query_options(
    env: SignedIn,
) -> None:
    r = _cli("/users", "-X", "POST", "--body", json.dumps({"displayName": "No UPN"}))
    assert r.exit_code == 2, r.stderr
    [line] = _errors(r.stderr)
    assert "400" in line and "check the request body" in line
    assert "--filter" not in line


def test_a_post_throttled_past_the_cap_says_it_was_not_applied(env: SignedIn) -> None:
    """Graph asks for more than the 120 s cap: exit 8 at once, and the line tells a
    script it may send the POST again (a 429 was not processed), not to narrow a query."""
    emu = env.emu
    _cli("/users", "--top", "1")  # the token first
    emu.clear_requests()
    emu.add_fault("429", endpoint="graph", every=1, times=1, retry_after=500)
    r = _cli("/users", "-X", "POST", "--body", json.dumps(_new_user()))
    assert r.exit_code == 8, r.stderr
    [line] = _errors(r.stderr)
    assert "was not applied" in line and "send it again" in line
    assert "per page" not in line and "kept answering" not in line
    assert [e["status"] for e in _graph_log(emu)] == [429]
