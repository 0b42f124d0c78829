"""``toolkit build`` and ``toolkit verify`` on a real Windows Docker host (opt-in).

Set ``TOOLKIT_TEST_WINDOWS_DOCKER_HOST`` to the host's endpoint (``tcp://HOST:2376`` with
``DOCKER_TLS_VERIFY=1`` and ``DOCKER_CERT_PATH``, ``npipe:////./pipe/docker_engine`` on a Windows
runner, or ``ssh://...``) and run ``python -m pytest tests/windows`` on its own (the engine tests
move the session into a loopback-only network namespace). The release built is the one whose
build the host runs (``TOOLKIT_TEST_WINDOWS_RELEASE`` overrides it). The test builds this repository's Dockerfile for that release with preflight
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
from toolkit.clients import connect
from toolkit.hosts import load_hosts
from toolkit.preflight import inspect_engine
from toolkit.windows import release_for_build

HOST = os.environ.get("TOOLKIT_TEST_WINDOWS_DOCKER_HOST")

pytestmark = [
    pytest.mark.windows,
    pytest.mark.skipif(HOST is None, reason="TOOLKIT_TEST_WINDOWS_DOCKER_HOST is not set"),
    pytest.mark.skipif(
        bool(os.environ.get("TOOLKIT_TEST_NETNS")),
        reason="run tests/windows on its own: this session is in a loopback-only netns",
    ),
]


def _release(url: str) -> str:
    """The release the host runs: TOOLKIT_TEST_WINDOWS_RELEASE, else from its build."""
    given = os.environ.get("TOOLKIT_TEST_WINDOWS_RELEASE")
    if given:
        return given
    env = {k: v for k, v in os.environ.items() if k.startswith(("DOCKER_TLS", "DOCKER_CERT"))}
    env["DOCKER_HOST"] = url
    spec = load_hosts(None, [], env).for_release("ltsc2016")
    client = connect(spec, env)
    try:
        facts = inspect_engine(client, host=spec.name)
    finally:
        client.close()
    release = release_for_build(facts.build) if facts.build is not None else None
    if release is None:
        pytest.skip(f"host build {facts.build} is no release this repository builds")
    return release.key


def test_build_verify_and_skip_on_a_windows_host(tmp_path: Path) -> None:
    assert HOST is not None
    release = _release(HOST)
    shutil.copy(REPO / "versions.json", tmp_path / "versions.json")
    shutil.copytree(REPO / "dockerfiles", tmp_path / "dockerfiles")
    selector = f"*-windowsservercore-{release}"
    args = ("build", selector, "--host", f"{release}={HOST}", "--repo", "toolkit-test/python")
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
        f"{release}={HOST}",
        "--repo",
        "toolkit-test/python",
        "--json",
        cwd=tmp_path,
        env=env,
        timeout=1800,
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert json.loads(checked.stdout)["ok"] is True
