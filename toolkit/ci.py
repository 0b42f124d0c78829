"""The GitHub Actions strategy matrix: one job per Windows release, on a runner of that release.

One machine builds one Windows release: process isolation needs the host's build to equal the
image's, and hosted runners have no nested Hyper-V for older images. So the toolkit scales out the
way maintainers already do, one Actions job per release (issue 12), instead of with a scheduler of
its own. Each entry names the release, the runner (``runs-on``), the build ids for that runner and
one selector that picks exactly them, so the job runs ``toolkit build "$SELECTOR"``.

``runs-on`` comes from the release table (``runner`` in resources/windows-releases.toml). A release
without a hosted runner takes self-hosted labels from a small TOML file (``--runners``)::

    1809 = ["self-hosted", "windows", "1809"]

or fails naming the release and the fix. There is never a silent default: a job sent to the wrong
runner fails late and confusingly (0xc0370101), or waits forever for a runner that does not exist.
"""

from __future__ import annotations

import json
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from toolkit.errors import ConfigError, NothingSelectedError
from toolkit.matrix import Build
from toolkit.windows import WindowsRelease, find_release, suggest_release

RunsOn = str | tuple[str, ...]
MatrixFormat = Literal["json", "github-output"]


@dataclass(frozen=True, kw_only=True)
class MatrixEntry:
    """One job of the strategy matrix: every selected build of one Windows release."""

    release: str
    runs_on: RunsOn
    builds: tuple[str, ...]
    selector: str

    def record(self) -> dict[str, Any]:
        runs_on = self.runs_on if isinstance(self.runs_on, str) else list(self.runs_on)
        return {
            "release": self.release,
            "runs-on": runs_on,
            "builds": list(self.builds),
            "selector": self.selector,
        }


def load_runners(path: Path) -> dict[str, tuple[str, ...]]:
    """Read a runners file: release key -> self-hosted runner labels. ConfigError on any mistake."""
    from toolkit.files import UnreadableFile, read_text

    try:
        text = read_text(path)  # a FIFO or device is refused, not waited on
    except UnreadableFile as exc:
        if exc.missing:
            raise ConfigError(
                f"{path}: no such runners file", hint="check the --runners path"
            ) from None
        raise ConfigError(f"{path}: cannot read: {exc.why}", hint="check the file") from None
    return parse_runners(text, path)


def parse_runners(text: str, path: Path) -> dict[str, tuple[str, ...]]:
    """Parse a runners file. Keys are release keys or aliases (``ltsc2019``), normalised to keys.

    A value is a label list (``["self-hosted", "windows", "1809"]``) or one label (a runner name
    such as ``windows-2022``). Unknown releases, empty lists, non-string labels and a release named
    twice (by key and alias) are errors naming the file and key.
    """
    try:
        table = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: invalid TOML: {exc}", hint="fix the syntax") from None
    found: dict[str, tuple[str, ...]] = {}
    named_as: dict[str, str] = {}
    for name, value in table.items():
        release = find_release(name)
        if release is None:
            raise ConfigError(
                f"{path}: {name!r} is not a Windows release", hint=suggest_release(name)
            )
        if release.key in found:
            raise ConfigError(
                f"{path}: release {release.key} is given twice "
                f"({named_as[release.key]!r} and {name!r})",
                hint="keep one of them",
            )
        found[release.key] = _labels(value, path, name)
        named_as[release.key] = name
    return found


def _labels(value: object, path: Path, name: str) -> tuple[str, ...]:
    example = f'{name} = ["self-hosted", "windows", "{name}"]'
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not value:
        raise ConfigError(
            f"{path}: {name}: expected a non-empty list of runner labels", hint=f"write {example}"
        )
    labels: list[str] = []
    for label in value:
        if not isinstance(label, str) or not label.strip() or label != label.strip():
            raise ConfigError(
                f"{path}: {name}: runner label {label!r} is not a non-empty string without "
                "surrounding spaces",
                hint=f"write {example}",
            )
        labels.append(label)
    return tuple(labels)


def runs_on(release: WindowsRelease, runners: Mapping[str, tuple[str, ...]]) -> RunsOn | None:
    """Self-hosted labels from the runners file win; else the table's hosted runner; else None."""
    labels = runners.get(release.key)
    if labels is not None:
        return labels[0] if len(labels) == 1 else labels
    return release.runner or None


def selector_for(build_ids: Sequence[str]) -> str:
    """One fnmatch pattern (``toolkit.matrix.select``) that picks exactly ``build_ids``.

    Build ids hold only letters, digits, ``.`` and ``-`` (versions.json validation), so no id
    needs escaping; several ids become one brace alternation.
    """
    if len(build_ids) == 1:
        return build_ids[0]
    return "{" + ",".join(build_ids) + "}"


def plan_matrix(
    builds: Sequence[Build],
    runners: Mapping[str, tuple[str, ...]],
    *,
    runners_path: Path | None = None,
) -> list[MatrixEntry]:
    """One entry per Windows release of ``builds``, in the order releases first appear.

    Grouping is by ``Build.release``: every flavor of a release (Server Core, Nano Server) runs on
    that release's runner. Raises NothingSelectedError for an empty selection and ConfigError
    naming every release that has neither a hosted runner nor labels in the runners file.
    """
    if not builds:
        raise NothingSelectedError(
            "no build selected: the matrix would be empty", hint="check the selectors"
        )
    groups: dict[WindowsRelease, list[Build]] = {}
    for build in builds:
        groups.setdefault(build.release, []).append(build)
    placed = {release: runs_on(release, runners) for release in groups}
    missing = [release for release, labels in placed.items() if labels is None]
    if missing:
        raise _no_runner(missing, groups, runners_path)
    entries = []
    for release, group in groups.items():
        labels = placed[release]
        assert labels is not None  # checked above
        ids = tuple(b.id for b in group)
        entries.append(
            MatrixEntry(release=release.key, runs_on=labels, builds=ids, selector=selector_for(ids))
        )
    return entries


def _no_runner(
    missing: Sequence[WindowsRelease],
    groups: Mapping[WindowsRelease, Sequence[Build]],
    runners_path: Path | None,
) -> ConfigError:
    names = ", ".join(f"{r.key} (builds {', '.join(b.id for b in groups[r])})" for r in missing)
    lines = "; ".join(f'{r.key} = ["self-hosted", "windows", "{r.key}"]' for r in missing)
    where = f"add to {runners_path}" if runners_path else "pass --runners FILE, a TOML file with"
    return ConfigError(
        f"no GitHub-hosted runner for Windows release {names}",
        hint=f"register self-hosted runners of that release and {where}: {lines}; "
        "or leave the release out with a selector",
    )


def matrix_document(entries: Sequence[MatrixEntry]) -> dict[str, Any]:
    """The strategy matrix GitHub Actions reads: ``{"include": [...]}``."""
    return {"include": [e.record() for e in entries]}


def format_matrix(entries: Sequence[MatrixEntry], fmt: MatrixFormat) -> str:
    """``json``: indented, for people; ``github-output``: ``matrix=<one line>`` for $GITHUB_OUTPUT."""
    document = matrix_document(entries)
    if fmt == "github-output":
        return "matrix=" + json.dumps(document, separators=(",", ":")) + "\n"
    return json.dumps(document, indent=2) + "\n"
