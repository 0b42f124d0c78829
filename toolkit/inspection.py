"""``toolkit inspect``: every planned Windows host checked over WinRM at once, each by a deadline.

:func:`plan_inspection` groups the selected builds by host (one WinRM endpoint serves every release
planned on it); :func:`inspect_hosts` runs the check script on each host and asks its Docker API,
concurrently, and judges each host (:mod:`toolkit.verdicts`). A host that does not answer, or
answers nonsense, fails alone; the others are still reported. :func:`refuse_unfit` turns a
failed host into the refusal of the builds planned on it (``build --preflight winrm``).

Every host's work runs in daemon threads and the caller waits for them until the deadline plus
a short grace, not longer: requests bounds each socket read, not a whole response, so a host
that trickles bytes could otherwise hold a run past any timeout.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from toolkit.errors import ConfigError, ToolkitError, WinRMError
from toolkit.hosts import HostSelection
from toolkit.verdicts import FAIL, PASS, WARN, Verdict, gigabytes, judge
from toolkit.windows import WindowsRelease
from toolkit.winhost import WindowsHostFacts, inspect_windows_host
from toolkit.winrm import CLEANUP_TIMEOUT
from toolkit.winrm_config import Secret, WinRMSpec, resolve_passwords

if TYPE_CHECKING:
    from toolkit.hosts import HostsConfig, HostSpec
    from toolkit.matrix import Build
    from toolkit.preflight import Assignment, ClientSource, HostFacts, TargetPlan

GRACE = CLEANUP_TIMEOUT + 2.0
SessionFn = Callable[[WinRMSpec, "Secret | None"], Any]
EngineFn = Callable[["HostSpec"], "HostFacts"]


@dataclass(frozen=True, kw_only=True)
class InspectTarget:
    """One host and the releases the plan builds on it."""

    name: str
    releases: tuple[WindowsRelease, ...]
    winrm: WinRMSpec
    docker: HostSpec | None = None


@dataclass(frozen=True, kw_only=True)
class HostReport:
    target: InspectTarget
    facts: WindowsHostFacts | None = None
    error: str | None = None
    engine: HostFacts | None = None
    engine_error: str | None = None
    verdicts: tuple[Verdict, ...] = ()
    duration: float = 0.0

    @property
    def failures(self) -> list[Verdict]:
        return [v for v in self.verdicts if v.status == FAIL]

    @property
    def ok(self) -> bool:
        return self.error is None and not self.failures

    def reason(self) -> str:
        """Why the host failed, in one line (empty when it passed)."""
        if self.error is not None:
            return self.error
        return "; ".join(v.message for v in self.failures)

    def record(self) -> dict[str, Any]:
        return {
            "host": self.target.name,
            "releases": [r.key for r in self.target.releases],
            "winrm": self.target.winrm.record(),
            "ok": self.ok,
            "error": self.error,
            "facts": self.facts.record() if self.facts is not None else None,
            "engine": self.engine.record() if self.engine is not None else None,
            "engine_error": self.engine_error,
            "verdicts": [v.record() for v in self.verdicts],
            "duration": round(self.duration, 3),
        }


def plan_inspection(builds: Sequence[Build], config: HostsConfig) -> list[InspectTarget]:
    """The hosts of ``builds``, one target per WinRM endpoint; ConfigError when a release's host
    has no ``winrm`` table."""
    missing: list[str] = []
    groups: dict[tuple[str, str | None], tuple[HostSpec, WinRMSpec, list[WindowsRelease]]] = {}
    for build in builds:
        spec = config.for_release(build.release.key)
        if spec.winrm is None:
            if build.release.key not in missing:
                missing.append(build.release.key)
            continue
        key = (spec.winrm.endpoint, spec.winrm.user)
        _, _, releases = groups.setdefault(key, (spec, spec.winrm, []))
        if build.release not in releases:
            releases.append(build.release)
    if missing:
        where = str(config.path) if config.path is not None else "hosts.toml"
        first = missing[0]
        raise ConfigError(
            f"no WinRM settings for release(s) {', '.join(missing)} in {where}",
            hint=f"add [hosts.{first}.winrm] with user = ... (README.md, Host setup), or select "
            "builds of the other releases",
        )
    return [
        InspectTarget(
            name=spec.name if spec.url.startswith(("tcp://", "ssh://")) else winrm.host,
            releases=tuple(sorted(releases, key=lambda r: r.build)),
            winrm=winrm,
            docker=spec,
        )
        for spec, winrm, releases in groups.values()
    ]


def _run(
    jobs: Mapping[str, Callable[[], Any]], wait: float
) -> dict[str, tuple[Any | BaseException | None, float]]:
    """Run each job in a daemon thread: (its result or exception, seconds it took), or
    (None, ``wait``) when it was still running ``wait`` seconds later."""
    results: dict[str, tuple[Any | BaseException, float]] = {}
    lock = threading.Lock()

    def runner(key: str, job: Callable[[], Any]) -> None:
        started = time.monotonic()
        try:
            value: Any = job()
        except BaseException as exc:  # reported to the caller, never raised in the thread
            value = exc
        with lock:
            results[key] = (value, time.monotonic() - started)

    threads = [
        threading.Thread(target=runner, args=(key, job), name=f"inspect {key}", daemon=True)
        for key, job in jobs.items()
    ]
    stop_at = time.monotonic() + wait
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=max(0.0, stop_at - time.monotonic()))
    with lock:
        return {key: results.get(key, (None, wait)) for key in jobs}


def inspect_hosts(
    targets: Sequence[InspectTarget],
    passwords: Mapping[str, Secret | None],
    *,
    session_fn: SessionFn,
    engine_fn: EngineFn | None,
    deadline: float,
) -> list[HostReport]:
    """Inspect every target concurrently; each within ``deadline`` seconds (plus a short grace
    for closing the shell). The reports come in the order of ``targets``."""
    jobs: dict[str, Callable[[], Any]] = {}
    for i, target in enumerate(targets):
        password = passwords.get(target.winrm.password_env or "")

        def winrm_job(target: InspectTarget = target, password: Secret | None = password) -> Any:
            session = session_fn(target.winrm, password)
            return inspect_windows_host(session, deadline=deadline)

        jobs[f"{i} winrm"] = winrm_job
        docker = target.docker
        if engine_fn is not None and docker is not None:

            def engine_job(docker: HostSpec = docker, ask: EngineFn = engine_fn) -> Any:
                return ask(docker)

            jobs[f"{i} engine"] = engine_job
    results = _run(jobs, deadline + GRACE)
    reports = []
    for i, target in enumerate(targets):
        answer, elapsed = results[f"{i} winrm"]
        facts, error = _outcome(answer, target, deadline)
        engine, engine_error = None, None
        if f"{i} engine" in jobs:
            found, _ = results[f"{i} engine"]
            if isinstance(found, ToolkitError):
                engine_error = found.message
            elif isinstance(found, BaseException):
                engine_error = f"{type(found).__name__}: {found}"
            elif found is None:
                engine_error = f"did not answer within {deadline:g}s"
            else:
                engine = found
        verdicts = (
            judge(facts, target.releases, engine=engine, engine_error=engine_error)
            if facts is not None
            else []
        )
        reports.append(
            HostReport(
                target=target,
                facts=facts,
                error=error,
                engine=engine,
                engine_error=engine_error,
                verdicts=tuple(verdicts),
                duration=elapsed,
            )
        )
    return reports


def _outcome(
    found: Any, target: InspectTarget, deadline: float
) -> tuple[WindowsHostFacts | None, str | None]:
    if isinstance(found, WindowsHostFacts):
        return found, None
    if isinstance(found, ToolkitError):
        return None, found.one_line()
    if isinstance(found, BaseException):
        # Not a ToolkitError: a bug or a library surprise; its type and text, never a traceback.
        return (
            None,
            f"WinRM check of {target.winrm.endpoint} failed: {type(found).__name__}: {found}",
        )
    return None, f"WinRM host {target.winrm.endpoint} did not answer within {deadline:g}s"


@dataclass(frozen=True)
class InspectRun:
    """The outcome of ``toolkit inspect``: a report per host, and what the configuration
    exposes (one warning per item, printed on every run)."""

    reports: tuple[HostReport, ...]
    warnings: tuple[str, ...] = ()

    @property
    def failed(self) -> list[HostReport]:
        return [r for r in self.reports if not r.ok]

    def failure(self) -> ToolkitError | None:
        """The error the run ends with (exit 8), or None when every host passed."""
        if not self.failed:
            return None
        names = ", ".join(r.target.name for r in self.failed)
        return WinRMError(
            f"{len(self.failed)} of {len(self.reports)} host(s) failed the WinRM check: {names}",
            hint="each FAIL line above says what to fix",
        )

    def record(self) -> dict[str, Any]:
        return {
            "ok": not self.failed,
            "hosts": [r.record() for r in self.reports],
            "warnings": list(self.warnings),
        }


def check_hosts(
    builds: Sequence[Build],
    config: HostsConfig,
    env: Mapping[str, str],
    *,
    prompt: Callable[[str], str] | None,
    session_fn: SessionFn,
    engine_fn: EngineFn | None,
    deadline: float,
) -> InspectRun:
    """Plan the hosts of ``builds``, find their passwords (``env``, else ``prompt``), inspect
    them all. ConfigError before any host is contacted when the configuration is incomplete."""
    if not deadline > 0 or deadline > 24 * 3600:
        raise ConfigError(
            f"the WinRM deadline {deadline:g} must be a positive number of seconds (at most a day)",
            hint="inspect --timeout 60, build --winrm-timeout 60",
        )
    targets = plan_inspection(builds, config)
    passwords = resolve_passwords([t.winrm for t in targets], env, prompt=prompt)
    warnings = tuple(w for t in targets for w in t.winrm.exposures())
    reports = inspect_hosts(
        targets, passwords, session_fn=session_fn, engine_fn=engine_fn, deadline=deadline
    )
    return InspectRun(reports=tuple(reports), warnings=warnings)


@dataclass(frozen=True)
class WinRMAccess:
    """How a run reaches the hosts over WinRM: the session opener (``toolkit.winrm.open_session``)
    and the password prompt (None without a terminal, or in CI)."""

    open_session: SessionFn
    prompt: Callable[[str], str] | None = None


@dataclass(frozen=True, kw_only=True)
class InspectRequest:
    """Everything ``toolkit inspect`` was asked to do."""

    versions: Path
    selectors: tuple[str, ...] = ()
    hosts: HostSelection = field(default_factory=HostSelection)
    deadline: float = 60.0
    docker: bool = True


def engine_asker(clients: ClientSource) -> EngineFn:
    """Ask an engine through the run's client pool (``/version`` and ``/info``)."""

    def ask(spec: HostSpec) -> HostFacts:
        from toolkit.preflight import inspect_engine

        return inspect_engine(clients.connect(spec), host=spec.name)

    return ask


def run_inspection(
    request: InspectRequest,
    env: Mapping[str, str],
    access: WinRMAccess,
    clients: ClientSource | None,
) -> InspectRun:
    """``toolkit inspect``: select the builds, then :func:`check_hosts` their hosts, comparing
    with their Docker API through ``clients`` (unless ``request.docker`` is off)."""
    from toolkit.matrix import select_builds

    builds = select_builds(request.versions, request.selectors).chosen
    return check_hosts(
        builds,
        request.hosts.load(env),
        env,
        prompt=access.prompt,
        session_fn=access.open_session,
        engine_fn=engine_asker(clients) if clients is not None and request.docker else None,
        deadline=request.deadline,
    )


def refuse_failed_hosts(plan: TargetPlan, reports: Sequence[HostReport]) -> TargetPlan:
    """``build --preflight winrm``: the targets whose host failed the check move to the
    refused ones, with the host's reason; the others are untouched."""
    assignments = refuse_unfit(plan.assignments, reports)
    refused = dict(plan.refused)
    for before, after in zip(plan.assignments, assignments, strict=True):
        if after.error is not None and before.error is None and after.build_id not in refused:
            refused[after.build_id] = after.error
    return replace(
        plan,
        assignments=tuple(assignments),
        targets=tuple(t for t in plan.targets if t.build.id not in refused),
        refused=refused,
    )


def refuse_unfit(plan: Sequence[Assignment], reports: Sequence[HostReport]) -> list[Assignment]:
    """The plan, with each build whose release's host failed the check refused (its ``error``
    set, unless it already has one); the builds of the other hosts are untouched."""
    by_release = {r.key: report for report in reports for r in report.target.releases}
    refused = []
    for assignment in plan:
        report = by_release.get(assignment.release)
        if report is None or report.ok or assignment.error is not None:
            refused.append(assignment)
            continue
        fix = next((v.fix for v in report.failures if v.fix), None)
        error = WinRMError(
            f"{assignment.release} host {report.target.name} failed the WinRM preflight: "
            f"{report.reason()}",
            hint=fix or "run toolkit inspect for the details",
        )
        refused.append(replace(assignment, error=error))
    return refused


# --- output ----------------------------------------------------------------------------------


def _uptime(seconds: int | None) -> str:
    if seconds is None:
        return "uptime unknown"
    days, rest = divmod(seconds, 86400)
    return f"up {days}d {rest // 3600}h" if days else f"up {rest // 3600}h {rest % 3600 // 60}m"


def _fact_lines(facts: WindowsHostFacts) -> list[str]:
    kind = ", ".join(x for x in (facts.installation_type, facts.display_version) if x)
    lines = [
        f"windows   {facts.product_name or 'Windows'}{f' ({kind})' if kind else ''}, build "
        f"{facts.os_build}, {_uptime(facts.uptime_seconds)}"
    ]
    docker = facts.docker_state or "not installed"
    if facts.docker_version:
        docker += f", dockerd {facts.docker_version}"
    if facts.listeners:
        docker += f", listens on {', '.join(str(x) for x in facts.listeners)}"
    verify = {True: "yes", False: "no", None: "unknown"}[facts.tls_verify]
    lines.append(f"docker    {docker}; tlsverify {verify}; data root {facts.data_root}")
    if facts.disks is not None:
        disks = "; ".join(
            f"{drive} {gigabytes(d.free)} free of {gigabytes(d.size)}"
            for drive, d in sorted(facts.disks.items())
        )
        lines.append(f"disks     {disks or 'none listed'}")
    features = ", ".join(f"{name} {state}" for name, state in facts.features.items())
    lines.append(f"features  {features}")
    return lines


def report_text(reports: Sequence[HostReport], *, show_passed: bool = True) -> str:
    """The human-readable report: per host its facts, then each verdict and its fix."""
    mark = {PASS: "ok  ", WARN: "WARN", FAIL: "FAIL"}
    out = []
    for report in reports:
        releases = ", ".join(r.key for r in report.target.releases)
        status = "ok" if report.ok else "FAILED"
        out.append(
            f"{report.target.name} ({releases}) via {report.target.winrm.endpoint}: {status}"
        )
        if report.error is not None:
            out.append(f"  FAIL winrm: {report.error}")
        if report.facts is not None:
            out.extend(f"  {line}" for line in _fact_lines(report.facts))
        for verdict in report.verdicts:
            if verdict.status == PASS and not show_passed:
                continue
            out.append(f"  {mark[verdict.status]} {verdict.check}: {verdict.message}")
            if verdict.fix and verdict.status != PASS:
                out.append(f"       fix: {verdict.fix}")
        if report.facts is not None:
            for problem in report.facts.errors:
                out.append(f"  note could not read {problem}")
    return "\n".join(out) + ("\n" if out else "")
