"""The build driver on three real engines: the rendered Dockerfiles built end to end, history and
shell checked, unchanged targets skipped, and each kind of failure confined to its own target.

The engines are Linux (OSType linux), so there is no preflight here; the stand-in base images
are tagged with the mcr names and never pulled (``--pull never``, network ``none``).
"""

from __future__ import annotations

import dataclasses
import gc
import io
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import docker
import pytest

from tests.docker import engines as eng
from tests.docker.matrixspace import (
    containers,
    history_lines,
    image_ids,
    insert_before_cmd,
    line_of,
    render_workspace,
)
from toolkit.builds import BuildWork, make_verifier
from toolkit.cancel import Canceller
from toolkit.driver import HASH_LABEL, BuildJob, BuildSettings
from toolkit.instructions import history, parse_dockerfile
from toolkit.matrix import Build
from toolkit.progress import PlainReporter
from toolkit.results import BuildObserver, BuildResult, Outcome
from toolkit.runner import RunSummary, run_targets


class _Recorder(PlainReporter):
    """The plain reporter, also keeping what it was told (thread-safe via the parent's lock)."""

    def __init__(self) -> None:
        self.text = io.StringIO()
        super().__init__(self.text)
        self.steps: list[tuple[str, int, int, str]] = []
        self.results: list[BuildResult] = []

    def step(self, build_id: str, number: int, total: int, instruction: str) -> None:
        self.steps.append((build_id, number, total, instruction))
        super().step(build_id, number, total, instruction)

    def finished(self, result: BuildResult) -> None:
        self.results.append(result)
        super().finished(result)


@pytest.fixture(scope="module")
def clients(engines: dict[str, eng.Engine]) -> Iterator[dict[str, Any]]:
    """One client per engine; the 1809 engine is spoken to over TLS on 127.0.0.1:2376."""
    made = {
        release: (e.tls_client() if e.tls_url else e.client()) for release, e in engines.items()
    }
    yield made
    for client in made.values():
        client.close()


@pytest.fixture(scope="module")
def matrix(
    tmp_path_factory: pytest.TempPathFactory, standin_python_version: str, standin_pip_version: str
) -> tuple[Path, list[Build]]:
    root = tmp_path_factory.mktemp("matrix")
    line = line_of(standin_python_version)
    builds = render_workspace(root, {line: (standin_python_version, standin_pip_version)})
    return root, builds


def _jobs(
    root: Path, builds: list[Build], clients: dict[str, Any], **override: Any
) -> list[BuildJob]:
    out = []
    for b in builds:
        client = override.get(b.release.key, clients[b.release.key])
        out.append(
            BuildJob(
                build=b,
                context=root / "dockerfiles" / b.directory,
                host=f"engine-{b.release.key}",
                client=client,
                os_type="linux",
            )
        )
    return out


def _settings(root: Path, **kw: Any) -> BuildSettings:
    return BuildSettings(
        repo="test/python",
        pull="never",
        network_mode="none",
        logs=root / "logs",
        timeout=kw.pop("timeout", 120.0),
        **kw,
    )


def _run(
    jobs: list[BuildJob], settings: BuildSettings, verify: bool = True
) -> tuple[RunSummary[BuildResult], _Recorder]:
    recorder = _Recorder()
    verifier = make_verifier(recorder) if verify else None
    return run_builds(jobs, settings, recorder, verifier=verifier), recorder


def run_builds(
    jobs: list[BuildJob],
    settings: BuildSettings,
    observer: BuildObserver,
    *,
    verifier: Any = None,
    jobs_per_host: int = 1,
) -> RunSummary[BuildResult]:
    """The build command's work through the one target runner."""
    work = BuildWork(settings, observer, verifier, jobs)
    return run_targets(jobs, work, jobs_per_host=jobs_per_host)


def _assert_clean(clients: dict[str, Any]) -> None:
    for release, client in clients.items():
        assert containers(client.api) == [], f"containers left on engine {release}"


@pytest.fixture(scope="module")
def first_run(
    matrix: tuple[Path, list[Build]], clients: dict[str, Any]
) -> tuple[RunSummary[BuildResult], _Recorder, float]:
    root, builds = matrix
    started = time.monotonic()
    summary, recorder = _run(_jobs(root, builds, clients), _settings(root))
    return summary, recorder, time.monotonic() - started


def test_three_engines_build_and_verify_the_rendered_dockerfiles(
    matrix: tuple[Path, list[Build]],
    clients: dict[str, Any],
    first_run: tuple[RunSummary[BuildResult], _Recorder, float],
) -> None:
    root, builds = matrix
    summary, recorder, _elapsed = first_run
    assert [r.outcome for r in summary.results] == [Outcome.BUILT] * 3, [
        r.message for r in summary.results
    ]
    for build, result in zip(builds, summary.results, strict=True):
        api = clients[build.release.key].api
        assert result.host == f"engine-{build.release.key}"
        assert [c.name for c in result.checks if c.passed] == [
            "python-version",
            "pip-version",
            "python-imports",
            "python-sqlite3",
            "python-stack-size",
            "override-cmd",
        ]
        image = api.inspect_image(f"test/python:{build.tags[0]}")
        assert image["Id"] == result.image_id
        for tag in build.tags:
            assert api.inspect_image(f"test/python:{tag}")["Id"] == result.image_id
        labels = image["Config"]["Labels"]
        assert labels[HASH_LABEL] == result.content_hash
        assert labels["org.opencontainers.image.version"] == build.line.version
        # History and shell are what the rendered Dockerfile says, on top of the base's own.
        dockerfile = parse_dockerfile(root / "dockerfiles" / build.directory / "Dockerfile")
        base = history_lines(api, build.release.base_image)
        expected = history(dockerfile, base)
        assert result.image_id is not None
        got = history_lines(api, result.image_id)
        assert got[: len(expected)] == expected
        assert all(line.startswith("LABEL ") for line in got[len(expected) :])
        assert f"LABEL {HASH_LABEL}={result.content_hash}" in got[len(expected) :]
        shell = next(i for i in dockerfile if i.cmd == "SHELL")
        assert image["Config"]["Shell"] == list(shell.value)
        # Progress: every step reported in order, and the full log on disk.
        numbers = [n for bid, n, _m, _t in recorder.steps if bid == build.id and n]
        total = len(got) - len(base) + 1  # FROM stands for the base's lines
        assert numbers == list(range(1, total + 1))
        log = (root / "logs" / f"{build.id}.log").read_text()
        assert f"Step {total}/{total} : LABEL" in log
        assert "verify python-version: PASS" in log
    _assert_clean(clients)


def test_a_second_run_skips_every_target_and_makes_no_image(
    matrix: tuple[Path, list[Build]],
    clients: dict[str, Any],
    first_run: tuple[RunSummary[BuildResult], _Recorder, float],
) -> None:
    root, builds = matrix
    before = {r: image_ids(c.api) for r, c in clients.items()}
    started = time.monotonic()
    summary, _recorder = _run(_jobs(root, builds, clients), _settings(root))
    elapsed = time.monotonic() - started
    assert [r.outcome for r in summary.results] == [Outcome.SKIPPED] * 3
    assert [r.image_id for r in summary.results] == [r.image_id for r in first_run[0].results]
    assert {r: image_ids(c.api) for r, c in clients.items()} == before
    assert elapsed < 3, f"a no-op run of three targets took {elapsed:.2f}s"
    # --force builds again (a new image: the created label changes), and skips nothing.
    forced, _ = _run(_jobs(root, builds[:1], clients), _settings(root, force=True), verify=False)
    assert forced.results[0].outcome is Outcome.BUILT
    assert forced.results[0].image_id != first_run[0].results[0].image_id
    _assert_clean(clients)


def _copy(matrix: tuple[Path, list[Build]], tmp_path: Path) -> Path:
    root, _builds = matrix
    shutil.copytree(root / "dockerfiles", tmp_path / "dockerfiles")
    return tmp_path


def _one_fails(
    matrix: tuple[Path, list[Build]],
    clients: dict[str, Any],
    tmp_path: Path,
    release: str,
    instruction: str,
    **kw: Any,
) -> tuple[RunSummary[BuildResult], dict[str, set[str]], dict[str, set[str]], Build]:
    """Build all three with ``instruction`` added to one target; return images before/after."""
    root = _copy(matrix, tmp_path)
    builds = matrix[1]
    target = next(b for b in builds if b.release.key == release)
    insert_before_cmd(root / "dockerfiles" / target.directory / "Dockerfile", instruction)
    jobs = _jobs(root, builds, clients, **kw.pop("override", {}))
    before = {r: image_ids(c.api) for r, c in clients.items()}
    hook: Callable[[Path], None] | None = kw.pop("hook", None)
    if hook is not None:
        threading.Thread(target=hook, args=(root,), daemon=True).start()
    summary, _ = _run(jobs, _settings(root, **kw), verify=False)
    after = {r: image_ids(c.api) for r, c in clients.items()}
    return summary, before, after, target


def _others_built(summary: RunSummary[BuildResult], target: Build) -> None:
    for result in summary.results:
        if result.build_id != target.id:
            assert result.outcome.ok, result.message


def test_a_failing_run_fails_its_target_only_and_cleans_up(
    matrix: tuple[Path, list[Build]], clients: dict[str, Any], tmp_path: Path
) -> None:
    # A step no earlier build has cached makes a layer of this build before the failing one.
    marker = (
        f"RUN Write-Host fresh-layer {tmp_path.name}\n"
        f"RUN Write-Host {eng.FAIL_MARKER} {tmp_path.name}"
    )
    summary, before, after, target = _one_fails(matrix, clients, tmp_path, "ltsc2016", marker)
    result = next(r for r in summary.results if r.build_id == target.id)
    assert result.outcome is Outcome.FAILED
    assert result.message is not None
    assert "returned a non-zero code: 1" in result.message
    assert any(eng.FAIL_MARKER in line for line in result.tail)
    _others_built(summary, target)
    # The failed build's layers are gone: nothing new on its engine.
    assert result.log_path is not None
    assert "cleanup: removed image" in result.log_path.read_text()
    assert after["ltsc2016"] <= before["ltsc2016"]
    _assert_clean(clients)


@pytest.mark.parametrize("release", ["1803", "1809"])  # 1809: the engine spoken to over TLS
def test_a_deadline_cancels_its_target_only(
    matrix: tuple[Path, list[Build]], clients: dict[str, Any], tmp_path: Path, release: str
) -> None:
    slow = f"RUN Write-Host {eng.SLEEP_MARKER}120 {tmp_path.name}"
    started = time.monotonic()
    summary, before, after, target = _one_fails(
        matrix, clients, tmp_path, release, slow, timeout=8.0
    )
    elapsed = time.monotonic() - started
    result = next(r for r in summary.results if r.build_id == target.id)
    assert result.outcome is Outcome.TIMEOUT
    assert result.message is not None
    assert "longer than --timeout 8 s" in result.message
    assert 8 <= result.duration < 30
    assert elapsed < 40
    _others_built(summary, target)
    assert after[release] <= before[release]
    _assert_clean(clients)


# docker-py's UnixHTTPConnection.connect does not close its socket when connect() fails (the
# engine is gone), so a ResourceWarning surfaces when that socket is collected. The leak is the
# library's; collect it inside the test that caused it and do not let it fail the run.
_LIBRARY_SOCKET_LEAK = pytest.mark.filterwarnings(
    "ignore::pytest.PytestUnraisableExceptionWarning", "ignore::ResourceWarning"
)


@_LIBRARY_SOCKET_LEAK
def test_an_engine_killed_mid_build_fails_its_target_only(
    matrix: tuple[Path, list[Build]],
    clients: dict[str, Any],
    engine_factory: Callable[[str, str], eng.Engine],
    tmp_path: Path,
) -> None:
    doomed = engine_factory("doomed", "1803")
    doomed_client = doomed.client()
    target_log = tmp_path / "logs" / f"{line_of_target(matrix, '1803')}.log"

    def kill_when_sleeping(_root: Path) -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if target_log.exists() and eng.SLEEP_MARKER in target_log.read_text():
                time.sleep(0.5)
                doomed.kill()
                return
            time.sleep(0.1)

    slow = f"RUN Write-Host {eng.SLEEP_MARKER}60 {tmp_path.name}"
    summary, _before, _after, target = _one_fails(
        matrix,
        clients,
        tmp_path,
        "1803",
        slow,
        override={"1803": doomed_client},
        hook=kill_when_sleeping,
    )
    doomed_client.close()
    gc.collect()
    result = next(r for r in summary.results if r.build_id == target.id)
    assert not doomed.alive
    assert result.outcome is Outcome.FAILED
    assert result.message is not None
    assert f"{target.id} on engine-1803" in result.message
    assert "connection lost" in result.message
    assert result.duration < 30
    _others_built(summary, target)
    _assert_clean(clients)


def line_of_target(matrix: tuple[Path, list[Build]], release: str) -> str:
    return next(b.id for b in matrix[1] if b.release.key == release)


@_LIBRARY_SOCKET_LEAK
def test_an_unreachable_engine_fails_its_target_only(
    matrix: tuple[Path, list[Build]], clients: dict[str, Any], tmp_path: Path
) -> None:
    nowhere = docker.DockerClient(base_url=f"unix://{tmp_path}/nothing.sock", version="1.41")
    root = _copy(matrix, tmp_path)
    jobs = _jobs(root, matrix[1], clients, **{"1809": nowhere})
    summary, _ = _run(jobs, _settings(root))
    result = next(r for r in summary.results if r.host == "engine-1809")
    assert result.outcome is Outcome.FAILED
    assert result.message is not None
    assert "engine unreachable or connection lost" in result.message
    assert result.message.startswith(f"{result.build_id} on engine-1809:")
    assert [r.outcome.ok for r in summary.results if r is not result] == [True, True]
    nowhere.close()
    gc.collect()
    _assert_clean(clients)


class _Timeline(PlainReporter):
    """Records when each target starts and ends, to see how many ran at once."""

    def __init__(self) -> None:
        super().__init__(io.StringIO())
        self.events: list[tuple[float, int]] = []

    def started(self, build_id: str, host: str) -> None:
        self.events.append((time.monotonic(), +1))

    def finished(self, result: BuildResult) -> None:
        self.events.append((time.monotonic(), -1))


def _peak(events: list[tuple[float, int]]) -> int:
    running = peak = 0
    for _when, delta in sorted(events):
        running += delta
        peak = max(peak, running)
    return peak


@pytest.mark.parametrize("jobs_per_host", [1, 2])
def test_jobs_per_host_bounds_the_builds_on_one_engine(
    matrix: tuple[Path, list[Build]], clients: dict[str, Any], tmp_path: Path, jobs_per_host: int
) -> None:
    root = _copy(matrix, tmp_path)
    builds = matrix[1]
    for b in builds:
        insert_before_cmd(
            root / "dockerfiles" / b.directory / "Dockerfile",
            f"RUN Write-Host {eng.SLEEP_MARKER}2 {tmp_path.name}",
        )
    one = clients["ltsc2016"]
    jobs = [
        BuildJob(
            build=b,
            context=root / "dockerfiles" / b.directory,
            host="one-engine",
            client=one,
            os_type="linux",
        )
        for b in builds
    ]
    timeline = _Timeline()
    summary = run_builds(jobs, _settings(root, force=True), timeline, jobs_per_host=jobs_per_host)
    assert [r.outcome for r in summary.results] == [Outcome.BUILT] * 3
    assert _peak(timeline.events) == jobs_per_host
    _assert_clean(clients)


def test_a_missing_base_under_pull_never_names_target_and_host(
    matrix: tuple[Path, list[Build]], clients: dict[str, Any], tmp_path: Path
) -> None:
    root = _copy(matrix, tmp_path)
    target = matrix[1][0]
    dockerfile = root / "dockerfiles" / target.directory / "Dockerfile"
    text = dockerfile.read_text()
    dockerfile.write_text(text.replace(target.release.base_image, f"{eng.STANDIN_REPOSITORY}:nope"))
    summary, _ = _run(_jobs(root, [target], clients), _settings(root), verify=False)
    result = summary.results[0]
    assert result.outcome is Outcome.FAILED
    assert result.message is not None
    assert result.message.startswith(f"{target.id} on engine-{target.release.key}: ")
    assert "--pull never forbids pulling it" in result.message
    _assert_clean(clients)


def test_an_image_whose_verification_was_interrupted_is_not_kept(
    matrix: tuple[Path, list[Build]], clients: dict[str, Any], tmp_path: Path
) -> None:
    """Ctrl-C before its checks ran: the image was never verified, so a later run must build
    and verify it again rather than skip it as unchanged."""
    target = matrix[1][0]
    api = clients[target.release.key].api
    tag = f"test/interrupted:{tmp_path.name.lower()}"
    dockerfile = f"FROM {target.release.base_image}\nLABEL {HASH_LABEL}={tmp_path.name}\n"
    for _event in api.build(
        fileobj=io.BytesIO(dockerfile.encode()), tag=tag, rm=True, decode=True, pull=False
    ):
        pass
    image_id = api.inspect_image(tag)["Id"]
    job = _jobs(tmp_path, [target], clients)[0]
    built = BuildResult(
        build_id=target.id,
        host=job.host,
        isolation=None,
        outcome=Outcome.BUILT,
        duration=1.0,
        image_id=image_id,
        tags=(tag,),
    )
    canceller = Canceller()
    canceller.cancel("cancelled: interrupted (Ctrl-C)")
    result = make_verifier(_Recorder())(job, built, canceller)
    assert result.outcome is Outcome.CANCELLED
    assert result.checks == ()
    assert api.images(filters={"label": f"{HASH_LABEL}={tmp_path.name}"}) == []
    assert api.images(filters={"reference": tag}) == []
    _assert_clean(clients)


def test_a_failed_image_that_cannot_be_removed_is_said_so(
    matrix: tuple[Path, list[Build]], clients: dict[str, Any], tmp_path: Path
) -> None:
    """Verification failed, but a container (not the toolkit's) holds the image: it cannot be
    removed, and the result must say so, since the next run would skip it as unchanged."""
    target = matrix[1][0]
    api = clients[target.release.key].api
    tag = f"test/held:{tmp_path.name.lower()}"
    dockerfile = f"FROM {target.release.base_image}\nLABEL {HASH_LABEL}={tmp_path.name}\n"
    for _event in api.build(
        fileobj=io.BytesIO(dockerfile.encode()), tag=tag, rm=True, decode=True, pull=False
    ):
        pass
    image_id = api.inspect_image(tag)["Id"]
    holder = api.create_container(tag, command=["true"], network_disabled=True)["Id"]
    try:
        # versions.json of this target claims a pip the stand-in does not have: pip-version fails.
        claims = dataclasses.replace(
            target, line=dataclasses.replace(target.line, pip_version="0.0.1")
        )
        job = _jobs(tmp_path, [claims], clients)[0]
        built = BuildResult(
            build_id=target.id,
            host=job.host,
            isolation=None,
            outcome=Outcome.BUILT,
            duration=1.0,
            image_id=image_id,
            tags=(tag,),
        )
        result = make_verifier(_Recorder())(job, built, Canceller())
        assert result.outcome is Outcome.VERIFY_FAILED
        assert result.message is not None
        assert "1 of 6 checks failed: pip-version" in result.message
        assert "; the image could not be removed (conflict: " in result.message
        assert "the next run skips it as unchanged (--force rebuilds)" in result.message
    finally:
        api.remove_container(holder, force=True)
        for leftover in api.images(filters={"label": f"{HASH_LABEL}={tmp_path.name}"}):
            api.remove_image(leftover["Id"], force=True)
