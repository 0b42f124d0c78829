"""Checks of a built image, each in its own throwaway container.

The checks are those of the official images, adapted for Windows: the interpreter's version
equals the pinned one; pip runs under this Python (and is the pinned version, for a line that pins
it); the compression modules round-trip (``compression.zstd`` too from 3.14); sqlite3 works in
memory; deep recursion in a thread does not crash; setuptools and wheel are absent from 3.12 on
(the official images' rule: neither ensurepip nor get-pip installs them there any more); an
overridden command's output comes back intact; and (opt-in, needs the network) ``pip install``
of a small package.

Every command is an argv list run in exec form, so it means the same on a Windows image and a
Linux stand-in. On a nanoserver image each command (but the override check, which is already a
``cmd`` command line) runs as ``cmd /S /C <command>``: cmd is Nano Server's only shell, the
way its users run Python, and it sees the PATH the Dockerfile set with ``setx``. So the Python
programs are one line each, free of the characters cmd would interpret (``" % ^ & | < > !``).
The one command that is platform-specific (the overridden command) comes from
``OVERRIDE_COMMANDS`` keyed by the engine's ``OSType``: ``cmd /Q /S /C echo`` on Windows (what
the official images test), ``echo`` (busybox applet) on the Linux stand-ins the test suite uses.
Containers are removed whatever happens, also on timeout, and on Ctrl-C or SIGTERM: the target's
``Canceller`` cuts the wait for the running check's container, whose removal then stops it.
"""

from __future__ import annotations

import contextlib
import functools
import re
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from toolkit.cancel import Canceller, cancellable, check_timeout
from toolkit.errors import (
    ConfigError,
    HostError,
    Interrupted,
    Terminated,
    ToolkitError,
    VerifyFailedError,
)
from toolkit.hosts import HostSelection
from toolkit.imagenames import check_repository
from toolkit.matrix import Build, select_builds
from toolkit.preflight import ClientSource, Target, plan_targets
from toolkit.results import CheckResult, VerifyResult
from toolkit.runner import run_planned

OVERRIDE_TOKEN = "toolkit-override-cmd-ok"
OVERRIDE_COMMANDS: Mapping[str, tuple[str, ...]] = {
    "windows": ("cmd", "/Q", "/S", "/C", "echo", OVERRIDE_TOKEN),
    "linux": ("echo", OVERRIDE_TOKEN),
}
# How each check's command runs, by image flavor: Nano Server's through its shell (see above).
FLAVOR_PREFIXES: Mapping[str, tuple[str, ...]] = {
    "windowsservercore": (),
    "nanoserver": ("cmd", "/S", "/C"),
}
# Characters cmd.exe would interpret in a command line, even inside quotes (% and !) or outside.
CMD_SPECIAL = frozenset('"%^&|<>!')


def _compression(modules: Sequence[str]) -> str:
    """A one-line program: each module round-trips 128 KiB and compresses it."""
    imports = "; ".join(
        "from compression import zstd" if m == "zstd" else f"import {m}" for m in modules
    )
    table = ", ".join(f"{m}={m}" for m in modules)
    return (
        f"{imports}; data = bytes(range(256)) * 512; mods = dict({table}); "
        "bad = [n for n, m in mods.items() if not m.decompress(m.compress(data)) == data "
        "or len(m.compress(data)) not in range(len(data))]; "
        "assert not bad, bad; print(' '.join(mods), 'ok')"
    )


_SQLITE = (
    "import sqlite3; db = sqlite3.connect(':memory:'); "
    "db.execute('create table t (k integer primary key, v text)'); "
    "db.executemany('insert into t (v) values (?)', [('a',), ('b',), ('c',)]); "
    "rows = db.execute('select k, v from t order by k').fetchall(); "
    "assert rows == [(1, 'a'), (2, 'b'), (3, 'c')], rows; "
    "print('sqlite', sqlite3.sqlite_version, 'ok')"
)
# Recursion close to the default limit in a non-main thread: crashes where the thread stack is
# smaller than the interpreter assumes.
_STACK = (
    "import sys, threading; depth = sys.getrecursionlimit() - 50; "
    "down = lambda n: 0 if n == 0 else 1 + down(n - 1); out = []; "
    "t = threading.Thread(target=lambda: out.append(down(depth))); t.start(); t.join(); "
    "assert out == [depth], out; print('recursion depth', depth, 'in a thread ok')"
)
_NO_SETUPTOOLS = (
    "import importlib.util as u; "
    "found = [m for m in ('setuptools', 'wheel') if u.find_spec(m)]; "
    "assert not found, 'installed: ' + ', '.join(found); print('setuptools and wheel absent')"
)

CHECK_LABEL = "io.github.windows-python-images.toolkit.check"
"""The label of every check container (its value is the check's name)."""

PIP_RE = re.compile(
    r"^pip (?P<version>\S+) from (?P<where>.+) \(python (?P<python>[0-9]+\.[0-9]+)\)\Z"
)
VERSION_RE = re.compile(r"^(?P<major>[0-9]+)\.(?P<minor>[0-9]+)\.")
# Characters XML 1.0 cannot carry at all, not even escaped (ANSI colour codes, NUL, ...).
_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


@dataclass(frozen=True, kw_only=True)
class Check:
    """One check: an argv to run and a judge of its exit code and output."""

    name: str
    argv: tuple[str, ...]
    judge: Callable[[int, str], str | None]  # returns a failure message, or None
    network: bool = False
    # What a passing check found, worth saying (pip-version without a pin: the pip version).
    report: Callable[[str], str | None] | None = None


def _exit_zero(code: int, output: str) -> str | None:
    return None if code == 0 else f"exited {code}"


def _equals(expected: str, what: str) -> Callable[[int, str], str | None]:
    def judge(code: int, output: str) -> str | None:
        got = output.strip()
        if code != 0:
            return f"exited {code}"
        if got != expected:
            return f"{what}: expected {expected!r}, got {got!r}"
        return None

    return judge


def _pip_judge(expected: str | None, python: str | None) -> Callable[[int, str], str | None]:
    """``pip --version``: pip runs under ``python`` (X.Y); and is ``expected``, when pinned."""

    def judge(code: int, output: str) -> str | None:
        if code != 0:
            return f"exited {code}"
        match = PIP_RE.match(output.strip())
        if match is None:
            return f"pip --version printed {output.strip()!r}, not 'pip <version> from ... (python X.Y)'"
        if expected is not None and match["version"] != expected:
            return f"pip version: expected {expected} (PYTHON_PIP_VERSION), got {match['version']}"
        if python is not None and match["python"] != python:
            return f"pip {match['version']} runs under Python {match['python']}, not {python}"
        return None

    return judge


def _pip_report(output: str) -> str | None:
    match = PIP_RE.match(output.strip())
    return f"pip {match['version']} (python {match['python']})" if match else None


def _major_minor(version: str) -> tuple[int, int] | None:
    match = VERSION_RE.match(version)
    return (int(match["major"]), int(match["minor"])) if match else None


def checks_for(
    python_version: str,
    pip_version: str | None,
    os_type: str,
    *,
    network: bool = False,
    flavor: str = "windowsservercore",
) -> list[Check]:
    """The checks for an image of ``flavor`` that should carry ``python_version`` and, when
    pinned, ``pip_version`` (None: pip came with the installer, any version)."""
    override = OVERRIDE_COMMANDS.get(os_type)
    if override is None:
        raise ConfigError(
            f"no override-cmd check for engine OSType {os_type!r}",
            hint=f"known: {', '.join(OVERRIDE_COMMANDS)}",
        )
    prefix = FLAVOR_PREFIXES.get(flavor)
    if prefix is None:
        raise ConfigError(
            f"no checks for image flavor {flavor!r}", hint=f"known: {', '.join(FLAVOR_PREFIXES)}"
        )
    line = _major_minor(python_version)
    modules = ["bz2", "lzma", "zlib", *(["zstd"] if line is not None and line >= (3, 14) else [])]
    found = [
        Check(
            name="python-version",
            argv=(*prefix, "python", "--version"),
            judge=_equals(f"Python {python_version}", "python --version (PYTHON_VERSION)"),
        ),
        Check(
            name="pip-version",
            argv=(*prefix, "pip", "--version"),
            judge=_pip_judge(pip_version, f"{line[0]}.{line[1]}" if line else None),
            report=_pip_report if pip_version is None else None,
        ),
        Check(
            name="python-imports",
            argv=(*prefix, "python", "-c", _compression(modules)),
            judge=_exit_zero,
        ),
        Check(name="python-sqlite3", argv=(*prefix, "python", "-c", _SQLITE), judge=_exit_zero),
        Check(name="python-stack-size", argv=(*prefix, "python", "-c", _STACK), judge=_exit_zero),
    ]
    if line is not None and line >= (3, 12):
        found.append(
            Check(
                name="no-setuptools-wheel",
                argv=(*prefix, "python", "-c", _NO_SETUPTOOLS),
                judge=_exit_zero,
            )
        )
    found.append(Check(name="override-cmd", argv=override, judge=_equals(OVERRIDE_TOKEN, "output")))
    if network:
        found.append(
            Check(
                name="pip-install",
                argv=(
                    *prefix,
                    "pip",
                    "install",
                    "--no-cache-dir",
                    "--disable-pip-version-check",
                    "--no-deps",
                    "six",
                ),
                judge=_exit_zero,
                network=True,
            )
        )
    return found


def build_checks(build: Build, os_type: str, *, network: bool = False) -> list[Check]:
    """The checks of one target of the matrix, on an engine of ``os_type``."""
    return checks_for(
        build.line.version,
        build.line.pip_version,
        os_type,
        network=network,
        flavor=build.variant.flavor,
    )


def run_check(
    client: Any,
    image: str,
    check: Check,
    *,
    isolation: str | None = None,
    timeout: float = 300.0,
    canceller: Canceller | None = None,
) -> CheckResult:
    """Run one check in a fresh container; the container is removed whatever happens.

    ``canceller`` (Ctrl-C) wakes the wait for the container; the check then fails with the
    canceller's reason, and its container is removed (which stops it) before this returns.
    """
    api = client.api
    canceller = canceller or Canceller()
    start = time.monotonic()
    container: str | None = None
    output = ""
    try:
        host_config = api.create_host_config(
            network_mode=None if check.network else "none", isolation=isolation
        )
        created = api.create_container(
            image,
            command=list(check.argv),
            host_config=host_config,
            network_disabled=not check.network,
            labels={CHECK_LABEL: check.name},
        )
        container = created["Id"]
        if canceller.reason is not None:
            raise _Cancelled()
        api.start(container)
        with cancellable(api, canceller, "/wait"):
            status = api.wait(container, timeout=timeout)
        code = int(status.get("StatusCode", -1))
        output = api.logs(container, stdout=True, stderr=True).decode("utf-8", "replace")
        message = check.judge(code, output)
        if message is None and check.report is not None:
            return _result(check, image, start, output, None, check.report(output))
    except Exception as exc:
        message = canceller.reason or _check_error(exc, timeout)
    finally:
        if container is not None:
            with contextlib.suppress(Exception):
                api.remove_container(container, force=True)
    return _result(check, image, start, output, message)


def _result(
    check: Check,
    image: str,
    start: float,
    output: str,
    failure: str | None,
    report: str | None = None,
) -> CheckResult:
    return CheckResult(
        name=check.name,
        image=image,
        passed=failure is None,
        duration=time.monotonic() - start,
        argv=check.argv,
        output=output,
        message=failure if failure is not None else report,
    )


class _Cancelled(Exception):
    """The target was cancelled between creating a check's container and starting it."""


def _check_error(exc: BaseException, timeout: float) -> str:
    import docker.errors
    import requests.exceptions

    if isinstance(exc, requests.exceptions.ReadTimeout | requests.exceptions.ConnectionError):
        if isinstance(exc, requests.exceptions.ReadTimeout) or "timed out" in str(exc):
            return f"did not finish within {timeout:g} s"
        return f"engine unreachable: {' '.join(str(exc).split())}"
    if isinstance(exc, docker.errors.ImageNotFound):
        return f"image not found: {getattr(exc, 'explanation', exc)}"
    if isinstance(exc, docker.errors.APIError):
        return f"the engine refused: {' '.join(str(getattr(exc, 'explanation', exc)).split())}"
    return f"{type(exc).__name__}: {exc}"


def verify_image(
    client: Any,
    image: str,
    checks: Sequence[Check],
    *,
    isolation: str | None = None,
    timeout: float = 300.0,
    canceller: Canceller | None = None,
) -> list[CheckResult]:
    """Run ``checks`` one after another; ``canceller`` (Ctrl-C) cuts the running check and no
    other starts."""
    canceller = canceller or Canceller()
    results = []
    for check in checks:
        if canceller.cancelled:
            break
        results.append(
            run_check(
                client, image, check, isolation=isolation, timeout=timeout, canceller=canceller
            )
        )
    return results


def junit_xml(suites: Mapping[str, Sequence[CheckResult]]) -> str:
    """JUnit XML: one testsuite per target (build id), one testcase per check."""
    import xml.etree.ElementTree as ET

    root = ET.Element("testsuites", name="toolkit verify")
    total = failures = 0
    for suite_name, results in suites.items():
        suite = ET.SubElement(
            root,
            "testsuite",
            name=suite_name,
            tests=str(len(results)),
            failures=str(sum(not r.passed for r in results)),
            errors="0",
            skipped="0",
            time=f"{sum(r.duration for r in results):.3f}",
        )
        for result in results:
            case = ET.SubElement(
                suite,
                "testcase",
                classname=suite_name,
                name=result.name,
                time=f"{result.duration:.3f}",
            )
            if not result.passed:
                failure = ET.SubElement(case, "failure", message=_xml(result.message or "failed"))
                failure.text = _xml(f"argv: {list(result.argv)}\n{result.output}")
            out = ET.SubElement(case, "system-out")
            out.text = _xml(result.output)
        total += len(results)
        failures += sum(not r.passed for r in results)
    root.set("tests", str(total))
    root.set("failures", str(failures))
    ET.indent(root)
    return ET.tostring(root, encoding="unicode", xml_declaration=True) + "\n"


@functools.cache
def _not_xml() -> re.Pattern[str]:
    """Characters XML 1.0 cannot carry at all, not even escaped (ANSI colour codes, NUL, ...).
    Compiled on first use: the class spans all of Unicode and takes milliseconds to compile,
    which every ``toolkit build`` start would pay for a JUnit file it does not write."""
    return re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def _xml(text: str) -> str:
    """``text`` with what XML cannot hold written as ``\\xNN``: ElementTree would write it raw
    and the file would not parse."""
    return _not_xml().sub(lambda m: f"\\x{ord(m[0]):02x}", text)


def verify_build(
    client: Any,
    image: str,
    build: Build,
    os_type: str,
    *,
    isolation: str | None = None,
    network: bool = False,
    timeout: float = 300.0,
    canceller: Canceller | None = None,
) -> list[CheckResult]:
    """All checks of one target's image (``image`` is one of its tags)."""
    checks = build_checks(build, os_type, network=network)
    return verify_image(
        client, image, checks, isolation=isolation, timeout=timeout, canceller=canceller
    )


def failure_summary(results: Sequence[CheckResult]) -> str | None:
    """``2 of 6 checks failed: python-version (...); pip-version (...)``, or None if all passed."""
    failed = [r for r in results if not r.passed]
    if not failed:
        return None
    detail = "; ".join(f"{r.name}: {r.message}" for r in failed)
    return f"{len(failed)} of {len(results)} checks failed: {detail}"


# -- toolkit verify: the selected images on their hosts ----------------------------------------


@dataclass(frozen=True, kw_only=True)
class VerifyRequest:
    """Everything ``toolkit verify`` was asked to do."""

    versions: Path
    selectors: tuple[str, ...] = ()
    hosts: HostSelection = field(default_factory=HostSelection)
    repo: str = "python"
    network: bool = False
    timeout: float = 300.0

    def __post_init__(self) -> None:
        # Else every check "fails" (exit 11): a usage mistake, not a broken image.
        check_timeout(self.timeout, what="seconds per check")
        check_repository(self.repo)


@dataclass(frozen=True, kw_only=True)
class VerifyRun:
    """One result per selected build, in matrix order."""

    results: tuple[VerifyResult, ...]
    interrupted: bool = False
    terminated: bool = False

    def failure(self) -> ToolkitError | None:
        """The error the run ends with, if any (the exit code comes from its class)."""
        if self.interrupted:
            return Terminated() if self.terminated else Interrupted()
        unreachable = [r for r in self.results if r.error is not None]
        if unreachable:
            names = ", ".join(r.build_id for r in unreachable)
            return HostError(
                f"{len(unreachable)} of {len(self.results)} target(s) not verified: {names}",
                hint="their hosts could not be reached or were refused; see above",
            )
        failed = [r for r in self.results if r.failed]
        if failed:
            count = sum(len(r.failed) for r in failed)
            names = ", ".join(r.build_id for r in failed)
            return VerifyFailedError(f"{count} check(s) failed on {names}")
        return None


class VerifyWork:
    """The runner's per-target work for ``verify``: every check, one after another."""

    def __init__(self, request: VerifyRequest) -> None:
        self._request = request

    def host(self, job: Target) -> str:
        return job.host

    def run(self, job: Target, canceller: Canceller, interrupt: threading.Event) -> VerifyResult:
        checks = verify_build(
            job.client,
            f"{self._request.repo}:{job.build.tags[0]}",
            job.build,
            job.os_type,
            isolation=job.isolation,
            network=self._request.network,
            timeout=self._request.timeout,
            canceller=canceller,
        )
        return VerifyResult(
            build_id=job.build.id,
            host=job.host,
            checks=tuple(checks),
            interrupted=canceller.cancelled or interrupt.is_set(),
        )

    def failed(self, job: Target, why: str) -> VerifyResult:
        return VerifyResult(build_id=job.build.id, host=job.host, error=why)

    def not_run(self, job: Target, why: str, interrupted: bool) -> VerifyResult:
        return VerifyResult(build_id=job.build.id, host=job.host, interrupted=True)

    def still_running(self, job: Target) -> VerifyResult:
        return VerifyResult(build_id=job.build.id, host=job.host, interrupted=True)

    def ok(self, result: VerifyResult) -> bool:
        return result.ok

    def finished(self, result: VerifyResult) -> None:
        pass  # the lines are printed in plan order at the end


def run_verify(request: VerifyRequest, env: Mapping[str, str], clients: ClientSource) -> VerifyRun:
    """Run the checks on the images a previous build tagged, each target on its host; hosts in
    parallel, the targets of one host one after another. Ctrl-C or SIGTERM: the running checks
    are cut and their containers removed; no new one starts."""
    builds = select_builds(request.versions, request.selectors).chosen
    selection = request.hosts
    plan = plan_targets(
        builds, selection.load(env), clients, selection.isolation, selection.preflight
    )
    results, summary = run_planned(
        plan,
        plan.targets,
        VerifyWork(request),
        lambda a, why: VerifyResult(build_id=a.build_id, host=a.host.name, error=why.one_line()),
        lambda r: r.build_id,
    )
    return VerifyRun(
        results=results,
        interrupted=summary.interrupted,
        terminated=summary.terminated,
    )
