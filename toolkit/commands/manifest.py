"""``toolkit manifest``: shared tags as manifest lists over the per-release images (issue 9)."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Annotated

import typer

from toolkit.commands.registry_options import (
    JsonOpt,
    RegistryCAOpt,
    RegistryRepoOpt,
    RegistryTimeoutOpt,
    RetriesOpt,
    destination,
    open_registry,
)


def manifest(
    selectors: Annotated[
        list[str] | None,
        typer.Argument(
            help="fnmatch patterns over build identifiers; their shared tags are published.",
            show_default=False,
        ),
    ] = None,
    repo: RegistryRepoOpt = "",
    versions: Annotated[
        Path, typer.Option("--versions", envvar="TOOLKIT_VERSIONS", help="The data file.")
    ] = Path("versions.json"),
    allow_partial: Annotated[
        bool,
        typer.Option(
            "--allow-partial", help="Publish the entries that exist and name the absent ones."
        ),
    ] = False,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Read the registry, write nothing.")
    ] = False,
    registry_ca: RegistryCAOpt = None,
    retries: RetriesOpt = 3,
    registry_timeout: RegistryTimeoutOpt = 30.0,
    as_json: JsonOpt = False,
) -> int:
    """Create or update each shared tag as a manifest list over the per-release images."""
    from toolkit.errors import ConfigError, RegistryError
    from toolkit.matrix import build_matrix, select
    from toolkit.publish import FAILED, plan_shared_tags, publish_lists
    from toolkit.versions import load_versions

    if not repo:
        raise ConfigError("--repo is required", hint="e.g. --repo registry.example.net/python")
    scheme, ref = destination(repo)
    every = build_matrix(load_versions(versions))
    chosen = select(every, selectors or [])
    plan = plan_shared_tags(every, chosen)
    github = os.environ.get("GITHUB_ACTIONS") == "true"

    def show(result: object) -> None:
        from toolkit.publish import ListResult

        assert isinstance(result, ListResult)
        if as_json:
            return
        if result.result == FAILED:
            prefix = "::error::" if github else "error: "
            print(f"{prefix}{result.message}", file=sys.stderr, flush=True)
            return
        digest = (result.digest or "")[:19]
        platforms = ", ".join(e.platform.os_version or str(e.platform) for e in result.entries)
        line = f"{result.result:<13}{ref}:{result.tag}  {digest}  [{platforms}]".rstrip()
        print(line, flush=True)
        if result.missing:
            print(f"warning: {ref}:{result.tag}: {result.message}", file=sys.stderr, flush=True)

    with open_registry(
        scheme,
        ref,
        ca=registry_ca,
        retries=retries,
        timeout=registry_timeout,
        env=os.environ,
        push=not dry_run,
    ) as client:
        results = publish_lists(
            client,
            ref.repository,
            plan,
            allow_partial=allow_partial,
            dry_run=dry_run,
            on_result=show,
        )
        requests_made = client.requests_made
    failed = [r for r in results if r.result == FAILED]
    if as_json:
        document = {
            "ok": not failed,
            "repository": str(ref),
            "dry_run": dry_run,
            "requests": requests_made,
            "results": [r.record() for r in results],
        }
        print(json.dumps(document, indent=2))
    else:
        counts: dict[str, int] = {}
        for r in results:
            counts[r.result] = counts.get(r.result, 0) + 1
        text = ", ".join(f"{n} {k}" for k, n in counts.items())
        note = " (--dry-run: nothing written)" if dry_run else ""
        print(
            f"{len(results)} shared tag(s) in {ref}: {text}; {requests_made} request(s){note}",
            file=sys.stderr,
        )
    return RegistryError.exit_code if failed else 0
