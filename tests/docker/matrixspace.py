"""A rendered matrix to build in the engine tests: versions.json whose Python line is the
stand-ins' own Python (so verification can pass), rendered with the repository's templates.
Also: reading an image's history back as Dockerfile lines, and an engine's leftovers."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from tests.conftest import REPO
from tests.docker import engines as eng
from toolkit.matrix import Build, build_matrix
from toolkit.render import apply_render, plan_render, template_environment
from toolkit.versions import load_versions

GET_PIP_URL = (
    "https://github.com/pypa/get-pip/raw/309a56c5fd94bd1134053a541cb4657a4e47e09d/get-pip.py"
)
GET_PIP_SHA256 = "57e3643ff19f018f8a00dfaa6b7e4620e3c1a7a2171fd218425366ec006b3bfe"
RELEASES = ("1809", "1803", "ltsc2016")


def write_versions(root: Path, lines: dict[str, tuple[str, str]]) -> Path:
    """versions.json with ``{line name: (python version, pip version)}``, all three releases."""
    data = {
        name: {
            "version": version,
            "pip": {"version": pip},
            "get-pip": {"url": GET_PIP_URL, "sha256": GET_PIP_SHA256},
            "variants": [f"windows/windowsservercore-{r}" for r in RELEASES],
        }
        for name, (version, pip) in lines.items()
    }
    path = root / "versions.json"
    path.write_text(json.dumps(data, indent=2) + "\n")
    return path


def render_workspace(root: Path, lines: dict[str, tuple[str, str]]) -> list[Build]:
    """versions.json + templates/ + rendered dockerfiles/ under ``root``; returns the matrix."""
    root.mkdir(parents=True, exist_ok=True)
    versions = write_versions(root, lines)
    shutil.copytree(REPO / "templates", root / "templates", dirs_exist_ok=True)
    builds = build_matrix(load_versions(versions))
    env = template_environment(root / "templates")
    apply_render(root / "dockerfiles", plan_render(env, root / "dockerfiles", builds, builds))
    return builds


def workspace_with_hosts(
    root: Path, engines: dict[str, eng.Engine], version: str, pip: str
) -> list[Build]:
    """:func:`render_workspace` for one line, and a hosts.toml naming each engine's socket."""
    builds = render_workspace(root, {line_of(version): (version, pip)})
    (root / "hosts.toml").write_text(
        "".join(f'[hosts.{r}]\nurl = "{e.url}"\n' for r, e in engines.items())
    )
    return builds


def rerender(root: Path) -> list[Build]:
    """Render ``root``/dockerfiles again from ``root``/templates and ``root``/versions.json."""
    builds = build_matrix(load_versions(root / "versions.json"))
    env = template_environment(root / "templates")
    apply_render(root / "dockerfiles", plan_render(env, root / "dockerfiles", builds, builds))
    return builds


def insert_in_template(root: Path, instruction: str, release: str | None = None) -> None:
    """Add an instruction to the workspace's template just before the final CMD (for the
    targets of ``release`` only, when given) and render again: ``toolkit build`` refuses
    Dockerfiles that differ from what the templates render, so tests change the template."""
    template = root / "templates" / "windowsservercore.Dockerfile.j2"
    text = template.read_text()
    head, sep, tail = text.rpartition("\nCMD ")
    assert sep, f"{template} has no CMD"
    if release is not None:
        instruction = f'{{% if windows_release == "{release}" %}}{instruction}\n{{% endif %}}'
    template.write_text(f"{head}\n{instruction}\n{sep.lstrip(chr(10))}{tail}")
    rerender(root)


def line_of(python_version: str) -> str:
    major, minor, _ = python_version.split(".", 2)
    return f"{major}.{minor}"


def insert_before_cmd(dockerfile: Path, instruction: str) -> None:
    """Add an instruction just before the final CMD (a failing or slow RUN for a test)."""
    text = dockerfile.read_text()
    head, sep, tail = text.rpartition("\nCMD ")
    assert sep, f"{dockerfile} has no CMD"
    dockerfile.write_text(f"{head}\n{instruction}\n{sep.lstrip(chr(10))}{tail}")


def history_lines(api: Any, image: str) -> list[str]:
    """The image's history, oldest first, as Dockerfile lines (the engine's ``CreatedBy``
    without the shell prefix and ``#(nop)``; a shell command is a ``RUN``)."""
    shells = ["/bin/sh -c ", "cmd /S /C "]
    config_shell = api.inspect_image(image)["Config"].get("Shell")
    if config_shell:
        shells.insert(0, " ".join(config_shell) + " ")
    lines = []
    for entry in reversed(api.history(image)):
        created = entry["CreatedBy"]
        for prefix in shells:
            if created.startswith(prefix):
                created = created[len(prefix) :]
                break
        if created.startswith("#(nop) "):
            lines.append(created.removeprefix("#(nop) ").strip())
        else:
            lines.append("RUN " + created)
    return lines


def image_ids(api: Any) -> set[str]:
    return {i["Id"] for i in api.images(all=True)}


def containers(api: Any) -> list[str]:
    return [f"{c['Id'][:12]} {c['Image']} {c['Status']}" for c in api.containers(all=True)]
