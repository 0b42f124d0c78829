"""The official-images library file (``library/python`` in docker-library/official-images).

Format (2019, for Windows entries)::

    Maintainers: Name <email> (@handle),
                 Name <email> (@handle)
    GitRepo: https://github.com/docker-library/python.git

    Tags: 3.8.0rc1-windowsservercore-1809, 3.8-rc-windowsservercore-1809, rc-windowsservercore-1809
    SharedTags: 3.8.0rc1-windowsservercore, 3.8-rc-windowsservercore, rc-windowsservercore, 3.8.0rc1, 3.8-rc, rc
    Architectures: windows-amd64
    GitCommit: <the last commit that changed the directory>
    Directory: 3.8-rc/windows/windowsservercore-1809
    Constraints: windowsservercore-1809

One entry per build in matrix order, separated by one blank line. ``Directory`` is the build
context relative to the root of the git repository (the Dockerfiles' folder may sit below it);
``GitCommit`` comes from ``git log -1 -- <directory>``, so an uncommitted directory is an error.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from toolkit.errors import ConfigError, ToolMissingError
from toolkit.matrix import Build

ARCHITECTURE = "windows-amd64"
DEFAULT_GIT_REPO = "https://github.com/docker-library/python.git"
INDENT = " " * len("Maintainers: ")

Runner = Callable[..., "subprocess.CompletedProcess[str]"]


@dataclass(frozen=True, kw_only=True)
class LibraryEntry:
    tags: tuple[str, ...]
    shared_tags: tuple[str, ...]
    git_commit: str
    directory: str
    constraints: tuple[str, ...]
    builder: str | None = None

    def text(self) -> str:
        lines = [f"Tags: {', '.join(self.tags)}"]
        if self.shared_tags:
            lines.append(f"SharedTags: {', '.join(self.shared_tags)}")
        lines += [
            f"Architectures: {ARCHITECTURE}",
            f"GitCommit: {self.git_commit}",
            f"Directory: {self.directory}",
        ]
        if self.constraints:
            lines.append(f"Constraints: {', '.join(self.constraints)}")
        if self.builder:
            lines.append(f"Builder: {self.builder}")
        return "\n".join(lines)


def constraints(build: Build) -> tuple[str, ...]:
    """The builder must have every image the Dockerfile uses: ``windowsservercore-<release>``;
    for a nanoserver build ``nanoserver-<release>, windowsservercore-<release>`` (its installer
    stage runs on Server Core), in the order the official library writes them."""
    own = f"{build.variant.flavor}-{build.release.key}"
    installer = f"windowsservercore-{build.release.key}"
    return (own,) if own == installer else (own, installer)


def library_entries(
    builds: Sequence[Build],
    directories: Mapping[str, str],
    commits: Mapping[str, str],
    *,
    builder: str | None = None,
) -> list[LibraryEntry]:
    """One entry per build; ``directories`` maps build id -> repository path, ``commits``
    maps that path -> commit."""
    entries = []
    for build in builds:
        directory = directories[build.id]
        entries.append(
            LibraryEntry(
                tags=build.tags,
                shared_tags=build.shared_tags,
                git_commit=commits[directory],
                directory=directory,
                constraints=constraints(build),
                builder=builder,
            )
        )
    return entries


def render_library(
    entries: Sequence[LibraryEntry], *, maintainers: Sequence[str], git_repo: str
) -> str:
    if not maintainers:
        raise ConfigError(
            "the library file needs at least one maintainer",
            hint='pass --maintainers "Name <email> (@handle)"',
        )
    header = "Maintainers: " + f",\n{INDENT}".join(m.strip() for m in maintainers)
    blocks = [f"{header}\nGitRepo: {git_repo}", *(e.text() for e in entries)]
    return "\n\n".join(blocks) + "\n"


def _git(args: Sequence[str], cwd: Path, run: Runner) -> str:
    try:
        done = run(["git", *args], cwd=cwd, capture_output=True, text=True, check=False)
    except FileNotFoundError:
        raise ToolMissingError(
            "git is not installed; toolkit library reads GitCommit from git",
            hint="install git (Debian: apt-get install git)",
        ) from None
    if done.returncode != 0:
        first = (done.stderr.strip().splitlines() or [""])[0]
        raise ConfigError(f"git {' '.join(args)} failed in {cwd}: {first}")
    return str(done.stdout).strip()


def repository_paths(
    out: Path, builds: Sequence[Build], run: Runner = subprocess.run
) -> tuple[Path, dict[str, str]]:
    """(git top level, build id -> build context relative to it, with ``/``)."""
    if not out.is_dir():
        raise ConfigError(f"{out}: no such directory", hint="run toolkit render first")
    top = Path(_git(["rev-parse", "--show-toplevel"], out, run)).resolve()
    paths: dict[str, str] = {}
    for build in builds:
        context = (out / build.directory).resolve()
        if not (context / "Dockerfile").is_file():
            raise ConfigError(
                f"{context / 'Dockerfile'}: missing", hint="run toolkit render, then commit"
            )
        paths[build.id] = context.relative_to(top).as_posix()
    return top, paths


def last_commits(
    top: Path, directories: Sequence[str], run: Runner = subprocess.run
) -> dict[str, str]:
    """The last commit that changed each directory (``git log -1 --format=%H -- DIR``)."""
    commits: dict[str, str] = {}
    for directory in dict.fromkeys(directories):
        commit = _git(["log", "-1", "--format=%H", "--", directory], top, run)
        if not commit:
            raise ConfigError(
                f"{top / directory}: no commit has touched it",
                hint="commit the rendered Dockerfiles first (GitCommit must name a commit)",
            )
        dirty = _git(["status", "--porcelain", "--", directory], top, run)
        if dirty:
            raise ConfigError(
                f"{top / directory}: has uncommitted changes; GitCommit would not build what is there",
                hint="commit or revert them first",
            )
        commits[directory] = commit
    return commits
