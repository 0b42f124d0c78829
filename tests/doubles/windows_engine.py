"""Test doubles of Windows Docker Engines (no Windows engine can run here).

They replay the ``GET /version`` and ``GET /info`` payloads recorded in
tests/fixtures/engines/ (see the README there): :class:`RecordedEngine` in process, in the
shape of a ``docker.DockerClient``; :class:`EngineHTTPDouble` over real HTTP on 127.0.0.1, so
the real docker-py client, API version negotiation included, talks to it.
"""

from __future__ import annotations

import json
import re
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

from tests.doubles.loopback import LoopbackServer

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "engines"
WINDOWS_HOSTS = ("windows-ltsc2016", "windows-1803", "windows-1809", "windows-ltsc2022",
                 "windows-ltsc2025")  # fmt: skip


def payloads(host: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """(version, info) recorded for ``host`` (a file prefix in tests/fixtures/engines)."""
    version = json.loads((FIXTURES / f"{host}.version.json").read_text("utf-8"))
    info = json.loads((FIXTURES / f"{host}.info.json").read_text("utf-8"))
    return version, info


class RecordedEngine:
    """Test double: answers ``version()`` and ``info()`` like a DockerClient on that host."""

    def __init__(self, host: str) -> None:
        self.host = host
        self._version, self._info = payloads(host)
        self.calls = 0
        self.closed = False

    def version(self) -> dict[str, Any]:
        self.calls += 1
        return dict(self._version)

    def info(self) -> dict[str, Any]:
        self.calls += 1
        return dict(self._info)

    def close(self) -> None:
        self.closed = True


_ROUTE = re.compile(r"^(?:/v\d+\.\d+)?/(version|info|_ping)$")


class EngineHTTPDouble:
    """Test double: an HTTP server on 127.0.0.1 answering /_ping, /version and /info with the
    payloads recorded for ``host``; every other request gets the 404 JSON Docker sends."""

    def __init__(self, host: str) -> None:
        version, info = payloads(host)
        bodies = {"version": version, "info": info, "_ping": "OK"}
        self.requests: list[str] = []
        requests = self.requests

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                path = self.path.split("?", 1)[0]
                requests.append(path)
                match = _ROUTE.match(path)
                if match is None:
                    self._send(404, {"message": f"page not found: {path}"})
                    return
                self._send(200, bodies[match.group(1)])

            def do_HEAD(self) -> None:
                self._send(200, "OK")

            def _send(self, status: int, body: Any) -> None:
                raw = body.encode() if isinstance(body, str) else json.dumps(body).encode()
                self.send_response(status)
                ctype = "text/plain" if isinstance(body, str) else "application/json"
                self.send_header("Content-Type", ctype)
                self.send_header("Api-Version", str(version.get("ApiVersion", "")))
                self.send_header("Ostype", "windows")
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(raw)

            def log_message(self, format: str, *args: Any) -> None:
                return

        self._server = LoopbackServer(Handler)

    @property
    def url(self) -> str:
        return f"tcp://127.0.0.1:{self._server.port}"

    def __enter__(self) -> EngineHTTPDouble:
        self._server.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.stop()
