"""Delta sync: a full round of a Graph delta query, then only the changes since.

The library half of ``graphkit query /users/delta --delta-state FILE``. A
:class:`DeltaSync` pages through one round with :meth:`GraphClient.pages
<graphkit.graph.GraphClient.pages>` (so every ``@odata.nextLink`` is checked against the
Graph origin, as any query's), from the initial query on the first run and from the
stored ``@odata.deltaLink`` afterwards. Graph's objects are yielded as they are, removed
ones with their ``"@removed": {"reason": ...}`` (PROTOCOL.md §10).

The state file is written only by :meth:`DeltaSync.commit`, which the caller calls once
the last page was received AND what it printed was written: a failure midway (a page
that does not come, output that cannot be written) leaves the old state, so the next run
repeats changes rather than skipping any. It is written atomically, mode 0600
(:func:`graphkit.files.atomic_write`), and holds the link with what it belongs to (Graph
URL, tenant, client id, profile, the query): a file of another tenant, profile or query
is refused, and a file that is not a graphkit delta state is never replaced.

Graph forgets a delta state: an expired link (seven days for directory objects) is 400
``syncStateNotFound``, a sync reset 410 Gone (``resyncRequired``); both raise
:class:`DeltaStateExpiredError`, and ``reset=True`` starts a full round again.

Example::

    from graphkit import GraphClient
    from graphkit.delta_sync import DeltaSync

    with GraphClient.from_profile("contoso") as graph:
        sync = DeltaSync(graph, "users.delta.json", "/users/delta", {"$select": "displayName"})
        for user in sync.items():
            handle(user)  # "@removed" in user: it was deleted
        sync.commit()  # only now: the next run starts after these changes
"""

from __future__ import annotations

import datetime as dt
import json
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlsplit

from graphkit.errors import GraphError, InputError, NotFoundError, UsageError

if TYPE_CHECKING:  # pragma: no cover
    from graphkit.graph import GraphClient

__all__ = [
    "DELTA_FUNCTIONS",
    "DeltaStateExpiredError",
    "DeltaSync",
    "is_delta_path",
]

STATE_FORMAT = "graphkit delta state"
STATE_VERSION = 1
# A state file holds one link and a few names: anything bigger is not one of ours.
MAX_STATE_BYTES = 64 * 1024
# The last segment of a delta query: /users/delta is a shortcut for the fully qualified
# /users/microsoft.graph.delta (delta-query-overview.md).
DELTA_FUNCTIONS = frozenset(
    {"delta", "delta()", "microsoft.graph.delta", "microsoft.graph.delta()"}
)
# Graph's codes for a delta state it no longer has (errors.md, "Code property").
_FORGOTTEN_CODES = frozenset({"syncstatenotfound", "resyncrequired"})
# Query options that belong to the links Graph hands out, never to the initial query.
_LINK_OPTIONS = frozenset({"$deltatoken", "$skiptoken"})


class DeltaStateExpiredError(NotFoundError):
    """Graph no longer knows the delta state (410 Gone, or ``syncStateNotFound``)."""


def is_delta_path(path: str) -> bool:
    """Whether ``path`` (``/users/delta``, a full URL...) calls a delta function."""
    segments = [s for s in urlsplit(path.strip()).path.split("/") if s]
    return bool(segments) and segments[-1].lower() in DELTA_FUNCTIONS


def _now_iso(now: float) -> str:
    return dt.datetime.fromtimestamp(now, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class DeltaSync:
    """One round of a delta query, resumed from and recorded in ``state_file``.

    Args:
        client: the Graph client (its origin checks apply to every link).
        state_file: where the deltaLink is kept between runs.
        path: the initial query's path (``/users/delta``) or full URL on the Graph host.
        params: its query options (``{"$select": "displayName"}``); they are part of
            what the state belongs to.
        headers: extra request headers (``Prefer: return=minimal``).
        profile: the profile in use (``None`` without one): part of the state's identity.
        tenant: the configured tenant, used when the token carries no ``tid``.
        client_id: the configured client id, used when the token carries no ``appid``.
        reset: ignore the stored state and run a full round (the file must still be a
            graphkit delta state, or absent).
        now: the wall clock (for the state's ``saved_at``).

    Raises:
        UsageError: ``path`` is not a delta query, or carries a state token itself.
        InputError: ``state_file`` is not a graphkit delta state (or unreadable).
    """

    def __init__(
        self,
        client: GraphClient,
        state_file: str | Path,
        path: str,
        params: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
        *,
        profile: str | None = None,
        tenant: str | None = None,
        client_id: str | None = None,
        reset: bool = False,
        now: Callable[[], float] = time.time,
    ) -> None:
        if not is_delta_path(path):
            raise UsageError(
                f"--delta-state needs a delta query, and {path!r} is not one",
                "give a path ending in /delta, e.g. /users/delta or /groups/delta",
            )
        self.client = client
        self.state_file = Path(state_file)
        self.headers = dict(headers or {})
        self._now = now
        url = client.url(path)
        parts = urlsplit(url)
        merged = {k: v for k, v in parse_qsl(parts.query, keep_blank_values=True)}
        merged.update({str(k): str(v) for k, v in (params or {}).items() if v is not None})
        tokens = sorted(k for k in merged if k.lower() in _LINK_OPTIONS)
        if tokens:
            raise UsageError(
                f"the path carries {tokens[0]}: with --delta-state graphkit keeps Graph's "
                "links itself",
                "give the initial query (e.g. /users/delta) and the same options each run",
            )
        self.params = merged
        self._url = f"{parts.scheme}://{parts.netloc}{parts.path}"
        self.query = {
            "path": parts.path,
            "params": {k.lower(): v for k, v in sorted(merged.items(), key=lambda kv: kv[0])},
        }
        from graphkit.files import check_directory, check_output

        # A name the file system cannot take is refused now, not after a whole round.
        check_directory(self.state_file.parent, "the delta state file's directory")
        check_output(self.state_file, force=True)
        self._profile = profile
        self._tenant = tenant.lower() if tenant else None
        self._client_id = client_id.lower() if client_id else None
        stored = self._read_state(reset=reset)
        self.previous: dict[str, Any] | None = None if reset else stored
        self.delta_link: str | None = None
        self.items_seen = 0
        self._identity: dict[str, Any] | None = None

    # ------------------------------------------------------------------ the state file

    def _read_state(self, *, reset: bool = False) -> dict[str, Any] | None:
        """The stored state, None when there is no file yet. With ``reset`` a state of
        another graphkit version is no obstacle (it is replaced, as its error says).

        Raises:
            InputError: the file is not a graphkit delta state (it is never replaced).
        """
        from graphkit.files import parse_nested, read_bytes

        if not self.state_file.exists() and not self.state_file.is_symlink():
            return None
        raw = read_bytes(self.state_file, "delta state file", max_size=MAX_STATE_BYTES)
        try:
            data = parse_nested(json.loads, raw)
        except (ValueError, RecursionError):
            data = None
        if not (
            isinstance(data, dict)
            and data.get("format") == STATE_FORMAT
            and isinstance(data.get("delta_link"), str)
        ):
            raise InputError(
                f"{self.state_file} is not a graphkit delta state file (it is left as it is)",
                "give --delta-state the name of a new file, or of one graphkit wrote",
            )
        if data.get("version") != STATE_VERSION:
            if reset:
                return None
            raise InputError(
                f"the delta state file {self.state_file} is of another graphkit version",
                "add --delta-reset to start over in it (a full round), or give another file",
            )
        return data

    def _current_identity(self) -> dict[str, Any]:
        if self._identity is None:
            claims = self.client.token_claims()
            tid = claims.get("tid")
            appid = claims.get("appid") or claims.get("azp")
            self._identity = {
                "graph_url": self.client.graph_url,
                "tenant": str(tid).lower() if tid else self._tenant,
                "client_id": str(appid).lower() if appid else self._client_id,
                "profile": self._profile,
                "query": self.query,
            }
        return self._identity

    def _check_belongs(self, stored: Mapping[str, Any]) -> None:
        """Refuse a state saved for another Graph, tenant, app, profile or query."""
        mine = self._current_identity()
        labels = {
            "graph_url": "Graph URL",
            "tenant": "tenant",
            "client_id": "client id",
            "profile": "profile",
            "query": "query",
        }
        for key, label in labels.items():
            if stored.get(key) != mine[key]:
                raise InputError(
                    f"the delta state in {self.state_file} belongs to another {label} "
                    f"({_show(key, stored.get(key))}, not {_show(key, mine[key])})",
                    "give this command another --delta-state file, or add --delta-reset to "
                    "start over in this one",
                )

    def commit(self) -> Path:
        """Save the round's deltaLink (atomically, 0600): call once every item is handled.

        Raises:
            RuntimeError: the round has not reached its deltaLink.
            InputError: the file cannot be written.
        """
        from graphkit.files import PRIVATE, atomic_write

        if self.delta_link is None:
            raise RuntimeError("the delta round is not complete: nothing to save")
        data = {
            "format": STATE_FORMAT,
            "version": STATE_VERSION,
            **self._current_identity(),
            "delta_link": self.delta_link,
            "saved_at": _now_iso(self._now()),
            "items": self.items_seen,
        }
        text = json.dumps(data, indent=2, ensure_ascii=False) + "\n"
        return atomic_write(self.state_file, text.encode("utf-8"), mode=PRIVATE, force=True)

    # ------------------------------------------------------------------ the round

    @property
    def resumed(self) -> bool:
        """True when this round starts from a stored deltaLink (only changes come)."""
        return self.previous is not None

    def pages(self) -> Iterator[dict[str, Any]]:
        """Each page of the round, as Graph sent it, to the one with the deltaLink.

        Raises:
            InputError: the stored state belongs to another tenant, profile or query.
            DeltaStateExpiredError: Graph no longer knows the stored state.
            GraphError: any other failure (the state file is untouched).
        """
        if self.previous is not None:
            self._check_belongs(self.previous)
            start, params = str(self.previous["delta_link"]), None
        else:
            self._current_identity()
            start, params = self._url, self.params
        try:
            for body in self.client.pages(start, params, self.headers):
                if not isinstance(body, dict) or not isinstance(body.get("value"), list):
                    raise GraphError(
                        "Graph answered the delta query with something that is not a page of items",
                        "check the path: it must be a collection's delta function",
                    )
                self.items_seen += len(body["value"])
                link = body.get("@odata.deltaLink")
                if isinstance(link, str) and link:
                    self.delta_link = link
                yield body
        except GraphError as exc:
            if exc.status == 410 or (exc.code or "").lower() in _FORGOTTEN_CODES:
                raise self._forgotten(exc) from None
            raise
        if self.delta_link is None:
            raise GraphError(
                "Graph ended the delta round without an @odata.deltaLink: nothing to resume "
                "from (the state file is unchanged)",
                "retry; if it persists, report the query",
            )

    def items(self) -> Iterator[dict[str, Any]]:
        """The round's items (changes only, when resumed), removed ones included."""
        for body in self.pages():
            yield from body["value"]

    def _forgotten(self, exc: GraphError) -> DeltaStateExpiredError:
        what = f"{exc.status} {exc.code}" if exc.code else str(exc.status)
        if self.previous is not None:
            message = (
                f"Graph no longer knows the delta state in {self.state_file} ({what}: the "
                "link expired, Graph keeps directory changes for 7 days, or Graph reset the "
                "sync)"
            )
            hint = "run again with --delta-reset for a full round (every object again)"
        else:
            message = f"Graph reset the delta round while it was being read ({what})"
            hint = "run the command again"
        return exc.restated(message, hint, DeltaStateExpiredError)


def _show(key: str, value: Any) -> str:
    if value is None:
        return "none" if key == "profile" else "unknown"
    if key == "query" and isinstance(value, Mapping):
        params = value.get("params") or {}
        query = "&".join(f"{k}={v}" for k, v in params.items()) if isinstance(params, dict) else ""
        return f"{value.get('path')}{'?' + query if query else ''}"
    return repr(value) if key == "profile" else str(value)
