"""Render the Dockerfiles of the matrix from Jinja2 templates, and check them for drift.

Everything is rendered in memory first, so a template or data error writes nothing. Files are
then replaced atomically (write a temporary file beside the target, then rename), and files of
variants no longer in versions.json are removed.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum
from pathlib import Path

import jinja2

from toolkit.errors import OutputError, TemplateError
from toolkit.matrix import Build, matches

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
    """What a template may use. ``recipe`` and ``check_exit_code`` come from the line's data
    (see PythonLine); ``installer_image`` is the Server Core image Python is installed on,
    ``base_image`` the image the result ends on (they differ for nanoserver)."""
    line = build.line
    return {
        "build_id": build.id,
        "flavor": build.variant.flavor,
        "base_image": build.base_image,
        "installer_image": build.variant.installer_image,
        "windows_release": build.release.key,
        "windows_build": build.release.build,
        "recipe": line.recipe,
        "check_exit_code": line.check_installer_exit_code,
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
    except jinja2.TemplateNotFound as exc:
        missing = exc.name if isinstance(exc.name, str) else name
        needed = build.id if missing == name else f"{name}, for {build.id}"
        raise TemplateError(
            f"template {missing!r} not found (needed by {needed})",
            hint=f"add templates/{missing}",
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


def _read(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8")
    except (FileNotFoundError, NotADirectoryError):
        return None
    except (OSError, UnicodeDecodeError) as exc:
        raise OutputError(f"{path}: cannot read: {exc}", hint="check the file") from None


def _create_beside(path: Path) -> tuple[str, int]:
    """A new, exclusively created temporary file next to ``path`` (tempfile's import is slow)."""
    for attempt in range(100):
        tmp = str(path.parent / f".{path.name}.{os.getpid()}.{attempt}.tmp")
        try:
            return tmp, os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            continue
    raise FileExistsError(f"{path.parent}: too many leftover temporary files")


def _stage(path: Path, text: str, *, durable: bool, made: set[Path]) -> Path:
    """Write ``text`` to a temporary file beside ``path`` (same filesystem, so rename is atomic)."""
    try:
        if path.parent not in made:
            path.parent.mkdir(parents=True, exist_ok=True)
            made.add(path.parent)
        tmp, fd = _create_beside(path)
    except OSError as exc:
        raise OutputError(
            f"{path.parent}: cannot write: {exc.strerror}",
            hint="check the directory and its permissions",
        ) from None
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as handle:
            handle.write(text)
            if durable:
                handle.flush()
                os.fsync(handle.fileno())
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        raise OutputError(
            f"{path}: cannot write: {exc.strerror}", hint="check the disk and the directory"
        ) from None
    return Path(tmp)


def write_files(files: Sequence[tuple[Path, str]], *, durable: bool = True) -> None:
    """Replace several files as one step, as far as a filesystem allows.

    Every new text is staged first; only when all are on disk are they renamed over their
    targets. A failure while staging removes the staged files and leaves every target as it was.
    ``durable`` also flushes each file to disk before the rename (worth it for hand-kept data
    such as versions.json; generated Dockerfiles can simply be rendered again).
    """
    staged: list[tuple[Path, Path]] = []
    made: set[Path] = set()
    try:
        for path, text in files:
            staged.append((_stage(path, text, durable=durable, made=made), path))
        for tmp, path in staged:
            try:
                os.replace(tmp, path)
            except OSError as exc:
                raise OutputError(
                    f"{path}: cannot replace: {exc.strerror}", hint="check the directory"
                ) from None
    finally:
        for tmp, _path in staged:
            tmp.unlink(missing_ok=True)


def write_atomic(path: Path, text: str) -> None:
    """Replace ``path`` with ``text`` so readers see the old file or the new one, never half."""
    write_files([(path, text)])


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
