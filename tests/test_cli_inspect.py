"""``toolkit inspect`` and ``build --preflight winrm`` as a user runs them: the real CLI, real
pywinrm against WinRM doubles and real docker-py against Windows engine doubles, on 127.0.0.1."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Result, run_toolkit
from tests.docker.engines import make_tls_pair
from tests.doubles.windows_engine import EngineHTTPDouble
from tests.doubles.windows_server import server_2016, server_2019, server_2022
from tests.doubles.winrm_host import TLSFiles, WinRMHostDouble

# Unique, so that finding it anywhere in the output is a leak and nothing else.
PASSWORD = "Pw-7f3a9c-unique-secret"
ENV = {"TEST_WINRM_PW": PASSWORD}


@pytest.fixture
def workspace(workspace: Path) -> Path:
    """The repository's workspace with only the 3.8-rc line: its releases (1809, 1803, ltsc2016)
    are the ones the doubles below stand for."""
    whole = json.loads((workspace / "versions.json").read_text())
    (workspace / "versions.json").write_text(json.dumps({"3.8-rc": whole["3.8-rc"]}, indent=2))
    return workspace


@pytest.fixture
def hosts() -> Iterator[dict[str, Any]]:
    """1809 on a fit 2019 host; 1803 on a 2022 host without Hyper-V; ltsc2016 on a 2016 host."""
    with ExitStack() as stack:
        yield {
            "winrm": {
                "1809": stack.enter_context(WinRMHostDouble(host=server_2019(), password=PASSWORD)),
                "1803": stack.enter_context(WinRMHostDouble(host=server_2022(), password=PASSWORD)),
                "ltsc2016": stack.enter_context(
                    WinRMHostDouble(host=server_2016(), password=PASSWORD)
                ),
            },
            "engines": {
                "1809": stack.enter_context(EngineHTTPDouble("windows-1809")),
                "1803": stack.enter_context(EngineHTTPDouble("windows-ltsc2022")),
                "ltsc2016": stack.enter_context(EngineHTTPDouble("windows-ltsc2016")),
            },
        }


def _write_hosts(workspace: Path, hosts: dict[str, Any], **winrm: dict[str, Any]) -> Path:
    lines = []
    for release, double in hosts["winrm"].items():
        table = {
            "endpoint": double.url,
            "transport": "basic",
            "user": "builder",
            "password_env": "TEST_WINRM_PW",
            **winrm.get(f"r{release}", {}),
        }
        lines += [f"[hosts.{release}]", f'url = "{hosts["engines"][release].url}"']
        lines.append(f"[hosts.{release}.winrm]")
        lines += [f"{k} = {json.dumps(v)}" for k, v in table.items()]
    path = workspace / "hosts.toml"
    path.write_text("\n".join(lines) + "\n", "utf-8")
    return path


def _no_leak(result: Result, *more: str) -> None:
    for text in (result.stdout, result.stderr, *more):
        assert PASSWORD not in text


def test_inspect_passes_a_fit_host(workspace: Path, hosts: dict[str, Any]) -> None:
    _write_hosts(workspace, hosts)
    result = run_toolkit("inspect", "*-1809", cwd=workspace, env=ENV)
    assert result.returncode == 0, result.stderr
    assert f"via {hosts['winrm']['1809'].url}: ok" in result.stdout
    assert "windows   Windows Server 2019 Datacenter (Server Core, 1809), build 17763.805" in (
        result.stdout
    )
    assert "ok   engine: the Docker API agrees: build 17763.805, engine 18.09.11" in result.stdout
    assert "1 host(s) inspected: 1 passed" in result.stderr
    assert hosts["winrm"]["1803"].actions == []  # not selected, not contacted
    _no_leak(result)


def test_inspect_fails_with_8_and_says_what_to_fix(workspace: Path, hosts: dict[str, Any]) -> None:
    _write_hosts(workspace, hosts)
    result = run_toolkit("inspect", cwd=workspace, env=ENV)
    assert result.returncode == 8, result.stderr
    assert (
        "FAIL build: 1803 host reports build 20348: it can build 1803 only with Hyper-V "
        "isolation, and Hyper-V is not installed"
    ) in result.stdout
    assert "fix: Install-WindowsFeature Hyper-V -IncludeManagementTools -Restart" in result.stdout
    assert "error: 1 of 3 host(s) failed the WinRM check: " in result.stderr
    _no_leak(result)


def test_inspect_json(workspace: Path, hosts: dict[str, Any]) -> None:
    _write_hosts(workspace, hosts)
    result = run_toolkit("inspect", "--json", cwd=workspace, env=ENV)
    assert result.returncode == 8, result.stderr
    document = json.loads(result.stdout)
    assert document["ok"] is False
    by_release = {h["releases"][0]: h for h in document["hosts"]}
    assert by_release["1809"]["ok"] is True
    assert by_release["1809"]["facts"]["os_build"] == "17763.805"
    assert by_release["1809"]["engine"]["build"] == 17763
    assert by_release["ltsc2016"]["facts"]["docker"]["tlsverify"] is True
    failed = [v for v in by_release["1803"]["verdicts"] if v["status"] == "fail"]
    assert [v["check"] for v in failed] == ["build"]
    assert by_release["1803"]["winrm"]["password_env"] == "TEST_WINRM_PW"
    _no_leak(result)


def test_one_unreachable_host_does_not_stop_the_others(
    workspace: Path, hosts: dict[str, Any]
) -> None:
    with WinRMHostDouble() as gone:
        down = gone.url
    _write_hosts(workspace, hosts, rltsc2016={"endpoint": down})
    result = run_toolkit("inspect", "--no-docker", cwd=workspace, env=ENV)
    assert result.returncode == 8
    assert f"FAIL winrm: WinRM host {down} cannot be reached: Connection refused" in result.stdout
    assert f"via {hosts['winrm']['1809'].url}: ok" in result.stdout
    assert hosts["engines"]["1809"].requests == []  # --no-docker: the Docker API is not asked


def test_a_missing_password_is_named_and_nothing_is_contacted(
    workspace: Path, hosts: dict[str, Any]
) -> None:
    _write_hosts(workspace, hosts)
    result = run_toolkit("inspect", cwd=workspace, env={"CI": "true"})
    assert result.returncode == 2
    assert "environment variable TEST_WINRM_PW is not set" in result.stderr
    assert all(double.actions == [] for double in hosts["winrm"].values())


def test_the_password_never_shows_even_with_debug(workspace: Path, hosts: dict[str, Any]) -> None:
    _write_hosts(workspace, hosts)
    runs = [
        run_toolkit("--debug", "inspect", cwd=workspace, env=ENV),
        run_toolkit("--debug", "inspect", "--json", cwd=workspace, env=ENV),
        # rejected credentials: the host sees the wrong one; neither appears anywhere
        run_toolkit("--debug", "inspect", cwd=workspace, env={"TEST_WINRM_PW": PASSWORD + "x"}),
    ]
    assert [r.returncode for r in runs] == [8, 8, 8]
    assert "rejected the credentials" in runs[2].stdout
    # a configuration error with --debug: a traceback, still without the password
    (workspace / "versions.json").write_text("{", "utf-8")
    broken = run_toolkit("--debug", "inspect", cwd=workspace, env=ENV)
    assert broken.returncode != 0
    assert "Traceback" in broken.stderr
    written = [p.read_text("utf-8", errors="replace") for p in workspace.rglob("*") if p.is_file()]
    for result in [*runs, broken]:
        _no_leak(result, *written)


def test_insecure_is_announced_on_every_run(
    workspace: Path, hosts: dict[str, Any], tmp_path: Path
) -> None:
    server, _client = make_tls_pair(tmp_path / "tls")
    with WinRMHostDouble(password=PASSWORD, tls=TLSFiles(server.cert, server.key)) as https:
        hosts["winrm"]["1809"] = https
        _write_hosts(workspace, hosts, r1809={"insecure": True})
        result = run_toolkit("inspect", "*-1809", cwd=workspace, env=ENV)
    assert result.returncode == 0, result.stderr
    assert "warning: " in result.stderr
    assert "insecure = true: the certificate of 127.0.0.1 is not verified" in result.stderr
    _no_leak(result)


def test_refusals_exit_2(workspace: Path, hosts: dict[str, Any]) -> None:
    _write_hosts(workspace, hosts, r1809={"password": PASSWORD})
    result = run_toolkit("inspect", cwd=workspace, env=ENV)
    assert result.returncode == 2
    assert "a password never goes in hosts.toml (key 'password')" in result.stderr
    _no_leak(result)
    _write_hosts(
        workspace,
        hosts,
        r1809={"endpoint": "http://win2019.example.net:5985/wsman", "transport": "basic"},
    )
    result = run_toolkit("inspect", cwd=workspace, env=ENV)
    assert result.returncode == 2
    assert "Basic over plain http:// to win2019.example.net is refused" in result.stderr


def test_build_preflight_winrm_refuses_only_the_unfit_hosts_releases(
    workspace: Path, hosts: dict[str, Any]
) -> None:
    _write_hosts(workspace, hosts)
    result = run_toolkit(
        "build", "--dry-run", "--no-preflight", "--preflight", "winrm", cwd=workspace, env=ENV
    )
    assert result.returncode == 0, result.stderr
    lines = {line.split("\t")[0]: line for line in result.stdout.splitlines() if "\t" in line}
    assert lines["3.8-rc-windowsservercore-1809"].endswith("\tok")
    assert lines["3.8-rc-windowsservercore-ltsc2016"].endswith("\tok")
    refused = lines["3.8-rc-windowsservercore-1803"]
    assert "refused: 1803 host" in refused
    assert "failed the WinRM preflight: 1803 host reports build 20348" in refused
    _no_leak(result)
    unknown = run_toolkit("build", "--dry-run", "--preflight", "winmr", cwd=workspace, env=ENV)
    assert unknown.returncode == 2
    assert "did you mean 'winrm'?" in unknown.stderr
