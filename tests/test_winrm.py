"""WinRM sessions and PowerShell over them: real pywinrm against the WinRM test double."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.docker.engines import make_tls_pair
from tests.doubles.windows_server import SERVERS
from tests.doubles.winrm_host import TLSFiles, WinRMHostDouble
from toolkit.errors import ConfigError, WinRMError
from toolkit.winhost import CHECK_SCRIPT, inspect_windows_host
from toolkit.winrm import (
    CLEANUP_TIMEOUT,
    MAX_COMMAND_LINE,
    DeadlineError,
    clixml_text,
    command_line,
    open_session,
    run_powershell,
)
from toolkit.winrm_config import Secret, WinRMSpec, parse_winrm_table


def _spec(double: WinRMHostDouble, tmp_path: Path, **table: Any) -> WinRMSpec:
    values = {"endpoint": double.url, "transport": "basic", "user": double.username, **table}
    return parse_winrm_table(
        values, where="[hosts.1809.winrm]", docker_host=None, base=tmp_path, home=str(tmp_path)
    )


def _session(double: WinRMHostDouble, tmp_path: Path, password: str | None = None) -> Any:
    return open_session(
        _spec(double, tmp_path), Secret(password or double.password), operation_timeout=5
    )


@pytest.mark.parametrize("release", sorted(SERVERS))
def test_check_reads_every_server_release(release: str, tmp_path: Path) -> None:
    host = SERVERS[release]()
    with WinRMHostDouble(host=host) as double:
        facts = inspect_windows_host(_session(double, tmp_path), deadline=30)
    assert facts.build == int(host.registry["CurrentBuildNumber"])
    assert facts.revision == host.registry["UBR"]
    assert facts.product_name == host.registry["ProductName"]
    assert facts.display_version == host.registry.get("DisplayVersion", host.registry["ReleaseId"])
    assert facts.docker_state == "Running"
    assert host.docker is not None
    assert facts.docker_version is not None
    assert f"Docker version {facts.docker_version}," in host.docker.version_text
    assert facts.tls_verify is True
    assert [str(x) for x in facts.listeners or ()] == ["0.0.0.0:2376"]
    assert facts.disks is not None
    assert {d: (x.free, x.size) for d, x in facts.disks.items()} == {
        d: (free, size) for d, free, size in host.disks
    }
    assert facts.features["Containers"] == "installed"
    assert facts.reboot == ()
    assert facts.errors == ()
    # All five actions, in a UTF-8 shell without a user profile, and the shell closed again.
    assert double.actions == ["Create", "Command", "Receive", "Receive", "Signal", "Delete"]
    assert double.shell_options == [{"WINRS_NOPROFILE": "TRUE", "WINRS_CODEPAGE": "65001"}]
    assert double.commands[0].startswith("powershell -NoLogo -NoProfile -NonInteractive ")
    assert double.scripts == [CHECK_SCRIPT]
    assert not double.open_shells


def test_data_root_on_another_drive_and_a_byte_order_mark(tmp_path: Path) -> None:
    with WinRMHostDouble(host=SERVERS["2019"]()) as double:  # daemon.json saved with a BOM
        facts = inspect_windows_host(_session(double, tmp_path), deadline=30)
    assert facts.daemon_config is not None
    assert facts.data_root == "D:\\docker"
    assert facts.data_root_drive == "D:"
    assert facts.free("D:") is not None


def test_the_script_fits_the_command_line_with_room_to_spare() -> None:
    line = command_line(CHECK_SCRIPT)
    assert len(line) <= 6000 < MAX_COMMAND_LINE  # cmd.exe: 8191 characters
    with pytest.raises(WinRMError, match="8191"):
        command_line("Write-Output 'x'\n" * 300)


def test_the_script_is_valid_powershell() -> None:
    """tree-sitter-pwsh (what ``toolkit lint`` parses RUN lines with) finds no syntax error; a
    broken script is caught the same way."""
    import tree_sitter
    import tree_sitter_pwsh

    parser = tree_sitter.Parser(tree_sitter.Language(tree_sitter_pwsh.language()))
    assert not parser.parse(CHECK_SCRIPT.encode("utf-8")).root_node.has_error
    broken = CHECK_SCRIPT.replace("T disk {", "T disk (", 1)
    assert parser.parse(broken.encode("utf-8")).root_node.has_error


def test_operation_timeouts_are_retried(tmp_path: Path) -> None:
    with WinRMHostDouble(host=SERVERS["2016"](), timeouts_before_output=3) as double:
        facts = inspect_windows_host(_session(double, tmp_path), deadline=30)
    assert facts.os_build == "14393.3274"
    assert double.actions.count("Receive") == 5


def _timed(call: Callable[[], object]) -> tuple[BaseException, float]:
    started = time.monotonic()
    with pytest.raises(WinRMError) as caught:
        call()
    return caught.value, time.monotonic() - started


def test_a_host_that_only_times_out_hits_the_deadline(tmp_path: Path) -> None:
    with WinRMHostDouble(never_finish=True) as double:
        error, elapsed = _timed(
            lambda: inspect_windows_host(_session(double, tmp_path), deadline=1)
        )
        assert not double.open_shells  # the shell is deleted on the way out
    assert isinstance(error, DeadlineError)
    assert "did not finish within 1s" in str(error)
    assert elapsed < 1 + CLEANUP_TIMEOUT


def test_a_host_that_never_answers_hits_the_deadline(tmp_path: Path) -> None:
    with WinRMHostDouble(stall=True) as double:
        error, elapsed = _timed(
            lambda: inspect_windows_host(_session(double, tmp_path), deadline=1.5)
        )
    assert isinstance(error, DeadlineError)
    # The stalled Receive is cut at the deadline; the Delete that follows waits at most
    # CLEANUP_TIMEOUT (the double answers it, so far less).
    assert elapsed < 1.5 + CLEANUP_TIMEOUT


def test_a_host_trickling_its_headers_is_cut_at_the_deadline(tmp_path: Path) -> None:
    """One header byte every 0.2 s keeps every socket read inside its timeout; requests alone
    would wait forever. The deadline covers the headers too (toolkit.transport)."""
    with WinRMHostDouble(trickle_headers=True) as double:
        error, elapsed = _timed(
            lambda: inspect_windows_host(_session(double, tmp_path), deadline=1.5)
        )
    assert isinstance(error, DeadlineError)
    assert "did not finish within 1.5s" in str(error)
    # The cut request, then at most CLEANUP_TIMEOUT for each of the two cleanup requests.
    assert elapsed < 1.5 + 2 * CLEANUP_TIMEOUT + 1


def test_an_answer_after_the_deadline_is_not_waited_for(tmp_path: Path) -> None:
    with WinRMHostDouble(reply_delay=8) as double:
        error, elapsed = _timed(
            lambda: inspect_windows_host(_session(double, tmp_path), deadline=1)
        )
    assert isinstance(error, DeadlineError)
    assert elapsed < 1 + CLEANUP_TIMEOUT < 8


def test_a_failing_script_reports_the_powershell_error(tmp_path: Path) -> None:
    with WinRMHostDouble() as double:
        result = run_powershell(_session(double, tmp_path), "Get-Nothing -Now")
    assert result.exit_code == 1
    assert result.stderr.startswith("The term 'Get-Nothing' is not recognized as the name")
    assert "+ CategoryInfo          : ObjectNotFound: (Get-Nothing:String)" in result.stderr
    assert "CLIXML" not in result.stderr
    assert "_x000D_" not in result.stderr


def test_a_non_zero_exit_becomes_one_readable_line(tmp_path: Path) -> None:
    host = SERVERS["2022"]()
    host.fail_with = (
        "New-Object : Cannot create type. Only core types are supported in this language mode.",
        "PermissionDenied: (:) [New-Object], PSNotSupportedException",
        "CannotCreateTypeConstrainedLanguage,Microsoft.PowerShell.Commands.NewObjectCommand",
    )
    with WinRMHostDouble(host=host) as double:
        error, _ = _timed(lambda: inspect_windows_host(_session(double, tmp_path), deadline=30))
    text = str(error)
    assert "(exit 1): New-Object : Cannot create type. Only core types are supported" in text
    for noise in ("CLIXML", "<Objs", "_x000D_", "Preparing modules"):
        assert noise not in text


def test_malformed_output_is_a_clear_error(tmp_path: Path) -> None:
    host = SERVERS["2019"]()
    host.malformed = '{"Probe":"toolkit-inspect/1","CurrentBuildNumber":"17763","UBR":8\r\n'
    with WinRMHostDouble(host=host) as double:
        error, _ = _timed(lambda: inspect_windows_host(_session(double, tmp_path), deadline=30))
    assert "the inspection script printed something else" in str(error)
    assert '"UBR":8' in str(error)


def test_wrong_password(tmp_path: Path) -> None:
    with WinRMHostDouble() as double:
        error, _ = _timed(
            lambda: inspect_windows_host(_session(double, tmp_path, "wrong-pw-1234"), deadline=30)
        )
    assert f"WinRM host {double.url} rejected the credentials" in str(error)
    assert "wrong-pw-1234" not in str(error)
    assert isinstance(error, WinRMError)
    assert error.exit_code == 8


def test_unreachable_host(tmp_path: Path) -> None:
    with WinRMHostDouble() as double:
        session = _session(double, tmp_path)
    error, _ = _timed(lambda: inspect_windows_host(session, deadline=30))
    assert "cannot be reached: Connection refused" in str(error)


def test_progress_records_on_stderr_are_not_an_error(tmp_path: Path) -> None:
    noisy = CHECK_SCRIPT.replace(";$ProgressPreference='SilentlyContinue'", "")
    with WinRMHostDouble() as double:
        result = run_powershell(_session(double, tmp_path), noisy)
    assert result.exit_code == 0
    assert result.stderr == ""  # "Preparing modules for first use." is progress, not an error
    assert result.stdout.startswith("{")


# --- HTTPS -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, TLSFiles, TLSFiles]:
    server, client = make_tls_pair(tmp_path_factory.mktemp("winrm-tls"))
    return server.ca, TLSFiles(server.cert, server.key), TLSFiles(client.cert, client.key)


def test_https_verifies_the_listener_against_the_configured_ca(
    tls: tuple[Path, TLSFiles, TLSFiles], tmp_path: Path
) -> None:
    ca, server, _client = tls
    with WinRMHostDouble(tls=server) as double:
        spec = _spec(double, tmp_path, ca=str(ca))
        facts = inspect_windows_host(open_session(spec, Secret(double.password)), deadline=30)
    assert double.url.startswith("https://")
    assert facts.build == 17763
    assert spec.exposures() == []


def test_https_without_the_ca_is_refused_even_with_requests_ca_bundle(
    tls: tuple[Path, TLSFiles, TLSFiles], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ca, server, _client = tls
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(ca))  # the environment must not choose the CA
    with WinRMHostDouble(tls=server) as double:
        session = open_session(_spec(double, tmp_path), Secret(double.password))
        error, _ = _timed(lambda: inspect_windows_host(session, deadline=30))
        assert double.scripts == []
    assert "TLS verification failed" in str(error)


def test_insecure_skips_verification_and_says_so(
    tls: tuple[Path, TLSFiles, TLSFiles], tmp_path: Path
) -> None:
    _ca, server, _client = tls
    with WinRMHostDouble(tls=server) as double:
        spec = _spec(double, tmp_path, insecure=True)
        session = open_session(spec, Secret(double.password))
        facts = inspect_windows_host(session, deadline=30)
    assert facts.build == 17763
    assert session.protocol.transport.server_cert_validation == "ignore"
    (warning,) = spec.exposures()
    assert "insecure = true: the certificate of 127.0.0.1 is not verified" in warning


def test_certificate_authentication(tls: tuple[Path, TLSFiles, TLSFiles], tmp_path: Path) -> None:
    ca, server, client = tls
    with WinRMHostDouble(tls=server, client_ca=ca, auth="certificate") as double:
        spec = parse_winrm_table(
            {
                "endpoint": double.url,
                "transport": "certificate",
                "ca": str(ca),
                "cert": str(client.cert),
                "key": str(client.key),
            },
            where="[hosts.1809.winrm]",
            docker_host=None,
            base=tmp_path,
            home=str(tmp_path),
        )
        assert spec.password_env is None
        facts = inspect_windows_host(open_session(spec, None), deadline=30)
    assert facts.build == 17763


def test_plain_http_with_ntlm_insists_on_message_encryption(tmp_path: Path) -> None:
    spec = parse_winrm_table(
        {"endpoint": "http://win2019.example.net:5985/wsman", "user": "builder"},
        where="[hosts.1809.winrm]",
        docker_host=None,
        base=tmp_path,
        home=str(tmp_path),
    )
    session = open_session(spec, Secret("pw"))
    assert session.protocol.transport.message_encryption == "always"
    assert session.protocol.transport.proxy is None  # never a proxy from the environment
    https = open_session(
        parse_winrm_table(
            {"user": "builder"},
            where="[hosts.1809.winrm]",
            docker_host="win2019.example.net",
            base=tmp_path,
            home=str(tmp_path),
        ),
        Secret("pw"),
    )
    assert https.url == "https://win2019.example.net:5986/wsman"
    assert https.protocol.transport.server_cert_validation == "validate"
    assert https.protocol.transport.ca_trust_path is None  # never REQUESTS_CA_BUNDLE


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
def test_endpoint_must_reach_the_host_that_was_checked(url: str, tmp_path: Path) -> None:
    """No URL passes the loopback check and then sends credentials elsewhere in the clear."""

    def configure_and_open() -> None:
        spec = parse_winrm_table(
            {"endpoint": url, "transport": "basic", "user": "u"},
            where="[hosts.1809.winrm]",
            docker_host=None,
            base=tmp_path,
            home=str(tmp_path),
        )
        open_session(spec, Secret("p"))

    with pytest.raises(ConfigError) as caught:
        configure_and_open()
    assert "secret-pw" not in caught.value.one_line()


# --- CLIXML ----------------------------------------------------------------------------------

_NS = 'xmlns="http://schemas.microsoft.com/powershell/2004/04"'


def test_clixml_escapes_and_streams() -> None:
    document = (
        f'#< CLIXML\r\n<Objs Version="1.1.0.1" {_NS}>'
        '<Obj S="progress" RefId="0"><MS><PR N="Record"><AV>Preparing modules for first use.'
        "</AV></PR></MS></Obj>"
        '<S S="Error">Cannot find path &apos;C:\\nope&apos;_x000D__x000A_</S>'
        '<S S="Error">tab_x0009_smile_xD83D__xDE00_ under_x005F_x0041_ &lt;x&gt;_x000D__x000A_</S>'
        '<S S="warning">disk nearly full_x000D__x000A_</S>'
        '<S S="verbose">loading_x000D__x000A_</S></Objs>'
    )
    assert clixml_text(document) == (
        "Cannot find path 'C:\\nope'\n"
        "tab\tsmile\U0001f600 under_x0041_ <x>\n"
        "WARNING: disk nearly full"
    )


def test_clixml_documents_and_plain_text_mixed() -> None:
    one = f'#< CLIXML\r\n<Objs Version="1.1.0.1" {_NS}><S S="Error">first_x000D__x000A_</S></Objs>'
    two = f'<Objs Version="1.1.0.1" {_NS}><S S="Error">second_x000D__x000A_</S></Objs>'
    assert clixml_text(f"plain line\r\n{one}#< CLIXML\r\n{two}") == "plain line\nfirst\nsecond"
    assert clixml_text("no markup at all\r\n") == "no markup at all"
    broken = "#< CLIXML\r\n<Objs><S S='Error'>unclosed</Objs>"
    assert "unclosed" in clixml_text(broken)


# --- NTLM over plain HTTP --------------------------------------------------------------------


def test_ntlm_over_http_seals_every_message(tmp_path: Path) -> None:
    with WinRMHostDouble(auth="ntlm", password="ntlm-pw-7731") as double:
        spec = _spec(double, tmp_path, transport="ntlm")
        facts = inspect_windows_host(open_session(spec, Secret(double.password)), deadline=30)
    assert facts.os_build == "17763.805"
    soap = [body for body in double.raw_requests if body]
    assert len(soap) == len(double.actions) == 6
    for body in soap:
        assert body.startswith(b"--Encrypted Boundary\r\n")
        for plain in (b"Envelope", b"EncodedCommand", b"powershell", b"ntlm-pw-7731"):
            assert plain not in body
    assert all(b"ntlm-pw-7731" not in body for body in double.raw_requests)


def test_ntlm_wrong_password(tmp_path: Path) -> None:
    with WinRMHostDouble(auth="ntlm") as double:
        spec = _spec(double, tmp_path, transport="ntlm")
        error, _ = _timed(
            lambda: inspect_windows_host(open_session(spec, Secret("not-it-0042")), deadline=30)
        )
    assert "rejected the credentials" in str(error)
    assert "not-it-0042" not in str(error)


def test_the_double_refuses_unsealed_messages_after_ntlm(tmp_path: Path) -> None:
    """The double holds clients to AllowUnencrypted = false, as a default Windows host does."""
    import winrm

    with WinRMHostDouble(auth="ntlm") as double:
        session = winrm.Session(
            double.url,
            auth=(double.username, double.password),
            transport="ntlm",
            message_encryption="never",
            proxy=None,
            ca_trust_path=None,
        )
        with pytest.raises(winrm.exceptions.WinRMTransportError) as caught:
            session.protocol.open_shell()
    assert caught.value.code == 400
