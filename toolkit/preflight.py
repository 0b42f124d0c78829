"""Preflight: before anything is sent, is each host's engine fit for the builds assigned to it?

From ``client.version()`` and ``client.info()``: the engine answers; its API version is at least
:data:`MIN_API_VERSION`; it runs Windows containers (``OSType``); and its build, read from
``KernelVersion`` (``10.0 17763 (17763.1.amd64fre.rs5_release.180914-1434)``), can run the
target's image. Microsoft's version-compatibility rules
(https://learn.microsoft.com/virtualization/windowscontainers/deploy-containers/version-compatibility):

* host build == image build: process isolation;
* host newer: Hyper-V isolation, except that a Windows Server 2025 host (26100) runs Server 2022
  images (20348) with process isolation;
* host older: impossible in any isolation ("The container operating system does not match the
  host operating system", 0xc0370101), so the build is refused before it starts.

``--isolation`` overrides the choice (never the host-older refusal); ``--no-preflight`` skips
the whole check, for engines it does not know (the test suite's Linux engines).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from toolkit.errors import (
    ConfigError,
    HostError,
    ToolkitError,
    ToolMissingError,
    describe_exception,
)
from toolkit.hosts import HostsConfig, HostSelection, HostSpec
from toolkit.windows import WindowsRelease, find_release

if TYPE_CHECKING:
    from toolkit.matrix import Build

# A chosen floor, not a researched limit: the toolkit is exercised against API 1.41 (Debian's
# dockerd 20.10) and the API versions recorded from Windows engines (1.39 and newer); engines
# older than Docker 17.06 (API 1.30) are untested and refused. Lower it only with a test.
MIN_API_VERSION = "1.30"
ISOLATIONS = ("process", "hyperv")
# (host build, image build) pairs Microsoft allows to run with process isolation across builds.
PROCESS_ACROSS_BUILDS = frozenset({(26100, 20348)})

# Bounded digit counts: an engine's thousands of digits must not reach int() (ValueError).
_KERNEL = re.compile(r"\s*([0-9]{1,9})\.([0-9]{1,9})\s+([0-9]{1,9})\b")
_OS_BUILD = re.compile(r"OS Build ([0-9]{1,9})\.([0-9]{1,9})\b")


@dataclass(frozen=True, kw_only=True)
class HostFacts:
    """What an engine says about itself. ``build`` and ``revision`` are None unless Windows."""

    endpoint: str
    name: str
    os_type: str
    operating_system: str
    kernel_version: str
    build: int | None
    revision: int | None
    api_version: str
    server_version: str
    architecture: str
    default_isolation: str | None

    @property
    def os_build(self) -> str:
        """``17763.805`` (or ``17763`` without an update revision, ``-`` when not Windows)."""
        if self.build is None:
            return "-"
        return f"{self.build}.{self.revision}" if self.revision is not None else str(self.build)

    def record(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "os_type": self.os_type,
            "operating_system": self.operating_system,
            "kernel_version": self.kernel_version,
            "build": self.build,
            "revision": self.revision,
            "api_version": self.api_version,
            "server_version": self.server_version,
            "architecture": self.architecture,
            "default_isolation": self.default_isolation,
        }


@dataclass(frozen=True)
class Assignment:
    """Where one build runs and how. ``error`` is the refusal when the host is unfit."""

    build_id: str
    release: str
    host: HostSpec
    isolation: str | None
    facts: HostFacts | None
    error: ToolkitError | None = None

    @property
    def ok(self) -> bool:
        return self.error is None

    def record(self) -> dict[str, Any]:
        return {
            "id": self.build_id,
            "release": self.release,
            "host": self.host.record(),
            "host_build": self.facts.os_build if self.facts is not None else None,
            "facts": self.facts.record() if self.facts is not None else None,
            "isolation": self.isolation,
            "ok": self.ok,
            "error": self.error.one_line() if self.error is not None else None,
        }


def parse_kernel_build(kernel_version: str) -> int | None:
    """The Windows build in ``10.0 17763 (17763.1.amd64fre.rs5_release.180914-1434)``."""
    match = _KERNEL.match(kernel_version)
    if match is None or match.group(1) != "10":
        return None
    return int(match.group(3))


def parse_revision(operating_system: str, build: int | None) -> int | None:
    """The update revision (UBR) in ``... (OS Build 17763.805)``, if it belongs to ``build``."""
    match = _OS_BUILD.search(operating_system)
    if match is None or build is None or int(match.group(1)) != build:
        return None
    return int(match.group(2))


def inspect_engine(client: Any, *, host: str = "") -> HostFacts:
    """Ask the engine (``client.version()``, ``client.info()``); HostError if it does not answer."""
    endpoint = host or str(getattr(getattr(client, "api", None), "base_url", "")) or "engine"
    import docker.errors
    import requests.exceptions

    try:
        version = client.version()
        info = client.info()
    except (
        docker.errors.DockerException,
        requests.exceptions.RequestException,
        OSError,
    ) as exc:
        raise HostError(
            f"Docker host {endpoint} does not answer: {describe_exception(exc)}",
            hint="check that the engine runs and is reachable from here",
        ) from exc
    os_type = str(info.get("OSType") or version.get("Os") or "")
    kernel = str(info.get("KernelVersion") or version.get("KernelVersion") or "")
    operating_system = str(info.get("OperatingSystem") or "")
    build = parse_kernel_build(kernel) if os_type == "windows" else None
    isolation = info.get("Isolation")
    return HostFacts(
        endpoint=endpoint,
        name=str(info.get("Name") or ""),
        os_type=os_type,
        operating_system=operating_system,
        kernel_version=kernel,
        build=build,
        revision=parse_revision(operating_system, build),
        api_version=str(version.get("ApiVersion") or ""),
        server_version=str(version.get("Version") or info.get("ServerVersion") or ""),
        architecture=str(info.get("Architecture") or version.get("Arch") or ""),
        default_isolation=str(isolation) if isolation else None,
    )


def check_engine(facts: HostFacts) -> None:
    """Host-level checks: API version new enough. HostError names the host and the versions."""
    from packaging.version import Version  # only with preflight: not on every build's start

    try:
        too_old = Version(facts.api_version) < Version(MIN_API_VERSION)
    except ValueError:  # InvalidVersion, or thousands of digits
        raise HostError(
            f"Docker host {facts.endpoint} reports API version {facts.api_version!r}",
            hint="is this a Docker Engine? pass --no-preflight to skip the check",
        ) from None
    if too_old:
        raise HostError(
            f"Docker host {facts.endpoint} speaks API {facts.api_version} "
            f"(engine {facts.server_version}); the toolkit needs {MIN_API_VERSION} or newer",
            hint="upgrade the engine on that host",
        )


def isolation_between(host_build: int, image_build: int) -> str | None:
    """``process`` or ``hyperv`` for an image of ``image_build`` on a ``host_build`` host, or None
    when it never runs there (an image newer than the host)."""
    if host_build < image_build:
        return None
    if host_build == image_build or (host_build, image_build) in PROCESS_ACROSS_BUILDS:
        return "process"
    return "hyperv"


def _release(release: WindowsRelease | str) -> WindowsRelease:
    if isinstance(release, WindowsRelease):
        return release
    found = find_release(release)
    if found is None:
        raise ConfigError(f"unknown Windows release {release!r}")
    return found


def check_isolation_option(value: str | None) -> str | None:
    if value is None or value in ISOLATIONS:
        return value
    raise ConfigError(
        f"--isolation {value!r} is not an isolation mode", hint="use process or hyperv"
    )


def choose_isolation(facts: HostFacts, release: WindowsRelease | str, override: str | None) -> str:
    """``process`` or ``hyperv`` for an image of ``release`` on this host, or HostError."""
    target = _release(release)
    override = check_isolation_option(override)
    if facts.os_type != "windows":
        raise HostError(
            f"Docker host {facts.endpoint} runs {facts.os_type or 'unknown'} containers "
            f"(OSType {facts.os_type!r}); {target.key} needs a Windows engine",
            hint="point the release at a Windows host, or pass --no-preflight to build anyway",
        )
    if facts.build is None:
        raise HostError(
            f"Docker host {facts.endpoint}: cannot read a Windows build from "
            f"KernelVersion {facts.kernel_version!r}",
            hint="pass --no-preflight (and --isolation) to build anyway",
        )
    natural = isolation_between(facts.build, target.build)
    if natural is None:
        raise HostError(
            f"Docker host {facts.endpoint} runs Windows build {facts.build}, older than the "
            f"{target.key} image (build {target.build}): a newer image never runs on an older host",
            hint=f"build {target.key} on a host with build {target.build} or newer",
        )
    return override if override is not None else natural


def _host_key(spec: HostSpec) -> tuple[str, str | None, object]:
    return (spec.url, spec.context, spec.tls)


def plan_assignments(
    builds: Sequence[Build],
    hosts: HostsConfig,
    connect_fn: Callable[[HostSpec], Any],
    isolation_override: str | None,
    preflight: bool,
) -> list[Assignment]:
    """Assign each build to its release's host and decide its isolation.

    A build whose release has no host gets an Assignment with ``error`` set (host ``-``), and
    the others go ahead: ``--host 1809=URL`` alone plans 1809. With ``preflight``, each distinct
    host is contacted once through ``connect_fn`` (which owns and closes the clients it returns)
    and inspected; an unreachable or unfit host becomes an Assignment with ``error`` set, so the
    other builds can go ahead. Without it, no host is contacted and ``isolation`` is the override
    (None: engine default).
    """
    override = check_isolation_option(isolation_override)
    found = {b.release.key: hosts.find(b.release.key) for b in builds}
    specs = [found[b.release.key] or hosts.placeholder(b.release.key) for b in builds]
    unhosted = {key: hosts.missing(key) for key, spec in found.items() if spec is None}
    if not preflight:
        return [
            Assignment(
                build.id,
                build.release.key,
                spec,
                None if build.release.key in unhosted else override,
                None,
                unhosted.get(build.release.key),
            )
            for build, spec in zip(builds, specs, strict=True)
        ]
    inspected: dict[tuple[str, str | None, object], HostFacts | HostError] = {}
    for spec in specs:
        key = _host_key(spec)
        if key in inspected:
            continue
        if not spec.configured:
            inspected[key] = unhosted[spec.release or ""]
            continue
        try:
            facts = inspect_engine(connect_fn(spec), host=spec.name)
            check_engine(facts)
            inspected[key] = facts
        except HostError as exc:
            inspected[key] = exc
    plan = []
    for build, spec in zip(builds, specs, strict=True):
        outcome = unhosted.get(build.release.key) or inspected[_host_key(spec)]
        if isinstance(outcome, HostError):
            plan.append(Assignment(build.id, build.release.key, spec, None, None, outcome))
            continue
        try:
            isolation = choose_isolation(outcome, build.release, override)
        except HostError as exc:
            plan.append(Assignment(build.id, build.release.key, spec, None, outcome, exc))
            continue
        plan.append(Assignment(build.id, build.release.key, spec, isolation, outcome))
    return plan


class ClientSource(Protocol):
    """Where clients come from (toolkit.clients.ClientPool): one per host, errors remembered."""

    def connect(self, spec: HostSpec) -> Any: ...

    def os_type(self, spec: HostSpec, known: str | None = None) -> str: ...


@dataclass(frozen=True, kw_only=True)
class Target:
    """A build placed on its host: the client to drive it with, the isolation, the engine's
    OSType (which decides the verify commands)."""

    build: Build
    host: str
    client: Any  # docker.DockerClient; Any so the SDK is not imported for typing
    isolation: str | None
    os_type: str


@dataclass(frozen=True, kw_only=True)
class TargetPlan:
    """Every selected build's assignment, in matrix order; a ``Target`` for each one whose host
    is fit and answers; why not for the others (build id -> error)."""

    assignments: tuple[Assignment, ...]
    targets: tuple[Target, ...]
    refused: Mapping[str, ToolkitError]


def plan_targets(
    builds: Sequence[Build],
    hosts: HostsConfig,
    clients: ClientSource,
    isolation_override: str | None,
    preflight: bool,
) -> TargetPlan:
    """Assign the builds to their hosts (``plan_assignments``) and connect to the fit ones."""
    plan = plan_assignments(builds, hosts, clients.connect, isolation_override, preflight)
    by_id = {b.id: b for b in builds}
    targets: list[Target] = []
    refused: dict[str, ToolkitError] = {}
    for a in plan:
        try:
            if a.error is not None:
                raise a.error
            client = clients.connect(a.host)
            os_type = clients.os_type(a.host, a.facts.os_type if a.facts is not None else None)
        except ToolMissingError:  # not the host's fault: the run cannot go on here at all
            raise
        except ToolkitError as exc:
            refused[a.build_id] = exc
            continue
        targets.append(
            Target(
                build=by_id[a.build_id],
                host=a.host.name,
                client=client,
                isolation=a.isolation,
                os_type=os_type,
            )
        )
    return TargetPlan(assignments=tuple(plan), targets=tuple(targets), refused=refused)


@dataclass(frozen=True, kw_only=True)
class HostsPlan:
    """``toolkit hosts``: each selected build's host, isolation and verdict."""

    assignments: tuple[Assignment, ...]

    def failure(self) -> ToolkitError | None:
        refused = [a for a in self.assignments if a.error is not None]
        if not refused:
            return None
        return HostError(
            f"{len(refused)} of {len(self.assignments)} build(s) have no fit host",
            hint="see the STATUS column",
        )


@dataclass(frozen=True, kw_only=True)
class HostsRequest:
    versions: Path
    selectors: tuple[str, ...] = ()
    hosts: HostSelection = field(default_factory=HostSelection)


def plan_hosts(request: HostsRequest, env: Mapping[str, str], clients: ClientSource) -> HostsPlan:
    """Where each build would run and how, checking each host once (unless no preflight)."""
    from toolkit.matrix import select_builds

    builds = select_builds(request.versions, request.selectors).chosen
    selection = request.hosts
    config = selection.load(env)
    plan = plan_assignments(
        builds, config, clients.connect, selection.isolation, selection.preflight
    )
    return HostsPlan(assignments=tuple(plan))
