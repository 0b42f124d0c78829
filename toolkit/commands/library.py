"""``toolkit library``: the official-images library file for the selected builds."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def library(
    selectors: Annotated[
        list[str] | None,
        typer.Argument(help="fnmatch patterns over build identifiers.", show_default=False),
    ] = None,
    versions: Annotated[
        Path, typer.Option("--versions", envvar="TOOLKIT_VERSIONS", help="The data file.")
    ] = Path("versions.json"),
    out: Annotated[
        Path, typer.Option("--out", help="Where the Dockerfiles live (inside a git repository).")
    ] = Path("dockerfiles"),
    git_repo: Annotated[
        str, typer.Option("--git-repo", envvar="TOOLKIT_LIBRARY_GIT_REPO", help="GitRepo line.")
    ] = "https://github.com/docker-library/python.git",
    maintainers: Annotated[
        list[str] | None,
        typer.Option(
            "--maintainers",
            envvar="TOOLKIT_LIBRARY_MAINTAINERS",
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
) -> int:
    """Print the official-images library file (Tags, SharedTags, GitCommit, ...) for the builds."""
    from toolkit.library import last_commits, library_entries, render_library, repository_paths
    from toolkit.matrix import build_matrix, select
    from toolkit.versions import load_versions

    every = build_matrix(load_versions(versions))
    chosen = select(every, selectors or [])
    if not maintainers:
        from toolkit.errors import ConfigError

        raise ConfigError(
            "the library file needs its maintainers",
            hint='pass --maintainers "Name <email> (@handle)" (repeatable)',
        )
    top, directories = repository_paths(out, chosen)
    commits = last_commits(top, list(directories.values()))
    entries = library_entries(chosen, directories, commits, builder=builder)
    typer.echo(render_library(entries, maintainers=maintainers, git_repo=git_repo), nl=False)
    return 0
