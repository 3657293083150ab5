"""The routes table and its thin handlers: HTTP in, backend calls, HTTP out.

:func:`dispatch` turns a :class:`Request` into a :class:`Response` (errors included);
the server adds faults and logging around it, and ``$batch`` calls it once per item.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, quote, unquote, urlencode, urlsplit

from graphkit.emulator import applications, odata, signin
from graphkit.emulator.backend import AppState, Backend, TenantState
from graphkit.emulator.errors import EntraError, GraphApiError
from graphkit.emulator.faults import FaultInjector, retry_after_header
from graphkit.emulator.log import RequestLog
from graphkit.emulator.tokens import TokenService

__all__ = ["Request", "Response", "Services", "classify", "dispatch"]

JSON_TYPE = "application/json; charset=utf-8"
GRAPH_JSON = (
    "application/json;odata.metadata=minimal;odata.streaming=true;IEEE754Compatible=false;"
    "charset=utf-8"
)
MAX_BATCH = 20

# Application permissions that allow each kind of read or write (any one suffices).
USERS_READ = frozenset(
    {
        "User.Read.All",
        "User.ReadWrite.All",
        "User.ReadBasic.All",
        "Directory.Read.All",
        "Directory.ReadWrite.All",
    }
)
ORG_READ = frozenset(
    {
        "Organization.Read.All",
        "Organization.ReadWrite.All",
        "Directory.Read.All",
        "Directory.ReadWrite.All",
    }
)
GROUPS_READ = frozenset(
    {
        "Group.Read.All",
        "Group.ReadWrite.All",
        "GroupMember.Read.All",
        "Directory.Read.All",
        "Directory.ReadWrite.All",
    }
)
APPS_READ = frozenset(
    {
        "Application.Read.All",
        "Application.ReadWrite.All",
        "Directory.Read.All",
        "Directory.ReadWrite.All",
    }
)
APPS_WRITE = frozenset({"Application.ReadWrite.All"})
# user-post-users.md, user-update.md; user-delete.md and group-delete.md name only the
# ReadWrite.All permission of the type (Directory.ReadWrite.All cannot delete users or groups:
# the permissions reference, and directoryobject-delete.md).
USERS_WRITE = frozenset({"User.ReadWrite.All", "Directory.ReadWrite.All"})
USERS_DELETE = frozenset({"User.ReadWrite.All"})
GROUPS_WRITE = frozenset({"Group.ReadWrite.All", "Directory.ReadWrite.All"})
GROUPS_CREATE = frozenset({"Group.Create", "Group.ReadWrite.All", "Directory.ReadWrite.All"})
GROUPS_DELETE = frozenset({"Group.ReadWrite.All"})
OWNED_BY = "Application.ReadWrite.OwnedBy"


class Headers(dict[str, str]):
    """Request headers with case-insensitive lookup (keys are stored lower-case)."""

    def __init__(self, items: Iterable[tuple[str, str]] = ()):
        super().__init__()
        for k, v in items:
            self[k.lower()] = v

    def get(self, key: str, default: Any = None) -> Any:
        return super().get(key.lower(), default)


@dataclass
class Request:
    method: str
    target: str  # as sent: path and query string
    headers: Headers
    body: bytes = b""
    base: str = ""  # https://host:port as the client addressed us
    path: str = ""
    query: dict[str, str] = field(default_factory=dict)
    claims: dict[str, Any] = field(default_factory=dict)
    note: dict[str, Any] = field(default_factory=dict)  # extra fields for the log
    in_batch: bool = False

    def __post_init__(self) -> None:
        parts = urlsplit(self.target)
        # A trailing slash names the same resource (/v1.0/users/ is /v1.0/users).
        self.path = unquote(parts.path).rstrip("/") or "/"
        self.query = dict(parse_qsl(parts.query, keep_blank_values=True))

    @property
    def client_request_id(self) -> str | None:
        value = self.headers.get("client-request-id")
        return str(value) if value else None

    @property
    def eventual(self) -> bool:
        return str(self.headers.get("consistencylevel", "")).strip().lower() == "eventual"


@dataclass
class Response:
    status: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    # A body sent as it is made (chunked), instead of ``body``: a collection page, its
    # first part the control information (@odata.nextLink before "value").
    parts: Iterator[bytes] | None = None

    def content(self) -> bytes:
        """The whole body (a streamed one joined: it can then be sent only as bytes)."""
        if self.parts is not None:
            self.body, self.parts = b"".join(self.parts), None
        return self.body


@dataclass
class Services:
    """What handlers work with."""

    backend: Backend
    tokens: TokenService
    faults: FaultInjector
    log: RequestLog
    base_url: str  # https://127.0.0.1:PORT
    ca_bundle: str
    reset: Callable[[], None]  # the emulator's full reset (state, faults, log)
    info: Callable[[], dict[str, Any]]
    # Called after each request is answered (before it is sent): keeps --state-dir.
    after_request: Callable[[], None] = lambda: None
    throttle: Any = None  # a throttle.ThrottleBudget (off unless configured)


Handler = Callable[[Services, Request, "re.Match[str]"], Response]


@dataclass(frozen=True)
class Route:
    method: str
    pattern: re.Pattern[str]
    handler: Handler
    kind: str  # token | discovery | graph | admin
    roles: frozenset[str] | None = None  # graph: any of these; None = no role check


def json_response(status: int, data: Any, headers: Mapping[str, str] | None = None) -> Response:
    body = json.dumps(data, separators=(",", ":")).encode()
    h = {"Content-Type": JSON_TYPE}
    h.update(headers or {})
    return Response(status, body, h)


def _json_body(req: Request) -> Any:
    if not req.body.strip():
        return {}
    try:
        return json.loads(req.body)
    except (ValueError, UnicodeDecodeError):
        raise GraphApiError(400, "BadRequest", "Unable to read JSON request payload.") from None


# ----------------------------------------------------------------------- entra side


def entra_error_response(svc: Services, req: Request, err: EntraError) -> Response:
    now = svc.backend.now()
    stamp = dt.datetime.fromtimestamp(now, dt.UTC).strftime("%Y-%m-%d %H:%M:%SZ")
    trace = str(uuid.uuid4())
    correlation = req.client_request_id or str(uuid.uuid4())
    description = (
        f"AADSTS{err.code}: {err.description}\r\nTrace ID: {trace}\r\n"
        f"Correlation ID: {correlation}\r\nTimestamp: {stamp}"
    )
    req.note["error_code"] = err.code
    body = {
        "error": err.error,
        "error_description": description,
        "error_codes": [err.code],
        "timestamp": stamp,
        "trace_id": trace,
        "correlation_id": correlation,
        "error_uri": f"{req.base}/error?code={err.code}",
    }
    return json_response(err.status, body, _entra_headers(req, trace))


def _entra_headers(req: Request, trace: str | None = None) -> dict[str, str]:
    h = {
        "Cache-Control": "no-store, no-cache",
        "Pragma": "no-cache",
        "x-ms-request-id": trace or str(uuid.uuid4()),
        "x-ms-ests-server": "2.1.0 - graphkit emulator",
    }
    if req.client_request_id:
        h["client-request-id"] = req.client_request_id
    return h


def h_openid_configuration(svc: Services, req: Request, m: re.Match[str]) -> Response:
    return json_response(200, svc.tokens.discovery(m["tenant"], req.base), _entra_headers(req))


def h_jwks(svc: Services, req: Request, m: re.Match[str]) -> Response:
    svc.tokens.check_jwks_tenant(m["tenant"])
    return json_response(200, svc.tokens.jwks(), _entra_headers(req))


def h_token(svc: Services, req: Request, m: re.Match[str]) -> Response:
    try:
        text = req.body.decode("utf-8")
    except UnicodeDecodeError:
        text = ""
    form = dict(parse_qsl(text, keep_blank_values=True))
    if form.get("grant_type") == signin.DEVICE_CODE_GRANT:
        return json_response(
            200, signin.redeem_device_code(svc, m["tenant"], form, req.note), _entra_headers(req)
        )
    answer = svc.tokens.client_credentials(m["tenant"], form, req.note)
    return json_response(200, answer, _entra_headers(req))


# ----------------------------------------------------------------------- graph side


def graph_error_response(svc: Services, req: Request, err: GraphApiError) -> Response:
    now = svc.backend.now()
    request_id = req.note.setdefault("request_id", str(uuid.uuid4()))
    inner: dict[str, Any] = {
        "date": dt.datetime.fromtimestamp(now, dt.UTC).strftime("%Y-%m-%dT%H:%M:%S"),
        "request-id": request_id,
        "client-request-id": req.client_request_id or request_id,
    }
    req.note["error_code"] = err.code
    body: dict[str, Any] = {"error": {"code": err.code, "message": err.message}}
    if getattr(err, "details", None):
        body["error"]["details"] = err.details  # type: ignore[attr-defined]
    body["error"]["innerError"] = inner
    headers = _graph_headers(req)
    headers.update(err.headers)
    headers["Content-Type"] = JSON_TYPE
    return Response(err.status, json.dumps(body).encode(), headers)


def _graph_headers(req: Request) -> dict[str, str]:
    request_id = req.note.setdefault("request_id", str(uuid.uuid4()))
    return {
        "request-id": request_id,
        "client-request-id": req.client_request_id or request_id,
        "x-ms-ags-diagnostic": '{"ServerInfo":{"DataCenter":"Local","Slice":"E",'
        '"Ring":"0","ScaleUnit":"000","RoleInstance":"graphkit-emulator"}}',
        "Cache-Control": "no-cache",
        "Strict-Transport-Security": "max-age=31536000",
    }


def graph_json(req: Request, status: int, data: Any) -> Response:
    return Response(status, _compact(data).encode(), _json_headers(req))


def _json_headers(req: Request) -> dict[str, str]:
    headers = _graph_headers(req)
    headers["Content-Type"] = GRAPH_JSON
    headers["OData-Version"] = "4.0"
    return headers


_compact = json.JSONEncoder(separators=(",", ":")).encode
_PART = 50  # items a part of a streamed page


def graph_page(req: Request, head: dict[str, Any], items: Iterable[Any]) -> Response:
    """A collection page, sent as it is made: the control information in ``head`` goes
    out first (a client can follow the nextLink at once), then the items ``_PART`` at a
    time. The bytes are those of ``graph_json`` with ``{**head, "value": [...]}``."""

    def parts() -> Iterator[bytes]:
        yield (_compact(head)[:-1] + (',"value":[' if head else '"value":[')).encode()
        batch: list[Any] = []
        sep = ""
        for item in items:
            batch.append(item)
            if len(batch) == _PART:
                yield (sep + _compact(batch)[1:-1]).encode()
                batch, sep = [], ","
        yield (sep + _compact(batch)[1:-1] + "]}").encode() if batch else b"]}"

    return Response(200, b"", _json_headers(req), parts=parts())


def _tenant(svc: Services, req: Request) -> TenantState:
    return svc.backend.tenant(req.claims["tid"])


def _roles(req: Request) -> set[str]:
    """The token's permissions: app roles, or for a signed-in user its delegated scopes."""
    return applications.token_permissions(req.claims)


def _denied() -> GraphApiError:
    return GraphApiError(
        403, "Authorization_RequestDenied", "Insufficient privileges to complete the operation."
    )


def _context(req: Request, version: str, fragment: str) -> str:
    return f"{req.base}/{version}/$metadata#{fragment}"


def _select_fragment(set_name: str, select: list[str] | None) -> str:
    return f"{set_name}({','.join(select)})" if select else set_name


def _names(schema: odata.EntitySchema, version: str, select: list[str] | None) -> Any:
    if select is not None:
        return select
    # beta returns every property; v1.0 a default set for some types.
    return None if version == "beta" else schema.default_select


def _shape(item: dict[str, Any], names: Any) -> dict[str, Any]:
    if names is None:
        return dict(item)
    return {n: item.get(n) for n in names}


Expander = Callable[[dict[str, Any], odata.QueryOptions], dict[str, Any]]


def _list(
    svc: Services,
    req: Request,
    version: str,
    coll: odata.Collection,
    scope: str,
    transform: Callable[[dict[str, Any], list[str] | None], dict[str, Any]] | None = None,
    *,
    expander: Expander | None = None,
    set_name: str | None = None,
) -> Response:
    schema = coll.schema
    opts = odata.parse_options(schema, req.query, eventual=req.eventual)
    page = odata.run_query(coll, opts, scope=scope)
    names = _names(schema, version, opts.select)
    body: dict[str, Any] = {
        "@odata.context": _context(
            req, version, _select_fragment(set_name or schema.set_name, opts.select)
        )
    }
    if page.count is not None:
        body["@odata.count"] = page.count
    if page.next_token is not None:
        params = {k: v for k, v in req.query.items() if k.lower() != "$skiptoken"}
        params["$skiptoken"] = page.next_token
        query = urlencode(params, quote_via=quote, safe="$,'()")
        body["@odata.nextLink"] = f"{req.base}{req.path}?{query}"

    def shape(item: dict[str, Any]) -> dict[str, Any]:
        return transform(item, opts.select) if transform is not None else _shape(item, names)

    items: Iterable[dict[str, Any]] = map(shape, page.items)
    if expander is not None and opts.expand:
        # Expanding reads other objects (a manager): now, not while the page is sent.
        items = [{**shape(item), **expander(item, opts)} for item in page.items]
    return graph_page(req, body, items)


def _directory_object(
    item: dict[str, Any], type_name: str, names: list[str] | tuple[str, ...] | None
) -> dict[str, Any]:
    """An item as a directoryObject-typed answer carries it: ``@odata.type`` first."""
    return {"@odata.type": f"#microsoft.graph.{type_name}", **_shape(item, names)}


def _user_expander(tenant: TenantState, version: str) -> Expander:
    """``$expand=manager`` / ``$expand=memberOf`` on users (user-list.md, user-list-manager.md).

    Expanded objects carry ``@odata.type`` and the default properties of their type
    (UNCONFIRMED which properties Graph includes; the lenient choice: the defaults).
    """
    from graphkit.emulator.backend import GROUP_SCHEMA

    def expand(user: dict[str, Any], opts: odata.QueryOptions) -> dict[str, Any]:
        if opts.expand == "manager":
            manager = tenant.manager_of(user)
            if manager is None:
                return {}  # Graph leaves the property out for a user with no manager
            names = opts.expand_select or _names(tenant.users.schema, version, None)
            return {"manager": _directory_object(manager, "user", names)}
        if opts.expand == "memberOf":
            names = opts.expand_select or _names(GROUP_SCHEMA, version, None)
            groups = tenant.member_of(user)
            return {"memberOf": [_directory_object(g, "group", names) for g in groups]}
        return {}

    return expand


def h_users(svc: Services, req: Request, m: re.Match[str]) -> Response:
    tenant = _tenant(svc, req)
    version = m["version"]
    return _list(
        svc,
        req,
        version,
        tenant.users,
        f"{tenant.id}:users",
        expander=_user_expander(tenant, version),
    )


def h_users_count(svc: Services, req: Request, m: re.Match[str]) -> Response:
    if not req.eventual:
        # aad-advanced-queries.md, "Error handling for advanced queries".
        raise GraphApiError(400, "Request_BadRequest", "$count is not currently supported.")
    tenant = _tenant(svc, req)
    query = {k: v for k, v in req.query.items() if k.lower() in ("$filter", "$search")}
    opts = odata.parse_options(tenant.users.schema, query, eventual=True, count_segment=True)
    opts.count, opts.top = True, 1
    page = odata.run_query(tenant.users, opts, scope=f"{tenant.id}:users")
    headers = _graph_headers(req)
    headers["Content-Type"] = "text/plain; charset=utf-8"
    return Response(200, str(page.count).encode(), headers)


def _not_found(key: str) -> GraphApiError:
    return GraphApiError(
        404,
        "Request_ResourceNotFound",
        f"Resource '{key}' does not exist or one of its queried reference-property "
        "objects are not present.",
    )


def _find_user(tenant: TenantState, key: str) -> dict[str, Any]:
    user = tenant.users.find(key)
    if user is None:
        raise _not_found(key)
    return user


def h_user(svc: Services, req: Request, m: re.Match[str]) -> Response:
    tenant = _tenant(svc, req)
    user = _find_user(tenant, m["key"])
    opts = odata.parse_options(
        tenant.users.schema, req.query, eventual=req.eventual, collection=False
    )
    version = m["version"]
    body = {"@odata.context": _context(req, version, "users/$entity")}
    body.update(_shape(user, _names(tenant.users.schema, version, opts.select)))
    if opts.expand:
        body.update(_user_expander(tenant, version)(user, opts))
    return graph_json(req, 200, body)


def h_user_manager(svc: Services, req: Request, m: re.Match[str]) -> Response:
    """``GET /users/{id}/manager`` (user-list-manager.md): 404 for a user with none."""
    tenant = _tenant(svc, req)
    user = _find_user(tenant, m["key"])
    opts = odata.parse_options(
        tenant.users.schema, req.query, eventual=req.eventual, collection=False
    )
    manager = tenant.manager_of(user)
    if manager is None:
        raise _not_found("manager")
    version = m["version"]
    body = {"@odata.context": _context(req, version, "directoryObjects/$entity")}
    names = opts.select or _names(tenant.users.schema, version, None)
    body.update(_directory_object(manager, "user", names))
    return graph_json(req, 200, body)


def h_user_member_of(svc: Services, req: Request, m: re.Match[str]) -> Response:
    """``GET /users/{id}/memberOf`` (user-list-memberof.md): directoryObjects, here groups."""
    from graphkit.emulator.backend import GROUP_SCHEMA

    tenant = _tenant(svc, req)
    user = _find_user(tenant, m["key"])
    coll = odata.ListCollection(GROUP_SCHEMA, tenant.member_of(user))
    return _list(
        svc,
        req,
        m["version"],
        coll,
        f"{tenant.id}:memberOf:{user['id']}",
        transform=lambda item, select: _directory_object(item, "group", select),
        set_name="directoryObjects",
    )


def h_me(svc: Services, req: Request, m: re.Match[str]) -> Response:
    raise GraphApiError(
        400, "BadRequest", "/me request is only valid with delegated authentication flow."
    )


ORG_SCHEMA = odata.EntitySchema(
    type_name="organization",
    set_name="organization",
    properties=(
        "id",
        "createdDateTime",
        "displayName",
        "countryLetterCode",
        "preferredLanguage",
        "tenantType",
        "verifiedDomains",
    ),
    filterable={"id": "string", "displayName": "string"},
)


def h_organization(svc: Services, req: Request, m: re.Match[str]) -> Response:
    tenant = _tenant(svc, req)
    coll = odata.ListCollection(ORG_SCHEMA, [svc.backend.organization_resource(tenant)])
    return _list(svc, req, m["version"], coll, f"{tenant.id}:organization")


def h_groups(svc: Services, req: Request, m: re.Match[str]) -> Response:
    from graphkit.emulator.backend import GROUP_SCHEMA

    tenant = _tenant(svc, req)
    coll = odata.ListCollection(GROUP_SCHEMA, tenant.groups)
    return _list(svc, req, m["version"], coll, f"{tenant.id}:groups")


def h_group(svc: Services, req: Request, m: re.Match[str]) -> Response:
    from graphkit.emulator.backend import GROUP_SCHEMA

    tenant = _tenant(svc, req)
    group = next((g for g in tenant.groups if g["id"] == m["key"].lower()), None)
    if group is None:
        raise GraphApiError(
            404,
            "Request_ResourceNotFound",
            f"Resource '{m['key']}' does not exist or one of its queried reference-property "
            "objects are not present.",
        )
    opts = odata.parse_options(GROUP_SCHEMA, req.query, eventual=req.eventual, collection=False)
    body = {"@odata.context": _context(req, m["version"], "groups/$entity")}
    body.update(_shape(group, opts.select))
    return graph_json(req, 200, body)


# ------------------------------------------------------------------- applications

APP_SCHEMA = odata.EntitySchema(
    type_name="application",
    set_name="applications",
    properties=(
        "id",
        "appId",
        "createdDateTime",
        "displayName",
        "publisherDomain",
        "signInAudience",
        "keyCredentials",
        "passwordCredentials",
        "requiredResourceAccess",
    ),
    filterable={"id": "string", "appId": "string", "displayName": "string"},
    searchable={"displayName": "tokens"},
    orderable_advanced=("displayName",),  # aad-advanced-queries.md: sorting applications
    resource_label="Application",
)
_PATCHABLE = {
    "displayName",
    "keyCredentials",
    "description",
    "notes",
    "tags",
    "isFallbackPublicClient",
}


def _caller(svc: Services, req: Request) -> AppState | None:
    return svc.backend.find_app(str(req.claims.get("appid", "")))


def _may_access_app(svc: Services, req: Request, app: AppState, granted: frozenset[str]) -> bool:
    """The caller holds a role in ``granted`` (APPS_READ or APPS_WRITE), or OwnedBy on ``app``."""
    if applications.is_delegated(req.claims):
        return applications.delegated_may_access_apps(
            svc, req, write=granted is APPS_WRITE, app=app
        )
    roles = _roles(req)
    if roles & granted:
        return True
    caller = _caller(svc, req)
    # OwnedBy: we treat an app as owning itself (its own registration), the case that
    # matters for certificate rotation.
    return OWNED_BY in roles and caller is not None and caller.client_id == app.client_id


def _find_application(svc: Services, req: Request, m: re.Match[str]) -> AppState:
    tenant = _tenant(svc, req)
    ident = m["ident"]
    app: AppState | None
    if m["by"] == "appId":
        found = svc.backend.find_app(ident)
        app = found if found is not None and found.tenant_id == tenant.id else None
    else:
        app = svc.backend.app_by_object_id(tenant.id, ident)
    if app is None:
        raise GraphApiError(
            404,
            "Request_ResourceNotFound",
            f"Resource '{ident}' does not exist or one of its queried reference-property "
            "objects are not present.",
        )
    return app


def _app_view(svc: Services, app: AppState, select: list[str] | None) -> dict[str, Any]:
    full = svc.backend.application_resource(
        app, with_keys=select is not None and "keyCredentials" in select
    )
    return _shape(full, select)


def h_applications(svc: Services, req: Request, m: re.Match[str]) -> Response:
    tenant = _tenant(svc, req)
    visible = [a for a in svc.backend.apps_in(tenant.id) if _may_access_app(svc, req, a, APPS_READ)]
    if not visible and not (_roles(req) & APPS_READ):
        raise _denied()
    items = [svc.backend.application_resource(a, with_keys=False) for a in visible]
    by_id = {a.object_id: a for a in visible}
    coll = odata.ListCollection(APP_SCHEMA, items)
    return _list(
        svc,
        req,
        m["version"],
        coll,
        f"{tenant.id}:applications",
        transform=lambda item, select: _app_view(svc, by_id[item["id"]], select),
    )


def h_application(svc: Services, req: Request, m: re.Match[str]) -> Response:
    app = _find_application(svc, req, m)
    if not _may_access_app(svc, req, app, APPS_READ):
        raise _denied()
    opts = odata.parse_options(APP_SCHEMA, req.query, eventual=req.eventual, collection=False)
    body = {"@odata.context": _context(req, m["version"], "applications/$entity")}
    body.update(_app_view(svc, app, opts.select))
    return graph_json(req, 200, body)


def h_application_patch(svc: Services, req: Request, m: re.Match[str]) -> Response:
    app = _find_application(svc, req, m)
    if not _may_access_app(svc, req, app, APPS_WRITE):
        raise _denied()
    data = _json_body(req)
    if not isinstance(data, dict):
        raise GraphApiError(400, "BadRequest", "The request body must be a JSON object.")
    for name in data:
        if name not in _PATCHABLE:
            raise GraphApiError(
                400, "Request_BadRequest", f"Property '{name}' is read-only or does not exist."
            )
    with svc.backend.lock:
        if "keyCredentials" in data:
            svc.backend.set_key_credentials(app, data["keyCredentials"])
        if "displayName" in data:
            if not isinstance(data["displayName"], str) or not data["displayName"].strip():
                raise GraphApiError(400, "BadRequest", "displayName must be a non-empty string.")
            app.display_name = data["displayName"]
        if "isFallbackPublicClient" in data:
            if not isinstance(data["isFallbackPublicClient"], bool):
                raise GraphApiError(400, "BadRequest", "isFallbackPublicClient must be a boolean.")
            app.public_client = data["isFallbackPublicClient"]
    return Response(204, b"", _graph_headers(req))


def _may_roll_keys(svc: Services, req: Request, app: AppState) -> bool:
    # No permission is needed for an app to roll its own keys; others need write access.
    caller = _caller(svc, req)
    return (caller is not None and caller.client_id == app.client_id) or _may_access_app(
        svc, req, app, APPS_WRITE
    )


def h_add_key(svc: Services, req: Request, m: re.Match[str]) -> Response:
    app = _find_application(svc, req, m)
    if not _may_roll_keys(svc, req, app):
        raise _denied()
    data = _json_body(req)
    if not isinstance(data, dict):
        raise GraphApiError(400, "BadRequest", "The request body must be a JSON object.")
    if data.get("passwordCredential"):
        raise GraphApiError(400, "BadRequest", "The emulator supports certificates only.")
    svc.tokens.verify_proof(app, data.get("proof"), req.note)
    kc = svc.backend.add_key(app, data.get("keyCredential"))
    body = {"@odata.context": _context(req, m["version"], "microsoft.graph.keyCredential")}
    body.update(kc.to_graph(with_key=False))
    return graph_json(req, 200, body)


def h_remove_key(svc: Services, req: Request, m: re.Match[str]) -> Response:
    app = _find_application(svc, req, m)
    if not _may_roll_keys(svc, req, app):
        raise _denied()
    data = _json_body(req)
    if not isinstance(data, dict) or not data.get("keyId"):
        raise GraphApiError(400, "BadRequest", "'keyId' is required.")
    svc.tokens.verify_proof(app, data.get("proof"), req.note)
    svc.backend.remove_key(app, str(data["keyId"]))
    return Response(204, b"", _graph_headers(req))


# ------------------------------------------------------------------------- $batch


def h_batch(svc: Services, req: Request, m: re.Match[str]) -> Response:
    version = m["version"]
    data = _json_body(req)
    items = data.get("requests") if isinstance(data, dict) else None
    if not isinstance(items, list) or not items:
        raise GraphApiError(400, "BadRequest", "Invalid batch payload format.")
    if len(items) > MAX_BATCH:
        raise GraphApiError(
            400,
            "BadRequest",
            f"Number of included requests in the batch exceeds the limit of {MAX_BATCH}.",
        )
    by_id: dict[str, dict[str, Any]] = {}
    for item in items:
        if not isinstance(item, dict) or not item.get("id") or not item.get("method"):
            raise GraphApiError(
                400, "BadRequest", "Each batch request needs an id, a method and a url."
            )
        if not isinstance(item.get("url"), str) or not item["url"]:
            raise GraphApiError(400, "BadRequest", "Each batch request needs a url.")
        key = str(item["id"])
        if key in by_id:
            raise GraphApiError(400, "BadRequest", f"Duplicate request id '{key}' in the batch.")
        by_id[key] = item
    for item in items:
        for dep in item.get("dependsOn") or []:
            if str(dep) not in by_id:
                raise GraphApiError(
                    400,
                    "BadRequest",
                    f"Request '{item['id']}' depends on '{dep}', which is not in the batch.",
                )

    _check_dependency_pattern(items)
    results: dict[str, dict[str, Any]] = {}
    in_progress: set[str] = set()

    def run(key: str) -> dict[str, Any]:
        if key in results:
            return results[key]
        if key in in_progress:
            raise GraphApiError(400, "BadRequest", f"Circular dependsOn involving '{key}'.")
        in_progress.add(key)
        item = by_id[key]
        failed = [str(d) for d in item.get("dependsOn") or [] if run(str(d))["status"] >= 400]
        if failed:
            result = _batch_failed_dependency(key, failed)
        else:
            result = _batch_item(svc, req, version, key, item)
        in_progress.discard(key)
        results[key] = result
        return result

    responses = [run(str(item["id"])) for item in items]
    return graph_json(req, 200, {"responses": responses})


def _check_dependency_pattern(items: list[dict[str, Any]]) -> None:
    """microsoft-graph-docs known issues (JSON batching, "Request dependencies are
    limited"): a request depends on one other at most, and the batch is Parallel (no
    dependsOn), Serial (each request depends on the one before) or Same (every dependsOn
    names the same request). Anything else is refused as a whole (400; the wording is
    UNCONFIRMED)."""
    deps = [[str(d) for d in (item.get("dependsOn") or [])] for item in items]
    ids = [str(item["id"]) for item in items]
    if any(len(d) > 1 for d in deps):
        raise GraphApiError(
            400, "BadRequest", "A batch request can depend on one other request only."
        )
    if not any(deps):
        return  # parallel
    serial = not deps[0] and all(d == [ids[i]] for i, d in enumerate(deps[1:]))
    named = {d[0] for d in deps if d}
    same = len(named) == 1 and not deps[ids.index(next(iter(named)))]
    if not (serial or same):
        raise GraphApiError(
            400,
            "BadRequest",
            "Batch requests must be all parallel (no dependsOn), all sequential (each "
            "depends on the one before), or all depend on the same request.",
        )


def _batch_failed_dependency(key: str, failed: list[str]) -> dict[str, Any]:
    return {
        "id": key,
        "status": 424,
        "headers": {"Content-Type": JSON_TYPE},
        "body": {
            "error": {
                "code": "FailedDependency",
                "message": f"Request failed because it depends on failed request(s) "
                f"{', '.join(failed)}.",
            }
        },
    }


def _batch_item(
    svc: Services, outer: Request, version: str, key: str, item: dict[str, Any]
) -> dict[str, Any]:
    url = str(item["url"])
    if "://" in url:
        # Graph resolves the URL against /{version}/ and finds no such segment: a per-item
        # 400 in Graph's error shape, with innerError and a Content-Type (the batch is 200).
        # The wording is UNCONFIRMED (msgraph-sdk-python#1015 quotes "Resource not found
        # for the segment ..."); the segment named is the URL's first, 'https:'.
        sub = Request("GET", f"/{version}/", Headers(), base=outer.base, in_batch=True)
        sub.headers.update({k.lower(): str(v) for k, v in (item.get("headers") or {}).items()})
        first = url.split("/", 1)[0]
        err = GraphApiError(400, "BadRequest", f"Resource not found for the segment '{first}'.")
        return _batch_result(key, graph_error_response(svc, sub, err))
    delay, fault = svc.faults.select("batch")
    if delay > 0:
        time.sleep(delay)
    if fault is not None and fault.status is not None:
        message = "Too many requests (emulated)." if fault.status == 429 else "Unavailable."
        return {
            "id": key,
            "status": fault.status,
            "headers": {"Content-Type": JSON_TYPE, **retry_after_header(fault)},
            "body": {
                "error": {
                    "code": "TooManyRequests" if fault.status == 429 else "serviceNotAvailable",
                    "message": message,
                }
            },
        }
    headers = Headers((str(k), str(v)) for k, v in (item.get("headers") or {}).items())
    auth = outer.headers.get("authorization")
    if auth:
        headers["authorization"] = auth
    body = item.get("body")
    raw = json.dumps(body).encode() if body is not None and not isinstance(body, str) else b""
    if isinstance(body, str):
        raw = body.encode()
    sub = Request(
        method=str(item["method"]).upper(),
        target=f"/{version}/{url.lstrip('/')}",
        headers=headers,
        body=raw,
        base=outer.base,
        in_batch=True,
    )
    # Items run with the outer request's token, verified a moment ago for the $batch
    # itself: its claims are reused rather than checked again per item (the same answer,
    # without an RSA verification per item, so a $batch load test meets the budget).
    sub.note["outer_claims"] = outer.claims
    return _batch_result(key, dispatch(svc, sub))


def _batch_result(key: str, resp: Response) -> dict[str, Any]:
    """One item of a $batch answer from the answer its request got on its own."""
    content_type = resp.headers.get("Content-Type", "")
    parsed: Any = None
    body = resp.content()
    if body:
        parsed = json.loads(body) if "json" in content_type else body.decode("utf-8", "replace")
    out_headers = {
        k: v
        for k, v in resp.headers.items()
        if k in ("Content-Type", "Retry-After", "Location", "OData-Version")
        or k.startswith("x-ms-resource-unit")
        or k.startswith("x-ms-throttle")
    }
    result: dict[str, Any] = {"id": key, "status": resp.status, "headers": out_headers}
    if parsed is not None:
        result["body"] = parsed
    return result


# -------------------------------------------------------------------------- admin


def _admin_json(req: Request) -> dict[str, Any]:
    if not req.body.strip():
        return {}
    try:
        data = json.loads(req.body)
    except (ValueError, UnicodeDecodeError):
        raise ValueError("the body is not JSON") from None
    if not isinstance(data, dict):
        raise ValueError("the body must be a JSON object")
    return data


def _tenant_dict(t: TenantState) -> dict[str, Any]:
    return {"id": t.id, "domain": t.domain, "display_name": t.display_name, "users": len(t.users)}


def _app_dict(a: AppState) -> dict[str, Any]:
    return {
        "client_id": a.client_id,
        "object_id": a.object_id,
        "tenant_id": a.tenant_id,
        "display_name": a.display_name,
        "service_principal_id": a.sp_id,
        "has_service_principal": a.has_sp,
        "roles": sorted(a.roles),
        "resource_roles": {k: sorted(v) for k, v in sorted(a.resource_roles.items())},
        "certificates": [k.to_graph(with_key=False) for k in a.keys],
    }


def a_info(svc: Services, req: Request, m: re.Match[str]) -> Response:
    """The connection details, and the index of every admin endpoint."""
    info = svc.info()
    info["endpoints"] = [
        {
            "method": r.method,
            "path": _readable(r.pattern.pattern),
            "description": ADMIN_DOCS[r.handler],
        }
        for r in ROUTES
        if r.kind == "admin"
    ]
    return json_response(200, info)


def a_requests(svc: Services, req: Request, m: re.Match[str]) -> Response:
    return json_response(200, {"requests": svc.log.entries()})


def a_clear_requests(svc: Services, req: Request, m: re.Match[str]) -> Response:
    svc.log.clear()
    return Response(204)


def a_reset(svc: Services, req: Request, m: re.Match[str]) -> Response:
    svc.reset()
    return json_response(200, svc.info())


def a_tenants(svc: Services, req: Request, m: re.Match[str]) -> Response:
    with svc.backend.lock:
        tenants = [_tenant_dict(t) for t in svc.backend.tenants.values()]
    return json_response(200, {"tenants": tenants})


def a_create_tenant(svc: Services, req: Request, m: re.Match[str]) -> Response:
    data = _admin_json(req)
    t = svc.backend.create_tenant(
        str(data.get("domain", "")),
        display_name=data.get("display_name"),
        users=int(data.get("users", 0)),
    )
    return json_response(201, _tenant_dict(t))


def a_apps(svc: Services, req: Request, m: re.Match[str]) -> Response:
    with svc.backend.lock:
        apps = [_app_dict(a) for a in svc.backend.apps.values()]
    return json_response(200, {"apps": apps})


def a_app(svc: Services, req: Request, m: re.Match[str]) -> Response:
    with svc.backend.lock:
        return json_response(200, _app_dict(svc.backend.app(m["client"])))


def a_create_app(svc: Services, req: Request, m: re.Match[str]) -> Response:
    data = _admin_json(req)
    tenant = data.get("tenant") or svc.backend.default_tenant_id
    roles = data.get("roles", [])
    if not isinstance(roles, list):
        raise ValueError("roles must be a list of permission names")
    app = svc.backend.create_app(str(tenant), str(data.get("display_name") or "app"), roles)
    return json_response(201, _app_dict(app))


def a_upload(svc: Services, req: Request, m: re.Match[str]) -> Response:
    content_type = str(req.headers.get("content-type", ""))
    if "json" in content_type:
        data = _admin_json(req)
        cert: Any = data.get("certificate") or data.get("key")
        if not cert:
            raise ValueError('give {"certificate": "<PEM or base64 DER>"}')
    else:
        cert = req.body
    kc = svc.backend.upload_certificate(m["client"], cert)
    return json_response(201, kc.to_graph(with_key=True))


def a_certificates(svc: Services, req: Request, m: re.Match[str]) -> Response:
    with svc.backend.lock:
        keys = [k.to_graph(with_key=False) for k in svc.backend.app(m["client"]).keys]
    return json_response(200, {"certificates": keys})


def a_remove_certificate(svc: Services, req: Request, m: re.Match[str]) -> Response:
    svc.backend.remove_certificate(m["client"], m["key"])
    return Response(204)


def a_grants(svc: Services, req: Request, m: re.Match[str]) -> Response:
    client = m.groupdict().get("client") if isinstance(m, re.Match) else None
    return json_response(200, {"grants": svc.backend.grants(client)})


def a_grant(svc: Services, req: Request, m: re.Match[str]) -> Response:
    data = _admin_json(req)
    roles = data.get("roles") or ([data["role"]] if data.get("role") else [])
    if not roles:
        raise ValueError('give {"role": "User.Read.All"} or {"roles": [...]}')
    resource = data.get("resource")
    for role in roles:
        svc.backend.grant(m["client"], str(role), str(resource) if resource else None)
    with svc.backend.lock:
        return json_response(200, _app_dict(svc.backend.app(m["client"])))


def a_revoke(svc: Services, req: Request, m: re.Match[str]) -> Response:
    with svc.backend.lock:
        if m["role"] not in svc.backend.app(m["client"]).roles:
            raise KeyError(f"{m['role']} is not granted to application {m['client']}")
    svc.backend.revoke(m["client"], m["role"])
    with svc.backend.lock:
        return json_response(200, _app_dict(svc.backend.app(m["client"])))


def a_resources(svc: Services, req: Request, m: re.Match[str]) -> Response:
    tenant = svc.backend.tenant(str(req.query.get("tenant") or svc.backend.default_tenant_id))
    with svc.backend.lock:
        return json_response(200, {"resources": [r.to_dict() for r in tenant.resources.values()]})


def a_add_resource(svc: Services, req: Request, m: re.Match[str]) -> Response:
    data = _admin_json(req)
    if not data.get("resource"):
        raise ValueError('give {"resource": "sharepoint" | "exchange" | "https://..."}')
    roles = data.get("roles")
    if roles is not None and not isinstance(roles, list):
        raise ValueError("roles must be a list of permission names")
    res = svc.backend.add_resource(
        str(data.get("tenant") or svc.backend.default_tenant_id),
        str(data["resource"]),
        app_id=str(data["app_id"]) if data.get("app_id") else None,
        display_name=str(data["display_name"]) if data.get("display_name") else None,
        roles=[str(r) for r in roles] if roles is not None else None,
    )
    return json_response(201, res.to_dict())


def a_faults(svc: Services, req: Request, m: re.Match[str]) -> Response:
    return json_response(200, {"faults": svc.faults.list()})


def a_add_fault(svc: Services, req: Request, m: re.Match[str]) -> Response:
    data = _admin_json(req)
    allowed = {
        "kind",
        "endpoint",
        "every",
        "probability",
        "seed",
        "times",
        "retry_after",
        "delay",
    }
    unknown = set(data) - allowed
    if unknown:
        raise ValueError(f"unknown fault field(s): {', '.join(sorted(unknown))}")
    if "kind" not in data:
        raise ValueError("give the fault's kind")
    kind = str(data.pop("kind"))
    fault = svc.faults.add(kind, **data)
    return json_response(201, fault.to_dict())


def a_clear_faults(svc: Services, req: Request, m: re.Match[str]) -> Response:
    svc.faults.clear()
    return Response(204)


def a_remove_fault(svc: Services, req: Request, m: re.Match[str]) -> Response:
    if not svc.faults.remove(int(m["id"])):
        raise KeyError(f"no fault {m['id']}")
    return Response(204)


def a_settings(svc: Services, req: Request, m: re.Match[str]) -> Response:
    b = svc.backend
    if req.method != "GET":
        data = _admin_json(req)
        unknown = set(data) - {"propagation_delay", "token_lifetime"} - set(b.delegated_settings())
        if unknown:
            raise ValueError(f"unknown setting(s): {', '.join(sorted(unknown))}")
        with b.lock:
            if "propagation_delay" in data:
                value = float(data["propagation_delay"])
                if value < 0:
                    raise ValueError("propagation_delay cannot be negative")
                b.propagation_delay = value
            if "token_lifetime" in data:
                lifetime = int(data["token_lifetime"])
                if lifetime < 1:
                    raise ValueError("token_lifetime must be positive")
                b.token_lifetime = lifetime
            signin.apply_settings(b, data)
    return json_response(
        200,
        {
            "propagation_delay": b.propagation_delay,
            "token_lifetime": b.token_lifetime,
            **b.delegated_settings(),
        },
    )


def a_advance(svc: Services, req: Request, m: re.Match[str]) -> Response:
    data = _admin_json(req)
    seconds = float(data.get("seconds", 0))
    now = svc.backend.clock.advance(seconds)
    return json_response(200, {"now": now, "offset": svc.backend.clock.offset})


def a_stats(svc: Services, req: Request, m: re.Match[str]) -> Response:
    import resource
    import sys

    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    # ru_maxrss is kilobytes on Linux, bytes on macOS.
    peak = rss if sys.platform == "darwin" else rss * 1024
    return json_response(200, {"peak_rss_bytes": peak, "requests_total": svc.log.total})


# ------------------------------------------------------------------------- routing

_T = r"(?P<tenant>[^/]+)"
_V = r"/(?P<version>v1\.0|beta)"
_APP = r"/applications(?:/(?P<oid>[^/()]+)|\((?P<by>appId)='(?P<aid>[^']+)'\))"


def _r(
    method: str, pattern: str, handler: Handler, kind: str, roles: frozenset[str] | None = None
) -> Route:
    return Route(method, re.compile(f"^{pattern}$", re.IGNORECASE), handler, kind, roles)


ROUTES: list[Route] = [
    _r(
        "GET",
        f"/{_T}/v2\\.0/\\.well-known/openid-configuration",
        h_openid_configuration,
        "discovery",
    ),
    _r("GET", f"/{_T}/\\.well-known/openid-configuration", h_openid_configuration, "discovery"),
    _r("GET", f"/{_T}/discovery/v2\\.0/keys", h_jwks, "discovery"),
    _r("GET", f"/{_T}/discovery/keys", h_jwks, "discovery"),
    _r("POST", f"/{_T}/oauth2/v2\\.0/token", h_token, "token"),
    _r("POST", f"/{_T}/oauth2/v2\\.0/devicecode", signin.h_devicecode, "token"),
    _r("GET", f"{_V}/users", h_users, "graph", USERS_READ),
    _r("GET", f"{_V}/users/\\$count", h_users_count, "graph", USERS_READ),
    _r("GET", f"{_V}/users/(?P<key>[^/]+)", h_user, "graph", USERS_READ),
    _r("GET", f"{_V}/users/(?P<key>[^/]+)/manager", h_user_manager, "graph", USERS_READ),
    # UNCONFIRMED: Graph may want GroupMember.Read.All too; lenient: a user read suffices.
    _r("GET", f"{_V}/users/(?P<key>[^/]+)/memberOf", h_user_member_of, "graph", USERS_READ),
    _r("GET", f"{_V}/me(?:/.*)?", h_me, "graph"),
    _r("GET", f"{_V}/organization", h_organization, "graph", ORG_READ),
    _r("GET", f"{_V}/groups", h_groups, "graph", GROUPS_READ),
    _r("GET", f"{_V}/groups/(?P<key>[^/]+)", h_group, "graph", GROUPS_READ),
    _r("GET", f"{_V}/applications", h_applications, "graph"),
    _r("GET", f"{_V}{_APP}", h_application, "graph"),
    _r("PATCH", f"{_V}{_APP}", h_application_patch, "graph"),
    _r("POST", f"{_V}{_APP}/addKey", h_add_key, "graph"),
    _r("POST", f"{_V}{_APP}/removeKey", h_remove_key, "graph"),
    _r("POST", f"{_V}/applications", applications.h_create_application, "graph"),
    _r("GET", f"{_V}/servicePrincipals", applications.h_service_principals, "graph"),
    _r("POST", f"{_V}/servicePrincipals", applications.h_create_service_principal, "graph"),
    _r("GET", f"{_V}/servicePrincipals/(?P<key>[^/]+)", applications.h_service_principal, "graph"),
    _r(
        "POST",
        f"{_V}/servicePrincipals/(?P<key>[^/]+)/appRoleAssignedTo",
        applications.h_app_role_assigned_to,
        "graph",
    ),
    _r(
        "GET",
        f"{_V}/servicePrincipals/(?P<key>[^/]+)/appRoleAssignments",
        applications.h_app_role_assignments,
        "graph",
    ),
    _r("POST", f"{_V}/\\$batch", h_batch, "graph"),
    _r("GET", "/_emulator/?", a_info, "admin"),
    _r("GET", "/_emulator/requests", a_requests, "admin"),
    _r("DELETE", "/_emulator/requests", a_clear_requests, "admin"),
    _r("POST", "/_emulator/reset", a_reset, "admin"),
    _r("GET", "/_emulator/tenants", a_tenants, "admin"),
    _r("POST", "/_emulator/tenants", a_create_tenant, "admin"),
    _r("GET", "/_emulator/apps", a_apps, "admin"),
    _r("POST", "/_emulator/apps", a_create_app, "admin"),
    _r("GET", "/_emulator/apps/(?P<client>[^/]+)", a_app, "admin"),
    _r("GET", "/_emulator/apps/(?P<client>[^/]+)/certificates", a_certificates, "admin"),
    _r("POST", "/_emulator/apps/(?P<client>[^/]+)/certificates", a_upload, "admin"),
    _r(
        "DELETE",
        "/_emulator/apps/(?P<client>[^/]+)/certificates/(?P<key>[^/]+)",
        a_remove_certificate,
        "admin",
    ),
    _r("GET", "/_emulator/grants", a_grants, "admin"),
    _r("GET", "/_emulator/apps/(?P<client>[^/]+)/grants", a_grants, "admin"),
    _r("POST", "/_emulator/apps/(?P<client>[^/]+)/grants", a_grant, "admin"),
    _r("DELETE", "/_emulator/apps/(?P<client>[^/]+)/grants/(?P<role>[^/]+)", a_revoke, "admin"),
    _r("GET", "/_emulator/resources", a_resources, "admin"),
    _r("POST", "/_emulator/resources", a_add_resource, "admin"),
    _r("GET", "/_emulator/faults", a_faults, "admin"),
    _r("POST", "/_emulator/faults", a_add_fault, "admin"),
    _r("DELETE", "/_emulator/faults", a_clear_faults, "admin"),
    _r("DELETE", "/_emulator/faults/(?P<id>\\d+)", a_remove_fault, "admin"),
    _r("GET", "/_emulator/settings", a_settings, "admin"),
    _r("POST", "/_emulator/settings", a_settings, "admin"),
    _r("PATCH", "/_emulator/settings", a_settings, "admin"),
    _r("POST", "/_emulator/clock/advance", a_advance, "admin"),
    _r("GET", "/_emulator/stats", a_stats, "admin"),
    _r("POST", "/_emulator/apps/(?P<client>[^/]+)/passwords", applications.a_add_password, "admin"),
    _r("GET", "/_emulator/accounts", signin.a_accounts, "admin"),
    _r("POST", "/_emulator/accounts", signin.a_create_account, "admin"),
    _r("GET", "/_emulator/device-codes", signin.a_device_codes, "admin"),
    _r("POST", "/_emulator/device-codes/(?P<code>[^/]+)/approve", signin.a_approve, "admin"),
    _r("POST", "/_emulator/device-codes/(?P<code>[^/]+)/decline", signin.a_decline, "admin"),
    _r("POST", "/_emulator/device-codes/(?P<code>[^/]+)/slow-down", signin.a_slow_down, "admin"),
]


# The admin API's index (GET /_emulator/ and the README list the same endpoints).
ADMIN_DOCS: dict[Handler, str] = {
    a_info: "connection details and this index",
    a_requests: "the request log (method, path, status, kind, fault, ...)",
    a_clear_requests: "clear the request log",
    a_reset: "back to the start state (tenants, apps, faults, log)",
    a_tenants: "list tenants",
    a_create_tenant: 'create a tenant {"domain", "users"}',
    a_apps: "list applications",
    a_create_app: 'register an application {"tenant", "display_name", "roles"}',
    a_app: "one application",
    a_certificates: "an application's certificates (keyCredentials, no key bytes)",
    a_upload: "upload a certificate (PEM/DER body, or JSON {certificate})",
    a_remove_certificate: "remove a certificate, by keyId or SHA-1 thumbprint (hex or x5t)",
    a_grants: "granted application permissions (all, or one application's)",
    a_grant: 'grant application permissions {"role"} or {"roles": [...]}, on Graph or on '
    'a {"resource"}',
    a_resources: "a tenant's resources besides Graph (?tenant=)",
    a_add_resource: 'add one {"resource": "sharepoint"|"exchange"|URI, "roles", "tenant"}',
    a_revoke: "revoke a permission (404 if it was not granted)",
    a_faults: "list faults",
    a_add_fault: 'add a fault {"kind", "endpoint", "every"|"probability", "times", "retry_after"}',
    a_clear_faults: "remove every fault",
    a_remove_fault: "remove one fault",
    a_settings: "read (GET) or change (POST/PATCH) propagation_delay, token_lifetime, "
    "service_principal_delay, device_code_interval, device_code_expires_in, "
    "users_can_register_apps",
    a_advance: 'move the clock {"seconds"}',
    a_stats: "peak memory and request count",
    applications.a_add_password: 'add a passwordCredential (metadata only) {"display_name"}',
    signin.a_accounts: "signed-in users (who can approve a device code) and their directory roles",
    signin.a_create_account: 'add one {"user_principal_name", "display_name", "roles", "tenant"}',
    signin.a_device_codes: "device code requests (user code, client, scopes, state, polls)",
    signin.a_approve: 'a signed-in user approves a user code {"user": upn or id}',
    signin.a_decline: "the user declines (the next poll gets authorization_declined)",
    signin.a_slow_down: 'the next poll(s) get slow_down {"times": 1}',
}


def _register_changes() -> None:
    # Writes, /users/delta, the throttling budget (their own module: change_routes.py).
    from graphkit.emulator import change_routes

    change_routes.register(ROUTES, ADMIN_DOCS)


_register_changes()


def _readable(pattern: str) -> str:
    """``/_emulator/apps/{client}/grants`` from a route's regular expression."""
    text = pattern.strip("^$").replace("/?", "/").replace("\\", "")
    return re.sub(r"\(\?P<(\w+)>[^)]*\)", r"{\1}", text)


def classify(path: str) -> str:
    """The endpoint kind of a path, for faults and the log (even when no route matches)."""
    if path.startswith("/_emulator"):
        return "admin"
    if re.match(r"^/(v1\.0|beta)(/|$)", path, re.IGNORECASE):
        return "graph"
    if re.search(r"/oauth2/", path):
        return "token"
    return "discovery"


def _application_match(m: re.Match[str]) -> dict[str, str]:
    if m.groupdict().get("by"):
        return {"by": "appId", "ident": m["aid"]}
    return {"by": "objectId", "ident": m["oid"]}


class _Match:
    """A regex match with extra named values (the ``applications`` addressing forms)."""

    def __init__(self, m: re.Match[str], extra: dict[str, str]):
        self._m = m
        self._extra = extra

    def __getitem__(self, key: str) -> str:
        if key in self._extra:
            return self._extra[key]
        return str(self._m[key])


def dispatch(svc: Services, req: Request) -> Response:
    """Route ``req`` and run its handler; every error becomes the service's error shape."""
    kind = classify(req.path)
    path_matched = False
    for route in ROUTES:
        m = route.pattern.match(req.path)
        if not m:
            continue
        path_matched = True
        if route.method != req.method:
            continue
        match: Any = m
        if route.handler in (h_application, h_application_patch, h_add_key, h_remove_key):
            match = _Match(m, _application_match(m))
        return _run(svc, req, route, match)
    if kind == "graph":
        err = (
            GraphApiError(405, "Request_BadRequest", "HTTP method not allowed for the request uri.")
            if path_matched
            else GraphApiError(
                400,
                "BadRequest",
                f"Resource not found for the segment '{_segment(req.path)}'.",
            )
        )
        return graph_error_response(svc, req, err)
    if kind == "admin":
        status = 405 if path_matched else 404
        return json_response(status, {"error": "no such admin endpoint or method"})
    return json_response(
        405 if path_matched else 404,
        {"error": "not_found", "error_description": f"No endpoint {req.method} {req.path}."},
    )


def _segment(path: str) -> str:
    parts = [p for p in path.split("/") if p]
    return parts[1] if len(parts) > 1 else (parts[0] if parts else "")


def _run(svc: Services, req: Request, route: Route, m: Any) -> Response:
    try:
        if route.kind == "graph":
            if route.handler is h_batch and req.in_batch:
                raise GraphApiError(400, "BadRequest", "Nested $batch requests are not allowed.")
            outer = req.note.pop("outer_claims", None) if req.in_batch else None
            req.claims = outer or svc.tokens.verify_bearer(req.headers.get("authorization"))
            req.note["client_id"] = req.claims.get("appid")
            if route.roles is not None and not (_roles(req) & route.roles):
                raise _denied()
            if svc.throttle is not None and svc.throttle.enabled and route.handler is not h_batch:
                from graphkit.emulator.change_routes import charge

                return charge(svc, req, route.handler, m)
        return route.handler(svc, req, m)
    except EntraError as err:
        return entra_error_response(svc, req, err)
    except GraphApiError as err:
        if route.kind in ("token", "discovery"):
            raise
        return graph_error_response(svc, req, err)
    except (ValueError, KeyError, TypeError) as err:
        if route.kind != "admin":
            raise
        status = 404 if isinstance(err, KeyError) else 400
        message = err.args[0] if err.args else str(err)
        return json_response(status, {"error": str(message)})
