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

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from toolkit.credentials import Credential
from toolkit.errors import RegistryError
from toolkit.hosts import describe_error
from toolkit.matrix import Build
from toolkit.references import Reference
from toolkit.registry import RegistryClient

PUSHED = "pushed"
UNCHANGED = "unchanged"
FAILED = "failed"
NOT_BUILT = "not-built"
CANCELLED = "cancelled"
OUTCOMES = (PUSHED, UNCHANGED, FAILED, NOT_BUILT, CANCELLED)
FOREIGN_SKIPPED = "Skipped foreign layer"


@dataclass(frozen=True, kw_only=True)
class PushResult:
    build_id: str
    host: str
    outcome: str
    tags: tuple[str, ...] = ()
    digest: str | None = None
    duration: float = 0.0
    layers: int = 0
    foreign_skipped: int = 0
    message: str = ""

    @property
    def ok(self) -> bool:
        return self.outcome in (PUSHED, UNCHANGED)

    def record(self) -> dict[str, Any]:
        return {
            "id": self.build_id,
            "host": self.host,
            "result": self.outcome,
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
    prefix = f"{destination.registry}/{destination.repository}@"
    for item in attrs.get("RepoDigests") or []:
        if isinstance(item, str) and item.startswith(prefix):
            return item[len(prefix) :]
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
    cancelled: Callable[[], bool] = lambda: False,
    clock: Callable[[], float] = time.monotonic,
) -> PushResult:
    """Tag ``local_repo:<tag>`` as ``destination:<tag>`` for each tag of ``build`` and push."""
    from docker.errors import APIError, DockerException, ImageNotFound

    started = clock()
    target = f"{destination.registry}/{destination.repository}"

    def result(outcome: str, message: str = "", **kw: Any) -> PushResult:
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
            NOT_BUILT, f"{source} is not on {host}; run toolkit build for {build.id} first"
        )
    except (APIError, DockerException, OSError) as exc:
        return result(FAILED, f"{host}: {describe_error(exc)}")
    known = _repo_digest(attrs, destination)
    if known is not None:
        on_progress("checking the registry")
        try:
            current = {t: registry.manifest_digest(destination.repository, t) for t in build.tags}
        except RegistryError as exc:
            return result(FAILED, exc.one_line())
        if set(current.values()) == {known}:
            return result(UNCHANGED, tags=build.tags, digest=known)
    auth = auth_config(credential, destination.registry)
    progress = _Progress()
    digests: dict[str, str] = {}
    try:
        for tag in build.tags:
            if cancelled():
                return result(CANCELLED, "interrupted before the push finished")
            docker.api.tag(attrs["Id"], target, tag)
            progress = _Progress()
            stream = docker.api.push(target, tag=tag, stream=True, decode=True, auth_config=auth)
            for event in stream:
                progress.feed(event)
                if event.get("id") and progress.layers:
                    on_progress(f"{tag}: {progress.done()}/{len(progress.layers)} layers")
                if progress.error is not None or cancelled():
                    break
            if progress.error is not None:
                return result(FAILED, f"push of {target}:{tag} from {host}: {progress.error}")
            if progress.digest is None:
                return result(FAILED, f"push of {target}:{tag} from {host} reported no digest")
            digests[tag] = progress.digest
    except (APIError, DockerException, OSError) as exc:
        return result(FAILED, f"push of {target} from {host}: {describe_error(exc)}")
    if len(set(digests.values())) != 1:
        return result(FAILED, f"the tags of {build.id} were pushed as different digests")
    (digest,) = set(digests.values())
    on_progress("reading the tags back")
    for tag in build.tags:
        try:
            served = registry.manifest_digest(destination.repository, tag)
        except RegistryError as exc:
            return result(FAILED, exc.one_line())
        if served != digest:
            return result(
                FAILED,
                f"registry {destination.registry}, repository {destination.repository}, tag "
                f"{tag}: serves {served or 'nothing'} after the engine pushed {digest}",
            )
    return result(
        PUSHED,
        tags=build.tags,
        digest=digest,
        layers=len(progress.layers),
        foreign_skipped=progress.foreign(),
    )
