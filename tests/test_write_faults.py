"""render and bump under real faults: all or nothing, symbolic links, special files.

Items 1 and 2 of issue 13: with one Dockerfile made immutable (``chattr +i``) a render or bump
must leave versions.json and dockerfiles/ exactly as they were and say so; render must neither
write, remove nor print anything through a symbolic link below dockerfiles/; a FIFO or a
device given as an input must end the command with its one-line error, not hang it.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.bump_upstream import PythonOrg, Upstream, publish_github, publish_pypi, running
from tests.conftest import run_toolkit
from tests.faults import immutable, leftovers, snapshot

__all__ = ["immutable"]

Immutable = Callable[[Path], Path]
LINE = Path("dockerfiles/3.8-rc/windows")
D1809 = LINE / "windowsservercore-1809/Dockerfile"
D2016 = LINE / "windowsservercore-ltsc2016/Dockerfile"
FAST = {"TOOLKIT_HTTP_TIMEOUT": "2", "TOOLKIT_HTTP_RETRIES": "0"}


def set_pip(ws: Path, version: str) -> None:
    data = json.loads((ws / "versions.json").read_text())
    data["3.8-rc"]["pip"]["version"] = version
    (ws / "versions.json").write_text(json.dumps(data, indent=2) + "\n")


def test_render_with_an_immutable_dockerfile_changes_nothing(
    workspace: Path, immutable: Immutable
) -> None:
    set_pip(workspace, "19.2.4")  # every Dockerfile changes
    immutable(workspace / D2016)  # the last one written
    before = snapshot(workspace)
    result = run_toolkit("render", cwd=workspace)
    assert result.returncode == 5, result.stderr
    [error] = result.stderr.splitlines()
    assert error.startswith(f"error: {D2016}: cannot replace: Operation not permitted;")
    assert "nothing was changed (2 file(s) already changed were restored)" in error
    assert snapshot(workspace) == before
    assert leftovers(workspace) == []


def test_a_stale_file_that_cannot_be_removed_undoes_the_whole_render(
    workspace: Path, immutable: Immutable
) -> None:
    set_pip(workspace, "19.2.4")
    stale = workspace / "dockerfiles/3.7/windows/windowsservercore-1809/Dockerfile"
    stale.parent.mkdir(parents=True)
    stale.write_text("FROM old\n")
    immutable(stale)
    before = snapshot(workspace)
    result = run_toolkit("render", cwd=workspace)
    assert result.returncode == 5
    assert "3.7/windows/windowsservercore-1809/Dockerfile: cannot remove" in result.stderr
    assert "(3 file(s) already changed were restored)" in result.stderr
    assert snapshot(workspace) == before


@pytest.fixture
def upstream() -> Iterator[Upstream]:
    with running(Upstream()) as server:
        PythonOrg().release("3.8.0rc1").release("3.8.0rc2").publish(server)
        publish_pypi(server)
        publish_github(server)
        yield server


def test_bump_with_an_immutable_dockerfile_leaves_versions_json_as_it_was(
    workspace: Path, upstream: Upstream, immutable: Immutable
) -> None:
    immutable(workspace / D2016)
    before = snapshot(workspace)
    result = run_toolkit("bump", cwd=workspace, env={**upstream.env(), **FAST})
    assert result.returncode == 5, result.stdout + result.stderr
    assert f"{D2016}: cannot replace: Operation not permitted" in result.stderr
    assert "3 file(s) already changed were restored" in result.stderr  # versions.json + 2
    assert snapshot(workspace) == before
    assert "Traceback" not in result.stderr


def test_bump_writes_through_a_symlinked_versions_json(workspace: Path, upstream: Upstream) -> None:
    (workspace / "data").mkdir()
    (workspace / "versions.json").rename(workspace / "data/versions.json")
    (workspace / "versions.json").symlink_to("data/versions.json")
    result = run_toolkit("bump", cwd=workspace, env={**upstream.env(), **FAST})
    assert result.returncode == 0, result.stderr
    assert (workspace / "versions.json").is_symlink()
    assert os.readlink(workspace / "versions.json") == "data/versions.json"
    assert json.loads((workspace / "data/versions.json").read_text())["3.8-rc"]["version"] == (
        "3.8.0rc2"
    )


# -- symbolic links below the output tree --------------------------------------------------------


def outside_tree(tmp_path: Path) -> Path:
    outside = tmp_path.parent / f"{tmp_path.name}-outside"
    (outside / "windows/windowsservercore-1809").mkdir(parents=True)
    (outside / "windows/windowsservercore-1809/Dockerfile").write_text("SECRET outside\n")
    return outside


@pytest.mark.parametrize("check", [False, True], ids=["render", "render --check"])
def test_a_directory_link_out_of_the_tree_is_refused(workspace: Path, check: bool) -> None:
    """dockerfiles/3.7 -> a directory elsewhere: render must not delete its "stale" Dockerfile,
    and --check must not print it."""
    outside = outside_tree(workspace)
    (workspace / "dockerfiles/3.7").symlink_to(outside, target_is_directory=True)
    set_pip(workspace, "19.2.4")
    before, before_outside = snapshot(workspace), snapshot(outside)
    result = run_toolkit("render", *(["--check"] if check else []), cwd=workspace)
    assert result.returncode == 5, result.stdout + result.stderr
    assert "SECRET" not in result.stdout + result.stderr
    assert str(outside) not in result.stdout + result.stderr
    assert (
        "error: dockerfiles/3.7: a symbolic link (out of dockerfiles); refused, nothing written"
        in result.stderr
    )
    assert snapshot(workspace) == before
    assert snapshot(outside) == before_outside


def test_a_dockerfile_link_out_of_the_tree_is_neither_printed_nor_replaced(
    workspace: Path,
) -> None:
    outside = outside_tree(workspace) / "windows/windowsservercore-1809/Dockerfile"
    (workspace / D1809).unlink()
    (workspace / D1809).symlink_to(outside)
    for args in (["render", "--check"], ["render"], ["lint", "--no-hadolint"]):
        result = run_toolkit(*args, cwd=workspace)
        assert "SECRET" not in result.stdout + result.stderr, args
        assert result.returncode == 5, args
        assert f"{D1809}: a symbolic link (out of dockerfiles); refused" in result.stderr
    assert (workspace / D1809).is_symlink()
    assert outside.read_text() == "SECRET outside\n"


def test_a_link_within_the_tree_is_refused_too(workspace: Path) -> None:
    """dockerfiles/3.9 -> 3.8-rc: rendering would delete the real 3.8-rc files as 3.9's stale."""
    (workspace / "dockerfiles/3.9").symlink_to("3.8-rc", target_is_directory=True)
    before = snapshot(workspace)
    result = run_toolkit("render", cwd=workspace)
    assert result.returncode == 5
    assert "dockerfiles/3.9: a symbolic link (within dockerfiles)" in result.stderr
    assert snapshot(workspace) == before


def test_the_output_directory_itself_may_be_a_link(workspace: Path) -> None:
    (workspace / "dockerfiles").rename(workspace / "real-out")
    (workspace / "dockerfiles").symlink_to("real-out", target_is_directory=True)
    set_pip(workspace, "19.2.4")
    result = run_toolkit("render", cwd=workspace)
    assert result.returncode == 0, result.stderr
    assert (
        "19.2.4"
        in (workspace / "real-out/3.8-rc/windows/windowsservercore-1809/Dockerfile").read_text()
    )


# -- special files as inputs -------------------------------------------------------------------


def fifo(path: Path) -> None:
    path.unlink(missing_ok=True)
    os.mkfifo(path)


@pytest.mark.parametrize(
    ("setup", "args", "code", "expect"),
    [
        (
            lambda ws: fifo(ws / "versions.json"),
            ["list"],
            2,
            "versions.json: cannot read: not a regular file: it is a FIFO",
        ),
        (
            lambda ws: None,
            ["list", "--versions", "/dev/zero"],
            2,
            "/dev/zero: cannot read: not a regular file: it is a character device",
        ),
        (
            lambda ws: fifo(ws / "templates/windowsservercore.Dockerfile.j2"),
            ["render"],
            4,
            "cannot read the template: not a regular file: it is a FIFO",
        ),
        (
            lambda ws: fifo(ws / "hosts.toml"),
            ["hosts", "--no-preflight"],
            2,
            "hosts file hosts.toml cannot be read: not a regular file: it is a FIFO",
        ),
        (
            lambda ws: fifo(ws / D1809),
            ["render", "--check"],
            5,
            f"{D1809}: cannot read: not a regular file: it is a FIFO",
        ),
        (
            lambda ws: fifo(ws / D1809),
            ["lint", "--no-hadolint"],
            1,
            f"{D1809}:1:1: error [dockerfile] cannot read: not a regular file: it is a FIFO",
        ),
    ],
    ids=[
        "versions-fifo",
        "versions-device",
        "template-fifo",
        "hosts-fifo",
        "dockerfile-fifo",
        "lint-fifo",
    ],
)
def test_special_files_as_inputs_end_with_one_line_not_a_hang(
    workspace: Path, setup: Callable[[Path], None], args: list[str], code: int, expect: str
) -> None:
    setup(workspace)
    result = run_toolkit(*args, cwd=workspace, timeout=60)
    assert result.returncode == code, result.stdout + result.stderr
    assert expect in result.stdout + result.stderr
    assert "Traceback" not in result.stderr
