"""CLI polish (issue 13 items 17 and 18): short help, version, choices in help, plain
metavars, diffs git applies, lint on one stream, durations of cancelled targets, and the note
about the 2019 recipe's missing installer checksum."""

from __future__ import annotations

import io
import json
import shutil
import subprocess
import time
import tomllib
from pathlib import Path

import pytest

from tests.conftest import REPO, run_toolkit
from toolkit.commands import COMMANDS

D1809 = Path("dockerfiles/3.8-rc/windows/windowsservercore-1809/Dockerfile")
D1803 = Path("dockerfiles/3.8-rc/windows/windowsservercore-1803/Dockerfile")


def test_dash_h_is_help_everywhere(workspace: Path) -> None:
    top = run_toolkit("-h", cwd=workspace)
    assert top.returncode == 0
    assert top.stdout.startswith("Usage: toolkit [OPTIONS] COMMAND")
    assert "-h, --help" in top.stdout
    for entry in COMMANDS:
        shown = run_toolkit(entry.name, "-h", cwd=workspace, env={"COLUMNS": "200"})
        assert shown.returncode == 0, entry.name
        assert shown.stdout.startswith(f"Usage: toolkit {entry.name} [OPTIONS]")
        assert entry.summary in " ".join(shown.stdout.split())


def test_version_is_the_packages(workspace: Path) -> None:
    declared = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]
    result = run_toolkit("--version", cwd=workspace)
    assert result.returncode == 0
    assert result.stdout == f"toolkit {declared}\n"


def test_help_lists_choices_and_has_no_int_range_metavar(workspace: Path) -> None:
    for entry in COMMANDS:
        shown = run_toolkit(entry.name, "--help", cwd=workspace, env={"COLUMNS": "200"})
        assert "range>" not in shown.stdout, entry.name
        assert "<float>" not in shown.stdout, entry.name
    build = run_toolkit("build", "--help", cwd=workspace, env={"COLUMNS": "200"}).stdout
    assert "--pull <always|missing|never>" in build
    assert "--isolation <process|hyperv>" in build
    assert "--jobs-per-host N" in build
    assert "--timeout SECONDS" in build
    bad = run_toolkit("build", "--pull", "sometimes", cwd=workspace)
    assert bad.returncode == 2
    assert "'sometimes' is not one of 'always', 'missing', 'never'" in bad.stderr


# -- render --check's diff, taken by git apply -------------------------------------------------


def git(ws: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@example.invalid", *args],
        cwd=ws,
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )


@pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")
@pytest.mark.parametrize("where", [".", "templates"], ids=["root", "subdirectory"])
def test_the_check_diff_applies_with_git_apply(workspace: Path, where: str) -> None:
    assert git(workspace, "init", "-q").returncode == 0
    assert git(workspace, "add", "-A").returncode == 0
    assert git(workspace, "commit", "-qm", "rendered").returncode == 0
    (workspace / D1809).write_text((workspace / D1809).read_text().replace("19.2.3", "19.2.4"))
    (workspace / D1803).unlink()
    stale = workspace / "dockerfiles/3.7/windows/windowsservercore-1809/Dockerfile"
    stale.parent.mkdir(parents=True)
    stale.write_text("FROM old")  # no final newline: the diff must say so, or git refuses it
    cwd = workspace / where
    rel = ".." if where != "." else "."
    result = run_toolkit(
        "render",
        "--check",
        "--versions",
        f"{rel}/versions.json",
        "--out",
        f"{rel}/dockerfiles",
        "--templates",
        f"{rel}/templates",
        cwd=cwd,
    )
    assert result.returncode == 1
    assert "\\ No newline at end of file" in result.stdout
    patch = workspace / "drift.patch"
    patch.write_text(result.stdout)
    # Paths are the repository's, wherever render ran: git apply at the root takes them.
    check = git(workspace, "apply", "--check", str(patch))
    assert check.returncode == 0, check.stderr
    assert git(workspace, "apply", str(patch)).returncode == 0
    assert run_toolkit("render", "--check", cwd=workspace).returncode == 0
    assert not stale.exists()


# -- lint: one stream, in order; the note about the installer checksum ----------------------------


def test_lint_errors_and_warnings_are_on_one_stream_in_file_order(workspace: Path) -> None:
    text = (workspace / D1809).read_text()
    (workspace / D1809).write_text(text.replace('CMD ["python"]', 'FROBNICATE x\nCMD ["python"]'))
    result = run_toolkit("lint", "--no-hadolint", cwd=workspace)
    assert result.returncode == 1
    findings = [line for line in result.stdout.splitlines() if line.startswith("dockerfiles/")]
    assert [f.split(": ", 1)[1].split()[0] for f in findings[:2]] == ["warning", "error"]
    assert findings[0].startswith(f"{D1809}:17:2: warning [sha256]")
    assert "error [dockerfile] unknown instruction FROBNICATE" in findings[1]
    assert result.stderr.startswith("error: 1 lint error(s) in ")
    assert len(result.stderr.splitlines()) == 1


def test_lint_explains_the_unverified_installer_of_the_2019_recipe(workspace: Path) -> None:
    result = run_toolkit("lint", "--no-hadolint", cwd=workspace)
    assert result.returncode == 0
    notes = [line for line in result.stdout.splitlines() if line.startswith("note: ")]
    assert notes == [
        "note: 3.8-rc has no checksums.windows.sha256 in versions.json, as the published 2019 "
        "recipe had none, so its installer download is not verified; add the sha256 of "
        "python-3.8.0rc1-amd64.exe there (or let toolkit bump fill it in when it updates the "
        "line) and run toolkit render"
    ]
    data = json.loads((workspace / "versions.json").read_text())
    data["3.8-rc"]["checksums"] = {"windows": {"sha256": "ab" * 32}}
    (workspace / "versions.json").write_text(json.dumps(data, indent=2) + "\n")
    assert run_toolkit("render", cwd=workspace).returncode == 0
    again = run_toolkit("lint", "--no-hadolint", cwd=workspace)
    assert "note:" not in again.stdout
    assert "0 warning(s)" in again.stdout


# -- durations of cancelled targets ---------------------------------------------------------------


def test_a_target_still_stopping_keeps_its_real_duration(tmp_path: Path) -> None:
    import threading

    from toolkit.builds import BuildWork
    from toolkit.cancel import Canceller
    from toolkit.driver import BuildJob, BuildSettings
    from toolkit.matrix import build_matrix
    from toolkit.progress import PlainReporter
    from toolkit.versions import load_versions

    build = build_matrix(load_versions(REPO / "versions.json"))[0]
    job = BuildJob(
        build=build, context=tmp_path / "none", host="h", client=type("C", (), {"api": None})
    )
    work = BuildWork(BuildSettings(logs=tmp_path), PlainReporter(io.StringIO()), None, [])
    work.run(job, Canceller(), threading.Event())  # fails at once: no context (no engine needed)
    time.sleep(0.3)
    result = work.still_running(job)
    assert result.duration >= 0.3
