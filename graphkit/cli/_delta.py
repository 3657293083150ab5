"""`graphkit query PATH --delta-state FILE`: print a delta round, then save where it ended.

The round itself is :class:`graphkit.delta_sync.DeltaSync`; this module checks the
options, prints the items (Graph's objects as they are in json, jsonl and yaml; in a
table, CSV or TSV an ``@removed`` column holds the reason a removed object carries,
``deleted`` or ``changed``, and ``id`` is always a column), and commits the state only
once stdout has taken every item. Nothing heavy is imported at module level.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

from graphkit.cli._options import Option
from graphkit.cli._report import stderr_line, warn
from graphkit.errors import UsageError

if TYPE_CHECKING:  # pragma: no cover
    from graphkit.graph import GraphClient
    from graphkit.settings import Settings

__all__ = ["DeltaResetOpt", "DeltaStateOpt", "check_options", "render"]

DeltaStateOpt = Annotated[
    Path | None,
    Option(
        "--delta-state",
        metavar="FILE",
        help="Delta sync: the first run prints every object and saves Graph's deltaLink "
        "in FILE; later runs print only the changes since (removed objects with @removed).",
        show_default=False,
    ),
]
DeltaResetOpt = Annotated[
    bool,
    Option(
        "--delta-reset",
        help="With --delta-state: ignore the saved state and run a full round again "
        "(after Graph answers 410 Gone or syncStateNotFound).",
    ),
]
# Formats with columns: a removed object's reason goes in a column of its own.
_COLUMNAR = ("table", "csv", "tsv")
REMOVED_COLUMN = "@removed"


def check_options(state: Path | None, reset: bool, path: str, *, max_items: int | None) -> None:
    """Refuse what cannot go with a delta sync, before anything is sent (or a token got)."""
    from graphkit.delta_sync import is_delta_path

    if reset and state is None:
        raise UsageError("--delta-reset needs --delta-state FILE", "give the state file too")
    if state is not None and not is_delta_path(path):
        raise UsageError(
            f"--delta-state needs a delta query, and {path!r} is not one",
            "give a path ending in /delta, e.g. /users/delta or /groups/delta",
        )
    if state is not None and max_items is not None:
        raise UsageError(
            "--max-items cannot be combined with --delta-state: a round stopped early "
            "cannot be resumed",
            "leave out --max-items (a delta sync always reads every page; --all is implied)",
        )


def _columns(values: list[Any], select: str | None, resource: str | None) -> list[str]:
    from graphkit import output

    present = next((v for v in values if isinstance(v, dict) and "@removed" not in v), None)
    cols = output.columns_for(present, select=select, resource=resource) if present else None
    if not cols:
        cols = output.select_columns(select) or list(output.DEFAULT_COLUMNS.get(resource or "", []))
    cols = [c for c in cols if c != REMOVED_COLUMN]
    if "id" not in cols:
        cols.append("id")
    return [*cols, REMOVED_COLUMN]


def _flat(items: Iterable[Any]) -> Iterator[Any]:
    """Items with ``@removed`` shown as its reason (for columns), the rest as they are."""
    for item in items:
        if isinstance(item, dict) and isinstance(item.get("@removed"), dict):
            reason = item["@removed"].get("reason")
            item = {**item, REMOVED_COLUMN: str(reason) if reason else "removed"}
        yield item


def render(
    client: GraphClient,
    path: str,
    params: dict[str, str],
    headers: dict[str, str],
    *,
    state_file: Path,
    reset: bool,
    settings: Settings,
    fmt: str,
    expression: str | None,
    select: str | None,
) -> None:
    """Run the round, print it, then save the state (see the module docstring)."""
    from graphkit import output
    from graphkit.delta_sync import DeltaSync

    sync = DeltaSync(
        client,
        state_file,
        path,
        params,
        headers,
        profile=settings.profile,
        tenant=settings.tenant,
        client_id=settings.client_id,
        reset=reset,
    )
    pages = sync.pages()
    first = next(pages)
    resource = output.resource_of(first.get("@odata.context"), path)

    def items() -> Iterator[Any]:
        yield from first["value"]
        for body in pages:
            sys.stdout.flush()  # a page's items are out before the next one is awaited
            yield from body["value"]

    def note(text: str) -> None:
        sys.stdout.flush()
        stderr_line(f"graphkit: {text}")

    out = sys.stdout
    if expression:
        jq = output.JmesQuery(expression)
        if jq.streams:
            output.write_items(jq.per_item(items()), fmt, out, warn=warn, shaped=True, note=note)
        else:
            result = jq.search(list(items()))
            if isinstance(result, list):
                output.write_items(result, fmt, out, warn=warn, shaped=True, note=note)
            else:
                output.write_object(result, fmt, out)
    elif fmt in _COLUMNAR:
        cols = ",".join(_columns(first["value"], select, resource))
        output.write_items(_flat(items()), fmt, out, select=cols, warn=warn, note=note)
    else:
        output.write_items(items(), fmt, out, warn=warn, note=note)
    out.flush()
    # Every item is on stdout: only now may the next run start after them.
    saved = sync.commit()
    n = sync.items_seen
    what = ("change" if sync.resumed else "object") + ("" if n == 1 else "s")
    stderr_line(
        f"graphkit: {n:,} {what}; delta state saved in {saved} "
        "(the next run prints only what changed since)"
    )
