"""The committed Dockerfiles reproduce the published 3.8.0rc1 Server Core images exactly.

The expected data is the published image-info page (tests/fixtures/published-...md): for each
platform, the image history rendered as a Dockerfile. Our Dockerfiles, normalised the way the
engine records history (BuildKit parser: continuations joined, comments dropped; FROM standing
for the base image's own history), must equal it character for character.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from tests.conftest import FIXTURES, REPO, run_toolkit
from toolkit.instructions import history, parse_dockerfile
from toolkit.windows import release_for_build

PAGE = FIXTURES / "published-python-3.8-rc-windowsservercore.md"
BASE_HISTORY: dict[str, list[str]] = json.loads(
    (FIXTURES / "base-image-history.json").read_text(encoding="utf-8")
)


def published_platforms() -> dict[str, list[str]]:
    """release key -> the published history lines (dates dropped), from the image-info page."""
    text = PAGE.read_text(encoding="utf-8")
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


def test_page_has_the_three_platforms() -> None:
    assert sorted(published_platforms()) == ["1803", "1809", "ltsc2016"]


@pytest.mark.parametrize("release", ["ltsc2016", "1803", "1809"])
def test_committed_dockerfile_equals_published_history(release: str) -> None:
    path = (
        REPO / "dockerfiles" / "3.8-rc" / "windows" / f"windowsservercore-{release}" / "Dockerfile"
    )
    instructions = parse_dockerfile(path)
    assert instructions[0].cmd == "FROM"
    base = instructions[0].value[0]
    assert base == f"mcr.microsoft.com/windows/servercore:{release}"
    expected = published_platforms()[release]
    got = history(instructions, BASE_HISTORY[base])
    assert got == expected


def test_published_shell_and_cmd_match_the_page_metadata() -> None:
    text = PAGE.read_text(encoding="utf-8")
    shell = json.loads(re.findall(r"-\t`SHELL`: `(\[.*?\])`", text)[0])
    path = REPO / "dockerfiles/3.8-rc/windows/windowsservercore-1809/Dockerfile"
    shells = [i for i in parse_dockerfile(path) if i.cmd == "SHELL"]
    assert [list(s.value) for s in shells] == [shell]
    assert '-\tDefault Command: `["python"]`' in text


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
    for release in ("ltsc2016", "1803", "1809"):
        rel = Path("3.8-rc/windows") / f"windowsservercore-{release}" / "Dockerfile"
        assert (tmp_path / "out" / rel).read_bytes() == (REPO / "dockerfiles" / rel).read_bytes()
