"""Fixtures for the tests that run real Docker Engines (see engines.py for the recipe).

Every test under tests/docker is marked ``docker``. They skip, with the reason, only when the
machine cannot run the engines at all (not root, or dockerd/busybox-static/openssl missing);
CI runs as root with everything installed, so there they run.

At configure time (before any test and any thread starts) the pytest process creates a network
namespace with only ``lo`` and moves itself into it: the TLS engine on 127.0.0.1:2376 and the
registry on 127.0.0.1:5000 listen inside that namespace, and everything the tests start
(threads, ``python -m toolkit`` subprocesses) inherits it, so nothing can reach beyond loopback.
At the end the engines are stopped by pid, their mounts and directories removed, the process
returns to its own namespace and the namespace is deleted.

Fixtures:
    engines                -> dict[str, Engine]: "ltsc2016", "1803", "1809" (1809 also over TLS),
                              each with the stand-ins mcr.microsoft.com/windows/servercore:
                              {ltsc2016,1803,1809,ltsc2022,ltsc2025} and .../nanoserver:
                              {1809,ltsc2022,ltsc2025} (session)
    engine_factory         -> (name, release) -> Engine: a disposable extra engine with the
                              stand-ins, stopped after the test (for tests that kill one)
    standin_python_version -> "3.11.7": the Python inside the stand-ins
    standin_pip_version    -> "23.2.1": the pip inside the stand-ins
    registry               -> "127.0.0.1:5000" (Debian docker-registry, session)
    bogus_ca               -> Path of an unrelated CA certificate (for CA-override tests)
    tls_material           -> (server, client) TLSPaths of the TLS engine

The stand-ins (engines.py): /bin/busybox with its applets, this interpreter as ``python`` and
``pip`` on PATH (installed at ``/C:\\Python``, where the Windows installer puts it),
``powershell`` (appends its argv as one JSON line to /powershell.log; exits 1 when the script
contains ``TOOLKIT_STANDIN_FAIL``; sleeps N s on ``TOOLKIT_STANDIN_SLEEP=N``) and ``cmd``
(``cmd /Q /S /C echo hi`` prints ``hi``); ``ENV TOOLKIT_STANDIN_RELEASE=<tag>``. The Nano Server
stand-ins have no Python and no powershell; ``cmd``, ``setx`` (logs to /setx.log), the users
ContainerAdministrator and ContainerUser (default), and ``python``/``pip`` that run what a
build copies to ``/C:\\Python``.
While the namespace is in use, ``TOOLKIT_TEST_NETNS`` names it (tests/windows skip then).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from tests.docker import engines as eng

RELEASES = ("ltsc2016", "1803", "1809")
NETNS_ENV = "TOOLKIT_TEST_NETNS"
NETNS_PREFIX = "tk-test-"
ROOT_PREFIX = "tk-"
TLS_ENGINE = "1809"
_HERE = Path(__file__).resolve().parent

_netns_key = pytest.StashKey[eng.Netns | None]()
_timings_key = pytest.StashKey[dict[str, float]]()


def pytest_configure(config: pytest.Config) -> None:
    config.stash[_timings_key] = {}
    config.stash[_netns_key] = None
    if eng.skip_reason() is not None:
        return
    eng.remove_stale_netns(NETNS_PREFIX)
    eng.remove_stale_roots(Path("/tmp"), ROOT_PREFIX)
    netns = eng.Netns(f"{NETNS_PREFIX}{os.getpid()}")
    netns.create()
    try:
        netns.enter()
    except Exception:
        netns.delete()
        raise
    config.stash[_netns_key] = netns
    # Tests that need the real network (tests/windows) look for this and skip.
    os.environ[NETNS_ENV] = netns.name


def pytest_unconfigure(config: pytest.Config) -> None:
    netns = config.stash.get(_netns_key, None)
    if netns is not None:
        netns.leave()
        netns.delete()
        os.environ.pop(NETNS_ENV, None)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if _HERE in Path(str(item.path)).resolve().parents:
            item.add_marker(pytest.mark.docker)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    timings = terminalreporter.config.stash.get(_timings_key, {})
    if timings:
        text = ", ".join(f"{key} {value:.2f}s" for key, value in timings.items())
        terminalreporter.write_line(f"docker engines: {text}")


@pytest.fixture(autouse=True)
def _require_engines() -> None:
    reason = eng.skip_reason()
    if reason is not None:
        pytest.skip(reason)


@pytest.fixture(scope="session")
def _netns(pytestconfig: pytest.Config) -> eng.Netns:
    netns = pytestconfig.stash.get(_netns_key, None)
    if netns is None:
        pytest.skip(eng.skip_reason() or "the test network namespace could not be created")
    return netns


@pytest.fixture(scope="session")
def _engines_root() -> Iterator[Path]:
    # Short paths: containerd's sockets live under each exec-root (108-byte sun_path limit).
    root = Path(tempfile.mkdtemp(prefix=ROOT_PREFIX, dir="/tmp"))
    yield root
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def _standin_tar(_engines_root: Path, pytestconfig: pytest.Config) -> Path:
    with eng.timed(pytestconfig.stash[_timings_key], "stand-in rootfs tar"):
        return eng.standin_rootfs(_engines_root / "standin-rootfs.tar")


@pytest.fixture(scope="session")
def _nanoserver_tar(_engines_root: Path, pytestconfig: pytest.Config) -> Path:
    with eng.timed(pytestconfig.stash[_timings_key], "nanoserver stand-in rootfs tar"):
        return eng.nanoserver_rootfs(_engines_root / "standin-nanoserver-rootfs.tar")


@pytest.fixture(scope="session")
def tls_material(_engines_root: Path) -> tuple[eng.TLSPaths, eng.TLSPaths]:
    """(server, client) certificates of the TLS engine, made with openssl."""
    return eng.make_tls_pair(_engines_root / "certs")


@pytest.fixture(scope="session")
def bogus_ca(_engines_root: Path) -> Path:
    """A CA certificate that signed nothing the engines use."""
    cert, _key = eng.make_ca(_engines_root / "bogus", "bogus-ca")
    return cert


@pytest.fixture(scope="session")
def engines(
    _netns: eng.Netns,
    _engines_root: Path,
    _standin_tar: Path,
    _nanoserver_tar: Path,
    tls_material: tuple[eng.TLSPaths, eng.TLSPaths],
    pytestconfig: pytest.Config,
) -> Iterator[dict[str, eng.Engine]]:
    timings = pytestconfig.stash[_timings_key]
    server, client = tls_material
    started: dict[str, eng.Engine] = {}
    try:
        with eng.timed(timings, "engines start (3, sequential)"):
            for release in RELEASES:
                tls = release == TLS_ENGINE
                started[release] = eng.start_engine(
                    name=release,
                    release=release,
                    root=_engines_root / f"e{release}",
                    netns=_netns,
                    tls_server=server if tls else None,
                    tls_client=client if tls else None,
                )
        with eng.timed(timings, "stand-ins load (3 engines x 8 images, parallel)"):
            _load_all(list(started.values()), _standin_tar, _nanoserver_tar)
        yield started
    finally:
        for engine in started.values():
            eng.stop_engine(engine, _netns)


def _load_all(targets: list[eng.Engine], tar: Path, nanoserver: Path) -> None:
    def load(engine: eng.Engine) -> None:
        client = engine.client()
        try:
            eng.load_standins(client, tar, eng.SERVERCORE_TAGS, nanoserver, eng.NANOSERVER_TAGS)
        finally:
            client.close()

    with ThreadPoolExecutor(max_workers=len(targets)) as pool:
        for future in [pool.submit(load, e) for e in targets]:
            future.result()


@pytest.fixture
def engine_factory(
    _netns: eng.Netns, _engines_root: Path, _standin_tar: Path, _nanoserver_tar: Path
) -> Iterator[Callable[[str, str], eng.Engine]]:
    """Start disposable engines (stand-ins loaded); all are stopped when the test ends."""
    made: list[eng.Engine] = []

    def make(name: str, release: str) -> eng.Engine:
        root = Path(tempfile.mkdtemp(prefix="x", dir=_engines_root))
        engine = eng.start_engine(name=name, release=release, root=root, netns=_netns)
        made.append(engine)
        _load_all([engine], _standin_tar, _nanoserver_tar)
        return engine

    yield make
    for engine in made:
        eng.stop_engine(engine, _netns)


@pytest.fixture(scope="module")
def clients(engines: dict[str, eng.Engine]) -> Iterator[dict[str, Any]]:
    """One docker client per engine (over its unix socket), closed after the module."""
    made = {release: e.client() for release, e in engines.items()}
    yield made
    for client in made.values():
        client.close()


@pytest.fixture(scope="session")
def standin_python_version() -> str:
    """The Python version inside the stand-in base images (this interpreter's)."""
    return eng.standin_python_version()


@pytest.fixture(scope="session")
def standin_pip_version() -> str:
    version = eng.standin_pip_version()
    if version is None:
        pytest.skip("this interpreter has no pip to copy into the stand-ins")
    return version


@pytest.fixture(scope="session")
def registry(_netns: eng.Netns, _engines_root: Path) -> Iterator[str]:
    """A real registry (Debian docker-registry) on 127.0.0.1:5000, plain HTTP, empty."""
    if shutil.which("docker-registry") is None:
        pytest.skip("docker-registry is not installed (Debian: apt-get install docker-registry)")
    started = eng.start_registry(_engines_root / "registry", _netns)
    try:
        yield started.address
    finally:
        eng.stop_registry(started)
