"""Benchmark: image-info pages of 30 tags from a local registry, against their request count.

Debian's docker-registry runs on 127.0.0.1:5000 in a network namespace of its own (as in the
test suite); the process enters that namespace, so nothing here reaches beyond loopback. 30 tags
are put in through the registry API, each a manifest list over the seed's three Windows
platforms (11 layers each, 6 of them foreign base layers shared by every tag, whose URLs point at
a loopback host). A loopback proxy in front of the registry and the foreign-layer host adds a
fixed latency to every request, standing in for a network round trip, and counts the requests.

Each run reads the 30 pages (toolkit.pagesource.read_pages) and writes them (toolkit.imagepage),
with the requests one at a time (--jobs 1) and concurrent (the default 8, and 16), against:
  floor : requests x latency, what a client making the requests one by one must wait
Figures are medians of several runs; the runs of the settings are interleaved.

Usage (root): python bench/report.py [--runs N] [--latency SECONDS] [--tags N] [--json PATH]
"""

from __future__ import annotations

import argparse
import http.client
import json
import multiprocessing
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import requests  # noqa: E402

from tests.docker import engines as eng  # noqa: E402
from tests.doubles.web import ForeignLayerHost, foreign_layer_host  # noqa: E402
from tests.windows_images import FOREIGN, put_windows_page  # noqa: E402
from toolkit.imagepage import http_date, parse_pages, write_pages  # noqa: E402
from toolkit.pagesource import read_pages, url_headers  # noqa: E402
from toolkit.references import parse_reference  # noqa: E402
from toolkit.registry import RegistryClient  # noqa: E402

SEED = REPO / "tests" / "fixtures" / "published-python-3.8-rc-windowsservercore.md"
REPOSITORY = "bench/python"


class DelayProxy:
    """HTTP/1.1 proxy on 127.0.0.1 to ``target`` (host:port) adding ``latency`` per request.

    It runs in a child process (forked, so in the same network namespace) so that its work does
    not compete with the client for the interpreter lock; ``count`` is shared memory.
    """

    def __init__(self, target: str, latency: float) -> None:
        self._count = multiprocessing.Value("i", 0)
        counter = self._count
        host, port = target.split(":")

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # headers and body go out as two writes: without this, Nagle and the
            # client's delayed ACK add 40 ms to every answer
            disable_nagle_algorithm = True

            def _forward(self) -> None:
                with counter.get_lock():
                    counter.value += 1
                time.sleep(latency)
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                upstream = http.client.HTTPConnection(host, int(port), timeout=30)
                try:
                    headers = {k: v for k, v in self.headers.items() if k.lower() != "host"}
                    upstream.request(self.command, self.path, body=body, headers=headers)
                    answer = upstream.getresponse()
                    data = answer.read()
                    self.send_response(answer.status, answer.reason)
                    for key, value in answer.getheaders():
                        if key.lower() not in ("content-length", "connection", "transfer-encoding"):
                            self.send_header(key, value)
                    if self.command == "HEAD":
                        self.send_header(
                            "Content-Length", answer.getheader("Content-Length") or "0"
                        )
                    else:
                        self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    if self.command != "HEAD":
                        self.wfile.write(data)
                finally:
                    upstream.close()

            do_GET = do_HEAD = do_PUT = do_POST = do_PATCH = do_DELETE = _forward

            def log_message(self, format: str, *args: object) -> None:
                return

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._process = multiprocessing.get_context("fork").Process(
            target=self._server.serve_forever, daemon=True
        )

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self._server.server_address[1]}"

    @property
    def count(self) -> int:
        return int(self._count.value)

    def __enter__(self) -> DelayProxy:
        self._process.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._process.terminate()
        self._process.join(timeout=10)
        self._server.server_close()


@contextmanager
def registry_in_namespace() -> Iterator[str]:
    netns = eng.Netns(f"tk-bench-report-{os.getpid()}")
    netns.create()
    netns.enter()
    root = Path(tempfile.mkdtemp(prefix="tk-bench-report-", dir="/tmp"))
    started = None
    try:
        started = eng.start_registry(root / "registry", netns)
        yield started.address
    finally:
        if started is not None:
            eng.stop_registry(started)
        shutil.rmtree(root, ignore_errors=True)
        netns.leave()
        netns.delete()


def populate(registry: str, tags: int, foreign: ForeignLayerHost) -> list[str]:
    (seed,) = parse_pages(SEED.read_text("utf-8"), str(SEED)).pages
    for image in seed.images:
        for layer in image.layers:
            if layer.media_type == FOREIGN and layer.last_modified is not None:
                foreign.modified[layer.digest.removeprefix("sha256:")] = http_date(
                    layer.last_modified
                )
    names = [f"3.{n}-windowsservercore" for n in range(tags)]
    with RegistryClient(registry, actions="pull,push") as client:
        for tag in names:
            put_windows_page(
                client,
                name=f"{registry}/{REPOSITORY}",
                repository=REPOSITORY,
                tag=tag,
                page=seed,
                foreign_url=foreign.url_for,
            )
    return names


def one_run(
    proxy: str, foreign_proxy: DelayProxy, foreign: ForeignLayerHost, tags: list[str], jobs: int
) -> tuple[float, float, str]:
    refs = [parse_reference(f"{proxy}/{REPOSITORY}:{tag}") for tag in tags]
    started = time.perf_counter()
    cpu = time.process_time()
    with RegistryClient(proxy) as client, requests.Session() as session:
        session.trust_env = False

        def head(url: str) -> Any:
            # the foreign host, through its own delaying proxy
            return url_headers(session)(
                url.replace(f"127.0.0.1:{foreign.port}", foreign_proxy.address)
            )

        pages = read_pages(refs, lambda _r: client, url_headers=head, jobs=jobs)
        text = write_pages(pages)
    return time.perf_counter() - started, time.process_time() - cpu, text


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--latency", type=float, default=0.02)
    parser.add_argument("--tags", type=int, default=30)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("bench/report.py needs root (a network namespace and Debian's docker-registry)")
        return 2
    # (jobs, added latency): the last two measure what a request costs here without latency
    settings = [(1, args.latency), (8, args.latency), (16, args.latency), (1, 0.0), (8, 0.0)]
    times: dict[tuple[int, float], list[float]] = {key: [] for key in settings}
    cpu: dict[tuple[int, float], list[float]] = {key: [] for key in settings}
    counts: set[int] = set()
    with registry_in_namespace() as registry, foreign_layer_host() as foreign:
        tags = populate(registry, args.tags, foreign)
        foreign_address = f"127.0.0.1:{foreign.port}"
        with (
            DelayProxy(registry, args.latency) as slow,
            DelayProxy(foreign_address, args.latency) as slow_foreign,
            DelayProxy(registry, 0.0) as fast,
            DelayProxy(foreign_address, 0.0) as fast_foreign,
        ):
            proxies = {args.latency: (slow, slow_foreign), 0.0: (fast, fast_foreign)}
            reference_text = None
            for _ in range(args.runs):
                for jobs, latency in settings:
                    proxy, foreign_proxy = proxies[latency]
                    before = proxy.count + foreign_proxy.count
                    elapsed, used, text = one_run(proxy.address, foreign_proxy, foreign, tags, jobs)
                    cpu[(jobs, latency)].append(used)
                    counts.add(proxy.count + foreign_proxy.count - before)
                    times[(jobs, latency)].append(elapsed)
                    # the proxy's address is in the pages: compare what follows the headings
                    body = text.replace(proxy.address, "REGISTRY")
                    if reference_text is None:
                        reference_text = body
                    assert body == reference_text, "the pages differ between runs"
    (requests_made,) = counts
    floor = requests_made * args.latency
    medians = {key: statistics.median(value) for key, value in times.items()}
    result: dict[str, Any] = {
        "tags": args.tags,
        "latency_s": args.latency,
        "requests": requests_made,
        "floor_s": round(floor, 3),
        "runs": args.runs,
        "median_s": {f"jobs={j},latency={lat}": round(t, 3) for (j, lat), t in medians.items()},
        "client_cpu_s": {
            f"jobs={j},latency={lat}": round(statistics.median(t), 3) for (j, lat), t in cpu.items()
        },
    }
    print(
        f"{args.tags} pages, {requests_made} requests; at {args.latency * 1000:.0f} ms per "
        f"request the floor (one request per round trip) is {floor:.2f} s"
    )
    for (jobs, latency), median in medians.items():
        ratio = f"  ({median / floor:.2f}x the floor)" if latency else " (no added latency)"
        used = statistics.median(cpu[(jobs, latency)])
        print(
            f"  --jobs {jobs:>2}, {latency * 1000:>2.0f} ms: {median:.2f} s{ratio}; "
            f"client CPU {used:.2f} s ({used / requests_made * 1000:.1f} ms per request)"
        )
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
