"""``toolkit bump`` end to end: the CLI in a subprocess against a real HTTP server on 127.0.0.1."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.bump_upstream import (
    COMMITS,
    FTP,
    GET_PIP,
    GITHUB,
    NEW_COMMIT,
    PYPI,
    PythonOrg,
    Upstream,
    installer_bytes,
    publish_github,
    publish_pypi,
    running,
    sha256,
)
from tests.conftest import REPO, Result, run_toolkit
from tests.faultservers import (
    HEADERS_THEN_TRICKLE,
    Certificates,
    make_certificates,
    tls_server,
    trickling,
)

OLD_COMMIT = "309a56c5fd94bd1134053a541cb4657a4e47e09d"
OLD_GET_PIP_SHA = "57e3643ff19f018f8a00dfaa6b7e4620e3c1a7a2171fd218425366ec006b3bfe"
FAST = {
    "TOOLKIT_HTTP_TIMEOUT": "2",
    "TOOLKIT_HTTP_RETRIES": "2",
    "TOOLKIT_HTTP_BACKOFF": "0.01",
    "TOOLKIT_HTTP_RETRY_TIME": "5",
}
DOCKERFILE_1809 = Path("dockerfiles/3.8-rc/windows/windowsservercore-1809/Dockerfile")


@pytest.fixture
def workspace(workspace: Path) -> Path:
    """The repository's workspace with only the 2019 line, 3.8-rc (pip pinned with get-pip):
    these tests are about that recipe; tests/test_bump_installer.py covers today's lines."""
    whole = json.loads((workspace / "versions.json").read_text())
    (workspace / "versions.json").write_text(
        json.dumps({"3.8-rc": whole["3.8-rc"]}, indent=2) + "\n"
    )
    for line in whole:
        if line != "3.8-rc":
            shutil.rmtree(workspace / "dockerfiles" / line)
    return workspace


@pytest.fixture
def upstream() -> Iterator[Upstream]:
    with running(Upstream()) as server:
        yield server


def publish_standard(up: Upstream) -> None:
    """3.8.0 pre-releases up to rc2 with installers, pip 19.3 newest for 3.8, a new get-pip."""
    org = PythonOrg().release("3.7.4").release("3.7.5")
    for version in ("3.8.0b4", "3.8.0rc1", "3.8.0rc2"):
        org.release(version)
    org.publish(up)
    publish_pypi(up)
    publish_github(up)


def bump(ws: Path, up: Upstream, *args: str, **env: str) -> Result:
    return run_toolkit("bump", *args, cwd=ws, env={**up.env(), **FAST, **env})


def snapshot(ws: Path) -> dict[str, bytes]:
    files = [ws / "versions.json", *sorted((ws / "dockerfiles").rglob("*"))]
    return {str(p.relative_to(ws)): p.read_bytes() for p in files if p.is_file()}


def data(ws: Path) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((ws / "versions.json").read_text())
    return loaded


def write_versions(ws: Path, doc: dict[str, Any]) -> None:
    (ws / "versions.json").write_text(json.dumps(doc, indent=2) + "\n")


def plain_line(version: str, **extra: Any) -> dict[str, Any]:
    return {
        "version": version,
        "pip": {"version": "19.2.3"},
        "get-pip": {
            "url": f"https://github.com/pypa/get-pip/raw/{OLD_COMMIT}/get-pip.py",
            "sha256": OLD_GET_PIP_SHA,
        },
        "variants": ["windows/windowsservercore-1809"],
        **extra,
    }


# --- selection ------------------------------------------------------------------------------


def test_rc_line_bumps_to_newest_pre_release(workspace: Path, upstream: Upstream) -> None:
    publish_standard(upstream)
    result = bump(workspace, upstream)
    assert result.returncode == 0, result.stderr
    assert (
        "3.8-rc: 3.8.0rc1 -> 3.8.0rc2, pip 19.2.3 -> 19.3, get-pip 309a56c -> b60e232, "
        "installer sha256 added\n"
    ) in result.stdout
    line = data(workspace)["3.8-rc"]
    assert line["version"] == "3.8.0rc2"
    assert line["pip"]["version"] == "19.3"  # 19.3.1 is yanked, 20.1 needs Python >= 3.9
    # The pinned URL names github.com although the local server served the bytes.
    assert line["get-pip"] == {
        "url": f"https://github.com/pypa/get-pip/raw/{NEW_COMMIT}/public/get-pip.py",
        "sha256": sha256(GET_PIP),
    }
    assert line["checksums"] == {"windows": {"sha256": sha256(installer_bytes("3.8.0rc2"))}}
    # Key order and format are kept: the first keys stay where they were.
    assert list(line) == ["version", "pip", "get-pip", "variants", "checksums"]
    assert (workspace / "versions.json").read_text() == json.dumps(data(workspace), indent=2) + "\n"
    # The diff is printed, and the Dockerfiles were re-rendered.
    assert '-    "version": "3.8.0rc1",' in result.stdout
    assert '+    "version": "3.8.0rc2",' in result.stdout
    dockerfile = (workspace / DOCKERFILE_1809).read_text()
    assert "ENV PYTHON_VERSION 3.8.0rc2" in dockerfile
    assert f"ENV PYTHON_SHA256 {sha256(installer_bytes('3.8.0rc2'))}" in dockerfile
    check = run_toolkit("render", "--check", cwd=workspace)
    assert check.returncode == 0, check.stdout
    # get-pip: public/3.8/get-pip.py was tried first (404), then public/get-pip.py.
    raw = f"{GITHUB}/pypa/get-pip/raw/{NEW_COMMIT}/"
    assert upstream.count(raw + "public/3.8/get-pip.py") == 1
    assert upstream.count(raw + "public/get-pip.py") == 1
    assert upstream.count(raw + "get-pip.py") == 0
    # Only the 3.8.0 folder was listed; the b4/rc1 installers were never downloaded.
    assert upstream.count(f"{FTP}3.7.5/") == 0
    assert upstream.count(f"{FTP}3.8.0/python-3.8.0rc1-amd64.exe") == 0


def test_plain_line_takes_finals_only(workspace: Path, upstream: Upstream) -> None:
    write_versions(workspace, {"3.8": plain_line("3.8.0")})
    org = PythonOrg().release("3.8.0").release("3.8.1").release("3.8.2rc1")
    org.publish(upstream)
    publish_pypi(upstream)
    publish_github(upstream, paths=["public/3.8/get-pip.py"])
    result = bump(workspace, upstream, "--no-render")
    assert result.returncode == 0, result.stderr
    line = data(workspace)["3.8"]
    assert line["version"] == "3.8.1"
    assert line["get-pip"]["url"].endswith(f"/{NEW_COMMIT}/public/3.8/get-pip.py")
    assert "3.8: 3.8.0 -> 3.8.1, pip 19.2.3 -> 19.3" in result.stdout
    assert "now run: toolkit render" in result.stderr


def test_installer_not_yet_published(workspace: Path, upstream: Upstream) -> None:
    org = PythonOrg().release("3.8.0rc1").release("3.8.0rc2", installer=False)
    org.publish(upstream)
    publish_pypi(upstream)
    publish_github(upstream, commit=OLD_COMMIT, paths=["get-pip.py"])
    result = bump(workspace, upstream, "--json")
    assert result.returncode == 0, result.stderr
    assert "note: 3.8-rc: no Windows installer yet for 3.8.0rc2; not bumping to it" in result.stderr
    report = json.loads(result.stdout)
    assert report["lines"][0]["python"] == {"old": "3.8.0rc1", "new": "3.8.0rc1"}
    assert data(workspace)["3.8-rc"]["version"] == "3.8.0rc1"
    # The missing installer checksum of the pinned version is filled in.
    assert report["lines"][0]["windows_sha256"]["new"] == sha256(installer_bytes("3.8.0rc1"))
    assert upstream.count(f"{FTP}3.8.0/python-3.8.0rc2-amd64.exe") == 0


def test_line_ended_for_windows(workspace: Path, upstream: Upstream) -> None:
    win_sha = sha256(installer_bytes("3.8.10"))
    line = plain_line("3.8.10", checksums={"windows": {"sha256": win_sha}})
    line["get-pip"] = {
        "url": f"https://github.com/pypa/get-pip/raw/{NEW_COMMIT}/public/3.8/get-pip.py",
        "sha256": sha256(GET_PIP),
    }
    line["pip"]["version"] = "19.3"
    write_versions(workspace, {"3.8": line})
    org = PythonOrg().release("3.8.9").release("3.8.10")
    for micro in range(11, 21):
        org.release(f"3.8.{micro}", installer=False)
    org.publish(upstream)
    publish_pypi(upstream)
    publish_github(upstream)
    before = snapshot(workspace)
    result = bump(workspace, upstream)
    assert result.returncode == 0, result.stderr
    assert (
        "note: 3.8: the line has ended for Windows: 3.8.11 to 3.8.20 (10 releases) have no "
        "Windows installer; newest with one is 3.8.10"
    ) in result.stderr
    assert "3.8: up to date (3.8.10, pip 19.3)" in result.stdout
    assert "up to date, nothing written" in result.stderr
    assert snapshot(workspace) == before
    # Nothing was downloaded: same installer, same get-pip commit.
    assert not [h for h in upstream.hits if h.path.endswith((".exe", ".py"))]


def test_rc_line_with_a_final_is_reported_not_changed(workspace: Path, upstream: Upstream) -> None:
    PythonOrg().release("3.8.0rc1").release("3.8.0").publish(upstream)
    publish_pypi(upstream)
    publish_github(upstream)
    before = snapshot(workspace)
    result = bump(workspace, upstream)
    assert result.returncode == 0, result.stderr
    assert "note: 3.8-rc: 3.8.0 is final; rename the line to 3.8" in result.stderr
    assert snapshot(workspace) == before


# --- network failures: nothing written, the URL named, exit 6 -------------------------------


def test_500_then_success_is_retried(workspace: Path, upstream: Upstream) -> None:
    publish_standard(upstream)
    upstream.routes[f"{PYPI}pip/json"].fail_first = 2
    result = bump(workspace, upstream)
    assert result.returncode == 0, result.stderr
    assert upstream.count(f"{PYPI}pip/json") == 3
    assert data(workspace)["3.8-rc"]["pip"]["version"] == "19.3"


def test_404_is_not_retried_and_writes_nothing(workspace: Path, upstream: Upstream) -> None:
    publish_standard(upstream)
    del upstream.routes[f"{PYPI}pip/json"]
    before = snapshot(workspace)
    result = bump(workspace, upstream)
    assert result.returncode == 6
    assert f"error: {upstream.base}{PYPI}pip/json: HTTP 404 Not Found" in result.stderr
    assert "Traceback" not in result.stderr
    assert upstream.count(f"{PYPI}pip/json") == 1
    assert snapshot(workspace) == before


def test_a_mirror_password_never_reaches_the_output(workspace: Path, upstream: Upstream) -> None:
    publish_standard(upstream)
    del upstream.routes[f"{PYPI}pip/json"]
    host = upstream.base.removeprefix("http://")
    mirror = f"http://bot:s3cret-token@{host}{PYPI}"
    result = bump(workspace, upstream, TOOLKIT_PYPI_URL=mirror)
    assert result.returncode == 6
    assert f"error: http://***@{host}{PYPI}pip/json: HTTP 404 Not Found" in result.stderr
    assert "s3cret" not in result.stdout + result.stderr
    bad = bump(workspace, upstream, TOOLKIT_PYPI_URL="ftp://bot:s3cret-token@mirror.invalid/")
    assert bad.returncode == 2
    assert "'ftp://***@mirror.invalid/' is not an http(s) URL" in bad.stderr
    assert "s3cret" not in bad.stdout + bad.stderr


def test_timeout_fails_cleanly(workspace: Path, upstream: Upstream) -> None:
    publish_standard(upstream)
    upstream.routes[COMMITS].delay = 10.0  # far beyond the bound below, even on a loaded machine
    before = snapshot(workspace)
    start = time.monotonic()
    result = bump(workspace, upstream, TOOLKIT_HTTP_TIMEOUT="0.3", TOOLKIT_HTTP_RETRIES="1")
    assert result.returncode == 6
    assert f"error: {upstream.base}{COMMITS}: timed out (timeout 0.3s)" in result.stderr
    assert "gave up after 2 attempts" in result.stderr
    assert time.monotonic() - start < 8.0  # not 2 x 10 s: each attempt gave up at 0.3 s
    assert upstream.routes[COMMITS].served == 2
    assert snapshot(workspace) == before


def test_trickled_headers_do_not_hold_bump(workspace: Path, upstream: Upstream) -> None:
    """Issue 13, 7: the status line, then one header byte every 0.2 s. Each byte comes within
    the read timeout, so requests alone waited for as long as the server liked (1200 s seen)."""
    publish_standard(upstream)
    before = snapshot(workspace)
    with trickling(HEADERS_THEN_TRICKLE, interval=0.2, limit=120) as slow:
        start = time.monotonic()
        result = bump(
            workspace, upstream, "--timeout", "1", "--retries", "0",
            TOOLKIT_PYTHON_FTP_URL=slow.base + FTP,
        )  # fmt: skip
        took = time.monotonic() - start
    assert result.returncode == 6, result.stderr
    assert (
        f"error: {slow.base}{FTP}: the status line and headers did not arrive within 2s "
        "(gave up after 1 attempt)"
    ) in result.stderr
    assert took < 30  # the bound is 2 s; the rest is start-up on a loaded machine
    assert slow.connections == 1
    assert snapshot(workspace) == before


def test_a_trickled_answer_ends_at_the_request_time(workspace: Path, upstream: Upstream) -> None:
    publish_standard(upstream)
    url = f"{FTP}3.8.0/python-3.8.0rc2-amd64.exe"
    upstream.routes[url].drip = 0.5  # 1 KiB every 0.5 s, each well within --timeout
    before = snapshot(workspace)
    start = time.monotonic()
    result = bump(workspace, upstream, "--request-time", "1", "--retries", "1")
    assert result.returncode == 6, result.stderr
    assert (
        f"error: {upstream.base}{url}: the whole answer did not arrive within 1s "
        "(gave up after 2 attempts)"
    ) in result.stderr
    assert time.monotonic() - start < 30
    assert snapshot(workspace) == before


@pytest.fixture(scope="module")
def certificates(tmp_path_factory: pytest.TempPathFactory) -> Certificates:
    return make_certificates(tmp_path_factory.mktemp("tls"))


def test_https_redirect_to_http_is_refused_and_nothing_pinned(
    workspace: Path, upstream: Upstream, certificates: Certificates
) -> None:
    """Issue 13, 8: github.com's raw get-pip (here an HTTPS server with a test CA) redirects to
    plain HTTP. The redirect is refused naming both URLs; no sha256 of those bytes is pinned."""
    publish_standard(upstream)
    before = snapshot(workspace)
    with tls_server(certificates) as tls:
        tls.redirect_rest_to = upstream.base
        result = bump(
            workspace, upstream, "--retries", "0",
            TOOLKIT_GITHUB_URL=tls.base + GITHUB, REQUESTS_CA_BUNDLE=str(certificates.ca),
        )  # fmt: skip
    path = f"{GITHUB}/pypa/get-pip/raw/{NEW_COMMIT}/public/3.8/get-pip.py"
    assert result.returncode == 6, result.stderr
    assert (
        f"error: {tls.base}{path} redirects to {upstream.base}{path}: refused, a redirect from "
        "https to plain http would let anyone on the path change the bytes"
    ) in result.stderr
    assert tls.hits == [path]
    assert not [h for h in upstream.hits if h.path.startswith(GITHUB)]  # nothing in the clear
    assert snapshot(workspace) == before


def test_https_redirects_within_https_are_followed(
    workspace: Path, upstream: Upstream, certificates: Certificates
) -> None:
    """The control: the same bump through an HTTPS mirror that redirects within HTTPS."""
    publish_standard(upstream)
    with tls_server(certificates) as tls:
        for path in ("public/3.8/get-pip.py", "public/get-pip.py", "get-pip.py"):
            old = f"{GITHUB}/pypa/get-pip/raw/{NEW_COMMIT}/{path}"
            tls.redirect(old, f"/moved{old}")
        tls.serve(f"/moved{GITHUB}/pypa/get-pip/raw/{NEW_COMMIT}/public/get-pip.py", GET_PIP)
        result = bump(
            workspace, upstream, TOOLKIT_GITHUB_URL=tls.base + GITHUB,
            REQUESTS_CA_BUNDLE=str(certificates.ca),
        )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert data(workspace)["3.8-rc"]["get-pip"]["sha256"] == sha256(GET_PIP)


def test_plain_http_to_a_remote_mirror_is_refused(workspace: Path, upstream: Upstream) -> None:
    """Bytes whose sha256 bump pins must not cross a network in the clear: plain http is for
    loopback mirrors only (refused before anything is sent)."""
    result = bump(workspace, upstream, TOOLKIT_GITHUB_URL="http://mirror.example/gh")
    assert result.returncode == 2, result.stderr
    assert "TOOLKIT_GITHUB_URL: plain http:// to mirror.example is refused" in result.stderr
    assert upstream.count() == 0


@pytest.mark.parametrize(
    "url",
    [  # hosts are addresses or missing: a regression must not send a DNS query
        "http://user@/pypi/",  # user info and no host
        "http://127.0.0.1:0/pypi/",  # port 0
        "http://127.0.0.1 /pypi/",
        "https://127.0.0.1:99999/",
        "http://[::1/",
        "http://127.0.0.2\\@127.0.0.1/",
        "https://127.0.0.1/\x01/",
        "https:///pypi/",
        "http://127.0.0.1:80:80/pypi/",
    ],
)
def test_a_malformed_url_is_a_usage_error(workspace: Path, upstream: Upstream, url: str) -> None:
    """Issue 13, 12: exit 2 (usage) before anything is sent, not 6 (upstream failed)."""
    publish_standard(upstream)
    result = bump(workspace, upstream, "--pypi-url", url, "--retries", "0")
    assert result.returncode == 2, result.stderr
    assert "error: TOOLKIT_PYPI_URL: " in result.stderr
    assert "Traceback" not in result.stderr
    assert upstream.count() == 0


def test_truncated_installer_fails_cleanly(workspace: Path, upstream: Upstream) -> None:
    publish_standard(upstream)
    url = f"{FTP}3.8.0/python-3.8.0rc2-amd64.exe"
    upstream.routes[url].truncate_to = 1000
    before = snapshot(workspace)
    result = bump(workspace, upstream)
    assert result.returncode == 6
    assert f"{upstream.base}{url}: truncated body: received 1000 of 4096 bytes" in result.stderr
    assert upstream.count(url) == 3
    assert snapshot(workspace) == before


def test_unknown_line_is_a_usage_error(workspace: Path, upstream: Upstream) -> None:
    result = bump(workspace, upstream, "3.8")
    assert result.returncode == 2
    assert "no line '3.8'" in result.stderr
    assert "did you mean '3.8-rc'?" in result.stderr
    assert upstream.count() == 0


def test_bad_source_url_is_a_config_error(workspace: Path, upstream: Upstream) -> None:
    result = bump(workspace, upstream, TOOLKIT_PYPI_URL="ftp://mirror.invalid/pypi/")
    assert result.returncode == 2
    assert "TOOLKIT_PYPI_URL: 'ftp://mirror.invalid/pypi/' is not an http(s) URL" in result.stderr


# --- checksums ------------------------------------------------------------------------------


def test_sha256_recomputed_only_when_the_url_changes(workspace: Path, upstream: Upstream) -> None:
    publish_standard(upstream)
    first = bump(workspace, upstream)
    assert first.returncode == 0, first.stderr
    pinned = data(workspace)["3.8-rc"]["get-pip"]
    assert pinned["sha256"] == sha256(GET_PIP) != OLD_GET_PIP_SHA

    # Same commit upstream: the URL is immutable, so nothing is downloaded again.
    upstream.reset_log()
    again = bump(workspace, upstream)
    assert again.returncode == 0, again.stderr
    assert "3.8-rc: up to date (3.8.0rc2, pip 19.3)" in again.stdout
    assert not [h for h in upstream.hits if h.path.endswith((".exe", ".py"))]

    # A new commit: new URL, new bytes, new sha256.
    newer = "c" * 40
    publish_github(upstream, commit=newer, body=GET_PIP + b"# changed\n")
    third = bump(workspace, upstream)
    assert third.returncode == 0, third.stderr
    assert data(workspace)["3.8-rc"]["get-pip"] == {
        "url": f"https://github.com/pypa/get-pip/raw/{newer}/public/get-pip.py",
        "sha256": sha256(GET_PIP + b"# changed\n"),
    }
    assert "3.8-rc: 3.8.0rc2, get-pip b60e232 -> ccccccc" in third.stdout


# --- writing --------------------------------------------------------------------------------


def test_dry_run_writes_nothing(workspace: Path, upstream: Upstream) -> None:
    publish_standard(upstream)
    before = snapshot(workspace)
    result = bump(workspace, upstream, "--dry-run")
    assert result.returncode == 0, result.stderr
    assert '+    "version": "3.8.0rc2",' in result.stdout
    assert "+ENV PYTHON_VERSION 3.8.0rc2" in result.stdout  # the Dockerfile diff too
    assert "+++ b/dockerfiles/3.8-rc/windows/windowsservercore-1809/Dockerfile" in result.stdout
    assert "dry run" in result.stderr
    assert snapshot(workspace) == before
    assert sorted(p.name for p in workspace.iterdir()) == [
        "dockerfiles",
        "templates",
        "versions.json",
    ]


def test_interrupted_write_leaves_everything(workspace: Path, upstream: Upstream) -> None:
    """A real write failure: the file size limit lets versions.json be staged, not a Dockerfile."""
    publish_standard(upstream)
    before = snapshot(workspace)
    limited = (
        "import resource, runpy, sys; "
        "resource.setrlimit(resource.RLIMIT_FSIZE, (1500, 1500)); "
        "sys.argv = ['toolkit', 'bump']; runpy.run_module('toolkit', run_name='__main__')"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("TOOLKIT_")}
    env.update({**upstream.env(), **FAST, "PYTHONPATH": str(REPO), "PYTHONDONTWRITEBYTECODE": "1"})
    proc = subprocess.run(
        [sys.executable, "-c", limited],
        cwd=workspace,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 5, proc.stderr
    assert "Dockerfile" in proc.stderr
    assert "cannot write" in proc.stderr
    assert snapshot(workspace) == before
    leftovers = [p for p in workspace.rglob(".*.tmp")]
    assert leftovers == []


def test_add_starts_a_new_line(workspace: Path, upstream: Upstream) -> None:
    publish_standard(upstream)
    org = PythonOrg().release("3.8.0rc1")
    for version in ("3.9.0a1", "3.9.0a2"):
        org.release(version)
    org.release("3.9.0a3", installer=False)
    org.publish(upstream)
    result = bump(workspace, upstream, "--add", "3.9-rc", "--json")
    assert result.returncode == 0, result.stderr
    doc = data(workspace)
    assert list(doc) == ["3.9-rc", "3.8-rc"]
    new = doc["3.9-rc"]
    assert new["version"] == "3.9.0a2"
    assert new["pip"]["version"] == "20.1"  # requires_python >=3.9 admits 3.9.0a2
    assert new["variants"] == doc["3.8-rc"]["variants"]
    assert new["checksums"]["windows"]["sha256"] == sha256(installer_bytes("3.9.0a2"))
    assert new["get-pip"]["url"].endswith(f"/{NEW_COMMIT}/public/get-pip.py")
    assert doc["3.8-rc"]["version"] == "3.8.0rc1"  # --add alone does not bump other lines
    report = json.loads(result.stdout)
    assert report["written"] is True
    assert [(x["line"], x["added"]) for x in report["lines"]] == [("3.9-rc", True)]
    for release in ("1809", "1803", "ltsc2016"):
        path = workspace / f"dockerfiles/3.9-rc/windows/windowsservercore-{release}/Dockerfile"
        assert "ENV PYTHON_VERSION 3.9.0a2" in path.read_text()


def test_add_existing_or_finished_line_fails(workspace: Path, upstream: Upstream) -> None:
    publish_standard(upstream)
    again = bump(workspace, upstream, "--add", "3.8-rc")
    assert again.returncode == 2
    assert "line '3.8-rc' already exists" in again.stderr
    before = snapshot(workspace)
    final = bump(workspace, upstream, "--add", "3.7-rc")
    assert final.returncode == 6
    assert "3.7.5 is final" in final.stderr
    assert "add the line 3.7 instead of 3.7-rc" in final.stderr
    assert snapshot(workspace) == before


def test_add_line_without_a_final_suggests_rc(workspace: Path, upstream: Upstream) -> None:
    publish_standard(upstream)
    PythonOrg().release("3.9.0a1").publish(upstream)
    before = snapshot(workspace)
    result = bump(workspace, upstream, "--add", "3.9")
    assert result.returncode == 6
    assert "no final 3.9 release with a Windows installer" in result.stderr
    assert "try --add 3.9-rc" in result.stderr
    assert snapshot(workspace) == before
