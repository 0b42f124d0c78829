"""Options shared by the commands that talk to a registry (push, manifest), and the client.

The registry client is made here, from the options and the environment the command passes in:
credentials from the Docker config (``DOCKER_CONFIG`` or ``~/.docker/config.json``), the CA from
``--registry-ca``, the retry policy from ``--retries`` and ``--registry-timeout``.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from toolkit.commands.options import seconds_from_one

if TYPE_CHECKING:
    from toolkit.registry import Reference, RegistryClient

RegistryRepoOpt = Annotated[
    str,
    typer.Option(
        "--repo",
        envvar="TOOLKIT_REGISTRY_REPO",
        help="Destination REGISTRY/NAME (https:// is implied; http:// only for loopback).",
        show_default=False,
    ),
]
RegistryCAOpt = Annotated[
    Path | None,
    typer.Option(
        "--registry-ca",
        envvar="TOOLKIT_REGISTRY_CA",
        help="CA certificate (PEM) that signed the registry's certificate (default: system store).",
        show_default=False,
    ),
]
RetriesOpt = Annotated[
    int,
    typer.Option(
        "--retries",
        envvar="TOOLKIT_REGISTRY_RETRIES",
        min=0,
        metavar="N",
        max=10,
        help="Retries of a request after a 5xx answer or a connection error (4xx: never).",
    ),
]
RegistryTimeoutOpt = Annotated[
    float,
    typer.Option(
        "--registry-timeout",
        envvar="TOOLKIT_REGISTRY_TIMEOUT",
        parser=seconds_from_one,
        metavar="SECONDS",
        help="Seconds to connect, and between bytes read.",
    ),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print the results as JSON.")]


def destination(repo: str) -> tuple[str | None, Reference]:
    """``--repo`` parsed: (scheme or None, REGISTRY/NAME); a bad value is a ConfigError."""
    from toolkit.registry import base_url, parse_repository

    scheme, ref = parse_repository(repo)
    base_url(ref.registry, scheme)  # refuses plain HTTP to a registry that is not loopback
    return scheme, ref


def open_registry(
    scheme: str | None,
    ref: Reference,
    *,
    ca: Path | None,
    retries: int,
    timeout: float,
    env: Mapping[str, str],
    push: bool,
) -> RegistryClient:
    from toolkit.credentials import DockerConfigCredentials
    from toolkit.errors import ConfigError
    from toolkit.registry import RegistryClient, RetryPolicy

    if ca is not None and not ca.is_file():
        raise ConfigError(f"--registry-ca {ca}: no such file", hint="pass the CA's PEM file")
    return RegistryClient(
        ref.registry,
        scheme=scheme,
        credentials=DockerConfigCredentials(env),
        ca=ca,
        retry=RetryPolicy(attempts=retries + 1, timeout=timeout),
        actions="pull,push" if push else "pull",
    )
