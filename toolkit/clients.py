"""Docker clients, created in one place: from a host's configuration to a connected client.

``hosts.py`` says which endpoint serves which release (configuration only); this module turns an
endpoint into a ``docker.DockerClient``, with the TLS rules the configuration promised, and
``ClientPool`` keeps one client per host for a run, remembering a host that could not be reached
so that its other targets fail at once with the same message.
"""

from __future__ import annotations

import shutil
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from toolkit.errors import (
    ConfigError,
    HostError,
    ToolkitError,
    ToolMissingError,
    describe_exception,
)
from toolkit.hosts import DEFAULT_TIMEOUT, HostSpec, check_url

if TYPE_CHECKING:
    from toolkit.references import Reference
    from toolkit.registry import RegistryClient

SSH_EXTRA = "install it: pip install 'windows-python-images-toolkit[ssh]', or pip install paramiko"


def _deadline_client(*, pin_ca: bool, **kwargs: Any) -> Any:
    """A ``docker.DockerClient`` whose requests over tcp:// end by their deadlines.

    requests bounds each socket read, never a whole answer: an engine (or something pretending
    to be one) that sends a header byte now and then would hold the run for ever. The http://
    and https:// adapters are replaced by :class:`toolkit.transport.EngineDeadlineAdapter`
    before the client's first request (the API version check), so every answer's headers come
    within twice the client's timeout, and an ordinary answer's body too; a streamed build or
    push is ended by its own deadline. unix:// and npipe:// (a local engine) keep docker-py's
    adapters.

    With ``pin_ca``, TLS verification cannot be redirected by the environment: requests'
    ``Session.merge_environment_settings`` replaces the per-request ``verify`` with
    REQUESTS_CA_BUNDLE/CURL_CA_BUNDLE when they are set, and the per-request value beats the
    session's, so docker-py's ``TLSConfig(ca_cert=...)`` would be silently ignored
    (docker/docker-py#2433). The client puts the session's CA back on every request; proxies
    from the environment still apply.
    """
    import docker
    import requests.adapters

    from toolkit.transport import EngineDeadlineAdapter

    class DeadlineAPIClient(docker.APIClient):  # type: ignore[misc]
        def _retrieve_server_version(self) -> Any:
            self._under_deadlines()  # the adapters are mounted by now; this is the first request
            return super()._retrieve_server_version()

        def _under_deadlines(self) -> None:
            for prefix in ("http://", "https://"):
                adapter = self.adapters.get(prefix)
                if type(adapter) is requests.adapters.HTTPAdapter:  # docker-py's tcp:// one
                    self.mount(prefix, EngineDeadlineAdapter(max_retries=adapter.max_retries))

        def merge_environment_settings(
            self, url: Any, proxies: Any, stream: Any, verify: Any, cert: Any
        ) -> dict[str, Any]:
            settings: dict[str, Any] = super().merge_environment_settings(
                url, proxies, stream, verify, cert
            )
            if pin_ca:
                settings["verify"] = self.verify
            return settings

    class DeadlineDockerClient(docker.DockerClient):  # type: ignore[misc]
        def __init__(self, **kw: Any) -> None:
            self.api = DeadlineAPIClient(**kw)
            self.api._under_deadlines()  # also when no version check ran

    return DeadlineDockerClient(**kwargs)


def _endpoint(spec: HostSpec) -> tuple[str, Any]:
    """(base URL, docker TLSConfig or None) for ``spec``; a docker context is resolved here and
    held to the same rules as a URL (no plain remote tcp://, no TLS without verification)."""
    from docker.tls import TLSConfig

    if spec.context is None:
        if spec.tls is None:
            return spec.url, None
        tls_config = TLSConfig(
            client_cert=(str(spec.tls.cert), str(spec.tls.key)),
            ca_cert=str(spec.tls.ca),
            verify=True,
        )
        return "https://" + spec.url.split("://", 1)[1], tls_config
    from docker.context import ContextAPI

    where = f"docker context {spec.context!r} ({spec.source})"
    try:
        context = ContextAPI.get_context(spec.context)
    except Exception as exc:
        raise ConfigError(
            f"{where} cannot be read: {describe_exception(exc)}", hint="check: docker context ls"
        ) from exc
    if context is None:
        raise ConfigError(
            f"{where} does not exist", hint="list them with: docker context ls (DOCKER_CONFIG)"
        )
    host = str(context.Host or "")
    tls_config = context.TLSConfig
    endpoint = context.endpoints.get("docker", {})
    if tls_config is not None and (not tls_config.verify or endpoint.get("SkipTLSVerify")):
        raise ConfigError(
            f"{where} does not verify the engine's TLS certificate",
            hint="recreate the context with --docker ca=...,cert=...,key=... (no skip-tls-verify)",
        )
    # docker-py spells a context's endpoint http+unix://, http:// or https://; check it as the
    # unix:// or tcp:// it is.
    scheme, sep, rest = host.partition("://")
    plain = {"http+unix": "unix", "http": "tcp", "https": "tcp", "http+npipe": "npipe"}
    check_url(f"{plain.get(scheme, scheme)}{sep}{rest}", where=where, tls=tls_config is not None)
    return host, tls_config


def connect(spec: HostSpec, env: Mapping[str, str], *, timeout: float = DEFAULT_TIMEOUT) -> Any:
    """A ``docker.DockerClient`` for ``spec`` (API version negotiated with the engine).

    Raises HostError naming the host when the engine cannot be reached, ConfigError when a
    docker context does not exist or breaks the security rules. ``env`` is accepted for
    symmetry; docker-py itself reads DOCKER_CONFIG (the context store) from the process.
    """
    import docker

    base_url, tls_config = _endpoint(spec)
    if base_url.startswith("ssh://"):
        check_ssh_support(spec, env)
    try:
        if tls_config is not None:
            return _deadline_client(
                pin_ca=True, base_url=base_url, tls=tls_config, version="auto", timeout=timeout
            )
        return _deadline_client(
            pin_ca=False,
            base_url=base_url,
            version="auto",
            timeout=timeout,
            use_ssh_client=base_url.startswith("ssh://"),
        )
    except (docker.errors.DockerException, OSError) as exc:
        raise HostError(
            f"Docker host {spec.name} ({spec.source}) cannot be reached: {describe_exception(exc)}",
            hint="check that the engine runs and the address and certificates are right",
        ) from exc


def check_ssh_support(spec: HostSpec, env: Mapping[str, str]) -> None:
    """ssh:// runs the OpenSSH client (``ssh ... docker system dial-stdio``), so its keys, agent,
    ``~/.ssh/config`` and known_hosts apply; docker-py imports paramiko for any ssh:// endpoint
    even then. paramiko is an optional extra (``[ssh]``): it adds some 0.15 s to every start of
    a command that talks to Docker, for a transport most runs never use. Missing either is a
    ToolMissingError (exit 9) saying how to install it.
    """
    import docker.transport

    where = f"Docker host {spec.name} ({spec.source})"
    if shutil.which("ssh", path=env.get("PATH")) is None:
        raise ToolMissingError(
            f"{where}: ssh:// endpoints need the OpenSSH client (ssh), which is not on PATH",
            hint="install it (Debian: apt-get install openssh-client; Windows: "
            "Add-WindowsCapability -Online -Name OpenSSH.Client~~~~0.0.1.0)",
        )
    if not hasattr(docker.transport, "SSHHTTPAdapter"):  # its import of paramiko failed
        raise ToolMissingError(
            f"{where}: ssh:// endpoints need paramiko, which is not installed",
            hint=SSH_EXTRA,
        )


class ClientPool:
    """The Docker clients of one run: one per host, connected on first use, closed at the end.

    Thread-safe: the runner's per-host workers share it. A host that cannot be reached (or whose
    engine does not answer) is remembered, and asking for it again raises the same error.
    """

    def __init__(self, env: Mapping[str, str], *, timeout: float = DEFAULT_TIMEOUT) -> None:
        self._env = env
        self._timeout = timeout
        self._lock = threading.Lock()
        self._clients: dict[object, Any] = {}
        self._errors: dict[object, ToolkitError] = {}
        self._os_types: dict[object, str] = {}

    def __enter__(self) -> ClientPool:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def connect(self, spec: HostSpec) -> Any:
        key = spec.key
        with self._lock:
            if key in self._errors:
                raise self._errors[key]
            if key not in self._clients:
                try:
                    self._clients[key] = connect(spec, self._env, timeout=self._timeout)
                except ToolkitError as exc:
                    self._errors[key] = exc
                    raise
            return self._clients[key]

    def os_type(self, spec: HostSpec, known: str | None = None) -> str:
        """The engine's OSType: ``known`` (preflight already asked), else asked once."""
        if known is not None:
            return known
        key = spec.key
        client = self.connect(spec)
        with self._lock:
            if key in self._os_types:
                return self._os_types[key]
        try:
            os_type = str(client.info().get("OSType") or "windows")
        except Exception as exc:
            error = HostError(
                f"Docker host {spec.name} does not answer: {describe_exception(exc)}",
                hint="check that the engine runs",
            )
            with self._lock:
                self._errors[key] = error
            raise error from None
        with self._lock:
            self._os_types[key] = os_type
        return os_type

    def close(self) -> None:
        with self._lock:
            clients, self._clients = list(self._clients.values()), {}
        for client in clients:
            client.close()


def connect_registry(
    repo: str,
    env: Mapping[str, str],
    *,
    ca: Path | None = None,
    retries: int = 3,
    timeout: float = 30.0,
    push: bool = False,
) -> tuple[RegistryClient, Reference]:
    """(RegistryClient, Reference) for ``--repo`` (``[https://]REGISTRY/NAME``).

    A bad ``--repo``, plain HTTP to a registry that is not loopback, or a missing CA file is a
    ConfigError before anything is sent.
    """
    from toolkit.registry import parse_repository

    if not repo:
        raise ConfigError("--repo is required", hint="e.g. --repo registry.example.net/python")
    scheme, ref = parse_repository(repo)
    client = open_registry(
        ref.registry, env, scheme=scheme, ca=ca, retries=retries, timeout=timeout, push=push
    )
    return client, ref


def open_registry(
    registry: str,
    env: Mapping[str, str],
    *,
    scheme: str | None = None,
    ca: Path | None = None,
    retries: int = 3,
    timeout: float = 30.0,
    push: bool = False,
) -> RegistryClient:
    """A RegistryClient for ``registry`` (``HOST[:PORT]``): credentials from the Docker config
    of ``env`` (``DOCKER_CONFIG``, ``~/.docker``), the CA from ``ca`` (else the system store)."""
    from toolkit.credentials import DockerConfigCredentials
    from toolkit.registry import RegistryClient, RetryPolicy, base_url

    base_url(registry, scheme)  # refuses plain HTTP to a registry that is not loopback
    if ca is not None and not ca.is_file():
        raise ConfigError(f"--registry-ca {ca}: no such file", hint="pass the CA's PEM file")
    return RegistryClient(
        registry,
        scheme=scheme,
        credentials=DockerConfigCredentials(env),
        ca=ca,
        retry=RetryPolicy(attempts=retries + 1, timeout=timeout),
        actions="pull,push" if push else "pull",
    )
