"""Verdicts about a Windows build host, from its facts, its Docker API and the plan."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from tests.doubles.windows_engine import RecordedEngine
from toolkit.preflight import HostFacts, inspect_engine
from toolkit.verdicts import FAIL, MIN_DATA_ROOT_FREE, PASS, WARN, Verdict, judge
from toolkit.windows import WindowsRelease, find_release, releases
from toolkit.winhost import Disk, Listener, WindowsHostFacts

GB = 10**9


def _release(key: str) -> WindowsRelease:
    found = find_release(key)
    assert found is not None
    return found


def _facts(build: int = 17763, revision: int = 805, **changes: Any) -> WindowsHostFacts:
    base = WindowsHostFacts(
        endpoint="https://win:5986/wsman",
        build=build,
        revision=revision,
        product_name="Windows Server 2019 Datacenter",
        docker_state="Running",
        docker_command='"C:\\Program Files\\Docker\\dockerd.exe" --run-service',
        docker_version="18.09.11",
        daemon_config={"hosts": ["tcp://0.0.0.0:2376", "npipe://"], "tlsverify": True},
        listeners=(Listener("0.0.0.0", 2376),),
        data_root="C:\\ProgramData\\docker",
        disks={"C:": Disk(80 * GB, 127 * GB)},
        features={"Containers": "installed", "Hyper-V": "not installed"},
        reboot=(),
    )
    return replace(base, **changes)


def _by_check(verdicts: list[Verdict], check: str) -> list[Verdict]:
    return [v for v in verdicts if v.check == check]


def _one(verdicts: list[Verdict], check: str) -> Verdict:
    (found,) = _by_check(verdicts, check)
    return found


def test_a_fit_host_passes_everything() -> None:
    engine = inspect_engine(RecordedEngine("windows-1809"), host="tcp://win:2376")
    verdicts = judge(_facts(), [_release("1809")], engine=engine)
    assert [v.status for v in verdicts] == [PASS] * len(verdicts)
    assert {v.check for v in verdicts} == {
        "build", "containers", "docker", "tls", "disk", "reboot", "engine"
    }  # fmt: skip
    assert _one(verdicts, "engine").message == (
        "the Docker API agrees: build 17763.805, engine 18.09.11"
    )


def test_the_issues_example_hyperv_missing() -> None:
    verdict = _one(judge(_facts(build=20348), [_release("1809")]), "build")
    assert verdict.status == FAIL
    assert verdict.message == (
        "1809 host reports build 20348: it can build 1809 only with Hyper-V isolation, "
        "and Hyper-V is not installed"
    )
    assert verdict.fix is not None
    assert "Install-WindowsFeature Hyper-V" in verdict.fix


@pytest.mark.parametrize("release", list(releases().values()), ids=lambda r: r.key)
def test_every_known_release_against_hosts_of_every_build(release: WindowsRelease) -> None:
    """Each release of windows-releases.toml (whatever it holds) on each known host build."""
    for host in releases().values():
        for hyperv in ("installed", "not installed"):
            features = {"Containers": "installed", "Hyper-V": hyperv}
            verdict = _one(judge(_facts(build=host.build, features=features), [release]), "build")
            if host.build < release.build:
                assert verdict.status == FAIL
                assert "never runs on an older host" in verdict.message
            elif host.build == release.build or (host.build, release.build) == (26100, 20348):
                assert verdict.status == PASS
                assert "process isolation" in verdict.message
            else:
                assert verdict.status == (PASS if hyperv == "installed" else FAIL)
                assert "Hyper-V isolation" in verdict.message


def test_unknown_hyperv_state_is_a_warning() -> None:
    facts = _facts(build=26100, features={"Containers": "installed", "Hyper-V": "unknown"})
    verdict = _one(judge(facts, [_release("ltsc2016")]), "build")
    assert verdict.status == WARN
    assert "Hyper-V could not be checked" in verdict.message


def test_containers_feature_missing() -> None:
    facts = _facts(features={"Containers": "not installed", "Hyper-V": "not installed"})
    verdict = _one(judge(facts, []), "containers")
    assert (verdict.status, verdict.fix) == (FAIL, "Install-WindowsFeature Containers -Restart")


def test_docker_stopped_or_missing() -> None:
    stopped = _one(judge(_facts(docker_state="Stopped", listeners=None), []), "docker")
    assert stopped.status == FAIL
    assert stopped.message == "the docker service is Stopped (dockerd 18.09.11)"
    assert stopped.fix is not None
    assert "Start-Service docker" in stopped.fix
    missing = _one(judge(_facts(docker_state=None, docker_version=None), []), "docker")
    assert (missing.status, missing.message) == (FAIL, "there is no docker service on the host")
    unreadable = _facts(docker_state=None, errors=("docker: Access denied ",))
    assert _one(judge(unreadable, []), "docker").status == WARN


def test_plain_tcp_listener() -> None:
    plain = _facts(
        docker_command='"C:\\Program Files\\Docker\\dockerd.exe" --run-service -H npipe:// '
        "-H 0.0.0.0:2375",
        daemon_config=None,
        listeners=(Listener("0.0.0.0", 2375),),
    )
    assert plain.docker_hosts == ["npipe://", "0.0.0.0:2375"]
    verdict = _one(judge(plain, []), "tls")
    assert verdict.status == FAIL
    assert verdict.message == (
        "dockerd listens on 0.0.0.0:2375 with plain TCP: anyone who reaches the port controls "
        "the host"
    )
    loopback = replace(plain, listeners=(Listener("127.0.0.1", 2375), Listener("::1", 2375)))
    verdict = _one(judge(loopback, []), "tls")
    assert verdict.status == WARN
    assert "127.0.0.1:2375, [::1]:2375" in verdict.message
    half = replace(plain, daemon_config={"tls": True})
    assert "TLS without tlsverify" in _one(judge(half, []), "tls").message
    flag = replace(plain, docker_command=f"{plain.docker_command} --tlsverify")
    assert _one(judge(flag, []), "tls").status == PASS
    unknown = replace(plain, daemon_config_error="Access to the path 'x' is denied.")
    assert _one(judge(unknown, []), "tls").status == WARN
    pipe_only = replace(plain, listeners=())
    assert _one(judge(pipe_only, []), "tls").status == PASS


def test_free_space_on_the_data_root() -> None:
    low = _facts(disks={"C:": Disk(12 * GB, 127 * GB)})
    verdict = _one(judge(low, []), "disk")
    assert verdict.status == FAIL
    assert verdict.message == (
        "12.0 GB free on C: (Docker's data root C:\\ProgramData\\docker); a servercore build "
        "needs 20.0 GB"
    )
    assert MIN_DATA_ROOT_FREE == 20 * GB
    moved = _facts(
        data_root="D:\\docker",
        disks={"C:": Disk(3 * GB, 60 * GB), "D:": Disk(200 * GB, 250 * GB)},
    )
    found = _by_check(judge(moved, []), "disk")
    assert [v.status for v in found] == [PASS, WARN]
    assert "on the system drive C:" in found[1].message
    nowhere = _facts(data_root="\\\\?\\Volume{1}\\docker")
    assert _one(judge(nowhere, []), "disk").status == WARN


def test_pending_reboots() -> None:
    blocking = _one(
        judge(_facts(reboot=("ComponentBasedServicing", "WindowsUpdate")), []), "reboot"
    )
    assert blocking.status == FAIL
    assert "(Component Based Servicing, Windows Update)" in blocking.message
    renames = _one(judge(_facts(reboot=("PendingFileRename",)), []), "reboot")
    assert renames.status == WARN


def _engine(**changes: Any) -> HostFacts:
    return replace(inspect_engine(RecordedEngine("windows-1809"), host="tcp://win:2376"), **changes)


def test_the_docker_api_disagrees() -> None:
    other = _one(judge(_facts(), [], engine=_engine(build=20348, revision=2461)), "engine")
    assert other.status == FAIL
    assert "the Docker API reports build 20348, the registry over WinRM build 17763" in (
        other.message
    )
    older = _by_check(judge(_facts(revision=1000), [], engine=_engine()), "engine")
    assert [v.status for v in older] == [WARN]
    assert "an update was installed since dockerd started" in older[0].message
    upgraded = _by_check(judge(_facts(docker_version="20.10.9"), [], engine=_engine()), "engine")
    assert [v.status for v in upgraded] == [WARN]
    assert "the running engine is 18.09.11, dockerd.exe on disk is 20.10.9" in upgraded[0].message
    linux = _one(judge(_facts(), [], engine=_engine(os_type="linux")), "engine")
    assert linux.status == FAIL


def test_the_docker_api_does_not_answer() -> None:
    error = "Docker host tcp://win:2376 does not answer: Connection refused"
    running = _one(judge(_facts(), [], engine_error=error), "engine")
    assert running.status == FAIL
    assert running.message.endswith(error)
    stopped = judge(_facts(docker_state="Stopped"), [], engine_error=error)
    assert _by_check(stopped, "engine") == []  # the docker verdict already says it
    assert _one(stopped, "docker").status == FAIL
