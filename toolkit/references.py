"""Image references: ``REGISTRY/NAME:TAG``, ``REGISTRY/NAME@sha256:...``, and registry URLs.

Parsing follows the grammar of the distribution project's reference package; a registry part is
required (the toolkit never guesses Docker Hub). Plain HTTP is allowed only to loopback.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import urlsplit

from toolkit.credentials import DOCKER_HUB
from toolkit.errors import ConfigError
from toolkit.hosts import is_loopback
from toolkit.imagenames import HOST as _HOST
from toolkit.imagenames import REPOSITORY_PATH as _REPOSITORY
from toolkit.imagenames import TAG as _TAG

DOCKER_HUB_API = "registry-1.docker.io"

_DIGEST = re.compile(r"sha256:[a-f0-9]{64}")
_SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*)://")


@dataclass(frozen=True)
class Reference:
    """``REGISTRY/NAME:TAG`` or ``REGISTRY/NAME@sha256:...`` (a tag, a digest, both or neither)."""

    registry: str
    repository: str
    tag: str | None = None
    digest: str | None = None

    def __str__(self) -> str:
        text = f"{self.registry}/{self.repository}"
        if self.tag is not None:
            text += f":{self.tag}"
        if self.digest is not None:
            text += f"@{self.digest}"
        return text

    @property
    def reference(self) -> str:
        """What the API calls the reference: the digest when there is one, else the tag."""
        return self.digest or self.tag or "latest"


def split_scheme(text: str) -> tuple[str | None, str]:
    """``https://host/name`` -> ("https", "host/name"); only http and https are known."""
    match = _SCHEME.match(text)
    if match is None:
        return None, text
    scheme = match.group(1).lower()
    if scheme not in ("http", "https"):
        raise ConfigError(
            f"{text!r}: unknown registry scheme {scheme!r}",
            hint="write REGISTRY/NAME, or https://REGISTRY/NAME",
        )
    return scheme, text[match.end() :]


def parse_reference(text: str) -> Reference:
    """Parse ``REGISTRY/NAME[:TAG][@sha256:HEX]``; the registry part is required.

    A first component counts as a registry when it has a dot or a port or is ``localhost``
    (the Docker rule); ``python:3.8`` alone names no registry and is refused.
    """
    shown = repr(text)
    if not text or text != text.strip():
        raise ConfigError(f"{shown} is not an image reference", hint="write REGISTRY/NAME:TAG")
    if "://" in text:
        raise ConfigError(f"{shown}: a reference has no scheme", hint="write REGISTRY/NAME:TAG")
    rest, at, digest = text.partition("@")
    if at and not _DIGEST.fullmatch(digest):
        raise ConfigError(f"{shown}: {digest!r} is not a sha256 digest (sha256:<64 hex digits>)")
    registry, slash, path = rest.partition("/")
    if not slash or not ("." in registry or ":" in registry or registry == "localhost"):
        raise ConfigError(
            f"{shown} names no registry",
            hint="write REGISTRY/NAME, e.g. registry.example.net/python",
        )
    if not _HOST.fullmatch(registry) or _port_out_of_range(registry):
        raise ConfigError(f"{shown}: {registry!r} is not a registry host[:port]")
    tag: str | None = None
    last_slash = path.rfind("/")
    colon = path.rfind(":")
    if colon > last_slash:
        path, tag = path[:colon], path[colon + 1 :]
        if not _TAG.fullmatch(tag):
            raise ConfigError(f"{shown}: {tag!r} is not a valid tag")
    if not _REPOSITORY.fullmatch(path) or len(path) > 255:
        raise ConfigError(
            f"{shown}: {path!r} is not a repository name",
            hint="lowercase letters, digits and . _ - separated by /",
        )
    return Reference(registry.lower(), path, tag, digest or None)


def parse_repository(text: str) -> tuple[str | None, Reference]:
    """``--repo``: an optional scheme, then ``REGISTRY/NAME`` without tag or digest."""
    scheme, rest = split_scheme(text)
    ref = parse_reference(rest.rstrip("/") if scheme else rest)
    if ref.tag is not None or ref.digest is not None:
        raise ConfigError(
            f"{text!r}: --repo takes REGISTRY/NAME without a tag or digest",
            hint=f"use {ref.registry}/{ref.repository}",
        )
    return scheme, ref


def _port_out_of_range(host: str) -> bool:
    _, colon, port = host.rpartition(":")
    return bool(colon) and not host.endswith("]") and port.isdigit() and not 0 < int(port) < 65536


def _hostname(registry: str) -> str:
    return (urlsplit(f"//{registry}").hostname or "").lower()


def base_url(registry: str, scheme: str | None = None) -> str:
    """The API root for ``registry``: https, or http for loopback registries (as Docker does).

    ``scheme="http"`` to anything but loopback is refused: tokens and passwords would cross the
    network in the clear.
    """
    if scheme is None:
        scheme = "http" if is_loopback(_hostname(registry)) else "https"
    if scheme == "http" and not is_loopback(_hostname(registry)):
        raise ConfigError(
            f"plain HTTP to registry {registry} refused (only loopback registries may use it)",
            hint=f"use https://{registry}",
        )
    host = DOCKER_HUB_API if registry in (DOCKER_HUB, "index.docker.io") else registry
    return f"{scheme}://{host}"
