"""Benchmark: what toolkit.transport's deadlines cost per request, against plain requests.

A local HTTP server (tests/bump_upstream.py, on 127.0.0.1) serves a small JSON document and a
1 MiB file. Batches of GETs on one kept-alive session go through a plain ``requests.Session``
and through ``toolkit.transport.new_session`` (a deadline timer per request, the pools that bind
connections to it, the body wrapper), in interleaved pairs; the figure is the median ratio of
the pairs' times, per kind of answer.

Usage: python bench/transport.py [--pairs N] [--requests N] [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import requests

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.bump_upstream import Upstream, running  # noqa: E402
from toolkit.transport import new_session  # noqa: E402

SMALL = json.dumps({"info": {"version": "19.3"}, "releases": {}}).encode()
LARGE = b"x" * (1024 * 1024)


def batch(session: requests.Session, url: str, count: int) -> float:
    start = time.perf_counter()
    for _ in range(count):
        session.get(url, timeout=(10, 30)).content  # noqa: B018 -- the body is read
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=7)
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    results: dict[str, dict[str, float]] = {}
    with running(Upstream()) as upstream:
        upstream.add("/small", SMALL, content_type="application/json")
        upstream.add("/large", LARGE)
        for kind, count in (("small", args.requests), ("large", max(1, args.requests // 10))):
            url = f"{upstream.base}/{kind}"
            ratios: list[float] = []
            plain_times: list[float] = []
            deadline_times: list[float] = []
            with requests.Session() as plain, new_session() as guarded:
                batch(plain, url, 5)  # connections made, code warm
                batch(guarded, url, 5)
                for pair in range(args.pairs):
                    order = [(plain, plain_times), (guarded, deadline_times)]
                    if pair % 2:
                        order.reverse()
                    for session, times in order:
                        times.append(batch(session, url, count))
                    ratios.append(deadline_times[-1] / plain_times[-1])
            results[kind] = {
                "requests": count,
                "plain_ms_per_request": 1000 * statistics.median(plain_times) / count,
                "deadline_ms_per_request": 1000 * statistics.median(deadline_times) / count,
                "ratio": statistics.median(ratios),
            }
    for kind, figures in results.items():
        print(
            f"{kind:6} {figures['requests']:4d} GETs: plain {figures['plain_ms_per_request']:.3f} "
            f"ms/request, with deadlines {figures['deadline_ms_per_request']:.3f} ms/request, "
            f"ratio {figures['ratio']:.2f}"
        )
    if args.json is not None:
        args.json.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
