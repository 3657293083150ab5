"""Graph's application provisioning: create apps and service principals, grant app roles.

Handlers for ``POST /applications``, ``POST|GET /servicePrincipals``,
``GET /servicePrincipals/{id}`` and ``POST /servicePrincipals/{id}/appRoleAssignedTo``,
Microsoft Graph's own service principal (appId 00000003-...) with the real ids of its
permissions, and the permission rule of each call for app-only and delegated tokens.
routes.py registers the handlers; state stays in backend.py.

Sources (docs/FIDELITY.md, "Provisioning"): microsoft-graph-docs
``application-post-applications.md``, ``serviceprincipal-post-serviceprincipals.md``,
``serviceprincipal-post-approleassignedto.md``, ``permissions-reference.md``;
PROTOCOL.md §8 for the propagation delay.
"""

from __future__ import annotations

import re
from typing import Any

from graphkit.emulator import odata
from graphkit.emulator.backend import GRAPH_APP_ID, GRAPH_ROLES, AppState, iso
from graphkit.emulator.device_code import Account
from graphkit.emulator.errors import GraphApiError

__all__ = [
    "APP_ADMIN_ROLES",
    "DELEGATED_SCOPES",
    "GRANT_ROLES",
    "delegated_may_access_apps",
    "is_delegated",
    "token_permissions",
]

# Microsoft Graph's delegated permissions (oauth2PermissionScopes) and their ids, from
# the permissions reference.
DELEGATED_SCOPES: dict[str, str] = {
    "User.Read": "e1fe6dd8-ba31-4d61-89e7-88639da4683d",
    "User.Read.All": "a154be20-db9c-4678-8ab7-66f6cc099a59",
    "Directory.Read.All": "06da0dbc-49e2-44d2-8312-53f166ab848a",
    "Directory.AccessAsUser.All": "0e263e50-5827-48a4-b97c-d940288653c7",
    "Group.Read.All": "5f8c59db-677d-491f-a6b8-5f174b11ec1d",
    "Application.Read.All": "c79f8feb-a9db-4090-85f9-90d820caa0eb",
    "Application.ReadWrite.All": "bdfbf15f-ee85-4955-8675-146e8e5296b5",
    "AppRoleAssignment.ReadWrite.All": "84bccea3-f856-4a8a-967b-dbe0a3d53a64",
    "DelegatedPermissionGrant.ReadWrite.All": "41ce6ca6-6826-4807-84f1-1c82854f7ee5",
}

# Who may do what (PROTOCOL.md §8; the "Permissions" section of each doc page).
APP_ADMIN_ROLES = frozenset(
    {"Global Administrator", "Application Administrator", "Cloud Application Administrator"}
)
GRANT_ROLES = frozenset({"Global Administrator", "Privileged Role Administrator"})
_APPS_READ_APP = frozenset(
    {
        "Application.Read.All",
        "Application.ReadWrite.All",
        "Directory.Read.All",
        "Directory.ReadWrite.All",
    }
)
_APPS_READ_SCOPES = _APPS_READ_APP | {"Directory.AccessAsUser.All"}
_APPS_WRITE_APP = frozenset({"Application.ReadWrite.All"})
_APPS_WRITE_SCOPES = frozenset({"Application.ReadWrite.All", "Directory.AccessAsUser.All"})
_GRANT_APP = frozenset({"AppRoleAssignment.ReadWrite.All"})
_GRANT_SCOPES = frozenset({"AppRoleAssignment.ReadWrite.All", "Directory.AccessAsUser.All"})

GRAPH_DISPLAY_NAME = "Microsoft Graph"

SP_SCHEMA = odata.EntitySchema(
    type_name="servicePrincipal",
    set_name="servicePrincipals",
    properties=(
        "id",
        "accountEnabled",
        "appDisplayName",
        "appId",
        "appOwnerOrganizationId",
        "appRoles",
        "displayName",
        "oauth2PermissionScopes",
        "servicePrincipalNames",
        "servicePrincipalType",
    ),
    filterable={
        "id": "string",
        "appId": "string",
        "displayName": "string",
        "servicePrincipalType": "string",
    },
    searchable={"displayName": "tokens"},
    resource_label="ServicePrincipal",
)
_CREATE_FIELDS = {
    "displayName",
    "isFallbackPublicClient",
    "keyCredentials",
    "requiredResourceAccess",
    "signInAudience",
    "description",
    "notes",
    "tags",
}


# ------------------------------------------------------------------- permissions


def is_delegated(claims: dict[str, Any]) -> bool:
    """A token for a signed-in user (``scp``), not an app-only one (``roles``)."""
    return isinstance(claims.get("scp"), str)


def token_permissions(claims: dict[str, Any]) -> set[str]:
    """The permissions a token carries: its app roles, or its delegated scopes."""
    if is_delegated(claims):
        return set(str(claims["scp"]).split())
    roles = claims.get("roles") or []
    return set(roles) if isinstance(roles, list) else set()


def _denied() -> GraphApiError:
    return GraphApiError(
        403, "Authorization_RequestDenied", "Insufficient privileges to complete the operation."
    )


def _account(svc: Any, claims: dict[str, Any]) -> Account | None:
    with svc.backend.lock:
        return svc.backend.accounts.by_id.get(str(claims.get("oid", "")))


def _require(
    svc: Any,
    req: Any,
    *,
    app_roles: frozenset[str],
    scopes: frozenset[str],
    directory_roles: frozenset[str] | None,
) -> None:
    """403 Authorization_RequestDenied unless the caller may: an app-only token with one
    of ``app_roles``, or a delegated one with one of ``scopes`` for a user holding one of
    ``directory_roles`` (None: any member user)."""
    perms = token_permissions(req.claims)
    if not is_delegated(req.claims):
        if not perms & app_roles:
            raise _denied()
        return
    if not perms & scopes:
        raise _denied()
    if directory_roles is None:
        return
    account = _account(svc, req.claims)
    if account is None or not set(account.roles) & directory_roles:
        raise _denied()


def delegated_may_access_apps(
    svc: Any, req: Any, *, write: bool, app: AppState | None = None
) -> bool:
    """GET (read) or PATCH/addKey/removeKey (write) on an application, delegated: the
    scope, and for a write an admin role or ownership of ``app`` (its creator)."""
    scopes = _APPS_WRITE_SCOPES if write else _APPS_READ_SCOPES
    if not token_permissions(req.claims) & scopes:
        return False
    if not write:
        return True
    account = _account(svc, req.claims)
    if account is None:
        return False
    return bool(set(account.roles) & APP_ADMIN_ROLES) or (
        app is not None and account.id in app.owners
    )


# ---------------------------------------------------------------- resources


def graph_service_principal_id(svc: Any, tenant_id: str) -> str:
    return str(svc.backend.ids.make("graph-service-principal", tenant_id))


def _graph_sp(svc: Any, tenant_id: str) -> dict[str, Any]:
    return {
        "id": graph_service_principal_id(svc, tenant_id),
        "accountEnabled": True,
        "appDisplayName": GRAPH_DISPLAY_NAME,
        "appId": GRAPH_APP_ID,
        "appOwnerOrganizationId": "f8cdef31-a31e-4b4a-93e4-5f571e91255a",
        "appRoles": [
            {
                "allowedMemberTypes": ["Application"],
                "description": f"{name} (application permission)",
                "displayName": name,
                "id": role_id,
                "isEnabled": True,
                "origin": "Application",
                "value": name,
            }
            for name, role_id in GRAPH_ROLES.items()
        ],
        "displayName": GRAPH_DISPLAY_NAME,
        "oauth2PermissionScopes": [
            {
                "adminConsentDescription": f"{name} (delegated permission)",
                "adminConsentDisplayName": name,
                "id": scope_id,
                "isEnabled": True,
                "type": "Admin",
                "value": name,
            }
            for name, scope_id in DELEGATED_SCOPES.items()
        ],
        "servicePrincipalNames": [GRAPH_APP_ID, "https://graph.microsoft.com"],
        "servicePrincipalType": "Application",
    }


def _app_sp(app: AppState, tenant_id: str) -> dict[str, Any]:
    return {
        "id": app.sp_id,
        "accountEnabled": True,
        "appDisplayName": app.display_name,
        "appId": app.client_id,
        "appOwnerOrganizationId": tenant_id,
        "appRoles": [],
        "displayName": app.display_name,
        "oauth2PermissionScopes": [],
        "servicePrincipalNames": [app.client_id],
        "servicePrincipalType": "Application",
    }


def _visible_sps(svc: Any, tenant_id: str) -> list[dict[str, Any]]:
    b = svc.backend
    with b.lock:
        apps = [a for a in b.apps_in(tenant_id) if b.service_principal_visible(a)]
        return [_graph_sp(svc, tenant_id)] + [_app_sp(a, tenant_id) for a in apps]


def _not_present(ident: str, status: int = 404) -> GraphApiError:
    code = "Request_ResourceNotFound" if status == 404 else "Request_BadRequest"
    return GraphApiError(
        status,
        code,
        f"Resource '{ident}' does not exist or one of its queried reference-property "
        "objects are not present.",
    )


# ------------------------------------------------------------------- handlers


def h_create_application(svc: Any, req: Any, m: re.Match[str]) -> Any:
    """``POST /applications`` → 201 with the application (keyCredentials without key)."""
    from graphkit.emulator import routes

    b = svc.backend
    _require(
        svc,
        req,
        app_roles=_APPS_WRITE_APP,
        scopes=_APPS_WRITE_SCOPES,
        directory_roles=None if b.users_can_register_apps else APP_ADMIN_ROLES,
    )
    data = routes._json_body(req)
    if not isinstance(data, dict):
        raise GraphApiError(400, "BadRequest", "The request body must be a JSON object.")
    for name in data:
        if name not in _CREATE_FIELDS:
            raise GraphApiError(
                400,
                "Request_BadRequest",
                f"Property '{name}' is read-only or does not exist.",
            )
    name = data.get("displayName")
    if not isinstance(name, str) or not name.strip():
        raise GraphApiError(
            400, "Request_BadRequest", "Property 'displayName' is required and cannot be empty."
        )
    access = data.get("requiredResourceAccess", [])
    if not isinstance(access, list) or not all(
        isinstance(r, dict) and isinstance(r.get("resourceAccess", []), list) for r in access
    ):
        raise GraphApiError(
            400, "BadRequest", "requiredResourceAccess must be an array of resources."
        )
    tenant = routes._tenant(svc, req)
    with b.lock:
        app = b.create_app(tenant.id, name.strip())
        app.has_sp = False
        app.required_resource_access = access
        app.public_client = data.get("isFallbackPublicClient") is True
        if is_delegated(req.claims):
            app.owners.append(str(req.claims.get("oid")))
        try:
            b.set_key_credentials(app, data.get("keyCredentials", []))
        except GraphApiError:
            b.apps.pop(app.client_id, None)
            raise
        body = {"@odata.context": routes._context(req, m["version"], "applications/$entity")}
        body.update(b.application_resource(app, with_keys=False))
    return routes.graph_json(req, 201, body)


def h_create_service_principal(svc: Any, req: Any, m: re.Match[str]) -> Any:
    """``POST /servicePrincipals {"appId"}`` → 201; found after ``service_principal_delay``."""
    from graphkit.emulator import routes

    b = svc.backend
    data = routes._json_body(req)
    app_id = str(data.get("appId", "")).strip().lower() if isinstance(data, dict) else ""
    tenant = routes._tenant(svc, req)
    with b.lock:
        app = b.find_app(app_id) if app_id else None
        owner = app is not None and str(req.claims.get("oid")) in app.owners
        _require(
            svc,
            req,
            app_roles=_APPS_WRITE_APP,
            scopes=_APPS_WRITE_SCOPES,
            # The app's owner (its creator) may create its service principal; others
            # need an admin role.
            directory_roles=None if owner else APP_ADMIN_ROLES,
        )
        if app_id == GRAPH_APP_ID or (app is not None and app.has_sp):
            raise GraphApiError(
                400,
                "Request_MultipleObjectsWithSameKeyValue",
                "The service principal cannot be created, updated, or restored because the "
                "service principal name "
                f"{app_id} is already in use.",
            )
        if app is None or app.tenant_id != tenant.id:
            raise GraphApiError(
                400,
                "Request_BadRequest",
                f"The appId '{app_id}' of the service principal does not reference a valid "
                "application object.",
            )
        app.has_sp = True
        app.sp_created = b.now()
        body = {"@odata.context": routes._context(req, m["version"], "servicePrincipals/$entity")}
        body.update(_app_sp(app, tenant.id))
    return routes.graph_json(req, 201, body)


def h_service_principals(svc: Any, req: Any, m: re.Match[str]) -> Any:
    """``GET /servicePrincipals`` (``$filter=appId eq '...'``, ``$select``...)."""
    from graphkit.emulator import routes

    _require(svc, req, app_roles=_APPS_READ_APP, scopes=_APPS_READ_SCOPES, directory_roles=None)
    tenant = routes._tenant(svc, req)
    coll = odata.ListCollection(SP_SCHEMA, _visible_sps(svc, tenant.id))
    return routes._list(svc, req, m["version"], coll, f"{tenant.id}:servicePrincipals")


def _find_sp(svc: Any, tenant_id: str, ident: str, status: int = 404) -> dict[str, Any]:
    for sp in _visible_sps(svc, tenant_id):
        if sp["id"] == ident.strip().lower():
            return sp
    raise _not_present(ident, status)


def h_service_principal(svc: Any, req: Any, m: re.Match[str]) -> Any:
    from graphkit.emulator import routes

    _require(svc, req, app_roles=_APPS_READ_APP, scopes=_APPS_READ_SCOPES, directory_roles=None)
    tenant = routes._tenant(svc, req)
    sp = _find_sp(svc, tenant.id, m["key"])
    opts = odata.parse_options(SP_SCHEMA, req.query, eventual=req.eventual, collection=False)
    body = {"@odata.context": routes._context(req, m["version"], "servicePrincipals/$entity")}
    body.update(routes._shape(sp, opts.select))
    return routes.graph_json(req, 200, body)


def h_app_role_assigned_to(svc: Any, req: Any, m: re.Match[str]) -> Any:
    """``POST /servicePrincipals/{resource}/appRoleAssignedTo`` → 201: admin consent for
    one application permission."""
    from graphkit.emulator import routes

    b = svc.backend
    _require(svc, req, app_roles=_GRANT_APP, scopes=_GRANT_SCOPES, directory_roles=GRANT_ROLES)
    tenant = routes._tenant(svc, req)
    resource = _find_sp(svc, tenant.id, m["key"])
    data = routes._json_body(req)
    if not isinstance(data, dict):
        raise GraphApiError(400, "BadRequest", "The request body must be a JSON object.")
    principal_id = str(data.get("principalId", "")).strip().lower()
    resource_id = str(data.get("resourceId", "")).strip().lower()
    role_id = str(data.get("appRoleId", "")).strip().lower()
    if not principal_id or not resource_id or not role_id:
        raise GraphApiError(
            400,
            "Request_BadRequest",
            "Properties 'principalId', 'resourceId' and 'appRoleId' are required.",
        )
    if resource_id != resource["id"]:
        raise GraphApiError(
            400,
            "Request_BadRequest",
            "The resourceId in the request body must be the service principal in the URL.",
        )
    # A principal created moments ago may not be found yet (PROTOCOL.md §8): 400.
    principal = _find_sp(svc, tenant.id, principal_id, status=400)
    role = next((r for r in resource["appRoles"] if r["id"] == role_id), None)
    if role is None:
        raise GraphApiError(
            400,
            "Request_BadRequest",
            f"Permission being assigned was not found on application '{resource['appId']}'.",
        )
    with b.lock:
        app = b.find_app(principal["appId"])
        if app is None:  # Graph's own service principal as the principal
            raise GraphApiError(
                400, "Request_BadRequest", "The principal cannot be assigned this role."
            )
        if role["value"] in app.roles:
            raise GraphApiError(
                400,
                "Request_BadRequest",
                "Permission being assigned already exists on the object",
            )
        b.grant(app.client_id, role["value"])
        assignment_id = b.ids.make("app-role-assignment", app.sp_id, role_id)
    body = {
        "@odata.context": routes._context(
            req, m["version"], f"servicePrincipals('{resource['id']}')/appRoleAssignedTo/$entity"
        ),
        "id": assignment_id,
        "deletedDateTime": None,
        "appRoleId": role_id,
        "createdDateTime": iso(b.now()),
        "principalDisplayName": principal["displayName"],
        "principalId": principal["id"],
        "principalType": "ServicePrincipal",
        "resourceDisplayName": resource["displayName"],
        "resourceId": resource["id"],
    }
    return routes.graph_json(req, 201, body)


def h_app_role_assignments(svc: Any, req: Any, m: re.Match[str]) -> Any:
    """``GET /servicePrincipals/{id}/appRoleAssignments``: the application permissions
    granted to a client service principal (serviceprincipal-list-approleassignments.md;
    Application.Read.All or higher, delegated or app-only)."""
    from graphkit.emulator import routes
    from graphkit.emulator.backend import role_id as graph_role_id

    b = svc.backend
    _require(svc, req, app_roles=_APPS_READ_APP, scopes=_APPS_READ_SCOPES, directory_roles=None)
    tenant = routes._tenant(svc, req)
    principal = _find_sp(svc, tenant.id, m["key"])
    graph_sp_id = graph_service_principal_id(svc, tenant.id)
    with b.lock:
        app = b.find_app(principal["appId"])
        granted = sorted(app.roles) if app is not None else []
        created = iso(app.sp_created) if app is not None else iso(b.now())
        items = [
            {
                "id": b.ids.make("app-role-assignment", principal["id"], graph_role_id(role)),
                "deletedDateTime": None,
                "appRoleId": graph_role_id(role),
                "createdDateTime": created,
                "principalDisplayName": principal["displayName"],
                "principalId": principal["id"],
                "principalType": "ServicePrincipal",
                "resourceDisplayName": GRAPH_DISPLAY_NAME,
                "resourceId": graph_sp_id,
            }
            for role in granted
        ]
    body = {
        "@odata.context": routes._context(
            req, m["version"], f"servicePrincipals('{principal['id']}')/appRoleAssignments"
        ),
        "value": items,
    }
    return routes.graph_json(req, 200, body)


def a_add_password(svc: Any, req: Any, m: re.Match[str]) -> Any:
    """Admin API: give an app a passwordCredential (metadata only, no secret kept)."""
    from graphkit.emulator import routes

    data = routes._admin_json(req)
    cred = svc.backend.add_password_credential(
        m["client"], str(data.get("display_name") or "secret")
    )
    return routes.json_response(201, cred)
