"""HTTP sessions that send credentials only where they belong.

Every request graphkit makes, to Graph and to the identity platform, goes through a
session from :func:`make_session`, which closes the ways requests would otherwise
leak a bearer token or a client assertion:

- ``~/.netrc``: requests replaces the Authorization header (the bearer token) and adds
  Basic auth with the netrc password to a token request. Never read here.
- a proxy from ``HTTP_PROXY``/``ALL_PROXY`` for an ``http://`` URL (graphkit allows
  plain http only on loopback): the proxy would see the token in clear. Such requests
  go direct; https goes through a proxy only as a tunnel (CONNECT), end to end TLS.
- redirects are never followed by requests itself: a 307/308 would re-send the form,
  client assertion included, wherever ``Location`` points (GraphClient follows Graph's
  own redirects itself, without the token off the Graph host).
- with ``only_origin``, a request to any other origin is refused before it is sent:
  the identity platform's session talks only to the configured authority, so a
  discovery document naming a ``token_endpoint`` elsewhere gets nothing.

It also judges a URL's origin as requests will really connect to it
(:func:`target`): urllib.parse and urllib3 read some URLs differently.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import urlsplit

from graphkit.errors import GraphkitError, UsageError, register_secret

__all__ = [
    "Origin",
    "check_headers",
    "connection_refused",
    "is_loopback",
    "loopback_refused_hint",
    "make_session",
    "show_origin",
    "target",
    "wire_url",
]

Origin = tuple[str, str, int | None]
DEFAULT_PORTS = {"https": 443, "http": 80}


def wire_url(url: str) -> str:
    """``url`` exactly as requests will send it (host, port and path normalised).

    requests re-parses every URL with urllib3, which reads some URLs differently from
    ``urllib.parse``: in ``https://evil.example\\@graph.microsoft.com/`` urllib.parse
    sees the host graph.microsoft.com (after a user name) while requests connects to
    evil.example. Origins are therefore judged on the URL requests will really use.
    """
    from requests.exceptions import RequestException
    from requests.models import PreparedRequest

    prepared = PreparedRequest()
    try:
        prepared.prepare_url(url, None)
    except (RequestException, ValueError, UnicodeError):
        raise UsageError(f"{url!r} is not a valid URL", "check the URL") from None
    return str(prepared.url)


def origin_of(url: str) -> Origin:
    """(scheme, host, port) of ``url``, lower-cased, with the scheme's default port."""
    try:
        parts = urlsplit(url)  # raises for an unclosed or bad [IPv6] host, whatever the scheme
    except ValueError:
        raise UsageError(f"{url!r} is not a valid URL", "check the URL") from None
    scheme = parts.scheme.lower()
    try:
        port = parts.port
    except ValueError:
        raise UsageError(f"{url!r} has an invalid port", "check the URL") from None
    return scheme, (parts.hostname or "").lower(), port or DEFAULT_PORTS.get(scheme)


def target(url: str) -> tuple[Origin, bool]:
    """(the origin a request for ``url`` really goes to, whether ``url`` says so plainly).

    Not plain: a user name or password before the host, or a URL whose host
    ``urllib.parse`` and requests read differently. No credential goes to such a URL.
    """
    wire = wire_url(url)
    origin = origin_of(wire)
    plain = (
        origin_of(url) == origin
        and "@" not in urlsplit(url).netloc
        and "@" not in urlsplit(wire).netloc
    )
    return origin, plain


def show_origin(origin: Origin) -> str:
    scheme, host, port = origin
    if ":" in host:
        host = f"[{host}]"
    if port is None or port == DEFAULT_PORTS.get(scheme):
        return f"{scheme}://{host}"
    return f"{scheme}://{host}:{port}"


# RFC 9110: a field name is a token; a value is visible ASCII, spaces and tabs (http.client
# sends latin-1, but Graph's headers are ASCII, and CR/LF would start another header).
_HEADER_NAME = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")
_HEADER_VALUE = re.compile(r"^[\t\x20-\x7e]*$")


def check_headers(headers: Mapping[str, str] | None) -> dict[str, str]:
    """``headers`` as a dict, each name an RFC 9110 token and each value visible ASCII.

    Neither is repeated in the message: a malformed header may well carry a credential.

    Raises:
        UsageError: a name or value that would be refused, or would split the request.
    """
    checked: dict[str, str] = {}
    for name, value in (headers or {}).items():
        if isinstance(name, str) and name.strip().lower() == "authorization":
            checked[name] = value  # never sent: GraphClient sends only its own token
            continue
        if not isinstance(name, str) or not _HEADER_NAME.match(name):
            raise UsageError(
                "a header name is not a token (letters, digits and !#$%&'*+-.^_`|~; "
                "not shown: it may hold a secret)",
                "e.g. -H 'Prefer: x'",
            )
        if not isinstance(value, str) or not _HEADER_VALUE.match(value):
            raise UsageError(
                f"the value of header {name} holds a line break, a control or a non-ASCII "
                "character (not shown: it may hold a secret)",
                "give visible ASCII only",
            )
        checked[name] = value
    return checked


def is_loopback(host: str) -> bool:
    """``127.0.0.0/8``, ``::1`` or ``localhost``: where a graphkit emulator would listen."""
    import ipaddress

    host = host.strip("[]").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def connection_refused(exc: BaseException) -> bool:
    """Whether ``exc`` (a requests/urllib3 error) comes down to a refused TCP connection."""
    seen: set[int] = set()
    todo: list[Any] = [exc]
    while todo:
        e = todo.pop()
        if e is None or id(e) in seen or not isinstance(e, BaseException):
            continue
        seen.add(id(e))
        if isinstance(e, ConnectionRefusedError) or "Connection refused" in str(e):
            return True
        todo += [e.__cause__, e.__context__, getattr(e, "reason", None), *e.args]
    return False


def loopback_refused_hint(where: str) -> str:
    """The advice for a refused connection to a loopback address: the graphkit emulator
    (the usual thing there) is not running. ``where`` is ``https://host:port``."""
    return (
        f"nothing is listening at {where}: if it is the graphkit emulator, it is not "
        "running; start it with `graphkit emulator serve` (with --state-dir DIR it keeps "
        "its port, CA and certificates across restarts)"
    )


# No proxy at all: what a request for a clear-text URL is given.
_DIRECT = {"http": None, "https": None, "all": None}


def make_session(
    *,
    ca_bundle: str | None = None,
    timeout: Any = None,
    only_origin: str | None = None,
    refuse: Callable[[str, str], GraphkitError] | None = None,
    refuse_redirects: bool = False,
    retry_connections: int = 0,
    abortable: bool = False,
) -> Any:
    """A ``requests.Session`` that keeps credentials where they belong (see above).

    Args:
        ca_bundle: verify TLS with this CA file, even when ``REQUESTS_CA_BUNDLE`` or
            ``CURL_CA_BUNDLE`` are set (they would override ``Session.verify``).
        timeout: the default ``(connect, read)`` timeout of each request.
        only_origin: ``https://host[:port]``: refuse requests to any other origin.
        refuse: builds the exception for a refused request, from (what was refused,
            why); default a UsageError.
        refuse_redirects: raise (through ``refuse``) when a server answers with a
            redirect, instead of returning it.
        retry_connections: retry a failed connection this many times (urllib3).
        abortable: the session gets ``abort(thread_id)``, which ends at once the request
            that thread has in flight (see :class:`_InUse`).

    The session's ``last_status`` and ``last_headers`` are those of its latest answer.
    """
    import requests
    from requests.auth import AuthBase

    allowed = target(only_origin)[0] if only_origin else None

    def refused(what: str, why: str) -> GraphkitError:
        if refuse is not None:
            return refuse(what, why)
        return UsageError(f"refusing to send {what}: {why}")

    class _NoNetrc(AuthBase):
        """Set as the session's auth so that requests never consults ~/.netrc."""

        def __call__(self, r: Any) -> Any:
            return r

    class _Session(requests.Session):
        last_status: int | None = None  # of the latest answer: msal hides it
        last_headers: Any = None  # and its headers (Retry-After)

        def __init__(self) -> None:
            super().__init__()
            self.auth = _NoNetrc()

        def request(self, method: str | bytes, url: str | bytes, **kwargs: Any) -> Any:  # type: ignore[override]
            url = url.decode() if isinstance(url, bytes) else url
            origin, plain = target(url)
            if allowed is not None and (origin != allowed or not plain):
                raise refused(
                    f"a request to {show_origin(origin)}",
                    f"only the configured host {show_origin(allowed)} is trusted",
                )
            if ca_bundle is not None and kwargs.get("verify") is None:
                kwargs["verify"] = ca_bundle
            if timeout is not None:
                kwargs.setdefault("timeout", timeout)
            kwargs["allow_redirects"] = False
            if origin[0] == "http":
                kwargs["proxies"] = dict(_DIRECT)  # never a token in clear to a proxy
            data = kwargs.get("data")
            if isinstance(data, dict):
                register_secret(str(data.get("client_assertion") or ""))
            self.last_status = self.last_headers = None
            response = super().request(method, url, **kwargs)
            self.last_status, self.last_headers = response.status_code, response.headers
            if refuse_redirects and response.is_redirect:
                location = response.headers.get("Location", "")
                try:
                    where = show_origin(target(requests.compat.urljoin(url, location))[0])
                except UsageError:
                    where = "an invalid address"
                raise refused(
                    f"anything on to {where}",
                    f"{show_origin(origin)} answered with a redirect "
                    f"(HTTP {response.status_code}), and none is followed there",
                )
            return response

        def get_redirect_target(self, resp: Any) -> None:
            """None: requests follows no redirect here, nor even prepares one (it does,
            for ``Response.next``, and a malformed ``Location`` then raises ValueError
            out of ``send``). Callers read the status and ``Location`` themselves."""
            return None

        def rebuild_auth(self, prepared_request: Any, response: Any) -> None:
            """requests reads ~/.netrc again on a redirect: only strip the header."""
            headers = prepared_request.headers
            if "Authorization" in headers and self.should_strip_auth(
                response.request.url, prepared_request.url
            ):
                del headers["Authorization"]

    session = _Session()
    session.trust_env = True  # CA bundle and proxy variables still apply (netrc does not)
    retry: Any = 0
    if retry_connections:
        from urllib3.util.retry import Retry

        # Statuses are not retried here: callers read 429/5xx (and Retry-After).
        retry = Retry(
            total=retry_connections,
            connect=retry_connections,
            read=1,
            status=0,
            other=0,
            allowed_methods=None,
            backoff_factor=0.3,
            respect_retry_after_header=False,
            raise_on_status=False,
        )
    if retry_connections or abortable:
        from requests.adapters import HTTPAdapter

        if abortable:
            in_use = _InUse()
            adapter: Any = _abortable_adapter(in_use, retry)
            session.abort = in_use.abort  # type: ignore[attr-defined]
        else:
            adapter = HTTPAdapter(max_retries=retry)
        session.mount("https://", adapter)
        session.mount("http://", adapter)
    return session


class _InUse:
    """The connections a session's requests hold, and the thread holding each.

    ``abort(thread_id)`` shuts down the sockets of the connections that thread is using:
    its blocked request fails at once (a ConnectionError in that thread), which is how a
    background request (GraphClient's prefetched page) is stopped without waiting for a
    timeout. Idle connections in the pool, and other threads' requests, are left alone.
    """

    def __init__(self) -> None:
        import threading
        import weakref

        self._lock = threading.Lock()
        # Weak: urllib3 drops a failed connection without handing it back.
        self._holder: weakref.WeakKeyDictionary[Any, int] = weakref.WeakKeyDictionary()

    def take(self, conn: Any) -> None:
        import threading

        with self._lock:
            self._holder[conn] = threading.get_ident()

    def give_back(self, conn: Any) -> None:
        with self._lock:
            self._holder.pop(conn, None)

    def abort(self, thread_id: int) -> None:
        import contextlib
        import socket

        # Under the lock: a connection cannot go back to the pool half-way (should it be
        # handed back dead after all, urllib3 drops it before reusing it).
        with self._lock:
            for conn, holder in list(self._holder.items()):
                sock = getattr(conn, "sock", None) if holder == thread_id else None
                # socket.socket's own shutdown: an SSLSocket's would also drop its TLS
                # object, which the blocked thread is reading from. OSError: closed.
                if sock is not None:
                    with contextlib.suppress(OSError):
                        socket.socket.shutdown(sock, socket.SHUT_RDWR)


def _abortable_adapter(in_use: _InUse, max_retries: Any) -> Any:
    """An HTTPAdapter whose connection pools tell ``in_use`` which thread holds which
    connection (urllib3 hands connections out with ``_get_conn``, back with ``_put_conn``)."""
    from requests.adapters import HTTPAdapter

    tracked: dict[type, type] = {}

    def tracking(pool_cls: type) -> type:
        if pool_cls not in tracked:

            class Pool(pool_cls):
                def _get_conn(self, timeout: float | None = None) -> Any:
                    conn = super()._get_conn(timeout)
                    in_use.take(conn)
                    return conn

                def _put_conn(self, conn: Any) -> None:
                    if conn is not None:
                        in_use.give_back(conn)
                    super()._put_conn(conn)

            tracked[pool_cls] = Pool
        return tracked[pool_cls]

    def track(manager: Any) -> Any:
        classes = manager.pool_classes_by_scheme
        manager.pool_classes_by_scheme = {k: tracking(v) for k, v in classes.items()}
        return manager

    class _Adapter(HTTPAdapter):
        def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
            super().init_poolmanager(*args, **kwargs)
            track(self.poolmanager)

        def proxy_manager_for(self, proxy: str, **proxy_kwargs: Any) -> Any:
            fresh = proxy not in self.proxy_manager
            manager = super().proxy_manager_for(proxy, **proxy_kwargs)
            return track(manager) if fresh else manager

    return _Adapter(max_retries=max_retries)
