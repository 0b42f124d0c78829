"""WinRM host inspection: real pywinrm against a WinRM test double on 127.0.0.1."""

from __future__ import annotations

import time
from typing import Any

import pytest

from tests.doubles.winrm_host import WinRMHostDouble
from toolkit.errors import ConfigError, WinRMError
from toolkit.winrm import (
    INSPECT_SCRIPT,
    CommandResult,
    inspect_host,
    open_session,
    run_powershell,
)


def _session(double: WinRMHostDouble, password: str | None = None) -> object:
    return open_session(
        double.url,
        username=double.username,
        password=password or double.password,
        transport="plaintext",
        operation_timeout=5,
    )


def test_inspect_reads_build_and_revision_from_the_registry() -> None:
    with WinRMHostDouble() as double:
        facts = inspect_host(_session(double))
    assert (facts.build, facts.revision, facts.os_build) == (17763, 805, "17763.805")
    assert facts.release is not None
    assert facts.release.key == "1809"
    assert facts.product_name == "Windows Server 2019 Datacenter"
    assert facts.installation_type == "Server Core"
    assert facts.endpoint == double.url
    assert double.scripts == [INSPECT_SCRIPT]
    # All five actions, each shell closed again.
    assert double.actions == ["Create", "Command", "Receive", "Receive", "Signal", "Delete"]
    assert not double.open_shells


def test_operation_timeouts_are_retried() -> None:
    registry = {"CurrentBuildNumber": "14393", "UBR": 3274,
                "ProductName": "Windows Server 2016 Datacenter", "InstallationType": "Server"}  # fmt: skip
    with WinRMHostDouble(registry=registry, timeouts_before_output=3) as double:
        facts = inspect_host(_session(double))
    assert facts.os_build == "14393.3274"
    assert facts.release is not None
    assert facts.release.key == "ltsc2016"
    assert double.actions.count("Receive") == 5


def test_a_host_that_never_finishes_hits_the_deadline() -> None:
    with WinRMHostDouble(never_finish=True) as double:
        started = time.monotonic()
        with pytest.raises(WinRMError, match=r"did not finish within 1s"):
            inspect_host(_session(double), deadline=1)
        assert time.monotonic() - started < 10
        assert not double.open_shells  # the shell is deleted on the way out


def test_failing_script_reports_the_powershell_error() -> None:
    with WinRMHostDouble() as double:
        result = run_powershell(_session(double), "Get-Nothing -Now")
    assert result.exit_code == 1
    assert result.stderr.startswith("The term 'Get-Nothing' is not recognized")
    assert "CLIXML" not in result.stderr


def test_missing_registry_values_are_a_clear_error() -> None:
    with (
        WinRMHostDouble(registry={"ProductName": "Windows 7"}) as double,
        pytest.raises(WinRMError, match="CurrentBuildNumber and UBR are missing"),
    ):
        inspect_host(_session(double))


def test_wrong_password() -> None:
    with WinRMHostDouble() as double, pytest.raises(WinRMError) as caught:
        inspect_host(_session(double, password="wrong"))
    assert f"WinRM host {double.url} rejected the credentials" in caught.value.one_line()
    assert "wrong" not in caught.value.one_line()
    assert caught.value.exit_code == 8


def test_unreachable_host() -> None:
    with WinRMHostDouble() as double:
        url = double.url
    with pytest.raises(WinRMError, match="cannot be reached: Connection refused"):
        inspect_host(open_session(url, username="u", password="p", transport="plaintext"))


def test_plain_http_only_on_loopback() -> None:
    with pytest.raises(ConfigError, match=r"plain http:// to win\.example\.net is refused"):
        open_session("http://win.example.net:5985/wsman", username="u", password="p")
    with pytest.raises(ConfigError, match="not an http"):
        open_session("win.example.net", username="u", password="p")
    session = open_session("https://win.example.net:5986/wsman", username="u", password="p")
    assert session.protocol.transport.server_cert_validation == "validate"
    assert session.protocol.transport.ca_trust_path is None  # never the env bundle


@pytest.mark.parametrize(
    "url",
    [
        "http://win.example.net:x@127.0.0.1:5985/wsman",  # pywinrm would take win.example.net
        "http://win.example.net\\@127.0.0.1/wsman",
        "http://u:secret-pw@127.0.0.1:5985/wsman",
        "http://[::1]:5985/wsman",  # pywinrm cannot parse it
        "http://127.0.0.1:99999/wsman",
    ],
)
def test_endpoint_must_reach_the_host_that_was_checked(url: str) -> None:
    """No URL passes the loopback check and then sends credentials elsewhere in the clear."""
    with pytest.raises(ConfigError) as caught:
        open_session(url, username="u", password="p", transport="plaintext")
    assert "secret-pw" not in caught.value.one_line()


def test_a_deeply_nested_answer_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    """json.loads raises RecursionError, not ValueError, on deep nesting from a hostile host."""
    import toolkit.winrm

    def nested(session: Any, script: str, *, deadline: float) -> CommandResult:
        return CommandResult(stdout="[" * 200_000, stderr="", exit_code=0)

    monkeypatch.setattr(toolkit.winrm, "run_powershell", nested)
    with WinRMHostDouble() as double, pytest.raises(WinRMError, match="unexpected answer"):
        inspect_host(_session(double))
