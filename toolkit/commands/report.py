"""``toolkit report``: image-info pages from a registry or saved pages; provenance (issue 10)."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from toolkit.commands import options
from toolkit.console import Console

if TYPE_CHECKING:
    from toolkit.report import ReportOutcome


def command(
    references: Annotated[
        list[str] | None,
        typer.Argument(
            help="REGISTRY/NAME:TAG of each tag (a manifest list or one image).",
            show_default=False,
        ),
    ] = None,
    page: Annotated[
        list[Path] | None,
        typer.Option(
            "--page", help="Read a saved page (one or more tags); repeatable.", show_default=False
        ),
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option(
            "--out",
            help="Write DIR/<tag>.md per tag (all or none) instead of printing the pages.",
            show_default=False,
        ),
    ] = None,
    as_json: options.Json = False,
    against: Annotated[
        Path | None,
        typer.Option(
            "--against",
            help="Check each platform's history against the rendered Dockerfiles under DIR; "
            "print a diff per drifted platform and exit 1.",
            show_default=False,
        ),
    ] = None,
    versions: options.Versions = options.VERSIONS,
    jobs: Annotated[
        int,
        typer.Option(
            "--jobs",
            envvar="TOOLKIT_REGISTRY_JOBS",
            min=1,
            max=64,
            metavar="N",
            help="Concurrent requests.",
        ),
    ] = 8,
    registry_ca: options.RegistryCA = None,
    retries: options.Retries = options.RETRIES,
    registry_timeout: options.RegistryTimeout = options.REGISTRY_TIMEOUT,
) -> object:
    from toolkit.clients import open_registry
    from toolkit.pagesource import RegistryReader, url_headers
    from toolkit.registry import RegistryClient
    from toolkit.report import ReportRequest, run_report
    from toolkit.transport import new_session

    request = ReportRequest(
        references=tuple(references or ()),
        pages=tuple(page or ()),
        out=out,
        against=against,
        versions=versions,
        jobs=jobs,
    )
    with contextlib.ExitStack() as stack:
        opened: dict[str, RegistryClient] = {}

        def client_for(registry: str) -> RegistryReader:
            # one client per registry, shared by the request threads (made on the main thread)
            if registry not in opened:
                client = open_registry(
                    registry, os.environ, ca=registry_ca, retries=retries, timeout=registry_timeout
                )
                opened[registry] = stack.enter_context(client)
            return opened[registry]

        # Under the same deadline and redirect rules as every HTTP read (toolkit.transport).
        session = stack.enter_context(new_session())
        # Foreign layer URLs come from manifests: no ~/.netrc credentials or proxies for them.
        session.trust_env = False
        outcome = run_report(
            request, clients=client_for, url_headers=url_headers(session, registry_timeout)
        )
    show(Console.from_process(), outcome, as_json=as_json)
    return outcome


def show(console: Console, outcome: ReportOutcome, *, as_json: bool) -> None:
    if as_json:
        console.json(outcome.record())
        return
    checks = outcome.checks
    if checks is not None:
        for check in checks:
            console.write(check.diff)
        for check in checks:
            console.note(check.summary())
    elif outcome.request.out is None:
        console.write(outcome.text())
    for path in outcome.written:
        console.note(f"wrote {path}")
