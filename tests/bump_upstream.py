"""A local stand-in for python.org's FTP tree, PyPI's JSON API and GitHub, for bump tests and bench.

A real HTTP server (http.server, in a thread, on 127.0.0.1) serves routes built from fixtures in
the formats the real hosts publish: nginx autoindex pages (python.org's /ftp/python/), PyPI's
JSON, GitHub's commits JSON, raw file bytes. Routes can misbehave on purpose: answer 5xx a number
of times first, stall, or cut the body short of its Content-Length. Every request is logged on
the server side, with the bytes sent, so tests and the benchmark count what the client did.
"""

from __future__ import annotations

import base64
import hashlib
import json
import sys
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "bump"

FTP = "/ftp/python/"
PYPI = "/pypi/"
API = "/api"
GITHUB = "/gh"
COMMITS = f"{API}/repos/pypa/get-pip/commits?per_page=1"


@dataclass
class Route:
    body: bytes
    status: int = 200
    content_type: str = "application/octet-stream"
    fail_first: int = 0
    fail_status: int = 500
    delay: float = 0.0
    truncate_to: int | None = None
    drip: float = 0.0  # seconds between 1 KiB pieces of the body
    served: int = 0


@dataclass(frozen=True)
class Hit:
    path: str
    status: int
    sent: int


@dataclass
class Upstream:
    """Routes by request path (with its query string) and a server-side request log."""

    routes: dict[str, Route] = field(default_factory=dict)
    hits: list[Hit] = field(default_factory=list)
    latency: float = 0.0
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _server: _Server | None = None

    @property
    def base(self) -> str:
        assert self._server is not None
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def env(self) -> dict[str, str]:
        """The environment that points ``toolkit bump`` at this server."""
        return {
            "TOOLKIT_PYTHON_FTP_URL": self.base + FTP,
            "TOOLKIT_PYPI_URL": self.base + PYPI,
            "TOOLKIT_GITHUB_API_URL": self.base + API,
            "TOOLKIT_GITHUB_URL": self.base + GITHUB,
        }

    def add(self, path: str, body: bytes, **kwargs: Any) -> Route:
        route = Route(body=body, **kwargs)
        self.routes[path] = route
        return route

    def count(self, path: str | None = None) -> int:
        with self._lock:
            return sum(1 for h in self.hits if path is None or h.path == path)

    def sent(self) -> int:
        with self._lock:
            return sum(h.sent for h in self.hits)

    def reset_log(self) -> None:
        with self._lock:
            self.hits.clear()

    def _log(self, hit: Hit) -> None:
        with self._lock:
            self.hits.append(hit)

    def start(self) -> None:
        upstream = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # Headers and body go out in two writes: without this, Nagle's algorithm and the
            # client's delayed ACK add some 40 ms to every answer.
            disable_nagle_algorithm = True

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                if upstream.latency:
                    time.sleep(upstream.latency)
                route = upstream.routes.get(self.path) or upstream.routes.get(
                    self.path.split("?", 1)[0]
                )
                if route is None:
                    self._answer(
                        404, b"<html><body><h1>404 Not Found</h1></body></html>", "text/html"
                    )
                    return
                with upstream._lock:
                    route.served += 1
                    failing = route.served <= route.fail_first
                if route.delay:
                    time.sleep(route.delay)
                if failing:
                    self._answer(route.fail_status, b"upstream trouble\n", "text/plain")
                    return
                self._answer(
                    route.status, route.body, route.content_type, route.truncate_to, route.drip
                )

            def _answer(
                self,
                status: int,
                body: bytes,
                ctype: str,
                truncate_to: int | None = None,
                drip: float = 0.0,
            ) -> None:
                payload = body if truncate_to is None else body[:truncate_to]
                # Logged before the answer leaves, so a client that has it sees it counted.
                upstream._log(Hit(self.path, status, len(payload)))
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", ctype)
                    self.send_header("Content-Length", str(len(body)))
                    if truncate_to is not None:
                        self.send_header("Connection", "close")
                        self.close_connection = True
                    self.end_headers()
                    step = 1024 if drip else max(len(payload), 1)
                    for start in range(0, len(payload), step):
                        self.wfile.write(payload[start : start + step])
                        self.wfile.flush()
                        if drip:
                            time.sleep(drip)
                    self.wfile.flush()
                except (BrokenPipeError, ConnectionResetError):
                    pass

        server = _Server(("127.0.0.1", 0), Handler)
        self._server = server
        threading.Thread(
            target=server.serve_forever, args=(0.05,), name="upstream", daemon=True
        ).start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client closing a kept-alive connection is normal, not worth a traceback.
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


@contextmanager
def running(upstream: Upstream) -> Iterator[Upstream]:
    upstream.start()
    try:
        yield upstream
    finally:
        upstream.stop()


# --- python.org's FTP tree, as nginx autoindex pages ----------------------------------------------


def autoindex(path: str, entries: Iterable[tuple[str, str, int | None]]) -> str:
    """An nginx autoindex page like python.org's: name column of 50, date, size (``-`` for dirs)."""
    rows = ['<a href="../">../</a>']
    for name, date, size in entries:
        text = name if len(name) <= 50 else name[:47] + "..>"
        pad = " " * (51 - len(text))
        shown = "-" if size is None else str(size)
        rows.append(f'<a href="{name}">{text}</a>{pad}{date} {shown:>19}')
    return (
        "<html>\r\n<head><title>Index of {p}</title></head>\r\n<body>\r\n"
        "<h1>Index of {p}</h1><hr><pre>{rows}\r\n</pre><hr></body>\r\n</html>\r\n"
    ).format(p=path, rows="\r\n".join(rows))


def installer_bytes(version: str, size: int = 4096) -> bytes:
    """Deterministic stand-in bytes for ``python-<version>-amd64.exe``."""
    seed = f"MZ stand-in installer for Python {version}\n".encode()
    return (seed * (size // len(seed) + 1))[:size]


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sigstore_bundle(signed: bytes) -> bytes:
    """A Sigstore bundle in the shape python.org publishes beside each installer
    (``python-<version>-amd64.exe.sigstore``), whose message digest is the sha256 of ``signed``.

    The certificate, signature and transparency-log entry are stand-in bytes: the toolkit reads
    only ``messageSignature.messageDigest``, as the official images do.
    """
    digest = hashlib.sha256(signed).digest()

    def b64(data: bytes) -> str:
        return base64.b64encode(data).decode()

    bundle = {
        "mediaType": "application/vnd.dev.sigstore.bundle+json;version=0.2",
        "verificationMaterial": {
            "x509CertificateChain": {"certificates": [{"rawBytes": b64(b"stand-in DER " * 40)}]},
            "tlogEntries": [
                {
                    "logIndex": "123456789",
                    "logId": {"keyId": b64(b"stand-in rekor log id 32 bytes!!")},
                    "kindVersion": {"kind": "hashedrekord", "version": "0.0.1"},
                    "integratedTime": "1757457600",
                    "inclusionPromise": {"signedEntryTimestamp": b64(b"stand-in SET")},
                    "canonicalizedBody": b64(
                        json.dumps(
                            {
                                "apiVersion": "0.0.1",
                                "kind": "hashedrekord",
                                "spec": {
                                    "data": {"hash": {"algorithm": "sha256", "value": digest.hex()}}
                                },
                            }
                        ).encode()
                    ),
                }
            ],
            "timestampVerificationData": {"rfc3161Timestamps": []},
        },
        "messageSignature": {
            "messageDigest": {"algorithm": "SHA2_256", "digest": b64(digest)},
            "signature": b64(b"stand-in ECDSA signature"),
        },
    }
    return json.dumps(bundle, indent=2).encode()


@dataclass
class PythonOrg:
    """Releases with or without installers; ``publish`` turns them into routes."""

    installers: set[str] = field(default_factory=set)
    tarballs: set[str] = field(default_factory=set)
    folders: set[str] = field(default_factory=set)
    # version -> the bytes its Sigstore bundle signs (the installer's own, or others to lie)
    bundles: dict[str, bytes] = field(default_factory=dict)
    installer_size: int = 4096

    def release(
        self,
        version: str,
        *,
        installer: bool = True,
        tarball: bool = True,
        sigstore: bool = False,
        signs: bytes | None = None,
    ) -> PythonOrg:
        """Publish ``version``; ``sigstore`` adds the installer's bundle (python.org has them
        since 2022), signing ``signs`` instead of the installer when given."""
        from packaging.version import Version

        self.folders.add(Version(version).base_version)
        if installer:
            self.installers.add(version)
        if tarball:
            self.tarballs.add(version)
        if sigstore or signs is not None:
            self.bundles[version] = (
                signs if signs is not None else installer_bytes(version, self.installer_size)
            )
        return self

    def publish(self, upstream: Upstream) -> None:
        from packaging.version import Version

        date = "14-Oct-2019 22:05"
        top = [(f"{f}/", date, None) for f in sorted(self.folders, key=Version)]
        top = [("2.7.18/", date, None), *top, ("win32-extras/", date, None)]
        upstream.add(FTP, autoindex(FTP, top).encode(), content_type="text/html")
        for folder in self.folders:
            files: list[tuple[str, str, int | None]] = []
            for version in sorted(self.tarballs | self.installers, key=Version):
                if Version(version).base_version != folder:
                    continue
                if version in self.tarballs:
                    files.append((f"Python-{version}.tgz", date, 23_000_000))
                    files.append((f"Python-{version}.tar.xz", date, 17_000_000))
                if version in self.installers:
                    body = installer_bytes(version, self.installer_size)
                    name = f"python-{version}-amd64.exe"
                    files.append((name, date, len(body)))
                    files.append((f"{name}.asc", date, 833))
                    upstream.add(f"{FTP}{folder}/{name}", body)
                    if version in self.bundles:
                        bundle = sigstore_bundle(self.bundles[version])
                        files.append((f"{name}.sigstore", date, len(bundle)))
                        upstream.add(
                            f"{FTP}{folder}/{name}.sigstore", bundle, content_type="text/plain"
                        )
                    files.append((f"python-{version}-embed-amd64.zip", date, 7_000_000))
            path = f"{FTP}{folder}/"
            upstream.add(path, autoindex(path, files).encode(), content_type="text/html")


# --- PyPI and GitHub ------------------------------------------------------------------------------


def pypi_document() -> dict[str, Any]:
    doc: dict[str, Any] = json.loads((FIXTURES / "pypi-pip.json").read_text())
    return doc


def commits_document() -> list[dict[str, Any]]:
    doc: list[dict[str, Any]] = json.loads((FIXTURES / "github-commits.json").read_text())
    return doc


NEW_COMMIT = "b60e2320d9e8d02348525bd74e871e466afdf77c"  # the fixture's newest commit
GET_PIP = (FIXTURES / "get-pip.py").read_bytes()


def publish_pypi(upstream: Upstream, doc: dict[str, Any] | None = None) -> None:
    body = json.dumps(doc if doc is not None else pypi_document()).encode()
    upstream.add(f"{PYPI}pip/json", body, content_type="application/json")


def publish_github(
    upstream: Upstream,
    *,
    commit: str = NEW_COMMIT,
    paths: Iterable[str] = ("public/get-pip.py",),
    body: bytes = GET_PIP,
) -> None:
    doc = commits_document()
    doc[0]["sha"] = commit
    upstream.add(COMMITS, json.dumps(doc).encode(), content_type="application/json; charset=utf-8")
    for path in paths:
        upstream.add(f"{GITHUB}/pypa/get-pip/raw/{commit}/{path}", body, content_type="text/plain")
