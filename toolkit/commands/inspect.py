"""``toolkit inspect``: check the Windows build hosts over WinRM before a long build."""

from __future__ import annotations

import os
from typing import Annotated

import typer

from toolkit.commands import options
from toolkit.console import Console


def command(
    selectors: options.Selectors = None,
    versions: options.Versions = options.VERSIONS,
    hosts_path: options.Hosts = None,
    host: options.HostOverrides = None,
    timeout: Annotated[
        float,
        typer.Option(
            "--timeout",
            parser=options.seconds,
            metavar="SECONDS",
            help="Deadline of each host's check, in seconds.",
        ),
    ] = options.WINRM_TIMEOUT,
    no_docker: Annotated[
        bool,
        typer.Option("--no-docker", help="Do not ask the hosts' Docker API to compare."),
    ] = False,
    as_json: options.Json = False,
) -> object:
    from toolkit.clients import ClientPool
    from toolkit.inspection import InspectRequest, report_text, run_inspection

    request = InspectRequest(
        versions=versions,
        selectors=options.selectors(selectors),
        hosts=options.host_selection(hosts_path, host, None, False),
        deadline=timeout,
        docker=not no_docker,
    )
    console = Console.from_process()
    with ClientPool(os.environ, timeout=timeout) as pool:
        run = run_inspection(request, os.environ, options.winrm_access(), pool)
    for warning in run.warnings:
        console.warning(warning)
    if as_json:
        console.json(run.record())
    else:
        console.write(report_text(run.reports))
        passed = len(run.reports) - len(run.failed)
        console.note(f"{len(run.reports)} host(s) inspected: {passed} passed")
    return run
