"""Several hosts inspected at once: real pywinrm against WinRM doubles, real docker-py against
Windows engine doubles, each host within its deadline, one failure never hiding the others."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import REPO
from tests.doubles.windows_engine import EngineHTTPDouble
from tests.doubles.windows_server import server_2019, server_2022
from tests.doubles.winrm_host import WinRMHostDouble
from toolkit.clients import connect
from toolkit.errors import ConfigError
from toolkit.hosts import HostsConfig, HostSpec, load_hosts
from toolkit.inspection import (
    GRACE,
    InspectTarget,
    check_hosts,
    inspect_hosts,
    plan_inspection,
    refuse_unfit,
    report_text,
)
from toolkit.matrix import Build, build_matrix
from toolkit.preflight import HostFacts, inspect_engine, plan_assignments
from toolkit.versions import parse_versions
from toolkit.winrm import open_session
from toolkit.winrm_config import Secret

PASSWORD = "double-pw-5521"


def _builds(*releases: str) -> list[Build]:
    data = json.loads((REPO / "versions.json").read_text("utf-8"))
    line = data["3.8-rc"]
    line["variants"] = [f"windows/windowsservercore-{r}" for r in releases]
    return build_matrix(parse_versions(json.dumps({"3.8-rc": line}), Path("versions.json")))


def _engine(spec: HostSpec) -> HostFacts:
    client = connect(spec, {}, timeout=10)
    try:
        return inspect_engine(client, host=spec.name)
    finally:
        client.close()


@pytest.fixture
def fleet() -> Iterator[dict[str, Any]]:
    """A fit 2019 host, a 2022 host without Hyper-V, two that never answer, one that is down."""
    with ExitStack() as stack:
        hosts = {
            "1809": stack.enter_context(WinRMHostDouble(host=server_2019(), password=PASSWORD)),
            "1803": stack.enter_context(WinRMHostDouble(host=server_2022(), password=PASSWORD)),
            "ltsc2016": stack.enter_context(WinRMHostDouble(stall=True, password=PASSWORD)),
            "ltsc2022": stack.enter_context(WinRMHostDouble(stall=True, password=PASSWORD)),
        }
        engines = {
            "1809": stack.enter_context(EngineHTTPDouble("windows-1809")),
            "1803": stack.enter_context(EngineHTTPDouble("windows-ltsc2022")),
            "ltsc2016": stack.enter_context(EngineHTTPDouble("windows-ltsc2016")),
        }
        with WinRMHostDouble() as gone:
            down = gone.url
        yield {"winrm": hosts, "engines": engines, "down": down}


def _config(tmp_path: Path, fleet: dict[str, Any], releases: tuple[str, ...]) -> HostsConfig:
    lines = []
    for release in releases:
        winrm = fleet["winrm"][release].url if release in fleet["winrm"] else fleet["down"]
        engine = fleet["engines"].get(release, fleet["engines"]["1809"])
        lines += [
            f"[hosts.{release}]",
            f'url = "{engine.url}"',
            f"[hosts.{release}.winrm]",
            f'endpoint = "{winrm}"',
            'transport = "basic"',
            'user = "builder"',
            'password_env = "DOUBLE_PW"',
        ]
    path = tmp_path / "hosts.toml"
    path.write_text("\n".join(lines) + "\n", "utf-8")
    return load_hosts(path, [], {"HOME": str(tmp_path)})


def _session(spec: Any, password: Secret | None) -> Any:
    return open_session(spec, password, operation_timeout=5)


def test_hosts_are_inspected_at_once_and_fail_alone(tmp_path: Path, fleet: dict[str, Any]) -> None:
    releases = ("1809", "1803", "ltsc2016", "ltsc2022")
    targets = plan_inspection(_builds(*releases), _config(tmp_path, fleet, releases))
    started = time.monotonic()
    reports = inspect_hosts(
        targets,
        {"DOUBLE_PW": Secret(PASSWORD)},
        session_fn=_session,
        engine_fn=_engine,
        deadline=2,
    )
    elapsed = time.monotonic() - started
    # The two silent hosts wait out their deadlines side by side, not one after the other.
    assert elapsed < 2 * 2 < 2 + GRACE
    by_release = {r.target.releases[0].key: r for r in reports}

    fit = by_release["1809"]
    assert fit.ok, fit.reason()
    assert fit.facts is not None
    assert fit.facts.os_build == "17763.805"
    assert fit.engine is not None
    assert fit.engine.os_build == "17763.805"
    assert any(v.message.startswith("the Docker API agrees") for v in fit.verdicts)

    unfit = by_release["1803"]
    assert not unfit.ok
    assert unfit.reason() == (
        "1803 host reports build 20348: it can build 1803 only with Hyper-V isolation, and "
        "Hyper-V is not installed"
    )

    stalled = by_release["ltsc2016"]
    assert not stalled.ok
    assert stalled.error is not None
    assert "did not finish within 2s" in stalled.error
    assert stalled.engine is not None  # the Docker API still answered for that host
    assert not by_release["ltsc2022"].ok


def test_a_host_that_is_down_is_reported_with_the_others(
    tmp_path: Path, fleet: dict[str, Any]
) -> None:
    config = _config(tmp_path, fleet, ("1809", "ltsc2025"))
    reports = inspect_hosts(
        plan_inspection(_builds("1809", "ltsc2025"), config),
        {"DOUBLE_PW": Secret(PASSWORD)},
        session_fn=_session,
        engine_fn=None,
        deadline=10,
    )
    assert [r.ok for r in reports] == [True, False]
    assert reports[1].error is not None
    assert "cannot be reached: Connection refused" in reports[1].error
    text = report_text(reports)
    assert "FAIL winrm: WinRM host" in text
    assert "windows   Windows Server 2019 Datacenter (Server Core, 1809), build 17763.805" in text


def test_one_endpoint_serves_every_release_planned_on_it(
    tmp_path: Path, fleet: dict[str, Any]
) -> None:
    url = fleet["winrm"]["1809"].url
    path = tmp_path / "hosts.toml"
    path.write_text(
        "".join(
            f'[hosts.{r}]\nurl = "{fleet["engines"]["1809"].url}"\n[hosts.{r}.winrm]\n'
            f'endpoint = "{url}"\ntransport = "basic"\nuser = "builder"\n'
            for r in ("1809", "ltsc2016")
        ),
        "utf-8",
    )
    targets = plan_inspection(_builds("1809", "ltsc2016"), load_hosts(path, [], {}))
    assert len(targets) == 1
    assert [r.key for r in targets[0].releases] == ["ltsc2016", "1809"]
    assert targets[0].winrm.password_env == "TOOLKIT_WINRM_PASSWORD"


def test_releases_without_winrm_settings_are_named(tmp_path: Path) -> None:
    path = tmp_path / "hosts.toml"
    path.write_text('[hosts.1809]\nurl = "tcp://127.0.0.1:2375"\n', "utf-8")
    with pytest.raises(ConfigError) as caught:
        plan_inspection(_builds("1809"), load_hosts(path, [], {}))
    assert "no WinRM settings for release(s) 1809" in caught.value.one_line()
    assert "[hosts.1809.winrm]" in caught.value.one_line()


def test_refuse_unfit_refuses_only_the_failed_hosts_builds(
    tmp_path: Path, fleet: dict[str, Any]
) -> None:
    builds = _builds("1809", "1803")
    config = _config(tmp_path, fleet, ("1809", "1803"))
    reports = inspect_hosts(
        plan_inspection(builds, config),
        {"DOUBLE_PW": Secret(PASSWORD)},
        session_fn=_session,
        engine_fn=None,
        deadline=10,
    )
    plan = plan_assignments(builds, config, lambda spec: None, None, preflight=False)
    refused = {a.release: a for a in refuse_unfit(plan, reports)}
    assert refused["1809"].ok
    error = refused["1803"].error
    assert error is not None
    assert error.exit_code == 8
    assert "failed the WinRM preflight: 1803 host reports build 20348" in error.one_line()
    assert "Install-WindowsFeature Hyper-V" in error.one_line()


def test_a_target_order_and_names(tmp_path: Path, fleet: dict[str, Any]) -> None:
    config = _config(tmp_path, fleet, ("1809",))
    (target,) = plan_inspection(_builds("1809"), config)
    assert isinstance(target, InspectTarget)
    assert target.name == fleet["engines"]["1809"].url
    assert target.docker is not None
    assert target.winrm.endpoint == fleet["winrm"]["1809"].url


def test_check_hosts_needs_every_password_before_contacting_anyone(
    tmp_path: Path, fleet: dict[str, Any]
) -> None:
    config = _config(tmp_path, fleet, ("1809",))
    with pytest.raises(ConfigError, match="environment variable DOUBLE_PW is not set"):
        check_hosts(
            _builds("1809"), config, {}, prompt=None, session_fn=_session, engine_fn=None,
            deadline=10,
        )  # fmt: skip
    assert fleet["winrm"]["1809"].actions == []
    with pytest.raises(ConfigError, match="the WinRM deadline 0 must be a positive"):
        check_hosts(
            _builds("1809"), config, {"DOUBLE_PW": PASSWORD}, prompt=None, session_fn=_session,
            engine_fn=None, deadline=0,
        )  # fmt: skip
    run = check_hosts(
        _builds("1809"),
        config,
        {"DOUBLE_PW": PASSWORD},
        prompt=None,
        session_fn=_session,
        engine_fn=None,
        deadline=10,
    )
    assert run.failure() is None
    assert run.record()["ok"] is True
    assert run.warnings == ()


def test_check_hosts_fails_with_exit_8_and_names_the_hosts(
    tmp_path: Path, fleet: dict[str, Any]
) -> None:
    config = _config(tmp_path, fleet, ("1809", "1803"))
    run = check_hosts(
        _builds("1809", "1803"),
        config,
        {"DOUBLE_PW": PASSWORD},
        prompt=None,
        session_fn=_session,
        engine_fn=None,
        deadline=10,
    )
    failure = run.failure()
    assert failure is not None
    assert failure.exit_code == 8
    assert "1 of 2 host(s) failed the WinRM check: " in failure.one_line()
    assert [h["ok"] for h in run.record()["hosts"]] == [True, False]
