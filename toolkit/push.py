"""Push one build's per-release tags from the engine that built it (issue 9).

The engine pushes (Docker SDK, ``APIClient.push`` streamed): it holds the layers, and only it
knows how to skip the Windows base layers that are foreign (``...rootfs.foreign.diff.tar.gzip``
with ``urls``): it uploads them only when its daemon lists the registry under
``allow-nondistributable-artifacts``; otherwise it reports ``Skipped foreign layer`` and the
manifest keeps the ``urls`` pointing at Microsoft's registry.

Before pushing, the registry is asked (one HEAD per tag, through the toolkit's registry client)
whether every tag already names the digest the engine recorded for that image on an earlier
push (``RepoDigests``): then nothing is sent and the target is ``unchanged``. After pushing, each
tag is read back and must name the digest the engine reported.

Plain values in and out: the Docker client, the registry client and the engine's credentials are
passed in; progress goes to ``on_progress``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from toolkit.cancel import Canceller
from toolkit.credentials import Credential
from toolkit.errors import Interrupted, RegistryError, ToolkitError, describe_exception
from toolkit.hosts import HostSelection
from toolkit.matrix import Build, select_builds
from toolkit.preflight import ClientSource, plan_targets
from toolkit.references import Reference
from toolkit.registry import RegistryClient
from toolkit.render import require_rendered
from toolkit.results import BuildObserver, BuildResult, Outcome
from toolkit.runner import run_planned

FOREIGN_SKIPPED = "Skipped foreign layer"


@dataclass(frozen=True, kw_only=True)
class PushResult:
    build_id: str
    host: str
    outcome: Outcome
    tags: tuple[str, ...] = ()
    digest: str | None = None
    duration: float = 0.0
    layers: int = 0
    foreign_skipped: int = 0
    message: str = ""

    @property
    def ok(self) -> bool:
        return self.outcome.ok

    def record(self) -> dict[str, Any]:
        return {
            "id": self.build_id,
            "host": self.host,
            "result": self.outcome.value,
            "tags": list(self.tags),
            "digest": self.digest,
            "duration": round(self.duration, 3),
            "layers": self.layers,
            "foreign_layers_skipped": self.foreign_skipped,
            "message": self.message,
        }


def auth_config(credential: Credential | None, registry: str) -> dict[str, str] | None:
    """What the engine's push endpoint takes (sent in the X-Registry-Auth header, not argv)."""
    if credential is None:
        return None
    if credential.identity_token:
        return {"identitytoken": credential.secret, "serveraddress": registry}
    return {
        "username": credential.username,
        "password": credential.secret,
        "serveraddress": registry,
    }


@dataclass
class _Progress:
    """Layer states from the push stream: ``{layer id: last status}``."""

    layers: dict[str, str] = field(default_factory=dict)
    digest: str | None = None
    error: str | None = None

    def feed(self, event: Mapping[str, Any]) -> None:
        if event.get("error") or event.get("errorDetail"):
            detail = event.get("errorDetail") or {}
            self.error = str(detail.get("message") or event.get("error") or "push failed")
            return
        aux = event.get("aux")
        if isinstance(aux, dict) and aux.get("Digest"):
            self.digest = str(aux["Digest"])
        layer, status = event.get("id"), str(event.get("status") or "")
        if layer and status and status not in ("Preparing", "Waiting"):
            self.layers[str(layer)] = status
        elif layer and status:
            self.layers.setdefault(str(layer), status)

    def done(self) -> int:
        finished = ("Pushed", "Layer already exists", "Mounted from", FOREIGN_SKIPPED)
        return sum(1 for s in self.layers.values() if s.startswith(finished))

    def foreign(self) -> int:
        return sum(1 for s in self.layers.values() if s == FOREIGN_SKIPPED)


def _repo_digest(attrs: Mapping[str, Any], destination: Reference) -> str | None:
    names = [f"{destination.registry}/{destination.repository}"]
    if destination.registry in ("docker.io", "index.docker.io"):
        # The engine records Docker Hub names without the registry (and ``library/``).
        names += [destination.repository, destination.repository.removeprefix("library/")]
    for item in attrs.get("RepoDigests") or []:
        name, at, digest = str(item).partition("@")
        if at and name in names:
            return digest
    return None


def push_build(
    docker: Any,
    registry: RegistryClient,
    build: Build,
    destination: Reference,
    *,
    host: str,
    local_repo: str,
    credential: Credential | None,
    on_progress: Callable[[str], None] = lambda _text: None,
    canceller: Canceller | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> PushResult:
    """Tag ``local_repo:<tag>`` as ``destination:<tag>`` for each tag of ``build`` and push."""
    from docker.errors import APIError, DockerException, ImageNotFound

    stop = canceller or Canceller()
    started = clock()
    target = f"{destination.registry}/{destination.repository}"

    def result(outcome: Outcome, message: str = "", **kw: Any) -> PushResult:
        return PushResult(
            build_id=build.id,
            host=host,
            outcome=outcome,
            duration=clock() - started,
            message=message,
            **kw,
        )

    source = f"{local_repo}:{build.tags[0]}"
    try:
        attrs = docker.api.inspect_image(source)
    except ImageNotFound:
        return result(
            Outcome.NOT_BUILT, f"{source} is not on {host}; run toolkit build for {build.id} first"
        )
    except (APIError, DockerException, OSError) as exc:
        return result(Outcome.FAILED, f"{host}: {describe_exception(exc)}")
    known = _repo_digest(attrs, destination)
    if known is not None:
        on_progress("checking the registry")
        try:
            current = {t: registry.manifest_digest(destination.repository, t) for t in build.tags}
        except RegistryError as exc:
            return result(Outcome.FAILED, exc.one_line())
        if set(current.values()) == {known}:
            return result(Outcome.UNCHANGED, tags=build.tags, digest=known)
    auth = auth_config(credential, destination.registry)
    progress = _Progress()
    digests: dict[str, str] = {}
    try:
        for tag in build.tags:
            if stop.cancelled:
                return result(Outcome.CANCELLED, f"{build.id} on {host}: {stop.reason}")
            docker.api.tag(attrs["Id"], target, tag)
            progress = _Progress()
            _install_hook(docker.api)
            _capture.canceller = stop
            try:
                stream = docker.api.push(
                    target, tag=tag, stream=True, decode=True, auth_config=auth
                )
            finally:
                _capture.canceller = None
            for event in stream:
                progress.feed(event)
                if event.get("id") and progress.layers:
                    on_progress(f"{tag}: {progress.done()}/{len(progress.layers)} layers")
                if progress.error is not None:
                    break
            if stop.cancelled:
                return result(Outcome.CANCELLED, f"{build.id} on {host}: {stop.reason}")
            if progress.error is not None:
                return result(
                    Outcome.FAILED, f"push of {target}:{tag} from {host}: {progress.error}"
                )
            if progress.digest is None:
                return result(
                    Outcome.FAILED, f"push of {target}:{tag} from {host} reported no digest"
                )
            digests[tag] = progress.digest
    except (APIError, DockerException, OSError) as exc:
        if stop.cancelled:
            return result(Outcome.CANCELLED, f"{build.id} on {host}: {stop.reason}")
        return result(Outcome.FAILED, f"push of {target} from {host}: {describe_exception(exc)}")
    if len(set(digests.values())) != 1:
        return result(Outcome.FAILED, f"the tags of {build.id} were pushed as different digests")
    (digest,) = set(digests.values())
    on_progress("reading the tags back")
    for tag in build.tags:
        try:
            served = registry.manifest_digest(destination.repository, tag)
        except RegistryError as exc:
            return result(Outcome.FAILED, exc.one_line())
        if served != digest:
            return result(
                Outcome.FAILED,
                f"registry {destination.registry}, repository {destination.repository}, tag "
                f"{tag}: serves {served or 'nothing'} after the engine pushed {digest}",
            )
    return result(
        Outcome.PUSHED,
        tags=build.tags,
        digest=digest,
        layers=len(progress.layers),
        foreign_skipped=progress.foreign(),
    )


# --- the run: every selected build through the runner ---------------------------------------

_capture = threading.local()


def _capture_push_response(response: Any, *args: Any, **kwargs: Any) -> Any:
    """Hand the streamed push response to this thread's canceller (Ctrl-C closes it)."""
    canceller = getattr(_capture, "canceller", None)
    if canceller is not None and response.request.path_url.split("?")[0].endswith("/push"):
        canceller.attach(response)
    return response


def _install_hook(api: Any) -> None:
    hooks = api.hooks.setdefault("response", [])
    if _capture_push_response not in hooks:
        hooks.append(_capture_push_response)


@dataclass(frozen=True, kw_only=True)
class PushRequest:
    """Everything ``toolkit push`` was asked to do."""

    versions: Path
    selectors: tuple[str, ...] = ()
    out: Path = Path("dockerfiles")
    templates: Path = Path("templates")
    hosts: HostSelection = field(default_factory=HostSelection)
    local_repo: str | None = None  # None: the destination's REGISTRY/NAME
    jobs_per_host: int = 1
    fail_fast: bool = False
    dry_run: bool = False


@dataclass(frozen=True, kw_only=True)
class PushRun:
    destination: Reference
    builds: tuple[Build, ...]
    hosts: tuple[tuple[str, str], ...]  # (build id, host) in matrix order
    results: tuple[PushResult, ...] = ()
    interrupted: bool = False

    def failure(self) -> ToolkitError | None:
        if self.interrupted:
            return Interrupted()
        failed = [r for r in self.results if not r.ok]
        if not failed:
            return None
        names = ", ".join(r.build_id for r in failed)
        return RegistryError(
            f"{len(failed)} of {len(self.results)} push(es) to {self.destination} failed: {names}"
        )


@dataclass(frozen=True)
class PushJob:
    build: Build
    host: str
    client: Any


def as_build_result(result: PushResult) -> BuildResult:
    """The shape the progress reporters and the summary table show."""
    return BuildResult(
        build_id=result.build_id,
        host=result.host,
        isolation=None,
        outcome=result.outcome,
        duration=result.duration,
        image_id=result.digest,
        tags=result.tags,
        message=result.message or None,
    )


class PushWork:
    """The runner's per-target work for ``push``."""

    def __init__(
        self,
        registry: RegistryClient,
        destination: Reference,
        local_repo: str,
        credential: Credential | None,
        observer: BuildObserver,
    ) -> None:
        self._registry = registry
        self._destination = destination
        self._local_repo = local_repo
        self._credential = credential
        self._observer = observer

    def host(self, job: PushJob) -> str:
        return job.host

    def run(self, job: PushJob, canceller: Canceller, interrupt: threading.Event) -> PushResult:
        self._observer.started(job.build.id, job.host)
        return push_build(
            job.client,
            self._registry,
            job.build,
            self._destination,
            host=job.host,
            local_repo=self._local_repo,
            credential=self._credential,
            on_progress=lambda text: self._observer.step(job.build.id, 0, 0, text),
            canceller=canceller,
        )

    def failed(self, job: PushJob, why: str) -> PushResult:
        return PushResult(build_id=job.build.id, host=job.host, outcome=Outcome.FAILED, message=why)

    def not_run(self, job: PushJob, why: str, interrupted: bool) -> PushResult:
        outcome = Outcome.CANCELLED if interrupted else Outcome.NOT_RUN
        return PushResult(build_id=job.build.id, host=job.host, outcome=outcome, message=why)

    def still_running(self, job: PushJob) -> PushResult:
        message = f"{job.build.id} on {job.host}: interrupted; still stopping at exit"
        return PushResult(
            build_id=job.build.id, host=job.host, outcome=Outcome.CANCELLED, message=message
        )

    def ok(self, result: PushResult) -> bool:
        return result.ok

    def finished(self, result: PushResult) -> None:
        self._observer.finished(as_build_result(result))


def run_push(
    request: PushRequest,
    env: Mapping[str, str],
    clients: ClientSource,
    registry: RegistryClient,
    destination: Reference,
    progress: Callable[[], AbstractContextManager[BuildObserver]],
) -> PushRun:
    """Place the builds on their hosts as ``build`` does, then push each from its engine.

    Like ``build``, push refuses Dockerfiles that drifted from the templates and versions.json:
    the images it would publish were built from files the data no longer describes."""
    builds = select_builds(request.versions, request.selectors).chosen
    require_rendered(request.templates, request.out, builds)
    selection = request.hosts
    plan = plan_targets(
        builds, selection.load(env), clients, selection.isolation, selection.preflight
    )
    hosts = tuple((a.build_id, a.host.name) for a in plan.assignments)
    if request.dry_run:
        return PushRun(destination=destination, builds=builds, hosts=hosts)
    credential = registry.credential()
    jobs = [PushJob(t.build, t.host, t.client) for t in plan.targets]
    with progress() as observer:
        local = request.local_repo or f"{destination.registry}/{destination.repository}"
        results, summary = run_planned(
            plan,
            jobs,
            PushWork(registry, destination, local, credential, observer),
            lambda a, why: PushResult(
                build_id=a.build_id,
                host=a.host.name,
                outcome=Outcome.FAILED,
                message=f"{a.build_id}: {why.one_line()}",
            ),
            lambda r: r.build_id,
            jobs_per_host=request.jobs_per_host,
            fail_fast=request.fail_fast,
        )
    return PushRun(
        destination=destination,
        builds=builds,
        hosts=hosts,
        results=results,
        interrupted=summary.interrupted,
    )


def push_records(results: Sequence[PushResult]) -> list[dict[str, Any]]:
    return [r.record() for r in results]
