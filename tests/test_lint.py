"""toolkit lint: each check catches a broken file, and the committed files pass."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import run_toolkit
from toolkit.instructions import parse_dockerfile
from toolkit.lint import Severity, lint_dockerfile, run_script

D1809 = Path("dockerfiles/3.8-rc/windows/windowsservercore-1809/Dockerfile")
D2022 = Path("dockerfiles/3.14/windows/windowsservercore-ltsc2022/Dockerfile")
NANO = Path("dockerfiles/3.14/windows/nanoserver-ltsc2025/Dockerfile")


def edit(ws: Path, old: str, new: str, file: Path = D1809) -> Path:
    path = ws / file
    text = path.read_text()
    assert old in text, old
    path.write_text(text.replace(old, new, 1))
    return path


def line_of(path: Path, needle: str) -> int:
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if needle in line:
            return number
    raise AssertionError(needle)


def test_committed_dockerfiles_pass_with_only_the_unverified_installer_warning(
    workspace: Path,
) -> None:
    """Both recipes lint clean; the 2019 line without an installer checksum gets the one
    warning it deserves (the published 3.8.0rc1 images did not check the installer)."""
    result = run_toolkit("lint", cwd=workspace)
    assert result.returncode == 0, result.stdout + result.stderr
    count = len(list((workspace / "dockerfiles").rglob("Dockerfile")))
    assert count == 15
    assert f"{count} Dockerfile(s) linted: 0 error(s), 3 warning(s)" in result.stdout
    for release in ("1809", "1803", "ltsc2016"):
        assert (
            f"3.8-rc/windows/windowsservercore-{release}/Dockerfile:17:2: warning [sha256] "
            "unverified download: 'python.exe'" in result.stdout
        )
    assert "nanoserver" not in result.stdout + result.stderr
    assert "3.14/" not in result.stdout + result.stderr


@pytest.mark.parametrize("file", [D1809, D2022, NANO], ids=["2019", "2026", "nanoserver"])
def test_run_script_is_what_buildkit_hands_to_powershell_in_both_recipes(
    workspace: Path, file: Path
) -> None:
    path = workspace / file
    lines = path.read_text().splitlines()
    runs = [i for i in parse_dockerfile(path) if i.cmd == "RUN"]
    assert runs
    for ins in runs:
        assert run_script(lines, ins).text == ins.value[0]


def test_a_misspelt_env_read_fails_with_line_and_column(workspace: Path) -> None:
    path = edit(
        workspace,
        "-ne $env:PYTHON_SHA256) {",
        "-ne $env:PYTHON_SHA265) {",
        D2022,
    )
    result = run_toolkit("lint", "--no-hadolint", "3.14-windowsservercore-ltsc2022", cwd=workspace)
    assert result.returncode == 1
    line = line_of(path, "$env:PYTHON_SHA265")
    column = path.read_text().splitlines()[line - 1].index("$env:PYTHON_SHA265") + 1
    assert (
        f"{D2022.name}:{line}:{column}: error [env] $env:PYTHON_SHA265 is never set"
        in result.stdout
    )
    assert "did you mean PYTHON_SHA256?" in result.stdout
    assert "1 Dockerfile(s) linted: 1 error(s), 0 warning(s)" in result.stdout


def test_an_env_set_after_the_run_or_in_another_stage_does_not_count(tmp_path: Path) -> None:
    path = tmp_path / "Dockerfile"
    path.write_text(
        "FROM mcr.microsoft.com/windows/servercore:ltsc2022 AS installer\n"
        'SHELL ["powershell", "-Command"]\n'
        "ENV EARLY 1\n"
        "ARG WITH_DEFAULT=1\n"
        "RUN Write-Host $env:EARLY $env:early $env:WITH_DEFAULT $env:LATE; \\\n"
        "\t$env:HERE = 1; Write-Host $env:HERE $env:TEMP ${env:ProgramFiles(x86)} $env:Path; \\\n"
        "\t$env:COUNT += 1\n"
        "ENV LATE 2\n"
        "FROM installer AS child\n"
        "RUN Write-Host $env:LATE $env:HERE\n"
        "FROM mcr.microsoft.com/windows/servercore:ltsc2022\n"
        'SHELL ["powershell", "-Command"]\n'
        'RUN Write-Host "$env:EARLY"\n'
    )
    lines = path.read_text().splitlines()

    def at(line: int, needle: str) -> tuple[int, int, str]:
        return line, lines[line - 1].index(needle) + 1, needle

    findings = [f for f in lint_dockerfile(path, hadolint=False) if f.check == "env"]
    assert [(f.line, f.column, f.message.split()[0]) for f in findings] == [
        at(5, "$env:LATE"),  # set by an ENV after this RUN
        at(7, "$env:COUNT"),  # += reads before it writes
        at(10, "$env:HERE"),  # a RUN's own assignments end with it
        at(13, "$env:EARLY"),  # a new stage FROM an image starts empty
    ]
    assert all(f.severity is Severity.ERROR for f in findings)


def test_sha256_must_be_checked_before_the_download_is_used(workspace: Path) -> None:
    """The check after running the installer would verify nothing."""
    text = (workspace / D2022).read_text()
    check = (
        "\tWrite-Host ('Verifying sha256 ({0}) ...' -f $env:PYTHON_SHA256); \\\n"
        "\tif ((Get-FileHash python.exe -Algorithm sha256).Hash -ne $env:PYTHON_SHA256) { \\\n"
        "\t\tWrite-Host 'FAILED!'; \\\n"
        "\t\texit 1; \\\n"
        "\t}; \\\n"
    )
    assert check in text
    text = text.replace(check, "")
    moved = "\tRemove-Item python.exe -Force; \\\n"
    assert moved in text
    path = workspace / D2022
    path.write_text(text.replace(moved, check + moved))
    findings = [f for f in lint_dockerfile(path, hadolint=False) if f.check == "sha256"]
    assert len(findings) == 1
    start = line_of(path, "$exitCode = (Start-Process python.exe")
    assert f"'python.exe' is used at {start}:" in findings[0].message
    assert findings[0].line == line_of(path, "Invoke-WebRequest -Uri $url -OutFile 'python.exe'")


def test_run_script_is_what_buildkit_hands_to_powershell(workspace: Path) -> None:
    path = workspace / D1809
    lines = path.read_text().splitlines()
    runs = [i for i in parse_dockerfile(path) if i.cmd == "RUN"]
    assert len(runs) == 2
    for ins in runs:
        assert run_script(lines, ins).text == ins.value[0]


def test_powershell_syntax_error_is_reported_with_line_and_column(workspace: Path) -> None:
    path = edit(workspace, "if ((Get-FileHash 'get-pip.py'", "if (((Get-FileHash 'get-pip.py'")
    findings = [f for f in lint_dockerfile(path, hadolint=False) if f.check == "powershell"]
    assert findings, "the unbalanced parenthesis must be found"
    assert findings[0].severity is Severity.ERROR
    start = line_of(path, "RUN Write-Host ('Downloading get-pip.py")
    assert start <= findings[0].line <= start + 25
    result = run_toolkit("lint", "--no-hadolint", "*-1809", cwd=workspace)
    assert result.returncode == 1
    assert (
        f"{D1809.name}:{findings[0].line}:{findings[0].column}: error [powershell]" in result.stdout
    )


def test_powershell_error_position_points_into_the_right_line(workspace: Path) -> None:
    path = edit(
        workspace, "\tRemove-Item python.exe -Force; \\", "\tRemove-Item python.exe -Force) \\"
    )
    findings = [f for f in lint_dockerfile(path, hadolint=False) if f.check == "powershell"]
    assert findings
    assert findings[0].line == line_of(path, "Remove-Item python.exe -Force)")


def test_buildkit_structure_errors(workspace: Path) -> None:
    path = edit(workspace, 'CMD ["python"]', 'CMDD ["python"]')
    findings = lint_dockerfile(path, hadolint=False)
    assert any(
        f.check == "dockerfile"
        and "unknown instruction CMDD" in f.message
        and f.line == line_of(path, "CMDD")
        for f in findings
    )


def test_missing_from_is_an_error(workspace: Path) -> None:
    path = edit(workspace, "FROM mcr.microsoft.com/windows/servercore:1809\n", "")
    messages = [f.message for f in lint_dockerfile(path, hadolint=False)]
    assert "no FROM instruction" in messages


def test_download_followed_by_sha256_check_is_verified(tmp_path: Path) -> None:
    path = tmp_path / "Dockerfile"
    path.write_text(
        "FROM mcr.microsoft.com/windows/servercore:1809\n"
        'SHELL ["powershell", "-Command"]\n'
        "RUN Invoke-WebRequest -Uri $u -OutFile 'a.zip'; \\\n"
        "\tif ((Get-FileHash -Path a.zip -Algorithm SHA256).Hash -ne $env:A) { exit 1 }; \\\n"
        "\t(New-Object Net.WebClient).DownloadFile($u, 'b.zip'); \\\n"
        "\t(Get-FileHash 'b.zip' -Algorithm MD5).Hash\n"
    )
    findings = [f for f in lint_dockerfile(path, hadolint=False) if f.check == "sha256"]
    assert [(f.line, f.message) for f in findings] == [
        (
            5,
            "unverified download: 'b.zip' is not checked with Get-FileHash -Algorithm sha256 afterwards",
        )
    ]


def test_hash_before_download_does_not_count(tmp_path: Path) -> None:
    path = tmp_path / "Dockerfile"
    path.write_text(
        'FROM x\nSHELL ["pwsh", "-Command"]\nRUN Get-FileHash a.zip; iwr $u -OutFile a.zip\n'
    )
    findings = [f for f in lint_dockerfile(path, hadolint=False) if f.check == "sha256"]
    assert len(findings) == 1
    assert findings[0].severity is Severity.WARNING


def test_run_under_a_non_powershell_shell_is_not_parsed_as_powershell(tmp_path: Path) -> None:
    path = tmp_path / "Dockerfile"
    path.write_text('FROM x\nSHELL ["cmd", "/S", "/C"]\nRUN if ((( echo\n')
    assert [f for f in lint_dockerfile(path, hadolint=False) if f.check == "powershell"] == []


@pytest.mark.parametrize(
    ("old", "new", "code"),
    [
        (
            "FROM mcr.microsoft.com/windows/servercore:1809",
            "FROM mcr.microsoft.com/windows/servercore:latest",
            "DL3007",
        ),
        ('CMD ["python"]', 'MAINTAINER someone\nCMD ["python"]', "DL4000"),
    ],
)
def test_hadolint_findings_fail_the_lint(workspace: Path, old: str, new: str, code: str) -> None:
    edit(workspace, old, new)
    result = run_toolkit("lint", "*-1809", cwd=workspace)
    assert result.returncode == 1
    assert f"error [hadolint] {code}" in result.stdout


def test_missing_dockerfile_is_an_error(workspace: Path) -> None:
    (workspace / D1809).unlink()
    result = run_toolkit("lint", "--no-hadolint", cwd=workspace)
    assert result.returncode == 1
    assert "cannot read" in result.stdout
    assert "run toolkit render" in result.stdout


def test_backtick_escape_directive_is_honoured(tmp_path: Path) -> None:
    path = tmp_path / "Dockerfile"
    path.write_text(
        "# escape=`\n"
        "FROM mcr.microsoft.com/windows/servercore:ltsc2022\n"
        'SHELL ["powershell", "-Command"]\n'
        "ENV X 0123\n"
        "RUN Write-Host 'C:\\Python\\'; `\n"
        "\tInvoke-WebRequest -Uri $u -OutFile 'x.zip'; `\n"
        "\tif ((Get-FileHash x.zip).Hash -ne $env:X) { exit 1 }\n"
    )
    lines = path.read_text().splitlines()
    (run,) = [i for i in parse_dockerfile(path) if i.cmd == "RUN"]
    assert run_script(lines, run, "`").text == run.value[0]
    assert lint_dockerfile(path, hadolint=False) == []


def test_one_hadolint_run_puts_each_finding_on_its_own_file(workspace: Path) -> None:
    d1803 = workspace / "dockerfiles/3.8-rc/windows/windowsservercore-1803/Dockerfile"
    d1803.write_text(d1803.read_text().replace('CMD ["python"]', 'MAINTAINER x\nCMD ["python"]'))
    result = run_toolkit("lint", cwd=workspace)
    assert result.returncode == 1
    hadolint_lines = [ln for ln in result.stdout.splitlines() if "[hadolint]" in ln]
    assert len(hadolint_lines) == 1
    assert hadolint_lines[0].startswith(
        f"dockerfiles/3.8-rc/windows/windowsservercore-1803/Dockerfile:{line_of(d1803, 'MAINTAINER')}:"
    )
    assert "DL4000" in hadolint_lines[0]
