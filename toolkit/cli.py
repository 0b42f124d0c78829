"""The command line. The only module that reads argv and the environment, prints, and exits.

Heavy libraries (the Docker SDK, pywinrm, tree-sitter) are imported inside the commands that
use them, so ``toolkit --help``, ``list`` and ``render`` start fast.
"""

from __future__ import annotations

import inspect
import json
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from toolkit.errors import ToolkitError

if TYPE_CHECKING:
    from toolkit.driver import BuildJob, BuildResult
    from toolkit.hosts import HostsConfig, HostSpec
    from toolkit.matrix import Build
    from toolkit.preflight import Assignment, HostFacts
    from toolkit.versions import VersionsFile

APP_SETTINGS: dict[str, Any] = {
    "name": "toolkit",
    "help": "Maintain the official-style Python images for Windows containers.",
    "no_args_is_help": True,
    "add_completion": False,
    "pretty_exceptions_enable": False,
    "rich_markup_mode": None,
}
app = typer.Typer(**APP_SETTINGS)


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
    verb = {Change.CHANGED: "updated", Change.MISSING: "created", Change.STALE: "removed"}
    sys.stderr.write("".join(f"{verb[s.change]} {s.path}\n" for s in drift))
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
    from toolkit.lint import Severity, lint_dockerfiles
    from toolkit.render import dockerfile_path

    _data, _every, chosen = _load(versions, selectors)
    paths = [dockerfile_path(out, build) for build in chosen]
    errors = warnings = 0
    for findings in lint_dockerfiles(paths, hadolint=not no_hadolint).values():
        for finding in findings:
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


RepoOpt = Annotated[
    str, typer.Option("--repo", help="Repository name the tags go under.", show_default=True)
]


class _Clients:
    """The Docker clients of one run: one per host, connected on first use, closed at the end.

    A host that cannot be reached is remembered, so its other targets fail at once with the
    same message instead of trying again.
    """

    def __init__(self) -> None:
        self._clients: dict[str, Any] = {}
        self._errors: dict[str, ToolkitError] = {}
        self._os_types: dict[str, str] = {}

    def connect(self, spec: HostSpec) -> Any:
        from toolkit.hosts import connect

        key = spec.name
        if key in self._errors:
            raise self._errors[key]
        if key not in self._clients:
            try:
                self._clients[key] = connect(spec, os.environ)
            except ToolkitError as exc:
                self._errors[key] = exc
                raise
        return self._clients[key]

    def os_type(self, spec: HostSpec, facts: HostFacts | None) -> str:
        """The engine's OSType: from preflight's facts, else asked once."""
        from toolkit.errors import HostError
        from toolkit.hosts import describe_error

        if facts is not None:
            return facts.os_type
        key = spec.name
        if key not in self._os_types:
            client = self.connect(spec)
            try:
                self._os_types[key] = str(client.info().get("OSType") or "windows")
            except Exception as exc:
                error = HostError(
                    f"Docker host {spec.name} does not answer: {describe_error(exc)}",
                    hint="check that the engine runs",
                )
                self._errors[key] = error
                raise error from None
        return self._os_types[key]

    def close(self) -> None:
        for client in self._clients.values():
            client.close()


def _plan(
    chosen: list[Build],
    hosts_path: Path | None,
    host_overrides: list[str] | None,
    isolation: str | None,
    preflight: bool,
    clients: _Clients,
) -> list[Assignment]:
    """Each build's host and isolation; preflight (unless disabled) contacts every host once."""
    from toolkit.preflight import plan_assignments

    config = _hosts_config(hosts_path, host_overrides)
    return plan_assignments(chosen, config, clients.connect, isolation, preflight)


@app.command()
def build(
    selectors: SelectorsArg = None,
    versions: VersionsOpt = Path("versions.json"),
    out: OutOpt = Path("dockerfiles"),
    hosts_path: HostsOpt = None,
    host: HostOverrideOpt = None,
    isolation: IsolationOpt = None,
    no_preflight: NoPreflightOpt = False,
    repo: RepoOpt = "python",
    force: Annotated[
        bool, typer.Option("--force", help="Build even when an image with the same hash exists.")
    ] = False,
    pull: Annotated[
        str,
        typer.Option("--pull", help="Base image: always pull, pull when missing, or never pull."),
    ] = "missing",
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
        float, typer.Option("--timeout", help="Deadline of one build, in seconds.")
    ] = 3 * 3600.0,
    jobs_per_host: Annotated[
        int, typer.Option("--jobs-per-host", min=1, help="Builds at once on one host.")
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
) -> int:
    """Build the selected images on their hosts, verify them, and report."""
    from toolkit.driver import BuildSettings, Outcome, full_tags
    from toolkit.errors import BuildFailedError, ConfigError, VerifyFailedError
    from toolkit.render import dockerfile_path
    from toolkit.scheduler import make_verifier, run_builds

    _data, _every, chosen = _load(versions, selectors)
    args = _key_values(build_arg or [], "--build-arg")
    env = os.environ
    if source is None and env.get("GITHUB_SERVER_URL") and env.get("GITHUB_REPOSITORY"):
        source = f"{env['GITHUB_SERVER_URL']}/{env['GITHUB_REPOSITORY']}"
    settings = BuildSettings(
        repo=repo,
        pull=pull,
        network_mode=network,
        timeout=timeout,
        force=force,
        build_args=args,
        source=source,
        logs=logs,
    )
    for b in chosen:
        if not dockerfile_path(out, b).is_file():
            raise ConfigError(
                f"{dockerfile_path(out, b)}: Dockerfile of {b.id} not found",
                hint="run toolkit render, or pass --out",
            )
    clients = _Clients()
    try:
        plan = _plan(chosen, hosts_path, host, isolation, not no_preflight, clients)
        if dry_run:
            by_id = {b.id: b for b in chosen}
            for a in plan:
                b = by_id[a.build_id]
                status = "ok" if a.error is None else f"refused: {a.error.one_line()}"
                typer.echo(
                    f"{b.id}\thost={a.host.name}\tisolation={a.isolation or 'default'}\t"
                    f"context={out / b.directory}\ttags={','.join(full_tags(b, repo))}\t{status}"
                )
            typer.echo(f"{len(plan)} build(s) planned; nothing built (--dry-run)", err=True)
            return 0
        jobs, refused = _jobs(plan, chosen, clients, out)
        observer, live = _observer(_style())
        verifier = None if no_verify else make_verifier(observer, network=network_checks)
        with live:
            for result in refused:
                observer.finished(result)
            summary = run_builds(
                jobs,
                settings,
                observer,
                jobs_per_host=jobs_per_host,
                fail_fast=fail_fast,
                verifier=verifier,
                failed_before=bool(refused),
            )
    finally:
        clients.close()
    results = _in_plan_order(plan, [*summary.results, *refused])
    _results_out(results, report, "toolkit build", summary.interrupted)
    if summary.interrupted:
        return 130
    failed = [r for r in results if not r.outcome.ok]
    if not failed:
        return 0
    names = ", ".join(r.build_id for r in failed)
    _report_line(f"{len(failed)} of {len(results)} target(s) failed: {names}")
    if all(r.outcome is Outcome.VERIFY_FAILED for r in failed):
        return VerifyFailedError.exit_code
    return BuildFailedError.exit_code


@app.command()
def verify(
    selectors: SelectorsArg = None,
    versions: VersionsOpt = Path("versions.json"),
    hosts_path: HostsOpt = None,
    host: HostOverrideOpt = None,
    isolation: IsolationOpt = None,
    no_preflight: NoPreflightOpt = False,
    repo: RepoOpt = "python",
    network_checks: Annotated[
        bool,
        typer.Option("--network-checks", help="Also run pip install of a small package (network)."),
    ] = False,
    timeout: Annotated[
        float, typer.Option("--timeout", help="Deadline of one check, in seconds.")
    ] = 300.0,
    junit: Annotated[
        Path | None,
        typer.Option("--junit", help="Write JUnit XML results to this file.", show_default=False),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the results as JSON.")] = False,
) -> int:
    """Run the checks on the selected images (tagged by a previous build) on their hosts."""
    import threading
    from concurrent.futures import ThreadPoolExecutor

    from toolkit.driver import MAX_TIMEOUT, full_tags
    from toolkit.errors import ConfigError, HostError, VerifyFailedError
    from toolkit.verify import CheckResult, junit_xml, verify_build

    if not 0 < timeout <= MAX_TIMEOUT:  # else every check "fails" (exit 11): a usage mistake
        raise ConfigError(
            f"--timeout {timeout:g} must be positive and finite",
            hint=f"seconds per check, at most {MAX_TIMEOUT:g}",
        )
    _data, _every, chosen = _load(versions, selectors)
    by_id = {b.id: b for b in chosen}
    clients = _Clients()
    outcome: dict[str, list[CheckResult] | str] = {}
    interrupted = threading.Event()
    try:
        plan = _plan(chosen, hosts_path, host, isolation, not no_preflight, clients)
        by_host: dict[str, list[Assignment]] = {}
        for a in plan:
            by_host.setdefault(a.host.name, []).append(a)

        def run_host(group: list[Assignment]) -> dict[str, list[CheckResult] | str]:
            done: dict[str, list[CheckResult] | str] = {}
            for a in group:
                b = by_id[a.build_id]
                try:
                    if a.error is not None:
                        raise a.error
                    client = clients.connect(a.host)
                    os_type = clients.os_type(a.host, a.facts)
                except ToolkitError as exc:
                    done[b.id] = exc.one_line()
                    continue
                done[b.id] = verify_build(
                    client,
                    full_tags(b, repo)[0],
                    b,
                    os_type,
                    isolation=a.isolation,
                    network=network_checks,
                    timeout=timeout,
                    stop=interrupted.is_set,
                )
            return done

        with ThreadPoolExecutor(max_workers=max(1, len(by_host))) as pool:
            try:
                for part in pool.map(run_host, by_host.values()):
                    outcome.update(part)
            except KeyboardInterrupt:
                # Running checks finish (their containers are removed); no new one starts.
                interrupted.set()
                raise
    finally:
        clients.close()

    suites: dict[str, list[CheckResult]] = {}
    unreachable: list[str] = []
    failed = 0
    for a in plan:
        found = outcome[a.build_id]
        if isinstance(found, str):
            unreachable.append(f"{a.build_id}: {found}")
            continue
        suites[a.build_id] = found
        for check in found:
            failed += not check.passed
            if not as_json:
                verdict = "PASS" if check.passed else "FAIL"
                note = f": {check.message}" if check.message else ""
                typer.echo(f"{verdict} {a.build_id} {check.name} ({check.duration:.1f}s){note}")
    if as_json:
        document = {
            "results": {bid: [c.record() for c in checks] for bid, checks in suites.items()},
            "unreachable": unreachable,
            "ok": failed == 0 and not unreachable,
        }
        typer.echo(json.dumps(document, indent=2))
    if junit is not None:
        from toolkit.render import write_atomic

        write_atomic(junit, junit_xml(suites))
    total = sum(len(c) for c in suites.values())
    typer.echo(f"{total} check(s) on {len(suites)} image(s): {failed} failed", err=True)
    for line in unreachable:
        _report_line(line)
    if unreachable:
        return HostError.exit_code
    return VerifyFailedError.exit_code if failed else 0


def _key_values(items: list[str], flag: str) -> dict[str, str]:
    from toolkit.errors import ConfigError

    found = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"{flag} {item!r} is not KEY=VALUE", hint=f"{flag} KEY=VALUE")
        found[key] = value
    return found


def _jobs(
    plan: list[Assignment], chosen: list[Build], clients: _Clients, out: Path
) -> tuple[list[BuildJob], list[BuildResult]]:
    """A BuildJob per target whose host is fit and answers; a failed result for the others."""
    from toolkit.driver import BuildJob, BuildResult, Outcome

    by_id = {b.id: b for b in chosen}
    jobs: list[BuildJob] = []
    refused: list[BuildResult] = []
    for a in plan:
        b = by_id[a.build_id]
        try:
            if a.error is not None:
                raise a.error
            client = clients.connect(a.host)
            os_type = clients.os_type(a.host, a.facts)
        except ToolkitError as exc:
            refused.append(
                BuildResult(
                    build_id=b.id,
                    host=a.host.name,
                    isolation=a.isolation,
                    outcome=Outcome.FAILED,
                    duration=0.0,
                    message=f"{b.id}: {exc.one_line()}",
                )
            )
            continue
        jobs.append(
            BuildJob(
                build=b,
                context=out / b.directory,
                host=a.host.name,
                client=client,
                isolation=a.isolation,
                os_type=os_type,
            )
        )
    return jobs, refused


def _in_plan_order(plan: list[Assignment], results: Sequence[BuildResult]) -> list[BuildResult]:
    by_id = {r.build_id: r for r in results}
    return [by_id[a.build_id] for a in plan]


def _style() -> str:
    from toolkit.progress import choose_style

    return choose_style(isatty=sys.stderr.isatty(), env=dict(os.environ))


def _observer(style: str) -> tuple[Any, Any]:
    import contextlib

    from toolkit import progress

    if style == "live":
        live = progress.LiveReporter(sys.stderr)
        return live, live
    if style == "github":
        return progress.GitHubReporter(sys.stdout), contextlib.nullcontext()
    return progress.PlainReporter(sys.stdout), contextlib.nullcontext()


def _results_out(
    results: list[BuildResult], report: Path | None, title: str, interrupted: bool
) -> None:
    from toolkit import progress
    from toolkit.errors import OutputError
    from toolkit.render import write_atomic

    typer.echo("")
    typer.echo(progress.summary_text(results), nl=False)
    if report is not None:
        write_atomic(report, progress.report_json(results, interrupted=interrupted))
    step_summary = os.environ.get("GITHUB_STEP_SUMMARY")
    if step_summary:
        try:
            with open(step_summary, "a", encoding="utf-8") as handle:
                handle.write(progress.summary_markdown(results, title) + "\n")
        except OSError as exc:
            raise OutputError(
                f"{step_summary} ($GITHUB_STEP_SUMMARY): cannot append the summary: "
                f"{exc.strerror or exc}",
                hint="point GITHUB_STEP_SUMMARY at a writable file, or unset it",
            ) from None


def _report_line(message: str) -> None:
    if os.environ.get("GITHUB_ACTIONS") == "true":
        print(f"::error::{message}", file=sys.stderr)
    else:
        print(f"error: {message}", file=sys.stderr)


def _report(exc: ToolkitError) -> None:
    message = exc.one_line()
    if os.environ.get("GITHUB_ACTIONS") == "true":
        print(f"::error::{message}", file=sys.stderr)
    else:
        print(f"error: {message}", file=sys.stderr)


def _app_for(args: list[str]) -> typer.Typer:
    """The app, cut down to what this run needs.

    Typer turns every registered command into a click command on each start (about 2-3 ms per
    command, most of it evaluating annotations). A run of one command needs only that command;
    the top-level help needs only the commands' names and docstrings. An unknown command gets the
    whole app, so its "did you mean" answer is unchanged.
    """
    name = next((a for a in args if not a.startswith("-")), None)
    single = typer.Typer(**APP_SETTINGS)
    single.registered_callback = app.registered_callback
    if name is None:  # top-level help (or a usage error about options): names and help only
        for info in app.registered_commands:
            single.command(_command_name(info), help=inspect.getdoc(info.callback))(_help_only)
        return single
    wanted = [c for c in app.registered_commands if _command_name(c) == name]
    if len(wanted) != 1:
        return app
    single.registered_commands = wanted
    return single


def _help_only() -> None:
    """Stands for a command in the top-level help; never run, since a run names its command."""
    raise AssertionError("a help-only command was invoked")


def _command_name(info: Any) -> str:
    callback = info.callback
    return str(info.name or (callback.__name__.replace("_", "-") if callback else ""))


def main(argv: list[str] | None = None) -> None:
    """Entry point: run the app, map outcomes to exit codes, no traceback for user mistakes."""
    from typer.exceptions import Abort, Exit, TyperException

    args = sys.argv[1:] if argv is None else argv
    try:
        result = _app_for(args)(args=args, prog_name="toolkit", standalone_mode=False)
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
