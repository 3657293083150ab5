"""`graphkit query`: renderers, and the command end to end against the emulator."""

from __future__ import annotations

import csv
import io
import json
from typing import Any

import pytest

from graphkit import output
from graphkit.errors import ExitCode, UsageError

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
    header = text.splitlines()[1]
    assert header.split() == ["displayName", "userPrincipalName", "mail", "id"]
    assert "Engineer" not in text and "\x1b[" not in text  # not a terminal: no escapes
    buf = io.StringIO()
    output.write_items(iter([user]), "table", buf, select="jobTitle,id", resource="users")
    assert buf.getvalue().splitlines()[1].split() == ["jobTitle", "id"]


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
