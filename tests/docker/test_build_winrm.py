"""``toolkit build --preflight winrm`` on the real engines: the releases whose host fails the WinRM
check are refused, the others build. The hosts' WinRM side is the WinRM test double (no Windows
host runs here); the engines are the suite's Linux engines, hence ``--no-preflight`` for the
Docker API check."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest

from tests.docker import engines as eng
from tests.docker.test_build_cli import _build, _workspace
from tests.doubles.windows_server import server_2016, server_2019, server_2022
from tests.doubles.winrm_host import WinRMHostDouble

PASSWORD = "Pw-build-5d1e-unique"


@pytest.fixture
def winrm_hosts() -> Iterator[dict[str, WinRMHostDouble]]:
    """1809 and ltsc2016 on fit hosts; 1803 on a 2022 host without Hyper-V."""
    with ExitStack() as stack:
        yield {
            release: stack.enter_context(WinRMHostDouble(host=make(), password=PASSWORD))
            for release, make in (
                ("1809", server_2019),
                ("1803", server_2022),
                ("ltsc2016", server_2016),
            )
        }


def test_a_failed_hosts_releases_are_refused_and_the_others_build(
    engines: dict[str, eng.Engine],
    winrm_hosts: dict[str, WinRMHostDouble],
    standin_python_version: str,
    standin_pip_version: str,
    tmp_path: Path,
) -> None:
    builds = _workspace(tmp_path, engines, standin_python_version, standin_pip_version)
    hosts = tmp_path / "hosts.toml"
    text = hosts.read_text("utf-8")
    for key, double in winrm_hosts.items():
        text += (
            f'\n[hosts.{key}.winrm]\nendpoint = "{double.url}"\ntransport = "basic"\n'
            'user = "builder"\npassword_env = "BUILD_WINRM_PW"\n'
        )
    hosts.write_text(text, "utf-8")
    result = _build(
        tmp_path,
        "--preflight",
        "winrm",
        "--build-arg",
        f"TOOLKIT_TEST={tmp_path.name}",
        env={"BUILD_WINRM_PW": PASSWORD},
    )
    assert result.returncode == 10, result.stdout + result.stderr
    report = json.loads((tmp_path / "build.json").read_text())
    by_id = {r["id"]: r for r in report["results"]}
    assert {b.id for b in builds} == set(by_id)
    releases = {b.id: b.release.key for b in builds}
    for build_id, record in by_id.items():
        if releases[build_id] == "1803":
            assert record["result"] == "failed"
            assert "failed the WinRM preflight: 1803 host reports build 20348" in record["message"]
        else:
            assert record["result"] == "built", record
    assert all(double.actions for double in winrm_hosts.values())
    assert PASSWORD not in result.stdout + result.stderr
