"""toolkit.publish.publish_lists over Windows-shaped images put into a real registry.

The images are shaped like the seed's (python:3.8-rc-windowsservercore, October 2019): config
with os windows and the os.version of each release, a foreign base layer with urls, a small real
layer. The lists are read back through the registry API and checked field by field.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import REPO
from tests.docker import registries as regs
from tests.doubles.fault_proxy import Fault, FaultProxyDouble
from toolkit.matrix import Build, build_matrix
from toolkit.mediatypes import FOREIGN_LAYER, MANIFEST_LIST_V2, MANIFEST_V2, OCI_INDEX
from toolkit.publish import (
    CREATED,
    FAILED,
    UNCHANGED,
    UPDATED,
    WOULD_CREATE,
    WOULD_UPDATE,
    plan_shared_tags,
    publish_lists,
)
from toolkit.registry import RegistryClient, RetryPolicy
from toolkit.versions import parse_versions

FAST = RetryPolicy(attempts=3, backoff=0.01, max_backoff=0.02, timeout=10)
SEED_PLATFORMS = [
    {"architecture": "amd64", "os": "windows", "os.version": "10.0.14393.3274"},
    {"architecture": "amd64", "os": "windows", "os.version": "10.0.17134.1069"},
    {"architecture": "amd64", "os": "windows", "os.version": "10.0.17763.805"},
]
SHARED = [
    "3.8.0rc1-windowsservercore",
    "3.8-rc-windowsservercore",
    "rc-windowsservercore",
    "3.8.0rc1",
    "3.8-rc",
    "rc",
]


def _builds() -> list[Build]:
    """The 2019 seed's matrix: the 3.8-rc line alone (as the workspace fixture has it)."""
    seed = {"3.8-rc": json.loads((REPO / "versions.json").read_text())["3.8-rc"]}
    return build_matrix(parse_versions(json.dumps(seed), Path("versions.json")))


def _seed_images(
    client: RegistryClient, repo: str, *, oci: bool = False, skip: str = ""
) -> dict[str, str]:
    digests = {}
    for build in _builds():
        if build.release.key == skip:
            continue
        digests[build.release.key] = regs.put_windows_image(
            client, repo, build.tags[0], build.release.key, oci=oci
        )
    return digests


def test_lists_equal_the_seed(plain_registry: regs.RunningRegistry, repo: str) -> None:
    with RegistryClient(plain_registry.address, actions="pull,push", retry=FAST) as client:
        digests = _seed_images(client, repo)
        plan = plan_shared_tags(_builds())
        assert [p.tag for p in plan] == SHARED
        results = publish_lists(client, repo, plan)
        assert [(r.tag, r.result) for r in results] == [(t, CREATED) for t in SHARED]
        for result in results:
            fetched = client.get_manifest(repo, result.tag)
            assert fetched.digest == result.digest
            document = fetched.json()
            assert fetched.media_type == MANIFEST_LIST_V2
            assert document["schemaVersion"] == 2
            assert document["mediaType"] == MANIFEST_LIST_V2
            entries = document["manifests"]
            assert [e["platform"] for e in entries] == SEED_PLATFORMS
            for entry, release in zip(entries, ("ltsc2016", "1803", "1809"), strict=True):
                image = client.get_manifest(repo, entry["digest"])
                assert entry["digest"] == digests[release]
                assert entry["mediaType"] == image.media_type
                assert entry["size"] == len(image.body)
                foreign = image.json()["layers"][0]
                assert foreign["mediaType"] == FOREIGN_LAYER
                assert foreign["urls"][0].startswith("https://mcr.microsoft.com/")


def test_noop_writes_nothing_and_reads_little(
    plain_registry: regs.RunningRegistry, repo: str
) -> None:
    plan = plan_shared_tags(_builds())
    with RegistryClient(plain_registry.address, actions="pull,push", retry=FAST) as client:
        _seed_images(client, repo)
        first = publish_lists(client, repo, plan)
    proxy = FaultProxyDouble(plain_registry.address)
    proxy.start()
    try:
        with RegistryClient(proxy.address, actions="pull,push", retry=FAST) as client:
            again = publish_lists(client, repo, plan)
            made = client.requests_made
    finally:
        proxy.stop()
    assert [r.result for r in again] == [UNCHANGED] * len(SHARED)
    assert [r.digest for r in again] == [r.digest for r in first]
    assert {m for m, _, _ in proxy.seen} == {"GET"}
    # One manifest and one config read per release image, one list read per shared tag.
    assert made == len(proxy.seen) == 3 * 2 + len(SHARED)


def test_changed_image_updates_lists_dry_run_first(
    plain_registry: regs.RunningRegistry, repo: str
) -> None:
    plan = plan_shared_tags(_builds())
    with RegistryClient(plain_registry.address, actions="pull,push", retry=FAST) as client:
        _seed_images(client, repo)
        before = {r.tag: r.digest for r in publish_lists(client, repo, plan)}
        new = regs.put_windows_image(
            client, repo, "3.8.0rc1-windowsservercore-1809", "1809", marker="rebuilt"
        )
        dry = publish_lists(client, repo, plan, dry_run=True)
        assert {r.result for r in dry} == {WOULD_UPDATE}
        assert {t: client.get_manifest(repo, t).digest for t in SHARED} == before
        done = publish_lists(client, repo, plan)
        assert {r.result for r in done} == {UPDATED}
        entries = client.get_manifest(repo, "rc").json()["manifests"]
        assert entries[2]["digest"] == new
        assert entries[2]["platform"]["os.version"] == "10.0.17763.805"


def test_dry_run_on_empty_writes_nothing(plain_registry: regs.RunningRegistry, repo: str) -> None:
    with RegistryClient(plain_registry.address, actions="pull,push", retry=FAST) as client:
        _seed_images(client, repo)
        results = publish_lists(client, repo, plan_shared_tags(_builds()), dry_run=True)
        assert {r.result for r in results} == {WOULD_CREATE}
        assert all(client.manifest_digest(repo, t) is None for t in SHARED)


def test_oci_entries_make_an_oci_index(plain_registry: regs.RunningRegistry, repo: str) -> None:
    with RegistryClient(plain_registry.address, actions="pull,push", retry=FAST) as client:
        _seed_images(client, repo, oci=True)
        publish_lists(client, repo, plan_shared_tags(_builds()))
        fetched = client.get_manifest(repo, "3.8-rc")
        assert fetched.media_type == OCI_INDEX
        assert [e["platform"] for e in fetched.json()["manifests"]] == SEED_PLATFORMS


def test_missing_release_fails_or_is_partial(
    plain_registry: regs.RunningRegistry, repo: str
) -> None:
    plan = plan_shared_tags(_builds())
    with RegistryClient(plain_registry.address, actions="pull,push", retry=FAST) as client:
        _seed_images(client, repo, skip="1803")
        failed = publish_lists(client, repo, plan)
        assert {r.result for r in failed} == {FAILED}
        assert failed[0].missing == ("3.8.0rc1-windowsservercore-1803",)
        assert "not in the registry: 3.8.0rc1-windowsservercore-1803" in failed[0].message
        assert "--allow-partial" in failed[0].message
        assert all(client.manifest_digest(repo, t) is None for t in SHARED)
        partial = publish_lists(client, repo, plan, allow_partial=True)
        assert {r.result for r in partial} == {CREATED}
        platforms = [e["platform"] for e in client.get_manifest(repo, "rc").json()["manifests"]]
        assert platforms == [SEED_PLATFORMS[0], SEED_PLATFORMS[2]]


def test_a_500_on_a_list_write_is_retried(plain_registry: regs.RunningRegistry, repo: str) -> None:
    with RegistryClient(plain_registry.address, actions="pull,push", retry=FAST) as client:
        _seed_images(client, repo)
    proxy = FaultProxyDouble(plain_registry.address)
    proxy.faults = [Fault("PUT", r"/manifests/rc$", times=1, status=500)]
    proxy.start()
    try:
        with RegistryClient(proxy.address, actions="pull,push", retry=FAST) as client:
            results = publish_lists(client, repo, plan_shared_tags(_builds()))
    finally:
        proxy.stop()
    assert {r.result for r in results} == {CREATED}
    puts = [(p.rsplit("/", 1)[1], s) for m, p, s in proxy.seen if m == "PUT"]
    assert puts[-2:] == [("rc", 500), ("rc", 201)]


def test_duplicate_platform_is_refused(
    plain_registry: regs.RunningRegistry, repo: str, tmp_path: Path
) -> None:
    with RegistryClient(plain_registry.address, actions="pull,push", retry=FAST) as client:
        _seed_images(client, repo)
        # 1803's image claims 1809's os.version: an engine could not choose between them.
        regs.put_windows_image(
            client, repo, "3.8.0rc1-windowsservercore-1803", "1803", os_version="10.0.17763.805"
        )
        results = publish_lists(client, repo, plan_shared_tags(_builds()))
        assert {r.result for r in results} == {FAILED}
        assert "two entries share the platform windows/amd64 10.0.17763.805" in results[0].message
        assert client.manifest_digest(repo, "rc") is None


@pytest.mark.parametrize("kind", ["list", "config-without-os"])
def test_per_release_tag_that_is_not_an_image(
    plain_registry: regs.RunningRegistry, repo: str, kind: str
) -> None:
    with RegistryClient(plain_registry.address, actions="pull,push", retry=FAST) as client:
        _seed_images(client, repo)
        if kind == "list":
            publish_lists(client, repo, plan_shared_tags(_builds()))
            body = client.get_manifest(repo, "rc").body
            client.put_manifest(repo, "3.8.0rc1-windowsservercore-1809", body, MANIFEST_LIST_V2)
            expected = "is a manifest list, not one image"
        else:
            config = client.put_blob(repo, b'{"architecture": "amd64"}')
            bare = {
                "schemaVersion": 2,
                "mediaType": MANIFEST_V2,
                "config": {
                    "mediaType": "application/vnd.docker.container.image.v1+json",
                    "size": 25,
                    "digest": config,
                },
                "layers": [],
            }
            client.put_manifest(
                repo, "3.8.0rc1-windowsservercore-1809", json.dumps(bare).encode(), MANIFEST_V2
            )
            expected = (
                "tag 3.8.0rc1-windowsservercore-1809: the image config has no os/architecture"
            )
        results = publish_lists(client, repo, plan_shared_tags(_builds()))
        assert {r.result for r in results} == {FAILED}
        assert expected in results[0].message
