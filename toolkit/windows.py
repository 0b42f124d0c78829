"""The table of Windows releases and their base images (data in resources/windows-releases.toml).

Each release has a Server Core image; 1809 and later also a Nano Server image. The flavor of a
variant (``windowsservercore``, ``nanoserver``) picks which one a build ends on.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from toolkit.suggest import did_you_mean


@dataclass(frozen=True, kw_only=True)
class WindowsRelease:
    """One Windows release: ``key`` is the tag used in variant names (``1809``).

    ``base_image`` is its Server Core image; ``nanoserver_image`` its Nano Server image, or None
    when the toolkit builds no Nano Server variant for it.
    """

    key: str
    version: str
    build: int
    base_image: str
    aliases: tuple[str, ...]
    runner: str
    nanoserver_image: str | None = None

    @property
    def base_tag(self) -> str:
        return self.base_image.rpartition(":")[2]

    def image(self, flavor: str) -> str | None:
        """The base image of ``flavor`` (``windowsservercore``, ``nanoserver``), or None."""
        if flavor == "windowsservercore":
            return self.base_image
        if flavor == "nanoserver":
            return self.nanoserver_image
        return None


@cache
def releases() -> dict[str, WindowsRelease]:
    """All known releases, keyed by their variant tag, in ascending build order."""
    text = (Path(__file__).parent / "resources" / "windows-releases.toml").read_text("utf-8")
    table = tomllib.loads(text)
    found = [
        WindowsRelease(
            key=key,
            version=str(row["version"]),
            build=int(row["build"]),
            base_image=str(row["base_image"]),
            aliases=tuple(str(a) for a in row.get("aliases", [])),
            runner=str(row.get("runner", "")),
            nanoserver_image=str(row["nanoserver_image"]) if "nanoserver_image" in row else None,
        )
        for key, row in table.items()
    ]
    return {r.key: r for r in sorted(found, key=lambda r: r.build)}


def find_release(name: str) -> WindowsRelease | None:
    """The release called ``name`` (its key or an alias), or None."""
    table = releases()
    if name in table:
        return table[name]
    for release in table.values():
        if name in release.aliases:
            return release
    return None


def release_for_build(build: int) -> WindowsRelease | None:
    for release in releases().values():
        if release.build == build:
            return release
    return None


def suggest_release(name: str) -> str:
    """A hint naming the closest known release(s)."""
    names = [*releases(), *(a for r in releases().values() for a in r.aliases)]
    return did_you_mean(name, names, listing="known releases", listed=releases())


def flavor_releases(flavor: str) -> list[WindowsRelease]:
    """The releases that have a base image of ``flavor``, in ascending build order."""
    return [r for r in releases().values() if r.image(flavor) is not None]
