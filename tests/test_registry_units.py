"""References, registry URLs, challenges and Docker config credentials (no registry needed).

Credential helpers are real programs: small shell scripts named ``docker-credential-<name>``
on a temporary PATH, speaking the helper protocol (server address on stdin, JSON on stdout).
"""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path

import pytest

from toolkit.credentials import Credential, DockerConfigCredentials, config_path
from toolkit.errors import ConfigError, RegistryError, ToolMissingError
from toolkit.registry import (
    Reference,
    RetryPolicy,
    base_url,
    parse_challenge,
    parse_reference,
    parse_repository,
)

DIGEST = "sha256:" + "ab" * 32


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("127.0.0.1:5000/python:3.8-rc", Reference("127.0.0.1:5000", "python", "3.8-rc")),
        ("localhost/python", Reference("localhost", "python")),
        (
            "reg.example.net/library/python@" + DIGEST,
            Reference("reg.example.net", "library/python", None, DIGEST),
        ),
        (
            "Reg.Example.NET:443/a/b-c_d.e:t@" + DIGEST,
            Reference("reg.example.net:443", "a/b-c_d.e", "t", DIGEST),
        ),
        ("[::1]:5000/python:1", Reference("[::1]:5000", "python", "1")),
    ],
)
def test_parse_reference(text: str, expected: Reference) -> None:
    ref = parse_reference(text)
    assert ref == expected
    assert parse_reference(str(ref)) == ref


@pytest.mark.parametrize(
    "text",
    [
        "",
        " 127.0.0.1:5000/python",
        "python:3.8",  # no registry
        "python",
        "127.0.0.1:5000/Python",  # upper case repository
        "127.0.0.1:5000/python:",  # empty tag
        "127.0.0.1:5000/python:-bad",
        "127.0.0.1:5000/python@sha256:abc",
        "127.0.0.1:99999/python",
        "127.0.0.1:5000/py//thon",
        "127.0.0.1:5000/",
        "reg_istry.example/python",
        "https://127.0.0.1:5000/python",
    ],
)
def test_parse_reference_refuses(text: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_reference(text)
    assert "\n" not in str(caught.value)


def test_parse_repository_scheme_and_tag() -> None:
    assert parse_repository("https://127.0.0.1:5443/python") == (
        "https",
        Reference("127.0.0.1:5443", "python"),
    )
    assert parse_repository("127.0.0.1:5000/a/b") == (None, Reference("127.0.0.1:5000", "a/b"))
    with pytest.raises(ConfigError, match="unknown registry scheme 'ftp'"):
        parse_repository("ftp://127.0.0.1/python")
    with pytest.raises(ConfigError, match="without a tag"):
        parse_repository("127.0.0.1:5000/python:3.8")


def test_base_url_plain_http_only_to_loopback() -> None:
    assert base_url("127.0.0.1:5000") == "http://127.0.0.1:5000"
    assert base_url("localhost:5000") == "http://localhost:5000"
    assert base_url("[::1]:5000") == "http://[::1]:5000"
    assert base_url("127.0.0.1:5443", "https") == "https://127.0.0.1:5443"
    assert base_url("reg.example.net") == "https://reg.example.net"
    assert base_url("docker.io") == "https://registry-1.docker.io"
    with pytest.raises(ConfigError, match=r"plain HTTP to registry reg\.example\.net refused"):
        base_url("reg.example.net", "http")
    with pytest.raises(ConfigError, match="plain HTTP"):
        base_url("10.0.0.5:5000", "http")


def test_parse_challenge() -> None:
    scheme, params = parse_challenge(
        'Bearer realm="https://auth.example/token",service="registry.example",'
        'scope="repository:python:pull,push"'
    )
    assert scheme == "bearer"
    assert params == {
        "realm": "https://auth.example/token",
        "service": "registry.example",
        "scope": "repository:python:pull,push",
    }
    assert parse_challenge('Basic realm="toolkit test"') == ("basic", {"realm": "toolkit test"})


def test_retry_policy_backoff_doubles_and_caps() -> None:
    policy = RetryPolicy(attempts=6, backoff=0.5, max_backoff=3.0)
    assert [policy.delay(n) for n in range(5)] == [0.5, 1.0, 2.0, 3.0, 3.0]


# --- credentials -----------------------------------------------------------------------------


def _config(tmp_path: Path, document: object) -> dict[str, str]:
    (tmp_path / "config.json").write_text(
        document if isinstance(document, str) else json.dumps(document), "utf-8"
    )
    return {"DOCKER_CONFIG": str(tmp_path), "PATH": f"{tmp_path / 'bin'}:/usr/bin:/bin"}


def _helper(tmp_path: Path, name: str, script: str) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    path = bin_dir / f"docker-credential-{name}"
    path.write_text("#!/bin/sh\n" + script, "utf-8")
    path.chmod(0o755)


def test_config_path_follows_docker() -> None:
    assert config_path({"DOCKER_CONFIG": "/x"}) == Path("/x/config.json")
    assert config_path({"HOME": "/home/u"}) == Path("/home/u/.docker/config.json")
    assert config_path({}) is None


def test_auths_entry_forms(tmp_path: Path) -> None:
    auth = base64.b64encode(b"alice:s3cret:with:colons").decode()
    env = _config(
        tmp_path,
        {
            "auths": {
                "https://127.0.0.1:5443": {"auth": auth},
                "reg.example.net": {"username": "bob", "password": "pw"},
                "https://index.docker.io/v1/": {"identitytoken": "refresh"},
            }
        },
    )
    source = DockerConfigCredentials(env)
    found = source.lookup("127.0.0.1:5443")
    assert found == Credential("alice", "s3cret:with:colons")
    assert "s3cret" not in repr(found)
    assert source.lookup("reg.example.net") == Credential("bob", "pw")
    assert source.lookup("docker.io") == Credential("<token>", "refresh", True)
    assert source.lookup("127.0.0.1:5000") is None


def test_missing_config_is_anonymous(tmp_path: Path) -> None:
    assert DockerConfigCredentials({"DOCKER_CONFIG": str(tmp_path)}).lookup("r.example") is None


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ("{not json", r"not valid JSON \(line 1"),
        ("[]", "expected a JSON object"),
        ({"auths": []}, "'auths' must be an object"),
        ({"auths": {"r.example": {"auth": "!!!"}}}, "auth is not base64 of user:password"),
        (
            {"auths": {"r.example": {"auth": base64.b64encode(b"nocolon").decode()}}},
            "not base64 of user:password",
        ),
        ({"credsStore": "bad name!"}, "credential helper name 'bad name!' is not valid"),
    ],
)
def test_broken_config(tmp_path: Path, document: object, message: str) -> None:
    env = _config(tmp_path, document)
    with pytest.raises(ConfigError, match=message) as caught:
        DockerConfigCredentials(env).lookup("r.example")
    assert str(tmp_path / "config.json") in str(caught.value)


def test_helpers_store_and_per_registry(tmp_path: Path) -> None:
    _helper(
        tmp_path,
        "store",
        'read server; printf \'{"ServerURL":"%s","Username":"store-user","Secret":"store-pw"}\' "$server"\n',
    )
    _helper(tmp_path, "special", 'read server; echo \'{"Username":"<token>","Secret":"idt"}\'\n')
    _helper(tmp_path, "empty", "echo 'credentials not found in native keychain'; exit 1\n")
    env = _config(
        tmp_path,
        {
            "credsStore": "store",
            "credHelpers": {"special.example": "special", "anon.example": "empty"},
            "auths": {"anon.example": {"username": "u", "password": "from-auths"}},
        },
    )
    source = DockerConfigCredentials(env)
    assert source.lookup("r.example") == Credential("store-user", "store-pw")
    assert source.lookup("special.example") == Credential("<token>", "idt", True)
    # The helper has nothing: the auths entry is used, as the Docker CLI does.
    assert source.lookup("anon.example") == Credential("u", "from-auths")


def test_helper_missing_or_failing(tmp_path: Path) -> None:
    env = _config(
        tmp_path,
        {"credHelpers": {"a.example": "gone", "b.example": "broken", "c.example": "garbled"}},
    )
    _helper(tmp_path, "broken", "echo 'keychain locked' >&2; exit 3\n")
    _helper(tmp_path, "garbled", "echo 'not json'\n")
    source = DockerConfigCredentials(env)
    with pytest.raises(ToolMissingError, match=r"docker-credential-gone .*is not on PATH"):
        source.lookup("a.example")
    with pytest.raises(RegistryError, match=r"failed for b.example \(exit 3\): keychain locked"):
        source.lookup("b.example")
    with pytest.raises(RegistryError, match="answered something other than"):
        source.lookup("c.example")


def test_helper_gets_the_server_on_stdin(tmp_path: Path) -> None:
    log = tmp_path / "stdin.log"
    _helper(
        tmp_path,
        "rec",
        f'cat > {log}; echo \'{{"Username":"u","Secret":"p"}}\'\n',
    )
    env = _config(tmp_path, {"credsStore": "rec"})
    assert DockerConfigCredentials(env).lookup("127.0.0.1:5443") == Credential("u", "p")
    assert log.read_text() == "127.0.0.1:5443"
    DockerConfigCredentials(env).lookup("docker.io")
    assert log.read_text() == "https://index.docker.io/v1/"


def test_helper_environment_is_the_one_given(tmp_path: Path) -> None:
    _helper(tmp_path, "envy", 'echo "{\\"Username\\":\\"$WHO\\",\\"Secret\\":\\"x\\"}"\n')
    env = {**_config(tmp_path, {"credsStore": "envy"}), "WHO": "given"}
    assert os.environ.get("WHO") != "given"
    assert DockerConfigCredentials(env).lookup("r.example") == Credential("given", "x")
