"""Verify pieces that need no engine: the checks' commands and judges, JUnit XML."""

from __future__ import annotations

import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from tests.conftest import REPO, run_toolkit
from toolkit.errors import ConfigError
from toolkit.matrix import build_matrix
from toolkit.results import CheckResult
from toolkit.verify import (
    CMD_SPECIAL,
    OVERRIDE_COMMANDS,
    OVERRIDE_TOKEN,
    build_checks,
    checks_for,
    failure_summary,
    junit_xml,
)
from toolkit.versions import load_versions

# What `python --version` and `pip --version` print on a Windows image of the 3.8-rc line.
WINDOWS_PYTHON = "Python 3.8.0rc1\r\n"
WINDOWS_PIP = "pip 19.2.3 from c:\\python\\lib\\site-packages\\pip (python 3.8)\r\n"


def test_the_checks_and_their_commands() -> None:
    checks = checks_for("3.8.0rc1", "19.2.3", "windows")
    assert [c.name for c in checks] == [
        "python-version",
        "pip-version",
        "python-imports",
        "python-sqlite3",
        "python-stack-size",
        "override-cmd",
    ]
    assert checks[0].argv == ("python", "--version")
    assert checks[-1].argv == ("cmd", "/Q", "/S", "/C", "echo", OVERRIDE_TOKEN)
    assert all(not c.network for c in checks)
    linux = checks_for("3.8.0rc1", "19.2.3", "linux")
    assert linux[-1].argv == OVERRIDE_COMMANDS["linux"]
    with_network = checks_for("3.8.0rc1", "19.2.3", "windows", network=True)
    assert with_network[-1].name == "pip-install"
    assert with_network[-1].network


def test_unknown_engine_os_is_refused() -> None:
    with pytest.raises(ConfigError, match="no override-cmd check for engine OSType 'plan9'"):
        checks_for("3.8.0rc1", "19.2.3", "plan9")


def test_version_judges_on_windows_output() -> None:
    checks = {c.name: c for c in checks_for("3.8.0rc1", "19.2.3", "windows")}
    assert checks["python-version"].judge(0, WINDOWS_PYTHON) is None
    assert checks["python-version"].judge(0, "Python 3.8.0\r\n") == (
        "python --version (PYTHON_VERSION): expected 'Python 3.8.0rc1', got 'Python 3.8.0'"
    )
    assert checks["python-version"].judge(9009, "") == "exited 9009"
    assert checks["pip-version"].judge(0, WINDOWS_PIP) is None
    assert checks["pip-version"].judge(0, WINDOWS_PIP.replace("19.2.3", "19.3")) == (
        "pip version: expected 19.2.3 (PYTHON_PIP_VERSION), got 19.3"
    )
    assert "not 'pip <version> from ... (python X.Y)'" in str(
        checks["pip-version"].judge(0, "garbage")
    )
    assert checks["override-cmd"].judge(0, OVERRIDE_TOKEN + "\r\n") is None
    assert checks["override-cmd"].judge(0, "ECHO is on.\r\n") is not None


HERE = f"{sys.version_info[0]}.{sys.version_info[1]}.{sys.version_info[2]}"


@pytest.mark.parametrize("name", ["python-imports", "python-sqlite3", "python-stack-size"])
def test_python_checks_run_here(name: str) -> None:
    """The in-container Python programs pass on this interpreter, argv as given (no shell)."""
    check = next(c for c in checks_for(HERE, "y", "linux") if c.name == name)
    argv = [sys.executable, *check.argv[1:]]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 0, proc.stderr
    assert check.judge(proc.returncode, proc.stdout) is None
    assert "ok" in proc.stdout


def _run_here(
    check_argv: tuple[str, ...], *flags: str, **env: str
) -> subprocess.CompletedProcess[str]:
    assert check_argv[:2] == ("python", "-c")
    return subprocess.run(
        [sys.executable, *flags, *check_argv[1:]],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ, **env},
    )


def test_the_version_decides_the_extra_checks() -> None:
    names = {
        v: [c.name for c in checks_for(v, None, "windows")] for v in ("3.11.9", "3.12.0", "3.14.7")
    }
    assert "no-setuptools-wheel" not in names["3.11.9"]
    assert "no-setuptools-wheel" in names["3.12.0"]
    assert names["3.14.7"] == [
        "python-version",
        "pip-version",
        "python-imports",
        "python-sqlite3",
        "python-stack-size",
        "no-setuptools-wheel",
        "override-cmd",
    ]
    imports = {
        v: next(c for c in checks_for(v, None, "windows") if c.name == "python-imports")
        for v in ("3.13.15", "3.14.7", "3.15.0rc2")
    }
    assert "zstd" not in imports["3.13.15"].argv[-1]
    assert "from compression import zstd" in imports["3.14.7"].argv[-1]
    assert "from compression import zstd" in imports["3.15.0rc2"].argv[-1]


def test_the_zstd_round_trip_really_imports_compression_zstd() -> None:
    """This interpreter (3.11) has no compression.zstd: the 3.14 program must fail on it."""
    check = next(c for c in checks_for("3.14.7", None, "linux") if c.name == "python-imports")
    proc = _run_here(check.argv)
    if sys.version_info >= (3, 14):
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout.strip() == "bz2 lzma zlib zstd ok"
    else:
        assert proc.returncode == 1
        assert "No module named 'compression'" in proc.stderr


def test_setuptools_or_wheel_present_fails_the_check(tmp_path: Path) -> None:
    check = next(c for c in checks_for("3.12.1", None, "linux") if c.name == "no-setuptools-wheel")
    # -I -S: no site-packages, no PYTHONPATH: neither is importable.
    clean = _run_here(check.argv, "-I", "-S")
    assert clean.returncode == 0, clean.stderr
    assert clean.stdout.strip() == "setuptools and wheel absent"
    (tmp_path / "wheel").mkdir()
    (tmp_path / "wheel" / "__init__.py").write_text("")
    with_wheel = _run_here(check.argv, "-S", PYTHONPATH=str(tmp_path))
    assert with_wheel.returncode == 1
    assert "AssertionError: installed: wheel" in with_wheel.stderr


def test_pip_without_a_pin_reports_its_version_and_needs_this_python() -> None:
    checks = {c.name: c for c in checks_for("3.14.7", None, "windows")}
    pip = checks["pip-version"]
    out = "pip 25.2 from C:\\Python\\Lib\\site-packages\\pip (python 3.14)\r\n"
    assert pip.judge(0, out) is None
    assert pip.report is not None
    assert pip.report(out) == "pip 25.2 (python 3.14)"
    assert pip.judge(0, out.replace("(python 3.14)", "(python 3.13)")) == (
        "pip 25.2 runs under Python 3.13, not 3.14"
    )
    assert "not 'pip <version> from ... (python X.Y)'" in str(pip.judge(0, "pip 25.2\r\n"))
    pinned = {c.name: c for c in checks_for("3.8.0rc1", "19.2.3", "windows")}["pip-version"]
    assert pinned.report is None


def test_nanoserver_checks_go_through_cmd_and_survive_its_parsing() -> None:
    servercore = checks_for("3.14.7", None, "windows", network=True)
    nano = checks_for("3.14.7", None, "windows", network=True, flavor="nanoserver")
    assert [c.name for c in nano] == [c.name for c in servercore]
    for core, check in zip(servercore, nano, strict=True):
        if check.name == "override-cmd":
            assert check.argv == core.argv == OVERRIDE_COMMANDS["windows"]
            continue
        assert check.argv == ("cmd", "/S", "/C", *core.argv)
        for arg in check.argv:
            assert "\n" not in arg, (check.name, arg)
            assert not set(arg) & CMD_SPECIAL, (check.name, arg)
    with pytest.raises(ConfigError, match="no checks for image flavor 'nanoserverr'"):
        checks_for("3.14.7", None, "windows", flavor="nanoserverr")


def test_build_checks_follow_the_target() -> None:
    builds = {b.id: b for b in build_matrix(load_versions(REPO / "versions.json"))}
    nano = build_checks(builds["3.14-nanoserver-ltsc2025"], "windows")
    assert nano[0].argv == ("cmd", "/S", "/C", "python", "--version")
    assert nano[0].judge(0, "Python 3.14.7\r\n") is None
    seed = build_checks(builds["3.8-rc-windowsservercore-1809"], "windows")
    assert seed[1].judge(0, WINDOWS_PIP) is None
    assert [c.name for c in seed] == [
        "python-version",
        "pip-version",
        "python-imports",
        "python-sqlite3",
        "python-stack-size",
        "override-cmd",
    ]


def _result(name: str, passed: bool, message: str | None = None) -> CheckResult:
    return CheckResult(
        name=name,
        image="python:3.8.0rc1-windowsservercore-1809",
        passed=passed,
        duration=1.25,
        argv=("python", "--version"),
        output="Python 3.8.0\n",
        message=message,
    )


def test_failure_summary() -> None:
    assert failure_summary([_result("a", True)]) is None
    text = failure_summary([_result("a", True), _result("python-version", False, "expected x")])
    assert text == "1 of 2 checks failed: python-version: expected x"


def test_junit_xml_parses_and_counts() -> None:
    xml = junit_xml(
        {
            "3.8-rc-windowsservercore-1809": [
                _result("python-version", False, "expected 'Python 3.8.0rc1', got <&>"),
                _result("pip-version", True),
            ],
            "3.8-rc-windowsservercore-1803": [_result("python-version", True)],
        }
    )
    assert xml.startswith("<?xml")
    root = ET.fromstring(xml)
    assert root.tag == "testsuites"
    assert root.get("tests") == "3"
    assert root.get("failures") == "1"
    suites = root.findall("testsuite")
    assert [s.get("name") for s in suites] == [
        "3.8-rc-windowsservercore-1809",
        "3.8-rc-windowsservercore-1803",
    ]
    assert suites[0].get("failures") == "1"
    cases = suites[0].findall("testcase")
    assert [c.get("name") for c in cases] == ["python-version", "pip-version"]
    failure = cases[0].find("failure")
    assert failure is not None
    assert failure.get("message") == "expected 'Python 3.8.0rc1', got <&>"
    assert cases[1].find("failure") is None
    assert cases[0].get("time") == "1.250"


def test_junit_xml_parses_when_the_output_has_control_characters() -> None:
    coloured = CheckResult(
        name="pip-version",
        image="python:3.8.0rc1-windowsservercore-1809",
        passed=False,
        duration=0.5,
        argv=("pip", "--version"),
        output="\x1b[31mERROR\x1b[0m: boom\x00\r\n",
        message="pip --version printed '\x1b[31mERROR'",
    )
    root = ET.fromstring(junit_xml({"3.8-rc-windowsservercore-1809": [coloured]}))
    case = root.find("testsuite/testcase")
    assert case is not None
    failure = case.find("failure")
    assert failure is not None
    assert failure.get("message") == "pip --version printed '\\x1b[31mERROR'"
    assert case.findtext("system-out") == "\\x1b[31mERROR\\x1b[0m: boom\\x00\n"


def test_verify_refuses_a_timeout_that_is_not_positive(workspace: Path) -> None:
    result = run_toolkit(
        "verify",
        "3.8-rc-windowsservercore-1809",
        "--no-preflight",
        "--host",
        f"1809=unix://{workspace}/no-engine.sock",
        "--timeout",
        "0",
        cwd=workspace,
    )
    assert result.returncode == 2, result.stdout + result.stderr
    assert result.stderr.endswith(
        "Error: Invalid value for '--timeout': '0' is not a number of seconds: use more than 0, "
        "at most 2592000 (30 days)\n"
    )


def test_the_step_summary_of_verify_has_a_row_per_check_and_names_what_was_not_checked(
    tmp_path: Path,
) -> None:
    import io

    from toolkit.console import Console
    from toolkit.progress import checks_markdown
    from toolkit.results import VerifyResult

    failing = CheckResult(
        name="python-imports",
        image="x",
        passed=False,
        duration=2.0,
        argv=("python", "-c", "import ssl"),
        output="Traceback (most recent call last):\nImportError: DLL load failed\n",
        message="exit 1 | ImportError",
    )
    results = [
        VerifyResult(
            build_id="3.14-windowsservercore-ltsc2025",
            host="tcp://h:2376",
            checks=(_result("python-version", True), failing),
        ),
        VerifyResult(build_id="3.14-nanoserver-ltsc2025", host="-", error="no Docker host"),
    ]
    summary = tmp_path / "summary.md"
    summary.write_text("### toolkit build\n\nearlier step\n")
    console = Console(io.StringIO(), io.StringIO(), {"GITHUB_STEP_SUMMARY": str(summary)})
    console.step_summary(checks_markdown(results))
    text = summary.read_text()
    assert text.startswith("### toolkit build\n\nearlier step\n### toolkit verify\n")
    rows = [line for line in text.splitlines() if line.startswith("| 3.14-")]
    assert rows == [
        "| 3.14-windowsservercore-ltsc2025 | python-version | pass | 1.2s |  |",
        "| 3.14-windowsservercore-ltsc2025 | python-imports | FAIL :x: | 2.0s | "
        "exit 1 \\| ImportError |",
    ]
    assert "2 check(s) on 1 image(s): 1 failed" in text
    assert "- 3.14-nanoserver-ltsc2025: not checked: no Docker host :x:" in text
    folded = text[text.index("<details><summary>3.14-windowsservercore-ltsc2025: python-imports") :]
    assert "ImportError: DLL load failed" in folded
    assert folded.rstrip().endswith("</details>")
    # no summary file set: nothing is written anywhere
    Console(io.StringIO(), io.StringIO(), {}).step_summary(checks_markdown(results))
