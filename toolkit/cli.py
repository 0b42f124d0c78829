"""The command line. The only module that reads argv and the environment, prints, and exits.

Heavy libraries (the Docker SDK, pywinrm, tree-sitter) are imported inside the commands that
use them, so ``toolkit --help``, ``list`` and ``render`` start fast.
"""

from __future__ import annotations

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


HostsOpt = Annotated[
    Path | None,
    typer.Option(
        "--hosts",
        envvar="TOOLKIT_HOSTS",
        help="hosts.toml: which Docker endpoint builds which Windows release.",
        show_default=False,
    ),
]
HostOverrideOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--host",
        help="RELEASE=URL, overrides hosts.toml for one release (repeatable): 1809=tcp://h:2376",
        show_default=False,
    ),
]
IsolationOpt = Annotated[
    str | None,
    typer.Option(
        "--isolation",
        help="process or hyperv for every target, instead of what preflight chooses.",
        show_default=False,
    ),
]
NoPreflightOpt = Annotated[
    bool,
    typer.Option(
        "--no-preflight",
        help="Skip the engine checks (OSType, API and Windows build); needed for engines the "
        "check does not know, e.g. Linux test engines. Isolation is then the engine's default "
        "unless --isolation is given.",
    ),
]
RepoOpt = Annotated[
    str, typer.Option("--repo", help="Repository name the tags go under.", show_default=True)
]


@dataclass(frozen=True)
class _Target:
    build: Build
    host: str
    isolation: str | None
    spec: object


def _plan(
    chosen: list[Build],
    hosts_path: Path | None,
    host_overrides: list[str] | None,
    isolation: str | None,
    preflight: bool,
) -> tuple[list[_Target], dict[str, object]]:
    """Assign each build a host (preflight checks it unless disabled); connect lazily."""
    from toolkit.hosts import connect, load_hosts
    from toolkit.preflight import plan_assignments

    env = dict(os.environ)
    hosts = load_hosts(hosts_path, host_overrides or [], env)
    clients: dict[str, object] = {}

    def connect_fn(spec: object) -> object:
        key = _host_key(spec)
        if key not in clients:
            clients[key] = connect(spec, env)  # type: ignore[arg-type]
        return clients[key]

    assignments = plan_assignments(
        chosen, hosts, connect_fn, isolation_override=isolation, preflight=preflight
    )
    by_id = {b.id: b for b in chosen}
    targets = [
        _Target(by_id[a.build_id], _host_key(a.host), a.isolation, a.host) for a in assignments
    ]
    return targets, clients


def _host_key(spec: object) -> str:
    return str(getattr(spec, "name", None) or getattr(spec, "url", spec))


@app.command()
def build(
    selectors: SelectorsArg = None,
    versions: VersionsOpt = Path("versions.json"),
    out: OutOpt = Path("dockerfiles"),
    hosts: HostsOpt = None,
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
    from toolkit.driver import BuildJob, BuildSettings, full_tags
    from toolkit.errors import BuildFailedError, ConfigError
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
    _check_isolation(isolation)
    targets, clients = _plan(
        chosen, hosts, host, isolation, preflight=not no_preflight and not dry_run
    )
    if dry_run:
        for t in targets:
            typer.echo(
                f"{t.build.id}\thost={t.host}\tisolation={t.isolation or 'default'}\t"
                f"context={out / t.build.directory}\ttags={','.join(full_tags(t.build, repo))}"
            )
        typer.echo(f"{len(targets)} build(s) planned; nothing built (--dry-run)", err=True)
        return 0

    jobs, unreachable = _jobs(targets, clients, out)
    style = _style()
    observer, live = _observer(style)
    verifier = None if no_verify else make_verifier(observer, network=network_checks)
    with live:
        for result in unreachable:
            observer.finished(result)
        summary = run_builds(
            [j for j in jobs if isinstance(j, BuildJob)],
            settings,
            observer,
            jobs_per_host=jobs_per_host,
            fail_fast=fail_fast,
            verifier=verifier,
        )
    results = _merge(targets, summary.results, unreachable)
    _results_out(results, report, "toolkit build", summary.interrupted)
    if summary.interrupted:
        return 130
    failed = [r for r in results if not r.outcome.ok]
    if not failed:
        return 0
    only_verify = all(r.outcome.value == "verify-failed" for r in failed)
    code = 11 if only_verify else BuildFailedError.exit_code
    _report_line(
        f"{len(failed)} of {len(results)} target(s) failed: {', '.join(r.build_id for r in failed)}"
    )
    return code


@app.command()
def verify(
    selectors: SelectorsArg = None,
    versions: VersionsOpt = Path("versions.json"),
    hosts: HostsOpt = None,
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
    from concurrent.futures import ThreadPoolExecutor

    from toolkit.driver import full_tags
    from toolkit.errors import HostError
    from toolkit.hosts import connect
    from toolkit.verify import CheckResult, junit_xml, verify_build

    _data, _every, chosen = _load(versions, selectors)
    _check_isolation(isolation)
    targets, clients = _plan(chosen, hosts, host, isolation, preflight=not no_preflight)
    env = dict(os.environ)
    by_host: dict[str, list[_Target]] = {}
    for t in targets:
        by_host.setdefault(t.host, []).append(t)

    def run_host(group: list[_Target]) -> dict[str, list[CheckResult] | str]:
        done: dict[str, list[CheckResult] | str] = {}
        try:
            client = clients.get(group[0].host) or connect(group[0].spec, env)  # type: ignore[arg-type]
            os_type = str(client.info().get("OSType", "windows"))  # type: ignore[attr-defined]
        except Exception as exc:
            error = exc.one_line() if isinstance(exc, ToolkitError) else " ".join(str(exc).split())
            return {t.build.id: f"{group[0].host}: engine unreachable: {error}" for t in group}
        for t in group:
            done[t.build.id] = verify_build(
                client,
                full_tags(t.build, repo)[0],
                t.build.line.version,
                t.build.line.pip_version,
                os_type,
                isolation=t.isolation,
                network=network_checks,
                timeout=timeout,
            )
        return done

    outcome: dict[str, list[CheckResult] | str] = {}
    with ThreadPoolExecutor(max_workers=max(1, len(by_host))) as pool:
        for part in pool.map(run_host, by_host.values()):
            outcome.update(part)

    suites: dict[str, list[CheckResult]] = {}
    unreachable: list[str] = []
    failed = 0
    for t in targets:
        found = outcome[t.build.id]
        if isinstance(found, str):
            unreachable.append(f"{t.build.id}: {found}")
            continue
        suites[t.build.id] = found
        for check in found:
            failed += not check.passed
            if not as_json:
                verdict = "PASS" if check.passed else "FAIL"
                note = f": {check.message}" if check.message else ""
                typer.echo(f"{verdict} {t.build.id} {check.name} ({check.duration:.1f}s){note}")
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
    return 11 if failed else 0


def _key_values(items: list[str], flag: str) -> dict[str, str]:
    from toolkit.errors import ConfigError

    found = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"{flag} {item!r} is not KEY=VALUE", hint=f"{flag} KEY=VALUE")
        found[key] = value
    return found


def _check_isolation(isolation: str | None) -> None:
    from toolkit.errors import ConfigError

    if isolation is not None and isolation not in ("process", "hyperv", "default"):
        raise ConfigError(
            f"--isolation {isolation!r} is not an isolation mode", hint="use process or hyperv"
        )


def _jobs(
    targets: list[_Target], clients: dict[str, object], out: Path
) -> tuple[list[object], list[object]]:
    """A BuildJob per target whose host answers; a failed result for the others."""
    from toolkit.driver import BuildJob, BuildResult, Outcome
    from toolkit.errors import ToolkitError
    from toolkit.hosts import connect

    env = dict(os.environ)
    jobs: list[object] = []
    unreachable: list[object] = []
    errors: dict[str, str] = {}
    os_types: dict[str, str] = {}
    for t in targets:
        if t.host not in clients and t.host not in errors:
            try:
                clients[t.host] = connect(t.spec, env)  # type: ignore[arg-type]
            except ToolkitError as exc:
                errors[t.host] = exc.one_line()
        if t.host in clients and t.host not in os_types:
            try:
                os_types[t.host] = str(clients[t.host].info().get("OSType", "windows"))  # type: ignore[attr-defined]
            except Exception as exc:
                errors[t.host] = f"{t.host}: engine does not answer: {' '.join(str(exc).split())}"
                del clients[t.host]
        if t.host in errors:
            unreachable.append(
                BuildResult(
                    build_id=t.build.id,
                    host=t.host,
                    isolation=t.isolation,
                    outcome=Outcome.FAILED,
                    duration=0.0,
                    message=f"{t.build.id}: {errors[t.host]}",
                )
            )
            continue
        jobs.append(
            BuildJob(
                build=t.build,
                context=out / t.build.directory,
                host=t.host,
                client=clients[t.host],
                isolation=t.isolation,
                os_type=os_types[t.host],
            )
        )
    return jobs, unreachable


def _merge(
    targets: list[_Target], built: Sequence[object], unreachable: Sequence[object]
) -> list[Any]:
    by_id = {r.build_id: r for r in [*built, *unreachable]}  # type: ignore[attr-defined]
    return [by_id[t.build.id] for t in targets]


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


def _results_out(results: list[Any], report: Path | None, title: str, interrupted: bool) -> None:
    from toolkit import progress
    from toolkit.render import write_atomic

    typer.echo("")
    typer.echo(progress.summary_text(results), nl=False)
    if report is not None:
        write_atomic(report, progress.report_json(results, interrupted=interrupted))
    step_summary = os.environ.get("GITHUB_STEP_SUMMARY")
    if step_summary:
        with open(step_summary, "a", encoding="utf-8") as handle:
            handle.write(progress.summary_markdown(results, title) + "\n")


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


def main(argv: list[str] | None = None) -> None:
    """Entry point: run the app, map outcomes to exit codes, no traceback for user mistakes."""
    import click

    try:
        result = app(args=argv, prog_name="toolkit", standalone_mode=False)
    except ToolkitError as exc:
        if STATE.debug:
            raise
        _report(exc)
        sys.exit(exc.exit_code)
    except click.exceptions.NoArgsIsHelpError as exc:
        exc.show()
        sys.exit(2)
    except click.exceptions.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except (KeyboardInterrupt, click.exceptions.Abort):
        print("interrupted", file=sys.stderr)
        sys.exit(130)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    sys.exit(result if isinstance(result, int) else 0)
