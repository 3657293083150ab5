"""The identity platform's side: discovery, JWKS, client assertions, access tokens.

:meth:`TokenService.client_credentials` validates a certificate client assertion the way
Entra ID does (PROTOCOL.md §1) and raises :class:`EntraError` with the AADSTS code a real
tenant would answer; :meth:`TokenService.verify_bearer` is what Graph does with the
access token it receives.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import itertools
import json
from collections.abc import Mapping, MutableMapping, Sequence
from typing import Any

from graphkit.emulator.backend import (
    GRAPH_APP_ID,
    AppState,
    Backend,
    KeyCredential,
    TenantState,
    is_domain,
    is_guid,
)
from graphkit.emulator.errors import EntraError, GraphApiError
from graphkit.emulator.tls import Material

__all__ = ["ASSERTION_TYPE", "CLOCK_SKEW", "TokenService"]

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
# Entra's tolerance is UNCONFIRMED (PROTOCOL.md §1); five minutes is Microsoft's usual
# default, and the lenient choice.
CLOCK_SKEW = 300
# Real tokens are backdated five minutes (iat = nbf = now - 300).
_BACKDATE = 300
MIN_RSA_BITS = 2048
# Entra's own wording (MSAL.NET MockHelpers.cs, captured answers).
_CERT_DOCS = (
    "Review the documentation at https://docs.microsoft.com/azure/active-directory/"
    "develop/active-directory-certificate-credentials ."
)
# Client-assertion algorithms Entra accepts: AADSTS5002738 lists 'RS256,RS384,RS512';
# PS256 (with x5t#S256) is what current docs and msal >= 1.35 use. PS384/PS512 are
# UNCONFIRMED: the lenient choice accepts them.
ASSERTION_ALGS = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512")
# Tenant-independent authorities: discovery answers, client credentials do not (90010).
# UNCONFIRMED for /organizations: its token answer is taken to be the same 90010.
MULTI_TENANT = ("common", "consumers", "organizations")
GRAPH_RESOURCE = "https://graph.microsoft.com"
_RESERVED_SCOPES = {"openid", "profile", "offline_access"}


def _b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _when(ts: float) -> str:
    return dt.datetime.fromtimestamp(ts, dt.UTC).strftime("%m/%d/%Y %H:%M:%S")


def _iso7(ts: float) -> str:
    """``2023-12-11T23:52:19.6223401Z``: ISO 8601 with 7 decimals, as AADSTS700024 prints."""
    when = dt.datetime.fromtimestamp(ts, dt.UTC)
    return f"{when:%Y-%m-%dT%H:%M:%S}.{when.microsecond:06d}0Z"


def _norm_url(url: str) -> str:
    return url.strip().rstrip("/").lower()


class TokenService:
    """Issues and checks tokens against one :class:`Backend`.

    ``base_urls`` are the emulator's own origins (``https://127.0.0.1:PORT`` and the
    ``localhost`` form): they make up token endpoints and are a Graph resource.
    """

    def __init__(self, backend: Backend, material: Material, base_urls: Sequence[str] = ()):
        self.backend = backend
        self.material = material
        self.base_urls = list(base_urls)
        # Bearer tokens whose signature verified, with their claims: each is checked once
        # (PyJWT's base64url checks alone cost ~0.6 ms a request); the claims are still
        # checked on every request. Keyed by the signing key too; bounded.
        self._signed: dict[tuple[Any, str], dict[str, Any]] = {}

    # ------------------------------------------------------------------- discovery

    def resolve_tenant(self, ident: str) -> TenantState:
        tenant = self.backend.find_tenant(ident)
        if tenant is not None:
            return tenant
        if not (is_guid(ident) or is_domain(ident)):
            raise EntraError(
                "invalid_request",
                900023,
                f"Specified tenant identifier '{ident}' is neither a valid DNS name, nor a "
                "valid external domain.",
            )
        raise EntraError(
            "invalid_tenant",
            90002,
            f"Tenant '{ident}' not found. Check to make sure you have the correct tenant ID "
            "and are signing into the correct cloud. Check with your subscription "
            "administrator, this may happen if there are no active subscriptions for the "
            "tenant.",
        )

    def discovery(self, ident: str, base: str) -> dict[str, Any]:
        """The v2.0 OpenID configuration of a tenant, with endpoints on ``base``.

        ``common``, ``consumers`` and ``organizations`` answer too, with their own name in
        the endpoints and ``{tenantid}`` in the issuer, as Entra's do.
        """
        if ident.strip().lower() in MULTI_TENANT:
            root = f"{base}/{ident.strip().lower()}"
            issuer = f"{base}/{{tenantid}}/v2.0"
        else:
            t = self.resolve_tenant(ident)
            root = f"{base}/{t.id}"
            issuer = f"{root}/v2.0"
        return {
            "token_endpoint": f"{root}/oauth2/v2.0/token",
            "token_endpoint_auth_methods_supported": [
                "client_secret_post",
                "private_key_jwt",
                "client_secret_basic",
            ],
            "jwks_uri": f"{root}/discovery/v2.0/keys",
            "response_modes_supported": ["query", "fragment", "form_post"],
            "subject_types_supported": ["pairwise"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
            "scopes_supported": ["openid", "profile", "email", "offline_access"],
            "issuer": issuer,
            "request_uri_parameter_supported": False,
            "userinfo_endpoint": f"{base}/oidc/userinfo",
            "authorization_endpoint": f"{root}/oauth2/v2.0/authorize",
            "device_authorization_endpoint": f"{root}/oauth2/v2.0/devicecode",
            "http_logout_supported": True,
            "frontchannel_logout_supported": True,
            "end_session_endpoint": f"{root}/oauth2/v2.0/logout",
            "claims_supported": [
                "sub",
                "iss",
                "aud",
                "exp",
                "iat",
                "nbf",
                "tid",
                "ver",
            ],
            "kerberos_endpoint": f"{root}/kerberos",
            "tenant_region_scope": "NA",
            "cloud_instance_name": "microsoftonline.com",
            "cloud_graph_host_name": "graph.windows.net",
            "msgraph_host": base.split("://", 1)[-1],
            "rbac_url": "https://pas.windows.net",
        }

    def check_jwks_tenant(self, ident: str) -> None:
        if ident.strip().lower() not in MULTI_TENANT:
            self.resolve_tenant(ident)

    def jwks(self) -> dict[str, Any]:
        pub = self.material.signing_key.public_key().public_numbers()

        def b64int(n: int) -> str:
            raw = n.to_bytes((n.bit_length() + 7) // 8, "big")
            return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()

        return {
            "keys": [
                {
                    "kty": "RSA",
                    "use": "sig",
                    "kid": self.material.kid,
                    "x5t": self.material.kid,
                    "n": b64int(pub.n),
                    "e": b64int(pub.e),
                    "x5c": [base64.b64encode(self.material.signing_cert_der).decode()],
                }
            ]
        }

    # ---------------------------------------------------------------- token endpoint

    def client_credentials(
        self,
        ident: str,
        form: Mapping[str, str],
        note: MutableMapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Answer a token request; ``note`` collects what the request log records.

        Raises:
            EntraError: with the code Entra ID would return.
        """
        note = note if note is not None else {}
        grant = form.get("grant_type")
        if not grant:
            raise _missing("grant_type")
        if ident.strip().lower() in MULTI_TENANT:
            raise EntraError(
                "invalid_request",
                90010,
                "The grant type is not supported over the /common or /consumers endpoints. "
                "Please use the /organizations or tenant-specific endpoint.",
            )
        tenant = self.resolve_tenant(ident)
        if grant != "client_credentials":
            raise EntraError(
                "unsupported_grant_type",
                70003,
                f"The app requested an unsupported grant type '{grant}'.",
            )
        client_id = (form.get("client_id") or "").strip()
        if not client_id:
            raise _missing("client_id")
        note["client_id"] = client_id
        app = self.backend.find_app(client_id)
        if app is None or app.tenant_id != tenant.id:
            raise EntraError(
                "unauthorized_client",
                700016,
                f"Application with identifier '{client_id}' was not found in the directory "
                f"'{tenant.display_name}'. This can happen if the application has not been "
                "installed by the administrator of the tenant or consented to by any user in "
                "the tenant. You may have sent your authentication request to the wrong tenant.",
            )
        if not self.backend.service_principal_visible(app):
            # UNCONFIRMED wording: Entra's AADSTS7000229 for an app without a service
            # principal in the tenant (or one not yet propagated, PROTOCOL.md §8).
            raise EntraError(
                "invalid_client",
                7000229,
                f"The client application {client_id} is missing service principal in the "
                f"tenant {tenant.id}. See instructions here: https://go.microsoft.com/fwlink/"
                "?linkid=2225119",
            )
        assertion = form.get("client_assertion")
        if not assertion:
            if form.get("client_secret"):
                raise EntraError(
                    "invalid_client",
                    7000215,
                    "Invalid client secret provided. Ensure the secret being sent in the "
                    "request is the client secret value, not the client secret ID, for a "
                    f"secret added to app '{client_id}'.",
                )
            raise EntraError(
                "invalid_client",
                7000218,
                "The request body must contain the following parameter: 'client_assertion' "
                "or 'client_secret'.",
            )
        if form.get("client_assertion_type") != ASSERTION_TYPE:
            raise EntraError(
                "invalid_request",
                50027,
                f"JWT token is invalid or malformed: client_assertion_type must be "
                f"'{ASSERTION_TYPE}'.",
            )
        resource, other = self._resource(form.get("scope"), tenant)
        self._check_assertion(assertion, tenant, ident, app, note)
        lifetime = self.backend.token_lifetime
        token = self.mint(app, resource, lifetime=lifetime, resource_app_id=other)
        return {
            "token_type": "Bearer",  # nosec B105  # the scheme's name, not a token
            "expires_in": lifetime,
            "ext_expires_in": lifetime,
            "access_token": token,
        }

    def _graph_resources(self) -> set[str]:
        return {_norm_url(GRAPH_RESOURCE), GRAPH_APP_ID, *(_norm_url(b) for b in self.base_urls)}

    def _resource(self, scope: str | None, tenant: TenantState) -> tuple[str, str | None]:
        """The resource of a client-credentials scope (``<resource>/.default``), and the
        application id of a resource other than Graph (None for Graph).

        A resource the tenant has (:meth:`Backend.add_resource`) is named by one of its
        URIs or its application id; anything else is AADSTS500011."""
        if not scope or not scope.strip():
            raise _missing("scope")
        scopes = [s for s in scope.split() if s.lower() not in _RESERVED_SCOPES]
        if len(scopes) != 1:
            raise EntraError(
                "invalid_scope",
                70011,
                f"The provided value for the input parameter 'scope' is not valid. The scope "
                f"'{scope}' is not valid: give exactly one resource with /.default.",
            )
        value = scopes[0]
        if not value.endswith("/.default"):
            raise EntraError(
                "invalid_scope",
                1002012,
                f"The provided value for scope {value} is not valid. Client credential flows "
                "must have a scope value with /.default suffixed to the resource identifier "
                "(application ID URI).",
            )
        resource = value[: -len("/.default")].rstrip("/")
        if _norm_url(resource) in self._graph_resources():
            return resource, None
        other = self.backend.find_resource(tenant.id, resource)
        if other is not None:
            return resource, other.app_id
        raise EntraError(
            "invalid_resource",
            500011,
            f"The resource principal named {resource} was not found in the tenant named "
            f"{tenant.display_name}. This can happen if the application has not been "
            "installed by the administrator of the tenant or consented to by any user in "
            "the tenant. You might have sent your authentication request to the wrong "
            "tenant.",
        )

    def _token_endpoints(self, tenant: TenantState, ident: str) -> set[str]:
        forms = {tenant.id, tenant.domain, ident.lower()}
        return {_norm_url(f"{b}/{f}/oauth2/v2.0/token") for b in self.base_urls for f in forms}

    def _check_assertion(
        self,
        assertion: str,
        tenant: TenantState,
        ident: str,
        app: AppState,
        note: MutableMapping[str, Any],
    ) -> None:
        header, claims, signing_input, signature = _parse_jwt(assertion)
        alg = header.get("alg")
        note["alg"] = alg
        note["thumbprint_header"] = (
            "x5t#S256" if "x5t#S256" in header else "x5t" if "x5t" in header else None
        )
        if alg not in ASSERTION_ALGS:
            raise EntraError(
                "invalid_client",
                5002738,
                f"Invalid JWT token. '{alg}' is not a supported signature algorithm. "
                "Supported signing algorithms are: 'RS256,RS384,RS512'",
            )
        if not any(isinstance(header.get(h), str) for h in ("x5t", "x5t#S256", "kid")):
            raise EntraError(
                "invalid_client",
                5002723,
                "Invalid JWT token. No certificate SHA-1 thumbprint, certificate SHA-256 "
                "thumbprint, nor keyId specified in token header.",
            )
        for claim in ("iss", "aud"):
            if claim not in claims:
                raise EntraError(
                    "invalid_request",
                    90014,
                    f"The required field '{claim}' is missing from the credential. Ensure "
                    "that you have all the necessary parameters for the login request.",
                )

        # iss and sub name the client (700021).
        for claim in ("iss", "sub"):
            value = claims.get(claim)
            if not isinstance(value, str) or value.lower() != app.client_id:
                raise EntraError(
                    "invalid_client",
                    700021,
                    "Client assertion application identifier doesn't match 'client_id' "
                    f"parameter. {_CERT_DOCS}",
                )
        # aud is the token endpoint, as discovery advertised it (either tenant form).
        aud = claims.get("aud")
        auds = aud if isinstance(aud, list) else [aud]
        wanted = self._token_endpoints(tenant, ident)
        if not any(isinstance(a, str) and _norm_url(a) in wanted for a in auds):
            # UNCONFIRMED code: 700023 is what Entra answers for an audience mismatch.
            raise EntraError(
                "invalid_client",
                700023,
                f"Client assertion audience claim does not match Realm issuer. {_CERT_DOCS}",
            )

        key, shown = self._find_key(header, app)
        now = self.backend.now()
        pub = key.public_key
        from cryptography.hazmat.primitives.asymmetric import rsa

        if not isinstance(pub, rsa.RSAPublicKey):
            raise _bad_signature(shown, app, "The key type is not supported; use RSA.", key)
        if pub.key_size < MIN_RSA_BITS:
            raise EntraError(
                "invalid_client",
                50032,
                f"WeakRsaKey - The RSA key of the certificate with thumbprint '{key.sha1_hex}' "
                f"is {pub.key_size} bits long; keys shorter than {MIN_RSA_BITS} bits are not "
                "allowed.",
            )
        if not _verify(pub, alg, signing_input, signature):
            raise _bad_signature(
                shown,
                app,
                "The provided signature value did not match the expected signature value.",
                key,
            )
        if now > key.end or now < key.start:
            raise _bad_signature(shown, app, "The key used is expired.", key)
        self._check_times(claims, now)

    def _find_key(self, header: Mapping[str, Any], app: AppState) -> tuple[KeyCredential, str]:
        """The app's certificate the assertion header points at (padding ignored)."""
        s256 = header.get("x5t#S256")
        sha1 = header.get("x5t")
        kid = header.get("kid")
        s256 = s256.rstrip("=") if isinstance(s256, str) else None
        sha1 = sha1.rstrip("=") if isinstance(sha1, str) else None
        # A bare kid: UNCONFIRMED how Entra reads it; the lenient choice matches it against
        # the certificate's SHA-1 thumbprint, in hex (as the portal shows it) or base64url.
        kid_hex = kid.strip().upper() if isinstance(kid, str) and not (sha1 or s256) else None
        shown = (
            _thumbprint_hex(sha1)
            if sha1
            else _thumbprint_hex(s256)
            if s256
            else (kid_hex or "(none)")
        )
        now = self.backend.now()
        with self.backend.lock:
            keys = list(app.keys)
            delay = self.backend.propagation_delay
        for key in keys:
            if (
                (s256 and key.x5t_s256 == s256)
                or (sha1 and key.x5t == sha1)
                or (kid_hex and kid_hex in (key.sha1_hex, key.x5t.upper()))
            ):
                if now - key.added_at < delay:
                    break  # uploaded, but not yet propagated: Entra does not see it yet
                return key, shown
        raise EntraError(
            "invalid_client",
            700027,
            "The certificate with identifier used to sign the client assertion is not "
            "registered on application. [Reason - The key was not found., "
            f"Thumbprint of key used by client: '{shown}', Please visit the Azure Portal, "
            "Graph Explorer or directly use MS Graph to see configured keys for app Id "
            f"'{app.client_id}'. Review the documentation at "
            "https://docs.microsoft.com/en-us/graph/deployments#app-registration-and-token-"
            "service-root-endpoints to learn about the Azure Portal, Graph Explorer and MS "
            "Graph.]",
        )

    def _check_times(self, claims: Mapping[str, Any], now: float) -> None:
        def number(value: Any) -> float | None:
            ok = isinstance(value, int | float) and not isinstance(value, bool)
            return float(value) if ok else None

        # A missing exp reads as 0 (1970): Entra answers 700024, "expiry time of assertion
        # 1970-01-01T00:00:00.0000000Z" (MockHelpers.cs BadTimeRangeError700024).
        exp = number(claims.get("exp")) or 0.0
        nbf = number(claims.get("nbf"))  # msal sends none
        iat = number(claims.get("iat"))
        start = nbf if nbf is not None else iat
        too_late = now > exp + CLOCK_SKEW
        too_early = start is not None and now < start - CLOCK_SKEW
        if too_late or too_early:
            raise EntraError(
                "invalid_client",
                700024,
                f"Client assertion is not within its valid time range. Current time: "
                f"{_iso7(now)}, assertion valid from {_iso7(start or 0.0)}, expiry time of "
                f"assertion {_iso7(exp)}. {_CERT_DOCS}",
            )

    # ------------------------------------------------------- addKey/removeKey proofs

    def verify_proof(
        self, app: AppState, proof: Any, note: MutableMapping[str, Any] | None = None
    ) -> None:
        """Check an addKey/removeKey proof: a JWT signed by one of the app's current
        certificates, ``aud`` 00000002-0000-0000-c000-000000000000, ``iss`` the application
        OBJECT id, ``nbf`` and ``exp`` at most 10 minutes apart, no ``=`` padding
        (PROTOCOL.md §6, §9; microsoft-graph-docs application-rollkey-prooftoken.md).

        Every refusal is Graph's one answer, 401 ``Authentication_MissingOrMalformed``
        "Access Token missing or malformed." (captured: Microsoft Q&A 587303); which rule
        failed goes to ``note["proof_refusal"]`` (the request log), never to the client.

        Raises:
            GraphApiError: 401 Authentication_MissingOrMalformed.
        """
        note = note if note is not None else {}

        def bad(why: str) -> GraphApiError:
            note["proof_refusal"] = why
            return GraphApiError(
                401, "Authentication_MissingOrMalformed", "Access Token missing or malformed."
            )

        if not isinstance(proof, str) or not proof:
            raise bad("no proof")
        if "=" in proof:
            raise bad("padding")  # rollkey-prooftoken.md: '=' gives this error
        try:
            header, claims, signing_input, signature = _parse_jwt(proof)
        except EntraError:
            raise bad("not a JWT") from None
        alg = header.get("alg")
        if alg not in ASSERTION_ALGS:
            raise bad("algorithm")
        now = self.backend.now()
        with self.backend.lock:
            valid = [k for k in app.keys if k.start <= now <= k.end]
        if not valid:
            raise bad("no valid certificate")  # addkey.md: such apps must use PATCH
        if not any(_verify(k.public_key, alg, signing_input, signature) for k in valid):
            raise bad("signer")
        if claims.get("aud") != "00000002-0000-0000-c000-000000000000":
            raise bad("aud")
        if str(claims.get("iss", "")).lower() != app.object_id:
            raise bad("iss")
        nbf, exp = claims.get("nbf"), claims.get("exp")
        if not isinstance(nbf, int | float) or not isinstance(exp, int | float):
            raise bad("nbf/exp missing")
        if exp - nbf > 600:
            raise bad("lifetime")
        if now < nbf - CLOCK_SKEW or now > exp + CLOCK_SKEW:
            raise bad("expired")

    # ---------------------------------------------------------------- access tokens

    def mint(
        self,
        app: AppState,
        resource: str,
        *,
        lifetime: int | None = None,
        resource_app_id: str | None = None,
    ) -> str:
        """An app-only access token for ``app``, with claims as PROTOCOL.md §3.

        For a resource other than Graph (``resource_app_id``), ``aud`` is the resource as
        the request named it and ``roles`` are the permissions granted on THAT resource
        (entra-docs access-token-claims-reference.md: a v1.0 token's ``aud`` "can be the
        client ID or the resource URI used in the request"; ``roles``, the permissions
        "exposed by your application" that the caller was given)."""
        import jwt

        lifetime = self.backend.token_lifetime if lifetime is None else lifetime
        now = int(self.backend.now())
        with self.backend.lock:
            if resource_app_id is None:
                roles = sorted(app.roles)
            else:
                roles = sorted(app.resource_roles.get(resource_app_id, ()))
            tenant = self.backend.tenants[app.tenant_id]
        issuer = f"https://sts.windows.net/{tenant.id}/"
        uti = base64.urlsafe_b64encode(
            hashlib.sha256(f"{app.client_id}{now}{id(self)}{_counter()}".encode()).digest()[:16]
        ).rstrip(b"=")
        claims: dict[str, Any] = {
            "aud": resource,
            "iss": issuer,
            "iat": now - _BACKDATE,
            "nbf": now - _BACKDATE,
            "exp": now + lifetime,
            "aio": "E2NgYGDg" + uti.decode()[:24],
            "app_displayname": app.display_name,
            "appid": app.client_id,
            "appidacr": "2",
            "idp": issuer,
            "idtyp": "app",
            "oid": app.sp_id,
            "rh": "0.AAAA" + uti.decode()[:16],
            "sub": app.sp_id,
            "tenant_region_scope": "NA",
            "tid": tenant.id,
            "uti": uti.decode(),
            "ver": "1.0",
            "xms_tcdt": int(tenant.created),
        }
        if roles:
            claims["roles"] = roles
        kid = self.material.kid
        return jwt.encode(
            claims,
            self.material.signing_key,
            algorithm="RS256",
            headers={"typ": "JWT", "x5t": kid, "kid": kid},
        )

    def verify_bearer(self, authorization: str | None) -> dict[str, Any]:
        """Graph's check of ``Authorization: Bearer ...``: signature, aud, exp.

        Raises:
            GraphApiError: 401 InvalidAuthenticationToken.
        """
        import jwt

        if not authorization or not authorization.strip():
            raise _unauthorized("Access token is empty.")
        scheme, _, token = authorization.strip().partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise _unauthorized("Access token is empty.")
        token = token.strip()
        key = (self.material.signing_key, token)
        known = self._signed.get(key)
        if known is not None:
            return self._check_claims(dict(known))
        try:
            claims = jwt.decode(
                token,
                self.material.signing_key.public_key(),
                algorithms=["RS256"],
                options={
                    "verify_exp": False,
                    "verify_nbf": False,
                    "verify_iat": False,
                    "verify_aud": False,
                    "verify_iss": False,
                },
            )
        except jwt.InvalidSignatureError:
            raise _unauthorized("Access token validation failure. Invalid signature.") from None
        except jwt.PyJWTError:
            raise _unauthorized("JWT is not well formed.") from None
        if len(self._signed) >= _SIGNED_KEPT:
            self._signed.clear()
        self._signed[key] = dict(claims)
        return self._check_claims(claims)

    def _check_claims(self, claims: dict[str, Any]) -> dict[str, Any]:
        """The checks of a signed token's claims, made on every request (its lifetime
        against the clock, the tenant against the directory)."""
        aud = claims.get("aud")
        if not isinstance(aud, str) or _norm_url(aud) not in self._graph_resources():
            raise _unauthorized("Access token validation failure. Invalid audience.")
        now = self.backend.now()
        exp = claims.get("exp")
        # No skew on the Graph side: a token is expired the second its exp has passed.
        if not isinstance(exp, int | float) or now >= exp:
            raise _unauthorized("Lifetime validation failed, the token is expired.")
        nbf = claims.get("nbf")
        if isinstance(nbf, int | float) and now + CLOCK_SKEW < nbf:
            raise _unauthorized("Lifetime validation failed, the token is not yet valid.")
        tid = claims.get("tid")
        if not isinstance(tid, str) or self.backend.find_tenant(tid) is None:
            raise _unauthorized("Access token validation failure. Invalid tenant.")
        if claims.get("iss") != f"https://sts.windows.net/{tid}/":
            raise _unauthorized("Access token validation failure. Invalid issuer.")
        return claims


_SIGNED_KEPT = 256  # signed bearer tokens remembered (see TokenService._signed)

_counter = itertools.count().__next__  # atomic under the GIL: unique token ids


def _parse_jwt(token: str) -> tuple[dict[str, Any], dict[str, Any], bytes, bytes]:
    parts = token.strip().split(".")
    if len(parts) != 3:
        raise _malformed("a JWT has three dot-separated parts")
    try:
        header = json.loads(_b64url_decode(parts[0]))
        claims = json.loads(_b64url_decode(parts[1]))
        signature = _b64url_decode(parts[2])
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise _malformed("its parts are not base64url-encoded JSON") from None
    if not isinstance(header, dict) or not isinstance(claims, dict):
        raise _malformed("its header and payload must be JSON objects")
    return header, claims, f"{parts[0]}.{parts[1]}".encode(), signature


def _verify(pub: Any, alg: str, signing_input: bytes, signature: bytes) -> bool:
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import padding

    digest: hashes.HashAlgorithm = {"256": hashes.SHA256(), "384": hashes.SHA384()}.get(
        alg[2:], hashes.SHA512()
    )
    pad: padding.AsymmetricPadding
    if alg.startswith("PS"):
        # Salt length AUTO: accept what any PSS signer chose (PyJWT uses the digest size).
        pad = padding.PSS(mgf=padding.MGF1(digest), salt_length=padding.PSS.AUTO)
    else:
        pad = padding.PKCS1v15()
    try:
        pub.verify(signature, signing_input, pad, digest)
    except (InvalidSignature, ValueError):
        return False
    return True


def _thumbprint_hex(b64: str) -> str:
    try:
        return _b64url_decode(b64).hex().upper()
    except (ValueError, binascii.Error):
        return b64


def _missing(param: str) -> EntraError:
    return EntraError(
        "invalid_request",
        900144,
        f"The request body must contain the following parameter: '{param}'.",
    )


def _malformed(why: str) -> EntraError:
    return EntraError("invalid_request", 50027, f"JWT token is invalid or malformed: {why}.")


def _bad_signature(shown: str, app: AppState, reason: str, key: KeyCredential) -> EntraError:
    return EntraError(
        "invalid_client",
        700027,
        f"Client assertion contains an invalid signature. [Reason - {reason}, Thumbprint of "
        f"key used by client: '{shown}', Found key 'Start={_when(key.start)}, "
        f"End={_when(key.end)}', Please visit the Azure Portal, Graph Explorer or directly "
        f"use MS Graph to see configured keys for app Id '{app.client_id}'.]",
    )


def _unauthorized(message: str) -> GraphApiError:
    return GraphApiError(
        401,
        "InvalidAuthenticationToken",
        message,
        headers={
            "WWW-Authenticate": 'Bearer realm="", authorization_uri="https://login.'
            'microsoftonline.com/common/oauth2/authorize", client_id="' + GRAPH_APP_ID + '"'
        },
    )
