"""hosts and preflight against the real engines: TLS, the CA-bundle trap, Linux engines refused."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import run_toolkit
from tests.docker.engines import Engine
from toolkit.clients import connect
from toolkit.errors import HostError
from toolkit.hosts import HostSpec, TLSFiles, load_hosts
from toolkit.matrix import build_matrix
from toolkit.preflight import choose_isolation, inspect_engine, plan_assignments
from toolkit.versions import load_versions


def _tls_spec(engine: Engine, *, ca: Path | None = None) -> HostSpec:
    assert engine.tls is not None
    assert engine.tls_url is not None
    files = TLSFiles(ca=ca or engine.tls.ca, cert=engine.tls.cert, key=engine.tls.key)
    return HostSpec(url=engine.tls_url, tls=files, release=engine.release, source="test")


def _hosts_toml(directory: Path, engines: dict[str, Engine]) -> Path:
    tls = engines["1809"].tls
    assert tls is not None
    path = directory / "hosts.toml"
    path.write_text(
        f'[hosts.ltsc2016]\nurl = "{engines["ltsc2016"].url}"\n'
        f'[hosts.1803]\nurl = "{engines["1803"].url}"\n'
        f'[hosts.1809]\nurl = "{engines["1809"].tls_url}"\n'
        f'ca = "{tls.ca}"\ncert = "{tls.cert}"\nkey = "{tls.key}"\n',
        "utf-8",
    )
    return path


def test_tls_verifies_against_the_configured_ca_despite_env_bundles(
    engines: dict[str, Engine], bogus_ca: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """docker/docker-py#2433: REQUESTS_CA_BUNDLE/CURL_CA_BUNDLE replace docker-py's CA."""
    import docker
    from docker.tls import TLSConfig

    engine = engines["1809"]
    assert engine.tls is not None
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(bogus_ca))
    monkeypatch.setenv("CURL_CA_BUNDLE", str(bogus_ca))

    # The trap is real here: a plain docker-py client with the right CA fails verification.
    plain_tls = TLSConfig(
        client_cert=(str(engine.tls.cert), str(engine.tls.key)), ca_cert=str(engine.tls.ca)
    )
    with pytest.raises(docker.errors.DockerException, match="CERTIFICATE_VERIFY_FAILED"):
        docker.DockerClient(base_url="https://127.0.0.1:2376", tls=plain_tls, version="auto")

    # The toolkit's client verifies against the configured CA and gets through.
    client = connect(_tls_spec(engine), {})
    try:
        assert client.info()["DockerRootDir"] == str(engine.root / "data")
    finally:
        client.close()


def test_env_bundle_cannot_stand_in_for_a_wrong_ca(
    engines: dict[str, Engine], bogus_ca: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The other direction: configured CA wrong, the right one only in the environment."""
    engine = engines["1809"]
    assert engine.tls is not None
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(engine.tls.ca))
    monkeypatch.setenv("CURL_CA_BUNDLE", str(engine.tls.ca))
    with pytest.raises(HostError) as caught:
        connect(_tls_spec(engine, ca=bogus_ca), {})
    message = caught.value.one_line()
    assert "Docker host tcp://127.0.0.1:2376 (test) cannot be reached" in message
    assert "TLS verification failed" in message


def test_tls_engine_rejects_a_client_without_its_certificate(engines: dict[str, Engine]) -> None:
    # Plain tcp:// on loopback is allowed by the rules, but the TLS engine refuses it.
    spec = load_hosts(None, ["1809=tcp://127.0.0.1:2376"], {}).for_release("1809")
    with pytest.raises(HostError, match=r"tcp://127\.0\.0\.1:2376 \(--host 1809\) cannot be"):
        connect(spec, {}, timeout=10)


def test_linux_engines_are_refused_unless_preflight_is_off(engines: dict[str, Engine]) -> None:
    config = load_hosts(None, [f"{name}={e.url}" for name, e in engines.items()], {})
    every = build_matrix(load_versions(Path(__file__).resolve().parents[2] / "versions.json"))
    builds = [b for b in every if b.line.name == "3.8-rc"]  # the releases these engines serve
    clients = []

    def connect_fn(spec: HostSpec) -> object:
        clients.append(connect(spec, {}))
        return clients[-1]

    try:
        plan = plan_assignments(builds, config, connect_fn, None, True)
        facts = inspect_engine(clients[0], host="x")
    finally:
        for client in clients:
            client.close()
    assert len(clients) == 3
    assert facts.os_type == "linux"
    assert facts.build is None
    assert facts.api_version == "1.41"
    for assignment in plan:
        assert assignment.error is not None
        assert "runs linux containers (OSType 'linux')" in assignment.error.one_line()
        assert assignment.facts is not None
    with pytest.raises(HostError, match="needs a Windows engine"):
        choose_isolation(facts, "1809", "process")

    unchecked = plan_assignments(builds, config, connect_fn, None, False)
    assert [(a.ok, a.isolation, a.facts) for a in unchecked] == [(True, None, None)] * 3
    assert len(clients) == 3  # nobody contacted


def test_toolkit_hosts_against_the_engines(
    workspace: Path, engines: dict[str, Engine], bogus_ca: Path
) -> None:
    hosts = _hosts_toml(workspace, engines)
    key_text = Path(str(engines["1809"].tls.key if engines["1809"].tls else "")).read_text()
    env = {"REQUESTS_CA_BUNDLE": str(bogus_ca), "CURL_CA_BUNDLE": str(bogus_ca)}

    checked = run_toolkit(
        "hosts", "3.8-rc-*", "--hosts", str(hosts), "--json", cwd=workspace, env=env
    )
    assert checked.returncode == 7, checked.stderr
    records = {r["release"]: r for r in json.loads(checked.stdout)}
    for record in records.values():
        # The TLS engine answered too (through the bogus env bundle): all were inspected.
        assert record["facts"]["os_type"] == "linux"
        assert "--no-preflight" in record["error"]
    assert records["1809"]["host"]["endpoint"] == "tcp://127.0.0.1:2376"

    unchecked = run_toolkit(
        "hosts", "3.8-rc-*", "--hosts", str(hosts), "--no-preflight", cwd=workspace, env=env
    )
    assert unchecked.returncode == 0, unchecked.stderr
    assert len([line for line in unchecked.stdout.splitlines() if line.endswith(" ok")]) == 3
    for output in (checked, unchecked):
        assert "PRIVATE KEY" not in output.stdout + output.stderr
        assert key_text.splitlines()[1] not in output.stdout + output.stderr


def _context_tls(engine: Engine, directory: Path, *, verify: bool = True) -> object:
    """The engine's client material as docker-py's context store wants it: files named
    ca*, cert* and key* (it finds them by those prefixes)."""
    from docker.tls import TLSConfig

    assert engine.tls is not None
    directory.mkdir(parents=True, exist_ok=True)
    for name, source in (("ca", engine.tls.ca), ("cert", engine.tls.cert), ("key", engine.tls.key)):
        (directory / f"{name}.pem").write_bytes(source.read_bytes())
    return TLSConfig(
        client_cert=(str(directory / "cert.pem"), str(directory / "key.pem")),
        ca_cert=str(directory / "ca.pem"),
        verify=verify,
    )


@pytest.fixture
def context_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty docker config directory (DOCKER_CONFIG) for docker contexts."""
    store = tmp_path / "docker-config"
    store.mkdir()
    (store / "config.json").write_text("{}\n", "utf-8")
    monkeypatch.setenv("DOCKER_CONFIG", str(store))
    return store


def test_docker_contexts_unix_and_tls(
    engines: dict[str, Engine],
    context_store: Path,
    bogus_ca: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from docker.context import ContextAPI

    ContextAPI.create_context("tk-1803", host=engines["1803"].url)
    ContextAPI.create_context(
        "tk-1809",
        host="tcp://127.0.0.1:2376",
        tls_cfg=_context_tls(engines["1809"], context_store / "material"),
    )
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(bogus_ca))
    config = load_hosts(None, ["1803=tk-1803", "1809=tk-1809"], {})
    for release in ("1803", "1809"):
        spec = config.for_release(release)
        assert spec.context == f"tk-{release}"
        client = connect(spec, {})
        try:
            assert client.info()["DockerRootDir"] == str(engines[release].root / "data")
        finally:
            client.close()


def test_docker_contexts_that_break_the_rules(
    engines: dict[str, Engine], context_store: Path
) -> None:
    from docker.context import ContextAPI

    from toolkit.errors import ConfigError

    ContextAPI.create_context("tk-plain", host="tcp://build.example.net:2375")
    ContextAPI.create_context(
        "tk-skip",
        host="tcp://127.0.0.1:2376",
        tls_cfg=_context_tls(engines["1809"], context_store / "material", verify=False),
        skip_tls_verify=True,
    )
    config = load_hosts(None, ["1809=tk-plain", "1803=tk-skip", "ltsc2016=tk-missing"], {})
    with pytest.raises(ConfigError, match=r"plain tcp:// to build\.example\.net is refused"):
        connect(config.for_release("1809"), {})
    with pytest.raises(ConfigError, match=r"'tk-missing' .* does not exist"):
        connect(config.for_release("ltsc2016"), {})
    with pytest.raises(ConfigError, match="does not verify the engine's TLS certificate"):
        connect(config.for_release("1803"), {})
