"""``toolkit ci-matrix``: the GitHub Actions strategy matrix, one entry per Windows release."""

from __future__ import annotations

import sys
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer


class Format(StrEnum):
    json = "json"
    github_output = "github-output"


def ci_matrix(
    selectors: Annotated[
        list[str] | None,
        typer.Argument(
            help="fnmatch patterns over build identifiers, with braces: 3.8-rc-*-1809, 3.{7,8}-*",
            show_default=False,
        ),
    ] = None,
    versions: Annotated[
        Path,
        typer.Option(
            "--versions", envvar="TOOLKIT_VERSIONS", help="The data file.", show_default=True
        ),
    ] = Path("versions.json"),
    runners: Annotated[
        Path | None,
        typer.Option(
            "--runners",
            envvar="TOOLKIT_RUNNERS",
            help='TOML file: release -> self-hosted runner labels (1809 = ["self-hosted", '
            '"windows", "1809"]), for releases without a GitHub-hosted runner.',
            show_default=False,
        ),
    ] = None,
    fmt: Annotated[
        Format,
        typer.Option(
            "--format",
            help="json: the matrix, indented; github-output: one line matrix=<json> for "
            "$GITHUB_OUTPUT.",
        ),
    ] = Format.json,
) -> int:
    """Print the GitHub Actions matrix: one job per Windows release of the selected builds."""
    from toolkit.ci import format_matrix, load_runners, plan_matrix
    from toolkit.matrix import build_matrix, select
    from toolkit.versions import load_versions

    labels = load_runners(runners) if runners is not None else {}
    chosen = select(build_matrix(load_versions(versions)), selectors or [])
    entries = plan_matrix(chosen, labels, runners_path=runners)
    sys.stdout.write(
        format_matrix(entries, "github-output" if fmt is Format.github_output else "json")
    )
    return 0
