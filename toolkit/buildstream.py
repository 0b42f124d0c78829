"""The classic builder's output stream, parsed: progress, the log lines, and what was made.

``APIClient.build(decode=True)`` yields decoded JSON events (``stream``, ``aux.ID``,
``errorDetail``, ``status``). ``Step N/M : INSTRUCTION`` lines give progress; ``---> Running in
<id>`` and ``---> <id>`` lines say which containers and images the build made, so a failed or
cancelled build can remove exactly those and nothing taken from the cache.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

STEP_RE = re.compile(r"Step (?P<n>[0-9]{1,6})/(?P<m>[0-9]{1,6}) : (?P<instruction>.*)\Z")
RUNNING_RE = re.compile(r" ---> Running in (?P<id>[0-9a-f]{12,64})\Z")
LAYER_RE = re.compile(r" ---> (?P<id>[0-9a-f]{12,64})\Z")
BUILT_RE = re.compile(r"Successfully built (?P<id>[0-9a-f]{12,64})\Z")
ANSI_RE = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


@dataclass
class BuildStream:
    """State of one classic-builder stream: fed decoded events, yields complete log lines."""

    step: int = 0
    total: int = 0
    instruction: str = ""
    image_id: str | None = None
    error: str | None = None
    containers: list[str] = field(default_factory=list)
    layers: list[str] = field(default_factory=list)
    _buffer: str = ""
    _cached_next: bool = False
    _ran: bool = False

    def feed(self, event: Mapping[str, Any]) -> list[str]:
        """Take one decoded event; return the complete lines it finished (without newlines)."""
        lines: list[str] = []
        if "stream" in event and isinstance(event["stream"], str):
            self._buffer += event["stream"]
            *done, self._buffer = self._buffer.split("\n")
            for raw in done:
                line = ANSI_RE.sub("", raw.rstrip("\r"))
                self._parse(line)
                lines.append(line)
        aux = event.get("aux")
        if isinstance(aux, Mapping) and isinstance(aux.get("ID"), str):
            self.image_id = aux["ID"]
        if "errorDetail" in event or "error" in event:
            detail = event.get("errorDetail") or {}
            message = detail.get("message") if isinstance(detail, Mapping) else None
            self.error = str(message or event.get("error") or "build failed")
            lines.append(f"ERROR: {self.error}")
        if "status" in event and isinstance(event["status"], str):
            progress = event.get("id")
            lines.append(f"{progress}: {event['status']}" if progress else event["status"])
        return lines

    def flush(self) -> list[str]:
        """The last line if it had no newline."""
        if not self._buffer:
            return []
        line, self._buffer = ANSI_RE.sub("", self._buffer), ""
        self._parse(line)
        return [line]

    def _parse(self, line: str) -> None:
        if m := STEP_RE.match(line):
            self.step, self.total = int(m["n"]), int(m["m"])
            self.instruction = m["instruction"]
            self._ran = self._cached_next = False
        elif line == " ---> Using cache":
            self._cached_next = True
        elif m := RUNNING_RE.match(line):
            self.containers.append(m["id"])
            self._ran = True
        elif m := LAYER_RE.match(line):
            # Only a step that ran a container made a new layer; FROM's base and cache hits
            # existed before this build and are not ours to remove.
            if self._ran and not self._cached_next:
                self.layers.append(m["id"])
        elif m := BUILT_RE.match(line):
            self.image_id = self.image_id or m["id"]


# -- cancellation ------------------------------------------------------------------------------
