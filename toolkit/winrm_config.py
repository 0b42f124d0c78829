"""The optional ``winrm`` table of a host in ``hosts.toml``, and the WinRM password.

::

    [hosts.1809]
    url = "tcp://win2019-build.example.net:2376"
    ...
    [hosts.1809.winrm]
    # endpoint = "https://win2019-build.example.net:5986/wsman"  # default: the Docker host's name
    transport = "ntlm"              # ntlm (default), kerberos, credssp, certificate, basic
    user = "EXAMPLE\\toolkit-inspect"
    password_env = "TOOLKIT_WINRM_PASSWORD"   # the default variable
    ca = "certs/1809/winrm-ca.pem"  # the listener's CA (default: the system trust store)
    # cert, key                     # the client certificate, for transport = "certificate"
    # insecure = true               # see below

Safety rules, checked when the file is read (issue 11):

* HTTPS verifies the listener's certificate, against ``ca`` or the system trust store (never a
  CA taken from ``REQUESTS_CA_BUNDLE``).
* Plain ``http://`` is accepted only to a loopback address (an SSH tunnel, the test double) or
  with a transport that encrypts every message (NTLM, Kerberos, CredSSP; the session then
  insists on message encryption). Basic over ``http://`` and skipping certificate verification
  are refused unless the table says ``insecure = true``; then every run warns what is exposed
  (:meth:`WinRMSpec.exposures`).
* The password is never in the file: ``password_env`` names the environment variable that holds
  it. Without the variable, a terminal is asked (no echo); without a terminal, or in CI, the run
  stops with an error naming the variable. It travels as a :class:`Secret`, whose ``repr`` hides
  it, so it cannot reach a message, a record or a traceback by accident.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from toolkit.errors import ConfigError
from toolkit.suggest import did_you_mean

TRANSPORTS = ("ntlm", "kerberos", "credssp", "certificate", "basic")
# Transports whose messages pywinrm encrypts itself over http:// (message_encryption).
ENCRYPTING = frozenset({"ntlm", "kerberos", "credssp"})
WINRM_KEYS = ("endpoint", "transport", "user", "password_env", "ca", "cert", "key", "insecure")
DEFAULT_PASSWORD_ENV = "TOOLKIT_WINRM_PASSWORD"
DEFAULT_PORT = 5986
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,127}")
_SHAPE = "https://HOST:5986/wsman"


class Secret:
    """A password. ``str()`` and ``repr()`` show ``***``; :meth:`reveal` gives the value."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('***')"

    __str__ = __repr__

    def __reduce__(self) -> Any:  # never pickled, never copied into another process
        raise TypeError("a Secret cannot be pickled")


@dataclass(frozen=True, kw_only=True)
class WinRMSpec:
    """How to reach one build host over WinRM. Holds no password, only where to find one."""

    endpoint: str
    transport: str = "ntlm"
    user: str | None = None
    password_env: str | None = DEFAULT_PASSWORD_ENV
    ca: Path | None = None
    cert: Path | None = None
    key: Path | None = None
    insecure: bool = False
    endpoint_given: bool = True
    source: str = ""

    @property
    def host(self) -> str:
        return urlsplit(self.endpoint).hostname or self.endpoint

    @property
    def https(self) -> bool:
        return self.endpoint.lower().startswith("https://")

    @property
    def needs_password(self) -> bool:
        """Certificate auth needs none; Kerberos uses the ticket cache unless a variable is set."""
        return self.transport in ("ntlm", "credssp", "basic")

    @property
    def verify(self) -> bool:
        """Whether the listener's certificate is verified (False only with ``insecure``)."""
        return not (self.https and self.insecure)

    def exposures(self) -> list[str]:
        """What this configuration exposes, one warning per item; empty when nothing is."""
        where = self.source or self.endpoint
        found = []
        if self.https and self.insecure:
            found.append(
                f"{where}: insecure = true: the certificate of {self.host} is not verified; "
                "anyone on the network path can pose as the host, read the output and capture "
                f"the {self.transport} authentication"
            )
        if not self.https and self.transport == "basic" and not _is_loopback(self.host):
            found.append(
                f"{where}: insecure = true: Basic over http:// sends the password of "
                f"{self.user} and all output to {self.host} in clear text"
            )
        return found

    def record(self) -> dict[str, Any]:
        return {
            "endpoint": self.endpoint,
            "transport": self.transport,
            "user": self.user,
            "password_env": self.password_env,
            "ca": str(self.ca) if self.ca is not None else None,
            "verify": self.verify,
            "insecure": self.insecure,
        }


# --- hosts.toml ------------------------------------------------------------------------------


def _is_loopback(hostname: str) -> bool:
    from toolkit.hosts import is_loopback

    return is_loopback(hostname)


def _path(value: Any, *, where: str, base: Path, home: str) -> Path:
    if not isinstance(value, str) or not value:
        raise ConfigError(f"{where} must be a file path (a string)")
    if value == "~" or value.startswith("~/"):
        value = home + value[1:]
    path = Path(value)
    if not path.is_absolute():
        path = base / path
    if not path.is_file():
        raise ConfigError(f"{where}: {path} does not exist", hint="fix the path or create the file")
    return path


def default_endpoint(docker_host: str | None) -> str | None:
    """``https://<docker host name>:5986/wsman``, or None when the Docker endpoint names no
    host (``npipe://``, ``unix://``, a docker context)."""
    if not docker_host:
        return None
    host = f"[{docker_host}]" if ":" in docker_host else docker_host
    return f"https://{host}:{DEFAULT_PORT}/wsman"


def check_endpoint(url: str, *, where: str) -> str:
    """A WinRM URL with scheme, host, optional port and path, and no user info; else ConfigError.

    The message never repeats a URL that carries user info (it may hold a password).
    """
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 -- raises ValueError for a bad port
    except ValueError:
        raise ConfigError(f"{where}: the WinRM endpoint is not a valid URL", hint=_SHAPE) from None
    if "@" in parts.netloc:
        raise ConfigError(
            f"{where}: the WinRM endpoint carries user info in the URL",
            hint=f"use {_SHAPE} with user and password_env",
        )
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"{where}: WinRM endpoint {url!r} is not an http(s) URL", hint=_SHAPE)
    if parts.query or parts.fragment:
        raise ConfigError(f"{where}: WinRM endpoint {url!r} has a query or fragment", hint=_SHAPE)
    return url


def _safety(spec: WinRMSpec, *, where: str) -> None:
    if spec.https:
        return
    if spec.ca is not None:
        raise ConfigError(f"{where}: ca applies to https:// only", hint=f"use {_SHAPE}")
    if spec.transport == "certificate":
        raise ConfigError(
            f"{where}: certificate authentication needs https://", hint=f"use {_SHAPE}"
        )
    if _is_loopback(spec.host) or spec.transport in ENCRYPTING:
        return
    if not spec.insecure:
        raise ConfigError(
            f"{where}: Basic over plain http:// to {spec.host} is refused: the password and "
            "all output would cross the network in clear text",
            hint=f"use {_SHAPE}, or transport = 'ntlm' (encrypts each message); "
            "insecure = true accepts the risk",
        )


def parse_winrm_table(
    table: Any,
    *,
    where: str,
    docker_host: str | None,
    base: Path,
    home: str,
) -> WinRMSpec:
    """Validate ``[hosts.<release>.winrm]``. ``docker_host`` is the Docker endpoint's host name
    (the default endpoint's host); ``base`` is the directory relative paths start from."""
    if not isinstance(table, dict):
        raise ConfigError(f"{where} must be a table", hint='write transport = "ntlm", user = ...')
    for key in table:
        if "pass" in key.lower() and key != "password_env":
            raise ConfigError(
                f"{where}: a password never goes in hosts.toml (key {key!r})",
                hint="put it in an environment variable and name that variable with "
                f"password_env (default {DEFAULT_PASSWORD_ENV})",
            )
        if key not in WINRM_KEYS:
            raise ConfigError(
                f"{where}: unknown key {key!r}",
                hint=did_you_mean(key, WINRM_KEYS, listing="known keys"),
            )
    transport = table.get("transport", "ntlm")
    if transport not in TRANSPORTS:
        shown = transport if isinstance(transport, str) else type(transport).__name__
        raise ConfigError(
            f"{where}.transport {shown!r} is not a WinRM transport",
            hint=f"use one of {', '.join(TRANSPORTS)}",
        )
    insecure = table.get("insecure", False)
    if not isinstance(insecure, bool):
        raise ConfigError(f"{where}.insecure must be true or false")
    user = table.get("user")
    if user is not None and (not isinstance(user, str) or not user):
        raise ConfigError(f"{where}.user must be a user name (a string)")
    if user is None and transport in ("ntlm", "credssp", "basic"):
        raise ConfigError(
            f"{where} needs user for transport {transport!r}",
            hint='user = "DOMAIN\\\\name" or "name" (a local account)',
        )
    password_env = table.get("password_env", DEFAULT_PASSWORD_ENV if user else None)
    if password_env is not None and (
        not isinstance(password_env, str) or not _ENV_NAME.fullmatch(password_env)
    ):
        # The value is not shown: someone may have pasted the password itself here.
        raise ConfigError(
            f"{where}.password_env must name an environment variable "
            "(letters, digits and _), not hold the password",
            hint=f'password_env = "{DEFAULT_PASSWORD_ENV}"',
        )
    given = "endpoint" in table
    endpoint = table.get("endpoint") if given else default_endpoint(docker_host)
    if endpoint is None:
        raise ConfigError(
            f"{where} needs endpoint: the Docker endpoint names no host to derive it from",
            hint=f'endpoint = "{_SHAPE}"',
        )
    if not isinstance(endpoint, str):
        raise ConfigError(f"{where}.endpoint must be a URL string", hint=_SHAPE)
    endpoint = check_endpoint(endpoint, where=f"{where}.endpoint")
    paths = {
        name: _path(table[name], where=f"{where}.{name}", base=base, home=home)
        for name in ("ca", "cert", "key")
        if name in table
    }
    if transport == "certificate" and ("cert" not in paths or "key" not in paths):
        raise ConfigError(
            f"{where}: transport 'certificate' needs cert and key",
            hint="the client certificate mapped to a local account on the host, and its key",
        )
    if transport != "certificate" and ("cert" in paths or "key" in paths):
        raise ConfigError(
            f"{where}: cert and key apply to transport 'certificate' only",
            hint="remove them, or set transport = 'certificate'",
        )
    spec = WinRMSpec(
        endpoint=endpoint,
        transport=transport,
        user=user,
        password_env=password_env,
        ca=paths.get("ca"),
        cert=paths.get("cert"),
        key=paths.get("key"),
        insecure=insecure,
        endpoint_given=given,
        source=where,
    )
    _safety(spec, where=where)
    return spec


# --- passwords -------------------------------------------------------------------------------


def in_ci(env: Mapping[str, str]) -> bool:
    """CI services set ``CI``; GitHub Actions also ``GITHUB_ACTIONS``."""
    return env.get("CI", "").lower() in ("1", "true", "yes") or env.get("GITHUB_ACTIONS") == "true"


def terminal_prompt(env: Mapping[str, str], *, stdin_isatty: bool) -> Callable[[str], str] | None:
    """``getpass.getpass`` (asks on the terminal, no echo) when a person can answer: a terminal
    is attached and this is not CI; else None, so a missing variable is an error."""
    if not stdin_isatty or in_ci(env):
        return None
    import getpass

    return getpass.getpass


def resolve_passwords(
    specs: Sequence[WinRMSpec],
    env: Mapping[str, str],
    *,
    prompt: Callable[[str], str] | None,
) -> dict[str, Secret | None]:
    """The password of each spec, keyed by ``password_env`` (asked once per variable).

    ``prompt`` (``getpass.getpass``) is None when no terminal is attached or in CI; then a
    variable that is not set is a ConfigError naming it. Kerberos without a variable uses the
    ticket cache; certificate auth needs no password.
    """
    found: dict[str, Secret | None] = {}
    for spec in specs:
        name = spec.password_env
        if name is None or name in found:
            continue
        value = env.get(name)
        if value:
            found[name] = Secret(value)
            continue
        if not spec.needs_password:
            found[name] = None
            continue
        users = sorted({s.user or "" for s in specs if s.password_env == name})
        hosts = ", ".join(sorted({s.host for s in specs if s.password_env == name}))
        if prompt is None:
            state = "is empty" if name in env else "is not set"
            raise ConfigError(
                f"the WinRM password for {', '.join(users)} on {hosts}: environment variable "
                f"{name} {state}",
                hint=f"set {name} (in CI: from the secret store); it is never read from "
                "hosts.toml or the command line",
            )
        answer = prompt(f"WinRM password for {', '.join(users)} on {hosts} ({name}): ")
        if not answer:
            raise ConfigError(f"no WinRM password given for {hosts}", hint=f"or set {name}")
        found[name] = Secret(answer)
    return found
