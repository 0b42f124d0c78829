"""Preflight against the payloads real Windows engines return (recorded; see fixtures/engines)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import REPO
from tests.doubles.windows_engine import (
    WINDOWS_HOSTS,
    EngineHTTPDouble,
    RecordedEngine,
    payloads,
)
from toolkit.clients import connect
from toolkit.errors import ConfigError, HostError
from toolkit.hosts import HostSpec, load_hosts
from toolkit.matrix import Build, build_matrix
from toolkit.preflight import (
    check_engine,
    choose_isolation,
    inspect_engine,
    parse_kernel_build,
    parse_revision,
    plan_assignments,
)
from toolkit.versions import parse_versions

RELEASES = ("ltsc2016", "1803", "1809", "ltsc2022", "ltsc2025")

# host -> isolation per target release (None: refused, host older than the image).
EXPECTED = {
    "windows-ltsc2016": ("process", None, None, None, None),
    "windows-1803": ("hyperv", "process", None, None, None),
    "windows-1809": ("hyperv", "hyperv", "process", None, None),
    "windows-ltsc2022": ("hyperv", "hyperv", "hyperv", "process", None),
    # Server 2025 runs 2022 images with process isolation (Microsoft's one exception).
    "windows-ltsc2025": ("hyperv", "hyperv", "hyperv", "process", "process"),
}


def _builds(releases: tuple[str, ...] = RELEASES) -> list[Build]:
    data = json.loads((REPO / "versions.json").read_text("utf-8"))
    line = data["3.8-rc"]
    line["variants"] = [f"windows/windowsservercore-{r}" for r in releases]
    versions = parse_versions(json.dumps({"3.8-rc": line}), Path("versions.json"))
    return build_matrix(versions)


@pytest.mark.parametrize(
    ("host", "build", "revision", "os_build"),
    [
        ("windows-ltsc2016", 14393, 3274, "14393.3274"),
        ("windows-1803", 17134, 1069, "17134.1069"),
        ("windows-1809", 17763, 805, "17763.805"),
        ("windows-ltsc2022", 20348, 2461, "20348.2461"),
        ("windows-ltsc2025", 26100, 3194, "26100.3194"),
        ("windows-ltsc2016-docker-1.12", 14393, None, "14393"),
    ],
)
def test_inspect_reads_build_and_revision(
    host: str, build: int, revision: int | None, os_build: str
) -> None:
    facts = inspect_engine(RecordedEngine(host), host="tcp://win:2376")
    assert facts.os_type == "windows"
    assert (facts.build, facts.revision, facts.os_build) == (build, revision, os_build)
    assert facts.endpoint == "tcp://win:2376"
    assert facts.architecture == "x86_64"


def test_kernel_version_parsing() -> None:
    assert parse_kernel_build("10.0 17763 (17763.1.amd64fre.rs5_release.180914-1434)") == 17763
    assert parse_kernel_build("10.0 26100 (26100.1.amd64fre.ge_release.240331-1435)") == 26100
    assert parse_kernel_build("6.1.0-18-amd64") is None
    assert parse_kernel_build("") is None
    digits = "7" * 5000  # more than int() converts: no ValueError, just no build
    assert parse_kernel_build(f"10.0 {digits} (x)") is None
    assert parse_kernel_build(f"{digits}.0 17763 (x)") is None
    assert parse_revision(f"Windows Server (OS Build 17763.{digits})", 17763) is None


@pytest.mark.parametrize("host", WINDOWS_HOSTS)
def test_isolation_follows_microsofts_rules(host: str) -> None:
    facts = inspect_engine(RecordedEngine(host), host=host)
    check_engine(facts)
    for release, expected in zip(RELEASES, EXPECTED[host], strict=True):
        if expected is None:
            with pytest.raises(HostError) as caught:
                choose_isolation(facts, release, None)
            message = caught.value.one_line()
            assert f"runs Windows build {facts.build}" in message
            assert f"(build {_release_build(release)})" in message
            assert host in message
            assert caught.value.exit_code == 7
        else:
            assert choose_isolation(facts, release, None) == expected, (host, release)


def _release_build(key: str) -> int:
    from toolkit.windows import find_release

    release = find_release(key)
    assert release is not None
    return release.build


def test_isolation_override_never_runs_a_newer_image_on_an_older_host() -> None:
    facts = inspect_engine(RecordedEngine("windows-1809"), host="h")
    assert choose_isolation(facts, "1809", "hyperv") == "hyperv"
    assert choose_isolation(facts, "ltsc2016", "process") == "process"
    with pytest.raises(HostError, match="older than the ltsc2022 image"):
        choose_isolation(facts, "ltsc2022", "hyperv")
    with pytest.raises(ConfigError, match="not an isolation mode"):
        choose_isolation(facts, "1809", "container")


def test_linux_engine_is_refused_for_windows_targets() -> None:
    engine = RecordedEngine("windows-1809")
    engine._info = {**engine._info, "OSType": "linux", "KernelVersion": "6.1.0-18-amd64"}
    facts = inspect_engine(engine, host="unix:///var/run/docker.sock")
    assert facts.build is None
    with pytest.raises(HostError) as caught:
        choose_isolation(facts, "1809", None)
    assert "runs linux containers (OSType 'linux'); 1809 needs a Windows engine" in str(
        caught.value
    )
    assert "--no-preflight" in str(caught.value)


def test_old_engine_api_is_refused() -> None:
    facts = inspect_engine(RecordedEngine("windows-ltsc2016-docker-1.12"), host="tcp://old:2376")
    with pytest.raises(HostError) as caught:
        check_engine(facts)
    assert "speaks API 1.25 (engine 1.12.2-cs2-ws-beta); the toolkit needs 1.30" in str(
        caught.value
    )
    for odd in ("", "one.forty", "1." + "4" * 5000):
        with pytest.raises(HostError, match="reports API version"):
            check_engine(dataclasses.replace(facts, api_version=odd))


def test_engine_that_does_not_answer() -> None:
    class Silent:
        def version(self) -> dict[str, Any]:
            raise ConnectionError("Connection refused")

        def info(self) -> dict[str, Any]:
            raise AssertionError("not reached")

    with pytest.raises(HostError, match="Docker host tcp://gone:2376 does not answer"):
        inspect_engine(Silent(), host="tcp://gone:2376")


def test_plan_contacts_each_host_once_and_isolates_refusals() -> None:
    config = load_hosts(
        None,
        ["ltsc2016=tcp://127.0.0.1:1", "1803=tcp://127.0.0.1:2", "1809=tcp://127.0.0.1:3",
         "ltsc2022=tcp://127.0.0.1:3", "ltsc2025=tcp://127.0.0.1:4"],
        {},
    )  # fmt: skip
    engines = {
        "tcp://127.0.0.1:1": RecordedEngine("windows-ltsc2016"),
        "tcp://127.0.0.1:3": RecordedEngine("windows-1809"),
        "tcp://127.0.0.1:4": RecordedEngine("windows-ltsc2025"),
    }
    contacted: list[str] = []

    def connect_fn(spec: HostSpec) -> RecordedEngine:
        contacted.append(spec.url)
        if spec.url not in engines:
            raise HostError(f"Docker host {spec.name} cannot be reached: Connection refused")
        return engines[spec.url]

    plan = plan_assignments(_builds(), config, connect_fn, None, True)
    assert sorted(contacted) == sorted(set(contacted))  # once per host
    by_release = {a.release: a for a in plan}
    assert by_release["ltsc2016"].isolation == "process"
    assert by_release["1803"].error is not None
    assert "cannot be reached" in by_release["1803"].error.one_line()
    assert by_release["1809"].isolation == "process"
    assert by_release["ltsc2022"].error is not None  # the 1809 host is older than 2022
    assert by_release["ltsc2022"].facts is not None
    assert by_release["ltsc2025"].isolation == "process"
    assert [a.ok for a in plan] == [True, False, True, False, True]
    record = by_release["1809"].record()
    assert record["host_build"] == "17763.805"
    assert record["host"]["endpoint"] == "tcp://127.0.0.1:3"


def test_plan_without_preflight_contacts_nobody() -> None:
    config = load_hosts(None, [], {})

    def connect_fn(spec: HostSpec) -> Any:
        raise AssertionError("no host may be contacted without preflight")

    plan = plan_assignments(_builds(("1809",)), config, connect_fn, "hyperv", False)
    assert [(a.release, a.isolation, a.facts, a.ok) for a in plan] == [
        ("1809", "hyperv", None, True)
    ]


@pytest.mark.parametrize("preflight", [True, False])
def test_a_release_without_host_is_refused_alone(tmp_path: Path, preflight: bool) -> None:
    """Issue 13, item 15: --host 1809=URL (or a hosts.toml with 1809 only) plans the 1809
    targets; the others are refused, named, and never contacted."""
    with EngineHTTPDouble("windows-1809") as double:
        config = load_hosts(None, [f"1809={double.url}"], {"DOCKER_HOST": "unix:///unused"})
        contacted: list[str] = []

        def connect_fn(spec: HostSpec) -> Any:
            contacted.append(spec.name)
            return connect(spec, {})

        plan = plan_assignments(
            _builds(("1809", "1803", "ltsc2016")), config, connect_fn, None, preflight
        )
    by_release = {a.release: a for a in plan}
    assert by_release["1809"].ok
    assert by_release["1809"].host.url == double.url
    assert by_release["1809"].isolation == ("process" if preflight else None)
    assert contacted == ([double.url] if preflight else [])
    for release in ("1803", "ltsc2016"):
        refused = by_release[release]
        assert isinstance(refused.error, HostError)
        assert refused.host.name == "-"
        assert refused.isolation is None
        message = refused.error.one_line()
        assert (
            f"no Docker host for release {release} in the --host options (configured: 1809)"
            in message
        )
        assert f"pass --host {release}=URL" in message
        assert "select only the configured release: '*-1809'" in message


@pytest.mark.parametrize("host", WINDOWS_HOSTS)
def test_real_docker_client_against_http_double(host: str) -> None:
    """docker-py itself (version negotiation, JSON decoding) against a Windows engine double."""
    with EngineHTTPDouble(host) as double:
        spec = load_hosts(None, [f"1809={double.url}"], {}).for_release("1809")
        client = connect(spec, {})
        try:
            facts = inspect_engine(client, host=spec.name)
        finally:
            client.close()
        version, _info = payloads(host)
        assert client.api._version == version["ApiVersion"]  # negotiated with the double
        assert facts.os_type == "windows"
        assert facts.build == inspect_engine(RecordedEngine(host)).build
        assert any(path.endswith("/info") for path in double.requests)
