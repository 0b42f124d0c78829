"""``toolkit list``: the build identifiers of the matrix, or their records as JSON."""

from __future__ import annotations

from toolkit.commands import options
from toolkit.console import Console


def command(
    selectors: options.Selectors = None,
    versions: options.Versions = options.VERSIONS,
    as_json: options.Json = False,
) -> None:
    from toolkit.matrix import select_builds

    chosen = select_builds(versions, options.selectors(selectors)).chosen
    console = Console.from_process()
    if as_json:
        console.json([b.record() for b in chosen])
    else:
        for build in chosen:
            console.echo(build.id)
