"""Exit codes of mistakes (issue 13, item 12): a usage error is exit 2 when the option is read,
before any target runs; a missing program is exit 9 with the fix; paths say what they are."""

from __future__ import annotations

import os
import stat
import sys
import threading
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import REPO, Result, run_toolkit
from toolkit.builds import BuildRequest, run_build
from toolkit.errors import ConfigError
from toolkit.hosts import load_hosts
from toolkit.imagenames import check_repository, check_tag
from toolkit.paths import directory_problem, file_problem

NO_ENGINE = ("--no-preflight", "--host", "1809=unix:///nonexistent/docker.sock", "*-1809")


def build(workspace: Path, *args: str, env: dict[str, str] | None = None) -> Result:
    return run_toolkit("build", *args, cwd=workspace, env=env)


# --- --repo ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "repo", ["", "Python", "python:3.8", "python@sha256:" + "a" * 64, " python", "py thon",
             "https://registry.example/python", "registry.example/-python", "a//b", "python/",
             "Team/python"],
)  # fmt: skip
@pytest.mark.parametrize("dry_run", [True, False])
def test_a_bad_repo_is_a_usage_error_before_any_target(
    workspace: Path, repo: str, dry_run: bool
) -> None:
    """Before: --dry-run passed, then every target failed at its engine (exit 10)."""
    result = build(workspace, "--repo", repo, *(["--dry-run"] if dry_run else []), *NO_ENGINE)
    assert result.returncode == 2, result.stdout + result.stderr
    assert result.stderr.startswith("error: --repo"), result.stderr
    assert "Traceback" not in result.stderr
    assert result.stdout == ""  # no plan, no target line, no summary
    assert not (workspace / "logs").exists()


def test_verify_checks_its_repo_too(workspace: Path) -> None:
    result = run_toolkit("verify", "--repo", "UPPER", *NO_ENGINE, cwd=workspace)
    assert result.returncode == 2
    assert "error: --repo 'UPPER' is not a repository name" in result.stderr


@pytest.mark.parametrize(
    "repo", ["python", "library/python", "registry.example.net/python", "localhost:5000/python",
             "[::1]:5000/py", "My-Registry.example:443/team/py_thon", "a__b/c-d/e.f"],
)  # fmt: skip
def test_good_repositories(repo: str) -> None:
    assert check_repository(repo) == repo


def test_tags() -> None:
    assert (
        check_tag("3.8-rc-windowsservercore-1809", where="tag") == "3.8-rc-windowsservercore-1809"
    )
    for bad in ("", ".x", "-x", "a" * 129, "a:b", "é"):
        with pytest.raises(ConfigError, match="is not a valid tag"):
            check_tag(bad, where="tag")


# --- --logs ---------------------------------------------------------------------------------


@pytest.mark.parametrize("dry_run", [True, False])
def test_logs_naming_a_file_is_a_usage_error(workspace: Path, dry_run: bool) -> None:
    (workspace / "logs.txt").write_text("not a directory\n")
    result = build(workspace, "--logs", "logs.txt", *(["--dry-run"] if dry_run else []), *NO_ENGINE)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "error: --logs logs.txt is a file, not a directory" in result.stderr
    assert result.stdout == ""
    assert (workspace / "logs.txt").read_text() == "not a directory\n"


def test_logs_under_a_file_is_a_usage_error(workspace: Path) -> None:
    (workspace / "f").write_text("x")
    result = build(workspace, "--logs", "f/logs", *NO_ENGINE)
    assert result.returncode == 2
    assert "error: --logs f/logs cannot be created: a part of the path is a file" in result.stderr


def test_logs_directory_is_made_before_the_run(tmp_path: Path) -> None:
    from toolkit.driver import BuildSettings, prepare_logs

    target = tmp_path / "a" / "b"
    assert directory_problem(target) is None
    prepare_logs(target, create=False)  # a dry run creates nothing
    assert not target.exists()
    prepare_logs(target, create=True)
    assert target.is_dir()
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    request = BuildRequest(versions=REPO / "versions.json", settings=BuildSettings(logs=fifo))
    with pytest.raises(ConfigError, match=r"--logs .* is a FIFO"):
        run_build(request, {}, clients=None, progress=None)  # type: ignore[arg-type]


# --- paths that are not files ----------------------------------------------------------------


@pytest.fixture
def certs(tmp_path: Path) -> Path:
    directory = tmp_path / "certs"
    directory.mkdir()
    for name in ("cert.pem", "key.pem"):
        (directory / name).write_text("x\n")
    return directory


def _hosts_with_ca(tmp_path: Path, ca: str) -> Path:
    path = tmp_path / "hosts.toml"
    path.write_text(
        f'[hosts.1809]\nurl = "tcp://win2019.example.net:2376"\nca = {ca!r}\n'
        'cert = "certs/cert.pem"\nkey = "certs/key.pem"\n',
        "utf-8",
    )
    return path


@pytest.mark.parametrize(
    ("make", "says"),
    [
        (lambda p: p.mkdir(), "is a directory, not a file"),
        (lambda p: os.mkfifo(p), "is a FIFO (named pipe), not a file"),
        (lambda p: None, "does not exist"),
        (lambda p: p.symlink_to(p), "cannot be read (Too many levels of symbolic links)"),
    ],
)
def test_a_ca_that_is_not_a_file_says_what_it_is(
    tmp_path: Path, certs: Path, make: Any, says: str
) -> None:
    """Before: a directory given as ca was reported as "does not exist"."""
    make(certs / "ca")
    with pytest.raises(ConfigError) as info:
        load_hosts(_hosts_with_ca(tmp_path, "certs/ca"), [], {})
    assert f"[hosts.1809].ca: {certs / 'ca'} {says}" in info.value.one_line()


def test_an_unreadable_file_is_named_so(tmp_path: Path) -> None:
    path = tmp_path / "key.pem"
    path.write_text("x")
    path.chmod(0)
    if os.access(path, os.R_OK):  # root reads anything: the check must agree with the kernel
        assert file_problem(path) is None
    else:
        assert file_problem(path) == "cannot be read (permission denied)"
    assert file_problem(tmp_path) == "is a directory, not a file"
    assert stat.S_ISDIR(tmp_path.stat().st_mode)


def test_a_directory_in_docker_cert_path_is_named(tmp_path: Path) -> None:
    for name in ("ca.pem", "cert.pem"):
        (tmp_path / name).write_text("x")
    (tmp_path / "key.pem").mkdir()
    env = {"DOCKER_TLS_VERIFY": "1", "DOCKER_CERT_PATH": str(tmp_path)}
    with pytest.raises(ConfigError, match=r"key\.pem is a directory, not a file"):
        load_hosts(None, ["1809=tcp://win2019.example.net:2376"], env)


# --- ssh:// -----------------------------------------------------------------------------------

BLOCK_PARAMIKO = "import sys; sys.modules['paramiko'] = None; from toolkit.cli import main; main()"


def _run_python(code: str, *args: str, cwd: Path, env: dict[str, str]) -> Result:
    import subprocess

    full_env = {k: v for k, v in os.environ.items() if not k.startswith(("TOOLKIT_", "DOCKER_"))}
    full_env.update(env, PYTHONPATH=str(REPO))
    proc = subprocess.run(
        [sys.executable, "-c", code, *args], cwd=cwd, env=full_env, capture_output=True,
        text=True, timeout=120, check=False,
    )  # fmt: skip
    return Result(proc.returncode, proc.stdout, proc.stderr)


@pytest.fixture
def ssh_on_path(tmp_path: Path) -> str:
    """A PATH with an ``ssh`` on it. Never run: the check that fails comes first."""
    directory = tmp_path / "bin"
    directory.mkdir()
    ssh = directory / "ssh"
    ssh.write_text("#!/bin/sh\nexit 99\n")
    ssh.chmod(0o755)
    return str(directory)


@pytest.mark.parametrize("command", ["hosts", "build"])
def test_ssh_without_paramiko_is_exit_9_with_the_fix(
    workspace: Path, ssh_on_path: str, command: str
) -> None:
    """docker-py imports paramiko for every ssh:// endpoint (even when it runs the ssh client);
    without it the run ended with "name 'SSHHTTPAdapter' is not defined" on each target."""
    extra = ["--dry-run"] if command == "build" else []
    result = _run_python(
        BLOCK_PARAMIKO, command, *extra, "--host", "1809=ssh://builder@127.0.0.1:1", "*-1809",
        cwd=workspace, env={"PATH": ssh_on_path},
    )  # fmt: skip
    assert result.returncode == 9, result.stdout + result.stderr
    assert (
        "error: Docker host ssh://builder@127.0.0.1:1 (--host 1809): ssh:// endpoints need "
        "paramiko, which is not installed (install it: pip install "
        "'windows-python-images-toolkit[ssh]', or pip install paramiko)"
    ) in result.stderr
    assert "SSHHTTPAdapter" not in result.stderr


def test_ssh_without_the_ssh_client_is_exit_9(workspace: Path, tmp_path: Path) -> None:
    result = _run_python(
        BLOCK_PARAMIKO, "hosts", "--host", "1809=ssh://builder@127.0.0.1:1", "*-1809",
        cwd=workspace, env={"PATH": str(tmp_path / "empty")},
    )  # fmt: skip
    assert result.returncode == 9, result.stderr
    assert "ssh:// endpoints need the OpenSSH client (ssh), which is not on PATH" in result.stderr


def test_the_ssh_extra_is_declared() -> None:
    import tomllib

    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    assert project["optional-dependencies"]["ssh"] == ["docker[ssh]>=7.1"]


# --- --jobs-per-host ----------------------------------------------------------------------------


class _CountingWork:
    """Runner work that records which worker ran each job; no engine involved."""

    def __init__(self) -> None:
        self.ran: list[str] = []

    def host(self, job: tuple[str, int]) -> str:
        return job[0]

    def run(self, job: tuple[str, int], canceller: object, interrupt: object) -> str:
        self.ran.append(threading.current_thread().name)
        return "ok"

    def failed(self, job: tuple[str, int], why: str) -> str:
        return why

    def not_run(self, job: tuple[str, int], why: str, interrupted: bool) -> str:
        return why

    def still_running(self, job: tuple[str, int]) -> str:
        return "running"

    def ok(self, result: str) -> bool:
        return result == "ok"

    def finished(self, result: str) -> None:
        pass


@pytest.mark.parametrize(
    ("jobs", "per_host", "threads"),
    [({"a": 3}, 64, 3), ({"a": 3}, 2, 2), ({"a": 3, "b": 1}, 8, 4), ({"a": 1}, 1, 1)],
)
def test_workers_are_capped_at_the_jobs_of_each_host(
    monkeypatch: pytest.MonkeyPatch, jobs: dict[str, int], per_host: int, threads: int
) -> None:
    """--jobs-per-host 64 for 3 targets starts 3 worker threads, not 64."""
    from toolkit.runner import run_targets

    started: list[str] = []
    original = threading.Thread.start

    def start(self: threading.Thread) -> None:
        started.append(self.name)
        original(self)

    monkeypatch.setattr(threading.Thread, "start", start)
    work = _CountingWork()
    targets = [(host, n) for host, count in jobs.items() for n in range(count)]
    summary = run_targets(targets, work, jobs_per_host=per_host, poll=0.01)
    assert list(summary.results) == ["ok"] * len(targets)
    workers = [name for name in started if name.startswith("run-")]
    assert len(workers) == threads, workers
