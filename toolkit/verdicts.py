"""Is a Windows build host fit for the releases planned on it? Verdicts, each with its fix.

Inputs are plain values: what the host says over WinRM (:class:`WindowsHostFacts`), what its
Docker API says (:class:`~toolkit.preflight.HostFacts`, or why it did not answer) and the
releases the plan sends to it. A verdict ``fail`` makes the host unfit (``toolkit inspect``
exits 8, ``build --preflight winrm`` refuses its releases); ``warn`` is worth reading but does
not stop a build.

Free space: :data:`MIN_DATA_ROOT_FREE` (20 GB) on the volume of Docker's data root. A first
build pulls the Server Core base image and keeps both its compressed layers and their
extraction until the pull ends: 2-3 GB download and 4-6 GB on disk for 1809 to ltsc2025 (the
1903 image was 2.3 GB and 5.1 GB, 2004 1.9 GB and 4.1 GB, as Microsoft published them), about
twice that for ltsc2016. The build adds the Python installer, the installed Python (a few hundred
MB) and a scratch layer per step. 20 GB covers the largest case (ltsc2016, about 17 GB) with
room for the intermediate containers; below it a build can fail hours in with "There is not
enough space on the disk" while extracting a layer. The system drive, when it is another
volume, should keep :data:`MIN_SYSTEM_FREE` (5 GB) for Windows Update and temporary files.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from toolkit.preflight import HostFacts, isolation_between
from toolkit.windows import WindowsRelease
from toolkit.winhost import REBOOT_MARKERS, WindowsHostFacts

GB = 10**9
MIN_DATA_ROOT_FREE = 20 * GB
MIN_SYSTEM_FREE = 5 * GB
PASS, WARN, FAIL = "pass", "warn", "fail"
# Reboot markers that mean an update or a feature is half installed; pending file renames alone
# are common (installers, antivirus) and only worth a warning.
BLOCKING_REBOOTS = ("ComponentBasedServicing", "WindowsUpdate")


@dataclass(frozen=True)
class Verdict:
    check: str
    status: str
    message: str
    fix: str | None = None

    def record(self) -> dict[str, Any]:
        return {
            "check": self.check,
            "status": self.status,
            "message": self.message,
            "fix": self.fix,
        }


def gigabytes(size: int) -> str:
    return f"{size / GB:.1f} GB"


def _build_verdicts(facts: WindowsHostFacts, releases: Sequence[WindowsRelease]) -> list[Verdict]:
    hyperv = facts.features.get("Hyper-V", "unknown")
    found = []
    for release in releases:
        said = f"{release.key} host reports build {facts.build}"
        mode = isolation_between(facts.build, release.build)
        if mode is None:
            found.append(
                Verdict(
                    "build",
                    FAIL,
                    f"{said}: the {release.key} image (build {release.build}) never runs on an "
                    "older host",
                    f"point [hosts.{release.key}] at a host with build {release.build} or newer",
                )
            )
        elif mode == "process":
            found.append(
                Verdict("build", PASS, f"{said}: builds {release.key} with process isolation")
            )
        elif hyperv == "installed":
            found.append(
                Verdict(
                    "build",
                    PASS,
                    f"{said}: builds {release.key} with Hyper-V isolation (Hyper-V is installed)",
                )
            )
        else:
            state = "is not installed" if hyperv != "unknown" else "could not be checked"
            found.append(
                Verdict(
                    "build",
                    FAIL if hyperv != "unknown" else WARN,
                    f"{said}: it can build {release.key} only with Hyper-V isolation, and "
                    f"Hyper-V {state}",
                    "Install-WindowsFeature Hyper-V -IncludeManagementTools -Restart (a VM needs "
                    f"nested virtualization), or point [hosts.{release.key}] at a build "
                    f"{release.build} host",
                )
            )
    return found


def _docker_verdicts(facts: WindowsHostFacts) -> list[Verdict]:
    found = []
    containers = facts.features.get("Containers", "unknown")
    if containers == "installed":
        found.append(Verdict("containers", PASS, "the Containers feature is installed"))
    elif containers == "unknown":
        found.append(Verdict("containers", WARN, "the Containers feature could not be checked"))
    else:
        found.append(
            Verdict(
                "containers",
                FAIL,
                f"the Containers feature is {containers}: Windows containers cannot run",
                "Install-WindowsFeature Containers -Restart",
            )
        )
    version = f" (dockerd {facts.docker_version})" if facts.docker_version else ""
    if facts.docker_state is None:
        reason = next((e for e in facts.errors if e.startswith("docker: ")), None)
        found.append(
            Verdict("docker", WARN, f"the docker service could not be read: {reason[8:]}")
            if reason
            else Verdict(
                "docker",
                FAIL,
                "there is no docker service on the host",
                "install Docker (Microsoft's install-docker-ce.ps1, or Mirantis Container "
                "Runtime) and register it with dockerd --register-service",
            )
        )
    elif facts.docker_state != "Running":
        found.append(
            Verdict(
                "docker",
                FAIL,
                f"the docker service is {facts.docker_state}{version}",
                "Start-Service docker; Set-Service docker -StartupType Automatic; if it stops "
                "again, read Get-WinEvent -LogName Application -MaxEvents 20",
            )
        )
    else:
        found.append(Verdict("docker", PASS, f"the docker service is Running{version}"))
    return found


def _tls_verdicts(facts: WindowsHostFacts) -> list[Verdict]:
    if facts.docker_state != "Running" or facts.listeners is None:
        return []
    listeners = facts.listeners
    if not listeners:
        return [Verdict("tls", PASS, "dockerd listens on no TCP port (the named pipe only)")]
    shown = ", ".join(str(x) for x in listeners)
    fix = (
        "set tlsverify, tlscacert, tlscert and tlskey in daemon.json (README.md, Host setup), "
        "then Restart-Service docker"
    )
    verify = facts.tls_verify
    if verify:
        return [Verdict("tls", PASS, f"dockerd listens on {shown} with TLS (tlsverify)")]
    if verify is None:
        return [
            Verdict(
                "tls",
                WARN,
                f"dockerd listens on {shown}; whether it verifies clients is unknown: "
                f"{facts.daemon_config_error}",
                f"grant the WinRM account read access to {facts.config_path or 'daemon.json'} "
                "(icacls FILE /grant USER:R)",
            )
        ]
    what = "TLS without tlsverify" if facts.tls_only else "plain TCP"
    if all(x.loopback for x in listeners):
        return [
            Verdict(
                "tls",
                WARN,
                f"dockerd listens on {shown} with {what}: any local user can drive the engine",
                fix,
            )
        ]
    return [
        Verdict(
            "tls",
            FAIL,
            f"dockerd listens on {shown} with {what}: anyone who reaches the port controls "
            "the host",
            fix,
        )
    ]


def _disk_verdicts(facts: WindowsHostFacts) -> list[Verdict]:
    if facts.disks is None:
        return [Verdict("disk", WARN, "free space could not be read")]
    found = []
    root_drive = facts.data_root_drive
    root = facts.free(root_drive)
    need = gigabytes(MIN_DATA_ROOT_FREE)
    if root is None:
        found.append(
            Verdict(
                "disk",
                WARN,
                f"Docker's data root {facts.data_root or '?'} is on no local drive the host "
                "lists; its free space is unknown",
            )
        )
    elif root.free < MIN_DATA_ROOT_FREE:
        found.append(
            Verdict(
                "disk",
                FAIL,
                f"{gigabytes(root.free)} free on {root_drive} (Docker's data root "
                f"{facts.data_root}); a servercore build needs {need}",
                "remove unused images and containers (docker system prune), or move data-root "
                "in daemon.json to a larger volume",
            )
        )
    else:
        found.append(
            Verdict(
                "disk",
                PASS,
                f"{gigabytes(root.free)} free on {root_drive} (Docker's data root); "
                f"a servercore build needs {need}",
            )
        )
    system = facts.free(facts.system_drive)
    if system is not None and facts.system_drive != root_drive and system.free < MIN_SYSTEM_FREE:
        found.append(
            Verdict(
                "disk",
                WARN,
                f"{gigabytes(system.free)} free on the system drive {facts.system_drive}; "
                f"Windows Update and temporary files want {gigabytes(MIN_SYSTEM_FREE)}",
                "Dism /Online /Cleanup-Image /StartComponentCleanup, or free space",
            )
        )
    return found


def _reboot_verdicts(facts: WindowsHostFacts) -> list[Verdict]:
    if facts.reboot is None:
        return [Verdict("reboot", WARN, "pending reboots could not be checked")]
    if not facts.reboot:
        return [Verdict("reboot", PASS, "no reboot pending")]
    names = ", ".join(REBOOT_MARKERS.get(m, m) for m in facts.reboot)
    blocking = any(m in BLOCKING_REBOOTS for m in facts.reboot)
    return [
        Verdict(
            "reboot",
            FAIL if blocking else WARN,
            f"a reboot is pending ({names})"
            + (": an update or feature is half installed" if blocking else ""),
            "Restart-Computer before the build (a reboot during it fails the build)",
        )
    ]


def _engine_verdicts(
    facts: WindowsHostFacts, engine: HostFacts | None, engine_error: str | None
) -> list[Verdict]:
    if engine_error is not None:
        if facts.docker_state != "Running":
            return []  # the docker verdict already says why
        return [
            Verdict(
                "engine",
                FAIL,
                f"the docker service runs, but its API does not answer from here: {engine_error}",
                "check the firewall (TCP 2376 from this machine), the url and the TLS files in "
                "hosts.toml, and the listener in daemon.json",
            )
        ]
    if engine is None:
        return []
    if engine.os_type != "windows":
        return [
            Verdict(
                "engine",
                FAIL,
                f"the Docker API reports OSType {engine.os_type!r}, not windows",
                "switch the engine to Windows containers",
            )
        ]
    found = []
    if engine.build != facts.build:
        return [
            Verdict(
                "engine",
                FAIL,
                f"the Docker API reports build {engine.build}, the registry over WinRM build "
                f"{facts.build}: the Docker and WinRM endpoints reach different machines",
                "make the host's url and winrm.endpoint in hosts.toml name the same machine",
            )
        ]
    if engine.revision is not None and engine.revision != facts.revision:
        found.append(
            Verdict(
                "engine",
                WARN,
                f"the Docker API reports {engine.os_build}, the registry {facts.os_build}: an "
                "update was installed since dockerd started",
                "Restart-Service docker (or the host) so that builds get the current base image",
            )
        )
    if (
        facts.docker_version
        and engine.server_version
        and facts.docker_version != engine.server_version
    ):
        found.append(
            Verdict(
                "engine",
                WARN,
                f"the running engine is {engine.server_version}, dockerd.exe on disk is "
                f"{facts.docker_version}",
                "Restart-Service docker to run the installed engine",
            )
        )
    if not found:
        found.append(
            Verdict(
                "engine",
                PASS,
                f"the Docker API agrees: build {engine.os_build}, engine {engine.server_version}",
            )
        )
    return found


def judge(
    facts: WindowsHostFacts,
    releases: Sequence[WindowsRelease],
    *,
    engine: HostFacts | None = None,
    engine_error: str | None = None,
) -> list[Verdict]:
    """Every verdict about one host for the ``releases`` planned on it."""
    found = [
        *_build_verdicts(facts, releases),
        *_docker_verdicts(facts),
        *_tls_verdicts(facts),
        *_disk_verdicts(facts),
        *_reboot_verdicts(facts),
        *_engine_verdicts(facts, engine, engine_error),
    ]
    return found
