"""``toolkit lint``: BuildKit parse, PowerShell syntax, hadolint and the sha256 policy."""

from __future__ import annotations

from typing import Annotated

import typer

from toolkit.commands import options
from toolkit.console import Console


def command(
    selectors: options.Selectors = None,
    versions: options.Versions = options.VERSIONS,
    out: options.Out = options.OUT,
    no_hadolint: Annotated[
        bool, typer.Option("--no-hadolint", help="Skip the hadolint check.")
    ] = False,
) -> object:
    from toolkit.lint import LintRequest, lint_matrix

    request = LintRequest(
        versions=versions,
        selectors=options.selectors(selectors),
        out=out,
        hadolint=not no_hadolint,
    )
    outcome = lint_matrix(request)
    console = Console.from_process()
    for finding in outcome.findings:  # errors and warnings on one stream, in file order
        console.echo(finding.format())
    for note in outcome.notes:
        console.echo(note)
    console.echo(
        f"{outcome.linted} Dockerfile(s) linted: {outcome.errors} error(s), "
        f"{outcome.warnings} warning(s)"
    )
    return outcome
