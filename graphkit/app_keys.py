"""The certificates registered on an app (its ``keyCredentials``), through Graph.

Library code: it returns data and raises :mod:`graphkit.errors` exceptions; nothing
here prints. Two ways to change the list (PROTOCOL.md §6, §9):

- the app itself, with its own token and a *proof*: ``addKey`` / ``removeKey`` need no
  permission at all, only a JWT signed by one of the app's current certificates
  (:func:`build_proof`);
- someone allowed to write the registration (an administrator's delegated token, or an
  app holding Application.ReadWrite.*): a read-modify-write ``PATCH`` of
  ``keyCredentials``, which replaces the whole collection, so every other certificate is
  read first and sent back unchanged (:func:`patch_keys`). Password credentials cannot
  be set by PATCH at all (application-update.md): they are read before and checked
  after, never sent.

Proofs and keyCredentials are built from ``cryptography`` objects; files are read by the
callers (the CLI, :mod:`graphkit.rotation`).
"""

from __future__ import annotations

import base64
import datetime as dt
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from graphkit.errors import (
    BadRequestError,
    ConfigError,
    GraphError,
    InputError,
    NotFoundError,
    PermissionDeniedError,
    UnauthorizedError,
    register_secret,
)

if TYPE_CHECKING:  # pragma: no cover
    from graphkit.graph import GraphClient
    from graphkit.settings import Settings

__all__ = [
    "OBJECT_ID_HINT",
    "PROOF_AUDIENCE",
    "PROOF_LIFETIME",
    "AppCertificate",
    "add_key",
    "application_path",
    "build_proof",
    "find_object_id",
    "key_credential",
    "list_certificates",
    "patch_keys",
    "remove_key",
]

# The proof's audience: Azure AD Graph's application id, which addKey/removeKey still
# require (application-rollkey-prooftoken.md).
PROOF_AUDIENCE = "00000002-0000-0000-c000-000000000000"
# exp may be at most 10 minutes after nbf (application-rollkey-prooftoken.md): use all
# of it, so a slow network does not expire the proof before it arrives.
PROOF_LIFETIME = 600
OBJECT_ID_HINT = (
    "give --object-id with the application's Object ID (the portal shows it on the app "
    'registration\'s Overview page, "Object ID"; it is not the client id), or store it '
    "as object_id in the profile"
)
_NO_PROOF_HINT = (
    "an expired or unregistered certificate cannot sign a proof: have an administrator "
    "add the new certificate with `graphkit cert add FILE --admin`"
)


# ------------------------------------------------------------------ pure parts


def build_proof(
    private_key: Any, certificate: Any, object_id: str, *, now: float | None = None
) -> str:
    """The proof-of-possession JWT that ``addKey``/``removeKey`` require.

    RS256 with the signing certificate's ``x5t``; ``aud`` 00000002-...; ``iss`` the
    application's OBJECT id; ``nbf`` now and ``exp`` 10 minutes later. PyJWT writes
    base64url without ``=`` padding (padding is refused by Graph).

    Args:
        private_key: the ``cryptography`` RSA key of ``certificate``.
        certificate: one of the app's current certificates (``x509.Certificate``).
        object_id: the application's object id.
        now: seconds since the epoch (default: the clock).
    """
    import jwt

    from graphkit import crypto

    start = int(time.time() if now is None else now)
    claims = {
        "aud": PROOF_AUDIENCE,
        "iss": object_id,
        "nbf": start,
        "exp": start + PROOF_LIFETIME,
    }
    headers = {"x5t": crypto.thumbprints(certificate)["x5t"]}
    return jwt.encode(claims, private_key, algorithm="RS256", headers=headers)


def key_credential(certificate: Any, display_name: str | None = None) -> dict[str, Any]:
    """A Graph ``keyCredential`` for ``certificate`` (PROTOCOL.md §6); Graph takes the
    dates from the certificate itself."""
    from cryptography.hazmat.primitives import serialization

    from graphkit import crypto

    crypto.require_rsa(certificate.public_key(), "the certificate's key")
    der = certificate.public_bytes(serialization.Encoding.DER)
    return {
        "type": "AsymmetricX509Cert",
        "usage": "Verify",
        "key": base64.b64encode(der).decode("ascii"),
        "displayName": display_name or certificate.subject.rfc4514_string() or None,
    }


def _parse_time(value: Any) -> dt.datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)


def _thumbprint(entry: dict[str, Any]) -> str | None:
    """SHA-1 in uppercase hex: from the certificate (``key``), else customKeyIdentifier."""
    import hashlib

    for field, hashed in (("key", False), ("customKeyIdentifier", True)):
        value = entry.get(field)
        if not isinstance(value, str) or not value:
            continue
        try:
            raw = base64.b64decode(value, validate=True)
        except ValueError:
            continue
        if hashed:
            return raw.hex().upper() if len(raw) == 20 else None
        return hashlib.sha1(raw, usedforsecurity=False).hexdigest().upper()  # a name
    return None


@dataclass(frozen=True)
class AppCertificate:
    """One certificate registered on the app, as the portal lists it."""

    key_id: str
    thumbprint: str | None  # SHA-1, uppercase hex (what the portal shows)
    display_name: str | None
    start: dt.datetime | None
    end: dt.datetime | None
    days_left: int | None
    expired: bool
    in_use: bool  # the certificate the profile signs in with

    def as_dict(self) -> dict[str, Any]:
        return {
            "thumbprint": self.thumbprint,
            "display_name": self.display_name,
            "start": self.start.isoformat() if self.start else None,
            "end": self.end.isoformat() if self.end else None,
            "days_left": self.days_left,
            "expired": self.expired,
            "key_id": self.key_id,
            "in_use": self.in_use,
        }


def certificates_from(
    entries: Any, *, in_use: str | None = None, now: dt.datetime | None = None
) -> list[AppCertificate]:
    """:class:`AppCertificate` rows for Graph's ``keyCredentials`` (``in_use``: the
    SHA-1 of the profile's certificate)."""
    from graphkit.certificates import days_left

    found: list[AppCertificate] = []
    for entry in entries if isinstance(entries, list) else []:
        if not isinstance(entry, dict):
            continue
        end = _parse_time(entry.get("endDateTime"))
        left = days_left(end, now) if end else None
        sha1 = _thumbprint(entry)
        found.append(
            AppCertificate(
                key_id=str(entry.get("keyId") or ""),
                thumbprint=sha1,
                display_name=entry.get("displayName"),
                start=_parse_time(entry.get("startDateTime")),
                end=end,
                days_left=left.days if left else None,
                expired=bool(left and left.expired),
                in_use=bool(in_use and sha1 == in_use.upper()),
            )
        )
    return found


# ---------------------------------------------------------------- Graph calls


def application_path(*, client_id: str | None = None, object_id: str | None = None) -> str:
    """The application's Graph path: by object id, else ``(appId='...')``."""
    if object_id:
        return f"/applications/{object_id}"
    if not client_id:
        raise ConfigError("no client id configured", "give --client-id or set it in the profile")
    return f"/applications(appId='{client_id}')"


def _read_denied(exc: PermissionDeniedError, what: str, client_id: str | None) -> GraphError:
    app = f"app {client_id}" if client_id else "the app"
    return exc.restated(
        f"{app} may not read its own registration ({what}): Graph answered 403",
        "grant it Application.Read.All (or make it an owner of itself with "
        "Application.ReadWrite.OwnedBy), or use --admin to sign in as an administrator",
    )


def find_object_id(client: GraphClient, settings: Settings, explicit: str | None = None) -> str:
    """The application's object id: ``explicit`` (--object-id), else the profile's
    ``object_id``, else read from Graph (``(appId='...')?$select=id``, which needs
    Application.Read.All or ownership).

    Raises:
        ConfigError: none works; the message says where the portal shows it.
    """
    from graphkit.settings import check_object_id

    if explicit:
        return check_object_id(explicit)
    if settings.object_id:
        return settings.object_id
    path = application_path(client_id=settings.client_id)
    try:
        body = client.get(path, {"$select": "id"})
    except (PermissionDeniedError, NotFoundError) as exc:
        raise ConfigError(
            f"the application's object id is not known and app {settings.client_id} may "
            f"not read it from Graph ({exc.status})",
            OBJECT_ID_HINT,
        ) from None
    oid = body.get("id") if isinstance(body, dict) else None
    if not isinstance(oid, str) or not oid:
        raise ConfigError("Graph did not return the application's object id", OBJECT_ID_HINT)
    return check_object_id(oid)


def read_credentials(
    client: GraphClient, path: str, *, client_id: str | None = None
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The app's keyCredentials (with ``key``: ``$select`` names them) and
    passwordCredentials.

    Raises:
        ConfigError: ``path`` is another app's registration than ``client_id``'s.
        PermissionDeniedError: the caller may not read the registration (403), with
            what to grant.
    """
    try:
        body = client.get(path, {"$select": "appId,keyCredentials,passwordCredentials"})
    except PermissionDeniedError as exc:
        raise _read_denied(exc, "its keyCredentials", client_id) from None
    if not isinstance(body, dict):
        raise GraphError(f"Graph GET {path} returned no application object")
    found = str(body.get("appId") or "")
    if client_id and found and found.lower() != client_id.lower():
        # An object id of another app (mistyped, or the profile moved): nothing of
        # that app is listed, let alone changed.
        raise ConfigError(
            f"{path} is the registration of app {found}, not of app {client_id} (the "
            "profile's client id)",
            "give the Object ID from the Overview page of the app registration with that "
            "client id (--object-id, or `graphkit config set NAME --object-id ...`)",
        )
    keys = [k for k in body.get("keyCredentials") or [] if isinstance(k, dict)]
    passwords = [p for p in body.get("passwordCredentials") or [] if isinstance(p, dict)]
    return keys, passwords


def list_certificates(
    client: GraphClient,
    path: str,
    *,
    in_use: str | None = None,
    client_id: str | None = None,
    now: dt.datetime | None = None,
) -> list[AppCertificate]:
    """The certificates registered on the app at ``path`` (:func:`application_path`)."""
    keys, _passwords = read_credentials(client, path, client_id=client_id)
    return certificates_from(keys, in_use=in_use, now=now)


def _proof_refused(exc: UnauthorizedError, signer_sha1: str) -> GraphError:
    return exc.restated(
        f"Graph refused the proof signed by certificate {signer_sha1} ({exc.code}): that "
        "certificate is not (or no longer) registered on the app, or has expired",
        _NO_PROOF_HINT,
    )


def add_key(
    client: GraphClient,
    object_id: str,
    certificate: Any,
    *,
    signer_key: Any,
    signer_certificate: Any,
    now: float | None = None,
) -> dict[str, Any]:
    """``POST /applications/{object_id}/addKey`` with a proof signed by the signer.

    Returns:
        The new keyCredential as Graph answers it (``keyId`` included).

    Raises:
        UnauthorizedError: the proof was refused (signer not registered, or expired).
    """
    from graphkit import crypto

    proof = build_proof(signer_key, signer_certificate, object_id, now=now)
    register_secret(proof)  # redacted from anything an error or a log could show
    body = {
        "keyCredential": key_credential(certificate),
        "passwordCredential": None,
        "proof": proof,
    }
    try:
        answer = client.request("POST", f"/applications/{object_id}/addKey", json_body=body)
    except UnauthorizedError as exc:
        raise _proof_refused(exc, crypto.thumbprints(signer_certificate)["sha1"]) from None
    except BadRequestError as exc:  # the certificate itself, not a query option
        sha1 = crypto.thumbprints(certificate)["sha1"]
        raise exc.restated(
            f"addKey refused certificate {sha1}: {exc.message}",
            "see `graphkit cert list` (or --admin) for the certificates the app holds already",
        ) from None
    return dict(answer) if isinstance(answer, dict) else {}


def remove_key(
    client: GraphClient,
    object_id: str,
    key_id: str,
    *,
    signer_key: Any,
    signer_certificate: Any,
    now: float | None = None,
) -> None:
    """``POST /applications/{object_id}/removeKey`` with a proof signed by the signer.

    Raises:
        UnauthorizedError: the proof was refused.
        NotFoundError: no certificate with that keyId.
    """
    from graphkit import crypto

    proof = build_proof(signer_key, signer_certificate, object_id, now=now)
    register_secret(proof)
    body = {"keyId": key_id, "proof": proof}
    try:
        client.request("POST", f"/applications/{object_id}/removeKey", json_body=body)
    except UnauthorizedError as exc:
        raise _proof_refused(exc, crypto.thumbprints(signer_certificate)["sha1"]) from None


def patch_keys(
    client: GraphClient,
    path: str,
    change: Callable[[list[dict[str, Any]]], list[dict[str, Any]]],
    *,
    client_id: str | None = None,
) -> list[dict[str, Any]]:
    """Read-modify-write of the app's ``keyCredentials`` with ``PATCH``, which replaces
    the whole collection: every certificate is read first (with its ``key``) and the
    ones ``change`` keeps are sent back as read. Password credentials cannot be set by
    PATCH (application-update.md), so none is sent; they are read before and checked
    after, and so is every certificate that was to stay.

    Args:
        change: takes the current keyCredentials, returns the collection to write.

    Returns:
        The keyCredentials after the PATCH, as Graph lists them.

    Raises:
        InputError: a certificate to keep came back without its key (it would be lost).
        GraphError: after the PATCH, a credential that was to stay is gone.
    """
    keys, passwords = read_credentials(client, path, client_id=client_id)
    wanted = change([dict(k) for k in keys])
    for entry in wanted:
        if not entry.get("key") and entry.get("keyId"):
            raise InputError(
                f"Graph did not return the certificate of keyCredential {entry['keyId']}: "
                "not sending a PATCH that would drop it",
                "retry; if it persists, change the certificates in the portal",
            )
    try:
        client.request("PATCH", path, json_body={"keyCredentials": wanted})
    except PermissionDeniedError as exc:
        raise exc.restated(
            f"Graph refused to change the certificates of {path} (403 {exc.code})",
            "sign in as an Application Administrator or Cloud Application Administrator "
            "(or an owner of the app); an app needs Application.ReadWrite.All",
        ) from None
    after_keys, after_passwords = read_credentials(client, path, client_id=client_id)
    kept_ids = {str(k.get("keyId")) for k in wanted if k.get("keyId")}
    now_ids = {str(k.get("keyId")) for k in after_keys}
    lost = sorted(kept_ids - now_ids)
    lost_pw = sorted(
        {str(p.get("keyId")) for p in passwords} - {str(p.get("keyId")) for p in after_passwords}
    )
    if lost or lost_pw:
        what = ", ".join([*(f"certificate {k}" for k in lost), *(f"secret {p}" for p in lost_pw)])
        raise GraphError(
            f"after the PATCH, the app no longer holds {what}",
            "check the app's Certificates & secrets in the portal and add it back",
        )
    return after_keys
