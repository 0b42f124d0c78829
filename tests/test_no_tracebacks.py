"""No traceback where a one-line error is due (issue 13 item 11).

Each input of the classes that used to end in a traceback: nesting deep enough to exhaust the
parser's recursion, numbers past int()'s 4300-digit limit, brace patterns that explode,
infinite durations, templates that fail at run time, Dockerfiles that are not UTF-8 or nest
20000 parentheses, and output to a full disk, a closed descriptor or a gone reader. Then a
property test over the CLI's inputs: whatever the arguments and versions.json, the run ends
with an exit code of the table and no traceback.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import REPO, Result, run_toolkit

TEMPLATE = Path("templates/windowsservercore.Dockerfile.j2")
D1809 = Path("dockerfiles/3.8-rc/windows/windowsservercore-1809/Dockerfile")
EXIT_CODES = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 130}
DEEP = 100_000
HUGE = "9" * 5000


def one_line_error(result: Result, code: int, *expect: str) -> str:
    assert result.returncode == code, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: "), lines[0]
    for text in expect:
        assert text in lines[0], lines[0]
    return lines[0]


def write(ws: Path, name: str | Path, text: str | bytes) -> None:
    path = ws / name
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text)


# -- the classes, one input each -----------------------------------------------------------------


def test_deeply_nested_json_and_toml(workspace: Path) -> None:
    write(workspace, "versions.json", "[" * DEEP + "]" * DEEP)
    one_line_error(run_toolkit("list", cwd=workspace), 2, "versions.json: invalid JSON: nested")
    write(workspace, "versions.json", (REPO / "versions.json").read_text())
    write(workspace, "hosts.toml", "a = " + "[" * DEEP + "]" * DEEP + "\n")
    result = run_toolkit("hosts", "--hosts", "hosts.toml", "--no-preflight", cwd=workspace)
    one_line_error(result, 2, "hosts.toml is not valid TOML: nested too deeply")


def test_numbers_of_thousands_of_digits(workspace: Path) -> None:
    data = json.loads((workspace / "versions.json").read_text())
    text = json.dumps(data).replace('"19.2.3"', HUGE)
    write(workspace, "versions.json", text)
    one_line_error(run_toolkit("list", cwd=workspace), 2, "a number of thousands of digits")
    write(workspace, "versions.json", json.dumps(data))
    write(workspace, "hosts.toml", f"a = {HUGE}\n")
    result = run_toolkit("hosts", "--hosts", "hosts.toml", cwd=workspace)
    one_line_error(result, 2, "a number of thousands of digits")
    data["3." + HUGE] = data.pop("3.8-rc")
    write(workspace, "versions.json", json.dumps(data))
    one_line_error(run_toolkit("render", cwd=workspace), 2, "at most 6 digits")


@pytest.mark.parametrize("command", ["list", "render", "lint"])
def test_a_brace_pattern_that_explodes(workspace: Path, command: str) -> None:
    result = run_toolkit(command, "{1..100000}", cwd=workspace)
    one_line_error(result, 2, "selector '{1..100000}' cannot be used", "at most 1000 patterns")


@pytest.mark.parametrize(
    "args",
    [
        ["bump", "--timeout", "inf"],
        ["bump", "--backoff", "nan"],
        ["bump", "--retry-time", "1e309"],
        ["build", "--timeout", "inf", "--dry-run"],
        ["verify", "--timeout", "-inf"],
    ],
)
def test_durations_that_are_not_numbers_of_seconds(workspace: Path, args: list[str]) -> None:
    result = run_toolkit(*args, cwd=workspace)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert "is not a number of seconds" in result.stderr.splitlines()[-1]


def test_the_timeout_from_the_environment_too(workspace: Path) -> None:
    result = run_toolkit("bump", cwd=workspace, env={"TOOLKIT_HTTP_TIMEOUT": "inf"})
    assert result.returncode == 2
    assert "(env var: 'TOOLKIT_HTTP_TIMEOUT'): 'inf' is not a number of seconds" in result.stderr


INSTALL = Path("templates/python-install.j2")


def edit_template(old: str, new: str, name: Path = INSTALL) -> Callable[[Path], None]:
    def apply(ws: Path) -> None:
        text = (ws / name).read_text()
        assert old in text
        (ws / name).write_text(text.replace(old, new, 1))

    return apply


def line_of(old: str, name: Path = INSTALL) -> int:
    """The line of ``name`` (in the repository) that holds ``old``."""
    lines = (REPO / name).read_text().splitlines()
    return next(i for i, line in enumerate(lines, 1) if old in line)


def not_utf8(ws: Path) -> None:
    (ws / TEMPLATE).write_bytes((ws / TEMPLATE).read_bytes() + b"\n# caf\xe9\n")


ENV_VERSION = "ENV PYTHON_VERSION {{ python_version }}"
TEMPLATE_CASES: dict[str, tuple[Callable[[Path], None], tuple[str, ...]]] = {
    "division by zero": (
        edit_template(ENV_VERSION, "ENV X {{ 1 // 0 }}"),
        (f"{INSTALL}:{line_of(ENV_VERSION)}: rendering 3.", "ZeroDivisionError"),
    ),
    "unknown test": (
        edit_template("{%- if python_sha256 %}", "{%- if python_sha256 is frobnicated %}"),
        ("No test named 'frobnicated'",),
    ),
    "includes itself": (
        edit_template("CMD [", '{% include "windowsservercore.Dockerfile.j2" %}\nCMD [', TEMPLATE),
        ("includes or calls itself without end",),
    ),
    "not UTF-8": (not_utf8, (f"{TEMPLATE}: cannot read the template: not UTF-8 (byte",)),
    "missing include": (
        edit_template("CMD [", '{% include "common/footer.j2" %}\nCMD [', TEMPLATE),
        ("included template 'common/footer.j2' not found", "add templates/common/footer.j2"),
    ),
    "calls an attribute that is not there": (
        edit_template(ENV_VERSION, "ENV PYTHON_VERSION {{ python_version.nope() }}"),
        (f"{INSTALL}:{line_of(ENV_VERSION)}:", "has no attribute 'nope'"),
    ),
}


@pytest.mark.parametrize("name", list(TEMPLATE_CASES))
@pytest.mark.parametrize("check", [False, True], ids=["render", "check"])
def test_template_failures_at_run_time(workspace: Path, name: str, check: bool) -> None:
    mutate, expect = TEMPLATE_CASES[name]
    mutate(workspace)
    before = (workspace / D1809).read_bytes()
    result = run_toolkit("render", *(["--check"] if check else []), cwd=workspace)
    one_line_error(result, 4, *expect)
    assert (workspace / D1809).read_bytes() == before


def test_the_sandbox_keeps_templates_away_from_python_internals(workspace: Path) -> None:
    """Item 13: a template cannot reach os.system through a global's __globals__."""
    proof = workspace / "PWNED"
    payload = f"{{{{ cycler.__init__.__globals__.os.system('touch {proof}') }}}}"
    edit_template("CMD [", payload + "\nCMD [", TEMPLATE)(workspace)
    result = run_toolkit("render", cwd=workspace)
    one_line_error(result, 4, "SecurityError", "__init__")
    assert not proof.exists()


def test_lint_of_a_dockerfile_that_is_not_utf8(workspace: Path) -> None:
    write(workspace, D1809, (workspace / D1809).read_bytes() + b"# \xff\xfe\n")
    result = run_toolkit("lint", "--no-hadolint", cwd=workspace)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert f"{D1809}:1:1: error [dockerfile] cannot read: not UTF-8 (byte" in result.stdout


def test_lint_of_20000_nested_parentheses(workspace: Path) -> None:
    text = (workspace / D1809).read_text()
    deep = "(" * 20000 + "1" + ")" * 20000
    write(workspace, D1809, text.replace("Write-Host 'Complete.'\n\nCMD", f"$x = {deep}\n\nCMD"))
    result = run_toolkit("lint", "--no-hadolint", cwd=workspace)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    assert "Dockerfile(s) linted: 0 error(s), 3 warning(s)" in result.stdout


# -- standard output that cannot be written ------------------------------------------------------


def run_with_stdout(
    ws: Path, args: list[str], how: str, extra: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """The CLI with its stdout on /dev/full, closed, or a pipe whose reader is gone."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TOOLKIT_", "GITHUB_"))}
    env["PYTHONPATH"] = str(REPO)
    env.update(extra or {})
    argv = [sys.executable, "-m", "toolkit", *args]
    common: dict[str, Any] = {"cwd": ws, "env": env, "stderr": subprocess.PIPE, "text": True}
    if how == "full":
        with open("/dev/full", "w") as full:
            return subprocess.run(argv, stdout=full, timeout=120, check=False, **common)
    if how == "closed":
        return subprocess.run(
            argv, preexec_fn=lambda: os.close(1), timeout=120, check=False, **common
        )
    read, write_end = os.pipe()
    os.close(read)  # nobody will read: writes fail with EPIPE
    try:
        return subprocess.run(argv, stdout=write_end, timeout=120, check=False, **common)
    finally:
        os.close(write_end)


def runners(ws: Path) -> None:
    labels = '["self-hosted", "windows"]'
    write(ws, "runners.toml", "".join(f"{r} = {labels}\n" for r in ("1809", "1803", "ltsc2016")))


def drift(ws: Path) -> None:
    write(ws, D1809, "edited\n")


OUTPUT_COMMANDS: dict[str, tuple[list[str], Callable[[Path], None] | None, int]] = {
    "list --json": (["list", "--json"], None, 5),
    "list": (["list"], None, 5),
    "help": (["--help"], None, 5),
    "command help": (["render", "-h"], None, 5),
    "version": (["--version"], None, 5),
    "render --check": (["render", "--check"], drift, 5),  # the diff is lost: 5, not 1
    "lint": (["lint", "--no-hadolint"], None, 5),
    "hosts": (["hosts", "--no-preflight"], None, 5),
    "ci-matrix": (["ci-matrix", "--runners", "runners.toml"], runners, 5),
}


@pytest.mark.parametrize("how", ["full", "closed", "pipe"])
@pytest.mark.parametrize("name", list(OUTPUT_COMMANDS))
def test_output_that_cannot_be_written_is_one_line(workspace: Path, name: str, how: str) -> None:
    args, setup, code = OUTPUT_COMMANDS[name]
    if setup is not None:
        setup(workspace)
    proc = run_with_stdout(workspace, args, how)
    assert proc.returncode == code, proc.stderr
    assert "Traceback" not in proc.stderr
    assert "Exception ignored" not in proc.stderr
    assert "error: standard output: cannot write: " in proc.stderr
    why = {"full": "No space left on device", "closed": "the descriptor is closed"}
    assert why.get(how, "Broken pipe") in proc.stderr


def test_a_command_that_writes_nothing_to_stdout_is_fine_with_it_closed(workspace: Path) -> None:
    proc = run_with_stdout(workspace, ["render"], "closed")
    assert proc.returncode == 0, proc.stderr
    assert "Dockerfile(s) rendered under dockerfiles: 0 changed" in proc.stderr


# -- the property: any arguments, any versions.json ----------------------------------------------


@contextlib.contextmanager
def inside(ws: Path) -> Iterator[None]:
    old = Path.cwd()
    os.chdir(ws)
    try:
        yield
    finally:
        os.chdir(old)


def run_in_process(args: list[str]) -> tuple[int, str, str]:
    """``toolkit ARGS`` in this process: exit code, stdout, stderr. Any exception but the
    SystemExit of main() propagates (that is a crash the test must see)."""
    from toolkit.cli import STATE, main

    STATE.debug = False
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            main(args)
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
        else:
            raise AssertionError("main() returned without exiting")
    return code, out.getvalue(), err.getvalue()


def assert_clean(code: int, out: str, err: str) -> None:
    assert code in EXIT_CODES, (code, err)
    assert "Traceback" not in err + out
    if code not in (0, 1):  # a failure says why on its last line: ours or click's usage error
        last = [line for line in err.splitlines() if line.strip()][-1]
        assert last.startswith(("error: ", "Error: ")), err


WEIRD = st.one_of(
    st.text(max_size=30),
    st.sampled_from(
        [
            *("inf", "-inf", "nan", "1e309", "-1", "0", HUGE, "{1..100000}", "{a,b}" * 11),
            *("3.8-rc\n", "03.08-rc", "[", "*", "3.8-rc-*", "1809=tcp://h:2376", "ltsc2016=ctx"),
        ]
    ),
).filter(lambda s: "\x00" not in s)
OFFLINE = ["--python-ftp-url", "http://127.0.0.1:9/", "--pypi-url", "http://127.0.0.1:9/"]
OFFLINE += ["--github-api-url", "http://127.0.0.1:9", "--github-url", "http://127.0.0.1:9"]
OFFLINE += ["--retries", "0", "--timeout", "1"]


@st.composite
def command_lines(draw: st.DrawFn) -> list[str]:
    command = draw(
        st.sampled_from(["list", "render", "lint", "hosts", "bump", "ci-matrix", "library"])
    )
    args = [command]
    options = {
        "list": ["--json", "--versions"],
        "render": ["--check", "--out", "--templates", "--versions"],
        "lint": ["--out", "--versions"],
        "hosts": ["--host", "--isolation", "--json", "--hosts"],
        "bump": ["--add", "--dry-run", "--json", "--no-render", "--jobs"],
        "ci-matrix": ["--runners", "--format", "--versions"],
        "library": ["--out", "--git-repo", "--maintainers", "--builder"],
    }[command]
    flags = {"--json", "--check", "--dry-run", "--no-render"}
    for option in draw(st.lists(st.sampled_from(options), max_size=3)):
        args += [option] if option in flags else [option, draw(WEIRD)]
    args += draw(st.lists(WEIRD, max_size=2))  # selectors, or lines for bump
    if command == "lint":
        args.append("--no-hadolint")
    if command == "hosts":
        args.append("--no-preflight")  # contacts nobody
    if command == "bump":
        args += [*OFFLINE, "--dry-run"]  # a closed loopback port: fails fast, writes nothing
    return args


@settings(
    max_examples=150,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(args=command_lines())
def test_any_arguments_end_in_an_exit_code_of_the_table(workspace: Path, args: list[str]) -> None:
    with inside(workspace):
        assert_clean(*run_in_process(args))


def _containers(inner: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner)


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    _containers,
    max_leaves=12,
)
PATHS: list[tuple[str | int, ...]] = [(), ("3.8-rc",), ("3.8-rc", "version"), ("3.8-rc", "pip")]
PATHS += [("3.8-rc", "pip", "version")]
PATHS += [("3.8-rc", "get-pip", "url"), ("3.8-rc", "get-pip", "sha256"), ("3.8-rc", "variants")]
PATHS += [("3.8-rc", "variants", 0), ("3.8-rc", "checksums"), ("3.8-rc", "extra")]


@settings(
    max_examples=150,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(where=st.sampled_from(PATHS), value=JSON, command=st.sampled_from(["list", "render"]))
def test_any_versions_json_ends_in_an_exit_code_of_the_table(
    workspace: Path, where: tuple[str | int, ...], value: object, command: str
) -> None:
    data: Any = json.loads((REPO / "versions.json").read_text())
    if where:
        target = data
        for key in where[:-1]:
            target = target[key]
        if isinstance(target, list):
            target[int(where[-1])] = value
        else:
            target[where[-1]] = value
    else:
        data = value
    (workspace / "versions.json").write_text(json.dumps(data))
    with inside(workspace):
        args = [command, "--check"] if command == "render" else [command]
        assert_clean(*run_in_process(args))


def test_bump_to_a_full_disk(workspace: Path) -> None:
    from tests.bump_upstream import PythonOrg, Upstream, publish_github, publish_pypi, running

    with running(Upstream()) as upstream:
        PythonOrg().release("3.8.0rc1").release("3.8.0rc2").publish(upstream)
        publish_pypi(upstream)
        publish_github(upstream)
        proc = run_with_stdout(workspace, ["bump", "--dry-run"], "full", upstream.env())
    assert proc.returncode == 5, proc.stderr
    assert "Traceback" not in proc.stderr
    assert "error: standard output: cannot write: No space left on device" in proc.stderr
