"""The threaded HTTPS server: TLS, HTTP/1.1 keep-alive, faults and the request log.

Standard library only (``http.server`` + ``ssl``): one daemon thread per connection,
the TLS handshake done in that thread (a stalled client cannot block the accept loop),
``Content-Length`` on every answer so connections are reused. :meth:`EmulatorServer.start`
returns once the accept loop runs (an :class:`threading.Event`); :meth:`stop` closes every
open connection and joins the thread.
"""

from __future__ import annotations

import contextlib
import email.utils
import json
import logging
import socket
import ssl
import struct
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from graphkit.emulator.errors import EntraError, GraphApiError
from graphkit.emulator.faults import Fault, retry_after_header
from graphkit.emulator.routes import (
    Headers,
    Request,
    Response,
    Services,
    classify,
    dispatch,
    entra_error_response,
    graph_error_response,
)

__all__ = ["EmulatorServer"]

log = logging.getLogger("graphkit.emulator")

MAX_BODY = 16 * 1024 * 1024
# Idle keep-alive connections are closed after this; clients reconnect transparently.
IDLE_TIMEOUT = 120.0
_QUIET = (ConnectionError, ssl.SSLError, TimeoutError, OSError)


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 64

    def __init__(self, address: tuple[str, int], context: ssl.SSLContext):
        self.ssl_context = context
        self.services: Services | None = None
        self._connections: set[Any] = set()
        self._conn_lock = threading.Lock()
        super().__init__(address, _Handler)

    def get_request(self) -> tuple[Any, Any]:
        sock, addr = self.socket.accept()
        # Small answers must not wait for the client's delayed ACK (Nagle): ~40 ms each.
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        # The handshake happens later, in the connection's own thread (see _Handler.setup).
        wrapped = self.ssl_context.wrap_socket(
            sock, server_side=True, do_handshake_on_connect=False
        )
        return wrapped, addr

    def track(self, conn: Any, add: bool) -> None:
        with self._conn_lock:
            if add:
                self._connections.add(conn)
            else:
                self._connections.discard(conn)

    def close_connections(self) -> None:
        with self._conn_lock:
            conns = list(self._connections)
            self._connections.clear()
        for conn in conns:
            # The plain-socket shutdown: wakes the thread blocked reading this
            # connection without touching the TLS object it is using.
            with contextlib.suppress(OSError):
                socket.socket.shutdown(conn, socket.SHUT_RDWR)

    def handle_error(self, request: Any, client_address: Any) -> None:
        import sys

        exc = sys.exc_info()[1]
        if isinstance(exc, _QUIET):
            return
        log.exception("graphkit emulator: error while serving %s", client_address)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "graphkit-emulator"
    sys_version = ""
    timeout = IDLE_TIMEOUT
    # A buffered writer (flushed after each request): headers and body leave in one go.
    wbufsize = 64 * 1024
    # The parts of a streamed answer leave as they are written, not after the client's
    # (delayed) acknowledgement of the part before.
    disable_nagle_algorithm = True
    server: _HTTPServer

    def setup(self) -> None:
        self.handshake_ok = False
        self.server.track(self.request, True)
        self.request.settimeout(self.timeout)
        try:
            self.request.do_handshake()
            self.handshake_ok = True
        except _QUIET:
            pass  # e.g. a client that does not trust our CA hangs up
        super().setup()

    def finish(self) -> None:
        with contextlib.suppress(*_QUIET):
            super().finish()
        self.server.track(self.request, False)

    def handle(self) -> None:
        if not self.handshake_ok:
            self.close_connection = True
            return
        try:
            super().handle()
        except _QUIET:
            self.close_connection = True

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s - " + format, self.address_string(), *args)

    def date_time_string(self, timestamp: float | None = None) -> str:
        services = self.server.services
        now = services.backend.now() if services is not None else time.time()
        return email.utils.formatdate(timestamp if timestamp is not None else now, usegmt=True)

    def do_GET(self) -> None:
        self._serve()

    do_POST = do_PATCH = do_PUT = do_DELETE = do_HEAD = do_OPTIONS = do_GET

    # ------------------------------------------------------------------ serving

    def _read_body(self) -> bytes | None:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            chunks: list[bytes] = []
            size = 0
            while True:
                line = self.rfile.readline(65537)
                n = int(line.split(b";")[0].strip() or b"0", 16)
                if n == 0:
                    while self.rfile.readline(65537) not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(chunks)
                size += n
                if size > MAX_BODY:
                    return None
                chunks.append(self.rfile.read(n))
                self.rfile.readline(3)
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY:
            return None
        return self.rfile.read(length) if length > 0 else b""

    def _serve(self) -> None:
        svc = self.server.services
        assert svc is not None
        body = self._read_body()
        if body is None:
            self.close_connection = True
            self._send(Response(413, b"request body too large"), truncate=False)
            return
        req = Request(
            method=self.command,
            target=self.path,
            headers=Headers(self.headers.items()),
            body=body,
            base=_base_for(svc, self.headers.get("Host")),
        )
        kind = classify(req.path)
        delay, fault = svc.faults.select(kind)
        if delay > 0:
            time.sleep(delay)
        entry: dict[str, Any] = {
            "method": req.method,
            "path": req.path,
            "target": req.target,
            "kind": kind,
            "status": None,
            "fault": fault.kind if fault is not None else ("latency" if delay else None),
            "time": svc.backend.now(),
            "client_request_id": req.client_request_id,
            "peer_port": self.client_address[1],  # same value: same (kept-alive) connection
        }
        if fault is not None and fault.kind == "reset":
            svc.log.add(entry)
            self._reset()
            return
        if fault is not None and fault.status is not None:
            resp = _fault_response(svc, req, kind, fault)
        else:
            try:
                resp = dispatch(svc, req)
            except Exception:
                log.exception("graphkit emulator: handler failed for %s %s", req.method, req.path)
                resp = Response(
                    500,
                    json.dumps(
                        {"error": {"code": "InternalServerError", "message": "emulator bug"}}
                    ).encode(),
                    {"Content-Type": "application/json"},
                )
        entry["status"] = resp.status
        if resp.status < 500 and req.method != "GET":
            try:
                svc.after_request()  # state written before the client hears of it
            except Exception:
                log.exception("graphkit emulator: could not save the state")
        for key in (
            "alg",
            "thumbprint_header",
            "client_id",
            "error_code",
            "request_id",
            "proof_refusal",  # which addKey/removeKey proof rule failed (not sent)
            "user",  # the signed-in user of a delegated token answer
        ):
            if key in req.note:
                entry[key] = req.note[key]
        svc.log.add(entry)
        self._send(resp, truncate=fault is not None and fault.kind == "truncate")

    def _send(self, resp: Response, *, truncate: bool) -> None:
        self.send_response(resp.status)
        for name, value in resp.headers.items():
            self.send_header(name, value)
        # HTTP/1.0 has no chunks: such a client gets the body whole, with its length.
        if (
            resp.parts is not None
            and not truncate
            and self.command != "HEAD"
            and self.request_version != "HTTP/1.0"
        ):
            self._stream(resp.parts)
            return
        body = resp.content()
        if resp.status != 204 and resp.status >= 200:
            self.send_header("Content-Length", str(len(body)))
        if truncate:
            self.send_header("Connection", "close")
        if truncate:
            body = body[: len(body) // 2]
        if self.command == "HEAD":
            body = b""
        self.end_headers()
        if body:
            self.wfile.write(body)  # buffered: headers and body leave together
        if truncate:
            self.close_connection = True

    def _stream(self, parts: Iterator[bytes]) -> None:
        """The body of an answer whose headers are given, sent as it is made, in chunks,
        each as soon as it is made. A part that fails to be made cuts the answer short
        (no last chunk), as a dropped connection would."""
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        while True:
            try:
                part = next(parts)
            except StopIteration:
                break
            except Exception:
                log.exception("graphkit emulator: a streamed answer failed for %s", self.path)
                self.close_connection = True
                return
            if part:
                self.wfile.write(b"%x\r\n%s\r\n" % (len(part), part))
            self.wfile.flush()  # each part leaves as it is made, the headers with the first
        self.wfile.write(b"0\r\n\r\n")

    def _reset(self) -> None:
        """Drop the connection with a TCP RST and no answer."""
        self.close_connection = True
        try:
            self.request.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            socket.socket.close(self.request)
        except OSError:
            pass


def _base_for(svc: Services, host: str | None) -> str:
    """The origin the client addressed (127.0.0.1 or localhost form), else the default."""
    if host:
        port = svc.base_url.rsplit(":", 1)[-1]
        if host.strip().lower() in (f"127.0.0.1:{port}", f"localhost:{port}"):
            return f"https://{host.strip().lower()}"
    return svc.base_url


def _fault_response(svc: Services, req: Request, kind: str, fault: Fault) -> Response:
    status = fault.status or 503
    headers = retry_after_header(fault)
    if kind == "graph":
        code, message = {
            429: ("TooManyRequests", "Too many requests, please retry later (emulated)."),
            503: ("serviceNotAvailable", "The service is temporarily unavailable (emulated)."),
            504: ("GatewayTimeout", "The gateway timed out (emulated)."),
        }[status]
        return graph_error_response(svc, req, GraphApiError(status, code, message, headers))
    entra: dict[int, tuple[int, str]] = {
        429: (90055, "TenantThrottlingError - There are too many incoming requests (emulated)."),
        503: (90033, "A transient error has occurred. Please try again (emulated)."),
        504: (90033, "A transient error has occurred. Please try again (emulated)."),
    }
    number, text = entra[status]
    resp = entra_error_response(
        svc, req, EntraError("temporarily_unavailable", number, text, status=status)
    )
    resp.headers.update(headers)
    return resp


class EmulatorServer:
    """A bound HTTPS server on ``host``; ``port`` is known as soon as it is constructed."""

    def __init__(self, host: str, port: int, context: ssl.SSLContext):
        self._httpd = _HTTPServer((host, port), context)
        self.host = host
        self.port = int(self._httpd.server_address[1])
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()

    @property
    def services(self) -> Services | None:
        return self._httpd.services

    @services.setter
    def services(self, value: Services) -> None:
        self._httpd.services = value

    def start(self, timeout: float = 10.0) -> None:
        self._thread = threading.Thread(
            target=self._run, name=f"graphkit-emulator:{self.port}", daemon=True
        )
        self._thread.start()
        if not self._ready.wait(timeout):
            raise RuntimeError("the emulator's server thread did not start")

    def _run(self) -> None:
        self._ready.set()
        self._httpd.serve_forever(poll_interval=0.05)

    def stop(self) -> None:
        if self._thread is not None:
            self._httpd.shutdown()
            self._thread.join()
            self._thread = None
        self._httpd.server_close()
        self._httpd.close_connections()
