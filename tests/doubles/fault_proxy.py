"""TEST DOUBLE: an HTTP proxy on loopback in front of a real registry, injecting faults.

Everything is forwarded to the real registry (method, path, headers, body) and its answer is
returned as it is, except requests that match a :class:`Fault` while it still has ``times``
left: those get a 5xx answer, or their connection is closed without an answer (a reset as the
client sees it). ``hook`` runs before a matching request is forwarded (to kill the registry
behind it, for instance). ``seen`` records every request (method, path, status).
"""

from __future__ import annotations

import http.client
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler

from tests.doubles.loopback import LoopbackServer

RESET = 0
# Host is kept: the registry builds upload Locations from it, so they point back at the proxy.
HOP_HEADERS = {"connection", "keep-alive", "transfer-encoding", "proxy-connection"}


@dataclass
class Fault:
    method: str
    path: str  # a regular expression, matched with re.search
    times: int
    status: int = 500  # RESET: close the connection without an answer
    hook: Callable[[], None] | None = None

    def matches(self, method: str, path: str) -> bool:
        return self.times > 0 and self.method == method and re.search(self.path, path) is not None


class FaultProxyDouble:
    def __init__(self, upstream: str) -> None:
        self.upstream = upstream
        self.faults: list[Fault] = []
        self.seen: list[tuple[str, str, int]] = []
        self._lock = threading.Lock()
        self._server = LoopbackServer(self._handler())

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self._server.port}"

    def start(self) -> None:
        self._server.start()

    def stop(self) -> None:
        self._server.stop()

    def _take_fault(self, method: str, path: str) -> Fault | None:
        with self._lock:
            for fault in self.faults:
                if fault.matches(method, path):
                    fault.times -= 1
                    return fault
        return None

    def _record(self, method: str, path: str, status: int) -> None:
        with self._lock:
            self.seen.append((method, path, status))

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: object) -> None:
                pass

            def _forward(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                fault = proxy._take_fault(self.command, self.path)
                if fault is not None and fault.hook is not None:
                    fault.hook()
                if fault is not None and fault.status == RESET:
                    proxy._record(self.command, self.path, RESET)
                    self.close_connection = True
                    self.connection.close()
                    return
                if fault is not None:
                    proxy._record(self.command, self.path, fault.status)
                    text = b'{"errors":[{"code":"UNKNOWN","message":"injected fault"}]}'
                    self.send_response(fault.status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(text)))
                    self.end_headers()
                    self.wfile.write(text)
                    return
                host, port = proxy.upstream.rsplit(":", 1)
                upstream = http.client.HTTPConnection(host, int(port), timeout=30)
                try:
                    headers = {
                        k: v for k, v in self.headers.items() if k.lower() not in HOP_HEADERS
                    }
                    upstream.request(self.command, self.path, body=body, headers=headers)
                    answer = upstream.getresponse()
                    data = answer.read()
                except OSError:
                    proxy._record(self.command, self.path, 502)
                    self.send_response(502)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                finally:
                    upstream.close()
                proxy._record(self.command, self.path, answer.status)
                self.send_response(answer.status)
                for key, value in answer.getheaders():
                    if key.lower() not in HOP_HEADERS and key.lower() != "content-length":
                        self.send_header(key, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(data)

            do_GET = do_HEAD = do_PUT = do_POST = do_PATCH = do_DELETE = _forward

        return Handler
