"""Build one image on one Docker engine through the Docker SDK, with a cache key and a deadline.

The build context is the variant's directory and nothing else. Before building, a content hash of
the context files and the build settings is computed (``content_hash``); when the engine already
has an image labelled with that hash the build is skipped and the tags are applied to it, so
re-running a finished matrix costs a few API calls per target.

The classic builder's stream (``APIClient.build(decode=True)``) is parsed by ``BuildStream``:
``Step N/M : INSTRUCTION`` lines give progress, ``---> Running in <id>`` and ``---> <id>`` lines
say which containers and images the build made, so a failed or cancelled build can clean up
after itself. A watchdog shuts the connection down at the deadline (or on Ctrl-C); the engine then
cancels the build and ``forcerm`` removes its container.

Docker SDK and requests exceptions are translated here into toolkit errors naming host and build.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from toolkit.buildstream import BuildStream, cleanup_build
from toolkit.cancel import Canceller, cancellable, check_timeout
from toolkit.errors import (
    BuildFailedError,
    ConfigError,
    HostError,
    ToolkitError,
    describe_exception,
)
from toolkit.imagenames import check_repository
from toolkit.instructions import Instruction, parse_dockerfile, step_records
from toolkit.matrix import Build
from toolkit.paths import directory_problem
from toolkit.redact import redact_path, redact_url
from toolkit.results import BuildObserver, BuildResult, Outcome

HASH_LABEL = "io.github.windows-python-images.toolkit.hash"
"""The image label that carries the cache key (``content_hash``)."""

TARGET_LABEL = "io.github.windows-python-images.toolkit.target"
REPO_LABEL = "io.github.windows-python-images.toolkit.repo"
"""The build id and ``--repo`` an image was built for: what ``--prune`` goes by. Not compared
when skipping, so images built before these labels existed are still found by their hash."""

CREATED_LABEL = "org.opencontainers.image.created"

HASH_SCHEME = "toolkit-build-hash/1"
"""Mixed into every hash: bump it when what goes into the hash changes."""

PULL_POLICIES = ("always", "missing", "never")

TAIL_LINES = 40


@dataclass(frozen=True, kw_only=True)
class BuildSettings:
    """How every build of a run is made (the CLI flags)."""

    repo: str = "python"
    pull: str = "missing"
    network_mode: str | None = None
    timeout: float = 3 * 3600.0
    force: bool = False
    build_args: Mapping[str, str] = field(default_factory=dict)
    source: str | None = None
    logs: Path = Path("logs")
    prune: bool = True

    def __post_init__(self) -> None:
        if self.pull not in PULL_POLICIES:
            raise ConfigError(
                f"--pull {self.pull!r} is not a pull policy", hint="use always, missing or never"
            )
        check_timeout(self.timeout)
        check_repository(self.repo)


@dataclass(frozen=True, kw_only=True)
class BuildJob:
    """One build assigned to one engine."""

    build: Build
    context: Path
    host: str
    client: Any  # docker.DockerClient; Any so the SDK is not imported for typing
    isolation: str | None = None
    os_type: str = "windows"


# -- cache key ---------------------------------------------------------------------------------


def context_files(context: Path) -> list[Path]:
    """Every regular file under ``context``, sorted by relative POSIX path."""
    if not context.is_dir():
        raise ConfigError(f"{context}: build context not found", hint="run toolkit render")
    files = [p for p in context.rglob("*") if p.is_file() or p.is_symlink()]
    return sorted(files, key=lambda p: p.relative_to(context).as_posix())


def content_hash(context: Path, settings: Mapping[str, Any]) -> str:
    """The cache key: sha256 over the context's files (path, mode, bytes) and ``settings``.

    ``settings`` holds what changes the image besides the files: the base image's ID, the
    isolation, build arguments, network mode. Tags and the ``created`` timestamp stay out, so
    retagging or re-running does not change the key.
    """
    digest = hashlib.sha256()
    digest.update(HASH_SCHEME.encode() + b"\0")
    for path in context_files(context):
        rel = path.relative_to(context).as_posix()
        if path.is_symlink():
            kind, data = b"l", os.readlink(path).encode()
        else:
            mode = path.stat().st_mode
            kind = b"x" if mode & stat.S_IXUSR else b"f"
            data = path.read_bytes()
        digest.update(b"%s %d %s\0" % (kind, len(data), rel.encode()))
        digest.update(data)
    digest.update(json.dumps(settings, sort_keys=True, separators=(",", ":")).encode())
    return digest.hexdigest()


def _froms(context: Path) -> list[Instruction]:
    froms = [i for i in parse_dockerfile(context / "Dockerfile") if i.cmd == "FROM"]
    if not froms:
        raise ConfigError(f"{context / 'Dockerfile'}: no FROM", hint="run toolkit render")
    return froms


def base_image(context: Path) -> str:
    """The image the Dockerfile in ``context`` starts ``FROM`` (the last stage's base)."""
    return _froms(context)[-1].value[0]


def base_images(context: Path) -> list[str]:
    """Every image a stage of the Dockerfile in ``context`` starts ``FROM``, in order, leaving
    out references to earlier stages (a nanoserver build: Server Core, then Nano Server)."""
    stages: set[str] = set()
    images: list[str] = []
    for ins in _froms(context):
        image = ins.value[0]
        if image.casefold() not in stages and image not in images:
            images.append(image)
        if len(ins.value) >= 3 and ins.value[1].casefold() == "as":
            stages.add(ins.value[2].casefold())
    return images


def oci_labels(build: Build, settings: BuildSettings, base: str) -> dict[str, str]:
    labels = {
        "org.opencontainers.image.version": build.line.version,
        "org.opencontainers.image.base.name": base,
        CREATED_LABEL: datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
    if settings.source:
        labels["org.opencontainers.image.source"] = settings.source
    return labels


def full_tags(build: Build, repo: str) -> tuple[str, ...]:
    return tuple(f"{repo}:{tag}" for tag in build.tags)


# -- one build ---------------------------------------------------------------------------------


def prepare_logs(directory: Path, *, create: bool) -> None:
    """Check ``--logs`` before any target runs (a file there is a usage error, exit 2, not a
    failure of every target) and, unless ``create`` is False (a dry run), create it."""
    problem = directory_problem(directory)
    if problem is None and create:
        try:
            directory.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            problem = f"cannot be created ({exc.strerror or exc})"
    if problem is not None:
        raise ConfigError(
            f"--logs {redact_path(directory)} {problem}",
            hint="give a directory for the per-target logs (created when missing)",
        )


class _Log:
    """The full log of one target (``logs/<id>.log``), and its tail in memory."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.tail: deque[str] = deque(maxlen=TAIL_LINES)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._handle: IO[str] = path.open("w", encoding="utf-8", errors="replace")
        except OSError as exc:
            raise ConfigError(
                f"{path}: cannot write the build log: {exc.strerror}", hint="check --logs"
            ) from None

    def write(self, line: str) -> None:
        self._handle.write(line + "\n")
        self._handle.flush()
        self.tail.append(line)

    def close(self) -> None:
        self._handle.close()


def _connection_lost_types() -> tuple[type[BaseException], ...]:
    import http.client

    import requests.exceptions
    import urllib3.exceptions

    # A stream cut mid-body surfaces as urllib3's ProtocolError (IncompleteRead) or requests'
    # ChunkedEncodingError rather than a ConnectionError.
    return (
        requests.exceptions.ConnectionError,
        requests.exceptions.ChunkedEncodingError,
        urllib3.exceptions.ProtocolError,
        http.client.IncompleteRead,
        ConnectionError,
    )


def translate(exc: BaseException, host: str, build_id: str, doing: str) -> ToolkitError:
    """A Docker SDK / requests exception as the toolkit error a user can act on."""
    import docker.errors
    import requests.exceptions

    where = f"{build_id} on {host}"
    lost = _connection_lost_types()
    if isinstance(exc, ToolkitError):
        # Raised by the toolkit's own steps (base image, context): say which target and host.
        if exc.message.startswith(where):
            return exc
        return type(exc)(f"{where}: {exc.message}", hint=exc.hint)
    if isinstance(exc, docker.errors.ImageNotFound):
        return BuildFailedError(
            f"{where}: {doing}: image not found: {describe_exception(exc)}",
            hint="check the base image, or use --pull missing",
        )
    if isinstance(exc, requests.exceptions.ReadTimeout):
        return BuildFailedError(
            f"{where}: {doing}: the engine sent nothing before the timeout",
            hint="raise --timeout or check the host",
        )
    if isinstance(exc, lost):
        return HostError(
            f"{where}: {doing}: engine unreachable or connection lost: {describe_exception(exc)}",
            hint="check that the engine is running and the host entry in hosts.toml",
        )
    if isinstance(exc, docker.errors.BuildError):
        return BuildFailedError(f"{where}: {doing}: {describe_exception(exc)}", hint="see the log")
    if isinstance(exc, docker.errors.APIError):
        return BuildFailedError(
            f"{where}: {doing}: the engine answered: {describe_exception(exc)}", hint="see the log"
        )
    return BuildFailedError(
        f"{where}: {doing}: {type(exc).__name__}: {describe_exception(exc)}", hint="see the log"
    )


def _resolve_base(api: Any, base: str, pull: str, log: _Log) -> str:
    """The local ID of the base image, pulling it first as the pull policy says."""
    import docker.errors

    present: dict[str, Any] | None
    try:
        present = api.inspect_image(base)
    except docker.errors.ImageNotFound:
        present = None
    if pull == "always" or (pull == "missing" and present is None):
        log.write(f"pulling {base} (--pull {pull})")
        repository, _, tag = base.rpartition(":")
        for event in api.pull(repository, tag=tag, stream=True, decode=True):
            if "error" in event:
                raise BuildFailedError(f"pulling {base}: {event['error']}", hint="see the log")
        present = api.inspect_image(base)
    if present is None:
        raise BuildFailedError(
            f"base image {base} is not on the engine and --pull never forbids pulling it",
            hint="load or pull it there, or use --pull missing",
        )
    return str(present["Id"])


def _apply_tags(api: Any, image_id: str, tags: Sequence[str]) -> None:
    for tag in tags:
        repository, _, name = tag.rpartition(":")
        api.tag(image_id, repository, name, force=True)


class EngineIndex:
    """What one engine already has, read once per run and shared by its builds (thread-safe):
    the IDs of base images (pulled at most once per run as ``--pull`` says) and the images
    carrying a cache-key label. One listing per engine, instead of one per target, keeps a
    no-op re-run of a large matrix to a few API calls per host.
    """

    def __init__(self, api: Any) -> None:
        self._api = api
        self._lock = threading.Lock()
        self._bases: dict[str, str] = {}
        self._labelled: list[dict[str, Any]] | None = None

    def base_id(self, base: str, pull: str, log: _Log) -> str:
        with self._lock:
            if base not in self._bases:
                self._bases[base] = _resolve_base(self._api, base, pull, log)
            return self._bases[base]

    def labelled(self) -> list[dict[str, Any]]:
        """The engine's images that carry a cache key, as listed at the first call."""
        with self._lock:
            if self._labelled is None:
                self._labelled = list(self._api.images(filters={"label": HASH_LABEL}))
            return list(self._labelled)

    def find(self, digest: str, expected: Mapping[str, str]) -> dict[str, Any] | None:
        """The newest finished image labelled with ``digest``, if the engine has one.

        The classic builder applies build labels one step at a time, so the intermediate images
        of the label steps carry the hash too; only the final image carries every label. An
        intermediate left dangling (its build failed later) is never taken for a result.
        """
        found = [i for i in self.labelled() if (i.get("Labels") or {}).get(HASH_LABEL) == digest]
        for image in sorted(found, key=lambda i: int(i.get("Created", 0)), reverse=True):
            labels = image.get("Labels") or {}
            if all(labels.get(k) == v for k, v in expected.items() if k != CREATED_LABEL):
                return image
        return None


def build_image(
    job: BuildJob,
    settings: BuildSettings,
    observer: BuildObserver,
    canceller: Canceller | None = None,
    index: EngineIndex | None = None,
) -> BuildResult:
    """Build (or skip) one target; never raises for a failed build, returns its result.

    The observer hears ``started``, ``step`` and ``line``; ``finished`` is the caller's to send
    (the scheduler sends it after verification).
    """
    canceller = canceller or Canceller()
    build, host = job.build, job.host
    start, wall_start = time.monotonic(), time.time()
    log = _Log(settings.logs / f"{build.id}.log")
    observer.started(build.id, host)
    tags = full_tags(build, settings.repo)
    digest: str | None = None
    stream = BuildStream()
    api = job.client.api
    index = index or EngineIndex(api)

    def finish(outcome: Outcome, **kw: Any) -> BuildResult:
        log.close()
        result = BuildResult(
            build_id=build.id,
            host=host,
            isolation=job.isolation,
            outcome=outcome,
            duration=time.monotonic() - start,
            tags=tags,
            content_hash=digest,
            log_path=log.path,
            tail=tuple(log.tail) if not outcome.ok else (),
            **kw,
        )
        return result

    def emit(line: str) -> None:
        log.write(line)
        observer.line(build.id, line)

    doing = "preparing"
    try:
        base = base_image(job.context)
        doing = f"resolving base image {base}"
        base_id = index.base_id(base, settings.pull, log)
        hashed: dict[str, Any] = {
            "base_image": base,
            "base_image_id": base_id,
            "isolation": job.isolation,
            "build_args": dict(settings.build_args),
            "network_mode": settings.network_mode,
        }
        # A multi-stage build (nanoserver) also depends on the images of its other stages:
        # a new Server Core to install on changes what is copied.
        stages = [image for image in base_images(job.context) if image != base]
        if stages:
            found = {}
            for image in stages:
                doing = f"resolving base image {image}"
                found[image] = index.base_id(image, settings.pull, log)
            hashed["stage_images"] = found
        digest = content_hash(job.context, hashed)
        emit(f"{build.id} on {host}: context {job.context}, hash {digest[:16]}")
        if not settings.force:
            doing = "looking for an image with the same hash"
            expected = {**oci_labels(build, settings, base), HASH_LABEL: digest}
            cached = index.find(digest, expected)
            if cached is not None:
                present = set(cached.get("RepoTags") or ())
                _apply_tags(api, cached["Id"], [t for t in tags if t not in present])
                emit(f"unchanged: {cached['Id'][:19]} has hash {digest[:16]}; tagged {tags[0]}")
                return finish(
                    Outcome.SKIPPED, image_id=cached["Id"], size=int(cached.get("Size") or 0)
                )
        labels = {
            **oci_labels(build, settings, base),
            HASH_LABEL: digest,
            TARGET_LABEL: build.id,
            REPO_LABEL: settings.repo,
        }
        doing = "building"
        # The parent of the first step, should the stream be cut before it names any image,
        # and the steps a late image can come from (buildstream.cleanup_build).
        stream.last_image = base_id.removeprefix("sha256:")
        stream.steps = step_records(parse_dockerfile(job.context / "Dockerfile"))
        outcome = _stream_build(
            job,
            settings,
            api,
            labels,
            tags,
            stream,
            canceller,
            emit,
            lambda n, m, text: observer.step(build.id, n, m, text),
        )
        if outcome is not None:
            reason = canceller.reason or "cancelled"
            emit(reason)
            _cleanup_quietly(api, stream, log, wall_start)
            return finish(outcome, message=f"{build.id} on {host}: {reason}")
        if stream.error is not None or stream.image_id is None:
            message = stream.error or "the engine ended the build without an image"
            _cleanup_quietly(api, stream, log, wall_start)
            return finish(Outcome.FAILED, message=f"{build.id} on {host}: {message}")
        doing = "tagging"
        _apply_tags(api, stream.image_id, tags[1:])
        image = api.inspect_image(stream.image_id)
        emit(f"built {image['Id'][:19]}; tagged {', '.join(tags)}")
        return finish(Outcome.BUILT, image_id=image["Id"], size=int(image.get("Size") or 0))
    except Exception as exc:
        error = translate(exc, host, build.id, doing)
        if canceller.reason is not None:
            emit(canceller.reason)
            _cleanup_quietly(api, stream, log, wall_start)
            outcome = (
                Outcome.TIMEOUT if canceller.reason.startswith("timeout") else Outcome.CANCELLED
            )
            return finish(outcome, message=f"{build.id} on {host}: {canceller.reason}")
        emit(f"error: {error.one_line()}")
        _cleanup_quietly(api, stream, log, wall_start)
        return finish(Outcome.FAILED, message=error.one_line())


def _cleanup_quietly(api: Any, stream: BuildStream, log: _Log, started: float) -> None:
    try:
        cleanup_build(api, stream, log.write, started=started)
    except Exception as exc:  # the engine may be gone: the failure is already reported
        log.write(f"cleanup: skipped, engine did not answer: {describe_exception(exc)}")


def _stream_build(
    job: BuildJob,
    settings: BuildSettings,
    api: Any,
    labels: Mapping[str, str],
    tags: Sequence[str],
    stream: BuildStream,
    canceller: Canceller,
    emit: Callable[[str], None],
    on_step: Callable[[int, int, str], None],
) -> Outcome | None:
    """Run the build stream under the deadline; returns TIMEOUT/CANCELLED if stopped early."""
    watchdog = threading.Timer(settings.timeout, canceller.cancel, [_timeout_text(settings)])
    watchdog.daemon = True
    watchdog.start()
    try:
        if canceller.reason is not None:
            return Outcome.CANCELLED
        with cancellable(api, canceller, "/build"):
            events: Iterator[dict[str, Any]] = api.build(
                path=str(job.context),
                tag=tags[0],
                rm=True,
                forcerm=True,
                pull=False,  # the base was resolved (and pulled if asked) before hashing
                decode=True,
                labels=dict(labels),
                buildargs=dict(settings.build_args) or None,
                network_mode=settings.network_mode,
                isolation=job.isolation,
                timeout=settings.timeout,
            )
        last_step = 0
        for event in events:
            for line in stream.feed(event):
                emit(line)
            if stream.step != last_step:
                last_step = stream.step
                on_step(stream.step, stream.total, stream.instruction)
            if canceller.reason is not None:
                break
        for line in stream.flush():
            emit(line)
    except Exception:
        if canceller.reason is None:
            raise
    finally:
        watchdog.cancel()
    if canceller.reason is not None:
        return Outcome.TIMEOUT if canceller.reason.startswith("timeout") else Outcome.CANCELLED
    return None


def _timeout_text(settings: BuildSettings) -> str:
    return f"timeout: the build took longer than --timeout {settings.timeout:g} s"


def parse_build_args(items: Sequence[str], flag: str = "--build-arg") -> dict[str, str]:
    """``KEY=VALUE`` items as a mapping; ConfigError naming ``flag`` for anything else."""
    found = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"{flag} {item!r} is not KEY=VALUE", hint=f"{flag} KEY=VALUE")
        found[key] = value
    return found


def source_label(given: str | None, env: Mapping[str, str]) -> str | None:
    """The ``org.opencontainers.image.source`` value: as given, else the repository's URL on
    GitHub Actions (``$GITHUB_SERVER_URL/$GITHUB_REPOSITORY``).

    A URL carrying credentials (``https://user:token@host/...``, a token in its query) is
    refused: a label is public, in the image and in every registry it is pushed to."""
    if given is None and env.get("GITHUB_SERVER_URL") and env.get("GITHUB_REPOSITORY"):
        given = f"{env['GITHUB_SERVER_URL']}/{env['GITHUB_REPOSITORY']}"
    if given is not None and redact_url(given) != given:
        raise ConfigError(
            f"--source {redact_url(given)}: the URL carries credentials, and the label would "
            "publish them in the image",
            hint="give the repository's public URL, without user info or tokens",
        )
    return given
