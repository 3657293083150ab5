"""Renderers for Graph results: a Rich table, JSON, JSON lines, CSV and YAML.

Collections are rendered from an iterator, item by item: ``json`` (an array written
element by element), ``jsonl``, ``csv`` and ``yaml`` never hold the whole result in
memory; only ``table`` collects (it needs every row to size its columns).

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
    "columns_for",
    "default_format",
    "no_color",
    "resource_of",
    "write_items",
    "write_object",
    "yaml_dump",
]

FORMATS = ("table", "json", "jsonl", "csv", "yaml")

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


def _csv_cell(value: Any) -> str:
    if isinstance(value, list):
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"))
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


# ------------------------------------------------------------------ writers


def _dumps_line(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def write_items(
    items: Iterable[Any],
    fmt: str,
    out: TextIO,
    *,
    select: str | None = None,
    resource: str | None = None,
    warn: Callable[[str], None] | None = None,
    shaped: bool = False,
) -> int:
    """Write a collection in ``fmt``; returns how many elements were written.

    ``shaped``: the elements come from ``--query``; columns then follow the first
    element's keys rather than ``--select`` or the resource's defaults.
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
        for item in items:
            text = json.dumps(item, indent=2, ensure_ascii=False).replace("\n", "\n  ")
            out.write(("[\n  " if n == 0 else ",\n  ") + text)
            n += 1
        out.write("\n]\n" if n else "[]\n")
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
            list(items),
            out,
            select=None if shaped else select,
            resource=None if shaped else resource,
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
    cols = select_columns(select)
    if cols:
        writer.writerow(cols)
    extra: set[str] = set()
    n = 0
    for item in items:
        if cols is None:
            if isinstance(item, dict):
                cols = [k for k in item if not k.startswith("@odata.")]
                writer.writerow(cols)
            else:
                cols = []  # scalars or lists: rows without a header
        if isinstance(item, dict):
            writer.writerow([_csv_cell(item.get(c)) for c in cols])
            if warn is not None and len(extra) < 20:
                for key in item:
                    if key not in cols and not key.startswith("@odata.") and key not in extra:
                        extra.add(key)
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


def _console(out: TextIO) -> Any:
    from rich.console import Console

    return Console(file=out, no_color=no_color(), highlight=False, soft_wrap=False)


def _write_table(items: list[Any], out: TextIO, *, select: str | None, resource: str | None) -> int:
    from rich import box
    from rich.table import Table

    console = _console(out)
    if not items:
        return 0
    first = items[0]
    if not isinstance(first, dict):
        table = Table(box=box.SIMPLE_HEAD, show_header=False)
        table.add_column("value")
        for item in items:
            table.add_row(cell(item))
        console.print(table)
        return len(items)
    cols = columns_for(first, select=select, resource=resource) or []
    table = Table(box=box.SIMPLE_HEAD, header_style=None if no_color() else "bold")
    for col in cols:
        # Ids are unreadable when folded: keep them whole, let the other columns wrap.
        is_id = col == "id" or col.endswith("Id")
        table.add_column(col, overflow="fold", no_wrap=is_id)
    for item in items:
        row = item if isinstance(item, dict) else {}
        table.add_row(*(cell(row.get(c)) for c in cols))
    console.print(table)
    return len(items)


def write_object(obj: Any, fmt: str, out: TextIO) -> None:
    """Write a single object (``users/{id}``) or a scalar (``--query 'length(@)'``)."""
    if fmt == "jsonl":
        out.write(_dumps_line(obj) + "\n")
    elif fmt == "json":
        out.write(json.dumps(obj, indent=2, ensure_ascii=False) + "\n")
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
            from rich import box
            from rich.table import Table

            plain = no_color()
            table = Table(box=box.SIMPLE_HEAD, header_style=None if plain else "bold")
            table.add_column("field", style=None if plain else "bold")
            table.add_column("value", overflow="fold")
            for key, value in obj.items():
                if key == "@odata.context":
                    continue
                table.add_row(key, cell(value))
            _console(out).print(table)
        else:
            out.write(cell(obj) + "\n")
    else:
        raise ValueError(f"unknown format {fmt!r}")
