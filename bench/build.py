"""Benchmarks of ``toolkit build`` on real Docker Engines (run as root: ``python bench/build.py``).

Starts three dockerd (Debian docker.io) in a network namespace with only ``lo``, gives each the
stand-in base images the test suite uses (tests/docker/engines.py), then measures:

1. overhead: builds on one engine in pairs, the toolkit building one context and the
   ``docker build`` CLI (classic builder, ``DOCKER_BUILDKIT=0``) another copy of it, with the same
   labels, tags, network and cleanup flags, the order alternating pair by pair. Every context
   carries a nonce so no step comes from the cache; the toolkit runs without ``--prune`` (the
   contexts are one target, and pruning would remove each previous image: work the CLI side
   does not do). Target: ratio <= 1.05 (the median of the pairs' ratios).
2. no-op re-run: a finished 50-target matrix built again (every target unchanged), in process
   and as the ``toolkit build`` command (wall clock and CPU time; ``--profile PATH`` also writes
   a cProfile of one command run). Target: <= 1 s.
3. parallelism: three targets on three engines at once, against the same work one engine after
   another.

Nothing is pulled (``--pull never``, network ``none``); nothing leaves loopback.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.docker import engines as eng  # noqa: E402
from toolkit.builds import BuildWork  # noqa: E402
from toolkit.driver import (  # noqa: E402
    HASH_LABEL,
    BuildJob,
    BuildSettings,
    full_tags,
    oci_labels,
)
from toolkit.matrix import Build, build_matrix  # noqa: E402
from toolkit.progress import PlainReporter  # noqa: E402
from toolkit.render import apply_render, plan_render, template_environment  # noqa: E402
from toolkit.results import BuildObserver, BuildResult, Outcome  # noqa: E402
from toolkit.runner import RunSummary, run_targets  # noqa: E402
from toolkit.versions import load_versions  # noqa: E402

RELEASES = ("ltsc2016", "1803", "1809")
GET_PIP = {
    "url": "https://github.com/pypa/get-pip/raw/309a56c5fd94bd1134053a541cb4657a4e47e09d/get-pip.py",
    "sha256": "57e3643ff19f018f8a00dfaa6b7e4620e3c1a7a2171fd218425366ec006b3bfe",
}


def run_builds(
    jobs: list[BuildJob], settings: BuildSettings, observer: BuildObserver
) -> RunSummary[BuildResult]:
    """What `toolkit build --no-verify` runs once the targets are placed."""
    return run_targets(jobs, BuildWork(settings, observer, None, jobs))


def render_matrix(root: Path, lines: dict[str, Sequence[str]]) -> list[Build]:
    """versions.json with ``{line: releases}`` (version X.Y.0), rendered under ``root``."""
    data = {
        name: {
            "version": f"{name}.0",
            "pip": {"version": eng.standin_pip_version() or "23.2.1"},
            "get-pip": GET_PIP,
            "variants": [f"windows/windowsservercore-{r}" for r in releases],
        }
        for name, releases in lines.items()
    }
    root.mkdir(parents=True, exist_ok=True)
    (root / "versions.json").write_text(json.dumps(data, indent=2) + "\n")
    builds = build_matrix(load_versions(root / "versions.json"))
    env = template_environment(REPO / "templates")
    apply_render(root / "dockerfiles", plan_render(env, root / "dockerfiles", builds, builds))
    return builds


def add_nonce(context: Path, nonce: str) -> None:
    """A unique ENV right after SHELL: every later step misses the cache."""
    dockerfile = context / "Dockerfile"
    text = dockerfile.read_text()
    head, sep, tail = text.partition("\nENV ")
    dockerfile.write_text(f"{head}\nENV BENCH_NONCE {nonce}{sep}{tail}")


def settings(logs: Path, **kw: Any) -> BuildSettings:
    return BuildSettings(
        repo="bench/python", pull="never", network_mode="none", logs=logs, timeout=600, **kw
    )


def quiet() -> PlainReporter:
    return PlainReporter(io.StringIO())


def jobs_for(builds: Sequence[Build], root: Path, clients: dict[str, Any]) -> list[BuildJob]:
    return [
        BuildJob(
            build=b,
            context=root / "dockerfiles" / b.directory,
            host=b.release.key,
            client=clients[b.release.key],
            os_type="linux",
        )
        for b in builds
    ]


def check(summary_results: Sequence[Any], wanted: Outcome) -> None:
    bad = [r for r in summary_results if r.outcome is not wanted]
    if bad:
        raise SystemExit(
            f"bench: expected {wanted.value}: {[(r.build_id, r.message) for r in bad]}"
        )


# -- 1: overhead against the docker CLI ----------------------------------------------------------


def bench_overhead(
    work: Path, engine: eng.Engine, client: Any, contexts: int, rounds: int
) -> dict[str, Any]:
    """``contexts * rounds`` pairs, one build each: the toolkit building one context, the CLI
    building another, the order alternating pair by pair so that a slower moment of the engine
    weighs on both alike. Per round, the sums of its pairs are reported."""
    docker = eng.docker_cli()
    env = {**os.environ, "DOCKER_HOST": engine.url, "DOCKER_BUILDKIT": "0"}
    template = render_matrix(work / "template", {"3.11": ["1809"]})[0]
    labels = {
        **oci_labels(template, settings(work), template.release.base_image),
        HASH_LABEL: "0" * 64,
    }
    tags = full_tags(template, "benchcli/python")
    count = 0

    def fresh_context(tool: str) -> Path:
        nonlocal count
        count += 1
        context = work / tool / f"c{count}"
        shutil.copytree(work / "template" / "dockerfiles" / template.directory, context)
        add_nonce(context, f"{tool}-{count}-{time.time_ns()}")
        return context

    def toolkit_build() -> float:
        context = fresh_context("toolkit")
        job = BuildJob(build=template, context=context, host="one", client=client, os_type="linux")
        started = time.perf_counter()
        # no prune: every context is the same target, so each build would remove the image of
        # the one before, work the CLI side does not do (prune's cost is a question of its own)
        summary = run_builds([job], settings(work / "logs", prune=False), quiet())
        elapsed = time.perf_counter() - started
        check(summary.results, Outcome.BUILT)
        return elapsed

    def cli_build() -> float:
        context = fresh_context("cli")
        argv = [docker, "build", "--pull=false", "--network", "none", "--rm", "--force-rm", "-q"]
        for tag in tags:
            argv += ["-t", tag]
        for key, value in labels.items():
            argv += ["--label", f"{key}={value}"]
        started = time.perf_counter()
        subprocess.run([*argv, str(context)], env=env, check=True, capture_output=True)
        return time.perf_counter() - started

    toolkit_times, cli_times, ratios = [], [], []
    for round_no in range(rounds):
        toolkit_round = cli_round = 0.0
        for i in range(contexts):
            if (round_no * contexts + i) % 2 == 0:
                t, c = toolkit_build(), cli_build()
            else:
                c, t = cli_build(), toolkit_build()
            toolkit_round += t
            cli_round += c
            ratios.append(t / c)
        toolkit_times.append(toolkit_round)
        cli_times.append(cli_round)
    return {
        "contexts": contexts,
        "rounds": rounds,
        "toolkit_s": [round(t, 3) for t in toolkit_times],
        "docker_cli_s": [round(t, 3) for t in cli_times],
        "ratio_median": round(statistics.median(ratios), 3),
        "ratio_total": round(sum(toolkit_times) / sum(cli_times), 3),
    }


# -- 2: no-op re-run of a 50-target matrix -------------------------------------------------------


def bench_noop(
    work: Path,
    engines: dict[str, eng.Engine],
    clients: dict[str, Any],
    profile: Path | None = None,
) -> dict[str, Any]:
    lines: dict[str, Sequence[str]] = {f"3.{i}": RELEASES for i in range(16)}
    lines["3.16"] = RELEASES[:2]
    root = work / "matrix50"
    builds = render_matrix(root, lines)
    assert len(builds) == 50
    jobs = jobs_for(builds, root, clients)
    started = time.perf_counter()
    first = run_builds(jobs, settings(root / "logs"), quiet())
    first_s = time.perf_counter() - started
    check(first.results, Outcome.BUILT)

    in_process = []
    for _ in range(3):
        started = time.perf_counter()
        again = run_builds(jobs, settings(root / "logs"), quiet())
        in_process.append(time.perf_counter() - started)
        check(again.results, Outcome.SKIPPED)

    hosts = "\n".join(f'[hosts.{r}]\nurl = "{e.url}"\n' for r, e in engines.items())
    (root / "hosts.toml").write_text(hosts)
    argv = [sys.executable, "-m", "toolkit", "build", "--no-preflight", "--hosts", "hosts.toml"]
    argv += ["--pull", "never", "--network", "none", "--repo", "bench/python", "--no-verify"]
    argv += ["--report", "noop.json", "--templates", str(REPO / "templates")]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TOOLKIT_", "GITHUB_"))}
    env["PYTHONPATH"] = str(REPO)
    # As after any first run (or a pip install): the toolkit's bytecode is cached. With
    # PYTHONDONTWRITEBYTECODE set (some sandboxes set it), every run would compile the toolkit's
    # modules from source again, some 12% of the command's instructions (issue 13).
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    subprocess.run(argv, cwd=root, env=env, check=True, capture_output=True)  # warm-up
    command, command_cpu = [], []
    for _ in range(3):
        cpu = _children_cpu()
        started = time.perf_counter()
        subprocess.run(argv, cwd=root, env=env, check=True, capture_output=True)
        command.append(time.perf_counter() - started)
        command_cpu.append(_children_cpu() - cpu)
        report = json.loads((root / "noop.json").read_text())
        if {r["result"] for r in report["results"]} != {"skipped"}:
            raise SystemExit("bench: the command re-run did not skip every target")
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", "import toolkit.cli"], env=env, check=True)
    python_start = time.perf_counter() - started
    if profile is not None:
        # cProfile of the main thread (imports, planning, the drift check, the summary); the
        # per-target work runs in the runner's threads and shows as the wait in run_targets.
        subprocess.run(
            [sys.executable, "-m", "cProfile", "-o", str(profile), *argv[1:]],
            cwd=root,
            env=env,
            check=True,
            capture_output=True,
        )
    return {
        "targets": len(builds),
        "first_build_s": round(first_s, 2),
        "noop_in_process_s": [round(t, 3) for t in in_process],
        "noop_command_s": [round(t, 3) for t in command],
        "noop_command_cpu_s": [round(t, 3) for t in command_cpu],
        "python_start_and_cli_import_s": round(python_start, 3),
    }


def _children_cpu() -> float:
    """User and system CPU seconds of the finished child processes: less noisy than the wall
    clock on a machine others use."""
    import resource

    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


# -- 3: three engines in parallel against one after another --------------------------------------


def bench_parallel(work: Path, clients: dict[str, Any]) -> dict[str, Any]:
    def fresh(name: str) -> tuple[Path, list[Build]]:
        root = work / name
        builds = render_matrix(root, {"3.11": RELEASES})
        for b in builds:
            add_nonce(root / "dockerfiles" / b.directory, f"{name}-{time.time_ns()}")
        return root, builds

    root, builds = fresh("parallel")
    started = time.perf_counter()
    summary = run_builds(jobs_for(builds, root, clients), settings(root / "logs"), quiet())
    parallel_s = time.perf_counter() - started
    check(summary.results, Outcome.BUILT)

    root, builds = fresh("serial")
    started = time.perf_counter()
    for job in jobs_for(builds, root, clients):
        check(run_builds([job], settings(root / "logs"), quiet()).results, Outcome.BUILT)
    serial_s = time.perf_counter() - started
    return {
        "targets": len(builds),
        "parallel_s": round(parallel_s, 3),
        "one_after_another_s": round(serial_s, 3),
        "speedup": round(serial_s / parallel_s, 2),
        "cpus": os.cpu_count(),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--contexts", type=int, default=6, help="contexts in the overhead bench")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of the overhead bench")
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    parser.add_argument(
        "--profile",
        type=Path,
        help="noop: also profile one command run with cProfile into this file (pstats)",
    )
    parser.add_argument(
        "--only",
        default="overhead,parallel,noop",
        help="comma-separated parts to run: overhead, parallel, noop",
    )
    args = parser.parse_args()
    reason = eng.skip_reason()
    if reason is not None:
        sys.exit(f"bench: {reason}")

    base = Path(tempfile.mkdtemp(prefix="tkb-", dir="/tmp"))
    netns = eng.Netns(f"tk-bench-{os.getpid()}")
    netns.create()
    engines: dict[str, eng.Engine] = {}
    clients: dict[str, Any] = {}
    figures: dict[str, Any] = {}
    try:
        started = time.perf_counter()
        for release in RELEASES:
            engines[release] = eng.start_engine(
                name=release, release=release, root=base / f"e{release}", netns=netns
            )
        clients = {r: e.client() for r, e in engines.items()}
        rootfs = eng.standin_rootfs(base / "standin-rootfs.tar")
        with ThreadPoolExecutor(max_workers=3) as pool:
            list(pool.map(lambda c: eng.load_standins(c, rootfs, RELEASES), clients.values()))
        print(f"setup: 3 engines with stand-ins in {time.perf_counter() - started:.1f}s")

        work = base / "work"
        parts = set(args.only.split(","))
        if "overhead" in parts:
            figures["overhead"] = bench_overhead(
                work / "overhead", engines["1809"], clients["1809"], args.contexts, args.rounds
            )
            o = figures["overhead"]
            print(
                f"1. {o['contexts']} contexts x {o['rounds']} rounds on one engine: toolkit "
                f"{o['toolkit_s']} s, docker build CLI {o['docker_cli_s']} s; ratio median "
                f"{o['ratio_median']}, total {o['ratio_total']} (target <= 1.05)"
            )
        if "parallel" in parts:
            figures["parallel"] = bench_parallel(work / "parallel", clients)
            p = figures["parallel"]
            print(
                f"3. {p['targets']} targets: 3 engines in parallel {p['parallel_s']} s, one "
                f"after another {p['one_after_another_s']} s, speedup {p['speedup']}x on "
                f"{p['cpus']} CPUs"
            )
        if "noop" in parts:
            figures["noop"] = bench_noop(work / "noop", engines, clients, args.profile)
            n = figures["noop"]
            print(
                f"2. no-op re-run of a {n['targets']}-target matrix (first build "
                f"{n['first_build_s']} s): in process {n['noop_in_process_s']} s, as the "
                f"command {n['noop_command_s']} s, CPU {n['noop_command_cpu_s']} s (of which "
                f"Python start + CLI import {n['python_start_and_cli_import_s']} s); "
                "target <= 1 s"
            )
            if args.profile is not None:
                import pstats

                print(f"   profile of one command run: {args.profile}")
                pstats.Stats(str(args.profile)).sort_stats("cumulative").print_stats(15)
        if args.json:
            args.json.write_text(json.dumps(figures, indent=2) + "\n")
    finally:
        for client in clients.values():
            client.close()
        for engine in engines.values():
            eng.stop_engine(engine, netns)
        netns.delete()
        shutil.rmtree(base, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
