"""An administrator's delegated sign-in, with the device code flow (PROTOCOL.md §7).

Commands that change the tenant itself (``graphkit app create``, ``cert --admin``) act
as a signed-in administrator rather than as the app: :func:`sign_in` runs msal's
``PublicClientApplication`` device code flow against the configured authority (CA
bundle, hosts and tenant from :class:`~graphkit.settings.Settings`, as
:class:`~graphkit.tokens.CertificateCredential` does for the app), and returns an
:class:`AdminCredential` that :class:`~graphkit.graph.GraphClient` takes like any
other credential (:func:`graph_client`).

The library never prints: the code and the URL to enter it at go to ``on_code``, and
``on_tick`` is called about once a second while the flow polls (a countdown). Time is
injectable (``sleep``, ``clock``). Failures are :class:`~graphkit.errors.AuthError`
with advice (:func:`graphkit.token_errors.device_code_error`). The delegated token is
held in memory only: nothing of the sign-in is written to disk.

Example::

    from graphkit import admin_signin

    admin = admin_signin.sign_in(
        settings, admin_signin.APP_CREATE_SCOPES, on_code=lambda c: print(c.message)
    )
    with admin_signin.graph_client(settings, admin) as graph:
        graph.get("/servicePrincipals", {"$top": "1"})
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from graphkit.errors import AuthError, UsageError

if TYPE_CHECKING:  # pragma: no cover
    from graphkit.graph import GraphClient
    from graphkit.settings import Settings
    from graphkit.tokens import AccessToken

__all__ = [
    "APP_CREATE_SCOPES",
    "DEFAULT_CLIENT_ID",
    "DEFAULT_CLIENT_NAME",
    "AdminCredential",
    "DeviceCode",
    "graph_client",
    "sign_in",
]

# Microsoft Graph Command Line Tools: the public client Graph PowerShell's
# Connect-MgGraph signs in with; it may ask for any Graph delegated scope (PROTOCOL.md §7).
DEFAULT_CLIENT_ID = "14d82eec-204b-4c2f-b7e8-296a70dab67e"
DEFAULT_CLIENT_NAME = "Microsoft Graph Command Line Tools"
# What creating an app and granting it Graph application permissions needs (PROTOCOL.md
# §8): Application.ReadWrite.All for /applications and /servicePrincipals (it includes
# reading them), AppRoleAssignment.ReadWrite.All for appRoleAssignedTo.
APP_CREATE_SCOPES = ("Application.ReadWrite.All", "AppRoleAssignment.ReadWrite.All")
# A token with less than this left is not handed out (Graph calls would fail midway).
_MIN_LIFETIME = 60
# The answers that mean "poll again" (RFC 8628 §3.5; msal's DEVICE_FLOW_RETRIABLE_ERRORS).
_PENDING = ("authorization_pending", "slow_down")


@dataclass(frozen=True)
class DeviceCode:
    """What the administrator must do: open ``verification_uri`` and enter ``user_code``."""

    user_code: str
    verification_uri: str
    message: str  # Entra's own sentence saying so
    expires_in: int  # seconds
    client_id: str  # the public client signing in


class AdminCredential:
    """A signed-in administrator's delegated token, for :class:`GraphClient`.

    There is no refresh: the flow asks for no ``offline_access``, so nothing longer-lived
    than the access token (about an hour) ever exists. ``get_token(force_refresh=True)``
    or an expired token raise :class:`AuthError` saying to sign in again.
    """

    def __init__(
        self,
        token: AccessToken,
        *,
        client_id: str,
        scopes: tuple[str, ...],
        now: Callable[[], float] = time.time,
    ) -> None:
        self._token = token
        self.client_id = client_id
        self.scopes = scopes
        self._now = now
        claims = token.claims
        self.user: str = str(claims.get("upn") or claims.get("unique_name") or "")
        self.user_id: str = str(claims.get("oid") or "")
        self.tenant_id: str = str(claims.get("tid") or "")
        scp = claims.get("scp")
        self.granted_scopes: list[str] = str(scp).split() if isinstance(scp, str) else []

    def get_token(self, *, force_refresh: bool = False) -> AccessToken:
        """The administrator's token (the :class:`~graphkit.graph.TokenCredential` protocol).

        Raises:
            AuthError: it was refused (``force_refresh``) or has expired: sign in again.
        """
        left = self._token.expires_on - self._now()
        if force_refresh or left < _MIN_LIFETIME:
            why = "was refused by Graph" if force_refresh and left >= _MIN_LIFETIME else "expired"
            raise AuthError(
                f"the administrator's sign-in ({self.user or 'delegated token'}) {why}",
                "run the command again to sign in again",
            )
        return self._token

    def __repr__(self) -> str:  # never the token
        return f"AdminCredential(user={self.user!r}, client_id={self.client_id!r})"


def _scope_urls(settings: Settings, scopes: Iterable[str]) -> list[str]:
    """Graph delegated scope names as the resource's full scope URLs."""
    out: list[str] = []
    for name in scopes:
        name = name.strip()
        if not name:
            continue
        out.append(name if "://" in name else f"{settings.graph_url}/{name}")
    if not out:
        raise UsageError("no delegated scope to sign in for", "name the Graph scopes needed")
    return out


def _public_app(settings: Settings, client_id: str, http_client: Any) -> Any:
    import msal
    import requests

    from graphkit import tokens
    from graphkit.token_errors import discovery_error, network_error

    tokens._guard_msal_logs()
    host = (urlsplit(settings.authority_host).hostname or "").lower()
    kwargs: dict[str, Any] = {}
    if host not in tokens._PUBLIC_LOGIN_HOSTS:
        kwargs["instance_discovery"] = False
    tenant = settings.tenant or "organizations"
    try:
        return msal.PublicClientApplication(
            client_id,
            authority=f"{settings.authority_host}/{tenant}",
            http_client=http_client,
            http_cache={},  # in memory: nothing of the sign-in is kept on disk
            token_cache=msal.TokenCache(),
            **kwargs,
        )
    except requests.exceptions.RequestException as exc:
        raise network_error(exc, settings) from None
    except (ValueError, RecursionError) as exc:
        raise discovery_error(exc, settings) from None


def sign_in(
    settings: Settings,
    scopes: Iterable[str] = APP_CREATE_SCOPES,
    *,
    client_id: str | None = None,
    on_code: Callable[[DeviceCode], None],
    on_tick: Callable[[float], None] | None = None,
    http_client: Any = None,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> AdminCredential:
    """Sign an administrator in with the device code flow; return their credential.

    Args:
        settings: the authority host, tenant (none: ``organizations``, the user's home
            tenant), Graph URL (the scopes' resource) and CA bundle.
        scopes: Graph delegated scope names (``Application.ReadWrite.All``) or full
            scope URLs: only what the calls to come need.
        client_id: the public client to sign in through (default
            :data:`DEFAULT_CLIENT_ID`); a custom one needs "Allow public client flows".
        on_code: given the :class:`DeviceCode` to show the administrator, once.
        on_tick: called with the seconds left before the code expires, about once a
            second while waiting between polls.
        http_client: a requests.Session-like object (default: graphkit's session for
            the identity platform: the CA bundle, no redirect, no other origin).
        sleep, clock: how the waits between polls are spent and measured.

    Returns:
        An :class:`AdminCredential` holding the delegated token (in memory only).

    Raises:
        AuthError: declined, expired, refused (Conditional Access, a client without
            public client flows, consent...), each with what to do.
        NetworkError: the identity platform could not be reached.
        ConfigError: a malformed client id.
    """
    import requests

    from graphkit.settings import check_client_id
    from graphkit.token_errors import device_code_error, network_error
    from graphkit.tokens import DEFAULT_TIMEOUT, _access_token, _make_session

    client = check_client_id(client_id) if client_id else DEFAULT_CLIENT_ID
    wanted = _scope_urls(settings, scopes)
    own_session = http_client is None
    if http_client is None:
        http_client = _make_session(settings.ca_bundle, DEFAULT_TIMEOUT, settings.authority_host)
    try:
        app = _public_app(settings, client, http_client)
        try:
            flow = app.initiate_device_flow(scopes=wanted)
        except requests.exceptions.RequestException as exc:
            raise network_error(exc, settings) from None
        if "user_code" not in flow:
            raise device_code_error(flow, settings, client)
        expires_in = int(flow.get("expires_in") or 900)
        uri = str(flow.get("verification_uri") or flow.get("verification_url") or "")
        on_code(
            DeviceCode(
                user_code=str(flow["user_code"]),
                verification_uri=uri,
                message=str(flow.get("message") or f"Enter the code {flow['user_code']} at {uri}"),
                expires_in=expires_in,
                client_id=client,
            )
        )
        deadline = clock() + expires_in
        while True:
            try:
                with warnings.catch_warnings():
                    # msal warns when polled sooner than the interval by ITS clock; the
                    # interval is kept here, by ``clock``.
                    warnings.simplefilter("ignore")
                    # One poll: our loop waits (msal's own would time.sleep).
                    result = app.acquire_token_by_device_flow(flow, exit_condition=lambda f: True)
            except requests.exceptions.RequestException as exc:
                raise network_error(exc, settings) from None
            if "access_token" in result:
                token = _access_token(result)
                from graphkit.errors import register_secret

                register_secret(token.token)
                return AdminCredential(token, client_id=client, scopes=tuple(wanted))
            if result.get("error") not in _PENDING:
                raise device_code_error(result, settings, client, verification_uri=uri)
            if clock() >= deadline:
                raise device_code_error(
                    {"error": "expired_token"}, settings, client, verification_uri=uri
                )
            # slow_down: msal has already added 5 s to flow["interval"] (RFC 8628 §3.5).
            interval = max(1.0, float(flow.get("interval") or 5))
            end = min(clock() + interval, deadline)
            while (remaining := end - clock()) > 0:
                if on_tick is not None:
                    on_tick(deadline - clock())
                sleep(min(1.0, remaining))
    finally:
        if own_session:
            http_client.close()


def graph_client(settings: Settings, credential: AdminCredential, **kw: Any) -> GraphClient:
    """A :class:`~graphkit.graph.GraphClient` on ``settings.graph_url`` (and its CA
    bundle) that calls Graph as the signed-in administrator. ``kw`` goes to
    :class:`GraphClient` (``on_wait``, ``sleep``...)."""
    from graphkit.graph import GraphClient

    kw.setdefault("ca_bundle", settings.ca_bundle)
    return GraphClient(settings.graph_url, credential, **kw)
