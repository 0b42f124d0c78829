"""The one reporter: everything a command shows goes through a ``Console``.

Commands hand their outcome to it; it decides the form: plain text or JSON on stdout, notes and
one-line errors on stderr (``error: ...``, or ``::error::...`` annotations on GitHub Actions),
the build progress style (live view on a terminal, lines in CI, folds on GitHub), the summary
table, the JSON report file and the ``$GITHUB_STEP_SUMMARY`` Markdown.
"""

from __future__ import annotations

import contextlib
import io
import os
import sys
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from toolkit.errors import OutputError

if TYPE_CHECKING:  # the results types are not needed to print a render or a list
    from toolkit.results import BuildObserver, BuildResult


def _append(path: str, text: str) -> None:
    """Append ``text`` to the regular file ``path`` (created if missing). Opened without
    blocking and refused unless a regular file: a FIFO there would block the run forever."""
    import stat

    if os.path.exists(path) and not os.path.isfile(path):
        raise OSError("not a regular file")
    flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | getattr(os, "O_NONBLOCK", 0)
    fd = os.open(path, flags, 0o644)
    with open(fd, "a", encoding="utf-8", closefd=True) as handle:
        if not stat.S_ISREG(os.fstat(fd).st_mode):  # swapped since the check
            raise OSError("not a regular file")
        handle.write(text)


class GuardedStream(io.TextIOBase):
    """A standard stream whose failures are one-line errors.

    Output to a full disk (``> /dev/full``), a pipe whose reader has gone, or a closed descriptor
    (``>&-``, where Python sets ``sys.stdout`` to None) raises OutputError naming the stream,
    instead of an OSError traceback or Python's "Exception ignored" at exit. ``quiet`` streams
    (stderr: there is nowhere left to report to) drop what cannot be written.
    """

    def __init__(self, stream: IO[str] | None, name: str, *, quiet: bool = False) -> None:
        super().__init__()
        self.stream = stream
        self.name_shown = name
        self.quiet = quiet
        self.failed: OutputError | None = None

    def _fail(self, why: str) -> OutputError:
        self.failed = OutputError(
            f"{self.name_shown}: cannot write: {why}",
            hint="check where the output goes: a full disk, a closed pipe or descriptor",
        )
        return self.failed

    def write(self, text: str) -> int:
        if self.stream is None:
            if self.quiet:
                return len(text)
            raise self._fail("the descriptor is closed")
        try:
            return self.stream.write(text)
        except OSError as exc:
            if self.quiet:
                return len(text)
            raise self._fail(exc.strerror or str(exc)) from None

    def flush(self) -> None:
        if self.stream is None:
            return
        try:
            self.stream.flush()
        except OSError as exc:
            if not self.quiet:
                raise self._fail(exc.strerror or str(exc)) from None

    def isatty(self) -> bool:
        return self.stream is not None and self.stream.isatty()

    def fileno(self) -> int:
        if self.stream is None:
            raise io.UnsupportedOperation("closed stream")
        return self.stream.fileno()

    def writable(self) -> bool:
        return True

    def close(self) -> None:
        """Never closes (nor flushes) the real stream: it is the process's, not ours."""

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return getattr(self.stream, "encoding", None) or "utf-8"

    @property
    def errors(self) -> str:  # type: ignore[override]
        return getattr(self.stream, "errors", None) or "strict"


class Console:
    """Where a command's output goes: ``out`` and ``err`` streams, and the environment that
    decides the style (GitHub Actions, CI, a terminal)."""

    def __init__(
        self, out: IO[str], err: IO[str], env: Mapping[str, str], isatty: bool = False
    ) -> None:
        self.out = out
        self.err = err
        self.env = env
        self.isatty = isatty

    @classmethod
    def from_process(cls) -> Console:
        return cls(sys.stdout, sys.stderr, os.environ, sys.stderr.isatty())

    @property
    def github(self) -> bool:
        return self.env.get("GITHUB_ACTIONS") == "true"

    # -- text --------------------------------------------------------------------------------

    def echo(self, text: str = "") -> None:
        """A line of the command's output (stdout)."""
        self.out.write(text + "\n")

    def write(self, text: str) -> None:
        """Output as it is (diffs)."""
        self.out.write(text)

    def note(self, text: str) -> None:
        """A line about the run, not its output (stderr)."""
        self.err.write(text + "\n")

    def error(self, message: str) -> None:
        """A one-line error: ``error: ...``, an annotation on GitHub Actions."""
        prefix = "::error::" if self.github else "error: "
        self.err.write(f"{prefix}{message}\n")

    def warning(self, message: str) -> None:
        """A one-line warning: ``warning: ...``, an annotation on GitHub Actions."""
        prefix = "::warning::" if self.github else "warning: "
        self.err.write(f"{prefix}{message}\n")

    def json(self, document: Any) -> None:
        import json

        self.echo(json.dumps(document, indent=2))

    def table(self, rows: Sequence[Sequence[str]], *, last_free: bool = False) -> None:
        """Columns padded to their widest cell; ``last_free``: the last column is not padded
        (a long message must not widen the others)."""
        padded = len(rows[0]) - 1 if last_free else len(rows[0])
        widths = [max(len(row[i]) for row in rows) for i in range(padded)]
        for row in rows:
            cells = [c.ljust(w) for c, w in zip(row[:padded], widths, strict=True)]
            self.echo("  ".join([*cells, *row[padded:]]).rstrip())

    # -- builds -------------------------------------------------------------------------------

    def style(self) -> str:
        from toolkit.progress import choose_style

        return choose_style(isatty=self.isatty, env=dict(self.env))

    @contextlib.contextmanager
    def progress(self) -> Iterator[BuildObserver]:
        """The observer of a build run, in this console's style, open for the run's length."""
        from toolkit import progress

        style = self.style()
        if style == "live":
            with progress.LiveReporter(self.err) as live:
                yield live
        elif style == "github":
            yield progress.GitHubReporter(self.out)
        else:
            yield progress.PlainReporter(self.out)

    def results(
        self, results: Sequence[BuildResult], report: Path | None, title: str, interrupted: bool
    ) -> None:
        """The summary table; the JSON report file; the step summary on GitHub Actions."""
        from toolkit import progress
        from toolkit.files import write_atomic

        self.echo("")
        self.write(progress.summary_text(results))
        if report is not None:
            write_atomic(report, progress.report_json(results, interrupted=interrupted))
        self.step_summary(progress.summary_markdown(results, title))

    def step_summary(self, markdown: str) -> None:
        """Append ``markdown`` to ``$GITHUB_STEP_SUMMARY`` when it is set (GitHub Actions)."""
        step_summary = self.env.get("GITHUB_STEP_SUMMARY")
        if step_summary:
            try:
                _append(step_summary, markdown + "\n")
            except OSError as exc:
                raise OutputError(
                    f"{step_summary} ($GITHUB_STEP_SUMMARY): cannot append the summary: "
                    f"{exc.strerror or exc}",
                    hint="point GITHUB_STEP_SUMMARY at a writable file, or unset it",
                ) from None
