"""Dockerfile instructions through the official BuildKit parser (PyPI ``dockerfile``).

Also renders instructions the way an image's history records them, which is how the published
image-info pages show a Windows image: continuations joined (indentation kept), comment lines
dropped, ``ENV k v`` as ``ENV k=v``, JSON forms as the engine prints Go slices.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import dockerfile

from toolkit.errors import ConfigError


@dataclass(frozen=True, kw_only=True)
class Instruction:
    cmd: str
    value: tuple[str, ...]
    json: bool
    original: str
    start_line: int
    end_line: int
    flags: tuple[str, ...]


def parse_dockerfile_text(text: str, where: str = "Dockerfile") -> list[Instruction]:
    try:
        commands = dockerfile.parse_string(text)
    except dockerfile.GoParseError as exc:
        raise ConfigError(f"{where}: Dockerfile does not parse: {exc}", hint="fix it") from None
    return [
        Instruction(
            cmd=c.cmd.upper(),
            value=tuple(c.value),
            json=bool(c.json),
            original=c.original,
            start_line=c.start_line,
            end_line=c.end_line,
            flags=tuple(c.flags),
        )
        for c in commands
    ]


def parse_dockerfile(path: Path) -> list[Instruction]:
    from toolkit.files import UnreadableFile, read_text

    try:
        text = read_text(path)  # a FIFO is refused, not waited on; not UTF-8 is named
    except UnreadableFile as exc:
        raise ConfigError(f"{path}: cannot read: {exc.why}", hint="run toolkit render") from None
    return parse_dockerfile_text(text, str(path))


def _go_slice(values: Sequence[str]) -> str:
    return "[" + " ".join(values) + "]"


def history_line(instruction: Instruction) -> str:
    """One instruction as the image history (and the image-info pages) show it."""
    cmd, value = instruction.cmd, instruction.value
    if cmd == "ENV":
        pairs = [f"{value[i]}={value[i + 1]}" for i in range(0, len(value) - 1, 2)]
        return "ENV " + " ".join(pairs)
    if cmd == "SHELL":
        return f"SHELL {_go_slice(value)}"
    if cmd in ("CMD", "ENTRYPOINT") and instruction.json:
        return f"{cmd} [" + " ".join(json.dumps(v) for v in value) + "]"
    if cmd == "RUN" and instruction.json:
        return "RUN " + _go_slice(value)
    return f"{cmd} " + " ".join(value)


# What a Windows Server Core base image brings to every image's history, as the pages show it:
# ``Apply image <release>`` (the release image) and ``Install update <build>`` (its cumulative
# update), recorded without a shell, hence the page's ``RUN`` (1607-RTM-amd64 in 2016 and
# 10.0.26100.32230 in 2026 alike).
BASE_IMAGE_LINE = re.compile(r"RUN (?:Apply image|Install update) \S+")


def without_base(lines: Sequence[str]) -> list[str]:
    """An image's history lines without the leading lines its Windows base image brought."""
    start = 0
    while start < len(lines) and BASE_IMAGE_LINE.fullmatch(lines[start]):
        start += 1
    return list(lines[start:])


def step_records(instructions: Sequence[Instruction]) -> frozenset[str]:
    """How the engine ends each step's history entry (``CreatedBy``) for these instructions:
    ``ENV A=b``, ``SHELL [...]``, a RUN's script. What a build's late image is recognised by."""
    found = set()
    for instruction in instructions:
        if instruction.cmd == "FROM":
            continue
        found.add(history_line(instruction))
        if instruction.cmd == "RUN" and not instruction.json:
            found.add(" ".join(instruction.value))
    return frozenset(found)


def history(instructions: Sequence[Instruction], base_history: Sequence[str]) -> list[str]:
    """The history of the image built from ``instructions`` on a base whose history is given.

    ``FROM`` stands for the base image's own lines (``RUN Apply image 1809-RTM-amd64``, ...).
    Only the last stage ends up in the image: a multi-stage file's earlier stages leave no
    history.
    """
    froms = [index for index, instruction in enumerate(instructions) if instruction.cmd == "FROM"]
    lines: list[str] = []
    for instruction in instructions[froms[-1] if froms else 0 :]:
        if instruction.cmd == "FROM":
            lines.extend(base_history)
        else:
            lines.append(history_line(instruction))
    return lines
