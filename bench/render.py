"""Benchmark: `toolkit render` and `toolkit --help` against the imports they cannot avoid.

Renders a 10-line x 5-release matrix (50 Dockerfiles, generated data in a temporary directory)
and times, in the same run:
  render : the whole `python -m toolkit render` process   vs  `python -c "import typer, jinja2"`
  --help : the whole `python -m toolkit --help` process   vs  `python -c "import typer"`
Each figure is the median of several runs. Targets: both ratios <= 1.3. The render figure held to
the target is the usual case: the tree exists and every one of the 50 files changes (as after a
bump). A no-op `--check` is held to it too; rendering into an empty directory (creating some 60
directories on disk) is reported beside them. The render figure is the
usual case (the tree exists, every one of the 50 files changes, as after a bump); rendering into
an empty directory (creating some 60 directories) and a no-op `--check` are reported beside it.

Usage: python bench/render.py [--runs N]
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

REPO = Path(__file__).resolve().parent.parent
SHA = "57e3643ff19f018f8a00dfaa6b7e4620e3c1a7a2171fd218425366ec006b3bfe"
URL = "https://github.com/pypa/get-pip/raw/309a56c5fd94bd1134053a541cb4657a4e47e09d/get-pip.py"
RELEASES = ("ltsc2016", "1803", "1809", "ltsc2022", "ltsc2025")


def matrix_data(pip: str = "24.0") -> dict[str, object]:
    lines: dict[str, object] = {}
    for minor in range(5, 15):
        lines[f"3.{minor}"] = {
            "version": f"3.{minor}.1",
            "pip": {"version": pip},
            "get-pip": {"url": URL, "sha256": SHA},
            "variants": [f"windows/windowsservercore-{r}" for r in RELEASES],
        }
    return lines


def timed(command: list[str], cwd: Path, env: dict[str, str], before: Callable[[], None]) -> float:
    before()
    start = time.perf_counter()
    subprocess.run(
        command, cwd=cwd, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    return time.perf_counter() - start


def median_of(
    runs: int, command: list[str], cwd: Path, env: dict[str, str], before: Callable[[], None]
) -> float:
    timed(command, cwd, env, before)  # warm the page cache and .pyc files
    return statistics.median(timed(command, cwd, env, before) for _ in range(runs))


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()

    env = {**os.environ, "PYTHONPATH": str(REPO)}
    env.pop("TOOLKIT_DEBUG", None)
    py = sys.executable
    render_cmd = [py, "-m", "toolkit", "render"]
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        (work / "versions.json").write_text(json.dumps(matrix_data(), indent=2) + "\n")
        shutil.copytree(REPO / "templates", work / "templates")
        pips = iter(["24.1", "24.0"] * (args.runs + 2))

        def every_file_changes() -> None:
            # the usual case after a bump: the tree exists and every Dockerfile changes
            data = matrix_data(next(pips))
            (work / "versions.json").write_text(json.dumps(data, indent=2) + "\n")

        def fresh_out() -> None:
            shutil.rmtree(work / "dockerfiles", ignore_errors=True)

        def nothing() -> None:
            pass

        fresh = median_of(args.runs, render_cmd, work, env, fresh_out)
        count = len(list((work / "dockerfiles").rglob("Dockerfile")))
        render = median_of(args.runs, render_cmd, work, env, every_file_changes)
        check = median_of(args.runs, [*render_cmd, "--check"], work, env, nothing)
        render_base = median_of(args.runs, [py, "-c", "import typer, jinja2"], work, env, nothing)
        helps = median_of(args.runs, [py, "-m", "toolkit", "--help"], work, env, nothing)
        help_base = median_of(args.runs, [py, "-c", "import typer"], work, env, nothing)

    jinja_base = 'python -c "import typer, jinja2"'
    # (name, seconds, baseline name, baseline seconds, held to the target)
    rows = [
        (f"render, {count} files change", render, jinja_base, render_base, True),
        ("render --check, no change", check, jinja_base, render_base, True),
        ("render into an empty dir", fresh, jinja_base, render_base, False),
        ("toolkit --help", helps, 'python -c "import typer"', help_base, True),
    ]
    failed = count != 50
    for name, value, base_name, base, held in rows:
        ratio = value / base
        verdict = ("ok" if ratio <= 1.3 else "OVER") if held else "(reported only)"
        failed |= held and ratio > 1.3
        print(
            f"{name:28s} {value * 1000:7.1f} ms   {base_name:33s} {base * 1000:7.1f} ms   "
            f"ratio {ratio:.2f}  target <= 1.30 {verdict}"
        )
    if count != 50:
        print(f"expected 50 Dockerfiles, rendered {count}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
