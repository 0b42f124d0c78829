"""Which Docker engine builds which Windows release: ``hosts.toml``, ``--host`` and the environment.

``hosts.toml`` (path from ``--hosts`` or ``TOOLKIT_HOSTS``) has one table per release::

    [hosts.1809]
    url = "tcp://win2019.example.net:2376"
    ca = "certs/1809/ca.pem"        # relative paths are relative to hosts.toml
    cert = "certs/1809/cert.pem"
    key = "certs/1809/key.pem"

    [hosts.ltsc2022]
    context = "win2022"             # a docker context instead of a URL

``--host 1809=URL`` (repeatable) replaces a release's endpoint; ``URL`` without a scheme names a
docker context. With neither file nor ``--host``, the engine the environment points at
(``DOCKER_HOST``, ``DOCKER_CONTEXT``, else the local engine) serves every release.

Security rules, enforced here and nowhere else:

* ``tcp://`` without TLS is refused unless the address is loopback: the Docker API is root on
  the host, and plain TCP lets anyone on the path drive it.
* TLS always needs ``ca``, ``cert`` and ``key`` (the daemon must verify us, we verify it) and
  always verifies the server against ``ca``, also when ``REQUESTS_CA_BUNDLE`` or
  ``CURL_CA_BUNDLE`` is set: requests lets those replace docker-py's CA on every request
  (docker/docker-py#2433), which :func:`connect` prevents.
* Paths are shown, never the contents of key material; URLs are shown through
  :func:`toolkit.redact.redact_url` (user info hidden) in every message, table and record.
* ``ssh://`` carries no password (the ssh client authenticates with keys or its agent), and
  ``tcp://`` no user info at all.
"""

from __future__ import annotations

import ipaddress
import os
import re
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from toolkit.errors import ConfigError, HostError
from toolkit.paths import file_problem
from toolkit.redact import looks_like_key_material, redact_path, redact_url
from toolkit.suggest import did_you_mean
from toolkit.windows import find_release, suggest_release
from toolkit.winrm_config import WinRMSpec, default_endpoint, parse_winrm_table

SCHEMES = ("tcp", "https", "npipe", "unix", "ssh")
HOST_KEYS = ("url", "context", "ca", "cert", "key", "winrm")
TOP_KEYS = ("hosts",)
LOCAL_UNIX = "unix:///var/run/docker.sock"
LOCAL_NPIPE = "npipe:////./pipe/docker_engine"
DEFAULT_TIMEOUT = 60.0
# The authority of a tcp:// endpoint: a name or IPv4 address, or a bracketed IPv6 one, and a port.
_HOST_PORT = re.compile(r"(?:[A-Za-z0-9._-]+|\[[0-9A-Fa-f:.]+\])(?::[0-9]{1,5})?")
# Docker's own rule for context names (docker/cli: store.ValidateContextName).
_CONTEXT_NAME = re.compile(r"[a-zA-Z0-9][a-zA-Z0-9_.+-]*")


@dataclass(frozen=True, kw_only=True)
class TLSFiles:
    """Client-side TLS material: the CA that signed the daemon's certificate, our cert and key."""

    ca: Path
    cert: Path
    key: Path


@dataclass(frozen=True, kw_only=True)
class HostSpec:
    """One Docker endpoint.

    ``url`` is the endpoint as configured (``tcp://h:2376``, ``npipe:////./pipe/docker_engine``,
    ``unix:///...``, ``ssh://user@h``) or empty when ``context`` names a docker context.
    ``release`` is the release key it is configured for, None for the environment's engine,
    which serves any release. ``source`` says where it came from, for messages.
    """

    url: str = ""
    context: str | None = None
    tls: TLSFiles | None = None
    release: str | None = None
    source: str = ""
    winrm: WinRMSpec | None = None

    @property
    def name(self) -> str:
        """How messages, tables, build lines and logs name this host (no key material, no
        user info); ``-`` for no host."""
        if self.context is not None:
            return f"context {self.context}"
        return redact_url(self.url) if self.url else "-"

    @property
    def key(self) -> tuple[str, str | None, TLSFiles | None]:
        """What tells two hosts apart (``name`` hides user info, so two may share it)."""
        return (self.url, self.context, self.tls)

    @property
    def configured(self) -> bool:
        """False for the stand-in of a release that has no host (``HostsConfig.missing``)."""
        return bool(self.url or self.context)

    def record(self) -> dict[str, Any]:
        return {
            "endpoint": self.name,
            "url": redact_url(self.url) if self.url else None,
            "context": self.context,
            "tls": self.tls is not None,
            "source": self.source,
            "winrm": self.winrm.record() if self.winrm is not None else None,
        }


@dataclass(frozen=True, kw_only=True)
class HostsConfig:
    """Release key -> host, plus the environment's engine when nothing is configured."""

    hosts: Mapping[str, HostSpec] = field(default_factory=dict)
    default: HostSpec | None = None
    path: Path | None = None

    def find(self, key: str) -> HostSpec | None:
        """The host that builds release ``key`` (a key or alias), None if there is none."""
        release = find_release(key)
        if release is None:
            raise ConfigError(f"unknown Windows release {key!r}", hint=suggest_release(key))
        if release.key in self.hosts:
            return self.hosts[release.key]
        if self.default is not None:
            return replace(self.default, release=release.key)
        return None

    def for_release(self, key: str) -> HostSpec:
        """The host that builds release ``key`` (a key or alias); ConfigError if there is none."""
        spec = self.find(key)
        if spec is None:
            raise ConfigError(self._missing_text(key), hint=self._missing_hint(key))
        return spec

    def missing(self, key: str) -> HostError:
        """Why a target of release ``key`` has no host, as a per-target refusal: the targets of
        the configured releases still go ahead (``--host 1809=URL`` alone builds 1809)."""
        return HostError(self._missing_text(key), hint=self._missing_hint(key))

    def _missing_text(self, key: str) -> str:
        where = str(self.path) if self.path is not None else "the --host options"
        configured = ", ".join(self.hosts) or "none"
        return f"no Docker host for release {key} in {where} (configured: {configured})"

    def _missing_hint(self, key: str) -> str:
        file = self.path.name if self.path is not None else "hosts.toml"
        hint = f"add [hosts.{key}] with url = ... to {file} or pass --host {key}=URL"
        if len(self.hosts) == 1:
            hint += f", or select only the configured release: '*-{next(iter(self.hosts))}'"
        elif self.hosts:
            hint += f", or select only the configured releases: '*-{{{','.join(self.hosts)}}}'"
        return hint

    def placeholder(self, key: str) -> HostSpec:
        """The HostSpec standing for "no host" in a plan (named ``-``)."""
        return HostSpec(release=key, source="no host configured")


# --- validation ------------------------------------------------------------------------------


def is_loopback(hostname: str) -> bool:
    if hostname == "localhost":
        return True
    try:
        return ipaddress.ip_address(hostname).is_loopback
    except ValueError:
        return False


def check_url(url: str, *, where: str, tls: bool) -> str:
    """Validate an endpoint URL; returns it with ``https://`` spelled ``tcp://``.

    Messages show the URL redacted (``redact_url``), never its user info.
    """
    shown = repr(redact_url(url))
    try:
        parts = urlsplit(url)
    except ValueError:  # "tcp://[::1": an unclosed IPv6 bracket
        raise ConfigError(
            f"{where}: {shown} is not a valid URL", hint="use tcp://HOST:2376 or tcp://[::1]:2375"
        ) from None
    scheme = parts.scheme.lower()
    if scheme not in SCHEMES:
        raise ConfigError(
            f"{where}: unsupported Docker endpoint {shown}",
            hint="use tcp://HOST:2376 (with ca, cert, key), npipe:////./pipe/docker_engine, "
            "unix:///var/run/docker.sock, ssh://USER@HOST, or a docker context name",
        )
    if scheme in ("tcp", "https"):
        if not parts.hostname:
            raise ConfigError(f"{where}: {shown} has no host name", hint="use tcp://HOST:2376")
        try:
            _ = parts.port
        except ValueError:
            raise ConfigError(
                f"{where}: {shown} has a bad port", hint="use tcp://HOST:2376"
            ) from None
        if not _HOST_PORT.fullmatch(parts.netloc) or parts.query or parts.fragment or "\\" in url:
            # urllib.parse, docker-py and urllib3 disagree about user info, backslashes, "#" and
            # "?": tcp://remote<backslash>@127.0.0.1 looks like loopback here, but requests
            # connects to remote.
            raise ConfigError(
                f"{where}: {shown} is not a plain tcp://HOST:PORT address",
                hint="use tcp://HOST:2376 without user info, query or fragment",
            )
        if not tls and not is_loopback(parts.hostname):
            raise ConfigError(
                f"{where}: plain tcp:// to {parts.hostname} is refused: anyone on the network "
                "could drive that engine",
                hint="serve the engine with --tlsverify and set ca, cert and key "
                "as README.md Host setup shows, or use ssh://",
            )
        return "tcp://" + url.split("://", 1)[1]
    if tls:
        raise ConfigError(
            f"{where}: ca/cert/key only apply to tcp:// endpoints, not {scheme}://",
            hint="remove them, or use tcp://HOST:2376",
        )
    if parts.query or parts.fragment or "#" in url:
        raise ConfigError(
            f"{where}: {shown} has a query or fragment", hint="remove what follows ? or #"
        )
    if scheme in ("unix", "npipe") and "@" in parts.netloc:
        raise ConfigError(
            f"{where}: {shown} carries user info, which a {scheme}:// endpoint cannot use",
            hint=f"use {LOCAL_UNIX if scheme == 'unix' else LOCAL_NPIPE}",
        )
    if scheme == "ssh":
        if not parts.hostname:
            raise ConfigError(f"{where}: {shown} has no host name", hint="use ssh://USER@HOST")
        if parts.path not in ("", "/"):
            raise ConfigError(f"{where}: {shown} has a path", hint="use ssh://USER@HOST[:PORT]")
        if parts.password is not None:
            raise ConfigError(
                f"{where}: {shown} carries a password; the ssh client does not take one from "
                "the URL",
                hint=f"use ssh://{parts.username or 'USER'}@HOST and a key (ssh-agent or "
                "~/.ssh/config); remove the password from the file or command line",
            )
    return url


def show_endpoint(text: str) -> str:
    """An endpoint as given (a URL or a context name) as messages may show it: a URL redacted,
    and an address without a scheme (``admin:pw@host``) cut to what follows its ``@``."""
    if "://" in text:
        return redact_url(text)
    if "@" in text:
        return "***@" + text.rpartition("@")[2]
    return redact_path(text)


def check_context(name: str, *, where: str) -> str:
    """A docker context name (Docker's own grammar); anything else is a ConfigError that does
    not echo it when it could be an address with credentials (``admin:pw@host``)."""
    if _CONTEXT_NAME.fullmatch(name):
        return name
    raise ConfigError(
        f"{where}: {show_endpoint(name)!r} is neither a URL (scheme://...) nor a docker context name",
        hint="use tcp://HOST:2376, ssh://USER@HOST, npipe://, unix:// or a context from "
        "docker context ls",
    )


def _tls_files(
    table: Mapping[str, Any], *, base: Path, where: str, env: Mapping[str, str]
) -> TLSFiles | None:
    given = {k: table[k] for k in ("ca", "cert", "key") if k in table}
    if not given:
        return None
    missing = [k for k in ("ca", "cert", "key") if k not in given]
    if missing:
        raise ConfigError(
            f"{where}: TLS needs ca, cert and key; missing {', '.join(missing)}",
            hint="the daemon must verify the client and the client the daemon; see README.md Host setup",
        )
    paths = {}
    for key, value in given.items():
        if not isinstance(value, str) or not value:
            raise ConfigError(f"{where}.{key} must be a file path (a string)")
        if looks_like_key_material(value):
            raise ConfigError(
                f"{where}.{key} holds what looks like the contents of a certificate or key "
                "(not shown), not a file path",
                hint=f"save it to a file and set {key} to that file's path",
            )
        path = Path(_expand_home(value, env))
        if not path.is_absolute():
            path = base / path
        problem = file_problem(path)
        if problem is not None:
            raise ConfigError(
                f"{where}.{key}: {redact_path(path)} {problem}",
                hint=f"set {key} to the PEM file itself",
            )
        paths[key] = path
    return TLSFiles(ca=paths["ca"], cert=paths["cert"], key=paths["key"])


def _expand_home(value: str, env: Mapping[str, str]) -> str:
    if value == "~" or value.startswith("~/"):
        home = env.get("HOME") or env.get("USERPROFILE") or str(Path.home())
        return home + value[1:]
    return value


def _host_from_table(release: str, table: Any, *, path: Path, env: Mapping[str, str]) -> HostSpec:
    where = f"{path}: [hosts.{release}]"
    if not isinstance(table, dict):
        raise ConfigError(f"{where} must be a table", hint=f'write [hosts.{release}] url = "..."')
    for key in table:
        if key not in HOST_KEYS:
            raise ConfigError(
                f"{where}: unknown key {key!r}",
                hint=did_you_mean(key, HOST_KEYS, listing="known keys"),
            )
    url, context = table.get("url"), table.get("context")
    if (url is None) == (context is None):
        raise ConfigError(
            f"{where} needs exactly one of url or context",
            hint='url = "tcp://HOST:2376" (plus ca, cert, key) or context = "NAME"',
        )
    tls = _tls_files(table, base=path.parent, where=where, env=env)
    winrm = None
    if "winrm" in table:
        docker_host = urlsplit(url).hostname if isinstance(url, str) and "://" in url else None
        winrm = parse_winrm_table(
            table["winrm"],
            where=f"{path}: [hosts.{release}.winrm]",
            docker_host=docker_host,
            base=path.parent,
            home=_expand_home("~", env),
        )
    if context is not None:
        if not isinstance(context, str) or not context:
            raise ConfigError(f"{where}.context must be a docker context name")
        context = check_context(context, where=f"{where}.context")
        if tls is not None:
            raise ConfigError(
                f"{where}: ca/cert/key do not apply to a context",
                hint="the context has its own TLS",
            )
        return HostSpec(
            context=context, release=release, source=f"{path} [hosts.{release}]", winrm=winrm
        )
    if not isinstance(url, str) or not url:
        raise ConfigError(f"{where}.url must be a URL string", hint='url = "tcp://HOST:2376"')
    url = check_url(url, where=f"{where}.url", tls=tls is not None)
    return HostSpec(
        url=url, tls=tls, release=release, source=f"{path} [hosts.{release}]", winrm=winrm
    )


def _release_key(name: str, where: str) -> str:
    release = find_release(name)
    if release is None:
        raise ConfigError(f"{where}: unknown Windows release {name!r}", hint=suggest_release(name))
    return release.key


def _read_file(path: Path, env: Mapping[str, str]) -> dict[str, HostSpec]:
    from toolkit.files import UnreadableFile, read_text

    try:
        text = read_text(path)
    except UnreadableFile as exc:
        if exc.missing:
            raise ConfigError(
                f"hosts file {path} does not exist",
                hint="copy hosts.example.toml to hosts.toml, or pass --hosts PATH / set TOOLKIT_HOSTS",
            ) from None
        raise ConfigError(f"hosts file {path} cannot be read: {exc.why}", hint="fix it") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path} is not valid TOML: {exc}", hint="fix the syntax") from None
    except RecursionError:
        raise ConfigError(f"{path} is not valid TOML: nested too deeply", hint="fix it") from None
    except ValueError:  # a number of thousands of digits: int()'s conversion limit
        raise ConfigError(
            f"{path} is not valid TOML: a number of thousands of digits", hint="fix it"
        ) from None
    for key in data:
        if key not in TOP_KEYS:
            raise ConfigError(
                f"{path}: unknown top-level key {key!r}",
                hint=did_you_mean(key, TOP_KEYS, listing="known keys"),
            )
    tables = data.get("hosts", {})
    if not isinstance(tables, dict):
        raise ConfigError(f"{path}: hosts must be a table", hint="write [hosts.1809] url = ...")
    hosts: dict[str, HostSpec] = {}
    for name, table in tables.items():
        key = _release_key(name, f"{path}: [hosts.{name}]")
        if key in hosts:
            raise ConfigError(
                f"{path}: release {key} is configured twice ([hosts.{name}] is an alias)",
                hint="keep one table per release",
            )
        hosts[key] = _host_from_table(key, table, path=path, env=env)
    return hosts


def _env_tls(env: Mapping[str, str], where: str) -> TLSFiles | None:
    """Docker's own convention: DOCKER_TLS_VERIFY non-empty, files in DOCKER_CERT_PATH."""
    if not env.get("DOCKER_TLS_VERIFY"):
        return None
    given = env.get("DOCKER_CERT_PATH") or ""
    if looks_like_key_material(given):
        raise ConfigError(
            f"{where}: DOCKER_CERT_PATH holds what looks like a certificate or key (not shown), "
            "not a directory",
            hint="set DOCKER_CERT_PATH to the directory with ca.pem, cert.pem and key.pem",
        )
    base = Path(given or _expand_home("~/.docker", env))
    files = TLSFiles(ca=base / "ca.pem", cert=base / "cert.pem", key=base / "key.pem")
    for path in (files.ca, files.cert, files.key):
        problem = file_problem(path)
        if problem is not None:
            raise ConfigError(
                f"{where}: DOCKER_TLS_VERIFY is set but {redact_path(path)} {problem}",
                hint="set DOCKER_CERT_PATH to the directory with ca.pem, cert.pem and key.pem",
            )
    return files


def _override(
    text: str, *, hosts: Mapping[str, HostSpec], env: Mapping[str, str]
) -> tuple[str, HostSpec]:
    release_name, sep, target = text.partition("=")
    where = (
        f"--host {release_name}={show_endpoint(target)}" if sep else f"--host {show_endpoint(text)}"
    )
    if not sep or not release_name or not target:
        raise ConfigError(
            f"{where}: expected RELEASE=URL", hint="for example --host 1809=tcp://win2019:2376"
        )
    key = _release_key(release_name.strip(), where)
    target = target.strip()
    source = f"--host {key}"
    winrm = _moved_winrm(hosts.get(key), target)
    if "://" not in target:
        context = check_context(target, where=where)
        return key, HostSpec(context=context, release=key, source=source, winrm=winrm)
    scheme = target.split("://", 1)[0].lower()
    tls = None
    if scheme in ("tcp", "https"):
        # TLS material for an overridden address: the file's entry for that release keeps its
        # certificates; otherwise Docker's DOCKER_TLS_VERIFY/DOCKER_CERT_PATH convention.
        configured = hosts.get(key)
        tls = configured.tls if configured is not None and configured.tls else None
        tls = tls or _env_tls(env, where)
    url = check_url(target, where=where, tls=tls is not None)
    return key, HostSpec(url=url, tls=tls, release=key, source=source, winrm=winrm)


def _moved_winrm(configured: HostSpec | None, target: str) -> WinRMSpec | None:
    """The file's winrm table for a release whose Docker address ``--host`` replaces: kept as it
    is when its endpoint is explicit; otherwise it follows the new address's host name, and is
    dropped when that names none (a context, a pipe)."""
    if configured is None or configured.winrm is None:
        return None
    if configured.winrm.endpoint_given:
        return configured.winrm
    try:
        host = urlsplit(target).hostname if "://" in target else None
    except ValueError:
        host = None
    endpoint = default_endpoint(host)
    return replace(configured.winrm, endpoint=endpoint) if endpoint else None


def environment_host(env: Mapping[str, str]) -> HostSpec:
    """The engine the environment points at: DOCKER_HOST, DOCKER_CONTEXT, else the local one."""
    docker_host = env.get("DOCKER_HOST")
    if docker_host:
        tls = _env_tls(env, "DOCKER_HOST")
        if "://" not in docker_host:
            raise ConfigError(
                f"DOCKER_HOST={show_endpoint(docker_host)!r} has no scheme",
                hint="use tcp://HOST:2376 or unix://",
            )
        url = check_url(docker_host, where="DOCKER_HOST", tls=tls is not None)
        return HostSpec(url=url, tls=tls, source="DOCKER_HOST")
    context = env.get("DOCKER_CONTEXT")
    if context and context != "default":
        return HostSpec(
            context=check_context(context, where="DOCKER_CONTEXT"), source="DOCKER_CONTEXT"
        )
    local = LOCAL_NPIPE if os.name == "nt" else LOCAL_UNIX
    return HostSpec(url=local, source="local engine")


def load_hosts(path: Path | None, overrides: Sequence[str], env: Mapping[str, str]) -> HostsConfig:
    """Read and validate the hosts configuration once: file, then ``--host`` overrides.

    Raises ConfigError (exit 2) naming the file, key and fix for every mistake.
    """
    hosts = _read_file(path, env) if path is not None else {}
    for text in overrides:
        key, spec = _override(text, hosts=hosts, env=env)
        hosts[key] = spec
    default = environment_host(env) if path is None and not overrides else None
    return HostsConfig(hosts=dict(hosts), default=default, path=path)


DEFAULT_HOSTS_FILE = Path("hosts.toml")


@dataclass(frozen=True, kw_only=True)
class HostSelection:
    """The host options of a command (``--hosts``, ``--host``, ``--isolation``,
    ``--no-preflight``), as given."""

    path: Path | None = None
    overrides: tuple[str, ...] = ()
    isolation: str | None = None
    preflight: bool = True

    def load(self, env: Mapping[str, str]) -> HostsConfig:
        """The configuration: ``--hosts``/TOOLKIT_HOSTS, else ./hosts.toml when it exists."""
        path = self.path
        if path is None and os.path.lexists(DEFAULT_HOSTS_FILE):  # a FIFO there is an error
            path = DEFAULT_HOSTS_FILE
        return load_hosts(path, self.overrides, env)
