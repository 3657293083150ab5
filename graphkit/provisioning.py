"""Creating an app registration and granting it Graph application permissions, through
Graph, as a signed-in administrator (PROTOCOL.md §6, §8). Library code: nothing here
prints; progress goes to callbacks and failures are :mod:`graphkit.errors` exceptions.

The calls, in order (each built by one function, so ``--dry-run`` shows exactly what a
run sends):

1. ``GET /servicePrincipals?$filter=appId eq '00000003-...'`` (Graph's own service
   principal): every permission name is resolved to its ``appRoles[].id`` there, and an
   unknown name (with the closest ones) or a delegated one (an
   ``oauth2PermissionScopes`` value) is refused before anything is created;
2. ``POST /applications`` with the certificate in ``keyCredentials`` and the
   permissions in ``requiredResourceAccess``;
3. ``POST /servicePrincipals {"appId"}``;
4. ``POST /servicePrincipals/{graph}/appRoleAssignedTo`` for each permission (admin
   consent), waiting while the new service principal is not found yet.

With an existing app (``client_id``): ``GET /applications(appId='...')``, its
certificate added by a read-modify-write ``PATCH`` when missing, its service principal
found (or created), ``GET .../appRoleAssignments``, and only the missing grants.

A failure says which directory role the signed-in user lacks and what the tenant now
holds: an app created but not (fully) granted is named with its client id and object
id, and the re-run that finishes it (``--client-id``) creates no second app.
"""

from __future__ import annotations

import base64
import functools
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from graphkit.errors import GraphError, GraphkitError, NotFoundError, UsageError

if TYPE_CHECKING:  # pragma: no cover
    from graphkit.graph import GraphClient
    from graphkit.onboarding import Hooks

__all__ = [
    "CREATE_ROLES",
    "DEFAULT_WAIT",
    "GRANT_ROLES",
    "GRAPH_APP_ID",
    "GraphCall",
    "Outcome",
    "Permission",
    "graph_service_principal",
    "holdings",
    "key_credential",
    "plan",
    "provision",
    "resolve_permissions",
]

GRAPH_APP_ID = "00000003-0000-0000-c000-000000000000"  # Microsoft Graph's appId
# Directory roles (PROTOCOL.md §8): creating apps; granting Graph app roles.
CREATE_ROLES = ("Application Administrator", "Cloud Application Administrator")
GRANT_ROLES = ("Privileged Role Administrator", "Global Administrator")
# How long a new service principal may stay "not found" (PROTOCOL.md §8: the Azure CLI
# retries 36 x 5 s); as long as init waits for a certificate.
DEFAULT_WAIT = 300.0
# Graph's words for an object not replicated yet (PROTOCOL.md §8).
_NOT_PRESENT = "does not exist or one of its queried reference-property objects are not present"
_ALREADY_GRANTED = "already exists on the object"
_SP_IN_USE = "Request_MultipleObjectsWithSameKeyValue"
_SHOWN_KEY = 24  # characters of a certificate's base64 a dry run shows


# ------------------------------------------------------------------- data


@dataclass(frozen=True)
class Permission:
    """A Graph application permission: its name and its appRole id."""

    name: str
    id: str


@dataclass
class GraphCall:
    """One Graph request: what ``--dry-run`` prints and what a run sends."""

    method: str
    path: str  # relative to the API version: /applications
    purpose: str
    body: dict[str, Any] | None = None
    params: dict[str, str] | None = None

    def shown(self, graph_url: str, api: str = "v1.0") -> dict[str, Any]:
        """The call as a person reads it: the full URL, and certificate keys shortened."""
        from graphkit.graph import encode_params

        query = encode_params(self.params)
        url = f"{graph_url.rstrip('/')}/{api}{self.path}" + (f"?{query}" if query else "")
        out: dict[str, Any] = {"method": self.method, "url": url, "purpose": self.purpose}
        if self.body is not None:
            out["body"] = _shorten_keys(self.body)
        return out


def _shorten_keys(value: Any) -> Any:
    if isinstance(value, dict):
        return {
            k: (
                f"{v[:_SHOWN_KEY]}...({len(v)} characters)"
                if k == "key" and isinstance(v, str) and len(v) > _SHOWN_KEY
                else _shorten_keys(v)
            )
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [_shorten_keys(v) for v in value]
    return value


@dataclass
class Outcome:
    """What the tenant holds for the app, as far as this run got."""

    display_name: str | None = None
    client_id: str | None = None
    object_id: str | None = None
    service_principal_id: str | None = None
    app_created: bool = False
    service_principal_created: bool = False
    certificate_added: bool = False
    granted: list[str] = field(default_factory=list)  # by this run
    already_granted: list[str] = field(default_factory=list)
    waited: float = 0.0  # seconds waiting for the service principal to be found
    key_id: str | None = None  # the certificate's keyId, where Graph's answer gave it

    def as_dict(self) -> dict[str, Any]:
        return {
            "display_name": self.display_name,
            "client_id": self.client_id,
            "object_id": self.object_id,
            "service_principal_id": self.service_principal_id,
            "app_created": self.app_created,
            "service_principal_created": self.service_principal_created,
            "certificate_added": self.certificate_added,
            "granted": list(self.granted),
            "already_granted": list(self.already_granted),
            "waited_seconds": round(self.waited, 1),
        }


# ------------------------------------------------------------------ the calls


def _graph_sp_call() -> GraphCall:
    return GraphCall(
        "GET",
        "/servicePrincipals",
        "find Microsoft Graph's service principal and its application permissions",
        params={
            "$filter": f"appId eq '{GRAPH_APP_ID}'",
            "$select": "id,appId,appRoles,oauth2PermissionScopes",
        },
    )


def key_credential(certificate_der: bytes, display_name: str | None = None) -> dict[str, Any]:
    """A keyCredential for a certificate (PROTOCOL.md §6, §8)."""
    entry: dict[str, Any] = {
        "type": "AsymmetricX509Cert",
        "usage": "Verify",
        "key": base64.b64encode(certificate_der).decode("ascii"),
    }
    if display_name:
        entry["displayName"] = display_name
    return entry


def _create_app_call(
    name: str, key: Mapping[str, Any], permissions: Iterable[Permission | str]
) -> GraphCall:
    access = [{"id": p.id if isinstance(p, Permission) else p, "type": "Role"} for p in permissions]
    return GraphCall(
        "POST",
        "/applications",
        "create the app registration with its certificate and the permissions it requires",
        body={
            "displayName": name,
            "keyCredentials": [dict(key)],
            "requiredResourceAccess": [{"resourceAppId": GRAPH_APP_ID, "resourceAccess": access}],
        },
    )


def _same_name_call(name: str) -> GraphCall:
    quoted = name.replace("'", "''")  # an OData string literal
    return GraphCall(
        "GET",
        "/applications",
        "look for an app registration of the same name (not created twice without --force)",
        params={"$filter": f"displayName eq '{quoted}'", "$select": "id,appId,displayName"},
    )


def _create_sp_call(client_id: str) -> GraphCall:
    return GraphCall(
        "POST",
        "/servicePrincipals",
        "create the app's service principal (its identity in the tenant)",
        body={"appId": client_id},
    )


def _grant_call(graph_sp_id: str, sp_id: str, permission: Permission | str) -> GraphCall:
    role = permission.id if isinstance(permission, Permission) else permission
    name = permission.name if isinstance(permission, Permission) else permission
    return GraphCall(
        "POST",
        f"/servicePrincipals/{graph_sp_id}/appRoleAssignedTo",
        f"grant {name} (admin consent)",
        body={"principalId": sp_id, "resourceId": graph_sp_id, "appRoleId": role},
    )


def _find_app_call(client_id: str) -> GraphCall:
    return GraphCall(
        "GET",
        f"/applications(appId='{client_id}')",
        "find the existing app registration and its certificates",
        params={"$select": "id,appId,displayName,keyCredentials"},
    )


def _patch_keys_call(object_id: str, keys: list[dict[str, Any]]) -> GraphCall:
    return GraphCall(
        "PATCH",
        f"/applications/{object_id}",
        "add the certificate, keeping every one the app has (PATCH replaces the list)",
        body={"keyCredentials": keys},
    )


def _find_sp_call(client_id: str) -> GraphCall:
    return GraphCall(
        "GET",
        "/servicePrincipals",
        "find the app's service principal",
        params={"$filter": f"appId eq '{client_id}'", "$select": "id,appId,displayName"},
    )


def _assignments_call(sp_id: str) -> GraphCall:
    return GraphCall(
        "GET",
        f"/servicePrincipals/{sp_id}/appRoleAssignments",
        "list the application permissions already granted",
    )


def plan(
    *,
    name: str | None,
    permissions: Iterable[str],
    certificate_der: bytes,
    client_id: str | None = None,
    certificate_name: str | None = None,
    allow_same_name: bool = False,
) -> list[GraphCall]:
    """The calls a run would make, with ``<...>`` where a value comes from an earlier
    answer (nothing is sent to build it). With ``client_id``, the calls that finish an
    existing app, each conditional one said to be so."""
    names = list(permissions)
    key = key_credential(certificate_der, certificate_name)
    graph_sp = "<Microsoft Graph's service principal id>"
    calls = [_graph_sp_call()]
    if client_id is None:
        if not allow_same_name:
            calls.append(_same_name_call(name or ""))
        calls.append(_create_app_call(name or "", key, [f"<appRole id of {n}>" for n in names]))
        calls.append(_create_sp_call("<the new app's appId>"))
        sp = "<the new service principal's id>"
    else:
        calls.append(_find_app_call(client_id))
        patch = _patch_keys_call("<the app's object id>", ["<its keyCredentials>", key])  # type: ignore[list-item]
        patch.purpose = "only if the certificate is not on the app yet: " + patch.purpose
        calls.append(patch)
        calls.append(_find_sp_call(client_id))
        create = _create_sp_call(client_id)
        create.purpose = "only if it has none: " + create.purpose
        calls.append(create)
        sp = "<the app's service principal id>"
        calls.append(_assignments_call(sp))
    for n in names:
        call = _grant_call(graph_sp, sp, Permission(n, f"<appRole id of {n}>"))
        if client_id is not None:
            call.purpose = "only if not granted yet: " + call.purpose
        calls.append(call)
    return calls


# ------------------------------------------------------------- permissions


def graph_service_principal(client: GraphClient) -> dict[str, Any]:
    """Microsoft Graph's service principal in the tenant (id, appRoles, scopes).

    Raises:
        GraphError: Graph refused or does not have it.
    """
    body = _send(client, _graph_sp_call(), reading="Microsoft Graph's service principal")
    items = body.get("value") if isinstance(body, dict) else None
    if not isinstance(items, list) or not items or not isinstance(items[0], dict):
        raise GraphError(
            f"the tenant has no service principal for Microsoft Graph ({GRAPH_APP_ID})",
            "check the tenant and the Graph URL",
        )
    return dict(items[0])


def resolve_permissions(graph_sp: Mapping[str, Any], names: Iterable[str]) -> list[Permission]:
    """Application permission names resolved to Graph's appRole ids.

    Names are matched as Graph spells them, case aside (``user.read.all`` is
    ``User.Read.All``); duplicates are dropped.

    Raises:
        UsageError: no name given; a name Graph does not have as an application
            permission (with the closest ones); a delegated permission's name.
    """
    roles = {
        str(r.get("value")): str(r.get("id"))
        for r in graph_sp.get("appRoles") or []
        if isinstance(r, dict)
        and r.get("value")
        and "Application" in (r.get("allowedMemberTypes") or ["Application"])
    }
    scopes = {
        str(s.get("value")) for s in graph_sp.get("oauth2PermissionScopes") or [] if s.get("value")
    }
    by_lower = {n.lower(): n for n in roles}
    out: list[Permission] = []
    for raw in names:
        name = raw.strip()
        found = by_lower.get(name.lower())
        if found is None:
            scope = next((s for s in scopes if s.lower() == name.lower()), None)
            if scope is not None:
                raise UsageError(
                    f"{scope} is a delegated permission (it acts for a signed-in user), not "
                    "an application permission; an app that signs in with its certificate "
                    "has no user",
                    _closest_hint(name, roles, "use an application permission"),
                )
            raise UsageError(
                f"Microsoft Graph has no application permission {name!r}",
                _closest_hint(name, roles, "check the name in Graph's permissions reference"),
            )
        if all(p.name != found for p in out):
            out.append(Permission(found, roles[found]))
    if not out:
        raise UsageError("no permission given", "give --permission, e.g. User.Read.All")
    return out


def _closest_hint(name: str, roles: Mapping[str, str], lead: str) -> str:
    import difflib

    by_lower = {n.lower(): n for n in roles}
    close = difflib.get_close_matches(name.lower(), list(by_lower), n=3, cutoff=0.6)
    if not close:
        return f"{lead} (e.g. User.Read.All)"
    return f"{lead}: did you mean {', '.join(by_lower[c] for c in close)}?"


# --------------------------------------------------------------------- run


def provision(
    client: GraphClient,
    *,
    name: str | None,
    permissions: Iterable[str],
    certificate_der: bytes,
    certificate_name: str | None = None,
    client_id: str | None = None,
    allow_same_name: bool = False,
    on_step: Callable[[str], None] | None = None,
    on_app: Callable[[Outcome], None] | None = None,
    hooks: Hooks | None = None,
    wait: float = DEFAULT_WAIT,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> Outcome:
    """Create (or, with ``client_id``, finish) the app; see the module docstring.

    Args:
        client: a Graph client acting as the signed-in administrator
            (:func:`graphkit.admin_signin.graph_client`).
        name: the new app's display name (without ``client_id``).
        permissions: Graph application permission names.
        certificate_der: the certificate the app signs in with (DER).
        certificate_name: its subject, as the keyCredential's displayName.
        client_id: an existing app to finish instead of creating one.
        allow_same_name: create the app even if the tenant holds one of that name
            (else refused, naming it, before anything is created).
        on_step: progress lines.
        on_app: called once the app exists with its certificate (created, or found and
            its certificate added), before anything else is asked of Graph: the caller
            saves the profile there, so the key the app now trusts is never lost.
        hooks: ``waiting(retry_in, left, attempt)`` while the new service principal is
            not found (:func:`graphkit.onboarding.wait_out`).
        wait: seconds to wait for it at most.
        sleep, clock: how that wait is spent and measured.

    Returns:
        The :class:`Outcome`.

    Raises:
        UsageError: a permission is unknown or delegated (before anything is created).
        PermissionDeniedError: the signed-in user lacks a role; the message names it
            and what the tenant now holds.
        GraphError, NetworkError, AuthError: other failures, likewise.
    """
    step = on_step or (lambda _message: None)
    names = list(permissions)
    graph_sp = graph_service_principal(client)
    wanted = resolve_permissions(graph_sp, names)
    graph_sp_id = str(graph_sp["id"])
    outcome = Outcome()
    key = key_credential(certificate_der, certificate_name)

    def wait_for(call: Callable[[], Any]) -> Any:
        from graphkit.onboarding import wait_out

        result, waited, _attempts = wait_out(
            lambda _n: call(),
            _not_replicated,
            wait=wait,
            hooks=hooks,
            sleep=sleep,
            clock=clock,
        )
        outcome.waited += waited
        return result

    if client_id is None and not allow_same_name:
        _refuse_same_name(client, name or "")
    if client_id is None:
        step(f"Creating the app registration {name!r}")
        try:
            app = _send(client, _create_app_call(name or "", key, wanted))
        except GraphError as exc:
            raise _refused(exc, "creating the app registration", CREATE_ROLES, outcome) from None
        outcome.app_created = True
        outcome.display_name = str(app.get("displayName") or name)
        outcome.client_id = str(app["appId"])
        outcome.object_id = str(app["id"])
        outcome.certificate_added = True
        outcome.key_id = _key_id_of(app.get("keyCredentials"), key)
        if on_app is not None:
            on_app(outcome)
        step(f"Creating its service principal (client id {outcome.client_id})")
        try:
            sp = _send(client, _create_sp_call(outcome.client_id))
        except GraphError as exc:
            raise _refused(exc, "creating the service principal", CREATE_ROLES, outcome) from None
        outcome.service_principal_created = True
        outcome.service_principal_id = str(sp["id"])
        granted: set[str] = set()
    else:
        _existing_app(client, client_id, key, outcome, step)
        if on_app is not None:
            on_app(outcome)
        _service_principal(client, client_id, outcome, step, wait_for)
        assert outcome.service_principal_id is not None
        sp_id = outcome.service_principal_id
        body = wait_for(
            lambda: _send(client, _assignments_call(sp_id), reading="the app's granted permissions")
        )
        granted = {
            str(a.get("appRoleId"))
            for a in (body.get("value") or [] if isinstance(body, dict) else [])
            if isinstance(a, dict) and str(a.get("resourceId")) == graph_sp_id
        }
    assert outcome.service_principal_id is not None
    for permission in wanted:
        if permission.id in granted:
            outcome.already_granted.append(permission.name)
            continue
        step(f"Granting {permission.name} (admin consent)")
        call = _grant_call(graph_sp_id, outcome.service_principal_id, permission)
        try:
            wait_for(functools.partial(_send, client, call))
        except GraphError as exc:
            if exc.status == 400 and _ALREADY_GRANTED in exc.message:
                outcome.already_granted.append(permission.name)  # granted meanwhile
                continue
            raise _refused(exc, f"granting {permission.name}", GRANT_ROLES, outcome) from None
        outcome.granted.append(permission.name)
    return outcome


def _refuse_same_name(client: GraphClient, name: str) -> None:
    """UsageError if the tenant holds an app registration called ``name`` already."""
    body = _send(client, _same_name_call(name), reading="the tenant's app registrations")
    items = body.get("value") if isinstance(body, dict) else None
    same = [str(a.get("appId")) for a in items or [] if isinstance(a, dict) and a.get("appId")]
    if same:
        ids = ", ".join(same)
        raise UsageError(
            f"the tenant holds an app named {name!r} already (client id {ids}); nothing "
            "was created",
            f"finish or reuse it with `graphkit app create --client-id {same[0]} --profile "
            "NAME --permission ...`, or give --force to create another app of that name",
        )


def _existing_app(
    client: GraphClient,
    client_id: str,
    key: dict[str, Any],
    outcome: Outcome,
    step: Callable[[str], None],
) -> None:
    """Find the app; add the certificate when it lacks it (keeping every other one)."""
    try:
        app = _send(client, _find_app_call(client_id), reading=f"app {client_id}")
    except NotFoundError:
        raise NotFoundError(
            f"no app registration with client id {client_id} in this tenant",
            "check --client-id (Application (client) ID) and --tenant",
        ) from None
    outcome.client_id = client_id
    outcome.object_id = str(app["id"])
    outcome.display_name = str(app.get("displayName") or "")
    keys = [k for k in app.get("keyCredentials") or [] if isinstance(k, dict)]
    ours = _custom_key_identifier(key)
    if not any(k.get("customKeyIdentifier") == ours for k in keys):
        step(f"Adding the certificate to app {client_id}")
        try:
            _send(client, _patch_keys_call(outcome.object_id, [*keys, key]))
        except GraphError as exc:
            raise _refused(exc, "adding the certificate", CREATE_ROLES, outcome) from None
        outcome.certificate_added = True
    else:
        outcome.key_id = _key_id_of(keys, key)
        step(f"The certificate is on app {client_id} already")


def _key_id_of(keys: Any, key: Mapping[str, Any]) -> str | None:
    """The keyId Graph gave ``key`` among ``keys`` (keyCredentials), if it is there."""
    ours = _custom_key_identifier(key)
    for k in keys if isinstance(keys, list) else []:
        if isinstance(k, dict) and k.get("customKeyIdentifier") == ours and k.get("keyId"):
            return str(k["keyId"])
    return None


def _service_principal(
    client: GraphClient,
    client_id: str,
    outcome: Outcome,
    step: Callable[[str], None],
    wait_for: Callable[[Callable[[], Any]], Any],
) -> None:
    """Find the app's service principal, or create it."""

    def find() -> dict[str, Any] | None:
        body = _send(client, _find_sp_call(client_id), reading="the app's service principal")
        items = body.get("value") if isinstance(body, dict) else None
        return dict(items[0]) if isinstance(items, list) and items else None

    sp = find()
    if sp is None:
        step(f"Creating the service principal of app {client_id}")
        try:
            sp = _send(client, _create_sp_call(client_id))
            outcome.service_principal_created = True
        except GraphError as exc:
            if not (exc.status == 400 and exc.code == _SP_IN_USE):
                raise _refused(
                    exc,
                    "creating the service principal",
                    CREATE_ROLES,
                    outcome,
                    note="if it was created moments ago it may not be found yet: then wait a "
                    "minute and run this again",
                ) from None

            # It exists, but is not found yet (created moments ago): wait for it.
            def found() -> dict[str, Any]:
                got = find()
                if got is None:
                    raise NotFoundError(
                        f"the service principal of app {client_id} {_NOT_PRESENT}",
                        "wait a minute and run this again",
                        status=404,
                    )
                return got

            sp = wait_for(found)
    outcome.service_principal_id = str(sp["id"])


def _custom_key_identifier(key: Mapping[str, Any]) -> str:
    import hashlib

    der = base64.b64decode(str(key["key"]))
    return base64.b64encode(hashlib.sha1(der, usedforsecurity=False).digest()).decode()


def _send(client: GraphClient, call: GraphCall, *, reading: str | None = None) -> Any:
    try:
        return client.request(call.method, call.path, call.params, json_body=call.body)
    except GraphError as exc:
        if reading and exc.status == 403:
            raise exc.restated(
                f"reading {reading} was refused ({exc.message})",
                "the sign-in needs the delegated permission Application.Read.All (or "
                "Application.ReadWrite.All) consented for its client",
            ) from None
        raise


def _not_replicated(exc: GraphkitError) -> bool:
    """A new object Graph does not find yet (PROTOCOL.md §8): 400 or 404, "does not
    exist or one of its queried reference-property objects are not present"."""
    return isinstance(exc, GraphError) and exc.status in (400, 404) and _NOT_PRESENT in exc.message


def holdings(outcome: Outcome) -> str:
    """What the tenant now holds, in words, and how a re-run finishes the job."""
    if not outcome.client_id:
        return "nothing was created"
    what = (
        f"app {outcome.display_name!r} (client id {outcome.client_id}, object id "
        f"{outcome.object_id})"
    )
    parts = [f"the tenant holds {what}" + (", created now" if outcome.app_created else "")]
    if outcome.service_principal_id:
        parts.append(f"its service principal {outcome.service_principal_id}")
    else:
        parts.append("no service principal yet")
    granted = outcome.granted + outcome.already_granted
    parts.append(f"granted {', '.join(granted)}" if granted else "no permission granted")
    return ", ".join(parts)


def _refused(
    exc: GraphError, doing: str, roles: tuple[str, ...], outcome: Outcome, note: str = ""
) -> GraphkitError:
    """``exc`` said with the directory role ``doing`` needs (on a 403) and what the
    tenant now holds, with the re-run that finishes the job (and ``note``)."""
    state = holdings(outcome)
    rerun = (
        f"; re-running with --client-id {outcome.client_id} finishes it without creating a "
        "second app"
        if outcome.client_id
        else ""
    )
    if exc.status == 403:
        message = (
            f"{doing} was refused: the signed-in user needs the {' or '.join(roles)} role ({state})"
        )
        hint = f"sign in as a user holding one of those roles{rerun}"
    else:
        message = f"{doing} failed: {exc.message} ({state})"
        hint = (exc.hint or "retry") + rerun
    if note:
        hint = f"{hint}; {note}"
    return exc.restated(message, hint)
