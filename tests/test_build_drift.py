"""``toolkit build`` refuses Dockerfiles that drifted from versions.json and the templates
(issue 13, item 14): it builds only what ``toolkit render`` would write."""

from __future__ import annotations

import json
from pathlib import Path

from tests.conftest import run_toolkit

DOCKERFILES = [
    f"dockerfiles/3.8-rc/windows/windowsservercore-{release}/Dockerfile"
    for release in ("1809", "1803", "ltsc2016")
]


def _dry_run(workspace: Path, *args: str) -> tuple[int, str, str]:
    # No host is contacted: --no-preflight, and the drift check comes before any planning.
    # The 3.8-rc line alone (the seed's releases): the hosts below serve only those.
    args = args or ("3.8-rc-*",)
    result = run_toolkit(
        "build", "--dry-run", "--no-preflight", "--host", "1809=unix:///nonexistent.sock",
        "--host", "1803=unix:///nonexistent.sock", "--host", "ltsc2016=unix:///nonexistent.sock",
        *args, cwd=workspace,
    )  # fmt: skip
    return result.returncode, result.stdout, result.stderr


def test_build_refuses_data_changed_without_rendering(workspace: Path) -> None:
    code, _out, err = _dry_run(workspace)
    assert code == 0, err  # rendered from this very data: the plan is printed
    data = json.loads((workspace / "versions.json").read_text())
    data["3.8-rc"]["pip"]["version"] = "19.3"  # edited, not rendered (what a maintainer did)
    (workspace / "versions.json").write_text(json.dumps(data, indent=2) + "\n")

    code, out, err = _dry_run(workspace)
    assert code == 1, err
    assert out == ""
    assert (
        "error: 3 Dockerfile(s) differ from what templates and versions.json render: "
        + ", ".join(DOCKERFILES)
    ) in err
    assert "run toolkit render" in err
    assert "Traceback" not in err

    code, _out, err = _dry_run(workspace, "*-1803")  # only the selected targets are checked
    assert code == 1
    assert (
        f"1 Dockerfile(s) differ from what templates and versions.json render: {DOCKERFILES[1]}"
        in err
    )

    rendered = run_toolkit("render", cwd=workspace)
    assert rendered.returncode == 0, rendered.stderr
    code, out, err = _dry_run(workspace)
    assert code == 0, err
    assert len(out.splitlines()) == 3


def test_build_refuses_a_hand_edited_dockerfile_and_a_changed_template(workspace: Path) -> None:
    dockerfile = workspace / DOCKERFILES[2]
    dockerfile.write_text(dockerfile.read_text().replace('CMD ["python"]', 'CMD ["cmd"]'))
    code, _out, err = _dry_run(workspace)
    assert code == 1
    assert (
        f"1 Dockerfile(s) differ from what templates and versions.json render: {DOCKERFILES[2]}"
        in err
    )

    run_toolkit("render", cwd=workspace)
    template = workspace / "templates" / "windowsservercore.Dockerfile.j2"
    template.write_text(template.read_text() + "LABEL maintainer=someone\n")
    code, _out, err = _dry_run(workspace)
    assert code == 1
    assert "3 Dockerfile(s) differ" in err
    # The templates the check renders are the ones --templates names.
    moved = workspace / "other-templates"
    template.parent.rename(moved)
    code, _out, err = _dry_run(workspace, "3.8-rc-*", "--templates", str(moved))
    assert code == 1
    assert f"3 Dockerfile(s) differ from what {moved} and versions.json render" in err
    code, _out, err = _dry_run(workspace)
    assert code == 4
    assert "templates: templates directory not found" in err


def test_push_refuses_drift_like_build(workspace: Path) -> None:
    """Push publishes what build made from the Dockerfiles: Dockerfiles the data no longer
    describes are refused before any host or registry is asked (exit 1, the files named)."""

    def push(*args: str) -> tuple[int, str, str]:
        result = run_toolkit(
            "push", "3.8-rc-*", "--repo", "127.0.0.1:9/python", "--dry-run", "--no-preflight",
            "--host", "1809=unix:///nonexistent.sock", "--host", "1803=unix:///nonexistent.sock",
            "--host", "ltsc2016=unix:///nonexistent.sock", *args, cwd=workspace,
        )  # fmt: skip
        return result.returncode, result.stdout, result.stderr

    code, out, err = push()
    assert code == 0, err
    assert len(out.splitlines()) == 3
    dockerfile = workspace / DOCKERFILES[0]
    dockerfile.write_text(dockerfile.read_text() + "# edited by hand\n")
    code, out, err = push()
    assert code == 1, err
    assert out == ""
    assert (
        f"1 Dockerfile(s) differ from what templates and versions.json render: {DOCKERFILES[0]}"
        in err
    )
