"""A scripted local HTTP server and a stand-in credential, for GraphClient tests.

The server answers from a script, in order (exact control over each status, header and
body, and a record of every request); requests is never mocked.
"""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest


@dataclass
class Seen:
    method: str
    path: str
    headers: dict[str, str]


Answer = tuple[int, dict[str, str], Any]  # status, headers, body (dict -> JSON) or "RESET"


@dataclass
class Scripted:
    """A local HTTP server: answers from ``script`` in order, then ``default``."""

    script: list[Answer | Callable[[Seen], Answer]] = field(default_factory=list)
    default: Callable[[Seen], Answer] | None = None
    seen: list[Seen] = field(default_factory=list)
    url: str = ""

    def next_answer(self, req: Seen) -> Answer:
        if self.script:
            ans = self.script.pop(0)
            return ans(req) if callable(ans) else ans
        if self.default is not None:
            return self.default(req)
        return 200, {}, {"value": []}


@pytest.fixture
def server_factory() -> Iterator[Callable[[], Scripted]]:
    """``make()`` starts one more scripted server; all stop when the test ends.
    (A fixture: modules that use it import it by name.)"""
    servers: list[ThreadingHTTPServer] = []

    def make() -> Scripted:
        state = Scripted()

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                req = Seen("GET", self.path, {k.lower(): v for k, v in self.headers.items()})
                state.seen.append(req)
                status, headers, body = state.next_answer(req)
                if body == "RESET":
                    # Abort the connection: RST instead of an answer.
                    self.connection.setsockopt(
                        socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00"
                    )
                    self.close_connection = True
                    self.connection.close()
                    return
                data = body if isinstance(body, bytes) else json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", headers.pop("Content-Type", "application/json"))
                self.send_header("Content-Length", str(len(data)))
                for k, v in headers.items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:
                pass

        srv = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        srv.daemon_threads = True
        threading.Thread(target=srv.serve_forever, args=(0.05,), daemon=True).start()
        servers.append(srv)
        state.url = f"http://127.0.0.1:{srv.server_address[1]}"
        return state

    yield make
    for srv in servers:
        srv.shutdown()
        srv.server_close()


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
