"""``toolkit library``: the official-images library file for the selected builds."""

from __future__ import annotations

from typing import Annotated

import typer

from toolkit.commands import options
from toolkit.console import Console


def command(
    selectors: options.Selectors = None,
    versions: options.Versions = options.VERSIONS,
    out: options.Out = options.OUT,
    git_repo: Annotated[
        str, typer.Option("--git-repo", envvar="TOOLKIT_LIBRARY_GIT_REPO", help="The GitRepo line.")
    ] = "https://github.com/docker-library/python.git",
    maintainers: Annotated[
        list[str] | None,
        typer.Option(
            "--maintainers",
            help='"Name <email> (@handle)"; repeatable, in order.',
            show_default=False,
        ),
    ] = None,
    builder: Annotated[
        str | None,
        typer.Option(
            "--builder", help="Add 'Builder: NAME' to each entry (classic).", show_default=False
        ),
    ] = None,
) -> None:
    from toolkit.errors import ConfigError
    from toolkit.library import last_commits, library_entries, render_library, repository_paths
    from toolkit.matrix import select_builds

    chosen = select_builds(versions, options.selectors(selectors)).chosen
    if not maintainers:
        raise ConfigError(
            "the library file needs its maintainers",
            hint='pass --maintainers "Name <email> (@handle)" (repeatable)',
        )
    top, directories = repository_paths(out, chosen)
    commits = last_commits(top, list(directories.values()))
    entries = library_entries(chosen, directories, commits, builder=builder)
    Console.from_process().write(
        render_library(entries, maintainers=maintainers, git_repo=git_repo)
    )
