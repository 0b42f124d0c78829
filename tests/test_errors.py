"""Bad inputs: each exits with its class's code, says what and where in one line, writes nothing."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import run_toolkit

Mutation = Callable[[Path], None]


def edit_json(change: Callable[[dict[str, Any]], None]) -> Mutation:
    def apply(ws: Path) -> None:
        data = json.loads((ws / "versions.json").read_text())
        change(data)
        (ws / "versions.json").write_text(json.dumps(data, indent=2) + "\n")

    return apply


def write_text(name: str, text: str) -> Mutation:
    def apply(ws: Path) -> None:
        (ws / name).write_text(text)

    return apply


def line(data: dict[str, Any]) -> dict[str, Any]:
    entry: dict[str, Any] = data["3.8-rc"]
    return entry


def rename_line(new: str, version: str | None = None) -> Callable[[dict[str, Any]], None]:
    def change(data: dict[str, Any]) -> None:
        entry = data.pop("3.8-rc")
        if version:
            entry["version"] = version
        data[new] = entry

    return change


def set_path(value: object, *keys: str) -> Callable[[dict[str, Any]], None]:
    def change(data: dict[str, Any]) -> None:
        target = line(data)
        for key in keys[:-1]:
            target = target[key]
        target[keys[-1]] = value

    return change


def template_edit(old: str, new: str, name: str = "python-install.j2") -> Mutation:
    def apply(ws: Path) -> None:
        path = ws / "templates" / name
        text = path.read_text()
        assert old in text
        path.write_text(text.replace(old, new, 1))

    return apply


def remove_versions(ws: Path) -> None:
    (ws / "versions.json").unlink()


def out_is_a_file(ws: Path) -> None:
    (ws / "blocker").write_text("not a directory\n")


GOOD_SHA = "57e3643ff19f018f8a00dfaa6b7e4620e3c1a7a2171fd218425366ec006b3bfe"
GOOD_URL = "https://github.com/pypa/get-pip/raw/309a56c5fd94bd1134053a541cb4657a4e47e09d/get-pip.py"


@dataclass(frozen=True)
class Case:
    name: str
    mutate: Mutation
    code: int
    expect: tuple[str, ...]
    args: tuple[str, ...] = ()
    extra: dict[str, str] = field(default_factory=dict)


def key_typo(d: dict[str, Any]) -> None:
    line(d)["verison"] = line(d).pop("version")


def pip_typo(d: dict[str, Any]) -> None:
    line(d)["pip"] = {"versoin": "19.2.3"}


def drop_pip(d: dict[str, Any]) -> None:
    del line(d)["pip"]


def today(d: dict[str, Any]) -> dict[str, Any]:
    """The line of today's shape (pip from the installer)."""
    entry: dict[str, Any] = d["3.14"]
    return entry


def drop_installer_checksum(d: dict[str, Any]) -> None:
    del today(d)["checksums"]


def exit_check_off_without_get_pip(d: dict[str, Any]) -> None:
    today(d)["check-installer-exit-code"] = False


def nanoserver_on_ltsc2016(d: dict[str, Any]) -> None:
    line(d)["variants"].append("windows/nanoserver-ltsc2016")


def duplicate_variant(d: dict[str, Any]) -> None:
    line(d)["variants"].append("windows/windowsservercore-1809")


def stray_top_key(d: dict[str, Any]) -> None:
    line(d)["get-pip"]["sha"] = GOOD_SHA


CASES = [
    Case(
        "broken JSON",
        write_text("versions.json", '{"3.8-rc": {,}}\n'),
        2,
        ("versions.json:1:", "invalid JSON"),
    ),
    Case("top level is an array", write_text("versions.json", "[]\n"), 2, ("expected an object",)),
    Case("no lines", write_text("versions.json", "{}\n"), 2, ("no Python lines",)),
    Case(
        "duplicate key",
        write_text("versions.json", '{"3.8-rc": {}, "3.8-rc": {}}\n'),
        2,
        ("duplicate key '3.8-rc'",),
    ),
    Case("bad line name", edit_json(rename_line("3.x")), 2, ('."3.x"', "not a Python line")),
    Case("unknown key", edit_json(key_typo), 2, (".verison", "did you mean 'version'")),
    Case(
        "unknown nested key",
        edit_json(pip_typo),
        2,
        ('."3.8-rc".pip.versoin', "did you mean 'version'"),
    ),
    Case(
        "pip without get-pip",
        edit_json(drop_pip),
        2,
        (".\"3.8-rc\": 'get-pip' without 'pip'", 'drop "get-pip"'),
    ),
    Case(
        "line without get-pip and without installer checksum",
        edit_json(drop_installer_checksum),
        2,
        (".\"3.14\": missing key 'checksums'", "python-3.14.7-amd64.exe", "bump --add 3.14"),
    ),
    Case(
        "exit-code check switched off where it is the recipe",
        edit_json(exit_check_off_without_get_pip),
        2,
        ('."3.14"."check-installer-exit-code"', "always checks the installer's exit code"),
    ),
    Case(
        "exit-code check not a boolean",
        edit_json(set_path("yes", "check-installer-exit-code")),
        2,
        ('."3.8-rc"."check-installer-exit-code"', "expected true or false, got a string"),
    ),
    Case(
        "nanoserver for a release without Nano Server",
        edit_json(nanoserver_on_ltsc2016),
        2,
        ("no nanoserver base image for Windows release 'ltsc2016'", "1809, ltsc2022, ltsc2025"),
    ),
    Case(
        "unknown flavor",
        edit_json(set_path(["windows/nanoserverr-1809"], "variants")),
        2,
        ("unknown image flavor 'nanoserverr'", "did you mean 'nanoserver'?"),
    ),
    Case(
        "version is a number",
        edit_json(set_path(3.8, "version")),
        2,
        (".version", "expected a string, got a number"),
    ),
    Case(
        "not a CPython version",
        edit_json(set_path("3.8.0-rc1", "version")),
        2,
        ("not a CPython version",),
    ),
    Case(
        "version of another line",
        edit_json(set_path("3.9.0rc1", "version")),
        2,
        ("does not belong to line 3.8-rc",),
    ),
    Case(
        "pre-release in a final line",
        edit_json(rename_line("3.8")),
        2,
        ("pre-release in the final line 3.8", "rename the line to 3.8-rc"),
    ),
    Case(
        "pip version not a version",
        edit_json(set_path("nineteen", "pip", "version")),
        2,
        (".pip.version", "not a pip version"),
    ),
    Case(
        "sha256 too short",
        edit_json(set_path(GOOD_SHA[:63], "get-pip", "sha256")),
        2,
        ('."get-pip".sha256', "63 characters, not 64"),
    ),
    Case(
        "sha256 not hex",
        edit_json(set_path("g" * 64, "get-pip", "sha256")),
        2,
        ("not lowercase hex",),
    ),
    Case(
        "get-pip over http",
        edit_json(set_path(GOOD_URL.replace("https", "http"), "get-pip", "url")),
        2,
        ("not an https URL",),
    ),
    Case(
        "get-pip not pinned",
        edit_json(set_path("https://bootstrap.pypa.io/get-pip.py", "get-pip", "url")),
        2,
        ("not pinned to a pypa/get-pip commit",),
    ),
    Case(
        "get-pip unknown key",
        edit_json(stray_top_key),
        2,
        ('."get-pip".sha', "did you mean 'sha256'"),
    ),
    Case(
        "unknown Windows release",
        edit_json(set_path(["windows/windowsservercore-1890"], "variants")),
        2,
        (".variants[0]", "unknown Windows release '1890'", "did you mean"),
    ),
    Case(
        "release alias instead of key",
        edit_json(set_path(["windows/windowsservercore-ltsc2019"], "variants")),
        2,
        ("write windows/windowsservercore-1809",),
    ),
    Case("no variants", edit_json(set_path([], "variants")), 2, ("non-empty array",)),
    Case("variant listed twice", edit_json(duplicate_variant), 2, ("listed twice",)),
    Case(
        "bad installer checksum",
        edit_json(set_path({"windows": {"sha256": "abc"}}, "checksums")),
        2,
        (".checksums.windows.sha256", "3 characters"),
    ),
    Case("versions file missing", remove_versions, 2, ("no such file", "--versions")),
    Case(
        "template syntax error",
        template_edit("{{ python_version }}", "{{ python_version }"),
        4,
        ("python-install.j2:", "template syntax error"),
    ),
    Case(
        "missing template variable",
        template_edit("{{ python_version }}", "{{ python_verison }}"),
        4,
        ("'python_verison' is undefined", "rendering 3.15-rc-windowsservercore-ltsc2025"),
    ),
    Case(
        "template missing",
        lambda ws: (ws / "templates" / "windowsservercore.Dockerfile.j2").unlink(),
        4,
        ("template 'windowsservercore.Dockerfile.j2' not found",),
    ),
    Case(
        "included template missing",
        lambda ws: (ws / "templates" / "python-install.j2").unlink(),
        4,
        ("template 'python-install.j2' not found", "windowsservercore.Dockerfile.j2"),
    ),
    Case(
        "unwritable output directory",
        out_is_a_file,
        5,
        ("blocker", "cannot write"),
        args=("--out", "blocker/out"),
    ),
    Case(
        "selector matches nothing",
        lambda ws: None,
        3,
        ("selector '3.9-*' matches no build",),
        args=("3.9-*",),
    ),
    Case("unknown option", lambda ws: None, 2, ("No such option",), args=("--frobnicate",)),
]


def snapshot(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_bad_input(case: Case, workspace: Path) -> None:
    # Leave one Dockerfile missing so a render that wrongly went ahead would be seen writing.
    (workspace / "dockerfiles/3.8-rc/windows/windowsservercore-1803/Dockerfile").unlink()
    case.mutate(workspace)
    before = snapshot(workspace)

    result = run_toolkit("render", *case.args, cwd=workspace, env=case.extra)

    assert result.returncode == case.code, result.stderr
    for text in case.expect:
        assert text in result.stderr, result.stderr
    assert "Traceback" not in result.stderr
    if case.code != 2 or "No such option" not in case.expect:
        lines = [ln for ln in result.stderr.splitlines() if ln.strip()]
        assert len(lines) == 1, result.stderr
        assert lines[0].startswith("error: ")
    assert snapshot(workspace) == before


def test_case_table_is_large_enough() -> None:
    assert len(CASES) >= 20


def test_debug_shows_the_traceback(workspace: Path) -> None:
    write_text("versions.json", "[]\n")(workspace)
    result = run_toolkit("--debug", "render", cwd=workspace)
    assert result.returncode != 0
    assert "Traceback" in result.stderr
    assert "ConfigError" in result.stderr


def test_github_actions_gets_an_error_annotation(workspace: Path) -> None:
    write_text("versions.json", "[]\n")(workspace)
    result = run_toolkit("render", cwd=workspace, env={"GITHUB_ACTIONS": "true"})
    assert result.returncode == 2
    assert result.stderr.startswith("::error::")


def test_staging_failure_leaves_every_target_untouched(workspace: Path) -> None:
    """When one of several files cannot be staged, none of the others is replaced."""
    from toolkit.errors import OutputError
    from toolkit.files import write_files

    first = workspace / "a" / "Dockerfile"
    first.parent.mkdir()
    first.write_text("old\n")
    (workspace / "b").write_text("a file where a directory should be\n")
    with pytest.raises(OutputError, match="cannot write"):
        write_files([(first, "new\n"), (workspace / "b" / "c" / "Dockerfile", "new\n")])
    assert first.read_text() == "old\n"
    assert sorted(os.listdir(first.parent)) == ["Dockerfile"]
