"""Loopback HTTP servers for `toolkit report` tests.

- :class:`ForeignLayerHost` stands for the host of a Windows image's foreign base layers
  (go.microsoft.com/fwlink in 2019): HEAD/GET ``/layers/<hex>`` answers 200 with a
  ``Last-Modified`` header per layer (or without one), anything else 404; it logs each request.
- :class:`BrokenRegistry` stands for a server that is not a working registry: every request gets
  one fixed answer (an HTML page from a proxy or a login portal, a 500, a manifest that is not
  JSON). The real registry cannot be made to answer those, so this is a double, named as one.
- :class:`StorageFront` stands in front of the real registry as Docker Hub's CDN does: blob
  HEADs are redirected to a storage URL that sends ``Last-Modified`` (Distribution on a
  filesystem sends none); manifests and the rest come from the real registry.
- :func:`stalling_registry` accepts a request and never answers it (a hung registry).
"""

from __future__ import annotations

import threading
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


@dataclass
class StorageFront:
    """What a registry with blob storage behind a CDN does (Docker Hub): a blob request is
    redirected to the storage, which sends ``Last-Modified``; everything else goes to the real
    registry behind. ``modified`` maps a blob digest to the header to send (None: no header)."""

    address: str = ""
    modified: dict[str, str | None] = field(default_factory=dict)
    storage_requests: list[str] = field(default_factory=list)


@contextmanager
def storage_front(registry: str) -> Iterator[StorageFront]:
    import http.client
    import re

    front = StorageFront()
    host, port = registry.split(":")
    blob = re.compile(r"/v2/.+/blobs/(sha256:[0-9a-f]{64})")

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True

        def _answer(self) -> None:
            if self.path.startswith("/storage/"):
                digest = self.path.removeprefix("/storage/")
                front.storage_requests.append(digest)
                self.send_response(200 if digest in front.modified else 404)
                self.send_header("Content-Length", "0")
                value = front.modified.get(digest)
                if value is not None:
                    self.send_header("Last-Modified", value)
                self.end_headers()
                return
            match = blob.fullmatch(self.path)
            if match is not None and self.command == "HEAD":
                self.send_response(307)
                self.send_header("Location", f"http://{front.address}/storage/{match.group(1)}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            upstream = http.client.HTTPConnection(host, int(port), timeout=30)
            try:
                headers = {k: v for k, v in self.headers.items() if k.lower() != "host"}
                upstream.request(self.command, self.path, headers=headers)
                answer = upstream.getresponse()
                data = answer.read()
                self.send_response(answer.status, answer.reason)
                for key, value in answer.getheaders():
                    if key.lower() not in ("content-length", "connection", "transfer-encoding"):
                        self.send_header(key, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(data)
            finally:
                upstream.close()

        do_HEAD = _answer
        do_GET = _answer

        def log_message(self, format: str, *args: object) -> None:
            return

    server = LoopbackServer(Handler)
    server.start()
    front.address = f"127.0.0.1:{server.port}"
    try:
        yield front
    finally:
        server.stop()


@contextmanager
def stalling_registry() -> Iterator[tuple[str, threading.Event]]:
    """A server on 127.0.0.1 that accepts a request and never answers it (until the end).

    Yields its address and an event set when the first request has arrived.
    """
    arrived = threading.Event()
    release = threading.Event()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            arrived.set()
            release.wait(120)

        def log_message(self, format: str, *args: object) -> None:
            return

    server = LoopbackServer(Handler)
    server.start()
    try:
        yield f"127.0.0.1:{server.port}", arrived
    finally:
        release.set()
        server.stop()
