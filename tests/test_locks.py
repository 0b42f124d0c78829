"""The per-target build lock (toolkit.locks): held by another real process, waited for, given up
on Ctrl-C or at the deadline, and released by the operating system when its holder dies."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import REPO
from toolkit.errors import ConfigError
from toolkit.locks import TargetLock, lock_directory, lock_path

HOLD = (
    "import sys, time\n"
    "from pathlib import Path\n"
    "from toolkit.locks import TargetLock\n"
    "lock = TargetLock(Path(sys.argv[1]))\n"
    "assert lock.acquire(stop=lambda: None, deadline=time.monotonic() + 30, waiting=lambda: None) is None\n"
    "print('held', flush=True)\n"
    "time.sleep(600)\n"
)


def _holder(path: Path) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(path)], stdout=subprocess.PIPE, text=True, env=env
    )
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "held"
    return proc


def test_lock_paths_are_per_engine_and_target(tmp_path: Path) -> None:
    a = lock_path(tmp_path, "unix:///a.sock", "3.8-rc-windowsservercore-1809")
    assert a.parent == tmp_path
    assert a.name.startswith("3.8-rc-windowsservercore-1809-")
    assert a != lock_path(tmp_path, "unix:///b.sock", "3.8-rc-windowsservercore-1809")
    assert a != lock_path(tmp_path, "unix:///a.sock", "3.8-rc-windowsservercore-1803")
    assert "/" not in lock_path(tmp_path, "h", "../../etc/x").name


@pytest.mark.skipif(os.name != "posix", reason="the directory mode is POSIX's")
def test_the_lock_directory_is_the_users_own() -> None:
    path = lock_directory()
    assert path.is_dir()
    assert not path.is_symlink()
    assert path.stat().st_uid == os.getuid()
    assert path.stat().st_mode & 0o077 == 0


def test_a_lock_held_by_another_process_is_waited_for(tmp_path: Path) -> None:
    path = lock_path(tmp_path, "unix:///a.sock", "t")
    holder = _holder(path)
    waited: list[float] = []
    try:
        # Ctrl-C while waiting: the reason comes back, the lock is not taken.
        lock = TargetLock(path)
        calls = iter([None, None, "cancelled: interrupted (Ctrl-C)"])
        why = lock.acquire(
            stop=lambda: next(calls),
            deadline=time.monotonic() + 60,
            waiting=lambda: waited.append(1),
        )
        assert why == "cancelled: interrupted (Ctrl-C)"
        assert waited == [1]  # said once
        # The deadline: "timeout".
        why = TargetLock(path).acquire(
            stop=lambda: None, deadline=time.monotonic() + 0.5, waiting=lambda: None
        )
        assert why == "timeout"
    finally:
        holder.kill()  # dies without releasing: the operating system lets go of the lock
        holder.communicate()
    lock = TargetLock(path)
    assert (
        lock.acquire(stop=lambda: None, deadline=time.monotonic() + 30, waiting=lambda: None)
        is None
    )
    again = TargetLock(path)
    assert (
        again.acquire(stop=lambda: None, deadline=time.monotonic() + 0.3, waiting=lambda: None)
        == "timeout"
    )
    lock.release()
    assert (
        again.acquire(stop=lambda: None, deadline=time.monotonic() + 5, waiting=lambda: None)
        is None
    )
    again.release()


def test_an_unusable_lock_file_is_a_config_error(tmp_path: Path) -> None:
    blocked = tmp_path / "not-a-dir"
    blocked.write_text("x")
    lock = TargetLock(blocked / "t.lock")
    with pytest.raises(ConfigError, match="cannot take the build lock"):
        lock.acquire(stop=lambda: None, deadline=time.monotonic() + 1, waiting=lambda: None)
