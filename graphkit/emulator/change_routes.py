"""Thin handlers for writes (users, groups), ``/users/delta``, the throttling budget, and
their admin endpoints; :func:`register` adds them to :data:`routes.ROUTES`.

State lives in :mod:`writes` (the user overlay, its journal), :mod:`delta` (the rounds) and
:mod:`throttle` (the budget); this module only turns requests into calls and answers.
"""

from __future__ import annotations

import re
from typing import Any

from graphkit.emulator import delta, writes
from graphkit.emulator import routes as r
from graphkit.emulator.errors import GraphApiError
from graphkit.emulator.routes import Request, Response, Route, Services

__all__ = ["charge", "register"]


# ----------------------------------------------------------------------- throttling


def charge(svc: Services, req: Request, handler: r.Handler, m: Any) -> Response:
    """Charge ``req`` to the budget (or refuse it with 429), run it, add the headers."""
    tenant = r._tenant(svc, req)
    parts = req.path.split("/", 2)  # "", "v1.0", "users/..."
    path = parts[2] if len(parts) > 2 else ""
    got = svc.throttle.charge(
        client_id=str(req.claims.get("appid", "")),
        tenant_id=tenant.id,
        users=tenant.users.seeded,
        method=req.method,
        path=path,
        query=req.query,
    )
    headers = got.headers if got is not None else {}
    try:
        resp = handler(svc, req, m)
    except GraphApiError as err:
        err.headers = {**headers, **err.headers}
        raise
    resp.headers.update(headers)
    return resp


# --------------------------------------------------------------------------- users


def _body(req: Request) -> Any:
    return r._json_body(req)


def h_create_user(svc: Services, req: Request, m: re.Match[str]) -> Response:
    tenant = r._tenant(svc, req)
    with svc.backend.lock:
        user = writes.create_user(tenant.users, tenant.domain, _body(req))
    version = m["version"]
    body = {"@odata.context": r._context(req, version, "users/$entity")}
    body.update(r._shape(user, r._names(tenant.users.schema, version, None)))
    resp = r.graph_json(req, 201, body)
    resp.headers["Location"] = f"{req.base}/{version}/users/{user['id']}"
    return resp


def h_update_user(svc: Services, req: Request, m: re.Match[str]) -> Response:
    tenant = r._tenant(svc, req)
    with svc.backend.lock:
        writes.update_user(tenant.users, tenant.domain, m["key"], _body(req))
    return Response(204, b"", r._graph_headers(req))


def h_delete_user(svc: Services, req: Request, m: re.Match[str]) -> Response:
    tenant = r._tenant(svc, req)
    with svc.backend.lock:
        writes.delete_user(tenant.users, m["key"])
    return Response(204, b"", r._graph_headers(req))


def h_get_photo(svc: Services, req: Request, m: re.Match[str]) -> Response:
    tenant = r._tenant(svc, req)
    with svc.backend.lock:
        ctype, data = writes.get_photo(tenant.users, m["key"])
    headers = r._graph_headers(req)
    headers["Content-Type"] = ctype
    return Response(200, data, headers)


def h_set_photo(svc: Services, req: Request, m: re.Match[str]) -> Response:
    tenant = r._tenant(svc, req)
    with svc.backend.lock:
        writes.set_photo(tenant.users, m["key"], str(req.headers.get("content-type", "")), req.body)
    return Response(200, b"", r._graph_headers(req))


def h_users_delta(svc: Services, req: Request, m: re.Match[str]) -> Response:
    tenant = r._tenant(svc, req)
    version = m["version"]
    prefer = str(req.headers.get("prefer", "")).replace(" ", "").lower()
    initial = f"{req.base}/{version}/users/delta"
    with svc.backend.lock:
        page = delta.run_delta(
            tenant.users,
            tenant.id,
            req.query,
            now=svc.backend.now(),
            minimal="return=minimal" in prefer,
            location=initial,
        )
    body: dict[str, Any] = {
        "@odata.context": r._context(req, version, r._select_fragment("users", page.select))
    }
    if page.next_token is not None:
        body["@odata.nextLink"] = f"{initial}?$skiptoken={page.next_token}"
    if page.delta_token is not None:
        body["@odata.deltaLink"] = f"{initial}?$deltatoken={page.delta_token}"
    body["value"] = page.value
    return r.graph_json(req, 200, body)


# -------------------------------------------------------------------------- groups


def _group_id(svc: Services, tenant_id: str) -> Any:
    return lambda: svc.backend.ids.make("created-group", tenant_id, svc.backend._next())


def h_create_group(svc: Services, req: Request, m: re.Match[str]) -> Response:
    tenant = r._tenant(svc, req)
    with svc.backend.lock:
        group = writes.create_group(
            tenant.groups, tenant.domain, _group_id(svc, tenant.id), svc.backend.now(), _body(req)
        )
    version = m["version"]
    body = {"@odata.context": r._context(req, version, "groups/$entity")}
    body.update(group)
    resp = r.graph_json(req, 201, body)
    resp.headers["Location"] = f"{req.base}/{version}/groups/{group['id']}"
    return resp


def h_update_group(svc: Services, req: Request, m: re.Match[str]) -> Response:
    tenant = r._tenant(svc, req)
    with svc.backend.lock:
        writes.update_group(tenant.groups, m["key"], _body(req))
    return Response(204, b"", r._graph_headers(req))


def h_delete_group(svc: Services, req: Request, m: re.Match[str]) -> Response:
    tenant = r._tenant(svc, req)
    with svc.backend.lock:
        writes.delete_group(tenant.groups, m["key"])
    return Response(204, b"", r._graph_headers(req))


# ---------------------------------------------------------------------------- admin


def _admin_tenant(svc: Services, data: dict[str, Any]) -> Any:
    return svc.backend.tenant(str(data.get("tenant") or svc.backend.default_tenant_id))


def _admin_error(err: GraphApiError) -> ValueError | KeyError:
    # The admin API answers {"error": ...}: 404 for a missing user, else 400.
    return KeyError(err.message) if err.status == 404 else ValueError(err.message)


def a_create_user(svc: Services, req: Request, m: re.Match[str]) -> Response:
    data = r._admin_json(req)
    tenant = _admin_tenant(svc, data)
    body = {k: v for k, v in data.items() if k != "tenant"}
    body.setdefault("accountEnabled", True)
    body.setdefault("passwordProfile", {"password": writes.PLACEHOLDER_PASSWORD})
    if "userPrincipalName" in body and "mailNickname" not in body:
        body["mailNickname"] = str(body["userPrincipalName"]).split("@")[0]
    try:
        with svc.backend.lock:
            user = writes.create_user(tenant.users, tenant.domain, body)
    except GraphApiError as err:
        raise _admin_error(err) from None
    return r.json_response(201, user)


def a_update_user(svc: Services, req: Request, m: re.Match[str]) -> Response:
    data = r._admin_json(req)
    tenant = _admin_tenant(svc, data)
    body = {k: v for k, v in data.items() if k != "tenant"}
    try:
        with svc.backend.lock:
            user = writes.update_user(tenant.users, tenant.domain, m["key"], body)
    except GraphApiError as err:
        raise _admin_error(err) from None
    return r.json_response(200, user)


def a_delete_user(svc: Services, req: Request, m: re.Match[str]) -> Response:
    tenant = svc.backend.tenant(req.query.get("tenant") or svc.backend.default_tenant_id)
    permanent = req.query.get("permanent", "").lower() in ("1", "true", "yes")
    try:
        with svc.backend.lock:
            writes.delete_user(tenant.users, m["key"], permanent=permanent)
    except GraphApiError as err:
        raise _admin_error(err) from None
    return Response(204)


def a_delta_reset(svc: Services, req: Request, m: re.Match[str]) -> Response:
    data = r._admin_json(req)
    tenant = _admin_tenant(svc, data)
    with svc.backend.lock:
        tenant.users.journal.epoch += 1
        epoch = tenant.users.journal.epoch
    return r.json_response(200, {"tenant_id": tenant.id, "epoch": epoch})


def a_throttling(svc: Services, req: Request, m: re.Match[str]) -> Response:
    return r.json_response(200, svc.throttle.stats())


def a_set_throttling(svc: Services, req: Request, m: re.Match[str]) -> Response:
    budget = svc.throttle
    data = r._admin_json(req)
    unknown = set(data) - {"budget", "window"}
    if unknown:
        raise ValueError(f"unknown throttling field(s): {', '.join(sorted(unknown))}")
    budget.configure(data.get("budget", budget.settings()["budget"]), data.get("window"))
    return r.json_response(200, budget.stats())


# ------------------------------------------------------------------------- register

_V = r._V
_PHOTO = "/users/(?P<key>[^/]+)/photo/\\$value"
# profilephoto-get.md, profilephoto-update.md (application permissions, a user's photo).
PHOTO_READ = frozenset({"User.Read.All", "User.ReadWrite.All"})
PHOTO_WRITE = frozenset({"User.ReadWrite.All"})
_ROUTES = [
    r._r("POST", f"{_V}/users", h_create_user, "graph", r.USERS_WRITE),
    r._r(
        "GET",
        f"{_V}/users/(?:delta|microsoft\\.graph\\.delta(?:\\(\\))?)",
        h_users_delta,
        "graph",
        r.USERS_READ - {"User.ReadBasic.All"},
    ),
    r._r("PATCH", f"{_V}/users/(?P<key>[^/]+)", h_update_user, "graph", r.USERS_WRITE),
    r._r("GET", f"{_V}{_PHOTO}", h_get_photo, "graph", PHOTO_READ),
    r._r("PUT", f"{_V}{_PHOTO}", h_set_photo, "graph", PHOTO_WRITE),
    r._r("PATCH", f"{_V}{_PHOTO}", h_set_photo, "graph", PHOTO_WRITE),
    r._r("DELETE", f"{_V}/users/(?P<key>[^/]+)", h_delete_user, "graph", r.USERS_DELETE),
    r._r("POST", f"{_V}/groups", h_create_group, "graph", r.GROUPS_CREATE),
    r._r("PATCH", f"{_V}/groups/(?P<key>[^/]+)", h_update_group, "graph", r.GROUPS_WRITE),
    r._r("DELETE", f"{_V}/groups/(?P<key>[^/]+)", h_delete_group, "graph", r.GROUPS_DELETE),
]
_ADMIN = [
    (
        r._r("POST", "/_emulator/users", a_create_user, "admin"),
        'create a user {"userPrincipalName", "displayName", ...} (seen by /users/delta)',
    ),
    (
        r._r("PATCH", "/_emulator/users/(?P<key>[^/]+)", a_update_user, "admin"),
        "update a user's properties (seen by /users/delta)",
    ),
    (
        r._r("DELETE", "/_emulator/users/(?P<key>[^/]+)", a_delete_user, "admin"),
        'delete a user (?permanent=true: delta reason "deleted", else "changed")',
    ),
    (
        r._r("POST", "/_emulator/delta/reset", a_delta_reset, "admin"),
        "a sync reset: every delta token issued so far answers 410 Gone",
    ),
    (
        r._r("GET", "/_emulator/throttling", a_throttling, "admin"),
        "the throttling budget, its counters and the units spent per app and tenant",
    ),
    (
        r._r("PUT", "/_emulator/throttling", a_set_throttling, "admin"),
        'set the budget {"budget": "off"|"auto"|"small"|"medium"|"large"|RU, "window": s}',
    ),
]


def register(routes: list[Route], docs: dict[Any, str]) -> None:
    """Put the Graph routes first (``/users/delta`` before ``/users/{id}``), the admin
    ones after the others, and document the admin ones in the index."""
    routes[:0] = _ROUTES
    for route, text in _ADMIN:
        routes.append(route)
        docs[route.handler] = text
