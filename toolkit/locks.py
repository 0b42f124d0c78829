"""One build of a target at a time on this machine: a lock file per engine and target.

Two ``toolkit build`` runs of the same target on the same engine (two CI jobs, a maintainer and
a scheduled job) would both build it, both report ``built``, leave the first image dangling and
write one log over the other (issue 13). The second run waits for the first instead, then finds
the image the first one built and skips it (or builds it, if the first one failed).

The lock is the operating system's own (``flock`` on POSIX, ``msvcrt.locking`` on Windows) on a
file in a directory of the user's own (mode 0700 on POSIX) under the system's temporary
directory, one file per engine endpoint and build id; the system releases it when a run dies,
however it dies. Runs on other machines that share an engine are not covered.

Not the ``filelock`` library: its 4.x releases cost about 1 ms per acquire and 30 ms to import
(bench/build.py's no-op re-run takes 50 locks and must stay under a second); the two system
calls it would wrap are all that is needed here.
"""

from __future__ import annotations

import errno
import hashlib
import os
import re
import sys
import time
from collections.abc import Callable
from pathlib import Path

from toolkit.errors import ConfigError

POLL = 0.2
"""Seconds between two tries to take a lock another run holds (and checks for Ctrl-C)."""

_BUSY = {errno.EACCES, errno.EAGAIN, errno.EWOULDBLOCK, getattr(errno, "EDEADLOCK", errno.EDEADLK)}


def lock_directory() -> Path:
    """The directory of the lock files, created on first use (this user's only, on POSIX)."""
    import tempfile

    base = Path(tempfile.gettempdir())
    if sys.platform == "win32":  # the temporary directory is already the user's own
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
    if path.is_symlink() or not path.is_dir() or info.st_uid != os.getuid():
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
        self.path = path
        self._fd: int | None = None

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
        fd = self._open()
        told = False
        while True:
            if _try_lock(fd, self.path):
                self._fd = fd
                return None
            if not told:
                told = True
                waiting()
            reason = stop()
            if reason is None and clock() >= deadline:
                reason = "timeout"
            if reason is not None:
                os.close(fd)
                return reason
            time.sleep(POLL)

    def release(self) -> None:
        """Let go (closing the file releases the system's lock)."""
        if self._fd is not None:
            fd, self._fd = self._fd, None
            if sys.platform == "win32":
                import msvcrt

                os.lseek(fd, 0, os.SEEK_SET)
                msvcrt.locking(fd, msvcrt.LK_UNLCK, 1)
            os.close(fd)

    def _open(self) -> int:
        flags = os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
        try:
            return os.open(self.path, flags, 0o600)
        except OSError as exc:
            raise ConfigError(
                f"{self.path}: cannot take the build lock: {exc.strerror or exc}",
                hint="check the permissions of the temporary directory (TMPDIR)",
            ) from None


def _try_lock(fd: int, path: Path) -> bool:
    """One try at the lock of ``fd``, without waiting: True when taken."""
    try:
        if sys.platform == "win32":
            import msvcrt

            os.lseek(fd, 0, os.SEEK_SET)
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
        else:
            import fcntl

            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        if exc.errno in _BUSY:
            return False
        os.close(fd)
        raise ConfigError(
            f"{path}: cannot take the build lock: {exc.strerror or exc}",
            hint="check the file system of the temporary directory (TMPDIR)",
        ) from None
    return True
