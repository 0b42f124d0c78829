"""`toolkit report` as a user runs it, on saved pages (the registry side is in tests/docker)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

from tests.conftest import FIXTURES, REPO, run_toolkit
from tests.doubles.web import stalling_registry

SEED = FIXTURES / "published-python-3.8-rc-windowsservercore.md"
PAGE_2026 = FIXTURES / "published-python-3.14-windowsservercore.md"


def test_page_is_printed_byte_for_byte(tmp_path: Path) -> None:
    result = run_toolkit("report", "--page", str(SEED), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout == SEED.read_text("utf-8")
    assert result.stderr == ""


def test_out_writes_one_file_per_tag(tmp_path: Path) -> None:
    result = run_toolkit(
        "report", "--page", str(SEED), "--page", str(PAGE_2026), "--out", "remote", cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == ""
    out = tmp_path / "remote"
    assert (out / "3.8-rc-windowsservercore.md").read_bytes() == SEED.read_bytes()
    assert (out / "3.14-windowsservercore.md").read_bytes() == PAGE_2026.read_bytes()
    assert result.stderr.splitlines() == [
        "wrote remote/3.8-rc-windowsservercore.md",
        "wrote remote/3.14-windowsservercore.md",
    ]


def test_json_document(tmp_path: Path) -> None:
    result = run_toolkit("report", "--page", str(PAGE_2026), "--json", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    assert set(document) == {"pages", "written"}
    (page,) = document["pages"]
    assert page["reference"] == "python:3.14-windowsservercore"
    assert [i["platform"]["os_version"] for i in page["images"]] == [
        "10.0.26100.33438",
        "10.0.20348.5622",
    ]
    assert page["images"][0]["total_size"] == 2526983573
    assert page["images"][1]["history"][-1] == {
        "created": "2026-09-09T22:51:42Z",
        "instruction": 'CMD ["python"]',
    }


def test_against_the_committed_dockerfiles(tmp_path: Path) -> None:
    result = run_toolkit(
        "report",
        "--page",
        str(SEED),
        "--against",
        str(REPO / "dockerfiles"),
        "--versions",
        str(REPO / "versions.json"),
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 3
    assert all(": matches " in line for line in lines)


def test_against_a_drifted_dockerfile_prints_the_diff_and_exits_1(
    tmp_path: Path, workspace: Path
) -> None:
    dockerfile = workspace / "dockerfiles/3.8-rc/windows/windowsservercore-1803/Dockerfile"
    text = dockerfile.read_text("utf-8")
    assert "ENV PYTHON_PIP_VERSION 19.2.3" in text
    dockerfile.write_text(text.replace("PIP_VERSION 19.2.3", "PIP_VERSION 19.3"), "utf-8")
    result = run_toolkit("report", "--page", str(SEED), "--against", "dockerfiles", cwd=workspace)
    assert result.returncode == 1
    diff = [ln for ln in result.stdout.splitlines() if ln[:1] in "+-"]
    assert diff[0].startswith("--- python:3.8-rc-windowsservercore windows version 10.0.17134")
    assert diff[1].startswith("+++ dockerfiles/3.8-rc/windows/windowsservercore-1803/Dockerfile")
    assert diff[2:] == ["-ENV PYTHON_PIP_VERSION=19.2.3", "+ENV PYTHON_PIP_VERSION=19.3"]
    assert "1 of 3 platform(s) not as dockerfiles says: 1 drifted" in result.stderr
    assert result.stderr.count("error: ") == 1


def test_a_bad_page_is_one_line_and_writes_nothing(tmp_path: Path) -> None:
    truncated = tmp_path / "saved.md"
    text = SEED.read_text("utf-8")
    truncated.write_text(text[: len(text) // 2], "utf-8")
    good = tmp_path / "good.md"
    shutil.copy(PAGE_2026, good)
    result = run_toolkit(
        "report", "--page", "good.md", "--page", "saved.md", "--out", "remote", cwd=tmp_path
    )
    assert result.returncode == 2
    assert result.stdout == ""
    (line,) = result.stderr.splitlines()
    assert line.startswith("error: saved.md:")
    assert not (tmp_path / "remote").exists()


def test_nothing_to_report_is_a_usage_error(tmp_path: Path) -> None:
    result = run_toolkit("report", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip() == (
        "error: nothing to report (give REGISTRY/NAME:TAG or --page FILE)"
    )


def test_an_output_that_cannot_be_written_is_exit_5(tmp_path: Path) -> None:
    (tmp_path / "remote").write_text("a file, not a directory", "utf-8")
    result = run_toolkit("report", "--page", str(SEED), "--out", "remote", cwd=tmp_path)
    assert result.returncode == 5
    assert len(result.stderr.splitlines()) == 1
    assert (tmp_path / "remote").read_text("utf-8") == "a file, not a directory"


def test_ctrl_c_while_the_registry_stalls_exits_130_and_writes_nothing(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TOOLKIT_", "GITHUB_"))}
    env["PYTHONPATH"] = str(REPO)
    with stalling_registry() as (address, arrived):
        process = subprocess.Popen(
            [sys.executable, "-m", "toolkit", "report", f"{address}/python:3.8", "--out", "out"],
            cwd=tmp_path,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            assert arrived.wait(60), "the request never reached the registry"
            process.send_signal(signal.SIGINT)
            # The stalled request would hold a ThreadPoolExecutor's exit for the 30 s registry
            # timeout; the run must end well before it.
            stdout, stderr = process.communicate(timeout=20)
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
    assert process.returncode == 130
    assert stdout == ""
    assert stderr == "error: interrupted\n"
    assert not (tmp_path / "out").exists()
