"""Registry credentials from the Docker client's configuration, as ``docker login`` leaves them.

The file is ``$DOCKER_CONFIG/config.json``, else ``$HOME/.docker/config.json``. For a registry the
lookup follows the Docker CLI: ``credHelpers[registry]`` names a helper for that registry, else
``credsStore`` names one for every registry, else ``auths[registry]`` holds ``auth`` (base64 of
``user:password``), or ``username``/``password``, or an ``identitytoken``. A helper is the
program ``docker-credential-<name>``: ``get`` reads the server address on stdin and prints
``{"ServerURL", "Username", "Secret"}``; a ``Username`` of ``<token>`` means the secret is an
identity (refresh) token.

Secrets never leave this module except inside :class:`Credential`, whose ``repr`` hides them;
error messages name the file, the key and the helper, never a value read from them.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import shutil
import subprocess
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from toolkit.errors import ConfigError, RegistryError, ToolMissingError

DOCKER_HUB = "docker.io"
# The key the Docker CLI stores Docker Hub credentials under.
DOCKER_HUB_KEY = "https://index.docker.io/v1/"
HELPER_TIMEOUT = 60.0
_HELPER_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
_NOT_FOUND = "credentials not found"


@dataclass(frozen=True)
class Credential:
    """A user name and its secret (a password, or an identity token when ``identity_token``)."""

    username: str
    secret: str = field(repr=False)
    identity_token: bool = False


class CredentialSource(Protocol):
    def lookup(self, registry: str) -> Credential | None:
        """Credentials for ``registry`` (``host[:port]``), or None to go anonymous."""
        ...


class NoCredentials:
    """Anonymous access everywhere."""

    def lookup(self, registry: str) -> Credential | None:
        return None


@dataclass(frozen=True)
class StaticCredentials:
    """Fixed credentials per registry (for callers that already hold them)."""

    by_registry: Mapping[str, Credential]

    def lookup(self, registry: str) -> Credential | None:
        return self.by_registry.get(registry)


def config_path(env: Mapping[str, str]) -> Path | None:
    """Where the Docker CLI reads its configuration in this environment (None: no home)."""
    if env.get("DOCKER_CONFIG"):
        return Path(env["DOCKER_CONFIG"]) / "config.json"
    if env.get("HOME"):
        return Path(env["HOME"]) / ".docker" / "config.json"
    return None


def _key(address: str) -> str:
    """``https://host:port/v1/`` -> ``host:port``, the way the Docker CLI matches auths keys."""
    text = address.strip()
    text = re.sub(r"^[A-Za-z][A-Za-z0-9+.-]*://", "", text)
    host = text.split("/", 1)[0].lower()
    return DOCKER_HUB if host in ("index.docker.io", "registry-1.docker.io") else host


Runner = Callable[..., "subprocess.CompletedProcess[bytes]"]


class DockerConfigCredentials:
    """Reads the Docker config once, on the first lookup; runs helpers on demand."""

    def __init__(self, env: Mapping[str, str], *, run: Runner = subprocess.run) -> None:
        self._env = dict(env)
        self._run = run
        self._config: dict[str, Any] | None = None
        self.path = config_path(env)

    def _load(self) -> dict[str, Any]:
        if self._config is not None:
            return self._config
        path = self.path
        config: dict[str, Any] = {}
        if path is not None and path.exists():
            from toolkit.files import UnreadableFile, read_text

            try:
                loaded = json.loads(read_text(path))  # a FIFO is refused, not waited on
            except UnreadableFile as exc:
                raise ConfigError(f"{path}: cannot be read: {exc.why}") from None
            except json.JSONDecodeError as exc:
                raise ConfigError(
                    f"{path}: not valid JSON (line {exc.lineno}, column {exc.colno})",
                    hint="fix the file or run docker login again",
                ) from None
            except (RecursionError, ValueError):  # nested too deeply; a 5000-digit number
                raise ConfigError(
                    f"{path}: not valid JSON (nested too deeply, or a number too long)",
                    hint="fix the file or run docker login again",
                ) from None
            if not isinstance(loaded, dict):
                raise ConfigError(f"{path}: expected a JSON object at the top level")
            config = loaded
        for name in ("auths", "credHelpers"):
            if not isinstance(config.get(name, {}), dict):
                raise ConfigError(f"{path}: {name!r} must be an object")
        if not isinstance(config.get("credsStore", ""), str):
            raise ConfigError(f"{path}: 'credsStore' must be a string")
        self._config = config
        return config

    def lookup(self, registry: str) -> Credential | None:
        config = self._load()
        wanted = _key(registry)
        helpers = {_key(k): v for k, v in config.get("credHelpers", {}).items()}
        helper = helpers.get(wanted) or config.get("credsStore") or None
        if helper is not None:
            if not isinstance(helper, str) or not _HELPER_NAME.fullmatch(helper):
                raise ConfigError(f"{self.path}: credential helper name {helper!r} is not valid")
            found = self._from_helper(helper, wanted)
            if found is not None:
                return found
        for key, entry in config.get("auths", {}).items():
            if _key(key) == wanted:
                return self._from_entry(key, entry)
        return None

    def _from_entry(self, key: str, entry: Any) -> Credential | None:
        where = f"{self.path}: auths[{key!r}]"
        if not isinstance(entry, dict):
            raise ConfigError(f"{where} must be an object")
        if entry.get("identitytoken"):
            return Credential(
                str(entry.get("username") or "<token>"), str(entry["identitytoken"]), True
            )
        if entry.get("auth"):
            try:
                decoded = base64.b64decode(str(entry["auth"]), validate=True).decode("utf-8")
            except (binascii.Error, UnicodeDecodeError, ValueError):
                raise ConfigError(
                    f"{where}.auth is not base64 of user:password", hint="run docker login again"
                ) from None
            user, colon, secret = decoded.partition(":")
            if not colon or not user:
                raise ConfigError(
                    f"{where}.auth is not base64 of user:password", hint="run docker login again"
                )
            return Credential(user, secret)
        if entry.get("username") and entry.get("password") is not None:
            return Credential(str(entry["username"]), str(entry["password"]))
        return None

    def _from_helper(self, helper: str, registry: str) -> Credential | None:
        program = f"docker-credential-{helper}"
        path = shutil.which(program, path=self._env.get("PATH"))
        if path is None:
            raise ToolMissingError(
                f"credential helper {program} (for {registry}, from {self.path}) is not on PATH",
                hint="install it, or remove it from credsStore/credHelpers",
            )
        server = DOCKER_HUB_KEY if registry == DOCKER_HUB else registry
        try:
            done = self._run(
                [path, "get"],
                input=server.encode(),
                capture_output=True,
                timeout=HELPER_TIMEOUT,
                env=self._env,
                check=False,
            )
        except subprocess.TimeoutExpired:
            raise RegistryError(
                f"credential helper {program} did not answer for {registry} within {HELPER_TIMEOUT:.0f} s"
            ) from None
        except OSError as exc:
            raise RegistryError(
                f"credential helper {program} could not run for {registry}: {exc.strerror}"
            ) from None
        out = done.stdout.decode("utf-8", "replace")
        if done.returncode != 0:
            # Helpers print "credentials not found in native keychain" on stdout: anonymous.
            if _NOT_FOUND in out.lower():
                return None
            first = (done.stderr.decode("utf-8", "replace").strip().splitlines() or [""])[0]
            raise RegistryError(
                f"credential helper {program} failed for {registry} (exit {done.returncode})"
                + (f": {first[:200]}" if first else ""),
                hint=f"check the helper, or run docker login {registry}",
            )
        try:
            answer = json.loads(out)
            username, secret = answer["Username"], answer["Secret"]
        except (json.JSONDecodeError, KeyError, TypeError):
            raise RegistryError(
                f"credential helper {program} answered something other than "
                f'{{"Username", "Secret"}} for {registry}'
            ) from None
        if not isinstance(username, str) or not isinstance(secret, str) or not secret:
            return None
        if username == "<token>":
            return Credential(username, secret, True)
        return Credential(username, secret)
