"""Ctrl-C and SIGTERM during ``toolkit bump`` (issue 13, item 5): a real signal to the process
while a loopback source holds its answer back. The run must end at once, say "interrupted" (or
"terminated"), exit 130 (143), and write nothing; before, it waited for the request's timeout
and then exited 0 without a word."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from concurrent.futures import CancelledError
from pathlib import Path

import pytest

from tests.bump_upstream import FTP, PythonOrg, Upstream, publish_github, publish_pypi, running
from tests.conftest import REPO

STALL = 120.0  # how long the installer's answer is held back; --timeout is longer still


def _snapshot(ws: Path) -> dict[str, bytes]:
    files = [ws / "versions.json", *sorted((ws / "dockerfiles").rglob("*"))]
    return {str(p.relative_to(ws)): p.read_bytes() for p in files if p.is_file()}


@pytest.mark.parametrize(
    ("signum", "code", "said"),
    [
        (signal.SIGINT, 130, "error: interrupted"),
        (signal.SIGTERM, 143, "error: terminated (SIGTERM)"),
    ],
)
def test_a_signal_ends_a_stalled_bump_at_once(
    workspace: Path, signum: signal.Signals, code: int, said: str
) -> None:
    with running(Upstream()) as up:
        PythonOrg().release("3.8.0rc1").release("3.8.0rc2").publish(up)
        publish_pypi(up)
        publish_github(up)
        installer = up.routes[f"{FTP}3.8.0/python-3.8.0rc2-amd64.exe"]
        installer.delay = STALL  # the new version's installer is hashed: its answer stalls
        before = _snapshot(workspace)
        env = {k: v for k, v in os.environ.items() if not k.startswith("TOOLKIT_")}
        env.update(up.env(), PYTHONPATH=str(REPO), TOOLKIT_HTTP_TIMEOUT=str(STALL * 2))
        proc = subprocess.Popen(
            [sys.executable, "-m", "toolkit", "bump"],
            cwd=workspace,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        deadline = time.monotonic() + 60
        while installer.served == 0 and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        assert installer.served == 1, proc.communicate(timeout=STALL * 3)
        started = time.monotonic()
        proc.send_signal(signum)
        out, err = proc.communicate(timeout=STALL * 3)
        took = time.monotonic() - started
    assert proc.returncode == code, out + err
    assert err.splitlines()[-1] == said
    assert "Traceback" not in err
    assert took < STALL / 4, f"the bump went on for {took:.1f} s after the signal"
    assert _snapshot(workspace) == before


def test_the_daemon_pool_runs_calls_bounded_and_drops_what_has_not_started() -> None:
    import threading

    from toolkit.cancel import DaemonPool

    running_now: list[int] = []
    peak = [0]
    lock = threading.Lock()
    release = threading.Event()

    def work(n: int) -> int:
        with lock:
            running_now.append(n)
            peak[0] = max(peak[0], len(running_now))
        release.wait(10)
        with lock:
            running_now.remove(n)
        return n * n

    pool = DaemonPool(2, name="t")
    futures = [pool.submit(work, n) for n in range(5)]
    time.sleep(0.2)
    assert peak[0] == 2
    release.set()
    assert [f.result(timeout=10) for f in futures] == [0, 1, 4, 9, 16]
    assert all(t.daemon for t in threading.enumerate() if t.name.startswith("t-"))

    def boom() -> None:
        raise ValueError("boom")

    with pytest.raises(ValueError, match="boom"):
        pool.submit(boom).result(timeout=10)

    gate = threading.Event()
    blocked = DaemonPool(1, name="u")
    first = blocked.submit(gate.wait, 10)
    second = blocked.submit(lambda: 1)
    blocked.close()  # the second call has not started: it never will
    gate.set()
    assert first.result(timeout=10) is True
    with pytest.raises(CancelledError):
        second.result(timeout=10)
