"""Real Docker Engines for the test suite, standing in for the Windows hosts.

Each engine is Debian's ``dockerd`` with its own data-root, exec-root, pidfile and unix socket,
started inside one network namespace that has nothing but ``lo`` (the machine may only talk to
loopback). The recipe and its traps are in REFERENCE.md:

* the namespace is made with ``ip netns add`` + ``ip link set lo up``, but dockerd is started
  with ``nsenter --net=/run/netns/NAME`` (``ip netns exec`` remounts /sys and dockerd then
  fails with "Devices cgroup isn't mounted");
* dockerd runs with ``--bridge=none --iptables=false --ip6tables=false --ip-masq=false``;
* a daemon is stopped by its pid, and the nsfs mount it leaves in its exec-root is unmounted.

A unix socket works from any namespace, a TCP listener only inside its own. So that tests can
reach the TLS engine on ``tcp://127.0.0.1:2376``, the pytest process itself moves into the
namespace (:func:`enter_netns`, ``setns(2)`` through ctypes) from the main thread while it is
the only thread. Every thread and subprocess started afterwards (the driver's worker threads,
``python -m toolkit`` in a subprocess) inherits it, which also guarantees that nothing the tests
run can reach anything but loopback.

The Windows base images are replaced by Linux stand-ins tagged
``mcr.microsoft.com/windows/servercore:<tag>`` and ``mcr.microsoft.com/windows/nanoserver:<tag>``
(see :func:`standin_rootfs`, :func:`nanoserver_rootfs` and :func:`load_standins`), built locally
from local root filesystem tars and never pulled.

The Server Core stand-in has Python "installed" where the real installer puts it, ``C:\\Python``:
on Linux that is a directory named ``C:\\Python`` at the root (``/python`` links to it, for PATH,
whose separator is ``:``). So the rendered nanoserver Dockerfile's ``COPY --from=installer
C:\\\\Python C:\\\\Python`` runs unchanged on a Linux engine: a relative path, resolved against
the root of the installer stage and of the Nano Server stage. The Nano Server stand-in has no
Python and no ``powershell``; its ``python`` and ``pip`` run what that COPY brought, or fail.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import sysconfig
import tarfile
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

CLONE_NEWNET = 0x40000000
MNT_DETACH = 2
TLS_ADDRESS = "127.0.0.1:2376"
REGISTRY_ADDRESS = "127.0.0.1:5000"
STANDIN_REPOSITORY = "mcr.microsoft.com/windows/servercore"
NANOSERVER_REPOSITORY = "mcr.microsoft.com/windows/nanoserver"
SERVERCORE_TAGS = ("ltsc2016", "1803", "1809", "ltsc2022", "ltsc2025")
NANOSERVER_TAGS = ("1809", "ltsc2022", "ltsc2025")
API_VERSION = "1.41"  # Debian's dockerd 20.10

# The stand-in `powershell` fails (exit 1) when its script contains FAIL_MARKER, and sleeps
# N seconds when it contains SLEEP_MARKER immediately followed by N (``TOOLKIT_STANDIN_SLEEP=30``).
FAIL_MARKER = "TOOLKIT_STANDIN_FAIL"
SLEEP_MARKER = "TOOLKIT_STANDIN_SLEEP="
POWERSHELL_LOG = "/powershell.log"


class EngineStartError(RuntimeError):
    """A daemon the tests need did not come up; the message carries its log tail."""


@dataclass(frozen=True)
class TLSPaths:
    """One side's certificate material: the CA that side trusts, its certificate and key."""

    ca: Path
    cert: Path
    key: Path


@dataclass(frozen=True)
class Engine:
    """A running dockerd standing for one Windows host.

    ``url`` is its unix socket, reachable from anywhere; ``tls_url`` (only the 1809 engine) is
    ``tcp://127.0.0.1:2376``, reachable from inside the tests' network namespace with the
    client material in ``tls``.
    """

    name: str
    release: str
    url: str
    tls_url: str | None
    tls: TLSPaths | None
    pid: int
    root: Path
    _process: subprocess.Popen[bytes] = field(repr=False, compare=False, hash=False)

    def client(self) -> Any:
        """A new ``docker.DockerClient`` on the unix socket; the caller closes it."""
        import docker

        return docker.DockerClient(base_url=self.url, version=API_VERSION, timeout=120)

    def tls_client(self) -> Any:
        """A new ``docker.DockerClient`` over TLS (only for the engine that listens on TCP)."""
        import docker
        from docker.tls import TLSConfig

        if self.tls_url is None or self.tls is None:
            raise ValueError(f"engine {self.name} does not listen over TLS")
        tls = TLSConfig(
            client_cert=(str(self.tls.cert), str(self.tls.key)),
            ca_cert=str(self.tls.ca),
            verify=True,
        )
        # REQUESTS_CA_BUNDLE/CURL_CA_BUNDLE would replace the CA per request (docker-py#2433).
        client = docker.DockerClient(
            base_url=self.tls_url.replace("tcp://", "https://"), tls=tls, version=API_VERSION
        )
        client.api.trust_env = False
        return client

    def kill(self) -> None:
        """SIGKILL the daemon, as a crashed or unplugged host would look. No restart."""
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self._process.wait(timeout=10)

    @property
    def alive(self) -> bool:
        return self._process.poll() is None


# --- preconditions ---------------------------------------------------------------------------


def docker_cli() -> str:
    """The docker CLI the benches compare with (Debian's docker.io installs /usr/bin/docker)."""
    for candidate in ("/usr/local/bin/docker", "/usr/bin/docker"):
        if os.access(candidate, os.X_OK):
            return candidate
    found = shutil.which("docker")
    if found is None:
        sys.exit("bench: the docker CLI is not installed")
    return found


def skip_reason() -> str | None:
    """Why the engine tests cannot run here, or None. Only root and dockerd are required."""
    if sys.platform != "linux" or os.geteuid() != 0:
        return "the Docker Engine tests need root on Linux (network namespaces, dockerd)"
    for tool in ("dockerd", "containerd", "nsenter", "ip", "openssl"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed (Debian: apt-get install docker.io iproute2 openssl)"
    if not Path("/bin/busybox").is_file():
        return "/bin/busybox is missing (Debian: apt-get install busybox-static)"
    return None


# --- network namespace -----------------------------------------------------------------------


def _setns(path: str) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        if libc.setns(fd, CLONE_NEWNET) != 0:
            err = ctypes.get_errno()
            raise OSError(err, f"setns({path}): {os.strerror(err)}")
    finally:
        os.close(fd)


@dataclass
class Netns:
    """A named network namespace with only ``lo`` up; the process may enter and leave it."""

    name: str
    _home: int | None = None

    @property
    def path(self) -> str:
        return f"/run/netns/{self.name}"

    def create(self) -> None:
        subprocess.run(["ip", "netns", "add", self.name], check=True, capture_output=True)
        subprocess.run(
            ["nsenter", f"--net={self.path}", "ip", "link", "set", "lo", "up"],
            check=True,
            capture_output=True,
        )

    def enter(self) -> None:
        """Move the calling thread (the main thread, before any other starts) into the namespace."""
        if threading.current_thread() is not threading.main_thread():
            raise RuntimeError("enter the test network namespace from the main thread")
        self._home = os.open("/proc/self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
        _setns(self.path)

    def leave(self) -> None:
        if self._home is None:
            return
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.setns(self._home, CLONE_NEWNET) != 0:
            err = ctypes.get_errno()
            raise OSError(err, f"setns back: {os.strerror(err)}")
        os.close(self._home)
        self._home = None

    def delete(self) -> None:
        subprocess.run(["ip", "netns", "delete", self.name], check=False, capture_output=True)


def remove_stale_netns(prefix: str) -> list[str]:
    """Delete namespaces ``<prefix><pid>`` whose pytest process is gone (a killed session)."""
    removed = []
    for entry in Path("/run/netns").glob(f"{prefix}*"):
        pid = entry.name[len(prefix) :]
        if pid.isdigit() and not Path(f"/proc/{pid}").exists():
            Netns(entry.name).delete()
            removed.append(entry.name)
    return removed


def remove_stale_roots(parent: Path, prefix: str, min_age: float = 900.0) -> list[Path]:
    """Delete engine roots ``<parent>/<prefix>*`` of killed sessions: older than ``min_age``
    seconds, holding the stand-in tar, and mentioned by no running process."""
    removed = []
    for root in parent.glob(f"{prefix}*"):
        try:
            old = time.time() - root.stat().st_mtime > min_age
        except OSError:
            continue
        if not (old and (root / "standin-rootfs.tar").exists()):
            continue
        if _pids_mentioning(str(root)):
            continue
        _unmount_under(root)
        shutil.rmtree(root, ignore_errors=True)
        removed.append(root)
    return removed


# --- certificates ----------------------------------------------------------------------------


def _openssl(*args: str, cwd: Path) -> None:
    proc = subprocess.run(["openssl", *args], cwd=cwd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise EngineStartError(f"openssl {args[0]} failed: {proc.stderr.strip()}")


def make_ca(directory: Path, name: str = "ca") -> tuple[Path, Path]:
    """A self-signed CA (certificate, key) under ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    _openssl(
        "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
        "-keyout", f"{name}-key.pem", "-out", f"{name}.pem", "-days", "2",
        "-subj", f"/CN=toolkit test {name}",
        "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign",
        cwd=directory,
    )  # fmt: skip
    return directory / f"{name}.pem", directory / f"{name}-key.pem"


def _issue(directory: Path, ca: tuple[Path, Path], name: str, extensions: str) -> TLSPaths:
    _openssl(
        "req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
        "-keyout", f"{name}-key.pem", "-out", f"{name}.csr", "-subj", f"/CN=toolkit test {name}",
        cwd=directory,
    )  # fmt: skip
    (directory / f"{name}.ext").write_text(extensions, "utf-8")
    _openssl(
        "x509", "-req", "-in", f"{name}.csr", "-CA", str(ca[0]), "-CAkey", str(ca[1]),
        "-CAcreateserial", "-days", "2", "-extfile", f"{name}.ext", "-out", f"{name}-cert.pem",
        cwd=directory,
    )  # fmt: skip
    for path in (directory / f"{name}-key.pem", ca[1]):
        path.chmod(0o600)
    return TLSPaths(
        ca=ca[0], cert=directory / f"{name}-cert.pem", key=directory / f"{name}-key.pem"
    )


def make_tls_pair(directory: Path) -> tuple[TLSPaths, TLSPaths]:
    """(server, client) material signed by one fresh CA, as dockerd's TLS docs describe it."""
    ca = make_ca(directory)
    server = _issue(
        directory,
        ca,
        "server",
        "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n",
    )
    client = _issue(directory, ca, "client", "extendedKeyUsage=clientAuth\n")
    return server, client


# --- engines ---------------------------------------------------------------------------------


def _pids_mentioning(text: str) -> list[int]:
    """Processes whose command line mentions ``text`` (an engine's unique root directory)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if text in cmdline:
            found.append(int(entry.name))
    return found


def _cgroup_pids(parent: str) -> list[int]:
    """Every process in the engine's own cgroup subtree (its containers)."""
    found: set[int] = set()
    for hierarchy in ("pids", "memory", "unified"):
        base = Path("/sys/fs/cgroup") / hierarchy / parent.strip("/")
        if not base.is_dir():
            continue
        for procs in base.rglob("cgroup.procs"):
            with contextlib.suppress(OSError, ValueError):
                found.update(int(x) for x in procs.read_text().split())
    return sorted(found)


def _remove_cgroups(parent: str) -> None:
    for hierarchy in Path("/sys/fs/cgroup").iterdir():
        base = hierarchy / parent.strip("/")
        if not base.is_dir():
            continue
        for directory in sorted(
            (p for p in base.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts)
        ):
            with contextlib.suppress(OSError):
                directory.rmdir()
        with contextlib.suppress(OSError):
            base.rmdir()


def _unmount_under(root: Path) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    prefix = str(root) + "/"
    mounts = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        point = line.split()[4].replace("\\040", " ")
        if point.startswith(prefix):
            mounts.append(point)
    for point in sorted(mounts, key=len, reverse=True):
        if libc.umount2(point.encode(), MNT_DETACH) != 0:
            err = ctypes.get_errno()
            if err not in (errno.EINVAL, errno.ENOENT):
                raise OSError(err, f"umount {point}: {os.strerror(err)}")


PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    """preexec_fn: SIGTERM the daemon when the thread that started it (pytest's main thread)
    dies, so even a killed test session leaves no dockerd running (PDEATHSIG survives exec)."""
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)


def _log_tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def _ping_unix(socket_path: Path) -> bool:
    import socket

    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(2)
        try:
            sock.connect(str(socket_path))
            sock.sendall(b"GET /_ping HTTP/1.0\r\nHost: docker\r\n\r\n")
            return b" 200 " in sock.recv(200)
        except OSError:
            return False


def start_engine(
    *,
    name: str,
    release: str,
    root: Path,
    netns: Netns,
    tls_server: TLSPaths | None = None,
    tls_client: TLSPaths | None = None,
    timeout: float = 30.0,
) -> Engine:
    """Start dockerd under ``root`` inside ``netns`` and wait until its socket answers.

    Call it from the main thread: the daemon is sent SIGTERM when the starting thread exits.
    """
    root.mkdir(parents=True, exist_ok=True)
    socket_path = root / "docker.sock"
    config = root / "daemon.json"
    # An empty config file keeps /etc/docker/daemon.json (if any) out of the tests.
    config.write_text("{}\n", "utf-8")
    argv = [
        "nsenter", f"--net={netns.path}",
        "dockerd",
        "--config-file", str(config),
        "--bridge=none", "--iptables=false", "--ip6tables=false", "--ip-masq=false",
        "--userland-proxy=false",
        "--data-root", str(root / "data"),
        "--exec-root", str(root / "exec"),
        "--pidfile", str(root / "docker.pid"),
        "--cgroup-parent", f"/{root.name}-{netns.name}",
        "--exec-opt", "native.cgroupdriver=cgroupfs",
        "--storage-driver", "overlay2",
        "--log-level", "warn",
        "-H", f"unix://{socket_path}",
    ]  # fmt: skip
    tls_url = None
    if tls_server is not None:
        tls_url = f"tcp://{TLS_ADDRESS}"
        argv += [
            "--tlsverify",
            "--tlscacert", str(tls_server.ca),
            "--tlscert", str(tls_server.cert),
            "--tlskey", str(tls_server.key),
            "-H", tls_url,
        ]  # fmt: skip
    log = (root / "dockerd.log").open("wb")
    env = {k: v for k, v in os.environ.items() if not k.startswith("DOCKER_")}
    process = subprocess.Popen(
        argv,
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        env=env,
        preexec_fn=_die_with_parent,
    )
    log.close()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise EngineStartError(
                f"dockerd {name} exited with {process.returncode}:\n{_log_tail(root / 'dockerd.log')}"
            )
        if socket_path.exists() and _ping_unix(socket_path):
            break
        time.sleep(0.05)
    else:
        process.kill()
        process.wait()
        raise EngineStartError(
            f"dockerd {name} did not answer within {timeout:.0f}s:\n"
            f"{_log_tail(root / 'dockerd.log')}"
        )
    return Engine(
        name=name,
        release=release,
        url=f"unix://{socket_path}",
        tls_url=tls_url,
        tls=tls_client,
        pid=process.pid,
        root=root,
        _process=process,
    )


def stop_engine(engine: Engine, netns: Netns, timeout: float = 20.0) -> None:
    """Stop the daemon by its pid, then whatever it left: containerd, shims, containers, mounts."""
    if engine.alive:
        with contextlib.suppress(ProcessLookupError):
            os.kill(engine.pid, signal.SIGTERM)
        try:
            engine._process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            engine.kill()
    # After a SIGKILL (or an unclean stop) containerd, its shims and the containers survive the
    # daemon. They are ours: found by the engine's unique root in their command lines and by the
    # engine's own cgroup parent.
    parent = f"/{engine.root.name}-{netns.name}"
    for _ in range(3):
        leftovers = _pids_mentioning(str(engine.root)) + _cgroup_pids(parent)
        leftovers = [p for p in leftovers if p != os.getpid()]
        if not leftovers:
            break
        for pid in leftovers:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.2)
        for pid in leftovers:
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, os.WNOHANG)
    _unmount_under(engine.root)
    _remove_cgroups(parent)
    shutil.rmtree(engine.root, ignore_errors=True)


# --- registry --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Registry:
    address: str
    root: Path
    process: subprocess.Popen[bytes]


def start_registry(root: Path, netns: Netns, timeout: float = 20.0) -> Registry:
    """Debian's docker-registry on 127.0.0.1:5000 inside ``netns``, storage under ``root``."""
    import http.client

    root.mkdir(parents=True, exist_ok=True)
    config = root / "config.yml"
    config.write_text(
        "version: 0.1\n"
        "log:\n  level: warn\n"
        "storage:\n"
        f"  filesystem:\n    rootdirectory: {root / 'data'}\n"
        "  delete:\n    enabled: true\n"
        f"http:\n  addr: {REGISTRY_ADDRESS}\n"
        # Manifests with foreign layers (Windows base layers before 2023) carry URLs; 2.8
        # refuses them (500) unless the URLs are allowed.
        "validation:\n  manifests:\n    urls:\n      allow:\n        - ^https?://\n",
        "utf-8",
    )
    log = (root / "registry.log").open("wb")
    process = subprocess.Popen(
        ["nsenter", f"--net={netns.path}", "docker-registry", "serve", str(config)],
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        preexec_fn=_die_with_parent,
    )
    log.close()
    host, port = REGISTRY_ADDRESS.split(":")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise EngineStartError(f"docker-registry exited:\n{_log_tail(root / 'registry.log')}")
        connection = http.client.HTTPConnection(host, int(port), timeout=2)
        try:
            connection.request("GET", "/v2/")
            if connection.getresponse().status == 200:
                return Registry(address=REGISTRY_ADDRESS, root=root, process=process)
        except OSError:
            time.sleep(0.05)
        finally:
            connection.close()
    process.kill()
    process.wait()
    raise EngineStartError(f"docker-registry did not answer:\n{_log_tail(root / 'registry.log')}")


def stop_registry(registry: Registry) -> None:
    registry.process.terminate()
    try:
        registry.process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        registry.process.kill()
        registry.process.wait()
    shutil.rmtree(registry.root, ignore_errors=True)


# --- stand-in base images --------------------------------------------------------------------

PREFIX = "/python"
# Where the Windows installer puts Python (TargetDir=C:\Python), as a Linux path: relative to /.
INSTALL_DIR = "C:\\Python"
STANDIN_PATH = f"{PREFIX}/bin:/standin/bin:/bin"
NANOSERVER_PATH = "/standin/bin:/bin"
SETX_LOG = "/setx.log"

_SKIPPED_STDLIB = {
    "test",
    "idlelib",
    "tkinter",
    "turtledemo",
    "ensurepip",
    "lib2to3",
    "site-packages",
}
_SKIPPED_DYNLOAD = ("_test", "_tkinter", "_ctypes_test", "_xx", "xx")

POWERSHELL = f"""#!{PREFIX}/bin/python3
# powershell stand-in for the toolkit's tests: records its arguments as one JSON line in
# {POWERSHELL_LOG}, exits 1 when the script contains {FAIL_MARKER}, sleeps N seconds when it
# contains {SLEEP_MARKER}N, else exits 0.
import json, re, sys, time
args = sys.argv[1:]
script = " ".join(args)
with open({POWERSHELL_LOG!r}, "a", encoding="utf-8") as log:
    log.write(json.dumps(args) + "\\n")
print("powershell stand-in:", script[:200].replace("\\n", " "), flush=True)
match = re.search({SLEEP_MARKER!r} + r"(\\d+(?:\\.\\d+)?)", script)
if match:
    time.sleep(float(match.group(1)))
if {FAIL_MARKER!r} in script:
    print("powershell stand-in: failing on {FAIL_MARKER}", file=sys.stderr, flush=True)
    sys.exit(1)
"""

CMD = """#!/bin/sh
# cmd stand-in for the toolkit's tests (busybox sh; no Python needed, so Nano Server's stand-in
# has it too). `cmd /Q /S /C <command>` drops the switches. One argument left is a command line
# (a RUN under SHELL ["cmd", "/S", "/C"]): busybox sh runs it. Several are an argv that Windows
# would have joined into one command line for cmd to run (exec form, e.g. the checks of
# `toolkit verify`): they are run as they are. So `cmd /Q /S /C echo hello` prints "hello".
while [ $# -gt 0 ]; do
    case "$1" in /?) shift ;; *) break ;; esac
done
if [ $# -eq 1 ]; then exec /bin/sh -c "$1"; fi
exec "$@"
"""

# Windows' setx: `setx /m NAME VALUE` stores NAME for every user (machine scope).
SETX = f"""#!/bin/sh
# setx stand-in for the toolkit's tests: appends its arguments to {SETX_LOG} and answers as
# setx.exe does.
echo "$*" >> {SETX_LOG}
echo "SUCCESS: Specified value was saved."
"""

PIP = f"""#!/{INSTALL_DIR}/bin/python3
import sys
from pip._internal.cli.main import main
sys.exit(main())
"""

# Nano Server's `python` and `pip`: whatever the COPY put at C:\Python, or nothing.
NANO_PYTHON = f"""#!/bin/sh
exec '/{INSTALL_DIR}/bin/python3' "$@"
"""
NANO_PIP = f"""#!/bin/sh
exec '/{INSTALL_DIR}/bin/pip' "$@"
"""
# The users of Nano Server (ContainerUser is its default user) and Server Core.
PASSWD = (
    "root:x:0:0:root:/root:/bin/sh\n"
    "ContainerAdministrator:x:0:0:ContainerAdministrator:/root:/bin/sh\n"
    "ContainerUser:x:1000:1000:ContainerUser:/tmp:/bin/sh\n"
)
GROUP = "root:x:0:\nContainerUser:x:1000:\n"

ROOTFS_IMAGE = "toolkit-test/standin-rootfs:latest"
ROOTFS_CHANGES = (f"ENV PATH={STANDIN_PATH}", 'CMD ["/bin/sh"]')
NANOSERVER_ROOTFS_IMAGE = "toolkit-test/standin-nanoserver-rootfs:latest"
NANOSERVER_ROOTFS_CHANGES = (f"ENV PATH={NANOSERVER_PATH}", 'CMD ["/bin/sh"]', "USER ContainerUser")


def _shared_libraries(files: Iterable[str]) -> set[str]:
    found: set[str] = set()
    for path in files:
        out = subprocess.run(["ldd", path], capture_output=True, text=True).stdout
        for line in out.splitlines():
            parts = line.split()
            if "=>" in parts and len(parts) >= 3 and parts[2].startswith("/"):
                found.add(parts[2])
            elif parts and parts[0].startswith("/"):
                found.add(parts[0])
    return found


def _add_bytes(tar: tarfile.TarFile, name: str, data: bytes, mode: int = 0o644) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = mode
    info.mtime = 0
    tar.addfile(info, io.BytesIO(data))


def _add_dir(tar: tarfile.TarFile, name: str, mode: int = 0o755) -> None:
    info = tarfile.TarInfo(name)
    info.type = tarfile.DIRTYPE
    info.mode = mode
    tar.addfile(info)


def _add_symlink(tar: tarfile.TarFile, name: str, target: str) -> None:
    info = tarfile.TarInfo(name)
    info.type = tarfile.SYMTYPE
    info.linkname = target
    tar.addfile(info)


def standin_python_version() -> str:
    return ".".join(str(x) for x in sys.version_info[:3])


def standin_pip_version() -> str | None:
    try:
        import pip
    except ImportError:
        return None
    return str(pip.__version__)


def _pip_site() -> Path | None:
    import importlib.util

    spec = importlib.util.find_spec("pip")
    if spec is None or spec.origin is None:
        return None
    return Path(spec.origin).resolve().parent.parent


def _stripped(path: Path, scratch: Path) -> Path:
    """A copy of ``path`` without debug sections (pyenv's libpython: 23 MB -> 6 MB), if binutils
    is installed; else ``path`` itself. Smaller layers make the stand-ins cheaper to build."""
    strip = shutil.which("strip")
    if strip is None:
        return path
    scratch.mkdir(parents=True, exist_ok=True)
    target = scratch / path.name
    proc = subprocess.run(
        [strip, "--strip-debug", "-o", str(target), str(path)], capture_output=True, check=False
    )
    return target if proc.returncode == 0 else path


def _python_files(
    tar: tarfile.TarFile, scratch: Path, extensions: list[Path], libraries: set[str]
) -> None:
    """This interpreter, its stdlib, extension modules and pip under C:\\Python (INSTALL_DIR)."""
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    version_dir = f"python{sys.version_info[0]}.{sys.version_info[1]}"
    executable = Path(os.path.realpath(sys.executable))
    for directory in (INSTALL_DIR, f"{INSTALL_DIR}/bin", f"{INSTALL_DIR}/lib"):
        _add_dir(tar, directory)
    tar.add(_stripped(executable, scratch), f"{INSTALL_DIR}/bin/{version_dir}")
    for alias in ("python", "python3"):
        _add_symlink(tar, f"{INSTALL_DIR}/bin/{alias}", version_dir)
    for alias in ("pip", "pip3"):
        _add_bytes(tar, f"{INSTALL_DIR}/bin/{alias}", PIP.encode(), 0o755)

    lib_target = f"{INSTALL_DIR}/lib/{version_dir}"
    for entry in sorted(stdlib.iterdir()):
        if entry.name in _SKIPPED_STDLIB or entry.name.startswith("config-"):
            continue
        if entry.name == "lib-dynload":
            _add_dir(tar, f"{lib_target}/lib-dynload")
            for ext in extensions:
                tar.add(_stripped(ext, scratch), f"{lib_target}/lib-dynload/{ext.name}")
            continue
        tar.add(entry, f"{lib_target}/{entry.name}", filter=_stdlib_filter)
    # pip from wherever this interpreter imports it (a venv's site-packages on CI), put
    # next to the stdlib: that directory is on sys.path whatever site-packages layout the
    # interpreter was built with (Debian's uses dist-packages, elsewhere).
    site = _pip_site()
    if site is not None:
        for entry in sorted(site.glob("pip*")):
            if entry.name == "pip" or (
                entry.name.startswith("pip-") and entry.name.endswith(".dist-info")
            ):
                tar.add(entry, f"{lib_target}/{entry.name}", filter=_stdlib_filter)


def _system_files(
    tar: tarfile.TarFile, scratch: Path, libraries: set[str], applets: list[str]
) -> None:
    """busybox with its applets, the shared libraries the interpreter needs, /tmp, cmd."""
    for directory in ("bin", "root", "standin", "standin/bin"):
        _add_dir(tar, directory)
    _add_dir(tar, "tmp", 0o1777)
    tar.add("/bin/busybox", "bin/busybox")
    for applet in applets:
        if applet != "busybox":
            _add_symlink(tar, f"bin/{applet}", "busybox")
    _add_bytes(tar, "standin/bin/cmd", CMD.encode(), 0o755)
    prefix_lib = str(Path(sys.base_prefix) / "lib") + "/"
    for library in sorted(libraries):
        # libpython lives under the interpreter's prefix; the loader finds it in /lib too.
        target = (
            f"/lib/x86_64-linux-gnu/{Path(library).name}"
            if library.startswith(prefix_lib)
            else library
        )
        source = Path(os.path.realpath(library))
        if library.startswith(prefix_lib):
            source = _stripped(source, scratch)
        tar.add(source, f"{target}")


def _interpreter_parts() -> tuple[list[Path], set[str], list[str]]:
    """(extension modules, shared libraries they and the interpreter need, busybox applets)."""
    dynload = Path(sysconfig.get_paths()["stdlib"]) / "lib-dynload"
    executable = Path(os.path.realpath(sys.executable))
    extensions = [
        p for p in sorted(dynload.glob("*.so")) if not p.name.startswith(_SKIPPED_DYNLOAD)
    ]
    libraries = _shared_libraries([str(executable), *(str(p) for p in extensions)])
    applets = subprocess.run(
        ["/bin/busybox", "--list"], capture_output=True, text=True, check=True
    ).stdout.split()
    return extensions, libraries, applets


def standin_rootfs(path: Path) -> Path:
    """Write the Server Core stand-ins' root filesystem (a tar) to ``path``.

    Contents: ``/bin/busybox`` from busybox-static with every applet linked; this interpreter
    (``sys.executable``) under ``/C:\\Python`` (INSTALL_DIR, where the Windows installer puts it)
    with its stdlib (no tests, IDLE, tkinter), its extension modules, pip, and every shared
    library ``ldd`` lists at its own path; ``/python`` linking to ``C:\\Python`` (PATH has
    ``/python/bin``); ``/standin/bin/powershell`` and ``cmd`` stand-ins; a world-writable ``/tmp``.
    """
    extensions, libraries, applets = _interpreter_parts()
    scratch = path.with_suffix(".stripped")
    with tarfile.open(path, "w") as tar:
        _system_files(tar, scratch, libraries, applets)
        _add_bytes(tar, "standin/bin/powershell", POWERSHELL.encode(), 0o755)
        _python_files(tar, scratch, extensions, libraries)
        _add_symlink(tar, PREFIX.lstrip("/"), INSTALL_DIR)
    shutil.rmtree(scratch, ignore_errors=True)
    return path


def nanoserver_rootfs(path: Path) -> Path:
    """Write the Nano Server stand-ins' root filesystem (a tar) to ``path``.

    Like Nano Server: no PowerShell and no Python; ``cmd``; ``setx`` (records its arguments in
    /setx.log); the users ContainerAdministrator and ContainerUser (the default). Its ``python``
    and ``pip`` run ``/C:\\Python/bin/python3`` and ``pip``: present only once a build copied
    the installation there. The shared libraries the interpreter needs are there, as the system
    DLLs are on Nano Server.
    """
    _extensions, libraries, applets = _interpreter_parts()
    scratch = path.with_suffix(".stripped")
    with tarfile.open(path, "w") as tar:
        _system_files(tar, scratch, libraries, applets)
        _add_bytes(tar, "standin/bin/setx", SETX.encode(), 0o755)
        _add_bytes(tar, "standin/bin/python", NANO_PYTHON.encode(), 0o755)
        _add_bytes(tar, "standin/bin/pip", NANO_PIP.encode(), 0o755)
        _add_dir(tar, "etc")
        _add_bytes(tar, "etc/passwd", PASSWD.encode())
        _add_bytes(tar, "etc/group", GROUP.encode())
    shutil.rmtree(scratch, ignore_errors=True)
    return path


def _stdlib_filter(info: tarfile.TarInfo) -> tarfile.TarInfo | None:
    name = info.name
    if ".opt-1.pyc" in name or ".opt-2.pyc" in name:
        return None
    info.uid = info.gid = 0
    info.uname = info.gname = "root"
    return info


def _build(client: Any, dockerfile: str, tag: str) -> str:
    context = io.BytesIO()
    with tarfile.open(fileobj=context, mode="w") as tar:
        _add_bytes(tar, "Dockerfile", dockerfile.encode())
    context.seek(0)
    for chunk in client.api.build(
        fileobj=context,
        custom_context=True,
        tag=tag,
        pull=False,
        network_mode="none",
        rm=True,
        forcerm=True,
        decode=True,
    ):
        if "errorDetail" in chunk:
            raise EngineStartError(f"stand-in {tag}: {chunk['errorDetail']}")
    return str(client.images.get(tag).id)


def load_standins(
    client: Any,
    rootfs: Path,
    tags: Iterable[str],
    nanoserver: Path | None = None,
    nanoserver_tags: Iterable[str] = (),
) -> dict[str, str]:
    """Give one engine a stand-in ``mcr.microsoft.com/windows/servercore:<tag>`` per tag, and
    with ``nanoserver`` (its rootfs tar) a ``mcr.microsoft.com/windows/nanoserver:<tag>`` per
    nanoserver tag.

    A root filesystem is imported once as a single layer (``FROM scratch`` + that tar, in one
    step: about 3 s against 8 s for a classic-builder ``COPY`` of the same 70 MB), then each tag
    is built on it with ``pull=False`` and ``network_mode="none"``, adding
    ``ENV TOOLKIT_STANDIN_RELEASE=<tag>`` so an image says which release it stands for.
    Returns ``{image: image id}``.
    """
    ids = {}
    sets: list[tuple[Path, str, tuple[str, ...], str, str, Iterable[str]]] = [
        (rootfs, ROOTFS_IMAGE, ROOTFS_CHANGES, STANDIN_REPOSITORY, "Server Core", tags)
    ]
    if nanoserver is not None:
        sets.append(
            (
                nanoserver,
                NANOSERVER_ROOTFS_IMAGE,
                NANOSERVER_ROOTFS_CHANGES,
                NANOSERVER_REPOSITORY,
                "Nano Server",
                nanoserver_tags,
            )
        )
    for tar, image, changes, target, title, releases in sets:
        repository, _, tag = image.rpartition(":")
        client.api.import_image_from_file(
            str(tar), repository=repository, tag=tag, changes=list(changes)
        )
        for release in releases:
            dockerfile = (
                f"FROM {image}\n"
                f"ENV TOOLKIT_STANDIN_RELEASE={release}\n"
                f'LABEL org.opencontainers.image.title="toolkit test stand-in for Windows {title}"\n'
            )
            name = f"{target}:{release}"
            ids[name] = _build(client, dockerfile, name)
    return ids


@contextlib.contextmanager
def timed(record: dict[str, float], key: str) -> Iterator[None]:
    start = time.perf_counter()
    yield
    record[key] = time.perf_counter() - start


def dump_timings(record: dict[str, float], path: Path) -> None:
    path.write_text(json.dumps(record, indent=2) + "\n", "utf-8")
