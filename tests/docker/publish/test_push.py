"""toolkit.push.push_build: the real test engines push images built from the stand-ins to a real
registry; then ``publish_lists`` makes lists over what they pushed, read back field by field.

The engines are Linux, so their images are linux/amd64 without ``os.version``: the matrix here
gives each line one release, so each list has one entry (lists over several releases, with the
seed's Windows platforms, are tested with Windows-shaped images in test_manifest_lists.py).
"""

from __future__ import annotations

import io
import json
import secrets
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.docker import engines as eng
from tests.docker import registries as regs
from tests.docker.matrixspace import GET_PIP_SHA256, GET_PIP_URL
from toolkit.matrix import Build, build_matrix
from toolkit.mediatypes import MANIFEST_LIST_V2
from toolkit.publish import CREATED, plan_shared_tags, publish_lists
from toolkit.push import push_build
from toolkit.registry import RegistryClient, RetryPolicy, parse_repository
from toolkit.results import Outcome
from toolkit.versions import load_versions

FAST = RetryPolicy(attempts=3, backoff=0.01, max_backoff=0.02, timeout=30)
LOCAL = "pushtest/python"


def single_release_matrix(root: Path) -> list[Build]:
    """3.8-rc on 1809 and 3.7 on 1803: one release per line, so one entry per list."""
    lines = {"3.8-rc": ("3.8.0rc1", "1809"), "3.7": ("3.7.4", "1803")}
    data = {
        name: {
            "version": version,
            "pip": {"version": "19.2.3"},
            "get-pip": {"url": GET_PIP_URL, "sha256": GET_PIP_SHA256},
            "variants": [f"windows/windowsservercore-{release}"],
        }
        for name, (version, release) in lines.items()
    }
    (root / "versions.json").write_text(json.dumps(data))
    return build_matrix(load_versions(root / "versions.json"))


def build_standin_image(client: Any, build: Build, nonce: str) -> str:
    """A small image FROM the release's stand-in, tagged LOCAL:<tag> for every tag of ``build``."""
    dockerfile = (
        f"FROM {build.release.base_image}\n"
        f"ENV PYTHON_VERSION={build.line.version} TOOLKIT_TEST_NONCE={nonce}\n"
        f'CMD ["python"]\n'
    )
    context = io.BytesIO()
    with tarfile.open(fileobj=context, mode="w") as tar:
        data = dockerfile.encode()
        info = tarfile.TarInfo("Dockerfile")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    context.seek(0)
    for chunk in client.api.build(
        fileobj=context, custom_context=True, tag=f"{LOCAL}:{build.tags[0]}", pull=False,
        network_mode="none", rm=True, forcerm=True, decode=True,
    ):  # fmt: skip
        assert "errorDetail" not in chunk, chunk
    image_id = str(client.images.get(f"{LOCAL}:{build.tags[0]}").id)
    for tag in build.tags[1:]:
        client.api.tag(image_id, LOCAL, tag)
    return image_id


@pytest.fixture
def clients(engines: dict[str, eng.Engine]) -> Iterator[dict[str, Any]]:
    made = {release: e.client() for release, e in engines.items()}
    yield made
    for client in made.values():
        client.close()


def test_engines_push_then_nothing_to_do_then_lists(
    clients: dict[str, Any], plain_registry: regs.RunningRegistry, repo: str, tmp_path: Path
) -> None:
    builds = single_release_matrix(tmp_path)
    nonce = secrets.token_hex(6)
    for build in builds:
        build_standin_image(clients[build.release.key], build, nonce)
    _, destination = parse_repository(f"{plain_registry.address}/{repo}")
    steps: list[str] = []
    with RegistryClient(plain_registry.address, actions="pull,push", retry=FAST) as registry:
        results = [
            push_build(
                clients[b.release.key], registry, b, destination, host=b.release.key,
                local_repo=LOCAL, credential=None, on_progress=steps.append,
            )
            for b in builds
        ]  # fmt: skip
        assert [r.outcome for r in results] == [Outcome.PUSHED, Outcome.PUSHED], [
            r.message for r in results
        ]
        assert any("layers" in s for s in steps)
        for build, result in zip(builds, results, strict=True):
            assert result.tags == build.tags
            assert result.foreign_skipped == 0
            for tag in build.tags:
                assert registry.manifest_digest(repo, tag) == result.digest
            manifest = registry.get_manifest(repo, build.tags[0]).json()
            assert result.layers == len(manifest["layers"])
            config_digest = manifest["config"]["digest"]
            config = json.loads(registry.get_blob(repo, config_digest))
            assert f"TOOLKIT_TEST_NONCE={nonce}" in config["config"]["Env"]
        before = registry.requests_made
        again = [
            push_build(
                clients[b.release.key], registry, b, destination, host=b.release.key,
                local_repo=LOCAL, credential=None,
            )
            for b in builds
        ]  # fmt: skip
        assert [r.outcome for r in again] == [Outcome.UNCHANGED, Outcome.UNCHANGED]
        assert [r.digest for r in again] == [r.digest for r in results]
        # One HEAD per tag: 3.8-rc has 3 tags, 3.7 (newest final, major 3, latest) has 4.
        assert registry.requests_made - before == len(builds[0].tags) + len(builds[1].tags)

        lists = publish_lists(registry, repo, plan_shared_tags(builds))
        assert {r.result for r in lists} == {CREATED}
        for made in lists:
            fetched = registry.get_manifest(repo, made.tag)
            assert fetched.media_type == MANIFEST_LIST_V2
            (entry,) = fetched.json()["manifests"]
            pushed = next(
                r for b, r in zip(builds, results, strict=True) if made.tag in b.shared_tags
            )
            image = registry.get_manifest(repo, entry["digest"])
            assert entry["digest"] == pushed.digest
            assert entry["size"] == len(image.body)
            assert entry["mediaType"] == image.media_type
            assert entry["platform"] == {"architecture": "amd64", "os": "linux"}


def test_push_of_an_image_never_built(
    clients: dict[str, Any], plain_registry: regs.RunningRegistry, repo: str, tmp_path: Path
) -> None:
    build = single_release_matrix(tmp_path)[0]
    _, destination = parse_repository(f"{plain_registry.address}/{repo}")
    with RegistryClient(plain_registry.address, retry=FAST) as registry:
        result = push_build(
            clients["1809"], registry, build, destination, host="1809",
            local_repo="never-built/python", credential=None,
        )  # fmt: skip
        assert registry.requests_made == 0
    assert result.outcome == Outcome.NOT_BUILT
    assert result.message == (
        f"never-built/python:{build.tags[0]} is not on 1809; run toolkit build for {build.id} first"
    )
