"""Servers on 127.0.0.1 that misbehave on purpose, for the network fault tests.

* :class:`TricklingServer` answers every connection with a prefix and then one byte at a time
  (a status line and one header byte per interval; a body without Content-Length; the first
  bytes of a TLS handshake), the way a hostile or broken server holds a client that only bounds
  each socket read. It stops by itself after ``limit`` seconds.
* :class:`TLSServer` is a real HTTPS server (certificate from a test CA made with openssl) whose
  routes answer with bytes or redirect, e.g. from https to a plain http server.
"""

from __future__ import annotations

import socket
import ssl
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from tests.docker.engines import make_tls_pair

HEADERS_THEN_TRICKLE = b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nX-Slow: "
BODY_WITHOUT_LENGTH = b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nConnection: close\r\n\r\n"
# A TLS handshake record header announcing 16 KiB that then never completes.
TLS_RECORD_START = b"\x16\x03\x03\x40\x00"


@dataclass(frozen=True)
class Certificates:
    ca: Path
    cert: Path
    key: Path


class TricklingServer:
    """Sends ``prefix`` and then ``drip`` one byte every ``interval`` seconds, to every client
    (after reading its request, unless ``read_request`` is False), for at most ``limit`` s."""

    def __init__(
        self,
        prefix: bytes,
        *,
        drip: bytes = b"x",
        interval: float = 0.2,
        limit: float = 60.0,
        read_request: bool = True,
        tls: Certificates | None = None,
    ) -> None:
        self.prefix = prefix
        self._context: ssl.SSLContext | None = None
        if tls is not None:  # the handshake completes; the answer trickles inside TLS
            self._context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            self._context.load_cert_chain(tls.cert, tls.key)
        self.drip = drip
        self.interval = interval
        self.limit = limit
        self.read_request = read_request
        self.connections = 0
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = int(self._listener.getsockname()[1])
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._clients: list[socket.socket] = []

    @property
    def base(self) -> str:
        scheme = "https" if self._context is not None else "http"
        return f"{scheme}://127.0.0.1:{self.port}"

    def start(self) -> None:
        threading.Thread(target=self._accept, name="trickler", daemon=True).start()

    def stop(self) -> None:
        self._stop.set()
        self._listener.close()
        with self._lock:
            for client in self._clients:
                client.close()

    def _accept(self) -> None:
        self._listener.settimeout(0.1)
        while not self._stop.is_set():
            try:
                client, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with self._lock:
                self.connections += 1
                self._clients.append(client)
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        ends = time.monotonic() + self.limit
        try:
            if self._context is not None:
                client.settimeout(10)
                client = self._context.wrap_socket(client, server_side=True)
                with self._lock:
                    self._clients.append(client)
            if self.read_request:
                client.recv(65536)
            client.sendall(self.prefix)
            while not self._stop.is_set() and time.monotonic() < ends:
                for byte in self.drip:
                    client.sendall(bytes([byte]))
                    if self._stop.wait(self.interval):
                        return
        except OSError:
            pass  # the client gave up: what the tests want
        finally:
            client.close()


@contextmanager
def trickling(prefix: bytes, **kwargs: Any) -> Iterator[TricklingServer]:
    server = TricklingServer(prefix, **kwargs)
    server.start()
    try:
        yield server
    finally:
        server.stop()


def make_certificates(directory: Path) -> Certificates:
    """A test CA and a server certificate for IP:127.0.0.1, made with openssl."""
    server, _client = make_tls_pair(directory)
    return Certificates(ca=server.ca, cert=server.cert, key=server.key)


@dataclass
class TLSServer:
    """HTTPS on 127.0.0.1: ``routes`` maps a path to ``(status, body, location)``; a redirect
    carries a Location. Requests are logged by path."""

    certificates: Certificates
    routes: dict[str, tuple[int, bytes, str | None]] = field(default_factory=dict)
    hits: list[str] = field(default_factory=list)
    redirect_rest_to: str | None = None  # any other path: a 302 to this base + the path
    base: str = ""
    _server: ThreadingHTTPServer | None = None

    def redirect(self, path: str, location: str, status: int = 302) -> None:
        self.routes[path] = (status, b"", location)

    def serve(self, path: str, body: bytes) -> None:
        self.routes[path] = (200, body, None)

    def start(self) -> None:
        owner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                owner.hits.append(self.path)
                route = owner.routes.get(self.path) or owner.routes.get(self.path.split("?")[0])
                if route is None and owner.redirect_rest_to is not None:
                    route = (302, b"", owner.redirect_rest_to + self.path)
                status, body, location = route or (404, b"not found\n", None)
                self.send_response(status)
                if location is not None:
                    self.send_header("Location", location)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(self.certificates.cert, self.certificates.key)
        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        server.daemon_threads = True
        server.socket = context.wrap_socket(server.socket, server_side=True)
        self._server = server
        self.base = f"https://127.0.0.1:{server.server_address[1]}"
        threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None


@contextmanager
def tls_server(certificates: Certificates) -> Iterator[TLSServer]:
    server = TLSServer(certificates)
    server.start()
    try:
        yield server
    finally:
        server.stop()
