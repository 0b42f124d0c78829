"""Real faults for tests: immutable files (``chattr +i``), FIFOs, symbolic links.

``immutable`` makes a file or directory immutable for the length of a test and always clears
the flag again (pytest could not delete the temporary directory otherwise). It needs root and a
filesystem with the attribute (ext4, xfs, tmpfs); elsewhere the test is skipped, never passed.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest


def _chattr(flag: str, path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["chattr", flag, str(path)], capture_output=True, text=True, check=False, timeout=30
    )


@pytest.fixture
def immutable() -> Iterator[Callable[[Path], Path]]:
    made: list[Path] = []

    def make(path: Path) -> Path:
        if os.geteuid() != 0 or shutil.which("chattr") is None:
            pytest.skip("chattr +i needs root and e2fsprogs' chattr")
        done = _chattr("+i", path)
        if done.returncode != 0:
            pytest.skip(f"chattr +i is not supported here: {done.stderr.strip()}")
        made.append(path)
        return path

    try:
        yield make
    finally:
        for path in made:
            _chattr("-i", path)


def snapshot(root: Path) -> dict[str, bytes | str]:
    """Every file under ``root`` (bytes) and every symbolic link (its target), by relative path."""
    found: dict[str, bytes | str] = {}
    for path in sorted(root.rglob("*")):
        rel = str(path.relative_to(root))
        if path.is_symlink():
            found[rel] = "-> " + os.readlink(path)
        elif path.is_file():
            found[rel] = path.read_bytes()
    return found


def leftovers(root: Path) -> list[Path]:
    """Staged or backup files a write left behind."""
    return [p for p in root.rglob(".*") if p.name.endswith((".tmp", ".bak"))]
