"""Shared test helpers. Tests never read ../shared: the data they need is in tests/fixtures/."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
FIXTURES = Path(__file__).resolve().parent / "fixtures"


@dataclass(frozen=True)
class Result:
    returncode: int
    stdout: str
    stderr: str


def run_toolkit(
    *args: str, cwd: Path, env: dict[str, str] | None = None, timeout: float = 120
) -> Result:
    """Run ``python -m toolkit`` as a user would, with this checkout's package first on the path."""
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("TOOLKIT_")}
    full_env["PYTHONPATH"] = str(REPO)
    # A test run on GitHub Actions must not write annotations or append to the real job summary.
    for name in ("GITHUB_ACTIONS", "GITHUB_STEP_SUMMARY"):
        full_env.pop(name, None)
    if env:
        full_env.update(env)
    proc = subprocess.run(
        [sys.executable, "-m", "toolkit", *args],
        cwd=cwd,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    return Result(proc.returncode, proc.stdout, proc.stderr)


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    """A copy of the repository's data and templates, to run commands in."""
    shutil.copy(REPO / "versions.json", tmp_path / "versions.json")
    shutil.copytree(REPO / "templates", tmp_path / "templates")
    shutil.copytree(REPO / "dockerfiles", tmp_path / "dockerfiles")
    return tmp_path
