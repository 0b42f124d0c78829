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
    from toolkit.inspection import WinRMAccess

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


def _number_of_seconds(text: str, *, low: float, low_ok: bool) -> float:
    """``text`` as seconds: finite, above ``low`` (or equal when ``low_ok``), at most a month
    (toolkit.cancel.MAX_TIMEOUT). inf or 1e300 would overflow the socket and thread timeouts
    they end up in (an OverflowError traceback), nan would pass every comparison."""
    from toolkit.cancel import MAX_TIMEOUT

    try:
        value = float(text)
    except ValueError:
        value = math.nan
    above = value >= low if low_ok else value > low
    if not (math.isfinite(value) and above and value <= MAX_TIMEOUT):
        least = f"{low:g} or more" if low_ok else f"more than {low:g}"
        raise typer.BadParameter(
            f"{str(text)[:40]!r} is not a number of seconds: use {least}, "
            f"at most {MAX_TIMEOUT:.0f} (30 days)"
        )
    return value


def seconds(text: str) -> float:
    """A positive, finite number of seconds, at most 30 days (option parser)."""
    return _number_of_seconds(text, low=0, low_ok=False)


def seconds_from_one(text: str) -> float:
    """Like :func:`seconds`, at least 1 (network timeouts of the registry clients)."""
    return _number_of_seconds(text, low=1, low_ok=True)


def seconds_or_zero(text: str) -> float:
    """Like :func:`seconds`, also 0 (a backoff, a retry time)."""
    return _number_of_seconds(text, low=0, low_ok=True)


WinRMTimeout = Annotated[
    float,
    typer.Option(
        "--winrm-timeout",
        parser=seconds,
        metavar="SECONDS",
        help="Deadline of each host's WinRM check, in seconds.",
        show_default=True,
    ),
]
WINRM_TIMEOUT = 60.0


PREFLIGHTS = ("winrm",)


def preflights(given: list[str] | None) -> set[str]:
    """The ``--preflight`` kinds asked for; ConfigError for an unknown one."""
    from toolkit.errors import ConfigError
    from toolkit.suggest import did_you_mean

    for kind in given or ():
        if kind not in PREFLIGHTS:
            raise ConfigError(
                f"--preflight {kind!r} is not a preflight", hint=did_you_mean(kind, PREFLIGHTS)
            )
    return set(given or ())


def winrm_access() -> WinRMAccess:
    """The session opener and, when a person can answer, the password prompt."""
    import os
    import sys

    from toolkit.inspection import WinRMAccess
    from toolkit.winrm import open_session
    from toolkit.winrm_config import terminal_prompt

    prompt = terminal_prompt(os.environ, stdin_isatty=sys.stdin.isatty())
    return WinRMAccess(open_session=open_session, prompt=prompt)


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


# --- registries (push, manifest) ------------------------------------------------------------

RegistryRepo = Annotated[
    str,
    typer.Option(
        "--repo",
        envvar="TOOLKIT_REGISTRY_REPO",
        help="Destination REGISTRY/NAME (https:// is implied; http:// only for loopback).",
        show_default=False,
    ),
]
RegistryCA = Annotated[
    Path | None,
    typer.Option(
        "--registry-ca",
        envvar="TOOLKIT_REGISTRY_CA",
        help="CA certificate (PEM) of the registry's TLS certificate (default: system store).",
        show_default=False,
    ),
]
RETRIES = 3
Retries = Annotated[
    int,
    typer.Option(
        "--retries",
        envvar="TOOLKIT_REGISTRY_RETRIES",
        min=0,
        metavar="N",
        max=10,
        help="Retries of a registry request after a 5xx answer or a connection error (never 4xx).",
    ),
]
REGISTRY_TIMEOUT = 30.0
RegistryTimeout = Annotated[
    float,
    typer.Option(
        "--registry-timeout",
        envvar="TOOLKIT_REGISTRY_TIMEOUT",
        parser=seconds_from_one,
        metavar="SECONDS",
        help="Seconds to connect to the registry, and between bytes read.",
    ),
]
