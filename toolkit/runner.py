"""One target runner for build, verify and push: parallel across hosts, bounded on each host.

The caller passes in what runs per target (a ``Work``): the runner owns the threads, the per-host
queues, ``--fail-fast``, and Ctrl-C. A failure does not stop the other targets (``fail_fast``
stops starting new ones); Ctrl-C (or SIGTERM, raised as ``TerminateSignal``, a KeyboardInterrupt)
cancels the running targets through their ``Canceller`` and gives them, together, a grace period
to clean up.

Completion is tracked by the workers themselves (a counter under a lock), never by
``Thread.is_alive()``: on Python 3.11 a KeyboardInterrupt delivered during ``Thread.join`` can
leave a running worker reporting ``is_alive() == False``, and the grace period would be skipped.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar

from toolkit.cancel import Canceller
from toolkit.errors import TerminateSignal, ToolkitError

if TYPE_CHECKING:
    from toolkit.preflight import Assignment, TargetPlan

J = TypeVar("J")
R = TypeVar("R")
J_contra = TypeVar("J_contra", contravariant=True)

INTERRUPTED = "cancelled: interrupted (Ctrl-C)"
TERMINATED = "cancelled: terminated (SIGTERM)"
CLEANUP_GRACE = 30.0
"""Seconds the workers get, together, to stop and clean up after Ctrl-C."""


class Work(Protocol[J_contra, R]):
    """What runs for each target, and how its result is made when it cannot run."""

    def host(self, job: J_contra) -> str:
        """The key of the host the job runs on (jobs of one host share its workers)."""
        ...

    def run(self, job: J_contra, canceller: Canceller, interrupt: threading.Event) -> R:
        """Do the job. ``canceller`` is cancelled on Ctrl-C; ``interrupt`` is set too, for
        work that checks between steps rather than holding a connection."""
        ...

    def failed(self, job: J_contra, why: str) -> R:
        """The result of a job whose ``run`` raised (``why`` is one line)."""
        ...

    def not_run(self, job: J_contra, why: str, interrupted: bool) -> R:
        """The result of a job never started (``--fail-fast``, or Ctrl-C came first)."""
        ...

    def still_running(self, job: J_contra) -> R:
        """The result of a job that had not stopped when the grace period ended."""
        ...

    def ok(self, result: R) -> bool: ...

    def finished(self, result: R) -> None:
        """Called from the worker as soon as a job has its result (progress output)."""
        ...


@dataclass(frozen=True, kw_only=True)
class RunSummary(Generic[R]):
    results: tuple[R, ...]
    interrupted: bool
    terminated: bool = False
    """The interrupt was SIGTERM (``TerminateSignal``), not Ctrl-C."""


def run_targets(
    jobs: Sequence[J],
    work: Work[J, R],
    *,
    jobs_per_host: int = 1,
    fail_fast: bool = False,
    failed_before: bool = False,
    poll: float = 0.2,
    grace: float = CLEANUP_GRACE,
    make_canceller: Callable[[], Canceller] = Canceller,
) -> RunSummary[R]:
    """Run every job and return one result per job, in the order given.

    ``failed_before``: a target already failed before any job (its host was refused), so with
    ``fail_fast`` no job starts. At most ``jobs_per_host`` jobs run at once on one host (never
    more workers than the host has jobs); hosts always run in parallel.
    """
    queues: dict[str, queue.Queue[int]] = {}
    for index, job in enumerate(jobs):
        queues.setdefault(work.host(job), queue.Queue()).put(index)
    results: dict[int, R] = {}
    active: dict[int, Canceller] = {}
    lock = threading.Lock()
    stop = threading.Event()
    interrupt = threading.Event()
    all_done = threading.Event()
    if fail_fast and failed_before:
        stop.set()
    workers = [
        (host, n)
        for host, q in queues.items()
        for n in range(min(max(1, jobs_per_host), q.qsize()))
    ]
    # Workers count themselves in and out; ``launched`` says no more will come. A worker whose
    # start raced with Ctrl-C may enter after the count reached zero: it then finds ``stop`` set
    # and runs nothing.
    state: dict[str, Any] = {"running": 0, "launched": False, "reason": INTERRUPTED}

    def settle() -> None:  # with the lock held
        if state["launched"] and state["running"] == 0:
            all_done.set()

    def run_one(index: int) -> None:
        job = jobs[index]
        canceller = make_canceller()
        with lock:
            active[index] = canceller
            # Ctrl-C may have come after the stop check and before this job was registered:
            # the main thread then found no canceller of it to trigger.
            if interrupt.is_set():
                canceller.cancel(state["reason"])
        try:
            result = work.run(job, canceller, interrupt)
        except ToolkitError as exc:  # e.g. the log directory is not writable
            result = work.failed(job, exc.one_line())
        except Exception as exc:  # a bug must not take the other hosts down with it
            result = work.failed(job, f"internal error: {exc!r}")
        work.finished(result)
        with lock:
            results[index] = result
            del active[index]
        if fail_fast and not work.ok(result):
            stop.set()

    def worker(host_queue: queue.Queue[int]) -> None:
        with lock:
            state["running"] += 1
        try:
            while not stop.is_set():
                try:
                    index = host_queue.get_nowait()
                except queue.Empty:
                    return
                run_one(index)
        finally:
            with lock:
                state["running"] -= 1
                settle()

    interrupted = terminated = False
    try:
        for host, n in workers:  # inside the try: Ctrl-C can come while they start
            name = f"run-{host}-{n}"
            threading.Thread(target=worker, args=(queues[host],), name=name, daemon=True).start()
        with lock:
            state["launched"] = True
            settle()
        while not all_done.wait(poll):
            pass
    except KeyboardInterrupt as exc:  # Ctrl-C, or SIGTERM as TerminateSignal
        interrupted = True
        terminated = isinstance(exc, TerminateSignal)
        with lock:
            state["reason"] = TERMINATED if terminated else INTERRUPTED
            stop.set()
            interrupt.set()
            for canceller in active.values():
                canceller.cancel(state["reason"])
            state["launched"] = True
            settle()
        _wait_for_cleanup(all_done, grace, poll)

    ordered = []
    with lock:  # workers past the grace period may still be running: take a snapshot
        finished, running = dict(results), set(active)
    for index, job in enumerate(jobs):
        result = finished.get(index)
        if result is None:
            if index in running:
                result = work.still_running(job)
            else:
                why = "--fail-fast"
                if interrupted:
                    why = "terminated (SIGTERM)" if terminated else "interrupted"
                result = work.not_run(job, f"not started: {why}", interrupted)
        ordered.append(result)
    return RunSummary(results=tuple(ordered), interrupted=interrupted, terminated=terminated)


def run_planned(
    plan: TargetPlan,
    jobs: Sequence[J],
    work: Work[J, R],
    refused: Callable[[Assignment, ToolkitError], R],
    key: Callable[[R], str],
    *,
    jobs_per_host: int = 1,
    fail_fast: bool = False,
) -> tuple[tuple[R, ...], RunSummary[R]]:
    """Run the ``jobs`` of ``plan`` (its placed targets) and return one result per assignment,
    in the plan's order: a target whose host was refused gets ``refused(assignment, why)``,
    reported first (and, with ``fail_fast``, no job starts after it)."""
    early = [
        refused(a, plan.refused[a.build_id]) for a in plan.assignments if a.build_id in plan.refused
    ]
    for result in early:
        work.finished(result)
    summary = run_targets(
        jobs, work, jobs_per_host=jobs_per_host, fail_fast=fail_fast, failed_before=bool(early)
    )
    by_id = {key(r): r for r in (*summary.results, *early)}
    return tuple(by_id[a.build_id] for a in plan.assignments), summary


def _wait_for_cleanup(done: threading.Event, grace: float, poll: float) -> None:
    """Let the workers clean up after their cancelled jobs, in parallel: one deadline for all
    of them. A second Ctrl-C ends the wait at once (what is still running is reported so)."""
    deadline = time.monotonic() + grace
    try:
        while not done.is_set():
            left = deadline - time.monotonic()
            if left <= 0:
                return
            done.wait(min(poll, left))
    except KeyboardInterrupt:
        return
