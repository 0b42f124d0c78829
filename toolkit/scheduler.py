"""Run many builds: parallel across hosts, a bounded number at a time on each host.

A failure does not stop the others (``fail_fast`` stops scheduling new ones); Ctrl-C cancels the
running builds (their connections are closed, the engines clean up) and returns what finished.
"""

from __future__ import annotations

import contextlib
import queue
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

from toolkit.driver import (
    BuildJob,
    BuildObserver,
    BuildResult,
    BuildSettings,
    Canceller,
    EngineIndex,
    Outcome,
    build_image,
)
from toolkit.errors import ToolkitError
from toolkit.verify import CheckResult, build_checks, failure_summary, verify_image

INTERRUPTED = "cancelled: interrupted (Ctrl-C)"
CLEANUP_GRACE = 30.0
"""Seconds the workers get, together, to stop and clean up after Ctrl-C."""

Verifier = Callable[[BuildJob, BuildResult, threading.Event], BuildResult]
"""Checks a freshly built image and returns its result with ``checks`` (and outcome) filled in;
stops between checks once the event (Ctrl-C) is set."""


@dataclass(frozen=True, kw_only=True)
class RunSummary:
    results: tuple[BuildResult, ...]
    interrupted: bool

    @property
    def failed(self) -> list[BuildResult]:
        return [r for r in self.results if not r.outcome.ok]


def _failed_early(job: BuildJob, why: str) -> BuildResult:
    """The result of a job that failed before the driver could report on it."""
    return BuildResult(
        build_id=job.build.id,
        host=job.host,
        isolation=job.isolation,
        outcome=Outcome.FAILED,
        duration=0.0,
        message=f"{job.build.id} on {job.host}: {why}",
    )


def run_builds(
    jobs: Sequence[BuildJob],
    settings: BuildSettings,
    observer: BuildObserver,
    *,
    jobs_per_host: int = 1,
    fail_fast: bool = False,
    verifier: Verifier | None = None,
    poll: float = 0.2,
    failed_before: bool = False,
) -> RunSummary:
    """Build ``jobs`` and return one result per job, in the order given.

    ``failed_before``: a target already failed before any job (its host was refused), so with
    ``fail_fast`` no job starts.
    """
    queues: dict[str, queue.Queue[int]] = {}
    for index, job in enumerate(jobs):
        queues.setdefault(job.host, queue.Queue()).put(index)
    results: dict[int, BuildResult] = {}
    active: dict[int, Canceller] = {}
    lock = threading.Lock()
    stop = threading.Event()
    interrupt = threading.Event()
    if fail_fast and failed_before:
        stop.set()
    indexes = {job.host: EngineIndex(job.client.api) for job in jobs}

    def work(host_queue: queue.Queue[int]) -> None:
        while not stop.is_set():
            try:
                index = host_queue.get_nowait()
            except queue.Empty:
                return
            job = jobs[index]
            canceller = Canceller()
            with lock:
                active[index] = canceller
                # Ctrl-C may have come after the stop check above and before this build was
                # registered: the main thread then found no canceller of it to trigger.
                if interrupt.is_set():
                    canceller.cancel(INTERRUPTED)
            try:
                result = build_image(job, settings, observer, canceller, indexes[job.host])
                if verifier is not None and result.outcome is Outcome.BUILT:
                    result = verifier(job, result, interrupt)
            except ToolkitError as exc:  # e.g. the log directory is not writable
                result = _failed_early(job, exc.one_line())
            except Exception as exc:  # a bug must not take the other hosts down with it
                result = _failed_early(job, f"internal error: {exc!r}")
            observer.finished(result)
            with lock:
                results[index] = result
                del active[index]
            if fail_fast and not result.outcome.ok:
                stop.set()

    threads = [
        threading.Thread(target=work, args=(q,), name=f"build-{host}-{n}", daemon=True)
        for host, q in queues.items()
        for n in range(max(1, jobs_per_host))
    ]
    interrupted = False
    try:
        for thread in threads:  # inside the try: Ctrl-C can come while they start
            thread.start()
        for thread in threads:
            while thread.is_alive():
                thread.join(poll)
    except KeyboardInterrupt:
        interrupted = True
        stop.set()
        interrupt.set()
        with lock:
            for canceller in active.values():
                canceller.cancel(INTERRUPTED)
        # Let the workers clean up after their builds, in parallel: one deadline for all of
        # them (cleanup waits at most ~15 s), not one per thread. Unstarted threads never run.
        deadline = time.monotonic() + CLEANUP_GRACE
        for thread in threads:
            if thread.is_alive():
                thread.join(timeout=max(0.0, deadline - time.monotonic()))
    ordered = []
    with lock:  # workers past the grace period may still be running: take a snapshot
        finished, running = dict(results), set(active)
    for index, job in enumerate(jobs):
        result = finished.get(index)
        if result is None:
            if index in running:  # it did not stop within the grace period
                message = f"{job.build.id} on {job.host}: interrupted; still stopping at exit"
            else:
                message = "not started: " + ("interrupted" if interrupted else "--fail-fast")
            result = BuildResult(
                build_id=job.build.id,
                host=job.host,
                isolation=job.isolation,
                outcome=Outcome.CANCELLED if interrupted else Outcome.NOT_RUN,
                duration=0.0,
                message=message,
            )
        ordered.append(result)
    return RunSummary(results=tuple(ordered), interrupted=interrupted)


def make_verifier(
    observer: BuildObserver, *, network: bool = False, timeout: float = 300.0
) -> Verifier:
    """Verify each freshly built image; one that fails, or whose checks could not all run
    (Ctrl-C), loses its tags and is removed, so a later run rebuilds and verifies it instead of
    skipping it as unchanged."""

    def verify(job: BuildJob, result: BuildResult, interrupt: threading.Event) -> BuildResult:
        started = time.monotonic()
        observer.step(job.build.id, 0, 0, "verifying")
        try:
            planned = build_checks(job.build, job.os_type, network=network)
        except ToolkitError:
            _discard(job, result)
            raise
        checks = verify_image(
            job.client,
            result.tags[0],
            planned,
            isolation=job.isolation,
            timeout=timeout,
            stop=interrupt.is_set,
        )
        _append_log(result, checks)
        if interrupt.is_set():
            if len(checks) < len(planned) or failure_summary(checks) is not None:
                _discard(job, result)
            return replace(
                result,
                checks=tuple(checks),
                outcome=Outcome.CANCELLED,
                message=f"{job.build.id} on {job.host}: verification interrupted (Ctrl-C)",
            )
        duration = result.duration + time.monotonic() - started
        summary = failure_summary(checks)
        if summary is None:
            return replace(result, checks=tuple(checks), duration=duration)
        kept = _discard(job, result)
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


def _append_log(result: BuildResult, checks: Sequence[CheckResult]) -> None:
    if result.log_path is None:
        return
    with contextlib.suppress(OSError), result.log_path.open("a", encoding="utf-8") as log:
        for check in checks:
            verdict = "PASS" if check.passed else f"FAIL ({check.message})"
            log.write(f"verify {check.name}: {verdict} in {check.duration:.1f}s\n")
            log.writelines(f"  | {text}\n" for text in check.output.splitlines())


def _discard(job: BuildJob, result: BuildResult) -> str | None:
    """Untag and remove the image; None when it is gone, else why it is still there."""
    import docker.errors

    api = job.client.api
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
        return " ".join(str(getattr(exc, "explanation", None) or exc).split())
    return None
