"""toolkit.registry.RegistryClient against real registries: plain, TLS + htpasswd, token auth.

Faults come from the fault proxy double in front of the real plain registry (a 500 or a reset
for the first N matching requests) and from killing the registry itself.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.docker import registries as regs
from tests.docker.publish.conftest import TLSRegistry, TokenRegistry
from tests.doubles.fault_proxy import RESET, Fault, FaultProxyDouble
from toolkit.credentials import Credential, DockerConfigCredentials, StaticCredentials
from toolkit.errors import RegistryError, RegistryNotFoundError, RegistryUnavailableError
from toolkit.mediatypes import MANIFEST_V2, sha256_digest
from toolkit.registry import RegistryClient, RetryPolicy

FAST = RetryPolicy(attempts=3, backoff=0.01, max_backoff=0.02, timeout=10)


@pytest.fixture
def proxy(plain_registry: regs.RunningRegistry) -> Iterator[FaultProxyDouble]:
    double = FaultProxyDouble(plain_registry.address)
    double.start()
    yield double
    double.stop()


def test_round_trip_on_plain_registry(plain_registry: regs.RunningRegistry, repo: str) -> None:
    with RegistryClient(plain_registry.address, actions="pull,push", retry=FAST) as client:
        client.ping()
        digest = regs.put_windows_image(client, repo, "3.8-rc-windowsservercore-1809", "1809")
        fetched = client.get_manifest(repo, "3.8-rc-windowsservercore-1809")
        assert fetched.media_type == MANIFEST_V2
        assert fetched.digest == digest == sha256_digest(fetched.body)
        by_digest = client.get_manifest(repo, digest)
        assert by_digest.body == fetched.body
        config_digest = fetched.json()["config"]["digest"]
        config = json.loads(client.get_blob(repo, config_digest))
        assert config["os.version"] == "10.0.17763.805"
        headers = client.blob_headers(repo, config_digest)
        assert int(headers["Content-Length"]) == fetched.json()["config"]["size"]
        assert client.manifest_digest(repo, "3.8-rc-windowsservercore-1809") == digest
        assert client.manifest_digest(repo, "absent") is None
        with pytest.raises(RegistryNotFoundError) as caught:
            client.get_manifest(repo, "absent")
        assert str(caught.value) == (
            f"registry {plain_registry.address}, repository {repo}, tag absent: "
            "manifest not found (MANIFEST_UNKNOWN: manifest unknown)"
        )


def test_retries_500_and_resets_then_succeeds(proxy: FaultProxyDouble, repo: str) -> None:
    with RegistryClient(proxy.address, actions="pull,push", retry=FAST) as client:
        regs.put_windows_image(client, repo, "a", "1809")
    proxy.seen.clear()
    proxy.faults = [
        Fault("GET", r"/manifests/a$", times=1, status=500),
        Fault("GET", r"/manifests/a$", times=1, status=RESET),
    ]
    with RegistryClient(proxy.address, retry=FAST) as client:
        fetched = client.get_manifest(repo, "a")
        assert fetched.media_type == MANIFEST_V2
        assert client.requests_made == 3
    assert [s for _, _, s in proxy.seen] == [500, RESET, 200]


def test_4xx_is_never_retried(proxy: FaultProxyDouble, repo: str) -> None:
    proxy.faults = [Fault("GET", r"/manifests/b$", times=5, status=400)]
    with (
        RegistryClient(proxy.address, retry=FAST) as client,
        pytest.raises(RegistryError) as caught,
    ):
        client.get_manifest(repo, "b")
    assert client.requests_made == 1
    assert [s for _, _, s in proxy.seen] == [400]
    assert "answered 400" in str(caught.value)
    assert f"repository {repo}, tag b" in str(caught.value)


def test_persistent_5xx_gives_up_naming_the_registry(proxy: FaultProxyDouble, repo: str) -> None:
    proxy.faults = [Fault("GET", r"/manifests/c$", times=10, status=503)]
    with (
        RegistryClient(proxy.address, retry=FAST) as client,
        pytest.raises(RegistryUnavailableError) as caught,
    ):
        client.get_manifest(repo, "c")
    assert client.requests_made == FAST.attempts
    assert str(caught.value).startswith(
        f"registry {proxy.address}, repository {repo}, tag c: GET failed after 3 attempts: 503"
    )


def test_killed_registry_is_unavailable(fresh_registry: regs.RunningRegistry, repo: str) -> None:
    fresh_registry.kill()
    with (
        RegistryClient(fresh_registry.address, retry=FAST) as client,
        pytest.raises(RegistryUnavailableError) as caught,
    ):
        client.get_manifest(repo, "x")
    assert "Connection refused" in str(caught.value)
    fresh_registry.start()
    with RegistryClient(fresh_registry.address, retry=FAST) as client:
        assert client.manifest_digest(repo, "x") is None


# --- TLS + basic auth ------------------------------------------------------------------------


def test_tls_basic_auth_with_docker_config(
    tls_registry: TLSRegistry, repo: str, tmp_path: Path
) -> None:
    address = tls_registry.registry.address
    import base64

    auth = base64.b64encode(f"{tls_registry.user}:{tls_registry.password}".encode()).decode()
    (tmp_path / "config.json").write_text(
        json.dumps({"auths": {f"https://{address}": {"auth": auth}}})
    )
    credentials = DockerConfigCredentials({"DOCKER_CONFIG": str(tmp_path)})
    with RegistryClient(
        address,
        scheme="https",
        credentials=credentials,
        ca=tls_registry.ca,
        actions="pull,push",
        retry=FAST,
    ) as client:
        digest = regs.put_windows_image(client, repo, "1809", "1809")
        assert client.get_manifest(repo, "1809").digest == digest


def test_tls_refuses_unknown_ca(tls_registry: TLSRegistry, bogus_ca: Path, repo: str) -> None:
    address = tls_registry.registry.address
    with (
        RegistryClient(address, scheme="https", ca=bogus_ca, retry=FAST) as client,
        pytest.raises(RegistryError) as caught,
    ):
        client.get_manifest(repo, "x")
    assert "TLS verification failed" in str(caught.value)
    assert client.requests_made == 1  # a TLS failure is not retried


def test_basic_auth_without_or_with_wrong_credentials(tls_registry: TLSRegistry, repo: str) -> None:
    address = tls_registry.registry.address
    with (
        RegistryClient(address, scheme="https", ca=tls_registry.ca, retry=FAST) as client,
        pytest.raises(RegistryError) as caught,
    ):
        client.get_manifest(repo, "x")
    assert str(caught.value) == (
        f"registry {address}, repository {repo}, tag x: the registry needs a login "
        f"(run docker login {address})"
    )
    wrong = StaticCredentials({address: Credential(tls_registry.user, "not-the-password")})
    with (
        RegistryClient(
            address, scheme="https", ca=tls_registry.ca, credentials=wrong, retry=FAST
        ) as client,
        pytest.raises(RegistryError) as caught,
    ):
        client.get_manifest(repo, "x")
    assert "unauthorized" in str(caught.value)
    assert "not-the-password" not in str(caught.value)
    assert client.requests_made == 2  # one challenge, one refused try: no retries


# --- token auth ------------------------------------------------------------------------------


def test_token_flow_one_token_for_reads_and_writes(
    token_registry: TokenRegistry, repo: str
) -> None:
    address = token_registry.registry.address
    credentials = StaticCredentials(
        {address: Credential(token_registry.user, token_registry.password)}
    )
    before = len(token_registry.tokens.requests)
    with RegistryClient(
        address, credentials=credentials, actions="pull,push", retry=FAST
    ) as client:
        digest = regs.put_windows_image(client, repo, "1809", "1809")
        assert client.get_manifest(repo, "1809").digest == digest
    asked = token_registry.tokens.requests[before:]
    assert asked == [
        {"path": "/token", "user": token_registry.user, "scope": f"repository:{repo}:pull,push"}
    ]


def test_token_anonymous_can_read_not_write(token_registry: TokenRegistry, repo: str) -> None:
    address = token_registry.registry.address
    credentials = StaticCredentials(
        {address: Credential(token_registry.user, token_registry.password)}
    )
    with RegistryClient(
        address, credentials=credentials, actions="pull,push", retry=FAST
    ) as client:
        regs.put_windows_image(client, repo, "1809", "1809")
    with RegistryClient(address, actions="pull,push", retry=FAST) as anonymous:
        assert anonymous.get_manifest(repo, "1809").media_type == MANIFEST_V2
        with pytest.raises(RegistryError, match="unauthorized"):
            anonymous.put_manifest(
                repo, "other", anonymous.get_manifest(repo, "1809").body, MANIFEST_V2
            )
    with RegistryClient(address, actions="pull,push", retry=FAST) as client:
        assert client.manifest_digest(repo, "other") is None


def test_token_service_refuses_wrong_password(token_registry: TokenRegistry, repo: str) -> None:
    address = token_registry.registry.address
    wrong = StaticCredentials({address: Credential(token_registry.user, "nope-" + "x" * 8)})
    with (
        RegistryClient(address, credentials=wrong, retry=FAST) as client,
        pytest.raises(RegistryError) as caught,
    ):
        client.get_manifest(repo, "1809")
    assert "token service refused the credentials (401)" in str(caught.value)
    assert "nope-" not in str(caught.value)
