"""The test engines themselves: what the build and verify tests rely on must really hold."""

from __future__ import annotations

import json
import socket
from collections.abc import Callable
from typing import Any

import docker.errors
import pytest

from tests.docker import engines as eng

STANDIN = "mcr.microsoft.com/windows/servercore"


def _run(client: Any, image: str, command: list[str]) -> str:
    output = client.containers.run(image, command, network_mode="none", remove=True)
    return bytes(output).decode()


def test_three_engines_answer_as_separate_daemons(engines: dict[str, eng.Engine]) -> None:
    assert sorted(engines) == ["1803", "1809", "ltsc2016"]
    for name, engine in engines.items():
        client = engine.client()
        try:
            info = client.info()
            assert info["OSType"] == "linux"
            assert info["DockerRootDir"] == str(engine.root / "data")
            tags = {t for image in client.images.list() for t in image.tags}
            assert {f"{STANDIN}:{r}" for r in ("ltsc2016", "1803", "1809")} <= tags, name
        finally:
            client.close()


def test_standin_python_is_the_copied_interpreter(
    engines: dict[str, eng.Engine], standin_python_version: str, standin_pip_version: str
) -> None:
    client = engines["1803"].client()
    try:
        image = f"{STANDIN}:1803"
        assert _run(client, image, ["python", "--version"]).strip() == (
            f"Python {standin_python_version}"
        )
        assert _run(client, image, ["pip", "--version"]).startswith(f"pip {standin_pip_version} ")
        code = "import bz2, lzma, zlib, sqlite3, ssl; print(sqlite3.sqlite_version)"
        assert _run(client, image, ["python", "-c", code]).strip()
        env = client.images.get(image).attrs["Config"]["Env"]
        assert "TOOLKIT_STANDIN_RELEASE=1803" in env
        assert not client.containers.list(all=True)
    finally:
        client.close()


def test_powershell_standin_records_fails_and_sleeps(engines: dict[str, eng.Engine]) -> None:
    client = engines["ltsc2016"].client()
    image = f"{STANDIN}:ltsc2016"
    try:
        script = "Write-Host 'hello'; exit 0"
        run = [
            "sh",
            "-c",
            'powershell -Command "$1" "$0" && cat /powershell.log',
            script,
            "$X = 1;",
        ]
        log = _run(client, image, run).splitlines()
        assert json.loads(log[-1]) == ["-Command", "$X = 1;", script]

        container = client.containers.run(
            image, ["powershell", "-Command", f"{eng.FAIL_MARKER}"], detach=True
        )
        try:
            assert container.wait(timeout=30)["StatusCode"] == 1
        finally:
            container.remove(force=True)

        container = client.containers.run(
            image, ["powershell", "-Command", f"{eng.SLEEP_MARKER}30"], detach=True
        )
        try:
            with pytest.raises(Exception, match=r"(?i)timed out|timeout"):
                container.wait(timeout=2)
        finally:
            container.remove(force=True)

        echoed = _run(client, image, ["cmd", "/Q", "/S", "/C", "echo", "hello", "world"])
        assert echoed == "hello world\n"
    finally:
        client.close()


def test_nanoserver_standin_has_no_python_until_a_build_copies_it(
    engines: dict[str, eng.Engine],
) -> None:
    client = engines["1809"].client()
    image = f"{eng.NANOSERVER_REPOSITORY}:ltsc2022"
    try:
        attrs = client.images.get(image).attrs
        assert attrs["Config"]["User"] == "ContainerUser"
        assert "TOOLKIT_STANDIN_RELEASE=ltsc2022" in attrs["Config"]["Env"]
        assert _run(client, image, ["id", "-un"]) == "ContainerUser\n"
        assert _run(client, image, ["cmd", "/S", "/C", "echo hi && echo there"]) == "hi\nthere\n"
        saved = client.containers.run(
            image,
            ["sh", "-c", "setx /m PATH 'C:\\X' && cat /setx.log"],
            user="ContainerAdministrator",
            network_mode="none",
            remove=True,
        )
        assert bytes(saved).decode() == ("SUCCESS: Specified value was saved.\n/m PATH C:\\X\n")
        for argv in (["python", "--version"], ["pip", "--version"]):
            container = client.containers.run(image, argv, detach=True, network_mode="none")
            try:
                assert container.wait(timeout=30)["StatusCode"] == 127, argv  # no C:\\Python
            finally:
                container.remove(force=True)
        with pytest.raises(docker.errors.APIError, match='"powershell": executable file not found'):
            client.containers.run(image, ["powershell"], network_mode="none", remove=True)
        for leftover in client.containers.list(all=True):
            leftover.remove(force=True)
        servercore = f"{STANDIN}:ltsc2025"
        listing = _run(
            client, servercore, ["ls", "-d", "/C:\\Python/bin/python3", "/python/bin/pip"]
        )
        assert listing.splitlines() == ["/C:\\Python/bin/python3", "/python/bin/pip"]
    finally:
        client.close()


def test_tls_engine_needs_a_client_certificate(engines: dict[str, eng.Engine]) -> None:
    engine = engines["1809"]
    assert engine.tls_url == "tcp://127.0.0.1:2376"
    assert engine.tls is not None
    client = engine.tls_client()
    try:
        assert client.info()["DockerRootDir"] == str(engine.root / "data")
    finally:
        client.close()
    # A bare connection reaches the listener (same namespace) but gets no HTTP answer.
    with socket.create_connection(("127.0.0.1", 2376), timeout=5) as sock:
        sock.sendall(b"GET /_ping HTTP/1.0\r\n\r\n")
        assert b"200 OK" not in sock.recv(100)


def test_tests_run_in_a_loopback_only_namespace(engines: dict[str, eng.Engine]) -> None:
    interfaces = {name for _index, name in socket.if_nameindex()}
    assert interfaces == {"lo"}


def test_killed_engine_is_cleaned_up(
    engine_factory: Callable[[str, str], eng.Engine],
) -> None:
    engine = engine_factory("spare", "1809")
    client = engine.client()
    container = client.containers.run(
        f"{STANDIN}:1809", ["sleep", "300"], detach=True, network_mode="none"
    )
    assert container.status in ("created", "running")
    client.close()
    engine.kill()
    assert not engine.alive
    # The container and its shim outlive the daemon until stop_engine reaps them.
    assert eng._pids_mentioning(str(engine.root))


def test_registry_accepts_a_push(engines: dict[str, eng.Engine], registry: str) -> None:
    client = engines["1809"].client()
    try:
        image = client.images.get(f"{STANDIN}:1809")
        target = f"{registry}/standin/servercore"
        image.tag(target, "1809")
        events = list(client.api.push(target, "1809", stream=True, decode=True))
        assert not [e for e in events if "error" in e], events
        assert any("Digest" in e.get("aux", {}) for e in events), events
        client.images.remove(f"{target}:1809")
    finally:
        client.close()
