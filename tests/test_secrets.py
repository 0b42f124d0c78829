"""No secret in any message (issue 13, item 9): user info in an endpoint, PEM text pasted where a
path belongs, on every surface: refusal messages (--host, hosts.toml, DOCKER_HOST, docker
contexts), the hosts table and --json, build and dry-run lines, logs, --debug tracebacks."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from tests.conftest import Result, run_toolkit
from toolkit.errors import ConfigError, HostError, describe_exception
from toolkit.hosts import HostSpec, load_hosts
from toolkit.redact import redact_path, redact_text, redact_url

PASSWORD = "Pa55w0rdX"
TCP = f"tcp://admin:{PASSWORD}@10.1.2.3:2375"
SSH = f"ssh://builder:{PASSWORD}@127.0.0.1"
PEM_BODY = "MIIBkTCB+wIJAKHHIGSecretPemBody0123456789abcdefXYZ"
PEM = f"-----BEGIN CERTIFICATE-----\n{PEM_BODY}\n-----END CERTIFICATE-----\n"


def assert_clean(result: Result, code: int) -> None:
    text = result.stdout + result.stderr
    assert result.returncode == code, text
    assert PASSWORD not in text
    assert PEM_BODY not in text


def files_under(directory: Path) -> str:
    if not directory.exists():
        return ""
    return "".join(p.read_text(errors="replace") for p in directory.rglob("*") if p.is_file())


# --- refusal messages ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "endpoint",
    [TCP, SSH, f"unix://admin:{PASSWORD}@/var/run/docker.sock",
     f"npipe://admin:{PASSWORD}@/./pipe/docker_engine", f"tcp://admin:{PASSWORD}@127.0.0.1:2375",
     f"admin:{PASSWORD}@10.1.2.3:2375", f"tcp://10.1.2.3:2375/?token={PASSWORD}",
     f"tcp://127.0.0.1:2375#{PASSWORD}", f"unix:///x.sock?{PASSWORD}",
     f"ssh://builder:{PASSWORD}@[::1]", f"https://admin:{PASSWORD}@127.0.0.1:2376"],
)  # fmt: skip
def test_host_option_refusals_hide_user_info(workspace: Path, endpoint: str) -> None:
    result = run_toolkit("hosts", "--host", f"1809={endpoint}", cwd=workspace)
    assert_clean(result, 2)
    assert result.stderr.startswith("error: --host 1809="), result.stderr


def test_the_refusal_of_the_issue(workspace: Path) -> None:
    result = run_toolkit("hosts", "--host", f"1809={TCP}", cwd=workspace)
    assert_clean(result, 2)
    assert "'tcp://***@10.1.2.3:2375' is not a plain tcp://HOST:PORT address" in result.stderr


@pytest.mark.parametrize("endpoint", [TCP, SSH, f"admin:{PASSWORD}@10.1.2.3:2375"])
def test_docker_host_refusals_hide_user_info(workspace: Path, endpoint: str) -> None:
    result = run_toolkit("hosts", cwd=workspace, env={"DOCKER_HOST": endpoint})
    assert_clean(result, 2)
    assert result.stderr.startswith("error: DOCKER_HOST"), result.stderr


def test_hosts_file_refusals_hide_user_info(workspace: Path) -> None:
    for url in (TCP, SSH):
        (workspace / "hosts.toml").write_text(f'[hosts.1809]\nurl = "{url}"\n')
        result = run_toolkit("hosts", cwd=workspace)
        assert_clean(result, 2)
        assert "hosts.toml: [hosts.1809].url: " in result.stderr


def test_ssh_password_is_refused_not_passed_on(workspace: Path) -> None:
    """docker-py's ssh client split ``builder:PASSWORD@host`` at the colon and ran
    ``ssh -p PASSWORD@host``: the password in a process's argv. Refused before that."""
    result = run_toolkit("hosts", "--host", f"1809={SSH}", cwd=workspace)
    assert_clean(result, 2)
    assert "'ssh://builder:***@127.0.0.1' carries a password" in result.stderr


@pytest.fixture
def context_store(tmp_path: Path) -> Path:
    """A docker config directory (DOCKER_CONFIG) whose contexts carry credentials, stored as the
    docker CLI stores them (docker-py's own create_context refuses such a host)."""
    import hashlib

    store = tmp_path / "docker-config"
    store.mkdir()
    (store / "config.json").write_text("{}\n", "utf-8")
    for name, host in (("tk-tcp", TCP), ("tk-ssh", SSH)):
        meta = store / "contexts" / "meta" / hashlib.sha256(name.encode()).hexdigest()
        meta.mkdir(parents=True)
        document = {
            "Name": name,
            "Metadata": {},
            "Endpoints": {"docker": {"Host": host, "SkipTLSVerify": False}},
        }
        (meta / "meta.json").write_text(json.dumps(document), "utf-8")
    return store


@pytest.mark.parametrize("context", ["tk-tcp", "tk-ssh"])
def test_docker_context_refusals_hide_user_info(
    workspace: Path, context_store: Path, context: str
) -> None:
    env = {"DOCKER_CONFIG": str(context_store)}
    for how, extra in ((["--host", f"1809={context}"], {}), ([], {"DOCKER_CONTEXT": context})):
        result = run_toolkit("hosts", *how, "*-1809", cwd=workspace, env={**env, **extra})
        assert_clean(result, 2)
        assert f"error: docker context '{context}'" in result.stderr


# --- the hosts table, --json, build and dry-run lines, logs --------------------------------------


@pytest.mark.parametrize(
    "args",
    [["hosts"], ["hosts", "--json"], ["hosts", "--no-preflight"], ["build", "--dry-run"],
     ["build", "--no-preflight"], ["build", "--no-preflight", "--report", "report.json"],
     ["verify", "--no-preflight", "--json"]],
)  # fmt: skip
def test_every_command_surface_hides_an_ssh_password(workspace: Path, args: list[str]) -> None:
    result = run_toolkit(*args, "--host", f"1809={SSH}", "*-1809", cwd=workspace)
    assert_clean(result, 2)
    assert PASSWORD not in files_under(workspace / "logs")
    assert not (workspace / "report.json").exists()


def test_host_names_in_records_and_lines_are_redacted() -> None:
    """Tables, JSON records, build lines and logs name a host by ``HostSpec.name``."""
    from toolkit.progress import PlainReporter
    from toolkit.results import BuildResult, Outcome

    spec = HostSpec(url=f"https://admin:{PASSWORD}@127.0.0.1:2376?token={PASSWORD}")
    assert spec.name == "https://***@127.0.0.1:2376?token=***"
    assert PASSWORD not in json.dumps(spec.record())
    out = io.StringIO()
    reporter = PlainReporter(out)
    reporter.started("3.8-rc-windowsservercore-1809", spec.name)
    reporter.finished(
        BuildResult(build_id="3.8-rc-windowsservercore-1809", host=spec.name, isolation=None,
                    outcome=Outcome.FAILED, duration=1.0,
                    message=HostError(f"cannot reach {spec.url}").one_line())
    )  # fmt: skip
    assert PASSWORD not in out.getvalue()
    assert "start on https://***@127.0.0.1:2376?token=***" in out.getvalue()


# --- PEM text where a path belongs ------------------------------------------------------------


def test_pem_text_pasted_as_ca_is_not_echoed(workspace: Path) -> None:
    (workspace / "cert.pem").write_text("x")
    (workspace / "hosts.toml").write_text(
        f'[hosts.1809]\nurl = "tcp://win2019.example.net:2376"\nca = """{PEM}"""\n'
        'cert = "cert.pem"\nkey = "cert.pem"\n'
    )
    result = run_toolkit("hosts", cwd=workspace)
    assert_clean(result, 2)
    assert "[hosts.1809].ca holds what looks like the contents of a certificate or key" in (
        result.stderr
    )
    result = run_toolkit("--debug", "hosts", cwd=workspace)
    assert_clean(result, 2)
    assert "Traceback" in result.stderr


def test_pem_text_in_docker_cert_path_is_not_echoed(workspace: Path) -> None:
    env = {"DOCKER_TLS_VERIFY": "1", "DOCKER_CERT_PATH": PEM, "DOCKER_HOST": "tcp://h:2376"}
    result = run_toolkit("hosts", cwd=workspace, env=env)
    assert_clean(result, 2)
    assert "DOCKER_CERT_PATH holds what looks like a certificate or key" in result.stderr


def test_a_single_line_key_pasted_as_a_path(tmp_path: Path) -> None:
    (tmp_path / "hosts.toml").write_text(
        f'[hosts.1809]\nurl = "tcp://h.example:2376"\nca = "{PEM_BODY}"\n'
        'cert = "c.pem"\nkey = "c.pem"\n'
    )
    with pytest.raises(ConfigError) as info:
        load_hosts(tmp_path / "hosts.toml", [], {})
    assert PEM_BODY not in info.value.one_line()


# --- --debug tracebacks -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "env"),
    [(["hosts", "--host", f"1809={TCP}"], {}), (["hosts"], {"DOCKER_HOST": TCP}),
     (["build", "--dry-run", "--host", f"1809={SSH}"], {})],
)  # fmt: skip
def test_debug_tracebacks_hide_user_info(
    workspace: Path, args: list[str], env: dict[str, str]
) -> None:
    result = run_toolkit("--debug", *args, cwd=workspace, env=env)
    assert_clean(result, 2)  # the error's own exit code, after the traceback
    assert "Traceback (most recent call last)" in result.stderr
    assert "toolkit.errors.ConfigError: " in result.stderr


def test_debug_traceback_of_a_chained_library_error(capsys: pytest.CaptureFixture[str]) -> None:
    """docker-py's own exception quotes the URL it was given, password and all."""
    import docker

    from toolkit.cli import print_traceback

    with pytest.raises(docker.errors.DockerException, match=PASSWORD) as quoted:
        docker.DockerClient(base_url=SSH)  # the library does quote it
    try:
        raise HostError("Docker host cannot be reached") from quoted.value
    except HostError as error:
        print_traceback(error)
    err = capsys.readouterr().err
    assert "The above exception was the direct cause" in err
    assert "ssh://builder:***@127.0.0.1" in err
    assert PASSWORD not in err


# --- the helper ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        (TCP, "tcp://***@10.1.2.3:2375"),
        (SSH, "ssh://builder:***@127.0.0.1"),
        ("ssh://builder@win1803.example.net", "ssh://builder@win1803.example.net"),
        ("https://TOKEN@mirror.example/pypi/", "https://***@mirror.example/pypi/"),
        ("https://u:p@m.example/x?q=1", "https://***@m.example/x?q=1"),
        ("https://u:pa/ss@host/x", "https://***@host/x"),  # an unescaped / in the password
        ("https://h/x?X-Amz-Signature=abc&v=1", "https://h/x?X-Amz-Signature=***&v=1"),
        ("https://h/x?abc&v=1#frag", "https://h/x?***&v=1#***"),
        ("npipe:////./pipe/docker_engine", "npipe:////./pipe/docker_engine"),
        ("tcp://[::1]:2375", "tcp://[::1]:2375"),
        ("not a url", "not a url"),
    ],
)
def test_redact_url(url: str, shown: str) -> None:
    assert redact_url(url) == shown


def test_redact_text_and_path() -> None:
    text = f"Invalid bind address format: {SSH} and '{TCP}'\n{PEM}trailing"
    cleaned = redact_text(text)
    assert PASSWORD not in cleaned
    assert PEM_BODY not in cleaned
    assert cleaned.endswith("<PEM text, not shown>\ntrailing")
    assert redact_path(PEM) == "<PEM text, not shown>"
    assert redact_path(PEM_BODY) == "<key material, not shown>"
    assert redact_path("/home/u/.docker/ca.pem") == "/home/u/.docker/ca.pem"
    assert redact_path(Path("certs/1809/key.pem")) == "certs/1809/key.pem"


def test_every_error_message_is_redacted_when_made() -> None:
    """Whatever code builds a message, the error carries it redacted (messages, hints, JSON)."""
    error = ConfigError(f"bad {TCP}", hint=f"see {SSH}\n{PEM}")
    assert PASSWORD not in error.one_line() + str(error)
    assert PEM_BODY not in error.one_line()

    class Quoting(Exception):
        pass

    assert PASSWORD not in describe_exception(Quoting(f"cannot connect to {TCP}"))


@pytest.mark.parametrize(
    ("given", "secret"),
    [
        ("https://builder:Pa55w0rdX@github.com/org/python-images", "Pa55w0rdX"),
        ("https://github.com/org/python-images?access_token=ghp_Pa55w0rdX", "ghp_Pa55w0rdX"),
    ],
)
def test_a_source_label_with_credentials_is_refused(
    workspace: Path, given: str, secret: str
) -> None:
    """--source becomes the image's org.opencontainers.image.source label, public wherever the
    image goes: a URL with credentials is a usage error (exit 2), named without them, before
    any host is asked."""
    result = run_toolkit(
        "build", "3.8-rc-*-1809", "--dry-run", "--no-preflight", "--host",
        "1809=unix:///nonexistent.sock", "--source", given, cwd=workspace,
    )  # fmt: skip
    assert result.returncode == 2, result.stderr
    assert "the URL carries credentials" in result.stderr
    assert secret not in result.stdout + result.stderr
    environment = run_toolkit(
        "build", "3.8-rc-*-1809", "--dry-run", "--no-preflight", "--host",
        "1809=unix:///nonexistent.sock", cwd=workspace,
        env={"GITHUB_SERVER_URL": "https://x:" + secret + "@github.com", "GITHUB_REPOSITORY": "o/r"},
    )  # fmt: skip
    assert environment.returncode == 2
    assert secret not in environment.stdout + environment.stderr
    plain = run_toolkit(
        "build", "3.8-rc-*-1809", "--dry-run", "--no-preflight", "--host",
        "1809=unix:///nonexistent.sock", "--source", "https://github.com/org/python-images",
        cwd=workspace,
    )  # fmt: skip
    assert plain.returncode == 0, plain.stderr
