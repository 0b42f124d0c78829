"""The live view of `toolkit build` on a terminal, read off a screen.

rich draws the view with cursor movements and line erasures; ``Screen`` applies them the way a
terminal does (the few control sequences rich's live display uses), so the tests assert what a
user sees, not which bytes were written.
"""

from __future__ import annotations

import io
import re
import time

from toolkit.progress import LiveReporter, _clip_middle
from toolkit.results import BuildResult, Outcome

CSI = re.compile(r"\x1b\[([0-9;?]*)([A-Za-z])")
LONG_HOST = "tcp://win2019-build.example.net:2376"


class Screen:
    """A terminal screen fed with text: CR, LF, cursor up, erase line; colours ignored."""

    def __init__(self) -> None:
        self.lines: list[list[str]] = [[]]
        self.row = 0
        self.col = 0

    def feed(self, data: str) -> Screen:
        pos = 0
        while pos < len(data):
            match = CSI.match(data, pos)
            if match is not None:
                self._control(match[1], match[2])
                pos = match.end()
                continue
            char = data[pos]
            pos += 1
            if char == "\r":
                self.col = 0
            elif char == "\n":
                self.row += 1
                self.col = 0
            else:
                self._put(char)
        return self

    def _control(self, params: str, final: str) -> None:
        count = int(params) if params.isdigit() else 1
        if final == "A":
            self.row = max(0, self.row - count)
        elif final == "K" and params == "2":
            self._line().clear()
        elif final in "mhl":  # colours, cursor shown or hidden
            return
        else:
            raise AssertionError(f"unexpected control sequence ESC[{params}{final}")

    def _line(self) -> list[str]:
        while len(self.lines) <= self.row:
            self.lines.append([])
        return self.lines[self.row]

    def _put(self, char: str) -> None:
        line = self._line()
        while len(line) < self.col:
            line.append(" ")
        if self.col < len(line):
            line[self.col] = char
        else:
            line.append(char)
        self.col += 1

    def text(self) -> list[str]:
        """The visible lines, trailing blanks dropped."""
        lines = ["".join(x).rstrip() for x in self.lines]
        while lines and not lines[-1]:
            lines.pop()
        return lines


def result(build_id: str, outcome: Outcome, duration: float) -> BuildResult:
    return BuildResult(
        build_id=build_id, host="h", isolation=None, outcome=outcome, duration=duration
    )


def live(out: io.StringIO) -> LiveReporter:
    return LiveReporter(out, force_terminal=True, width=80)


def test_running_targets_show_with_the_host_shortened_in_the_middle() -> None:
    out = io.StringIO()
    with live(out) as view:
        view.started("3.8-rc-windowsservercore-1809", LONG_HOST)
        view.step("3.8-rc-windowsservercore-1809", 5, 14, "RUN $url = ('https://www.python.org/')")
        view.draw()
        frame = Screen().feed(out.getvalue()).text()
        view.finished(result("3.8-rc-windowsservercore-1809", Outcome.BUILT, 61.0))
    row = next(line for line in frame if line.startswith("3.8-rc-windowsservercore-1809"))
    host = row.split()[1]
    assert host.startswith("tcp://win"), row
    assert host.endswith(".net:2376"), row
    assert "…" in host
    assert len(host) <= 30
    assert "5/14" in row
    assert "RUN $url" in row


def test_clip_middle_keeps_both_ends() -> None:
    assert _clip_middle("short", 30) == "short"
    clipped = _clip_middle(LONG_HOST, 20)
    assert len(clipped) == 20
    assert clipped.startswith("tcp://win")
    assert clipped.endswith(":2376")


def test_after_a_run_only_the_results_remain_no_empty_header() -> None:
    out = io.StringIO()
    with live(out) as view:
        view.started("a-1809", "tcp://h1:2376")
        view.started("a-1803", "tcp://h2:2376")
        view.draw()
        view.finished(result("a-1809", Outcome.BUILT, 3.0))
        view.draw()
        view.finished(result("a-1803", Outcome.SKIPPED, 0.5))
    screen = Screen().feed(out.getvalue()).text()
    assert screen == ["a-1809 built in 3.0s", "a-1803 skipped in 0.5s"], screen


def test_rows_still_running_when_the_view_stops_are_cleared() -> None:
    """Ctrl-C: the runner gives up waiting for a target still stopping; its row must not stay
    on screen as if it were running."""
    out = io.StringIO()
    with live(out) as view:
        view.started("a-1809", "tcp://h1:2376")
        view.started("a-1803", "tcp://h2:2376")
        view.step("a-1803", 3, 9, "RUN Write-Host 'Installing ...'")
        time.sleep(0.01)
        view.draw()
        assert any("a-1803" in line for line in Screen().feed(out.getvalue()).text())
        view.finished(result("a-1809", Outcome.CANCELLED, 4.2))
    screen = Screen().feed(out.getvalue()).text()
    assert screen == ["a-1809 cancelled in 4.2s"], screen
