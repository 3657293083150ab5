"""The tests' one hand-written local HTTP(S) server, and a stand-in credential.

:func:`start_server` answers each request through a function and records what it got
(method, path, headers as sent, body). Two ways of answering sit on it:
:class:`Scripted` (a script, in order: exact control over each status, header and body;
GraphClient tests) and :class:`Capture` (answers by path over HTTPS; the security tests,
which show that a token did NOT arrive somewhere). requests is never mocked.
"""

from __future__ import annotations

import json
import socket
import ssl
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest


@dataclass
class Seen:
    """One request as the server received it."""

    method: str
    path: str
    headers: dict[str, str]  # names lower-cased (the last of repeated names)
    raw_headers: list[tuple[str, str]] = field(default_factory=list)  # as sent
    body: bytes = b""

    def authorization(self) -> list[str]:
        """Every header value whose name is Authorization, however it was spelled."""
        return [v for k, v in self.raw_headers if k.strip().lower() == "authorization"]


# status, headers, body: a dict/list is sent as JSON, bytes as they are (Content-Type
# from the headers, else application/json), "RESET" aborts the connection (TCP RST), a
# Chunked body in two chunks.
Answer = tuple[int, dict[str, str], Any]


@dataclass
class Chunked:
    """A body sent chunked: ``head`` at once, then, once ``between()`` returns, ``rest``;
    or with ``cut`` the connection is dropped instead of ``rest``."""

    head: bytes
    rest: bytes
    between: Callable[[], None] | None = None
    cut: bool = False


def start_server(
    answer: Callable[[Seen], Answer], *, tls_pem: Path | None = None
) -> ThreadingHTTPServer:
    """A threaded HTTP server on 127.0.0.1 (HTTPS with ``tls_pem``: certificate + key)
    that records nothing itself and answers each request with ``answer(seen)``. The
    caller stops it (``shutdown()``, ``server_close()``)."""

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True  # small answers must not wait for a delayed ACK

        def _answer(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            raw = list(self.headers.items())
            seen = Seen(self.command, self.path, {k.lower(): v for k, v in raw}, raw, body)
            status, headers, content = answer(seen)
            headers = dict(headers)
            if content == "RESET":
                self.connection.setsockopt(
                    socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00"
                )
                self.close_connection = True
                self.connection.close()
                return
            if isinstance(content, Chunked):
                self.send_response(status)
                self.send_header("Content-Type", headers.pop("Content-Type", "application/json"))
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                self.wfile.write(b"%x\r\n%s\r\n" % (len(content.head), content.head))
                if content.between is not None:
                    content.between()
                if content.cut:
                    self.close_connection = True
                    self.connection.shutdown(socket.SHUT_RDWR)
                    return
                self.wfile.write(b"%x\r\n%s\r\n0\r\n\r\n" % (len(content.rest), content.rest))
                return
            data = content if isinstance(content, bytes) else json.dumps(content).encode()
            self.send_response(status)
            self.send_header("Content-Type", headers.pop("Content-Type", "application/json"))
            self.send_header("Content-Length", str(len(data)))
            for k, v in headers.items():
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = _answer

        def log_message(self, *args: Any) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    if tls_pem is not None:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(str(tls_pem))
        httpd.socket = context.wrap_socket(httpd.socket, server_side=True)
    threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True).start()
    return httpd


@dataclass
class Scripted:
    """Answers from ``script`` in order, then ``default``; ``seen`` records requests."""

    script: list[Answer | Callable[[Seen], Answer]] = field(default_factory=list)
    default: Callable[[Seen], Answer] | None = None
    seen: list[Seen] = field(default_factory=list)
    url: str = ""

    def next_answer(self, req: Seen) -> Answer:
        self.seen.append(req)
        if self.script:
            ans = self.script.pop(0)
            return ans(req) if callable(ans) else ans
        if self.default is not None:
            return self.default(req)
        return 200, {}, {"value": []}


@pytest.fixture
def server_factory() -> Iterator[Callable[[], Scripted]]:
    """``make()`` starts one more plain-HTTP scripted server; all stop when the test ends.
    (A fixture: conftest re-exports it.)"""
    servers: list[ThreadingHTTPServer] = []

    def make() -> Scripted:
        state = Scripted()
        srv = start_server(state.next_answer)
        servers.append(srv)
        state.url = f"http://127.0.0.1:{srv.server_address[1]}"
        return state

    yield make
    for srv in servers:
        srv.shutdown()
        srv.server_close()


@dataclass
class Capture:
    """Records each request and answers from ``answers`` by path (without the query): a
    JSON body, bytes sent as HTML, or a function of the request returning such a tuple;
    an empty collection otherwise."""

    seen: list[Seen] = field(default_factory=list)
    answers: dict[str, Any] = field(default_factory=dict)
    httpd: ThreadingHTTPServer | None = None

    def answer(self, seen: Seen) -> Answer:
        self.seen.append(seen)
        found = self.answers.get(seen.path.split("?", 1)[0], (200, {}, {"value": []}))
        status, headers, content = found(seen) if callable(found) else found
        if isinstance(content, bytes):
            headers = {"Content-Type": "text/html", **headers}
        return status, headers, content

    @property
    def port(self) -> int:
        assert self.httpd is not None
        return int(self.httpd.server_address[1])

    def origin(self, host: str = "127.0.0.1") -> str:
        return f"https://{host}:{self.port}"


def start_capture(tls_pem: Path) -> Capture:
    """An HTTPS :class:`Capture` server (stop it through its ``httpd``)."""
    cap = Capture()
    cap.httpd = start_server(cap.answer, tls_pem=tls_pem)
    return cap


@dataclass
class FakeToken:
    token: str
    expires_on: int
    from_cache: bool = False
    claims: dict[str, Any] = field(default_factory=dict)


class FakeCredential:
    """Stands in for CertificateCredential in the scripted-server tests only."""

    def __init__(self, roles: list[str] | None = None) -> None:
        self.calls: list[bool] = []
        self.roles = roles

    def get_token(self, *, force_refresh: bool = False) -> FakeToken:
        import time

        self.calls.append(force_refresh)
        claims: dict[str, Any] = {"appid": "11111111-2222-3333-4444-555555555555"}
        if self.roles is not None:
            claims["roles"] = self.roles
        return FakeToken(f"tok-{len(self.calls)}", int(time.time()) + 3600, claims=claims)
