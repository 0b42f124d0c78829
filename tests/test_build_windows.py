"""``toolkit build`` and ``toolkit verify`` on a real Windows Docker host (opt-in).

Set ``TOOLKIT_TEST_WINDOWS_DOCKER_HOST`` to the host's endpoint (``tcp://HOST:2376`` with
``DOCKER_TLS_VERIFY=1`` and ``DOCKER_CERT_PATH``, ``npipe:////./pipe/docker_engine`` on a Windows
runner, or ``ssh://...``) and ``TOOLKIT_TEST_WINDOWS_RELEASE`` to the Windows release it runs
(default ``1809``). The test builds this repository's Dockerfile for that release with preflight
(isolation chosen from the host's build) and verification, then checks that a second run skips
it. The Windows host downloads Python and get-pip itself; this machine only talks to the host.
Without the variable the test is skipped (and reported as skipped, not passed).
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from tests.conftest import REPO, run_toolkit

HOST = os.environ.get("TOOLKIT_TEST_WINDOWS_DOCKER_HOST")
RELEASE = os.environ.get("TOOLKIT_TEST_WINDOWS_RELEASE", "1809")

pytestmark = [
    pytest.mark.windows,
    pytest.mark.skipif(HOST is None, reason="TOOLKIT_TEST_WINDOWS_DOCKER_HOST is not set"),
]


def test_build_verify_and_skip_on_a_windows_host(tmp_path: Path) -> None:
    assert HOST is not None
    shutil.copy(REPO / "versions.json", tmp_path / "versions.json")
    shutil.copytree(REPO / "dockerfiles", tmp_path / "dockerfiles")
    selector = f"*-windowsservercore-{RELEASE}"
    args = ("build", selector, "--host", f"{RELEASE}={HOST}", "--repo", "toolkit-test/python")
    env = {k: v for k, v in os.environ.items() if k.startswith("DOCKER_")}
    first = run_toolkit(*args, "--report", "first.json", cwd=tmp_path, env=env, timeout=5400)
    assert first.returncode == 0, first.stdout[-4000:] + first.stderr
    report = json.loads((tmp_path / "first.json").read_text())
    for result in report["results"]:
        assert result["result"] in ("built", "skipped")
        assert result["isolation"] in ("process", "hyperv")
    second = run_toolkit(*args, "--report", "second.json", cwd=tmp_path, env=env, timeout=600)
    assert second.returncode == 0, second.stdout[-4000:] + second.stderr
    again = json.loads((tmp_path / "second.json").read_text())
    assert {r["result"] for r in again["results"]} == {"skipped"}
    checked = run_toolkit(
        "verify",
        selector,
        "--host",
        f"{RELEASE}={HOST}",
        "--repo",
        "toolkit-test/python",
        "--json",
        cwd=tmp_path,
        env=env,
        timeout=1800,
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert json.loads(checked.stdout)["ok"] is True
