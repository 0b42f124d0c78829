"""The build matrix: Python lines x Windows variants, build identifiers, selectors and tags.

Tags follow the official-images library convention: a line's aliases are its full version and
its name, plus ``rc`` for the newest pre-release line, the major (``3``) for the newest final line
of a major, and ``latest`` for the newest final line of the newest major. Tags carry the variant
suffix (``-windowsservercore-1809``, ``-nanoserver-ltsc2025``); shared tags drop the release
(``-windowsservercore``, ``-nanoserver``). Server Core's shared tags also include the bare aliases
(``3.14``, ``latest``), as the official images do; Nano Server's do not, since a manifest list
cannot offer two images for the same Windows build and the bare tags belong to Server Core.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from toolkit.errors import ConfigError, NothingSelectedError
from toolkit.versions import PythonLine, Variant, VersionsFile
from toolkit.windows import WindowsRelease


@dataclass(frozen=True, kw_only=True)
class Build:
    """One image to build: ``3.8-rc-windowsservercore-1809``."""

    id: str
    line: PythonLine
    variant: Variant
    tags: tuple[str, ...]
    shared_tags: tuple[str, ...]

    @property
    def release(self) -> WindowsRelease:
        return self.variant.release

    @property
    def base_image(self) -> str:
        """The image the built image ends on (Nano Server for a nanoserver variant)."""
        return self.variant.base_image

    @property
    def directory(self) -> str:
        """The build context, relative to the Dockerfiles root."""
        return f"{self.line.name}/{self.variant.name}"

    def record(self) -> dict[str, Any]:
        """The JSON record printed by ``toolkit list --json``."""
        return {
            "id": self.id,
            "line": self.line.name,
            "version": self.line.version,
            "release": self.release.key,
            "windows_build": self.release.build,
            "flavor": self.variant.flavor,
            "base_image": self.base_image,
            "base_images": list(self.variant.base_images),
            "recipe": self.line.recipe,
            "directory": self.directory,
            "tags": list(self.tags),
            "shared_tags": list(self.shared_tags),
        }


# The flavor whose shared tags include the bare aliases (``3.14``, ``3``, ``latest``).
BARE_TAGS_FLAVOR = "windowsservercore"


def line_aliases(line: PythonLine, lines: Sequence[PythonLine]) -> list[str]:
    """The version aliases of ``line`` given all the lines of the file."""
    aliases = [line.version, line.name]
    if line.is_rc:
        newest_rc = max((x.major_minor for x in lines if x.is_rc), default=None)
        if line.major_minor == newest_rc:
            aliases.append("rc")
        return aliases
    finals = [x.major_minor for x in lines if not x.is_rc]
    major = line.major_minor[0]
    if line.major_minor == max(mm for mm in finals if mm[0] == major):
        aliases.append(str(major))
        if major == max(mm[0] for mm in finals):
            aliases.append("latest")
    return aliases


def _suffixed(alias: str, suffix: str) -> str:
    return suffix if alias == "latest" else f"{alias}-{suffix}"


def build_matrix(versions: VersionsFile) -> list[Build]:
    """Every build, in file order: lines as listed, then their variants as listed."""
    builds = []
    for line in versions.lines:
        aliases = line_aliases(line, versions.lines)
        for variant in line.variants:
            builds.append(
                Build(
                    id=f"{line.name}-{variant.suffix}",
                    line=line,
                    variant=variant,
                    tags=tuple(_suffixed(a, variant.suffix) for a in aliases),
                    shared_tags=(
                        *(_suffixed(a, variant.flavor) for a in aliases),
                        *(aliases if variant.flavor == BARE_TAGS_FLAVOR else ()),
                    ),
                )
            )
    return builds


SELECTOR_LIMIT = 1000
"""Patterns one selector may expand to (wcmatch's default limit): ``{1..100000}`` is refused."""


@cache
def _matcher(selector: str) -> Any:
    """The compiled selector (wcmatch, imported only when a selector is given), once per run:
    compiling ``{1..999}`` takes a fifth of a second, matching it a millisecond."""
    from wcmatch import fnmatch

    try:
        return fnmatch.compile([selector], flags=fnmatch.BRACE, limit=SELECTOR_LIMIT)
    except Exception as exc:  # PatternLimitException (of a private module), or its like
        raise ConfigError(
            f"selector {_shown(selector)} cannot be used: {exc}",
            hint=f"a selector may expand to at most {SELECTOR_LIMIT} patterns; "
            "list fewer, or use * and ?",
        ) from None


def matches(build_id: str, selectors: Iterable[str]) -> bool:
    """fnmatch with brace expansion (wcmatch): does any selector match ``build_id``?"""
    return any(_matcher(selector).match(build_id) for selector in selectors)


def _shown(text: str) -> str:
    return repr(text) if len(text) <= 60 else repr(text[:60]) + f"... ({len(text)} chars)"


def select(builds: Sequence[Build], selectors: Sequence[str]) -> list[Build]:
    """The builds matching any selector (all when none given), in matrix order.

    Selectors are fnmatch patterns with brace expansion (``3.{7,8}-*``). A selector that matches
    nothing is an error, so a typo never passes as an empty run.
    """
    if not selectors:
        return list(builds)
    for selector in selectors:
        if not any(matches(b.id, [selector]) for b in builds):
            known = ", ".join(b.id for b in builds[:6]) + (", ..." if len(builds) > 6 else "")
            raise NothingSelectedError(
                f"selector {_shown(selector)} matches no build", hint=f"builds are: {known}"
            )
    return [b for b in builds if matches(b.id, selectors)]


@dataclass(frozen=True, kw_only=True)
class Selection:
    """versions.json loaded, its whole matrix, and the builds the selectors chose."""

    versions: VersionsFile
    every: tuple[Build, ...]
    chosen: tuple[Build, ...]
    selectors: tuple[str, ...]


def select_builds(path: Path, selectors: Sequence[str]) -> Selection:
    """Load ``path`` and select; ConfigError / NothingSelectedError as the user must fix."""
    from toolkit.versions import load_versions

    data = load_versions(path)
    every = build_matrix(data)
    return Selection(
        versions=data,
        every=tuple(every),
        chosen=tuple(select(every, selectors)),
        selectors=tuple(selectors),
    )
