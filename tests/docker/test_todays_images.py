"""Today's images end to end on the real engines: the 2026 recipe on ltsc2025/ltsc2022, the
nanoserver variant (a multi-stage build that copies C:\\Python from the Server Core stage into
Nano Server), and a get-pip line with the installer's exit-code check, each built with
``toolkit build`` and checked with ``toolkit verify`` as a user runs them.

The Dockerfiles are the rendered ones, unchanged: the stand-ins (engines.py) keep Python at
``C:\\Python`` on Server Core and give Nano Server no Python, no PowerShell, ``cmd``, ``setx``
and the user ContainerUser, so the COPY of the Windows path, the ``setx`` of the PATH, the USER
switches and the checks through ``cmd /S /C`` all run for real.
"""

from __future__ import annotations

import json
import shutil
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

from tests.conftest import REPO, run_toolkit
from tests.docker import engines as eng
from tests.docker.matrixspace import GET_PIP_SHA256, GET_PIP_URL, containers, line_of, rerender
from toolkit.verify import OVERRIDE_COMMANDS

TODAY = (
    "windows/windowsservercore-ltsc2025",
    "windows/windowsservercore-ltsc2022",
    "windows/nanoserver-ltsc2025",
    "windows/nanoserver-ltsc2022",
)
# Which engine stands for which Windows release in these tests.
HOSTS = {"ltsc2025": "1809", "ltsc2022": "1803", "1809": "ltsc2016"}


def _workspace(root: Path, engines: dict[str, eng.Engine], line: dict[str, Any]) -> str:
    """versions.json with one line, the repository's templates, hosts.toml; rendered with the
    CLI. Returns the line's name."""
    name = line_of(line["version"])
    (root / "versions.json").write_text(json.dumps({name: line}, indent=2) + "\n")
    shutil.copytree(REPO / "templates", root / "templates")
    (root / "hosts.toml").write_text(
        "".join(f'[hosts.{r}]\nurl = "{engines[e].url}"\n' for r, e in HOSTS.items())
    )
    rendered = run_toolkit("render", cwd=root)
    assert rendered.returncode == 0, rendered.stderr
    return name


def _build(root: Path, *extra: str) -> Any:
    return run_toolkit(
        "build",
        "--no-preflight",
        "--pull",
        "never",
        "--network",
        "none",
        "--repo",
        "today/python",
        "--report",
        "build.json",
        "--build-arg",
        f"TOOLKIT_TEST={root.name}",
        *extra,
        cwd=root,
        timeout=420,
    )


def _verify(root: Path) -> Any:
    return run_toolkit(
        "verify", "--no-preflight", "--repo", "today/python", "--json", "--junit", "junit.xml",
        cwd=root, timeout=300,
    )  # fmt: skip


def _run(client: Any, image: str, argv: list[str]) -> tuple[int, str]:
    container = client.containers.run(image, argv, detach=True, network_mode="none")
    try:
        code = int(container.wait(timeout=60)["StatusCode"])
        return code, container.logs().decode()
    finally:
        container.remove(force=True)


def _assert_clean(clients: dict[str, Any]) -> None:
    for name, client in clients.items():
        assert containers(client.api) == [], f"containers left on engine {name}"


def test_todays_recipe_and_nanoserver_build_and_verify(
    engines: dict[str, eng.Engine],
    clients: dict[str, Any],
    standin_python_version: str,
    standin_pip_version: str,
    tmp_path: Path,
) -> None:
    line = _workspace(
        tmp_path,
        engines,
        {
            "version": standin_python_version,
            "checksums": {"windows": {"sha256": "ab" * 32}},
            "variants": list(TODAY),
        },
    )
    linted = run_toolkit("lint", cwd=tmp_path)
    assert linted.returncode == 0, linted.stdout + linted.stderr
    assert "4 Dockerfile(s) linted: 0 error(s), 0 warning(s)" in linted.stdout

    built = _build(tmp_path)
    assert built.returncode == 0, built.stdout + built.stderr
    report = {r["id"]: r for r in json.loads((tmp_path / "build.json").read_text())["results"]}
    ids = [f"{line}-{v.split('/')[1]}" for v in TODAY]
    assert sorted(report) == sorted(ids)
    assert {r["result"] for r in report.values()} == {"built"}
    for record in report.values():
        assert [c["passed"] for c in record["checks"]] == [True] * 6, record["checks"]
    nano_id = f"{line}-nanoserver-ltsc2022"
    nano_checks = {c["name"]: c for c in report[nano_id]["checks"]}
    assert nano_checks["python-version"]["argv"] == ["cmd", "/S", "/C", "python", "--version"]
    assert nano_checks["pip-version"]["message"] == (f"pip {standin_pip_version} (python {line})")
    assert nano_checks["override-cmd"]["argv"] == list(OVERRIDE_COMMANDS["linux"])

    # The nanoserver image: Nano Server's default user, PATH from setx, Python copied, nothing
    # else of the installer stage (its PowerShell log stayed there).
    client = clients[HOSTS["ltsc2022"]]
    image = report[nano_id]["tags"][0]
    config = client.api.inspect_image(image)["Config"]
    assert config["User"] == "ContainerUser"
    assert config["Cmd"] == ["python"]
    assert f"PYTHON_VERSION={standin_python_version}" in config["Env"]
    assert "PYTHONIOENCODING=UTF-8" in config["Env"]
    assert _run(client, image, ["cat", eng.SETX_LOG]) == (
        0,
        "/m PATH C:\\Python\\Scripts;C:\\Python;%PATH%\n",
    )
    assert _run(client, image, ["id", "-un"]) == (0, "ContainerUser\n")
    code, _ = _run(client, image, ["sh", "-c", "command -v powershell || test -e /powershell.log"])
    assert code != 0, "the Nano Server stage must have neither PowerShell nor its log"
    assert _run(client, image, ["python", "--version"]) == (0, f"Python {standin_python_version}\n")
    history = [h["CreatedBy"] for h in client.api.history(image)]
    assert any("COPY dir:" in h and "C:\\Python" in h for h in history)
    assert any("USER ContainerAdministrator" in h for h in history)

    # The Server Core image ran the 2026 recipe: pip from the installer, exit code checked.
    core = report[f"{line}-windowsservercore-ltsc2025"]["tags"][0]
    code, log = _run(clients[HOSTS["ltsc2025"]], core, ["cat", eng.POWERSHELL_LOG])
    assert code == 0
    scripts = [json.loads(x)[-1] for x in log.splitlines()]
    assert len(scripts) == 1
    assert "'Include_pip=1'" in scripts[0]
    assert ").ExitCode;" in scripts[0]
    assert "-replace '[a-z]+[0-9]*$', ''" in scripts[0]

    checked = _verify(tmp_path)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    document = json.loads(checked.stdout)
    assert document["ok"] is True
    assert sorted(document["results"]) == sorted(ids)
    junit = ET.parse(tmp_path / "junit.xml").getroot()
    assert junit.get("tests") == "24"
    assert junit.get("failures") == "0"
    _assert_clean(clients)


def test_get_pip_with_the_exit_code_check_on_server_core_and_nano_server(
    engines: dict[str, eng.Engine],
    clients: dict[str, Any],
    standin_python_version: str,
    standin_pip_version: str,
    tmp_path: Path,
) -> None:
    """The mix: pip pinned with get-pip, and the installer's exit code checked."""
    line = _workspace(
        tmp_path,
        engines,
        {
            "version": standin_python_version,
            "pip": {"version": standin_pip_version},
            "get-pip": {"url": GET_PIP_URL, "sha256": GET_PIP_SHA256},
            "check-installer-exit-code": True,
            "variants": ["windows/windowsservercore-1809", "windows/nanoserver-1809"],
        },
    )
    built = _build(tmp_path)
    assert built.returncode == 0, built.stdout + built.stderr
    report = {r["id"]: r for r in json.loads((tmp_path / "build.json").read_text())["results"]}
    assert {r["result"] for r in report.values()} == {"built"}
    nano = report[f"{line}-nanoserver-1809"]
    pip_check = next(c for c in nano["checks"] if c["name"] == "pip-version")
    assert pip_check["passed"]
    assert pip_check["message"] is None  # pinned: judged, not reported
    core = report[f"{line}-windowsservercore-1809"]
    image = core["tags"][0]
    code, log = _run(clients[HOSTS["1809"]], image, ["cat", eng.POWERSHELL_LOG])
    assert code == 0
    scripts = [json.loads(x)[-1] for x in log.splitlines()]
    assert len(scripts) == 2  # the installer's RUN, then get-pip's
    assert "'Include_pip=0'" in scripts[0]
    assert ").ExitCode;" in scripts[0]
    assert "$env:PYTHON_RELEASE" in scripts[0]
    assert "get-pip.py" in scripts[1]
    checked = _verify(tmp_path)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    _assert_clean(clients)


def test_without_the_copy_nano_server_has_no_python(
    engines: dict[str, eng.Engine],
    clients: dict[str, Any],
    standin_python_version: str,
    tmp_path: Path,
) -> None:
    """The stand-in's python is the copied one: drop the COPY and the build fails."""
    line = _workspace(
        tmp_path,
        engines,
        {
            "version": standin_python_version,
            "checksums": {"windows": {"sha256": "ab" * 32}},
            "variants": ["windows/nanoserver-ltsc2025"],
        },
    )
    # build refuses hand-edited Dockerfiles: the COPY goes from the workspace's template
    template = tmp_path / "templates" / "nanoserver.Dockerfile.j2"
    copy = "COPY --from=installer C:\\\\Python C:\\\\Python\n"
    assert copy in template.read_text()
    template.write_text(template.read_text().replace(copy, ""))
    rerender(tmp_path)
    dockerfile = tmp_path / "dockerfiles" / line / "windows/nanoserver-ltsc2025/Dockerfile"
    assert "COPY --from=installer" not in dockerfile.read_text()
    built = _build(tmp_path, "--no-verify")
    assert built.returncode == 10, built.stdout + built.stderr
    (record,) = json.loads((tmp_path / "build.json").read_text())["results"]
    assert record["result"] == "failed"
    assert "returned a non-zero code" in record["message"]
    assert "C:\\Python/bin/python3" in (tmp_path / record["log"]).read_text()
    _assert_clean(clients)
