"""toolkit.files: multi-file writes are a transaction; inputs never hang on special files.

Faults are real: an immutable file (``chattr +i``) that cannot be replaced, renamed or linked,
a FIFO with no writer, a character device, a symbolic link.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.faults import immutable, leftovers, snapshot
from toolkit.errors import OutputError
from toolkit.files import UnreadableFile, read_text, write_atomic, write_files

__all__ = ["immutable"]  # the fixture, imported for the tests below

Immutable = Callable[[Path], Path]


def files(root: Path, **texts: str) -> dict[str, Path]:
    paths = {}
    for name, text in texts.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        paths[name] = path
    return paths


def test_a_file_that_cannot_be_replaced_restores_those_already_written(
    tmp_path: Path, immutable: Immutable
) -> None:
    f = files(tmp_path, a="old a\n", b="old b\n", c="old c\n")
    immutable(f["c"])
    before = snapshot(tmp_path)
    new = tmp_path / "sub" / "new"  # created (with its directory) before the failure
    with pytest.raises(OutputError) as caught:
        write_files([(f["a"], "new a\n"), (new, "x\n"), (f["b"], "new b\n"), (f["c"], "new c\n")])
    message = caught.value.one_line()
    assert message.startswith(f"{f['c']}: cannot replace: Operation not permitted")
    assert "nothing was changed (3 file(s) already changed were restored)" in message
    assert snapshot(tmp_path) == before
    assert not (tmp_path / "sub").exists(), "a directory made for the transaction is removed"
    assert leftovers(tmp_path) == []


def test_a_file_that_cannot_be_removed_restores_every_write_and_removal(
    tmp_path: Path, immutable: Immutable
) -> None:
    f = files(tmp_path, a="old a\n", gone="stale 1\n", stuck="stale 2\n")
    immutable(f["stuck"])
    before = snapshot(tmp_path)
    with pytest.raises(OutputError, match=r"stuck: cannot remove: Operation not permitted"):
        write_files([(f["a"], "new a\n")], remove=[f["gone"], f["stuck"]])
    assert snapshot(tmp_path) == before  # "gone" is back, "a" has its old text
    assert leftovers(tmp_path) == []


def test_a_directory_that_cannot_take_new_files_changes_nothing(
    tmp_path: Path, immutable: Immutable
) -> None:
    f = files(tmp_path, a="old a\n", **{"locked/b": "old b\n"})
    immutable(tmp_path / "locked")  # nothing can be staged (or linked) in it
    before = snapshot(tmp_path)
    with pytest.raises(OutputError, match=r"locked: cannot write: Operation not permitted; "):
        write_files([(f["a"], "new a\n"), (f["locked/b"], "new b\n")])
    assert snapshot(tmp_path) == before
    assert leftovers(tmp_path) == []


def test_success_replaces_creates_and_removes_and_leaves_no_backups(tmp_path: Path) -> None:
    f = files(tmp_path, a="old a\n", gone="stale\n")
    write_files([(f["a"], "new a\n"), (tmp_path / "d/e/new", "n\n")], remove=[f["gone"]])
    assert f["a"].read_text() == "new a\n"
    assert (tmp_path / "d/e/new").read_text() == "n\n"
    assert not f["gone"].exists()
    assert leftovers(tmp_path) == []


def test_a_symlink_is_written_through_and_stays_a_link(tmp_path: Path) -> None:
    real = files(tmp_path, **{"data/versions.json": "{}\n"})["data/versions.json"]
    link = tmp_path / "versions.json"
    link.symlink_to("data/versions.json")
    write_atomic(link, '{"new": 1}\n')
    assert link.is_symlink()
    assert os.readlink(link) == "data/versions.json"
    assert real.read_text() == '{"new": 1}\n'
    assert leftovers(tmp_path) == []


def _read_in_thread(path: Path) -> tuple[bool, BaseException | str | None]:
    """Read ``path`` in a thread; (finished within 5 s, what it raised or returned)."""
    outcome: list[BaseException | str] = []

    def read() -> None:
        try:
            outcome.append(read_text(path))
        except BaseException as exc:
            outcome.append(exc)

    thread = threading.Thread(target=read, daemon=True)
    thread.start()
    thread.join(5)
    return not thread.is_alive(), (outcome[0] if outcome else None)


@pytest.mark.parametrize(
    ("kind", "why"),
    [
        ("fifo", "not a regular file: it is a FIFO (named pipe)"),
        ("device", "not a regular file: it is a character device"),
        ("directory", "not a regular file: it is a directory"),
        ("not-utf8", "not UTF-8 (byte 3)"),
        ("missing", "No such file or directory"),
    ],
)
def test_reading_refuses_what_is_not_a_regular_utf8_file_without_hanging(
    tmp_path: Path, kind: str, why: str
) -> None:
    path = tmp_path / "input"
    if kind == "fifo":
        os.mkfifo(path)  # no writer: a plain open() would block forever
    elif kind == "device":
        path = Path("/dev/zero")  # never ends
    elif kind == "directory":
        path.mkdir()
    elif kind == "not-utf8":
        path.write_bytes(b"abc\xff\n")
    finished, outcome = _read_in_thread(path)
    assert finished, f"reading a {kind} hung"
    assert isinstance(outcome, UnreadableFile)
    assert outcome.why == why
    assert outcome.missing is (kind == "missing")


def test_reading_keeps_path_read_texts_newlines(tmp_path: Path) -> None:
    path = tmp_path / "f"
    path.write_bytes(b"a\r\nb\rc\n")
    assert read_text(path) == path.read_text(encoding="utf-8") == "a\nb\nc\n"


# -- a real Ctrl-C while files are replaced ------------------------------------------------------

WRITER = """
import sys
from pathlib import Path
import toolkit.files as files

root, count, phase = Path(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
commit, stage = files._commit, files._stage

def announce_commit(*args, **kwargs):
    print("commit", flush=True)  # signals are held from here on
    return commit(*args, **kwargs)

staged = []
def announce_stage(*args, **kwargs):
    staged.append(1)
    if len(staged) == count // 2:
        print("stage", flush=True)
    return stage(*args, **kwargs)

if phase == "commit":
    files._commit = announce_commit
else:
    files._stage = announce_stage
try:
    files.write_files([(root / f"f{i:05d}", "new\\n") for i in range(count)], durable=False)
except KeyboardInterrupt:
    print("interrupted", flush=True)
    sys.exit(130)
print("done", flush=True)
"""


@pytest.mark.parametrize("phase", ["commit", "stage"])
def test_ctrl_c_while_writing_never_leaves_some_files_new_and_others_old(
    tmp_path: Path, phase: str
) -> None:
    """SIGINT (a real one, to the writing process) in the middle of the renames is held until
    they are done, then delivered; in the middle of staging it stops the write at once. Either
    way every file is old or every file is new, and nothing is left behind."""
    import signal
    import subprocess
    import sys

    from tests.conftest import REPO

    count = 4000
    for i in range(count):
        (tmp_path / f"f{i:05d}").write_text("old\n")
    with subprocess.Popen(
        [sys.executable, "-c", WRITER, str(tmp_path), str(count), phase],
        env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"},
        stdout=subprocess.PIPE,
        text=True,
    ) as proc:
        assert proc.stdout is not None
        assert proc.stdout.readline() == f"{phase}\n"
        proc.send_signal(signal.SIGINT)
        rest = proc.stdout.read()
        assert proc.wait(60) == 130
    assert rest == "interrupted\n"
    contents = {(tmp_path / f"f{i:05d}").read_text() for i in range(count)}
    assert contents == ({"new\n"} if phase == "commit" else {"old\n"})
    assert leftovers(tmp_path) == []
