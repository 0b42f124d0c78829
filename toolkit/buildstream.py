"""The classic builder's output stream, parsed: progress, the log lines, and what was made.

``APIClient.build(decode=True)`` yields decoded JSON events (``stream``, ``aux.ID``,
``errorDetail``, ``status``). ``Step N/M : INSTRUCTION`` lines give progress; ``---> Running in
<id>`` and ``---> <id>`` lines say which containers and images the build made, so a failed or
cancelled build can remove exactly those and nothing taken from the cache (``cleanup_build``).

A stream cut short (Ctrl-C, SIGTERM, the deadline) can miss the last of them: the engine notices
the closed connection only between steps, so the step it was taking still commits its image,
whose ``---> <id>`` line nobody reads (issue 13: a dangling image in 2 of 4 interrupted builds).
``cleanup_build`` finds that image as the untagged child of the last image the stream named,
created by the engine after this build started.
"""

from __future__ import annotations

import contextlib
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from toolkit.errors import describe_exception

STEP_RE = re.compile(r"Step (?P<n>[0-9]{1,6})/(?P<m>[0-9]{1,6}) : (?P<instruction>.*)\Z")
RUNNING_RE = re.compile(r" ---> Running in (?P<id>[0-9a-f]{12,64})\Z")
LAYER_RE = re.compile(r" ---> (?P<id>[0-9a-f]{12,64})\Z")
BUILT_RE = re.compile(r"Successfully built (?P<id>[0-9a-f]{12,64})\Z")
ANSI_RE = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
SETTLE = 1.2
SETTLE_LOOKS = 3
"""After a cut stream, the engine has settled once SETTLE seconds (SETTLE_LOOKS looks) brought
no new container or image of the build (``cleanup_build``)."""


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
    last_image: str | None = None
    """The last image the stream named (the base, a cache hit or a new layer): the parent of
    the step the engine was taking when the stream ended."""
    steps: frozenset[str] = frozenset()
    """How the engine records each step of the Dockerfile in an image's history (the end of
    ``CreatedBy``: ``ENV A=b``, a RUN's script): a late image must be one of these."""
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
            self.last_image = m["id"]
            # Only a step that ran a container made a new layer; FROM's base and cache hits
            # existed before this build and are not ours to remove.
            if self._ran and not self._cached_next:
                self.layers.append(m["id"])
        elif m := BUILT_RE.match(line):
            self.image_id = self.image_id or m["id"]


# -- cleanup -----------------------------------------------------------------------------------


def cleanup_build(
    api: Any,
    stream: BuildStream,
    write: Callable[[str], None],
    *,
    started: float,
    wait: float = 15.0,
) -> None:
    """Remove what a failed or cancelled build left: its containers and new layers.

    The engine removes the container itself (``forcerm``) once it notices the cancellation;
    wait for that briefly, then force it. When the stream was cut (no error from the engine),
    the image of the step the engine was taking is removed too (see the module docstring);
    ``started`` is the build's start on this machine's clock (``time.time()``). Layers come
    newest first; removing one also prunes its untagged parents, and a layer still used by
    another image is left alone (409).
    """
    import docker.errors

    deadline = time.monotonic() + wait
    _wait_removed(api, [c for c in reversed(stream.containers)], deadline, write)
    lost: list[str] = []
    if stream.error is None and stream.last_image is not None:
        lost = _lost_commits(api, stream, started, deadline, write)
    for layer in [*lost, *reversed(stream.layers)]:
        short = _short(layer)[:12]
        try:
            api.remove_image(layer, force=False, noprune=False)
            write(f"cleanup: removed image {short}")
        except docker.errors.NotFound:
            continue
        except docker.errors.APIError as exc:
            write(f"cleanup: kept image {short}: {describe_exception(exc)}")


def _wait_removed(
    api: Any, containers: list[str], deadline: float, write: Callable[[str], None]
) -> None:
    import docker.errors
    import requests.exceptions

    for container in containers:
        try:
            # Returns once the engine has removed it (forcerm); 404 when it is already gone.
            api.wait(container, condition="removed", timeout=max(0.1, deadline - time.monotonic()))
            # A step container created as the build was cancelled is left "created" by the
            # engine, and the wait returns all the same: look.
            api.inspect_container(container)
        except docker.errors.NotFound:
            continue
        except (requests.exceptions.ReadTimeout, requests.exceptions.ConnectionError):
            pass  # still there at the deadline
        write(f"cleanup: removing container {container[:12]}")
        with contextlib.suppress(docker.errors.NotFound):
            api.remove_container(container, force=True)


def _lost_commits(
    api: Any, stream: BuildStream, started: float, deadline: float, write: Callable[[str], None]
) -> list[str]:
    """Images the engine committed after the stream was cut, leaves first: untagged images made
    by a step of this Dockerfile (``stream.steps``), created since the build started (on the
    engine's clock), descending from the last image the stream named through images made by
    steps of this Dockerfile (cache hits the stream did not get to name).

    The engine winds a cancelled build down on its own time: the step it was taking commits,
    and the next may still create (or even start) its container. So: wait for (or remove) the
    containers made from those images since the start, look again, until nothing new has
    turned up for ``SETTLE`` seconds (a loaded engine takes a moment to create the container of
    the step it had announced). Images and containers of other builds, even from the same base,
    are never touched: their steps are not this Dockerfile's.
    """
    assert stream.last_image is not None
    since = started + _engine_clock_offset(api) - 2.0  # seconds of slack for the truncation
    parent = stream.last_image
    parent_id = next(
        (i["Id"] for i in api.images(all=True) if _short(i["Id"]).startswith(parent)), None
    )
    if parent_id is None:
        return []
    made_here: dict[str, bool] = {}  # image id -> made by a step of this Dockerfile

    def ours(image_id: str) -> bool:
        if image_id not in made_here:
            try:
                created_by = str(api.history(image_id)[0].get("CreatedBy") or "")
            except Exception:  # gone meanwhile, or no history: not ours to touch
                created_by = ""
            made_here[image_id] = any(created_by.endswith(step) for step in stream.steps) or (
                "#(nop)  LABEL " in created_by  # the build's own labels, the last steps
            )
        return made_here[image_id]

    lost: list[str] = []
    quiet = 0
    while quiet < SETTLE_LOOKS and time.monotonic() < deadline:
        found, chain = _descendants(api.images(all=True), parent_id, since, ours)
        building = [
            c["Id"]
            for c in api.containers(all=True, filters={"ancestor": parent_id})
            if c.get("ImageID") in chain and int(c.get("Created", 0)) >= since
        ]
        _wait_removed(api, building, deadline, write)
        if building or found != lost:
            quiet = 0
        else:
            quiet += 1
            time.sleep(SETTLE / SETTLE_LOOKS)
        lost = found
    return list(reversed(lost))


def _descendants(
    images: list[dict[str, Any]], parent_id: str, since: float, ours: Callable[[str], bool]
) -> tuple[list[str], set[str]]:
    """From ``parent_id`` down through images ``ours`` accepts: the untagged ones created since
    ``since`` (parents first), and every image of the chain (``parent_id`` included)."""
    children: dict[str, list[dict[str, Any]]] = {}
    for image in images:
        children.setdefault(image.get("ParentId") or "", []).append(image)
    found: list[str] = []
    chain = {parent_id}
    level = [parent_id]
    while level:
        below = [c for i in level for c in children.get(i, []) if ours(c["Id"])]
        found += [
            c["Id"]
            for c in below
            if int(c.get("Created", 0)) >= since
            and not [t for t in c.get("RepoTags") or () if t != "<none>:<none>"]
        ]
        level = [c["Id"] for c in below]
        chain.update(level)
    return found, chain


def _short(image_id: str) -> str:
    return image_id.removeprefix("sha256:")


def _engine_clock_offset(api: Any) -> float:
    """Engine time minus this machine's (a remote Windows host's clock may differ); 0 when the
    engine does not say."""
    try:
        now = datetime.fromisoformat(str(api.info()["SystemTime"]))
    except (KeyError, TypeError, ValueError):
        return 0.0
    return now.timestamp() - time.time()
