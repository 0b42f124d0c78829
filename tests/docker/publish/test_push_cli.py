"""``toolkit build`` -> ``toolkit push`` -> ``toolkit manifest`` as a user runs them, on the real
test engines (one over TLS) and real registries.

Each line has one release (the engines are Linux: their images share the platform linux/amd64,
so a list over several releases would have two entries an engine could not choose between).
"""

from __future__ import annotations

import base64
import json
import secrets
import shutil
from pathlib import Path

import pytest

from tests.conftest import REPO, Result, run_toolkit
from tests.docker import engines as eng
from tests.docker import registries as regs
from tests.docker.matrixspace import GET_PIP_SHA256, GET_PIP_URL
from tests.docker.publish.conftest import BasicRegistry
from toolkit.credentials import Credential, StaticCredentials
from toolkit.matrix import Build, build_matrix
from toolkit.mediatypes import MANIFEST_LIST_V2
from toolkit.registry import RegistryClient, RetryPolicy
from toolkit.render import apply_render, plan_render, template_environment
from toolkit.versions import load_versions

FAST = RetryPolicy(attempts=3, backoff=0.01, max_backoff=0.02, timeout=30)
LOCAL = "cli/python"
LINES = {"3.8-rc": ("3.8.0rc1", "1809"), "3.7": ("3.7.4", "1803")}


def workspace_with_builds(root: Path, engines: dict[str, eng.Engine]) -> list[Build]:
    data = {
        name: {
            "version": version,
            "pip": {"version": "19.2.3"},
            "get-pip": {"url": GET_PIP_URL, "sha256": GET_PIP_SHA256},
            "variants": [f"windows/windowsservercore-{release}"],
        }
        for name, (version, release) in LINES.items()
    }
    (root / "versions.json").write_text(json.dumps(data))
    builds = build_matrix(load_versions(root / "versions.json"))
    # build and push check the Dockerfiles against ./templates (drift is refused)
    shutil.copytree(REPO / "templates", root / "templates")
    env = template_environment(root / "templates")
    apply_render(root / "dockerfiles", plan_render(env, root / "dockerfiles", builds, builds))
    parts = []
    for release, engine in engines.items():
        if engine.tls_url is not None and engine.tls is not None:
            parts.append(
                f'[hosts.{release}]\nurl = "{engine.tls_url}"\nca = "{engine.tls.ca}"\n'
                f'cert = "{engine.tls.cert}"\nkey = "{engine.tls.key}"\n'
            )
        else:
            parts.append(f'[hosts.{release}]\nurl = "{engine.url}"\n')
    (root / "hosts.toml").write_text("\n".join(parts))
    built = run_toolkit(
        "build", "--no-preflight", "--hosts", "hosts.toml", "--pull", "never", "--network",
        "none", "--repo", LOCAL, "--no-verify", "--build-arg", f"TOOLKIT_TEST={secrets.token_hex(6)}",
        cwd=root, timeout=300,
    )  # fmt: skip
    assert built.returncode == 0, built.stdout + built.stderr
    return builds


def push(root: Path, *args: str, env: dict[str, str] | None = None) -> Result:
    base = {"DOCKER_CONFIG": str(root / "no-docker-config")}
    return run_toolkit(
        "push", "--no-preflight", "--hosts", "hosts.toml", "--local-repo", LOCAL, *args,
        cwd=root, env={**base, **(env or {})}, timeout=300,
    )  # fmt: skip


@pytest.fixture(scope="module")
def built(
    engines: dict[str, eng.Engine], tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, list[Build]]:
    root = tmp_path_factory.mktemp("push-cli")
    return root, workspace_with_builds(root, engines)


def test_push_then_unchanged_then_manifest(
    built: tuple[Path, list[Build]], plain_registry: regs.RunningRegistry, repo: str
) -> None:
    root, builds = built
    target = f"{plain_registry.address}/{repo}"
    first = push(root, "--repo", target)
    assert first.returncode == 0, first.stdout + first.stderr
    # Plain style (not a TTY): progress lines per target, then the summary table.
    assert f"[{builds[0].id}] start on " in first.stdout
    assert f"[{builds[0].id}] {builds[0].tags[0]}: " in first.stdout
    table = first.stdout[first.stdout.index("id  ") :].splitlines()
    assert [row.split()[3] for row in table[1:3]] == ["pushed", "pushed"]
    assert table[-1] == "2 target(s): 2 pushed"

    again = push(root, "--repo", target, "--json")
    assert again.returncode == 0, again.stderr
    document = json.loads(again.stdout)
    assert document["ok"] is True
    assert [r["result"] for r in document["results"]] == ["unchanged", "unchanged"]
    digests = {r["id"]: r["digest"] for r in document["results"]}
    with RegistryClient(plain_registry.address, retry=FAST) as client:
        for build in builds:
            for tag in build.tags:
                assert client.manifest_digest(repo, tag) == digests[build.id]

    lists = run_toolkit("manifest", "--repo", target, cwd=root)
    assert lists.returncode == 0, lists.stderr
    with RegistryClient(plain_registry.address, retry=FAST) as client:
        for build in builds:
            for tag in build.shared_tags:
                fetched = client.get_manifest(repo, tag)
                assert fetched.media_type == MANIFEST_LIST_V2
                (entry,) = fetched.json()["manifests"]
                image = client.get_manifest(repo, entry["digest"])
                assert entry["digest"] == digests[build.id]
                assert entry["size"] == len(image.body)
                assert entry["mediaType"] == image.media_type
                config = client.get_blob(repo, image.json()["config"]["digest"])
                assert entry["platform"] == {
                    "architecture": json.loads(config)["architecture"],
                    "os": json.loads(config)["os"],
                }


def test_push_of_images_never_built(
    built: tuple[Path, list[Build]], plain_registry: regs.RunningRegistry, repo: str
) -> None:
    root, builds = built
    done = run_toolkit(
        "push", "--no-preflight", "--hosts", "hosts.toml", "--local-repo", "nothing/here",
        "--repo", f"{plain_registry.address}/{repo}", cwd=root,
    )  # fmt: skip
    assert done.returncode == 12
    assert (
        f"nothing/here:{builds[0].tags[0]} is not on tcp://127.0.0.1:2376; run toolkit build"
        in done.stdout
    )
    assert done.stderr.splitlines()[-1] == (
        f"error: 2 of 2 push(es) to {plain_registry.address}/{repo} failed: "
        f"{builds[0].id}, {builds[1].id}"
    )


def test_push_with_credentials_from_docker_config(
    built: tuple[Path, list[Build]], basic_registry: BasicRegistry, repo: str
) -> None:
    root, builds = built
    address = basic_registry.registry.address
    target = f"{address}/{repo}"
    secrets_seen = {basic_registry.password}
    for password, code in (
        (f"wrong-{basic_registry.password[:6]}x", 12),
        (basic_registry.password, 0),
    ):
        secrets_seen.add(password)
        auth = base64.b64encode(f"{basic_registry.user}:{password}".encode()).decode()
        secrets_seen.add(auth)
        config = root / f"dc-{code}"
        config.mkdir(exist_ok=True)
        (config / "config.json").write_text(json.dumps({"auths": {address: {"auth": auth}}}))
        done = push(root, "--repo", target, env={"DOCKER_CONFIG": str(config)})
        assert done.returncode == code, done.stdout + done.stderr
        for secret in secrets_seen:
            assert secret not in done.stdout + done.stderr
    creds = StaticCredentials({address: Credential(basic_registry.user, basic_registry.password)})
    with RegistryClient(address, credentials=creds, retry=FAST) as client:
        assert client.manifest_digest(repo, builds[1].tags[0]) is not None


def test_push_dry_run_sends_nothing(
    built: tuple[Path, list[Build]], plain_registry: regs.RunningRegistry, repo: str
) -> None:
    root, builds = built
    done = push(root, "--repo", f"{plain_registry.address}/{repo}", "--dry-run")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert [line.split("\t")[0] for line in lines] == [b.id for b in builds]
    assert lines[0].split("\t")[2] == f"from={LOCAL}:{builds[0].tags[0]}"
    with RegistryClient(plain_registry.address, retry=FAST) as client:
        assert client.manifest_digest(repo, builds[0].tags[0]) is None


def test_local_repo_defaults_to_the_destination(
    built: tuple[Path, list[Build]],
    engines: dict[str, eng.Engine],
    plain_registry: regs.RunningRegistry,
    repo: str,
) -> None:
    """Built with ``--repo REGISTRY/NAME`` (as the workflow does), pushed with the same --repo."""
    root, builds = built
    target = f"{plain_registry.address}/{repo}"
    for build in builds:
        client = engines[build.release.key].client()
        try:
            for tag in build.tags:
                client.api.tag(f"{LOCAL}:{build.tags[0]}", target, tag)
        finally:
            client.close()
    done = run_toolkit(
        "push", "--no-preflight", "--hosts", "hosts.toml", "--repo", target, "--json", cwd=root,
        env={"DOCKER_CONFIG": str(root / "no-docker-config")}, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert [r["result"] for r in json.loads(done.stdout)["results"]] == ["pushed", "pushed"]
