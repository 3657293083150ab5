"""`graphkit query PATH`: GET from Microsoft Graph, page, shape and render the result.

Built on :class:`graphkit.graph.GraphClient`; everything that prints lives here.
Data goes to stdout; progress, retry waits and notes go to stderr.
"""

from __future__ import annotations

import sys
from collections.abc import Generator, Iterator
from typing import TYPE_CHECKING, Annotated, Any

import typer

from graphkit.cli import _connection
from graphkit.cli._common import stderr_line, warn
from graphkit.cli._typer_internals import LeanCommand
from graphkit.errors import UsageError

if TYPE_CHECKING:  # pragma: no cover
    from graphkit.graph import GraphClient

ApiOpt = Annotated[
    str, typer.Option("--api", help="Graph API version for relative paths: v1.0 or beta.")
]
SelectOpt = Annotated[
    str | None,
    typer.Option("--select", help="$select: fields to return, e.g. displayName,mail,id."),
]
FilterOpt = Annotated[
    str | None,
    typer.Option("--filter", help="$filter, e.g. \"startswith(displayName,'A')\"."),
]
TopOpt = Annotated[int | None, typer.Option("--top", help="$top: items per page (1-999).")]
SearchOpt = Annotated[
    str | None,
    typer.Option("--search", help="$search, e.g. displayName:ada (quoted for you if needed)."),
]
OrderbyOpt = Annotated[str | None, typer.Option("--orderby", help="$orderby, e.g. displayName.")]
ExpandOpt = Annotated[str | None, typer.Option("--expand", help="$expand, e.g. manager.")]
CountOpt = Annotated[
    bool, typer.Option("--count", help="$count=true: Graph's total goes to stderr.")
]
HeaderOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--header",
        "-H",
        metavar="'NAME: VALUE'",
        help="Extra request header 'Name: value'. Repeat.",
    ),
]
AllOpt = Annotated[bool, typer.Option("--all", help="Follow @odata.nextLink to the last page.")]
MaxItemsOpt = Annotated[
    int | None,
    typer.Option("--max-items", help="Stop after N items (fetching further pages as needed)."),
]
OutputOpt = Annotated[
    str | None,
    typer.Option(
        "--output",
        "-o",
        help="table, json, jsonl, csv, tsv or yaml. Default: table on a terminal, json "
        "otherwise (tsv: one value per line, tab-separated fields, no quoting, as az).",
        show_default=False,
    ),
]
QueryOpt = Annotated[
    str | None,
    typer.Option(
        "--query",
        help="JMESPath applied to the list of items (or the object), as in the Azure CLI: "
        "'[].{name: displayName, upn: userPrincipalName}'.",
    ),
]


# ------------------------------------------------------------------ stderr helpers


class _Progress:
    """'fetched N items (P pages)' on one rewritten stderr line; only on a terminal."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self.shown = False

    def update(self, items: int, pages: int) -> None:
        if not self.enabled:
            return
        plural = "s" if pages != 1 else ""
        sys.stderr.write(f"\r\x1b[Kgraphkit: fetched {items:,} items ({pages:,} page{plural})…")
        sys.stderr.flush()
        self.shown = True

    def clear(self) -> None:
        if self.shown:
            sys.stderr.write("\r\x1b[K")
            sys.stderr.flush()
            self.shown = False


def _isatty(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False


# ------------------------------------------------------------------ building the request


def _params(
    select: str | None,
    filter_: str | None,
    top: int | None,
    search: str | None,
    orderby: str | None,
    expand: str | None,
    count: bool,
) -> dict[str, str]:
    params: dict[str, str] = {}
    if select:
        params["$select"] = select
    if filter_:
        params["$filter"] = filter_
    if top is not None:
        if top < 1:
            raise UsageError(f"--top {top} is not a positive number", "use 1 to 999")
        params["$top"] = str(top)
    if search:
        # Graph wants the search clause in double quotes: "displayName:ada".
        params["$search"] = search if search.startswith('"') else f'"{search}"'
    if orderby:
        params["$orderby"] = orderby
    if expand:
        params["$expand"] = expand
    if count:
        params["$count"] = "true"
    return params


def _headers(values: list[str] | None) -> dict[str, str]:
    headers: dict[str, str] = {}
    for raw in values or []:
        name, sep, value = raw.partition(":")
        name = name.strip()
        if not sep or not name or any(c.isspace() for c in name):
            # Not echoed: a malformed header may well be a credential (-H 'Authorization x').
            raise UsageError(
                "a --header value is not 'Name: value' (not shown: it may hold a secret)",
                "e.g. -H 'Prefer: x'",
            )
        if name.lower() == "authorization":
            raise UsageError(
                "--header Authorization is not allowed", "graphkit sends its own token"
            )
        headers[name] = value.strip()
    from graphkit.transport import check_headers

    return check_headers(headers)


# ------------------------------------------------------------------ fetching


def _collection_items(
    first: dict[str, Any],
    pages: Iterator[Any],
    *,
    max_items: int | None,
    progress: _Progress,
) -> Iterator[Any]:
    """Items of the first page, then of each following page, as they arrive."""
    n = 0
    page_no = 1
    body: Any = first
    while True:
        values = body.get("value") if isinstance(body, dict) else None
        # Rows may go to the terminal the progress line is on: take the line away first.
        progress.clear()
        for item in values if isinstance(values, list) else []:
            if max_items is not None and n >= max_items:
                return
            yield item
            n += 1
        if max_items is not None and n >= max_items:
            return
        # The page's items are written (the writer asks for the next item only after
        # writing the last): push them out of stdout's buffer before a fetch that may
        # wait, then show the progress below them.
        sys.stdout.flush()
        progress.update(n, page_no)
        body = next(pages, None)
        if body is None:
            return
        page_no += 1


def _render(
    client: GraphClient,
    path: str,
    params: dict[str, str],
    headers: dict[str, str],
    *,
    follow: bool,
    max_items: int | None,
    fmt: str,
    expression: str | None,
    select: str | None,
    progress: _Progress,
) -> None:
    from graphkit import output

    jq = output.JmesQuery(expression) if expression else None
    # The next page is fetched while this one is written (one page ahead).
    pages = client.pages(path, params, headers, follow=follow, prefetch=follow, max_items=max_items)
    try:
        _render_pages(
            pages,
            path,
            follow=follow,
            max_items=max_items,
            fmt=fmt,
            jq=jq,
            select=select,
            progress=progress,
        )
    finally:
        pages.close()  # stops the paging thread (Ctrl-C, a closed pipe, an error)


def _render_pages(
    pages: Generator[Any, None, None],
    path: str,
    *,
    follow: bool,
    max_items: int | None,
    fmt: str,
    jq: Any,
    select: str | None,
    progress: _Progress,
) -> None:
    from graphkit import output

    first = next(pages)
    out = sys.stdout
    values = first.get("value") if isinstance(first, dict) else None
    if not isinstance(values, list):
        # A single object (users/{id}) or a bare value (users/$count).
        obj: Any = first
        if isinstance(obj, str) and obj.strip().isdigit():
            obj = int(obj.strip())
        result = jq.search(obj) if jq else obj
        if isinstance(result, list) and jq:
            output.write_items(result, fmt, out, warn=warn, shaped=True)
        else:
            output.write_object(result, fmt, out)
        return
    if "@odata.count" in first:
        stderr_line(f"graphkit: {first['@odata.count']} items in total (@odata.count)")
    resource = output.resource_of(first.get("@odata.context"), path)
    items = _collection_items(first, pages, max_items=max_items, progress=progress)

    def note(text: str) -> None:
        out.flush()
        progress.clear()
        stderr_line(f"graphkit: {text}")

    # A table's widths come from the first page (or --max-items, if fewer).
    batch = max(1, min(len(values), max_items or len(values)))
    try:
        if jq is None:
            output.write_items(
                items, fmt, out, select=select, resource=resource, warn=warn, note=note, batch=batch
            )
        elif jq.streams:
            output.write_items(
                jq.per_item(items),
                fmt,
                out,
                select=select,
                resource=resource,
                warn=warn,
                shaped=jq.reshapes,
                note=note,
                batch=batch,
            )
        else:
            collected = list(items)
            progress.clear()
            result = jq.search(collected)
            if isinstance(result, list):
                output.write_items(result, fmt, out, warn=warn, shaped=True, note=note)
            else:
                output.write_object(result, fmt, out)
    finally:
        progress.clear()
    if not follow and first.get("@odata.nextLink"):
        stderr_line(
            "graphkit: more items are available: pass --all (or --max-items N) to fetch them"
        )


# ------------------------------------------------------------------ the command


@_connection.with_connection_flags
def query(
    path: Annotated[
        str,
        typer.Argument(
            help="/users, users/{id}, beta/groups, or a full URL on the configured Graph host.",
            show_default=False,
        ),
    ],
    api: ApiOpt = "v1.0",
    select: SelectOpt = None,
    filter_: FilterOpt = None,
    top: TopOpt = None,
    search: SearchOpt = None,
    orderby: OrderbyOpt = None,
    expand: ExpandOpt = None,
    count: CountOpt = False,
    header: HeaderOpt = None,
    all_: AllOpt = False,
    max_items: MaxItemsOpt = None,
    output_format: OutputOpt = None,
    expression: QueryOpt = None,
    force_refresh: _connection.ForceRefreshOpt = False,
    *,
    connection: _connection.Connection,
) -> None:
    """GET a Graph path and print the result (all pages with --all).

    Retries throttling (429/503/504) and connection errors, honouring Retry-After; the
    token goes only to the configured Graph host.
    """
    from graphkit import output
    from graphkit.graph import API_VERSIONS, GraphClient

    if api not in API_VERSIONS:
        raise UsageError(f"--api {api!r} is not a Graph API version", "use v1.0 or beta")
    fmt = (output_format or output.default_format(sys.stdout)).lower()
    if fmt not in output.FORMATS:
        raise UsageError(
            f"--output {output_format!r} is not a known format",
            f"use one of {', '.join(output.FORMATS)}",
        )
    if max_items is not None and max_items < 1:
        raise UsageError(f"--max-items {max_items} is not a positive number", "use 1 or more")
    params = _params(select, filter_, top, search, orderby, expand, count)
    headers = _headers(header)
    follow = all_ or max_items is not None
    # Progress only when it cannot garble the data: stderr is a terminal, and stdout is
    # not that terminal receiving a stream (a table's rows and the progress line take
    # turns: the line is cleared before each page's rows and shown again after them).
    progress = _Progress(
        follow and _isatty(sys.stderr) and (fmt == "table" or not _isatty(sys.stdout))
    )

    def on_wait(seconds: float, reason: str) -> None:
        progress.clear()
        stderr_line(f"graphkit: {reason}: waiting {seconds:.1f} s")

    settings = connection.settings()
    credential = _connection.credential_from_settings(settings)
    with GraphClient.from_settings(
        settings, credential=credential, validate=False, api=api, on_wait=on_wait
    ) as client:
        if force_refresh:
            client.refresh_token()
        try:
            _render(
                client,
                path,
                params,
                headers,
                follow=follow,
                max_items=max_items,
                fmt=fmt,
                expression=expression,
                select=select,
                progress=progress,
            )
            sys.stdout.flush()
        except BrokenPipeError:
            # `graphkit query ... | head`: stop quietly; keep the interpreter's final
            # flush from failing again on the closed pipe.
            import os

            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            raise


def register(app: typer.Typer) -> None:
    from graphkit.cli._examples import epilog

    app.command("query", cls=LeanCommand, epilog=epilog("query"))(query)
