"""Faults injected for real into ``toolkit build`` and ``toolkit verify`` processes (issue 13,
items 3-6): a real SIGINT or SIGTERM sent to the process while the real engines build or
check, and two real processes building the same target at once.

What must hold afterwards: the promised exit code (130 for Ctrl-C, 143 for SIGTERM), the summary
and the ``--report`` written, no container left on any engine, and no image or layer that the
interrupted run made (each round's Dockerfiles carry a nonce, so every layer after it is new and
must be gone again).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import REPO
from tests.docker import engines as eng
from tests.docker.matrixspace import (
    containers,
    image_ids,
    insert_in_template,
    rerender,
    workspace_with_hosts,
)
from toolkit.verify import CHECK_LABEL

EXIT = {signal.SIGINT: 130, signal.SIGTERM: 143}
WORDS = {signal.SIGINT: "interrupted (Ctrl-C)", signal.SIGTERM: "terminated (SIGTERM)"}
ERROR = {signal.SIGINT: "error: interrupted", signal.SIGTERM: "error: terminated (SIGTERM)"}
# A `python` that never answers: the first check (python --version) hangs until it is stopped.
HANGING_PYTHON = (
    'SHELL ["/bin/sh", "-c"]\n'
    "RUN mkdir /slow && printf '#!/bin/sh\\nexec sleep 600\\n' > /slow/python "
    "&& chmod +x /slow/python\n"
    f"ENV PATH /slow:{eng.STANDIN_PATH}"
)


def _nonce(root: Path) -> str:
    """A fresh ENV right after SHELL in the workspace's template: every later layer is new.
    (The recipe, SHELL and ENVs included, is the template python-install.j2.)"""
    nonce = uuid.uuid4().hex
    template = root / "templates" / "python-install.j2"
    text = template.read_text()
    head, sep, tail = text.partition("\nENV PYTHON_VERSION")
    assert sep
    head = head.split("\nENV TOOLKIT_TEST_NONCE")[0]
    template.write_text(f"{head}\nENV TOOLKIT_TEST_NONCE {nonce}{sep}{tail}")
    rerender(root)
    return nonce


def _start(root: Path, command: str, *args: str) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TOOLKIT_", "GITHUB_"))}
    env["PYTHONPATH"] = str(REPO)
    argv = [sys.executable, "-m", "toolkit", command, "--no-preflight", "--hosts", "hosts.toml"]
    argv += ["--repo", "sig/python", *args]
    if command == "build":
        argv += ["--pull", "never", "--network", "none"]
    return subprocess.Popen(
        argv, cwd=root, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def _wait_for(
    proc: subprocess.Popen[str], ready: Callable[[], bool], what: str, timeout: float = 120
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if ready():
            return
        if proc.poll() is not None:
            out, err = proc.communicate()
            pytest.fail(f"the process ended before {what}: {proc.returncode}\n{out}\n{err}")
        time.sleep(0.02)
    proc.kill()
    pytest.fail(f"{what} never happened: {proc.communicate()}")


def _stop(proc: subprocess.Popen[str], signum: signal.Signals) -> tuple[str, str, float]:
    started = time.monotonic()
    proc.send_signal(signum)
    out, err = proc.communicate(timeout=120)
    return out, err, time.monotonic() - started


def _log_at_step(log: Path, step: int) -> Callable[[], bool]:
    def ready() -> bool:
        return log.exists() and f"Step {step}/" in log.read_text(errors="replace")

    return ready


def _checking(clients: dict[str, Any]) -> Callable[[], bool]:
    """True once every engine runs a check container."""

    def ready() -> bool:
        return all(
            c.api.containers(filters={"label": CHECK_LABEL, "status": "running"})
            for c in clients.values()
        )

    return ready


def _left_behind(clients: dict[str, Any], before: dict[str, set[str]]) -> dict[str, Any]:
    """Per engine: containers, and images (layers included) made since ``before``."""
    found: dict[str, Any] = {}
    for release, client in clients.items():
        left = containers(client.api)
        new = sorted(image_ids(client.api) - before[release])
        if left or new:
            found[release] = {"containers": left, "images": new}
    return found


def _snapshot(clients: dict[str, Any]) -> dict[str, set[str]]:
    return {release: image_ids(client.api) for release, client in clients.items()}


# Where the signal lands: the step whose "Step N/M" line the log shows (1 FROM, 2 SHELL, 3 the
# nonce ENV, 4-5 ENV, 6 RUN installer, 7-9 ENV, 10 RUN get-pip, 11 RUN sleeping, 12 CMD), and
# "Running in": inside the sleeping RUN's container. Eight rounds of SIGINT, three of SIGTERM.
ROUNDS = [
    (signal.SIGINT, 2),
    (signal.SIGINT, 3),
    (signal.SIGINT, 5),
    (signal.SIGINT, 6),
    (signal.SIGINT, 8),
    (signal.SIGINT, 10),
    (signal.SIGINT, 11),
    (signal.SIGINT, 0),
    (signal.SIGTERM, 2),
    (signal.SIGTERM, 6),
    (signal.SIGTERM, 0),
]


@pytest.mark.parametrize(("signum", "step"), ROUNDS)
def test_a_signal_mid_build_cleans_up_and_reports(
    engines: dict[str, eng.Engine],
    clients: dict[str, Any],
    standin_python_version: str,
    standin_pip_version: str,
    tmp_path: Path,
    signum: signal.Signals,
    step: int,
) -> None:
    """Items 3, 4 and 5: SIGINT/SIGTERM to `toolkit build` while three engines build. The
    slowest target is watched; the other two are wherever their engines are at that moment."""
    builds = workspace_with_hosts(tmp_path, engines, standin_python_version, standin_pip_version)
    insert_in_template(tmp_path, f"RUN Write-Host {eng.SLEEP_MARKER}120")
    _nonce(tmp_path)
    before = _snapshot(clients)
    watched = builds[0]
    log = tmp_path / "logs" / f"{watched.id}.log"
    proc = _start(tmp_path, "build", "--no-verify", "--report", "build.json")
    if step:
        _wait_for(proc, _log_at_step(log, step), f"step {step}")
    else:

        def sleeping() -> bool:
            text = log.read_text(errors="replace") if log.exists() else ""
            _head, marker, after = text.rpartition(eng.SLEEP_MARKER)
            return bool(marker) and "Running in" in after

        _wait_for(proc, sleeping, "the sleeping step's container")
    out, err, took = _stop(proc, signum)

    assert proc.returncode == EXIT[signum], out + err
    assert ERROR[signum] in err.splitlines()[-1]
    assert "Traceback" not in err
    report = json.loads((tmp_path / "build.json").read_text())
    assert report["interrupted"] is True
    assert report["ok"] is False
    by_id = {r["id"]: r for r in report["results"]}
    assert sorted(by_id) == sorted(b.id for b in builds)
    assert by_id[watched.id]["result"] == "cancelled"
    assert WORDS[signum] in by_id[watched.id]["message"]
    assert "3 target(s): 3 cancelled" in out  # the summary table, printed after the signal
    assert _left_behind(clients, before) == {}
    assert took < 60


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_during_toolkit_verify_removes_the_check_containers(
    engines: dict[str, eng.Engine],
    clients: dict[str, Any],
    standin_python_version: str,
    standin_pip_version: str,
    tmp_path: Path,
    signum: signal.Signals,
) -> None:
    """Items 4 and 5: `toolkit verify` whose first check never ends (300 s timeout by
    default): the signal cuts it, its container is removed, the run says so at once."""
    builds = workspace_with_hosts(tmp_path, engines, standin_python_version, standin_pip_version)
    insert_in_template(tmp_path, HANGING_PYTHON)
    _nonce(tmp_path)
    built = _start(tmp_path, "build", "--no-verify", "--report", "build.json")
    out, err = built.communicate(timeout=300)
    assert built.returncode == 0, out + err

    proc = _start(tmp_path, "verify", "--timeout", "900")
    _wait_for(proc, _checking(clients), "a running check on each engine")
    out, err, took = _stop(proc, signum)

    assert proc.returncode == EXIT[signum], out + err
    assert ERROR[signum] in err
    assert "Traceback" not in err
    assert took < 30  # not the check's 900 s timeout
    for release, client in clients.items():
        assert client.api.containers(all=True, filters={"label": CHECK_LABEL}) == [], release
        assert containers(client.api) == [], release
    for b in builds:  # verify leaves the images it checks where they are
        tag = f"sig/python:{b.tags[0]}"
        assert clients[b.release.key].api.images(filters={"reference": tag}) != []


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_during_the_checks_of_a_build_discards_the_unverified_image(
    engines: dict[str, eng.Engine],
    clients: dict[str, Any],
    standin_python_version: str,
    standin_pip_version: str,
    tmp_path: Path,
    signum: signal.Signals,
) -> None:
    """Item 4: the check container no longer keeps the half-verified image alive; the image
    is untagged and removed with every layer of it, as promised for unverified images."""
    builds = workspace_with_hosts(tmp_path, engines, standin_python_version, standin_pip_version)
    insert_in_template(tmp_path, HANGING_PYTHON)
    _nonce(tmp_path)
    before = _snapshot(clients)
    proc = _start(tmp_path, "build", "--report", "build.json")
    _wait_for(proc, _checking(clients), "a running check on each engine")
    out, err, took = _stop(proc, signum)

    assert proc.returncode == EXIT[signum], out + err
    assert took < 60
    results = json.loads((tmp_path / "build.json").read_text())["results"]
    assert [r["result"] for r in results] == ["cancelled"] * 3
    for record in results:
        assert f"verification {WORDS[signum]}" in record["message"]
        assert record["checks"][0]["passed"] is False
    assert _left_behind(clients, before) == {}
    for b in builds:
        tag = f"sig/python:{b.tags[0]}"
        assert clients[b.release.key].api.images(filters={"reference": tag}) == []
