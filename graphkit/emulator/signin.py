"""HTTP side of delegated sign-in: the device code endpoints and their admin API.

``POST {tenant}/oauth2/v2.0/devicecode`` starts a request; the token endpoint's
``urn:ietf:params:oauth:grant-type:device_code`` grant answers ``authorization_pending``
until ``POST /_emulator/device-codes/{user_code}/approve`` names a signed-in user, then a
delegated access token (``scp``, the user's ``oid`` and ``upn``, no ``idtyp``). State is
in :mod:`graphkit.emulator.device_code`; routes.py registers these handlers.
"""

from __future__ import annotations

import base64
import json
import re
from typing import Any
from urllib.parse import parse_qsl

from graphkit.emulator.device_code import (
    DEVICE_CODE_GRANT,
    DIRECTORY_ROLES,
    PUBLIC_CLIENTS,
    VERIFICATION_URI,
    Account,
    DeviceFlow,
    check_roles,
)
from graphkit.emulator.errors import EntraError
from graphkit.emulator.tokens import GRAPH_RESOURCE, MULTI_TENANT

__all__ = ["DEVICE_CODE_GRANT", "h_devicecode", "redeem_device_code"]

_RESERVED = ("openid", "profile", "offline_access", "email")
_SCOPE_RE = re.compile(r"[A-Za-z][A-Za-z0-9]*(\.[A-Za-z0-9]+)+")


def _form(req: Any) -> dict[str, str]:
    try:
        text = req.body.decode("utf-8")
    except UnicodeDecodeError:
        text = ""
    return dict(parse_qsl(text, keep_blank_values=True))


def _graph_scopes(svc: Any, scope: str) -> list[str]:
    """Graph delegated scope names from ``scope`` (full URLs or bare names).

    Raises:
        EntraError: 70011 for a malformed scope, 500011 for a resource other than Graph.
    """
    from graphkit.emulator.applications import DELEGATED_SCOPES

    names: list[str] = []
    resources = {GRAPH_RESOURCE, *(b.rstrip("/") for b in svc.tokens.base_urls)}
    for item in scope.split():
        if item.lower() in _RESERVED:
            continue
        resource, _, name = item.rpartition("/")
        if resource and resource.rstrip("/").lower() not in {r.lower() for r in resources}:
            raise EntraError(
                "invalid_resource",
                500011,
                f"The resource principal named {resource} was not found in the tenant.",
            )
        if name == ".default":
            # UNCONFIRMED: a first-party client's .default is taken to mean every Graph
            # delegated permission the emulator knows, consented tenant-wide.
            names.extend(n for n in DELEGATED_SCOPES if n not in names)
            continue
        if not _SCOPE_RE.fullmatch(name):
            raise EntraError(
                "invalid_scope",
                70011,
                f"The provided value for the input parameter 'scope' is not valid. The scope "
                f"'{scope}' is not valid.",
            )
        if name not in names:
            names.append(name)
    if not names:
        names.append("User.Read")  # Entra's default for a sign-in with only openid/profile
    return names


def _check_client(svc: Any, tenant_id: str | None, client_id: str) -> None:
    if client_id in PUBLIC_CLIENTS:
        return
    app = svc.backend.find_app(client_id)
    if app is not None and (tenant_id is None or app.tenant_id == tenant_id):
        return
    raise EntraError(
        "unauthorized_client",
        700016,
        f"Application with identifier '{client_id}' was not found in the directory. This can "
        "happen if the application has not been installed by the administrator of the "
        "tenant or consented to by any user in the tenant.",
    )


def h_devicecode(svc: Any, req: Any, m: re.Match[str]) -> Any:
    """``POST {tenant}/oauth2/v2.0/devicecode`` (PROTOCOL.md §7)."""
    from graphkit.emulator import routes

    ident = m["tenant"]
    tenant_id: str | None = None
    if ident.strip().lower() not in MULTI_TENANT:
        tenant_id = svc.tokens.resolve_tenant(ident).id
    form = _form(req)
    client_id = (form.get("client_id") or "").strip().lower()
    if not client_id:
        raise EntraError(
            "invalid_request",
            900144,
            "The request body must contain the following parameter: 'client_id'.",
        )
    req.note["client_id"] = client_id
    _check_client(svc, tenant_id, client_id)
    scope = form.get("scope") or ""
    if not scope.strip():
        raise EntraError(
            "invalid_request",
            900144,
            "The request body must contain the following parameter: 'scope'.",
        )
    b = svc.backend
    flow = b.device_flows.start(
        tenant_id=tenant_id or "",
        client_id=client_id,
        scopes=_graph_scopes(svc, scope),
        now=b.now(),
        expires_in=b.device_code_expires_in,
        interval=b.device_code_interval,
    )
    body = {
        "user_code": flow.user_code,
        "device_code": flow.device_code,
        "verification_uri": VERIFICATION_URI,
        "expires_in": flow.expires_in,
        "interval": flow.interval,
        "message": f"To sign in, use a web browser to open the page {VERIFICATION_URI} and "
        f"enter the code {flow.user_code} to authenticate.",
    }
    return routes.json_response(200, body, routes._entra_headers(req))


def redeem_device_code(svc: Any, ident: str, form: dict[str, str], note: dict[str, Any]) -> Any:
    """The token endpoint's device_code grant: an EntraError while pending, else tokens."""
    b = svc.backend
    if ident.strip().lower() not in MULTI_TENANT:
        svc.tokens.resolve_tenant(ident)
    client_id = (form.get("client_id") or "").strip().lower()
    if not client_id:
        raise EntraError(
            "invalid_request",
            900144,
            "The request body must contain the following parameter: 'client_id'.",
        )
    note["client_id"] = client_id
    code = form.get("device_code") or form.get("code") or ""
    if not code:
        raise EntraError(
            "invalid_request",
            900144,
            "The request body must contain the following parameter: 'device_code'.",
        )
    app = b.find_app(client_id) if client_id not in PUBLIC_CLIENTS else None
    if app is not None and not app.public_client:
        # A custom client id without "Allow public client flows" (PROTOCOL.md §7):
        # Entra wants a client credential. UNCONFIRMED: Entra may answer only once the
        # user has signed in; the emulator answers at every poll.
        raise EntraError(
            "invalid_client",
            7000218,
            "The request body must contain the following parameter: 'client_assertion' "
            "or 'client_secret'.",
        )
    flow = b.device_flows.poll(code, client_id, b.now())
    with b.lock:
        account = b.accounts.by_id[str(flow.account_id)]
    note["user"] = account.upn
    return _token_answer(svc, flow, account)


def _token_answer(svc: Any, flow: DeviceFlow, account: Account) -> dict[str, Any]:
    import jwt

    b = svc.backend
    lifetime = b.token_lifetime
    now = int(b.now())
    with b.lock:
        tenant = b.tenants[account.tenant_id]
    issuer = f"https://sts.windows.net/{tenant.id}/"
    app_name = PUBLIC_CLIENTS.get(flow.client_id)
    if app_name is None:
        app = b.find_app(flow.client_id)
        app_name = app.display_name if app is not None else flow.client_id
    first, _, last = account.display_name.partition(" ")
    claims: dict[str, Any] = {
        "aud": GRAPH_RESOURCE,
        "iss": issuer,
        "iat": now - 300,
        "nbf": now - 300,
        "exp": now + lifetime,
        "acr": "1",
        "amr": ["pwd", "mfa"],
        "app_displayname": app_name,
        "appid": flow.client_id,
        "appidacr": "0",  # a public client: no client authentication
        "family_name": last,
        "given_name": first,
        "idp": issuer,
        "name": account.display_name,
        "oid": account.id,
        "platf": "14",
        "scp": " ".join(flow.scopes),
        "sub": b.ids.make("pairwise-sub", account.id, flow.client_id),
        "tid": tenant.id,
        "unique_name": account.upn,
        "upn": account.upn,
        "ver": "1.0",
        "wids": account.wids(),
    }
    kid = svc.tokens.material.kid
    access = jwt.encode(
        claims,
        svc.tokens.material.signing_key,
        algorithm="RS256",
        headers={"typ": "JWT", "x5t": kid, "kid": kid},
    )
    id_claims = {
        "aud": flow.client_id,
        "iss": f"{svc.base_url}/{tenant.id}/v2.0",
        "iat": now,
        "nbf": now,
        "exp": now + 3600,
        "name": account.display_name,
        "oid": account.id,
        "preferred_username": account.upn,
        "sub": claims["sub"],
        "tid": tenant.id,
        "ver": "2.0",
    }
    id_token = jwt.encode(
        id_claims, svc.tokens.material.signing_key, algorithm="RS256", headers={"kid": kid}
    )
    client_info = base64.urlsafe_b64encode(
        json.dumps({"uid": account.id, "utid": tenant.id}).encode()
    ).rstrip(b"=")
    return {
        "token_type": "Bearer",  # nosec B105  # OAuth's token type, not a secret
        # Delegated answers carry the granted scopes (unlike client credentials).
        "scope": " ".join(f"{GRAPH_RESOURCE}/{s}" for s in flow.scopes) + " openid profile",
        "expires_in": lifetime,
        "ext_expires_in": lifetime,
        "access_token": access,
        "id_token": id_token,
        "client_info": client_info.decode(),
    }


# -------------------------------------------------------------------------- admin


def create_account(
    backend: Any,
    tenant: str,
    user_principal_name: str,
    *,
    display_name: str | None = None,
    roles: Any = (),
) -> Account:
    """Add a user who can sign in; ``roles`` are directory role names.

    Raises:
        ValueError: a bad name or role, or a user that exists already.
        KeyError: no such tenant.
    """
    if not isinstance(roles, list | tuple):
        raise ValueError("roles must be a list of directory role names")
    with backend.lock:
        t = backend.tenant(tenant)
        upn = str(user_principal_name).strip()
        if "@" not in upn:
            upn = f"{upn}@{t.domain}"
        local, _, domain = upn.partition("@")
        if not local or domain.lower() != t.domain:
            raise ValueError(f"the user principal name must end with @{t.domain}")
        account = Account(
            id=backend.ids.make("account", t.id, upn.lower()),
            tenant_id=t.id,
            upn=upn,
            display_name=display_name or local.replace(".", " ").title(),
            roles=check_roles(roles),
        )
        return backend.accounts.add(account)


def approve(backend: Any, user_code: str, user: str) -> DeviceFlow:
    """The user ``user`` (upn or id) signs in and approves ``user_code``.

    Raises:
        KeyError: no such request or user. ValueError: the request is not pending.
    """
    flow = backend.device_flows.by_user_code(user_code)
    with backend.lock:
        tenants = [flow.tenant_id] if flow.tenant_id else list(backend.tenants)
        account = next(
            (a for t in tenants if (a := backend.accounts.find(t, user)) is not None), None
        )
    if account is None:
        raise KeyError(f"no signed-in user {user!r} in the tenant of user code {user_code}")
    return backend.device_flows.set_state(user_code, "approved", account.id)


def a_accounts(svc: Any, req: Any, m: re.Match[str]) -> Any:
    from graphkit.emulator import routes

    with svc.backend.lock:
        return routes.json_response(200, {"users": svc.backend.accounts.export()})


def a_create_account(svc: Any, req: Any, m: re.Match[str]) -> Any:
    from graphkit.emulator import routes

    data = routes._admin_json(req)
    account = create_account(
        svc.backend,
        str(data.get("tenant") or svc.backend.default_tenant_id),
        str(data.get("user_principal_name") or ""),
        display_name=data.get("display_name"),
        roles=data.get("roles", []),
    )
    return routes.json_response(201, account.to_dict())


def a_device_codes(svc: Any, req: Any, m: re.Match[str]) -> Any:
    from graphkit.emulator import routes

    return routes.json_response(200, {"device_codes": svc.backend.device_flows.list()})


def a_approve(svc: Any, req: Any, m: re.Match[str]) -> Any:
    from graphkit.emulator import routes

    data = routes._admin_json(req)
    if not data.get("user"):
        raise ValueError('give {"user": "<user principal name or id>"}')
    flow = approve(svc.backend, m["code"], str(data["user"]))
    return routes.json_response(200, flow.to_dict())


def a_decline(svc: Any, req: Any, m: re.Match[str]) -> Any:
    from graphkit.emulator import routes

    flow = svc.backend.device_flows.set_state(m["code"], "declined")
    return routes.json_response(200, flow.to_dict())


def a_slow_down(svc: Any, req: Any, m: re.Match[str]) -> Any:
    from graphkit.emulator import routes

    data = routes._admin_json(req)
    flow = svc.backend.device_flows.queue_slow_down(m["code"], int(data.get("times", 1)))
    return routes.json_response(200, flow.to_dict())


def apply_settings(backend: Any, data: dict[str, Any]) -> None:
    """The delegated-side settings of ``/_emulator/settings``."""
    if "service_principal_delay" in data:
        value = float(data["service_principal_delay"])
        if value < 0:
            raise ValueError("service_principal_delay cannot be negative")
        backend.service_principal_delay = value
    if "device_code_interval" in data:
        interval = int(data["device_code_interval"])
        if interval < 1:
            raise ValueError("device_code_interval must be at least 1")
        backend.device_code_interval = interval
    if "device_code_expires_in" in data:
        expires = int(data["device_code_expires_in"])
        if expires < 1:
            raise ValueError("device_code_expires_in must be positive")
        backend.device_code_expires_in = expires
    if "users_can_register_apps" in data:
        if not isinstance(data["users_can_register_apps"], bool):
            raise ValueError("users_can_register_apps must be true or false")
        backend.users_can_register_apps = data["users_can_register_apps"]


ROLE_NAMES = tuple(DIRECTORY_ROLES)
