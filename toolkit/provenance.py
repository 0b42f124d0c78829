"""Provenance: is what a page says was published what the templates say?

For each platform of a page: its Windows build (``os.version`` 10.0.17763.805 -> 17763) gives
the release, the page's tag and that release give the build of versions.json, and the build
gives the rendered Dockerfile under ``dockerfiles/``. The platform's history, without the lines
its base image brought, is compared instruction by instruction with that Dockerfile normalised
the way an image history records it (toolkit.instructions: the same normalisation the golden
tests use). Any difference is drift, shown as a unified diff.
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from toolkit.imagepage import Page, PageImage
from toolkit.instructions import history, parse_dockerfile, without_base
from toolkit.matrix import Build
from toolkit.render import dockerfile_path
from toolkit.windows import release_for_build


@dataclass(frozen=True, kw_only=True)
class PlatformCheck:
    """The outcome for one platform of one page."""

    reference: str
    platform: str
    build: str | None
    dockerfile: Path | None
    problem: str | None
    diff: str

    @property
    def ok(self) -> bool:
        return self.problem is None and not self.diff

    def summary(self) -> str:
        head = f"{self.reference} ({self.platform})"
        if self.problem is not None:
            return f"{head}: {self.problem}"
        if self.diff:
            return f"{head}: drift from {self.dockerfile} (build {self.build})"
        return f"{head}: matches {self.dockerfile} (build {self.build})"

    def record(self) -> dict[str, object]:
        return {
            "reference": self.reference,
            "platform": self.platform,
            "build": self.build,
            "dockerfile": None if self.dockerfile is None else str(self.dockerfile),
            "ok": self.ok,
            "problem": self.problem,
            "diff": self.diff,
        }


def _find_build(page: Page, image: PageImage, builds: Sequence[Build]) -> Build | str:
    """The build the platform was made from, or why there is none."""
    number = image.platform.windows_build
    if number is None:
        return "matches no build: not a Windows platform with an os.version"
    release = release_for_build(number)
    if release is None:
        return f"matches no build: Windows build {number} is not a known release"
    for build in builds:
        if build.release.key == release.key and page.tag in (*build.tags, *build.shared_tags):
            return build
    return f"matches no build: no {release.key} build has the tag {page.tag!r} in versions.json"


def check_platform(
    page: Page, image: PageImage, builds: Sequence[Build], dockerfiles: Path
) -> PlatformCheck:
    found = _find_build(page, image, builds)
    platform = image.platform.describe()
    if isinstance(found, str):
        return PlatformCheck(
            reference=page.reference,
            platform=platform,
            build=None,
            dockerfile=None,
            problem=found,
            diff="",
        )
    path = dockerfile_path(dockerfiles, found)
    expected = history(parse_dockerfile(path), base_history=())
    published = without_base([entry.instruction for entry in image.history])
    diff = "".join(
        f"{line}\n"
        for line in difflib.unified_diff(
            published,
            expected,
            fromfile=f"{page.reference} {platform} (published history)",
            tofile=f"{path} (normalised as the history records it)",
            lineterm="",
        )
    )
    return PlatformCheck(
        reference=page.reference,
        platform=platform,
        build=found.id,
        dockerfile=path,
        problem=None,
        diff=diff,
    )


def check_pages(
    pages: Sequence[Page], builds: Sequence[Build], dockerfiles: Path
) -> list[PlatformCheck]:
    """One check per platform of each page, in page order."""
    return [
        check_platform(page, image, builds, dockerfiles) for page in pages for image in page.images
    ]
