"""Test double of a Windows Server host's state, and of what PowerShell prints about it.

A :class:`WindowsServer` holds what the toolkit's check script reads: registry values under
``HKLM\\SOFTWARE\\Microsoft\\Windows NT\\CurrentVersion`` (``CurrentBuildNumber`` REG_SZ,
``UBR`` REG_DWORD), the ``docker`` row of ``Win32_Service``, dockerd's listening sockets,
``daemon.json``'s text, ``Win32_LogicalDisk`` rows, ``Win32_OptionalFeature`` install states
and the pending-reboot markers. :func:`server_2016` ... :func:`server_2025` give the values those
releases hold, at the builds and engine versions of the recorded engines in
tests/fixtures/engines (Windows PowerShell 5.1 on each; Server 2022 and 2025 say ``ReleaseId`` 2009 and
carry ``DisplayVersion``; 2016 and 2019 have no ``DisplayVersion``).

:func:`run_script` answers a script the way ``powershell -EncodedCommand`` does on such a host:
for the check script (recognised by its ``Probe``) it evaluates each ``T name {...}`` part
against the state, with PowerShell's own error texts when a part fails, and serialises the
result as Windows PowerShell 5.1's ``ConvertTo-Json -Compress`` does (JavaScriptSerializer
escapes, hashtable order that is not insertion order, objects deeper than ``-Depth`` flattened
to their type name). Without ``$ProgressPreference='SilentlyContinue'`` the module loads print
their progress records to stderr, as CLIXML. Any other script fails with the error PowerShell
gives for an unknown command.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from typing import Any
from xml.sax.saxutils import escape

CURRENT_VERSION = r"HKLM:\SOFTWARE\Microsoft\Windows NT\CurrentVersion"
CLIXML_NS = "http://schemas.microsoft.com/powershell/2004/04"
# Win32_OptionalFeature.InstallState
ENABLED, DISABLED, ABSENT = 1, 2, 3
DOCKER_EXE = r"C:\Program Files\Docker\dockerd.exe"


@dataclass
class DockerService:
    """The ``docker`` row of Win32_Service and what its executable prints for ``--version``."""

    state: str = "Running"
    path_name: str = f'"{DOCKER_EXE}" --run-service'
    process_id: int = 2412
    version_text: str = "Docker version 24.0.7, build afdd53b"


TLS_DAEMON_JSON = (
    "{\r\n"
    '  "hosts": ["tcp://0.0.0.0:2376", "npipe://"],\r\n'
    '  "tlsverify": true,\r\n'
    '  "tlscacert": "C:\\\\ProgramData\\\\docker\\\\certs.d\\\\ca.pem",\r\n'
    '  "tlscert": "C:\\\\ProgramData\\\\docker\\\\certs.d\\\\server-cert.pem",\r\n'
    '  "tlskey": "C:\\\\ProgramData\\\\docker\\\\certs.d\\\\server-key.pem"\r\n'
    "}\r\n"
)
GB = 10**9


@dataclass
class WindowsServer:
    registry: dict[str, str | int]
    docker: DockerService | None = field(default_factory=DockerService)
    daemon_json: str | None = TLS_DAEMON_JSON
    daemon_json_denied: bool = False
    listeners: list[tuple[str, int]] = field(default_factory=lambda: [("0.0.0.0", 2376)])
    disks: list[tuple[str, int, int]] = field(
        default_factory=lambda: [("C:", 84_201_336_832, 136_363_845_632)]
    )
    features: dict[str, int] = field(
        default_factory=lambda: {"Containers": ENABLED, "Microsoft-Hyper-V": DISABLED}
    )
    reboot: list[str] = field(default_factory=list)
    uptime_seconds: int = 1_036_805
    system_drive: str = "C:"
    program_data: str = r"C:\ProgramData"
    computer_name: str = "WIN-BUILD"
    # Faults
    fail_with: tuple[str, str, str] | None = None
    malformed: str | None = None
    denied_parts: dict[str, str] = field(default_factory=dict)


def server_2016() -> WindowsServer:
    return WindowsServer(
        registry={
            "CurrentBuildNumber": "14393",
            "UBR": 3274,
            "ProductName": "Windows Server 2016 Datacenter",
            "EditionID": "ServerDatacenter",
            "InstallationType": "Server Core",
            "ReleaseId": "1607",
        },
        docker=DockerService(version_text="Docker version 18.09.11, build f6e4b0f2a9"),
        computer_name="WIN2016-BUILD",
    )


def server_2019() -> WindowsServer:
    daemon = TLS_DAEMON_JSON.replace("{\r\n", '{\r\n  "data-root": "D:\\\\docker",\r\n', 1)
    return WindowsServer(
        registry={
            "CurrentBuildNumber": "17763",
            "UBR": 805,
            "ProductName": "Windows Server 2019 Datacenter",
            "EditionID": "ServerDatacenter",
            "InstallationType": "Server Core",
            "ReleaseId": "1809",
        },
        docker=DockerService(version_text="Docker version 18.09.11, build f6e4b0f2a9"),
        daemon_json="\ufeff" + daemon,  # saved by Notepad, with a byte order mark
        disks=[("C:", 21_474_836_480, 68_182_605_824), ("D:", 210_453_397_504, 274_877_906_944)],
        features={"Containers": ENABLED, "Microsoft-Hyper-V": ENABLED},
        computer_name="WIN2019-BUILD",
    )


def server_2022() -> WindowsServer:
    return WindowsServer(
        registry={
            "CurrentBuildNumber": "20348",
            "UBR": 2461,
            "ProductName": "Windows Server 2022 Datacenter",
            "EditionID": "ServerDatacenter",
            "InstallationType": "Server Core",
            "DisplayVersion": "21H2",
            "ReleaseId": "2009",
        },
        docker=DockerService(version_text="Docker version 26.1.3, build 8e96db1"),
        computer_name="WIN2022-BUILD",
    )


def server_2025() -> WindowsServer:
    return WindowsServer(
        registry={
            "CurrentBuildNumber": "26100",
            "UBR": 3194,
            "ProductName": "Windows Server 2025 Datacenter",
            "EditionID": "ServerDatacenter",
            "InstallationType": "Server",
            "DisplayVersion": "24H2",
            "ReleaseId": "2009",
        },
        docker=DockerService(version_text="Docker version 27.5.1, build 4c9b3b0"),
        features={"Containers": ENABLED, "Microsoft-Hyper-V": ENABLED},
        computer_name="WIN2025-BUILD",
    )


SERVERS = {"2016": server_2016, "2019": server_2019, "2022": server_2022, "2025": server_2025}


# --- PowerShell 5.1's ConvertTo-Json ---------------------------------------------------------


def _string(text: str) -> str:
    """JavaScriptSerializer's escaping, which Windows PowerShell 5.1 uses."""
    out = ['"']
    for char in text:
        code = ord(char)
        if char == '"':
            out.append('\\"')
        elif char == "\\":
            out.append("\\\\")
        elif char in "\b\f\n\r\t":
            out.append({"\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t"}[char])
        elif code < 0x20 or char in "<>&'":
            out.append(f"\\u{code:04x}")
        else:
            out.append(char)
    out.append('"')
    return "".join(out)


def _hashtable_order(keys: list[str]) -> list[str]:
    """A Hashtable enumerates by hash bucket, not insertion order: a fixed, scrambled order."""
    return sorted(keys, key=lambda k: hashlib.sha256(k.encode()).hexdigest())


def convert_to_json(value: Any, depth: int, level: int = 0) -> str:
    """``ConvertTo-Json -Compress -Depth depth`` of hashtables, arrays, strings and numbers."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return _string(value)
    if isinstance(value, dict):
        if level >= depth:
            return _string("System.Collections.Hashtable")
        keys = _hashtable_order(list(value))
        items = (f"{_string(k)}:{convert_to_json(value[k], depth, level + 1)}" for k in keys)
        return "{" + ",".join(items) + "}"
    if isinstance(value, list):
        if level >= depth:
            return _string(" ".join(str(v) for v in value))
        return "[" + ",".join(convert_to_json(v, depth, level + 1) for v in value) + "]"
    raise TypeError(type(value))


# --- CLIXML ----------------------------------------------------------------------------------


def _clixml_line(stream: str, text: str) -> str:
    return f'<S S="{stream}">{escape(text)}_x000D__x000A_</S>'


def progress_clixml() -> str:
    """What loading a module in a fresh shell prints while output is redirected."""
    record = (
        '<Obj S="progress" RefId="0"><TN RefId="0"><T>System.Management.Automation.PSCustomObject'
        '</T><T>System.Object</T></TN><MS><I64 N="SourceId">1</I64><PR N="Record">'
        "<AV>Preparing modules for first use.</AV><AI>0</AI><Nil /><PI>-1</PI><PC>-1</PC>"
        "<T>Completed</T><SR>-1</SR><SD> </SD></PR></MS></Obj>"
    )
    return f'#< CLIXML\r\n<Objs Version="1.1.0.1" xmlns="{CLIXML_NS}">{record}</Objs>'


def error_clixml(message: str, line: str, category: str, error_id: str) -> str:
    """An uncaught error record, as ``powershell -EncodedCommand`` writes it to stderr."""
    parts = [
        message,
        "At line:1 char:1",
        f"+ {line}",
        "+ " + "~" * min(len(line), 40),
        f"    + CategoryInfo          : {category}",
        f"    + FullyQualifiedErrorId : {error_id}",
        " ",
    ]
    body = "".join(_clixml_line("Error", p) for p in parts)
    return f'#< CLIXML\r\n<Objs Version="1.1.0.1" xmlns="{CLIXML_NS}">{body}</Objs>'


# --- the check script ------------------------------------------------------------------------


class _PSError(Exception):
    """A terminating error inside one ``T`` part: its ``$_.Exception.Message``."""


def _part_os(host: WindowsServer, r: dict[str, Any], script: str) -> None:
    names = re.search(r"foreach\(\$k in ([^)]*)\)", script)
    assert names is not None, "the os part reads the registry values by name"
    for name in re.findall(r"'([A-Za-z]+)'", names.group(1)):
        r[name] = host.registry.get(name)  # $v.$k of a missing value is $null
    r["UptimeSeconds"] = host.uptime_seconds


def _part_docker(host: WindowsServer, r: dict[str, Any], script: str) -> None:
    if host.docker is not None:
        r["DockerState"] = host.docker.state
        r["DockerCommand"] = host.docker.path_name
        r["DockerPid"] = host.docker.process_id if host.docker.state == "Running" else 0


def _part_listen(host: WindowsServer, r: dict[str, Any], script: str) -> None:
    if r.get("DockerPid"):
        r["Listen"] = [f"{address} {port}" for address, port in host.listeners]


def _part_version(host: WindowsServer, r: dict[str, Any], script: str) -> None:
    command = r.get("DockerCommand") or ""
    match = re.match(r'^"?([^"]+?\.exe)', command)
    if match and host.docker is not None:
        if match.group(1) != DOCKER_EXE:
            raise _PSError(
                f"The term '{match.group(1)}' is not recognized as the name of a cmdlet, "
                "function, script file, or operable program. Check the spelling of the name, or "
                "if a path was included, verify that the path is correct and try again."
            )
        r["DockerVersion"] = host.docker.version_text


def _part_config(host: WindowsServer, r: dict[str, Any], script: str) -> None:
    path = host.program_data + r"\docker\config\daemon.json"
    match = re.search(r'--config-file[= ]+("([^"]+)"|(\S+))', r.get("DockerCommand") or "")
    if match:
        path = match.group(2) or match.group(3)
    r["ConfigPath"] = path
    if host.daemon_json_denied:
        raise _PSError(
            'Exception calling "ReadAllText" with "1" argument(s): '
            f"\"Access to the path '{path}' is denied.\""
        )
    if host.daemon_json is not None:
        # File.ReadAllText drops a UTF-8 byte order mark.
        r["DaemonJson"] = host.daemon_json.removeprefix("\ufeff")


def _part_disk(host: WindowsServer, r: dict[str, Any], script: str) -> None:
    r["Disks"] = [{"Id": d, "Free": free, "Size": size} for d, free, size in host.disks]


def _part_features(host: WindowsServer, r: dict[str, Any], script: str) -> None:
    r["Features"] = [{"Name": n, "State": s} for n, s in host.features.items()]


def _part_reboot(host: WindowsServer, r: dict[str, Any], script: str) -> None:
    order = ("ComponentBasedServicing", "WindowsUpdate", "PendingFileRename")
    r["Reboot"] = [m for m in order if m in host.reboot]


PARTS = {
    "os": _part_os,
    "docker": _part_docker,
    "listen": _part_listen,
    "version": _part_version,
    "config": _part_config,
    "disk": _part_disk,
    "features": _part_features,
    "reboot": _part_reboot,
}


def run_script(host: WindowsServer, script: str) -> tuple[bytes, bytes, int]:
    """(stdout, stderr, exit code) of ``powershell -EncodedCommand`` running ``script``."""
    probe = re.search(r"Probe='([^']+)'", script)
    if probe is None or CURRENT_VERSION not in script:
        word = script.split()[0] if script.split() else "?"
        unknown = error_clixml(
            f"The term '{word}' is not recognized as the name of a cmdlet, function, script "
            "file, or operable program. Check the spelling of the name, or if a path was "
            "included, verify that the path is correct and try again.",
            script.splitlines()[0] if script else "",
            f"ObjectNotFound: ({word}:String) [], CommandNotFoundException",
            "CommandNotFoundException",
        )
        return b"", unknown.encode(), 1
    quiet = "$ProgressPreference='SilentlyContinue'" in script
    stderr = b"" if quiet else progress_clixml().encode()
    if host.fail_with is not None:
        message, category, error_id = host.fail_with
        failing = next((x for x in script.splitlines() if "New-Object" in x), script.split()[0])
        stderr += error_clixml(message, failing, category, error_id).encode()
        return b"", stderr, 1
    if host.malformed is not None:
        return host.malformed.encode(), stderr, 0
    r: dict[str, Any] = {
        "Probe": probe.group(1),
        "ProgramData": host.program_data,
        "SystemDrive": host.system_drive,
    }
    errors = []
    for name in re.findall(r"^T (\w+) \{", script, re.M):
        try:
            if name in host.denied_parts:
                raise _PSError(host.denied_parts[name])
            PARTS[name](host, r, script)
        except _PSError as exc:
            errors.append(f"{name}: {exc}")
    r["Errors"] = errors
    match = re.search(r"ConvertTo-Json\b[^\n]*?-Depth (\d+)", script)
    depth = int(match.group(1)) if match else 2
    return (convert_to_json(r, depth) + "\r\n").encode(), stderr, 0
