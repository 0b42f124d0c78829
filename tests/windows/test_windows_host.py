"""Against a real Windows Docker host, only when TOOLKIT_TEST_WINDOWS_DOCKER_HOST names one.

    TOOLKIT_TEST_WINDOWS_DOCKER_HOST=tcp://win2019.example.net:2376 \\
    DOCKER_TLS_VERIFY=1 DOCKER_CERT_PATH=~/.docker/win2019 \\
    python -m pytest tests/windows

(or ``npipe:////./pipe/docker_engine`` on a Windows runner). Run this directory on its own: the
Docker Engine tests move the pytest process into a loopback-only network namespace, from which
a remote host cannot be reached, so these tests skip when that happened in the same session.
Without the variable they skip; that is expected everywhere but on a machine with such a host.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.conftest import run_toolkit
from toolkit.clients import connect
from toolkit.errors import HostError
from toolkit.hosts import load_hosts
from toolkit.preflight import HostFacts, check_engine, choose_isolation, inspect_engine
from toolkit.windows import WindowsRelease, release_for_build, releases

ENV = "TOOLKIT_TEST_WINDOWS_DOCKER_HOST"
pytestmark = pytest.mark.windows


@pytest.fixture(scope="module")
def windows_url() -> str:
    url = os.environ.get(ENV)
    if not url:
        pytest.skip(f"{ENV} is not set: no real Windows Docker host to test against")
    if os.environ.get("TOOLKIT_TEST_NETNS"):
        pytest.skip("run tests/windows on its own: this session is in a loopback-only netns")
    return url


def _env(url: str) -> dict[str, str]:
    env = {
        k: v for k, v in os.environ.items() if k.startswith(("DOCKER_TLS", "DOCKER_CERT", "HOME"))
    }
    env["DOCKER_HOST"] = url
    return env


@pytest.fixture(scope="module")
def facts(windows_url: str) -> HostFacts:
    spec = load_hosts(None, [], _env(windows_url)).for_release("ltsc2016")
    client = connect(spec, _env(windows_url))
    try:
        return inspect_engine(client, host=spec.name)
    finally:
        client.close()


def test_engine_is_a_windows_engine_we_can_read(facts: HostFacts) -> None:
    check_engine(facts)
    assert facts.os_type == "windows"
    assert facts.build is not None, facts.kernel_version
    assert facts.build >= 14393, facts.kernel_version
    assert facts.revision is not None, facts.operating_system


def test_isolation_for_every_known_release(facts: HostFacts) -> None:
    assert facts.build is not None
    own: WindowsRelease | None = release_for_build(facts.build)
    for release in releases().values():
        if release.build > facts.build:
            with pytest.raises(HostError, match="older than"):
                choose_isolation(facts, release, None)
        elif release is own:
            assert choose_isolation(facts, release, None) == "process"
        else:
            assert choose_isolation(facts, release, None) in ("process", "hyperv")


def test_toolkit_hosts_on_the_real_host(windows_url: str, facts: HostFacts, tmp_path: Path) -> None:
    assert facts.build is not None
    own = release_for_build(facts.build)
    if own is None:
        pytest.skip(f"host build {facts.build} is not a release in the table")
    repo = Path(__file__).resolve().parents[2]
    data = json.loads((repo / "versions.json").read_text("utf-8"))
    line = next(iter(data.values()))
    line["variants"] = [f"windows/windowsservercore-{own.key}"]
    (tmp_path / "versions.json").write_text(json.dumps(data), "utf-8")
    result = run_toolkit("hosts", "--host", f"{own.key}={windows_url}", "--json", cwd=tmp_path,
                         env=_env(windows_url))  # fmt: skip
    assert result.returncode == 0, result.stderr
    [record] = json.loads(result.stdout)
    assert record["isolation"] == "process"
    assert record["facts"]["build"] == facts.build
