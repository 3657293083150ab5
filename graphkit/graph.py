"""GraphClient: authenticated, retrying, paging access to Microsoft Graph.

The library half of ``graphkit query``: it returns data and raises
:mod:`graphkit.errors` exceptions; it never prints. Waits between retries are
reported through the ``on_wait`` callback so that a command line can show them.

Safety rule enforced here (not only in the CLI): the bearer token is only ever sent
to the configured Graph origin (scheme, host and port). A full URL or an
``@odata.nextLink`` that points anywhere else is refused before any request is made.

Example::

    from graphkit import GraphClient

    with GraphClient.from_profile("contoso") as graph:
        for user in graph.iter("/users", {"$select": "displayName,mail"}):
            print(user["displayName"])
"""

from __future__ import annotations

import json
import os
import random
import re
import threading
import time
from collections.abc import Callable, Generator, Iterator, Mapping
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import quote, urljoin, urlsplit

from graphkit.errors import (
    BadRequestError,
    ConfigError,
    ForeignHostError,
    GraphError,
    NetworkError,
    NotFoundError,
    OutcomeUnknownError,
    PermissionDeniedError,
    ThrottledError,
    UnauthorizedError,
    UsageError,
    redact,
    register_secret,
)

# The one retry policy's numbers (attempts, wait cap, backoff), shared with the token
# endpoint and $batch.
from graphkit.retry import (
    BACKOFF_BASE,
    BACKOFF_CAP,
    DEFAULT_MAX_ATTEMPTS,
    DEFAULT_MAX_TOTAL_WAIT,
    parse_retry_after,
)
from graphkit.transport import DEFAULT_PORTS as _DEFAULT_PORTS
from graphkit.transport import (
    check_headers,
    connection_refused,
    is_loopback,
    loopback_refused_hint,
    make_session,
    origin_of,
    show_origin,
    target,
    wire_url,
)

if TYPE_CHECKING:  # pragma: no cover
    import requests

    from graphkit.paging import Lane, Prefetcher

__all__ = [
    "API_VERSIONS",
    "IDEMPOTENT_METHODS",
    "GraphClient",
    "TokenCredential",
    "advanced_query",
    "encode_params",
    "needs_eventual_consistency",
    "required_role",
]

API_VERSIONS = ("v1.0", "beta")
# Microsoft Graph's application id: a v1.0 token's aud may be it rather than the URL.
_GRAPH_APP_ID = "00000003-0000-0000-c000-000000000000"

# Statuses worth retrying: throttling and "try again later" gateway answers.
RETRY_STATUSES = frozenset({429, 503, 504})
# Methods that may be sent again after a 5xx or a dropped connection: sending them twice
# has the effect of sending them once (RFC 9110 §9.2.2). POST and PATCH are not: a 503,
# a 504 or a dropped connection leaves unknown whether Graph applied them, so they are
# reported (OutcomeUnknownError), never resent. A 429 is resent for every method: Graph
# did not process a throttled request.
IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "PUT", "DELETE", "OPTIONS"})
# Answers to a POST/PATCH after which it may have been applied (a gateway that timed out
# may have passed it on; a 500 may come after the write).
_OUTCOME_UNKNOWN_STATUSES = frozenset({500, 502, 503, 504})
# (connect, read) timeouts in seconds; Graph's own SDK uses 100 s for reads.
DEFAULT_TIMEOUT = (10.0, 100.0)
# A cached access token is reused until this many seconds before it expires.
TOKEN_REUSE_MARGIN = 60
MAX_REDIRECTS = 5
# Characters left unescaped in query values: OData reads them literally and they keep
# URLs readable ($filter=startswith(displayName,'A')). Spaces become %20, never '+'.
_QUERY_SAFE = "$,'()/:@*"

# Roles (application permissions) that the first path segment needs, least privileged
# first. Used to say which role a token lacks when Graph answers 403.
_ROLE_FOR_SEGMENT = {
    "users": "User.Read.All",
    "groups": "Group.Read.All",
    "applications": "Application.Read.All",
    "serviceprincipals": "Application.Read.All",
    "organization": "Organization.Read.All",
    "devices": "Device.Read.All",
    "domains": "Domain.Read.All",
    "directoryroles": "RoleManagement.Read.Directory",
    "rolemanagement": "RoleManagement.Read.Directory",
    "auditlogs": "AuditLog.Read.All",
    "sites": "Sites.Read.All",
    "contacts": "OrgContact.Read.All",
    "policies": "Policy.Read.All",
    "reports": "Reports.Read.All",
    "teams": "Team.ReadBasic.All",
    "chats": "Chat.Read.All",
    "subscribedskus": "Organization.Read.All",
}
# Roles that also satisfy a read of the segment (a broader grant).
_BROADER_ROLES = {
    "User.Read.All": ("User.ReadWrite.All", "Directory.Read.All", "Directory.ReadWrite.All"),
    "Group.Read.All": ("Group.ReadWrite.All", "Directory.Read.All", "Directory.ReadWrite.All"),
    "Application.Read.All": ("Application.ReadWrite.All", "Directory.Read.All"),
    "Organization.Read.All": ("Organization.ReadWrite.All", "Directory.Read.All"),
    "Device.Read.All": ("Directory.Read.All",),
}


class TokenCredential(Protocol):
    """Anything that hands out access tokens (``graphkit.tokens.CertificateCredential``)."""

    def get_token(self, *, force_refresh: bool = False) -> Any:
        """Return an object with ``token`` (str) and ``expires_on`` (epoch seconds)."""
        ...


# ------------------------------------------------------------------ pure helpers


# How a URL's origin is judged lives with the sessions that enforce it.
_origin = origin_of
_target = target
_wire_url = wire_url
_show_origin = show_origin


def encode_params(params: Mapping[str, Any] | None) -> str:
    """Encode OData query options, keeping ``$`` and OData punctuation readable."""
    if not params:
        return ""
    out = []
    for key, value in params.items():
        if value is None:
            continue
        if isinstance(value, bool):
            value = "true" if value else "false"
        out.append(f"{quote(str(key), safe='$')}={quote(str(value), safe=_QUERY_SAFE)}")
    return "&".join(out)


_STRING_LITERAL = re.compile(r"'(?:[^']|'')*'")
_ADVANCED_FILTER = re.compile(r"\bne\b|\bnot\b|\bendswith\s*\(", re.IGNORECASE)


def needs_eventual_consistency(url: str, params: Mapping[str, Any] | None = None) -> bool:
    """Whether Graph needs ``ConsistencyLevel: eventual`` for this query.

    Advanced queries (PROTOCOL.md §5): ``$count``, ``$search``, filters using ``ne``,
    ``not`` or ``endsWith``, and ``$orderby`` combined with ``$filter``. Looks at both
    ``params`` and any query string already in ``url``.
    """
    from urllib.parse import parse_qsl

    parts = urlsplit(url)
    options: dict[str, str] = {k.lower(): v for k, v in parse_qsl(parts.query)}
    for key, value in (params or {}).items():
        if value is not None:
            options[str(key).lower()] = (
                str(value).lower() if isinstance(value, bool) else str(value)
            )
    if parts.path.rstrip("/").endswith("/$count"):
        return True
    if options.get("$count", "").lower() == "true" or "$search" in options:
        return True
    flt = options.get("$filter")
    if flt:
        if _ADVANCED_FILTER.search(_STRING_LITERAL.sub("''", flt)):
            return True
        if "$orderby" in options:
            return True
    return False


def advanced_query(
    url: str, params: Mapping[str, Any] | None, headers: Mapping[str, str] | None
) -> tuple[dict[str, Any], dict[str, str]]:
    """``params`` and ``headers`` with what Graph needs for an advanced query added.

    Graph answers an advanced query (:func:`needs_eventual_consistency`) only with BOTH
    ``ConsistencyLevel: eventual`` and ``$count=true`` (the ``/$count`` segment needs just
    the header); without them it is 400 Request_UnsupportedQuery (PROTOCOL.md §5,
    aad-advanced-queries.md). What the caller set itself is kept.
    """
    from urllib.parse import parse_qsl

    p = dict(params or {})
    h = dict(headers or {})
    if not needs_eventual_consistency(url, p):
        return p, h
    if not any(k.lower() == "consistencylevel" for k in h):
        h["ConsistencyLevel"] = "eventual"
    parts = urlsplit(url)
    in_url = {k.lower() for k, _ in parse_qsl(parts.query)}
    segment = parts.path.rstrip("/").endswith("/$count")
    if not segment and "$count" not in in_url and not any(k.lower() == "$count" for k in p):
        p["$count"] = "true"
    return p, h


def required_role(url: str) -> str | None:
    """The least privileged application permission a read of ``url`` needs, if known."""
    segments = [s for s in urlsplit(url).path.split("/") if s]
    if segments and segments[0] in API_VERSIONS:
        segments = segments[1:]
    if not segments:
        return None
    first = segments[0].split("(", 1)[0].lower()
    return _ROLE_FOR_SEGMENT.get(first)


def _resolve_link(base: str, link: Any, what: str, *, redirect: bool = False) -> str:
    """A link Graph sent (``@odata.nextLink``, a redirect's ``Location``) made absolute
    against ``base``.

    A value that is no usable URL (not a string, an unclosed ``[``, a bad port, a scheme
    requests cannot fetch) is Graph's fault (or a proxy's), said as such; whether the
    token may go there is judged afterwards, by origin.

    Raises:
        GraphError: the link is malformed.
    """
    problem = None
    url = ""
    if not isinstance(link, str) or not link.strip():
        problem = "not a URL"
    else:
        try:
            url = urljoin(base, link.strip())
            origin, _plain = _target(url)
        except (ValueError, UsageError):
            problem = "not a valid URL"
        else:
            if redirect and origin[0] not in _DEFAULT_PORTS:
                problem = "not an http(s) URL"
    if problem:
        raise GraphError(
            f"Graph sent {what} that is {problem} ({_one_line(repr(link), 100)})",
            "retry; if it persists, check the Graph URL (a proxy may be altering answers)",
        )
    return url


def _request_id() -> str:
    """A new ``client-request-id``: a random UUID (version 4, RFC 9562), the text
    ``str(uuid.uuid4())`` gives, made without importing :mod:`uuid` (which imports
    :mod:`platform`: milliseconds of every warm ``graphkit query``)."""
    raw = bytearray(os.urandom(16))
    raw[6] = (raw[6] & 0x0F) | 0x40  # version 4
    raw[8] = (raw[8] & 0x3F) | 0x80  # the RFC 4122/9562 variant
    h = raw.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def _never_sent(exc: BaseException) -> bool:
    """Whether a requests error happened before the request left (no connection was
    made: refused, unresolvable, or the connect timed out), so nothing was applied."""
    import requests
    from urllib3.exceptions import ConnectTimeoutError, NewConnectionError

    if isinstance(exc, requests.exceptions.ConnectTimeout):
        return True
    seen: set[int] = set()
    todo: list[Any] = [exc]
    while todo:
        e = todo.pop()
        if not isinstance(e, BaseException) or id(e) in seen:
            continue
        seen.add(id(e))
        if isinstance(e, NewConnectionError | ConnectTimeoutError):
            return True
        todo += [e.__cause__, e.__context__, getattr(e, "reason", None), *e.args]
    return False


def _one_line(text: str, limit: int = 300) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


# ------------------------------------------------------------------ the client


# Every other status Graph documents (https://learn.microsoft.com/graph/errors), with
# its class (exit status) and what to do; 0 is any other 4xx, 500 any other 5xx.
_STATUS_ADVICE: dict[int, tuple[type[GraphError], str]] = {
    0: (GraphError, "Graph refused the request: see its message; check the path and options"),
    402: (GraphError, "this API is metered: set up billing for the app as the API's docs say"),
    405: (
        BadRequestError,
        "this path does not answer this method (graphkit query sends GET unless -X "
        "names another; $batch takes POST): check the path in the Graph reference",
    ),
    406: (BadRequestError, "Graph cannot answer in the format asked for: drop the Accept header"),
    409: (GraphError, "the object changed meanwhile (a conflict): retry in a moment"),
    410: (NotFoundError, "the resource is gone: check the path and the id"),
    411: (BadRequestError, "Graph wants a Content-Length: drop the --header that changes it"),
    412: (GraphError, "a precondition (If-Match) failed: the object changed; read it again"),
    413: (BadRequestError, "the request is too large: ask for fewer fields or items"),
    414: (BadRequestError, "the URL is too long: shorten --filter/--select, or page with --top"),
    415: (BadRequestError, "Graph does not accept that content type: drop the --header"),
    416: (BadRequestError, "the byte range asked for does not exist: drop the Range header"),
    422: (BadRequestError, "the request is well-formed but not valid here: check the options"),
    423: (GraphError, "the resource is locked: retry later"),
    424: (GraphError, "a request this one depends on failed: see its message"),
    500: (
        GraphError,
        "Graph failed on its side: retry later; if it persists, give Microsoft support "
        "the request-id",
    ),
    501: (BadRequestError, "Graph does not implement this (yet): try --api beta, or another path"),
    507: (GraphError, "a storage quota is full: free some space, then retry"),
    509: (ThrottledError, "the app exceeded its bandwidth cap: wait a while, then retry"),
}


class GraphClient:
    """Authenticated access to Microsoft Graph (or the emulator).

    Args:
        graph_url: ``https://host[:port]`` without a version segment
            (``https://graph.microsoft.com``).
        credential: has ``get_token(force_refresh=False)`` returning an object with
            ``token`` and ``expires_on`` (``graphkit.tokens.CertificateCredential``).
        api: ``v1.0`` or ``beta``, for relative paths.
        ca_bundle: a CA file to trust (``None``: requests' default, which honours
            ``REQUESTS_CA_BUNDLE``). Passed as ``verify=`` on every request because the
            environment variable would override ``Session.verify``.
        max_attempts: tries per request, retries included (429, 503, 504, connection
            errors).
        max_total_wait: cap, in seconds, on the time one request may spend waiting
            and retrying.
        on_wait: called as ``on_wait(seconds, reason)`` before each wait.
        session: a ``requests.Session`` to use (one is created otherwise and closed by
            :meth:`close`).
        timeout: requests' ``(connect, read)`` timeout.
        sleep: how a retry waits (``time.sleep``); tests pass a recorder.
        clock: the monotonic clock that measures ``max_total_wait`` (``time.monotonic``).
        now: the wall clock a ``Retry-After`` HTTP date is counted from (``time.time``).
    """

    def __init__(
        self,
        graph_url: str,
        credential: TokenCredential,
        *,
        api: str = "v1.0",
        ca_bundle: str | None = None,
        max_attempts: int = DEFAULT_MAX_ATTEMPTS,
        max_total_wait: float = DEFAULT_MAX_TOTAL_WAIT,
        on_wait: Callable[[float, str], None] | None = None,
        session: requests.Session | None = None,
        timeout: float | tuple[float, float] = DEFAULT_TIMEOUT,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        now: Callable[[], float] = time.time,
    ) -> None:
        if api not in API_VERSIONS:
            raise UsageError(f"unknown Graph API version {api!r}", "use v1.0 or beta")
        graph_url = graph_url.strip().rstrip("/")
        origin, plain = _target(graph_url)
        if origin[0] not in _DEFAULT_PORTS or not origin[1] or not plain:
            raise UsageError(
                f"the Graph URL {graph_url!r} is not an http(s) URL with a host",
                "set graph_url like https://graph.microsoft.com",
            )
        self.graph_url = graph_url
        self.api = api
        scope = getattr(credential, "scope", None)
        if isinstance(scope, str) and not self.is_graph_audience(scope.removesuffix("/.default")):
            raise ConfigError(
                f"this credential gets tokens for {scope}, not for Microsoft Graph at "
                f"{graph_url}: graphkit sends Graph only Graph tokens",
                "give the Graph client a credential for the Graph scope (the default)",
            )
        self.credential = credential
        self.ca_bundle = ca_bundle
        self.max_attempts = max(1, int(max_attempts))
        self.max_total_wait = float(max_total_wait)
        self.on_wait = on_wait
        self.timeout = timeout
        self._sleep, self._clock, self._now = sleep, clock, now
        self._renew_at = 0.0  # when the token in hand is to be replaced (see _bearer)
        self._origin = origin
        self._own_session = session is None
        self._session = session
        # One thread at a time on the session (requests.Session is not thread-safe): the
        # paging thread (see pages(prefetch=True)) and the caller's own requests take turns.
        self._session_lock = threading.Lock()
        self._token_lock = threading.Lock()
        self._prefetchers: set[Prefetcher] = set()
        self._access: Any = None
        # Counters, handy for tests and progress displays.
        self.requests_sent = 0
        self.token_refreshes = 0

    # -------------------------------------------------------------- constructors

    @classmethod
    def from_settings(
        cls,
        settings: Any,
        *,
        credential: TokenCredential | None = None,
        validate: bool = True,
        **kw: Any,
    ) -> GraphClient:
        """A client for resolved :class:`graphkit.settings.Settings`.

        Args:
            settings: from :func:`graphkit.settings.resolve_settings`.
            credential: a ready credential (default: a ``CertificateCredential``).
            validate: check the settings first (certificate present, current...).
            **kw: passed to :class:`GraphClient` (``api``, ``on_wait``...).
        """
        if validate:
            from graphkit.settings import validate as check

            check(settings)
        if credential is None:
            from graphkit.tokens import CertificateCredential

            credential = CertificateCredential(settings)
        kw.setdefault("ca_bundle", settings.ca_bundle)
        return cls(settings.graph_url, credential, **kw)

    @classmethod
    def from_profile(cls, name: str | None = None, **kw: Any) -> GraphClient:
        """A client for profile ``name`` (or the default), environment variables applied."""
        from graphkit.settings import resolve_settings

        return cls.from_settings(resolve_settings(profile=name), **kw)

    @classmethod
    def from_env(cls, **kw: Any) -> GraphClient:
        """A client configured from azure-identity's environment variables (AZURE_*)."""
        import os

        from graphkit.settings import resolve_settings

        return cls.from_settings(resolve_settings(env=os.environ), **kw)

    # -------------------------------------------------------------- lifecycle

    @property
    def session(self) -> requests.Session:
        if self._session is None:
            # No netrc, no proxy for clear-text http, no redirect followed by requests;
            # abortable: a prefetched page's request ends at once when paging stops.
            self._session = make_session(abortable=True)
        return self._session

    def close(self) -> None:
        for prefetcher in list(self._prefetchers):
            prefetcher.stop()
        if self._own_session and self._session is not None:
            self._session.close()
            self._session = None

    def __enter__(self) -> GraphClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -------------------------------------------------------------- URLs

    def url(self, path: str) -> str:
        """The absolute URL for ``path``; refuses a URL on another origin.

        ``/users``, ``users/{id}``, ``beta/users`` and full Graph URLs are accepted.
        """
        path = path.strip()
        if "://" in path.split("?", 1)[0]:
            self._check_origin(path, "the URL")
            return path
        if path.startswith("//"):
            raise UsageError(f"{path!r} is not a Graph path", "use /users or a full URL")
        rel = path.lstrip("/")
        first = rel.split("/", 1)[0].split("?", 1)[0]
        if first not in API_VERSIONS:
            rel = f"{self.api}/{rel}"
        return f"{self.graph_url}/{rel}"

    def is_graph_audience(self, resource: str) -> bool:
        """Whether ``resource`` (a token's ``aud``, a scope without ``/.default``) names
        Microsoft Graph: the configured Graph URL, a national cloud's Graph host, or
        Graph's application id (what a v1.0 token's ``aud`` may carry instead)."""
        from graphkit.settings import CLOUDS

        value = resource.strip().rstrip("/").lower()
        known = {self.graph_url.lower(), _GRAPH_APP_ID, *(g for _login, g in CLOUDS.values())}
        return value in known

    def is_graph_url(self, url: str) -> bool:
        """True when a request for ``url`` goes to the Graph origin, and plainly so."""
        try:
            origin, plain = _target(url)
        except UsageError:
            return False
        return plain and origin == self._origin

    def _check_origin(self, url: str, what: str) -> None:
        origin, plain = _target(url)
        if not plain:
            raise ForeignHostError(
                f"refusing to send the Graph token to {_show_origin(origin)}: {what} names "
                "its host ambiguously (a user name, or a character such as '\\' that HTTP "
                "libraries read differently)",
                "use a path such as /users, or a plain URL on the configured Graph host",
            )
        if origin != self._origin:
            raise ForeignHostError(
                f"refusing to send the Graph token to {_show_origin(origin)}: {what} is not "
                f"on the configured Graph host {_show_origin(self._origin)}",
                "use a path such as /users, or a URL on the configured Graph host",
            )

    # -------------------------------------------------------------- tokens

    def refresh_token(self) -> None:
        """Get a new token now, bypassing the credential's cache (``--force-refresh``)."""
        self._bearer(force_refresh=True)

    def token_claims(self) -> dict[str, Any]:
        """The claims of the token the next request carries (got now if need be), decoded
        without verification; {} for an opaque token. Nothing is sent to Graph."""
        self._bearer()
        claims = getattr(self._access, "claims", None)
        return dict(claims) if isinstance(claims, dict) else {}

    def _bearer(self, *, force_refresh: bool = False) -> str:
        with self._token_lock:  # the paging thread may need a token at the same time
            return self._bearer_locked(force_refresh)

    def _bearer_locked(self, force_refresh: bool) -> str:
        access = self._access
        if force_refresh or access is None or self._now() >= self._renew_at:
            if force_refresh:
                self.token_refreshes += 1
                access = self.credential.get_token(force_refresh=True)
            else:
                access = self.credential.get_token()
            register_secret(str(access.token))
            claims = getattr(access, "claims", None)
            aud = claims.get("aud") if isinstance(claims, dict) else None
            if isinstance(aud, str) and aud and not self.is_graph_audience(aud):
                raise ConfigError(
                    f"refusing to send Graph a token whose audience is {aud}: graphkit sends "
                    "Graph only Graph tokens",
                    "give the Graph client a credential for the Graph scope (the default)",
                )
            self._access = access
            # Renewed TOKEN_REUSE_MARGIN before it expires, or halfway through a
            # lifetime shorter than twice that: a token that lives less than the margin
            # would otherwise be replaced before every request.
            now = self._now()
            expires_on = float(getattr(access, "expires_on", 0) or 0)
            self._renew_at = expires_on - min(TOKEN_REUSE_MARGIN, max(0.0, expires_on - now) / 2)
        return str(access.token)

    # -------------------------------------------------------------- requests

    def request(
        self,
        method: str,
        path: str,
        params: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
        *,
        json_body: Any = None,
        data: bytes | None = None,
    ) -> Any:
        """Send one request (with retries) and return its decoded body (see
        :meth:`decode`): ``None`` for an empty body (a 204)."""
        return self.decode(self.send(method, path, params, headers, json_body=json_body, data=data))

    def send(
        self,
        method: str,
        path: str,
        params: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
        *,
        json_body: Any = None,
        data: bytes | None = None,
        idempotent: bool | None = None,
        stream: bool = False,
    ) -> requests.Response:
        """Send one request (with retries) and return the response itself, headers and
        all (:meth:`decode` gives its body).

        Args:
            json_body: a body sent as JSON; or ``data``: bytes sent as they are (give
                their ``Content-Type`` in ``headers``).
            idempotent: whether the request may be sent again after a 5xx answer or a
                dropped connection; by default, whether ``method`` is one of
                :data:`IDEMPOTENT_METHODS`. A ``$batch`` of GETs may say True.
            stream: leave the body unread (``iter_content`` it, then close the response).

        Raises:
            OutcomeUnknownError: a request that is not idempotent met a 5xx answer or a
                dropped connection; it may have been applied and was not sent again.
        """
        url, params, headers = self._resolve(method, path, params, headers)
        return self._send(
            method,
            url,
            params,
            headers,
            json_body=json_body,
            data=data,
            idempotent=idempotent,
            stream=stream,
        )

    def _resolve(
        self,
        method: str,
        path: str,
        params: Mapping[str, Any] | None,
        headers: Mapping[str, str] | None,
    ) -> tuple[str, Mapping[str, Any] | None, Mapping[str, str]]:
        """The URL for ``path``, and the query options and headers a request carries
        (checked; what an advanced GET needs added)."""
        url = self.url(path)
        checked: Mapping[str, str] = check_headers(headers)
        if method.upper() == "GET":
            params, checked = advanced_query(url, params, checked)
        return url, params, checked

    def prepare(
        self,
        method: str,
        path: str,
        params: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
        *,
        data: bytes | None = None,
    ) -> requests.PreparedRequest:
        """The request :meth:`send` would send first, built but not sent and without a
        token: its ``Authorization`` header reads ``Bearer ***`` (``query --dry-run``).

        Nothing goes over the network, to Graph or to the token endpoint.
        """
        import requests

        url, params, headers = self._resolve(method, path, params, headers)
        self._check_origin(url, "the URL")
        query = encode_params(params)
        hdrs = self._headers(_request_id(), 1, headers)
        if self.is_graph_url(url):
            hdrs["Authorization"] = "Bearer ***"
        request = requests.Request(method, url, headers=hdrs, data=data, params=query or None)
        return self.session.prepare_request(request)

    def iter_body(
        self, resp: requests.Response, chunk_size: int = 1 << 16
    ) -> Generator[bytes, None, None]:
        """The body of a response :meth:`send` returned with ``stream=True``, in chunks as
        they arrive; the response is closed at the end.

        Raises:
            NetworkError: the connection dropped, or the body ended before its length.
        """
        import requests

        try:
            yield from resp.iter_content(chunk_size)
        except (
            requests.exceptions.ConnectionError,
            requests.exceptions.Timeout,
            requests.exceptions.ChunkedEncodingError,
            requests.exceptions.ContentDecodingError,
        ) as exc:
            crid = resp.request.headers.get("client-request-id") or "-"
            raise NetworkError(
                f"the answer from {_show_origin(_origin(resp.url))} was cut short "
                f"({type(exc).__name__}; client-request-id {crid})",
                "retry; if it persists, check the network and proxy settings",
            ) from None
        finally:
            resp.close()

    def get(
        self,
        path: str,
        params: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> Any:
        """GET ``path`` once (no paging) and return the decoded body (usually a dict)."""
        return self.request("GET", path, params, headers)

    def pages(
        self,
        path: str,
        params: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
        *,
        follow: bool = True,
        prefetch: bool = False,
        max_items: int | None = None,
    ) -> Generator[Any, None, None]:
        """Yield each response body, following ``@odata.nextLink`` when ``follow``.

        Every nextLink is checked against the Graph origin before it is requested, and
        one Graph has already returned ends paging (GraphError) rather than repeat pages.

        Args:
            prefetch: fetch the next page in a background thread while the caller works
                on this one (one page ahead, never more). Errors, retry waits
                (``on_wait``) and the pages themselves reach the caller in order, on
                the caller's thread; closing the iterator (or the client) stops the
                thread and ends its request at once.
            max_items: no page is fetched once the pages so far hold this many items.
        """
        from graphkit.paging import ItemBudget, NextLinks, Prefetcher, next_link

        url = self.url(path)
        # nextLinks keep the advanced query (and its $count=true), so the header goes on
        # every page.
        params, hdrs = advanced_query(url, params, check_headers(headers))
        body = self._decode(self._send("GET", url, params, hdrs))
        query = encode_params(params)
        first = f"{url}{'&' if '?' in url else '?'}{query}" if query else url
        links = NextLinks(self, url, first)
        budget = ItemBudget(max_items)
        budget.count(body)
        if not follow or budget.spent() or not next_link(body):
            yield body
            return
        if not prefetch:
            while True:
                yield body
                link = links.after(body)
                if link is None or budget.spent():
                    return
                body = self._decode(self._send("GET", link, None, hdrs))
                budget.count(body)
        prefetcher = Prefetcher(self, body, links, budget, hdrs)
        try:
            while body is not None:
                yield body
                body = prefetcher.next_page()
        finally:
            prefetcher.stop()

    def iter(
        self,
        path: str,
        params: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
        max_items: int | None = None,
        *,
        prefetch: bool = False,
    ) -> Iterator[Any]:
        """Yield the items of a collection across all pages (a single object: itself).

        Stops after ``max_items`` items without fetching further pages; ``prefetch``
        as in :meth:`pages`.
        """
        if max_items is not None and max_items <= 0:
            return
        count = 0
        for body in self.pages(path, params, headers, prefetch=prefetch, max_items=max_items):
            items = body.get("value") if isinstance(body, dict) else None
            if not isinstance(items, list):
                yield body
                return
            for item in items:
                yield item
                count += 1
                if max_items is not None and count >= max_items:
                    return

    # -------------------------------------------------------------- internals

    def _send(
        self,
        method: str,
        url: str,
        params: Mapping[str, Any] | None,
        headers: Mapping[str, str] | None,
        *,
        json_body: Any = None,
        data: bytes | None = None,
        idempotent: bool | None = None,
        stream: bool = False,
        lane: Lane | None = None,
    ) -> requests.Response:
        """One logical request: redirects, retries, the one-time token refresh.

        429 is retried for every method; 503, 504 and dropped connections only when the
        request is ``idempotent`` (see :data:`IDEMPOTENT_METHODS`). A POST or PATCH that
        meets a 5xx or a dropped connection raises :class:`OutcomeUnknownError`.
        ``lane``: how the paging thread waits and reports waits (graphkit.paging).
        """
        import requests

        on_wait = self.on_wait if lane is None else lane.on_wait
        sleep = self._sleep if lane is None else lane.sleep
        self._check_origin(url, "the URL")
        if idempotent is None:
            idempotent = method.upper() in IDEMPOTENT_METHODS
        query = encode_params(params)
        client_request_id = _request_id()
        started = self._clock()
        refreshed = False
        attempt = 0
        redirects = 0
        doubt: str | None = None  # what an earlier attempt met that it may survive
        while True:
            if lane is not None:
                lane.check()  # paging stopped: send nothing more
            attempt += 1
            hdrs = self._headers(client_request_id, attempt, headers)
            authorized = self.is_graph_url(url)
            if authorized:
                hdrs["Authorization"] = f"Bearer {self._bearer(force_refresh=False)}"
            problem: str
            resp: requests.Response | None = None
            try:
                with self._session_lock:
                    if lane is not None:
                        lane.check()  # stopped while it waited (a token, the session)
                    self.requests_sent += 1
                    resp = self.session.request(
                        method,
                        url,
                        params=query or None,
                        headers=hdrs,
                        json=json_body,
                        data=data,
                        verify=self.ca_bundle if self.ca_bundle else True,
                        timeout=self.timeout,
                        allow_redirects=False,
                        stream=stream,
                    )
            except requests.exceptions.SSLError as exc:
                raise NetworkError(
                    f"TLS failure talking to {_show_origin(_origin(url))} "
                    f"(client-request-id {client_request_id}): {_one_line(str(exc), 200)}",
                    "check the CA bundle (ca_bundle / GRAPHKIT_CA_BUNDLE) and the Graph URL",
                ) from None
            except (
                requests.exceptions.ConnectionError,
                requests.exceptions.Timeout,
                requests.exceptions.ChunkedEncodingError,
                requests.exceptions.ContentDecodingError,
            ) as exc:
                if lane is not None:
                    lane.check()  # paging stopped: its request was cut off
                if not idempotent:
                    if _never_sent(exc):
                        raise self._network_error(url, exc, client_request_id) from None
                    raise self._outcome_unknown(method, url, client_request_id, exc=exc) from None
                problem = f"connection error ({type(exc).__name__})"
                if not _never_sent(exc):
                    doubt = f"a dropped connection ({type(exc).__name__})"
                last_exc: BaseException | None = exc
            else:
                last_exc = None
                status = resp.status_code
                if status in (301, 302, 303, 307, 308) and resp.headers.get("Location"):
                    redirects += 1
                    if redirects > MAX_REDIRECTS:
                        raise GraphError(f"too many redirects from {url}", status=status)
                    # A redirect may leave the Graph host; _send only authorizes Graph.
                    url = _resolve_link(
                        url, resp.headers["Location"], "a redirect Location", redirect=True
                    )
                    query = ""
                    if status == 303:
                        method, json_body, data = "GET", None, None
                    resp.close()
                    attempt -= 1
                    continue
                if (
                    status == 401
                    and authorized
                    and not refreshed
                    and self._error_code(resp) in ("InvalidAuthenticationToken", None)
                ):
                    # The token expired (or was revoked) early: get a new one, once.
                    refreshed = True
                    self._bearer(force_refresh=True)
                    resp.close()
                    attempt -= 1
                    continue
                if (
                    status == 403
                    and authorized
                    and not refreshed
                    and getattr(self._access, "from_cache", False)
                ):
                    # A cached token carries the roles granted when it was issued: a
                    # permission granted since then needs a fresh token. Once.
                    refreshed = True
                    self._bearer(force_refresh=True)
                    resp.close()
                    attempt -= 1
                    continue
                if not idempotent and status in _OUTCOME_UNKNOWN_STATUSES:
                    raise self._outcome_unknown(method, url, client_request_id, resp=resp)
                if status in RETRY_STATUSES:
                    problem = f"Graph answered {status}" + (" (throttled)" if status == 429 else "")
                    if status in _OUTCOME_UNKNOWN_STATUSES:
                        doubt = f"a {status} answer"
                elif status >= 400:
                    err = self._http_error(method, url, resp, client_request_id)
                    if status == 404 and doubt and method.upper() == "DELETE":
                        # The first DELETE may have been applied before the answer was
                        # lost: the one resent then finds nothing.
                        raise err.restated(
                            f"{err.message} (an earlier attempt of this DELETE met {doubt} "
                            "and may have deleted it)",
                            "it is gone either way: if the path named the right object, "
                            "nothing is left to do",
                        )
                    raise err
                else:
                    return resp
            # Retry, if the budget allows.
            delay = (
                parse_retry_after(resp.headers.get("Retry-After"), now=self._now())
                if resp is not None
                else None
            )
            if delay is None:
                backoff = min(BACKOFF_CAP, BACKOFF_BASE * 2 ** (attempt - 1))
                # Jitter spreads out retries; it needs no unpredictability.
                delay = backoff * random.uniform(0.5, 1.0)  # nosec B311
            elapsed = self._clock() - started
            if attempt >= self.max_attempts or elapsed + delay > self.max_total_wait:
                why = (
                    f"after {attempt} attempt{'s' if attempt != 1 else ''}"
                    if attempt >= self.max_attempts
                    else f"waiting {delay:g} s more would exceed the {self.max_total_wait:g} s cap"
                )
                if last_exc is not None:
                    raise self._network_error(url, last_exc, client_request_id, why) from None
                assert resp is not None
                raise self._http_error(
                    method, url, resp, client_request_id, gave_up=why, attempts=attempt
                )
            if on_wait is not None:
                on_wait(delay, f"{problem}; retry {attempt} of {self.max_attempts - 1}")
            if resp is not None:
                resp.close()  # a streamed answer holds its connection until closed
            sleep(delay)

    def _headers(
        self, client_request_id: str, attempt: int, headers: Mapping[str, str] | None
    ) -> dict[str, str]:
        """The headers of one try, the caller's after graphkit's (no Authorization)."""
        hdrs = {"Accept": "application/json", "client-request-id": client_request_id}
        if attempt > 1:
            hdrs["Retry-Attempt"] = str(attempt - 1)
        # A caller's own Authorization header is never sent: only ours, only to Graph.
        hdrs.update(
            (k, v) for k, v in (headers or {}).items() if k.strip().lower() != "authorization"
        )
        return hdrs

    def _outcome_unknown(
        self,
        method: str,
        url: str,
        client_request_id: str,
        *,
        resp: requests.Response | None = None,
        exc: BaseException | None = None,
    ) -> OutcomeUnknownError:
        """A POST/PATCH that met a 5xx (``resp``) or a dropped connection (``exc``)."""
        path = urlsplit(url).path
        check = (
            "check whether it took effect (GET the object, or look its client-request-id "
            "up in the tenant's logs) before sending it again"
        )
        if resp is None:
            where = _show_origin(_origin(url))
            return OutcomeUnknownError(
                f"the connection to {where} failed during {method} {path} "
                f"({type(exc).__name__}; client-request-id {client_request_id}): the request "
                "may have been applied, so it was not sent again",
                check,
                client_request_id=client_request_id,
            )
        err = self._http_error(method, url, resp, client_request_id)
        return OutcomeUnknownError(
            f"{err.message}: the request may have been applied, so it was not sent again",
            check,
            status=err.status,
            code=err.code,
            request_id=err.request_id,
            client_request_id=err.client_request_id,
        )

    @staticmethod
    def decode(resp: requests.Response) -> Any:
        """The body of ``resp``: decoded JSON, the text of a text body (``/$count``), the
        bytes of a binary one (``photo/$value``: any type not text, JSON or XML), or
        None when it is empty."""
        return GraphClient._decode(resp)

    @staticmethod
    def _decode(resp: requests.Response, content: bytes | None = None) -> Any:
        """The decoded body of ``resp``: ``content``, when it was read already."""
        if content is None:
            content = resp.content
        if not content:
            return None
        ctype = resp.headers.get("Content-Type", "")
        if "json" in ctype or content[:1] in (b"{", b"["):
            try:
                return json.loads(content)
            except (ValueError, RecursionError):  # RecursionError: [[[[... nested deep
                raise GraphError(
                    f"Graph sent a response that is not valid JSON "
                    f"(client-request-id {resp.request.headers.get('client-request-id')})",
                    "retry; if it persists, check the Graph URL",
                    status=resp.status_code,
                ) from None
        media = ctype.split(";", 1)[0].strip().lower()
        if media and not (media.startswith("text/") or "json" in media or "xml" in media):
            return content  # an image, a PDF, a zip: its own bytes, not mangled text
        return resp.text

    @staticmethod
    def _error_body(resp: requests.Response) -> dict[str, Any]:
        try:
            body = json.loads(resp.content)
        except (ValueError, RecursionError):
            return {}
        err = body.get("error") if isinstance(body, dict) else None
        return err if isinstance(err, dict) else {}

    def _error_code(self, resp: requests.Response) -> str | None:
        code = self._error_body(resp).get("code")
        return str(code) if code else None

    def _network_error(
        self, url: str, exc: BaseException, client_request_id: str, why: str | None = None
    ) -> NetworkError:
        origin = _origin(url)
        where = _show_origin(origin)
        detail = type(exc).__name__
        msg = f"cannot reach {where} ({detail}; client-request-id {client_request_id})"
        if why:
            msg = f"gave up on {where} {why}: {detail} (client-request-id {client_request_id})"
        if is_loopback(origin[1]) and connection_refused(exc):
            return NetworkError(msg, loopback_refused_hint(where))
        return NetworkError(msg, "check the network, proxy settings and the Graph URL")

    def _http_error(
        self,
        method: str,
        url: str,
        resp: requests.Response,
        client_request_id: str,
        *,
        gave_up: str | None = None,
        attempts: int = 0,
    ) -> GraphError:
        status = resp.status_code
        err = self._error_body(resp)
        code = str(err.get("code") or "") or None
        # Graph's own text, with any echoed token removed: it ends up on stderr and in logs.
        message = _one_line(redact(str(err.get("message") or resp.reason or "no message")))
        inner = err.get("innerError") or err.get("innererror") or {}
        if not isinstance(inner, dict):
            inner = {}
        request_id = inner.get("request-id") or resp.headers.get("request-id")
        crid = inner.get("client-request-id") or client_request_id
        path = urlsplit(url).path
        ids = f"request-id {request_id or '-'}, client-request-id {crid}"
        head = f"Graph {method} {path}: {status}" + (f" {code}" if code else "")
        text = f"{head}: {message} ({ids})"
        kw: dict[str, Any] = {
            "status": status,
            "code": code,
            "request_id": request_id,
            "client_request_id": crid,
        }
        if gave_up is not None:
            answered = "kept answering" if attempts > 1 else "answered"
            if method.upper() == "GET":
                hint = "wait a while and retry, ask for fewer items per page, or narrow the query"
            elif status == 429:
                hint = (
                    f"Graph throttled the {method} and it was not applied: wait, then send it again"
                )
            else:  # 503/504 on a method that may be sent twice (PUT, DELETE)
                hint = f"wait a while, then send the {method} again (it may be sent twice)"
            return ThrottledError(
                f"Graph {answered} {status}; gave up {gave_up}: {message} ({ids})", hint, **kw
            )
        if status == 400:
            hint = (
                "check the path and the query options (--filter, --select...)"
                if method.upper() == "GET"
                else "check the request body (its property names and values) and the path"
            )
            return BadRequestError(text, hint, **kw)
        if status == 401:
            return UnauthorizedError(
                text,
                "the token was refused even after a refresh: check the tenant, and that "
                "graph_url matches the token's audience",
                **kw,
            )
        if status == 403:
            return PermissionDeniedError(text, self._permission_hint(url), **kw)
        if status == 404:
            return NotFoundError(text, "check the path and the id", **kw)
        cls, hint = _STATUS_ADVICE.get(status) or _STATUS_ADVICE[500 if status >= 500 else 0]
        return cls(text, hint, **kw)

    def _permission_hint(self, url: str) -> str:
        role = required_role(url)
        claims = getattr(self._access, "claims", None) or {}
        roles = claims.get("roles") if isinstance(claims, dict) else None
        app = claims.get("appid") if isinstance(claims, dict) else None
        app_txt = f" app {app}" if app else " the app"
        # A 403 to a cached token was retried with a new one: say which roles are quoted.
        token = "the token" if getattr(self._access, "from_cache", False) else "a fresh token"
        have = (
            f"{token}'s roles are {', '.join(roles)}"
            if roles
            else f"{token} carries no roles"
            if isinstance(claims, dict) and claims
            else None
        )
        if role:
            alts = _BROADER_ROLES.get(role, ())
            also = f" (or {' / '.join(alts)})" if alts else ""
            text = (
                f"the token lacks the application permission {role}{also}: add it to{app_txt} "
                f"under API permissions > Microsoft Graph > Application permissions, then have "
                f"an administrator grant admin consent"
            )
        else:
            text = (
                f"the token lacks a role this call needs: add the Microsoft Graph "
                f"application permission it requires to{app_txt}, then have an administrator "
                f"grant admin consent"
            )
        return f"{text} ({have})" if have else text
