"""The CLI's start-up stays light: the Docker SDK, pywinrm and HTTP clients load only on demand."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO, run_toolkit

HEAVY = {"docker", "winrm", "requests", "urllib3", "rich", "tree_sitter", "dockerfile"}

PROBE = """
import json, sys
from toolkit.cli import main
try:
    main(json.loads(sys.argv[1]))
except SystemExit:
    pass
print(json.dumps(sorted({m.split(".")[0] for m in sys.modules})), file=sys.stderr)
"""


def loaded_modules(args: list[str], cwd: Path) -> set[str]:
    proc = subprocess.run(
        [sys.executable, "-c", PROBE, json.dumps(args)],
        cwd=cwd,
        env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        check=False,
    )
    return set(json.loads(proc.stderr.strip().splitlines()[-1]))


@pytest.mark.parametrize(
    "args", [["--help"], ["list"], ["render", "--check"]], ids=["help", "list", "render"]
)
def test_commands_without_docker_do_not_import_heavy_libraries(
    args: list[str], workspace: Path
) -> None:
    loaded = loaded_modules(args, workspace)
    assert "toolkit" in loaded
    assert loaded & HEAVY == set()


def test_python_dash_m_and_help_list_every_command(workspace: Path) -> None:
    result = run_toolkit("--help", cwd=workspace)
    assert result.returncode == 0
    for command in ("list", "render", "lint"):
        assert command in result.stdout


def test_no_arguments_prints_usage_and_exits_2(workspace: Path) -> None:
    result = run_toolkit(cwd=workspace)
    assert result.returncode == 2
    assert "Usage:" in result.stdout + result.stderr


def test_versions_path_from_environment(workspace: Path) -> None:
    (workspace / "versions.json").rename(workspace / "data.json")
    assert run_toolkit("list", cwd=workspace).returncode == 2
    result = run_toolkit("list", cwd=workspace, env={"TOOLKIT_VERSIONS": "data.json"})
    assert result.returncode == 0
    assert result.stdout.splitlines()[0] == "3.15-rc-windowsservercore-ltsc2025"


def test_top_level_help_is_the_full_apps_help(workspace: Path) -> None:
    """The help-only app used for `toolkit --help` prints exactly what the full app prints."""
    from typer.testing import CliRunner

    from toolkit.cli import app

    full = CliRunner().invoke(app, ["--help"], prog_name="toolkit")
    assert full.exit_code == 0
    lazy = run_toolkit("--help", cwd=workspace)
    assert lazy.returncode == 0
    assert lazy.stdout == full.output


def test_every_command_runs_through_its_own_cut_down_app(workspace: Path) -> None:
    from toolkit.cli import _app_for, _command_name, app

    for info in app.registered_commands:
        name = _command_name(info)
        cut = _app_for(["--debug", name, "--help"])
        assert [_command_name(c) for c in cut.registered_commands] == [name]
    assert _app_for(["lis"]) is app
