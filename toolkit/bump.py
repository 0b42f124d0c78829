"""Bumping versions.json: the newest Python, pip and get-pip for each line, from their sources.

``resolve_updates`` reads the sources through a Fetcher passed in (independent URLs
concurrently) and applies toolkit.upstream's selection rules; ``plan_bump`` turns the result into
the new text of versions.json, validated, without writing anything; ``run_bump`` is the whole
command: resolve, re-render in memory, then write versions.json and the Dockerfiles as one step.
Versions never go backwards: an older answer (a stale mirror) keeps what is pinned, with a note.
A line without get-pip changes version and installer sha256 only (PyPI and GitHub are asked only
when some line pins pip). The installer's sha256 is the download's; a Sigstore bundle beside it
must agree (``toolkit.upstream.confirm_sha256``), or the bump fails and nothing is written.
"""

from __future__ import annotations

import copy
import difflib
import json
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from packaging.version import Version

from toolkit.cancel import DaemonPool
from toolkit.errors import ConfigError, OutputError, SourceError
from toolkit.files import UnreadableFile, read_text, write_files
from toolkit.redact import redact_url
from toolkit.render import Change, FileState, changed_files, prune_empty, stale_files
from toolkit.sources import Fetcher, SourceNotFound, Sources, pinned_get_pip_url
from toolkit.suggest import did_you_mean
from toolkit.upstream import (
    confirm_sha256,
    get_pip_paths,
    implausible,
    newest_commit,
    parse_directory_index,
    release_folders,
    select_pip,
    select_python,
)
from toolkit.versions import (
    GET_PIP_URL_RE,
    LineName,
    PythonLine,
    VersionsFile,
    dump_versions,
    load_versions,
    parse_versions,
)

# --- the update of one line -----------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class LineUpdate:
    """Old and new pinned values of one line; ``old_*`` are None for a line being added."""

    line: str
    added: bool
    old_version: str | None
    new_version: str
    old_pip: str | None
    new_pip: str | None
    old_get_pip_url: str | None
    new_get_pip_url: str | None
    old_get_pip_sha256: str | None
    new_get_pip_sha256: str | None
    old_windows_sha256: str | None
    new_windows_sha256: str | None
    variants: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()
    sigstore: bool | None = None  # a Sigstore bundle confirmed the new installer sha256

    @property
    def changed(self) -> bool:
        return self.added or (
            (self.old_version, self.old_pip, self.old_get_pip_url, self.old_get_pip_sha256)
            != (self.new_version, self.new_pip, self.new_get_pip_url, self.new_get_pip_sha256)
            or self.old_windows_sha256 != self.new_windows_sha256
        )

    def summary(self) -> str:
        """``3.8-rc: 3.8.0rc1 -> 3.8.0rc2, pip 19.2.3 -> 19.3``."""
        if self.added:
            if self.new_get_pip_url is None:
                return f"{self.line}: added at {self.new_version}, pip from the installer"
            return (
                f"{self.line}: added at {self.new_version}, pip {self.new_pip}, "
                f"get-pip {_commit_of(self.new_get_pip_url)[:7]}"
            )
        if not self.changed:
            pip = f"pip {self.new_pip}" if self.new_pip else "pip from the installer"
            return f"{self.line}: up to date ({self.new_version}, {pip})"
        parts = [
            f"{self.line}: {self.old_version} -> {self.new_version}"
            if self.old_version != self.new_version
            else f"{self.line}: {self.new_version}"
        ]
        if self.old_pip != self.new_pip:
            parts.append(f"pip {self.old_pip} -> {self.new_pip}")
        if self.old_get_pip_url != self.new_get_pip_url:
            old = _commit_of(self.old_get_pip_url or "")[:7]
            parts.append(f"get-pip {old} -> {_commit_of(self.new_get_pip_url or '')[:7]}")
        elif self.old_get_pip_sha256 != self.new_get_pip_sha256:
            parts.append("get-pip sha256 updated")
        if self.old_windows_sha256 is None and self.new_windows_sha256 is not None:
            parts.append("installer sha256 added")
        elif self.old_windows_sha256 != self.new_windows_sha256 and (
            self.old_version == self.new_version
        ):
            parts.append("installer sha256 updated")
        return ", ".join(parts)

    def record(self) -> dict[str, Any]:
        """The JSON form printed by ``toolkit bump --json``."""
        return {
            "line": self.line,
            "added": self.added,
            "changed": self.changed,
            "python": {"old": self.old_version, "new": self.new_version},
            "pip": {"old": self.old_pip, "new": self.new_pip},
            "get_pip": {
                "old": {"url": self.old_get_pip_url, "sha256": self.old_get_pip_sha256},
                "new": {"url": self.new_get_pip_url, "sha256": self.new_get_pip_sha256},
            },
            "windows_sha256": dict(
                old=self.old_windows_sha256, new=self.new_windows_sha256, sigstore=self.sigstore
            ),
            "notes": list(self.notes),
        }


def _commit_of(url: str) -> str:
    match = GET_PIP_URL_RE.match(url)
    return match["commit"] if match else "?"


class _Memo:
    """Compute each key once across threads; later callers wait for the first one's result."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._futures: dict[str, Future[Any]] = {}

    def get(self, key: str, compute: Callable[[], Any]) -> Any:
        with self._lock:
            future = self._futures.get(key)
            owner = future is None
            if future is None:
                future = Future()
                self._futures[key] = future
        if owner:
            try:
                future.set_result(compute())
            except BaseException as exc:
                future.set_exception(exc)
        return future.result()


@dataclass(frozen=True, kw_only=True)
class _Shared:
    """The documents every line needs, fetched once. ``pip_document`` and ``commit`` are None
    when no line of the bump pins pip with get-pip."""

    sources: Sources
    fetcher: Fetcher
    top_entries: list[str]
    pip_document: Any
    commit: str | None
    memo: _Memo = field(default_factory=_Memo)

    def folder(self, release: Version) -> list[str]:
        url = self.sources.ftp_folder(str(release))
        result: list[str] = self.memo.get(
            url, lambda: parse_directory_index(self.fetcher.get_text(url))
        )
        return result

    def sha256(self, url: str) -> str | None:
        """sha256 of the body at ``url``, or None when the source has no such file (404)."""

        def compute() -> str | None:
            try:
                return self.fetcher.hash(url).sha256
            except SourceNotFound:
                return None

        result: str | None = self.memo.get(url, compute)
        return result


def _listed_but_missing(url: str) -> SourceError:
    return SourceError(
        f"{redact_url(url)}: HTTP 404 although the folder lists it",
        hint="the mirror may be syncing; try again later",
    )


def _installer_sha256(
    shared: _Shared, line: str, release: str, version: str, notes: list[str]
) -> tuple[str, bool]:
    """sha256 of the downloaded installer, and whether a Sigstore bundle confirmed it."""
    installer_url = shared.sources.installer(release, version)
    sha = shared.sha256(installer_url)
    if sha is None:
        raise _listed_but_missing(installer_url)
    name = f"python-{version}-amd64.exe.sigstore"
    if name not in shared.folder(Version(release)):
        notes.append(f"{line}: no Sigstore bundle ({name}): the sha256 is the download's alone")
        return sha, False
    try:
        bundle = shared.fetcher.get_json(installer_url + ".sigstore")
    except SourceNotFound:
        raise _listed_but_missing(installer_url + ".sigstore") from None
    confirm_sha256(
        sha,
        bundle,
        installer=redact_url(installer_url),
        source=redact_url(installer_url + ".sigstore"),
    )
    return sha, True


def _resolve_line(
    shared: _Shared,
    name: str,
    current: PythonLine | None,
    variants: tuple[str, ...],
    get_pip: bool,
) -> LineUpdate:
    """The update of one line; ``get_pip`` says whether it pins pip with get-pip (the recipe of
    an existing line, or of the line an added one copies)."""
    line = LineName.parse(name)
    sources = shared.sources
    folders = release_folders(shared.top_entries, line.major, line.minor)
    ignored = implausible(shared.top_entries, line.major, line.minor)
    choice = select_python(line, folders, shared.folder, ignored)
    notes = choice.notes()

    old_version = current.version if current else None
    new_version = old_version
    if choice.version is None:
        if current is None:
            kind = "pre-release or final" if line.rc else "final"
            hint = "" if line.rc else f"; try --add {line.major_minor}-rc"
            raise SourceError(
                f"{redact_url(sources.ftp_index())}: no {kind} {line.major_minor} release with a Windows "
                f"installer (python-<version>-amd64.exe)",
                hint=f"wait for the installer{hint}",
            )
        notes.append(
            f"{name}: no {line.major_minor} release with a Windows installer found; "
            "the line is left as it is"
        )
        return _unchanged(current, notes)
    if choice.final_out is not None:
        if current is None:
            raise SourceError(
                f"{redact_url(sources.ftp_index())}: {choice.final_out} is final",
                hint=f"add the line {line.major_minor} instead of {name}",
            )
        return _unchanged(current, notes)  # reported, not silently changed
    if current is not None and choice.version < Version(current.version):
        notes.append(
            f"{name}: the source's newest is {choice.version}, older than {current.version}; kept"
        )
    else:
        new_version = str(choice.version)
    assert new_version is not None

    # The installer's checksum: recomputed when the version changes, filled in when missing.
    old_windows = current.windows_sha256 if current else None
    new_windows = old_windows
    sigstore: bool | None = None
    if current is None or new_version != current.version or old_windows is None:
        release = Version(new_version).base_version
        new_windows, sigstore = _installer_sha256(shared, name, release, new_version, notes)

    old_pip = current.pip_version if current else None
    old_url = current.get_pip_url if current else None
    old_sha = current.get_pip_sha256 if current else None
    new_pip: str | None = None
    new_url: str | None = None
    new_sha: str | None = None
    if get_pip:
        new_pip = select_pip(
            shared.pip_document, new_version, source=redact_url(sources.pip_json()), notes=notes
        )
        if old_pip is not None and Version(new_pip) < Version(old_pip):
            notes.append(
                f"{name}: the newest admitted pip is {new_pip}, older than {old_pip}; kept"
            )
            new_pip = old_pip
        assert shared.commit is not None
        if old_url is not None and old_sha is not None and _commit_of(old_url) == shared.commit:
            new_url, new_sha = old_url, old_sha  # same commit, same immutable file
        else:
            new_url, new_sha = _resolve_get_pip(shared, line)

    return LineUpdate(
        line=name,
        added=current is None,
        old_version=old_version,
        new_version=new_version,
        old_pip=old_pip,
        new_pip=new_pip,
        old_get_pip_url=old_url,
        new_get_pip_url=new_url,
        old_get_pip_sha256=old_sha,
        new_get_pip_sha256=new_sha,
        old_windows_sha256=old_windows,
        new_windows_sha256=new_windows,
        variants=variants,
        notes=tuple(notes),
        sigstore=sigstore,
    )


def _unchanged(current: PythonLine, notes: Sequence[str]) -> LineUpdate:
    return LineUpdate(
        line=current.name,
        added=False,
        old_version=current.version,
        new_version=current.version,
        old_pip=current.pip_version,
        new_pip=current.pip_version,
        old_get_pip_url=current.get_pip_url,
        new_get_pip_url=current.get_pip_url,
        old_get_pip_sha256=current.get_pip_sha256,
        new_get_pip_sha256=current.get_pip_sha256,
        old_windows_sha256=current.windows_sha256,
        new_windows_sha256=current.windows_sha256,
        notes=tuple(notes),
    )


def _resolve_get_pip(shared: _Shared, line: LineName) -> tuple[str, str]:
    assert shared.commit is not None
    tried = []
    for path in get_pip_paths(line):
        url = shared.sources.get_pip_raw(shared.commit, path)
        tried.append(redact_url(url))
        sha = shared.sha256(url)
        if sha is not None:
            return pinned_get_pip_url(shared.commit, path), sha
    raise SourceError(
        f"{tried[0]}: get-pip.py for Python {line.major_minor} not found at commit "
        f"{shared.commit} (also tried {', '.join(tried[1:])})",
        hint="check TOOLKIT_GITHUB_URL or pin get-pip by hand",
    )


def resolve_updates(
    current: VersionsFile,
    *,
    lines: Sequence[str],
    add: Sequence[str],
    sources: Sources,
    fetcher: Fetcher,
    workers: int = 8,
) -> list[LineUpdate]:
    """The update of each named line (all when none and nothing is added), and of each added one.

    Raises ConfigError for unknown or duplicate line names, SourceError for any source failure.
    """
    existing = {line.name: line for line in current.lines}
    for name in lines:
        LineName.parse(name)  # a name that is no line at all is named as such (and cut short)
        if name not in existing:
            hint = did_you_mean(name, existing, otherwise=f"add it with --add {name}")
            raise ConfigError(f"{current.path}: no line {name!r}", hint=hint)
    for name in add:
        LineName.parse(name)
        if name in existing:
            raise ConfigError(
                f"{current.path}: line {name!r} already exists",
                hint=f"bump it: toolkit bump {name}",
            )
    if len(set(add)) != len(add):
        raise ConfigError("--add names a line twice", hint="name each new line once")
    targets = list(dict.fromkeys(lines)) if (lines or add) else list(existing)

    # An added line copies the newest line's variants and recipe (get-pip or not).
    newest = max(current.lines, key=lambda x: (Version(x.version), not x.is_rc))
    variants = tuple(v.name for v in newest.variants) if add else ()
    added_get_pip = not newest.pip_from_installer

    # Daemon threads: the first failure, Ctrl-C or SIGTERM ends the bump at once; fetches still in
    # flight die with the process instead of holding it for their timeouts (issue 13).
    with DaemonPool(workers, name="bump") as pool:
        return _resolve_all(pool, current, targets, add, variants, added_get_pip, sources, fetcher)


def _resolve_all(
    pool: DaemonPool,
    current: VersionsFile,
    targets: Sequence[str],
    add: Sequence[str],
    variants: tuple[str, ...],
    added_get_pip: bool,
    sources: Sources,
    fetcher: Fetcher,
) -> list[LineUpdate]:
    existing = {line.name: line for line in current.lines}
    get_pip = {name: not existing[name].pip_from_installer for name in targets}
    get_pip.update({name: added_get_pip for name in add})
    top = pool.submit(fetcher.get_text, sources.ftp_index())
    needed = any(get_pip.values())  # PyPI and GitHub only when some line pins pip with get-pip
    pip = pool.submit(fetcher.get_json, sources.pip_json()) if needed else None
    commits = pool.submit(fetcher.get_json, sources.get_pip_commits()) if needed else None
    source = redact_url(sources.get_pip_commits())
    shared = _Shared(
        sources=sources,
        fetcher=fetcher,
        top_entries=parse_directory_index(top.result()),
        pip_document=pip.result() if pip is not None else None,
        commit=newest_commit(commits.result(), source=source) if commits is not None else None,
    )
    jobs = [
        pool.submit(_resolve_line, shared, name, existing[name], (), get_pip[name])
        for name in targets
    ] + [pool.submit(_resolve_line, shared, name, None, variants, get_pip[name]) for name in add]
    return [job.result() for job in jobs]


# --- the new versions.json ------------------------------------------------------------------


def apply_updates(data: dict[str, Any], updates: Sequence[LineUpdate]) -> dict[str, Any]:
    """A copy of the raw versions.json data with the updates applied, key order kept.

    Added lines go before the first line of an older Python, else at the end.
    """
    new = copy.deepcopy(data)
    for update in updates:
        if update.added:
            continue
        entry = new[update.line]
        entry["version"] = update.new_version
        if update.new_get_pip_url is not None:
            entry["pip"]["version"] = update.new_pip
            entry["get-pip"]["url"] = update.new_get_pip_url
            entry["get-pip"]["sha256"] = update.new_get_pip_sha256
        if update.new_windows_sha256 is not None:
            entry.setdefault("checksums", {}).setdefault("windows", {})
            entry["checksums"]["windows"]["sha256"] = update.new_windows_sha256
    for update in (u for u in updates if u.added):
        body: dict[str, Any] = {"version": update.new_version}
        if update.new_get_pip_url is not None:
            body["pip"] = {"version": update.new_pip}
            body["get-pip"] = {"url": update.new_get_pip_url, "sha256": update.new_get_pip_sha256}
            body["variants"] = list(update.variants)
            if update.new_windows_sha256 is not None:
                body["checksums"] = {"windows": {"sha256": update.new_windows_sha256}}
        else:  # today's official shape: version, checksums, variants
            body["checksums"] = {"windows": {"sha256": update.new_windows_sha256}}
            body["variants"] = list(update.variants)
        key = LineName.parse(update.line)
        items = list(new.items())
        at = len(items)
        for i, (name, _entry) in enumerate(items):
            other = LineName.parse(name)
            if (other.major, other.minor) < (key.major, key.minor):
                at = i
                break
        items.insert(at, (update.line, body))
        new = dict(items)
    return new


@dataclass(frozen=True, kw_only=True)
class BumpPlan:
    """What a bump would write: the old and new text of versions.json and the validated model."""

    path: Path
    old_text: str
    new_text: str
    versions: VersionsFile
    updates: tuple[LineUpdate, ...]

    @property
    def changed(self) -> bool:
        return self.old_text != self.new_text

    def diff(self) -> str:
        name = self.path.name
        return "".join(
            difflib.unified_diff(
                self.old_text.splitlines(keepends=True),
                self.new_text.splitlines(keepends=True),
                f"a/{name}",
                f"b/{name}",
            )
        )

    def notes(self) -> list[str]:
        return [note for update in self.updates for note in update.notes]

    def record(self, *, written: bool) -> dict[str, Any]:
        return {
            "versions": str(self.path),
            "changed": self.changed,
            "written": written,
            "lines": [u.record() for u in self.updates],
        }


def plan_bump(path: Path, old_text: str, updates: Sequence[LineUpdate]) -> BumpPlan:
    """The new versions.json text for ``updates``, validated like any loaded file."""
    data = json.loads(old_text)
    new_text = dump_versions(apply_updates(data, updates)) if updates else old_text
    if all(not u.changed for u in updates):
        new_text = old_text  # nothing to do: leave the file byte for byte
    versions = parse_versions(new_text, path)
    return BumpPlan(
        path=path, old_text=old_text, new_text=new_text, versions=versions, updates=tuple(updates)
    )


def write_bump(plan: BumpPlan, out: Path, states: Sequence[FileState]) -> None:
    """Write versions.json and the re-rendered Dockerfiles, and remove stale ones, as one
    transaction (toolkit.files): a failure anywhere (a full disk, an immutable file) leaves
    versions.json and every Dockerfile as they were."""
    try:
        on_disk = read_text(plan.path)
    except UnreadableFile as exc:
        raise OutputError(f"{plan.path}: cannot read: {exc.why}", hint="check the file") from None
    if on_disk != plan.old_text:
        raise OutputError(
            f"{plan.path}: changed while bumping; nothing written", hint="run toolkit bump again"
        )
    stale = stale_files(states)
    write_files([(plan.path, plan.new_text), *changed_files(states)], remove=stale)
    for path in stale:
        prune_empty(path.parent, out)


@dataclass(frozen=True, kw_only=True)
class BumpRequest:
    versions: Path
    lines: tuple[str, ...] = ()
    add: tuple[str, ...] = ()
    out: Path = Path("dockerfiles")
    templates: Path = Path("templates")
    dry_run: bool = False
    render: bool = True


@dataclass(frozen=True, kw_only=True)
class BumpOutcome:
    request: BumpRequest
    plan: BumpPlan
    states: tuple[FileState, ...]
    written: bool

    def failure(self) -> None:
        return None


def run_bump(
    request: BumpRequest, sources: Sources, fetcher: Fetcher, *, workers: int = 8
) -> BumpOutcome:
    """Resolve every named line upstream, re-render, and (unless ``dry_run``) write it all."""
    current = load_versions(request.versions)
    try:
        old_text = read_text(request.versions)
    except UnreadableFile as exc:  # load_versions read it a moment ago
        raise ConfigError(f"{request.versions}: cannot read: {exc.why}") from None
    updates = resolve_updates(
        current,
        lines=request.lines,
        add=request.add,
        sources=sources,
        fetcher=fetcher,
        workers=workers,
    )
    plan = plan_bump(request.versions, old_text, updates)
    states: list[FileState] = []
    if plan.changed and request.render:
        from toolkit.matrix import build_matrix
        from toolkit.render import plan_render, template_environment

        every = build_matrix(plan.versions)
        env = template_environment(request.templates)
        states = [
            s
            for s in plan_render(env, request.out, every, every)
            if s.change is not Change.UNCHANGED
        ]
    written = plan.changed and not request.dry_run
    if written:
        write_bump(plan, request.out, states)
    return BumpOutcome(request=request, plan=plan, states=tuple(states), written=written)
