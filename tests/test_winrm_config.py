"""The ``winrm`` table of hosts.toml, its safety rules, and where the password comes from."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from toolkit.errors import ConfigError
from toolkit.hosts import load_hosts
from toolkit.winrm_config import (
    DEFAULT_PASSWORD_ENV,
    Secret,
    WinRMSpec,
    in_ci,
    parse_winrm_table,
    resolve_passwords,
)

WHERE = "hosts.toml: [hosts.1809.winrm]"


def _parse(table: dict[str, Any], tmp_path: Path, docker_host: str | None = "win2019") -> WinRMSpec:
    return parse_winrm_table(
        table, where=WHERE, docker_host=docker_host, base=tmp_path, home=str(tmp_path)
    )


def _refused(table: dict[str, Any], tmp_path: Path, docker_host: str | None = "win2019") -> str:
    with pytest.raises(ConfigError) as caught:
        _parse(table, tmp_path, docker_host)
    assert caught.value.exit_code == 2
    return caught.value.one_line()


def test_defaults_follow_the_docker_host(tmp_path: Path) -> None:
    spec = _parse({"user": "EXAMPLE\\builder"}, tmp_path)
    assert spec.endpoint == "https://win2019:5986/wsman"
    assert (spec.transport, spec.user, spec.password_env) == (
        "ntlm", "EXAMPLE\\builder", DEFAULT_PASSWORD_ENV
    )  # fmt: skip
    assert spec.verify
    assert spec.https
    assert not spec.insecure
    assert spec.exposures() == []
    assert spec.record()["verify"] is True


def test_hosts_toml_carries_the_table(tmp_path: Path) -> None:
    (tmp_path / "winrm-ca.pem").write_text("-----BEGIN CERTIFICATE-----\n", "utf-8")
    path = tmp_path / "hosts.toml"
    path.write_text(
        "[hosts.1809]\n"
        'url = "ssh://builder@win2019-build.example.net"\n'
        "[hosts.1809.winrm]\n"
        'user = "builder"\n'
        'password_env = "WIN2019_PASSWORD"\n'
        'ca = "winrm-ca.pem"\n'
        "[hosts.ltsc2022]\n"
        'context = "win2022"\n'
        "[hosts.ltsc2022.winrm]\n"
        'endpoint = "https://win2022-build.example.net:5986/wsman"\n'
        'transport = "kerberos"\n',
        "utf-8",
    )
    config = load_hosts(path, [], {"HOME": str(tmp_path)})
    spec = config.for_release("ltsc2019").winrm
    assert spec is not None
    assert spec.endpoint == "https://win2019-build.example.net:5986/wsman"
    assert spec.ca == tmp_path / "winrm-ca.pem"
    assert spec.password_env == "WIN2019_PASSWORD"
    kerberos = config.for_release("ltsc2022").winrm
    assert kerberos is not None
    assert (kerberos.transport, kerberos.user, kerberos.password_env) == ("kerberos", None, None)
    assert config.for_release("1809").record()["winrm"]["endpoint"] == spec.endpoint

    # --host swaps the Docker address: a derived endpoint follows it, an explicit one stays.
    moved = load_hosts(
        path,
        ["1809=tcp://127.0.0.1:2375", "ltsc2022=tcp://127.0.0.1:2376"],
        {"HOME": str(tmp_path)},
    )
    assert moved.for_release("1809").winrm == replace(spec, endpoint="https://127.0.0.1:5986/wsman")
    assert moved.for_release("ltsc2022").winrm == kerberos


@pytest.mark.parametrize(
    ("table", "docker_host", "expected"),
    [
        (
            {"user": "u", "transprot": "ntlm"},
            "h",
            "unknown key 'transprot' (did you mean 'transport'?",
        ),
        ({"user": "u", "transport": "digest"}, "h", "transport 'digest' is not a WinRM transport"),
        ({"transport": "ntlm"}, "h", "needs user for transport 'ntlm'"),
        ({"user": "u"}, None, "needs endpoint: the Docker endpoint names no host"),
        ({"user": "u", "insecure": "yes"}, "h", "insecure must be true or false"),
        ({"user": "u", "endpoint": "ftp://h/wsman"}, "h", "is not an http(s) URL"),
        ({"user": "u", "endpoint": "https://h:5986/wsman?x=1"}, "h", "has a query or fragment"),
        ({"transport": "certificate"}, "h", "transport 'certificate' needs cert and key"),
        ({"user": "u", "ca": "missing.pem"}, "h", "missing.pem does not exist"),
        (
            {"user": "u", "endpoint": "http://h:5985/wsman", "transport": "basic"},
            "h",
            "Basic over plain http:// to h is refused",
        ),
        (
            {"user": "u", "endpoint": "http://h:5985/wsman", "ca": "/etc/hostname"},
            "h",
            "ca applies to https:// only",
        ),
    ],
)
def test_mistakes_and_refusals(
    table: dict[str, Any], docker_host: str | None, expected: str, tmp_path: Path
) -> None:
    assert expected in _refused(table, tmp_path, docker_host)


def test_a_password_in_the_file_is_refused_without_repeating_it(tmp_path: Path) -> None:
    for table in (
        {"user": "u", "password": "Hunter2-in-file"},
        {"user": "u", "passwd": "Hunter2-in-file"},
        {"user": "u", "password_env": "Hunter2-in-file!"},  # the password pasted in the wrong key
    ):
        message = _refused(table, tmp_path)
        assert "Hunter2" not in message
        assert "password" in message


def test_insecure_accepts_basic_over_http_and_warns_on_every_use(tmp_path: Path) -> None:
    spec = _parse(
        {"user": "u", "endpoint": "http://h:5985/wsman", "transport": "basic", "insecure": True},
        tmp_path,
    )
    (warning,) = spec.exposures()
    assert "Basic over http:// sends the password of u and all output to h in clear text" in warning
    https = _parse({"user": "u", "insecure": True}, tmp_path)
    assert not https.verify
    assert "is not verified" in https.exposures()[0]


def test_http_is_accepted_with_an_encrypting_transport_or_on_loopback(tmp_path: Path) -> None:
    for transport in ("ntlm", "kerberos", "credssp"):
        spec = _parse(
            {"user": "u", "endpoint": "http://h:5985/wsman", "transport": transport}, tmp_path
        )
        assert spec.exposures() == []
    loop = _parse(
        {"user": "u", "endpoint": "http://127.0.0.1:5985/wsman", "transport": "basic"}, tmp_path
    )
    assert loop.exposures() == []
    assert "needs https://" in _refused(
        {"endpoint": "http://127.0.0.1:5985/wsman", "transport": "certificate",
         "cert": "/etc/hostname", "key": "/etc/hostname"},
        tmp_path,
    )  # fmt: skip


def test_passwords_come_from_the_named_variable(tmp_path: Path) -> None:
    a = _parse({"user": "u", "password_env": "PW_A"}, tmp_path)
    b = _parse({"user": "v", "password_env": "PW_A"}, tmp_path, docker_host="other")
    asked: list[str] = []

    def prompt(text: str) -> str:
        asked.append(text)
        return "typed-secret"

    found = resolve_passwords([a, b], {"PW_A": "from-env"}, prompt=prompt)
    assert found["PW_A"] is not None
    assert found["PW_A"].reveal() == "from-env"
    assert asked == []
    found = resolve_passwords([a, b], {}, prompt=prompt)
    assert found["PW_A"] is not None
    assert found["PW_A"].reveal() == "typed-secret"
    assert asked == ["WinRM password for u, v on other, win2019 (PW_A): "]  # once per variable


def test_without_a_terminal_the_error_names_the_variable(tmp_path: Path) -> None:
    spec = _parse({"user": "u", "password_env": "WIN2019_PASSWORD"}, tmp_path)
    with pytest.raises(ConfigError) as caught:
        resolve_passwords([spec], {"CI": "true"}, prompt=None)
    assert "environment variable WIN2019_PASSWORD is not set" in caught.value.one_line()
    with pytest.raises(ConfigError, match="WIN2019_PASSWORD is empty"):
        resolve_passwords([spec], {"WIN2019_PASSWORD": ""}, prompt=None)
    with pytest.raises(ConfigError, match="no WinRM password given"):
        resolve_passwords([spec], {}, prompt=lambda _text: "")


def test_kerberos_and_certificates_need_no_password(tmp_path: Path) -> None:
    kerberos = _parse({"transport": "kerberos"}, tmp_path)
    assert resolve_passwords([kerberos], {}, prompt=None) == {}
    named = _parse({"transport": "kerberos", "password_env": "KRB_PW"}, tmp_path)
    assert resolve_passwords([named], {}, prompt=None) == {"KRB_PW": None}


def test_a_secret_never_shows_itself() -> None:
    secret = Secret("Hunter2-value")
    for text in (str(secret), repr(secret), f"{secret}", repr([secret]), repr({"k": secret})):
        assert "Hunter2" not in text
    assert secret.reveal() == "Hunter2-value"
    import pickle

    with pytest.raises(TypeError):
        pickle.dumps(secret)


def test_ci_detection() -> None:
    assert in_ci({"CI": "true"})
    assert in_ci({"GITHUB_ACTIONS": "true"})
    assert not in_ci({"CI": ""})
    assert not in_ci({})
