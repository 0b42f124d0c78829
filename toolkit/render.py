"""Render the Dockerfiles of the matrix from Jinja2 templates, and check them for drift.

Everything is rendered in memory first, so a template or data error writes nothing. Files are
then replaced through toolkit.files, and files of variants no longer in versions.json are
removed.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from enum import Enum
from pathlib import Path

import jinja2

from toolkit.errors import CheckFailedError, OutputError, TemplateError, ToolkitError
from toolkit.files import UnreadableFile, read_text, write_files
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
        """A unified diff from the file on disk to the rendered text, its paths relative to
        ``root`` with git's ``a/`` and ``b/`` prefixes: ``git apply`` (or ``patch -p1``) run in
        ``root`` takes it."""
        rel = Path(os.path.relpath(self.path.absolute(), root.absolute())).as_posix()
        old_name = f"a/{rel}" if self.old is not None else "/dev/null"
        new_name = f"b/{rel}" if self.new is not None else "/dev/null"
        return "".join(
            difflib.unified_diff(_patch_lines(self.old), _patch_lines(self.new), old_name, new_name)
        )


def _patch_lines(text: str | None) -> list[str]:
    """``text`` as the lines of a patch: split at LF only, and a last line without one marked
    as unified diffs mark it (or the patch would be corrupt)."""
    if not text:
        return []
    lines = [line + "\n" for line in text.split("\n")]
    if text.endswith("\n"):
        lines.pop()
    else:
        lines[-1] = lines[-1] + "\\ No newline at end of file\n"
    return lines


def diff_root(out: Path) -> Path:
    """Where diff paths start: the root of the git work tree holding ``out`` (so ``git apply``
    takes the diff from any directory of it), else the current directory."""
    start = out.absolute()
    for directory in (start, *start.parents):
        if os.path.exists(directory / ".git"):
            return directory
    return Path.cwd()


class TemplateLoader(jinja2.BaseLoader):
    """Templates from one directory, read through toolkit.files: a FIFO or device in the
    templates directory is an error, not a hang; a file that is not UTF-8 is named."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def get_source(
        self, environment: jinja2.Environment, template: str
    ) -> tuple[str, str, Callable[[], bool]]:
        from jinja2.loaders import split_template_path

        path = self.root.joinpath(*split_template_path(template))
        try:
            text = read_text(path)
        except UnreadableFile as exc:
            if exc.missing:
                raise jinja2.TemplateNotFound(template) from None
            raise TemplateError(
                f"{path}: cannot read the template: {exc.why}", hint="fix or replace the file"
            ) from None
        return text, str(path), lambda: False


def template_environment(templates: Path) -> jinja2.Environment:
    """A sandboxed Jinja environment over ``templates``, its compiled templates cached.

    Templates are trusted (they are the project's own), but the sandbox costs nothing measurable
    (bench/render.py) and keeps a template from reaching Python internals
    (``cycler.__init__.__globals__.os``), so a hostile change in review cannot run commands
    on the machine that renders.

    Compiling the templates costs more than rendering the whole matrix (some 45 ms against 16 ms
    for 80 Dockerfiles), so compiled templates are kept in Jinja2's own bytecode cache, keyed by
    each template's source checksum: a private per-user directory under the system's temporary
    directory (Jinja2 refuses one another user owns or can write).
    """
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    if not os.path.isdir(templates):  # False, not OSError, for a name too long
        raise TemplateError(
            f"{templates}: templates directory not found", hint="pass --templates DIR"
        )
    return ImmutableSandboxedEnvironment(
        loader=TemplateLoader(templates),
        undefined=jinja2.StrictUndefined,
        autoescape=False,
        keep_trailing_newline=True,
        newline_sequence="\n",
        auto_reload=False,
        bytecode_cache=_bytecode_cache(),
    )


def _bytecode_cache() -> jinja2.BytecodeCache | None:
    # Files of their own: Jinja keys its cache by template name and source, not by environment,
    # and code compiled for a plain Environment calls functions without the sandbox's check.
    try:
        return jinja2.FileSystemBytecodeCache(pattern="__toolkit_sandboxed_%s.cache")
    except RuntimeError:  # no private cache directory can be made: compile every time
        return None


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
        text = env.get_template(name).render(template_context(build))
    except ToolkitError:
        raise
    except Exception as exc:  # template code is user code: whatever it raises is its error
        raise _template_error(exc, name, build) from None
    if not text.endswith("\n"):
        text += "\n"
    return text


def _template_error(exc: Exception, name: str, build: Build) -> TemplateError:
    """One line for any failure of the template ``name`` rendering ``build``: where (the
    template file and line, which may be an included one) and what."""
    if isinstance(exc, jinja2.TemplateNotFound):
        missing = exc.name if isinstance(exc.name, str) else str(exc)
        if missing == name:
            return TemplateError(
                f"template {name!r} not found (needed by {build.id})", hint=f"add templates/{name}"
            )
        where = _template_location(exc) or name
        return TemplateError(
            f"{where}: included template {missing!r} not found (rendering {build.id})",
            hint=f"add templates/{missing} or fix the include",
        )
    if isinstance(exc, jinja2.TemplateSyntaxError):
        return TemplateError(
            f"{exc.filename or name}:{exc.lineno}: template syntax error: {exc.message}",
            hint="fix the template",
        )
    where = _template_location(exc) or name
    if isinstance(exc, jinja2.UndefinedError):
        return TemplateError(
            f"{where}: rendering {build.id}: {exc.message}",
            hint=f"the template may use only: {', '.join(template_context(build))}",
        )
    if isinstance(exc, RecursionError):
        return TemplateError(
            f"{where}: rendering {build.id}: the template includes or calls itself without end",
            hint="check its {% include %} and macro calls",
        )
    what = exc.message if isinstance(exc, jinja2.TemplateError) else str(exc)
    return TemplateError(
        f"{where}: rendering {build.id}: {type(exc).__name__}: {what}"[:500],
        hint="fix the template",
    )


def _template_location(exc: BaseException) -> str | None:
    """``file:line`` of the innermost template frame of ``exc``'s traceback (Jinja rewrites
    tracebacks so that template frames carry the template's file name and line)."""
    found = None
    tb = exc.__traceback__
    while tb is not None:
        if "__jinja_exception__" in tb.tb_frame.f_globals:  # jinja2.debug.fake_traceback
            found = f"{tb.tb_frame.f_code.co_filename}:{tb.tb_lineno}"
        tb = tb.tb_next
    return found


def dockerfile_path(out: Path, build: Build) -> Path:
    return out / f"{build.directory}/{DOCKERFILE}"


def _existing(out: Path) -> list[Path]:
    """Dockerfiles already under ``out`` in the layout <line>/<os>/<variant>/Dockerfile.

    Nothing below ``out`` is followed through a symbolic link: a link on the layout's paths is
    refused (see :func:`check_tree`), anything else is not render's business. (Strings and
    ``os.scandir``, not pathlib: this runs on every render of a 50-file tree.)
    """

    def walk(directory: str, depth: int) -> Iterator[Path]:
        try:
            with os.scandir(directory) as listing:
                entries = sorted(listing, key=lambda e: e.name)
        except (FileNotFoundError, NotADirectoryError):
            return
        except OSError as exc:
            raise OutputError(
                f"{directory}: cannot list: {exc.strerror}", hint="check the directory"
            ) from None
        for entry in entries:
            if depth == 3:
                if entry.name == DOCKERFILE:
                    if entry.is_symlink():
                        _refuse_link(Path(entry.path), out)
                    yield Path(entry.path)
                continue
            if entry.is_symlink():
                if entry.is_dir():  # a directory link the layout's paths would go through
                    _refuse_link(Path(entry.path), out)
                continue
            if entry.is_dir(follow_symlinks=False):
                yield from walk(entry.path, depth + 1)

    return list(walk(os.fspath(out), 0)) if os.path.isdir(out) else []


def _refuse_link(path: Path, out: Path) -> None:
    if not path.is_symlink():
        return
    where = "out of" if not _inside(path, out) else "within"
    raise OutputError(
        f"{path}: a symbolic link ({where} {out}); refused, nothing written",
        hint=f"the toolkit reads, writes and removes only plain files and directories under "
        f"{out}: replace the link with a directory or file, or remove it",
    )


def _inside(path: Path, out: Path) -> bool:
    return Path(os.path.realpath(path)).is_relative_to(os.path.realpath(out))


def _stale_id(out: Path, path: Path) -> str:
    line, _os, variant = path.relative_to(out).parts[:3]
    return f"{line}-{variant}"


def check_tree(out: Path, relatives: Sequence[str]) -> None:
    """Refuse (OutputError) when a path render would read, write or remove goes through a
    symbolic link below ``out`` (``out`` itself may be one). ``relatives`` are those paths
    relative to ``out``, ``/``-separated (``3.8-rc/windows/windowsservercore-1809/Dockerfile``).

    A link out of the tree would have render write, delete "stale" files and (``--check``)
    print files elsewhere; a link within it would have two directories of the layout be one,
    and a stale one's removal delete a file just written. Neither is what anyone means.
    """
    root = os.fspath(out)
    seen: set[str] = set()
    for relative in relatives:
        current = root
        for part in relative.split("/"):
            current = os.path.join(current, part)
            if current not in seen:  # the line and os directories are shared by many
                seen.add(current)
                if os.path.islink(current):
                    _refuse_link(Path(current), out)


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
    check_tree(out, [f"{b.directory}/{DOCKERFILE}" for b in selected])
    wanted = {b.id: dockerfile_path(out, b) for b in every}
    for build in selected:
        path = wanted.get(build.id) or dockerfile_path(out, build)
        new = render_dockerfile(env, build)
        old = _read(path)
        if old is None:
            change = Change.MISSING
        elif old == new:
            change = Change.UNCHANGED
        else:
            change = Change.CHANGED
        states.append(FileState(path=path, change=change, old=old, new=new))
    kept = set(wanted.values())
    for path in _existing(out):
        if path in kept:
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
        return read_text(path)
    except UnreadableFile as exc:
        if exc.missing:
            return None
        raise OutputError(f"{path}: cannot read: {exc.why}", hint="check the file") from None


def changed_files(states: Sequence[FileState]) -> list[tuple[Path, str]]:
    """What writing ``states`` means: the new text of each changed or missing file."""
    return [
        (state.path, state.new)
        for state in states
        if state.change in (Change.CHANGED, Change.MISSING) and state.new is not None
    ]


def stale_files(states: Sequence[FileState]) -> list[Path]:
    return [state.path for state in states if state.change is Change.STALE]


def apply_render(out: Path, states: Sequence[FileState]) -> None:
    """Write what ``plan_render`` found changed or missing and remove the stale files, as one
    transaction (toolkit.files): on any failure every file is as it was."""
    stale = stale_files(states)
    write_files(changed_files(states), remove=stale, durable=False)
    for path in stale:
        prune_empty(path.parent, out)


def prune_empty(directory: Path, root: Path) -> None:
    """Remove ``directory`` and its parents up to ``root`` (excluded) while they are empty."""
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
