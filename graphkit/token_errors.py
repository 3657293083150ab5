"""What the identity platform's refusals mean, and what to do about each.

:func:`token_error` turns a token-endpoint (or OIDC discovery) error answer into an
:class:`~graphkit.errors.AuthError` whose hint says what to do (PROTOCOL.md §2);
:func:`network_error`, :func:`discovery_error` and :func:`throttled` do the same for
connection failures, msal's discovery ValueErrors and HTTP 429. Every server text
quoted goes through :func:`graphkit.errors.redact` first.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from graphkit.errors import AuthError, NetworkError, ThrottledError, redact

if TYPE_CHECKING:  # pragma: no cover
    from graphkit.certificates import CertificateFacts, ClientCertificate
    from graphkit.settings import Settings

__all__ = [
    "device_code_error",
    "discovery_error",
    "first_line",
    "network_error",
    "throttled",
    "token_error",
]

_CODE = re.compile(r"AADSTS(\d+)")


def _error_codes(result: Mapping[str, Any]) -> list[int]:
    codes = [int(c) for c in result.get("error_codes") or [] if str(c).isdigit()]
    if not codes:
        codes = [int(c) for c in _CODE.findall(str(result.get("error_description", "")))]
    return codes


def first_line(text: str) -> str:
    line = text.strip().splitlines()[0] if text.strip() else ""
    return line[:300]


def _upload_hint(cert: ClientCertificate | CertificateFacts | None) -> str:
    if cert is None:
        return "upload the app's certificate"
    if cert.holds_key:
        # Never suggest uploading a file that contains the private key.
        return f"upload the public certificate from {cert.path} (the .crt/.cer, never the key)"
    return f"upload {cert.path}"


def token_error(
    result: Mapping[str, Any],
    settings: Settings,
    cert: ClientCertificate | CertificateFacts | None = None,
    *,
    scope: str | None = None,
) -> AuthError:
    """Turn a token-endpoint (or discovery) error answer into advice (PROTOCOL.md §2).

    ``scope``: the scope asked for, when it is not Graph's (``--scope``/``--resource``).
    """
    error = str(result.get("error") or "error")
    other = scope is not None and scope != settings.scope
    codes = _error_codes(result)
    code = codes[0] if codes else None
    description = first_line(redact(str(result.get("error_description") or "")))
    client_id = settings.client_id
    tenant = settings.tenant
    if code == 700027:
        sha1 = cert.sha1 if cert else "(unknown)"
        return AuthError(
            f"certificate {sha1} is not registered on app {client_id}",
            f"{_upload_hint(cert)} under Certificates & secrets, "
            "or wait a few minutes after uploading",
            code=code,
        )
    if code == 7000229:
        return AuthError(
            f"app {client_id} has no service principal in tenant {tenant} yet (AADSTS7000229)",
            "a new app's service principal takes a moment to propagate: wait a minute and "
            "retry; if it persists, create it (`graphkit app create --client-id "
            f"{client_id} ...` does)",
            code=code,
        )
    if code == 700016:
        return AuthError(
            f"application {client_id} was not found in tenant {tenant}",
            "check the client id (Application (client) ID on the app's Overview page) and "
            "that the app is registered in this tenant",
            code=code,
        )
    if code == 90002 or error == "invalid_tenant":
        return AuthError(
            f"tenant {tenant} was not found at {settings.authority_host}",
            "check the tenant (Directory (tenant) ID or a verified domain) and the cloud "
            "or authority host",
            code=code,
        )
    if code == 90010:
        return AuthError(
            f"tenant {tenant!r} cannot be used for app-only tokens (AADSTS90010: client "
            "credentials are not supported over /common, /consumers or /organizations)",
            "use the Directory (tenant) ID GUID or a domain such as contoso.onmicrosoft.com",
            code=code,
        )
    if code == 900023:
        return AuthError(
            f"tenant {tenant!r} is not a valid tenant identifier",
            "use the Directory (tenant) ID GUID or a domain such as contoso.onmicrosoft.com",
            code=code,
        )
    if code == 700024:
        now = dt.datetime.now(dt.UTC)
        return AuthError(
            "the identity platform says the client assertion is outside its valid time range",
            f"check this computer's clock (it reads {now:%Y-%m-%d %H:%M:%S} UTC) and time zone",
            code=code,
        )
    if code == 50032:
        bits = f" ({cert.key_bits} bits)" if cert else ""
        return AuthError(
            f"the certificate's RSA key is too short{bits}: Entra ID requires 2048 bits or more",
            "make a new key and certificate with `graphkit keygen` and `graphkit selfsign`, "
            "and upload it",
            code=code,
        )
    if other and (code in (1002012, 70011) or error == "invalid_scope"):
        return AuthError(
            f"scope {scope} was refused",
            "give exactly one resource followed by /.default, e.g. "
            "https://contoso.sharepoint.com/.default",
            code=code,
        )
    if other and code == 500011:
        resource = str(scope).removesuffix("/.default")
        return AuthError(
            f"resource {resource} is not known in tenant {tenant}",
            "check the resource's URL (SharePoint Online: https://<tenant>.sharepoint.com; "
            "Exchange Online: https://outlook.office365.com); the tenant must have that service",
            code=code,
        )
    if code in (1002012, 70011) or error == "invalid_scope":
        return AuthError(
            f"scope {settings.scope} was refused",
            "graph_url must be the Graph resource for this cloud (e.g. "
            "https://graph.microsoft.com), without a version segment",
            code=code,
        )
    if code == 700021:
        return AuthError(
            f"the client assertion's issuer does not match client id {client_id}",
            "check the client id",
            code=code,
        )
    if code == 500011:
        return AuthError(
            f"resource {settings.graph_url} is not known in tenant {tenant}",
            "check graph_url and the cloud",
            code=code,
        )
    detail = f" (AADSTS{code})" if code else ""
    trace = result.get("correlation_id") or result.get("trace_id")
    hint = f"correlation id {trace}" if trace else None
    return AuthError(
        f"the token endpoint refused the request: {error}{detail}: {description}".rstrip(": "),
        hint,
        code=code,
    )


_ADMIN_CLIENT_HINT = (
    "leave out --admin-client-id to sign in through Microsoft Graph Command Line Tools"
)


def device_code_error(
    result: Mapping[str, Any], settings: Settings, client_id: str, *, verification_uri: str = ""
) -> AuthError:
    """An administrator's device code sign-in that failed, with what to do
    (PROTOCOL.md §7): declined, expired, Conditional Access (AADSTS53000 / 50097), a
    custom client without "Allow public client flows" (7000218), consent (65001), an
    unknown client (700016); anything else as :func:`token_error` says it."""
    error = str(result.get("error") or "error")
    codes = _error_codes(result)
    code = codes[0] if codes else None
    tenant = settings.tenant or "organizations"
    where = f" at {verification_uri}" if verification_uri else ""
    if error == "authorization_declined":
        return AuthError(
            "the sign-in was declined",
            "run the command again and accept the request, or sign in as another administrator",
            code=code,
        )
    if error == "expired_token" or code == 70020:
        return AuthError(
            "the sign-in code expired before anyone signed in with it",
            f"run the command again and enter the new code{where} within its time",
            code=code,
        )
    if code in (53000, 50097):
        return AuthError(
            f"Conditional Access refused the sign-in (AADSTS{code}: the tenant requires a "
            "compliant or managed device, which a device code sign-in cannot prove)",
            "sign in from a device your organisation allows, or as another administrator "
            "whom the policy does not cover, or ask for an exclusion for this sign-in",
            code=code,
        )
    if code == 7000218:
        return AuthError(
            f"client {client_id} does not allow public client flows (AADSTS7000218): a device "
            "code sign-in needs a public client",
            "in that app registration set Authentication > Allow public client flows to Yes, "
            f"or {_ADMIN_CLIENT_HINT}",
            code=code,
        )
    if code == 65001:
        return AuthError(
            f"the permissions asked for have not been consented to for client {client_id} "
            "(AADSTS65001)",
            "sign in as an administrator who may consent (e.g. Global Administrator), or "
            "have one grant consent to that client first",
            code=code,
        )
    if code == 700016:
        return AuthError(
            f"client {client_id} was not found in tenant {tenant} (AADSTS700016)",
            f"check --admin-client-id and --tenant, or {_ADMIN_CLIENT_HINT}",
            code=code,
        )
    return token_error(result, settings)


def network_error(exc: BaseException, settings: Settings) -> NetworkError:
    import requests

    host = urlsplit(settings.authority_host).netloc
    if isinstance(exc, requests.exceptions.SSLError):
        return NetworkError(
            f"TLS verification failed for {host}",
            "if it uses a private CA, give its certificate with --ca-bundle or GRAPHKIT_CA_BUNDLE",
        )
    if isinstance(exc, requests.exceptions.Timeout):
        return NetworkError(f"{host} did not answer in time", "check the network and retry")
    if isinstance(exc, requests.exceptions.HTTPError) and exc.response is not None:
        return NetworkError(
            f"the identity platform at {host} answered HTTP {exc.response.status_code}",
            "retry later",
        )
    from graphkit.transport import connection_refused, is_loopback, loopback_refused_hint

    hostname = urlsplit(settings.authority_host).hostname or ""
    if is_loopback(hostname) and connection_refused(exc):
        return NetworkError(
            f"cannot connect to {host}", loopback_refused_hint(settings.authority_host)
        )
    return NetworkError(
        f"cannot connect to {host}",
        "check the network, proxy settings and the authority host",
    )


def discovery_error(exc: ValueError | RecursionError, settings: Settings) -> AuthError:
    """msal raises ValueError when OIDC discovery fails (RecursionError when its JSON
    nests too deep); dig out the AADSTS code."""
    texts = []
    e: BaseException | None = exc
    while e is not None:
        texts.append(str(e))
        e = e.__context__ or e.__cause__
    text = " ".join(texts)
    match = re.search(r"\{.*\}", text, re.DOTALL)
    body: dict[str, Any] = {}
    if match:
        with contextlib.suppress(ValueError, RecursionError):  # a server's text, nested deep
            parsed = json.loads(match.group(0))
            if isinstance(parsed, dict):
                body = parsed
    if not body:
        codes = _CODE.findall(text)
        if codes:
            body = {"error": "invalid_request", "error_codes": [int(codes[0])]}
    if body:
        return token_error(body, settings)
    return AuthError(
        f"OIDC discovery failed at {settings.authority}",
        "check the tenant and the authority host",
    )


def throttled() -> ThrottledError:
    return ThrottledError(
        "the token endpoint is throttling requests (HTTP 429)", "wait a minute and retry"
    )
