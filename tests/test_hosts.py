"""hosts.toml, --host overrides and the environment's engine: validation and security rules."""

from __future__ import annotations

from pathlib import Path

import pytest

from toolkit.errors import ConfigError, describe_exception
from toolkit.hosts import (
    HostSpec,
    TLSFiles,
    environment_host,
    is_loopback,
    load_hosts,
)

SECRET = "-----BEGIN EC PRIVATE KEY-----\nTOOLKIT-TEST-SECRET-KEY-MATERIAL\n"


@pytest.fixture
def certs(tmp_path: Path) -> Path:
    directory = tmp_path / "certs"
    directory.mkdir()
    (directory / "ca.pem").write_text("ca\n")
    (directory / "cert.pem").write_text("cert\n")
    (directory / "key.pem").write_text(SECRET)
    return directory


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "hosts.toml"
    path.write_text(text, "utf-8")
    return path


def test_every_endpoint_kind_loads(tmp_path: Path, certs: Path) -> None:
    path = _write(
        tmp_path,
        """
[hosts.ltsc2019]
url = "tcp://win2019.example.net:2376"
ca = "certs/ca.pem"
cert = "certs/cert.pem"
key = "certs/key.pem"

[hosts.1803]
url = "ssh://builder@win1803.example.net"

[hosts.1607]
url = "npipe:////./pipe/docker_engine"

[hosts.ltsc2022]
context = "win2022"

[hosts.ltsc2025]
url = "unix:///run/user/1000/docker.sock"
""",
    )
    config = load_hosts(path, [], {})
    assert sorted(config.hosts) == ["1803", "1809", "ltsc2016", "ltsc2022", "ltsc2025"]
    assert config.default is None
    tls_host = config.for_release("1809")
    assert tls_host.url == "tcp://win2019.example.net:2376"
    assert tls_host.tls == TLSFiles(
        ca=certs / "ca.pem", cert=certs / "cert.pem", key=certs / "key.pem"
    )
    assert tls_host.source == f"{path} [hosts.1809]"
    assert config.for_release("ltsc2019") is tls_host
    assert config.for_release("ltsc2016").url == "npipe:////./pipe/docker_engine"
    assert config.for_release("1803").url == "ssh://builder@win1803.example.net"
    assert config.for_release("ltsc2022").context == "win2022"
    assert config.for_release("ltsc2022").name == "context win2022"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('[hosts.1809]\nurl = "tcp://127.0.0.1:2376"\ncerts = "x"\n', "did you mean 'cert'"),
        ('[hosts.1890]\nurl = "unix:///x.sock"\n', "did you mean '1809'"),
        ('[host.1809]\nurl = "unix:///x.sock"\n', "did you mean 'hosts'"),
        ('[hosts.1809]\nurl = "tcp://build.example.net:2375"\n', "plain tcp:// to build.example"),
        ('[hosts.1809]\nurl = "http://127.0.0.1:2375"\n', "unsupported Docker endpoint"),
        ('[hosts.1809]\nurl = "unix:///x.sock"\ncontext = "c"\n', "exactly one of url or context"),
        ("[hosts.1809]\n", "exactly one of url or context"),
        ('[hosts.1809]\nurl = "tcp://:2376"\n', "has no host name"),
        ('[hosts.1809]\nurl = "tcp://127.0.0.1:x"\n', "bad port"),
        ("[hosts.1809\n", "not valid TOML"),
        ('hosts = "1809"\n', "hosts must be a table"),
        (
            '[hosts.1809]\nurl = "unix:///a.sock"\n[hosts.ltsc2019]\nurl = "unix:///b.sock"\n',
            "twice",
        ),
    ],
)
def test_mistakes_name_file_key_and_fix(tmp_path: Path, text: str, expected: str) -> None:
    path = _write(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        load_hosts(path, [], {})
    assert expected in caught.value.one_line()
    assert str(path) in caught.value.one_line()
    assert caught.value.exit_code == 2


def test_tls_needs_all_three_files_that_exist(tmp_path: Path, certs: Path) -> None:
    path = _write(tmp_path, '[hosts.1809]\nurl = "tcp://h.example.net:2376"\nca = "certs/ca.pem"\n')
    with pytest.raises(ConfigError, match="missing cert, key"):
        load_hosts(path, [], {})
    path = _write(
        tmp_path,
        '[hosts.1809]\nurl = "tcp://h.example.net:2376"\n'
        'ca = "certs/ca.pem"\ncert = "certs/cert.pem"\nkey = "certs/nope.pem"\n',
    )
    with pytest.raises(ConfigError) as caught:
        load_hosts(path, [], {})
    assert f"[hosts.1809].key: {certs / 'nope.pem'} does not exist" in caught.value.one_line()


def test_tls_files_only_for_tcp(tmp_path: Path, certs: Path) -> None:
    path = _write(
        tmp_path,
        '[hosts.1809]\nurl = "npipe:////./pipe/docker_engine"\n'
        'ca = "certs/ca.pem"\ncert = "certs/cert.pem"\nkey = "certs/key.pem"\n',
    )
    with pytest.raises(ConfigError, match="only apply to tcp://"):
        load_hosts(path, [], {})


def test_home_relative_cert_paths(tmp_path: Path, certs: Path) -> None:
    path = _write(
        tmp_path,
        '[hosts.1809]\nurl = "tcp://h.example.net:2376"\n'
        'ca = "~/certs/ca.pem"\ncert = "~/certs/cert.pem"\nkey = "~/certs/key.pem"\n',
    )
    spec = load_hosts(path, [], {"HOME": str(tmp_path)}).for_release("1809")
    assert spec.tls is not None
    assert spec.tls.key == certs / "key.pem"


@pytest.mark.parametrize(
    ("name", "loopback"),
    [("127.0.0.1", True), ("127.8.9.10", True), ("::1", True), ("localhost", True),
     ("10.0.0.1", False), ("build.example.net", False), ("localhost.example.net", False)],
)  # fmt: skip
def test_loopback(name: str, loopback: bool) -> None:
    assert is_loopback(name) is loopback


def test_plain_tcp_on_loopback_is_allowed() -> None:
    config = load_hosts(None, ["1809=tcp://127.0.0.1:2375", "1803=tcp://[::1]:2375"], {})
    assert config.for_release("1809").url == "tcp://127.0.0.1:2375"
    assert config.for_release("1809").tls is None


@pytest.mark.parametrize(
    "url",
    [
        "tcp://build.example.net\\@127.0.0.1:2375",  # requests would connect to build.example.net
        "tcp://build.example.net:x@127.0.0.1:2375",
        "tcp://user@127.0.0.1:2375",
        "tcp://127.0.0.1:2375?@build.example.net",
        "tcp://127.0.0.1:2375#@build.example.net",
        "tcp://127.0.0.1:2375/\\build.example.net",
    ],
)
def test_plain_tcp_that_only_looks_like_loopback_is_refused(url: str) -> None:
    with pytest.raises(ConfigError, match="is not a plain tcp://HOST:PORT address"):
        load_hosts(None, [f"1809={url}"], {})
    with pytest.raises(ConfigError, match="is not a plain tcp://HOST:PORT address"):
        environment_host({"DOCKER_HOST": url})


def test_unparsable_urls_are_config_errors(tmp_path: Path) -> None:
    with pytest.raises(
        ConfigError, match=r"--host 1809=tcp://\[bad:2375: 'tcp://\[bad:2375' is not"
    ):
        load_hosts(None, ["1809=tcp://[bad:2375"], {})
    with pytest.raises(ConfigError, match="DOCKER_HOST: 'tcp://\\[::1' is not a valid URL"):
        environment_host({"DOCKER_HOST": "tcp://[::1"})
    path = _write(tmp_path, '[hosts.1809]\nurl = "tcp://[x"\n')
    with pytest.raises(ConfigError, match="is not a valid URL"):
        load_hosts(path, [], {})


def test_a_hosts_file_that_is_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "hosts.toml"
    path.write_bytes(b'[hosts.1809]\nurl = "unix:///x\xff"\n')
    with pytest.raises(ConfigError, match=f"hosts file {path} cannot be read: not UTF-8"):
        load_hosts(path, [], {})


def test_override_keeps_the_files_certificates(tmp_path: Path, certs: Path) -> None:
    path = _write(
        tmp_path,
        '[hosts.1809]\nurl = "tcp://old.example.net:2376"\n'
        'ca = "certs/ca.pem"\ncert = "certs/cert.pem"\nkey = "certs/key.pem"\n'
        '[hosts.1803]\nurl = "unix:///a.sock"\n',
    )
    config = load_hosts(path, ["1809=tcp://new.example.net:2376", "ltsc2016=win2016"], {})
    spec = config.for_release("1809")
    assert spec.url == "tcp://new.example.net:2376"
    assert spec.tls is not None
    assert spec.tls.ca == certs / "ca.pem"
    assert spec.source == "--host 1809"
    assert config.for_release("ltsc2016") == HostSpec(
        context="win2016", release="ltsc2016", source="--host ltsc2016"
    )
    assert config.for_release("1803").url == "unix:///a.sock"


def test_override_takes_tls_from_docker_cert_path(certs: Path) -> None:
    env = {"DOCKER_TLS_VERIFY": "1", "DOCKER_CERT_PATH": str(certs)}
    spec = load_hosts(None, ["1809=tcp://win.example.net:2376"], env).for_release("1809")
    assert spec.tls == TLSFiles(ca=certs / "ca.pem", cert=certs / "cert.pem", key=certs / "key.pem")
    with pytest.raises(ConfigError, match=r"plain tcp:// to win\.example\.net is refused"):
        load_hosts(None, ["1809=tcp://win.example.net:2376"], {})


@pytest.mark.parametrize(
    ("override", "expected"),
    [("1809", "expected RELEASE=URL"), ("=tcp://x", "expected RELEASE=URL"),
     ("2019=unix:///x", "unknown Windows release '2019'"), ("1809=ftp://x", "unsupported")],
)  # fmt: skip
def test_bad_overrides(override: str, expected: str) -> None:
    with pytest.raises(ConfigError, match=expected):
        load_hosts(None, [override], {})


def test_without_configuration_the_environment_engine_serves_every_release(certs: Path) -> None:
    config = load_hosts(None, [], {})
    assert config.default == HostSpec(url="unix:///var/run/docker.sock", source="local engine")
    spec = config.for_release("ltsc2016")
    assert (spec.url, spec.release) == ("unix:///var/run/docker.sock", "ltsc2016")

    env = {"DOCKER_HOST": "tcp://win.example.net:2376", "DOCKER_TLS_VERIFY": "1",
           "DOCKER_CERT_PATH": str(certs)}  # fmt: skip
    spec = load_hosts(None, [], env).for_release("1809")
    assert spec.url == "tcp://win.example.net:2376"
    assert spec.tls is not None
    assert spec.source == "DOCKER_HOST"

    spec = load_hosts(None, [], {"DOCKER_CONTEXT": "win2019"}).for_release("1809")
    assert spec.context == "win2019"

    with pytest.raises(ConfigError, match=r"DOCKER_HOST: plain tcp:// to win\.example\.net"):
        load_hosts(None, [], {"DOCKER_HOST": "tcp://win.example.net:2375"})
    with pytest.raises(ConfigError, match="DOCKER_TLS_VERIFY is set but"):
        load_hosts(None, [], {"DOCKER_HOST": "tcp://x:2376", "DOCKER_TLS_VERIFY": "1",
                              "DOCKER_CERT_PATH": str(certs / "none")})  # fmt: skip


def test_configured_file_without_the_release_says_how_to_add_it(tmp_path: Path) -> None:
    path = _write(tmp_path, '[hosts.1809]\nurl = "unix:///a.sock"\n')
    config = load_hosts(path, [], {"DOCKER_HOST": "unix:///ignored.sock"})
    with pytest.raises(ConfigError) as caught:
        config.for_release("1803")
    message = caught.value.one_line()
    assert f"no Docker host for release 1803 in {path}" in message
    assert "add [hosts.1803]" in message
    assert "--host 1803=URL" in message
    with pytest.raises(ConfigError, match="did you mean"):
        config.for_release("1802")


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"does not exist \(copy hosts.example.toml"):
        load_hosts(tmp_path / "hosts.toml", [], {})


def test_example_file_is_valid(tmp_path: Path) -> None:
    """hosts.example.toml, with its certificate files created, loads as documented."""
    example = Path(__file__).resolve().parent.parent / "hosts.example.toml"
    text = example.read_text("utf-8")
    copy = tmp_path / "hosts.toml"
    copy.write_text(text, "utf-8")
    import tomllib

    for table in tomllib.loads(text)["hosts"].values():
        for section in (table, table.get("winrm", {})):
            for key in ("ca", "cert", "key"):
                if key in section:
                    target = tmp_path / section[key]
                    target.parent.mkdir(parents=True, exist_ok=True)
                    target.write_text("x")
    config = load_hosts(copy, [], {})
    assert config.for_release("1809").tls is not None
    winrm = config.for_release("1809").winrm
    assert winrm is not None
    assert winrm.endpoint == "https://win2019-build.example.net:5986/wsman"
    assert {"ltsc2016", "1803", "1809"} <= set(config.hosts)


def test_describe_error_finds_the_root_cause() -> None:
    inner = FileNotFoundError(2, "No such file or directory")
    outer = ConnectionError("Connection aborted.", inner)
    wrapped = RuntimeError("Error while fetching server API version: (...)")
    wrapped.__cause__ = outer
    assert describe_exception(wrapped) == "No such file or directory"
    assert describe_exception(RuntimeError("Caused by nothing useful")) == "nothing useful"
