"""-o json and -o csv write exactly what they wrote before they were made fast.

-o json: the indented list, item by item, through the C encoder (output.json_indented)
instead of json.dumps(indent=2)'s pure-Python one; the text must be json.dumps's to the
byte, for every shape of JSON. -o csv: plain values go to the csv writer as they are.
"""

from __future__ import annotations

import csv
import io
import json
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from graphkit import output

USER = {
    "businessPhones": ["+1 425 555 0001"],
    "displayName": "Sara Meyer",
    "givenName": "Sara",
    "jobTitle": None,
    "id": "c77e8935-b412-486d-8bde-04a6cf5abd77",
}


def _json(items: list[Any]) -> str:
    buf = io.StringIO()
    output.write_items(iter(items), "json", buf)
    return buf.getvalue()


def test_json_of_a_small_list_to_the_byte() -> None:
    second = {"id": "2", "businessPhones": [], "manager": {"id": "m", "tags": ["a", 1]}}
    assert _json([USER, second]) == (
        "[\n"
        "  {\n"
        '    "businessPhones": [\n'
        '      "+1 425 555 0001"\n'
        "    ],\n"
        '    "displayName": "Sara Meyer",\n'
        '    "givenName": "Sara",\n'
        '    "jobTitle": null,\n'
        '    "id": "c77e8935-b412-486d-8bde-04a6cf5abd77"\n'
        "  },\n"
        "  {\n"
        '    "id": "2",\n'
        '    "businessPhones": [],\n'
        '    "manager": {\n'
        '      "id": "m",\n'
        '      "tags": [\n'
        '        "a",\n'
        "        1\n"
        "      ]\n"
        "    }\n"
        "  }\n"
        "]\n"
    )


def test_json_of_no_items_and_of_scalars() -> None:
    assert _json([]) == "[]\n"
    assert _json(["a", 1, None, True, 1.5]) == '[\n  "a",\n  1,\n  null,\n  true,\n  1.5\n]\n'


# Every JSON value json.loads can give, with the strings most likely to trip a text
# transformation: brackets, quotes, backslashes, line breaks, the placeholder itself.
_TRICKY = st.sampled_from(
    ["", "[", "]", "{}", '"', "\\", '\\"', "\n", ",\n  ", ": ", '": [', "],\n    ", "a]",
     "\x00graphkit: nested value\x00"]
)  # fmt: skip
_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text()
    | _TRICKY
)
_JSON = st.recursive(
    _SCALARS,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(st.text(max_size=5) | _TRICKY, inner, max_size=4)
    ),
    max_leaves=20,
)


@settings(
    max_examples=300,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(_JSON)
@example({"a": ["x"], "b": "\x00graphkit: nested value\x00"})  # the placeholder in the data
@example({"\x00graphkit: nested value\x00": [1], "b": [2]})
@example([[], {}, [[]], [{}], {"a": {}}])
def test_json_indented_is_json_dumps_to_the_byte(value: Any) -> None:
    expected = json.dumps(value, indent=2, ensure_ascii=False)
    assert output.json_indented(value) == expected
    assert output.json_indented(value, "\n    ") == expected.replace("\n", "\n    ")
    assert _json([value]) == "[\n  " + expected.replace("\n", "\n  ") + "\n]\n"


# The shape of a Graph object: plain members, and lists of plain values or empty ones.
_MEMBER = _SCALARS | st.lists(_SCALARS, max_size=3) | st.just({})


@settings(max_examples=500, deadline=None, derandomize=True)
@given(st.dictionaries(st.text(max_size=4) | _TRICKY, _MEMBER, max_size=6))
@example({"a": ["x", "]"], "b": ["],\n    ", "y"], "c": '"a": ['})
def test_objects_with_lists_of_plain_values_to_the_byte(value: dict[str, Any]) -> None:
    expected = json.dumps(value, indent=2, ensure_ascii=False)
    assert output.json_indented(value) == expected
    assert output.json_indented(value, "\n  ") == expected.replace("\n", "\n  ")


def test_csv_cells_as_before() -> None:
    items = [
        {"id": "1", "n": 3, "x": 1.5, "ok": True, "no": False, "none": None, "l": ["a", "b"]},
        {"id": "2", "n": -1, "x": 1e300, "ok": False, "d": {"k": [1]}, "l": [], "extra": "e"},
    ]
    warned: list[str] = []
    buf = io.StringIO()
    output.write_items(iter(items), "csv", buf, warn=warned.append)
    assert list(csv.reader(io.StringIO(buf.getvalue()))) == [
        ["id", "n", "x", "ok", "no", "none", "l"],
        ["1", "3", "1.5", "true", "false", "", '["a","b"]'],
        ["2", "-1", "1e+300", "false", "", "", "[]"],
    ]
    # Fields that are no column are named once, whatever their order.
    assert warned == [
        "some items have fields that are not CSV columns and were left out: d, extra; "
        "choose the columns with --select"
    ]


@pytest.mark.parametrize("fmt", ["json", "csv"])
def test_a_page_of_users_reads_back_as_itself(fmt: str) -> None:
    users = [dict(USER, id=f"id-{i}", displayName=f'User, {i} "q"') for i in range(50)]
    buf = io.StringIO()
    output.write_items(iter(users), fmt, buf)
    if fmt == "json":
        assert json.loads(buf.getvalue()) == users
        assert buf.getvalue() == json.dumps(users, indent=2, ensure_ascii=False) + "\n"
    else:
        rows = list(csv.DictReader(io.StringIO(buf.getvalue())))
        assert [r["displayName"] for r in rows] == [u["displayName"] for u in users]
        assert {r["businessPhones"] for r in rows} == {'["+1 425 555 0001"]'}
