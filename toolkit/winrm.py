"""Windows host inspection over WinRM (pywinrm, imported lazily).

The host's build comes from the registry, ``CurrentBuildNumber`` and ``UBR`` under
``HKLM\\SOFTWARE\\Microsoft\\Windows NT\\CurrentVersion``: ``ReleaseId``/``DisplayVersion`` are
ambiguous or missing on older releases (REFERENCE.md).

pywinrm's ``Session.run_ps`` retries the Receive operation-timeout fault (WSManFault
2150858793) forever; :func:`run_powershell` drives the same five SOAP actions (Create, Command,
Receive, Signal, Delete) itself, with a deadline. :func:`open_session` refuses plain HTTP to
anything but loopback (credentials and output would cross the network in the clear) and never
lets ``REQUESTS_CA_BUNDLE`` choose the CA for HTTPS.
"""

from __future__ import annotations

import base64
import json
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit
from xml.etree import ElementTree

from toolkit.errors import ConfigError, WinRMError, describe_exception
from toolkit.hosts import is_loopback
from toolkit.windows import WindowsRelease, release_for_build

CURRENT_VERSION_KEY = r"HKLM:\SOFTWARE\Microsoft\Windows NT\CurrentVersion"
# One JSON line; the values' registry types: CurrentBuildNumber REG_SZ, UBR REG_DWORD.
INSPECT_SCRIPT = (
    f"$v = Get-ItemProperty -LiteralPath '{CURRENT_VERSION_KEY}'; "
    "[pscustomobject]@{CurrentBuildNumber = $v.CurrentBuildNumber; UBR = $v.UBR; "
    "ProductName = $v.ProductName; InstallationType = $v.InstallationType} "
    "| ConvertTo-Json -Compress"
)
# powershell -encodedcommand must fit cmd.exe's command line (about 8 KB).
MAX_ENCODED = 8000
DEFAULT_DEADLINE = 120.0


@dataclass(frozen=True, kw_only=True)
class WindowsHostFacts:
    """A Windows host as its registry describes it."""

    endpoint: str
    build: int
    revision: int
    product_name: str
    installation_type: str

    @property
    def os_build(self) -> str:
        return f"{self.build}.{self.revision}"

    @property
    def release(self) -> WindowsRelease | None:
        """The release whose images run with process isolation here, if the table knows one."""
        return release_for_build(self.build)


@dataclass(frozen=True)
class CommandResult:
    stdout: str
    stderr: str
    exit_code: int


def open_session(
    url: str,
    *,
    username: str,
    password: str,
    transport: str = "ntlm",
    ca: Path | None = None,
    operation_timeout: int = 20,
) -> Any:
    """A ``winrm.Session`` for ``url`` (``https://host:5986/wsman``).

    ``http://`` is accepted only for loopback addresses (a test double, an SSH tunnel).
    HTTPS verifies the server against ``ca``, or the default trust store when ``ca`` is None;
    pywinrm's default would take REQUESTS_CA_BUNDLE from the environment instead.
    """
    shape = "use https://HOST:5986/wsman"
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 -- raises ValueError for a bad port
    except ValueError:
        raise ConfigError("WinRM endpoint is not a valid URL", hint=shape) from None
    if "@" in parts.netloc:  # user info: a password must not sit in a URL, nor in messages
        raise ConfigError(
            f"WinRM endpoint for {parts.hostname} carries user info in the URL",
            hint=f"{shape}; pass the user name and password separately",
        )
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"WinRM endpoint {url!r} is not an http(s) URL", hint=shape)
    if parts.scheme == "http" and not is_loopback(parts.hostname):
        raise ConfigError(
            f"WinRM over plain http:// to {parts.hostname} is refused: credentials and output "
            "would cross the network unprotected",
            hint="enable the HTTPS listener (port 5986) and use https://HOST:5986/wsman",
        )
    import winrm

    try:
        session = winrm.Session(
            url,
            auth=(username, password),
            transport=transport,
            server_cert_validation="validate",
            ca_trust_path=str(ca) if ca is not None else None,
            operation_timeout_sec=operation_timeout,
            read_timeout_sec=operation_timeout + 10,
        )
    except ValueError:  # pywinrm's own URL parser refused it
        raise ConfigError(f"WinRM endpoint {url!r} is not understood", hint=shape) from None
    # pywinrm parses the URL its own way (a prefix match): it must reach the host checked above.
    built = urlsplit(str(session.url))
    if (built.scheme, built.hostname) != (parts.scheme, parts.hostname) or (
        parts.port is not None and built.port != parts.port
    ):
        raise ConfigError(
            f"WinRM endpoint {url!r} would reach {built.hostname}, not {parts.hostname}",
            hint=shape,
        )
    return session


def _endpoint(session: Any) -> str:
    return str(getattr(session, "url", "") or getattr(session.protocol, "transport", "WinRM"))


def _clixml_text(stderr: str) -> str:
    """The readable text of PowerShell's serialized error stream (``#< CLIXML`` ...)."""
    if not stderr.startswith("#< CLIXML"):
        return stderr.strip()
    body = stderr.split("\n", 1)[1] if "\n" in stderr else ""
    try:
        root = ElementTree.fromstring(body)
    except ElementTree.ParseError:
        return stderr.strip()
    lines = [
        node.text or ""
        for node in root.iter()
        if node.tag.rsplit("}", 1)[-1] == "S" and node.get("S") == "Error"
    ]
    text = "".join(lines).replace("_x000D_", "").replace("_x000A_", "\n")
    return text.strip()


def run_powershell(
    session: Any, script: str, *, deadline: float = DEFAULT_DEADLINE
) -> CommandResult:
    """Run ``script`` on the host, waiting at most ``deadline`` seconds. WinRMError on failure."""
    endpoint = _endpoint(session)
    encoded = base64.b64encode(script.encode("utf-16-le")).decode("ascii")
    if len(encoded) > MAX_ENCODED:
        raise WinRMError(
            f"PowerShell script for {endpoint} is {len(encoded)} encoded characters; "
            f"the command line allows about {MAX_ENCODED}",
            hint="split the script",
        )
    from winrm.exceptions import WinRMOperationTimeoutError

    protocol = session.protocol
    stop_at = time.monotonic() + deadline
    try:
        shell_id = protocol.open_shell()
        try:
            command_id = protocol.run_command(shell_id, f"powershell -encodedcommand {encoded}")
            stdout, stderr = bytearray(), bytearray()
            done, exit_code = False, -1
            while not done:
                if time.monotonic() > stop_at:
                    raise WinRMError(
                        f"PowerShell on {endpoint} did not finish within {deadline:.0f}s",
                        hint="the host may be overloaded; retry or raise the deadline",
                    )
                try:
                    out, err, exit_code, done = protocol.get_command_output_raw(
                        shell_id, command_id
                    )
                except WinRMOperationTimeoutError:
                    continue  # the server's long poll expired: ask again, within our deadline
                stdout += out
                stderr += err
            protocol.cleanup_command(shell_id, command_id)
        finally:
            protocol.close_shell(shell_id)
    except WinRMError:
        raise
    except Exception as exc:
        raise _translate(exc, endpoint) from exc
    return CommandResult(
        stdout=stdout.decode("utf-8", errors="replace"),
        stderr=_clixml_text(stderr.decode("utf-8", errors="replace")),
        exit_code=exit_code,
    )


def _translate(exc: Exception, endpoint: str) -> WinRMError:
    from winrm.exceptions import InvalidCredentialsError, WinRMTransportError, WSManFaultError

    if isinstance(exc, InvalidCredentialsError):
        return WinRMError(
            f"WinRM host {endpoint} rejected the credentials",
            hint="check the user name, password and transport",
        )
    if isinstance(exc, WSManFaultError):
        return WinRMError(
            f"WinRM host {endpoint} answered with a fault: {' '.join(exc.reason.split())}"
        )
    if isinstance(exc, WinRMTransportError):
        return WinRMError(f"WinRM host {endpoint} answered HTTP {exc.code}")
    return WinRMError(
        f"WinRM host {endpoint} cannot be reached: {describe_exception(exc)}",
        hint="check the address, the listener (winrm enumerate winrm/config/listener) and TLS",
    )


def inspect_host(session: Any, *, deadline: float = DEFAULT_DEADLINE) -> WindowsHostFacts:
    """Read the host's build and update revision from the registry over WinRM."""
    endpoint = _endpoint(session)
    result = run_powershell(session, INSPECT_SCRIPT, deadline=deadline)
    if result.exit_code != 0:
        first = result.stderr.splitlines()[0] if result.stderr else "no error output"
        raise WinRMError(
            f"reading {CURRENT_VERSION_KEY} on {endpoint} failed (exit {result.exit_code}): {first}"
        )
    try:
        data = json.loads(result.stdout)
        build = int(str(data["CurrentBuildNumber"]))
        revision = int(data["UBR"])
    except (ValueError, KeyError, TypeError, RecursionError):
        shown = re.sub(r"\s+", " ", result.stdout)[:200]
        raise WinRMError(
            f"{endpoint}: unexpected answer for {CURRENT_VERSION_KEY}: {shown!r}",
            hint="CurrentBuildNumber and UBR are missing; is this a Windows 10 / Server 2016+ host?",
        ) from None
    return WindowsHostFacts(
        endpoint=endpoint,
        build=build,
        revision=revision,
        product_name=str(data.get("ProductName") or ""),
        installation_type=str(data.get("InstallationType") or ""),
    )
