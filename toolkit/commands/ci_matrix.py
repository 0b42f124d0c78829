"""``toolkit ci-matrix``: the GitHub Actions strategy matrix, one job per Windows release."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from toolkit.commands import options
from toolkit.console import Console


class Format(StrEnum):
    json = "json"
    github_output = "github-output"


Runners = Annotated[
    Path | None,
    typer.Option(
        "--runners",
        envvar="TOOLKIT_RUNNERS",
        help='TOML file: release -> self-hosted runner labels (1809 = ["self-hosted", "windows", '
        '"1809"]), for releases without a GitHub-hosted runner.',
        show_default=False,
    ),
]
MatrixFormatOpt = Annotated[
    Format,
    typer.Option(
        "--format",
        help="json: the matrix, indented; github-output: one line matrix=<json> for "
        "$GITHUB_OUTPUT.",
    ),
]


def command(
    selectors: options.Selectors = None,
    versions: options.Versions = options.VERSIONS,
    runners: Runners = None,
    fmt: MatrixFormatOpt = Format.json,
) -> None:
    from toolkit.ci import format_matrix, load_runners, plan_matrix
    from toolkit.matrix import select_builds

    labels = load_runners(runners) if runners is not None else {}
    chosen = select_builds(versions, options.selectors(selectors)).chosen
    entries = plan_matrix(chosen, labels, runners_path=runners)
    Console.from_process().write(
        format_matrix(entries, "github-output" if fmt is Format.github_output else "json")
    )
