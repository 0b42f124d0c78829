"""Build identifiers, tags as the official library names them, and selectors."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from tests.conftest import REPO, run_toolkit
from toolkit.errors import NothingSelectedError
from toolkit.matrix import Build, build_matrix, select
from toolkit.versions import VersionsFile, load_versions, parse_versions, python_release

SHA = "57e3643ff19f018f8a00dfaa6b7e4620e3c1a7a2171fd218425366ec006b3bfe"
URL = "https://github.com/pypa/get-pip/raw/309a56c5fd94bd1134053a541cb4657a4e47e09d/get-pip.py"


def versions(
    lines: dict[str, str], releases: tuple[str, ...] = ("1809", "ltsc2016")
) -> VersionsFile:
    data = {
        name: {
            "version": version,
            "pip": {"version": "19.2.3"},
            "get-pip": {"url": URL, "sha256": SHA},
            "variants": [f"windows/windowsservercore-{r}" for r in releases],
        }
        for name, version in lines.items()
    }
    return parse_versions(json.dumps(data), Path("versions.json"))


def by_id(builds: list[Build]) -> dict[str, Build]:
    return {b.id: b for b in builds}


def test_published_rc_line_tags() -> None:
    """The 2019 file held only 3.8-rc, so it was the newest rc line and had the rc tags."""
    data = json.loads((REPO / "versions.json").read_text())
    seed = parse_versions(json.dumps({"3.8-rc": data["3.8-rc"]}), Path("versions.json"))
    b = by_id(build_matrix(seed))["3.8-rc-windowsservercore-1809"]
    assert b.tags == (
        "3.8.0rc1-windowsservercore-1809",
        "3.8-rc-windowsservercore-1809",
        "rc-windowsservercore-1809",
    )
    assert b.shared_tags == (
        "3.8.0rc1-windowsservercore",
        "3.8-rc-windowsservercore",
        "rc-windowsservercore",
        "3.8.0rc1",
        "3.8-rc",
        "rc",
    )
    assert b.directory == "3.8-rc/windows/windowsservercore-1809"


def test_todays_lines_are_tagged_as_the_official_library_tags_them() -> None:
    builds = by_id(build_matrix(load_versions(REPO / "versions.json")))
    assert builds["3.14-windowsservercore-ltsc2025"].tags == (
        "3.14.7-windowsservercore-ltsc2025",
        "3.14-windowsservercore-ltsc2025",
        "3-windowsservercore-ltsc2025",
        "windowsservercore-ltsc2025",
    )
    assert builds["3.14-windowsservercore-ltsc2022"].shared_tags == (
        "3.14.7-windowsservercore",
        "3.14-windowsservercore",
        "3-windowsservercore",
        "windowsservercore",
        "3.14.7",
        "3.14",
        "3",
        "latest",
    )
    assert builds["3.13-windowsservercore-ltsc2022"].tags == (
        "3.13.15-windowsservercore-ltsc2022",
        "3.13-windowsservercore-ltsc2022",
    )
    assert builds["3.15-rc-windowsservercore-ltsc2025"].tags == (
        "3.15.0rc2-windowsservercore-ltsc2025",
        "3.15-rc-windowsservercore-ltsc2025",
        "rc-windowsservercore-ltsc2025",
    )
    assert builds["3.8-rc-windowsservercore-1809"].shared_tags[-1] == "3.8-rc"


def test_nanoserver_tags_share_only_their_flavor() -> None:
    """Bare aliases (3.14, latest) stay Server Core's: a manifest list cannot hold two images
    for one Windows build."""
    builds = by_id(build_matrix(load_versions(REPO / "versions.json")))
    nano = builds["3.14-nanoserver-ltsc2025"]
    assert nano.tags == (
        "3.14.7-nanoserver-ltsc2025",
        "3.14-nanoserver-ltsc2025",
        "3-nanoserver-ltsc2025",
        "nanoserver-ltsc2025",
    )
    assert nano.shared_tags == (
        "3.14.7-nanoserver",
        "3.14-nanoserver",
        "3-nanoserver",
        "nanoserver",
    )
    assert nano.base_image == "mcr.microsoft.com/windows/nanoserver:ltsc2025"
    assert nano.variant.base_images == (
        "mcr.microsoft.com/windows/servercore:ltsc2025",
        "mcr.microsoft.com/windows/nanoserver:ltsc2025",
    )
    assert nano.directory == "3.14/windows/nanoserver-ltsc2025"
    assert nano.release.key == "ltsc2025"
    assert builds["3.15-rc-nanoserver-ltsc2022"].shared_tags == (
        "3.15.0rc2-nanoserver",
        "3.15-rc-nanoserver",
        "rc-nanoserver",
    )
    for bare in ("3.14", "3", "latest", "rc"):
        owners = {b.variant.flavor for b in builds.values() if bare in b.shared_tags}
        assert owners == {"windowsservercore"}, bare


def test_final_lines_get_major_and_latest_only_when_newest() -> None:
    builds = by_id(
        build_matrix(
            versions({"3.8-rc": "3.8.0rc1", "3.7": "3.7.4", "3.6": "3.6.9", "2.7": "2.7.16"})
        )
    )
    assert builds["3.7-windowsservercore-1809"].tags == (
        "3.7.4-windowsservercore-1809",
        "3.7-windowsservercore-1809",
        "3-windowsservercore-1809",
        "windowsservercore-1809",
    )
    assert builds["3.7-windowsservercore-ltsc2016"].shared_tags == (
        "3.7.4-windowsservercore",
        "3.7-windowsservercore",
        "3-windowsservercore",
        "windowsservercore",
        "3.7.4",
        "3.7",
        "3",
        "latest",
    )
    assert builds["3.6-windowsservercore-1809"].tags == (
        "3.6.9-windowsservercore-1809",
        "3.6-windowsservercore-1809",
    )
    # the newest final line of an older major gets its major, not latest
    assert builds["2.7-windowsservercore-1809"].shared_tags == (
        "2.7.16-windowsservercore",
        "2.7-windowsservercore",
        "2-windowsservercore",
        "2.7.16",
        "2.7",
        "2",
    )
    assert "rc" in builds["3.8-rc-windowsservercore-1809"].shared_tags


def test_only_the_newest_rc_line_is_rc() -> None:
    builds = by_id(build_matrix(versions({"3.9-rc": "3.9.0a1", "3.8-rc": "3.8.0rc1"})))
    assert "rc" in builds["3.9-rc-windowsservercore-1809"].shared_tags
    assert "rc" not in builds["3.8-rc-windowsservercore-1809"].shared_tags
    assert "latest" not in builds["3.8-rc-windowsservercore-1809"].shared_tags


def test_minor_ordering_is_numeric_not_lexical() -> None:
    builds = by_id(build_matrix(versions({"3.10": "3.10.1", "3.9": "3.9.9"})))
    assert "latest" in builds["3.10-windowsservercore-1809"].shared_tags
    assert "latest" not in builds["3.9-windowsservercore-1809"].shared_tags


@pytest.mark.parametrize(
    ("version", "release"),
    [("3.8.0rc1", "3.8.0"), ("3.9.0a1", "3.9.0"), ("3.7.4", "3.7.4"), ("3.10.0b2", "3.10.0")],
)
def test_python_release(version: str, release: str) -> None:
    assert python_release(version) == release


def test_selectors_with_braces_and_globs() -> None:
    builds = build_matrix(versions({"3.8-rc": "3.8.0rc1", "3.7": "3.7.4", "3.6": "3.6.9"}))
    assert [b.id for b in select(builds, ["3.{6,7}-*-1809"])] == [
        "3.7-windowsservercore-1809",
        "3.6-windowsservercore-1809",
    ]
    assert [b.id for b in select(builds, ["*-ltsc2016", "3.8-rc-*"])] == [
        "3.8-rc-windowsservercore-1809",
        "3.8-rc-windowsservercore-ltsc2016",
        "3.7-windowsservercore-ltsc2016",
        "3.6-windowsservercore-ltsc2016",
    ]
    assert len(select(builds, [])) == 6


def test_a_selector_that_matches_nothing_is_an_error_even_beside_one_that_matches() -> None:
    builds = build_matrix(versions({"3.8-rc": "3.8.0rc1"}))
    with pytest.raises(NothingSelectedError, match=re.escape("'3.9-*'")):
        select(builds, ["3.8-rc-*", "3.9-*"])


def test_list_command_plain_and_json(workspace: Path) -> None:
    plain = run_toolkit("list", "*-{1809,1803}", cwd=workspace)
    assert plain.returncode == 0, plain.stderr
    assert plain.stdout.splitlines() == [
        "3.8-rc-windowsservercore-1809",
        "3.8-rc-windowsservercore-1803",
    ]
    as_json = run_toolkit("list", "--json", "3.8-rc-*", "3.14-nanoserver-ltsc2022", cwd=workspace)
    assert as_json.returncode == 0
    records = json.loads(as_json.stdout)
    assert [r["id"] for r in records] == [
        "3.14-nanoserver-ltsc2022",
        "3.8-rc-windowsservercore-1809",
        "3.8-rc-windowsservercore-1803",
        "3.8-rc-windowsservercore-ltsc2016",
    ]
    assert set(records[0]) == {
        "id",
        "line",
        "version",
        "release",
        "windows_build",
        "flavor",
        "base_image",
        "base_images",
        "recipe",
        "directory",
        "tags",
        "shared_tags",
    }
    assert records[3]["windows_build"] == 14393
    assert records[3]["base_image"] == "mcr.microsoft.com/windows/servercore:ltsc2016"
    assert records[3]["recipe"] == "get-pip"
    assert records[1]["directory"] == "3.8-rc/windows/windowsservercore-1809"
    assert records[0]["flavor"] == "nanoserver"
    assert records[0]["recipe"] == "installer"
    assert records[0]["base_image"] == "mcr.microsoft.com/windows/nanoserver:ltsc2022"
    assert records[0]["base_images"] == [
        "mcr.microsoft.com/windows/servercore:ltsc2022",
        "mcr.microsoft.com/windows/nanoserver:ltsc2022",
    ]
