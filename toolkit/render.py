"""Render the Dockerfiles of the matrix from Jinja2 templates, and check them for drift.

Everything is rendered in memory first, so a template or data error writes nothing. Files are
then replaced through toolkit.files, and files of variants no longer in versions.json are
removed.
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum
from pathlib import Path

import jinja2

from toolkit.errors import CheckFailedError, OutputError, TemplateError, ToolkitError
from toolkit.files import write_files
from toolkit.matrix import Build, matches, select_builds

DOCKERFILE = "Dockerfile"


class Change(Enum):
    UNCHANGED = "unchanged"
    CHANGED = "changed"
    MISSING = "missing"
    STALE = "stale"


@dataclass(frozen=True, kw_only=True)
class FileState:
    """What rendering means for one file: its path, the change, old and new text."""

    path: Path
    change: Change
    old: str | None
    new: str | None

    def diff(self, root: Path) -> str:
        rel = self.path.relative_to(root).as_posix()
        old_name = f"a/{rel}" if self.old is not None else "/dev/null"
        new_name = f"b/{rel}" if self.new is not None else "/dev/null"
        return "".join(
            difflib.unified_diff(
                (self.old or "").splitlines(keepends=True),
                (self.new or "").splitlines(keepends=True),
                old_name,
                new_name,
            )
        )


def template_environment(templates: Path) -> jinja2.Environment:
    if not templates.is_dir():
        raise TemplateError(
            f"{templates}: templates directory not found", hint="pass --templates DIR"
        )
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(templates),
        undefined=jinja2.StrictUndefined,
        autoescape=False,
        keep_trailing_newline=True,
        newline_sequence="\n",
    )


def template_name(build: Build) -> str:
    return f"{build.variant.flavor}.Dockerfile.j2"


def template_context(build: Build) -> dict[str, object]:
    line = build.line
    return {
        "build_id": build.id,
        "base_image": build.release.base_image,
        "windows_release": build.release.key,
        "windows_build": build.release.build,
        "python_version": line.version,
        "python_release": line.release,
        "python_sha256": line.windows_sha256,
        "pip_version": line.pip_version,
        "get_pip_url": line.get_pip_url,
        "get_pip_sha256": line.get_pip_sha256,
    }


def render_dockerfile(env: jinja2.Environment, build: Build) -> str:
    name = template_name(build)
    try:
        template = env.get_template(name)
        text = template.render(template_context(build))
    except jinja2.TemplateNotFound:
        raise TemplateError(
            f"template {name!r} not found (needed by {build.id})",
            hint=f"add templates/{name}",
        ) from None
    except jinja2.TemplateSyntaxError as exc:
        raise TemplateError(
            f"{exc.filename or name}:{exc.lineno}: template syntax error: {exc.message}",
            hint="fix the template",
        ) from None
    except jinja2.UndefinedError as exc:
        raise TemplateError(
            f"{name}: rendering {build.id}: {exc.message}",
            hint=f"the template may use only: {', '.join(template_context(build))}",
        ) from None
    if not text.endswith("\n"):
        text += "\n"
    return text


def dockerfile_path(out: Path, build: Build) -> Path:
    return out / build.directory / DOCKERFILE


def _existing(out: Path) -> list[Path]:
    """Dockerfiles already under ``out`` in the layout <line>/<os>/<variant>/Dockerfile."""
    if not out.is_dir():
        return []
    return sorted(out.glob(f"*/*/*/{DOCKERFILE}"))


def _stale_id(out: Path, path: Path) -> str:
    line, _os, variant = path.relative_to(out).parts[:3]
    return f"{line}-{variant}"


def plan_render(
    env: jinja2.Environment,
    out: Path,
    selected: Sequence[Build],
    every: Sequence[Build],
    selectors: Sequence[str] = (),
) -> list[FileState]:
    """The state of every file that rendering ``selected`` would touch, nothing written.

    A file of no build in ``every`` is stale; with selectors, only stale files whose would-be
    identifier matches them are considered.
    """
    states: list[FileState] = []
    for build in selected:
        path = dockerfile_path(out, build)
        new = render_dockerfile(env, build)
        old = _read(path)
        if old is None:
            change = Change.MISSING
        elif old == new:
            change = Change.UNCHANGED
        else:
            change = Change.CHANGED
        states.append(FileState(path=path, change=change, old=old, new=new))
    wanted = {dockerfile_path(out, b) for b in every}
    for path in _existing(out):
        if path in wanted:
            continue
        if selectors and not matches(_stale_id(out, path), selectors):
            continue
        states.append(FileState(path=path, change=Change.STALE, old=_read(path), new=None))
    return states


def require_rendered(templates: Path, out: Path, builds: Sequence[Build]) -> None:
    """CheckFailedError naming each Dockerfile of ``builds`` that differs from what the
    templates and versions.json render now: ``toolkit build`` (and push) build only what
    ``toolkit render`` would write, never files that drifted from the data."""
    env = template_environment(templates)
    drifted = [
        dockerfile_path(out, b)
        for b in builds
        if _read(dockerfile_path(out, b)) != render_dockerfile(env, b)
    ]
    if not drifted:
        return
    shown = ", ".join(str(p) for p in drifted[:5])
    more = f" and {len(drifted) - 5} more" if len(drifted) > 5 else ""
    raise CheckFailedError(
        f"{len(drifted)} Dockerfile(s) differ from what {templates} and versions.json render: "
        f"{shown}{more}",
        hint="run toolkit render (toolkit render --check shows the diff), then build",
    )


def _read(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8")
    except (FileNotFoundError, NotADirectoryError):
        return None
    except (OSError, UnicodeDecodeError) as exc:
        raise OutputError(f"{path}: cannot read: {exc}", hint="check the file") from None


def apply_render(out: Path, states: Sequence[FileState]) -> None:
    """Write what ``plan_render`` found changed or missing; then remove stale files."""
    write_files(
        [
            (state.path, state.new)
            for state in states
            if state.change in (Change.CHANGED, Change.MISSING) and state.new is not None
        ],
        durable=False,
    )
    for state in states:
        if state.change is Change.STALE:
            try:
                state.path.unlink()
            except OSError as exc:
                raise OutputError(
                    f"{state.path}: cannot remove stale file: {exc.strerror}",
                    hint="remove it by hand",
                ) from None
            _prune_empty(state.path.parent, out)


def _prune_empty(directory: Path, root: Path) -> None:
    while directory != root and root in directory.parents:
        try:
            directory.rmdir()
        except OSError:
            return
        directory = directory.parent


@dataclass(frozen=True, kw_only=True)
class RenderRequest:
    versions: Path
    selectors: tuple[str, ...] = ()
    out: Path = Path("dockerfiles")
    templates: Path = Path("templates")
    check: bool = False


@dataclass(frozen=True, kw_only=True)
class RenderOutcome:
    """The state of every file rendering touched; written unless ``check``."""

    request: RenderRequest
    states: tuple[FileState, ...]
    rendered: int

    @property
    def drift(self) -> list[FileState]:
        return [s for s in self.states if s.change is not Change.UNCHANGED]

    def failure(self) -> ToolkitError | None:
        if self.request.check and self.drift:
            return CheckFailedError(
                f"{len(self.drift)} file(s) out of date under {self.request.out}",
                hint="run: toolkit render",
            )
        return None


def render_matrix(request: RenderRequest) -> RenderOutcome:
    """Render the selected builds; write the changes (or, with ``check``, only compare)."""
    selection = select_builds(request.versions, request.selectors)
    states = plan_render(
        template_environment(request.templates),
        request.out,
        selection.chosen,
        selection.every,
        request.selectors,
    )
    if not request.check:
        apply_render(request.out, states)
    return RenderOutcome(request=request, states=tuple(states), rendered=len(selection.chosen))
