"""The committed Dockerfiles reproduce the published Server Core images exactly, for both recipes.

The expected data are the published image-info pages (tests/fixtures/published-...md): for each
platform, the image history rendered as a Dockerfile. Two pages, one template, two recipes chosen
by versions.json: python:3.8-rc-windowsservercore of October 2019 (3.8.0rc1 on ltsc2016, 1803 and
1809: get-pip) and python:3.14-windowsservercore of September 2026 (3.14.7 on ltsc2025 and
ltsc2022: pip from the installer). Our Dockerfiles, normalised the way the engine records history
(BuildKit parser: continuations joined, comments dropped; FROM standing for the base image's own
history), must equal each page character for character.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import FIXTURES, REPO, run_toolkit
from toolkit.instructions import history, parse_dockerfile
from toolkit.windows import release_for_build

BASE_HISTORY: dict[str, list[str]] = json.loads(
    (FIXTURES / "base-image-history.json").read_text(encoding="utf-8")
)


@dataclass(frozen=True)
class Page:
    file: str
    line: str
    releases: tuple[str, ...]

    @property
    def path(self) -> Path:
        return FIXTURES / self.file


SEED = Page("published-python-3.8-rc-windowsservercore.md", "3.8-rc", ("ltsc2016", "1803", "1809"))
TODAY = Page("published-python-3.14-windowsservercore.md", "3.14", ("ltsc2025", "ltsc2022"))
PAGES = (SEED, TODAY)
CASES = [(page, release) for page in PAGES for release in page.releases]


def published_platforms(page: Page) -> dict[str, list[str]]:
    """release key -> the published history lines (dates dropped), from the image-info page."""
    text = page.path.read_text(encoding="utf-8")
    sections = re.findall(
        r"^### `[^`]+` - windows version 10\.0\.(\d+)\.\d+; amd64\n(.*?)```dockerfile\n(.*?)```",
        text,
        re.S | re.M,
    )
    platforms = {}
    for build, _meta, block in sections:
        release = release_for_build(int(build))
        assert release is not None, build
        platforms[release.key] = [ln for ln in block.splitlines() if not ln.startswith("# ")]
    return platforms


def dockerfile(page: Page, release: str) -> Path:
    return (
        REPO / "dockerfiles" / page.line / "windows" / f"windowsservercore-{release}" / "Dockerfile"
    )


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.line)
def test_page_has_its_platforms(page: Page) -> None:
    assert sorted(published_platforms(page)) == sorted(page.releases)


@pytest.mark.parametrize(("page", "release"), CASES, ids=[f"{p.line}-{r}" for p, r in CASES])
def test_committed_dockerfile_equals_published_history(page: Page, release: str) -> None:
    instructions = parse_dockerfile(dockerfile(page, release))
    assert instructions[0].cmd == "FROM"
    base = instructions[0].value[0]
    assert base == f"mcr.microsoft.com/windows/servercore:{release}"
    expected = published_platforms(page)[release]
    got = history(instructions, BASE_HISTORY[base])
    assert got == expected


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.line)
def test_published_shell_and_cmd_match_the_page_metadata(page: Page) -> None:
    text = page.path.read_text(encoding="utf-8")
    shells = {json.dumps(json.loads(s)) for s in re.findall(r"-\t`SHELL`: `(\[.*?\])`", text)}
    assert len(shells) == 1
    assert text.count('-\tDefault Command: `["python"]`') == len(page.releases)
    for release in page.releases:
        instructions = parse_dockerfile(dockerfile(page, release))
        ours = [list(i.value) for i in instructions if i.cmd == "SHELL"]
        assert [json.dumps(s) for s in ours] == sorted(shells)
        assert [i.value for i in instructions if i.cmd == "CMD"] == [("python",)]


def test_the_two_recipes_come_from_one_template_chosen_by_data() -> None:
    """Same template, different data: the seed line pins get-pip, today's line does not."""
    data = json.loads((REPO / "versions.json").read_text(encoding="utf-8"))
    assert {"pip", "get-pip"} <= set(data[SEED.line])
    assert not {"pip", "get-pip"} & set(data[TODAY.line])
    for page in PAGES:
        header = dockerfile(page, page.releases[0]).read_text(encoding="utf-8").splitlines()[1]
        assert "templates/windowsservercore.Dockerfile.j2" in header


def test_rendering_from_scratch_reproduces_the_committed_files(tmp_path: Path) -> None:
    result = run_toolkit(
        "render",
        "--versions",
        str(REPO / "versions.json"),
        "--templates",
        str(REPO / "templates"),
        "--out",
        str(tmp_path / "out"),
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    for page, release in CASES:
        rel = Path(page.line) / "windows" / f"windowsservercore-{release}" / "Dockerfile"
        assert (tmp_path / "out" / rel).read_bytes() == (REPO / "dockerfiles" / rel).read_bytes()
