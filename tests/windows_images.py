"""Windows-shaped image manifests and configs, as a Windows engine and registry hold them.

From a page's image (what the page shows) this makes back the manifest and the config a Windows
Docker host would have pushed: ``created`` with 7 fractional digits, each ``created_by`` as the
classic builder records it (REFERENCE.md: the shell words and the script for a RUN; the shell
in effect, ``#(nop) `` and the instruction for the rest; the base image's own lines without a
shell), ``os.version`` at the config's top level, foreign base layers with ``urls``. Used to
check the page rendering on every entry of the published pages, and to put Windows-shaped
images into the test registry through its API.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import datetime
from typing import Any, Protocol

from toolkit.imagepage import Page, PageImage
from toolkit.instructions import BASE_IMAGE_LINE

WINDOWS_DEFAULT_SHELL = ("cmd", "/S", "/C")
MANIFEST_V2 = "application/vnd.docker.distribution.manifest.v2+json"
MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
CONFIG_TYPE = "application/vnd.docker.container.image.v1+json"
FOREIGN = "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip"


def rfc3339_windows(moment: datetime, index: int) -> str:
    """``2019-10-09T17:24:35.9999999Z``: 7 fractional digits, varied so flooring is tested."""
    fraction = (index * 1234567 + 9999999) % 10_000_000
    return moment.strftime("%Y-%m-%dT%H:%M:%S") + f".{fraction:07d}Z"


def recorded(instruction: str, shell: Sequence[str]) -> str:
    """``created_by`` as the classic builder on Windows records ``instruction``."""
    if BASE_IMAGE_LINE.fullmatch(instruction):
        return instruction.removeprefix("RUN ")
    words = " ".join(shell)
    if instruction.startswith("RUN "):
        return f"{words} {instruction.removeprefix('RUN ')}"
    return " ".join([*shell, "#(nop) ", instruction])


def config_for(image: PageImage, diff_ids: Sequence[str] | None = None) -> dict[str, Any]:
    """The image config a Windows host would have written for ``image``."""
    shell: Sequence[str] = WINDOWS_DEFAULT_SHELL
    history = []
    for index, entry in enumerate(image.history):
        if entry.instruction.startswith("SHELL ") and image.shell is not None:
            shell = image.shell  # recorded with the shell it sets
        history.append(
            {
                "created": rfc3339_windows(entry.created, index),
                "created_by": recorded(entry.instruction, shell),
            }
        )
    inner: dict[str, Any] = {"Env": ["PATH=C:\\Windows\\system32;C:\\Windows"]}
    if image.cmd is not None:
        inner["Cmd"] = list(image.cmd)
    if image.entrypoint is not None:
        inner["Entrypoint"] = list(image.entrypoint)
    if image.shell is not None:
        inner["Shell"] = list(image.shell)
    ids = list(diff_ids) if diff_ids is not None else [layer.digest for layer in image.layers]
    config: dict[str, Any] = {
        "architecture": image.platform.architecture,
        "os": image.platform.os,
        "config": inner,
        "created": history[-1]["created"] if history else "2019-10-09T17:29:26.1Z",
        "history": history,
        "rootfs": {"type": "layers", "diff_ids": ids},
    }
    if image.docker_version is not None:
        config["docker_version"] = image.docker_version
    if image.platform.os_version is not None:
        config["os.version"] = image.platform.os_version
    return config


def manifest_for(
    image: PageImage,
    config_digest: str,
    config_size: int,
    foreign_urls: dict[str, str] | None = None,
) -> dict[str, Any]:
    """The image manifest; ``foreign_urls`` maps a foreign layer's digest to its URL."""
    layers = []
    for layer in image.layers:
        item: dict[str, Any] = {
            "mediaType": layer.media_type,
            "size": layer.size,
            "digest": layer.digest,
        }
        if layer.media_type == FOREIGN:
            url = (foreign_urls or {}).get(layer.digest)
            item["urls"] = [url or f"https://go.microsoft.com/fwlink/?linkid={layer.digest[7:15]}"]
        layers.append(item)
    return {
        "schemaVersion": 2,
        "mediaType": MANIFEST_V2,
        "config": {"mediaType": CONFIG_TYPE, "size": config_size, "digest": config_digest},
        "layers": layers,
    }


def canonical(document: Any) -> bytes:
    return json.dumps(document, indent=3).encode("utf-8")


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def manifest_list(entries: Sequence[tuple[bytes, PageImage]]) -> dict[str, Any]:
    """A manifest list over (image manifest bytes, page image) pairs."""
    manifests = []
    for body, image in entries:
        platform: dict[str, Any] = {
            "architecture": image.platform.architecture,
            "os": image.platform.os,
        }
        if image.platform.os_version is not None:
            platform["os.version"] = image.platform.os_version
        manifests.append(
            {
                "mediaType": MANIFEST_V2,
                "size": len(body),
                "digest": sha256(body),
                "platform": platform,
            }
        )
    return {"schemaVersion": 2, "mediaType": MANIFEST_LIST, "manifests": manifests}


class Putter(Protocol):
    """What putting an image into a registry needs (toolkit.registry.RegistryClient)."""

    def put_blob(self, repository: str, data: bytes) -> str: ...

    def put_manifest(
        self, repository: str, reference: str, body: bytes, media_type: str
    ) -> str: ...


def put_windows_page(
    client: Putter,
    *,
    name: str,
    repository: str,
    tag: str,
    page: Page,
    foreign_url: Callable[[str], str],
) -> Page:
    """Put the images of ``page`` into a registry through its API, Windows-shaped.

    Non-foreign layers become small unique blobs (the registry checks they exist); foreign
    layers keep their digest and size and point at ``foreign_url(digest)``. History, Cmd and
    SHELL are the page's. Returns the page the registry should now give for ``tag``: the same
    history and metadata, the new digests and sizes, and no Last-Modified (the caller adds what
    its foreign-layer server answers).
    """
    entries: list[tuple[bytes, PageImage]] = []
    images = []
    for number, image in enumerate(page.images):
        layers = []
        urls = {}
        for index, layer in enumerate(image.layers):
            if layer.media_type == FOREIGN:
                urls[layer.digest] = foreign_url(layer.digest)
                layers.append(replace(layer, last_modified=None))
                continue
            data = f"{repository} {tag} image {number} layer {index}\n".encode() * (index + 1)
            digest = client.put_blob(repository, data)
            layers.append(replace(layer, digest=digest, size=len(data), last_modified=None))
        shaped = replace(image, layers=tuple(layers))
        config = canonical(config_for(shaped))
        config_digest = client.put_blob(repository, config)
        body = canonical(manifest_for(shaped, config_digest, len(config), urls))
        digest = client.put_manifest(repository, sha256(body), body, MANIFEST_V2)
        shaped = replace(shaped, digest=digest, image_id=config_digest, media_type=MANIFEST_V2)
        entries.append((body, shaped))
        images.append(shaped)
    body = canonical(manifest_list(entries))
    digest = client.put_manifest(repository, tag, body, MANIFEST_LIST)
    return Page(name=name, tag=tag, digest=digest, media_type=MANIFEST_LIST, images=tuple(images))
