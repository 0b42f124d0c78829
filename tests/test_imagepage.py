"""Image-info pages: the two published pages read into the model and written back byte for byte,
the size rule on every figure they show, and saved pages that are not in the format."""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import FIXTURES
from toolkit.errors import ConfigError
from toolkit.imagepage import (
    Page,
    PageStyle,
    human_size,
    page_record,
    parse_pages,
    write_page,
    write_pages,
)

SEED = FIXTURES / "published-python-3.8-rc-windowsservercore.md"
PAGE_2026 = FIXTURES / "published-python-3.14-windowsservercore.md"
PAGES = [SEED, PAGE_2026]
# The fixtures are copies of the published pages; the golden tests mean nothing if they drift.
SHA256 = {
    SEED.name: "e538aa094b49c86285ee0be08dfc5babd9a46ce0726c53d5c2fa7905db5b9cca",
    PAGE_2026.name: "31ee1da7f653dfffb939cc087d8803aa7de6de9252e571520cba62b37186ee99",
}
SEED_TEXT = SEED.read_text(encoding="utf-8")


@pytest.mark.parametrize("path", PAGES, ids=lambda p: p.name)
def test_fixture_is_the_published_page(path: Path) -> None:
    assert hashlib.sha256(path.read_bytes()).hexdigest() == SHA256[path.name]


@pytest.mark.parametrize("path", PAGES, ids=lambda p: p.name)
def test_page_round_trips_byte_for_byte(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    parsed = parse_pages(text, str(path))
    assert write_pages(parsed.pages, parsed.style).encode("utf-8") == text.encode("utf-8")


def _figures(text: str) -> list[tuple[str, int]]:
    """Every size figure on a page, found without the parser: ('5.8 GB (5788490516 bytes)', N)."""
    figures = []
    for match in re.finditer(r"(\d+\.\d (?:B|KB|MB|GB|TB))(?: \((\d+) bytes\))?", text):
        figures.append((match.group(0), int(match.group(2)) if match.group(2) else -1))
    return figures


@pytest.mark.parametrize(("path", "count"), [(SEED, 36), (PAGE_2026, 18)], ids=["2019", "2026"])
def test_size_rule_gives_every_figure_of_the_page(path: Path, count: int) -> None:
    text = path.read_text(encoding="utf-8")
    figures = _figures(text)
    # 3 (or 2) totals and 11 (or 8) layers per platform: every Size and Total Size line.
    assert len(figures) == count == text.count("Size: ")
    for shown, size in figures:
        assert size >= 0, shown
        assert human_size(size) == shown


def test_size_rule_figures_distinguish_rounding_from_ceiling() -> None:
    # 1218 bytes reads 1.2 KB on the seed; a ceiling rule would say 1.3 KB.
    assert "Size: 1.2 KB (1218 bytes)" in SEED_TEXT
    assert human_size(1218) == "1.2 KB (1218 bytes)"
    assert human_size(1296) == "1.3 KB (1296 bytes)"


@pytest.mark.parametrize(
    ("size", "text"),
    [
        (0, "0.0 B"),
        (221, "221.0 B"),
        # Not on the two pages: the boundary follows the rule "the whole quotient is still
        # above 1000" (repo-info's pages: 221.0 B, 32.0 B; no figure on our pages sits at it).
        (1000, "1000.0 B"),
        (1001, "1.0 KB (1001 bytes)"),
        (999_999, "1000.0 KB (999999 bytes)"),
        (1_000_999, "1001.0 KB (1000999 bytes)"),
        (1_001_000, "1.0 MB (1001000 bytes)"),
        (5_000_000_000_000_000, "5000.0 TB (5000000000000000 bytes)"),
    ],
)
def test_size_rule_at_its_boundaries(size: int, text: str) -> None:
    assert human_size(size) == text


def test_seed_model_holds_what_the_page_says() -> None:
    parsed = parse_pages(SEED_TEXT, "seed")
    assert parsed.style == PageStyle(platform_count=False)
    (page,) = parsed.pages
    assert (page.name, page.tag) == ("python", "3.8-rc-windowsservercore")
    assert page.digest == "sha256:c2a0a99db540bca42ee46f3f08c9b35f231ae5131e84f84f53485c1ce2deaf32"
    assert page.is_list
    versions = [image.platform.os_version for image in page.images]
    assert versions == ["10.0.14393.3274", "10.0.17134.1069", "10.0.17763.805"]
    assert [image.platform.windows_build for image in page.images] == [14393, 17134, 17763]
    first = page.images[0]
    assert first.digest == "sha256:0f0ccd1cd3709ac19d9265ee21226e29fe8d4d311b848b755d6850c3c4aa0838"
    assert first.docker_version == "18.03.1-ee-4"
    assert first.total_size == 5788490516 == sum(layer.size or 0 for layer in first.layers)
    assert first.cmd == ("python",)
    assert first.shell is not None
    assert first.shell[:2] == ("powershell", "-Command")
    assert len(first.history) == 11 == len(first.layers)
    assert first.history[0].instruction == "RUN Apply image 1607-RTM-amd64"
    assert first.history[0].created == datetime(2016, 11, 22, 23, 24, 34, tzinfo=UTC)
    assert first.history[-1].instruction == 'CMD ["python"]'
    foreign = [layer for layer in first.layers if "foreign" in layer.media_type]
    assert len(foreign) == 2
    assert first.layers[0].last_modified == datetime(2018, 9, 18, 20, 20, 50, tzinfo=UTC)


def test_2026_page_counts_its_platforms() -> None:
    parsed = parse_pages(PAGE_2026.read_text(encoding="utf-8"), "2026")
    assert parsed.style == PageStyle(platform_count=True)
    (page,) = parsed.pages
    assert [i.platform.windows_build for i in page.images] == [26100, 20348]
    assert all("foreign" not in layer.media_type for i in page.images for layer in i.layers)
    assert page.images[0].docker_version == "23.0.6"


def test_style_changes_only_the_platforms_line() -> None:
    (page,) = parse_pages(SEED_TEXT, "seed").pages
    counted = write_page(page, PageStyle(platform_count=True))
    assert counted == SEED_TEXT.replace("-\tPlatforms:\n", "-\tPlatforms: 3\n")


def test_two_pages_in_one_file_round_trip() -> None:
    text = SEED_TEXT + "\n" + SEED_TEXT.replace("3.8-rc-windowsservercore", "rc-windowsservercore")
    parsed = parse_pages(text, "two")
    assert [p.tag for p in parsed.pages] == ["3.8-rc-windowsservercore", "rc-windowsservercore"]
    assert write_pages(parsed.pages, parsed.style) == text


def test_json_record_has_the_schema() -> None:
    (page,) = parse_pages(SEED_TEXT, "seed").pages
    record = json.loads(json.dumps(page_record(page)))
    assert set(record) == {"reference", "name", "tag", "digest", "media_type", "images"}
    image = record["images"][2]
    assert image["platform"]["text"] == "windows version 10.0.17763.805; amd64"
    assert image["platform"]["os_version"] == "10.0.17763.805"
    assert image["total_size"] == 2258271351
    assert image["history"][0] == {
        "created": "2018-09-15T09:10:26Z",
        "instruction": "RUN Apply image 1809-RTM-amd64",
    }
    assert image["layers"][0]["last_modified"] == "2018-11-13T18:50:17Z"
    assert image["layers"][0]["size"] == 1534685324
    assert image["shell"][0] == "powershell"


def test_json_slashes_are_written_escaped() -> None:
    (page,) = parse_pages(SEED_TEXT, "seed").pages
    image = page.images[0]
    changed = Page(
        name=page.name,
        tag=page.tag,
        digest=page.digest,
        media_type=page.media_type,
        images=(replace(image, cmd=("c:/python/python.exe",), entrypoint=("a\\b",)),),
    )
    text = write_page(changed)
    assert '-\tDefault Command: `["c:\\/python\\/python.exe"]`' in text
    assert '-\tEntrypoint: `["a\\\\b"]`' in text
    assert parse_pages(text, "x").pages == (changed,)


# --- saved pages that are not in the format ------------------------------------------------


def _edit(old: str, new: str, count: int = 1) -> str:
    assert old in SEED_TEXT, old
    return SEED_TEXT.replace(old, new, count)


def _cut(marker: str) -> str:
    return SEED_TEXT[: SEED_TEXT.index(marker)]


def _without_history(text: str) -> str:
    start = text.index("```dockerfile")
    end = text.index("```\n", start + 3) + 4
    return text[:start] + text[end + 1 :]


BAD_PAGES = {
    "empty file": ("", "truncated"),
    "no final newline": (SEED_TEXT[:-1], "truncated"),
    "truncated in a layer": (
        _cut("\t\tMIME: application/vnd.docker.image.rootfs.diff.tar.gzip\n\t-\t`sha256:dcdf"),
        "expected",
    ),
    "truncated after the list": (
        _cut("### `python:3.8-rc-windowsservercore` - windows version 10.0.14393"),
        "the page is truncated",
    ),
    "platform without history": (_without_history(SEED_TEXT), "```dockerfile"),
    "HTML instead of a page": (
        "<!DOCTYPE html>\n<html><body>Not Found</body></html>\n",
        "## `NAME:TAG`",
    ),
    "CRLF line ends": (SEED_TEXT.replace("\n", "\r\n"), "## `NAME:TAG`"),
    "wrong platform count": (
        SEED_TEXT.replace("-\tPlatforms:\n", "-\tPlatforms: 2\n"),
        "Platforms: 3",
    ),
    "section out of list order": (
        _edit(
            "\t-\twindows version 10.0.14393.3274; amd64\n\t-\twindows version 10.0.17134.1069; amd64",
            "\t-\twindows version 10.0.17134.1069; amd64\n\t-\twindows version 10.0.14393.3274; amd64",
        ),
        "in list order",
    ),
    "total size not the sum": (
        _edit("5.8 GB (5788490516 bytes)", "5.8 GB (5788490517 bytes)"),
        "sum of the layer sizes",
    ),
    "human size disagrees with bytes": (
        _edit("57.0 MB (56999892 bytes)", "57.1 MB (56999892 bytes)"),
        "57.0 MB",
    ),
    "weekday does not fit the date": (
        _edit("# Tue, 22 Nov 2016 23:24:34 GMT", "# Wed, 22 Nov 2016 23:24:34 GMT"),
        "weekday right",
    ),
    "date not in GMT": (
        _edit(
            "Last Modified: Tue, 18 Sep 2018 20:20:50 GMT",
            "Last Modified: Tue, 18 Sep 2018 20:20:50 UTC",
        ),
        "a date like",
    ),
    "short digest": (
        _edit(
            "`sha256:3889bb8d808bbae6fa5a33e07093e65c31371bcf9e4c38c21be6b9af52ad1548`",
            "`sha256:3889bb8d`",
        ),
        "a digest",
    ),
    "pull by another name": (
        _edit("$ docker pull python@sha256:0f0c", "$ docker pull pyth0n@sha256:0f0c"),
        "the page's name",
    ),
    "JSON not compact": (
        _edit('Default Command: `["python"]`', 'Default Command: `[ "python" ]`'),
        "compact JSON",
    ),
    "JSON not a list": (
        _edit('Default Command: `["python"]`', 'Default Command: `"python"`'),
        "JSON list",
    ),
    "history entry without instruction": (
        _edit(
            "# Sat, 05 Oct 2019 16:15:00 GMT\nRUN Install update ltsc2016-amd64\n",
            "# Sat, 05 Oct 2019 16:15:00 GMT\n",
        ),
        "instruction after the date",
    ),
    "trailing space lost on a layer": (_edit("1548`  \n", "1548`\n"), "expected"),
    "size note missing": (
        _edit("\t(compressed transfer size, not on-disk size)\n", "", 1),
        "compressed transfer size",
    ),
    "layer without MIME": (
        _edit("\t\tMIME: application/vnd.docker.image.rootfs.foreign.diff.tar.gzip\n", "", 1),
        "MIME",
    ),
    "heading without tag": (
        _edit("## `python:3.8-rc-windowsservercore`", "## `python`"),
        "NAME:TAG",
    ),
    "unknown line in the metadata": (_edit("-\tImage ID:", "-\tImage Id:"), "expected"),
    "extra text after the page": (SEED_TEXT + "\nthanks for reading\n", "NAME:TAG"),
}


@pytest.mark.parametrize("name", list(BAD_PAGES))
def test_bad_page_is_one_line_config_error(name: str) -> None:
    text, fragment = BAD_PAGES[name]
    with pytest.raises(ConfigError) as caught:
        parse_pages(text, "saved.md")
    message = caught.value.one_line()
    assert "\n" not in message
    assert message.startswith("saved.md")
    assert fragment in message
    assert caught.value.exit_code == 2


def test_a_two_page_file_must_keep_one_style() -> None:
    counted = SEED_TEXT.replace("-\tPlatforms:\n", "-\tPlatforms: 3\n")
    with pytest.raises(ConfigError, match="one style per file"):
        parse_pages(SEED_TEXT + "\n" + counted, "mixed.md")


def test_every_proper_prefix_of_the_seed_is_refused() -> None:
    lines = SEED_TEXT.splitlines(keepends=True)
    for end in range(len(lines)):
        prefix = "".join(lines[:end])
        with pytest.raises(ConfigError):
            parse_pages(prefix, "prefix.md")


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    position=st.integers(min_value=0, max_value=len(SEED_TEXT) - 1),
    replacement=st.sampled_from(["", " ", "\t", "\n", "0", "a", "`", "#", "-", "*", "9"]),
)
def test_any_text_the_parser_accepts_is_written_back_unchanged(
    position: int, replacement: str
) -> None:
    text = SEED_TEXT[:position] + replacement + SEED_TEXT[position + 1 :]
    try:
        parsed = parse_pages(text, "mutated.md")
    except ConfigError as exc:
        message = exc.one_line()
    else:
        assert write_pages(parsed.pages, parsed.style) == text
        return
    assert "\n" not in message
    assert message.startswith("mutated.md")
