"""One build of a target at a time on this machine: a lock file per engine and target.

Two ``toolkit build`` runs of the same target on the same engine (two CI jobs, a maintainer and
a scheduled job) would both build it, both report ``built``, leave the first image dangling and
write one log over the other (issue 13). The second run waits for the first instead, then finds
the image the first one built and skips it (or builds it, if the first one failed).

The lock is an OS file lock (the ``filelock`` library: ``fcntl.flock`` on POSIX, ``msvcrt`` on
Windows), so the operating system releases it when a run dies, however it dies. The files live in
a directory of the user's own (mode 0700 on POSIX) under the system's temporary directory, one
per engine endpoint and build id. Runs on other machines that share an engine are not covered.
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from toolkit.errors import ConfigError

POLL = 0.2
"""Seconds between two tries to take a lock another run holds (and checks for Ctrl-C)."""


def lock_directory() -> Path:
    """The directory of the lock files, created on first use (this user's only, on POSIX)."""
    base = Path(tempfile.gettempdir())
    if os.name != "posix":  # Windows: the temporary directory is already the user's own
        path = base / "windows-python-images-toolkit-locks"
        path.mkdir(exist_ok=True)
        return path
    path = base / f"windows-python-images-toolkit-locks-{os.getuid()}"
    try:
        path.mkdir(mode=0o700, exist_ok=True)
        info = path.lstat()
    except OSError as exc:
        raise ConfigError(
            f"{path}: cannot create the build lock directory: {exc.strerror}",
            hint="check the permissions of the temporary directory (TMPDIR)",
        ) from None
    if not path.is_dir() or path.is_symlink() or info.st_uid != os.getuid():
        raise ConfigError(
            f"{path}: the build lock directory is not a directory of this user",
            hint="remove it, or point TMPDIR elsewhere",
        )
    return path


def lock_path(directory: Path, host: str, build_id: str) -> Path:
    """The lock file of ``build_id`` on the engine ``host`` (named by its endpoint)."""
    endpoint = hashlib.sha256(host.encode()).hexdigest()[:16]
    safe_id = re.sub(r"[^A-Za-z0-9._-]", "_", build_id)
    return directory / f"{safe_id}-{endpoint}.lock"


class TargetLock:
    """The lock of one target on one engine; ``acquire`` waits, ``release`` lets go."""

    def __init__(self, path: Path) -> None:
        from filelock import FileLock

        self.path = path
        self._lock: Any = FileLock(str(path), thread_local=False)

    def acquire(
        self,
        *,
        stop: Callable[[], str | None],
        deadline: float,
        waiting: Callable[[], None],
        clock: Callable[[], float] = time.monotonic,
    ) -> str | None:
        """Take the lock; None once held. While another run holds it, ``waiting`` is called
        once and the wait goes on until ``stop()`` gives a reason (Ctrl-C), returned, or
        ``deadline`` (on ``clock``) passes: then ``"timeout"``."""
        from filelock import Timeout

        told = False
        while True:
            try:
                self._lock.acquire(timeout=0 if not told else POLL, poll_interval=0.05)
                return None
            except Timeout:
                pass
            except OSError as exc:
                raise ConfigError(
                    f"{self.path}: cannot take the build lock: {exc.strerror or exc}",
                    hint="check the permissions of the temporary directory (TMPDIR)",
                ) from None
            if not told:
                told = True
                waiting()
            reason = stop()
            if reason is not None:
                return reason
            if clock() >= deadline:
                return "timeout"

    def release(self) -> None:
        self._lock.release()
