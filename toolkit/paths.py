"""What is wrong with a path a user gave, in words: "does not exist", "is a directory", ...

Every option or key that names an input file (``ca``, ``cert``, ``key``, ``DOCKER_CERT_PATH``)
or an output directory (``--logs``) is checked here, so that the message says what the path
really is instead of "does not exist" for a directory, a FIFO or an unreadable file.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

_KINDS = (
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISFIFO, "a FIFO (named pipe)"),
    (stat.S_ISSOCK, "a socket"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
)


def kind_of(mode: int) -> str:
    """What a file of ``mode`` is, in words ("a directory", "a FIFO (named pipe)", ...)."""
    return next((name for test, name in _KINDS if test(mode)), "not a regular file")


def _stat(path: Path) -> os.stat_result | str:
    """The path's status, or why there is none."""
    try:
        return path.stat()
    except FileNotFoundError:
        return "does not exist"
    except NotADirectoryError:
        return "does not exist (a part of it is a file, not a directory)"
    except PermissionError:
        return "cannot be reached (permission denied)"
    except ValueError:  # an embedded NUL character
        return "is not a valid path"
    except OSError as exc:  # a symlink loop, a name too long, ...
        return f"cannot be read ({exc.strerror or exc})"


def file_problem(path: Path) -> str | None:
    """Why ``path`` is not a readable regular file (``is a directory, not a file``), or None."""
    found = _stat(path)
    if isinstance(found, str):
        return found
    if not stat.S_ISREG(found.st_mode):
        return f"is {kind_of(found.st_mode)}, not a file"
    if not os.access(path, os.R_OK):
        return "cannot be read (permission denied)"
    return None


def directory_problem(path: Path) -> str | None:
    """Why ``path`` cannot be (or become) a directory to write into, or None.

    A path that does not exist yet is fine when its nearest existing parent is a directory.
    """
    found = _stat(path)
    if isinstance(found, str):
        if found.startswith("does not exist ("):
            return "cannot be created: a part of the path is a file, not a directory"
        if found != "does not exist":
            return found
        parent = path.parent
        while parent != parent.parent and not parent.exists():
            parent = parent.parent
        if parent.exists() and not parent.is_dir():
            return f"cannot be created: {parent} is a file, not a directory"
        return None
    if not stat.S_ISDIR(found.st_mode):
        kind = "a file" if stat.S_ISREG(found.st_mode) else kind_of(found.st_mode)
        return f"is {kind}, not a directory"
    if not os.access(path, os.W_OK | os.X_OK):
        return "is not writable (permission denied)"
    return None
