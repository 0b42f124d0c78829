"""Verify pieces that need no engine: the checks' commands and judges, JUnit XML."""

from __future__ import annotations

import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from tests.conftest import run_toolkit
from toolkit.errors import ConfigError
from toolkit.results import CheckResult
from toolkit.verify import (
    OVERRIDE_COMMANDS,
    OVERRIDE_TOKEN,
    checks_for,
    failure_summary,
    junit_xml,
)

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
    assert "not 'pip <version> from ...'" in str(checks["pip-version"].judge(0, "garbage"))
    assert checks["override-cmd"].judge(0, OVERRIDE_TOKEN + "\r\n") is None
    assert checks["override-cmd"].judge(0, "ECHO is on.\r\n") is not None


@pytest.mark.parametrize("name", ["python-imports", "python-sqlite3", "python-stack-size"])
def test_python_checks_run_here(name: str) -> None:
    """The in-container Python programs pass on this interpreter, argv as given (no shell)."""
    check = next(c for c in checks_for("x", "y", "linux") if c.name == name)
    argv = [sys.executable, *check.argv[1:]]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 0, proc.stderr
    assert check.judge(proc.returncode, proc.stdout) is None
    assert "ok" in proc.stdout


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
    assert result.stderr == (
        "error: --timeout 0 must be positive and finite (seconds per check, at most 2.592e+06)\n"
    )
