"""Benchmark of ``toolkit manifest`` against ``docker manifest create`` + ``docker manifest push``.

Starts Debian's ``docker-registry`` on a free loopback port (its own config and storage, foreign
layer URLs allowed), writes a 5-line x 3-release versions.json (28 shared tags), and puts the 15
per-release images into the registry through its API, shaped like Windows images (the test
suite's ``put_windows_image``). Then, in rounds of interleaved pairs, each side on a fresh
repository holding the same images:

1. first run: ``toolkit manifest`` (a subprocess, as a user runs it) against the Docker CLI
   doing the same lists (``docker manifest create --insecure --amend`` then
   ``docker manifest push --insecure --purge`` per shared tag; ``DOCKER_CONFIG`` is a temporary
   directory, nothing leaves loopback). Both results are read back and compared: same entries,
   same platforms. Target: toolkit <= 0.5x the CLI's time.
2. no-op re-run of the whole matrix, as the command and in process. Target: < 0.5 s.
3. requests per shared tag on the first run and on the no-op (the toolkit's own count, checked
   against the registry's access log count through a proxy-free run).

Usage: ``python bench/publish.py [--rounds N] [--json PATH]``. Needs docker-registry and the
docker CLI; no root, no engine.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.docker import engines as eng  # noqa: E402
from tests.docker.registries import put_windows_image  # noqa: E402
from toolkit.matrix import Build, build_matrix  # noqa: E402
from toolkit.publish import UNCHANGED, plan_shared_tags, publish_lists  # noqa: E402
from toolkit.registry import RegistryClient  # noqa: E402
from toolkit.versions import load_versions  # noqa: E402

GET_PIP = {
    "url": "https://github.com/pypa/get-pip/raw/309a56c5fd94bd1134053a541cb4657a4e47e09d/get-pip.py",
    "sha256": "57e3643ff19f018f8a00dfaa6b7e4620e3c1a7a2171fd218425366ec006b3bfe",
}
LINES = {"3.8-rc": "3.8.0rc1", "3.7": "3.7.4", "3.6": "3.6.9", "3.5": "3.5.7", "2.7": "2.7.16"}
RELEASES = ("1809", "1803", "ltsc2016")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_registry(root: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    address = f"127.0.0.1:{port}"
    config = root / "config.yml"
    config.write_text(
        "version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\n"
        f"storage:\n  filesystem:\n    rootdirectory: {root / 'data'}\n"
        f"http:\n  addr: {address}\n"
        "validation:\n  manifests:\n    urls:\n      allow:\n        - ^https?://\n"
    )
    process = subprocess.Popen(
        ["docker-registry", "serve", str(config)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        stdin=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            with RegistryClient(address) as client:
                client.ping()
            return process, address
        except Exception:
            time.sleep(0.05)
    process.kill()
    sys.exit("bench: docker-registry did not start")


def write_versions(path: Path) -> list[Build]:
    data = {
        name: {
            "version": version,
            "pip": {"version": "19.2.3"},
            "get-pip": GET_PIP,
            "variants": [f"windows/windowsservercore-{r}" for r in RELEASES],
        }
        for name, version in LINES.items()
    }
    path.write_text(json.dumps(data, indent=2) + "\n")
    return build_matrix(load_versions(path))


def seed(address: str, repository: str, builds: list[Build]) -> None:
    with RegistryClient(address, actions="pull,push") as client:
        for build in builds:
            put_windows_image(client, repository, build.tags[0], build.release.key)


def toolkit_manifest(address: str, repository: str, versions: Path) -> tuple[float, dict[str, Any]]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TOOLKIT_")}
    env["PYTHONPATH"] = str(REPO)
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "toolkit", "manifest", "--repo", f"{address}/{repository}",
         "--versions", str(versions), "--json"],
        capture_output=True, text=True, env=env, check=False,
    )  # fmt: skip
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        sys.exit(f"bench: toolkit manifest failed:\n{done.stderr}")
    return elapsed, json.loads(done.stdout)


def cli_manifest(
    docker: str, address: str, repository: str, builds: list[Build], config: Path
) -> float:
    env = {**os.environ, "DOCKER_CONFIG": str(config)}
    env.pop("DOCKER_HOST", None)
    started = time.perf_counter()
    for shared in plan_shared_tags(builds):
        name = f"{address}/{repository}:{shared.tag}"
        members = [f"{address}/{repository}:{m.tag}" for m in shared.members]
        for args in (
            ["manifest", "create", "--insecure", "--amend", name, *members],
            ["manifest", "push", "--insecure", "--purge", name],
        ):
            done = subprocess.run(
                [docker, *args], capture_output=True, text=True, env=env, check=False
            )
            if done.returncode != 0:
                sys.exit(f"bench: docker {' '.join(args[:2])} failed: {done.stderr.strip()}")
    return time.perf_counter() - started


def entries(address: str, repository: str, builds: list[Build]) -> dict[str, list[tuple[str, str]]]:
    out = {}
    with RegistryClient(address) as client:
        for shared in plan_shared_tags(builds):
            document = client.get_manifest(repository, shared.tag).json()
            out[shared.tag] = sorted(
                (e["digest"], json.dumps(e["platform"], sort_keys=True))
                for e in document["manifests"]
            )
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    args = parser.parse_args()
    if shutil.which("docker-registry") is None:
        sys.exit(
            "bench: docker-registry is not installed (Debian: apt-get install docker-registry)"
        )
    docker = eng.docker_cli()
    base = Path(tempfile.mkdtemp(prefix="tkp-", dir="/tmp"))
    process, address = start_registry(base)
    try:
        versions = base / "versions.json"
        builds = write_versions(versions)
        tags = len(plan_shared_tags(builds))
        tk_times, cli_times, noop_cmd, noop_in = [], [], [], []
        first_requests = noop_requests = 0
        for n in range(args.rounds):
            tk_repo, cli_repo = f"r{n}-tk/python", f"r{n}-cli/python"
            seed(address, tk_repo, builds)
            seed(address, cli_repo, builds)
            # Interleave, and alternate which side goes first.
            order = ("tk", "cli") if n % 2 == 0 else ("cli", "tk")
            for side in order:
                if side == "tk":
                    elapsed, document = toolkit_manifest(address, tk_repo, versions)
                    tk_times.append(elapsed)
                    first_requests = document["requests"]
                else:
                    config = base / f"docker-config-{n}"
                    config.mkdir()
                    cli_times.append(cli_manifest(docker, address, cli_repo, builds, config))
            mine, theirs = entries(address, tk_repo, builds), entries(address, cli_repo, builds)
            if mine != theirs:
                sys.exit("bench: the toolkit's lists differ from the Docker CLI's")
            elapsed, document = toolkit_manifest(address, tk_repo, versions)
            if {r["result"] for r in document["results"]} != {UNCHANGED}:
                sys.exit("bench: the re-run was not a no-op")
            noop_cmd.append(elapsed)
            noop_requests = document["requests"]
            with RegistryClient(address, actions="pull,push") as client:
                started = time.perf_counter()
                publish_lists(client, tk_repo, plan_shared_tags(builds))
                noop_in.append(time.perf_counter() - started)
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        started = time.perf_counter()
        subprocess.run([sys.executable, "-c", "import toolkit.cli"], env=env, check=True)
        python_start = time.perf_counter() - started
        ratios = [t / c for t, c in zip(tk_times, cli_times, strict=True)]
        figures = {
            "matrix": f"{len(LINES)} lines x {len(RELEASES)} releases",
            "shared_tags": tags,
            "rounds": args.rounds,
            "toolkit_s": [round(t, 3) for t in tk_times],
            "docker_cli_s": [round(t, 3) for t in cli_times],
            "ratio_median": round(statistics.median(ratios), 3),
            "noop_command_s": round(statistics.median(noop_cmd), 3),
            "noop_in_process_s": round(statistics.median(noop_in), 3),
            "python_start_and_cli_import_s": round(python_start, 3),
            "requests_first_run": first_requests,
            "requests_noop": noop_requests,
            "requests_per_tag_first_run": round(first_requests / tags, 2),
            "requests_per_tag_noop": round(noop_requests / tags, 2),
            "cpus": os.cpu_count(),
        }
        print(
            f"1. {tags} shared tags ({figures['matrix']}), {args.rounds} rounds: toolkit "
            f"{figures['toolkit_s']} s, docker manifest create+push {figures['docker_cli_s']} s; "
            f"ratio median {figures['ratio_median']} (target <= 0.5)"
        )
        print(
            f"2. no-op re-run: as the command {figures['noop_command_s']} s (Python start + CLI "
            f"import {figures['python_start_and_cli_import_s']} s), in process "
            f"{figures['noop_in_process_s']} s (target < 0.5 s)"
        )
        print(
            f"3. requests: first run {first_requests} ({figures['requests_per_tag_first_run']} per "
            f"shared tag), no-op {noop_requests} ({figures['requests_per_tag_noop']} per shared tag)"
        )
        if args.json:
            args.json.write_text(json.dumps(figures, indent=2) + "\n")
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        shutil.rmtree(base, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
