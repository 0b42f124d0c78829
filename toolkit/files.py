"""Writing files so that a failure leaves nothing half-written.

Every writer of the toolkit goes through here: rendered Dockerfiles, versions.json, build
reports and JUnit files. A text is first staged in a temporary file beside its target (same
filesystem, so the final rename is atomic), and only when every text of a batch is staged are
the targets replaced.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from toolkit.errors import OutputError


def _create_beside(path: Path) -> tuple[str, int]:
    """A new, exclusively created temporary file next to ``path`` (tempfile's import is slow)."""
    for attempt in range(100):
        tmp = str(path.parent / f".{path.name}.{os.getpid()}.{attempt}.tmp")
        try:
            return tmp, os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            continue
    raise FileExistsError(f"{path.parent}: too many leftover temporary files")


def _stage(path: Path, text: str, *, durable: bool, made: set[Path]) -> Path:
    """Write ``text`` to a temporary file beside ``path`` (same filesystem, so rename is atomic)."""
    try:
        if path.parent not in made:
            path.parent.mkdir(parents=True, exist_ok=True)
            made.add(path.parent)
        tmp, fd = _create_beside(path)
    except OSError as exc:
        raise OutputError(
            f"{path.parent}: cannot write: {exc.strerror}",
            hint="check the directory and its permissions",
        ) from None
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as handle:
            handle.write(text)
            if durable:
                handle.flush()
                os.fsync(handle.fileno())
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        raise OutputError(
            f"{path}: cannot write: {exc.strerror}", hint="check the disk and the directory"
        ) from None
    return Path(tmp)


def write_files(files: Sequence[tuple[Path, str]], *, durable: bool = True) -> None:
    """Replace several files as one step, as far as a filesystem allows.

    Every new text is staged first; only when all are on disk are they renamed over their
    targets. A failure while staging removes the staged files and leaves every target as it was.
    ``durable`` also flushes each file to disk before the rename (worth it for hand-kept data
    such as versions.json; generated Dockerfiles can simply be rendered again).
    """
    staged: list[tuple[Path, Path]] = []
    made: set[Path] = set()
    try:
        for path, text in files:
            staged.append((_stage(path, text, durable=durable, made=made), path))
        for tmp, path in staged:
            try:
                os.replace(tmp, path)
            except OSError as exc:
                raise OutputError(
                    f"{path}: cannot replace: {exc.strerror}", hint="check the directory"
                ) from None
    finally:
        for tmp, _path in staged:
            tmp.unlink(missing_ok=True)


def write_atomic(path: Path, text: str) -> None:
    """Replace ``path`` with ``text`` so readers see the old file or the new one, never half."""
    write_files([(path, text)])
