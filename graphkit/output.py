"""Renderers for Graph results: a Rich table, JSON, JSON lines, CSV and YAML.

Collections are rendered from an iterator, item by item, and never held in memory:
``json`` (an array written element by element), ``jsonl``, ``csv``, ``tsv``, ``yaml``
and ``table``, whose column widths are fixed from the first page (later values that
do not fit are cut with "…" on a terminal, and a note on stderr says so; piped, a table
has no width limit and nothing is cut).

CSV columns come from ``--select`` when given, otherwise from the first item (or the
first result of ``--query``); keys that first appear in later items are left out, and a
warning says which, once. Nested values are written as compact JSON.

YAML is emitted by a small writer here rather than a new dependency: JSON data only
needs block mappings, block sequences and scalars, and every string that a YAML
reader could take for something else (a number, a date, ``yes``, ...) is written
double-quoted (a JSON string is a valid YAML double-quoted scalar).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
from collections.abc import Callable, Iterable, Iterator
from typing import Any, TextIO

__all__ = [
    "FORMATS",
    "JmesQuery",
    "colorize_json",
    "columns_for",
    "default_format",
    "json_color",
    "no_color",
    "resource_of",
    "write_items",
    "write_object",
    "yaml_dump",
]

FORMATS = ("table", "json", "jsonl", "csv", "tsv", "yaml")

# Table columns when --select is not given, per collection (from @odata.context).
DEFAULT_COLUMNS: dict[str, list[str]] = {
    # mail usually repeats userPrincipalName; leaving it out keeps a users table within
    # 100 columns without folding addresses (--select mail brings it back).
    "users": ["displayName", "userPrincipalName", "id"],
    "groups": ["displayName", "mail", "securityEnabled", "mailEnabled", "id"],
    "applications": ["displayName", "appId", "signInAudience", "id"],
    "serviceprincipals": ["displayName", "appId", "servicePrincipalType", "id"],
    "organization": ["displayName", "countryLetterCode", "id"],
    "devices": ["displayName", "operatingSystem", "operatingSystemVersion", "id"],
    "domains": ["id", "isDefault", "isVerified", "authenticationType"],
    "directoryobjects": ["@odata.type", "displayName", "id"],
}
# Without defaults: at most this many scalar fields of the first item.
MAX_AUTO_COLUMNS = 6


def no_color() -> bool:
    """NO_COLOR (https://no-color.org): set and non-empty disables colour (and, in
    tables, bold too: plain text only)."""
    return bool(os.environ.get("NO_COLOR"))


def default_format(stream: TextIO) -> str:
    """``table`` on a terminal, ``json`` when piped or redirected."""
    try:
        return "table" if stream.isatty() else "json"
    except (AttributeError, ValueError):
        return "json"


def resource_of(context: str | None, path: str | None = None) -> str | None:
    """The collection name from ``@odata.context`` (``...$metadata#users(...)``) or path."""
    if context and "#" in context:
        name = re.split(r"[(/]", context.split("#", 1)[1], maxsplit=1)[0]
        if name:
            return name.lower()
    if path:
        segs = [s for s in path.split("?", 1)[0].split("/") if s and "://" not in s]
        if segs:
            return segs[-1].split("(", 1)[0].lower()
    return None


def select_columns(select: str | None) -> list[str] | None:
    """Columns named by ``$select`` (``a,b, c``), or None."""
    if not select:
        return None
    cols = [c.strip() for c in select.split(",") if c.strip()]
    return cols or None


def _is_scalar(value: Any) -> bool:
    return not isinstance(value, dict | list)


def columns_for(
    first: Any, *, select: str | None = None, resource: str | None = None
) -> list[str] | None:
    """Table columns: --select, else the resource's defaults, else scalar fields."""
    cols = select_columns(select)
    if cols:
        return cols
    if not isinstance(first, dict):
        return None
    defaults = DEFAULT_COLUMNS.get(resource or "")
    if defaults:
        present = [c for c in defaults if c in first]
        if present:
            return present
    keys = [k for k, v in first.items() if not k.startswith("@") and _is_scalar(v)]
    if not keys:
        keys = [k for k in first if not k.startswith("@")]
    if len(keys) > MAX_AUTO_COLUMNS:
        keep = keys[:MAX_AUTO_COLUMNS]
        if "id" in keys and "id" not in keep:
            keep[-1] = "id"
        keys = keep
    return keys


def cell(value: Any) -> str:
    """A value as CSV/table text: null is empty, booleans are JSON, nesting is JSON."""
    if value is None:
        return ""
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, str):
        return value
    if isinstance(value, dict | list):
        if isinstance(value, list) and all(isinstance(v, str) for v in value):
            return ", ".join(value)
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    return str(value)


_CSV_AS_IS = frozenset({str, int, float, type(None)})


def _csv_cell(value: Any) -> str:
    if isinstance(value, list):
        return _c_encoder(",", ":")(value)
    return cell(value)


# ------------------------------------------------------------------ JMESPath


class JmesQuery:
    """A JMESPath expression applied as the Azure CLI does: to the list of items
    (or to the single object).

    Expressions that project over the list (``[].name``, ``[*].{n: name}``,
    ``[?accountEnabled].mail``) give the same answer item by item, so they are run
    as the items stream in; any other expression (``length(@)``, ``[0]``, ``sort_by``)
    needs the whole list and is applied once it is complete.
    """

    def __init__(self, expression: str) -> None:
        import jmespath
        from jmespath.exceptions import JMESPathError

        from graphkit.errors import UsageError

        try:
            self._compiled = jmespath.compile(expression)
        except JMESPathError as exc:
            raise UsageError(
                f"invalid --query {_shown(expression)}: {_one_line(str(exc))}",
                "see https://jmespath.org for the syntax",
            ) from None
        except RecursionError:  # 5,000 '[' nest deeper than the parser recurses
            raise UsageError(
                f"invalid --query {_shown(expression)}: nested too deeply",
                "see https://jmespath.org for the syntax",
            ) from None
        self.expression = expression
        self._right: Any = None
        self._cond: Any = None
        self.reshapes = True
        tree: Any = self._compiled.parsed
        kids: list[Any] = tree.get("children") or []
        left: Any = kids[0] if kids else None
        if tree["type"] in ("projection", "filter_projection") and left is not None:
            if left["type"] == "flatten":
                left = (left.get("children") or [None])[0]
            if left is not None and left["type"] == "identity":
                self._right = self._sub(kids[1])
                # [*] and [?cond] keep whole items: the usual columns still apply.
                self.reshapes = kids[1]["type"] != "identity"
                if tree["type"] == "filter_projection":
                    self._cond = self._sub(kids[2])

    @staticmethod
    def _sub(node: Any) -> Any:
        from jmespath.parser import ParsedResult

        return ParsedResult("", node)

    @property
    def streams(self) -> bool:
        """Whether the expression can be applied item by item."""
        return self._right is not None

    def search(self, data: Any) -> Any:
        with self._failures():
            return self._compiled.search(data)

    def per_item(self, items: Iterable[Any]) -> Iterator[Any]:
        """The projection's elements, item by item (only when :attr:`streams`)."""
        right, cond = self._right, self._cond
        for item in items:
            with self._failures():
                if cond is not None and not _truthy(cond.search(item)):
                    continue
                value = right.search(item)
            if value is not None:
                yield value

    @contextlib.contextmanager
    def _failures(self) -> Iterator[None]:
        """A runtime failure of the expression (``abs(`"a"`)``, ``keys(@)`` on a list,
        ``sort_by`` over lists) as a usage error naming the expression and the reason."""
        from jmespath.exceptions import JMESPathError

        from graphkit.errors import UsageError

        try:
            yield
        except JMESPathError as exc:
            function = getattr(exc, "function_name", None)
            if function is not None:  # a JMESPathTypeError: not the value (it is data)
                expected = " or ".join(getattr(exc, "expected_types", None) or ["?"])
                actual = getattr(exc, "actual_type", "?")
                why = f"{function}() expects {expected}, got {actual}"
            else:
                why = _one_line(str(exc), 120)
            raise UsageError(
                f"--query {_shown(self.expression)} cannot be applied to the result: {why}",
                "check the functions and the types they take "
                "(https://jmespath.org/specification.html#built-in-functions)",
            ) from None
        except RecursionError:
            raise UsageError(
                f"--query {_shown(self.expression)} nests too deeply to be applied",
                "simplify the expression",
            ) from None


def _shown(expression: str, limit: int = 80) -> str:
    """An expression as messages quote it: repr, and cut short when long."""
    return repr(expression) if len(expression) <= limit else repr(expression[:limit]) + "..."


def _one_line(text: str, limit: int = 300) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _truthy(value: Any) -> bool:
    # JMESPath falsiness: null, false, and empty string, list and object.
    return not (value is None or value is False or value in ("", [], {}))


# ------------------------------------------------------------------ YAML


_YAML_PLAIN = re.compile(r"^[A-Za-z_/][A-Za-z0-9 _./@+()-]*$")
# YAML 1.1 and 1.2 booleans and null: written quoted.
_YAML_RESERVED = frozenset(["null", "~", "true", "false", "yes", "no", "on", "off", "y", "n"])


def _yaml_scalar(value: Any) -> str:
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, int | float):
        return json.dumps(value)
    text = str(value)
    if (
        _YAML_PLAIN.match(text)
        and not text.endswith(" ")
        and text.lower() not in _YAML_RESERVED
        and ": " not in text
        and " #" not in text
    ):
        return text
    return json.dumps(text, ensure_ascii=False)


def _yaml_is_block(value: Any) -> bool:
    return isinstance(value, dict | list) and len(value) > 0


def _yaml_lines(value: Any) -> list[str]:
    lines: list[str] = []
    if isinstance(value, dict):
        for key, val in value.items():
            k = _yaml_scalar(str(key))
            if _yaml_is_block(val):
                lines.append(f"{k}:")
                lines.extend("  " + line for line in _yaml_lines(val))
            else:
                lines.append(f"{k}: {_yaml_inline(val)}")
    else:
        for el in value:
            if _yaml_is_block(el):
                sub = _yaml_lines(el)
                lines.append("- " + sub[0])
                lines.extend("  " + line for line in sub[1:])
            else:
                lines.append(f"- {_yaml_inline(el)}")
    return lines


def _yaml_inline(value: Any) -> str:
    if isinstance(value, dict):
        return "{}"
    if isinstance(value, list):
        return "[]"
    return _yaml_scalar(value)


def yaml_dump(value: Any) -> str:
    """A YAML document for JSON data."""
    if _yaml_is_block(value):
        return "\n".join(_yaml_lines(value)) + "\n"
    return _yaml_inline(value) + "\n"


# ------------------------------------------------------------------ JSON colour and TSV

_JSON_TOKEN = re.compile(
    r'("(?:[^"\\]|\\.)*")(\s*:)?|\b(true|false|null)\b|(-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?)'
)


def json_color(out: TextIO) -> bool:
    """Colour JSON for ``out``: on a terminal, unless NO_COLOR."""
    try:
        return bool(out.isatty()) and not no_color()
    except (AttributeError, ValueError):
        return False


def colorize_json(text: str) -> str:
    """JSON text with ANSI colours: keys blue, strings green, numbers cyan, literals
    magenta (as jq does it, roughly). Only for a terminal: see :func:`json_color`."""

    def paint(m: re.Match[str]) -> str:
        string, colon, literal, number = m.groups()
        if string is not None:
            if colon is not None:
                return f"\x1b[1;34m{string}\x1b[0m{colon}"
            return f"\x1b[32m{string}\x1b[0m"
        if literal is not None:
            return f"\x1b[35m{literal}\x1b[0m"
        return f"\x1b[36m{number}\x1b[0m"

    return _JSON_TOKEN.sub(paint, text)


def tsv_field(value: Any) -> str:
    """One TSV field, as az -o tsv writes them: no quoting; tabs and newlines inside a
    value become spaces so the columns and lines hold; a list of strings is joined with
    ", ", other nesting is compact JSON."""
    text = cell(value)
    return text.replace("\t", " ").replace("\r", " ").replace("\n", " ")


def tsv_line(value: Any, cols: list[str] | None = None) -> str:
    """An object's values (in ``cols`` or key order), a list's elements, or a scalar."""
    if isinstance(value, dict):
        keys = cols if cols is not None else [k for k in value if not k.startswith("@odata.")]
        return "\t".join(tsv_field(value.get(k)) for k in keys)
    if isinstance(value, list):
        return "\t".join(tsv_field(v) for v in value)
    return tsv_field(value)


# ------------------------------------------------------------------ writers


def _dumps_line(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


# -o json, fast: json.dumps(indent=...) runs the pure-Python encoder (CPython's C encoder
# takes no indent), three times slower than -o jsonl. The C encoder writes the same text
# when its item separator carries the line break and the indentation of the level: only
# the brackets need placing. So a container of plain values is encoded in one C call; a
# nested value (a user's businessPhones) goes in as a placeholder and is written the
# same way, one level deeper.
_PLAIN = frozenset({str, int, float, bool, type(None)})
# A string no Graph value holds (encoded "\u0000graphkit..."); should data hold it, the
# count of placeholders is off and the value goes through json.dumps itself.
_NESTED = "\x00graphkit: nested value\x00"
_NESTED_JSON = json.dumps(_NESTED)
_encoders: dict[tuple[str, str], Callable[[Any], str]] = {}
_levels: dict[str, tuple[str, Callable[[Any], str]]] = {}


def _c_encoder(item_separator: str, key_separator: str) -> Callable[[Any], str]:
    """``json.dumps(value, ensure_ascii=False, separators=...)`` through the C encoder,
    built once (json.dumps builds one on every call: a third of -o jsonl's time per
    item)."""
    encode = _encoders.get((item_separator, key_separator))
    if encode is None:
        from json import encoder as std

        plain = json.JSONEncoder(ensure_ascii=False, separators=(item_separator, key_separator))
        make = getattr(std, "c_make_encoder", None)
        if make is None:  # pragma: no cover  (no C accelerator: PyPy)
            encode = plain.encode
        else:
            # What JSONEncoder.encode builds each time; markers ({}) catch a cycle.
            chunks = make(
                {}, plain.default, std.encode_basestring, None, key_separator,
                item_separator, False, False, True,
            )  # fmt: skip

            def encode(value: Any) -> str:
                return "".join(chunks(value, 0))

        _encoders[(item_separator, key_separator)] = encode
    return encode


def _level(pad: str) -> tuple[str, Callable[[Any], str]]:
    """The indentation one level below ``pad`` ("\\n" and spaces), and the encoder of
    members there."""
    level = _levels.get(pad)
    if level is None:
        inner = pad + "  "
        level = _levels[pad] = (inner, _c_encoder("," + inner, ": "))
    return level


def json_indented(value: Any, pad: str = "\n") -> str:
    """``json.dumps(value, indent=2, ensure_ascii=False)``, the same text to the byte,
    with every line after the first also indented as ``pad`` (a line break, then the
    indentation of the line ``value`` starts on)."""
    kind = type(value)
    if kind is not dict and kind is not list:
        return json.dumps(value, indent=2, ensure_ascii=False).replace("\n", pad)
    if not value:
        return "{}" if kind is dict else "[]"
    inner, encode = _level(pad)
    if kind is list:
        if _PLAIN.issuperset(map(type, value)):
            return "[" + inner + encode(value)[1:-1] + pad + "]"
        return "[" + inner + ("," + inner).join(json_indented(v, inner) for v in value) + pad + "]"
    nested = [k for k, v in value.items() if type(v) not in _PLAIN]
    if not nested:
        return "{" + inner + encode(value)[1:-1] + pad + "}"
    text = _lists_in_place(value, nested, pad, inner, encode)
    if text is not None:
        return text
    shallow = dict(value)
    for key in nested:
        shallow[key] = _NESTED
    pieces = encode(shallow)[1:-1].split(_NESTED_JSON)
    if len(pieces) != len(nested) + 1:  # the placeholder's text is in the data itself
        return json.dumps(value, indent=2, ensure_ascii=False).replace("\n", pad)
    parts = [pieces[0]]
    for key, after in zip(nested, pieces[1:], strict=True):
        parts += (json_indented(value[key], inner), after)
    return "{" + inner + "".join(parts) + pad + "}"


def _lists_in_place(
    value: dict[Any, Any], nested: list[Any], pad: str, inner: str, encode: Callable[[Any], str]
) -> str | None:
    """The text of ``value`` when its only nested members are lists of plain values
    (and empty containers), the common shape (a user's businessPhones): one C call, then
    each list opened onto lines of its own. None for any other shape.

    In the encoded text a line break is always a separator (a string holds it escaped),
    so ``,`` + ``inner`` + ``"key": [`` can only start that member, the list ends at
    its first ``]`` followed by a separator (or at the end), and the separators inside
    it are its elements'.
    """
    from json.encoder import encode_basestring

    lists = []
    for key in nested:
        member = value[key]
        if not member and type(member) in (list, dict):
            continue  # [] and {} are written as they are
        if type(member) is not list or type(key) is not str:
            return None
        if not _PLAIN.issuperset(map(type, member)):
            return None
        lists.append(key)
    text = encode(value)
    sep = "," + inner
    parts: list[str] = []
    cursor = 1  # after "{"
    for key in lists:
        head = encode_basestring(key) + ": ["
        if cursor == 1 and text.startswith(head, 1):
            start = 1
        else:
            found = text.find(sep + head, cursor)
            if found < 0:  # pragma: no cover  (cannot happen: the member is there)
                return None
            start = found + len(sep)
        opened = start + len(head)
        close = text.find("]" + sep, opened)
        if close < 0:
            close = len(text) - 2  # the last member: "]}"
        body = text[opened:close].replace(sep, sep + "  ")
        parts += (text[cursor:opened], inner, "  ", body, inner, "]")
        cursor = close + 1
    parts.append(text[cursor:-1])
    return "{" + inner + "".join(parts) + pad + "}"


def write_items(
    items: Iterable[Any],
    fmt: str,
    out: TextIO,
    *,
    select: str | None = None,
    resource: str | None = None,
    warn: Callable[[str], None] | None = None,
    shaped: bool = False,
    note: Callable[[str], None] | None = None,
    batch: int = 100,
) -> int:
    """Write a collection in ``fmt``; returns how many elements were written.

    ``shaped``: the elements come from ``--query``; columns then follow the first
    element's keys rather than ``--select`` or the resource's defaults.
    ``note``: where a table's notes go (hidden columns, cut values, the count).
    ``batch``: a table's widths come from this many first items (the first page).
    """
    if fmt == "jsonl":
        n = 0
        write = out.write
        for item in items:
            write(_dumps_line(item))
            write("\n")
            n += 1
        return n
    if fmt == "json":
        n = 0
        paint = colorize_json if json_color(out) else None
        for item in items:
            text = json_indented(item, "\n  ")
            out.write(("[\n  " if n == 0 else ",\n  ") + (paint(text) if paint else text))
            n += 1
        out.write("\n]\n" if n else "[]\n")
        return n
    if fmt == "tsv":
        n = 0
        cols = None if shaped else select_columns(select)
        for item in items:
            if cols is None and isinstance(item, dict):
                # Fixed by the first item (as CSV's columns): every line has as many fields.
                cols = [k for k in item if not k.startswith("@odata.")]
            out.write(tsv_line(item, cols) + "\n")
            n += 1
        return n
    if fmt == "yaml":
        n = 0
        for item in items:
            lines = _yaml_lines([item])
            out.write("\n".join(lines) + "\n")
            n += 1
        if not n:
            out.write("[]\n")
        return n
    if fmt == "csv":
        return _write_csv(items, out, select=None if shaped else select, warn=warn)
    if fmt == "table":
        return _write_table(
            items,
            out,
            select=None if shaped else select,
            resource=None if shaped else resource,
            note=note,
            batch=batch,
        )
    raise ValueError(f"unknown format {fmt!r}")


def _write_csv(
    items: Iterable[Any],
    out: TextIO,
    *,
    select: str | None,
    warn: Callable[[str], None] | None,
) -> int:
    import csv

    writer = csv.writer(out)
    writerow = writer.writerow
    cols = select_columns(select)
    if cols:
        writerow(cols)
    known: set[str] = set(cols or ())
    extra: set[str] = set()
    n = 0
    for item in items:
        if cols is None:
            if isinstance(item, dict):
                cols = [k for k in item if not k.startswith("@odata.")]
                known = set(cols)
                writerow(cols)
            else:
                cols = []  # scalars or lists: rows without a header
        if isinstance(item, dict):
            # csv writes str, int, float and None (as "") as _csv_cell would: only the
            # other values go through it (one call per cell cost a third of the time).
            writerow([v if type(v) in _CSV_AS_IS else _csv_cell(v) for v in map(item.get, cols)])
            if warn is not None and len(extra) < 20:
                extra.update(k for k in item.keys() - known if not k.startswith("@odata."))
        elif isinstance(item, list):
            writer.writerow([_csv_cell(v) for v in item])
        else:
            writer.writerow([_csv_cell(item)])
        n += 1
    if extra and warn is not None:
        warn(
            "some items have fields that are not CSV columns and were left out: "
            f"{', '.join(sorted(extra))}; choose the columns with --select"
        )
    return n


def _isatty(out: TextIO) -> bool:
    try:
        return bool(out.isatty())
    except (AttributeError, ValueError):
        return False


def terminal_width(out: TextIO) -> int | None:
    """The width a table must fit: the terminal's (COLUMNS wins), None when ``out`` is
    not a terminal (piped or redirected: no limit, nothing is cut)."""
    if not _isatty(out):
        return None
    import shutil

    return max(20, shutil.get_terminal_size().columns)


def _is_id_column(name: str) -> bool:
    # Ids are unusable cut or folded: shown whole, always.
    return name == "id" or name.endswith("Id") or name == "appId"


class _TableLayout:
    """Column widths fixed from the first batch of rows, fitted to ``width``.

    Non-id columns are narrowed (widest first, to no less than their header or 8)
    until the row fits; if it still does not, non-id columns are hidden from the right.
    Id columns are never narrowed nor hidden.
    """

    def __init__(self, cols: list[str], rows: list[list[str]], width: int | None, header: bool):
        natural = [
            max([len(c) if header else 0] + [len(r[i]) for r in rows]) for i, c in enumerate(cols)
        ]
        self.cols = cols
        self.widths = list(natural)
        self.shown = list(range(len(cols)))
        self.hidden: list[str] = []
        if width is None:
            return

        def total() -> int:
            return sum(self.widths[i] for i in self.shown) + 2 * (len(self.shown) - 1)

        floors = {i: min(natural[i], max(len(c) if header else 1, 8)) for i, c in enumerate(cols)}
        while total() > width:
            narrowable = [
                i for i in self.shown if not _is_id_column(cols[i]) and self.widths[i] > floors[i]
            ]
            if not narrowable:
                break
            widest = max(narrowable, key=lambda i: self.widths[i])
            self.widths[widest] -= min(self.widths[widest] - floors[widest], total() - width)
        while total() > width:
            hideable = [i for i in self.shown if not _is_id_column(cols[i])]
            if not hideable:
                break  # only ids left: shown whole (the terminal wraps them)
            self.shown.remove(hideable[-1])
            self.hidden.insert(0, cols[hideable[-1]])
        self.limited = True

    limited = False

    def line(self, values: list[str]) -> tuple[str, int]:
        """One row's text (no trailing spaces) and how many of its values were cut."""
        parts: list[str] = []
        cut = 0
        last = len(self.shown) - 1
        for n, i in enumerate(self.shown):
            text, w = values[i], self.widths[i]
            if len(text) > w and self.limited and not _is_id_column(self.cols[i]):
                text = text[: max(0, w - 1)] + "…"
                cut += 1
            parts.append(text if n == last else text.ljust(w))
        return "  ".join(parts).rstrip(), cut


def _write_table(
    items: Iterable[Any],
    out: TextIO,
    *,
    select: str | None,
    resource: str | None,
    note: Callable[[str], None] | None = None,
    batch: int = 100,
    width: int | bool | None = True,
) -> int:
    """A table written as the items arrive: widths from the first ``batch`` items.

    ``width``: True for the terminal's (none when ``out`` is not a terminal), None
    for no limit, or a number of columns. Values cut to fit end in "…"; hidden columns
    and cut values are reported through ``note`` (stderr), with what to do instead.
    """
    say = note or (lambda _text: None)
    limit = terminal_width(out) if width is True else (width or None)
    bold = _isatty(out) and not no_color()
    iterator = iter(items)
    first: list[Any] = []
    for item in iterator:
        first.append(item)
        if len(first) >= max(1, batch):
            break
    if not first:
        say("no items")
        return 0
    header = isinstance(first[0], dict)
    cols = (columns_for(first[0], select=select, resource=resource) or []) if header else ["value"]

    def values(item: Any) -> list[str]:
        if not header:
            return [" ".join(cell(item).split())]
        row = item if isinstance(item, dict) else {}
        # One line per row: embedded newlines and tabs would break the columns.
        return [" ".join(cell(row.get(c)).split()) for c in cols]

    if header and isinstance(first[0], dict):
        fields = [k for k in first[0] if not k.startswith("@")]
        left_out = [k for k in fields if k not in cols]
        if left_out:
            say(
                f"{len(cols)} of {len(fields)} fields shown ({', '.join(left_out[:5])}"
                f"{', ...' if len(left_out) > 5 else ''} left out): choose them with "
                "--select, or use -o json"
            )
    rows = [values(item) for item in first]
    layout = _TableLayout(cols, rows, limit, header)
    if layout.hidden:
        say(
            f"{len(layout.hidden)} column{'s' if len(layout.hidden) != 1 else ''} hidden "
            f"({', '.join(layout.hidden)}): widen the terminal, choose fewer with --select, "
            "or use -o json"
        )
    write = out.write
    if header:
        text, _ = layout.line(cols)
        write((f"\x1b[1m{text}\x1b[0m" if bold else text) + "\n")
        rule = sum(layout.widths[i] for i in layout.shown) + 2 * (len(layout.shown) - 1)
        write("-" * rule + "\n")
    n = cut = 0
    for row in rows:
        text, c = layout.line(row)
        write(text + "\n")
        cut += c
        n += 1
    del rows, first
    for item in iterator:
        text, c = layout.line(values(item))
        write(text + "\n")
        cut += c
        n += 1
    if cut:
        say(
            f"{cut} value{'s' if cut != 1 else ''} cut to fit the columns (ending in …): "
            "widen the terminal or use -o json for whole values"
        )
    say(f"{n:,} item{'s' if n != 1 else ''}")
    return n


def write_object(obj: Any, fmt: str, out: TextIO) -> None:
    """Write a single object (``users/{id}``) or a scalar (``--query 'length(@)'``)."""
    if fmt == "jsonl":
        out.write(_dumps_line(obj) + "\n")
    elif fmt == "json":
        text = json.dumps(obj, indent=2, ensure_ascii=False, default=str)
        out.write((colorize_json(text) if json_color(out) else text) + "\n")
    elif fmt == "tsv":
        if isinstance(obj, list):
            for element in obj:
                out.write(tsv_line(element) + "\n")
        else:
            out.write(tsv_line(obj) + "\n")
    elif fmt == "yaml":
        out.write(yaml_dump(obj))
    elif fmt == "csv":
        import csv

        writer = csv.writer(out)
        if isinstance(obj, dict):
            cols = [k for k in obj if not k.startswith("@odata.")]
            writer.writerow(cols)
            writer.writerow([_csv_cell(obj.get(c)) for c in cols])
        elif isinstance(obj, list):
            _write_csv(obj, out, select=None, warn=None)
        else:
            writer.writerow([_csv_cell(obj)])
    elif fmt == "table":
        if isinstance(obj, list):
            _write_table(obj, out, select=None, resource=None)
        elif isinstance(obj, dict):
            # field / value, one per line; values whole (a terminal wraps long ones).
            fields = [(str(k), " ".join(cell(v).split())) for k, v in obj.items()]
            fields = [(k, v) for k, v in fields if k != "@odata.context"]
            pad = max([len("field")] + [len(k) for k, _ in fields])
            bold = _isatty(out) and not no_color()
            head = f"{'field'.ljust(pad)}  value"
            out.write((f"\x1b[1m{head}\x1b[0m" if bold else head) + "\n")
            out.write("-" * len(head) + "\n")
            for key, value in fields:
                out.write(f"{key.ljust(pad)}  {value}".rstrip() + "\n")
        else:
            out.write(cell(obj) + "\n")
    else:
        raise ValueError(f"unknown format {fmt!r}")
