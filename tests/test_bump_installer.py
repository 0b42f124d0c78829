"""``toolkit bump`` on today's lines (pip from the installer), and the Sigstore cross-check.

The CLI runs in a subprocess against a real HTTP server on 127.0.0.1 (tests/bump_upstream.py)
that publishes python.org's folders with installers and, beside them, Sigstore bundles in
python.org's format (``python-<version>-amd64.exe.sigstore``).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.bump_upstream import (
    FTP,
    GITHUB,
    PYPI,
    PythonOrg,
    Upstream,
    installer_bytes,
    publish_github,
    publish_pypi,
    running,
    sha256,
)
from tests.conftest import Result, run_toolkit

FAST = {
    "TOOLKIT_HTTP_TIMEOUT": "2",
    "TOOLKIT_HTTP_RETRIES": "1",
    "TOOLKIT_HTTP_BACKOFF": "0.01",
    "TOOLKIT_HTTP_RETRY_TIME": "5",
}
D2025 = Path("dockerfiles/3.14/windows/windowsservercore-ltsc2025/Dockerfile")
NANO = Path("dockerfiles/3.14/windows/nanoserver-ltsc2022/Dockerfile")


@pytest.fixture
def upstream() -> Iterator[Upstream]:
    with running(Upstream()) as server:
        yield server


def bump(ws: Path, up: Upstream, *args: str) -> Result:
    return run_toolkit("bump", *args, cwd=ws, env={**up.env(), **FAST})


def data(ws: Path) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((ws / "versions.json").read_text())
    return loaded


def snapshot(ws: Path) -> dict[str, bytes]:
    files = [ws / "versions.json", *sorted((ws / "dockerfiles").rglob("*"))]
    return {str(p.relative_to(ws)): p.read_bytes() for p in files if p.is_file()}


def only_installer_requests(up: Upstream) -> None:
    """A bump of lines without get-pip asks python.org only: no PyPI, no GitHub."""
    assert up.count() > 0
    assert all(h.path.startswith(FTP) for h in up.hits), [h.path for h in up.hits]


def test_a_line_without_get_pip_changes_version_and_installer_sha256_only(
    workspace: Path, upstream: Upstream
) -> None:
    PythonOrg().release("3.14.7", sigstore=True).release("3.14.8", sigstore=True).publish(upstream)
    before = data(workspace)
    result = bump(workspace, upstream, "3.14", "--json")
    assert result.returncode == 0, result.stderr
    after = data(workspace)
    new_sha = sha256(installer_bytes("3.14.8"))
    assert after["3.14"] == {
        "version": "3.14.8",
        "checksums": {"windows": {"sha256": new_sha}},
        "variants": before["3.14"]["variants"],
    }
    assert list(after["3.14"]) == ["version", "checksums", "variants"]
    assert {k: v for k, v in after.items() if k != "3.14"} == {
        k: v for k, v in before.items() if k != "3.14"
    }
    record = json.loads(result.stdout)["lines"][0]
    assert record["python"] == {"old": "3.14.7", "new": "3.14.8"}
    assert record["pip"] == {"old": None, "new": None}
    assert record["get_pip"]["new"] == {"url": None, "sha256": None}
    assert record["windows_sha256"]["new"] == new_sha
    assert record["windows_sha256"]["sigstore"] is True
    # Every Dockerfile of the line was re-rendered, the nanoserver one too.
    for path in (D2025, NANO):
        text = (workspace / path).read_text()
        assert "ENV PYTHON_VERSION 3.14.8" in text
        assert f"ENV PYTHON_SHA256 {new_sha}" in text
    assert run_toolkit("render", "--check", cwd=workspace).returncode == 0
    only_installer_requests(upstream)
    assert upstream.count(f"{FTP}3.14.8/python-3.14.8-amd64.exe.sigstore") == 1
    assert upstream.count(f"{FTP}3.14.7/python-3.14.7-amd64.exe") == 0


def test_the_summary_line_of_a_bump_without_get_pip(workspace: Path, upstream: Upstream) -> None:
    PythonOrg().release("3.13.15").release("3.13.16", sigstore=True).publish(upstream)
    result = bump(workspace, upstream, "3.13")
    assert result.returncode == 0, result.stderr
    assert "3.13: 3.13.15 -> 3.13.16\n" in result.stdout
    assert '+    "version": "3.13.16",' in result.stdout
    assert "pip" not in result.stdout.split("3.13: 3.13.15")[1]


def test_a_bundle_that_disagrees_fails_the_bump_naming_both_values(
    workspace: Path, upstream: Upstream
) -> None:
    lie = b"some other installer"
    org = PythonOrg().release("3.14.7").release("3.14.8", signs=lie)
    org.publish(upstream)
    before = snapshot(workspace)
    result = bump(workspace, upstream, "3.14")
    assert result.returncode == 6, result.stdout + result.stderr
    downloaded, signed = sha256(installer_bytes("3.14.8")), sha256(lie)
    message = result.stderr.strip()
    assert message.startswith("error: ")
    assert len(message.splitlines()) == 1
    assert f"the downloaded file's sha256 is {downloaded}" in message
    assert f"the Sigstore bundle {upstream.base}{FTP}3.14.8/python-3.14.8-amd64.exe.sigstore" in (
        message
    )
    assert f"says {signed}; nothing written" in message
    assert snapshot(workspace) == before


def test_a_bundle_that_disagrees_fails_a_get_pip_line_too(
    workspace: Path, upstream: Upstream
) -> None:
    org = PythonOrg().release("3.8.0rc1").release("3.8.0rc2", signs=b"not it")
    org.publish(upstream)
    publish_pypi(upstream)
    publish_github(upstream)
    before = snapshot(workspace)
    result = bump(workspace, upstream, "3.8-rc")
    assert result.returncode == 6
    assert "the Sigstore bundle" in result.stderr
    assert snapshot(workspace) == before


def test_without_a_bundle_the_download_alone_decides_with_a_note(
    workspace: Path, upstream: Upstream
) -> None:
    PythonOrg().release("3.14.7").release("3.14.8").publish(upstream)
    old = data(workspace)["3.14"]["checksums"]["windows"]["sha256"]
    result = bump(workspace, upstream, "3.14", "--json")
    assert result.returncode == 0, result.stderr
    assert (
        "note: 3.14: no Sigstore bundle (python-3.14.8-amd64.exe.sigstore): the sha256 is "
        "the download's alone"
    ) in result.stderr
    record = json.loads(result.stdout)["lines"][0]
    assert record["windows_sha256"] == {
        "old": old,
        "new": sha256(installer_bytes("3.14.8")),
        "sigstore": False,
    }
    assert (
        data(workspace)["3.14"]["checksums"]["windows"]["sha256"] == record["windows_sha256"]["new"]
    )


@pytest.mark.parametrize(
    ("bundle", "why"),
    [
        (b"{}", "no messageSignature.messageDigest"),
        (
            json.dumps(
                {"messageSignature": {"messageDigest": {"algorithm": "SHA2_384", "digest": ""}}}
            ).encode(),
            "'SHA2_384', not SHA2_256",
        ),
        (
            json.dumps(
                {"messageSignature": {"messageDigest": {"algorithm": "SHA2_256", "digest": "!!"}}}
            ).encode(),
            "not 32 bytes of base64",
        ),
        (b"<html>not json</html>", "is not JSON"),
    ],
)
def test_a_malformed_bundle_fails_the_bump(
    workspace: Path, upstream: Upstream, bundle: bytes, why: str
) -> None:
    PythonOrg().release("3.14.7").release("3.14.8", sigstore=True).publish(upstream)
    upstream.add(f"{FTP}3.14.8/python-3.14.8-amd64.exe.sigstore", bundle)
    before = snapshot(workspace)
    result = bump(workspace, upstream, "3.14")
    assert result.returncode == 6, result.stderr
    assert why in result.stderr
    assert snapshot(workspace) == before


def test_a_listed_bundle_that_is_missing_fails_the_bump(
    workspace: Path, upstream: Upstream
) -> None:
    PythonOrg().release("3.14.7").release("3.14.8", sigstore=True).publish(upstream)
    del upstream.routes[f"{FTP}3.14.8/python-3.14.8-amd64.exe.sigstore"]
    result = bump(workspace, upstream, "3.14")
    assert result.returncode == 6
    assert "python-3.14.8-amd64.exe.sigstore: HTTP 404 although the folder lists it" in (
        result.stderr
    )


def test_add_copies_the_recipe_of_the_newest_line(workspace: Path, upstream: Upstream) -> None:
    """The newest line takes pip from the installer: so does a line added after it."""
    org = PythonOrg().release("3.16.0a1", sigstore=True).release("3.16.0a2", sigstore=True)
    org.publish(upstream)
    result = bump(workspace, upstream, "--add", "3.16-rc")
    assert result.returncode == 0, result.stderr
    assert "3.16-rc: added at 3.16.0a2, pip from the installer" in result.stdout
    after = data(workspace)
    assert next(iter(after)) == "3.16-rc"
    assert after["3.16-rc"] == {
        "version": "3.16.0a2",
        "checksums": {"windows": {"sha256": sha256(installer_bytes("3.16.0a2"))}},
        "variants": after["3.15-rc"]["variants"],
    }
    dockerfile = workspace / "dockerfiles/3.16-rc/windows/nanoserver-ltsc2025/Dockerfile"
    assert "ENV PYTHON_VERSION 3.16.0a2" in dockerfile.read_text()
    only_installer_requests(upstream)


def test_a_file_with_both_recipes_bumps_each_its_own_way(
    workspace: Path, upstream: Upstream
) -> None:
    org = PythonOrg().release("3.8.0rc1").release("3.8.0rc2")
    org.release("3.14.7", sigstore=True).release("3.14.8", sigstore=True)
    org.publish(upstream)
    publish_pypi(upstream)
    publish_github(upstream)
    result = bump(workspace, upstream, "3.8-rc", "3.14", "--json", "--no-render")
    assert result.returncode == 0, result.stderr
    lines = {r["line"]: r for r in json.loads(result.stdout)["lines"]}
    assert lines["3.8-rc"]["pip"]["new"] == "19.3"
    assert lines["3.8-rc"]["windows_sha256"]["sigstore"] is False
    assert lines["3.14"]["pip"]["new"] is None
    assert lines["3.14"]["windows_sha256"]["sigstore"] is True
    after = data(workspace)
    assert "get-pip" in after["3.8-rc"]
    assert "get-pip" not in after["3.14"]
    assert upstream.count(f"{PYPI}pip/json") == 1
    assert any(h.path.startswith(GITHUB) for h in upstream.hits)
