"""Writes to users and groups: an overlay over the generated users, and the change journal.

The seeded users stay generated on demand (:class:`~graphkit.emulator.users.UserDirectory`
stores nothing per user). :class:`UserOverlay` wraps the directory and stores only what
changed: the users created, the properties patched on a user, the users deleted. Listing,
``$filter``, ``$select``, ``$orderby`` and paging see the overlay, because it speaks the
same collection protocol as the directory (``len``, ``get``, ``lookup``, ``order``). With no
change the overlay answers straight from the directory (100,000 users stay cheap).

Every change is also appended to the overlay's :class:`Journal`, which ``/users/delta``
reads (:mod:`graphkit.emulator.delta`). Nothing here knows about HTTP; errors are
:class:`GraphApiError` with Graph's status, code and message.

Sources: microsoft-graph-docs ``user-post-users.md`` (required properties),
``user-update.md`` (PATCH 204), ``user-delete.md`` (DELETE 204; the user goes to deleted
items), ``group-post-groups.md``, ``group-update.md``, ``group-delete.md``; the duplicate
userPrincipalName answer is captured in microsoft-graph-docs#1508. Profile photos:
``profilephoto-get.md`` (the bytes, or 404 when there is none), ``profilephoto-update.md``
(PUT or PATCH ``photo/$value``, ``Content-Type: image/jpeg``, 200, under 4 MB).
"""

from __future__ import annotations

import base64
import bisect
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from graphkit.emulator.errors import GraphApiError
from graphkit.emulator.users import USER_PROPERTIES, USER_SCHEMA, UserDirectory

__all__ = [
    "GROUP_REQUIRED",
    "USER_REQUIRED",
    "Change",
    "Journal",
    "UserOverlay",
    "create_group",
    "create_user",
    "delete_group",
    "delete_user",
    "get_photo",
    "set_photo",
    "update_group",
    "update_user",
]

# The password the admin and Python APIs give a created user when none is given:
# emulated users never sign in with a password (Graph needs one to create a user).
PLACEHOLDER_PASSWORD = "emulator-Pa55word!"  # nosec B105  # a fixed, documented test value

# user-post-users.md, "Request body": required when creating a user.
USER_REQUIRED = ("accountEnabled", "displayName", "mailNickname", "userPrincipalName")
# group-post-groups.md: required when creating a group.
GROUP_REQUIRED = ("displayName", "mailEnabled", "mailNickname", "securityEnabled")

# Properties a client may write on a user (the emulator's subset of Graph's writable ones).
# id, createdDateTime, mail... are read-only or computed here.
_USER_WRITABLE = frozenset(
    {
        "accountEnabled",
        "businessPhones",
        "companyName",
        "department",
        "displayName",
        "employeeId",
        "givenName",
        "jobTitle",
        "mail",
        "mailNickname",
        "mobilePhone",
        "officeLocation",
        "preferredLanguage",
        "surname",
        "usageLocation",
        "userPrincipalName",
        "userType",
    }
)
# Write-only on Graph: accepted, never returned.
_USER_WRITE_ONLY = frozenset({"passwordProfile", "passwordPolicies"})
_GROUP_WRITABLE = frozenset(
    {
        "description",
        "displayName",
        "groupTypes",
        "mailEnabled",
        "mailNickname",
        "securityEnabled",
        "visibility",
    }
)
_GROUP_CREATE_ONLY = frozenset({"members@odata.bind", "owners@odata.bind"})

_BOOL = frozenset({"accountEnabled", "mailEnabled", "securityEnabled"})
_LISTS = frozenset({"businessPhones", "groupTypes"})


def _bad(message: str) -> GraphApiError:
    return GraphApiError(400, "Request_BadRequest", message)


def _not_found(key: str) -> GraphApiError:
    return GraphApiError(
        404,
        "Request_ResourceNotFound",
        f"Resource '{key}' does not exist or one of its queried reference-property "
        "objects are not present.",
    )


# ------------------------------------------------------------------------- journal


@dataclass(frozen=True)
class Change:
    """One change to one user: ``kind`` created | updated | deleted (reason in ``reason``)."""

    seq: int
    time: float
    id: str
    kind: str
    properties: frozenset[str] = frozenset()
    reason: str = ""  # deleted: "changed" (restorable) or "deleted" (permanent)


@dataclass
class Journal:
    """Every change, in order; ``seq`` numbers them from 1. ``epoch`` moves on a sync reset
    (every delta token issued before it is then refused with 410 Gone)."""

    changes: list[Change] = field(default_factory=list)
    epoch: int = 0

    @property
    def seq(self) -> int:
        return self.changes[-1].seq if self.changes else 0

    def add(self, now: float, user_id: str, kind: str, props: Any = (), reason: str = "") -> None:
        self.changes.append(Change(self.seq + 1, now, user_id, kind, frozenset(props), reason))

    def since(self, seq: int, upto: int) -> list[Change]:
        """Changes with ``seq < c.seq <= upto``."""
        start = bisect.bisect_right([c.seq for c in self.changes], seq)
        return [c for c in self.changes[start:] if c.seq <= upto]


# ------------------------------------------------------------------------- overlay


class UserOverlay:
    """The seeded users plus what was written; the collection ``/users`` serves.

    Positions (what ``get`` takes) are the visible users in order: the seeded ones (minus
    the deleted), then the created ones in creation order. Underlying indices are stable:
    ``0..seeded-1`` the directory's, then one per created user.
    """

    schema = USER_SCHEMA

    def __init__(
        self, base: UserDirectory, *, clock: Callable[[], float], make_id: Callable[[], str]
    ):
        self.base = base
        self.seeded = len(base)
        self._clock = clock
        self._make_id = make_id
        self._created: list[dict[str, Any]] = []  # underlying index seeded + k
        self._patches: dict[int, dict[str, Any]] = {}  # seeded index -> changed properties
        self._deleted: list[int] = []  # sorted underlying indices
        self._deleted_set: set[int] = set()
        self._by_name: dict[str, int] = {}  # lower-case UPN -> underlying index (written ones)
        self._by_id: dict[str, int] = {}  # id of a created user -> underlying index
        # underlying index -> (content type, bytes): the profile photos set (none at first)
        self._photos: dict[int, tuple[str, bytes]] = {}
        self._version = 0
        self._orders: dict[tuple[str, bool, int], list[int]] = {}
        self._lock = threading.RLock()
        self.journal = Journal()

    # -- the collection protocol (odata.run_query)

    def __len__(self) -> int:
        return self.seeded + len(self._created) - len(self._deleted)

    @property
    def changed(self) -> bool:
        """Whether anything was written (else every answer comes from the directory)."""
        return self._version != 0

    @property
    def stateful(self) -> bool:
        """Whether there is anything to keep across a restart (writes, photos, or a sync
        reset)."""
        return self.changed or bool(self._photos) or self.journal.epoch != 0

    def _underlying(self, pos: int) -> int:
        if not self._deleted:
            return pos
        u = pos
        while True:  # the smallest u with u = pos + deleted(<= u) is not deleted
            nxt = pos + bisect.bisect_right(self._deleted, u)
            if nxt == u:
                return u
            u = nxt

    def _position(self, u: int) -> int | None:
        if u in self._deleted_set:
            return None
        return u - bisect.bisect_left(self._deleted, u)

    def _item(self, u: int) -> dict[str, Any]:
        if u >= self.seeded:
            return dict(self._created[u - self.seeded])
        item = self.base.get(u)
        patch = self._patches.get(u)
        if patch:
            item.update(patch)
        return item

    def get(self, i: int) -> dict[str, Any]:
        if not self._version:
            return self.base.get(i)
        return self._item(self._underlying(i))

    def frozen_get(self) -> Callable[[int], dict[str, Any]] | None:
        """Nothing written: the directory's own users, which no later write changes (a
        page made while a write lands is the page as it was asked for)."""
        return self.base.get if not self._version else None

    def lookup(self, prop: str, value: Any) -> list[int] | None:
        if not isinstance(value, str):
            return None
        if not self._version:
            return self.base.lookup(prop, value)
        if prop == "id":
            u = self._find_underlying(value)
        elif prop in ("userPrincipalName", "mail"):
            u = self._find_by_name(value)
            if u is None and prop == "mail":
                return None  # a patched mail: scan
        else:
            return None
        pos = self._position(u) if u is not None else None
        # run_query applies the filter to these candidates too: a superset is fine.
        return [pos] if pos is not None else []

    def order(self, prop: str, descending: bool) -> Sequence[int]:
        if not self._version:
            return self.base.order(prop, descending)
        with self._lock:
            key = (prop, descending, self._version)
            if key not in self._orders:
                self._orders = {k: v for k, v in self._orders.items() if k[2] == self._version}
                values = [str(self.get(i).get(prop) or "").lower() for i in range(len(self))]
                self._orders[key] = sorted(
                    range(len(self)), key=values.__getitem__, reverse=descending
                )
            return self._orders[key]

    # -- what TenantState and the routes use

    def _find_underlying(self, user_id: str) -> int | None:
        key = user_id.strip().lower()
        if key in self._by_id:
            return self._by_id[key]
        i = self.base.index_of_id(key)
        return i

    def _find_by_name(self, name: str) -> int | None:
        key = name.strip().lower()
        if key in self._by_name:
            return self._by_name[key]
        i = self.base.index_of_name(key)
        if i is not None and i in self._patches and "userPrincipalName" in self._patches[i]:
            return None  # renamed: the old name no longer finds it
        return i

    def _find(self, key: str) -> int | None:
        u = self._find_by_name(key) if "@" in key else self._find_underlying(key)
        return None if u is None or u in self._deleted_set else u

    def find(self, key: str) -> dict[str, Any] | None:
        """A visible user by id or userPrincipalName (what ``/users/{key}`` accepts)."""
        if not self._version:
            return self.base.find(key)
        u = self._find(key)
        return self._item(u) if u is not None else None

    def index_of_id(self, value: str) -> int | None:
        if not self._version:
            return self.base.index_of_id(value)
        u = self._find_underlying(value)
        return self._position(u) if u is not None else None

    def manager_index(self, i: int) -> int | None:
        """The position of user ``i``'s manager (seeded users only), or None."""
        if not self._version:
            return self.base.manager_index(i)
        u = self._underlying(i)
        m = self.base.manager_index(u) if u < self.seeded else None
        return self._position(m) if m is not None else None

    # -- writes

    def _upn_taken(self, upn: str, other_than: int | None = None) -> bool:
        u = self._find(upn)
        return u is not None and u != other_than

    def create(self, data: Mapping[str, Any]) -> dict[str, Any]:
        with self._lock:
            upn = str(data["userPrincipalName"])
            if self._upn_taken(upn):
                raise _conflict("userPrincipalName")
            now = self._clock()
            user: dict[str, Any] = {name: None for name in USER_PROPERTIES}
            user["businessPhones"] = []
            user.update({k: v for k, v in data.items() if k in _USER_WRITABLE})
            user["id"] = self._make_id()
            user["createdDateTime"] = _iso(now)
            user["userType"] = data.get("userType") or "Member"
            u = self.seeded + len(self._created)
            self._created.append(user)
            self._by_id[user["id"]] = u
            self._by_name[upn.lower()] = u
            self._bump()
            self.journal.add(now, user["id"], "created", user)
            return dict(user)

    def update(self, key: str, data: Mapping[str, Any]) -> dict[str, Any]:
        with self._lock:
            u = self._find(key)
            if u is None:
                raise _not_found(key)
            before = self._item(u)
            changes = {k: v for k, v in data.items() if k in _USER_WRITABLE}
            if "userPrincipalName" in changes:
                upn = str(changes["userPrincipalName"])
                if self._upn_taken(upn, other_than=u):
                    raise _conflict("userPrincipalName")
                self._by_name.pop(str(before["userPrincipalName"]).lower(), None)
                self._by_name[upn.lower()] = u
            if u >= self.seeded:
                self._created[u - self.seeded].update(changes)
            else:
                self._patches.setdefault(u, {}).update(changes)
            self._bump()
            changed = {k for k, v in changes.items() if before.get(k) != v}
            if changed or "passwordProfile" in data:
                self.journal.add(self._clock(), before["id"], "updated", changed)
            return self._item(u)

    def delete(self, key: str, *, permanent: bool = False) -> dict[str, Any]:
        """Delete a visible user. Graph moves it to deleted items (restorable: delta reason
        "changed"); ``permanent`` stands for deleting it from there too ("deleted")."""
        with self._lock:
            u = self._find(key)
            if u is None:
                raise _not_found(key)
            user = self._item(u)
            bisect.insort(self._deleted, u)
            self._deleted_set.add(u)
            self._photos.pop(u, None)
            self._by_name.pop(str(user["userPrincipalName"]).lower(), None)
            self._bump()
            reason = "deleted" if permanent else "changed"
            self.journal.add(self._clock(), user["id"], "deleted", (), reason)
            return user

    def _bump(self) -> None:
        self._version += 1

    # -- profile photos (no user property changes: the journal does not see them)

    def photo(self, key: str) -> tuple[str, bytes] | None:
        """A visible user's photo (content type, bytes), or None when it has none.

        Raises:
            GraphApiError: 404, no such user.
        """
        with self._lock:
            u = self._find(key)
            if u is None:
                raise _not_found(key)
            return self._photos.get(u)

    def set_photo(self, key: str, content_type: str, data: bytes) -> None:
        with self._lock:
            u = self._find(key)
            if u is None:
                raise _not_found(key)
            self._photos[u] = (content_type, bytes(data))

    # -- persistence (--state-dir)

    def export_state(self) -> dict[str, Any]:
        with self._lock:
            return {
                "created": [dict(u) for u in self._created],
                "patches": {str(k): dict(v) for k, v in self._patches.items()},
                "deleted": list(self._deleted),
                "photos": {
                    str(u): [ctype, base64.b64encode(blob).decode("ascii")]
                    for u, (ctype, blob) in self._photos.items()
                },
                "journal": [
                    [c.seq, c.time, c.id, c.kind, sorted(c.properties), c.reason]
                    for c in self.journal.changes
                ],
                "epoch": self.journal.epoch,
            }

    def load_state(self, data: Mapping[str, Any]) -> None:
        with self._lock:
            self._created = [dict(u) for u in data.get("created", [])]
            self._patches = {int(k): dict(v) for k, v in dict(data.get("patches", {})).items()}
            self._deleted = sorted(int(u) for u in data.get("deleted", []))
            self._deleted_set = set(self._deleted)
            self._photos = {
                int(u): (str(ctype), base64.b64decode(blob))
                for u, (ctype, blob) in dict(data.get("photos", {})).items()
            }
            self._by_id = {str(u["id"]): self.seeded + k for k, u in enumerate(self._created)}
            self._by_name = {}
            for u in [*self._patches, *range(self.seeded, self.seeded + len(self._created))]:
                if u not in self._deleted_set:
                    self._by_name[str(self._item(u)["userPrincipalName"]).lower()] = u
            self.journal = Journal(
                [
                    Change(int(s), float(t), str(i), str(k), frozenset(p), str(r))
                    for s, t, i, k, p, r in data.get("journal", [])
                ],
                int(data.get("epoch", 0)),
            )
            self._version = 1 if (self._created or self._patches or self._deleted) else 0
            self._orders = {}


def _iso(ts: float) -> str:
    import datetime as dt

    return dt.datetime.fromtimestamp(ts, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _conflict(prop: str) -> GraphApiError:
    # Captured answer: microsoft-graph-docs#1508 (400, details ObjectConflict).
    err = _bad(f"Another object with the same value for property {prop} already exists.")
    err.details = [{"code": "ObjectConflict", "target": prop}]  # type: ignore[attr-defined]
    return err


# --------------------------------------------------------------- validation (users)


def _check_body(data: Any) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise GraphApiError(400, "BadRequest", "The request body must be a JSON object.")
    return data


def _check_values(data: Mapping[str, Any], writable: frozenset[str], label: str) -> None:
    for name, value in data.items():
        if name in _BOOL and not isinstance(value, bool):
            raise _bad(f"Invalid value specified for property '{name}' of resource '{label}'.")
        if name in _LISTS and not (
            isinstance(value, list) and all(isinstance(v, str) for v in value)
        ):
            raise _bad(f"Invalid value specified for property '{name}' of resource '{label}'.")
        plain = name in writable and name not in _BOOL | _LISTS
        if plain and value is not None and not isinstance(value, str):
            raise _bad(f"Invalid value specified for property '{name}' of resource '{label}'.")


def _unknown_property(name: str, type_name: str) -> GraphApiError:
    # OData's answer for a property the type does not have.
    return GraphApiError(
        400,
        "Request_BadRequest",
        f"Property '{name}' does not exist on type 'microsoft.graph.{type_name}' or is read-only.",
    )


def create_user(overlay: UserOverlay, domain: str, data: Any) -> dict[str, Any]:
    """``POST /users``: validate as Graph does, then add the user. Returns it.

    Raises:
        GraphApiError: 400 for a missing or invalid property or a userPrincipalName taken.
    """
    data = _check_body(data)
    for name in data:
        if name not in _USER_WRITABLE | _USER_WRITE_ONLY and not name.startswith("@"):
            raise _unknown_property(name, "user")
    for name in USER_REQUIRED:
        if data.get(name) in (None, ""):
            # UNCONFIRMED wording; the 400 Request_BadRequest is what Graph answers.
            raise _bad(f"Invalid value specified for property '{name}' of resource 'User'.")
    profile = data.get("passwordProfile")
    if not isinstance(profile, dict) or not profile.get("password"):
        # user-post-users.md: passwordProfile (with a password) is required.
        raise _bad("A password must be specified to create a new user.")
    _check_values(data, _USER_WRITABLE, "User")
    _check_upn(str(data["userPrincipalName"]), domain)
    return overlay.create(data)


def _check_upn(upn: str, domain: str) -> None:
    local, at, host = upn.partition("@")
    if not at or not local or host.lower() != domain.lower():
        # user-post-users.md: the domain must be one of the tenant's verified domains.
        raise _bad(
            "Property userPrincipalName is invalid: the domain must be a verified domain "
            "of the tenant."
        )


def update_user(overlay: UserOverlay, domain: str, key: str, data: Any) -> dict[str, Any]:
    """``PATCH /users/{id}`` (204): only the properties given change.

    Raises:
        GraphApiError: 404 for no such user; 400 for an unknown, read-only or invalid one.
    """
    data = _check_body(data)
    for name in data:
        if name not in _USER_WRITABLE | _USER_WRITE_ONLY:
            raise _unknown_property(name, "user")
    for name in ("displayName", "userPrincipalName", "mailNickname"):
        if name in data and data[name] in (None, ""):
            # user-update.md: displayName "cannot be cleared during updates".
            raise _bad(f"Invalid value specified for property '{name}' of resource 'User'.")
    _check_values(data, _USER_WRITABLE, "User")
    if "userPrincipalName" in data:
        _check_upn(str(data["userPrincipalName"]), domain)
    return overlay.update(key, data)


def delete_user(overlay: UserOverlay, key: str, *, permanent: bool = False) -> dict[str, Any]:
    """``DELETE /users/{id}`` (204; then 404)."""
    return overlay.delete(key, permanent=permanent)


# ------------------------------------------------------------------------ groups


def create_group(
    groups: list[dict[str, Any]], domain: str, make_id: Callable[[], str], now: float, data: Any
) -> dict[str, Any]:
    """``POST /groups`` (group-post-groups.md): displayName, mailEnabled, mailNickname and
    securityEnabled are required. Returns the group."""
    data = _check_body(data)
    for name in data:
        if name not in _GROUP_WRITABLE | _GROUP_CREATE_ONLY:
            raise _unknown_property(name, "group")
    for name in GROUP_REQUIRED:
        if data.get(name) in (None, ""):
            raise _bad(f"Invalid value specified for property '{name}' of resource 'Group'.")
    _check_values(data, _GROUP_WRITABLE, "Group")
    nick = str(data["mailNickname"])
    types = list(data.get("groupTypes") or [])
    unified = "Unified" in types
    group = {
        "id": make_id(),
        "createdDateTime": _iso(now),
        "description": data.get("description"),
        "displayName": data["displayName"],
        "groupTypes": types,
        "mail": f"{nick}@{domain}" if unified or data["mailEnabled"] else None,
        "mailEnabled": data["mailEnabled"],
        "mailNickname": nick,
        "securityEnabled": data["securityEnabled"],
        "visibility": data.get("visibility") or ("Public" if unified else None),
    }
    groups.append(group)
    return dict(group)


def _find_group(groups: list[dict[str, Any]], key: str) -> dict[str, Any]:
    group = next((g for g in groups if g["id"] == key.strip().lower()), None)
    if group is None:
        raise _not_found(key)
    return group


def update_group(groups: list[dict[str, Any]], key: str, data: Any) -> dict[str, Any]:
    """``PATCH /groups/{id}`` (group-update.md, 204)."""
    data = _check_body(data)
    group = _find_group(groups, key)
    for name in data:
        if name not in _GROUP_WRITABLE:
            raise _unknown_property(name, "group")
    if "displayName" in data and data["displayName"] in (None, ""):
        raise _bad("Invalid value specified for property 'displayName' of resource 'Group'.")
    _check_values(data, _GROUP_WRITABLE, "Group")
    group.update(data)
    return dict(group)


def delete_group(groups: list[dict[str, Any]], key: str) -> dict[str, Any]:
    """``DELETE /groups/{id}`` (group-delete.md, 204; then 404)."""
    group = _find_group(groups, key)
    groups.remove(group)
    return group


# ------------------------------------------------------------------- profile photos

# profilephoto-update.md: "a limit of 4MB on the total size of each REST request, this
# limits the size of the photo you can add to under 4MB".
MAX_PHOTO = 4 * 1024 * 1024


def get_photo(users: UserOverlay, key: str) -> tuple[str, bytes]:
    """``GET /users/{key}/photo/$value``: the photo, or 404 ``ImageNotFound``."""
    found = users.photo(key)
    if found is None:
        # The code and message Graph answers for a user without a photo (captured in
        # msgraph-sdk-dotnet-core#851 and elsewhere); profilephoto-get.md: 404.
        raise GraphApiError(
            404,
            "ImageNotFound",
            "Exception of type 'Microsoft.Fast.Profile.Core.Exception.ImageNotFoundException'"
            " was thrown.",
        )
    return found


def set_photo(users: UserOverlay, key: str, content_type: str, data: bytes) -> None:
    """``PUT``/``PATCH /users/{key}/photo/$value`` with the photo's bytes."""
    ctype = content_type.split(";", 1)[0].strip().lower()
    if not ctype.startswith("image/"):
        raise _bad("The request body must be an image, sent with Content-Type: image/jpeg.")
    if not data:
        raise _bad("The photo is empty.")
    if len(data) >= MAX_PHOTO:
        raise GraphApiError(413, "RequestEntityTooLarge", "The photo must be under 4 MB.")
    users.set_photo(key, ctype, data)
