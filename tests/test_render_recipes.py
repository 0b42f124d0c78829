"""One template family, two recipes and two flavors, chosen by the data in versions.json."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tests.conftest import run_toolkit
from toolkit.instructions import Instruction, history, parse_dockerfile
from toolkit.lint import Severity, lint_dockerfile

SEED = "3.8-rc"
GET_PIP = {
    "url": "https://github.com/pypa/get-pip/raw/309a56c5fd94bd1134053a541cb4657a4e47e09d/get-pip.py",
    "sha256": "57e3643ff19f018f8a00dfaa6b7e4620e3c1a7a2171fd218425366ec006b3bfe",
}


def dockerfile(ws: Path, line: str, variant: str) -> Path:
    return ws / "dockerfiles" / line / "windows" / variant / "Dockerfile"


def stages(path: Path) -> list[list[Instruction]]:
    found: list[list[Instruction]] = []
    for ins in parse_dockerfile(path):
        if ins.cmd == "FROM":
            found.append([])
        found[-1].append(ins)
    return found


def render(ws: Path, data: dict[str, Any]) -> None:
    (ws / "versions.json").write_text(json.dumps(data, indent=2) + "\n")
    result = run_toolkit("render", cwd=ws)
    assert result.returncode == 0, result.stderr


def test_nanoserver_installs_with_the_servercore_recipe_and_copies_it(workspace: Path) -> None:
    nano = stages(dockerfile(workspace, "3.14", "nanoserver-ltsc2022"))
    core = stages(dockerfile(workspace, "3.14", "windowsservercore-ltsc2022"))
    assert len(nano) == 2
    assert len(core) == 1
    installer, final = nano
    assert installer[0].value == (
        "mcr.microsoft.com/windows/servercore:ltsc2022",
        "AS",
        "installer",
    )
    assert final[0].value == ("mcr.microsoft.com/windows/nanoserver:ltsc2022",)
    # Stage 1 is the windowsservercore Dockerfile without its CMD: the same recipe.
    assert history(installer[1:], []) == history(core[0][1:-1], [])
    # Stage 2 needs no PowerShell: cmd is its shell, and nothing names powershell.
    shells = [i.value for i in final if i.cmd == "SHELL"]
    assert shells == [("cmd", "/S", "/C")]
    assert not any("powershell" in " ".join(i.value).lower() for i in final)
    assert [(i.cmd, i.value) for i in final if i.cmd in ("USER", "COPY", "CMD")] == [
        ("USER", ("ContainerAdministrator",)),
        ("USER", ("ContainerUser",)),
        ("COPY", ("C:\\\\Python", "C:\\\\Python")),  # as written; the builder unescapes
        ("CMD", ("python",)),
    ]
    (copy,) = [i for i in final if i.cmd == "COPY"]
    assert copy.flags == ("--from=installer",)
    (setx,) = [i for i in final if i.cmd == "RUN" and "setx" in i.value[0]]
    assert setx.value[0] == 'setx /m PATH "C:\\Python\\Scripts;C:\\Python;%PATH%"'
    env = [i.value for i in final if i.cmd == "ENV"]
    assert env == [("PYTHONIOENCODING", "UTF-8"), ("PYTHON_VERSION", "3.14.7")]


def test_the_data_chooses_the_recipe(workspace: Path) -> None:
    data = json.loads((workspace / "versions.json").read_text())
    seed = data[SEED]
    today = {k: v for k, v in seed.items() if k not in ("pip", "get-pip")}
    today["checksums"] = {"windows": {"sha256": "ab" * 32}}
    mixed = {**seed, "check-installer-exit-code": True}
    render(
        workspace,
        {
            "3.9": {**today, "version": "3.9.13", "variants": ["windows/windowsservercore-1809"]},
            SEED: mixed,
            "3.7": {**seed, "version": "3.7.4", "variants": ["windows/nanoserver-1809"]},
        },
    )
    installer = dockerfile(workspace, "3.9", "windowsservercore-1809").read_text()
    assert "ENV PYTHONIOENCODING UTF-8" in installer
    assert "'Include_pip=1'" in installer
    assert "$exitCode = (Start-Process python.exe -Wait -NoNewWindow -PassThru" in installer
    assert "PYTHON_RELEASE" not in installer
    assert "get-pip" not in installer

    mix = dockerfile(workspace, SEED, "windowsservercore-1809").read_text()
    assert "$exitCode = (Start-Process python.exe -Wait -NoNewWindow -PassThru" in mix
    assert "Remove-Item $env:TEMP/Python*.log -Force;" in mix
    assert "'Include_pip=0'" in mix
    assert "ENV PYTHON_RELEASE 3.8.0" in mix
    assert "ENV PYTHON_GET_PIP_SHA256 " in mix
    assert "PYTHONIOENCODING" not in mix

    plain = dockerfile(workspace, "3.7", "nanoserver-1809").read_text()
    assert "Start-Process python.exe -Wait \\\n" in plain  # the 2019 form: no exit code check
    assert "ExitCode" not in plain
    assert (
        "ENV PYTHON_PIP_VERSION 19.2.3"
        in plain.split("FROM mcr.microsoft.com/windows/nanoserver")[1]
    )

    for path in workspace.glob("dockerfiles/*/windows/*/Dockerfile"):
        findings = lint_dockerfile(path, hadolint=False)
        assert [f for f in findings if f.severity is Severity.ERROR] == [], path
        warnings = [f.message for f in findings]
        # Only the get-pip lines without an installer checksum have the unverified installer.
        if "/3.9/" in str(path):
            assert warnings == [], path
        else:
            assert len(warnings) == 1, path
            assert warnings[0].startswith("unverified download: 'python.exe'")


def test_every_committed_variant_lints_clean_of_errors(workspace: Path) -> None:
    result = run_toolkit("lint", cwd=workspace)
    assert result.returncode == 0, result.stdout + result.stderr
    assert " 0 error(s)" in result.stdout
