"""The emulator's state: tenants, applications, their certificates and roles, users, groups.

Nothing here knows about HTTP. Every identifier is derived from the seed and a counter,
so two runs with the same seed (or a run after :meth:`Backend.reset`) hand out the same
GUIDs. One re-entrant lock guards all state; the HTTP threads and the Python API share it.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import re
import threading
import time
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from graphkit.emulator.errors import GraphApiError
from graphkit.emulator.odata import EntitySchema
from graphkit.emulator.users import UserDirectory
from graphkit.emulator.writes import UserOverlay

__all__ = [
    "GRAPH_APP_ID",
    "GRAPH_ROLES",
    "RESOURCE_PRESETS",
    "App",
    "AppState",
    "Backend",
    "Clock",
    "KeyCredential",
    "ResourceState",
    "Tenant",
    "TenantState",
]

GRAPH_APP_ID = "00000003-0000-0000-c000-000000000000"
DEFAULT_DOMAIN = "contoso.onmicrosoft.com"
DEFAULT_APP_NAME = "graphkit-demo"
DEFAULT_ROLES = ("User.Read.All",)

# Microsoft Graph's application permissions (appRole values) and their well-known ids.
# Names not listed are accepted too (with a derived id): the emulator only checks the
# ones its endpoints need.
GRAPH_ROLES: dict[str, str] = {
    "User.Read.All": "df021288-bdef-4463-88db-98f22de89214",
    "User.ReadBasic.All": "97235f07-e226-4f63-ace3-39588e11d3a1",
    "User.ReadWrite.All": "741f803b-c850-494e-b5df-cde7c675a1ca",
    "Directory.Read.All": "7ab1d382-f21e-4acd-a863-ba3e13f7da61",
    "Directory.ReadWrite.All": "19dbc75e-c2e2-444c-a770-ec69d8559fc7",
    "Group.Read.All": "5b567255-7703-4780-807c-7be8301ae99b",
    "Group.ReadWrite.All": "62a82d76-70ea-41e2-9197-370581804d09",
    "GroupMember.Read.All": "98830695-27a2-44f7-8c18-0c3ebc9698f6",
    "Organization.Read.All": "498476ce-e0fe-48b0-b801-37ba7e2685c6",
    "Application.Read.All": "9a5d68dd-52b0-4cc2-bd40-abcf44ac3a30",
    "Application.ReadWrite.All": "1bfefb4e-e0b5-418b-a88f-73c46d2cc8e9",
    "Application.ReadWrite.OwnedBy": "18a4783c-866b-4cc7-a460-3d5e5662c884",
    "AppRoleAssignment.ReadWrite.All": "06b708a9-e830-4db3-a914-8e69da51d44f",
}

# Resources other than Graph a tenant may have (Backend.add_resource): their application
# ids, names, the URIs a token request names them by, and application permissions.
# SharePoint Online: the "Office 365 SharePoint Online" service principal, its tenant
# URLs, and the Sites.* application permissions (sp-dev-docs
# solution-guidance/security-apponly-azuread.md). Exchange Online: "Office 365 Exchange
# Online" at https://outlook.office365.com (Exchange docs, "Authenticate an EWS
# application by using OAuth": app-only scope https://outlook.office365.com/.default,
# full_access_as_app; "App-only authentication for unattended scripts in Exchange Online
# PowerShell": Exchange.ManageAsApp).
RESOURCE_PRESETS: dict[str, dict[str, Any]] = {
    "sharepoint": {
        "app_id": "00000003-0000-0ff1-ce00-000000000000",
        "display_name": "Office 365 SharePoint Online",
        "uris": (
            "https://{prefix}.sharepoint.com",
            "https://{prefix}-admin.sharepoint.com",
            "https://{prefix}-my.sharepoint.com",
        ),
        "roles": (
            "Sites.FullControl.All",
            "Sites.Manage.All",
            "Sites.Read.All",
            "Sites.ReadWrite.All",
            "Sites.Selected",
        ),
    },
    "exchange": {
        "app_id": "00000002-0000-0ff1-ce00-000000000000",
        "display_name": "Office 365 Exchange Online",
        "uris": ("https://outlook.office365.com", "https://outlook.office.com"),
        "roles": ("full_access_as_app", "Exchange.ManageAsApp"),
    },
}


@dataclass
class ResourceState:
    """A resource (API) in a tenant besides Graph: a token's ``aud`` and ``roles`` for it."""

    app_id: str
    display_name: str
    uris: list[str]
    roles: list[str]

    def to_dict(self) -> dict[str, Any]:
        return {
            "app_id": self.app_id,
            "display_name": self.display_name,
            "uris": list(self.uris),
            "roles": list(self.roles),
        }


_DOMAIN_RE = re.compile(r"^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$")
_ROLE_RE = re.compile(r"[A-Za-z][A-Za-z0-9]*(\.[A-Za-z0-9]+)+")
_GUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


def is_guid(value: str) -> bool:
    return bool(_GUID_RE.match(value.lower()))


def is_domain(value: str) -> bool:
    return bool(_DOMAIN_RE.match(value.lower()))


def iso(ts: float) -> str:
    """``2026-01-09T02:02:12Z`` (what Graph uses for dates)."""
    return dt.datetime.fromtimestamp(ts, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class Clock:
    """Wall time plus an offset that :meth:`advance` moves (tokens expire, dates skew)."""

    def __init__(self) -> None:
        self.offset = 0.0

    def now(self) -> float:
        return time.time() + self.offset

    def advance(self, seconds: float) -> float:
        self.offset += seconds
        return self.now()


# ------------------------------------------------------------------ public records


@dataclass(frozen=True)
class Tenant:
    """A tenant, addressed by ``id`` (GUID) or ``domain``."""

    id: str
    domain: str
    display_name: str = ""


@dataclass(frozen=True)
class App:
    """An application registration and its service principal in one tenant."""

    client_id: str  # appId
    object_id: str  # the application object's id (what /applications/{id} takes)
    tenant_id: str
    display_name: str
    service_principal_id: str = ""  # oid/sub of its app-only tokens


# ----------------------------------------------------------------- internal state


@dataclass
class KeyCredential:
    """One certificate on an application (a keyCredential in Graph's terms)."""

    key_id: str
    der: bytes
    display_name: str
    start: float
    end: float
    added_at: float  # emulator clock; for the propagation delay
    x5t: str  # base64url SHA-1, no padding
    x5t_s256: str  # base64url SHA-256, no padding
    sha1_hex: str
    public_key: Any
    usage: str = "Verify"
    type: str = "AsymmetricX509Cert"

    def to_graph(self, *, with_key: bool) -> dict[str, Any]:
        sha1 = bytes.fromhex(self.sha1_hex)
        return {
            "customKeyIdentifier": base64.b64encode(sha1).decode(),
            "displayName": self.display_name,
            "endDateTime": iso(self.end),
            "key": base64.b64encode(self.der).decode() if with_key else None,
            "keyId": self.key_id,
            "startDateTime": iso(self.start),
            "type": self.type,
            "usage": self.usage,
        }


@dataclass
class TenantState:
    id: str
    domain: str
    display_name: str
    created: float
    users: UserOverlay  # the generated users plus what was written (writes.py)
    groups: list[dict[str, Any]] = field(default_factory=list)
    resources: dict[str, ResourceState] = field(default_factory=dict)  # by app id

    def public(self) -> Tenant:
        return Tenant(self.id, self.domain, self.display_name)

    def manager_of(self, user: Mapping[str, Any]) -> dict[str, Any] | None:
        """The user's manager (a user), or None for the top of the reporting tree."""
        i = self.users.index_of_id(str(user.get("id", "")))
        m = self.users.manager_index(i) if i is not None else None
        return self.users.get(m) if m is not None else None

    def member_of(self, user: Mapping[str, Any]) -> list[dict[str, Any]]:
        """The seeded groups ``user`` belongs to (derived, never stored: see _GROUP_RULES)."""
        i = self.users.index_of_id(str(user.get("id", "")))
        if i is None:
            return []
        return [
            g for g in self.groups if _GROUP_RULES.get(str(g.get("displayName")), _nobody)(i, user)
        ]


@dataclass
class AppState:
    client_id: str
    object_id: str
    sp_id: str
    tenant_id: str
    display_name: str
    created: float
    roles: set[str] = field(default_factory=set)
    keys: list[KeyCredential] = field(default_factory=list)
    # Apps created through Graph (POST /applications) have no service principal until
    # POST /servicePrincipals; sp_created starts the service-principal propagation delay.
    has_sp: bool = True
    sp_created: float = 0.0
    required_resource_access: list[dict[str, Any]] | None = None  # as given at creation
    passwords: list[dict[str, Any]] = field(default_factory=list)  # passwordCredentials
    owners: list[str] = field(default_factory=list)  # signed-in users' ids (the creator)
    public_client: bool = False  # isFallbackPublicClient ("Allow public client flows")
    # Application permissions on resources other than Graph, by the resource's app id.
    resource_roles: dict[str, set[str]] = field(default_factory=dict)

    def public(self) -> App:
        return App(self.client_id, self.object_id, self.tenant_id, self.display_name, self.sp_id)


def load_certificate(cert: Any) -> Any:
    """An ``x509.Certificate`` from one, or from PEM/DER bytes or PEM text.

    Raises:
        ValueError: not a certificate.
    """
    from cryptography import x509

    if isinstance(cert, x509.Certificate):
        return cert
    if isinstance(cert, str):
        cert = cert.encode()
    if not isinstance(cert, bytes | bytearray):
        raise ValueError("give an x509.Certificate, or PEM/DER bytes")
    data = bytes(cert)
    if b"-----BEGIN CERTIFICATE-----" in data:
        start = data.index(b"-----BEGIN CERTIFICATE-----")
        return x509.load_pem_x509_certificate(data[start:])
    try:
        return x509.load_der_x509_certificate(data)
    except ValueError:
        pass
    try:  # base64 DER, as Graph's keyCredential.key holds it
        return x509.load_der_x509_certificate(base64.b64decode(data, validate=True))
    except ValueError:
        raise ValueError("not a PEM, DER or base64-DER certificate") from None


def make_key_credential(
    cert: Any,
    *,
    key_id: str,
    now: float,
    display_name: str | None = None,
    start: float | None = None,
    end: float | None = None,
) -> KeyCredential:
    from cryptography.hazmat.primitives import serialization

    der = cert.public_bytes(serialization.Encoding.DER)
    sha1 = hashlib.sha1(der, usedforsecurity=False).digest()  # the thumbprint: a name
    sha256 = hashlib.sha256(der).digest()
    return KeyCredential(
        key_id=key_id,
        der=der,
        display_name=display_name or cert.subject.rfc4514_string() or "certificate",
        start=start if start is not None else cert.not_valid_before_utc.timestamp(),
        end=end if end is not None else cert.not_valid_after_utc.timestamp(),
        added_at=now,
        x5t=base64.urlsafe_b64encode(sha1).rstrip(b"=").decode(),
        x5t_s256=base64.urlsafe_b64encode(sha256).rstrip(b"=").decode(),
        sha1_hex=sha1.hex().upper(),
        public_key=cert.public_key(),
    )


GROUP_SCHEMA = EntitySchema(
    type_name="group",
    set_name="groups",
    properties=(
        "id",
        "createdDateTime",
        "description",
        "displayName",
        "groupTypes",
        "mail",
        "mailEnabled",
        "mailNickname",
        "securityEnabled",
        "visibility",
    ),
    filterable={
        "id": "string",
        "displayName": "string",
        "mail": "string",
        "mailNickname": "string",
        "mailEnabled": "bool",
        "securityEnabled": "bool",
    },
    searchable={"displayName": "tokens", "description": "tokens", "mail": "prefix"},
    orderable=("displayName",),
    resource_label="Group",
)

_SEED_GROUPS: tuple[tuple[str, str, bool, bool, list[str]], ...] = (
    ("All Company", "Everyone in the organisation", True, False, ["Unified"]),
    ("Engineering", "Engineers and their managers", True, True, []),
    ("Sales", "Sales team", True, False, ["Unified"]),
    ("Finance", "Finance and accounting", False, True, []),
    ("Graph Admins", "People who manage app registrations", False, True, []),
)


def _nobody(i: int, user: Mapping[str, Any]) -> bool:
    return False


# Who is in each seeded group: everyone, a department, or every 50th user.
_GROUP_RULES: dict[str, Any] = {
    "All Company": lambda i, u: True,
    "Engineering": lambda i, u: u.get("department") == "Engineering",
    "Sales": lambda i, u: u.get("department") == "Sales",
    "Finance": lambda i, u: u.get("department") == "Finance",
    "Graph Admins": lambda i, u: i % 50 == 0,
}


class _Ids:
    """Deterministic GUIDs: the same seed and labels give the same ids."""

    def __init__(self, seed: int):
        self.seed = seed

    def make(self, *labels: object) -> str:
        digest = hashlib.sha256("\x1f".join([str(self.seed), *map(str, labels)]).encode()).digest()
        return str(uuid.UUID(bytes=digest[:16], version=4))


class Backend:
    """All state of one emulator.

    Args:
        users: how many users the default tenant has.
        seed: makes ids and users deterministic.
        token_lifetime: seconds an access token lives (``expires_in``).
        propagation_delay: seconds a newly added certificate is still refused (700027).
        default_domain: the default tenant's domain.
    """

    def __init__(
        self,
        *,
        users: int = 250,
        seed: int = 0,
        token_lifetime: int = 3599,
        propagation_delay: float = 0.0,
        default_domain: str = DEFAULT_DOMAIN,
    ):
        self.lock = threading.RLock()
        self.clock = Clock()
        self._config: dict[str, Any] = {
            "users": users,
            "seed": seed,
            "token_lifetime": token_lifetime,
            "propagation_delay": propagation_delay,
            "default_domain": default_domain,
        }
        self.reset()

    # -------------------------------------------------------------------- lifecycle

    def reset(self) -> None:
        """Back to the start: the default tenant and app with the same ids, nothing else."""
        cfg = self._config
        with self.lock:
            self.seed = int(cfg["seed"])
            self.ids = _Ids(self.seed)
            self.clock.offset = 0.0
            self.token_lifetime = int(cfg["token_lifetime"])
            self.propagation_delay = float(cfg["propagation_delay"])
            self._reset_delegated()
            self.tenants: dict[str, TenantState] = {}
            self.apps: dict[str, AppState] = {}  # by client id
            self._counter = 0
            tenant = self.create_tenant(
                str(cfg["default_domain"]), display_name="Contoso", users=int(cfg["users"])
            )
            app = self.create_app(tenant.id, DEFAULT_APP_NAME, DEFAULT_ROLES)
            self.default_tenant_id = tenant.id
            self.default_client_id = app.client_id

    def now(self) -> float:
        return self.clock.now()

    def _reset_delegated(self) -> None:
        """Signed-in users, device-code requests and their settings (issue 12)."""
        from graphkit.emulator.device_code import (
            DEFAULT_EXPIRES_IN,
            DEFAULT_INTERVAL,
            Accounts,
            DeviceFlows,
        )

        self.accounts = Accounts()
        self.device_flows = DeviceFlows()
        self.service_principal_delay = 0.0
        self.device_code_interval = DEFAULT_INTERVAL
        self.device_code_expires_in = DEFAULT_EXPIRES_IN
        # Entra's tenant default ("Users can register applications": Yes); a locked-down
        # tenant sets it to No, and then only the admin roles may (docs/FIDELITY.md).
        self.users_can_register_apps = True

    def delegated_settings(self) -> dict[str, Any]:
        return {
            "service_principal_delay": self.service_principal_delay,
            "device_code_interval": self.device_code_interval,
            "device_code_expires_in": self.device_code_expires_in,
            "users_can_register_apps": self.users_can_register_apps,
        }

    # ------------------------------------------------------------------ persistence

    STATE_VERSION = 1

    def export_state(self) -> dict[str, Any]:
        """Everything that is not derived: tenants, apps with their certificates and
        grants, the id counter, settings and the clock offset (JSON-ready). Users and
        groups are derived from the seed and the tenant, so only their number is kept."""
        with self.lock:
            return {
                "version": self.STATE_VERSION,
                "config": dict(self._config),
                "counter": self._counter,
                "clock_offset": self.clock.offset,
                "token_lifetime": self.token_lifetime,
                "propagation_delay": self.propagation_delay,
                "default_tenant_id": self.default_tenant_id,
                "default_client_id": self.default_client_id,
                "delegated": self.delegated_settings(),
                "accounts": self.accounts.export(),
                "tenants": [
                    {
                        "id": t.id,
                        "domain": t.domain,
                        "display_name": t.display_name,
                        "created": t.created,
                        "users": t.users.seeded,
                        "writes": t.users.export_state() if t.users.stateful else None,
                        "groups": t.groups,
                        "resources": [r.to_dict() for r in t.resources.values()],
                    }
                    for t in self.tenants.values()
                ],
                "apps": [
                    {
                        "client_id": a.client_id,
                        "object_id": a.object_id,
                        "sp_id": a.sp_id,
                        "tenant_id": a.tenant_id,
                        "display_name": a.display_name,
                        "created": a.created,
                        "roles": sorted(a.roles),
                        "keys": [_key_state(k) for k in a.keys],
                        "has_sp": a.has_sp,
                        "sp_created": a.sp_created,
                        "required_resource_access": a.required_resource_access,
                        "passwords": a.passwords,
                        "owners": a.owners,
                        "public_client": a.public_client,
                        "resource_roles": {k: sorted(v) for k, v in a.resource_roles.items()},
                    }
                    for a in self.apps.values()
                ],
            }

    def load_state(self, data: Mapping[str, Any]) -> None:
        """Replace all state with an :meth:`export_state` snapshot.

        Raises:
            ValueError: not a snapshot this version can read.
        """
        if not isinstance(data, Mapping) or data.get("version") != self.STATE_VERSION:
            raise ValueError("not an emulator state file of a version this graphkit reads")
        try:
            with self.lock:
                self._config = dict(data["config"])
                self.seed = int(self._config["seed"])
                self.ids = _Ids(self.seed)
                self._counter = int(data["counter"])
                self.clock.offset = float(data["clock_offset"])
                self.token_lifetime = int(data["token_lifetime"])
                self.propagation_delay = float(data["propagation_delay"])
                self._reset_delegated()
                for name, value in dict(data.get("delegated", {})).items():
                    if name in self.delegated_settings():
                        setattr(self, name, type(getattr(self, name))(value))
                self.accounts.load(data.get("accounts", []))
                tenants: dict[str, TenantState] = {}
                for t in data["tenants"]:
                    state = TenantState(
                        id=str(t["id"]),
                        domain=str(t["domain"]),
                        display_name=str(t["display_name"]),
                        created=float(t["created"]),
                        users=self._overlay(
                            UserDirectory(
                                int(t["users"]),
                                seed=self.seed,
                                tenant_id=str(t["id"]),
                                domain=str(t["domain"]),
                                company=str(t["display_name"]),
                            ),
                            str(t["id"]),
                        ),
                    )
                    if t.get("writes"):
                        state.users.load_state(t["writes"])
                    groups = t.get("groups")
                    state.groups = list(groups) if groups is not None else self._seed_groups(state)
                    for r in t.get("resources", []):
                        res = ResourceState(
                            app_id=str(r["app_id"]),
                            display_name=str(r["display_name"]),
                            uris=[str(u) for u in r["uris"]],
                            roles=[str(x) for x in r["roles"]],
                        )
                        state.resources[res.app_id] = res
                    tenants[state.id] = state
                apps: dict[str, AppState] = {}
                for a in data["apps"]:
                    app = AppState(
                        client_id=str(a["client_id"]),
                        object_id=str(a["object_id"]),
                        sp_id=str(a["sp_id"]),
                        tenant_id=str(a["tenant_id"]),
                        display_name=str(a["display_name"]),
                        created=float(a["created"]),
                        roles={_check_role(r) for r in a["roles"]},
                        keys=[_key_from_state(k) for k in a["keys"]],
                        has_sp=bool(a.get("has_sp", True)),
                        sp_created=float(a.get("sp_created", 0.0)),
                        required_resource_access=a.get("required_resource_access"),
                        passwords=list(a.get("passwords", [])),
                        owners=[str(o) for o in a.get("owners", [])],
                        public_client=bool(a.get("public_client", False)),
                        resource_roles={
                            str(k): {str(x) for x in v}
                            for k, v in dict(a.get("resource_roles", {})).items()
                        },
                    )
                    apps[app.client_id] = app
                self.tenants, self.apps = tenants, apps
                self.default_tenant_id = str(data["default_tenant_id"])
                self.default_client_id = str(data["default_client_id"])
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"the emulator state file is damaged ({exc})") from None

    def _next(self) -> int:
        with self.lock:
            self._counter += 1
            return self._counter

    # ---------------------------------------------------------------------- tenants

    def create_tenant(
        self, domain: str, *, display_name: str | None = None, users: int = 0
    ) -> TenantState:
        """Add a tenant; its id is derived from the seed and the domain.

        Raises:
            ValueError: the domain is not a DNS name, or exists already.
        """
        domain = domain.strip().lower()
        if not is_domain(domain):
            raise ValueError(f"{domain!r} is not a valid domain name")
        with self.lock:
            if self.find_tenant(domain) is not None:
                raise ValueError(f"tenant {domain} exists already")
            tid = self.ids.make("tenant", domain)
            name = display_name or domain.split(".")[0].capitalize()
            state = TenantState(
                id=tid,
                domain=domain,
                display_name=name,
                created=self.now(),
                users=self._overlay(
                    UserDirectory(
                        users, seed=self.seed, tenant_id=tid, domain=domain, company=name
                    ),
                    tid,
                ),
            )
            state.groups = self._seed_groups(state)
            self.tenants[tid] = state
            return state

    def _overlay(self, directory: UserDirectory, tenant_id: str) -> UserOverlay:
        """The directory with a write overlay; created users get ids from the counter."""
        return UserOverlay(
            directory,
            clock=self.now,
            make_id=lambda: self.ids.make("user", tenant_id, self._next()),
        )

    def _seed_groups(self, tenant: TenantState) -> list[dict[str, Any]]:
        groups = []
        for i, (name, description, unified_mail, security, types) in enumerate(_SEED_GROUPS):
            nick = name.lower().replace(" ", "-")
            groups.append(
                {
                    "id": self.ids.make("group", tenant.id, i),
                    "createdDateTime": "2021-03-01T09:00:00Z",
                    "description": description,
                    "displayName": name,
                    "groupTypes": types,
                    "mail": f"{nick}@{tenant.domain}" if unified_mail else None,
                    "mailEnabled": unified_mail,
                    "mailNickname": nick,
                    "securityEnabled": security,
                    "visibility": "Private" if types else None,
                }
            )
        return groups

    def find_tenant(self, ident: str) -> TenantState | None:
        """A tenant by GUID or domain (case-insensitive), or None."""
        ident = ident.strip().lower()
        with self.lock:
            if ident in self.tenants:
                return self.tenants[ident]
            return next((t for t in self.tenants.values() if t.domain == ident), None)

    def tenant(self, ident: str) -> TenantState:
        t = self.find_tenant(ident)
        if t is None:
            raise KeyError(f"no tenant {ident!r}")
        return t

    # ------------------------------------------------------------------------- apps

    def create_app(
        self, tenant: str, display_name: str = "app", roles: Iterable[str] = ()
    ) -> AppState:
        """Register an application (and its service principal) in ``tenant``."""
        with self.lock:
            t = self.tenant(tenant)
            n = self._next()
            state = AppState(
                client_id=self.ids.make("app", t.id, n),
                object_id=self.ids.make("application-object", t.id, n),
                sp_id=self.ids.make("service-principal", t.id, n),
                tenant_id=t.id,
                display_name=display_name,
                created=self.now(),
            )
            for role in roles:
                state.roles.add(_check_role(role))
            self.apps[state.client_id] = state
            return state

    def find_app(self, client_id: str) -> AppState | None:
        with self.lock:
            return self.apps.get(client_id.strip().lower())

    def app(self, client_id: str) -> AppState:
        a = self.find_app(client_id)
        if a is None:
            raise KeyError(f"no application with client id {client_id!r}")
        return a

    def app_by_object_id(self, tenant_id: str, object_id: str) -> AppState | None:
        object_id = object_id.strip().lower()
        with self.lock:
            return next(
                (
                    a
                    for a in self.apps.values()
                    if a.object_id == object_id and a.tenant_id == tenant_id
                ),
                None,
            )

    def service_principal_visible(self, app: AppState) -> bool:
        """The app has a service principal the directory already finds (PROTOCOL.md §8:
        a new one is "not found" for ``service_principal_delay`` seconds)."""
        with self.lock:
            if not app.has_sp:
                return False
            return self.now() - app.sp_created >= self.service_principal_delay

    def apps_in(self, tenant_id: str) -> list[AppState]:
        with self.lock:
            return [a for a in self.apps.values() if a.tenant_id == tenant_id]

    def grant(self, client_id: str, role: str, resource: str | None = None) -> None:
        """Grant an application permission on Graph, or on ``resource`` (a URI or app id
        of one :meth:`add_resource` added to the app's tenant, offering that role)."""
        with self.lock:
            app = self.app(client_id)
            if resource is None:
                app.roles.add(_check_role(role))
                return
            res = self._resource_of(app.tenant_id, resource)
            if role not in res.roles:
                raise ValueError(
                    f"{res.display_name} offers no application permission {role!r} "
                    f"(it offers {', '.join(res.roles)})"
                )
            app.resource_roles.setdefault(res.app_id, set()).add(role)

    def revoke(self, client_id: str, role: str, resource: str | None = None) -> None:
        with self.lock:
            app = self.app(client_id)
            if resource is None:
                app.roles.discard(role)
                return
            res = self._resource_of(app.tenant_id, resource)
            app.resource_roles.get(res.app_id, set()).discard(role)

    # ------------------------------------------------------------ other resources

    def add_resource(
        self,
        tenant: str,
        resource: str,
        *,
        app_id: str | None = None,
        display_name: str | None = None,
        roles: Iterable[str] | None = None,
    ) -> ResourceState:
        """Give ``tenant`` a resource besides Graph, tokens for which it then issues.

        ``resource`` is a preset (``sharepoint``: the tenant's SharePoint Online URLs;
        ``exchange``: Exchange Online) or a URI (``https://api.contoso.com``). ``roles``
        are its application permissions (a preset's own by default).

        Raises:
            KeyError: no such tenant. ValueError: a malformed URI, a URI already taken.
        """
        with self.lock:
            t = self.tenant(tenant)
            preset = RESOURCE_PRESETS.get(resource.strip().lower())
            if preset is not None:
                prefix = t.domain.split(".", 1)[0]
                uris = [u.format(prefix=prefix) for u in preset["uris"]]
                app_id = app_id or str(preset["app_id"])
                display_name = display_name or str(preset["display_name"])
                offered = list(roles) if roles is not None else list(preset["roles"])
            else:
                uri = resource.strip().rstrip("/")
                if not re.match(r"^(https://[^/\s]+|api://\S+)", uri):
                    raise ValueError(f"{resource!r} is neither a preset nor an https:// URI")
                uris = [uri]
                app_id = app_id or self.ids.make("resource", t.id, uri)
                display_name = display_name or uri
                offered = list(roles or ())
            for uri in uris:
                found = self.find_resource(t.id, uri)
                if found is not None and found.app_id != app_id:
                    raise ValueError(f"{uri} is already the resource {found.display_name}")
            if any(not r or any(c.isspace() for c in r) for r in offered):
                raise ValueError("a permission name is empty or has spaces")
            res = ResourceState(app_id.lower(), display_name, uris, offered)
            t.resources[res.app_id] = res
            return res

    def find_resource(self, tenant_id: str, resource: str) -> ResourceState | None:
        """The tenant's resource with this URI or app id (case and a trailing / ignored)."""
        wanted = resource.strip().rstrip("/").lower()
        with self.lock:
            for res in self.tenants[tenant_id].resources.values():
                if wanted == res.app_id or wanted in (u.lower() for u in res.uris):
                    return res
        return None

    def _resource_of(self, tenant_id: str, resource: str) -> ResourceState:
        res = self.find_resource(tenant_id, resource)
        if res is None:
            raise KeyError(f"no resource {resource!r} in the tenant (add_resource adds one)")
        return res

    # ----------------------------------------------------------------- certificates

    def upload_certificate(self, client_id: str, cert: Any) -> KeyCredential:
        """Append ``cert`` to the app's keyCredentials, as the portal's upload does."""
        certificate = load_certificate(cert)
        with self.lock:
            app = self.app(client_id)
            kc = make_key_credential(
                certificate,
                key_id=self.ids.make("key", app.client_id, self._next()),
                now=self.now(),
            )
            if any(k.sha1_hex == kc.sha1_hex for k in app.keys):
                raise ValueError("this certificate is already on the application")
            app.keys.append(kc)
            return kc

    def remove_certificate(self, client_id: str, ident: str) -> KeyCredential:
        """Take a certificate off the app (the portal's delete), by keyId or thumbprint.

        ``ident`` is the keyCredential's ``keyId``, or the SHA-1 thumbprint in hex (as the
        portal shows it, any case, ``:`` separators allowed) or base64url (``x5t``).

        Raises:
            KeyError: no such app, or no such certificate on it.
        """
        wanted = ident.strip()
        hex_form = wanted.replace(":", "").upper()
        with self.lock:
            app = self.app(client_id)
            for kc in app.keys:
                if wanted.lower() == kc.key_id or hex_form == kc.sha1_hex or wanted == kc.x5t:
                    app.keys = [k for k in app.keys if k is not kc]
                    return kc
        raise KeyError(f"no certificate {ident!r} on application {client_id}")

    def add_password_credential(self, client_id: str, display_name: str) -> dict[str, Any]:
        """A passwordCredential on the app (the portal's "New client secret"), metadata
        only: the emulator keeps no secret, so ``secretText`` is null."""
        with self.lock:
            app = self.app(client_id)
            now = self.now()
            cred = {
                "customKeyIdentifier": None,
                "displayName": display_name,
                "endDateTime": iso(now + 180 * 86400),
                "hint": "abc",
                "keyId": self.ids.make("password", app.client_id, self._next()),
                "secretText": None,
                "startDateTime": iso(now),
            }
            app.passwords.append(cred)
            return dict(cred)

    def grants(self, client_id: str | None = None) -> list[dict[str, str]]:
        """The application permissions granted (admin consent), for one app or all."""
        with self.lock:
            apps = [self.app(client_id)] if client_id else list(self.apps.values())
            return [
                {"client_id": a.client_id, "role": r, "app_role_id": role_id(r)}
                for a in apps
                for r in sorted(a.roles)
            ]

    def set_key_credentials(self, app: AppState, entries: Any) -> None:
        """PATCH semantics: ``entries`` (Graph keyCredential dicts) REPLACE the collection.

        An entry naming an existing ``keyId`` without a ``key`` keeps that certificate
        (what a client that read the list without ``$select`` sends back).

        Raises:
            GraphApiError: 400 for a malformed entry.
        """
        if not isinstance(entries, list):
            raise GraphApiError(400, "BadRequest", "keyCredentials must be an array.")
        with self.lock:
            existing = {k.key_id: k for k in app.keys}
            new: list[KeyCredential] = []
            for entry in entries:
                new.append(self._key_from_entry(app, entry, existing))
            ids = [k.key_id for k in new]
            if len(set(ids)) != len(ids):
                raise GraphApiError(
                    400, "BadRequest", "Key credential keyId values must be unique."
                )
            app.keys = new

    def add_key(self, app: AppState, entry: Any) -> KeyCredential:
        """``addKey``: append one certificate (a Graph keyCredential dict with ``key``).

        Raises:
            GraphApiError: 400 for a malformed entry or a certificate already present.
        """
        if not isinstance(entry, dict) or not entry.get("key"):
            raise GraphApiError(400, "BadRequest", "keyCredential with a 'key' is required.")
        with self.lock:
            kc = self._key_from_entry(app, {**entry, "keyId": None}, {})
            if any(k.sha1_hex == kc.sha1_hex for k in app.keys):
                raise GraphApiError(
                    400, "BadRequest", "This certificate is already on the application."
                )
            app.keys.append(kc)
            return kc

    def remove_key(self, app: AppState, key_id: str) -> None:
        with self.lock:
            kept = [k for k in app.keys if k.key_id != str(key_id).lower()]
            if len(kept) == len(app.keys):
                raise GraphApiError(
                    404, "Request_ResourceNotFound", f"No key credential with keyId '{key_id}'."
                )
            app.keys = kept

    def _key_from_entry(
        self, app: AppState, entry: Any, existing: Mapping[str, KeyCredential]
    ) -> KeyCredential:
        if not isinstance(entry, dict):
            raise GraphApiError(400, "BadRequest", "Each keyCredential must be an object.")
        key_id = str(entry.get("keyId") or "").lower()
        raw = entry.get("key")
        if not raw:
            if key_id in existing:
                return existing[key_id]
            raise GraphApiError(
                400,
                "BadRequest",
                "Property 'key' is required for a new keyCredential"
                + (f" (no existing key {key_id})." if key_id else "."),
            )
        if entry.get("type", "AsymmetricX509Cert") != "AsymmetricX509Cert":
            raise GraphApiError(
                400, "BadRequest", "Only keyCredentials of type AsymmetricX509Cert are supported."
            )
        if entry.get("usage", "Verify") not in ("Verify", "Sign"):
            raise GraphApiError(400, "BadRequest", "keyCredential usage must be Verify or Sign.")
        try:
            cert = load_certificate(raw if isinstance(raw, str) else str(raw))
        except ValueError:
            raise GraphApiError(
                400, "BadRequest", "Invalid certificate: key value is invalid certificate"
            ) from None
        if key_id and not is_guid(key_id):
            raise GraphApiError(400, "BadRequest", f"Invalid keyId '{key_id}'.")
        old = existing.get(key_id)
        start = _parse_date(entry.get("startDateTime"))
        end = _parse_date(entry.get("endDateTime"))
        kc = make_key_credential(
            cert,
            key_id=key_id or self.ids.make("key", app.client_id, self._next()),
            now=old.added_at if old is not None and old.der == _der(cert) else self.now(),
            display_name=entry.get("displayName"),
            start=start,
            end=end,
        )
        kc.usage = entry.get("usage", "Verify")
        return kc

    # ------------------------------------------------------------------------ graph

    def application_resource(self, app: AppState, *, with_keys: bool) -> dict[str, Any]:
        """The application object as Graph returns it."""
        tenant = self.tenants[app.tenant_id]
        return {
            "id": app.object_id,
            "appId": app.client_id,
            "createdDateTime": iso(app.created),
            "displayName": app.display_name,
            "publisherDomain": tenant.domain,
            "signInAudience": "AzureADMyOrg",
            "isFallbackPublicClient": app.public_client,
            "keyCredentials": [k.to_graph(with_key=with_keys) for k in app.keys],
            "passwordCredentials": [dict(p) for p in app.passwords],
            "requiredResourceAccess": app.required_resource_access
            if app.required_resource_access is not None
            else [
                {
                    "resourceAppId": GRAPH_APP_ID,
                    "resourceAccess": [
                        {"id": role_id(r), "type": "Role"} for r in sorted(app.roles)
                    ],
                }
            ]
            if app.roles
            else [],
        }

    def organization_resource(self, tenant: TenantState) -> dict[str, Any]:
        return {
            "id": tenant.id,
            "createdDateTime": iso(tenant.created),
            "displayName": tenant.display_name,
            "countryLetterCode": "US",
            "preferredLanguage": "en",
            "tenantType": "AAD",
            "verifiedDomains": [
                {
                    "capabilities": "Email, OfficeCommunicationsOnline",
                    "isDefault": True,
                    "isInitial": True,
                    "name": tenant.domain,
                    "type": "Managed",
                }
            ],
        }


def _key_state(k: KeyCredential) -> dict[str, Any]:
    return {
        "key_id": k.key_id,
        "der": base64.b64encode(k.der).decode(),
        "display_name": k.display_name,
        "start": k.start,
        "end": k.end,
        "added_at": k.added_at,
        "usage": k.usage,
        "type": k.type,
    }


def _key_from_state(k: Mapping[str, Any]) -> KeyCredential:
    cert = load_certificate(base64.b64decode(str(k["der"])))
    kc = make_key_credential(
        cert,
        key_id=str(k["key_id"]),
        now=float(k["added_at"]),
        display_name=str(k["display_name"]),
        start=float(k["start"]),
        end=float(k["end"]),
    )
    kc.usage = str(k.get("usage", "Verify"))
    kc.type = str(k.get("type", "AsymmetricX509Cert"))
    return kc


def role_id(role: str) -> str:
    return GRAPH_ROLES.get(role) or str(uuid.uuid5(uuid.NAMESPACE_URL, f"graph-role:{role}"))


def _check_role(role: str) -> str:
    if not isinstance(role, str) or not _ROLE_RE.fullmatch(role):
        raise ValueError(f"{role!r} is not a permission name such as 'User.Read.All'")
    return role


def _der(cert: Any) -> bytes:
    from cryptography.hazmat.primitives import serialization

    return bytes(cert.public_bytes(serialization.Encoding.DER))


def _parse_date(value: Any) -> float | None:
    if not value:
        return None
    try:
        text = str(value).replace("Z", "+00:00")
        parsed = dt.datetime.fromisoformat(text)
    except ValueError:
        raise GraphApiError(400, "BadRequest", f"Invalid date '{value}'.") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=dt.UTC)
    return parsed.timestamp()
