"""Shared tags as manifest lists over the per-release images already in a registry (issue 9).

``3.8-rc-windowsservercore`` is a list whose entries are the images tagged
``3.8-rc-windowsservercore-1809``, ``-1803`` and ``-ltsc2016``, each with the platform of its own
config blob (``os.version`` is the image's Windows build and UBR, set by its base image), so an
engine on a Windows host pulls the entry that matches its build.

Two steps, both plain values in and out:

* :func:`plan_shared_tags` (no I/O): which per-release tag backs each entry of each shared tag.
* :func:`publish_lists`: resolves every per-release tag once (its manifest, then its config blob,
  cached by digest), reads each shared tag's current list, and writes it only when the wanted
  entries differ. A list is written only after every entry it names has been read back from the
  registry, so no list ever points at a missing manifest. On a no-op run the cost is one manifest
  and one config read per per-release image plus one read per shared tag.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from toolkit.errors import RegistryError, RegistryNotFoundError
from toolkit.matrix import Build
from toolkit.mediatypes import (
    IMAGE_MANIFESTS,
    INDEX_TYPES,
    MANIFEST_LIST_V2,
    OCI_INDEX,
    OCI_MANIFEST,
    Fetched,
)
from toolkit.registry import RegistryClient

CREATED = "created"
UPDATED = "updated"
UNCHANGED = "unchanged"
WOULD_CREATE = "would-create"
WOULD_UPDATE = "would-update"
FAILED = "failed"
OUTCOMES = (CREATED, UPDATED, UNCHANGED, WOULD_CREATE, WOULD_UPDATE, FAILED)


@dataclass(frozen=True)
class Member:
    """One per-release image a shared tag should point at."""

    build_id: str
    release: str
    tag: str


@dataclass(frozen=True)
class SharedTag:
    tag: str
    members: tuple[Member, ...]


@dataclass(frozen=True)
class Platform:
    architecture: str
    os: str
    os_version: str | None = None
    variant: str | None = None

    def record(self) -> dict[str, str]:
        out = {"architecture": self.architecture, "os": self.os}
        if self.os_version:
            out["os.version"] = self.os_version
        if self.variant:
            out["variant"] = self.variant
        return out

    def __str__(self) -> str:
        text = f"{self.os}/{self.architecture}"
        return f"{text} {self.os_version}" if self.os_version else text


@dataclass(frozen=True)
class Entry:
    """A list entry: the per-release image's manifest and its platform."""

    tag: str
    media_type: str
    digest: str
    size: int
    platform: Platform

    def record(self) -> dict[str, Any]:
        return {
            "mediaType": self.media_type,
            "size": self.size,
            "digest": self.digest,
            "platform": self.platform.record(),
        }


@dataclass(frozen=True)
class ListResult:
    """What happened to one shared tag."""

    tag: str
    result: str
    digest: str | None
    entries: tuple[Entry, ...]
    missing: tuple[str, ...]
    message: str = ""

    def record(self) -> dict[str, Any]:
        return {
            "tag": self.tag,
            "result": self.result,
            "digest": self.digest,
            "entries": [{"tag": e.tag, **e.record()} for e in self.entries],
            "missing": list(self.missing),
            "message": self.message,
        }


@dataclass(frozen=True)
class ListRun:
    """What ``toolkit manifest`` did: one result per shared tag, and the requests it took."""

    repository: str
    results: tuple[ListResult, ...]
    requests: int
    dry_run: bool = False

    def failure(self) -> RegistryError | None:
        failed = [r.tag for r in self.results if r.result == FAILED]
        if not failed:
            return None
        return RegistryError(
            f"{len(failed)} of {len(self.results)} shared tag(s) of {self.repository} not "
            f"published: {', '.join(failed)}"
        )

    def record(self) -> dict[str, Any]:
        return {
            "ok": self.failure() is None,
            "repository": self.repository,
            "dry_run": self.dry_run,
            "requests": self.requests,
            "results": [r.record() for r in self.results],
        }


def plan_shared_tags(
    every: Sequence[Build], selected: Sequence[Build] | None = None
) -> list[SharedTag]:
    """The shared tags of ``selected`` (default: all), in first-seen order.

    Members always come from the whole matrix ``every``: selecting ``3.8-rc-*-1809`` publishes
    the 3.8-rc shared tags with all their releases, never a list cut down to 1809. Members are
    in ascending Windows build, each backed by its build's first (most specific) tag.
    """
    members: dict[str, list[tuple[int, Member]]] = {}
    for build in every:
        member = Member(build.id, build.release.key, build.tags[0])
        for tag in build.shared_tags:
            members.setdefault(tag, []).append((build.release.build, member))
    wanted = {t for b in (every if selected is None else selected) for t in b.shared_tags}
    return [
        SharedTag(tag, tuple(m for _, m in sorted(found, key=lambda x: x[0])))
        for tag, found in members.items()
        if tag in wanted
    ]


def list_document(entries: Sequence[Entry]) -> tuple[str, bytes]:
    """(media type, bytes) of the list: an OCI index when any entry is OCI, else a Docker list."""
    media_type = (
        OCI_INDEX if any(e.media_type == OCI_MANIFEST for e in entries) else MANIFEST_LIST_V2
    )
    document = {
        "schemaVersion": 2,
        "mediaType": media_type,
        "manifests": [e.record() for e in entries],
    }
    return media_type, (json.dumps(document, indent=3) + "\n").encode()


def _entry_key(record: Any) -> tuple[str, str, int, str]:
    platform = record.get("platform") if isinstance(record, dict) else None
    return (
        str(record.get("mediaType")),
        str(record.get("digest")),
        int(record.get("size") or 0),
        json.dumps(platform, sort_keys=True),
    )


def same_entries(current: Any, media_type: str, entries: Sequence[Entry]) -> bool:
    """Whether the registry's list ``current`` has exactly ``entries`` (any order)."""
    if not isinstance(current, dict) or current.get("mediaType", media_type) != media_type:
        return False
    listed = current.get("manifests")
    if not isinstance(listed, list) or not all(isinstance(x, dict) for x in listed):
        return False
    return sorted(_entry_key(x) for x in listed) == sorted(_entry_key(e.record()) for e in entries)


class EntryError(RegistryError):
    """A per-release image that cannot be an entry (a list itself, no config, no platform).

    It fails the shared tags that need it; any other registry error ends the run.
    """


class _Resolver:
    """Per-release tag -> Entry (or None when absent), each tag and config read once."""

    def __init__(self, client: RegistryClient, repository: str) -> None:
        self._client = client
        self._repository = repository
        self._entries: dict[str, Entry | EntryError | None] = {}
        self._configs: dict[str, Platform] = {}

    def warm(self, tag: str) -> None:
        with contextlib.suppress(EntryError):
            self.entry(tag)

    def entry(self, tag: str) -> Entry | None:
        if tag not in self._entries:
            try:
                self._entries[tag] = self._resolve(tag)
            except EntryError as exc:
                self._entries[tag] = exc
        found = self._entries[tag]
        if isinstance(found, EntryError):
            raise found
        return found

    def _resolve(self, tag: str) -> Entry | None:
        try:
            fetched = self._client.get_manifest(self._repository, tag)
        except RegistryNotFoundError:
            return None
        where = f"registry {self._client.registry}, repository {self._repository}, tag {tag}"
        if fetched.media_type in INDEX_TYPES:
            raise EntryError(
                f"{where}: is a manifest list, not one image",
                hint="push the per-release image again (toolkit push)",
            )
        if fetched.media_type not in IMAGE_MANIFESTS:
            raise EntryError(f"{where}: unsupported manifest type {fetched.media_type!r}")
        try:
            config = fetched.json()["config"]
            config_digest = str(config["digest"])
        except (ValueError, KeyError, TypeError):
            raise EntryError(f"{where}: the manifest names no config blob") from None
        if config_digest not in self._configs:
            self._configs[config_digest] = _platform(
                self._client.get_blob(self._repository, config_digest), where
            )
        return Entry(
            tag=tag,
            media_type=fetched.media_type,
            digest=fetched.digest,
            size=len(fetched.body),
            platform=self._configs[config_digest],
        )


def _current(client: RegistryClient, repository: str, tag: str) -> Fetched | None:
    try:
        return client.get_manifest(repository, tag)
    except RegistryNotFoundError:
        return None


def _platform(blob: bytes, where: str) -> Platform:
    try:
        config = json.loads(blob)
        os_name, arch = config["os"], config["architecture"]
    except (ValueError, KeyError, TypeError):
        raise EntryError(f"{where}: the image config has no os/architecture") from None
    if not isinstance(os_name, str) or not isinstance(arch, str) or not os_name or not arch:
        raise EntryError(f"{where}: the image config has no os/architecture")
    version = config.get("os.version")
    variant = config.get("variant")
    return Platform(
        architecture=arch,
        os=os_name,
        os_version=version if isinstance(version, str) and version else None,
        variant=variant if isinstance(variant, str) and variant else None,
    )


def publish_lists(
    client: RegistryClient,
    repository: str,
    shared: Sequence[SharedTag],
    *,
    allow_partial: bool = False,
    dry_run: bool = False,
    on_result: Callable[[ListResult], None] | None = None,
    jobs: int = 8,
) -> list[ListResult]:
    """Make each shared tag's list in ``repository`` equal its members' images.

    A shared tag with absent members fails (nothing written for it) unless ``allow_partial``,
    which publishes the present ones and names the absent. A problem with one image
    (:class:`EntryError`) fails the tags that need it; any other registry error (refused
    credentials, a registry that stops answering) ends the run: the lists written so far are
    complete, and a re-run picks up where it stopped.
    """
    resolver = _Resolver(client, repository)
    tags = [s.tag for s in shared]
    # The reads are independent: images and current lists are fetched ``jobs`` at a time
    # (bench/publish.py: a no-op over 28 shared tags is mostly waiting on these round trips).
    # The writes stay in plan order, one at a time.
    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        unique = list(dict.fromkeys(m.tag for s in shared for m in s.members))
        list(pool.map(resolver.warm, unique))
        currents = dict(
            zip(tags, pool.map(lambda t: _current(client, repository, t), tags), strict=True)
        )
    results: list[ListResult] = []
    for item in shared:
        try:
            result = _publish_one(
                client, repository, item, resolver, currents[item.tag], allow_partial, dry_run
            )
        except EntryError as exc:
            result = ListResult(item.tag, FAILED, None, (), (), exc.one_line())
        results.append(result)
        if on_result is not None:
            on_result(result)
    return results


def _publish_one(
    client: RegistryClient,
    repository: str,
    item: SharedTag,
    resolver: _Resolver,
    current: Fetched | None,
    allow_partial: bool,
    dry_run: bool,
) -> ListResult:
    found = [(m, resolver.entry(m.tag)) for m in item.members]
    entries = tuple(e for _, e in found if e is not None)
    missing = tuple(m.tag for m, e in found if e is None)
    where = f"registry {client.registry}, repository {repository}, tag {item.tag}"
    if missing and (not allow_partial or not entries):
        absent = ", ".join(missing)
        hint = "push them first with toolkit push"
        if entries:
            hint += ", or pass --allow-partial to publish the others"
        return ListResult(
            item.tag,
            FAILED,
            None,
            entries,
            missing,
            f"{where}: not in the registry: {absent} ({hint})",
        )
    duplicates = {
        str(e.platform) for e in entries if sum(x.platform == e.platform for x in entries) > 1
    }
    if duplicates:
        return ListResult(
            item.tag,
            FAILED,
            None,
            entries,
            missing,
            f"{where}: two entries share the platform {', '.join(sorted(duplicates))}"
            " (an engine could not choose; check the per-release images' os.version)",
        )
    media_type, body = list_document(entries)
    note = f"absent: {', '.join(missing)}" if missing else ""
    if current is not None:
        try:
            document = current.json()
        except ValueError:
            document = None
        if current.media_type in INDEX_TYPES and same_entries(document, media_type, entries):
            return ListResult(item.tag, UNCHANGED, current.digest, entries, missing, note)
    if dry_run:
        outcome = WOULD_CREATE if current is None else WOULD_UPDATE
        return ListResult(item.tag, outcome, None, entries, missing, note)
    digest = client.put_manifest(repository, item.tag, body, media_type)
    outcome = CREATED if current is None else UPDATED
    return ListResult(item.tag, outcome, digest, entries, missing, note)
