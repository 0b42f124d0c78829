"""``toolkit verify``: the checks on images a previous build tagged, on their hosts."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from toolkit.commands import options
from toolkit.console import Console


def command(
    selectors: options.Selectors = None,
    versions: options.Versions = options.VERSIONS,
    hosts_path: options.Hosts = None,
    host: options.HostOverrides = None,
    isolation: options.Isolation = None,
    no_preflight: options.NoPreflight = False,
    repo: options.Repo = options.REPO,
    network_checks: Annotated[
        bool,
        typer.Option("--network-checks", help="Also run pip install of a small package (network)."),
    ] = False,
    timeout: Annotated[
        float,
        typer.Option(
            "--timeout",
            parser=options.seconds,
            metavar="SECONDS",
            help="Deadline of one check, in seconds.",
        ),
    ] = 300.0,
    junit: Annotated[
        Path | None,
        typer.Option("--junit", help="Write JUnit XML results to this file.", show_default=False),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the results as JSON.")] = False,
) -> object:
    from toolkit.clients import ClientPool
    from toolkit.files import write_atomic
    from toolkit.progress import checks_markdown
    from toolkit.verify import VerifyRequest, junit_xml, run_verify

    request = VerifyRequest(
        versions=versions,
        selectors=options.selectors(selectors),
        hosts=options.host_selection(hosts_path, host, isolation, no_preflight),
        repo=repo,
        network=network_checks,
        timeout=timeout,
    )
    with ClientPool(os.environ) as pool:
        run = run_verify(request, os.environ, pool)
    console = Console.from_process()
    checked = [r for r in run.results if r.error is None]
    if as_json:
        console.json(
            {
                "results": {r.build_id: [c.record() for c in r.checks] for r in checked},
                "unreachable": [f"{r.build_id}: {r.error}" for r in run.results if r.error],
                "ok": run.failure() is None,
            }
        )
    else:
        for r in checked:
            for check in r.checks:
                verdict = "PASS" if check.passed else "FAIL"
                note = f": {check.message}" if check.message else ""
                console.echo(f"{verdict} {r.build_id} {check.name} ({check.duration:.1f}s){note}")
    if junit is not None:
        write_atomic(junit, junit_xml({r.build_id: r.checks for r in checked}))
    total = sum(len(r.checks) for r in checked)
    failed = sum(len(r.failed) for r in checked)
    console.note(f"{total} check(s) on {len(checked)} image(s): {failed} failed")
    for r in run.results:
        if r.error is not None:
            console.error(f"{r.build_id}: {r.error}")
    console.step_summary(checks_markdown(run.results))
    return run
