"""``toolkit hosts``: which host builds each target and how, without building."""

from __future__ import annotations

import os

from toolkit.commands import options
from toolkit.console import Console


def command(
    selectors: options.Selectors = None,
    versions: options.Versions = options.VERSIONS,
    hosts_path: options.Hosts = None,
    host: options.HostOverrides = None,
    isolation: options.Isolation = None,
    no_preflight: options.NoPreflight = False,
    as_json: options.Json = False,
) -> object:
    from toolkit.clients import ClientPool
    from toolkit.preflight import HostsRequest, plan_hosts

    request = HostsRequest(
        versions=versions,
        selectors=options.selectors(selectors),
        hosts=options.host_selection(hosts_path, host, isolation, no_preflight),
    )
    with ClientPool(os.environ) as pool:
        plan = plan_hosts(request, os.environ, pool)
    console = Console.from_process()
    if as_json:
        console.json([a.record() for a in plan.assignments])
        return plan
    rows = [("ID", "RELEASE", "HOST", "HOST BUILD", "ISOLATION", "STATUS")]
    for a in plan.assignments:
        rows.append(
            (
                a.build_id,
                a.release,
                a.host.name,
                a.facts.os_build if a.facts is not None else "-",
                a.isolation or ("-" if a.error else "engine default"),
                "ok" if a.error is None else f"refused: {a.error.one_line()}",
            )
        )
    console.table(rows, last_free=True)
    return plan
