"""``toolkit render``: the Dockerfiles from the templates and versions.json, or ``--check``."""

from __future__ import annotations

from typing import Annotated

import typer

from toolkit.commands import options
from toolkit.console import Console
from toolkit.render import Change, RenderOutcome, RenderRequest, diff_root, render_matrix

VERBS = {Change.CHANGED: "updated", Change.MISSING: "created", Change.STALE: "removed"}


def command(
    selectors: options.Selectors = None,
    versions: options.Versions = options.VERSIONS,
    out: options.Out = options.OUT,
    templates: options.Templates = options.TEMPLATES,
    check: Annotated[
        bool,
        typer.Option("--check", help="Write nothing; print a diff of any drift and exit 1."),
    ] = False,
) -> RenderOutcome:
    request = RenderRequest(
        versions=versions,
        selectors=options.selectors(selectors),
        out=out,
        templates=templates,
        check=check,
    )
    outcome = render_matrix(request)
    show(Console.from_process(), outcome)
    return outcome


def show(console: Console, outcome: RenderOutcome) -> None:
    out = outcome.request.out
    drift = outcome.drift
    if outcome.request.check:
        root = diff_root(out)  # paths from the repository root: git apply takes the diff
        for state in drift:
            console.write(state.diff(root))
        if not drift:
            console.note(f"{len(outcome.states)} Dockerfile(s) up to date under {out}")
        return
    for state in drift:
        console.note(f"{VERBS[state.change]} {state.path}")
    console.note(f"{outcome.rendered} Dockerfile(s) rendered under {out}: {len(drift)} changed")
