"""``toolkit library``: the official-images library file, checked against the 2019 entries.

The Dockerfiles are rendered into a real git repository (the rendered folder is its root, as in
docker-library/python), committed, and GitCommit is compared with what git says.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from tests.conftest import FIXTURES, run_toolkit

MAINTAINERS = (
    "--maintainers",
    "Tianon Gravi <admwiggin@gmail.com> (@tianon)",
    "--maintainers",
    "Joseph Ferguson <yosifkit@gmail.com> (@yosifkit)",
)
GIT_ENV = {
    "GIT_AUTHOR_NAME": "t",
    "GIT_AUTHOR_EMAIL": "t@example.invalid",
    "GIT_COMMITTER_NAME": "t",
    "GIT_COMMITTER_EMAIL": "t@example.invalid",
    "GIT_CONFIG_GLOBAL": "/dev/null",
}


def git(cwd: Path, *args: str) -> str:
    import os

    done = subprocess.run(
        ["git", *args],
        cwd=cwd,
        env={**os.environ, **GIT_ENV},
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout.strip()


@pytest.fixture
def seed(workspace: Path) -> Path:
    """The workspace with only the 3.8-rc line, as the 2019 library file had it."""
    whole = json.loads((workspace / "versions.json").read_text())
    (workspace / "versions.json").write_text(json.dumps({"3.8-rc": whole["3.8-rc"]}, indent=2))
    return workspace


def _entries(text: str) -> list[str]:
    return text.rstrip("\n").split("\n\n")[1:]


def _render_repo(workspace: Path) -> Path:
    top = workspace / "dockerfiles"
    done = run_toolkit("render", cwd=workspace)
    assert done.returncode == 0, done.stderr
    git(top, "init", "-q")
    return top


def test_rc_line_matches_the_2019_file(seed: Path) -> None:
    workspace = seed
    top = _render_repo(workspace)
    git(top, "add", "-A")
    git(top, "commit", "-qm", "3.8-rc")
    commit = git(top, "rev-parse", "HEAD")
    done = run_toolkit("library", *MAINTAINERS, cwd=workspace)
    assert done.returncode == 0, done.stderr
    expected = (
        (FIXTURES / "library" / "python-3.8-rc-2019.txt").read_text().replace("{commit}", commit)
    )
    assert done.stdout == expected


def test_final_line_and_per_directory_commits(seed: Path) -> None:
    workspace = seed
    data = json.loads((workspace / "versions.json").read_text())
    data["3.7"] = {**data["3.8-rc"], "version": "3.7.4"}
    (workspace / "versions.json").write_text(json.dumps(data, indent=2))
    top = _render_repo(workspace)
    git(top, "add", "3.8-rc")
    git(top, "commit", "-qm", "3.8-rc")
    rc_commit = git(top, "rev-parse", "HEAD")
    git(top, "add", "3.7")
    git(top, "commit", "-qm", "3.7")
    final_commit = git(top, "rev-parse", "HEAD")
    assert rc_commit != final_commit
    done = run_toolkit(
        "library",
        *MAINTAINERS,
        "--git-repo",
        "https://github.com/docker-library/python.git",
        cwd=workspace,
    )
    assert done.returncode == 0, done.stderr
    rc = (
        (FIXTURES / "library" / "python-3.8-rc-2019.txt").read_text().replace("{commit}", rc_commit)
    )
    final = (
        (FIXTURES / "library" / "python-3.7-2019.txt").read_text().replace("{commit}", final_commit)
    )
    assert done.stdout.split("\n\n")[0] == rc.split("\n\n")[0]
    assert _entries(done.stdout) == _entries(rc) + _entries(final)
    selected = run_toolkit(
        "library", *MAINTAINERS, "3.7-*-1809", "--builder", "classic", cwd=workspace
    )
    assert selected.returncode == 0, selected.stderr
    (entry,) = _entries(selected.stdout)
    assert entry.splitlines()[-1] == "Builder: classic"
    assert f"GitCommit: {final_commit}" in entry.splitlines()


@pytest.mark.parametrize(
    ("case", "code", "text"),
    [
        ("uncommitted", 2, "no commit has touched it"),
        ("dirty", 2, "has uncommitted changes"),
        ("no-maintainers", 2, "needs its maintainers"),
        ("not-a-repository", 2, "git rev-parse --show-toplevel failed"),
        ("no-git", 9, "git is not installed"),
        ("not-rendered", 2, "run toolkit render"),
    ],
)
def test_library_errors(workspace: Path, case: str, code: int, text: str) -> None:
    args = list(MAINTAINERS)
    env: dict[str, str] = {"GIT_CEILING_DIRECTORIES": str(workspace.parent)}
    if case != "not-a-repository":
        top = _render_repo(workspace)
        (top / "README.md").write_text("images\n")
        git(top, "add", "README.md")
        git(top, "commit", "-qm", "readme")
        if case != "uncommitted":
            git(top, "add", "-A")
            git(top, "commit", "-qm", "all")
        if case == "dirty":
            path = top / "3.8-rc" / "windows" / "windowsservercore-1803" / "Dockerfile"
            path.write_text(path.read_text() + "\n# edited\n")
        if case == "not-rendered":
            (top / "3.8-rc" / "windows" / "windowsservercore-1803" / "Dockerfile").unlink()
    if case == "no-maintainers":
        args = []
    if case == "no-git":
        env["PATH"] = "/nonexistent"
    done = run_toolkit("library", *args, cwd=workspace, env=env)
    assert done.returncode == code, done.stderr
    (line,) = done.stderr.splitlines()
    assert line.startswith("error: ")
    assert text in line
    assert done.stdout == ""


def test_todays_lines_and_the_nanoserver_variant(workspace: Path) -> None:
    """A nanoserver entry needs Server Core too: its installer stage runs there."""
    top = _render_repo(workspace)
    git(top, "add", "-A")
    git(top, "commit", "-qm", "all")
    commit = git(top, "rev-parse", "HEAD")
    done = run_toolkit("library", *MAINTAINERS, "3.14-*-ltsc2025", cwd=workspace)
    assert done.returncode == 0, done.stderr
    core, nano = _entries(done.stdout)
    assert core.splitlines() == [
        "Tags: 3.14.7-windowsservercore-ltsc2025, 3.14-windowsservercore-ltsc2025, "
        "3-windowsservercore-ltsc2025, windowsservercore-ltsc2025",
        "SharedTags: 3.14.7-windowsservercore, 3.14-windowsservercore, 3-windowsservercore, "
        "windowsservercore, 3.14.7, 3.14, 3, latest",
        "Architectures: windows-amd64",
        f"GitCommit: {commit}",
        "Directory: 3.14/windows/windowsservercore-ltsc2025",
        "Constraints: windowsservercore-ltsc2025",
    ]
    assert nano.splitlines() == [
        "Tags: 3.14.7-nanoserver-ltsc2025, 3.14-nanoserver-ltsc2025, 3-nanoserver-ltsc2025, "
        "nanoserver-ltsc2025",
        "SharedTags: 3.14.7-nanoserver, 3.14-nanoserver, 3-nanoserver, nanoserver",
        "Architectures: windows-amd64",
        f"GitCommit: {commit}",
        "Directory: 3.14/windows/nanoserver-ltsc2025",
        "Constraints: nanoserver-ltsc2025, windowsservercore-ltsc2025",
    ]
