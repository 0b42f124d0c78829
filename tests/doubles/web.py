"""Loopback HTTP servers for `toolkit report` tests.

- :class:`ForeignLayerHost` stands for the host of a Windows image's foreign base layers
  (go.microsoft.com/fwlink in 2019): HEAD/GET ``/layers/<hex>`` answers 200 with a
  ``Last-Modified`` header per layer (or without one), anything else 404; it logs each request.
- :class:`BrokenRegistry` stands for a server that is not a working registry: every request gets
  one fixed answer (an HTML page from a proxy or a login portal, a 500, a manifest that is not
  JSON). The real registry cannot be made to answer those, so this is a double, named as one.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler

from tests.doubles.loopback import LoopbackServer


@dataclass
class ForeignLayerHost:
    modified: dict[str, str | None] = field(default_factory=dict)  # hex -> Last-Modified
    requests: list[tuple[str, str]] = field(default_factory=list)
    port: int = 0

    def url_for(self, digest: str) -> str:
        return f"http://127.0.0.1:{self.port}/layers/{digest.removeprefix('sha256:')}"


@contextmanager
def foreign_layer_host() -> Iterator[ForeignLayerHost]:
    host = ForeignLayerHost()

    class Handler(BaseHTTPRequestHandler):
        def _answer(self) -> None:
            host.requests.append((self.command, self.path))
            key = self.path.removeprefix("/layers/")
            if not self.path.startswith("/layers/") or key not in host.modified:
                self.send_response(404)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(200)
            self.send_header("Content-Length", "0")
            value = host.modified[key]
            if value is not None:
                self.send_header("Last-Modified", value)
            self.end_headers()

        do_HEAD = _answer
        do_GET = _answer

        def log_message(self, format: str, *args: object) -> None:
            return

    server = LoopbackServer(Handler)
    server.start()
    host.port = server.port
    try:
        yield host
    finally:
        server.stop()


@contextmanager
def broken_registry(status: int, content_type: str, body: bytes) -> Iterator[str]:
    """A server on 127.0.0.1 answering every request with ``status``, ``content_type``, ``body``.

    Yields its ``127.0.0.1:PORT`` address.
    """

    class Handler(BaseHTTPRequestHandler):
        def _answer(self) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        do_HEAD = _answer
        do_GET = _answer

        def log_message(self, format: str, *args: object) -> None:
            return

    server = LoopbackServer(Handler)
    server.start()
    try:
        yield f"127.0.0.1:{server.port}"
    finally:
        server.stop()
