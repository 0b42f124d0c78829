"""Image-info pages: the model, the human size rule, and the page format (write and read).

A page describes one tag the way docker-library's repo-info publishes it (the seed of this
project is such a page): the digest to pin, the platforms, and per platform the sizes, the
default command and SHELL, the history as a Dockerfile and the layers. The model is the same
whether it was read from a registry (toolkit/pagesource.py) or from a saved page (:func:`parse_pages`),
and writing a parsed page gives back its input byte for byte: the parser checks exactly that,
so any text it accepts is in the format.

Facts of the format (tests/fixtures/published-*.md):
- dates are RFC 7231 (``Wed, 09 Oct 2019 17:24:35 GMT``), whole seconds;
- sizes are decimal (:func:`human_size`), followed by `` (<N> bytes)`` unless the unit is B;
- JSON values (Entrypoint, Default Command, SHELL) are compact, with ``/`` written ``\\/``;
- ``-\\tPlatforms:`` carries the count in pages since 2020 and nothing after it in 2019 pages
  (:class:`PageStyle`); several pages in one file are separated by one blank line.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from email.utils import format_datetime
from typing import Any

from toolkit.errors import ConfigError

SIZE_UNITS = ("B", "KB", "MB", "GB", "TB")
LIST_TYPES = (
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.oci.image.index.v1+json",
)
# OCI image-spec digest grammar: algorithm ":" encoded.
DIGEST_RE = re.compile(r"[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[a-zA-Z0-9=_-]+")
HTTP_DATE_RE = re.compile(
    r"(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun), \d\d "
    r"(?:Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) \d{4} \d\d:\d\d:\d\d GMT"
)
SIZE_NOTE = "\t(compressed transfer size, not on-disk size)"


def human_size(size: int) -> str:
    """``5.8 GB (5788490516 bytes)``, ``1.2 KB (1218 bytes)``, ``221.0 B``.

    The unit grows while the whole quotient in the current unit is still above 1000 (so 1000
    bytes is ``1000.0 B`` and 1001 bytes ``1.0 KB``), then one decimal, rounded. The pages'
    figures fix the rounding (1218 bytes reads 1.2 KB, not 1.3) and the decimal units; every
    figure of both fixture pages is checked in tests/test_imagepage.py.
    """
    if size < 0:
        raise ValueError(f"negative size {size}")
    unit = 0
    while size // 1000**unit > 1000 and unit < len(SIZE_UNITS) - 1:
        unit += 1
    text = f"{size / 1000**unit:.1f} {SIZE_UNITS[unit]}"
    return text if unit == 0 else f"{text} ({size} bytes)"


def http_date(moment: datetime) -> str:
    """RFC 7231 (the pages' dates): ``Wed, 09 Oct 2019 17:24:35 GMT``; fractions dropped."""
    if moment.tzinfo is None:
        raise ValueError("a page date needs a time zone")
    return format_datetime(moment.astimezone(UTC).replace(microsecond=0), usegmt=True)


def compact_json(value: Sequence[str]) -> str:
    """``["powershell","-Command","..."]``: no spaces, ``/`` escaped as the pages write it."""
    text = json.dumps(list(value), ensure_ascii=False, separators=(",", ":"))
    return text.replace("/", "\\/").replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")


@dataclass(frozen=True, kw_only=True)
class Platform:
    """What an image runs on: ``windows version 10.0.17763.805; amd64``."""

    os: str = "linux"
    architecture: str = "amd64"
    os_version: str | None = None
    os_features: tuple[str, ...] = ()
    variant: str | None = None
    features: tuple[str, ...] = ()

    def describe(self) -> str:
        text = self.os
        if self.os_version is not None:
            text += f" version {self.os_version}"
        if self.os_features:
            text += " ft. " + ", ".join(self.os_features)
        text += f"; {self.architecture}"
        if self.variant is not None:
            text += f" variant {self.variant}"
        if self.features:
            text += " ft. " + ", ".join(self.features)
        return text

    @property
    def windows_build(self) -> int | None:
        """17763 for ``10.0.17763.805``; None when the platform is not a versioned Windows."""
        match = re.fullmatch(r"10\.0\.(\d+)(?:\.\d+)?", self.os_version or "")
        return int(match.group(1)) if self.os == "windows" and match else None


@dataclass(frozen=True, kw_only=True)
class HistoryEntry:
    """One history entry: when, and the instruction as the page shows it (may span lines)."""

    created: datetime
    instruction: str


@dataclass(frozen=True, kw_only=True)
class Layer:
    digest: str
    media_type: str
    size: int | None
    last_modified: datetime | None


@dataclass(frozen=True, kw_only=True)
class PageImage:
    """One platform's image. ``digest`` is its manifest's; ``image_id`` its config's."""

    platform: Platform
    digest: str | None
    media_type: str | None
    docker_version: str | None
    image_id: str | None
    entrypoint: tuple[str, ...] | None
    cmd: tuple[str, ...] | None
    shell: tuple[str, ...] | None
    history: tuple[HistoryEntry, ...]
    layers: tuple[Layer, ...]

    @property
    def total_size(self) -> int:
        """The sum of the layer sizes in the manifest: the compressed transfer size."""
        return sum(layer.size for layer in self.layers if layer.size is not None)


@dataclass(frozen=True, kw_only=True)
class Page:
    """One tag: ``name`` is what ``docker pull`` takes (``python``, ``127.0.0.1:5000/python``)."""

    name: str
    tag: str
    digest: str
    media_type: str | None
    images: tuple[PageImage, ...]

    @property
    def is_list(self) -> bool:
        return self.media_type in LIST_TYPES

    @property
    def reference(self) -> str:
        return f"{self.name}:{self.tag}"


@dataclass(frozen=True, kw_only=True)
class PageStyle:
    """Layout choices that differ between page generations (2019: no platform count)."""

    platform_count: bool = True


# --- writing -----------------------------------------------------------------------------------


def _image_lines(page: Page, image: PageImage) -> Iterator[str]:
    yield ""
    yield f"### `{page.reference}` - {image.platform.describe()}"
    if image.digest is not None and page.is_list:
        yield from ("", "```console", f"$ docker pull {page.name}@{image.digest}", "```")
    yield ""
    if image.docker_version:
        yield f"-\tDocker Version: {image.docker_version}"
    if image.media_type:
        yield f"-\tManifest MIME: `{image.media_type}`"
    yield f"-\tTotal Size: **{human_size(image.total_size)}**  "
    yield SIZE_NOTE
    if image.image_id:
        yield f"-\tImage ID: `{image.image_id}`"
    if image.entrypoint:
        yield f"-\tEntrypoint: `{compact_json(image.entrypoint)}`"
    if image.cmd is not None:
        yield f"-\tDefault Command: `{compact_json(image.cmd)}`"
    if image.shell is not None:
        yield f"-\t`SHELL`: `{compact_json(image.shell)}`"
    yield ""
    yield "```dockerfile"
    for entry in image.history:
        yield f"# {http_date(entry.created)}"
        yield entry.instruction
    yield "```"
    yield ""
    yield "-\tLayers:"
    for layer in image.layers:
        yield f"\t-\t`{layer.digest}`  "
        if layer.last_modified is not None:
            yield f"\t\tLast Modified: {http_date(layer.last_modified)}  "
        if layer.size is not None:
            yield f"\t\tSize: {human_size(layer.size)}  "
        yield f"\t\tMIME: {layer.media_type}"


def page_lines(page: Page, style: PageStyle) -> Iterator[str]:
    yield f"## `{page.reference}`"
    yield from ("", "```console", f"$ docker pull {page.name}@{page.digest}", "```", "")
    if page.media_type:
        yield f"-\tManifest MIME: `{page.media_type}`"
    yield f"-\tPlatforms: {len(page.images)}" if style.platform_count else "-\tPlatforms:"
    for image in page.images:
        yield f"\t-\t{image.platform.describe()}"
    for image in page.images:
        yield from _image_lines(page, image)


def write_page(page: Page, style: PageStyle | None = None) -> str:
    """The page of one tag, ending with a newline."""
    return "".join(f"{line}\n" for line in page_lines(page, style or PageStyle()))


def write_pages(pages: Sequence[Page], style: PageStyle | None = None) -> str:
    """Several pages in one text, separated by one blank line (repo-info's tag-details)."""
    return "\n".join(write_page(page, style) for page in pages)


# --- JSON --------------------------------------------------------------------------------------


def _rfc3339(moment: datetime | None) -> str | None:
    if moment is None:
        return None
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def page_record(page: Page) -> dict[str, Any]:
    """The page as JSON-ready data (schema in the README, "toolkit report --json")."""
    return {
        "reference": page.reference,
        "name": page.name,
        "tag": page.tag,
        "digest": page.digest,
        "media_type": page.media_type,
        "images": [
            {
                "platform": {
                    "os": image.platform.os,
                    "architecture": image.platform.architecture,
                    "os_version": image.platform.os_version,
                    "os_features": list(image.platform.os_features),
                    "variant": image.platform.variant,
                    "features": list(image.platform.features),
                    "text": image.platform.describe(),
                },
                "digest": image.digest,
                "media_type": image.media_type,
                "docker_version": image.docker_version,
                "total_size": image.total_size,
                "image_id": image.image_id,
                "entrypoint": None if image.entrypoint is None else list(image.entrypoint),
                "cmd": None if image.cmd is None else list(image.cmd),
                "shell": None if image.shell is None else list(image.shell),
                "history": [
                    {"created": _rfc3339(entry.created), "instruction": entry.instruction}
                    for entry in image.history
                ],
                "layers": [
                    {
                        "digest": layer.digest,
                        "media_type": layer.media_type,
                        "size": layer.size,
                        "last_modified": _rfc3339(layer.last_modified),
                    }
                    for layer in image.layers
                ],
            }
            for image in page.images
        ],
    }


# --- reading -----------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class ParsedPages:
    pages: tuple[Page, ...]
    style: PageStyle


PLATFORM_RE = re.compile(
    r"(?P<os>[^\s;]+)(?: version (?P<os_version>[^\s;]+))?(?: ft\. (?P<os_features>[^;]+))?"
    r"; (?P<architecture>[^\s;]+)(?: variant (?P<variant>\S+))?(?: ft\. (?P<features>.+))?"
)


def parse_platform(text: str) -> Platform | None:
    match = PLATFORM_RE.fullmatch(text)
    if match is None:
        return None
    found = match.groupdict()
    return Platform(
        os=found["os"],
        architecture=found["architecture"],
        os_version=found["os_version"],
        os_features=tuple(found["os_features"].split(", ")) if found["os_features"] else (),
        variant=found["variant"],
        features=tuple(found["features"].split(", ")) if found["features"] else (),
    )


@dataclass
class _Cursor:
    """Lines of a page with a position; every complaint names the file and the line number."""

    where: str
    lines: list[str]
    index: int = 0
    _hint: str = field(default="is it an image-info page as `toolkit report` writes it?")

    def peek(self) -> str | None:
        return self.lines[self.index] if self.index < len(self.lines) else None

    def fail(self, expected: str, *, at: int | None = None) -> ConfigError:
        index = self.index if at is None else at
        if index >= len(self.lines):
            found = "the end of the file (the page is truncated)"
        else:
            shown = self.lines[index]
            found = repr(shown if len(shown) <= 70 else shown[:67] + "...")
        return ConfigError(
            f"{self.where}:{index + 1}: expected {expected}, found {found}", hint=self._hint
        )

    def take(self, pattern: str, expected: str) -> re.Match[str]:
        line = self.peek()
        match = None if line is None else re.fullmatch(pattern, line)
        if match is None:
            raise self.fail(expected)
        self.index += 1
        return match

    def take_if(self, pattern: str) -> re.Match[str] | None:
        line = self.peek()
        match = None if line is None else re.fullmatch(pattern, line)
        if match is not None:
            self.index += 1
        return match

    def blank(self) -> None:
        self.take("", "a blank line")


def _digest(cursor: _Cursor, text: str, at: int) -> str:
    if not DIGEST_RE.fullmatch(text) or (text.startswith("sha256:") and len(text) != 71):
        raise cursor.fail("a digest (sha256: and 64 hex digits)", at=at)
    return text


def _date(cursor: _Cursor, text: str, at: int) -> datetime:
    from email.utils import parsedate_to_datetime

    if HTTP_DATE_RE.fullmatch(text):
        try:
            moment = parsedate_to_datetime(text)
        except ValueError:
            moment = None
        if moment is not None and http_date(moment) == text:
            return moment
    raise cursor.fail("a date like 'Wed, 09 Oct 2019 17:24:35 GMT' (valid, weekday right)", at=at)


def _size(cursor: _Cursor, text: str, at: int) -> int:
    match = re.fullmatch(r"[0-9.]+ (?:B|KB|MB|GB|TB)(?: \((\d+) bytes\))?", text)
    number = None
    if match and match.group(1):
        number = int(match.group(1))
    elif match:
        whole = re.fullmatch(r"(\d+)\.0 B", text)
        number = int(whole.group(1)) if whole else None
    if number is None or human_size(number) != text:
        shown = f" ({human_size(number)} for {number} bytes)" if number is not None else ""
        raise cursor.fail(f"a size like '1.2 KB (1218 bytes)'{shown}", at=at)
    return number


def _json_list(cursor: _Cursor, text: str, at: int, what: str) -> tuple[str, ...]:
    try:
        value = json.loads(text)
    except ValueError:
        value = None
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise cursor.fail(f"{what} as a JSON list of strings", at=at)
    if compact_json(value) != text:
        raise cursor.fail(f"{what} in compact JSON ({compact_json(value)})", at=at)
    return tuple(value)


def _pull(cursor: _Cursor, name: str) -> str:
    cursor.take("```console", "```console")
    at = cursor.index
    match = cursor.take(r"\$ docker pull (\S+)@(\S+)", f"'$ docker pull {name}@sha256:...'")
    if match.group(1) != name:
        raise cursor.fail(f"'$ docker pull {name}@...' (the page's name)", at=at)
    cursor.take("```", "``` (end of the console block)")
    return _digest(cursor, match.group(2), at)


def _history(cursor: _Cursor) -> tuple[HistoryEntry, ...]:
    cursor.take("```dockerfile", "the history (a ```dockerfile block)")
    entries: list[HistoryEntry] = []
    while cursor.peek() != "```":
        at = cursor.index
        match = cursor.take(r"# (.*)", "'# <date>' before each history entry, or ```")
        created = _date(cursor, match.group(1), at)
        lines: list[str] = []
        while (line := cursor.peek()) is not None and line != "```":
            if line.startswith("# ") and HTTP_DATE_RE.fullmatch(line[2:]):
                break
            lines.append(line)
            cursor.index += 1
        if not lines:
            raise cursor.fail("the instruction after the date")
        entries.append(HistoryEntry(created=created, instruction="\n".join(lines)))
    cursor.index += 1
    return tuple(entries)


def _layers(cursor: _Cursor) -> tuple[Layer, ...]:
    cursor.take(r"-\tLayers:", "'-\\tLayers:'")
    layers: list[Layer] = []
    while (at := cursor.index) < len(cursor.lines) and cursor.lines[at].startswith("\t-\t"):
        match = cursor.take(r"\t-\t`([^`]+)`  ", "'\\t-\\t`<layer digest>`  '")
        digest = _digest(cursor, match.group(1), at)
        modified = size = None
        if found := cursor.take_if(r"\t\tLast Modified: (.*)  "):
            modified = _date(cursor, found.group(1), cursor.index - 1)
        if found := cursor.take_if(r"\t\tSize: (.*)  "):
            size = _size(cursor, found.group(1), cursor.index - 1)
        mime = cursor.take(r"\t\tMIME: (\S+)", "'\\t\\tMIME: <media type>'").group(1)
        layers.append(Layer(digest=digest, media_type=mime, size=size, last_modified=modified))
    return tuple(layers)


def _image(cursor: _Cursor, name: str, tag: str, platform: Platform, is_list: bool) -> PageImage:
    cursor.blank()
    at = cursor.index
    heading = cursor.take(r"### `([^`]+)` - (.+)", f"'### `{name}:{tag}` - <platform>'")
    if heading.group(1) != f"{name}:{tag}" or heading.group(2) != platform.describe():
        raise cursor.fail(f"'### `{name}:{tag}` - {platform.describe()}' (in list order)", at=at)
    cursor.blank()
    digest = None
    if cursor.peek() == "```console":
        if not is_list:
            raise cursor.fail("no pull line in the section of a tag that is not a list")
        digest = _pull(cursor, name)
        cursor.blank()
    elif is_list:
        raise cursor.fail("```console (the platform's pull line)")
    fields: dict[str, str] = {}
    for key, pattern in (
        ("docker_version", r"-\tDocker Version: (.+)"),
        ("media_type", r"-\tManifest MIME: `([^`]+)`"),
    ):
        if found := cursor.take_if(pattern):
            fields[key] = found.group(1)
    size_at = cursor.index
    total_text = cursor.take(r"-\tTotal Size: \*\*(.+)\*\*  ", "'-\\tTotal Size: **...**  '")
    total = _size(cursor, total_text.group(1), size_at)
    cursor.take(re.escape(SIZE_NOTE), repr(SIZE_NOTE))
    if found := cursor.take_if(r"-\tImage ID: `([^`]+)`"):
        fields["image_id"] = _digest(cursor, found.group(1), cursor.index - 1)
    lists: dict[str, tuple[str, ...]] = {}
    for key, pattern, what in (
        ("entrypoint", r"-\tEntrypoint: `(.+)`", "the Entrypoint"),
        ("cmd", r"-\tDefault Command: `(.+)`", "the Default Command"),
        ("shell", r"-\t`SHELL`: `(.+)`", "the SHELL"),
    ):
        if found := cursor.take_if(pattern):
            lists[key] = _json_list(cursor, found.group(1), cursor.index - 1, what)
    cursor.blank()
    history = _history(cursor)
    cursor.blank()
    layers = _layers(cursor)
    image = PageImage(
        platform=platform,
        digest=digest,
        media_type=fields.get("media_type"),
        docker_version=fields.get("docker_version"),
        image_id=fields.get("image_id"),
        entrypoint=lists.get("entrypoint"),
        cmd=lists.get("cmd"),
        shell=lists.get("shell"),
        history=history,
        layers=layers,
    )
    if image.total_size != total:
        raise cursor.fail(
            f"a Total Size equal to the sum of the layer sizes ({image.total_size} bytes)",
            at=size_at,
        )
    return image


def _page(cursor: _Cursor) -> tuple[Page, bool]:
    at = cursor.index
    heading = cursor.take(r"## `([^`]+)`", "'## `NAME:TAG`'")
    name, colon, tag = heading.group(1).rpartition(":")
    if not colon or "/" in tag or not name or not tag:
        raise cursor.fail("'## `NAME:TAG`' (a tag after the last ':')", at=at)
    cursor.blank()
    digest = _pull(cursor, name)
    cursor.blank()
    media_type = None
    if found := cursor.take_if(r"-\tManifest MIME: `([^`]+)`"):
        media_type = found.group(1)
    count_at = cursor.index
    count = cursor.take(r"-\tPlatforms:(?: (\d+))?", "'-\\tPlatforms:' (optionally with a count)")
    platforms: list[Platform] = []
    while (at := cursor.index) < len(cursor.lines) and cursor.lines[at].startswith("\t-\t"):
        platform = parse_platform(cursor.lines[at][3:])
        if platform is None or platform.describe() != cursor.lines[at][3:]:
            raise cursor.fail("a platform like 'windows version 10.0.17763.805; amd64'", at=at)
        platforms.append(platform)
        cursor.index += 1
    if count.group(1) is not None and int(count.group(1)) != len(platforms):
        raise cursor.fail(f"'-\\tPlatforms: {len(platforms)}' (the number listed)", at=count_at)
    is_list = media_type in LIST_TYPES
    if not platforms or (not is_list and len(platforms) != 1):
        raise cursor.fail("one platform per image (one for a tag that is not a list)")
    images = tuple(_image(cursor, name, tag, p, is_list) for p in platforms)
    if not is_list:
        images = tuple(replace(image, digest=digest) for image in images)
    page = Page(name=name, tag=tag, digest=digest, media_type=media_type, images=images)
    return page, count.group(1) is not None


def parse_pages(text: str, where: str = "page") -> ParsedPages:
    """Read one or more pages (separated by a blank line) into the model.

    Raises ConfigError naming ``where`` and the line when the text is not in the format; any
    text accepted here is exactly what :func:`write_pages` gives for the result.
    """
    if not text.endswith("\n"):
        what = "the end of the file" if text else "a page"
        raise ConfigError(
            f"{where}: {what} is not a complete line (the page is empty or truncated)",
            hint="save the whole page",
        )
    cursor = _Cursor(where=where, lines=text[:-1].split("\n"))
    pages: list[Page] = []
    styles: set[bool] = set()
    while True:
        page, counted = _page(cursor)
        pages.append(page)
        styles.add(counted)
        if cursor.peek() is None:
            break
        cursor.blank()
    if len(styles) > 1:
        raise ConfigError(
            f"{where}: some pages count their platforms and some do not", hint="one style per file"
        )
    parsed = ParsedPages(pages=tuple(pages), style=PageStyle(platform_count=styles.pop()))
    _check_round_trip(cursor, write_pages(parsed.pages, parsed.style))
    return parsed


def _check_round_trip(cursor: _Cursor, written: str) -> None:
    """Anything the parser let through that the writer would not give back is a format error."""
    again = written[:-1].split("\n")
    for index, (ours, theirs) in enumerate(zip(again, cursor.lines, strict=False)):
        if ours != theirs:
            raise cursor.fail(repr(ours), at=index)
    if len(again) != len(cursor.lines):
        raise cursor.fail("the end of the page", at=min(len(again), len(cursor.lines)))
