"""The GitHub Actions workflows in .github/workflows/: audited, schema-valid, and wired as documented.

zizmor and check-jsonschema come with the test extras (pyproject.toml) and run offline. The rest
reads the parsed YAML (ruamel, YAML 1.2: ``on`` stays a string key) and checks what no linter
knows: that the matrix job's output feeds the build job, and that the committed versions.json
puts every build in exactly one job.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from ruamel.yaml import YAML

from tests.conftest import REPO, run_toolkit
from toolkit.matrix import build_matrix
from toolkit.versions import load_versions
from toolkit.windows import releases

WORKFLOWS = REPO / ".github" / "workflows"
DEFAULT_BRANCH = "github.ref == format('refs/heads/{0}', github.event.repository.default_branch)"
PIN = re.compile(r"^\s*(?:-\s+)?uses:\s+([\w.-]+/[\w./-]+)@([0-9a-f]{40}) # v\d+(?:\.\d+)*$")


def tool(name: str) -> str:
    path = Path(sys.executable).parent / name
    assert path.exists(), f"{name} is missing: install the test extras (pip install -e '.[test]')"
    return str(path)


def load(name: str) -> dict[str, Any]:
    data = YAML(typ="safe").load((WORKFLOWS / name).read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


def workflow_files() -> list[Path]:
    return sorted(WORKFLOWS.glob("*.yml"))


def steps(job: dict[str, Any]) -> list[dict[str, Any]]:
    found = job.get("steps", [])
    assert isinstance(found, list)
    return found


def strings(value: object) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from strings(item)


def job_running(workflow: dict[str, Any], command: str) -> tuple[str, dict[str, Any]]:
    found = [
        (name, job)
        for name, job in workflow["jobs"].items()
        if any(command in step.get("run", "") for step in steps(job))
    ]
    assert len(found) == 1, f"expected one job running {command!r}, found {[n for n, _ in found]}"
    return found[0]


def step_running(job: dict[str, Any], command: str) -> dict[str, Any]:
    found = [step for step in steps(job) if command in step.get("run", "")]
    assert len(found) == 1, f"expected one step running {command!r}"
    return found[0]


# The linters.


def test_workflows_live_where_github_reads_them() -> None:
    assert [p.name for p in workflow_files()] == ["ci.yml", "images.yml"]
    assert not (REPO / "ci" / "github-actions.yml").exists()
    assert "cp ci/github-actions.yml" not in (REPO / "README.md").read_text(encoding="utf-8")


def test_zizmor_offline_finds_nothing() -> None:
    # The auditor persona reports everything zizmor knows, low-confidence findings included.
    proc = subprocess.run(
        [
            tool("zizmor"),
            "--offline",
            "--persona",
            "auditor",
            "--no-progress",
            ".github/workflows/",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "No findings to report" in proc.stdout


def test_zizmor_catches_what_it_is_here_for(tmp_path: Path) -> None:
    # The same run on a copy with a tag-pinned action, a write-all token and an expression in a
    # script: the audit must fail, so the test above passing means something.
    text = (WORKFLOWS / "images.yml").read_text(encoding="utf-8")
    pinned = "actions/checkout@08c6903cd8c0fde910a37f88322edcfb5dd907a8 # v5.0.0"
    assert pinned in text
    broken = text.replace(pinned, "actions/checkout@v5", 1)
    job_permissions = "    permissions:\n      contents: read\n"
    assert job_permissions in broken
    broken = broken.replace(job_permissions, "    permissions: write-all\n", 1)
    broken = broken.replace('read -r -a selectors <<< "$SELECTOR"', "echo ${{ inputs.selector }}")
    (tmp_path / ".github" / "workflows").mkdir(parents=True)
    (tmp_path / ".github" / "workflows" / "images.yml").write_text(broken, encoding="utf-8")
    proc = subprocess.run(
        [tool("zizmor"), "--offline", "--no-progress", "--format", "json", ".github/workflows/"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert proc.returncode != 0
    audits = {finding["ident"] for finding in json.loads(proc.stdout)}
    assert {"unpinned-uses", "excessive-permissions", "template-injection"} <= audits


def test_check_jsonschema_validates_every_workflow() -> None:
    proc = subprocess.run(
        [
            tool("check-jsonschema"),
            "--builtin-schema",
            "vendor.github-workflows",
            *map(str, workflow_files()),
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "ok -- validation done" in proc.stdout


def test_check_jsonschema_rejects_a_broken_workflow(tmp_path: Path) -> None:
    text = (WORKFLOWS / "images.yml").read_text(encoding="utf-8")
    broken = tmp_path / "images.yml"
    broken.write_text(text.replace("runs-on: ubuntu-24.04", "runs_on: ubuntu-24.04", 1), "utf-8")
    proc = subprocess.run(
        [tool("check-jsonschema"), "--builtin-schema", "vendor.github-workflows", str(broken)],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert proc.returncode == 1
    assert "runs_on" in proc.stdout + proc.stderr


# Rules of the house, read from the files themselves.


@pytest.mark.parametrize("path", workflow_files(), ids=lambda p: p.name)
def test_every_action_is_pinned_to_a_commit_with_its_version_in_a_comment(path: Path) -> None:
    lines = [
        line
        for line in path.read_text(encoding="utf-8").splitlines()
        if re.match(r"\s*(?:-\s+)?uses:", line)
    ]
    assert lines
    for line in lines:
        assert PIN.match(line), f"{path.name}: not pinned to a full SHA with '# vX.Y.Z': {line}"


@pytest.mark.parametrize("path", workflow_files(), ids=lambda p: p.name)
def test_least_privilege_no_head_checkout_trigger_and_a_group_per_ref(path: Path) -> None:
    workflow = YAML(typ="safe").load(path.read_text(encoding="utf-8"))
    assert "pull_request_target" not in workflow["on"]
    assert "workflow_run" not in workflow["on"]
    assert workflow["permissions"] == {}
    for name, job in workflow["jobs"].items():
        assert job["permissions"] == {"contents": "read"}, name
        assert "timeout-minutes" in job, name
        for step in steps(job):
            if step.get("uses", "").startswith("actions/checkout@"):
                assert step["with"]["persist-credentials"] is False, name
    assert "${{ github.ref }}" in workflow["concurrency"]["group"]


@pytest.mark.parametrize("path", workflow_files(), ids=lambda p: p.name)
def test_no_expression_in_a_script_and_secrets_only_into_docker_login(path: Path) -> None:
    workflow = YAML(typ="safe").load(path.read_text(encoding="utf-8"))
    for name, job in workflow["jobs"].items():
        assert not any("secrets." in s for s in strings(job.get("env", {}))), name
        for step in steps(job):
            assert "${{" not in step.get("run", ""), f"{name}: pass values through env:"
            assert not any("secrets." in s for s in strings(step.get("env", {}))), name
            if any("secrets." in s for s in strings(step.get("with", {}))):
                assert step["uses"].startswith("docker/login-action@"), name
                assert step.get("if") == DEFAULT_BRANCH or job.get("if") == DEFAULT_BRANCH, name


# images.yml: wired as the README describes.


def test_images_runs_on_push_and_on_dispatch_with_a_selector() -> None:
    on = load("images.yml")["on"]
    assert set(on) == {"push", "workflow_dispatch"}
    assert on["workflow_dispatch"]["inputs"]["selector"]["type"] == "string"
    assert on["workflow_dispatch"]["inputs"]["selector"]["required"] is False


def test_the_linux_checks_run_render_check_lint_and_the_tests() -> None:
    images = load("images.yml")
    _name, job = job_running(images, "toolkit lint")
    assert job["runs-on"].startswith("ubuntu-")
    assert step_running(job, "toolkit render --check")
    assert step_running(job, "bash ci/test.sh")


def test_the_matrix_job_output_feeds_the_build_job() -> None:
    images = load("images.yml")
    matrix_name, matrix_job = job_running(images, "toolkit ci-matrix")
    step = next(s for s in steps(matrix_job) if "--format github-output" in s.get("run", ""))
    assert '>> "$GITHUB_OUTPUT"' in step["run"]
    assert step["env"]["SELECTOR"] == "${{ inputs.selector }}"
    assert matrix_job["outputs"]["matrix"] == f"${{{{ steps.{step['id']}.outputs.matrix }}}}"

    _build_name, build_job = job_running(images, "toolkit build")
    assert matrix_name in build_job["needs"]
    lint_name, _job = job_running(images, "toolkit lint")
    assert lint_name in build_job["needs"]
    assert build_job["strategy"]["matrix"] == (
        f"${{{{ fromJSON(needs.{matrix_name}.outputs.matrix) }}}}"
    )
    assert build_job["strategy"]["fail-fast"] is False
    assert build_job["runs-on"] == "${{ matrix.runs-on }}"
    assert build_job["env"]["SELECTOR"] == "${{ matrix.selector }}"


def test_each_release_job_builds_verifies_uploads_junit_and_pushes_on_the_default_branch() -> None:
    images = load("images.yml")
    _name, job = job_running(images, "toolkit build")
    build = step_running(job, "toolkit build $env:SELECTOR")
    verify = step_running(job, "toolkit verify $env:SELECTOR")
    push = step_running(job, "toolkit push $env:SELECTOR")
    assert "--junit" in verify["run"]
    assert "--report" in build["run"]
    upload = next(s for s in steps(job) if s.get("uses", "").startswith("actions/upload-artifact@"))
    assert upload["if"] == "always()"
    junit = re.search(r'--junit "([^/"]+)/', verify["run"])
    assert junit is not None
    assert f"{junit.group(1)}/" in upload["with"]["path"]
    assert push["if"] == DEFAULT_BRANCH
    assert "if" not in build
    assert "if" not in verify
    login = next(s for s in steps(job) if s.get("uses", "").startswith("docker/login-action@"))
    order = steps(job)
    assert order.index(build) < order.index(verify) < order.index(login) < order.index(push)
    # The live view is off and fold groups are on by themselves on Actions (GITHUB_ACTIONS=true);
    # nothing in the job may turn them around.
    assert "GITHUB_ACTIONS" not in json.dumps(job)
    assert job["environment"] == f"${{{{ {DEFAULT_BRANCH} && 'registry' || '' }}}}"


def test_the_final_job_publishes_the_manifests_and_uploads_the_pages() -> None:
    images = load("images.yml")
    _name, job = job_running(images, "toolkit manifest")
    build_name, _job = job_running(images, "toolkit build")
    assert build_name in job["needs"]
    assert job["if"] == DEFAULT_BRANCH
    assert job["environment"] == "registry"
    manifest = step_running(job, "toolkit manifest")
    report = step_running(job, "toolkit report")
    out = re.search(r"--out (\S+)", report["run"])
    assert out is not None
    upload = next(s for s in steps(job) if s.get("uses", "").startswith("actions/upload-artifact@"))
    assert upload["with"]["path"].rstrip("/") == out.group(1).rstrip("/")
    order = steps(job)
    assert order.index(manifest) < order.index(report) < order.index(upload)


def test_the_committed_versions_json_puts_every_build_in_exactly_one_matrix_entry() -> None:
    images = load("images.yml")
    _name, job = job_running(images, "toolkit ci-matrix")
    step = next(s for s in steps(job) if "--format github-output" in s.get("run", ""))
    runners = re.search(r"--runners (\S+)", step["run"])
    assert runners is not None
    assert (REPO / runners.group(1)).is_file()
    # The step's own command, with the empty selector of a push.
    result = run_toolkit(
        "ci-matrix", "--runners", runners.group(1), "--format", "github-output", cwd=REPO
    )
    assert result.returncode == 0, result.stderr
    include = json.loads(result.stdout.removeprefix("matrix="))["include"]
    counts = Counter(build_id for entry in include for build_id in entry["builds"])
    every = [b.id for b in build_matrix(load_versions(REPO / "versions.json"))]
    assert set(counts) == set(every)
    assert all(n == 1 for n in counts.values()), counts
    table = releases()
    for entry in include:
        runner = table[entry["release"]].runner
        assert entry["runs-on"] == runner or "self-hosted" in entry["runs-on"]
        assert all(build_id.endswith(f"-{entry['release']}") for build_id in entry["builds"])
