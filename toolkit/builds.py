"""``toolkit build`` as one pipeline call: place the builds on their hosts, build each target
through the runner (driver.build_image), verify each fresh image, and return the results.

Before anything is planned, the selected Dockerfiles must be what ``toolkit render`` writes from
the templates and versions.json (``render.require_rendered``): a build of stale files would be
skipped as unchanged or verified against data it was not built from.

Each target runs under its lock (``toolkit.locks``): a second run of the same target on the same
engine waits for the first. An image that fails verification, or whose checks Ctrl-C stopped
before they all ran, loses its tags and is removed, so a later run rebuilds and verifies it
instead of skipping it as unchanged. After a target is built or skipped, its superseded images
(the toolkit's own, for this target and repository, that no tag names any more) are removed,
unless ``--no-prune``.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from toolkit.cancel import Canceller
from toolkit.driver import (
    REPO_LABEL,
    TARGET_LABEL,
    BuildJob,
    BuildSettings,
    EngineIndex,
    build_image,
    prepare_logs,
)
from toolkit.errors import (
    BuildFailedError,
    ConfigError,
    Interrupted,
    Terminated,
    ToolkitError,
    VerifyFailedError,
    describe_exception,
)
from toolkit.hosts import HostSelection
from toolkit.inspection import (
    InspectRun,
    WinRMAccess,
    check_hosts,
    engine_asker,
    refuse_failed_hosts,
)
from toolkit.locks import TargetLock, lock_directory, lock_path
from toolkit.matrix import Build, select_builds
from toolkit.preflight import Assignment, ClientSource, plan_targets
from toolkit.render import dockerfile_path, require_rendered
from toolkit.results import BuildObserver, BuildResult, CheckResult, Outcome
from toolkit.runner import run_planned
from toolkit.verify import build_checks, failure_summary, verify_image

Verifier = Callable[[BuildJob, BuildResult, Canceller], BuildResult]
"""Checks a freshly built image and returns its result with ``checks`` (and outcome) filled in;
the canceller (Ctrl-C, SIGTERM) cuts the running check and starts no other."""


@dataclass(frozen=True, kw_only=True)
class BuildRequest:
    """Everything ``toolkit build`` was asked to do."""

    versions: Path
    selectors: tuple[str, ...] = ()
    out: Path = Path("dockerfiles")
    templates: Path = Path("templates")
    hosts: HostSelection = field(default_factory=HostSelection)
    settings: BuildSettings = field(default_factory=BuildSettings)
    jobs_per_host: int = 1
    fail_fast: bool = False
    verify: bool = True
    network_checks: bool = False
    dry_run: bool = False
    winrm_deadline: float | None = None
    """``--preflight winrm``: each host's WinRM check first, within this many seconds."""


@dataclass(frozen=True, kw_only=True)
class BuildRun:
    """What a build run did: the plan, and (unless a dry run) one result per target in plan
    order."""

    request: BuildRequest
    builds: tuple[Build, ...]
    assignments: tuple[Assignment, ...]
    results: tuple[BuildResult, ...] = ()
    interrupted: bool = False
    winrm: InspectRun | None = None
    terminated: bool = False

    def failure(self) -> ToolkitError | None:
        """The error the run ends with, if any (the exit code comes from its class)."""
        if self.interrupted:
            return Terminated() if self.terminated else Interrupted()
        failed = [r for r in self.results if not r.outcome.ok]
        if not failed:
            return None
        names = ", ".join(r.build_id for r in failed)
        text = f"{len(failed)} of {len(self.results)} target(s) failed: {names}"
        if all(r.outcome is Outcome.VERIFY_FAILED for r in failed):
            return VerifyFailedError(text)
        return BuildFailedError(text)


def run_build(
    request: BuildRequest,
    env: Mapping[str, str],
    clients: ClientSource,
    progress: Callable[[], AbstractContextManager[BuildObserver]],
    winrm: WinRMAccess | None = None,
) -> BuildRun:
    """Plan, then (unless ``dry_run``) build every target and verify it. ``progress`` opens the
    presentation (live view, lines, GitHub folds) only once there is something to build. With
    ``request.winrm_deadline``, every host is first checked over WinRM (through ``winrm``) and
    the builds of a host that fails are refused; the others go ahead."""
    builds = select_builds(request.versions, request.selectors).chosen
    prepare_logs(request.settings.logs, create=not request.dry_run)
    for b in builds:
        if not dockerfile_path(request.out, b).is_file():
            raise ConfigError(
                f"{dockerfile_path(request.out, b)}: Dockerfile of {b.id} not found",
                hint="run toolkit render, or pass --out",
            )
    require_rendered(request.templates, request.out, builds)
    selection = request.hosts
    config = selection.load(env)
    inspected = None
    if request.winrm_deadline is not None:
        if winrm is None:
            raise ConfigError("--preflight winrm: no WinRM access was given to the build")
        inspected = check_hosts(
            builds,
            config,
            env,
            prompt=winrm.prompt,
            session_fn=winrm.open_session,
            engine_fn=engine_asker(clients) if selection.preflight else None,
            deadline=request.winrm_deadline,
        )
    plan = plan_targets(builds, config, clients, selection.isolation, selection.preflight)
    if inspected is not None:
        plan = refuse_failed_hosts(plan, inspected.reports)
    if request.dry_run:
        return BuildRun(
            request=request, builds=builds, assignments=plan.assignments, winrm=inspected
        )
    jobs = [
        BuildJob(
            build=t.build,
            context=request.out / t.build.directory,
            host=t.host,
            client=t.client,
            isolation=t.isolation,
            os_type=t.os_type,
        )
        for t in plan.targets
    ]
    with progress() as observer:
        verifier = (
            make_verifier(observer, network=request.network_checks) if request.verify else None
        )
        results, summary = run_planned(
            plan,
            jobs,
            BuildWork(request.settings, observer, verifier, jobs),
            lambda a, why: BuildResult(
                build_id=a.build_id,
                host=a.host.name,
                isolation=a.isolation,
                outcome=Outcome.FAILED,
                duration=0.0,
                message=f"{a.build_id}: {why.one_line()}",
            ),
            lambda r: r.build_id,
            jobs_per_host=request.jobs_per_host,
            fail_fast=request.fail_fast,
        )
    return BuildRun(
        request=request,
        builds=builds,
        assignments=plan.assignments,
        results=results,
        interrupted=summary.interrupted,
        winrm=inspected,
        terminated=summary.terminated,
    )


class BuildWork:
    """The runner's per-target work for ``build``: build (or skip), then verify."""

    def __init__(
        self,
        settings: BuildSettings,
        observer: BuildObserver,
        verifier: Verifier | None,
        jobs: Sequence[BuildJob],
        lock_dir: Path | None = None,
    ) -> None:
        self._settings = settings
        self._observer = observer
        self._verifier = verifier
        # One index per engine: its base images and labelled images are listed once per run.
        self._indexes = {job.host: EngineIndex(job.client.api) for job in jobs}
        self._started: dict[str, float] = {}  # build id -> when its run began
        self._lock_dir = lock_dir

    def host(self, job: BuildJob) -> str:
        return job.host

    def run(self, job: BuildJob, canceller: Canceller, interrupt: threading.Event) -> BuildResult:
        if self._lock_dir is None:
            self._lock_dir = lock_directory()
        lock = TargetLock(lock_path(self._lock_dir, job.host, job.build.id))
        started = time.monotonic()
        self._started[job.build.id] = started
        why = lock.acquire(
            stop=lambda: canceller.reason,
            deadline=started + self._settings.timeout,
            waiting=lambda: self._observer.step(
                job.build.id, 0, 0, f"waiting: another toolkit run is building it ({lock.path})"
            ),
        )
        if why is not None:
            if why == "timeout":
                outcome = Outcome.TIMEOUT
                why = f"timeout: another toolkit run held {lock.path} for --timeout"
            else:
                outcome, why = Outcome.CANCELLED, f"{why} while waiting for another toolkit run"
            return replace(
                _result(job, outcome, f"{job.build.id} on {job.host}: {why}"),
                duration=time.monotonic() - started,
            )
        try:
            index = self._indexes.get(job.host) or EngineIndex(job.client.api)
            result = build_image(job, self._settings, self._observer, canceller, index)
            if self._verifier is not None and result.outcome is Outcome.BUILT:
                result = self._verifier(job, result, canceller)
            if self._settings.prune and result.outcome.ok and canceller.reason is None:
                notes = prune_superseded(job, result, index, self._settings.repo)
                for note in notes:
                    self._observer.line(job.build.id, note)
                _append_lines(result, notes)
            return result
        finally:
            lock.release()

    def failed(self, job: BuildJob, why: str) -> BuildResult:
        return _result(job, Outcome.FAILED, f"{job.build.id} on {job.host}: {why}")

    def not_run(self, job: BuildJob, why: str, interrupted: bool) -> BuildResult:
        return _result(job, Outcome.CANCELLED if interrupted else Outcome.NOT_RUN, why)

    def still_running(self, job: BuildJob) -> BuildResult:
        message = f"{job.build.id} on {job.host}: interrupted; still stopping at exit"
        started = self._started.get(job.build.id)
        duration = time.monotonic() - started if started is not None else 0.0
        return replace(_result(job, Outcome.CANCELLED, message), duration=duration)

    def ok(self, result: BuildResult) -> bool:
        return result.outcome.ok

    def finished(self, result: BuildResult) -> None:
        self._observer.finished(result)


def _result(job: BuildJob, outcome: Outcome, message: str) -> BuildResult:
    return BuildResult(
        build_id=job.build.id,
        host=job.host,
        isolation=job.isolation,
        outcome=outcome,
        duration=0.0,
        message=message,
    )


def make_verifier(
    observer: BuildObserver, *, network: bool = False, timeout: float = 300.0
) -> Verifier:
    """Verify each freshly built image; one that fails, or whose checks could not all run
    (Ctrl-C), loses its tags and is removed."""

    def verify(job: BuildJob, result: BuildResult, canceller: Canceller) -> BuildResult:
        started = time.monotonic()
        observer.step(job.build.id, 0, 0, "verifying")
        try:
            planned = build_checks(job.build, job.os_type, network=network)
        except ToolkitError:
            discard_image(job.client, result)
            raise
        checks = verify_image(
            job.client,
            result.tags[0],
            planned,
            isolation=job.isolation,
            timeout=timeout,
            canceller=canceller,
        )
        _append_log(result, checks)
        if canceller.reason is not None:
            if len(checks) < len(planned) or failure_summary(checks) is not None:
                discard_image(job.client, result)
            why = canceller.reason.removeprefix("cancelled: ")
            return replace(
                result,
                duration=result.duration + time.monotonic() - started,
                checks=tuple(checks),
                outcome=Outcome.CANCELLED,
                message=f"{job.build.id} on {job.host}: verification {why}",
            )
        duration = result.duration + time.monotonic() - started
        summary = failure_summary(checks)
        if summary is None:
            return replace(result, checks=tuple(checks), duration=duration)
        kept = discard_image(job.client, result)
        if kept is not None:  # silently kept, the next run would skip it as unchanged
            summary += (
                f"; the image could not be removed ({kept}): remove it, or the next run skips "
                "it as unchanged (--force rebuilds)"
            )
        return replace(
            result,
            duration=duration,
            checks=tuple(checks),
            outcome=Outcome.VERIFY_FAILED,
            message=f"{job.build.id} on {job.host}: {summary}",
        )

    return verify


def prune_superseded(
    job: BuildJob, result: BuildResult, index: EngineIndex, repo: str
) -> list[str]:
    """Remove the target's superseded images from its engine; returns what was done (log lines).

    Superseded: built by the toolkit for this build id and ``repo`` (the target and repo labels,
    next to the hash label), not ``result``'s image, and named by no tag now (the tags moved on to
    ``result``'s image, or were gone already). Anything else stays: images without the labels
    (another tool's, a user's, or built before the labels existed), another repository's, and
    ours that another tag still names (an older version's tag). An image a container still uses
    is kept (the engine refuses, 409) and said so.
    """
    import docker.errors

    api = job.client.api
    moved = set(result.tags)
    notes = []
    for image in index.labelled():
        labels = image.get("Labels") or {}
        if labels.get(TARGET_LABEL) != job.build.id or labels.get(REPO_LABEL) != repo:
            continue
        if image["Id"] == result.image_id or _named(image) - moved:
            continue
        short = image["Id"].removeprefix("sha256:")[:12]
        try:
            if _named(api.inspect_image(image["Id"])):  # tagged again since the listing
                continue
            api.remove_image(image["Id"], force=False, noprune=False)
        except docker.errors.NotFound:
            continue
        except docker.errors.APIError as exc:
            notes.append(f"prune: kept superseded image {short}: {describe_exception(exc)}")
            continue
        notes.append(f"prune: removed superseded image {short} of {job.build.id}")
    return notes


def _named(image: dict[str, Any]) -> set[str]:
    return {t for t in image.get("RepoTags") or () if t != "<none>:<none>"}


def _append_lines(result: BuildResult, lines: Sequence[str]) -> None:
    if result.log_path is None or not lines:
        return
    with contextlib.suppress(OSError), result.log_path.open("a", encoding="utf-8") as log:
        log.writelines(f"{line}\n" for line in lines)


def _append_log(result: BuildResult, checks: Sequence[CheckResult]) -> None:
    if result.log_path is None:
        return
    with contextlib.suppress(OSError), result.log_path.open("a", encoding="utf-8") as log:
        for check in checks:
            verdict = "PASS" if check.passed else f"FAIL ({check.message})"
            log.write(f"verify {check.name}: {verdict} in {check.duration:.1f}s\n")
            log.writelines(f"  | {text}\n" for text in check.output.splitlines())


def discard_image(client: Any, result: BuildResult) -> str | None:
    """Untag and remove the image; None when it is gone, else why it is still there."""
    import docker.errors

    api = client.api
    for tag in result.tags:
        with contextlib.suppress(Exception):
            api.remove_image(tag, force=False, noprune=False)
    if not result.image_id:
        return None
    try:
        api.remove_image(result.image_id, force=False, noprune=False)
    except docker.errors.NotFound:
        return None
    except Exception as exc:  # the engine refused (a container uses it) or is gone
        return describe_exception(exc)
    return None
