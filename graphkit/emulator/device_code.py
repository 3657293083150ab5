"""Delegated sign-in: signed-in users with directory roles, and the device code flow.

State only (no HTTP): :class:`Accounts` holds the users an administrator can sign in as
and :class:`DeviceFlows` the pending device-code requests. The routes module serves
``POST {tenant}/oauth2/v2.0/devicecode`` and the ``device_code`` grant of the token
endpoint from them; the admin API approves, declines or slows down a user code.

Sources (docs/FIDELITY.md, "Device code flow"): entra-docs ``v2-oauth2-device-code.md``
and PROTOCOL.md §7 for the answers, RFC 8628 §3.5 for ``slow_down``, a captured
AADSTS70016 answer (Microsoft Q&A 981553) for the pending text.
"""

from __future__ import annotations

import hashlib
import secrets
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from graphkit.emulator.errors import EntraError

__all__ = [
    "DEVICE_CODE_GRANT",
    "DIRECTORY_ROLES",
    "PUBLIC_CLIENTS",
    "Account",
    "Accounts",
    "DeviceFlow",
    "DeviceFlows",
]

DEVICE_CODE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"
VERIFICATION_URI = "https://microsoft.com/devicelogin"  # PROTOCOL.md §7
DEFAULT_EXPIRES_IN = 900  # PROTOCOL.md §7, entra-docs v2-oauth2-device-code.md
DEFAULT_INTERVAL = 5

# Directory roles and their template ids (the `wids` claim of delegated tokens; entra-docs
# "Microsoft Entra built-in roles", permissions-reference.md).
DIRECTORY_ROLES: dict[str, str] = {
    "Global Administrator": "62e90394-69f5-4237-9190-012177145e10",
    "Privileged Role Administrator": "e8611ab8-c189-46e8-94e1-60213ab1f814",
    "Application Administrator": "9b895d92-2cd3-44c7-9d02-a6ac2d5ea5c3",
    "Cloud Application Administrator": "158c047a-c907-4556-b7ef-446551a6b5f7",
}
# Every member user holds this one (the "User" role template).
_MEMBER_WID = "b79fbf4d-3ef9-4689-8143-76b194e85509"

# Microsoft's first-party public clients, present in every tenant (PROTOCOL.md §7).
PUBLIC_CLIENTS: dict[str, str] = {
    "14d82eec-204b-4c2f-b7e8-296a70dab67e": "Microsoft Graph Command Line Tools",
    "04b07795-8ddb-461a-bbee-02f9e1bf7b46": "Microsoft Azure CLI",
    "1950a258-227b-4e31-a9cf-717495945fc2": "Microsoft Azure PowerShell",
}


@dataclass
class Account:
    """A user who can sign in interactively (approve a device code)."""

    id: str
    tenant_id: str
    upn: str
    display_name: str
    roles: list[str] = field(default_factory=list)  # directory role names

    def wids(self) -> list[str]:
        return [DIRECTORY_ROLES[r] for r in self.roles] + [_MEMBER_WID]

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "tenant_id": self.tenant_id,
            "user_principal_name": self.upn,
            "display_name": self.display_name,
            "roles": list(self.roles),
        }


def check_roles(roles: Iterable[Any]) -> list[str]:
    """Directory role names, validated.

    Raises:
        ValueError: a name that is not one of :data:`DIRECTORY_ROLES`.
    """
    out: list[str] = []
    for role in roles:
        if role not in DIRECTORY_ROLES:
            raise ValueError(
                f"{role!r} is not a directory role the emulator knows; use one of "
                + ", ".join(DIRECTORY_ROLES)
            )
        if role not in out:
            out.append(str(role))
    return out


class Accounts:
    """The signed-in users of every tenant, by object id."""

    def __init__(self) -> None:
        self.by_id: dict[str, Account] = {}

    def add(self, account: Account) -> Account:
        if self.find(account.tenant_id, account.upn) is not None:
            raise ValueError(f"user {account.upn} exists already")
        self.by_id[account.id] = account
        return account

    def find(self, tenant_id: str, ident: str) -> Account | None:
        """By object id or user principal name (case-insensitive; the part before the @
        alone names a user of the tenant too)."""
        ident = ident.strip().lower()
        for a in self.by_id.values():
            upn = a.upn.lower()
            if a.tenant_id == tenant_id and ident in (a.id, upn, upn.partition("@")[0]):
                return a
        return None

    def export(self) -> list[dict[str, Any]]:
        return [a.to_dict() for a in self.by_id.values()]

    def load(self, items: Iterable[Mapping[str, Any]]) -> None:
        self.by_id = {}
        for a in items:
            account = Account(
                id=str(a["id"]),
                tenant_id=str(a["tenant_id"]),
                upn=str(a["user_principal_name"]),
                display_name=str(a["display_name"]),
                roles=check_roles(a.get("roles", [])),
            )
            self.by_id[account.id] = account


@dataclass
class DeviceFlow:
    device_code: str
    user_code: str
    tenant_id: str
    client_id: str
    scopes: list[str]  # as requested (Graph scope names, without the resource prefix)
    created: float
    expires_in: int
    interval: int
    state: str = "pending"  # pending | approved | declined | redeemed
    account_id: str | None = None
    polls: int = 0
    slow_downs: int = 0  # slow_down answers queued by the admin API

    def to_dict(self) -> dict[str, Any]:
        return {
            "user_code": self.user_code,
            "tenant_id": self.tenant_id,
            "client_id": self.client_id,
            "scopes": list(self.scopes),
            "state": self.state,
            "account_id": self.account_id,
            "polls": self.polls,
            "expires_at": self.created + self.expires_in,
            "interval": self.interval,
        }


class DeviceFlows:
    """Pending device-code requests; a condition is notified on every poll and change,
    so a test can wait for msal's first poll without sleeping."""

    def __init__(self) -> None:
        self.by_device_code: dict[str, DeviceFlow] = {}
        self.changed = threading.Condition()

    def start(
        self,
        *,
        tenant_id: str,
        client_id: str,
        scopes: list[str],
        now: float,
        expires_in: int,
        interval: int,
    ) -> DeviceFlow:
        user_code = _user_code()
        flow = DeviceFlow(
            device_code=_device_code(),
            user_code=user_code,
            tenant_id=tenant_id,
            client_id=client_id,
            scopes=scopes,
            created=now,
            expires_in=expires_in,
            interval=interval,
        )
        with self.changed:
            self.by_device_code[flow.device_code] = flow
            self.changed.notify_all()
        return flow

    def by_user_code(self, user_code: str) -> DeviceFlow:
        wanted = user_code.strip().upper()
        with self.changed:
            for flow in self.by_device_code.values():
                if flow.user_code == wanted:
                    return flow
        raise KeyError(f"no device code request with user code {user_code!r}")

    def list(self) -> list[dict[str, Any]]:
        with self.changed:
            return [f.to_dict() for f in self.by_device_code.values()]

    def set_state(self, user_code: str, state: str, account_id: str | None = None) -> DeviceFlow:
        flow = self.by_user_code(user_code)
        with self.changed:
            if flow.state != "pending":
                raise ValueError(f"user code {flow.user_code} is {flow.state} already")
            flow.state = state
            flow.account_id = account_id
            self.changed.notify_all()
        return flow

    def queue_slow_down(self, user_code: str, times: int = 1) -> DeviceFlow:
        flow = self.by_user_code(user_code)
        with self.changed:
            flow.slow_downs += max(1, int(times))
        return flow

    def wait_for_poll(self, user_code: str, polls: int = 1, timeout: float = 30.0) -> bool:
        """Block until the request of ``user_code`` has been polled ``polls`` times."""
        with self.changed:
            return self.changed.wait_for(
                lambda: any(
                    f.user_code == user_code.strip().upper() and f.polls >= polls
                    for f in self.by_device_code.values()
                ),
                timeout,
            )

    def poll(self, device_code: str, client_id: str, now: float) -> DeviceFlow:
        """One poll of the token endpoint: the flow when approved, else the Entra error.

        Raises:
            EntraError: authorization_pending (70016), slow_down, authorization_declined,
                expired_token (70020), or invalid_grant for an unknown code.
        """
        with self.changed:
            flow = self.by_device_code.get(device_code.strip())
            if flow is None or flow.client_id != client_id.lower():
                raise EntraError(
                    "invalid_grant",
                    70000,
                    "The provided value for the input parameter 'device_code' is not valid.",
                )
            flow.polls += 1
            self.changed.notify_all()
            if flow.state == "redeemed":
                # A device code answers one token (RFC 8628 §3.5: the grant is used up).
                raise EntraError(
                    "invalid_grant",
                    54005,
                    "OAuth2 Authorization code was already redeemed, please retry with a "
                    "new valid code or use an existing refresh token.",
                )
            if now > flow.created + flow.expires_in:
                raise EntraError(
                    "expired_token",
                    70020,
                    "The provided value for the input parameter 'device_code' is not valid. "
                    "This device code has expired.",
                )
            if flow.state == "declined":
                raise EntraError(
                    "authorization_declined", 70000, "The end user declined the authorization."
                )
            if flow.slow_downs > 0:
                flow.slow_downs -= 1
                flow.interval += 5  # RFC 8628 §3.5
                raise EntraError(
                    "slow_down",
                    70016,
                    "Polling too fast: wait the interval, 5 seconds longer than before, "
                    "between requests.",
                )
            if flow.state == "pending":
                # Captured answer (Microsoft Q&A 981553).
                raise EntraError(
                    "authorization_pending",
                    70016,
                    "The provided request has not yet been authorized by the user. The user "
                    "must input their code.",
                )
            flow.state = "redeemed"
            return flow


_USER_CODE_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"


def _user_code() -> str:
    """Nine characters, as Entra's (``YZMYLD4K``-like, upper case and digits)."""
    return "".join(secrets.choice(_USER_CODE_ALPHABET) for _ in range(9))


def _device_code() -> str:
    raw = secrets.token_urlsafe(96)
    return "DAQABAAEAAAD" + hashlib.sha256(raw.encode()).hexdigest() + raw
