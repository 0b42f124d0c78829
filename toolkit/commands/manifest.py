"""``toolkit manifest``: each shared tag as a manifest list over the per-release images."""

from __future__ import annotations

import os
from typing import Annotated

import typer

from toolkit.commands import options
from toolkit.console import Console


def command(
    selectors: options.Selectors = None,
    repo: options.RegistryRepo = "",
    versions: options.Versions = options.VERSIONS,
    allow_partial: Annotated[
        bool,
        typer.Option(
            "--allow-partial", help="Publish the entries that exist and name the absent ones."
        ),
    ] = False,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Read the registry, write nothing.")
    ] = False,
    registry_ca: options.RegistryCA = None,
    retries: options.Retries = options.RETRIES,
    registry_timeout: options.RegistryTimeout = options.REGISTRY_TIMEOUT,
    as_json: options.Json = False,
) -> object:
    from toolkit.clients import connect_registry
    from toolkit.matrix import select_builds
    from toolkit.publish import FAILED, ListResult, ListRun, plan_shared_tags, publish_lists

    client, ref = connect_registry(
        repo,
        os.environ,
        ca=registry_ca,
        retries=retries,
        timeout=registry_timeout,
        push=not dry_run,
    )
    console = Console.from_process()
    with client:
        selection = select_builds(versions, options.selectors(selectors))
        plan = plan_shared_tags(selection.every, selection.chosen)

        def show(result: ListResult) -> None:
            if as_json:
                return
            if result.result == FAILED:
                console.error(result.message)
                return
            digest = (result.digest or "")[:19]
            platforms = ", ".join(e.platform.os_version or str(e.platform) for e in result.entries)
            console.echo(f"{result.result:<13}{ref}:{result.tag}  {digest}  [{platforms}]")
            if result.missing:
                console.note(f"warning: {ref}:{result.tag}: {result.message}")

        results = publish_lists(
            client,
            ref.repository,
            plan,
            allow_partial=allow_partial,
            dry_run=dry_run,
            on_result=show,
        )
        run = ListRun(str(ref), tuple(results), client.requests_made, dry_run)
    if as_json:
        console.json(run.record())
    else:
        counts: dict[str, int] = {}
        for r in results:
            counts[r.result] = counts.get(r.result, 0) + 1
        text = ", ".join(f"{n} {k}" for k, n in counts.items())
        note = " (--dry-run: nothing written)" if dry_run else ""
        console.note(
            f"{len(results)} shared tag(s) in {ref}: {text}; {run.requests} request(s){note}"
        )
    return run
