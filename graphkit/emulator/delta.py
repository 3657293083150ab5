"""``GET /users/delta``: a full round, then only the changes since (the journal in writes.py).

Tokens are opaque to clients (delta-query-overview.md, "State tokens"): here, base64url of a
small JSON record (tenant, the journal position, when it was issued, the epoch, ``$select``,
``$filter`` ids) and a checksum, so a token from another tenant, a tampered one or one from
before a sync reset is recognised. Nothing here knows about HTTP beyond building the
answer's body; errors are :class:`GraphApiError`.

Sources: microsoft-graph-docs ``delta-query-overview.md`` (query parameters for users,
``$deltatoken=latest``, ``@removed`` reasons, "Synchronization reset" 410 with Location,
"Token duration" seven days for directory objects and ``syncStateNotFound``),
``user-delta.md`` (``$select``, ``$filter`` by id, ``Prefer: return=minimal``), and
``errors.md`` with the Microsoft 365 Developer Blog of 2020-07-03 (an expired token is 400
``syncStateNotFound``).
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from graphkit.emulator.errors import GraphApiError
from graphkit.emulator.odata import _parse_select
from graphkit.emulator.users import DEFAULT_SELECT, USER_SCHEMA
from graphkit.emulator.writes import Change, UserOverlay

__all__ = ["PAGE_SIZE", "TOKEN_LIFETIME", "DeltaPage", "run_delta"]

# delta-query-overview.md, "Token duration": seven days for directory objects.
TOKEN_LIFETIME = 7 * 24 * 3600.0
# UNCONFIRMED: Graph's delta page size for users is not documented; 100 as /users.
PAGE_SIZE = 100
# user-delta.md: "There is a limit of 50 filtered objects."
MAX_FILTER_IDS = 50
_REFUSED = ("$top", "$orderby", "$expand")  # delta-query-overview.md, users and groups
_ALLOWED = ("$select", "$filter", "$deltatoken", "$skiptoken")
_ID_EQ = re.compile(r"^\s*id\s+eq\s+'([0-9a-fA-F-]{36})'\s*$")


@dataclass
class DeltaPage:
    value: list[dict[str, Any]]
    next_token: str | None  # -> @odata.nextLink ...?$skiptoken=
    delta_token: str | None  # -> @odata.deltaLink ...?$deltatoken=
    select: list[str] | None


def _secret(scope: str) -> bytes:
    return hashlib.sha256(f"graphkit-delta\x1f{scope}".encode()).digest()


def encode(state: Mapping[str, Any], scope: str) -> str:
    raw = json.dumps(state, separators=(",", ":"), sort_keys=True).encode()
    mac = hashlib.sha256(_secret(scope) + raw).digest()[:8]
    return base64.urlsafe_b64encode(mac + raw).rstrip(b"=").decode()


def decode(token: str, scope: str) -> dict[str, Any] | None:
    try:
        blob = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        mac, raw = blob[:8], blob[8:]
        if hashlib.sha256(_secret(scope) + raw).digest()[:8] != mac:
            return None
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        return None
    return data if isinstance(data, dict) else None


class SyncReset(GraphApiError):
    """410 Gone: the token predates a sync reset. ``location`` is the initial query to start
    over with (delta-query-overview.md, "Synchronization reset": "a response code of 410
    (gone) and a Location header containing a request URL with an empty $deltaToken")."""

    def __init__(self, location: str):
        # The code: errors.md, "resyncRequired: The delta token is no longer valid, and the
        # app must reset the sync state." (that it comes with the 410 is UNCONFIRMED).
        super().__init__(
            410,
            "resyncRequired",
            "The delta token is no longer valid, and the app must reset the sync state.",
            {"Location": location},
        )


class SyncStateNotFound(GraphApiError):
    """400 syncStateNotFound: the token is older than seven days (or unknown here).

    delta-query-overview.md, "Token duration": "a 40X-series error with error codes such as
    syncStateNotFound"; the Microsoft 365 Developer Blog, "Duration of change tracking tokens
    for identity and education resources" (2020-07-03): "a BadRequest response with the error
    code syncStateNotFound" and this message (also errors.md, "Code property").
    """

    def __init__(self) -> None:
        super().__init__(
            400,
            "syncStateNotFound",
            "The sync state generation is not found. The delta token is expired and data "
            "must be synchronized again.",
        )


def _parse_filter(raw: str) -> list[str]:
    ids = []
    for part in re.split(r"\s+or\s+", raw.strip(), flags=re.IGNORECASE):
        m = _ID_EQ.match(part)
        if not m:
            # user-delta.md: "The only supported $filter expression is for tracking
            # changes on a specific object: $filter=id+eq+{value}". Wording UNCONFIRMED.
            raise GraphApiError(
                400,
                "Request_UnsupportedQuery",
                "Unsupported or invalid query filter clause specified for delta query: "
                "only 'id eq' joined by 'or' is supported.",
            )
        ids.append(m.group(1).lower())
    if len(ids) > MAX_FILTER_IDS:
        raise GraphApiError(
            400,
            "Request_UnsupportedQuery",
            f"A delta query can filter at most {MAX_FILTER_IDS} objects by id.",
        )
    return ids


def _shape(user: Mapping[str, Any], names: list[str] | tuple[str, ...]) -> dict[str, Any]:
    out = {n: user.get(n) for n in names}
    out["id"] = user["id"]  # user-delta.md: "The id property is always returned."
    return out


def run_delta(
    users: UserOverlay,
    scope: str,
    params: Mapping[str, str],
    *,
    now: float,
    minimal: bool,
    location: str,
) -> DeltaPage:
    """One page of a delta round for ``params`` (the request's query string).

    Args:
        users: the tenant's users (with their journal).
        scope: the tenant (tokens of another are unknown here).
        params: the query string, decoded.
        now: the emulator's clock.
        minimal: ``Prefer: return=minimal`` (changed properties only).
        location: the initial query's URL (no query string), for a 410's Location: a
            URL "with an empty $deltaToken (same as the initial query)".
    Raises:
        GraphApiError: 400 for a refused query option or an expired or unknown token
            (syncStateNotFound), 410 for a token from before a sync reset.
    """
    p = {k.lower(): v for k, v in params.items()}
    for name in p:
        if name in _REFUSED:
            # delta-query-overview.md: not supported on users. Wording UNCONFIRMED.
            raise GraphApiError(
                400,
                "Request_UnsupportedQuery",
                f"The query parameter '{name}' is not supported with delta queries.",
            )
        if name.startswith("$") and name not in _ALLOWED:
            raise GraphApiError(400, "BadRequest", f"Query option '{name}' is not allowed.")
    journal = users.journal
    skip, delta = p.get("$skiptoken"), p.get("$deltatoken")
    if skip or (delta and delta.lower() != "latest"):
        state = decode(skip or delta or "", scope)
        if state is None or now - float(state.get("issued", 0)) > TOKEN_LIFETIME:
            # Expired, or unknown here (tampered, another tenant's): UNCONFIRMED that an
            # unknown token gets the expired token's answer.
            raise SyncStateNotFound()
        if state.get("epoch") != journal.epoch or int(state.get("seq", 0)) > journal.seq:
            kept = state.get("select") or p.get("$select")
            if kept:  # start over with the same $select
                names = kept if isinstance(kept, list) else [str(kept)]
                location = f"{location}?$select={','.join(names)}&$deltatoken="
            else:
                location = f"{location}?$deltatoken="
            raise SyncReset(location)
        select = state.get("select")
        ids = state.get("ids")
        if "$select" in p:  # delta-query-overview.md: $select may change on a deltaLink
            select = _parse_select(USER_SCHEMA, p["$select"])
    else:
        select = _parse_select(USER_SCHEMA, p["$select"]) if "$select" in p else None
        ids = _parse_filter(p["$filter"]) if "$filter" in p else None
        start: dict[str, Any] = {"phase": "initial", "pos": 0, "seq": journal.seq}
        if delta:  # $deltatoken=latest: "sync from now", no resource data
            state = {**start, "phase": "done"}
            return DeltaPage(
                [], None, _token(state, select, ids, journal.epoch, now, scope), select
            )
        state = start
    names = select or list(DEFAULT_SELECT)
    wanted = set(ids) if ids else None

    if state.get("phase") == "initial":
        return _initial_page(users, state, names, select, ids, wanted, now, scope)
    # A deltaLink (phase done) or a nextLink inside a round of changes.
    upto = int(state.get("upto", journal.seq))
    changes = journal.since(int(state["seq"]), upto)
    items = _coalesce(users, changes, names, select, wanted, minimal)
    offset = int(state.get("offset", 0))
    page = items[offset : offset + PAGE_SIZE]
    if offset + PAGE_SIZE < len(items):
        nxt = {"phase": "changes", "seq": int(state["seq"]), "upto": upto}
        nxt["offset"] = offset + PAGE_SIZE
        return DeltaPage(page, _token(nxt, select, ids, journal.epoch, now, scope), None, select)
    done = {"phase": "done", "seq": upto}
    return DeltaPage(page, None, _token(done, select, ids, journal.epoch, now, scope), select)


def _token(
    state: dict[str, Any],
    select: list[str] | None,
    ids: list[str] | None,
    epoch: int,
    now: float,
    scope: str,
) -> str:
    record = {**state, "select": select, "ids": ids, "epoch": epoch, "issued": now}
    return encode(record, scope)


def _initial_page(
    users: UserOverlay,
    state: dict[str, Any],
    names: list[str],
    select: list[str] | None,
    ids: list[str] | None,
    wanted: set[str] | None,
    now: float,
    scope: str,
) -> DeltaPage:
    epoch = users.journal.epoch
    if wanted is not None:
        found = [users.find(i) for i in sorted(wanted)]
        value = [_shape(u, names) for u in found if u is not None]
        done = {"phase": "done", "seq": int(state["seq"])}
        return DeltaPage(value, None, _token(done, select, ids, epoch, now, scope), select)
    pos = int(state["pos"])
    end = min(pos + PAGE_SIZE, len(users))
    value = [_shape(users.get(i), names) for i in range(pos, end)]
    if end < len(users):
        nxt = {"phase": "initial", "pos": end, "seq": int(state["seq"])}
        return DeltaPage(value, _token(nxt, select, ids, epoch, now, scope), None, select)
    # Changes made during the round come again in the next one (replays are allowed:
    # delta-query-overview.md, "Replays").
    done = {"phase": "done", "seq": int(state["seq"])}
    return DeltaPage(value, None, _token(done, select, ids, epoch, now, scope), select)


def _coalesce(
    users: UserOverlay,
    changes: list[Change],
    names: list[str],
    select: list[str] | None,
    wanted: set[str] | None,
    minimal: bool,
) -> list[dict[str, Any]]:
    """One entry per user changed, in the order of its last change."""
    last: dict[str, Change] = {}
    touched: dict[str, set[str]] = {}
    created: set[str] = set()
    for c in changes:
        if wanted is not None and c.id not in wanted:
            continue
        last.pop(c.id, None)
        last[c.id] = c
        touched.setdefault(c.id, set()).update(c.properties)
        if c.kind == "created":
            created.add(c.id)
    out: list[dict[str, Any]] = []
    for user_id, c in last.items():
        if c.kind == "deleted":
            out.append({"id": user_id, "@removed": {"reason": c.reason or "changed"}})
            continue
        user = users.find(user_id)
        if user is None:
            continue
        if user_id in created:
            out.append(_shape(user, names))
            continue
        changed = touched[user_id] & set(names)
        if select is not None and not changed:
            # delta-query-overview.md: a change to a property not selected does not
            # make the user appear.
            continue
        if minimal:  # user-delta.md, Prefer: return=minimal
            out.append(_shape(user, sorted(changed, key=list(names).index)))
        else:
            out.append(_shape(user, names))
    return out
