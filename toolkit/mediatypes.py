"""The formats of the registry HTTP API v2 the toolkit reads and writes: media types of Docker
and OCI manifests, indexes and layers, a manifest as served, and content digests."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

MANIFEST_V2 = "application/vnd.docker.distribution.manifest.v2+json"
MANIFEST_LIST_V2 = "application/vnd.docker.distribution.manifest.list.v2+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
IMAGE_MANIFESTS = (MANIFEST_V2, OCI_MANIFEST)
INDEX_TYPES = (MANIFEST_LIST_V2, OCI_INDEX)
FOREIGN_LAYER = "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip"
ACCEPT_MANIFESTS = ", ".join((MANIFEST_LIST_V2, OCI_INDEX, MANIFEST_V2, OCI_MANIFEST))


@dataclass(frozen=True)
class Fetched:
    """A manifest as served: its media type, the sha256 of its bytes, the bytes."""

    media_type: str
    digest: str
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


def sha256_digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()
