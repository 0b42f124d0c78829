"""The command line. The only module that reads argv and the environment, prints, and exits.

Heavy libraries (the Docker SDK, pywinrm, tree-sitter) are imported inside the commands that
use them, so ``toolkit --help``, ``list`` and ``render`` start fast.
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from toolkit.errors import ToolkitError

if TYPE_CHECKING:
    from toolkit.hosts import HostsConfig, HostSpec
    from toolkit.matrix import Build
    from toolkit.versions import VersionsFile

app = typer.Typer(
    name="toolkit",
    help="Maintain the official-style Python images for Windows containers.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)


@dataclass
class _State:
    debug: bool = False


STATE = _State()

VersionsOpt = Annotated[
    Path,
    typer.Option("--versions", envvar="TOOLKIT_VERSIONS", help="The data file.", show_default=True),
]
SelectorsArg = Annotated[
    list[str] | None,
    typer.Argument(
        help="fnmatch patterns over build identifiers, with braces: 3.8-rc-*-1809, 3.{7,8}-*",
        show_default=False,
    ),
]
OutOpt = Annotated[
    Path, typer.Option("--out", help="Where the Dockerfiles live.", show_default=True)
]
TemplatesOpt = Annotated[
    Path, typer.Option("--templates", help="The Jinja2 templates.", show_default=True)
]


@app.callback()
def _root(
    debug: Annotated[
        bool,
        typer.Option("--debug", envvar="TOOLKIT_DEBUG", help="Show tracebacks on errors."),
    ] = False,
) -> None:
    STATE.debug = debug


def _load(
    versions: Path, selectors: list[str] | None
) -> tuple[VersionsFile, list[Build], list[Build]]:
    from toolkit.matrix import build_matrix, select
    from toolkit.versions import load_versions

    data = load_versions(versions)
    every = build_matrix(data)
    return data, every, select(every, selectors or [])


@app.command("list")
def list_cmd(
    selectors: SelectorsArg = None,
    versions: VersionsOpt = Path("versions.json"),
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON records.")] = False,
) -> int:
    """Print the build identifiers of the matrix (one per line), or their records as JSON."""
    _data, _every, chosen = _load(versions, selectors)
    if as_json:
        typer.echo(json.dumps([b.record() for b in chosen], indent=2))
    else:
        for build in chosen:
            typer.echo(build.id)
    return 0


@app.command()
def render(
    selectors: SelectorsArg = None,
    versions: VersionsOpt = Path("versions.json"),
    out: OutOpt = Path("dockerfiles"),
    templates: TemplatesOpt = Path("templates"),
    check: Annotated[
        bool,
        typer.Option("--check", help="Write nothing; print a diff of any drift and exit 1."),
    ] = False,
) -> int:
    """Render the Dockerfiles from the templates and versions.json."""
    from toolkit.render import Change, apply_render, plan_render, template_environment

    _data, every, chosen = _load(versions, selectors)
    states = plan_render(template_environment(templates), out, chosen, every, selectors or [])
    drift = [s for s in states if s.change is not Change.UNCHANGED]
    if check:
        for state in drift:
            sys.stdout.write(state.diff(out))
        if drift:
            typer.echo(
                f"{len(drift)} file(s) out of date under {out}; run: toolkit render", err=True
            )
            return 1
        typer.echo(f"{len(states)} Dockerfile(s) up to date under {out}", err=True)
        return 0
    apply_render(out, states)
    for state in drift:
        verb = {Change.CHANGED: "updated", Change.MISSING: "created", Change.STALE: "removed"}
        typer.echo(f"{verb[state.change]} {state.path}", err=True)
    typer.echo(f"{len(chosen)} Dockerfile(s) rendered under {out}: {len(drift)} changed", err=True)
    return 0


@app.command()
def lint(
    selectors: SelectorsArg = None,
    versions: VersionsOpt = Path("versions.json"),
    out: OutOpt = Path("dockerfiles"),
    no_hadolint: Annotated[
        bool, typer.Option("--no-hadolint", help="Skip the hadolint check.")
    ] = False,
) -> int:
    """Check the rendered Dockerfiles: BuildKit parse, PowerShell syntax, hadolint, sha256 policy."""
    from toolkit.lint import Severity, lint_dockerfile
    from toolkit.render import dockerfile_path

    _data, _every, chosen = _load(versions, selectors)
    errors = warnings = 0
    for build in chosen:
        path = dockerfile_path(out, build)
        for finding in lint_dockerfile(path, hadolint=not no_hadolint):
            typer.echo(finding.format(), err=finding.severity is Severity.ERROR)
            if finding.severity is Severity.ERROR:
                errors += 1
            else:
                warnings += 1
    typer.echo(f"{len(chosen)} Dockerfile(s) linted: {errors} error(s), {warnings} warning(s)")
    return 1 if errors else 0


@app.command()
def bump(
    lines: Annotated[
        list[str] | None,
        typer.Argument(help="Lines to bump (3.8-rc). Default: every line.", show_default=False),
    ] = None,
    versions: VersionsOpt = Path("versions.json"),
    out: OutOpt = Path("dockerfiles"),
    templates: TemplatesOpt = Path("templates"),
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
    ] = "https://www.python.org/ftp/python/",
    pypi_url: Annotated[
        str, typer.Option("--pypi-url", envvar="TOOLKIT_PYPI_URL", help="PyPI JSON API root.")
    ] = "https://pypi.org/pypi/",
    github_api_url: Annotated[
        str,
        typer.Option("--github-api-url", envvar="TOOLKIT_GITHUB_API_URL", help="GitHub API root."),
    ] = "https://api.github.com",
    github_url: Annotated[
        str,
        typer.Option(
            "--github-url", envvar="TOOLKIT_GITHUB_URL", help="Where raw get-pip comes from."
        ),
    ] = "https://github.com",
    timeout: Annotated[
        float,
        typer.Option("--timeout", envvar="TOOLKIT_HTTP_TIMEOUT", help="Seconds per connect/read."),
    ] = 30.0,
    retries: Annotated[
        int,
        typer.Option(
            "--retries", envvar="TOOLKIT_HTTP_RETRIES", help="Retries per URL after the first try."
        ),
    ] = 3,
    backoff: Annotated[
        float,
        typer.Option(
            "--backoff", envvar="TOOLKIT_HTTP_BACKOFF", help="First retry delay (s); doubles."
        ),
    ] = 0.5,
    retry_time: Annotated[
        float,
        typer.Option(
            "--retry-time",
            envvar="TOOLKIT_HTTP_RETRY_TIME",
            help="Give up on a URL after this many seconds of retrying.",
        ),
    ] = 60.0,
    jobs: Annotated[
        int, typer.Option("--jobs", envvar="TOOLKIT_HTTP_JOBS", help="Concurrent requests.")
    ] = 8,
) -> int:
    """Resolve the newest Python, pip and get-pip for each line and update versions.json."""
    from toolkit.bump import plan_bump, resolve_updates, write_bump
    from toolkit.errors import ConfigError
    from toolkit.sources import HttpClient, NetworkPolicy, Sources
    from toolkit.versions import load_versions

    sources = Sources(
        python_ftp_url=python_ftp_url,
        pypi_url=pypi_url,
        github_api_url=github_api_url,
        github_url=github_url,
    )
    if retries < 0:
        raise ConfigError(f"--retries {retries}: must be 0 or more", hint="use e.g. --retries 3")
    policy = NetworkPolicy(
        connect_timeout=timeout,
        read_timeout=timeout,
        attempts=retries + 1,
        backoff=backoff,
        retry_time=retry_time,
        workers=jobs,
    )
    current = load_versions(versions)
    old_text = versions.read_text(encoding="utf-8")
    with HttpClient(policy) as client:
        updates = resolve_updates(
            current,
            lines=lines or [],
            add=add or [],
            sources=sources,
            fetcher=client,
            workers=policy.workers,
        )
    plan = plan_bump(versions, old_text, updates)

    states = []
    if plan.changed and not no_render:
        from toolkit.matrix import build_matrix
        from toolkit.render import Change, plan_render, template_environment

        every = build_matrix(plan.versions)
        states = [
            s
            for s in plan_render(template_environment(templates), out, every, every)
            if s.change is not Change.UNCHANGED
        ]

    written = False
    if plan.changed and not dry_run:
        write_bump(plan, out, states)
        written = True

    if as_json:
        typer.echo(json.dumps(plan.record(written=written), indent=2))
    else:
        sys.stdout.write(plan.diff())
        for state in states:
            sys.stdout.write(state.diff(out.parent))  # paths as given: dockerfiles/3.8-rc/...
        for update in plan.updates:
            typer.echo(update.summary())
    for note in plan.notes():
        typer.echo(f"note: {note}", err=True)
    if not plan.changed:
        typer.echo(f"{versions}: up to date, nothing written", err=True)
    elif dry_run:
        typer.echo(f"dry run: {versions} and {out} not written", err=True)
    elif no_render:
        typer.echo(f"{versions} updated; now run: toolkit render", err=True)
    else:
        typer.echo(f"{versions} updated; {len(states)} Dockerfile(s) changed under {out}", err=True)
    return 0


HostsOpt = Annotated[
    Path | None,
    typer.Option(
        "--hosts",
        envvar="TOOLKIT_HOSTS",
        help="Release -> Docker host map (default: ./hosts.toml when it exists).",
        show_default=False,
    ),
]
HostOverrideOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--host",
        help="RELEASE=URL (tcp://, npipe://, unix://, ssh:// or a docker context); repeatable.",
        show_default=False,
    ),
]
IsolationOpt = Annotated[
    str | None,
    typer.Option(
        "--isolation", help="Force process or hyperv isolation (default: per host and image)."
    ),
]
NoPreflightOpt = Annotated[
    bool,
    typer.Option(
        "--no-preflight",
        help="Do not contact or check the hosts first (engines the check does not know).",
    ),
]


def _hosts_config(hosts_path: Path | None, overrides: list[str] | None) -> HostsConfig:
    """The hosts configuration: --hosts/TOOLKIT_HOSTS, else ./hosts.toml if present."""
    from toolkit.hosts import load_hosts

    if hosts_path is None and Path("hosts.toml").is_file():
        hosts_path = Path("hosts.toml")
    return load_hosts(hosts_path, overrides or [], os.environ)


@app.command()
def hosts(
    selectors: SelectorsArg = None,
    versions: VersionsOpt = Path("versions.json"),
    hosts_path: HostsOpt = None,
    host: HostOverrideOpt = None,
    isolation: IsolationOpt = None,
    no_preflight: NoPreflightOpt = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON records.")] = False,
) -> int:
    """Print which host builds each target and with which isolation, without building."""
    from toolkit.hosts import connect
    from toolkit.preflight import plan_assignments

    _data, _every, chosen = _load(versions, selectors)
    config = _hosts_config(hosts_path, host)
    clients: list[Any] = []

    def connect_fn(spec: HostSpec) -> Any:
        client = connect(spec, os.environ, timeout=30)
        clients.append(client)
        return client

    try:
        plan = plan_assignments(chosen, config, connect_fn, isolation, not no_preflight)
    finally:
        for client in clients:
            client.close()
    if as_json:
        typer.echo(json.dumps([a.record() for a in plan], indent=2))
    else:
        rows = [("ID", "RELEASE", "HOST", "HOST BUILD", "ISOLATION", "STATUS")]
        for a in plan:
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
        widths = [max(len(row[i]) for row in rows) for i in range(5)]
        for row in rows:
            cells = [cell.ljust(width) for cell, width in zip(row[:5], widths, strict=True)]
            typer.echo("  ".join([*cells, row[5]]).rstrip())
    refused = [a for a in plan if a.error is not None]
    if refused:
        typer.echo(f"{len(refused)} of {len(plan)} build(s) have no fit host", err=True)
        return refused[0].error.exit_code if refused[0].error is not None else 1
    return 0


def _report(exc: ToolkitError) -> None:
    message = exc.one_line()
    if os.environ.get("GITHUB_ACTIONS") == "true":
        print(f"::error::{message}", file=sys.stderr)
    else:
        print(f"error: {message}", file=sys.stderr)


def main(argv: list[str] | None = None) -> None:
    """Entry point: run the app, map outcomes to exit codes, no traceback for user mistakes."""
    from typer.exceptions import Abort, Exit, TyperException

    try:
        result = app(args=argv, prog_name="toolkit", standalone_mode=False)
    except ToolkitError as exc:
        if STATE.debug:
            raise
        _report(exc)
        sys.exit(exc.exit_code)
    except TyperException as exc:  # usage errors: unknown option, bad value, missing argument
        show = getattr(exc, "show", None)
        if callable(show):
            show()
        else:
            print(f"error: {exc.format_message()}", file=sys.stderr)
        sys.exit(exc.exit_code)
    except (KeyboardInterrupt, Abort):
        print("interrupted", file=sys.stderr)
        sys.exit(130)
    except Exit as exc:
        sys.exit(exc.exit_code)
    sys.exit(result if isinstance(result, int) else 0)
