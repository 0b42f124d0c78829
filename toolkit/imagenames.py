"""Image repository names and tags: Docker's grammar (distribution/reference), checked once when
an option is read, so a bad ``--repo`` is a usage error (exit 2) before any target runs, not a
failure of every target at its engine.

``build``, ``verify`` (and the coming ``push`` and ``manifest``) take ``--repo NAME``: an
optional registry host (``registry.example.net``, ``localhost:5000``, ``[::1]:5000``) and a
path of lowercase components (``python``, ``library/python``). Tags are ``[A-Za-z0-9_]``
followed by up to 127 of ``[A-Za-z0-9_.-]``.
"""

from __future__ import annotations

import re

from toolkit.errors import ConfigError

# The one copy of Docker's grammar (distribution/reference/regexp.go); references.py uses it too.
PATH_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_DOMAIN_COMPONENT = r"[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?"
HOST = re.compile(
    rf"(?:{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*|\[[0-9A-Fa-f:.]+\])(?::[0-9]{{1,5}})?"
)
REPOSITORY_PATH = re.compile(rf"{PATH_COMPONENT}(?:/{PATH_COMPONENT})*")
TAG = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}")
_NAME = re.compile(rf"(?:{HOST.pattern}/)?{REPOSITORY_PATH.pattern}")
MAX_NAME = 255


def check_repository(name: str, *, where: str = "--repo") -> str:
    """``name`` if it is a valid repository name, else a ConfigError saying why."""
    example = "use e.g. python or registry.example.net:5000/python"
    if not name:
        raise ConfigError(f"{where}: the repository name is empty", hint=example)
    shown = repr(name) if len(name) <= 80 else repr(name[:77] + "...")
    if name != name.strip() or any(c.isspace() or ord(c) < 32 for c in name):
        raise ConfigError(f"{where} {shown}: a repository name has no spaces", hint=example)
    if "://" in name:
        raise ConfigError(f"{where} {shown}: a repository name has no scheme", hint=example)
    if "@" in name or (":" in name.rpartition("/")[2]):
        raise ConfigError(
            f"{where} {shown}: give the repository without a tag or digest",
            hint=f"the tags come from the matrix; {example}",
        )
    if len(name) > MAX_NAME:
        raise ConfigError(f"{where}: the repository name is longer than {MAX_NAME} characters")
    first, slash, _rest = name.partition("/")
    named_host = bool(slash) and ("." in first or ":" in first or first == "localhost")
    # Docker takes the first part for a registry host only when it has a . or a : or is
    # localhost; anything else is a path component, lowercase like the others ("Team/python").
    if not (_NAME.fullmatch(name) and (named_host or REPOSITORY_PATH.fullmatch(name))):
        raise ConfigError(
            f"{where} {shown} is not a repository name",
            hint="lowercase letters, digits and separators (. _ __ -) in /-separated parts, "
            f"after an optional registry host[:port]; {example}",
        )
    return name


def check_tag(tag: str, *, where: str) -> str:
    """``tag`` if Docker accepts it as a tag, else a ConfigError."""
    if not TAG.fullmatch(tag):
        raise ConfigError(
            f"{where}: {tag!r} is not a valid tag",
            hint="letters, digits, _ . - (128 at most), not starting with . or -",
        )
    return tag
