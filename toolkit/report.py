"""``toolkit report``: image-info pages from a registry or saved pages, written or checked.

One request in, one outcome out. The pages come from registry references (read concurrently,
toolkit/pagesource.py) and from saved pages (toolkit/imagepage.py); with ``out`` each tag's
page is written to ``<out>/<tag>.md`` (repo-info's layout), all files staged first and replaced
together, so a failure writes none; with ``against`` each platform is checked against the
rendered Dockerfiles (toolkit/provenance.py), and any drift, or a platform matching no build,
is the outcome's failure (exit 1).

Everything that can be refused without the network is refused first: references, saved pages,
versions.json, the Dockerfiles directory and the output file names.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from toolkit.errors import CheckFailedError, ConfigError, ToolkitError
from toolkit.files import UnreadableFile, read_text
from toolkit.imagepage import Page, PageStyle, page_record, parse_pages, write_page, write_pages
from toolkit.pagesource import RegistryReader, UrlHeaders, read_pages
from toolkit.provenance import PlatformCheck
from toolkit.references import Reference, parse_reference

# Docker's tag grammar: also what keeps "<out>/<tag>.md" inside <out>.
TAG_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}")


@dataclass(frozen=True, kw_only=True)
class ReportRequest:
    references: tuple[str, ...] = ()
    pages: tuple[Path, ...] = ()
    out: Path | None = None
    against: Path | None = None
    versions: Path = Path("versions.json")
    jobs: int = 8


@dataclass(frozen=True, kw_only=True)
class ReportOutcome:
    request: ReportRequest
    pages: tuple[tuple[Page, PageStyle], ...]
    checks: tuple[PlatformCheck, ...] | None
    written: tuple[Path, ...]

    def text(self) -> str:
        """Every page, in order, as one text (pages separated by a blank line)."""
        return "\n".join(write_page(page, style) for page, style in self.pages)

    def record(self) -> dict[str, Any]:
        """The ``--json`` document (schema in the README)."""
        document: dict[str, Any] = {"pages": [page_record(page) for page, _style in self.pages]}
        if self.checks is not None:
            document["provenance"] = [check.record() for check in self.checks]
        document["written"] = [str(path) for path in self.written]
        return document

    def failure(self) -> ToolkitError | None:
        if self.checks is None:
            return None
        bad = [check for check in self.checks if not check.ok]
        if not bad:
            return None
        drift = sum(1 for check in bad if check.problem is None)
        return CheckFailedError(
            f"{len(bad)} of {len(self.checks)} platform(s) not as {self.request.against} says: "
            f"{drift} drifted, {len(bad) - drift} matched no build",
            hint="the diffs and lines above say which; render, rebuild and push again",
        )


def parse_targets(texts: Sequence[str]) -> list[Reference]:
    refs = []
    for text in texts:
        ref = parse_reference(text)
        if ref.tag is None:
            raise ConfigError(f"{text!r}: a page describes a tag", hint=f"name one: {text}:TAG")
        refs.append(ref)
    return refs


def read_saved(paths: Sequence[Path]) -> list[tuple[Page, PageStyle]]:
    found: list[tuple[Page, PageStyle]] = []
    for path in paths:
        try:
            text = read_text(path)  # a FIFO or device is refused, not waited on
        except UnreadableFile as exc:
            raise ConfigError(f"{path}: cannot read: {exc.why}", hint="check --page") from None
        parsed = parse_pages(text, str(path))
        found.extend((page, parsed.style) for page in parsed.pages)
    return found


def output_files(out: Path, pages: Sequence[tuple[Page, PageStyle]]) -> list[tuple[Path, str]]:
    """``<out>/<tag>.md`` per page; a tag that is no file name or comes twice is refused."""
    files: dict[str, tuple[Path, str]] = {}
    for page, style in pages:
        if not TAG_RE.fullmatch(page.tag):
            raise ConfigError(
                f"{page.reference}: tag {page.tag[:40]!r} cannot name a file under {out}",
                hint="a tag is letters, digits, '_', '.' and '-'",
            )
        if page.tag in files:
            raise ConfigError(
                f"two pages for the tag {page.tag!r} would both be {out / (page.tag + '.md')}",
                hint="report the repositories into separate --out directories",
            )
        files[page.tag] = (out / f"{page.tag}.md", write_pages([page], style))
    return list(files.values())


def run_report(
    request: ReportRequest,
    *,
    clients: Callable[[str], RegistryReader],
    url_headers: UrlHeaders,
) -> ReportOutcome:
    """Read the pages, check them when asked, write them when asked."""
    from toolkit.files import write_files

    if not request.references and not request.pages:
        raise ConfigError("nothing to report", hint="give REGISTRY/NAME:TAG or --page FILE")
    targets = parse_targets(request.references)
    saved = read_saved(request.pages)
    builds = None
    if request.against is not None:
        from toolkit.matrix import build_matrix
        from toolkit.versions import load_versions

        if not request.against.is_dir():
            raise ConfigError(
                f"--against {request.against}: not a directory", hint="run toolkit render"
            )
        builds = build_matrix(load_versions(request.versions))
    fetched = read_pages(targets, clients, url_headers=url_headers, jobs=request.jobs)
    pages = [(page, PageStyle()) for page in fetched] + saved
    checks = None
    if builds is not None and request.against is not None:
        from toolkit.provenance import check_pages

        checks = tuple(check_pages([page for page, _ in pages], builds, request.against))
    written: list[Path] = []
    if request.out is not None:
        files = output_files(request.out, pages)
        write_files(files, durable=False)
        written = [path for path, _text in files]
    return ReportOutcome(request=request, pages=tuple(pages), checks=checks, written=tuple(written))
