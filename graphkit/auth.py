"""App-only tokens from Entra ID with a certificate, through msal.

:class:`CertificateCredential` hands msal the private key AND the public certificate,
so msal signs its client assertion with PS256 and an ``x5t#S256`` header (the current
Entra ID form; PROTOCOL.md §1). An encrypted PEM key or a PFX is opened here with the
passphrase and given to msal as an unencrypted PEM held only in memory.

Two caches persist in :func:`graphkit.config.state_dir`, so that a second process
within the token's lifetime does not talk to the identity platform at all:

- the token cache (msal-extensions ``PersistedTokenCache``, with its cross-process
  file lock): encrypted where the platform offers it (DPAPI, Keychain, libsecret),
  otherwise a plain file at mode 0600, replaced atomically so concurrent readers never
  see half of it;
- msal's ``http_cache`` (OIDC discovery answers and msal's throttling memos; never
  tokens): a pickled dict written atomically; a corrupt or foreign file is ignored.

The warm path: when the token cache is the plain 0600 file, :meth:`CertificateCredential.get_token`
first looks for the token itself, exactly as msal's ``acquire_token_for_client``
would (:func:`find_cached_token`), before the certificate's key is parsed or msal is
even imported. It needs the tenant msal's authority resolved to (the ``realm`` of its
cache entries), which an index file records each time msal builds its application.
Anything else (no index, an encrypted store, no usable token, ``force_refresh``)
goes through msal as before.

The library never prints. Notices (the plaintext-cache notice, shown once per state
directory, and certificate expiry) go to an ``on_notice`` callback when given,
otherwise to the ``graphkit.auth`` logger. Errors are raised as
:class:`~graphkit.errors.AuthError` with advice (PROTOCOL.md §2) or
:class:`~graphkit.errors.NetworkError`.
"""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import json
import logging
import os
import re
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from graphkit.config import (
    ClientCertificate,
    Settings,
    certificate_facts,
    expiry_warning,
    load_client_certificate,
    state_dir,
)
from graphkit.errors import AuthError, ConfigError, NetworkError, ThrottledError, redact

__all__ = [
    "AccessToken",
    "CertificateCredential",
    "decode_claims",
    "find_cached_token",
    "set_notice_handler",
    "token_error",
]

log = logging.getLogger(__name__)

# Where notices go when a credential is made without ``on_notice`` (the CLI sets it).
_notice_handler: Callable[[str], None] | None = None


def set_notice_handler(handler: Callable[[str], None] | None) -> None:
    """Send notices of credentials made without ``on_notice`` to ``handler``."""
    global _notice_handler
    _notice_handler = handler


TOKEN_CACHE_FILE = "msal_token_cache.json"  # plaintext fallback (mode 0600)
ENCRYPTED_CACHE_FILE = "msal_token_cache.bin"  # signal/data file of the encrypted store
HTTP_CACHE_FILE = "msal_http_cache.pickle"
# What msal's application resolved (authority -> cache environment and realm) and which
# token store it used: lets the warm path read the token cache without msal.
AUTHORITY_INDEX_FILE = "msal_authorities.json"
_INDEX_VERSION = 1
_MAX_AUTHORITIES = 32
# msal treats an access token with less than this many seconds left as expired.
MSAL_EXPIRY_MARGIN = 5 * 60
PLAINTEXT_NOTICE_MARKER = ".plaintext-token-cache-notice"

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


@dataclass
class AccessToken:
    """A bearer token and what a person might want to know about it."""

    token: str = field(repr=False)
    expires_on: int  # epoch seconds
    from_cache: bool
    claims: dict[str, Any] = field(default_factory=dict)  # decoded WITHOUT verification

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
    except (ValueError, UnicodeDecodeError):
        return {}
    return claims if isinstance(claims, dict) else {}


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


def _make_session(ca_bundle: str | None, timeout: tuple[float, float]) -> Any:
    """A requests.Session that really verifies with ``ca_bundle``.

    requests lets REQUESTS_CA_BUNDLE / CURL_CA_BUNDLE in the environment override
    ``Session.verify``; here a per-request default wins instead, so the CA the user
    configured is the one trusted (the environment still applies when none is).
    """
    import requests
    from requests.adapters import HTTPAdapter
    from urllib3.util.retry import Retry

    class _Session(requests.Session):
        last_status: int | None = None  # of the latest answer: msal hides it from us

        def request(self, method: str | bytes, url: str | bytes, **kwargs: Any) -> Any:  # type: ignore[override]
            if ca_bundle is not None and kwargs.get("verify") is None:
                kwargs["verify"] = ca_bundle
            kwargs.setdefault("timeout", timeout)
            if str(method).upper() == "POST":
                # A token endpoint never redirects; following a 307/308 would re-send
                # the form, client assertion included, wherever Location points.
                kwargs["allow_redirects"] = False
            self.last_status = None
            response = super().request(method, url, **kwargs)
            self.last_status = response.status_code
            return response

    session = _Session()
    # Connection failures are retried briefly; a token POST is safe to repeat.
    # Statuses are not retried here: msal reads 429/5xx (and its Retry-After) itself.
    retry = Retry(
        total=3,
        connect=3,
        read=1,
        status=0,
        other=0,
        allowed_methods=None,
        backoff_factor=0.3,
        respect_retry_after_header=False,
        raise_on_status=False,
    )
    adapter = HTTPAdapter(max_retries=retry)
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    return session


# ------------------------------------------------------------------ persistence


def _private_dir(path: Path) -> Path:
    """The state directory, created 0700 if missing; refused if others can write it.

    Others who can write it could plant a token cache or a pickle, swap our files, or
    put a link where msal-extensions opens its lock file for writing.
    """
    from graphkit.files import ensure_private_dir, not_private

    try:
        ensure_private_dir(path)
    except Exception as exc:  # InputError with a one-line message
        raise ConfigError(
            f"cannot create graphkit's state directory {path}",
            "check GRAPHKIT_HOME and its permissions",
        ) from exc
    problem = not_private(path)
    if problem:
        raise ConfigError(
            f"graphkit's state directory {path} is {problem}: tokens are not kept there",
            f"run chmod 700 {path} (it must be yours), or set GRAPHKIT_HOME elsewhere",
        )
    return path


class PersistentHttpCache(dict):
    """msal's ``http_cache``, loaded from and saved to one file.

    Holds OIDC discovery answers and msal's throttling memos (never tokens). Saving
    writes a whole new file and renames it, so concurrent writers cannot corrupt it
    (the last one wins; a lost entry costs one discovery request). A file that
    cannot be read back is ignored and later replaced.
    """

    def __init__(self, path: Path) -> None:
        import pickle

        super().__init__()
        self.path = path
        self._lock = threading.Lock()
        self._saved = pickle.dumps({}, protocol=pickle.HIGHEST_PROTOCOL)
        self.load()

    def load(self) -> None:
        import pickle

        from graphkit.files import read_private

        raw = read_private(self.path)  # others could plant what pickle runs
        if raw is None:
            return
        try:
            data = pickle.loads(raw)
        except Exception:  # corrupt, truncated, from another msal version...
            log.debug("ignoring unreadable http cache %s", self.path)
            return
        if isinstance(data, dict):
            self.update(data)
            self._saved = raw

    def save(self) -> None:
        """Write the cache if it changed; failures are logged, never raised."""
        import pickle

        from graphkit.files import PRIVATE, atomic_write

        with self._lock:
            try:
                raw = pickle.dumps(dict(self), protocol=pickle.HIGHEST_PROTOCOL)
            except Exception:
                log.debug("http cache not picklable; not saved", exc_info=True)
                return
            if raw == self._saved:
                return
            try:
                atomic_write(self.path, raw, mode=PRIVATE, force=True)
                self._saved = raw
            except Exception:
                log.debug("could not save http cache %s", self.path, exc_info=True)


def _file_persistence(location: Path) -> Any:
    """msal-extensions' FilePersistence with atomic saves at mode 0600."""
    from msal_extensions import FilePersistence

    from graphkit.files import PRIVATE, atomic_write

    class _AtomicFilePersistence(FilePersistence):
        def save(self, content: str) -> None:
            atomic_write(self._location, content.encode("utf-8"), mode=PRIVATE, force=True)

        def load(self) -> str:
            """The cache, only from a file we wrote (see read_private): a planted
            cache would choose the token sent to Graph. Otherwise msal starts empty
            and the next save replaces the file."""
            from msal_extensions.persistence import PersistenceNotFound

            from graphkit.files import read_private

            raw = read_private(self._location)
            if raw is None:
                raise PersistenceNotFound(location=self._location)
            return raw.decode("utf-8", errors="replace")

    return _AtomicFilePersistence(str(location))


def _build_token_cache(directory: Path) -> tuple[Any, bool]:
    """A PersistedTokenCache, encrypted if the platform allows; (cache, encrypted)."""
    from msal_extensions import PersistedTokenCache, build_encrypted_persistence
    from msal_extensions.persistence import PersistenceNotFound

    persistence: Any = None
    encrypted = False
    try:
        persistence = build_encrypted_persistence(str(directory / ENCRYPTED_CACHE_FILE))
        # build_encrypted_persistence has no plaintext fallback and may fail only on
        # first use (no keyring daemon, locked keychain): try a read now.
        with contextlib.suppress(PersistenceNotFound):
            persistence.load()
        encrypted = True
    except Exception:
        log.debug("encrypted token cache unavailable; using a 0600 file", exc_info=True)
        persistence = _file_persistence(directory / TOKEN_CACHE_FILE)

    class _TokenCache(PersistedTokenCache):
        """A lock held too long (e.g. left by a killed process) is cleared once; if the
        lock still cannot be had, the token is kept in memory for this run, not lost."""

        def modify(
            self, credential_type: Any, old_entry: Any, new_key_value_pairs: Any = None
        ) -> None:
            from msal import SerializableTokenCache
            from msal_extensions import LockError

            _remove_stale_lock(Path(self._lock_location))
            try:
                super().modify(credential_type, old_entry, new_key_value_pairs)
                return
            except LockError:
                pass
            log.warning(
                "token cache lock %s is held by another process; this token is not saved",
                self._lock_location,
            )
            SerializableTokenCache.modify(self, credential_type, old_entry, new_key_value_pairs)

    return _TokenCache(persistence), encrypted


# A cache write takes milliseconds; a lock file older than this was left behind.
STALE_LOCK_SECONDS = 30.0


def _remove_stale_lock(lock: Path) -> bool:
    """Remove ``lock`` if it is older than STALE_LOCK_SECONDS; True if removed."""
    try:
        age = time.time() - lock.stat().st_mtime
    except OSError:
        return False
    if age < STALE_LOCK_SECONDS:
        return False
    try:
        lock.unlink()
    except FileNotFoundError:
        pass
    except OSError:
        return False
    log.info("removed stale token cache lock %s (%.0f s old)", lock, age)
    return True


def _plaintext_notice(directory: Path) -> str | None:
    """The plaintext-cache notice the first time it is due in ``directory``, else None."""
    marker = directory / PLAINTEXT_NOTICE_MARKER
    try:
        fd = os.open(marker, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return None
    except OSError:
        return None
    os.close(fd)
    return (
        f"no encrypted storage is available here, so tokens are cached in "
        f"{directory / TOKEN_CACHE_FILE} (readable only by you, mode 0600); "
        "this notice is shown once"
    )


# ------------------------------------------------------------ the warm path


def _matches(entry: Mapping[str, Any], query: Mapping[str, Any]) -> bool:
    """msal's ``is_subdict_of(query, entry)``: each queried key present and equal."""
    return all(k in entry and entry[k] == v for k, v in query.items())


def find_cached_token(
    cache: Mapping[str, Any],
    *,
    client_id: str,
    environment: str,
    realm: str,
    scopes: list[str],
    now: float | None = None,
) -> dict[str, Any] | None:
    """The access-token entry msal's ``acquire_token_for_client(scopes)`` would serve
    from ``cache`` (msal's serialised token cache, parsed), or None when msal would
    call the token endpoint instead.

    A transcription of msal 1.39's cache lookup for client credentials
    (``ClientApplication._acquire_token_silent_from_cache_and_possibly_refresh_it``
    with no account, and ``TokenCache.search``): first the entry under its exact
    key, then any other unexpired entry of this client, cache environment and realm,
    with no ``home_account_id`` and no ``ext_cache_key``, whose target includes every
    requested scope; the first with at least five minutes left wins, unless its
    ``refresh_on`` has passed (msal would then ask for a new one). ``environment`` and
    ``realm`` are msal's ``authority.instance`` and ``authority.tenant``. Anything
    malformed returns None: msal then decides. tests/test_fast_path.py checks this
    against msal itself.
    """
    try:
        entries = cache.get("AccessToken")
        if not isinstance(entries, dict):
            return None
        now = time.time() if now is None else now
        query = {
            "client_id": client_id,
            "environment": environment.lower(),
            "realm": realm,
            "home_account_id": None,
        }
        target = sorted(scopes)
        key = "-".join(["", environment, "AccessToken", client_id, realm, " ".join(target)])
        preferred = entries.get(key.lower())
        candidates: list[Mapping[str, Any]] = []
        if isinstance(preferred, dict) and _matches(preferred, query):
            candidates.append(preferred)
        wanted = set(target)
        for entry in entries.values():
            if int(entry["expires_on"]) < int(now):
                continue
            if (
                entry != preferred
                and _matches(entry, query)
                and wanted <= set(entry.get("target", "").split())
                and "ext_cache_key" not in entry
            ):
                candidates.append(entry)
        for entry in candidates:
            if int(entry["expires_on"]) - now < MSAL_EXPIRY_MARGIN:
                continue
            if "refresh_on" in entry and int(entry["refresh_on"]) < now:
                return None  # msal would refresh it now (keeping it only as a fallback)
            if not isinstance(entry.get("secret"), str):
                return None
            return dict(entry)
    except (AttributeError, KeyError, TypeError, ValueError):
        return None
    return None


def _read_json(path: Path) -> Any:
    """The JSON in ``path`` if it is a file we wrote (see read_private), else None."""
    from graphkit.files import read_private

    raw = read_private(path)
    if raw is None:
        return None
    try:
        return json.loads(raw)
    except ValueError:
        return None


def _read_index(directory: Path) -> dict[str, Any]:
    data = _read_json(directory / AUTHORITY_INDEX_FILE)
    if not isinstance(data, dict) or data.get("version") != _INDEX_VERSION:
        return {}
    return data


def _record_authority(
    directory: Path, authority: str, environment: str, realm: str, store: str
) -> None:
    """Remember what msal resolved ``authority`` to, and the token store it used."""
    from graphkit.files import PRIVATE, atomic_write

    index = _read_index(directory)
    known = index.get("authorities")
    known = known if isinstance(known, dict) else {}
    entry = {"environment": environment, "realm": realm}
    if index.get("token_cache") == store and known.get(authority) == entry:
        return
    authorities: dict[str, Any] = {authority: entry}
    for key, value in known.items():
        if key != authority and len(authorities) < _MAX_AUTHORITIES:
            authorities[key] = value
    data = {"version": _INDEX_VERSION, "token_cache": store, "authorities": authorities}
    try:
        atomic_write(
            directory / AUTHORITY_INDEX_FILE,
            json.dumps(data, indent=1).encode("utf-8"),
            mode=PRIVATE,
            force=True,
        )
    except Exception:
        log.debug("could not save %s", AUTHORITY_INDEX_FILE, exc_info=True)


# ----------------------------------------------------------------- token errors

_CODE = re.compile(r"AADSTS(\d+)")


def _error_codes(result: Mapping[str, Any]) -> list[int]:
    codes = [int(c) for c in result.get("error_codes") or [] if str(c).isdigit()]
    if not codes:
        codes = [int(c) for c in _CODE.findall(str(result.get("error_description", "")))]
    return codes


def _first_line(text: str) -> str:
    line = text.strip().splitlines()[0] if text.strip() else ""
    return line[:300]


def _upload_hint(cert: ClientCertificate | None) -> str:
    if cert is None:
        return "upload the app's certificate"
    if cert.holds_key:
        # Never suggest uploading a file that contains the private key.
        return f"upload the public certificate from {cert.path} (the .crt/.cer, never the key)"
    return f"upload {cert.path}"


def token_error(
    result: Mapping[str, Any], settings: Settings, cert: ClientCertificate | None = None
) -> AuthError:
    """Turn a token-endpoint (or discovery) error answer into advice (PROTOCOL.md §2)."""
    error = str(result.get("error") or "error")
    codes = _error_codes(result)
    code = codes[0] if codes else None
    description = _first_line(redact(str(result.get("error_description") or "")))
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


def _network_error(exc: BaseException, settings: Settings) -> NetworkError:
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
    return NetworkError(
        f"cannot connect to {host}",
        "check the network, proxy settings and the authority host",
    )


def _discovery_error(exc: ValueError, settings: Settings) -> AuthError:
    """msal raises ValueError when OIDC discovery fails; dig out the AADSTS code."""
    texts = []
    e: BaseException | None = exc
    while e is not None:
        texts.append(str(e))
        e = e.__context__ or e.__cause__
    text = " ".join(texts)
    match = re.search(r"\{.*\}", text, re.DOTALL)
    body: dict[str, Any] = {}
    if match:
        with contextlib.suppress(ValueError):
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


# ----------------------------------------------------------------- credential


class CertificateCredential:
    """App-only tokens for ``settings`` (tenant, client id, certificate...).

    Args:
        settings: resolved settings; the certificate is loaded (and checked) here.
        persist_cache: keep tokens and discovery answers in the state directory
            across processes (False: in memory for this object only).
        on_notice: called with one-line notices meant for the user (plaintext token
            cache, first time only; certificate expiring within 30 days). Default: the
            handler given to :func:`set_notice_handler`; with neither, notices are
            logged and the plaintext notice stays due.
        cache_dir: where the caches live (default: :func:`graphkit.config.state_dir`).
        timeout: (connect, read) seconds for each request.
        http_client: a requests.Session-like object to use instead of graphkit's own
            (it must then apply ``ca_bundle`` itself).

    Raises:
        ConfigError, CryptoError: the settings or certificate cannot be used (checked
            here; the key itself is parsed only when msal needs it, see
            :func:`graphkit.config.certificate_facts`).
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
    ) -> None:
        for key in ("tenant", "client_id"):
            if not getattr(settings, key):
                raise ConfigError(
                    f"no {key} configured",
                    f"give --{key.replace('_', '-')} or set it in the profile",
                )
        self.settings = settings
        self._on_notice = on_notice if on_notice is not None else _notice_handler
        self._persist = persist_cache
        self._cache_dir = cache_dir
        # Checked now (as a full load would); loaded in full when msal needs the key.
        facts = certificate_facts(settings, cache_dir=self.cache_dir if persist_cache else None)
        self._timeout = timeout
        self._http_client = http_client
        self._own_session = http_client is None
        self._app: Any = None
        self._http_cache: PersistentHttpCache | None = None
        self.cache_encrypted: bool | None = None
        self._lock = threading.Lock()
        warning = expiry_warning(facts)
        if warning:
            self._notice(warning)

    @property
    def certificate(self) -> ClientCertificate:
        """The certificate and key, loaded (once) when first needed."""
        return load_client_certificate(self.settings)

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
        token_cache: Any
        http_cache: Any
        directory: Path | None = None
        if self._persist:
            directory = _private_dir(self.cache_dir)
            token_cache, encrypted = _build_token_cache(directory)
            self.cache_encrypted = encrypted
            if not encrypted and self._on_notice is not None:
                notice = _plaintext_notice(directory)
                if notice:
                    self._notice(notice)
            self._http_cache = PersistentHttpCache(directory / HTTP_CACHE_FILE)
            http_cache = self._http_cache
        else:
            token_cache, http_cache = msal.SerializableTokenCache(), {}
        if self._http_client is None:
            self._http_client = _make_session(settings.ca_bundle, self._timeout)
        host = (urlsplit(settings.authority_host).hostname or "").lower()
        kwargs: dict[str, Any] = {}
        if host not in _PUBLIC_LOGIN_HOSTS:
            kwargs["instance_discovery"] = False
        try:
            app = msal.ConfidentialClientApplication(
                settings.client_id,
                authority=settings.authority,
                client_credential={
                    # Given the public certificate, msal signs PS256 with x5t#S256.
                    "private_key": self.certificate.private_key_pem,
                    "public_certificate": self.certificate.certificate_pem,
                },
                token_cache=token_cache,
                http_client=self._http_client,
                http_cache=http_cache,
                **kwargs,
            )
        except requests.exceptions.RequestException as exc:
            raise _network_error(exc, settings) from None
        except ValueError as exc:
            raise _discovery_error(exc, settings) from None
        finally:
            self._save_http_cache()
        if directory is not None:
            _record_authority(
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
        """A token for ``settings.scope``: from the cache when still valid.

        Args:
            force_refresh: skip the cache and ask the token endpoint (e.g. after
                Graph answered 401 InvalidAuthenticationToken).

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
            import requests
            from msal.exceptions import MsalServiceError

            if self._app is None:
                self._app = self._build_app()
            app = self._app
            scopes = [self.settings.scope]
            try:
                if force_refresh:
                    self._forget_token(app, scopes)
                result = app.acquire_token_for_client(scopes=scopes)
            except requests.exceptions.RequestException as exc:
                raise _network_error(exc, self.settings) from None
            except MsalServiceError as exc:  # 5xx from the token endpoint
                raise NetworkError(
                    f"the token endpoint at {urlsplit(self.settings.authority_host).netloc} "
                    f"failed ({_first_line(redact(str(exc)))})",
                    "retry later",
                ) from None
            except ValueError as exc:  # not JSON
                if self._last_status() == 429:
                    raise _throttled() from None
                self._refuse_redirect()
                raise AuthError(
                    "the token endpoint answered with something that is not JSON",
                    "check the authority host; rerun with --debug for details",
                ) from exc
            finally:
                self._save_http_cache()
        if "access_token" not in result:
            if self._last_status() == 429 or result.get("error") == "temporarily_unavailable":
                raise _throttled()
            self._refuse_redirect()
            raise token_error(result, self.settings, self.certificate)
        return _access_token(result)

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
        (see :func:`find_cached_token`); None if msal must be asked."""
        from graphkit.files import not_private

        directory = self.cache_dir
        if not_private(directory):
            return None  # msal's path refuses the directory, saying why
        index = _read_index(directory)
        authorities = index.get("authorities")
        entry = authorities.get(self.settings.authority) if isinstance(authorities, dict) else None
        if index.get("token_cache") != "file" or not isinstance(entry, dict):
            return None
        environment, realm = entry.get("environment"), entry.get("realm")
        cache = _read_json(directory / TOKEN_CACHE_FILE)
        if not isinstance(environment, str) or not isinstance(realm, str):
            return None
        if not isinstance(cache, dict) or self.settings.client_id is None:
            return None
        now = time.time()
        found = find_cached_token(
            cache,
            client_id=self.settings.client_id,
            environment=environment,
            realm=realm,
            scopes=[self.settings.scope],
            now=now,
        )
        if found is None:
            return None
        self.cache_encrypted = False
        if self._on_notice is not None:
            notice = _plaintext_notice(directory)
            if notice:
                self._notice(notice)
        return _access_token(
            {
                "access_token": found["secret"],
                "expires_in": int(int(found["expires_on"]) - now),
                "token_source": "cache",
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


def _throttled() -> ThrottledError:
    return ThrottledError(
        "the token endpoint is throttling requests (HTTP 429)", "wait a minute and retry"
    )
