"""``toolkit build`` and ``toolkit verify`` as a user runs them (``python -m toolkit`` in a
subprocess) against the three real engines, one of them over TLS, configured by hosts.toml.

The engines are Linux, so every run passes ``--no-preflight`` (documented for engines the check
does not know). ``--build-arg TOOLKIT_TEST=...`` gives each test its own cache key, so targets
built by other test modules on the same engines are not skipped here.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import REPO, run_toolkit
from tests.docker import engines as eng
from tests.docker.matrixspace import containers, insert_in_template, line_of, render_workspace
from toolkit.matrix import Build


def _hosts_toml(root: Path, engines: dict[str, eng.Engine], **override: str) -> Path:
    parts = []
    for release, engine in engines.items():
        if release in override:
            parts.append(f'[hosts.{release}]\nurl = "{override[release]}"\n')
        elif engine.tls_url is not None and engine.tls is not None:
            parts.append(
                f'[hosts.{release}]\nurl = "{engine.tls_url}"\nca = "{engine.tls.ca}"\n'
                f'cert = "{engine.tls.cert}"\nkey = "{engine.tls.key}"\n'
            )
        else:
            parts.append(f'[hosts.{release}]\nurl = "{engine.url}"\n')
    path = root / "hosts.toml"
    path.write_text("\n".join(parts))
    return path


def _assert_clean(clients: dict[str, Any]) -> None:
    for release, client in clients.items():
        assert containers(client.api) == [], f"containers left on engine {release}"


def _workspace(
    root: Path, engines: dict[str, eng.Engine], version: str, pip: str, **override: str
) -> list[Build]:
    builds = render_workspace(root, {line_of(version): (version, pip)})
    _hosts_toml(root, engines, **override)
    return builds


def _build(root: Path, *extra: str, env: dict[str, str] | None = None) -> Any:
    return run_toolkit(
        "build",
        "--no-preflight",
        "--hosts",
        "hosts.toml",
        "--pull",
        "never",
        "--network",
        "none",
        "--repo",
        "cli/python",
        "--report",
        "build.json",
        *extra,
        cwd=root,
        env=env,
        timeout=240,
    )


def test_build_verify_report_and_a_noop_rerun(
    engines: dict[str, eng.Engine],
    clients: dict[str, Any],
    standin_python_version: str,
    standin_pip_version: str,
    tmp_path: Path,
) -> None:
    builds = _workspace(tmp_path, engines, standin_python_version, standin_pip_version)
    summary_md = tmp_path / "summary.md"
    first = _build(
        tmp_path,
        "--build-arg",
        f"TOOLKIT_TEST={tmp_path.name}",
        env={"GITHUB_STEP_SUMMARY": str(summary_md)},
    )
    assert first.returncode == 0, first.stdout + first.stderr
    report = json.loads((tmp_path / "build.json").read_text())
    assert report["ok"] is True
    assert [r["result"] for r in report["results"]] == ["built"] * 3
    assert [r["id"] for r in report["results"]] == [b.id for b in builds]
    for record in report["results"]:
        assert [c["passed"] for c in record["checks"]] == [True] * 6
        assert (tmp_path / record["log"]).is_file()
    assert report["results"][0]["host"] == "tcp://127.0.0.1:2376"  # 1809 over TLS
    # Plain output (not a TTY): a line per step and a result line per target, then the table.
    assert f"[{builds[0].id}] step 1/" in first.stdout
    assert f"[{builds[0].id}] built in" in first.stdout
    table = first.stdout[first.stdout.index("id  ") :].splitlines()
    assert table[0].split()[:4] == ["id", "host", "isolation", "result"]
    assert table[-1] == "3 target(s): 3 built"
    markdown = summary_md.read_text()
    assert "| id | host | isolation | result | duration | image id | size |" in markdown
    assert markdown.count("| built |") == 3

    # The same again: nothing to build, nothing to verify; on GitHub, folds per target.
    started = time.monotonic()
    again = _build(
        tmp_path,
        "--build-arg",
        f"TOOLKIT_TEST={tmp_path.name}",
        env={"GITHUB_ACTIONS": "true"},
    )
    elapsed = time.monotonic() - started
    assert again.returncode == 0, again.stdout + again.stderr
    rerun = json.loads((tmp_path / "build.json").read_text())
    assert [r["result"] for r in rerun["results"]] == ["skipped"] * 3
    assert [r["image_id"] for r in rerun["results"]] == [r["image_id"] for r in report["results"]]
    for b in builds:
        assert f"::group::{b.id}: skipped" in again.stdout
    assert again.stdout.count("::endgroup::") == 3
    assert elapsed < 5, f"no-op re-run took {elapsed:.2f}s"

    # toolkit verify on the built images: every check separately, JUnit and JSON.
    checked = run_toolkit(
        "verify",
        "--no-preflight",
        "--hosts",
        "hosts.toml",
        "--repo",
        "cli/python",
        "--junit",
        "junit.xml",
        "--json",
        cwd=tmp_path,
        env={"GITHUB_STEP_SUMMARY": str(summary_md)},
        timeout=120,
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    verify_md = summary_md.read_text()[len(markdown) :]  # appended after the build's
    assert verify_md.startswith("### toolkit verify\n")
    assert verify_md.count(" | pass | ") == 18
    assert "18 check(s) on 3 image(s): 0 failed" in verify_md
    document = json.loads(checked.stdout)
    assert document["ok"] is True
    assert sorted(document["results"]) == sorted(b.id for b in builds)
    junit = ET.parse(tmp_path / "junit.xml").getroot()
    assert junit.get("tests") == "18"
    assert junit.get("failures") == "0"
    _assert_clean(clients)


def test_failures_keep_the_others_going_and_set_the_exit_code(
    engines: dict[str, eng.Engine],
    clients: dict[str, Any],
    standin_python_version: str,
    standin_pip_version: str,
    tmp_path: Path,
) -> None:
    builds = _workspace(
        tmp_path,
        engines,
        standin_python_version,
        standin_pip_version,
        **{"1803": f"unix://{tmp_path}/no-engine-here.sock"},
    )
    failing = next(b for b in builds if b.release.key == "ltsc2016")
    insert_in_template(tmp_path, f"RUN Write-Host {eng.FAIL_MARKER}", failing.release.key)
    result = _build(tmp_path, "--build-arg", f"TOOLKIT_TEST={tmp_path.name}", "--no-verify")
    assert result.returncode == 10, result.stdout + result.stderr
    report = {r["id"]: r for r in json.loads((tmp_path / "build.json").read_text())["results"]}
    by_release = {b.release.key: report[b.id] for b in builds}
    assert by_release["1809"]["result"] == "built"
    assert by_release["1803"]["result"] == "failed"
    assert "cannot be reached" in by_release["1803"]["message"]
    assert by_release["ltsc2016"]["result"] == "failed"
    assert "returned a non-zero code: 1" in by_release["ltsc2016"]["message"]
    # The failing target's log tail is printed, and the run ends with a one-line error.
    assert "last " in result.stdout
    assert eng.FAIL_MARKER in result.stdout
    assert "error: 2 of 3 target(s) failed" in result.stderr
    _assert_clean(clients)


def test_fail_fast_stops_scheduling_and_dry_run_builds_nothing(
    engines: dict[str, eng.Engine],
    clients: dict[str, Any],
    standin_python_version: str,
    standin_pip_version: str,
    tmp_path: Path,
) -> None:
    # Everything on one engine, one at a time: the first target fails, the others never start.
    one = engines["ltsc2016"].url
    builds = _workspace(
        tmp_path,
        engines,
        standin_python_version,
        standin_pip_version,
        **{"1809": one, "1803": one},
    )
    insert_in_template(tmp_path, f"RUN Write-Host {eng.FAIL_MARKER}", builds[0].release.key)
    dry = _build(tmp_path, "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert not (tmp_path / "build.json").exists()
    assert [line.split("\t")[0] for line in dry.stdout.splitlines()] == [b.id for b in builds]
    assert "3 build(s) planned; nothing built (--dry-run)" in dry.stderr

    result = _build(
        tmp_path, "--build-arg", f"TOOLKIT_TEST={tmp_path.name}", "--no-verify", "--fail-fast"
    )
    assert result.returncode == 10
    results = json.loads((tmp_path / "build.json").read_text())["results"]
    assert [r["result"] for r in results] == ["failed", "not-run", "not-run"]
    _assert_clean(clients)


def test_fail_fast_starts_nothing_when_a_host_is_refused_first(
    engines: dict[str, eng.Engine],
    clients: dict[str, Any],
    standin_python_version: str,
    standin_pip_version: str,
    tmp_path: Path,
) -> None:
    builds = _workspace(
        tmp_path,
        engines,
        standin_python_version,
        standin_pip_version,
        **{"1803": f"unix://{tmp_path}/no-engine-here.sock"},
    )
    result = _build(
        tmp_path, "--build-arg", f"TOOLKIT_TEST={tmp_path.name}", "--no-verify", "--fail-fast"
    )
    assert result.returncode == 10, result.stdout + result.stderr
    report = {r["id"]: r for r in json.loads((tmp_path / "build.json").read_text())["results"]}
    by_release = {b.release.key: report[b.id]["result"] for b in builds}
    assert by_release == {"1809": "not-run", "1803": "failed", "ltsc2016": "not-run"}
    _assert_clean(clients)


def test_verify_fails_clearly_when_the_image_is_not_the_version_it_claims(
    engines: dict[str, eng.Engine],
    clients: dict[str, Any],
    standin_python_version: str,
    standin_pip_version: str,
    tmp_path: Path,
) -> None:
    major, minor, patch = standin_python_version.split(".")
    claimed = f"{major}.{minor}.{int(patch) + 1}"  # what versions.json says; not what's inside
    builds = _workspace(tmp_path, engines, claimed, standin_pip_version)
    built = _build(tmp_path, "--build-arg", f"TOOLKIT_TEST={tmp_path.name}", "--no-verify")
    assert built.returncode == 0, built.stdout + built.stderr

    checked = run_toolkit(
        "verify",
        "--no-preflight",
        "--hosts",
        "hosts.toml",
        "--repo",
        "cli/python",
        "--junit",
        "junit.xml",
        cwd=tmp_path,
        timeout=120,
    )
    assert checked.returncode == 11, checked.stdout + checked.stderr
    expected = (
        f"FAIL {builds[0].id} python-version"
        f"{''}"  # duration in between
    )
    lines = [x for x in checked.stdout.splitlines() if x.startswith(expected)]
    assert len(lines) == 1
    assert lines[0].endswith(
        f": python --version (PYTHON_VERSION): expected 'Python {claimed}', "
        f"got 'Python {standin_python_version}'"
    )
    assert f"PASS {builds[0].id} pip-version" in checked.stdout
    junit = ET.parse(tmp_path / "junit.xml").getroot()
    assert junit.get("failures") == "3"

    # Built with verification, the same image is reported verify-failed and is not kept, so a
    # later run cannot skip it as unchanged.
    shutil.rmtree(tmp_path / "logs")
    again = _build(tmp_path, "--build-arg", f"TOOLKIT_TEST={tmp_path.name}-v", "--force")
    assert again.returncode == 11, again.stdout + again.stderr
    results = json.loads((tmp_path / "build.json").read_text())["results"]
    assert [r["result"] for r in results] == ["verify-failed"] * 3
    for b, record in zip(builds, results, strict=True):
        api = clients[b.release.key].api
        assert api.images(filters={"reference": f"cli/python:{b.tags[0]}"}) == []
        assert (
            api.images(
                filters={"label": f"io.github.windows-python-images.toolkit.hash={record['hash']}"}
            )
            == []
        )
    _assert_clean(clients)


def test_ctrl_c_cancels_the_running_builds_and_cleans_up(
    engines: dict[str, eng.Engine],
    clients: dict[str, Any],
    standin_python_version: str,
    standin_pip_version: str,
    tmp_path: Path,
) -> None:
    builds = _workspace(tmp_path, engines, standin_python_version, standin_pip_version)
    slow = next(b for b in builds if b.release.key == "1803")
    insert_in_template(tmp_path, f"RUN Write-Host {eng.SLEEP_MARKER}120", slow.release.key)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TOOLKIT_", "GITHUB_"))}
    env["PYTHONPATH"] = str(REPO)
    argv = [sys.executable, "-m", "toolkit", "build", "--no-preflight", "--hosts", "hosts.toml"]
    argv += ["--pull", "never", "--network", "none", "--repo", "cli/python", "--no-verify"]
    argv += ["--report", "build.json", "--build-arg", f"TOOLKIT_TEST={tmp_path.name}"]
    proc = subprocess.Popen(
        argv, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    log = tmp_path / "logs" / f"{slow.id}.log"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and proc.poll() is None:
        # Wait for the slow step's own container (without the marker, rpartition would give
        # the whole log, and an earlier step's "Running in" would do).
        text = log.read_text() if log.exists() else ""
        if eng.SLEEP_MARKER in text and "Running in" in text.rpartition(eng.SLEEP_MARKER)[2]:
            break
        time.sleep(0.1)
    else:
        proc.kill()
        pytest.fail(f"the slow step never started: {proc.communicate()}")
    started = time.monotonic()
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stdout + stderr
    assert time.monotonic() - started < 30
    report = json.loads((tmp_path / "build.json").read_text())
    assert report["interrupted"] is True
    by_id = {r["id"]: r for r in report["results"]}
    assert by_id[slow.id]["result"] == "cancelled"
    assert "interrupted (Ctrl-C)" in by_id[slow.id]["message"]
    _assert_clean(clients)
