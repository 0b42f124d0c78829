"""``toolkit build`` runs against each other and against the engine's other images (issue 13):
two real processes building the same target at once (item 6), pruning superseded images and
only those (item 16), and one ``--host`` alone (item 15)."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

from tests.conftest import REPO, run_toolkit
from tests.docker import engines as eng
from tests.docker.matrixspace import (
    containers,
    image_ids,
    insert_in_template,
    workspace_with_hosts,
)
from toolkit.driver import HASH_LABEL, REPO_LABEL, TARGET_LABEL
from toolkit.matrix import Build


def _workspace(root: Path, engines: dict[str, eng.Engine], version: str, pip: str) -> list[Build]:
    builds = workspace_with_hosts(root, engines, version, pip)
    # Every layer after this one is new to the engines: nothing comes from another test's cache.
    insert_in_template(root, f"ENV TOOLKIT_TEST_NONCE {uuid.uuid4().hex}")
    return builds


def _argv(*args: str) -> list[str]:
    argv = [sys.executable, "-m", "toolkit", "build", "--no-preflight", "--hosts", "hosts.toml"]
    return [*argv, "--pull", "never", "--network", "none", "--repo", "runs/python", *args]


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TOOLKIT_", "GITHUB_"))}
    env["PYTHONPATH"] = str(REPO)
    return env


def _dangling_since(api: Any, before: set[str]) -> list[str]:
    """Images made since ``before`` that no tag keeps: dangling ones and the layers under them."""
    images = api.images(all=True)
    parent = {i["Id"]: i.get("ParentId") or "" for i in images}
    kept: set[str] = set()
    for image in images:
        if [t for t in image.get("RepoTags") or () if t != "<none>:<none>"]:
            current = image["Id"]
            while current and current not in kept:
                kept.add(current)
                current = parent.get(current, "")
    return sorted(i["Id"] for i in images if i["Id"] not in before and i["Id"] not in kept)


def test_two_runs_of_one_target_at_once_build_it_once(
    engines: dict[str, eng.Engine],
    clients: dict[str, Any],
    standin_python_version: str,
    standin_pip_version: str,
    tmp_path: Path,
) -> None:
    """Item 6: the second run waits for the first (its lock on this machine), then finds the
    image the first one built and skips it. Before: both built, the first image dangled and the
    log held the second run only."""
    builds = _workspace(tmp_path, engines, standin_python_version, standin_pip_version)
    target = next(b for b in builds if b.release.key == "ltsc2016")
    insert_in_template(tmp_path, f"RUN Write-Host {eng.SLEEP_MARKER}6", "ltsc2016")
    api = clients["ltsc2016"].api
    before = image_ids(api)
    log = tmp_path / "logs" / f"{target.id}.log"
    first = subprocess.Popen(
        _argv("*-ltsc2016", "--no-verify", "--report", "first.json"),
        cwd=tmp_path, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    deadline = time.monotonic() + 120
    while not (log.exists() and "Step 2/" in log.read_text()) and time.monotonic() < deadline:
        assert first.poll() is None, first.communicate()
        time.sleep(0.05)
    second = subprocess.Popen(
        _argv("*-ltsc2016", "--no-verify", "--report", "second.json"),
        cwd=tmp_path, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    out1, err1 = first.communicate(timeout=300)
    out2, err2 = second.communicate(timeout=300)
    assert first.returncode == 0, out1 + err1
    assert second.returncode == 0, out2 + err2

    one = json.loads((tmp_path / "first.json").read_text())["results"][0]
    two = json.loads((tmp_path / "second.json").read_text())["results"][0]
    assert one["result"] == "built"
    assert f"[{target.id}] waiting: another toolkit run is building it" in out2
    assert two["result"] == "skipped"
    assert two["image_id"] == one["image_id"]
    assert log.read_text().count("Step 1/") == 0  # the log is the second run's, whole: a skip
    assert f"unchanged: {one['image_id'][:19]}" in log.read_text()
    assert _dangling_since(api, before) == []
    assert containers(api) == []


def _labelled_image(api: Any, base: str, labels: dict[str, str], tag: str | None) -> str:
    """A small image carrying ``labels``; untagged (dangling) when ``tag`` is None."""
    dockerfile = f"FROM {base}\nRUN echo {uuid.uuid4().hex} > /nonce\n"
    stream = api.build(
        fileobj=io.BytesIO(dockerfile.encode()), tag=tag, labels=labels, rm=True,
        forcerm=True, decode=True, pull=False, network_mode="none",
    )  # fmt: skip
    image_id = None
    for event in stream:
        if "aux" in event:
            image_id = event["aux"]["ID"]
        assert "error" not in event, event
    assert image_id is not None
    return str(image_id)


def test_prune_removes_only_the_targets_own_superseded_images(
    engines: dict[str, eng.Engine],
    clients: dict[str, Any],
    standin_python_version: str,
    standin_pip_version: str,
    tmp_path: Path,
) -> None:
    """Item 16: forced rebuilds leave no superseded image of the target behind; images that are
    not the toolkit's own for this target and repository survive, dangling or not."""
    builds = _workspace(tmp_path, engines, standin_python_version, standin_pip_version)
    target = next(b for b in builds if b.release.key == "1803")
    api = clients["1803"].api
    base = target.release.base_image
    tag = f"runs/python:{target.tags[0]}"

    def ours(repo: str = "runs/python", build_id: str = target.id) -> dict[str, str]:
        return {HASH_LABEL: uuid.uuid4().hex, TARGET_LABEL: build_id, REPO_LABEL: repo}

    foreign = {
        # A user's image that lost its tag: no toolkit label at all.
        "user's dangling image": _labelled_image(api, base, {"maintainer": "someone"}, None),
        # Built by an older toolkit (the hash label only): whose target and repo is unknown.
        "older toolkit's image": _labelled_image(api, base, {HASH_LABEL: "0" * 64}, None),
        # The same target, another repository (another --repo on the same engine).
        "another repo's image": _labelled_image(api, base, ours(repo="other/python"), None),
        # Another target of the same repository.
        "another target's image": _labelled_image(api, base, ours(build_id="3.0-x-1803"), None),
        # Our own, but a tag still names it (an older version's tag).
        "our tagged old version": _labelled_image(api, base, ours(), "runs/python:0.0.1-old"),
    }
    stale_ours = _labelled_image(api, base, ours(), None)  # ours, dangling since a past run

    # Each run gets its own build argument: two forced rebuilds within one second would
    # otherwise make the very same image (same labels, same layers), which supersedes nothing.
    built = run_toolkit(*_argv("*-1803", "--no-verify", "--build-arg", "RUN=1",
                               "--report", "r.json")[3:],
                        cwd=tmp_path, env=_env(), timeout=300)  # fmt: skip
    assert built.returncode == 0, built.stdout + built.stderr
    first = api.inspect_image(tag)["Id"]
    log = (tmp_path / "logs" / f"{target.id}.log").read_text()
    assert f"prune: removed superseded image {stale_ours.removeprefix('sha256:')[:12]}" in log

    again = run_toolkit(*_argv("*-1803", "--no-verify", "--force", "--build-arg", "RUN=2",
                               "--report", "r.json")[3:],
                        cwd=tmp_path, env=_env(), timeout=300)  # fmt: skip
    assert again.returncode == 0, again.stdout + again.stderr
    second = api.inspect_image(tag)["Id"]
    assert second != first
    present = image_ids(api)
    assert first not in present  # superseded by the forced rebuild: removed with its layers
    assert stale_ours not in present
    for what, image_id in foreign.items():
        assert image_id in present, f"{what} was removed"

    kept = run_toolkit(
        *_argv("*-1803", "--no-verify", "--force", "--no-prune", "--build-arg", "RUN=3",
               "--report", "r.json")[3:],
        cwd=tmp_path, env=_env(), timeout=300,
    )  # fmt: skip
    assert kept.returncode == 0, kept.stdout + kept.stderr
    assert second in image_ids(api)  # --no-prune: the superseded image stays (dangling)
    assert api.inspect_image(second)["RepoTags"] == []
    assert "prune:" not in (tmp_path / "logs" / f"{target.id}.log").read_text()
    for image_id in [*foreign.values(), second]:
        api.remove_image(image_id, force=True)


def test_one_host_option_alone_builds_and_verifies_that_release(
    engines: dict[str, eng.Engine],
    clients: dict[str, Any],
    standin_python_version: str,
    standin_pip_version: str,
    tmp_path: Path,
) -> None:
    """Item 15: `--host ltsc2016=URL` with no hosts.toml builds the ltsc2016 target; the others
    are reported as having no host, and the run says which selector would leave them out."""
    builds = _workspace(tmp_path, engines, standin_python_version, standin_pip_version)
    (tmp_path / "hosts.toml").unlink()
    host = f"ltsc2016={engines['ltsc2016'].url}"
    built = run_toolkit(
        "build", "--no-preflight", "--host", host, "--pull", "never", "--network", "none",
        "--repo", "runs/python", "--report", "r.json", cwd=tmp_path, timeout=300,
    )  # fmt: skip
    assert built.returncode == 10, built.stdout + built.stderr
    results = {r["id"]: r for r in json.loads((tmp_path / "r.json").read_text())["results"]}
    for b in builds:
        record = results[b.id]
        if b.release.key == "ltsc2016":
            assert record["result"] == "built"
            assert [c["passed"] for c in record["checks"]] == [True] * 6
        else:
            assert record["result"] == "failed"
            assert record["host"] == "-"
            assert f"no Docker host for release {b.release.key}" in record["message"]
            assert "'*-ltsc2016'" in record["message"]

    checked = run_toolkit(
        "verify", "--no-preflight", "--host", host, "--repo", "runs/python", cwd=tmp_path
    )
    assert checked.returncode == 7, checked.stdout + checked.stderr
    ltsc2016 = next(b for b in builds if b.release.key == "ltsc2016")
    assert checked.stdout.count(f"PASS {ltsc2016.id} ") == 6
    assert "6 check(s) on 1 image(s): 0 failed" in checked.stderr
    assert "2 of 3 target(s) not verified" in checked.stderr
