"""Benchmark: a full `toolkit bump` of 10 lines against a local upstream, timed against its requests.

A local HTTP server (tests/bump_upstream.py, on 127.0.0.1) plays python.org, PyPI and GitHub,
with a fixed latency added to every answer to stand in for a network round trip. versions.json
has 10 lines (3.5 to 3.13, and 3.14-rc), each behind upstream, so every line changes: new
Python, pip, get-pip commit, installer sha256 (each installer is downloaded and hashed), and the
Dockerfiles are re-rendered. The server counts the requests and bytes. The bump runs as a user
runs it (`python -m toolkit bump` in a subprocess) with --jobs 1 and with --jobs 8 (default),
and each time is set against:
  floor   : requests x latency, the time a client making these requests one by one must wait
  startup : `python -c "import typer, requests, jinja2, packaging"`, the imports it cannot avoid
Each figure is the median of several runs.

Usage: python bench/bump.py [--runs N] [--latency SECONDS] [--installer-kb KB]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from packaging.version import Version  # noqa: E402

from tests.bump_upstream import (  # noqa: E402
    PythonOrg,
    Upstream,
    publish_github,
    publish_pypi,
    pypi_document,
    running,
)

OLD_COMMIT = "309a56c5fd94bd1134053a541cb4657a4e47e09d"
OLD_SHA = "57e3643ff19f018f8a00dfaa6b7e4620e3c1a7a2171fd218425366ec006b3bfe"
VARIANTS = ["windows/windowsservercore-ltsc2022", "windows/windowsservercore-ltsc2025"]
# (line, pinned version, releases upstream: (version, has a Windows installer))
LINES: list[tuple[str, str, list[tuple[str, bool]]]] = [
    ("3.14-rc", "3.14.0a1", [("3.14.0a1", True), ("3.14.0a2", True), ("3.14.0a3", True)]),
    *[
        (f"3.{m}", f"3.{m}.1", [(f"3.{m}.1", True), (f"3.{m}.2", True), (f"3.{m}.3", True)])
        for m in range(9, 14)
    ],
    # Lines that have ended for Windows: the newest releases ship no installer.
    *[
        (
            f"3.{m}",
            f"3.{m}.1",
            [(f"3.{m}.1", True), (f"3.{m}.2", True), (f"3.{m}.3", False), (f"3.{m}.4", False)],
        )
        for m in range(5, 9)
    ],
]


def versions_data() -> dict[str, Any]:
    return {
        name: {
            "version": pinned,
            "pip": {"version": "19.2.3"},
            "get-pip": {
                "url": f"https://github.com/pypa/get-pip/raw/{OLD_COMMIT}/get-pip.py",
                "sha256": OLD_SHA,
            },
            "variants": VARIANTS,
        }
        for name, pinned, _releases in LINES
    }


def publish(upstream: Upstream, installer_size: int) -> None:
    org = PythonOrg(installer_size=installer_size)
    for _name, _pinned, releases in LINES:
        for version, installer in releases:
            org.release(version, installer=installer)
    org.publish(upstream)
    doc = pypi_document()
    doc["releases"]["20.1"][0]["requires_python"] = ">=3.5"  # one pip for every line
    publish_pypi(upstream, doc)
    paths = ["public/get-pip.py", *(f"public/3.{m}/get-pip.py" for m in range(5, 9))]
    publish_github(upstream, paths=paths)


def critical_path() -> int:
    """The longest chain of requests that must follow one another, whatever the concurrency.

    The top index (with PyPI and GitHub's commits beside it); then, per line, the release folders
    walked newest first down to one with an installer; that installer; the get-pip paths probed
    (``public/<X.Y>/get-pip.py`` exists for 3.5 to 3.8 here, so 3.9 and later probe twice).
    """
    longest = 0
    for name, _pinned, releases in LINES:
        folders = list(dict.fromkeys(Version(v).base_version for v, _has in releases))
        newest = max(Version(v) for v, has in releases if has).base_version
        walked = len(folders) - folders.index(newest)  # folders are listed oldest first
        probes = 1 if Version(name.removesuffix("-rc")) < Version("3.9") else 2
        longest = max(longest, 1 + walked + 1 + probes)
    return longest


def timed(command: list[str], cwd: Path, env: dict[str, str]) -> float:
    start = time.perf_counter()
    proc = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed ({proc.returncode}):\n{proc.stderr}")
    return elapsed


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--latency", type=float, default=0.02, help="seconds added per request")
    parser.add_argument("--installer-kb", type=int, default=1024)
    args = parser.parse_args()

    py = sys.executable
    base_env = {k: v for k, v in os.environ.items() if not k.startswith("TOOLKIT_")}
    base_env["PYTHONPATH"] = str(REPO)
    startup = statistics.median(
        timed([py, "-c", "import typer, requests, jinja2, packaging"], REPO, base_env)
        for _ in range(args.runs)
    )

    upstream = Upstream(latency=args.latency)
    publish(upstream, args.installer_kb * 1024)
    results: dict[int, list[float]] = {1: [], 8: []}
    counts: dict[int, tuple[int, int]] = {}
    with running(upstream), tempfile.TemporaryDirectory() as tmp:
        env = {**base_env, **upstream.env()}
        for _ in range(args.runs):
            for jobs in (1, 8):
                work = Path(tmp) / f"run-{jobs}"
                shutil.rmtree(work, ignore_errors=True)
                work.mkdir()
                shutil.copytree(REPO / "templates", work / "templates")
                (work / "versions.json").write_text(json.dumps(versions_data(), indent=2) + "\n")
                upstream.reset_log()
                command = [py, "-m", "toolkit", "bump", "--jobs", str(jobs)]
                results[jobs].append(timed(command, work, env))
                counts[jobs] = (upstream.count(), upstream.sent())
                written = json.loads((work / "versions.json").read_text())
                assert all(line["get-pip"]["url"].find(OLD_COMMIT) < 0 for line in written.values())
                assert len(list((work / "dockerfiles").rglob("Dockerfile"))) == 2 * len(LINES)

    requests, sent = counts[8]
    assert counts[1] == counts[8], (counts[1], counts[8])
    floor = requests * args.latency
    chain = critical_path()
    print(f"toolkit bump: {len(LINES)} lines, {len(LINES) * len(VARIANTS)} Dockerfiles rendered")
    print(
        f"requests: {requests} ({sent / 1e6:.1f} MB; installers {args.installer_kb} KiB each), "
        f"latency {args.latency * 1000:.0f} ms per request, median of {args.runs} runs"
    )
    print(f"startup (imports only): {startup:.2f} s")
    print(f"request floor (one by one): {floor:.2f} s")
    print(f"critical path: {chain} dependent requests = {chain * args.latency:.2f} s")
    for jobs in (1, 8):
        median = statistics.median(results[jobs])
        ratio = f"; {median / floor:.2f} x the request floor" if floor else ""
        print(f"--jobs {jobs}: {median:.2f} s  (minus startup {median - startup:.2f} s{ratio})")
    speedup = statistics.median(results[1]) / statistics.median(results[8])
    print(f"concurrency speed-up (--jobs 1 / --jobs 8): {speedup:.1f} x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
