"""Against a real Windows host's WinRM listener, only when TOOLKIT_TEST_WINRM_ENDPOINT names one.

    TOOLKIT_TEST_WINRM_ENDPOINT=https://win2019-build.example.net:5986/wsman \\
    TOOLKIT_TEST_WINRM_USER='EXAMPLE\\toolkit-inspect' TOOLKIT_TEST_WINRM_PASSWORD=... \\
    TOOLKIT_TEST_WINRM_CA=certs/win2019/winrm-ca.pem \\
    python -m pytest tests/windows/test_winrm_host.py

``TOOLKIT_TEST_WINRM_TRANSPORT`` defaults to ``ntlm``; ``TOOLKIT_TEST_WINRM_CA`` is optional
(without it the listener's certificate must chain to requests' bundle). Run this directory on
its own: the Docker Engine tests move the pytest process into a loopback-only network namespace,
from which a remote host cannot be reached. Without the variable these tests skip; that is
expected everywhere but on a machine with such a host. See README.md, "Host setup".
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import pytest

from toolkit.errors import WinRMError
from toolkit.verdicts import judge
from toolkit.windows import releases
from toolkit.winhost import WindowsHostFacts, inspect_windows_host
from toolkit.winrm import DeadlineError, open_session, run_powershell
from toolkit.winrm_config import Secret, WinRMSpec, parse_winrm_table

ENV = "TOOLKIT_TEST_WINRM_ENDPOINT"
pytestmark = pytest.mark.windows


@pytest.fixture(scope="module")
def spec(tmp_path_factory: pytest.TempPathFactory) -> WinRMSpec:
    endpoint = os.environ.get(ENV)
    if not endpoint:
        pytest.skip(f"{ENV} is not set: no real WinRM host to test against")
    if os.environ.get("TOOLKIT_TEST_NETNS"):
        pytest.skip("run tests/windows on its own: this session is in a loopback-only netns")
    table: dict[str, Any] = {
        "endpoint": endpoint,
        "transport": os.environ.get("TOOLKIT_TEST_WINRM_TRANSPORT", "ntlm"),
        "password_env": "TOOLKIT_TEST_WINRM_PASSWORD",
    }
    if os.environ.get("TOOLKIT_TEST_WINRM_USER"):
        table["user"] = os.environ["TOOLKIT_TEST_WINRM_USER"]
    if os.environ.get("TOOLKIT_TEST_WINRM_CA"):
        table["ca"] = os.environ["TOOLKIT_TEST_WINRM_CA"]
    return parse_winrm_table(
        table,
        where=ENV,
        docker_host=None,
        base=Path.cwd(),
        home=str(Path.home()),
    )


def _session(spec: WinRMSpec) -> Any:
    password = os.environ.get("TOOLKIT_TEST_WINRM_PASSWORD")
    return open_session(spec, Secret(password) if password else None)


@pytest.fixture(scope="module")
def facts(spec: WinRMSpec) -> WindowsHostFacts:
    return inspect_windows_host(_session(spec), deadline=120)


def test_the_check_script_reads_the_host(facts: WindowsHostFacts) -> None:
    assert facts.build >= 14393
    assert facts.revision > 0
    assert facts.product_name.startswith("Windows")
    assert facts.disks is not None
    assert facts.system_drive in facts.disks
    assert set(facts.features) == {"Containers", "Hyper-V"}
    assert facts.reboot is not None
    # Parts the account may not read are named, not fatal.
    for problem in facts.errors:
        assert problem.split(":", 1)[0] in {"docker", "listen", "version", "config", "features"}


def test_every_release_is_judged(facts: WindowsHostFacts) -> None:
    verdicts = judge(facts, list(releases().values()))
    builds = [v for v in verdicts if v.check == "build"]
    assert len(builds) == len(releases())
    own = facts.release
    if own is not None:
        assert any(
            v.status == "pass" and f"builds {own.key} with process" in v.message for v in builds
        )


def test_a_powershell_error_comes_back_readable(spec: WinRMSpec) -> None:
    result = run_powershell(
        _session(spec), "Get-Item -LiteralPath 'C:\\toolkit-no-such-path' -ErrorAction Stop"
    )
    assert result.exit_code != 0
    assert "Cannot find path" in result.stderr
    assert "CLIXML" not in result.stderr
    assert "_x000D_" not in result.stderr


def test_the_deadline_ends_a_command_that_runs_on(spec: WinRMSpec) -> None:
    started = time.monotonic()
    with pytest.raises(DeadlineError):
        run_powershell(_session(spec), "Start-Sleep -Seconds 60", deadline=5)
    assert time.monotonic() - started < 15


def test_a_wrong_password_is_rejected(spec: WinRMSpec) -> None:
    if not spec.needs_password:
        pytest.skip(f"transport {spec.transport} uses no password")
    with pytest.raises(WinRMError, match="rejected the credentials"):
        inspect_windows_host(open_session(spec, Secret("toolkit-wrong-password")), deadline=60)


def test_toolkit_inspect_on_the_real_host(
    spec: WinRMSpec, facts: WindowsHostFacts, tmp_path: Path
) -> None:
    """The command end to end; the Docker API too when TOOLKIT_TEST_WINDOWS_DOCKER_HOST is set."""
    import json

    from tests.conftest import REPO, run_toolkit

    own = facts.release
    if own is None:
        pytest.skip(f"host build {facts.build} is not a release in the table")
    name, line = next(iter(json.loads((REPO / "versions.json").read_text("utf-8")).items()))
    line["variants"] = [f"windows/windowsservercore-{own.key}"]
    (tmp_path / "versions.json").write_text(json.dumps({name: line}), "utf-8")
    docker = os.environ.get("TOOLKIT_TEST_WINDOWS_DOCKER_HOST")
    winrm = {k: v for k, v in spec.record().items() if k in ("endpoint", "transport", "user")}
    winrm["password_env"] = "TOOLKIT_TEST_WINRM_PASSWORD"
    if spec.ca is not None:
        winrm["ca"] = str(spec.ca.resolve())
    lines = [f"[hosts.{own.key}]", f'url = "{docker or "npipe:////./pipe/docker_engine"}"']
    lines.append(f"[hosts.{own.key}.winrm]")
    lines += [f"{k} = {json.dumps(v)}" for k, v in winrm.items() if v is not None]
    (tmp_path / "hosts.toml").write_text("\n".join(lines) + "\n", "utf-8")
    passthrough = ("TOOLKIT_TEST_WINRM_PASSWORD", "DOCKER_TLS_VERIFY", "DOCKER_CERT_PATH", "HOME")
    env = {k: os.environ[k] for k in passthrough if k in os.environ}
    args = ["inspect", "--json"] if docker else ["inspect", "--json", "--no-docker"]
    result = run_toolkit(*args, cwd=tmp_path, env=env, timeout=300)
    assert result.returncode in (0, 8), result.stderr
    (host,) = json.loads(result.stdout)["hosts"]
    assert host["facts"]["build"] == facts.build
    assert host["error"] is None
    password = os.environ.get("TOOLKIT_TEST_WINRM_PASSWORD")
    if password:
        assert password not in result.stdout + result.stderr
