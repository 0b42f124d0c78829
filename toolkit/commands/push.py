"""``toolkit push``: each build's per-release tags, pushed from the engine that built them."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from typing import Annotated

import typer

from toolkit.commands import options
from toolkit.console import Console


class _Silent:
    """The observer for ``--json``: stdout carries the JSON document only."""

    def started(self, build_id: str, host: str) -> None:
        pass

    def step(self, build_id: str, number: int, total: int, instruction: str) -> None:
        pass

    def line(self, build_id: str, text: str) -> None:
        pass

    def finished(self, result: object) -> None:
        pass


@contextlib.contextmanager
def _silent() -> Iterator[_Silent]:
    yield _Silent()


def command(
    selectors: options.Selectors = None,
    repo: options.RegistryRepo = "",
    versions: options.Versions = options.VERSIONS,
    out: options.Out = options.OUT,
    templates: options.Templates = options.TEMPLATES,
    local_repo: Annotated[
        str | None,
        typer.Option(
            "--local-repo",
            help="The name the build tagged the images with (build --repo); default: --repo.",
            show_default=False,
        ),
    ] = None,
    hosts_path: options.Hosts = None,
    host: options.HostOverrides = None,
    no_preflight: options.NoPreflight = False,
    jobs_per_host: Annotated[
        int,
        typer.Option("--jobs-per-host", min=1, metavar="N", help="Pushes at once from one host."),
    ] = 1,
    fail_fast: Annotated[
        bool, typer.Option("--fail-fast", help="Start no new push after a failure.")
    ] = False,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Print what would be pushed from where.")
    ] = False,
    registry_ca: options.RegistryCA = None,
    retries: options.Retries = options.RETRIES,
    registry_timeout: options.RegistryTimeout = options.REGISTRY_TIMEOUT,
    as_json: options.Json = False,
) -> object:
    from toolkit.clients import ClientPool, connect_registry
    from toolkit.push import PushRequest, as_build_result, run_push

    registry, destination = connect_registry(
        repo, os.environ, ca=registry_ca, retries=retries, timeout=registry_timeout, push=True
    )
    request = PushRequest(
        versions=versions,
        selectors=options.selectors(selectors),
        out=out,
        templates=templates,
        hosts=options.host_selection(hosts_path, host, None, no_preflight),
        local_repo=local_repo,
        jobs_per_host=jobs_per_host,
        fail_fast=fail_fast,
        dry_run=dry_run,
    )
    console = Console.from_process()
    with registry, ClientPool(os.environ) as pool:
        run = run_push(
            request,
            os.environ,
            pool,
            registry,
            destination,
            _silent if as_json else console.progress,
        )
    if dry_run:
        local = local_repo or f"{destination.registry}/{destination.repository}"
        tags = {b.id: b.tags for b in run.builds}
        for build_id, where in run.hosts:
            console.echo(
                f"{build_id}\thost={where}\tfrom={local}:{tags[build_id][0]}\t"
                f"to={','.join(f'{destination}:{t}' for t in tags[build_id])}"
            )
        console.note(f"{len(run.hosts)} push(es) planned; nothing pushed (--dry-run)")
        return run
    if as_json:
        console.json(
            {
                "ok": run.failure() is None,
                "interrupted": run.interrupted,
                "repository": str(destination),
                "results": [r.record() for r in run.results],
            }
        )
        return run
    console.results(
        [as_build_result(r) for r in run.results], None, "toolkit push", run.interrupted
    )
    skipped = sum(r.foreign_skipped for r in run.results)
    if skipped:
        console.note(
            f"{skipped} foreign (Windows base) layer(s) not uploaded: the images point at their "
            "urls (see README: foreign layers)"
        )
    return run
