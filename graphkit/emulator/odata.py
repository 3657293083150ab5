"""The slice of OData that Graph's directory collections support, over lazy collections.

A collection is anything with ``len()``, ``get(i) -> dict`` and a schema; items are
made on demand, so 100,000 users cost no memory until a page asks for them. Paging
state lives in an opaque ``$skiptoken`` that records where the next scan starts, so
following every nextLink scans the collection once in total, whatever the filter.

Errors are :class:`GraphApiError` with the status and code real Graph answers.
"""

from __future__ import annotations

import base64
import hashlib
import re
import struct
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol

from graphkit.emulator.errors import GraphApiError

__all__ = [
    "Collection",
    "EntitySchema",
    "ListCollection",
    "Page",
    "QueryOptions",
    "compile_filter",
    "parse_options",
    "run_query",
    "select_fields",
]

MAX_TOP = 999
DEFAULT_TOP = 100

Item = dict[str, Any]
Predicate = Callable[[Item], bool]


@dataclass(frozen=True)
class EntitySchema:
    """What a collection's items look like and which properties queries may use."""

    type_name: str  # "user", as in "microsoft.graph.user"
    set_name: str  # "users"
    properties: tuple[str, ...]  # canonical names, in output order
    default_select: tuple[str, ...] | None = None  # None: every property
    filterable: Mapping[str, str] = field(default_factory=dict)  # name -> "string" | "bool"
    searchable: Mapping[str, str] = field(default_factory=dict)  # name -> "tokens" | "prefix"
    orderable: tuple[str, ...] = ()  # $orderby works by default
    # $orderby only in an advanced query (aad-advanced-queries.md, "Support for sorting").
    orderable_advanced: tuple[str, ...] = ()
    # Properties endsWith works on (advanced only); None: every string property.
    endswith: tuple[str, ...] | None = None
    # Navigation properties $expand may name (handled by the route, not here).
    expandable: tuple[str, ...] = ()
    resource_label: str = ""  # "User": how Graph names the type in filter errors

    def canonical(self, name: str) -> str | None:
        low = name.lower()
        for prop in self.properties:
            if prop.lower() == low:
                return prop
        return None


class Collection(Protocol):
    schema: EntitySchema

    def __len__(self) -> int: ...

    def get(self, index: int) -> Item: ...

    def lookup(self, prop: str, value: Any) -> list[int] | None:
        """Indices whose ``prop`` equals ``value`` (a fast path), or None to scan."""
        ...

    def order(self, prop: str, descending: bool) -> Sequence[int]: ...


class ListCollection:
    """A collection held as a list of dicts (groups, applications: a handful of items)."""

    def __init__(self, schema: EntitySchema, items: Sequence[Item]):
        self.schema = schema
        self._items = list(items)

    def __len__(self) -> int:
        return len(self._items)

    def get(self, index: int) -> Item:
        return self._items[index]

    def lookup(self, prop: str, value: Any) -> list[int] | None:
        return None

    def order(self, prop: str, descending: bool) -> Sequence[int]:
        return _sorted_indices(self, prop, descending)


def _sorted_indices(coll: Collection, prop: str, descending: bool) -> list[int]:
    def key(i: int) -> tuple[bool, str]:
        v = coll.get(i).get(prop)
        return (v is None, str(v).lower() if v is not None else "")

    return sorted(range(len(coll)), key=key, reverse=descending)


# ----------------------------------------------------------------------- options


@dataclass
class QueryOptions:
    top: int = DEFAULT_TOP
    select: list[str] | None = None
    filter: str | None = None
    search: str | None = None
    count: bool = False
    orderby: tuple[str, bool] | None = None  # (property, descending)
    skiptoken: str | None = None
    expand: str | None = None  # the navigation property named by $expand
    expand_select: list[str] | None = None  # manager($select=...)
    advanced: bool = False  # ConsistencyLevel: eventual and $count=true (or /$count)


_KNOWN_OPTIONS = {
    "$top",
    "$select",
    "$filter",
    "$search",
    "$count",
    "$orderby",
    "$skiptoken",
    "$expand",
}
# Graph's wording when an advanced-only construct comes without the advanced query
# parameters (aad-advanced-queries.md, "Error handling for advanced queries").
ADVANCED_HINT = (
    "is not supported because the required parameters might be missing. Try adding "
    "$count=true query parameter and ConsistencyLevel:eventual header. Refer to "
    "https://aka.ms/graph-docs/advanced-queries for more information"
)
SORTING_UNSUPPORTED = "Sorting not supported for current query."
INVALID_SKIP_TOKEN = "Invalid Skip Token"  # nosec B105  # Graph's error message


def _bad(message: str, code: str = "BadRequest") -> GraphApiError:
    return GraphApiError(400, code, message)


def _unsupported(message: str) -> GraphApiError:
    return GraphApiError(400, "Request_UnsupportedQuery", message)


def parse_options(
    schema: EntitySchema,
    params: Mapping[str, str],
    *,
    eventual: bool,
    collection: bool = True,
    count_segment: bool = False,
) -> QueryOptions:
    """Validate the ``$`` query options of a request against ``schema``.

    Graph's rule for directory objects (aad-advanced-queries.md): ``ne``, ``not``,
    ``endsWith``, ``$orderby`` together with ``$filter`` (or on an advanced-only
    property) need the *advanced query parameters*, the ``ConsistencyLevel: eventual``
    header AND ``$count=true`` (the ``/$count`` segment stands for the latter);
    ``$search`` needs only the header; ``$count=true`` without the header is ignored.

    Args:
        schema: the entity type queried.
        params: the query string, already decoded.
        eventual: whether the request carried ``ConsistencyLevel: eventual``.
        collection: False for a single-entity GET (only ``$select``/``$expand`` apply).
        count_segment: the request is ``.../$count`` (counts as ``$count=true``).
    """
    opts = QueryOptions()
    for name in params:
        low = name.lower()
        if low == "$skip":
            # Directory objects page with $skiptoken only (msgraph-metadata#135).
            raise _bad("'$skip' is not supported by the service.", "Request_BadRequest")
        if low.startswith("$") and low not in _KNOWN_OPTIONS:
            raise _bad(f"Query option '{name}' is not allowed.")
    p = {k.lower(): v for k, v in params.items()}
    if "$select" in p:
        opts.select = _parse_select(schema, p["$select"])
    if "$expand" in p:
        opts.expand, opts.expand_select = _parse_expand(schema, p["$expand"])
    if not collection:
        return opts
    if "$top" in p:
        raw = p["$top"].strip()
        if not re.fullmatch(r"-?\d+", raw):
            raise _bad(f"Invalid value '{raw}' for $top query option found.")
        top = int(raw)
        if not 1 <= top <= MAX_TOP:
            raise _unsupported(
                f"Invalid page size specified: '{top}'. Must be between 1 and {MAX_TOP} inclusive."
            )
        opts.top = top
    if "$count" in p:
        value = p["$count"].strip().lower()
        if value not in ("true", "false"):
            raise _bad(f"Invalid value '{p['$count']}' for $count query option found.")
        # Without the header Graph silently ignores $count=true (no @odata.count).
        opts.count = value == "true" and eventual
    opts.advanced = eventual and (opts.count or count_segment)
    if "$search" in p:
        if not eventual:
            raise _unsupported(
                "Request with $search query parameter only works through MSGraph with a "
                "special request header: 'ConsistencyLevel: eventual'"
            )
        opts.search = p["$search"]
        _parse_search(schema, opts.search)  # validate early
    if "$filter" in p:
        opts.filter = p["$filter"]
        compile_filter(schema, opts.filter, advanced=opts.advanced)  # validate early
    if "$orderby" in p:
        opts.orderby = _parse_orderby(schema, p["$orderby"])
        if not opts.advanced and (
            opts.filter is not None or opts.orderby[0] in schema.orderable_advanced
        ):
            raise _unsupported(SORTING_UNSUPPORTED)
    if "$skiptoken" in p:
        opts.skiptoken = p["$skiptoken"]
    return opts


def _parse_select(schema: EntitySchema, raw: str) -> list[str]:
    names: list[str] = []
    for part in raw.split(","):
        part = part.strip()
        if not part:
            continue
        canonical = schema.canonical(part)
        if canonical is None:
            raise _bad(
                f"Could not find a property named '{part}' on type "
                f"'microsoft.graph.{schema.type_name}'."
            )
        if canonical not in names:
            names.append(canonical)
    if not names:
        raise _bad("Invalid $select: no property named.")
    return names


_EXPAND = re.compile(r"^\s*(?P<name>[A-Za-z]+)\s*(?:\((?P<inner>[^()]*)\))?\s*$")


def _parse_expand(schema: EntitySchema, raw: str) -> tuple[str, list[str] | None]:
    """``manager`` or ``manager($select=id,displayName)``: the property and its select."""
    m = _EXPAND.match(raw)
    if not m:
        # UNCONFIRMED wording; directory requests expand one navigation property.
        raise _bad(f"Invalid $expand '{raw}': name one navigation property.")
    name = m["name"]
    prop = next((p for p in schema.expandable if p.lower() == name.lower()), None)
    if prop is None:
        raise _bad(
            f"Could not find a property named '{name}' on type "
            f"'microsoft.graph.{schema.type_name}'."
        )
    select = None
    inner = (m["inner"] or "").strip()
    if inner:
        key, _, value = inner.partition("=")
        if key.strip().lower() != "$select" or not value.strip():
            raise _bad(f"Invalid $expand option '{inner}': only $select is supported here.")
        select = [v.strip() for v in value.split(",") if v.strip()]
    return prop, select


def _parse_orderby(schema: EntitySchema, raw: str) -> tuple[str, bool]:
    parts = raw.split()
    if not parts or len(parts) > 2 or "," in raw:
        raise _unsupported("Sorting by more than one property is not supported.")
    prop = schema.canonical(parts[0])
    descending = len(parts) == 2 and parts[1].lower() == "desc"
    if len(parts) == 2 and parts[1].lower() not in ("asc", "desc"):
        raise _bad(f"Invalid $orderby direction '{parts[1]}'.")
    if prop is None or prop not in (*schema.orderable, *schema.orderable_advanced):
        raise _unsupported(f"Sorting on property '{parts[0]}' is not supported.")
    return prop, descending


def select_fields(item: Item, schema: EntitySchema, select: list[str] | None) -> Item:
    """The properties Graph returns for ``item`` under ``$select`` (or by default)."""
    names = select if select is not None else schema.default_select
    if names is None:
        return dict(item)
    return {name: item.get(name) for name in names}


# ------------------------------------------------------------------------ filter

_TOKEN = re.compile(
    r"\s*(?:(?P<str>'(?:[^']|'')*')|(?P<punct>[(),])|(?P<word>[A-Za-z_$][\w./$-]*)"
    r"|(?P<num>-?\d+(?:\.\d+)?))"
)


@dataclass
class _Tok:
    kind: str  # str | punct | word | num
    text: str


def _tokenize(text: str) -> list[_Tok]:
    pos = 0
    out: list[_Tok] = []
    text = text.rstrip()
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if not m or m.end() == pos:
            raise _bad(f"Invalid filter clause: syntax error at position {pos} in '{text}'.")
        kind = m.lastgroup or "word"
        value = m.group(kind)
        if kind == "str":
            value = value[1:-1].replace("''", "'")
        out.append(_Tok(kind, value))
        pos = m.end()
    return out


@dataclass
class _Filter:
    predicate: Predicate
    # (property, value) when the whole filter is one `eq`: lets a collection look it up.
    eq: tuple[str, Any] | None = None


class _FilterParser:
    """Recursive descent over: or / and / not, parentheses, comparisons, functions."""

    _ADVANCED_OPS: ClassVar[frozenset[str]] = frozenset({"ne"})
    # function name -> whether it is an advanced query (needs ConsistencyLevel: eventual)
    _FUNCS: ClassVar[dict[str, bool]] = {"startswith": False, "endswith": True}
    _SPELLING: ClassVar[dict[str, str]] = {"endswith": "endsWith", "startswith": "startsWith"}

    def __init__(self, schema: EntitySchema, text: str, advanced: bool):
        self.schema = schema
        self.text = text
        self.toks = _tokenize(text)
        self.i = 0
        self.advanced = advanced

    def fail(self, what: str = "syntax error") -> GraphApiError:
        return _bad(f"Invalid filter clause: {what}.")

    def peek(self) -> _Tok | None:
        return self.toks[self.i] if self.i < len(self.toks) else None

    def peek_word(self) -> str | None:
        t = self.peek()
        return t.text.lower() if t and t.kind == "word" else None

    def take(self) -> _Tok:
        t = self.peek()
        if t is None:
            raise self.fail("unexpected end of expression")
        self.i += 1
        return t

    def expect(self, text: str) -> None:
        t = self.take()
        if t.text != text:
            raise self.fail(f"expected '{text}' but found '{t.text}'")

    def needs_advanced(self, what: str) -> None:
        if not self.advanced:
            raise _unsupported(f"Operator '{what}' {ADVANCED_HINT}")

    def parse(self) -> _Filter:
        if not self.toks:
            raise self.fail("the expression is empty")
        start = self.i
        pred = self.parse_or()
        if self.peek() is not None:
            raise self.fail(f"unexpected '{self.take().text}'")
        eq = self._single_eq if (self.i - start == 3 and self._single_eq) else None
        return _Filter(pred, eq)

    _single_eq: tuple[str, Any] | None = None

    def parse_or(self) -> Predicate:
        left = self.parse_and()
        while self.peek_word() == "or":
            self.take()
            right = self.parse_and()
            left = (lambda a, b: lambda item: a(item) or b(item))(left, right)
        return left

    def parse_and(self) -> Predicate:
        left = self.parse_not()
        while self.peek_word() == "and":
            self.take()
            right = self.parse_not()
            left = (lambda a, b: lambda item: a(item) and b(item))(left, right)
        return left

    def parse_not(self) -> Predicate:
        if self.peek_word() == "not":
            self.take()
            self.needs_advanced("not")
            inner = self.parse_not()
            return lambda item: not inner(item)
        return self.parse_primary()

    def unsupported_prop(self, name: str) -> GraphApiError:
        label = self.schema.resource_label or self.schema.type_name.capitalize()
        return _unsupported(
            f"Unsupported or invalid query filter clause specified for property "
            f"'{name}' of resource '{label}'."
        )

    def prop(self, name: str) -> tuple[str, str]:
        canonical = self.schema.canonical(name)
        if canonical is None or canonical not in self.schema.filterable:
            raise self.unsupported_prop(name)
        return canonical, self.schema.filterable[canonical]

    def literal(self, kind: str) -> Any:
        t = self.take()
        if t.kind == "str":
            if kind != "string":
                raise self.fail(f"a {kind} property compared with a string")
            return t.text
        if t.kind == "word" and t.text.lower() in ("true", "false"):
            if kind != "bool":
                raise self.fail("a string property compared with a boolean")
            return t.text.lower() == "true"
        if t.kind == "word" and t.text.lower() == "null":
            return None
        raise self.fail(f"unexpected '{t.text}' where a literal was expected")

    def parse_primary(self) -> Predicate:
        t = self.peek()
        if t is None:
            raise self.fail("unexpected end of expression")
        if t.text == "(":
            self.take()
            inner = self.parse_or()
            self.expect(")")
            return inner
        if t.kind != "word":
            raise self.fail(f"unexpected '{t.text}'")
        name = self.take().text
        low = name.lower()
        nxt = self.peek()
        if low in self._FUNCS and nxt is not None and nxt.text == "(":
            if self._FUNCS[low]:
                self.needs_advanced(self._SPELLING[low])
            self.take()
            prop, kind = self.prop(self.take().text)
            allowed = self.schema.endswith
            if low == "endswith" and allowed is not None and prop not in allowed:
                raise self.unsupported_prop(prop)
            self.expect(",")
            value = self.literal(kind)
            self.expect(")")
            if kind != "string" or not isinstance(value, str):
                raise self.fail(f"{low} needs a string property and a string value")
            needle = value.lower()
            if low == "startswith":
                return lambda item: str(item.get(prop) or "").lower().startswith(needle)
            return lambda item: str(item.get(prop) or "").lower().endswith(needle)
        prop, kind = self.prop(name)
        op = self.take()
        opname = op.text.lower()
        if op.kind != "word" or opname not in ("eq", "ne", "in"):
            raise self.fail(f"operator '{op.text}' is not supported")
        if opname in self._ADVANCED_OPS:
            self.needs_advanced(opname)
        if opname == "in":
            self.expect("(")
            values = [self.literal(kind)]
            while self.peek() is not None and self.peek().text == ",":  # type: ignore[union-attr]
                self.take()
                values.append(self.literal(kind))
            self.expect(")")
            wanted = {_norm(v) for v in values}
            return lambda item: _norm(item.get(prop)) in wanted
        value = self.literal(kind)
        target = _norm(value)
        if opname == "eq":
            self._single_eq = (prop, value)
            return lambda item: _norm(item.get(prop)) == target
        return lambda item: _norm(item.get(prop)) != target


def _norm(value: Any) -> Any:
    # Directory string comparisons are case-insensitive.
    return value.lower() if isinstance(value, str) else value


def compile_filter(schema: EntitySchema, text: str, *, advanced: bool) -> _Filter:
    """Compile an OData ``$filter`` to a predicate over items of ``schema``; ``advanced``:
    the request carries the advanced query parameters (``ne``, ``not``, ``endsWith``)."""
    return _FilterParser(schema, text, advanced).parse()


# ------------------------------------------------------------------------ search

_SEARCH_CLAUSE = re.compile(r'\s*"(?P<prop>[^":]+):(?P<term>[^"]*)"\s*')
_SPLIT = re.compile(r"[\s._@-]+")


def _parse_search(schema: EntitySchema, text: str) -> Predicate:
    """``"displayName:jo" OR "mail:smith"`` (AND binds tighter, as in Graph)."""
    pos = 0
    groups: list[list[Predicate]] = [[]]
    expect_clause = True
    text = text.strip()
    while pos < len(text):
        if expect_clause:
            m = _SEARCH_CLAUSE.match(text, pos)
            if not m:
                raise _bad(
                    'Syntax error: $search must be one or more quoted "property:term" '
                    f"clauses joined by AND/OR, got '{text}'."
                )
            prop = schema.canonical(m.group("prop").strip())
            if prop is None or prop not in schema.searchable:
                raise _unsupported(f"Search on property '{m.group('prop')}' is not supported.")
            groups[-1].append(_search_clause(prop, schema.searchable[prop], m.group("term")))
            pos = m.end()
            expect_clause = False
        else:
            m = re.compile(r"\s*(AND|OR)\s*").match(text, pos)
            if not m:
                raise _bad(f"Syntax error in $search at position {pos}.")
            if m.group(1) == "OR":
                groups.append([])
            pos = m.end()
            expect_clause = True
    if expect_clause:
        raise _bad("Syntax error: $search is empty or ends with an operator.")
    return lambda item: any(all(c(item) for c in g) for g in groups)


def _search_clause(prop: str, how: str, term: str) -> Predicate:
    words = [w for w in _SPLIT.split(term.lower()) if w]
    if how == "prefix" or not words:
        needle = term.lower()
        return lambda item: str(item.get(prop) or "").lower().startswith(needle)

    def tokens_match(item: Item) -> bool:
        tokens = [t for t in _SPLIT.split(str(item.get(prop) or "").lower()) if t]
        return all(any(t.startswith(w) for t in tokens) for w in words)

    return tokens_match


# ------------------------------------------------------------------------ paging


class LazyItems(Sequence[Item]):
    """The items at ``positions``, each made by ``get`` when it is reached: a page of
    generated users can go out as it is made (its first bytes need none of them).
    ``get`` must answer as the collection stood when the page was asked for (see
    ``frozen_get`` in run_query), whatever is written meanwhile."""

    def __init__(self, get: Callable[[int], Item], positions: Sequence[int]) -> None:
        self._get, self._positions = get, positions

    def __len__(self) -> int:
        return len(self._positions)

    def __getitem__(self, index: Any) -> Any:
        if isinstance(index, slice):
            return [self._get(p) for p in self._positions[index]]
        return self._get(self._positions[index])

    def __iter__(self) -> Iterator[Item]:
        return map(self._get, self._positions)


@dataclass
class Page:
    items: Sequence[Item]
    next_token: str | None
    count: int | None


def _query_key(opts: QueryOptions, scope: str) -> bytes:
    text = "\x1f".join([scope, opts.filter or "", opts.search or "", repr(opts.orderby)])
    return hashlib.sha256(text.encode()).digest()[:6]


def _encode_token(position: int, key: bytes) -> str:
    raw = b"GK\x01" + struct.pack(">Q", position) + key
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _decode_token(token: str, key: bytes) -> int:
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
    except ValueError:
        raw = b""
    if len(raw) != 3 + 8 + len(key) or raw[:3] != b"GK\x01" or raw[11:] != key:
        # Graph's answer has an empty code (microsoft-graph-docs-contrib#5103).
        raise _bad(INVALID_SKIP_TOKEN, "")
    return int(struct.unpack(">Q", raw[3:11])[0])


def run_query(coll: Collection, opts: QueryOptions, *, scope: str = "") -> Page:
    """One page of ``coll`` under ``opts``; ``next_token`` is the ``$skiptoken`` to go on.

    Args:
        coll: the collection.
        opts: validated options (see :func:`parse_options`).
        scope: distinguishes collections (tenant, set name) so that a skiptoken from one
            query is refused by another.
    """
    predicates: list[Predicate] = []
    candidates: Sequence[int] | None = None
    if opts.filter:
        compiled = compile_filter(coll.schema, opts.filter, advanced=True)  # validated
        predicates.append(compiled.predicate)
        if compiled.eq is not None and opts.orderby is None:
            candidates = coll.lookup(*compiled.eq)
    if opts.search:
        predicates.append(_parse_search(coll.schema, opts.search))
    if opts.orderby is not None:
        candidates = coll.order(*opts.orderby)
    order: Sequence[int] = candidates if candidates is not None else range(len(coll))

    key = _query_key(opts, scope)
    start = _decode_token(opts.skiptoken, key) if opts.skiptoken else 0

    def matches() -> Iterator[tuple[int, Item]]:
        for pos in range(start, len(order)):
            item = coll.get(order[pos])
            if all(p(item) for p in predicates):
                yield pos, item

    items: Sequence[Item]
    next_token = None
    if not predicates:
        # Every position matches: the page and where the next one starts are known
        # without making an item. A collection that cannot change under the page
        # (``frozen_get``: the generated users, none written) makes them as the page is
        # written; any other, now.
        end = min(start + opts.top, len(order))
        positions = order[start:end]
        frozen = getattr(coll, "frozen_get", None)
        get = frozen() if frozen is not None else None
        items = LazyItems(get, positions) if get is not None else [coll.get(i) for i in positions]
        if end < len(order):
            next_token = _encode_token(end, key)
    else:
        items = []
        for pos, item in matches():
            if len(items) == opts.top:
                next_token = _encode_token(pos, key)
                break
            items.append(item)

    count = None
    if opts.count and not opts.skiptoken:
        if predicates:
            count = sum(1 for i in order if all(p(coll.get(i)) for p in predicates))
        else:
            count = len(order)
    return Page(items, next_token, count)
