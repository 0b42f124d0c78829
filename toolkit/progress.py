"""How a build run looks: a live view on a terminal, lines otherwise, folds on GitHub Actions.

Only presentation lives here: the driver reports through the ``BuildObserver`` methods, from
worker threads, so every reporter serialises its output with a lock. rich is imported only by
the live view. The summary formats (text table, JSON report, Markdown) are plain functions.
"""

from __future__ import annotations

import json
import secrets
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import IO, Any

from toolkit.results import BuildResult, CheckResult, Outcome, VerifyResult


def choose_style(*, isatty: bool, env: dict[str, str]) -> str:
    """``github`` on GitHub Actions, ``plain`` when not a TTY or CI=true, else ``live``."""
    if env.get("GITHUB_ACTIONS") == "true":
        return "github"
    if not isatty or env.get("CI", "").lower() in ("true", "1"):
        return "plain"
    return "live"


def _duration(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    return f"{minutes}m{secs:02d}s" if minutes else f"{seconds:.1f}s"


def _size(size: int | None) -> str:
    if size is None:
        return "-"
    value = float(size)
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1000 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return str(size)


def _short(image_id: str | None) -> str:
    return image_id.removeprefix("sha256:")[:12] if image_id else "-"


class PlainReporter:
    """One line per step and per result; the failing log's tail. Lines name their target."""

    def __init__(self, out: IO[str]) -> None:
        self._out = out
        self._lock = threading.Lock()

    def _print(self, text: str) -> None:
        with self._lock:
            self._out.write(text + "\n")
            self._out.flush()

    def started(self, build_id: str, host: str) -> None:
        self._print(f"[{build_id}] start on {host}")

    def step(self, build_id: str, number: int, total: int, instruction: str) -> None:
        if not total:  # a phase without steps (verifying)
            self._print(f"[{build_id}] {instruction}")
            return
        self._print(f"[{build_id}] step {number}/{total}: {_clip(instruction, 100)}")

    def line(self, build_id: str, text: str) -> None:
        pass  # the full output is in the log file

    def finished(self, result: BuildResult) -> None:
        lines = [f"[{result.build_id}] {result_line(result)}"]
        lines += failure_detail(result)
        self._print("\n".join(lines))


class GitHubReporter:
    """GitHub Actions: one ``::group::`` fold per target, printed whole when it finishes (so
    parallel targets do not interleave inside a fold), and an ``::error::`` annotation."""

    def __init__(self, out: IO[str]) -> None:
        self._out = out
        self._lock = threading.Lock()
        self._lines: dict[str, list[str]] = {}

    def started(self, build_id: str, host: str) -> None:
        with self._lock:
            self._lines[build_id] = []
            self._out.write(f"{build_id}: started on {host}\n")
            self._out.flush()

    def step(self, build_id: str, number: int, total: int, instruction: str) -> None:
        pass  # step lines are part of the stream lines

    def line(self, build_id: str, text: str) -> None:
        with self._lock:
            self._lines.setdefault(build_id, []).append(text)

    def finished(self, result: BuildResult) -> None:
        with self._lock:
            lines = self._lines.pop(result.build_id, [])
            out = [f"::group::{result.build_id}: {result_line(result)}"]
            if lines:
                # The build's output is not ours: a line of it starting with "::" would be a
                # workflow command (annotations, masks, stop-commands). GitHub's stop-commands
                # with a token nobody can guess makes the runner print those lines verbatim.
                token = secrets.token_hex(16)
                out += [f"::stop-commands::{token}", *lines, f"::{token}::"]
            out.append("::endgroup::")
            if not result.outcome.ok:
                out.append(f"::error title={result.build_id}::{_escape(result.message or '')}")
                out += failure_detail(result)
            self._out.write("\n".join(out) + "\n")
            self._out.flush()


def _escape(text: str) -> str:
    # Workflow-command data: %, CR and LF are escaped.
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


@dataclass
class _Row:
    host: str
    start: float
    step: int = 0
    total: int = 0
    instruction: str = "starting"


class LiveReporter:
    """A rich live table: one row per running target (step N/M, instruction, elapsed).

    The table shows only while targets run: with none running it renders nothing (no header
    row left behind after the run), and it is transient, so whatever it still shows when the
    view stops (Ctrl-C while targets were stopping) is cleared rather than left on screen as if
    still running. Results are printed above it as targets finish.
    """

    def __init__(
        self, out: IO[str], *, force_terminal: bool | None = None, width: int | None = None
    ) -> None:
        from rich.console import Console
        from rich.live import Live

        self._console = Console(file=out, force_terminal=force_terminal, width=width)
        self._lock = threading.Lock()
        self._rows: dict[str, _Row] = {}
        self._live = Live(
            get_renderable=self._table,
            console=self._console,
            refresh_per_second=4,
            transient=True,
        )

    def __enter__(self) -> LiveReporter:
        self._live.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._live.stop()

    def draw(self) -> None:
        """Draw the table now (it also redraws itself four times a second)."""
        self._live.refresh()

    def _table(self) -> Any:
        from rich.table import Table
        from rich.text import Text

        now = time.monotonic()
        with self._lock:
            rows = list(self._rows.items())
        if not rows:
            return Text("")
        # Every column gets an exact width that fits the terminal, so rich never squeezes one:
        # identifiers stay whole; a long host is shortened in the middle (scheme and port stay
        # readable); the instruction takes what is left and is cut at its end.
        now_rows = [
            (
                build_id,
                row.host,
                f"{row.step}/{row.total}" if row.total else "-",
                row.instruction,
                _duration(now - row.start),
            )
            for build_id, row in rows
        ]
        id_width = max(len("target"), *(len(r[0]) for r in now_rows))
        step_width = max(len("step"), *(len(r[2]) for r in now_rows))
        elapsed_width = max(len("elapsed"), *(len(r[4]) for r in now_rows))
        left = self._console.width - id_width - step_width - elapsed_width - 2 * 4
        host_width = min(30, max(len("host"), *(len(r[1]) for r in now_rows)))
        host_width = max(12, min(host_width, left - 12))
        instruction_width = max(10, left - host_width)
        table = Table(box=None, show_header=True, header_style="bold", pad_edge=False)
        widths = (id_width, host_width, step_width, instruction_width, elapsed_width)
        for column, width in zip(
            ("target", "host", "step", "instruction", "elapsed"), widths, strict=True
        ):
            table.add_column(column, no_wrap=True, width=width)
        for build_id, host, step, instruction, elapsed in now_rows:
            table.add_row(
                build_id,
                _clip_middle(host, host_width),
                step,
                _clip(instruction, instruction_width),
                elapsed,
            )
        return table

    def started(self, build_id: str, host: str) -> None:
        with self._lock:
            self._rows[build_id] = _Row(host=host, start=time.monotonic())

    def step(self, build_id: str, number: int, total: int, instruction: str) -> None:
        with self._lock:
            row = self._rows.get(build_id)
            if row is not None:
                row.step, row.total, row.instruction = number, total, instruction

    def line(self, build_id: str, text: str) -> None:
        pass

    def finished(self, result: BuildResult) -> None:
        with self._lock:
            self._rows.pop(result.build_id, None)
        style = "green" if result.outcome.ok else "red"
        self._console.print(
            f"[{style}]{result.build_id}[/{style}] {result_line(result)}", highlight=False
        )
        for line in failure_detail(result):
            self._console.print(line, markup=False, highlight=False)


def _clip(text: str, width: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


def _clip_middle(text: str, width: int) -> str:
    """``tcp://win2019-b…example.net:2376``: both ends kept, the middle cut."""
    text = " ".join(text.split())
    if len(text) <= width:
        return text
    tail = (width - 1) // 2
    return text[: width - 1 - tail] + "…" + text[len(text) - tail :]


def result_line(result: BuildResult) -> str:
    text = f"{result.outcome.value} in {_duration(result.duration)}"
    if result.image_id:
        text += f", image {_short(result.image_id)} ({_size(result.size)})"
    failed = [c for c in result.checks if not c.passed]
    if result.checks:
        text += f", checks {len(result.checks) - len(failed)}/{len(result.checks)} passed"
    return text


def failure_detail(result: BuildResult) -> list[str]:
    """For a failed target: the message, the failed checks, and the tail of its log."""
    if result.outcome.ok:
        return []
    lines = []
    if result.message:
        lines.append(f"  error: {result.message}")
    for check in result.checks:
        if not check.passed:
            lines.append(f"  check {check.name} failed: {check.message}")
    if result.tail:
        where = f" ({result.log_path})" if result.log_path else ""
        lines.append(f"  last {len(result.tail)} lines of the log{where}:")
        lines += [f"  | {line}" for line in result.tail]
    return lines


# -- summaries ---------------------------------------------------------------------------------

COLUMNS = ("id", "host", "isolation", "result", "duration", "image id", "size")


def summary_rows(results: Sequence[BuildResult]) -> list[tuple[str, ...]]:
    return [
        (
            r.build_id,
            r.host,
            r.isolation or "default",
            r.outcome.value,
            _duration(r.duration),
            _short(r.image_id),
            _size(r.size),
        )
        for r in results
    ]


def summary_text(results: Sequence[BuildResult]) -> str:
    rows = [COLUMNS, *summary_rows(results)]
    widths = [max(len(row[i]) for row in rows) for i in range(len(COLUMNS))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)) for row in rows]
    return "\n".join(line.rstrip() for line in lines) + "\n" + totals(results) + "\n"


def totals(results: Sequence[BuildResult]) -> str:
    counts: dict[str, int] = {}
    for r in results:
        counts[r.outcome.value] = counts.get(r.outcome.value, 0) + 1
    parts = [f"{n} {name}" for name, n in counts.items()]
    return f"{len(results)} target(s): " + ", ".join(parts)


def summary_markdown(results: Sequence[BuildResult], title: str = "toolkit build") -> str:
    lines = [
        f"### {title}",
        "",
        "| " + " | ".join(COLUMNS) + " |",
        "|" + "---|" * len(COLUMNS),
    ]
    for row in summary_rows(results):
        cells = [c.replace("|", "\\|") for c in row]
        mark = "" if Outcome(row[3]).ok else " :x:"
        cells[3] += mark
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", totals(results), ""]
    for result in results:
        if result.outcome.ok:
            continue
        lines.append(f"<details><summary>{result.build_id}: {result.outcome.value}</summary>")
        lines += ["", "```", *(result.message or "").splitlines(), *result.tail, "```", ""]
        lines.append("</details>")
        lines.append("")
    return "\n".join(lines)


def checks_markdown(results: Sequence[VerifyResult], title: str = "toolkit verify") -> str:
    """The step summary of a verify run: a row per check, then the targets whose checks could
    not run, and the output of each failed check folded under its row."""
    lines = [
        f"### {title}",
        "",
        "| id | check | result | duration | note |",
        "|---|---|---|---|---|",
    ]
    failed: list[tuple[str, CheckResult]] = []
    for result in results:
        for check in result.checks:
            verdict = "pass" if check.passed else "FAIL :x:"
            note = (check.message or "").replace("|", "\\|").replace("\n", " ")
            lines.append(
                f"| {result.build_id} | {check.name} | {verdict} | {check.duration:.1f}s | {note} |"
            )
            if not check.passed:
                failed.append((result.build_id, check))
    total = sum(len(r.checks) for r in results)
    lines += [
        "",
        f"{total} check(s) on {sum(1 for r in results if r.error is None)} image(s): "
        f"{len(failed)} failed",
        "",
    ]
    for result in results:
        if result.error is not None:
            lines.append(f"- {result.build_id}: not checked: {result.error} :x:")
    for build_id, check in failed:
        lines.append(f"<details><summary>{build_id}: {check.name}</summary>")
        lines += ["", "```", *check.output.splitlines()[-40:], "```", "", "</details>", ""]
    return "\n".join(lines)


def report_json(results: Sequence[BuildResult], *, interrupted: bool = False) -> str:
    document = {
        "results": [r.record() for r in results],
        "ok": all(r.outcome.ok for r in results) and not interrupted,
        "interrupted": interrupted,
    }
    return json.dumps(document, indent=2) + "\n"
