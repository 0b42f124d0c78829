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


def _candidates(page: Page, image: PageImage, builds: Sequence[Build]) -> list[Build] | str:
    """The builds the platform may come from (its release, the page's tag), or why none."""
    number = image.platform.windows_build
    if number is None:
        return "matches no build: not a Windows platform with an os.version"
    release = release_for_build(number)
    if release is None:
        return f"matches no build: Windows build {number} is not a known release"
    found = [
        build
        for build in builds
        if build.release.key == release.key and page.tag in (*build.tags, *build.shared_tags)
    ]
    if not found:
        return f"matches no build: no {release.key} build has the tag {page.tag!r} in versions.json"
    return found


def _compare(
    page: Page, image: PageImage, build: Build, dockerfiles: Path
) -> tuple[Path, str, int]:
    """(Dockerfile, unified diff, number of differing lines) of one candidate build."""
    path = dockerfile_path(dockerfiles, build)
    expected = history(parse_dockerfile(path), base_history=())
    published = without_base([entry.instruction for entry in image.history])
    lines = list(
        difflib.unified_diff(
            published,
            expected,
            fromfile=f"{page.reference} {image.platform.describe()} (published history)",
            tofile=f"{path} (normalised as the history records it)",
            lineterm="",
        )
    )
    changed = sum(1 for line in lines[2:] if line[:1] in "+-")
    return path, "".join(f"{line}\n" for line in lines), changed


def check_platform(
    page: Page, image: PageImage, builds: Sequence[Build], dockerfiles: Path
) -> PlatformCheck:
    """Compare one platform with its build; when the tag and release leave several builds
    (the same tag on two flavors), the closest one is the platform's build."""
    found = _candidates(page, image, builds)
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
    compared = [(_compare(page, image, build, dockerfiles), build) for build in found]
    (path, diff, _changed), build = min(compared, key=lambda item: item[0][2])
    return PlatformCheck(
        reference=page.reference,
        platform=platform,
        build=build.id,
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
