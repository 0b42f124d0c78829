"""An image the real engine built from the committed Dockerfile, pushed, reported and checked.

The base is made Windows-shaped first: the stand-in's layer plus a small "update" layer, with the
two history entries a Windows Server Core base image has (``Apply image``, ``Install update``)
and ``os.version``, put into the registry through its API and pulled by a disposable engine as
its ``mcr.microsoft.com/windows/servercore:1809``. The committed 1809 Dockerfile is built on it
unchanged by the classic builder (which records history the way Windows hosts do), pushed by the
engine, and put under the shared tag as a manifest list. The page read from the registry must
show what the engine made, and its provenance against dockerfiles/ must show no drift.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import tarfile
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.conftest import REPO, run_toolkit
from tests.docker import engines as eng
from tests.windows_images import MANIFEST_LIST, sha256
from toolkit.imagepage import write_page
from toolkit.instructions import history, parse_dockerfile
from toolkit.matrix import build_matrix
from toolkit.pagesource import read_pages, url_headers
from toolkit.provenance import check_pages
from toolkit.references import parse_reference
from toolkit.registry import RegistryClient
from toolkit.versions import load_versions

DOCKERFILE_DIR = REPO / "dockerfiles" / "3.8-rc" / "windows" / "windowsservercore-1809"
BASE_HISTORY = ["RUN Apply image 1809-RTM-amd64", "RUN Install update 1809-amd64"]
OS_VERSION = "10.0.17763.805"


def _push(client: Any, repository: str, tag: str) -> None:
    for event in client.api.push(repository, tag=tag, stream=True, decode=True):
        assert "error" not in event, event


def _update_layer() -> tuple[bytes, str]:
    """A gzipped layer tar with one file, and its diff_id (sha256 of the tar)."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as tar:
        data = b"cumulative update 1809-amd64 (test stand-in)\n"
        info = tarfile.TarInfo("update.txt")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    tar_bytes = raw.getvalue()
    return gzip.compress(tar_bytes, mtime=0), sha256(tar_bytes)


def _windows_shaped_base(api: RegistryClient, repository: str) -> None:
    """Rewrite ``repository:standin`` (pushed by the engine) as ``repository:1809``."""
    manifest = api.get_manifest(repository, "standin").json()
    config = json.loads(api.get_blob(repository, manifest["config"]["digest"]))
    blob, diff_id = _update_layer()
    layer_digest = api.put_blob(repository, blob)
    manifest["layers"].append(
        {
            "mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip",
            "size": len(blob),
            "digest": layer_digest,
        }
    )
    config["rootfs"]["diff_ids"].append(diff_id)
    assert len(config["rootfs"]["diff_ids"]) == 2, "the stand-in is one imported layer"
    config["history"] = [
        {"created": "2018-09-15T09:10:26.4419999Z", "created_by": "Apply image 1809-RTM-amd64"},
        {"created": "2019-10-06T10:02:47.9999999Z", "created_by": "Install update 1809-amd64"},
    ]
    config["os.version"] = OS_VERSION
    config_bytes = json.dumps(config).encode()
    manifest["config"]["digest"] = api.put_blob(repository, config_bytes)
    manifest["config"]["size"] = len(config_bytes)
    body = json.dumps(manifest).encode()
    api.put_manifest(repository, "1809", body, manifest["mediaType"])


@pytest.fixture
def engine(engine_factory: Callable[[str, str], eng.Engine]) -> Iterator[Any]:
    client = engine_factory("report", "1809").client()
    try:
        yield client
    finally:
        client.close()


def test_built_pushed_reported_and_no_drift(registry: str, engine: Any, tmp_path: Path) -> None:
    standin = engine.images.get(f"{eng.STANDIN_REPOSITORY}:1809")
    standin.tag(f"{registry}/report/base", "standin")
    _push(engine, f"{registry}/report/base", "standin")
    with RegistryClient(registry, actions="pull,push") as api:
        _windows_shaped_base(api, "report/base")
    engine.images.pull(f"{registry}/report/base", tag="1809")
    engine.images.get(f"{registry}/report/base:1809").tag(eng.STANDIN_REPOSITORY, "1809")

    built, _logs = engine.images.build(
        path=str(DOCKERFILE_DIR),
        tag=f"{registry}/report/python:3.8-rc-windowsservercore-1809",
        pull=False,
        network_mode="none",
        rm=True,
        forcerm=True,
    )
    _push(engine, f"{registry}/report/python", "3.8-rc-windowsservercore-1809")
    with RegistryClient(registry, actions="pull,push") as api:
        pushed = api.get_manifest("report/python", "3.8-rc-windowsservercore-1809")
        entry = {
            "mediaType": pushed.media_type,
            "size": len(pushed.body),
            "digest": pushed.digest,
            "platform": {"architecture": "amd64", "os": "windows", "os.version": OS_VERSION},
        }
        listing = json.dumps(
            {"schemaVersion": 2, "mediaType": MANIFEST_LIST, "manifests": [entry]}
        ).encode()
        api.put_manifest("report/python", "3.8-rc-windowsservercore", listing, MANIFEST_LIST)

        raw = json.loads(api.get_blob("report/python", pushed.json()["config"]["digest"]))
        recorded = [entry.get("created_by", "") for entry in raw["history"]]
        # what the classic builder recorded: the shell in front, #(nop) for metadata
        assert sum("#(nop)  " in line for line in recorded) >= 6
        assert sum(line.startswith("powershell -Command $ErrorAction") for line in recorded) >= 8

        with requests.Session() as session:
            session.trust_env = False
            (page,) = read_pages(
                [parse_reference(f"{registry}/report/python:3.8-rc-windowsservercore")],
                lambda _r: api,
                url_headers=url_headers(session),
            )

    assert page.digest == "sha256:" + hashlib.sha256(listing).hexdigest()
    (image,) = page.images
    assert image.digest == pushed.digest
    assert image.platform.describe() == f"windows version {OS_VERSION}; amd64"
    assert image.image_id == built.id
    assert image.docker_version == engine.version()["Version"]
    assert image.cmd == ("python",)
    assert image.shell == (
        "powershell",
        "-Command",
        "$ErrorActionPreference = 'Stop'; $ProgressPreference = 'SilentlyContinue';",
    )
    pushed_layers = pushed.json()["layers"]
    assert [(layer.digest, layer.size, layer.media_type) for layer in image.layers] == [
        (item["digest"], item["size"], item["mediaType"]) for item in pushed_layers
    ]
    assert image.total_size == sum(item["size"] for item in pushed_layers)
    # the classic builder's records, shown as the page shows them: the Dockerfile's history
    expected = history(parse_dockerfile(DOCKERFILE_DIR / "Dockerfile"), BASE_HISTORY)
    assert [entry.instruction for entry in image.history] == expected
    assert image.history[0].created == datetime(2018, 9, 15, 9, 10, 26, tzinfo=UTC)
    assert image.history[1].created == datetime(2019, 10, 6, 10, 2, 47, tzinfo=UTC)
    text = write_page(page)
    assert "# Sun, 06 Oct 2019 10:02:47 GMT\nRUN Install update 1809-amd64\n" in text

    checks = check_pages(
        [page], build_matrix(load_versions(REPO / "versions.json")), REPO / "dockerfiles"
    )
    assert [(c.build, c.ok, c.diff) for c in checks] == [
        ("3.8-rc-windowsservercore-1809", True, "")
    ]
    # and as a user runs it
    result = run_toolkit(
        "report",
        f"{registry}/report/python:3.8-rc-windowsservercore",
        "--against",
        str(REPO / "dockerfiles"),
        "--versions",
        str(REPO / "versions.json"),
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == ""
    assert "(windows version 10.0.17763.805; amd64): matches " in result.stderr
