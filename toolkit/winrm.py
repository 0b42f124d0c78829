"""WinRM sessions and PowerShell over them (pywinrm, imported lazily).

:func:`open_session` builds a ``winrm.Session`` from a validated
:class:`~toolkit.winrm_config.WinRMSpec`: certificate verification on (unless the spec says
``insecure``), the CA from the spec and never from ``REQUESTS_CA_BUNDLE``, no proxy from the
environment, and message encryption required whenever the endpoint is plain ``http://`` and the
transport can encrypt.

pywinrm's ``Session.run_ps`` retries the Receive operation-timeout fault (WSManFault
2150858793) forever; :func:`run_powershell` drives the same five SOAP actions (Create, Command,
Receive, Signal, Delete) itself and bounds every request by what is left of one deadline.
PowerShell's serialized error stream (``#< CLIXML``) becomes text in :func:`clixml_text`.
"""

from __future__ import annotations

import base64
import contextlib
import re
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit
from xml.etree import ElementTree

from toolkit.errors import ConfigError, WinRMError, describe_exception
from toolkit.winrm_config import ENCRYPTING, Secret, WinRMSpec

# cmd.exe's command line holds 8191 characters; the encoded script must leave room for the rest.
MAX_COMMAND_LINE = 8191
COMMAND_PREFIX = "powershell -NoLogo -NoProfile -NonInteractive -EncodedCommand "
DEFAULT_DEADLINE = 60.0
# Seconds the Delete of a shell may take after a failure or a deadline.
CLEANUP_TIMEOUT = 3.0
UTF8_CODEPAGE = 65001
_ESCAPES = re.compile(r"(?:_x[0-9A-Fa-f]{4}_)+")
_ESCAPE = re.compile(r"_x([0-9A-Fa-f]{4})_")


@dataclass(frozen=True)
class CommandResult:
    stdout: str
    stderr: str
    exit_code: int


class DeadlineError(WinRMError):
    """The host did not finish within the deadline."""


def command_line(script: str) -> str:
    """``powershell ... -EncodedCommand <base64 of UTF-16LE>``; WinRMError when too long."""
    encoded = base64.b64encode(script.encode("utf-16-le")).decode("ascii")
    line = COMMAND_PREFIX + encoded
    if len(line) > MAX_COMMAND_LINE:
        raise WinRMError(
            f"PowerShell script is {len(line)} characters on the command line once encoded; "
            f"cmd.exe allows {MAX_COMMAND_LINE}",
            hint="shorten or split the script",
        )
    return line


def open_session(spec: WinRMSpec, password: Secret | None, *, operation_timeout: int = 20) -> Any:
    """A ``winrm.Session`` for ``spec``. ConfigError when pywinrm cannot honour it."""
    import winrm
    import winrm.transport

    if spec.transport == "kerberos" and not winrm.transport.HAVE_KERBEROS:
        raise ConfigError(
            f"{spec.source}: transport 'kerberos' needs pykerberos",
            hint="pip install 'windows-python-images-toolkit[kerberos]' (needs libkrb5-dev)",
        )
    if spec.transport == "credssp" and not winrm.transport.HAVE_CREDSSP:
        raise ConfigError(
            f"{spec.source}: transport 'credssp' needs requests-credssp",
            hint="pip install 'windows-python-images-toolkit[credssp]'",
        )
    encrypt = "always" if not spec.https and spec.transport in ENCRYPTING else "auto"
    extra: dict[str, Any] = {}
    if spec.transport == "certificate":
        extra = {"cert_pem": str(spec.cert), "cert_key_pem": str(spec.key)}
    try:
        session = winrm.Session(
            spec.endpoint,
            auth=(spec.user or "", password.reveal() if password is not None else ""),
            transport=spec.transport,
            server_cert_validation="validate" if spec.verify else "ignore",
            # None: requests' own bundle (certifi), never REQUESTS_CA_BUNDLE/CURL_CA_BUNDLE.
            ca_trust_path=str(spec.ca) if spec.ca is not None else None,
            message_encryption=encrypt,
            proxy=None,
            operation_timeout_sec=operation_timeout,
            read_timeout_sec=operation_timeout + 10,
            **extra,
        )
    except ValueError:  # pywinrm's own URL parser refused it
        raise ConfigError(
            f"{spec.source}: WinRM endpoint {spec.endpoint!r} is not understood",
            hint="use https://HOST:5986/wsman",
        ) from None
    _bound_requests(session.protocol.transport)
    # pywinrm parses the URL its own way (a prefix match): it must reach the host checked.
    parts, built = urlsplit(spec.endpoint), urlsplit(str(session.url))
    if (built.scheme, built.hostname) != (parts.scheme.lower(), parts.hostname) or (
        parts.port is not None and built.port != parts.port
    ):
        raise ConfigError(
            f"{spec.source}: WinRM endpoint {spec.endpoint!r} would reach {built.hostname}, "
            f"not {parts.hostname}",
            hint="use https://HOST:5986/wsman",
        )
    return session


def _bound_requests(transport: Any) -> None:
    """Put every request pywinrm sends under a DeadlineAdapter (toolkit.transport).

    pywinrm's timeouts bound each socket read, so a host that trickles its headers one byte at
    a time holds a request forever. pywinrm builds its session lazily, on the first request,
    and with message encryption authenticates the connection inside ``setup_encryption``
    before handing the session back: the adapter must be on the session by then (NTLM
    authenticates a connection, and its pool is the adapter's). ``run_powershell`` lowers the
    adapter's ``total`` to what is left of the deadline before each request.
    """
    from toolkit.transport import DeadlineAdapter

    adapter = DeadlineAdapter(total=float(transport.read_timeout_sec))

    def mount(session: Any) -> None:
        session.mount("http://", adapter)
        session.mount("https://", adapter)

    build, setup = transport.build_session, transport.setup_encryption

    def setup_encryption(session: Any) -> None:
        mount(session)
        setup(session)

    def build_session() -> Any:
        session = build()
        mount(session)  # the same adapter: a session already mounted keeps its connections
        return session

    transport.setup_encryption = setup_encryption
    transport.build_session = build_session
    transport.toolkit_deadline = adapter


def _limit(transport: Any, seconds: float) -> None:
    """Each request from now on: read timeout and whole-answer deadline ``seconds``."""
    transport.read_timeout_sec = seconds
    adapter = getattr(transport, "toolkit_deadline", None)
    if adapter is not None:
        adapter.total = seconds


def _endpoint(session: Any) -> str:
    return str(getattr(session, "url", "") or "WinRM host")


def _unescape(text: str) -> str:
    """PowerShell's ``_xHHHH_`` escapes (UTF-16 code units, so surrogate pairs come in two);
    ``_x005F_`` escapes a literal underscore."""

    def run(match: re.Match[str]) -> str:
        units = b"".join(int(h, 16).to_bytes(2, "big") for h in _ESCAPE.findall(match.group()))
        return units.decode("utf-16-be", errors="replace")

    return _ESCAPES.sub(run, text)


def clixml_text(stderr: str) -> str:
    """The readable text of a stderr that may hold ``#< CLIXML`` documents.

    Error records become their text lines, warnings ``WARNING: ...``; progress records (the
    "Preparing modules for first use." that loading a module prints) and other streams are
    dropped. Text outside the documents stays; a document that does not parse stays as it is.
    """
    if "#< CLIXML" not in stderr:
        return stderr.strip()
    out: list[str] = []
    rest = stderr
    while rest:
        start = rest.find("<Objs")
        end = rest.find("</Objs>", start)
        if start < 0 or end < 0:
            out.append(rest.replace("#< CLIXML", ""))
            break
        out.append(rest[:start].replace("#< CLIXML", ""))
        document = rest[start : end + len("</Objs>")]
        rest = rest[end + len("</Objs>") :]
        try:
            root = ElementTree.fromstring(document)
        except ElementTree.ParseError:
            out.append(document)
            continue
        for node in root:
            if node.tag.rsplit("}", 1)[-1] != "S":
                continue
            stream = (node.get("S") or "").lower()
            text = _unescape(node.text or "")
            if stream == "error":
                out.append(text)
            elif stream == "warning":
                out.append(f"WARNING: {text}")
    text = "".join(out).replace("\r\n", "\n")
    return "\n".join(line.rstrip() for line in text.strip().splitlines() if line.strip())


def first_line(text: str) -> str:
    return next((line.strip() for line in text.splitlines() if line.strip()), "")


def run_powershell(
    session: Any, script: str, *, deadline: float = DEFAULT_DEADLINE
) -> CommandResult:
    """Run ``script`` on the host; at most ``deadline`` seconds in all. WinRMError on failure.

    Every request's timeout is what is left of the deadline, so neither a host that never
    answers nor an endless series of operation timeouts outlasts it.
    """
    from requests.exceptions import Timeout
    from winrm.exceptions import WinRMOperationTimeoutError

    endpoint = _endpoint(session)
    command = command_line(script)
    protocol = session.protocol
    transport = protocol.transport
    longest = float(transport.read_timeout_sec)
    stop_at = time.monotonic() + deadline
    late = DeadlineError(
        f"WinRM host {endpoint} did not finish within {deadline:g}s",
        hint="the host may be overloaded or unreachable; retry, or raise --timeout",
    )

    def bound() -> None:
        remaining = stop_at - time.monotonic()
        if remaining <= 0:
            raise late
        _limit(transport, min(longest, remaining))

    shell_id = None
    try:
        bound()
        shell_id = protocol.open_shell(noprofile=True, codepage=UTF8_CODEPAGE)
        bound()
        command_id = protocol.run_command(shell_id, command)
        stdout, stderr = bytearray(), bytearray()
        done, exit_code = False, -1
        while not done:
            bound()
            try:
                out, err, exit_code, done = protocol.get_command_output_raw(shell_id, command_id)
            except WinRMOperationTimeoutError:
                continue  # the server's long poll expired: ask again, within the deadline
            stdout += out
            stderr += err
        bound()
        protocol.cleanup_command(shell_id, command_id)
    except WinRMError:
        _close(protocol, shell_id)
        raise
    except Timeout:
        _close(protocol, shell_id)
        raise late from None
    except Exception as exc:
        _close(protocol, shell_id)
        if time.monotonic() >= stop_at:  # a read cut by the deadline, seen as a broken body
            raise late from None
        raise _translate(exc, endpoint) from exc
    _close(protocol, shell_id)
    return CommandResult(
        stdout=stdout.decode("utf-8", errors="replace"),
        stderr=clixml_text(stderr.decode("utf-8", errors="replace")),
        exit_code=exit_code,
    )


def _close(protocol: Any, shell_id: str | None) -> None:
    """Delete the shell (which ends its command), briefly; a failure here changes nothing."""
    if shell_id is not None:
        _limit(protocol.transport, CLEANUP_TIMEOUT)
        # The outcome is already decided; the host reaps idle shells itself.
        with contextlib.suppress(Exception):
            protocol.close_shell(shell_id)
    with contextlib.suppress(Exception):
        protocol.transport.close_session()


def _translate(exc: Exception, endpoint: str) -> WinRMError:
    from winrm.exceptions import InvalidCredentialsError, WinRMTransportError, WSManFaultError
    from winrm.exceptions import WinRMError as PyWinRMError

    if isinstance(exc, InvalidCredentialsError):
        return WinRMError(
            f"WinRM host {endpoint} rejected the credentials",
            hint="check the user, the password variable and the transport in hosts.toml",
        )
    if isinstance(exc, WSManFaultError):
        return WinRMError(
            f"WinRM host {endpoint} answered with a fault: {' '.join(exc.reason.split())}"
        )
    if isinstance(exc, WinRMTransportError):
        return WinRMError(f"WinRM host {endpoint} answered HTTP {exc.code}")
    if isinstance(exc, PyWinRMError):
        return WinRMError(f"WinRM session with {endpoint} failed: {exc}")
    return WinRMError(
        f"WinRM host {endpoint} cannot be reached: {describe_exception(exc)}",
        hint="check the address, the listener (winrm enumerate winrm/config/listener) and TLS",
    )
