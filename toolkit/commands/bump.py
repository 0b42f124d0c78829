"""``toolkit bump``: the newest Python, pip and get-pip for each line, into versions.json."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from toolkit.commands import options
from toolkit.console import Console
from toolkit.sources import (
    DEFAULT_GITHUB_API_URL,
    DEFAULT_GITHUB_URL,
    DEFAULT_PYPI_URL,
    DEFAULT_PYTHON_FTP_URL,
)

if TYPE_CHECKING:
    from toolkit.bump import BumpOutcome


def command(
    lines: Annotated[
        list[str] | None,
        typer.Argument(help="Lines to bump (3.8-rc). Default: every line.", show_default=False),
    ] = None,
    versions: options.Versions = options.VERSIONS,
    out: options.Out = options.OUT,
    templates: options.Templates = options.TEMPLATES,
    add: Annotated[
        list[str] | None,
        typer.Option(
            "--add",
            help="Start a new line (3.9-rc) from its newest release, with the variants of the "
            "newest line. Repeatable.",
            show_default=False,
        ),
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Print the diff; write nothing.")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the changes as JSON.")] = False,
    no_render: Annotated[
        bool, typer.Option("--no-render", help="Do not re-render the Dockerfiles.")
    ] = False,
    python_ftp_url: Annotated[
        str,
        typer.Option(
            "--python-ftp-url", envvar="TOOLKIT_PYTHON_FTP_URL", help="python.org FTP index."
        ),
    ] = DEFAULT_PYTHON_FTP_URL,
    pypi_url: Annotated[
        str, typer.Option("--pypi-url", envvar="TOOLKIT_PYPI_URL", help="PyPI JSON API root.")
    ] = DEFAULT_PYPI_URL,
    github_api_url: Annotated[
        str,
        typer.Option("--github-api-url", envvar="TOOLKIT_GITHUB_API_URL", help="GitHub API root."),
    ] = DEFAULT_GITHUB_API_URL,
    github_url: Annotated[
        str,
        typer.Option(
            "--github-url", envvar="TOOLKIT_GITHUB_URL", help="Where raw get-pip comes from."
        ),
    ] = DEFAULT_GITHUB_URL,
    timeout: Annotated[
        float,
        typer.Option(
            "--timeout",
            envvar="TOOLKIT_HTTP_TIMEOUT",
            parser=options.seconds,
            metavar="SECONDS",
            help="Seconds to connect, and between bytes read; the headers must be in within "
            "twice this.",
        ),
    ] = 30.0,
    request_time: Annotated[
        float,
        typer.Option(
            "--request-time",
            envvar="TOOLKIT_HTTP_REQUEST_TIME",
            parser=options.seconds,
            metavar="SECONDS",
            help="Seconds one whole answer (headers and body) may take.",
        ),
    ] = 600.0,
    retries: Annotated[
        int,
        typer.Option(
            "--retries",
            envvar="TOOLKIT_HTTP_RETRIES",
            metavar="N",
            help="Retries per URL after the first try.",
        ),
    ] = 3,
    backoff: Annotated[
        float,
        typer.Option(
            "--backoff",
            envvar="TOOLKIT_HTTP_BACKOFF",
            parser=options.seconds_or_zero,
            metavar="SECONDS",
            help="First retry delay (s); doubles.",
        ),
    ] = 0.5,
    retry_time: Annotated[
        float,
        typer.Option(
            "--retry-time",
            envvar="TOOLKIT_HTTP_RETRY_TIME",
            parser=options.seconds_or_zero,
            metavar="SECONDS",
            help="Give up on a URL after this many seconds of retrying.",
        ),
    ] = 60.0,
    jobs: Annotated[
        int,
        typer.Option(
            "--jobs", envvar="TOOLKIT_HTTP_JOBS", metavar="N", help="Concurrent requests."
        ),
    ] = 8,
) -> object:
    from toolkit.bump import BumpRequest, run_bump
    from toolkit.sources import HttpClient, NetworkPolicy, Sources

    sources = Sources(
        python_ftp_url=python_ftp_url,
        pypi_url=pypi_url,
        github_api_url=github_api_url,
        github_url=github_url,
    )
    policy = NetworkPolicy.from_options(
        timeout=timeout,
        retries=retries,
        backoff=backoff,
        retry_time=retry_time,
        jobs=jobs,
        request_time=request_time,
    )
    request = BumpRequest(
        versions=versions,
        lines=tuple(lines or ()),
        add=tuple(add or ()),
        out=out,
        templates=templates,
        dry_run=dry_run,
        render=not no_render,
    )
    with HttpClient(policy) as client:
        outcome = run_bump(request, sources, client, workers=policy.workers)
    show(Console.from_process(), outcome, as_json=as_json)
    return outcome


def show(console: Console, outcome: BumpOutcome, *, as_json: bool) -> None:
    plan, request = outcome.plan, outcome.request
    if as_json:
        console.json(plan.record(written=outcome.written))
    else:
        from toolkit.render import diff_root

        console.write(plan.diff())
        root = diff_root(request.out)  # paths from the repository root: git apply takes them
        for state in outcome.states:
            console.write(state.diff(root))
        for update in plan.updates:
            console.echo(update.summary())
    for note in plan.notes():
        console.note(f"note: {note}")
    if not plan.changed:
        console.note(f"{request.versions}: up to date, nothing written")
    elif request.dry_run:
        console.note(f"dry run: {request.versions} and {request.out} not written")
    elif not request.render:
        console.note(f"{request.versions} updated; now run: toolkit render")
    else:
        console.note(
            f"{request.versions} updated; {len(outcome.states)} Dockerfile(s) changed "
            f"under {request.out}"
        )
