"""What a Windows build host says about itself over WinRM: one PowerShell script and its parser.

The script (:data:`CHECK_SCRIPT`) runs in Windows PowerShell 5.1, which every Windows Server
from 2016 to 2025 ships, and prints one JSON object (``ConvertTo-Json -Compress -Depth 4``: the
default depth of 2 would flatten the disk and feature lists into ``"System.Collections.Hashtable"``).
Each part runs on its own (``T name {...}``): a part the account may not read (``daemon.json``
under ``C:\\ProgramData\\docker`` is for administrators only) adds a line to ``Errors`` instead
of failing the whole check. Values come raw where Windows has a stable format (the registry,
``dockerd --version``, the service's command line, ``daemon.json``'s text) and are parsed here.

Sources: ``HKLM\\SOFTWARE\\Microsoft\\Windows NT\\CurrentVersion`` (``CurrentBuildNumber``,
``UBR``; ``ReleaseId`` says ``2009`` on Server 2022 and 2025, so the build is what counts),
``Win32_OperatingSystem`` (uptime), ``Win32_Service`` (the docker service: state, command line,
process), ``Get-NetTCPConnection`` (dockerd's listening sockets), ``Win32_LogicalDisk`` (free
space), ``Win32_OptionalFeature`` (``Containers``, ``Microsoft-Hyper-V``: ``InstallState`` 1
enabled, 2 disabled, 3 absent; readable without administrator rights, unlike
``Get-WindowsFeature``), and the pending-reboot markers of Component Based Servicing, Windows
Update and ``PendingFileRenameOperations``.
"""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from toolkit.errors import WinRMError
from toolkit.windows import WindowsRelease, release_for_build

PROBE = "toolkit-inspect/1"
CHECK_SCRIPT = (
    "$ErrorActionPreference='Stop';$ProgressPreference='SilentlyContinue'\n"
    f"$r=@{{Probe='{PROBE}';ProgramData=$env:ProgramData;SystemDrive=$env:SystemDrive}}\n"
    "$e=New-Object Collections.ArrayList\n"
    'function T($n,$b){try{. $b}catch{[void]$e.Add("${n}: $($_.Exception.Message)")}}\n'
    "T os {$v=Get-ItemProperty 'HKLM:\\SOFTWARE\\Microsoft\\Windows NT\\CurrentVersion'\n"
    "foreach($k in 'CurrentBuildNumber','UBR','ProductName','EditionID','InstallationType',"
    "'DisplayVersion','ReleaseId'){$r[$k]=$v.$k}\n"
    "$r.UptimeSeconds=[int64]((Get-Date)-(Get-CimInstance Win32_OperatingSystem).LastBootUpTime)"
    ".TotalSeconds}\n"
    "T docker {$s=Get-CimInstance Win32_Service -Filter \"Name='docker'\"\n"
    "if($s){$r.DockerState=$s.State;$r.DockerCommand=$s.PathName;$r.DockerPid=$s.ProcessId}}\n"
    "T listen {if($r.DockerPid){$r.Listen=@(Get-NetTCPConnection -State Listen -OwningProcess "
    '$r.DockerPid -EA 0|%{"$($_.LocalAddress) $($_.LocalPort)"})}}\n'
    'T version {if("$($r.DockerCommand)" -match \'^"?([^"]+?\\.exe)\'){'
    "$r.DockerVersion=(& $Matches[1] --version|Out-String).Trim()}}\n"
    'T config {$c="$env:ProgramData\\docker\\config\\daemon.json"\n'
    'if("$($r.DockerCommand)" -match \'--config-file[= ]+("([^"]+)"|(\\S+))\')'
    "{$c=$Matches[2]+$Matches[3]}\n"
    "$r.ConfigPath=$c\n"
    "try{$r.DaemonJson=[IO.File]::ReadAllText($c)}"
    "catch [IO.FileNotFoundException],[IO.DirectoryNotFoundException]{}}\n"
    "T disk {$r.Disks=@(Get-CimInstance Win32_LogicalDisk -Filter 'DriveType=3'|"
    "%{@{Id=$_.DeviceID;Free=$_.FreeSpace;Size=$_.Size}})}\n"
    "T features {$r.Features=@(Get-CimInstance Win32_OptionalFeature -Filter "
    "\"Name='Containers' OR Name='Microsoft-Hyper-V'\"|%{@{Name=$_.Name;State=$_.InstallState}})}\n"
    "T reboot {$k='HKLM:\\SOFTWARE\\Microsoft\\Windows\\CurrentVersion\\'\n"
    '$r.Reboot=@(if(Test-Path "${k}Component Based Servicing\\RebootPending")'
    "{'ComponentBasedServicing'}\n"
    "if(Test-Path \"${k}WindowsUpdate\\Auto Update\\RebootRequired\"){'WindowsUpdate'}\n"
    "if((Get-ItemProperty 'HKLM:\\SYSTEM\\CurrentControlSet\\Control\\Session Manager')"
    ".PendingFileRenameOperations){'PendingFileRename'})}\n"
    "$r.Errors=@($e)\n"
    "[pscustomobject]$r|ConvertTo-Json -Compress -Depth 4\n"
)
# Win32_OptionalFeature.InstallState
FEATURE_STATES = {1: "installed", 2: "not installed", 3: "absent"}
FEATURES = {"Containers": "Containers", "Hyper-V": "Microsoft-Hyper-V"}
REBOOT_MARKERS = {
    "ComponentBasedServicing": "Component Based Servicing",
    "WindowsUpdate": "Windows Update",
    "PendingFileRename": "pending file renames",
}
_DOCKER_VERSION = re.compile(r"Docker version ([0-9A-Za-z.+~-]{1,40})")
_DRIVE = re.compile(r"([A-Za-z]:)")


@dataclass(frozen=True)
class Listener:
    address: str
    port: int

    @property
    def loopback(self) -> bool:
        return self.address in ("127.0.0.1", "::1")

    def __str__(self) -> str:
        return (
            f"[{self.address}]:{self.port}"
            if ":" in self.address
            else f"{self.address}:{self.port}"
        )


@dataclass(frozen=True)
class Disk:
    free: int
    size: int


@dataclass(frozen=True, kw_only=True)
class WindowsHostFacts:
    """A Windows host as its registry, services, disks and features describe it.

    ``None`` means "could not be read" (see ``errors``); ``docker_state`` None with no error
    means there is no docker service.
    """

    endpoint: str
    build: int
    revision: int
    product_name: str = ""
    edition: str = ""
    installation_type: str = ""
    display_version: str = ""
    uptime_seconds: int | None = None
    docker_state: str | None = None
    docker_command: str | None = None
    docker_version: str | None = None
    config_path: str | None = None
    daemon_config: Mapping[str, Any] | None = None
    daemon_config_error: str | None = None
    listeners: tuple[Listener, ...] | None = None
    system_drive: str = "C:"
    data_root: str = ""
    disks: Mapping[str, Disk] | None = None
    features: Mapping[str, str] = field(default_factory=dict)
    reboot: tuple[str, ...] | None = None
    errors: tuple[str, ...] = ()

    @property
    def os_build(self) -> str:
        return f"{self.build}.{self.revision}"

    @property
    def release(self) -> WindowsRelease | None:
        """The release whose images run with process isolation here, if the table knows one."""
        return release_for_build(self.build)

    @property
    def docker_args(self) -> list[str]:
        return service_args(self.docker_command)

    def _option(self, *names: str) -> list[str]:
        args, found = self.docker_args, []
        for i, word in enumerate(args):
            for name in names:
                if word == name and i + 1 < len(args):
                    found.append(args[i + 1])
                elif word.startswith(name + "="):
                    found.append(word.split("=", 1)[1])
        return found

    @property
    def tls_verify(self) -> bool | None:
        """dockerd's ``tlsverify`` (daemon.json or ``--tlsverify``); None when unknown."""
        if "--tlsverify" in self.docker_args or "--tlsverify=true" in self.docker_args:
            return True
        if self.daemon_config is not None:
            return self.daemon_config.get("tlsverify") is True
        if self.daemon_config_error is not None:
            return None
        return False

    @property
    def tls_only(self) -> bool:
        """``tls`` without ``tlsverify``: encrypted, but any client may connect."""
        config = self.daemon_config or {}
        return not self.tls_verify and (config.get("tls") is True or "--tls" in self.docker_args)

    @property
    def docker_hosts(self) -> list[str]:
        """``-H``/``--host`` of the service and ``hosts`` of daemon.json."""
        found = self._option("-H", "--host")
        configured = (self.daemon_config or {}).get("hosts")
        if isinstance(configured, list):
            found += [str(h) for h in configured]
        return found

    @property
    def data_root_drive(self) -> str | None:
        match = _DRIVE.match(self.data_root)
        return match.group(1).upper() if match else None

    def free(self, drive: str | None) -> Disk | None:
        if drive is None or self.disks is None:
            return None
        return self.disks.get(drive.upper())

    def record(self) -> dict[str, Any]:
        return {
            "endpoint": self.endpoint,
            "build": self.build,
            "revision": self.revision,
            "os_build": self.os_build,
            "product_name": self.product_name,
            "edition": self.edition,
            "installation_type": self.installation_type,
            "display_version": self.display_version,
            "uptime_seconds": self.uptime_seconds,
            "docker": {
                "state": self.docker_state,
                "version": self.docker_version,
                "command": self.docker_command,
                "config_path": self.config_path,
                "config_error": self.daemon_config_error,
                "tlsverify": self.tls_verify,
                "hosts": self.docker_hosts,
                "listeners": [str(x) for x in self.listeners]
                if self.listeners is not None
                else None,
                "data_root": self.data_root,
            },
            "system_drive": self.system_drive,
            "disks": {k: {"free": d.free, "size": d.size} for k, d in (self.disks or {}).items()}
            if self.disks is not None
            else None,
            "features": dict(self.features),
            "reboot_pending": list(self.reboot) if self.reboot is not None else None,
            "errors": list(self.errors),
        }


# --- parsing ---------------------------------------------------------------------------------


def _list(value: Any) -> list[Any]:
    """A JSON list, also when Windows PowerShell wrapped it as ``{"value": [...], "Count": n}``
    (5.1 does that to arrays carrying extended type data) or unrolled one item to a scalar."""
    if isinstance(value, dict) and isinstance(value.get("value"), list):
        return list(value["value"])
    if value is None:
        return []
    return list(value) if isinstance(value, list) else [value]


def service_args(command: str | None) -> list[str]:
    """The arguments after the executable in a service's command line
    (``"C:\\Program Files\\Docker\\dockerd.exe" --run-service -H npipe://``)."""
    if not command:
        return []
    try:  # shlex treats backslashes as escapes; Windows paths use them as separators
        words = shlex.split(command.replace("\\", "/"), posix=True)
    except ValueError:
        words = command.split()
    return [w.replace("/", "\\") if _DRIVE.match(w) else w for w in words[1:]]


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.isdigit() and len(value) < 12:
        return int(value)
    return None


def _errors_about(errors: list[str], part: str) -> str | None:
    prefix = f"{part}: "
    return next((e[len(prefix) :] for e in errors if e.startswith(prefix)), None)


def _daemon_json(text: Any) -> tuple[Mapping[str, Any] | None, str | None]:
    if not isinstance(text, str):
        return None, None
    try:
        data = json.loads(text.lstrip("\ufeff"))  # Notepad on older Windows writes a BOM
    except (ValueError, RecursionError) as exc:
        return None, f"daemon.json is not valid JSON: {exc}"
    if not isinstance(data, dict):
        return None, "daemon.json is not a JSON object"
    return data, None


def _listeners(value: Any) -> tuple[Listener, ...]:
    found = []
    for item in _list(value):
        address, _, port = str(item).rpartition(" ")
        if address and port.isdigit() and len(port) <= 5:
            found.append(Listener(address, int(port)))
    return tuple(found)


def _disks(value: Any) -> dict[str, Disk]:
    found = {}
    for item in _list(value):
        if not isinstance(item, dict):
            continue
        drive, free, size = (
            _text(item.get("Id")).upper(),
            _int(item.get("Free")),
            _int(item.get("Size")),
        )
        if drive and free is not None and size is not None:
            found[drive] = Disk(free, size)
    return found


def _features(value: Any, failed: bool) -> dict[str, str]:
    states = {
        _text(item.get("Name")): FEATURE_STATES.get(_int(item.get("State")) or 0, "unknown")
        for item in _list(value)
        if isinstance(item, dict)
    }
    unknown = "unknown" if failed else "absent"
    return {name: states.get(wmi_name, unknown) for name, wmi_name in FEATURES.items()}


def _data_root(facts: Mapping[str, Any], config: Mapping[str, Any] | None, args: list[str]) -> str:
    for i, word in enumerate(args):
        if word in ("--data-root", "-g", "--graph") and i + 1 < len(args):
            return args[i + 1]
        if word.startswith(("--data-root=", "--graph=")):
            return word.split("=", 1)[1].replace("/", "\\")
    for key in ("data-root", "graph"):
        if config is not None and isinstance(config.get(key), str):
            return str(config[key])
    program_data = _text(facts.get("ProgramData")) or "C:\\ProgramData"
    return program_data.rstrip("\\") + "\\docker"


def parse_check_output(stdout: str, *, endpoint: str) -> WindowsHostFacts:
    """The facts in the script's output; WinRMError when it is not what the script prints."""
    line = next(
        (x for x in reversed(stdout.splitlines()) if x.strip().startswith("{")), stdout.strip()
    )
    try:
        data = json.loads(line)
    except (ValueError, RecursionError):
        data = None
    if not isinstance(data, dict) or data.get("Probe") != PROBE:
        shown = re.sub(r"\s+", " ", stdout).strip()[:200]
        raise WinRMError(
            f"{endpoint}: the inspection script printed something else: {shown!r}",
            hint="is this Windows PowerShell 5.1 on Windows Server 2016 or newer?",
        )
    errors = [str(e) for e in _list(data.get("Errors"))]
    build, revision = _int(data.get("CurrentBuildNumber")), _int(data.get("UBR"))
    if build is None or revision is None:
        reason = _errors_about(errors, "os") or "CurrentBuildNumber and UBR are missing"
        raise WinRMError(
            f"{endpoint}: cannot read the Windows build from the registry: {reason}",
            hint="is this Windows Server 2016 or newer?",
        )
    config, config_error = _daemon_json(data.get("DaemonJson"))
    config_error = config_error or _errors_about(errors, "config")
    command = _text(data.get("DockerCommand")) or None
    return WindowsHostFacts(
        endpoint=endpoint,
        build=build,
        revision=revision,
        product_name=_text(data.get("ProductName")),
        edition=_text(data.get("EditionID")),
        installation_type=_text(data.get("InstallationType")),
        display_version=_text(data.get("DisplayVersion")) or _text(data.get("ReleaseId")),
        uptime_seconds=_int(data.get("UptimeSeconds")),
        docker_state=_text(data.get("DockerState")) or None,
        docker_command=command,
        docker_version=_docker_version(data.get("DockerVersion")),
        config_path=_text(data.get("ConfigPath")) or None,
        daemon_config=config,
        daemon_config_error=config_error,
        listeners=_listeners(data.get("Listen")) if "Listen" in data else None,
        system_drive=(_text(data.get("SystemDrive")) or "C:").upper(),
        disks=None if _errors_about(errors, "disk") else _disks(data.get("Disks")),
        features=_features(data.get("Features"), _errors_about(errors, "features") is not None),
        reboot=None
        if _errors_about(errors, "reboot")
        else tuple(str(x) for x in _list(data.get("Reboot"))),
        data_root=_data_root(data, config, service_args(command)),
        errors=tuple(errors),
    )


def _docker_version(value: Any) -> str | None:
    match = _DOCKER_VERSION.search(_text(value))
    return match.group(1) if match else None


def inspect_windows_host(session: Any, *, deadline: float) -> WindowsHostFacts:
    """Run :data:`CHECK_SCRIPT` on the host and parse its answer. WinRMError on failure."""
    from toolkit.winrm import first_line, run_powershell

    endpoint = str(getattr(session, "url", "") or "WinRM host")
    result = run_powershell(session, CHECK_SCRIPT, deadline=deadline)
    if result.exit_code != 0:
        raise WinRMError(
            f"the inspection script failed on {endpoint} (exit {result.exit_code}): "
            f"{first_line(result.stderr) or 'no error output'}",
            hint="run it by hand on the host to see the whole error",
        )
    return parse_check_output(result.stdout, endpoint=endpoint)
