"""Reading inputs without hanging, and writing files as one all-or-nothing step.

Reading: every input file of the toolkit (versions.json, templates, hosts.toml, Dockerfiles)
is read through :func:`read_text`. It opens without blocking and accepts only a regular file:
a FIFO would block the open (or the read) forever, a device such as ``/dev/zero`` never ends.

Writing: every writer goes through :func:`write_files` (rendered Dockerfiles, versions.json,
build reports, JUnit files). It is a transaction over several files:

1. every new text is staged in a temporary file beside its target (same directory, so the
   final rename is atomic); a failure here changes no target;
2. targets are then replaced (and files to remove moved aside) one by one, each existing one
   kept first as a backup (a hard link, or a copy where links are not possible);
3. on any failure in step 2 (a file made immutable with ``chattr +i``, a file held open on
   Windows, a full disk) every file already replaced, created or removed is restored from its
   backup, and the error says so;
4. only when every step succeeded are the backups deleted.

Ctrl-C (SIGINT) and SIGTERM arriving during steps 2-4, which take a few renames, are held back
until the step is done (committed, or rolled back) and then delivered: an interrupt never
leaves some files new and others old. During staging they act at once (nothing is changed).

A symbolic link among the targets is written through: its target file is replaced and the link
stays (``versions.json`` may be a link into another directory). Whether a link may be written
through at all is the caller's rule (``toolkit.render`` refuses links below the output tree).
"""

from __future__ import annotations

import contextlib
import os
import signal
import stat
import threading
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from toolkit.errors import OutputError
from toolkit.paths import kind_of

MAX_INPUT_BYTES = 16 * 1024 * 1024
"""No input of the toolkit is near this; a larger file is refused rather than read into memory."""


class UnreadableFile(Exception):
    """``path`` could not be read as text; ``why`` says why in a few words. ``missing`` when
    the file (or a directory on its path) does not exist."""

    def __init__(self, path: Path, why: str, *, missing: bool = False) -> None:
        super().__init__(f"{path}: {why}")
        self.path = path
        self.why = why
        self.missing = missing


def read_bytes(path: Path, *, limit: int = MAX_INPUT_BYTES) -> bytes:
    """The bytes of the regular file ``path``; UnreadableFile for anything else.

    The open never blocks (``O_NONBLOCK``: a FIFO with no writer would block it), and the file
    must be a regular file of at most ``limit`` bytes (checked on the open descriptor, so a file
    swapped for a FIFO after a check cannot slip through).
    """
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)
    flags |= getattr(os, "O_BINARY", 0)
    try:
        fd = os.open(path, flags)
    except OSError as exc:
        missing = isinstance(exc, FileNotFoundError | NotADirectoryError)
        raise UnreadableFile(path, exc.strerror or str(exc), missing=missing) from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise UnreadableFile(path, f"not a regular file: it is {kind_of(info.st_mode)}")
        chunks: list[bytes] = []
        size = 0
        while chunk := os.read(fd, 1 << 16):
            chunks.append(chunk)
            size += len(chunk)
            if size > limit:
                raise UnreadableFile(path, f"larger than {limit} bytes")
    except OSError as exc:
        raise UnreadableFile(path, exc.strerror or str(exc)) from None
    finally:
        os.close(fd)
    return b"".join(chunks)


def read_text(path: Path, *, limit: int = MAX_INPUT_BYTES) -> str:
    """The UTF-8 text of the regular file ``path``, newlines universal (as ``Path.read_text``);
    UnreadableFile for anything else, including bytes that are not UTF-8."""
    data = read_bytes(path, limit=limit)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise UnreadableFile(path, f"not UTF-8 (byte {exc.start})") from None
    return text.replace("\r\n", "\n").replace("\r", "\n")


# --- writing ---------------------------------------------------------------------------------


def _create_beside(
    path: Path, suffix: str, record: Callable[[Path | None], None] = lambda _name: None
) -> tuple[Path, int]:
    """A new, exclusively created file next to ``path`` (tempfile's import is slow).

    ``record`` learns each name before the file is created (and None when that name was
    taken): a Ctrl-C that lands just after the creation, before this returns, must not leave
    a file nobody knows about (the caller tidies what was recorded).
    """
    for attempt in range(100):
        name = path.parent / f".{path.name}.{os.getpid()}.{attempt}.{suffix}"
        record(name)
        try:
            return name, os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            record(None)
            continue
    raise FileExistsError(f"{path.parent}: too many leftover temporary files")


def _free_name_beside(path: Path, suffix: str) -> Iterator[Path]:
    for attempt in range(100):
        yield path.parent / f".{path.name}.{os.getpid()}.{attempt}.{suffix}"


class _Change:
    """One file of a transaction: ``path`` as given, ``target`` the file really changed,
    ``text`` None for a removal. (A plain class: a dataclass costs half a millisecond to
    create, on every start of every command.)"""

    __slots__ = ("applied", "backup", "existed", "path", "staged", "target", "text")

    def __init__(self, *, path: Path, target: Path, text: str | None) -> None:
        self.path = path
        self.target = target
        self.text = text
        self.staged: Path | None = None
        self.backup: Path | None = None
        self.existed = False
        self.applied = False


def _target(path: Path) -> Path:
    """The file a write to ``path`` changes: the final target of a symbolic link, else itself."""
    return Path(os.path.realpath(path)) if os.path.islink(path) else path


def _mkdirs(directory: Path, made: list[Path]) -> None:
    """Create ``directory`` and its missing parents, recording each one created."""
    missing = []
    current = directory
    while not os.path.lexists(current) and current != current.parent:
        missing.append(current)
        current = current.parent
    for path in reversed(missing):
        made.append(path)  # before the mkdir: a Ctrl-C right after it leaves nothing unknown
        try:
            path.mkdir()
        except FileExistsError:
            made.pop()
        except OSError:
            made.pop()
            raise


def _stage(change: _Change, *, durable: bool, made: list[Path]) -> None:
    assert change.text is not None
    path = change.target

    def record(name: Path | None) -> None:
        change.staged = name

    try:
        _mkdirs(path.parent, made)
        _tmp, fd = _create_beside(path, "tmp", record)
    except OSError as exc:
        raise OutputError(
            f"{path.parent}: cannot write: {exc.strerror or exc}; nothing was changed",
            hint="check the directory and its permissions",
        ) from None
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as handle:
            handle.write(change.text)
            if durable:
                handle.flush()
                os.fsync(handle.fileno())
    except OSError as exc:
        raise OutputError(
            f"{path}: cannot write: {exc.strerror or exc}; nothing was changed",
            hint="check the disk and the directory",
        ) from None


def _keep_backup(target: Path) -> Path:
    """A second name for the current ``target`` (a hard link; a copy where links fail)."""
    for name in _free_name_beside(target, "bak"):
        try:
            os.link(target, name)
            return name
        except FileExistsError:
            continue
        except OSError:  # no hard links here (or not for this file): copy the bytes
            break
    name, fd = _create_beside(target, "bak")
    try:
        with open(target, "rb") as source, os.fdopen(fd, "wb") as copy:
            while chunk := source.read(1 << 16):
                copy.write(chunk)
    except BaseException:
        name.unlink(missing_ok=True)
        raise
    return name


def _apply(change: _Change) -> None:
    target = change.target
    change.existed = os.path.lexists(target)
    if change.text is None:  # a removal: move the file aside, it is the backup
        if not change.existed:
            return
        for name in _free_name_beside(target, "bak"):
            if not os.path.lexists(name):
                os.rename(target, name)
                change.backup = name
                change.applied = True
                return
        raise FileExistsError(f"{target.parent}: too many leftover backup files")
    assert change.staged is not None
    if change.existed:
        change.backup = _keep_backup(target)
    os.replace(change.staged, target)
    change.staged = None
    change.applied = True


def _undo(change: _Change) -> None:
    if not change.applied:
        return
    if change.backup is not None:
        os.replace(change.backup, change.target)
        change.backup = None
    else:  # created by this transaction
        change.target.unlink(missing_ok=True)
    change.applied = False


def _verb(change: _Change) -> str:
    return "remove" if change.text is None else "replace" if change.existed else "create"


def _tidy(changes: Sequence[_Change], made: Sequence[Path]) -> None:
    """Remove staged files (and, after a rollback, the directories this transaction created)."""
    for change in changes:
        leftovers = [change.staged]
        if not change.applied:  # a backup taken just before a replace that failed
            leftovers.append(change.backup)
        for leftover in leftovers:
            if leftover is not None:
                with contextlib.suppress(OSError):
                    leftover.unlink(missing_ok=True)
    for directory in reversed(made):
        with contextlib.suppress(OSError):
            directory.rmdir()


def _rollback(changes: Sequence[_Change]) -> list[str]:
    """Undo the applied changes, newest first; the files that could not be restored."""
    kept: list[str] = []
    for change in reversed(changes):
        try:
            _undo(change)
        except OSError as exc:
            where = f" (its previous content is in {change.backup})" if change.backup else ""
            kept.append(f"{change.target}: {exc.strerror or exc}{where}")
    return kept


@contextlib.contextmanager
def _signals_held() -> Iterator[None]:
    """Hold SIGINT and SIGTERM back while the block runs, then deliver them (to the handlers
    in place before). Only the main thread can set handlers: elsewhere this does nothing."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    caught: list[int] = []
    saved: dict[int, Any] = {}
    for sig in (signal.SIGINT, getattr(signal, "SIGTERM", None)):
        handler = signal.getsignal(sig) if sig is not None else None
        if sig is None or handler is None:  # no signal, or a handler set outside Python
            continue
        saved[sig] = signal.signal(sig, lambda number, _frame: caught.append(number))
    try:
        yield
    finally:
        for sig, handler in saved.items():
            signal.signal(sig, handler)
        for sig in dict.fromkeys(caught):
            signal.raise_signal(sig)


def write_files(
    files: Sequence[tuple[Path, str]],
    *,
    remove: Sequence[Path] = (),
    durable: bool = True,
) -> None:
    """Write every ``(path, text)`` and remove every path in ``remove``, as one transaction.

    Either every file is written (and every file in ``remove`` is gone), or, after any failure,
    every file is as it was: what was already replaced, created or removed is restored, and the
    OutputError says so (or names the files that could not be restored, and where their previous
    content is). ``durable`` flushes each new file to disk before it replaces its target (worth
    it for hand-kept data such as versions.json; generated Dockerfiles can be rendered again).
    Ctrl-C and SIGTERM wait for the replacing to end (see the module's docstring).
    """
    changes = [_Change(path=p, target=_target(p), text=t) for p, t in files]
    changes += [_Change(path=p, target=_target(p), text=None) for p in remove]
    made: list[Path] = []
    try:
        for change in changes:
            if change.text is not None:
                _stage(change, durable=durable, made=made)
    except BaseException:
        _tidy(changes, made)
        raise
    with _signals_held():
        _commit(changes, made)


def _commit(changes: Sequence[_Change], made: Sequence[Path]) -> None:
    failed: _Change | None = None
    try:
        for change in changes:
            failed = change
            _apply(change)
        failed = None
    except BaseException as exc:
        done = sum(c.applied for c in changes)
        kept = _rollback(changes)
        _tidy(changes, made)
        if not isinstance(exc, OSError):
            raise
        assert failed is not None
        what = f"{failed.target}: cannot {_verb(failed)}: {exc.strerror or exc}"
        if kept:
            raise OutputError(
                f"{what}; {len(kept)} of the {done} file(s) already changed could not be "
                f"restored: {'; '.join(kept)}",
                hint="restore them by hand",
            ) from None
        restored = f" ({done} file(s) already changed were restored)" if done else ""
        raise OutputError(
            f"{what}; nothing was changed{restored}",
            hint="check the file, its directory and their permissions (and chattr -i)",
        ) from None
    for change in changes:  # committed: the backups are no longer needed
        if change.backup is not None:
            with contextlib.suppress(OSError):
                change.backup.unlink()


def write_atomic(path: Path, text: str) -> None:
    """Replace ``path`` with ``text`` so readers see the old file or the new one, never half."""
    write_files([(path, text)])
