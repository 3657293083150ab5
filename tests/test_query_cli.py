"""`graphkit query`: renderers, and the command end to end against the emulator."""

from __future__ import annotations

import csv
import io
import json
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from conftest import SignedIn
from typer.testing import CliRunner

from graphkit import crypto, output
from graphkit.cli import app
from graphkit.errors import ExitCode, UsageError
from graphkit.graph import GraphClient

# ------------------------------------------------------------------ renderers (no server)


def test_json_streams_a_valid_array() -> None:
    items = [{"id": "1", "n": "Ädä"}, {"id": "2", "nested": {"a": [1, 2]}}]
    buf = io.StringIO()
    assert output.write_items(iter(items), "json", buf) == 2
    assert json.loads(buf.getvalue()) == items
    empty = io.StringIO()
    output.write_items(iter([]), "json", empty)
    assert json.loads(empty.getvalue()) == []


def test_csv_columns_from_first_item_extra_keys_warned() -> None:
    items = [
        {"@odata.etag": "x", "id": "1", "name": "a", "tags": ["x", "y"], "ok": True},
        {"id": "2", "name": None, "late": "dropped", "ok": False},
    ]
    buf, warnings = io.StringIO(), []
    output.write_items(iter(items), "csv", buf, warn=warnings.append)
    rows = list(csv.reader(io.StringIO(buf.getvalue())))
    assert rows == [
        ["id", "name", "tags", "ok"],
        ["1", "a", '["x","y"]', "true"],
        ["2", "", "", "false"],
    ]
    assert len(warnings) == 1 and "late" in warnings[0] and "--select" in warnings[0]


def test_csv_columns_from_select() -> None:
    buf = io.StringIO()
    output.write_items(iter([{"id": "1", "mail": "m"}]), "csv", buf, select="mail, id,x")
    assert list(csv.reader(io.StringIO(buf.getvalue()))) == [["mail", "id", "x"], ["m", "1", ""]]


YAML_SAMPLE: Any = [
    {
        "id": "0b5c7e7e-1111-4222-8333-444455556666",
        "displayName": "Ada: Lovelace #1",
        "mail": "ada@contoso.com",
        "flags": ["yes", "no", "on", "null", "", " padded "],
        "n": 3,
        "f": 2.5,
        "b": False,
        "none": None,
        "date": "2026-01-01T00:00:00Z",
        "empty": {},
        "list": [],
        "nested": {"a": [{"x": 1}, [1, 2]], "@odata.type": "#microsoft.graph.user"},
        "multi": "line1\nline2 'q' \"dq\"",
    },
    {},
]


def test_yaml_round_trips_through_a_real_yaml_parser() -> None:
    import shutil
    import subprocess

    buf = io.StringIO()
    output.write_items(iter(YAML_SAMPLE), "yaml", buf)
    text = buf.getvalue()
    assert 'displayName: "Ada: Lovelace #1"' in text and "mail: ada@contoso.com" in text
    python3 = shutil.which("python3")
    probe = subprocess.run([python3 or "python3", "-c", "import yaml"], capture_output=True)
    if probe.returncode != 0:
        pytest.skip("no PyYAML in the system python to check the YAML against")
    loaded = subprocess.run(
        [
            python3 or "python3",
            "-c",
            "import sys,yaml,json; print(json.dumps(yaml.safe_load(sys.stdin)))",
        ],
        input=text,
        capture_output=True,
        text=True,
        check=True,
    )
    assert json.loads(loaded.stdout) == YAML_SAMPLE


def test_table_uses_resource_defaults_and_select() -> None:
    user = {
        "id": "u1",
        "displayName": "Ada",
        "userPrincipalName": "ada@contoso.com",
        "mail": None,
        "jobTitle": "Engineer",
    }
    buf = io.StringIO()
    output.write_items(iter([user]), "table", buf, resource="users")
    text = buf.getvalue()
    header = text.splitlines()[0]
    assert header.split() == ["displayName", "userPrincipalName", "id"]
    assert "Engineer" not in text and "\x1b[" not in text  # not a terminal: no escapes
    buf = io.StringIO()
    output.write_items(iter([user]), "table", buf, select="jobTitle,id", resource="users")
    assert buf.getvalue().splitlines()[0].split() == ["jobTitle", "id"]


@pytest.mark.parametrize(
    "expr",
    [
        "[].displayName",
        "[*].{n: displayName, m: mail}",
        "[?accountEnabled].mail",
        "[?accountEnabled]",
        "[*]",
        "[].[id, mail]",
    ],
)
def test_streaming_query_matches_whole_list_search(expr: str) -> None:
    items = [
        {"id": "1", "displayName": "A", "mail": "a@x", "accountEnabled": True},
        {"id": "2", "displayName": "B", "mail": None, "accountEnabled": False},
        {"id": "3", "mail": "c@x", "accountEnabled": True},
    ]
    q = output.JmesQuery(expr)
    assert q.streams
    assert list(q.per_item(iter(items))) == q.search(items)


@pytest.mark.parametrize("expr", ["length(@)", "[0]", "sort_by(@, &id)[].id", "[:2]"])
def test_whole_list_queries_do_not_stream(expr: str) -> None:
    assert not output.JmesQuery(expr).streams


def test_bad_query_is_a_usage_error() -> None:
    with pytest.raises(UsageError) as info:
        output.JmesQuery("[?")
    assert info.value.exit_code == ExitCode.USAGE and "--query" in str(info.value)


# ------------------------------------------------------------------ against the emulator

PASSPHRASE = b"query tests passphrase"
GUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
runner = CliRunner()


@dataclass
class Ident:
    key: Any
    cert: Any


@dataclass
class Conn:
    """A configured environment: the emulator, a client certificate uploaded to its app,
    and AZURE_*/GRAPHKIT_* variables set (REQUESTS_CA_BUNDLE points elsewhere on
    purpose: GraphClient must pass verify= itself)."""

    emu: Any
    env: dict[str, str]
    dir: Path

    def run(self, *args: str) -> Any:
        return runner.invoke(app, ["query", *args])


@pytest.fixture
def ident(signed_in_env: SignedIn) -> Ident:
    """The key and certificate the emulator's default app knows (see ``conn``)."""
    return Ident(signed_in_env.ident.key, signed_in_env.ident.cert)


@pytest.fixture
def conn(signed_in_env: SignedIn, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Conn:
    import certifi

    # conftest's signed_in_env, with colour allowed and a CA bundle that does not hold
    # the emulator's CA (GraphClient must pass verify= itself).
    env = {k: v for k, v in signed_in_env.env.items() if k != "NO_COLOR"}
    monkeypatch.delenv("NO_COLOR", raising=False)
    env.update({"REQUESTS_CA_BUNDLE": certifi.where(), "COLUMNS": "200"})
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    return Conn(signed_in_env.emu, env, tmp_path)


def _lines(stderr: str) -> list[str]:
    """stderr without the once-only notice about the plaintext token cache."""
    return [ln for ln in stderr.splitlines() if not ln.startswith("graphkit: warning:")]


def _all_ids(conn: Conn) -> list[str]:
    """Every user id, read with the library itself (GraphClient.from_env)."""
    with GraphClient.from_env() as graph:
        return [u["id"] for u in graph.iter("/users", {"$select": "id", "$top": "999"})]


def _ids_from(fmt: str, text: str) -> list[str]:
    if fmt == "json":
        return [u["id"] for u in json.loads(text)]
    if fmt == "jsonl":
        return [json.loads(line)["id"] for line in text.splitlines()]
    if fmt == "csv":
        return [row["id"] for row in csv.DictReader(io.StringIO(text))]
    if fmt == "yaml":
        return re.findall(r'^(?:- |  )id: "?([0-9a-f-]{36})"?$', text, re.MULTILINE)
    return GUID.findall(text)  # table


@pytest.mark.graphkit_emulator(users=1200)
@pytest.mark.parametrize("fmt", ["json", "jsonl", "csv", "yaml", "table"])
def test_all_users_once_in_every_format(conn: Conn, fmt: str) -> None:
    expected = _all_ids(conn)
    assert len(expected) == 1200
    conn.emu.clear_requests()
    r = conn.run("/users", "--all", "--select", "id,displayName", "--output", fmt)
    assert r.exit_code == 0, r.stderr
    ids = _ids_from(fmt, r.stdout)
    assert len(ids) == len(set(ids)) == 1200
    assert set(ids) == set(expected)
    # Default page size 100: twelve pages, one request each (the token was cached).
    assert [e["kind"] for e in conn.emu.requests()] == ["graph"] * 12


@pytest.mark.graphkit_emulator(users=1200)
def test_filter_select_and_query_are_applied(conn: Conn) -> None:
    with GraphClient.from_env() as graph:
        everyone = list(graph.iter("/users", {"$select": "id,displayName", "$top": "999"}))
    a_names = sorted(u["displayName"] for u in everyone if u["displayName"].lower().startswith("a"))
    assert 0 < len(a_names) < len(everyone)
    flt = "startswith(displayName,'A')"
    r = conn.run("/users", "--all", "--filter", flt, "--select", "displayName,id", "-o", "json")
    assert r.exit_code == 0, r.stderr
    items = json.loads(r.stdout)
    assert sorted(u["displayName"] for u in items) == a_names
    assert all(set(u) <= {"id", "displayName"} for u in items)
    # --query: a projection (streamed) and a whole-list expression.
    r = conn.run("/users", "--all", "--filter", flt, "--query", "[].displayName", "-o", "jsonl")
    assert r.exit_code == 0, r.stderr
    assert sorted(json.loads(line) for line in r.stdout.splitlines()) == a_names
    r = conn.run("/users", "--all", "--filter", flt, "--query", "length(@)")
    assert r.exit_code == 0 and json.loads(r.stdout) == len(a_names)
    r = conn.run(
        "/users", "--max-items", "5", "--query", "[].{name: displayName, upn: userPrincipalName}",
        "-o", "csv",
    )  # fmt: skip
    rows = list(csv.reader(io.StringIO(r.stdout)))
    assert rows[0] == ["name", "upn"] and len(rows) == 6


def test_count_search_and_advanced_filters_send_consistency_level(conn: Conn) -> None:
    r = conn.run("/users", "--count", "--filter", "accountEnabled ne true", "--all", "-o", "jsonl")
    assert r.exit_code == 0, r.stderr
    n = len(r.stdout.splitlines())
    assert 0 < n < 250
    assert f"{n} items in total (@odata.count)" in r.stderr
    r = conn.run("/users", "--search", "displayName:a", "--top", "5", "-o", "json")
    assert r.exit_code == 0, r.stderr


def test_first_page_only_without_all(conn: Conn) -> None:
    r = conn.run("/users", "-o", "jsonl")
    assert r.exit_code == 0 and len(r.stdout.splitlines()) == 100
    assert "--all" in r.stderr
    r = conn.run("/users", "--max-items", "150", "--top", "60", "-o", "jsonl")
    assert r.exit_code == 0 and len(r.stdout.splitlines()) == 150


def test_single_objects(conn: Conn) -> None:
    conn.emu.grant(conn.emu.default_app, "Organization.Read.All")  # before the first token
    uid = _all_ids(conn)[7]
    r = conn.run(f"users/{uid}")
    assert r.exit_code == 0, r.stderr
    assert json.loads(r.stdout)["id"] == uid
    r = conn.run(f"/v1.0/users/{uid}", "-o", "table")
    assert r.exit_code == 0 and uid in r.stdout and "userPrincipalName" in r.stdout
    r = conn.run(f"{conn.emu.graph_url}/v1.0/users/{uid}", "--query", "displayName", "-o", "jsonl")
    assert r.exit_code == 0 and isinstance(json.loads(r.stdout), str)
    r = conn.run("/organization", "--output", "yaml", "--api", "beta")
    assert r.exit_code == 0, r.stderr
    assert r.stdout.startswith("- ") and conn.emu.default_tenant.id in r.stdout


def test_errors_have_codes_ids_and_exit_statuses(
    conn: Conn, monkeypatch: pytest.MonkeyPatch
) -> None:
    r = conn.run("users/00000000-0000-0000-0000-000000000000")
    assert r.exit_code == ExitCode.NOT_FOUND
    assert "404" in r.stderr and "request-id" in r.stderr and "client-request-id" in r.stderr
    assert len(_lines(r.stderr)) == 1 and r.stdout == ""
    r = conn.run("/users", "--filter", "displayName eq")
    assert r.exit_code == ExitCode.USAGE and "400" in r.stderr
    r = conn.run("/users", "--output", "xml")
    assert r.exit_code == ExitCode.USAGE and "--output" in r.stderr
    conn.emu.revoke(conn.emu.default_app, "User.Read.All")
    # The cached token still carries the role (as in Entra): start from an empty cache.
    monkeypatch.setenv("GRAPHKIT_HOME", str(conn.dir / "home2"))
    r = conn.run("/users")
    assert r.exit_code == ExitCode.PERMISSION
    assert "User.Read.All" in r.stderr and "admin consent" in r.stderr


@pytest.mark.parametrize(
    ("kind", "extra", "expect"),
    [
        (
            "429",
            {"retry_after": 0.35},
            "Graph answered 429 (throttled); retry 1 of 4: waiting 0.3 s",
        ),
        ("503", {}, "Graph answered 503; retry 1 of 4: waiting"),
        ("reset", {}, "connection error"),
    ],
)
def test_retries_mid_paging(conn: Conn, kind: str, extra: dict[str, Any], expect: str) -> None:
    conn.emu.add_fault(kind, endpoint="graph", every=2, times=1, **extra)
    r = conn.run("/users", "--all", "-o", "jsonl", "--select", "id")
    assert r.exit_code == 0, r.stderr
    ids = [json.loads(line)["id"] for line in r.stdout.splitlines()]
    assert len(ids) == len(set(ids)) == 250
    assert expect in r.stderr
    log = conn.emu.requests()
    faulted = [e for e in log if e["fault"] == kind]
    assert len(faulted) == 1
    # The retry reused the same client-request-id.
    same = [e for e in log if e["client_request_id"] == faulted[0]["client_request_id"]]
    assert len(same) == 2 and same[1]["status"] == 200


def test_exhausted_retries_exit_throttled(conn: Conn) -> None:
    conn.emu.add_fault("429", endpoint="graph", every=1, retry_after=0.01)
    r = conn.run("/users")
    assert r.exit_code == ExitCode.THROTTLED
    err = _lines(r.stderr)
    assert err[-1].startswith("graphkit: error: Graph kept answering 429; gave up after 5 attempts")
    assert "client-request-id" in err[-1] and len(err) == 5  # 4 waits, then the error
    assert [e["status"] for e in conn.emu.requests() if e["kind"] == "graph"] == [429] * 5


def test_token_refused_to_a_foreign_url(conn: Conn) -> None:
    port = conn.emu.graph_url.rsplit(":", 1)[1]
    for url in (f"https://localhost:{port}/v1.0/users", "https://graph.microsoft.com/v1.0/users"):
        r = conn.run(url)
        assert r.exit_code == ExitCode.USAGE
        assert "refusing to send the Graph token" in r.stderr
    assert conn.emu.requests() == []  # not even a token was fetched


def test_token_refused_to_a_foreign_next_link(conn: Conn) -> None:
    # The emulator builds nextLinks from the Host header: addressed as localhost it
    # answers with a localhost nextLink, another origin than the configured 127.0.0.1.
    port = conn.emu.graph_url.rsplit(":", 1)[1]
    r = conn.run("/users", "--all", "-o", "jsonl", "-H", f"Host: localhost:{port}")
    assert r.exit_code == ExitCode.USAGE
    assert "refusing to send the Graph token to https://localhost" in r.stderr
    assert "nextLink" in r.stderr
    assert len(r.stdout.splitlines()) == 100  # the first page, then nothing
    assert [e["kind"] for e in conn.emu.requests()] == ["discovery", "token", "graph"]


def test_warm_second_run_makes_exactly_one_request(conn: Conn) -> None:
    conn.emu.grant(conn.emu.default_app, "Organization.Read.All")
    env = {**os.environ, **conn.env}
    cmd = [sys.executable, "-m", "graphkit", "query", "/organization", "-o", "json"]
    first = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=60)
    assert first.returncode == 0, first.stderr
    conn.emu.clear_requests()
    second = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=60)
    assert second.returncode == 0, second.stderr
    assert json.loads(second.stdout) == json.loads(first.stdout)
    log = conn.emu.requests()
    assert [(e["kind"], e["path"]) for e in log] == [("graph", "/v1.0/organization")]


@pytest.mark.parametrize("source", ["profile", "env", "flags"])
def test_query_from_each_configuration_source(
    conn: Conn, ident: Ident, monkeypatch: pytest.MonkeyPatch, source: str
) -> None:
    emu, d = conn.emu, conn.dir
    for name in ("AZURE_TENANT_ID", "AZURE_CLIENT_ID", "AZURE_CLIENT_CERTIFICATE_PATH"):
        monkeypatch.delenv(name)
    passfile = d / "pass"
    passfile.write_bytes(PASSPHRASE + b"\n")
    if source == "profile":  # key + certificate in two files
        (d / "c.key").write_bytes(crypto.dump_private_key(ident.key))
        (d / "c.crt").write_bytes(crypto.dump_certificate(ident.cert))
        r = runner.invoke(
            app,
            ["config", "set", "emu", "--tenant", emu.default_tenant.domain,
             "--client-id", emu.default_app.client_id, "--certificate", str(d / "c.crt"),
             "--private-key", str(d / "c.key")],
        )  # fmt: skip
        assert r.exit_code == 0, r.stderr
        args = ["--profile", "emu"]
    elif source == "env":  # a PFX with its password, as azure-identity takes it
        (d / "c.pfx").write_bytes(crypto.dump_pfx(ident.key, ident.cert, PASSPHRASE))
        monkeypatch.setenv("AZURE_TENANT_ID", emu.default_tenant.id)
        monkeypatch.setenv("AZURE_CLIENT_ID", emu.default_app.client_id)
        monkeypatch.setenv("AZURE_CLIENT_CERTIFICATE_PATH", str(d / "c.pfx"))
        monkeypatch.setenv("AZURE_CLIENT_CERTIFICATE_PASSWORD", PASSPHRASE.decode())
        args = []
    else:  # flags, with an encrypted combined PEM
        (d / "enc.pem").write_bytes(crypto.dump_combined_pem(ident.key, ident.cert, PASSPHRASE))
        args = [
            "--tenant", emu.default_tenant.id, "--client-id", emu.default_app.client_id,
            "--certificate", str(d / "enc.pem"), "--passphrase-file", str(passfile),
        ]  # fmt: skip
    r = conn.run("/users", "--top", "3", "-o", "jsonl", *args)
    assert r.exit_code == 0, r.stderr
    assert len(r.stdout.splitlines()) == 3
    if source == "profile":  # the library, from the same profile
        with GraphClient.from_profile("emu") as graph:
            assert len(graph.get("/users", {"$top": "2"})["value"]) == 2


@pytest.mark.parametrize("no_color", [False, True])
def test_on_a_terminal_table_progress_and_no_color(conn: Conn, no_color: bool) -> None:
    pexpect = pytest.importorskip("pexpect")
    env = {**os.environ, **conn.env}
    env.pop("NO_COLOR", None)
    if no_color:
        env["NO_COLOR"] = "1"
    child = pexpect.spawn(
        sys.executable,
        ["-m", "graphkit", "query", "/users", "--all", "--select", "displayName,id"],
        env=env,
        encoding="utf-8",
        dimensions=(50, 200),
        timeout=60,
    )
    child.expect(pexpect.EOF)
    child.close()
    text = child.before
    assert child.exitstatus == 0, text
    # Progress on stderr while paging, then the table (the default on a terminal).
    assert "graphkit: fetched 100 items (1 page)" in text
    assert "graphkit: fetched 250 items (3 pages)" in text
    assert len(set(GUID.findall(text))) == 250 and "displayName" in text
    sgr = re.findall(r"\x1b\[[0-9;]*m", text)  # colour and bold; \x1b[K only erases
    assert (sgr == []) is no_color
