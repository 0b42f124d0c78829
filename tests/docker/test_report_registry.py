"""`toolkit report` against the suite's real registry (Debian docker-registry on 127.0.0.1:5000).

Windows-shaped images go in through the registry API (tests/windows_images.py: the seed's
platforms, histories as a Windows engine records them, foreign base layers whose URLs point at a
loopback host); the page read back must hold exactly what was put in. Bad registries and broken
images give one-line RegistryErrors.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path

import pytest
import requests

from tests.conftest import FIXTURES, run_toolkit
from tests.doubles.web import (
    ForeignLayerHost,
    broken_registry,
    foreign_layer_host,
    storage_front,
)
from tests.windows_images import (
    FOREIGN,
    MANIFEST_LIST,
    MANIFEST_V2,
    canonical,
    config_for,
    manifest_for,
    put_windows_page,
    sha256,
)
from toolkit.errors import RegistryError
from toolkit.imagepage import Page, http_date, parse_pages, write_page
from toolkit.pagesource import read_pages, url_headers
from toolkit.references import parse_reference
from toolkit.registry import RegistryClient, RetryPolicy

SEED = parse_pages(
    (FIXTURES / "published-python-3.8-rc-windowsservercore.md").read_text("utf-8"), "seed"
).pages[0]
TAG = "3.8-rc-windowsservercore"
QUICK = RetryPolicy(attempts=1, backoff=0.0, timeout=10.0)


@pytest.fixture
def foreign() -> Iterator[ForeignLayerHost]:
    with foreign_layer_host() as host:
        yield host


@pytest.fixture
def session() -> Iterator[requests.Session]:
    with requests.Session() as made:
        made.trust_env = False
        yield made


def _read(
    registry: str, ref: str, session: requests.Session, *, retry: RetryPolicy | None = None
) -> list[Page]:
    with RegistryClient(registry, retry=retry) as client:
        return read_pages(
            [parse_reference(ref)], lambda _r: client, url_headers=url_headers(session, 5.0)
        )


def _put_seed(registry: str, repository: str, foreign: ForeignLayerHost) -> Page:
    """The seed's three platforms, Windows-shaped; the foreign host knows every foreign layer,
    serving the seed's Last-Modified except for the first platform's second base layer."""
    with RegistryClient(registry) as client:
        put = put_windows_page(
            client,
            name=f"{registry}/{repository}",
            repository=repository,
            tag=TAG,
            page=SEED,
            foreign_url=foreign.url_for,
        )
    images = []
    for number, (image, published) in enumerate(zip(put.images, SEED.images, strict=True)):
        layers = []
        for index, (layer, seed_layer) in enumerate(
            zip(image.layers, published.layers, strict=True)
        ):
            if layer.media_type != FOREIGN:
                layers.append(layer)  # the registry sends no Last-Modified for its blobs
                continue
            assert seed_layer.last_modified is not None
            served = None if (number, index) == (0, 1) else http_date(seed_layer.last_modified)
            foreign.modified[layer.digest.removeprefix("sha256:")] = served
            layers.append(
                replace(layer, last_modified=seed_layer.last_modified if served else None)
            )
        images.append(replace(image, layers=tuple(layers)))
    return replace(put, images=tuple(images))


def test_windows_shaped_list_reads_back_as_what_was_put_in(
    registry: str, foreign: ForeignLayerHost, session: requests.Session
) -> None:
    expected = _put_seed(registry, "report/windows", foreign)
    (page,) = _read(registry, f"{registry}/report/windows:{TAG}", session)
    assert page == expected
    # field by field, as the page shows them
    assert page.reference == f"{registry}/report/windows:{TAG}"
    assert page.media_type == MANIFEST_LIST
    text = write_page(page)
    assert text.startswith(f"## `{registry}/report/windows:{TAG}`\n\n```console\n")
    assert f"$ docker pull {registry}/report/windows@{page.digest}\n" in text
    for image, published in zip(page.images, SEED.images, strict=True):
        assert image.platform == published.platform
        assert image.history == published.history
        assert (image.cmd, image.shell) == (published.cmd, published.shell)
        assert image.docker_version == "18.03.1-ee-4"
        assert image.media_type == MANIFEST_V2
        assert image.total_size == sum(layer.size or 0 for layer in image.layers)
        assert f"$ docker pull {registry}/report/windows@{image.digest}\n" in text
        assert f"-\tImage ID: `{image.image_id}`\n" in text
        foreign_layers = [layer for layer in image.layers if layer.media_type == FOREIGN]
        assert [layer.size for layer in foreign_layers] == [
            layer.size for layer in published.layers if layer.media_type == FOREIGN
        ]
    # 6 foreign layers, one served without Last-Modified: 5 lines; the registry gives none.
    assert text.count("\t\tLast Modified: ") == 5
    assert "\t\tLast Modified: Tue, 18 Sep 2018 20:20:50 GMT  \n" in text
    assert sorted(path for _method, path in foreign.requests) == sorted(
        f"/layers/{layer.digest.removeprefix('sha256:')}"
        for image in page.images
        for layer in image.layers
        if layer.media_type == FOREIGN
    )
    assert {method for method, _path in foreign.requests} == {"HEAD"}
    # the dockerfile blocks are the published ones, date for date
    published_text = write_page(SEED)
    block = text[text.index("```dockerfile") : text.index("```\n\n-\tLayers:")]
    assert (
        block
        == published_text[
            published_text.index("```dockerfile") : published_text.index("```\n\n-\tLayers:")
        ]
    )
    assert parse_pages(text, "written").pages == (page,)


def test_a_tag_that_is_one_image(
    registry: str, foreign: ForeignLayerHost, session: requests.Session
) -> None:
    expected = _put_seed(registry, "report/single", foreign)
    image = expected.images[2]
    assert image.digest is not None
    with RegistryClient(registry) as client:
        body = client.get_manifest("report/single", image.digest).body
        client.put_manifest("report/single", "one", body, MANIFEST_V2)
    (page,) = _read(registry, f"{registry}/report/single:one", session)
    assert page.digest == image.digest == sha256(body)
    assert page.media_type == MANIFEST_V2
    assert not page.is_list
    assert page.images == (image,)
    text = write_page(page)
    assert "-\tPlatforms: 1\n\t-\twindows version 10.0.17763.805; amd64\n" in text
    # one image: the platform section has no pull line of its own
    assert text.count("$ docker pull ") == 1
    assert parse_pages(text, "one").pages == (page,)


# --- bad registries and broken images ---------------------------------------------------------

Scenario = Callable[[str, ForeignLayerHost], str]


def _delete_blob(registry: str, repository: str, digest: str) -> None:
    answer = requests.delete(f"http://{registry}/v2/{repository}/blobs/{digest}", timeout=10)
    assert answer.status_code == 202, answer.text


def _missing_config(registry: str, foreign: ForeignLayerHost) -> str:
    page = _put_seed(registry, "report/noconfig", foreign)
    assert page.images[1].image_id is not None
    _delete_blob(registry, "report/noconfig", page.images[1].image_id)
    return f"{registry}/report/noconfig:{TAG}"


def _missing_layer(registry: str, foreign: ForeignLayerHost) -> str:
    page = _put_seed(registry, "report/nolayer", foreign)
    _delete_blob(registry, "report/nolayer", page.images[0].layers[5].digest)
    return f"{registry}/report/nolayer:{TAG}"


def _missing_image_manifest(registry: str, foreign: ForeignLayerHost) -> str:
    page = _put_seed(registry, "report/noimage", foreign)
    answer = requests.delete(
        f"http://{registry}/v2/report/noimage/manifests/{page.images[2].digest}", timeout=10
    )
    assert answer.status_code == 202, answer.text
    return f"{registry}/report/noimage:{TAG}"


def _foreign_layer_gone(registry: str, foreign: ForeignLayerHost) -> str:
    page = _put_seed(registry, "report/noforeign", foreign)
    foreign.modified.pop(page.images[1].layers[0].digest.removeprefix("sha256:"))
    return f"{registry}/report/noforeign:{TAG}"


def _put_image(
    registry: str, repository: str, tag: str, edit: Callable[[dict[str, object]], object]
) -> None:
    """One image of the seed's, its config edited, under ``tag`` (no foreign layers)."""
    image = SEED.images[2]
    image = replace(
        image, layers=tuple(layer for layer in image.layers if layer.media_type != FOREIGN)
    )
    with RegistryClient(registry) as client:
        layers = []
        for index, layer in enumerate(image.layers):
            data = f"{repository} {index}".encode()
            layers.append(replace(layer, digest=client.put_blob(repository, data), size=len(data)))
        shaped = replace(image, layers=tuple(layers))
        config_doc = config_for(shaped)
        changed = edit(config_doc)
        config = changed if isinstance(changed, bytes) else canonical(config_doc)
        digest = client.put_blob(repository, config)
        body = canonical(manifest_for(shaped, digest, len(config)))
        client.put_manifest(repository, tag, body, MANIFEST_V2)


def _config_not_json(registry: str, _foreign: ForeignLayerHost) -> str:
    _put_image(registry, "report/badconfig", "x", lambda _c: b"<html>not a config</html>")
    return f"{registry}/report/badconfig:x"


def _history_longer(registry: str, _foreign: ForeignLayerHost) -> str:
    def edit(config: dict[str, object]) -> None:
        history = config["history"]
        assert isinstance(history, list)
        history.append(dict(history[-1]))

    _put_image(registry, "report/longhistory", "x", edit)
    return f"{registry}/report/longhistory:x"


def _nested_list(registry: str, foreign: ForeignLayerHost) -> str:
    page = _put_seed(registry, "report/nested", foreign)
    with RegistryClient(registry) as client:
        inner = client.get_manifest("report/nested", TAG).body
        outer = json.dumps(
            {
                "schemaVersion": 2,
                "mediaType": MANIFEST_LIST,
                "manifests": [
                    {
                        "mediaType": MANIFEST_LIST,
                        "size": len(inner),
                        "digest": page.digest,
                        "platform": {"os": "windows", "architecture": "amd64"},
                    }
                ],
            }
        ).encode()
        client.put_manifest("report/nested", "outer", outer, MANIFEST_LIST)
    return f"{registry}/report/nested:outer"


def _no_such_tag(registry: str, _foreign: ForeignLayerHost) -> str:
    return f"{registry}/report/windows:no-such-tag"


REGISTRY_SCENARIOS: dict[str, tuple[Scenario, str]] = {
    "manifest pointing at a missing config": (_missing_config, "blob not found"),
    "layer blob missing": (_missing_layer, "blob not found"),
    "list entry pointing at a missing manifest": (_missing_image_manifest, "manifest not found"),
    "foreign layer URL answers 404": (_foreign_layer_gone, "HEAD answered 404"),
    "config that is not JSON": (_config_not_json, "is not JSON"),
    "history longer than the layers": (
        _history_longer,
        "12 entries with a layer but the manifest has 9",
    ),
    "list inside a list": (_nested_list, "not an image"),
    "tag not in the registry": (_no_such_tag, "manifest not found"),
}


@pytest.mark.parametrize("name", list(REGISTRY_SCENARIOS))
def test_broken_image_in_the_registry_is_a_one_line_error(
    name: str, registry: str, foreign: ForeignLayerHost, session: requests.Session
) -> None:
    scenario, fragment = REGISTRY_SCENARIOS[name]
    ref = scenario(registry, foreign)
    with pytest.raises(RegistryError) as caught:
        _read(registry, ref, session)
    message = caught.value.one_line()
    assert fragment in message
    assert "\n" not in message
    assert caught.value.exit_code == 12


def test_foreign_layer_host_down_is_a_one_line_error(
    registry: str, session: requests.Session
) -> None:
    with foreign_layer_host() as host:
        _put_seed(registry, "report/hostdown", host)
    # the host is gone now: its port refuses connections
    with pytest.raises(RegistryError) as caught:
        _read(registry, f"{registry}/report/hostdown:{TAG}", session)
    assert "foreign layer URL http://127.0.0.1:" in caught.value.one_line()
    assert "refused" in caught.value.one_line()


@pytest.mark.parametrize(
    ("status", "content_type", "body", "fragment"),
    [
        (
            200,
            "text/html",
            b"<!DOCTYPE html><html><body>Sign in</body></html>",
            "'text/html', not a manifest",
        ),
        (200, MANIFEST_V2, b'{"schemaVersion": 2, "config": ', "not JSON"),
        (500, "text/plain", b"upstream down", "failed after 2 attempts: 500"),
        (404, "text/html", b"<html>nope</html>", "manifest not found"),
    ],
    ids=["HTML page", "truncated JSON", "always 500", "404 HTML"],
)
def test_server_that_is_not_a_working_registry(
    status: int, content_type: str, body: bytes, fragment: str, session: requests.Session
) -> None:
    with (
        broken_registry(status, content_type, body) as address,
        pytest.raises(RegistryError) as caught,
    ):
        _read(
            address, f"{address}/python:{TAG}", session, retry=RetryPolicy(attempts=2, backoff=0.0)
        )
    assert fragment in caught.value.one_line()
    assert "\n" not in caught.value.one_line()


def test_blob_last_modified_from_storage_behind_a_redirect(
    registry: str, foreign: ForeignLayerHost, session: requests.Session
) -> None:
    expected = _put_seed(registry, "report/cdn", foreign)
    with storage_front(registry) as front:
        images = []
        for number, (image, published) in enumerate(zip(expected.images, SEED.images, strict=True)):
            layers = []
            for index, (layer, seed_layer) in enumerate(
                zip(image.layers, published.layers, strict=True)
            ):
                if layer.media_type == FOREIGN:
                    layers.append(layer)
                    continue
                assert seed_layer.last_modified is not None
                # the last layer of the second platform comes without the header
                served = None if (number, index) == (1, 10) else seed_layer.last_modified
                front.modified[layer.digest] = None if served is None else http_date(served)
                layers.append(replace(layer, last_modified=served))
            images.append(replace(image, layers=tuple(layers)))
        (page,) = _read(front.address, f"{front.address}/report/cdn:{TAG}", session)
    assert page == replace(expected, name=f"{front.address}/report/cdn", images=tuple(images))
    # each distinct blob asked once, at its storage URL
    assert sorted(front.storage_requests) == sorted(front.modified)
    text = write_page(page)
    # every layer has its Last Modified line but the one sent without the header
    assert text.count("\t\tLast Modified: ") == 33 - 1 - 1


# --- as a user runs it -------------------------------------------------------------------------


def test_cli_writes_the_page_of_a_registry_tag(
    registry: str, foreign: ForeignLayerHost, tmp_path: Path
) -> None:
    expected = _put_seed(registry, "report/cli", foreign)
    ref = f"{registry}/report/cli:{TAG}"
    result = run_toolkit("report", ref, "--out", "remote", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stderr == f"wrote remote/{TAG}.md\n"
    assert (tmp_path / "remote" / f"{TAG}.md").read_text("utf-8") == write_page(expected)

    printed = run_toolkit("report", ref, "--json", cwd=tmp_path)
    assert printed.returncode == 0, printed.stderr
    (page,) = json.loads(printed.stdout)["pages"]
    assert page["digest"] == expected.digest
    assert [i["image_id"] for i in page["images"]] == [i.image_id for i in expected.images]


@pytest.mark.parametrize(
    "name", ["manifest pointing at a missing config", "history longer than the layers"]
)
def test_cli_registry_errors_write_nothing(
    name: str, registry: str, foreign: ForeignLayerHost, tmp_path: Path
) -> None:
    good = _put_seed(registry, "report/good", foreign)
    scenario, fragment = REGISTRY_SCENARIOS[name]
    bad = scenario(registry, foreign)
    result = run_toolkit(
        "report", f"{registry}/report/good:{good.tag}", bad, "--out", "remote", cwd=tmp_path
    )
    assert result.returncode == 12
    (line,) = result.stderr.splitlines()
    assert line.startswith("error: ")
    assert fragment in line
    assert not (tmp_path / "remote").exists()


def test_cli_html_answer_is_exit_12(tmp_path: Path) -> None:
    page = b"<!DOCTYPE html><html><body>Proxy login</body></html>"
    with broken_registry(200, "text/html; charset=utf-8", page) as address:
        result = run_toolkit(
            "report", f"{address}/python:{TAG}", "--out", "remote", "--retries", "0", cwd=tmp_path
        )
    assert result.returncode == 12
    assert result.stderr == (
        f"error: {address}/python:{TAG}: the registry answered 'text/html', not a manifest "
        "list or image manifest (is it a Docker or OCI registry?)\n"
    )
    assert not (tmp_path / "remote").exists()


def test_cli_a_foreign_layer_host_trickling_its_headers_is_cut(
    registry: str, tmp_path: Path
) -> None:
    """The foreign layers' HEADs go through toolkit.transport like every other HTTP read: a
    host sending one header byte every 0.2 s (each read within its timeout) is cut once the
    headers are late, instead of holding the report forever."""
    import time

    from tests.faultservers import HEADERS_THEN_TRICKLE, trickling

    with trickling(HEADERS_THEN_TRICKLE, interval=0.2) as slow:
        with RegistryClient(registry) as client:
            put_windows_page(
                client,
                name=f"{registry}/report/trickle",
                repository="report/trickle",
                tag=TAG,
                page=SEED,
                foreign_url=lambda digest: f"{slow.base}/{digest}",
            )
        started = time.monotonic()
        result = run_toolkit(
            "report",
            f"{registry}/report/trickle:{TAG}",
            "--registry-timeout",
            "1",
            "--out",
            "pages",
            cwd=tmp_path,
            timeout=60,
        )
        took = time.monotonic() - started
    assert result.returncode == 12, result.stderr
    assert "foreign layer URL http://127.0.0.1:" in result.stderr
    assert "did not arrive" in result.stderr
    assert not (tmp_path / "pages").exists()
    assert took < 30
