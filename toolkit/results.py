"""What a run produced, as plain typed values: the outcome of each target and of each check.

The pipeline (driver, verify, runner) creates them; the presentation (progress, console) and
the reports read them. Nothing here talks to an engine.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any, Protocol


class Outcome(Enum):
    BUILT = "built"
    SKIPPED = "skipped"
    FAILED = "failed"
    TIMEOUT = "timeout"
    CANCELLED = "cancelled"
    NOT_RUN = "not-run"
    VERIFY_FAILED = "verify-failed"
    # toolkit push
    PUSHED = "pushed"
    UNCHANGED = "unchanged"
    NOT_BUILT = "not-built"

    @property
    def ok(self) -> bool:
        return self in (Outcome.BUILT, Outcome.SKIPPED, Outcome.PUSHED, Outcome.UNCHANGED)


@dataclass(frozen=True, kw_only=True)
class CheckResult:
    """One check of one image (``python-version``, ...), run in its own container."""

    name: str
    image: str
    passed: bool
    duration: float
    argv: tuple[str, ...]
    output: str
    message: str | None = None  # why it failed; for a pass, what it found (if worth saying)

    def record(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "image": self.image,
            "passed": self.passed,
            "duration": round(self.duration, 3),
            "argv": list(self.argv),
            "output": self.output,
            "message": self.message,
        }


@dataclass(frozen=True, kw_only=True)
class BuildResult:
    """One target of ``toolkit build``: how it ended, the image, its log, its checks."""

    build_id: str
    host: str
    isolation: str | None
    outcome: Outcome
    duration: float
    image_id: str | None = None
    size: int | None = None
    tags: tuple[str, ...] = ()
    content_hash: str | None = None
    message: str | None = None
    log_path: Path | None = None
    tail: tuple[str, ...] = ()
    checks: tuple[CheckResult, ...] = ()

    def record(self) -> dict[str, Any]:
        return {
            "id": self.build_id,
            "host": self.host,
            "isolation": self.isolation,
            "result": self.outcome.value,
            "duration": round(self.duration, 3),
            "image_id": self.image_id,
            "size": self.size,
            "tags": list(self.tags),
            "hash": self.content_hash,
            "message": self.message,
            "log": str(self.log_path) if self.log_path else None,
            "checks": [c.record() for c in self.checks],
        }


@dataclass(frozen=True, kw_only=True)
class VerifyResult:
    """One target of ``toolkit verify``: its checks, or why they could not run (``error``:
    the host was unreachable or refused; ``interrupted``: Ctrl-C came first)."""

    build_id: str
    host: str
    checks: tuple[CheckResult, ...] = ()
    error: str | None = None
    interrupted: bool = False

    @property
    def failed(self) -> list[CheckResult]:
        return [c for c in self.checks if not c.passed]

    @property
    def ok(self) -> bool:
        return self.error is None and not self.interrupted and not self.failed


class BuildObserver(Protocol):
    """What the driver tells the presentation layer (toolkit.progress) while it works."""

    def started(self, build_id: str, host: str) -> None: ...

    def step(self, build_id: str, number: int, total: int, instruction: str) -> None: ...

    def line(self, build_id: str, text: str) -> None: ...

    def finished(self, result: BuildResult) -> None: ...
