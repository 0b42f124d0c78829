"""Options shared by several commands, declared once: name, help, environment variable, default.

Typer needs each option in the signature of every command that takes it; these aliases and
defaults keep what they mean in one place. The host options come together as one
``HostSelection`` through :func:`host_selection`.
"""

from __future__ import annotations

import math
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    from toolkit.hosts import HostSelection

VERSIONS = Path("versions.json")
OUT = Path("dockerfiles")
TEMPLATES = Path("templates")
REPO = "python"

Versions = Annotated[
    Path,
    typer.Option("--versions", envvar="TOOLKIT_VERSIONS", help="The data file.", show_default=True),
]
Selectors = Annotated[
    list[str] | None,
    typer.Argument(
        help="fnmatch patterns over build identifiers, with braces: 3.8-rc-*-1809, 3.{7,8}-*",
        show_default=False,
    ),
]
Out = Annotated[Path, typer.Option("--out", help="Where the Dockerfiles live.", show_default=True)]
Templates = Annotated[
    Path, typer.Option("--templates", help="The Jinja2 templates.", show_default=True)
]
Json = Annotated[bool, typer.Option("--json", help="Print JSON instead of text.")]
Repo = Annotated[
    str, typer.Option("--repo", help="Repository name the tags go under.", show_default=True)
]
Hosts = Annotated[
    Path | None,
    typer.Option(
        "--hosts",
        envvar="TOOLKIT_HOSTS",
        help="Release -> Docker host map (default: ./hosts.toml when it exists).",
        show_default=False,
    ),
]
HostOverrides = Annotated[
    list[str] | None,
    typer.Option(
        "--host",
        help="RELEASE=URL (tcp://, npipe://, unix://, ssh:// or a docker context); repeatable.",
        show_default=False,
    ),
]


class IsolationMode(StrEnum):
    """``--isolation``: the choices are listed in the help (toolkit.preflight checks them)."""

    process = "process"
    hyperv = "hyperv"


Isolation = Annotated[
    IsolationMode | None,
    typer.Option(
        "--isolation",
        help="Force process or hyperv isolation (default: per host and image).",
        show_default=False,
    ),
]
NoPreflight = Annotated[
    bool,
    typer.Option(
        "--no-preflight",
        help="Do not contact or check the hosts first (engines the check does not know).",
    ),
]


def _number_of_seconds(text: str, *, zero: bool) -> float:
    """``text`` as seconds: finite, more than 0 (or 0 when ``zero``), at most a month
    (toolkit.cancel.MAX_TIMEOUT). inf or 1e300 would overflow the socket and thread timeouts
    they end up in (an OverflowError traceback), nan would pass every comparison."""
    from toolkit.cancel import MAX_TIMEOUT

    try:
        value = float(text)
    except ValueError:
        value = math.nan
    low = "0 or more" if zero else "more than 0"
    if not (math.isfinite(value) and (value >= 0 if zero else value > 0) and value <= MAX_TIMEOUT):
        raise typer.BadParameter(
            f"{str(text)[:40]!r} is not a number of seconds: use {low}, "
            f"at most {MAX_TIMEOUT:.0f} (30 days)"
        )
    return value


def seconds(text: str) -> float:
    """A positive, finite number of seconds, at most 30 days (option parser)."""
    return _number_of_seconds(text, zero=False)


def seconds_or_zero(text: str) -> float:
    """Like :func:`seconds`, also 0 (a backoff, a retry time)."""
    return _number_of_seconds(text, zero=True)


def selectors(given: list[str] | None) -> tuple[str, ...]:
    return tuple(given or ())


def host_selection(
    hosts: Path | None,
    overrides: list[str] | None,
    isolation: IsolationMode | str | None,
    no_preflight: bool,
) -> HostSelection:
    from toolkit.hosts import HostSelection

    return HostSelection(
        path=hosts,
        overrides=tuple(overrides or ()),
        isolation=isolation.value if isinstance(isolation, IsolationMode) else isolation,
        preflight=not no_preflight,
    )
