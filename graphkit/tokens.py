"""Token acquisition: app-only tokens from Entra ID with a certificate, through msal.

:class:`CertificateCredential` hands msal the private key AND the public certificate,
so msal signs its client assertion with PS256 and an ``x5t#S256`` header (the current
Entra ID form; PROTOCOL.md §1). An encrypted PEM key or a PFX is opened (by
:mod:`graphkit.certificates`) with the passphrase and given to msal as an unencrypted
PEM held only in memory.

Tokens are cached by :mod:`graphkit.token_cache`, one cache for each authority and
certificate: a cached token answers only for the tenant, client id, authority, scope
and certificate that obtained it. :meth:`CertificateCredential.get_token` first tries
the warm path (the plain-file cache read without msal, before the key is parsed or
msal imported); anything else (no index, an encrypted store, no usable token,
``force_refresh``) goes through msal.

The library never prints. Notices (the plaintext-cache notice, shown once per state
directory, and certificate expiry) go to an ``on_notice`` callback when given,
otherwise to the ``graphkit.tokens`` logger. Errors are raised as
:class:`~graphkit.errors.AuthError` with advice (:mod:`graphkit.token_errors`) or
:class:`~graphkit.errors.NetworkError`.
"""

from __future__ import annotations

import base64
import contextlib
import json
import logging
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from graphkit import certificates, token_cache
from graphkit._record import Record
from graphkit.errors import AuthError, ConfigError, GraphkitError, NetworkError, redact
from graphkit.retry import RetryPolicy, parse_retry_after
from graphkit.settings import Settings, state_dir
from graphkit.token_errors import (
    discovery_error,
    first_line,
    network_error,
    throttled,
    token_error,
)

if TYPE_CHECKING:  # pragma: no cover
    from graphkit.certificates import ClientCertificate

__all__ = [
    "DEFAULT_TIMEOUT",
    "AccessToken",
    "CertificateCredential",
    "decode_claims",
    "requested_scope",
    "set_notice_handler",
]

log = logging.getLogger(__name__)

# Where notices go when a credential is made without ``on_notice`` (the CLI sets it).
_notice_handler: Callable[[str], None] | None = None


def set_notice_handler(handler: Callable[[str], None] | None) -> None:
    """Send notices of credentials made without ``on_notice`` to ``handler``."""
    global _notice_handler
    _notice_handler = handler


# (connect, read) seconds for calls to the identity platform.
DEFAULT_TIMEOUT = (10.0, 60.0)

# Hosts msal knows; anything else (an emulator, a private cloud) skips the instance
# discovery call that would otherwise go to login.microsoftonline.com.
_PUBLIC_LOGIN_HOSTS = frozenset(
    {
        "login.microsoftonline.com",
        "login.microsoft.com",
        "login.windows.net",
        "sts.windows.net",
        "login.microsoftonline.us",
        "login.chinacloudapi.cn",
        "login.partner.microsoftonline.cn",
    }
)


class AccessToken(Record):
    """A bearer token and what a person might want to know about it."""

    _fields = ("token", "expires_on", "from_cache", "claims")
    _hidden = frozenset({"token"})

    def __init__(
        self,
        token: str,
        expires_on: int,
        from_cache: bool,
        claims: dict[str, Any] | None = None,
    ) -> None:
        self.token = token
        self.expires_on = expires_on  # epoch seconds
        self.from_cache = from_cache
        self.claims: dict[str, Any] = {} if claims is None else claims  # NOT verified

    @property
    def expires_in(self) -> int:
        return self.expires_on - int(time.time())

    @property
    def roles(self) -> list[str]:
        roles = self.claims.get("roles") or []
        return [str(r) for r in roles] if isinstance(roles, list) else [str(roles)]


def decode_claims(token: str) -> dict[str, Any]:
    """The payload of a JWT, without verifying it (for display only); {} if opaque."""
    parts = token.split(".")
    if len(parts) != 3:
        return {}
    try:
        raw = base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4))
        claims = json.loads(raw)
    except (ValueError, UnicodeDecodeError, RecursionError):  # RecursionError: [[[[...
        return {}
    return claims if isinstance(claims, dict) else {}


def requested_scope(scope: str | None = None, resource: str | None = None) -> str | None:
    """The client-credentials scope for ``--scope`` or ``--resource`` (None: Graph's).

    Client credentials take exactly one resource followed by ``/.default`` (PROTOCOL.md
    §1; AADSTS1002012 otherwise): ``resource`` becomes ``<resource>/.default``, and a
    ``scope`` must already have that form.

    Raises:
        UsageError: both given, or a value that is not of that form.
    """
    from graphkit.errors import UsageError

    if scope is not None and resource is not None:
        raise UsageError("--scope and --resource both given", "give one of them")
    if resource is not None:
        value = resource.strip().rstrip("/")
        if not value or any(c.isspace() for c in value) or value.endswith("/.default"):
            raise UsageError(
                f"--resource {resource!r} is not a resource identifier",
                "give its URL, e.g. --resource https://contoso.sharepoint.com "
                "(or --scope https://contoso.sharepoint.com/.default)",
            )
        return f"{value}/.default"
    if scope is not None:
        value = scope.strip()
        base = value.removesuffix("/.default")
        if not value.endswith("/.default") or not base or any(c.isspace() for c in value):
            raise UsageError(
                f"--scope {scope!r} is not one resource followed by /.default",
                "app-only tokens take e.g. --scope https://contoso.sharepoint.com/.default",
            )
        return value
    return None


# ----------------------------------------------------------------- msal's logs

# msal's loggers that exist only once their module is used (the rest are found by name).
_MSAL_LOGGERS = ("msal", "msal.oauth2cli.oauth2", "msal.oauth2cli.assertion", "msal.application")


class _RedactSecrets(logging.Filter):
    """Scrubs credentials from msal's log records, whatever handler prints them.

    msal logs a token endpoint's non-JSON answer at ERROR ("Token response is not in
    json format: <body>"), which Python prints even with logging unconfigured; a proxy
    or error page that echoes the request puts our client assertion in that body.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a malformed record: let logging report it as usual
            return True
        cleaned = redact(message)
        if cleaned != message:
            record.msg, record.args = cleaned, ()
        return True


_REDACT_FILTER = _RedactSecrets()


def _guard_msal_logs() -> None:
    """Attach the redacting filter to every msal logger (idempotent)."""
    names = set(_MSAL_LOGGERS)
    names.update(
        name
        for name in list(logging.Logger.manager.loggerDict)
        if name.startswith(("msal.", "msal_extensions"))
    )
    for name in names:
        logger = logging.getLogger(name)
        if _REDACT_FILTER not in logger.filters:
            logger.addFilter(_REDACT_FILTER)


# ----------------------------------------------------------------- HTTP session


def _make_session(
    ca_bundle: str | None, timeout: tuple[float, float], authority_host: str | None = None
) -> Any:
    """The identity platform's session (:func:`graphkit.transport.make_session`): the
    configured CA, no netrc, no redirect followed, and with ``authority_host`` no
    request (so no client assertion) to any other origin. Connection failures are
    retried briefly; a token POST is safe to repeat."""
    from graphkit.transport import make_session

    def refuse(what: str, why: str) -> AuthError:
        return AuthError(
            f"graphkit does not send {what}: {why}",
            "check the authority host: it should be the login host of your cloud",
        )

    return make_session(
        ca_bundle=ca_bundle,
        timeout=timeout,
        only_origin=authority_host,
        refuse=refuse,
        refuse_redirects=True,
        retry_connections=3,
    )


# ----------------------------------------------------------------- credential


class CertificateCredential:
    """App-only tokens for ``settings`` (tenant, client id, certificate...).

    Args:
        settings: resolved settings; the certificate is checked here (and its key
            parsed only when msal needs it, see :func:`graphkit.certificates.check`).
        persist_cache: keep tokens and discovery answers in the state directory
            across processes (False: in memory for this object only).
        on_notice: called with one-line notices meant for the user (plaintext token
            cache, first time only; certificate expiring within 30 days). Default: the
            handler given to :func:`set_notice_handler`; with neither, notices are
            logged and the plaintext notice stays due.
        cache_dir: where the caches live (default: :func:`graphkit.settings.state_dir`).
        timeout: (connect, read) seconds for each request.
        http_client: a requests.Session-like object to use instead of graphkit's own
            (it must then apply ``ca_bundle`` itself).
        retry: how the token endpoint's 429, 5xx, resets and timeouts are retried
            (default: the same policy as Graph's).
        scope: the scope tokens are for: ``<resource>/.default`` (default: Graph's,
            ``settings.scope``), e.g. ``https://contoso.sharepoint.com/.default``. Cached
            tokens are told apart by scope, so a token for one resource never answers for
            another.

    Raises:
        ConfigError, CryptoError: the settings or certificate cannot be used.
    """

    def __init__(
        self,
        settings: Settings,
        *,
        persist_cache: bool = True,
        on_notice: Callable[[str], None] | None = None,
        cache_dir: Path | None = None,
        timeout: tuple[float, float] = DEFAULT_TIMEOUT,
        http_client: Any = None,
        retry: RetryPolicy | None = None,
        scope: str | None = None,
    ) -> None:
        for key in ("tenant", "client_id"):
            if not getattr(settings, key):
                raise ConfigError(
                    f"no {key} configured",
                    f"give --{key.replace('_', '-')} or set it in the profile",
                )
        self.settings = settings
        self.scope = scope or settings.scope
        self._on_notice = on_notice if on_notice is not None else _notice_handler
        self._persist = persist_cache
        self._cache_dir = cache_dir
        # Checked now (as a full load would); loaded in full when msal needs the key.
        self.facts = certificates.check(
            settings, cache_dir=self.cache_dir if persist_cache else None
        )
        self._timeout = timeout
        self._retry = retry or RetryPolicy()
        self._memory_http_cache: dict[str, Any] = {}
        self._http_client = http_client
        self._own_session = http_client is None
        self._app: Any = None
        self._http_cache: token_cache.PersistentHttpCache | None = None
        self.cache_encrypted: bool | None = None
        self._lock = threading.Lock()
        warning = certificates.expiry_warning(self.facts, profile=settings.profile)
        if warning:
            self._notice(warning)

    @property
    def certificate(self) -> ClientCertificate:
        """The certificate and key, loaded (once per process) when first needed."""
        return certificates.load(self.settings)

    @property
    def partition(self) -> str:
        """The token cache this credential's tokens live in (its authority and certificate)."""
        return token_cache.partition(self.settings.authority, self.facts.sha256)

    # -- notices

    def _notice(self, message: str) -> bool:
        if self._on_notice is None:
            log.info("%s", message)
            return False
        self._on_notice(message)
        return True

    # -- msal application

    @property
    def cache_dir(self) -> Path:
        return self._cache_dir or state_dir()

    def _build_app(self) -> Any:
        import msal
        import requests

        _guard_msal_logs()
        settings = self.settings
        cache: Any
        http_cache: Any
        directory: Path | None = None
        if self._persist:
            directory = token_cache.private_dir(self.cache_dir)
            cache, encrypted = token_cache.build_token_cache(directory, self.partition)
            self.cache_encrypted = encrypted
            if not encrypted and self._on_notice is not None:
                notice = token_cache.plaintext_notice(directory)
                if notice:
                    self._notice(notice)
            self._http_cache = token_cache.PersistentHttpCache(
                directory / token_cache.HTTP_CACHE_FILE
            )
            http_cache = self._http_cache
        else:
            cache, http_cache = msal.SerializableTokenCache(), self._memory_http_cache
        if self._http_client is None:
            self._http_client = _make_session(
                settings.ca_bundle, self._timeout, settings.authority_host
            )
        host = (urlsplit(settings.authority_host).hostname or "").lower()
        kwargs: dict[str, Any] = {}
        if host not in _PUBLIC_LOGIN_HOSTS:
            kwargs["instance_discovery"] = False
        certificate = self.certificate
        try:
            app = msal.ConfidentialClientApplication(
                settings.client_id,
                authority=settings.authority,
                client_credential={
                    # Given the public certificate, msal signs PS256 with x5t#S256. The
                    # key goes as the object already loaded (msal's JwtAssertionCreator
                    # takes a cryptography key, as msal does for encrypted PEMs): a PEM
                    # string would be parsed and RSA-checked again (~40 ms).
                    "private_key": certificate.private_key,
                    "public_certificate": certificate.certificate_pem,
                },
                token_cache=cache,
                http_client=self._http_client,
                http_cache=http_cache,
                **kwargs,
            )
        except requests.exceptions.RequestException as exc:
            raise network_error(exc, settings) from None
        except (ValueError, RecursionError) as exc:  # RecursionError: JSON nested deep
            raise discovery_error(exc, settings) from None
        finally:
            self._save_http_cache()
        if directory is not None:
            token_cache.record_authority(
                directory,
                settings.authority,
                app.authority.instance,
                app.authority.tenant,
                "encrypted" if self.cache_encrypted else "file",
            )
        return app

    def _save_http_cache(self) -> None:
        if self._http_cache is not None:
            self._http_cache.save()

    # -- tokens

    def get_token(self, *, force_refresh: bool = False) -> AccessToken:
        """A token for :attr:`scope`: from the cache when still valid.

        Only a token obtained for this tenant, client id, authority, scope and
        certificate is ever served from the cache.

        Args:
            force_refresh: skip the cache and ask the token endpoint (e.g. after
                Graph answered 401 InvalidAuthenticationToken, or 403 to a cached
                token); the new token replaces the cached one.

        Raises:
            AuthError: the token endpoint refused, with advice.
            NetworkError: connection, TLS or timeout problems, or a 5xx answer.
            ThrottledError: the token endpoint answered 429.
        """
        with self._lock:
            if self._app is None and self._persist and not force_refresh:
                cached = self._cached_token()
                if cached is not None:
                    return cached
            # One process at a time asks for this partition's token: the others then
            # find it in the cache (16 cold processes make one token request, not 16).
            with self._acquisition_lock():
                return self._acquire(force_refresh)

    def _acquisition_lock(self) -> contextlib.AbstractContextManager[bool]:
        if not self._persist:
            return contextlib.nullcontext(False)
        return token_cache.acquisition_lock(token_cache.private_dir(self.cache_dir), self.partition)

    def _acquire(self, force_refresh: bool) -> AccessToken:
        """Ask msal (its cache first, unless ``force_refresh``), retrying what the token
        endpoint may answer differently a moment later: 429, 5xx, a dropped connection
        or a timeout (the same bounded policy as Graph's, :mod:`graphkit.retry`)."""
        import requests
        from msal.exceptions import MsalServiceError

        retries = self._retry.start()
        scopes = [self.scope]
        host = urlsplit(self.settings.authority_host).netloc
        while True:
            retries.attempt += 1
            failure: GraphkitError
            try:
                if self._app is None:
                    self._app = self._build_app()
                if force_refresh:
                    self._forget_token(self._app, scopes)
                result = self._app.acquire_token_for_client(scopes=scopes)
            except requests.exceptions.SSLError as exc:
                raise network_error(exc, self.settings) from None
            except requests.exceptions.RequestException as exc:  # reset, timeout
                failure = network_error(exc, self.settings)
            except MsalServiceError as exc:  # 5xx from the token endpoint
                failure = NetworkError(
                    f"the token endpoint at {host} failed ({first_line(redact(str(exc)))})",
                    "retry later",
                )
            except (ValueError, RecursionError) as exc:  # not JSON (or nested past parsing)
                if self._last_status() != 429:
                    self._refuse_redirect()
                    raise AuthError(
                        "the token endpoint answered with something that is not JSON",
                        "check the authority host; rerun with --debug for details",
                    ) from exc
                failure = throttled()
            else:
                if "access_token" in result:
                    return _access_token(result)
                status = self._last_status()
                if status == 429 or result.get("error") == "temporarily_unavailable":
                    failure = throttled()
                elif status is not None and status >= 500:
                    failure = NetworkError(
                        f"the token endpoint at {host} answered HTTP {status}", "retry later"
                    )
                else:
                    self._refuse_redirect()
                    raise token_error(result, self.settings, self.facts, scope=self.scope)
            finally:
                self._save_http_cache()
            wait, why = retries.next_wait(self._retry_after())
            if wait is None:
                raise type(failure)(f"{failure.message} ({why})", failure.hint) from None
            self._notice(
                f"{first_line(failure.message)}; retry {retries.attempt} of "
                f"{self._retry.max_attempts - 1} in {wait:.1f} s"
            )
            if self._http_cache is not None:
                token_cache.forget_token_answers(self._http_cache)
            elif self._app is not None:
                token_cache.forget_token_answers(self._memory_http_cache)
            self._retry.sleep(wait)

    def _retry_after(self) -> float | None:
        headers = getattr(self._http_client, "last_headers", None) or {}
        return parse_retry_after(headers.get("Retry-After"))

    def _refuse_redirect(self) -> None:
        """Raise when the token endpoint answered with a redirect (never followed)."""
        status = self._last_status()
        if status is not None and 300 <= status < 400:
            host = urlsplit(self.settings.authority_host).netloc
            raise AuthError(
                f"the token endpoint at {host} answered with a redirect (HTTP {status}); "
                "graphkit does not send the client assertion on to another address",
                "check the authority host: it should be the login host of your cloud",
            )

    def _cached_token(self) -> AccessToken | None:
        """The token msal would serve from the plain-file cache, found without msal
        (see :func:`graphkit.token_cache.cached_token`); None if msal must be asked."""
        if self.settings.client_id is None:
            return None
        now = time.time()
        directory = self.cache_dir
        found = token_cache.cached_token(
            directory,
            authority=self.settings.authority,
            certificate_sha256=self.facts.sha256,
            client_id=self.settings.client_id,
            scope=self.scope,
            now=now,
        )
        if found is None:
            return None
        self.cache_encrypted = False
        if self._on_notice is not None:
            notice = token_cache.plaintext_notice(directory)
            if notice:
                self._notice(notice)
        return _access_token(
            {
                "access_token": found["secret"],
                "expires_in": int(int(found["expires_on"]) - now),
                "token_source": "cache",  # nosec B105  # where the token came from
            }
        )

    def _last_status(self) -> int | None:
        return getattr(self._http_client, "last_status", None)

    def _forget_token(self, app: Any, scopes: list[str]) -> None:
        """Remove this client's cached token for ``scopes`` (msal has no force_refresh
        for client credentials; ``claims_challenge`` would alter the request)."""
        from msal import TokenCache

        cache = app.token_cache
        for at in list(
            cache.search(
                TokenCache.CredentialType.ACCESS_TOKEN,
                target=scopes,
                query={"client_id": app.client_id, "realm": app.authority.tenant},
            )
        ):
            cache.remove_at(at)

    def close(self) -> None:
        if self._own_session and self._http_client is not None:
            with contextlib.suppress(Exception):
                self._http_client.close()

    def __enter__(self) -> CertificateCredential:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _access_token(result: Mapping[str, Any]) -> AccessToken:
    """An AccessToken from msal's answer (or one shaped like it)."""
    token = str(result["access_token"])
    claims = decode_claims(token)
    expires_in = int(result.get("expires_in") or 0)
    exp = claims.get("exp")
    expires_on = int(exp) if isinstance(exp, int | float) else int(time.time()) + expires_in
    return AccessToken(
        token=token,
        expires_on=expires_on,
        from_cache=result.get("token_source") == "cache",
        claims=claims,
    )
