"""`toolkit hosts` end to end: real docker-py against Windows engine doubles on 127.0.0.1."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest

from tests.conftest import run_toolkit
from tests.doubles.windows_engine import EngineHTTPDouble

SECRET = "TOOLKIT-TEST-SECRET-KEY-MATERIAL"
# The hosts below serve the seed line's releases (ltsc2016, 1803, 1809).
SEED = "3.8-rc-*"


@pytest.fixture
def doubles() -> Iterator[dict[str, EngineHTTPDouble]]:
    """Engine doubles: a 2016 host, a 2022 host, and a 2019 host."""
    with ExitStack() as stack:
        yield {
            name: stack.enter_context(EngineHTTPDouble(f"windows-{name}"))
            for name in ("ltsc2016", "ltsc2022", "1809")
        }


def _hosts_file(workspace: Path, doubles: dict[str, EngineHTTPDouble]) -> Path:
    path = workspace / "hosts.toml"
    path.write_text(
        f'[hosts.ltsc2016]\nurl = "{doubles["ltsc2016"].url}"\n'
        f'[hosts.1803]\nurl = "{doubles["ltsc2022"].url}"\n'
        f'[hosts.1809]\nurl = "{doubles["1809"].url}"\n',
        "utf-8",
    )
    return path


def test_table_shows_host_build_and_isolation(
    workspace: Path, doubles: dict[str, EngineHTTPDouble]
) -> None:
    _hosts_file(workspace, doubles)  # picked up as ./hosts.toml
    result = run_toolkit("hosts", SEED, cwd=workspace)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["ID", "RELEASE", "HOST", "HOST", "BUILD", "ISOLATION", "STATUS"]
    rows = {line.split()[0]: line.split() for line in lines[1:]}
    assert rows["3.8-rc-windowsservercore-1809"][2:] == [
        doubles["1809"].url, "17763.805", "process", "ok"
    ]  # fmt: skip
    assert rows["3.8-rc-windowsservercore-1803"][2:] == [
        doubles["ltsc2022"].url, "20348.2461", "hyperv", "ok"
    ]  # fmt: skip
    assert rows["3.8-rc-windowsservercore-ltsc2016"][3:] == ["14393.3274", "process", "ok"]


def test_refusal_names_both_builds_and_exits_7(
    workspace: Path, doubles: dict[str, EngineHTTPDouble]
) -> None:
    path = _hosts_file(workspace, doubles)
    result = run_toolkit(
        "hosts", SEED, "--hosts", str(path), "--host", f"1809={doubles['ltsc2016'].url}",
        "--json", cwd=workspace,
    )  # fmt: skip
    assert result.returncode == 7
    records = {r["id"]: r for r in json.loads(result.stdout)}
    refused = records["3.8-rc-windowsservercore-1809"]
    assert refused["ok"] is False
    assert "runs Windows build 14393, older than the 1809 image (build 17763)" in refused["error"]
    assert records["3.8-rc-windowsservercore-ltsc2016"]["isolation"] == "process"
    assert "1 of 3 build(s) have no fit host" in result.stderr


def test_isolation_override_and_selector(
    workspace: Path, doubles: dict[str, EngineHTTPDouble]
) -> None:
    _hosts_file(workspace, doubles)
    result = run_toolkit("hosts", "*-1809", "--isolation", "hyperv", "--json", cwd=workspace)
    assert result.returncode == 0, result.stderr
    [record] = json.loads(result.stdout)
    assert (record["isolation"], record["facts"]["build"]) == ("hyperv", 17763)
    bad = run_toolkit("hosts", "--isolation", "container", cwd=workspace)
    assert bad.returncode == 2
    assert "'container' is not one of 'process', 'hyperv'" in bad.stderr


def test_unreachable_host_leaves_the_others(
    workspace: Path, doubles: dict[str, EngineHTTPDouble]
) -> None:
    path = _hosts_file(workspace, doubles)
    result = run_toolkit(
        "hosts", SEED, "--hosts", str(path), "--host", "1803=unix:///nonexistent/docker.sock",
        cwd=workspace,
    )  # fmt: skip
    assert result.returncode == 7
    row = next(line for line in result.stdout.splitlines() if "-1803 " in line)
    assert (
        "refused: Docker host unix:///nonexistent/docker.sock (--host 1803) cannot be reached"
        in row
    )
    ok_rows = [line for line in result.stdout.splitlines() if line.endswith(" ok")]
    assert len(ok_rows) == 2


def test_no_preflight_contacts_nobody(workspace: Path) -> None:
    result = run_toolkit(
        "hosts", "--host", "1809=tcp://127.0.0.1:9", "--no-preflight", "*-1809", cwd=workspace
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[1].split()[2:] == [
        "tcp://127.0.0.1:9", "-", "engine", "default", "ok"
    ]  # fmt: skip


def test_config_errors_exit_2_and_never_show_key_material(workspace: Path) -> None:
    certs = workspace / "certs"
    certs.mkdir()
    for name in ("ca.pem", "cert.pem"):
        (certs / name).write_text("x\n")
    (certs / "key.pem").write_text(f"-----BEGIN PRIVATE KEY-----\n{SECRET}\n")
    hosts = workspace / "my-hosts.toml"
    hosts.write_text(
        '[hosts.1809]\nurl = "tcp://win2019.example.net:2376"\n'
        'ca = "certs/ca.pem"\ncert = "certs/cert.pem"\nkey = "certs/key.pem"\nisolaton = "x"\n',
        "utf-8",
    )
    result = run_toolkit("hosts", cwd=workspace, env={"TOOLKIT_HOSTS": str(hosts)})
    assert result.returncode == 2
    assert f"{hosts}: [hosts.1809]: unknown key 'isolaton'" in result.stderr
    assert "Traceback" not in result.stderr
    hosts.write_text(hosts.read_text().replace('isolaton = "x"\n', ""), "utf-8")
    # Valid now; the host does not resolve (no network here), but nothing prints the key.
    result = run_toolkit("hosts", "*-1809", "--json", "--no-preflight", cwd=workspace,
                         env={"TOOLKIT_HOSTS": str(hosts)})  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert SECRET not in result.stdout + result.stderr
    assert json.loads(result.stdout)[0]["host"]["tls"] is True
    result = run_toolkit("--debug", "hosts", "--host", "1809=tcp://10.1.2.3:2375", cwd=workspace)
    assert result.returncode != 0
    assert SECRET not in result.stdout + result.stderr


def test_one_host_option_alone_gives_a_partial_plan(
    workspace: Path, doubles: dict[str, EngineHTTPDouble]
) -> None:
    """Issue 13, item 15: --host 1809=URL alone plans 1809; the other releases are reported
    as having no host (exit 7, as for any target without a fit host), not a failed matrix."""
    # The 3.8-rc line: the seed's three releases (the other lines build on ltsc2022/ltsc2025).
    result = run_toolkit(
        "hosts", "3.8-rc-*", "--host", f"1809={doubles['1809'].url}", cwd=workspace
    )
    assert result.returncode == 7, result.stderr
    rows = {line.split()[0]: line for line in result.stdout.splitlines()[1:]}
    assert rows["3.8-rc-windowsservercore-1809"].split()[2:] == [
        doubles["1809"].url, "17763.805", "process", "ok"
    ]  # fmt: skip
    for release in ("1803", "ltsc2016"):
        row = rows[f"3.8-rc-windowsservercore-{release}"]
        assert row.split()[2:4] == ["-", "-"]
        assert f"refused: no Docker host for release {release} in the --host options" in row
        assert "'*-1809'" in row
    assert "2 of 3 build(s) have no fit host" in result.stderr
    records = json.loads(
        run_toolkit(
            "hosts", "3.8-rc-*", "--host", f"1809={doubles['1809'].url}", "--json", cwd=workspace
        ).stdout
    )
    assert [r["ok"] for r in records] == [True, False, False]
    assert records[1]["host"]["endpoint"] == "-"
