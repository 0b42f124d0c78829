"""Build driver pieces that need no engine: the cache key, the stream parser, the reports.

The streams in tests/fixtures/build-streams/ were recorded from a real Docker Engine 20.10
(classic builder, ``APIClient.build(decode=True)``) building against a stand-in base image.
"""

from __future__ import annotations

import _thread
import io
import json
import os
import socket
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import FIXTURES, REPO
from toolkit.buildstream import BuildStream
from toolkit.cancel import Canceller
from toolkit.driver import (
    BuildJob,
    BuildSettings,
    base_image,
    base_images,
    content_hash,
    full_tags,
)
from toolkit.errors import ConfigError
from toolkit.matrix import build_matrix
from toolkit.progress import (
    GitHubReporter,
    PlainReporter,
    choose_style,
    report_json,
    summary_markdown,
    summary_text,
)
from toolkit.results import BuildResult, Outcome
from toolkit.runner import run_targets
from toolkit.versions import load_versions

STREAMS = FIXTURES / "build-streams"
SETTINGS = {"base_image": "mcr.microsoft.com/windows/servercore:1809", "isolation": None}


def _events(name: str) -> list[dict[str, Any]]:
    data: list[dict[str, Any]] = json.loads((STREAMS / f"{name}.json").read_text())
    return data


def _context(tmp_path: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        path = tmp_path / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return tmp_path


# -- content hash --------------------------------------------------------------------------------


def test_hash_is_stable_and_ignores_creation_order(tmp_path: Path) -> None:
    a = _context(tmp_path / "a", {"Dockerfile": "FROM x\n", "sub/f.txt": "1"})
    b = _context(tmp_path / "b", {"sub/f.txt": "1", "Dockerfile": "FROM x\n"})
    assert content_hash(a, SETTINGS) == content_hash(b, SETTINGS)
    assert len(content_hash(a, SETTINGS)) == 64


@pytest.mark.parametrize(
    "change",
    ["content", "rename", "new-file", "mode", "base-id", "isolation", "build-arg"],
)
def test_hash_changes_with_every_input(tmp_path: Path, change: str) -> None:
    ctx = _context(tmp_path, {"Dockerfile": "FROM x\n", "f.txt": "1"})
    settings: dict[str, Any] = {**SETTINGS, "base_image_id": "sha256:aa", "build_args": {}}
    before = content_hash(ctx, settings)
    if change == "content":
        (ctx / "f.txt").write_text("2")
    elif change == "rename":
        (ctx / "f.txt").rename(ctx / "g.txt")
    elif change == "new-file":
        (ctx / "extra").write_text("")
    elif change == "mode":
        os.chmod(ctx / "f.txt", 0o755)
    elif change == "base-id":
        settings["base_image_id"] = "sha256:bb"
    elif change == "isolation":
        settings["isolation"] = "hyperv"
    elif change == "build-arg":
        settings["build_args"] = {"K": "V"}
    assert content_hash(ctx, settings) != before


def test_a_fifo_in_the_context_does_not_hang_the_hash(tmp_path: Path) -> None:
    """Only regular files and links are hashed: a FIFO nobody writes to would block a read."""
    ctx = _context(tmp_path, {"Dockerfile": "FROM x\n"})
    before = content_hash(ctx, SETTINGS)
    os.mkfifo(ctx / "pipe")
    found: list[str] = []
    reader = threading.Thread(target=lambda: found.append(content_hash(ctx, SETTINGS)), daemon=True)
    reader.start()
    reader.join(5)
    assert not reader.is_alive(), "hashing a context with a FIFO hung"
    assert found == [before]


def test_hash_of_missing_context_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="build context not found"):
        content_hash(tmp_path / "nope", SETTINGS)


def test_base_image_and_tags_of_the_rendered_dockerfile() -> None:
    builds = build_matrix(load_versions(REPO / "versions.json"))
    b = next(x for x in builds if x.id == "3.8-rc-windowsservercore-1809")
    assert base_image(REPO / "dockerfiles" / b.directory) == (
        "mcr.microsoft.com/windows/servercore:1809"
    )
    # 3.15-rc is the newest rc line now: it has the "rc" tags, 3.8-rc keeps its own.
    assert full_tags(b, "example/python") == (
        "example/python:3.8.0rc1-windowsservercore-1809",
        "example/python:3.8-rc-windowsservercore-1809",
    )
    nano = next(x for x in builds if x.id == "3.14-nanoserver-ltsc2022")
    assert base_image(REPO / "dockerfiles" / nano.directory) == (
        "mcr.microsoft.com/windows/nanoserver:ltsc2022"
    )
    assert full_tags(nano, "example/python") == (
        "example/python:3.14.7-nanoserver-ltsc2022",
        "example/python:3.14-nanoserver-ltsc2022",
        "example/python:3-nanoserver-ltsc2022",
        "example/python:nanoserver-ltsc2022",
    )


def test_every_stage_base_image_is_resolved_but_not_stage_references(tmp_path: Path) -> None:
    nano = REPO / "dockerfiles/3.14/windows/nanoserver-ltsc2025"
    assert base_images(nano) == [
        "mcr.microsoft.com/windows/servercore:ltsc2025",
        "mcr.microsoft.com/windows/nanoserver:ltsc2025",
    ]
    assert base_image(nano) == "mcr.microsoft.com/windows/nanoserver:ltsc2025"
    core = REPO / "dockerfiles/3.14/windows/windowsservercore-ltsc2025"
    assert base_images(core) == ["mcr.microsoft.com/windows/servercore:ltsc2025"]
    (tmp_path / "Dockerfile").write_text(
        "FROM a:1 AS one\nFROM b:2 AS two\nFROM one\nCOPY --from=two x y\nFROM a:1\n"
    )
    assert base_images(tmp_path) == ["a:1", "b:2"]


def test_settings_reject_bad_values() -> None:
    with pytest.raises(ConfigError, match="pull policy"):
        BuildSettings(pull="sometimes")
    for timeout in (0.0, -1.0, float("inf"), float("nan")):
        with pytest.raises(ConfigError, match="must be positive and finite"):
            BuildSettings(timeout=timeout)


# -- stream parsing ------------------------------------------------------------------------------


def _feed(name: str) -> tuple[BuildStream, list[str], list[tuple[int, int, str]]]:
    stream = BuildStream()
    lines: list[str] = []
    steps: list[tuple[int, int, str]] = []
    for event in _events(name):
        lines += stream.feed(event)
        if stream.step and (not steps or steps[-1][0] != stream.step):
            steps.append((stream.step, stream.total, stream.instruction))
    lines += stream.flush()
    return stream, lines, steps


def test_stream_of_a_successful_build() -> None:
    stream, lines, steps = _feed("success")
    assert [s[0] for s in steps] == [1, 2, 3, 4, 5, 6]
    assert steps[0] == (1, 6, "FROM mcr.microsoft.com/windows/servercore:1809")
    assert steps[3] == (4, 6, "RUN echo capture-ok")
    assert stream.error is None
    assert stream.image_id is not None
    assert stream.image_id.startswith("sha256:")
    assert "Step 4/6 : RUN echo capture-ok" in lines
    # The FROM line's " ---> <base id>" is not a layer of this build.
    base_line = lines[lines.index("Step 1/6 : FROM mcr.microsoft.com/windows/servercore:1809") + 1]
    assert base_line.removeprefix(" ---> ") not in stream.layers
    assert len(stream.layers) == 5
    assert len(stream.containers) == 5


def test_stream_of_a_cached_build_claims_no_layers() -> None:
    stream, _lines, _steps = _feed("cached")
    assert stream.layers == []
    assert stream.containers == []
    assert stream.image_id is not None


def test_stream_of_a_failed_build() -> None:
    stream, lines, _steps = _feed("failure")
    assert stream.error == (
        "The command 'powershell -Command TOOLKIT_FAIL_MARKER' returned a non-zero code: 1"
    )
    assert stream.step == 5
    assert stream.instruction == "RUN TOOLKIT_FAIL_MARKER"
    assert stream.image_id is None
    assert len(stream.containers) == 1
    assert stream.layers == []  # every earlier step came from the cache
    assert "stand-in: marker found" in lines  # ANSI colour codes stripped
    assert "Removing intermediate container " + stream.containers[0] in lines
    assert not any("\x1b" in line for line in lines)


def test_stream_joins_partial_lines_and_flushes_the_last() -> None:
    stream = BuildStream()
    assert stream.feed({"stream": "Step 1/2 : RUN a"}) == []
    assert stream.feed({"stream": "\nhal"}) == ["Step 1/2 : RUN a"]
    assert stream.feed({"stream": "f line"}) == []
    assert stream.flush() == ["half line"]
    assert stream.feed({"status": "Pulling fs layer", "id": "abc"}) == ["abc: Pulling fs layer"]
    assert stream.feed({"aux": {"ID": "sha256:" + "1" * 64}}) == []
    assert stream.image_id == "sha256:" + "1" * 64


# -- cancellation --------------------------------------------------------------------------------


class _Response:
    """Just the attributes Canceller reads from a requests response (raw.connection.sock)."""

    def __init__(self, sock: socket.socket) -> None:
        self.raw = type("Raw", (), {"connection": type("Conn", (), {"sock": sock})()})()
        self.closed = False

    def close(self) -> None:
        self.closed = True


def test_canceller_wakes_a_thread_blocked_in_recv() -> None:
    left, right = socket.socketpair()
    got: list[bytes] = []
    reader = threading.Thread(target=lambda: got.append(left.recv(10)))
    reader.start()
    canceller = Canceller()
    response = _Response(left)
    canceller.attach(response)
    time.sleep(0.1)
    assert reader.is_alive()
    started = time.monotonic()
    canceller.cancel("timeout: test")
    reader.join(timeout=5)
    assert not reader.is_alive()
    assert got == [b""]
    assert time.monotonic() - started < 2
    assert response.closed
    assert canceller.reason == "timeout: test"
    left.close()
    right.close()


def test_canceller_cancelled_before_attach_closes_on_attach() -> None:
    left, right = socket.socketpair()
    canceller = Canceller()
    canceller.cancel("cancelled: interrupted (Ctrl-C)")
    canceller.cancel("timeout: later")
    assert canceller.reason == "cancelled: interrupted (Ctrl-C)"  # the first reason wins
    canceller.attach(_Response(left))
    assert left.recv(10) == b""
    left.close()
    right.close()


# -- reports -------------------------------------------------------------------------------------


def _result(build_id: str, outcome: Outcome, **kw: Any) -> BuildResult:
    defaults: dict[str, Any] = {
        "host": "h1809",
        "isolation": "process",
        "duration": 12.5,
        "image_id": "sha256:" + "ab" * 32 if outcome.ok else None,
        "size": 5_300_000_000 if outcome.ok else None,
    }
    defaults.update(kw)
    return BuildResult(build_id=build_id, outcome=outcome, **defaults)


RESULTS = [
    _result("3.8-rc-windowsservercore-1809", Outcome.BUILT),
    _result("3.8-rc-windowsservercore-1803", Outcome.SKIPPED, host="h1803", isolation=None),
    _result(
        "3.8-rc-windowsservercore-ltsc2016",
        Outcome.FAILED,
        host="h2016",
        message="3.8-rc-windowsservercore-ltsc2016 on h2016: The command ... returned 1",
        tail=("Step 5/9 : RUN x", "boom | pipe"),
        log_path=Path("logs/3.8-rc-windowsservercore-ltsc2016.log"),
    ),
]


def test_summary_text_has_every_column_and_row() -> None:
    text = summary_text(RESULTS)
    lines = text.splitlines()
    assert lines[0].split() == [
        "id",
        "host",
        "isolation",
        "result",
        "duration",
        "image",
        "id",
        "size",
    ]
    assert lines[1].split() == [
        "3.8-rc-windowsservercore-1809",
        "h1809",
        "process",
        "built",
        "12.5s",
        "abababababab",
        "5.3",
        "GB",
    ]
    assert lines[2].split()[2] == "default"
    assert lines[3].split()[3] == "failed"
    assert lines[3].split()[-1] == "-"
    assert lines[-1] == "3 target(s): 1 built, 1 skipped, 1 failed"


def test_report_json_round_trips() -> None:
    doc = json.loads(report_json(RESULTS))
    assert doc["ok"] is False
    assert doc["interrupted"] is False
    assert [r["result"] for r in doc["results"]] == ["built", "skipped", "failed"]
    assert doc["results"][0]["image_id"] == "sha256:" + "ab" * 32
    assert doc["results"][2]["log"] == "logs/3.8-rc-windowsservercore-ltsc2016.log"
    assert json.loads(report_json(RESULTS[:2]))["ok"] is True


def test_markdown_summary_is_a_table_with_failure_details() -> None:
    md = summary_markdown(RESULTS)
    lines = md.splitlines()
    assert lines[0] == "### toolkit build"
    assert lines[2] == "| id | host | isolation | result | duration | image id | size |"
    assert lines[3] == "|---|---|---|---|---|---|---|"
    assert "| failed :x: |" in lines[6]
    assert "<details><summary>3.8-rc-windowsservercore-ltsc2016: failed</summary>" in md
    assert "boom | pipe" in md  # the log tail goes inside a code block, unescaped


def test_github_reporter_folds_each_target_and_annotates_failures() -> None:
    out = io.StringIO()
    reporter = GitHubReporter(out)
    reporter.started("a", "h1")
    reporter.started("b", "h2")
    reporter.line("a", "Step 1/2 : FROM x")
    reporter.line("b", "Step 1/2 : FROM y")
    reporter.line("a", "Step 2/2 : RUN z")
    reporter.line("b", "::error::a line of build output, not a command")
    reporter.finished(_result("a", Outcome.BUILT))
    reporter.finished(
        _result("b", Outcome.FAILED, message="b on h2: 100% broken\nsecond", tail=("t1",))
    )
    reporter.started("c", "h3")
    reporter.finished(_result("c", Outcome.SKIPPED))
    lines = out.getvalue().splitlines()
    a_start = lines.index(next(x for x in lines if x.startswith("::group::a: built")))
    # The build output sits between stop-commands and its token: the runner takes none of it
    # for a workflow command.
    stop = lines[a_start + 1]
    assert stop.startswith("::stop-commands::")
    token = stop.removeprefix("::stop-commands::")
    assert len(token) == 32
    assert lines[a_start + 2 : a_start + 6] == [
        "Step 1/2 : FROM x",
        "Step 2/2 : RUN z",
        f"::{token}::",
        "::endgroup::",
    ]
    b_start = lines.index(next(x for x in lines if x.startswith("::group::b: failed")))
    b_token = lines[b_start + 1].removeprefix("::stop-commands::")
    assert b_token != token
    assert lines[b_start + 2 : b_start + 6] == [
        "Step 1/2 : FROM y",
        "::error::a line of build output, not a command",
        f"::{b_token}::",
        "::endgroup::",
    ]
    assert lines[b_start + 6] == "::error title=b::b on h2: 100%25 broken%0Asecond"
    c_start = lines.index(next(x for x in lines if x.startswith("::group::c: skipped")))
    assert lines[c_start + 1] == "::endgroup::"
    assert "  | t1" in lines


def test_plain_reporter_prints_steps_results_and_the_tail() -> None:
    out = io.StringIO()
    reporter = PlainReporter(out)
    reporter.started("a", "h1")
    reporter.step("a", 3, 9, "RUN   Write-Host  x")
    reporter.line("a", "noise that only goes to the log")
    reporter.finished(RESULTS[2])
    text = out.getvalue()
    assert "[a] start on h1" in text
    assert "[a] step 3/9: RUN Write-Host x" in text
    assert "noise" not in text
    assert "failed in 12.5s" in text
    assert "last 2 lines of the log (logs/3.8-rc-windowsservercore-ltsc2016.log)" in text
    assert "  | boom | pipe" in text


@pytest.mark.parametrize(
    ("isatty", "env", "style"),
    [
        (True, {}, "live"),
        (False, {}, "plain"),
        (True, {"CI": "true"}, "plain"),
        (True, {"GITHUB_ACTIONS": "true", "CI": "true"}, "github"),
        (False, {"GITHUB_ACTIONS": "true"}, "github"),
    ],
)
def test_output_style(isatty: bool, env: dict[str, str], style: str) -> None:
    assert choose_style(isatty=isatty, env=env) == style


def test_live_reporter_shows_running_targets_and_prints_results() -> None:
    from tests.test_live_view import Screen
    from toolkit.progress import LiveReporter

    out = io.StringIO()
    with LiveReporter(out, force_terminal=True, width=120) as reporter:
        reporter.started("3.8-rc-windowsservercore-1809", "tcp://win2019:2376")
        reporter.step("3.8-rc-windowsservercore-1809", 5, 14, "RUN $url")
        reporter.started("3.8-rc-windowsservercore-1803", "tcp://win1803:2376")
        reporter.finished(RESULTS[2])  # another target, failed: printed above the table
        reporter.draw()
        frame = Screen().feed(out.getvalue()).text()
    row = next(x for x in frame if "3.8-rc-windowsservercore-1809" in x)
    assert "tcp://win2019:2376" in row
    assert "5/14" in row
    assert "RUN $url" in row
    text = "\n".join(Screen().feed(out.getvalue()).text())
    assert "3.8-rc-windowsservercore-ltsc2016 failed in 12.5s" in text
    assert "  | boom | pipe" in text


# -- scheduler -----------------------------------------------------------------------------------


class _WaitingWork:
    """A Work for the runner that stands in for a build (no engine): it waits until its
    canceller fires (as a streaming build would), or sleeps through it when ``stubborn``."""

    def __init__(self, *, stubborn: bool = False, interrupt_first: bool = False) -> None:
        self.stubborn = stubborn
        self.interrupt_first = interrupt_first
        self.finished_results: list[BuildResult] = []

    def host(self, job: BuildJob) -> str:
        return job.host

    def run(self, job: BuildJob, canceller: Canceller, interrupt: threading.Event) -> BuildResult:
        if self.stubborn:
            _thread.interrupt_main()
            time.sleep(3)  # ignores the cancellation (an engine that does not answer)
            return _plain_result(job, Outcome.BUILT)
        deadline = time.monotonic() + 10
        while canceller.reason is None and time.monotonic() < deadline:
            time.sleep(0.01)
        return _plain_result(job, Outcome.CANCELLED if canceller.reason else Outcome.BUILT)

    def failed(self, job: BuildJob, why: str) -> BuildResult:
        return _plain_result(job, Outcome.FAILED, why)

    def not_run(self, job: BuildJob, why: str, interrupted: bool) -> BuildResult:
        return _plain_result(job, Outcome.CANCELLED if interrupted else Outcome.NOT_RUN, why)

    def still_running(self, job: BuildJob) -> BuildResult:
        return _plain_result(job, Outcome.CANCELLED, "still stopping")

    def ok(self, result: BuildResult) -> bool:
        return result.outcome.ok

    def finished(self, result: BuildResult) -> None:
        self.finished_results.append(result)


def _plain_result(job: BuildJob, outcome: Outcome, message: str | None = None) -> BuildResult:
    return BuildResult(
        build_id=job.build.id,
        host=job.host,
        isolation=None,
        outcome=outcome,
        duration=0.0,
        message=message,
    )


def _job(tmp_path: Path) -> BuildJob:
    build = build_matrix(load_versions(REPO / "versions.json"))[0]
    return BuildJob(build=build, context=tmp_path, host="h", client=type("C", (), {"api": None}))


def test_ctrl_c_before_a_build_registers_still_cancels_it(tmp_path: Path) -> None:
    """Ctrl-C between a worker's stop check and the registration of its build's canceller:
    the build must still be cancelled, not run on unnoticed. No engine: the work waits for its
    canceller (a real build would stream)."""

    def late_canceller() -> Canceller:
        _thread.interrupt_main()  # Ctrl-C, in the window before the canceller is registered
        time.sleep(1.0)  # the main thread handles it meanwhile and finds nothing to cancel
        return Canceller()

    summary = run_targets(
        [_job(tmp_path)], _WaitingWork(), poll=0.05, make_canceller=late_canceller
    )
    assert summary.interrupted
    assert [r.outcome for r in summary.results] == [Outcome.CANCELLED]


def test_an_unwritable_step_summary_is_a_one_line_output_error(tmp_path: Path) -> None:
    from toolkit.console import Console
    from toolkit.errors import OutputError

    env = {"GITHUB_STEP_SUMMARY": str(tmp_path)}  # a directory: cannot append
    console = Console(io.StringIO(), io.StringIO(), env)
    with pytest.raises(OutputError, match=r"\(\$GITHUB_STEP_SUMMARY\): cannot append"):
        console.results(RESULTS, None, "toolkit build", False)
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)  # nobody reads it: opening it to append would block forever
    console = Console(io.StringIO(), io.StringIO(), {"GITHUB_STEP_SUMMARY": str(fifo)})
    with pytest.raises(OutputError, match=r"cannot append the summary: not a regular file"):
        console.results(RESULTS, None, "toolkit build", False)
    summary = tmp_path / "summary.md"
    console = Console(io.StringIO(), io.StringIO(), {"GITHUB_STEP_SUMMARY": str(summary)})
    console.results(RESULTS, None, "toolkit build", False)
    assert summary.read_text().startswith("### toolkit build\n")


def test_a_build_still_running_after_the_grace_period_is_not_called_not_started(
    tmp_path: Path,
) -> None:
    work = _WaitingWork(stubborn=True)
    summary = run_targets([_job(tmp_path)], work, poll=0.05, grace=0.3)
    assert summary.interrupted
    assert summary.results[0].outcome is Outcome.CANCELLED
    assert summary.results[0].message == "still stopping"


def test_the_build_work_names_a_build_still_stopping_at_exit(tmp_path: Path) -> None:
    from toolkit.builds import BuildWork

    job = _job(tmp_path)
    work = BuildWork(BuildSettings(logs=tmp_path), PlainReporter(io.StringIO()), None, [])
    result = work.still_running(job)
    assert result.outcome is Outcome.CANCELLED
    assert result.message == f"{job.build.id} on h: interrupted; still stopping at exit"
