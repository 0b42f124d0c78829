"""Validation is exact (issue 13 item 10): every validated field must match whole.

Python's ``$`` also matches before a final newline, so ``"3.8-rc\\n"`` used to pass as a line
name: it rendered into a directory ``3.8-rc\\n/`` and removed the real ``3.8-rc/`` Dockerfiles
as stale. Every field is tried with a trailing newline; line names and versions also with
leading zeros and with absurd numbers; and every regular expression in toolkit/ is checked
not to rely on ``$``.
"""

from __future__ import annotations

import ast
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.bump_upstream import (
    PythonOrg,
    Upstream,
    publish_github,
    publish_pypi,
    pypi_document,
    running,
)
from tests.conftest import REPO, run_toolkit
from tests.faults import snapshot

Edit = Callable[[dict[str, Any]], None]


def on_line(change: Callable[[dict[str, Any]], None]) -> Edit:
    def edit(data: dict[str, Any]) -> None:
        change(data["3.8-rc"])

    return edit


def rename(new: str) -> Edit:
    def edit(data: dict[str, Any]) -> None:
        data[new] = data.pop("3.8-rc")

    return edit


def append_newline(*keys: str | int) -> Edit:
    def change(line: dict[str, Any]) -> None:
        target: Any = line
        for key in keys[:-1]:
            target = target[key]
        target[keys[-1]] += "\n"

    return on_line(change)


def add_checksum(line: dict[str, Any]) -> None:
    line["checksums"] = {"windows": {"sha256": "ab" * 32 + "\n"}}


def set_version(value: str) -> Edit:
    return on_line(lambda line: line.__setitem__("version", value))


def set_pip(value: str) -> Edit:
    return on_line(lambda line: line["pip"].__setitem__("version", value))


BAD: dict[str, tuple[Edit, str]] = {
    "line name + newline": (rename("3.8-rc\n"), "is not a Python line"),
    "version + newline": (append_newline("version"), "is not a CPython version"),
    "pip version + newline": (append_newline("pip", "version"), "is not a pip version"),
    "get-pip url + newline": (append_newline("get-pip", "url"), "is not pinned"),
    "get-pip sha256 + newline": (append_newline("get-pip", "sha256"), "65 characters, not 64"),
    "installer sha256 + newline": (on_line(add_checksum), "65 characters, not 64"),
    "variant + newline": (append_newline("variants", 0), "is not a variant"),
    "line name with leading zeros": (rename("03.08-rc"), "without leading zeros: 3.8-rc"),
    "minor with a leading zero": (rename("3.08-rc"), "without leading zeros: 3.8-rc"),
    "line name of 20 digits": (rename("3.99999999999999999999-rc"), "at most 6 digits"),
    "line name of 5000 digits": (rename("3." + "9" * 5000), "at most 6 digits"),
    "version with a 20-digit micro": (set_version("3.8.99999999999999999999"), "CPython version"),
    "version with a leading zero": (set_version("3.8.00rc1"), "is not a CPython version"),
    "pre-release of 20 digits": (set_version("3.8.0rc99999999999999999999"), "CPython version"),
    "pip with a leading zero": (set_pip("019.2.3"), "is not a pip version"),
    "pip of 5000 digits": (set_pip("1" * 5000), "is not a pip version"),
}


@pytest.mark.parametrize("name", list(BAD))
@pytest.mark.parametrize("command", ["render", "lint", "list"])
def test_a_field_that_does_not_match_whole_is_refused_and_nothing_written(
    workspace: Path, name: str, command: str
) -> None:
    edit, expect = BAD[name]
    data = json.loads((workspace / "versions.json").read_text())
    edit(data)
    (workspace / "versions.json").write_text(json.dumps(data, indent=2) + "\n")
    before = snapshot(workspace)
    args = ["--no-hadolint"] if command == "lint" else []
    result = run_toolkit(command, *args, cwd=workspace)
    assert result.returncode == 2, result.stdout + result.stderr
    [error] = result.stderr.splitlines()
    assert expect in error
    assert len(error) < 400  # a 5000-digit name is cut, not echoed
    assert result.stdout == ""
    assert snapshot(workspace) == before  # the real 3.8-rc/ Dockerfiles were not removed


@pytest.mark.parametrize("how", [["--add"], []], ids=["--add", "named"])
def test_bump_refuses_absurd_and_zero_padded_lines(workspace: Path, how: list[str]) -> None:
    for name, expect in (("3." + "9" * 5000, "at most 6 digits"), ("03.9-rc", "3.9-rc")):
        result = run_toolkit("bump", *how, name, cwd=workspace)
        assert result.returncode == 2
        [error] = result.stderr.splitlines()
        assert expect in error
        assert len(error) < 300


# -- every regular expression of the toolkit -----------------------------------------------------

RE_FUNCTIONS = {"compile", "match", "fullmatch", "search", "sub", "subn", "split", "findall"}


def _patterns() -> Iterator[tuple[str, int, str]]:
    """(file, line, pattern text) of every literal pattern given to the re module in toolkit/;
    f-strings contribute their literal parts (the pieces they interpolate are literals too)."""
    for path in sorted((REPO / "toolkit").rglob("*.py")):
        tree = ast.parse(path.read_text(), str(path))
        for node in ast.walk(tree):
            if not (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and isinstance(node.func.value, ast.Name)
                and node.func.value.id == "re"
                and node.func.attr in RE_FUNCTIONS
                and node.args
            ):
                continue
            first = node.args[0]
            parts = [first] if isinstance(first, ast.Constant) else []
            if isinstance(first, ast.JoinedStr):
                parts = [v for v in first.values if isinstance(v, ast.Constant)]
            text = "".join(p.value for p in parts if isinstance(p.value, str))
            yield str(path.relative_to(REPO)), node.lineno, text


def _dollar_anchors(pattern: str) -> int:
    """How many unescaped ``$`` outside character classes ``pattern`` has."""
    count, escaped, in_class = 0, False, False
    for char in pattern:
        if escaped:
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == "[":
            in_class = True
        elif char == "]":
            in_class = False
        elif char == "$" and not in_class:
            count += 1
    return count


def test_no_pattern_in_the_toolkit_relies_on_dollar() -> None:
    found = list(_patterns())
    assert len(found) >= 15, "the scan must see the toolkit's patterns"
    offenders = [f"{file}:{line}: {text!r}" for file, line, text in found if _dollar_anchors(text)]
    assert offenders == []
    assert _dollar_anchors(r"^[0-9]+$") == 1  # the scan itself sees one
    assert _dollar_anchors(r"[$]\$x\Z") == 0


# -- what upstream publishes -----------------------------------------------------------------


@pytest.fixture
def upstream() -> Iterator[Upstream]:
    with running(Upstream()) as server:
        yield server


def test_bump_passes_over_absurd_upstream_versions_with_a_note(
    workspace: Path, upstream: Upstream
) -> None:
    org = PythonOrg().release("3.8.0rc1").release("3.8.0rc2")
    org.release("3.8.0rc99999999999999999999")  # in the 3.8.0 folder, with its installer
    org.release("3.8.99999999999999999999")  # a folder of its own
    org.publish(upstream)
    pypi = pypi_document()
    pypi["releases"]["99999999999999999999.0"] = [{"requires_python": None, "yanked": False}]
    publish_pypi(upstream, pypi)
    publish_github(upstream)
    env = {**upstream.env(), "TOOLKIT_HTTP_TIMEOUT": "2", "TOOLKIT_HTTP_RETRIES": "0"}
    result = run_toolkit("bump", cwd=workspace, env=env)
    assert result.returncode == 0, result.stderr
    line = json.loads((workspace / "versions.json").read_text())["3.8-rc"]
    assert line["version"] == "3.8.0rc2"
    assert line["pip"]["version"] == "19.3"
    assert (
        "note: 3.8-rc: passed over 3.8.99999999999999999999, 3.8.0rc99999999999999999999: "
        "not a plausible version"
    ) in result.stderr
    assert "note: pip 99999999999999999999.0: not a plausible version; passed over" in (
        result.stderr
    )
