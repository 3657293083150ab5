"""`graphkit query PATH`: send a request to Microsoft Graph (GET by default, or what
``-X`` names, with ``--body``), page, shape and render the result, or save the raw answer
with ``--output-file``; ``--dry-run`` prints the request instead of sending it.

Built on :class:`graphkit.graph.GraphClient`; everything that prints lives here.
Data goes to stdout; progress, retry waits and notes go to stderr. Importable without
Typer (options declared with :mod:`graphkit.cli._options`): a plain `graphkit query`
command line runs without it (:mod:`graphkit.cli._direct`), the warm path.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

from graphkit.cli import _connection, _delta
from graphkit.cli._options import Argument, ForceOpt, Option
from graphkit.cli._report import stderr_line, warn
from graphkit.errors import UsageError

if TYPE_CHECKING:  # pragma: no cover
    import typer

    from graphkit.graph import GraphClient

ApiOpt = Annotated[str, Option("--api", help="Graph API version for relative paths: v1.0 or beta.")]
SelectOpt = Annotated[
    str | None,
    Option("--select", help="$select: fields to return, e.g. displayName,mail,id."),
]
FilterOpt = Annotated[
    str | None,
    Option("--filter", help="$filter, e.g. \"startswith(displayName,'A')\"."),
]
TopOpt = Annotated[int | None, Option("--top", help="$top: items per page (1-999).")]
SearchOpt = Annotated[
    str | None,
    Option("--search", help="$search, e.g. displayName:ada (quoted for you if needed)."),
]
OrderbyOpt = Annotated[str | None, Option("--orderby", help="$orderby, e.g. displayName.")]
ExpandOpt = Annotated[str | None, Option("--expand", help="$expand, e.g. manager.")]
CountOpt = Annotated[bool, Option("--count", help="$count=true: Graph's total goes to stderr.")]
HeaderOpt = Annotated[
    list[str] | None,
    Option(
        "--header",
        "-H",
        metavar="'NAME: VALUE'",
        help="Extra request header 'Name: value'. Repeat.",
    ),
]
AllOpt = Annotated[bool, Option("--all", help="Follow @odata.nextLink to the last page.")]
MaxItemsOpt = Annotated[
    int | None,
    Option("--max-items", help="Stop after N items (fetching further pages as needed)."),
]
OutputOpt = Annotated[
    str | None,
    Option(
        "--output",
        "-o",
        help="table, json, jsonl, csv, tsv or yaml. Default: table on a terminal, json "
        "otherwise (tsv: one value per line, tab-separated fields, no quoting, as az).",
        show_default=False,
    ),
]
MethodOpt = Annotated[
    str,
    Option(
        "--method",
        "-X",
        metavar="METHOD",
        help="GET, POST, PATCH, PUT or DELETE (any case). 429 is retried for every method; "
        "503/504 and dropped connections only for GET, PUT and DELETE.",
    ),
]
BodyOpt = Annotated[
    str | None,
    Option(
        "--body",
        "-d",
        metavar="JSON|@FILE|-",
        help="The request body: inline JSON, @FILE, or - for stdin. Checked as JSON "
        "unless --content-type names another type (then sent as given). Not with GET.",
        show_default=False,
    ),
]
ContentTypeOpt = Annotated[
    str | None,
    Option(
        "--content-type",
        metavar="TYPE",
        help="The body's type (default application/json), e.g. image/jpeg.",
        show_default=False,
    ),
]
OutputFileOpt = Annotated[
    Path | None,
    Option(
        "--output-file",
        metavar="FILE",
        help="Save the answer's raw bytes (e.g. users/{id}/photo/$value) to FILE, "
        "atomically; nothing on stdout. Never replaces a file without --force.",
        show_default=False,
    ),
]
DryRunOpt = Annotated[
    bool,
    Option(
        "--dry-run",
        help="Print the request (method, URL, headers with the token as 'Bearer ***', "
        "body) and send nothing: no token is asked for either.",
    ),
]
QueryOpt = Annotated[
    str | None,
    Option(
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


# The methods `graphkit query -X` sends.
METHODS = ("GET", "POST", "PATCH", "PUT", "DELETE")
# Graph takes at most 4 MB in one request (profilephoto-update.md: "a limit of 4MB on the
# total size of each REST request"): a larger body is refused before anything is sent.
MAX_BODY = 4 * 1024 * 1024
JSON_TYPE = "application/json"


def _method(value: str) -> str:
    method = value.strip().upper()
    if method not in METHODS:
        raise UsageError(
            f"-X/--method {value!r} is not a method graphkit query sends",
            f"use one of {', '.join(METHODS)}",
        )
    return method


def _read_body(spec: str) -> bytes:
    """The bytes ``--body`` names: ``@FILE``, ``-`` (stdin), or the value itself."""
    import os

    from graphkit.errors import InputError

    if spec.startswith("@"):
        from graphkit import files

        if not spec[1:]:
            raise UsageError("--body @ names no file", "write --body @FILE, or --body - for stdin")
        return files.read_bytes(
            spec[1:],
            "body file",
            max_size=MAX_BODY,
            special_hint="give a file on disk, or pipe it in with --body -",
        )
    if spec == "-":
        data = sys.stdin.buffer.read(MAX_BODY + 1)
        where = "the body on stdin"
    else:
        data = os.fsencode(spec)  # the argument's own bytes, whatever their encoding
        where = "--body"
    if len(data) > MAX_BODY:
        raise InputError(
            f"{where} is larger than Graph takes in one request ({MAX_BODY:,} bytes)",
            "send less, or upload it in parts as the API's docs describe",
        )
    return data


def _check_json(data: bytes, spec: str) -> None:
    """Refuse a body that is not JSON, naming where it breaks (never echoing it: a body
    may carry a password)."""
    import json

    from graphkit.errors import InputError

    where = (
        f"the body file {spec[1:]}"
        if spec.startswith("@")
        else ("the body on stdin" if spec == "-" else "--body")
    )
    error = InputError if spec.startswith("@") else UsageError
    hint = "fix the JSON, or give --content-type for a body that is not JSON"
    # JSON between systems is UTF-8 (RFC 8259, section 8.1); json.loads(bytes) would also
    # take UTF-16 and UTF-32 (what Windows PowerShell 5's Out-File writes), sent as is.
    if data[:2] in (b"\xff\xfe", b"\xfe\xff") or b"\x00" in data[:4]:
        raise error(
            f"{where} is not UTF-8: it is UTF-16 or UTF-32 text",
            "save it as UTF-8 (PowerShell: Out-File -Encoding utf8), as Graph reads JSON",
        )
    try:
        json.loads(data.decode("utf-8-sig"))
    except json.JSONDecodeError as exc:
        raise error(
            f"{where} is not valid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno} "
            f"(character {exc.pos + 1})",
            hint,
        ) from None
    except UnicodeDecodeError:
        raise error(
            f"{where} is not valid JSON: it is not UTF-8 text",
            "save it as UTF-8, or give --content-type for a body that is not JSON",
        ) from None
    except RecursionError:
        raise error(f"{where} is not usable JSON: it is nested too deeply", hint) from None


def _content_type(headers: dict[str, str], given: str | None) -> str | None:
    """The body's type: --content-type, else a Content-Type --header; taken out of
    ``headers`` (it is set once, by the caller)."""
    for name in [n for n in headers if n.lower() == "content-type"]:
        value = headers.pop(name)
        given = given or value
    if given is not None:
        from graphkit.transport import check_headers

        given = check_headers({"Content-Type": given.strip()})["Content-Type"]
        if not given:
            raise UsageError("--content-type is empty", "e.g. --content-type image/jpeg")
    return given


def _is_json(content_type: str) -> bool:
    media = content_type.split(";", 1)[0].strip().lower()
    return media == JSON_TYPE or media.endswith("+json")


def _get_body(
    verb: str, spec: str | None, content_type: str | None, headers: dict[str, str]
) -> bytes | None:
    """The body ``--body`` gives, checked as JSON unless its type is another; its
    ``Content-Type`` set in ``headers``."""
    ctype = _content_type(headers, content_type)
    if spec is None:
        if ctype is not None:
            raise UsageError(
                "a Content-Type (--content-type or --header) without --body",
                "give the body with --body, or drop the Content-Type",
            )
        return None
    if verb == "GET":
        raise UsageError(
            "--body with GET: Graph reads no body on a GET", "send it with -X POST, PATCH or PUT"
        )
    data = _read_body(spec)
    ctype = ctype or JSON_TYPE
    if _is_json(ctype):
        _check_json(data, spec)
    headers["Content-Type"] = ctype
    return data


class _NoToken:
    """The credential of a dry run: it asks the identity platform for nothing."""

    def get_token(self, *, force_refresh: bool = False) -> Any:
        from graphkit.errors import GraphkitError

        raise GraphkitError("a dry run sends nothing, so it gets no token")


# ------------------------------------------------------------------ rendering a request


def _render_dry_run(prepared: Any) -> None:
    """The request as it would leave: method and URL, headers, a blank line, the body
    (binary bodies by their size). Anything shaped like a token is redacted."""
    from graphkit.errors import redact

    out = sys.stdout
    out.write(f"{prepared.method} {prepared.url}\n")
    for name, value in prepared.headers.items():
        out.write(f"{name}: {value if name.lower() == 'authorization' else redact(value)}\n")
    body = prepared.body
    if body:
        raw = body.encode() if isinstance(body, str) else bytes(body)
        ctype = str(prepared.headers.get("Content-Type", ""))
        out.write("\n")
        text = None
        if _is_json(ctype) or ctype.lower().startswith("text/"):
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError:
                text = None
        if text is None:
            out.write(f"<{len(raw):,} bytes of {ctype or 'data'}>\n")
        else:
            out.write(redact(text) + ("" if text.endswith("\n") else "\n"))
    out.flush()


def _save(client: GraphClient, resp: Any, target: Path, force: bool) -> int:
    """Write the answer's body to ``target`` as it arrives, atomically; its size."""
    from graphkit import files

    size = 0

    def chunks() -> Iterator[bytes]:
        nonlocal size
        for chunk in client.iter_body(resp):
            size += len(chunk)
            yield chunk

    files.atomic_write(target, chunks(), mode=files.umask_mode(), force=force)
    return size


def _write_binary(data: bytes, expression: str | None) -> None:
    """A binary answer (a photo) to stdout as its own bytes, as curl does: to a pipe or
    a file, never to a terminal (it would garble it)."""
    if expression is not None:
        raise UsageError(
            f"Graph answered {len(data):,} bytes of binary data: --query needs JSON",
            "drop --query, or save the answer with --output-file FILE",
        )
    if _isatty(sys.stdout):
        raise UsageError(
            f"Graph answered {len(data):,} bytes of binary data, not printed on a terminal",
            "save it with --output-file FILE (or redirect stdout to a file)",
        )
    sys.stdout.flush()
    sys.stdout.buffer.write(data)
    sys.stdout.buffer.flush()


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
    first: Any,
    pages: Iterator[Any],
    path: str,
    *,
    follow: bool,
    max_items: int | None,
    fmt: str,
    expression: str | None,
    select: str | None,
    progress: _Progress,
) -> None:
    """Print ``first`` (an answer: one object, or a page of a collection), then the
    items of ``pages`` that follow it."""
    from graphkit import output

    jq = output.JmesQuery(expression) if expression else None
    out = sys.stdout
    if isinstance(first, bytes):
        _write_binary(first, expression)
        return
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
        Argument(
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
    delta_state: _delta.DeltaStateOpt = None,
    delta_reset: _delta.DeltaResetOpt = False,
    method: MethodOpt = "GET",
    body: BodyOpt = None,
    content_type: ContentTypeOpt = None,
    output_file: OutputFileOpt = None,
    force: ForceOpt = False,
    dry_run: DryRunOpt = False,
    *,
    connection: _connection.Connection,
) -> None:
    """Send a request to a Graph path and print the answer (GET by default; all pages
    with --all).

    Retries throttling (429) for every method, and 503/504 and dropped connections for
    GET, PUT and DELETE, honouring Retry-After; a POST or PATCH that meets them is
    reported as possibly applied (exit 10). A 201 prints the created object, a 204
    nothing. The token goes only to the configured Graph host.
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
    verb = _method(method)
    if delta_state is not None or delta_reset:
        _delta.check_options(delta_state, delta_reset, path, max_items=max_items)
        others = [
            name
            for name, given in (
                (f"-X {verb}", verb != "GET"),
                ("--output-file", output_file is not None),
                ("--dry-run", dry_run),
            )
            if given
        ]
        if others:
            raise UsageError(
                f"--delta-state runs a GET round from its saved state; {', '.join(others)} "
                "cannot go with it",
                "drop one or the other",
            )
    follow = all_ or max_items is not None
    if follow and verb != "GET":
        raise UsageError(
            f"--all and --max-items page through the answer of a GET; a {verb} is answered once",
            "drop them, or use -X GET",
        )
    if force and output_file is None:
        raise UsageError(
            "--force replaces an --output-file; there is none", "give --output-file FILE"
        )
    if output_file is not None:
        shaping = [
            name
            for name, given in (
                ("--all", all_),
                ("--max-items", max_items is not None),
                ("--query", expression is not None),
                ("--output", output_format is not None),
            )
            if given
        ]
        if shaping:
            raise UsageError(
                f"--output-file saves the answer's raw bytes; {', '.join(shaping)} "
                "shape printed output",
                "drop one or the other",
            )
    data = _get_body(verb, body, content_type, headers)
    if output_file is not None:
        from graphkit import files

        files.check_output(output_file, force)
    # Progress only when it cannot garble the data: stderr is a terminal, and stdout is
    # not that terminal receiving a stream (a table's rows and the progress line take
    # turns: the line is cleared before each page's rows and shown again after them).
    progress = _Progress(
        follow and _isatty(sys.stderr) and (fmt == "table" or not _isatty(sys.stdout))
    )

    def on_wait(seconds: float, reason: str) -> None:
        progress.clear()
        stderr_line(f"graphkit: {reason}: waiting {seconds:.1f} s")

    if dry_run:
        # Nothing is sent: not the request, not a token request; the certificate is not
        # even loaded (no passphrase is asked for): only the Graph URL is needed.
        settings = connection.settings(validate=False)
        with GraphClient.from_settings(
            settings, credential=_NoToken(), validate=False, api=api
        ) as client:
            _render_dry_run(client.prepare(verb, path, params, headers, data=data))
        return
    settings = connection.settings()
    credential = _connection.credential_from_settings(settings)
    with GraphClient.from_settings(
        settings, credential=credential, validate=False, api=api, on_wait=on_wait
    ) as client:
        if force_refresh:
            client.refresh_token()
        if output_file is not None:
            resp = client.send(verb, path, params, headers, data=data, stream=True)
            size = _save(client, resp, output_file, force)
            ctype = resp.headers.get("Content-Type") or "no Content-Type"
            stderr_line(f"graphkit: saved {size:,} bytes ({ctype}) to {output_file}")
            return
        try:
            if delta_state is not None:
                _delta.render(
                    client,
                    path,
                    params,
                    headers,
                    state_file=delta_state,
                    reset=delta_reset,
                    settings=settings,
                    fmt=fmt,
                    expression=expression,
                    select=select,
                )
            elif verb == "GET":
                # The next page is fetched while this one is written (one page ahead).
                pages = client.pages(
                    path, params, headers, follow=follow, prefetch=follow, max_items=max_items
                )
                try:
                    _render(
                        next(pages),
                        pages,
                        path,
                        follow=follow,
                        max_items=max_items,
                        fmt=fmt,
                        expression=expression,
                        select=select,
                        progress=progress,
                    )
                finally:
                    pages.close()  # stops the paging thread (Ctrl-C, a closed pipe, an error)
            else:
                resp = client.send(verb, path, params, headers, data=data)
                if resp.status_code == 204 or not resp.content:
                    return  # 204 No Content (a PATCH, a DELETE): nothing to print
                _render(
                    client.decode(resp),
                    iter(()),
                    path,
                    follow=False,
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
    from graphkit.cli._typer_internals import LeanCommand

    app.command("query", cls=LeanCommand, epilog=epilog("query"))(query)
