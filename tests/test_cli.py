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


def test_top_level_help_lists_every_command_whole_and_imports_none_of_them(
    workspace: Path,
) -> None:
    """`toolkit --help` names every command with its whole summary (not cut at 45 characters,
    click's default) and imports no command module and none of their heavy libraries."""
    from toolkit.commands import COMMANDS

    lazy = run_toolkit("--help", cwd=workspace)
    assert lazy.returncode == 0
    listing = " ".join(lazy.stdout.split("Commands:", 1)[1].split())  # wrapped lines joined
    for entry in COMMANDS:
        assert f" {entry.name} {entry.summary}" in f" {listing}"
    probe = (
        "import sys\n"
        "from toolkit.cli import main\n"
        "try:\n"
        "    main(['--help'])\n"
        "except SystemExit:\n"
        "    pass\n"
        "heavy = ('docker', 'jinja2', 'requests', 'rich', 'winrm', 'tree_sitter')\n"
        "loaded = [m for m in sys.modules if m.startswith('toolkit.commands.')\n"
        "          or m.split('.')[0] in heavy]\n"
        "print(sorted(loaded), file=sys.stderr)\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", probe], cwd=workspace, capture_output=True, text=True, check=False
    )
    assert proc.stderr.strip() == "[]"


def test_every_command_runs_through_an_app_of_its_own(workspace: Path) -> None:
    """A run registers only the command it runs; its help carries the table's summary."""
    import typer.main

    from toolkit.cli import build_app
    from toolkit.commands import COMMANDS

    for entry in COMMANDS:
        group = typer.main.get_command(build_app(["--debug", entry.name, "--help"]))
        assert list(getattr(group, "commands", {})) == [entry.name]
        shown = run_toolkit(entry.name, "--help", cwd=workspace, env={"COLUMNS": "200"})
        assert shown.returncode == 0
        assert entry.summary in " ".join(shown.stdout.split())
    unknown = run_toolkit("lis", cwd=workspace)
    assert unknown.returncode == 2
    assert "No such command 'lis'. Did you mean 'list'?" in unknown.stderr
