"""``toolkit build``: build the selected images on their hosts, verify them, and report."""

from __future__ import annotations

import os
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from toolkit.commands import options
from toolkit.console import Console


class PullPolicy(StrEnum):
    """``--pull``: the choices are listed in the help (toolkit.driver checks them)."""

    always = "always"
    missing = "missing"
    never = "never"


def command(
    selectors: options.Selectors = None,
    versions: options.Versions = options.VERSIONS,
    out: options.Out = options.OUT,
    templates: options.Templates = options.TEMPLATES,
    hosts_path: options.Hosts = None,
    host: options.HostOverrides = None,
    isolation: options.Isolation = None,
    no_preflight: options.NoPreflight = False,
    preflight: Annotated[
        list[str] | None,
        typer.Option(
            "--preflight",
            help="Also check each host this way before building: winrm (as toolkit inspect "
            "does; the releases whose host fails are refused, the others build).",
            show_default=False,
        ),
    ] = None,
    winrm_timeout: options.WinRMTimeout = options.WINRM_TIMEOUT,
    repo: options.Repo = options.REPO,
    force: Annotated[
        bool, typer.Option("--force", help="Build even when an image with the same hash exists.")
    ] = False,
    prune: Annotated[
        bool,
        typer.Option(
            "--prune/--no-prune",
            help="Remove the target's superseded images (the toolkit's own for this target and "
            "--repo that no tag names any more) after it is built or skipped.",
        ),
    ] = True,
    pull: Annotated[
        PullPolicy,
        typer.Option("--pull", help="Base image: always pull, pull when missing, or never pull."),
    ] = PullPolicy.missing,
    network: Annotated[
        str | None,
        typer.Option(
            "--network",
            help="Network mode of the build containers (engine default when unset).",
            show_default=False,
        ),
    ] = None,
    build_arg: Annotated[
        list[str] | None,
        typer.Option(
            "--build-arg", help="KEY=VALUE passed to the build (repeatable).", show_default=False
        ),
    ] = None,
    timeout: Annotated[
        float,
        typer.Option(
            "--timeout",
            parser=options.seconds,
            metavar="SECONDS",
            help="Deadline of one build, in seconds.",
        ),
    ] = 3 * 3600.0,
    jobs_per_host: Annotated[
        int,
        typer.Option("--jobs-per-host", min=1, metavar="N", help="Builds at once on one host."),
    ] = 1,
    fail_fast: Annotated[
        bool, typer.Option("--fail-fast", help="Start no new build after a failure.")
    ] = False,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Print the plan; build nothing.")
    ] = False,
    no_verify: Annotated[
        bool, typer.Option("--no-verify", help="Do not run the checks after each build.")
    ] = False,
    network_checks: Annotated[
        bool, typer.Option("--network-checks", help="Also run the checks that need the network.")
    ] = False,
    logs: Annotated[
        Path, typer.Option("--logs", help="Directory of the per-target logs.", show_default=True)
    ] = Path("logs"),
    report: Annotated[
        Path | None,
        typer.Option(
            "--report", help="Write the results as JSON to this file.", show_default=False
        ),
    ] = None,
    source: Annotated[
        str | None,
        typer.Option(
            "--source",
            help="org.opencontainers.image.source label (default: the GitHub repository URL on "
            "GitHub Actions).",
            show_default=False,
        ),
    ] = None,
) -> object:
    from toolkit.builds import BuildRequest, run_build
    from toolkit.clients import ClientPool
    from toolkit.driver import BuildSettings, full_tags, parse_build_args, source_label

    winrm = "winrm" in options.preflights(preflight)

    settings = BuildSettings(
        repo=repo,
        pull=pull.value,
        network_mode=network,
        timeout=timeout,
        force=force,
        build_args=parse_build_args(build_arg or [], "--build-arg"),
        source=source_label(source, os.environ),
        logs=logs,
        prune=prune,
    )
    request = BuildRequest(
        versions=versions,
        selectors=options.selectors(selectors),
        out=out,
        templates=templates,
        hosts=options.host_selection(hosts_path, host, isolation, no_preflight),
        settings=settings,
        jobs_per_host=jobs_per_host,
        fail_fast=fail_fast,
        verify=not no_verify,
        network_checks=network_checks,
        dry_run=dry_run,
        winrm_deadline=winrm_timeout if winrm else None,
    )
    console = Console.from_process()
    with ClientPool(os.environ) as pool:
        run = run_build(request, os.environ, pool, console.progress, options.winrm_access())
    for warning in run.winrm.warnings if run.winrm is not None else ():
        console.warning(warning)
    if dry_run:
        by_id = {b.id: b for b in run.builds}
        for a in run.assignments:
            b = by_id[a.build_id]
            status = "ok" if a.error is None else f"refused: {a.error.one_line()}"
            console.echo(
                f"{b.id}\thost={a.host.name}\tisolation={a.isolation or 'default'}\t"
                f"context={out / b.directory}\ttags={','.join(full_tags(b, repo))}\t{status}"
            )
        console.note(f"{len(run.assignments)} build(s) planned; nothing built (--dry-run)")
        return run
    console.results(list(run.results), report, "toolkit build", run.interrupted)
    return run
