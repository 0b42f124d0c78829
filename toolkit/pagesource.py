"""Image-info pages from a registry: manifests, configs and blob headers read into the page model.

For each tag: its manifest (a list, or one image), each image manifest of a list, each image's
config blob, and the headers of each layer blob (``Last-Modified``); for a foreign layer (a
Windows base layer before 2023) the headers come from a HEAD of its first URL instead. The
requests run concurrently on a bounded pool; the main thread alone turns answers into the model
and decides what to ask next, so a worker never waits for another and a failure stops the rest.

The client is anything with the three methods of :class:`RegistryReader` (``RegistryClient`` of
toolkit/registry.py); tests hand in the real client against the suite's real registry.

How a config's history becomes the page's Dockerfile block is :func:`history_instruction` and
:func:`parse_rfc3339` (facts in the module docstring of toolkit/imagepage.py and in REFERENCE.md).
"""

from __future__ import annotations

import hashlib
import json
import queue
import re
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, wait
from dataclasses import dataclass, field
from datetime import datetime
from email.utils import parsedate_to_datetime
from typing import Any, Protocol
from urllib.parse import urlsplit

import requests

from toolkit.errors import ConfigError, RegistryError, describe_exception
from toolkit.imagepage import (
    LIST_TYPES,
    HistoryEntry,
    Layer,
    Page,
    PageImage,
    Platform,
)
from toolkit.redact import redact_url
from toolkit.references import Reference

IMAGE_TYPES = (
    "application/vnd.docker.distribution.manifest.v2+json",
    "application/vnd.oci.image.manifest.v1+json",
)
FOREIGN_LAYER_TYPES = (
    "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
    "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
)
# The shell the classic builder records when the image sets none (Linux). Windows images of the
# official kind always set SHELL, and the pages strip only this one and the image's own.
DEFAULT_SHELL = ("/bin/sh", "-c")
RFC3339_RE = re.compile(
    r"\d{4}-\d\d-\d\d[Tt ]\d\d:\d\d:\d\d(?P<fraction>\.\d+)?(?P<zone>[Zz]|[+-]\d\d:\d\d)"
)


class Fetched(Protocol):
    """A manifest as the registry answered it."""

    @property
    def media_type(self) -> str: ...

    @property
    def digest(self) -> str: ...

    @property
    def body(self) -> bytes: ...

    def json(self) -> Any: ...


class RegistryReader(Protocol):
    """What reading a page needs of a registry client (toolkit.registry.RegistryClient)."""

    def get_manifest(self, repository: str, reference: str) -> Fetched: ...

    def get_blob(self, repository: str, digest: str) -> bytes: ...

    def blob_headers(self, repository: str, digest: str) -> Mapping[str, str]: ...


# HEAD of a foreign layer's URL: its response headers, or a RegistryError naming the URL.
UrlHeaders = Callable[[str], Mapping[str, str]]


def url_headers(session: requests.Session, timeout: float = 30.0) -> UrlHeaders:
    """HEAD a foreign layer's URL (redirects followed) with ``session``.

    The session should not trust the environment (``trust_env = False``): a URL comes from a
    manifest, and ~/.netrc credentials must not be sent wherever a manifest points.
    """

    def head(url: str) -> Mapping[str, str]:
        shown = redact_url(url)
        if urlsplit(url).scheme not in ("http", "https"):
            raise RegistryError(f"foreign layer URL {shown} is not http(s)")
        try:
            response = session.head(url, allow_redirects=True, timeout=timeout)
        except requests.RequestException as exc:
            raise RegistryError(
                f"foreign layer URL {shown}: {describe_exception(exc)}",
                hint="the layer's host is unreachable; check the network",
            ) from None
        with response:
            if response.status_code >= 400:
                raise RegistryError(
                    f"foreign layer URL {shown}: HEAD answered "
                    f"{response.status_code} {response.reason}",
                    hint="the layer is not where its manifest says",
                )
            return dict(response.headers)

    return head


def page_name(ref: Reference) -> str:
    """The name a page shows and pulls by: ``127.0.0.1:5000/python`` (Docker Hub's stay short)."""
    if ref.registry in ("docker.io", "registry-1.docker.io", "index.docker.io"):
        return ref.repository.removeprefix("library/")
    return f"{ref.registry}/{ref.repository}"


def _where(ref: Reference) -> str:
    return f"{page_name(ref)}:{ref.tag}"


# --- pure conversions --------------------------------------------------------------------------


def parse_rfc3339(text: str) -> datetime:
    """An image config's ``created`` (RFC 3339; Windows writes 7 fractional digits)."""
    match = RFC3339_RE.fullmatch(text)
    if match is None:
        raise ValueError(f"not an RFC 3339 time: {text!r}")
    # fromisoformat (3.11) takes at most 6 fractional digits: microseconds, the rest dropped.
    fraction = (match.group("fraction") or "")[:7]
    plain = text[: match.start("fraction") if match.group("fraction") else match.start("zone")]
    zone = match.group("zone").upper().replace("Z", "+00:00")
    return datetime.fromisoformat(plain.replace("t", "T").replace(" ", "T") + fraction + zone)


def history_instruction(created_by: str, shell: Sequence[str] | None) -> str:
    """A history entry's ``created_by`` as the page's Dockerfile block shows it.

    The classic builder records ``<shell words> <script>`` for RUN and
    ``<shell words> #(nop)  <INSTRUCTION ...>`` for the rest; BuildKit records ``RUN ...`` or
    the instruction itself, and ``|N K=V ... <shell> ...`` for a RUN with build args. The page
    drops a leading ``RUN `` (BuildKit), turns the build args into a ``# ARGS: K=V ...`` line,
    drops the shell (``/bin/sh -c`` or the image's SHELL), then ``#(nop)`` and its spaces; what
    is left gets ``RUN `` unless it starts with an all-caps word (an instruction), so a Windows
    base image's ``Apply image 1809-RTM-amd64`` reads ``RUN Apply image 1809-RTM-amd64``.
    """
    shells = [" ".join(DEFAULT_SHELL) + " "]
    if shell:
        shells.append(" ".join(shell) + " ")
    shell_re = "|".join(re.escape(s) for s in shells)
    text = created_by.removeprefix("RUN ")
    prefix: list[str] = []
    args = re.match(rf"\|\d+ (.*?) (?=(?:{shell_re}))", text)
    if args is not None:
        prefix.append(f"# ARGS: {args.group(1)}")
        text = text[args.end() :]
    elif text.startswith("|"):
        return "# unable to parse image command string further:\n" + text
    text = re.sub(rf"\A(?:{shell_re})", "", text, count=1)
    nop = re.match(r"#\(nop\) +", text)
    if nop is not None:
        text = text[nop.end() :]
    elif not re.match(r"[A-Z]+ ", text):
        text = "RUN " + text
    return "\n".join([*prefix, text])


def _fail(
    where: str, what: str, hint: str = "the image in the registry is malformed"
) -> RegistryError:
    return RegistryError(f"{where}: {what}", hint=hint)


def _object(value: Any, where: str, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise _fail(where, f"{what} is not a JSON object")
    return value


def _strings(value: Any, where: str, what: str) -> tuple[str, ...] | None:
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise _fail(where, f"{what} is not a list of strings")
    return tuple(value)


def _optional_str(value: Any, where: str, what: str) -> str | None:
    if value is None or isinstance(value, str):
        return value
    raise _fail(where, f"{what} is not a string")


def _digest_of(value: Any, where: str, what: str) -> str:
    if not isinstance(value, str) or not re.fullmatch(r"sha256:[0-9a-f]{64}", value):
        raise _fail(where, f"{what} is not a sha256 digest")
    return value


def platform_of(raw: Any, where: str) -> Platform:
    """A manifest list entry's ``platform``, or the top level of an image config."""
    data = _object(raw, where, "the platform")
    os_name = _optional_str(data.get("os"), where, "platform 'os'") or "linux"
    arch = _optional_str(data.get("architecture"), where, "platform 'architecture'") or "amd64"
    return Platform(
        os=os_name,
        architecture=arch,
        os_version=_optional_str(data.get("os.version"), where, "'os.version'"),
        os_features=_strings(data.get("os.features"), where, "'os.features'") or (),
        variant=_optional_str(data.get("variant"), where, "platform 'variant'"),
        features=_strings(data.get("features"), where, "platform 'features'") or (),
    )


def last_modified(headers: Mapping[str, str], where: str) -> datetime | None:
    """The ``Last-Modified`` header as a time, None when there is none."""
    value = next((v for k, v in headers.items() if k.lower() == "last-modified"), None)
    if value is None:
        return None
    try:
        moment = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        moment = None
    if moment is None or moment.tzinfo is None:
        raise _fail(where, f"Last-Modified {value[:40]!r} is not an HTTP date", "a server bug")
    return moment


def image_from(
    *,
    manifest: Any,
    config: Any,
    platform: Platform | None,
    digest: str,
    media_type: str,
    headers: Mapping[str, datetime | None],
    where: str,
) -> PageImage:
    """One platform's image from its manifest, its config and its layers' Last-Modified.

    ``platform`` is the list entry's (None for a tag that is one image: the config's then).
    ``headers`` maps each layer digest to its Last-Modified (None: no header).
    """
    body = _object(manifest, where, "the manifest")
    cfg = _object(config, where, "the image config")
    layers_raw = body.get("layers")
    if not isinstance(layers_raw, list):
        raise _fail(where, "the manifest has no 'layers' list")
    layers = []
    for index, raw in enumerate(layers_raw):
        item = _object(raw, where, f"layer {index}")
        layer_digest = _digest_of(item.get("digest"), where, f"layer {index} digest")
        size = item.get("size")
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise _fail(where, f"layer {index} has no size")
        mime = _optional_str(item.get("mediaType"), where, f"layer {index} mediaType")
        layers.append(
            Layer(
                digest=layer_digest,
                media_type=mime or "",
                size=size,
                last_modified=headers.get(layer_digest),
            )
        )
    inner = _object(cfg.get("config") or {}, where, "config 'config'")
    shell = _strings(inner.get("Shell"), where, "config.Shell")
    history_raw = cfg.get("history") or []
    if not isinstance(history_raw, list):
        raise _fail(where, "config 'history' is not a list")
    history = []
    with_layer = 0
    for index, raw in enumerate(history_raw):
        entry = _object(raw, where, f"history entry {index}")
        created = entry.get("created")
        try:
            # The page shows whole seconds; the model holds what the page shows.
            moment = (
                parse_rfc3339(created).replace(microsecond=0) if isinstance(created, str) else None
            )
        except ValueError:
            moment = None
        if moment is None:
            raise _fail(where, f"history entry {index} has no RFC 3339 'created' ({created!r:.40})")
        created_by = _optional_str(entry.get("created_by"), where, f"history {index} created_by")
        history.append(
            HistoryEntry(created=moment, instruction=history_instruction(created_by or "", shell))
        )
        if not entry.get("empty_layer"):
            with_layer += 1
    if with_layer > len(layers):
        raise _fail(
            where,
            f"the history has {with_layer} entries with a layer but the manifest has "
            f"{len(layers)} layers",
        )
    rootfs = _object(cfg.get("rootfs") or {}, where, "config 'rootfs'")
    diff_ids = rootfs.get("diff_ids")
    if isinstance(diff_ids, list) and len(diff_ids) != len(layers):
        raise _fail(
            where, f"the config lists {len(diff_ids)} layers but the manifest {len(layers)}"
        )
    config_ref = _object(body.get("config"), where, "the manifest's 'config'")
    return PageImage(
        platform=platform if platform is not None else platform_of(cfg, where),
        digest=digest,
        media_type=media_type,
        docker_version=_optional_str(cfg.get("docker_version"), where, "docker_version"),
        image_id=_digest_of(config_ref.get("digest"), where, "the config digest"),
        entrypoint=_strings(inner.get("Entrypoint"), where, "config.Entrypoint"),
        cmd=_strings(inner.get("Cmd"), where, "config.Cmd"),
        shell=shell,
        history=tuple(history),
        layers=tuple(layers),
    )


# --- reading concurrently ----------------------------------------------------------------------


def _check_digest(body: bytes, digest: str, where: str, what: str) -> None:
    if "sha256:" + hashlib.sha256(body).hexdigest() != digest:
        raise _fail(where, f"{what} does not match its digest {digest}", "the registry is corrupt")


def _content_digest(fetched: Fetched, where: str) -> str:
    """The manifest's digest, computed; the registry's Docker-Content-Digest must agree."""
    digest = "sha256:" + hashlib.sha256(fetched.body).hexdigest()
    if fetched.digest and fetched.digest != digest:
        raise _fail(
            where, f"the registry says {fetched.digest} for content whose digest is {digest}"
        )
    return digest


def _json(fetched: Fetched, where: str) -> Any:
    try:
        return fetched.json()
    except ValueError:
        raise _fail(where, "the manifest is not JSON", "is this a registry?") from None


@dataclass
class _ImageState:
    target: Reference
    platform: Platform | None
    digest: str
    media_type: str = ""
    manifest: Any = None
    config: Any = None
    where: str = ""


@dataclass
class _TagState:
    target: Reference
    digest: str = ""
    media_type: str = ""
    images: list[_ImageState] = field(default_factory=list)


_Work = tuple[Future[Any], Callable[..., Any], tuple[Any, ...]]


class _DaemonPool:
    """``jobs`` daemon threads running submitted calls.

    Not ``ThreadPoolExecutor``: its threads are joined when the interpreter exits, so after
    Ctrl-C the process would wait for every request in flight to time out (30 s by default
    against a registry that stalls). Daemon threads are simply dropped at exit.
    """

    def __init__(self, jobs: int) -> None:
        self._work: queue.SimpleQueue[_Work | None] = queue.SimpleQueue()
        self._threads = [
            threading.Thread(target=self._serve, name=f"report-{n}", daemon=True)
            for n in range(max(1, jobs))
        ]
        for thread in self._threads:
            thread.start()

    def _serve(self) -> None:
        while (item := self._work.get()) is not None:
            future, call, args = item
            if not future.set_running_or_notify_cancel():
                continue
            try:
                future.set_result(call(*args))
            except BaseException as exc:  # handed to the main thread, which re-raises it
                future.set_exception(exc)

    def submit(self, call: Callable[..., Any], *args: Any) -> Future[Any]:
        future: Future[Any] = Future()
        self._work.put((future, call, args))
        return future

    def shutdown(self, pending: Iterable[Future[Any]]) -> None:
        """Cancel what has not started; let the threads end after their current call."""
        for future in pending:
            future.cancel()
        for _thread in self._threads:
            self._work.put(None)


class _Reader:
    """Requests on a bounded pool; the answers are handled here, on the calling thread."""

    def __init__(
        self, clients: Callable[[str], RegistryReader], url_headers: UrlHeaders, jobs: int
    ) -> None:
        self.clients = clients
        self.url_headers = url_headers
        self.pool = _DaemonPool(jobs)
        self.pending: dict[Future[Any], Callable[[Any], None]] = {}
        self.modified: dict[tuple[str, str, str], datetime | None] = {}
        self.asked: set[tuple[str, str, str]] = set()

    def ask(self, then: Callable[[Any], None], call: Callable[..., Any], *args: Any) -> None:
        self.pending[self.pool.submit(call, *args)] = then

    def run(self) -> None:
        try:
            while self.pending:
                done, _ = wait(self.pending, return_when=FIRST_COMPLETED)
                for future in done:
                    self.pending.pop(future)(future.result())
        finally:
            # After a failure or Ctrl-C nothing more starts, and the run returns at once:
            # requests in flight end at their own timeout and what they bring back is unused.
            self.pool.shutdown(self.pending)

    # tag -> manifest (list or image)
    def tag(self, state: _TagState) -> None:
        target = state.target
        client = self.clients(target.registry)
        reference = target.digest or target.tag

        def got(fetched: Fetched) -> None:
            state.digest = _content_digest(fetched, _where(target))
            state.media_type = fetched.media_type
            if target.digest is not None:
                _check_digest(fetched.body, target.digest, _where(target), "the manifest")
            if state.media_type not in LIST_TYPES + IMAGE_TYPES:
                raise _fail(
                    _where(target),
                    f"the registry answered {state.media_type[:60] or 'no media type'!r}, "
                    "not a manifest list or image manifest",
                    "is it a Docker or OCI registry?",
                )
            body = _json(fetched, _where(target))
            if state.media_type in LIST_TYPES:
                self.entries(state, body)
            else:
                image = _ImageState(target, None, state.digest, state.media_type, body)
                image.where = f"{_where(target)}@{state.digest}"
                state.images.append(image)
                self.image(image)

        self.ask(got, client.get_manifest, target.repository, reference)

    def entries(self, state: _TagState, body: Any) -> None:
        target = state.target
        manifests = _object(body, _where(target), "the manifest list").get("manifests")
        if not isinstance(manifests, list) or not manifests:
            raise _fail(_where(target), "the manifest list has no 'manifests'")
        client = self.clients(target.registry)
        for index, raw in enumerate(manifests):
            entry = _object(raw, _where(target), f"manifest list entry {index}")
            digest = _digest_of(entry.get("digest"), _where(target), f"entry {index} digest")
            where = f"{_where(target)}@{digest}"
            image = _ImageState(target, platform_of(entry.get("platform") or {}, where), digest)
            image.where = where
            state.images.append(image)

            def got(fetched: Fetched, image: _ImageState = image) -> None:
                _check_digest(fetched.body, image.digest, image.where, "the image manifest")
                if fetched.media_type not in IMAGE_TYPES:
                    raise _fail(
                        image.where, f"entry is a {fetched.media_type[:60]!r}, not an image"
                    )
                image.media_type = fetched.media_type
                image.manifest = _json(fetched, image.where)
                self.image(image)

            self.ask(got, client.get_manifest, target.repository, digest)

    # image manifest -> config and layer headers
    def image(self, image: _ImageState) -> None:
        target = image.target
        client = self.clients(target.registry)
        body = _object(image.manifest, image.where, "the manifest")
        config = _object(body.get("config"), image.where, "the manifest's 'config'")
        config_digest = _digest_of(config.get("digest"), image.where, "the config digest")

        def got_config(blob: bytes) -> None:
            _check_digest(blob, config_digest, image.where, f"config {config_digest}")
            try:
                image.config = json.loads(blob)
            except ValueError:
                raise _fail(image.where, f"config {config_digest} is not JSON") from None

        self.ask(got_config, client.get_blob, target.repository, config_digest)
        for index, raw in enumerate(body.get("layers") or []):
            layer = _object(raw, image.where, f"layer {index}")
            digest = _digest_of(layer.get("digest"), image.where, f"layer {index} digest")
            urls = layer.get("urls")
            if layer.get("mediaType") in FOREIGN_LAYER_TYPES:
                if isinstance(urls, list) and urls and isinstance(urls[0], str):
                    key = ("url", urls[0], digest)
                    self.header(key, image.where, self.url_headers, urls[0])
                else:
                    self.modified[("url", "", digest)] = None
            else:
                key = (target.registry, target.repository, digest)
                self.header(key, image.where, client.blob_headers, target.repository, digest)

    def header(
        self, key: tuple[str, str, str], where: str, call: Callable[..., Any], *args: Any
    ) -> None:
        if key in self.asked:
            return
        self.asked.add(key)
        where = f"{where}: layer {key[2]}"

        def got(headers: Mapping[str, str]) -> None:
            self.modified[key] = last_modified(headers, where)

        self.ask(got, call, *args)

    def layer_times(self, image: _ImageState) -> dict[str, datetime | None]:
        times: dict[str, datetime | None] = {}
        target = image.target
        for raw in image.manifest.get("layers") or []:
            digest = raw["digest"]
            urls = raw.get("urls")
            if raw.get("mediaType") in FOREIGN_LAYER_TYPES:
                first = urls[0] if isinstance(urls, list) and urls else ""
                times[digest] = self.modified.get(("url", first, digest))
            else:
                times[digest] = self.modified.get((target.registry, target.repository, digest))
        return times


def read_pages(
    targets: Sequence[Reference],
    clients: Callable[[str], RegistryReader],
    *,
    url_headers: UrlHeaders,
    jobs: int = 8,
) -> list[Page]:
    """The page of each target, in order. ``clients(registry)`` gives that registry's client."""
    for target in targets:
        if target.tag is None:
            raise ConfigError(f"{target}: a page describes a tag", hint=f"name one: {target}:TAG")
    reader = _Reader(clients, url_headers, jobs)
    states = [_TagState(target) for target in targets]
    for state in states:
        reader.tag(state)
    reader.run()
    pages = []
    for state in states:
        images = tuple(
            image_from(
                manifest=image.manifest,
                config=image.config,
                platform=image.platform,
                digest=image.digest,
                media_type=image.media_type,
                headers=reader.layer_times(image),
                where=image.where,
            )
            for image in state.images
        )
        pages.append(
            Page(
                name=page_name(state.target),
                tag=state.target.tag or "",
                digest=state.digest,
                media_type=state.media_type,
                images=images,
            )
        )
    return pages
