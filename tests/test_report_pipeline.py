"""The report pipeline on saved pages (no registry): output files, provenance outcome, refusals."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path

import pytest

from tests.conftest import FIXTURES, REPO
from toolkit.errors import CheckFailedError, ConfigError, ToolkitError
from toolkit.pagesource import Fetched, RegistryReader
from toolkit.report import ReportRequest, run_report

SEED = FIXTURES / "published-python-3.8-rc-windowsservercore.md"
PAGE_2026 = FIXTURES / "published-python-3.14-windowsservercore.md"


class NoRegistry:
    """Fails the test if the pipeline asks a registry anything (saved pages need none)."""

    def get_manifest(self, repository: str, reference: str) -> Fetched:
        raise AssertionError("no registry request expected")

    def get_blob(self, repository: str, digest: str) -> bytes:
        raise AssertionError("no registry request expected")

    def blob_headers(self, repository: str, digest: str) -> Mapping[str, str]:
        raise AssertionError("no registry request expected")


def _clients(_registry: str) -> RegistryReader:
    return NoRegistry()


def _no_urls(url: str) -> Mapping[str, str]:
    raise AssertionError(f"no HEAD expected: {url}")


def test_saved_pages_are_written_one_file_per_tag(tmp_path: Path) -> None:
    out = tmp_path / "remote"
    outcome = run_report(
        ReportRequest(pages=(SEED, PAGE_2026), out=out), clients=_clients, url_headers=_no_urls
    )
    assert outcome.failure() is None
    assert sorted(p.name for p in out.iterdir()) == [
        "3.14-windowsservercore.md",
        "3.8-rc-windowsservercore.md",
    ]
    assert (out / "3.8-rc-windowsservercore.md").read_bytes() == SEED.read_bytes()
    assert (out / "3.14-windowsservercore.md").read_bytes() == PAGE_2026.read_bytes()
    assert outcome.written == (
        out / "3.8-rc-windowsservercore.md",
        out / "3.14-windowsservercore.md",
    )
    assert outcome.text() == SEED.read_text("utf-8") + "\n" + PAGE_2026.read_text("utf-8")


def test_provenance_outcome_fails_on_a_platform_matching_no_build(tmp_path: Path) -> None:
    ok = run_report(
        ReportRequest(pages=(SEED,), against=REPO / "dockerfiles", versions=REPO / "versions.json"),
        clients=_clients,
        url_headers=_no_urls,
    )
    assert ok.checks is not None
    assert [c.ok for c in ok.checks] == [True, True, True]
    assert ok.failure() is None
    assert ok.record()["provenance"][0]["build"] == "3.8-rc-windowsservercore-ltsc2016"

    unknown = tmp_path / "unknown.md"
    unknown.write_text(SEED.read_text("utf-8").replace("10.0.17134.1069", "10.0.12345.1"), "utf-8")
    bad = run_report(
        ReportRequest(
            pages=(unknown,), against=REPO / "dockerfiles", versions=REPO / "versions.json"
        ),
        clients=_clients,
        url_headers=_no_urls,
    )
    failure = bad.failure()
    assert isinstance(failure, CheckFailedError)
    assert failure.exit_code == 1
    assert "0 drifted, 1 matched no build" in failure.one_line()


def _dup_tag(tmp_path: Path) -> ReportRequest:
    other = tmp_path / "other.md"
    other.write_text(
        SEED.read_text("utf-8")
        .replace("python:", "pypy:")
        .replace("docker pull python@", "docker pull pypy@"),
        "utf-8",
    )
    return ReportRequest(pages=(SEED, other), out=tmp_path / "out")


def _bad_tag(tmp_path: Path) -> ReportRequest:
    page = tmp_path / "dots.md"
    page.write_text(SEED.read_text("utf-8").replace(":3.8-rc-windowsservercore`", ":..`"), "utf-8")
    return ReportRequest(pages=(page,), out=tmp_path / "out")


REFUSALS: dict[str, tuple[Callable[[Path], ReportRequest], str]] = {
    "nothing to report": (lambda _t: ReportRequest(), "nothing to report"),
    "reference without registry": (
        lambda _t: ReportRequest(references=("python:3.8",)),
        "names no registry",
    ),
    "reference without tag": (
        lambda _t: ReportRequest(references=("127.0.0.1:5000/python",)),
        "a page describes a tag",
    ),
    "missing page file": (lambda t: ReportRequest(pages=(t / "nope.md",)), "cannot read"),
    "against a missing directory": (
        lambda t: ReportRequest(pages=(SEED,), against=t / "none"),
        "not a directory",
    ),
    "two pages for one tag": (_dup_tag, "two pages for the tag"),
    "a tag that is no file name": (_bad_tag, "cannot name a file"),
}


@pytest.mark.parametrize("name", list(REFUSALS))
def test_refusals_write_nothing(name: str, tmp_path: Path) -> None:
    make, fragment = REFUSALS[name]
    request = make(tmp_path)
    with pytest.raises(ToolkitError) as caught:
        run_report(request, clients=_clients, url_headers=_no_urls)
    assert isinstance(caught.value, ConfigError)
    assert fragment in caught.value.one_line()
    assert not (tmp_path / "out").exists()
