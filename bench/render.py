"""Benchmark: `toolkit render` and `toolkit --help` against the imports they cannot avoid.

Renders a matrix like today's versions.json, larger: 10 lines, half with the 2019 recipe (pip
pinned with get-pip), half with the 2026 one (pip from the installer), each on the 5 Server Core
releases and the 3 Nano Server ones (80 Dockerfiles, 30 of them multi-stage; generated data in a
temporary directory), and times, in the same run:
  render : the whole `python -m toolkit render` process   vs  `python -c "import typer, jinja2"`
  --help : the whole `python -m toolkit --help` process   vs  `python -c "import typer"`
Each figure is the median of several interleaved runs. Targets: ratios <= 1.3 for the usual render
(the tree exists and every one of the 80 files changes, as after a bump), a no-op `--check`, and
`--help`; rendering into an empty directory is reported beside them. The figures held to the
target are taken with the work tree in memory (/dev/shm), so they measure the toolkit rather than
the disk; the same cases on disk are printed after them, for the cost of 80 atomic replaces
there. The render figure is the usual case (the tree exists, every one of the 80 files changes,
as after a bump); rendering into an empty directory (creating some 90 directories) and a no-op
`--check` are reported beside it.

A second table weighs Jinja's sandbox (toolkit.render uses ImmutableSandboxedEnvironment):
the same 80 Dockerfiles rendered in this process with a fresh sandboxed environment and with a
fresh plain one (no bytecode cache: templates compiled each time, the worst case), rounds
interleaved; and the import of jinja2.sandbox on top of jinja2's, in fresh processes.

With ``--only callgrind`` (valgrind installed), the instructions one `toolkit render --check`
of the matrix executes, with the sandbox and with a plain Environment.

Usage: python bench/render.py [--runs N] [--only render,sandbox,callgrind]
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
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
SHA = "57e3643ff19f018f8a00dfaa6b7e4620e3c1a7a2171fd218425366ec006b3bfe"
URL = "https://github.com/pypa/get-pip/raw/309a56c5fd94bd1134053a541cb4657a4e47e09d/get-pip.py"
RELEASES = ("ltsc2016", "1803", "1809", "ltsc2022", "ltsc2025")
NANOSERVER = ("1809", "ltsc2022", "ltsc2025")
VARIANTS = [
    *(f"windows/windowsservercore-{r}" for r in RELEASES),
    *(f"windows/nanoserver-{r}" for r in NANOSERVER),
]
EXPECTED = 10 * len(VARIANTS)


def matrix_data(pip: str = "24.0") -> dict[str, object]:
    """3.5-3.9 pin pip with get-pip, 3.10-3.14 take it from the installer. Changing ``pip``
    changes every file: the pin of the first, the installer checksum of the others."""
    lines: dict[str, object] = {}
    for minor in range(5, 15):
        line: dict[str, object] = {"version": f"3.{minor}.1"}
        if minor < 10:
            line["pip"] = {"version": pip}
            line["get-pip"] = {"url": URL, "sha256": SHA}
        else:
            digit = "0" if pip == "24.0" else "1"
            line["checksums"] = {"windows": {"sha256": digit * 64}}
        line["variants"] = VARIANTS
        lines[f"3.{minor}"] = line
    return lines


def timed(command: list[str], cwd: Path, env: dict[str, str], before: Callable[[], None]) -> float:
    before()
    start = time.perf_counter()
    subprocess.run(
        command, cwd=cwd, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    return time.perf_counter() - start


Case = tuple[list[str], Callable[[], None]]


def medians(runs: int, cases: dict[str, Case], cwd: Path, env: dict[str, str]) -> dict[str, float]:
    """The median time of each case, the cases interleaved round by round so that a slower
    moment of the machine weighs on all of them alike rather than on one."""
    times: dict[str, list[float]] = {name: [] for name in cases}
    for round_ in range(runs + 1):
        for name, (command, before) in cases.items():
            elapsed = timed(command, cwd, env, before)
            if round_:  # the first round warms the page cache and .pyc files
                times[name].append(elapsed)
    return {name: statistics.median(values) for name, values in times.items()}


def measure(runs: int, parent: str | None) -> tuple[dict[str, float], int]:
    """Median seconds of each case with the work tree under ``parent``; and the file count."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    env.pop("TOOLKIT_DEBUG", None)
    # An installed toolkit runs from .pyc files (pip compiles them); let the warm-up round write
    # them even where the shell sets PYTHONDONTWRITEBYTECODE, or every run would compile sources.
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    py = sys.executable
    render_cmd = [py, "-m", "toolkit", "render"]
    with tempfile.TemporaryDirectory(dir=parent) as tmp:
        work = Path(tmp)
        (work / "versions.json").write_text(json.dumps(matrix_data(), indent=2) + "\n")
        shutil.copytree(REPO / "templates", work / "templates")
        pips = iter(["24.1", "24.0"] * (runs + 2))

        def every_file_changes() -> None:
            # the usual case after a bump: the tree exists and every Dockerfile changes
            data = matrix_data(next(pips))
            (work / "versions.json").write_text(json.dumps(data, indent=2) + "\n")

        def fresh_out() -> None:
            shutil.rmtree(work / "dockerfiles", ignore_errors=True)

        def nothing() -> None:
            pass

        # order matters within a round: "fresh" leaves a tree that "changes" then rewrites,
        # and "check" runs on the tree "changes" left (up to date)
        cases: dict[str, Case] = {
            "fresh": (render_cmd, fresh_out),
            "changes": (render_cmd, every_file_changes),
            "check": ([*render_cmd, "--check"], nothing),
            "render_base": ([py, "-c", "import typer, jinja2"], nothing),
            "help": ([py, "-m", "toolkit", "--help"], nothing),
            "help_base": ([py, "-c", "import typer"], nothing),
        }
        found = medians(runs, cases, work, env)
        return found, len(list((work / "dockerfiles").rglob("Dockerfile")))


def report(title: str, m: dict[str, float], count: int, held: bool) -> bool:
    """Print one table; True when a figure held to the target misses it."""
    print(title)
    jinja_base = 'python -c "import typer, jinja2"'
    rows = [
        (f"render, {count} files change", m["changes"], jinja_base, m["render_base"], held),
        ("render --check, no change", m["check"], jinja_base, m["render_base"], held),
        ("render into an empty dir", m["fresh"], jinja_base, m["render_base"], False),
        ("toolkit --help", m["help"], 'python -c "import typer"', m["help_base"], held),
    ]
    failed = False
    for name, value, base_name, base, is_held in rows:
        ratio = value / base
        verdict = ("ok" if ratio <= 1.3 else "OVER") if is_held else "(reported)"
        failed |= is_held and ratio > 1.3
        print(
            f"  {name:28s} {value * 1000:7.1f} ms   {base_name:33s} {base * 1000:7.1f} ms"
            f"   ratio {ratio:.2f}  target <= 1.30 {verdict}"
        )
    return failed


def sandbox_cost(runs: int) -> None:
    """Print the cost of the sandbox: rendering in process, and its import in fresh processes."""
    import jinja2

    sys.path.insert(0, str(REPO))
    from toolkit.matrix import build_matrix
    from toolkit.render import TemplateLoader, render_dockerfile
    from toolkit.versions import parse_versions

    builds = build_matrix(parse_versions(json.dumps(matrix_data()), Path("versions.json")))
    templates = REPO / "templates"

    from jinja2.sandbox import ImmutableSandboxedEnvironment

    options: dict[str, Any] = {
        "loader": TemplateLoader(templates),
        "undefined": jinja2.StrictUndefined,
        "autoescape": False,
        "keep_trailing_newline": True,
        "newline_sequence": "\n",
        "auto_reload": False,
    }

    def plain() -> jinja2.Environment:
        return jinja2.Environment(**options)

    def sandboxed() -> jinja2.Environment:
        return ImmutableSandboxedEnvironment(**options)

    times: dict[str, list[float]] = {"sandboxed": [], "plain": []}
    outputs: dict[str, list[str]] = {}
    for round_ in range(runs + 1):
        for name, make in (("sandboxed", sandboxed), ("plain", plain)):
            start = time.perf_counter()
            env = make()
            outputs[name] = [render_dockerfile(env, b) for b in builds]
            if round_:
                times[name].append(time.perf_counter() - start)
    assert outputs["sandboxed"] == outputs["plain"], "the sandbox must not change the output"
    sandboxed_ms = statistics.median(times["sandboxed"]) * 1000
    plain_ms = statistics.median(times["plain"]) * 1000
    print(f"Jinja's sandbox, {len(builds)} Dockerfiles rendered in process (median of {runs}):")
    print(f"  ImmutableSandboxedEnvironment {sandboxed_ms:7.2f} ms")
    print(
        f"  Environment                   {plain_ms:7.2f} ms   ratio {sandboxed_ms / plain_ms:.2f}"
    )
    imports = []
    for _ in range(runs):
        proc = subprocess.run(
            [sys.executable, "-X", "importtime", "-c", "import jinja2, jinja2.sandbox"],
            capture_output=True,
            text=True,
            check=True,
        )
        line = next(x for x in proc.stderr.splitlines() if x.rstrip().endswith("| jinja2.sandbox"))
        imports.append(int(line.split("|")[1]))  # cumulative microseconds
    print(f"  import of jinja2.sandbox after jinja2: {statistics.median(imports) / 1000:.2f} ms")


def callgrind_cost() -> None:
    """Instructions (callgrind's Ir) of one `python -m toolkit render --check` over the matrix,
    with the sandbox and with a copy of the toolkit whose render.py uses a plain Environment
    (and bytecode cache files of its own: code compiled for a plain Environment must never be
    loaded by the sandboxed one): a figure a loaded machine cannot blur."""
    if shutil.which("valgrind") is None:
        print("callgrind: valgrind is not installed (apt-get install valgrind); skipped")
        return
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        (work / "versions.json").write_text(json.dumps(matrix_data(), indent=2) + "\n")
        shutil.copytree(REPO / "templates", work / "templates")
        plain = work / "plain"
        shutil.copytree(REPO / "toolkit", plain / "toolkit")
        render = plain / "toolkit" / "render.py"
        text = render.read_text()
        assert "return ImmutableSandboxedEnvironment(" in text
        assert '"__toolkit_sandboxed_%s.cache"' in text
        text = text.replace("return ImmutableSandboxedEnvironment(", "return jinja2.Environment(")
        render.write_text(text.replace("__toolkit_sandboxed_", "__toolkit_bench_plain_"))
        # .pyc files written (as an install has them); one hash seed: the counts repeat exactly
        env = {**os.environ, "PYTHONPATH": str(REPO), "PYTHONHASHSEED": "0"}
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        subprocess.run(
            [sys.executable, "-m", "toolkit", "render"],
            cwd=work,
            env=env,
            check=True,
            capture_output=True,
        )
        counts = {}
        for name, path in (("sandboxed", REPO), ("plain", plain)):
            run_env = {**env, "PYTHONPATH": str(path)}
            command = [sys.executable, "-m", "toolkit", "render", "--check"]
            subprocess.run(command, cwd=work, env=run_env, check=True, capture_output=True)
            out = work / f"callgrind.{name}"
            subprocess.run(
                ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", *command],
                cwd=work,
                env=run_env,
                check=True,
                capture_output=True,
            )
            totals = [
                x for x in out.read_text().splitlines() if x.startswith(("summary:", "totals:"))
            ]
            counts[name] = int(totals[0].split()[1])
    print(f"callgrind, python -m toolkit render --check of {EXPECTED} Dockerfiles (instructions):")
    print(
        f"  sandboxed {counts['sandboxed']:,}   plain {counts['plain']:,}   ratio "
        f"{counts['sandboxed'] / counts['plain']:.4f}"
    )


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--only", default="render,sandbox", help="render,sandbox,callgrind")
    args = parser.parse_args()
    only = set(args.only.split(","))
    if "sandbox" in only:
        sandbox_cost(args.runs)
    if "callgrind" in only:
        callgrind_cost()
    if "render" not in only:
        return 0

    failed = False
    shm = Path("/dev/shm")
    if shm.is_dir() and os.access(shm, os.W_OK):
        m, count = measure(args.runs, str(shm))
        failed |= count != EXPECTED
        failed |= report("work tree in memory (/dev/shm): the toolkit's own cost", m, count, True)
        m, count = measure(args.runs, None)
        report(
            f"work tree on disk ({tempfile.gettempdir()}): the same plus the disk's",
            m,
            count,
            False,
        )
    else:
        m, count = measure(args.runs, None)
        failed |= count != EXPECTED
        failed |= report(f"work tree on disk ({tempfile.gettempdir()})", m, count, True)
    if count != EXPECTED:
        print(f"expected {EXPECTED} Dockerfiles, rendered {count}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
