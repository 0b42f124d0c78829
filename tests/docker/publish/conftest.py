"""Registries for the publish tests (see tests/docker/registries.py), in the tests' namespace.

Fixtures:
    plain_registry  -> RunningRegistry on 127.0.0.1:5001: HTTP, anonymous, foreign-layer URLs
                       allowed (session)
    tls_registry    -> TLSRegistry: HTTPS on 127.0.0.1:5443 with htpasswd basic auth (session)
    token_registry  -> TokenRegistry: HTTP on 127.0.0.1:5002 with token auth through the token
                       service double (session)
    basic_registry  -> TLSRegistry-like (ca None): plain HTTP on 127.0.0.1:5004 with htpasswd basic
                       auth: loopback, so engines push to it over HTTP with credentials (session)
    fresh_registry  -> a new empty plain registry on 127.0.0.1:5003, for tests that kill it
    repo            -> a repository name unique to the test (``t<hex>/python``)
    workspace       -> the repository's workspace with only the 3.8-rc line: these tests
                       publish the 2019 seed's images and lists (its three releases)
"""

from __future__ import annotations

import json
import secrets
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.docker import engines as eng
from tests.docker import registries as regs
from tests.doubles.token_server import ISSUER, SERVICE, TokenServerDouble


@dataclass(frozen=True)
class TLSRegistry:
    registry: regs.RunningRegistry
    ca: Path
    user: str
    password: str


@dataclass(frozen=True)
class BasicRegistry:
    registry: regs.RunningRegistry
    user: str
    password: str


@dataclass(frozen=True)
class TokenRegistry:
    registry: regs.RunningRegistry
    tokens: TokenServerDouble
    user: str
    password: str


@pytest.fixture(scope="session")
def _publish_root(_engines_root: Path) -> Path:
    root = _engines_root / "publish"
    root.mkdir(exist_ok=True)
    return root


@pytest.fixture(scope="session")
def plain_registry(_netns: eng.Netns, _publish_root: Path) -> Iterator[regs.RunningRegistry]:
    registry = regs.make_registry(_publish_root / "plain", _netns, 5001)
    yield registry
    registry.stop()


@pytest.fixture(scope="session")
def tls_registry(_netns: eng.Netns, _publish_root: Path) -> Iterator[TLSRegistry]:
    root = _publish_root / "tls"
    certs = root / "certs"
    ca = eng.make_ca(certs, "registry-ca")
    server = eng._issue(
        certs, ca, "registry", "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n"
    )
    user, password = "publisher", "pw-" + secrets.token_hex(12)
    auth = regs.htpasswd_auth(certs / "htpasswd", {user: password})
    registry = regs.make_registry(root, _netns, 5443, auth=auth, tls=(server.cert, server.key))
    yield TLSRegistry(registry, ca[0], user, password)
    registry.stop()


@pytest.fixture(scope="session")
def basic_registry(_netns: eng.Netns, _publish_root: Path) -> Iterator[BasicRegistry]:
    root = _publish_root / "basic"
    root.mkdir(parents=True, exist_ok=True)
    user, password = "pusher", "bp-" + secrets.token_hex(12)
    auth = regs.htpasswd_auth(root / "htpasswd", {user: password})
    registry = regs.make_registry(root, _netns, 5004, auth=auth)
    yield BasicRegistry(registry, user, password)
    registry.stop()


@pytest.fixture(scope="session")
def token_registry(_netns: eng.Netns, _publish_root: Path) -> Iterator[TokenRegistry]:
    root = _publish_root / "token"
    user, password = "tokenuser", "tk-" + secrets.token_hex(12)
    tokens = TokenServerDouble(root / "signer", {user: password})
    tokens.start()
    auth = regs.token_auth(tokens.realm, SERVICE, ISSUER, tokens.cert_path)
    try:
        registry = regs.make_registry(root, _netns, 5002, auth=auth)
    except Exception:
        tokens.stop()
        raise
    yield TokenRegistry(registry, tokens, user, password)
    registry.stop()
    tokens.stop()


@pytest.fixture
def fresh_registry(_netns: eng.Netns, _publish_root: Path) -> Iterator[regs.RunningRegistry]:
    root = _publish_root / f"fresh-{secrets.token_hex(4)}"
    registry = regs.make_registry(root, _netns, 5003)
    yield registry
    registry.stop()
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def repo() -> str:
    return f"t{secrets.token_hex(4)}/python"


@pytest.fixture
def workspace(workspace: Path) -> Path:
    whole = json.loads((workspace / "versions.json").read_text())
    (workspace / "versions.json").write_text(json.dumps({"3.8-rc": whole["3.8-rc"]}, indent=2))
    for line in whole:
        if line != "3.8-rc":
            shutil.rmtree(workspace / "dockerfiles" / line)
    return workspace
