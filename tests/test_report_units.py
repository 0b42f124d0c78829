"""From image config to page, without a registry: dates, created_by, and configs that are wrong."""

from __future__ import annotations

import copy
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from tests.conftest import FIXTURES
from tests.windows_images import config_for, manifest_for, recorded
from toolkit.errors import RegistryError
from toolkit.imagepage import Page, PageStyle, parse_pages, write_page
from toolkit.pagesource import history_instruction, image_from, last_modified, parse_rfc3339

SEED_TEXT = (FIXTURES / "published-python-3.8-rc-windowsservercore.md").read_text("utf-8")
TEXT_2026 = (FIXTURES / "published-python-3.14-windowsservercore.md").read_text("utf-8")
PS = (
    "powershell",
    "-Command",
    "$ErrorActionPreference = 'Stop'; $ProgressPreference = 'SilentlyContinue';",
)
PS_WORDS = " ".join(PS)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2019-10-09T17:24:35.1234567Z", datetime(2019, 10, 9, 17, 24, 35, 123456, tzinfo=UTC)),
        ("2019-10-09T17:24:35.123456789Z", datetime(2019, 10, 9, 17, 24, 35, 123456, tzinfo=UTC)),
        ("2019-10-09T17:24:35Z", datetime(2019, 10, 9, 17, 24, 35, tzinfo=UTC)),
        ("2019-10-09t17:24:35z", datetime(2019, 10, 9, 17, 24, 35, tzinfo=UTC)),
        (
            "2019-10-09T19:24:35.5+02:00",
            datetime(2019, 10, 9, 19, 24, 35, 500000, tzinfo=timezone(timedelta(hours=2))),
        ),
    ],
)
def test_rfc3339_created(text: str, expected: datetime) -> None:
    moment = parse_rfc3339(text)
    assert moment == expected
    assert moment.utcoffset() == expected.utcoffset()


@pytest.mark.parametrize(
    "text",
    ["2019-10-09", "2019-10-09T17:24:35", "20191009T172435Z", "yesterday", "2019-13-09T17:24:35Z"],
)
def test_rfc3339_refuses(text: str) -> None:
    with pytest.raises(ValueError, match=r"RFC 3339|month"):
        parse_rfc3339(text)


@pytest.mark.parametrize(
    ("created_by", "shell", "shown"),
    [
        # the classic builder on Windows (the seed)
        (f"{PS_WORDS} $url = 'x'; python --version", PS, "RUN $url = 'x'; python --version"),
        (f"{PS_WORDS} #(nop)  ENV PYTHON_VERSION=3.8.0rc1", PS, "ENV PYTHON_VERSION=3.8.0rc1"),
        (f"{PS_WORDS} #(nop)  SHELL [{PS_WORDS}]", PS, f"SHELL [{PS_WORDS}]"),
        (f'{PS_WORDS} #(nop)  CMD ["python"]', PS, 'CMD ["python"]'),
        ("Apply image 1809-RTM-amd64", PS, "RUN Apply image 1809-RTM-amd64"),
        ("Install update 10.0.26100.33438", PS, "RUN Install update 10.0.26100.33438"),
        # a Windows RUN before SHELL: cmd is not stripped (the pages strip /bin/sh and SHELL)
        ("cmd /S /C echo hi", PS, "RUN cmd /S /C echo hi"),
        # the classic builder on Linux
        ("/bin/sh -c #(nop) ADD file:abc in / ", None, "ADD file:abc in / "),
        ('/bin/sh -c #(nop)  CMD ["bash"]', None, 'CMD ["bash"]'),
        ("/bin/sh -c apt-get update", None, "RUN apt-get update"),
        # BuildKit
        ("RUN /bin/sh -c echo hi # buildkit", None, "RUN echo hi # buildkit"),
        ("ENV A=b", None, "ENV A=b"),
        ("COPY /rootfs/ / # buildkit", None, "COPY /rootfs/ / # buildkit"),
        (
            "RUN |2 a=1 b=two words /bin/sh -c echo $a # buildkit",
            None,
            "# ARGS: a=1 b=two words\nRUN echo $a # buildkit",
        ),
        (
            "|1 v=8 powershell -Command x; y",
            ("powershell", "-Command"),
            "# ARGS: v=8\nRUN x; y",
        ),
        ("|1 v=8 echo hi", None, "# unable to parse image command string further:\n|1 v=8 echo hi"),
        # nothing recorded (docker import)
        ("", None, "RUN "),
        ("#(nop)  LABEL a=b", None, "LABEL a=b"),
    ],
)
def test_history_instruction(created_by: str, shell: tuple[str, ...] | None, shown: str) -> None:
    assert history_instruction(created_by, shell) == shown


def _pages() -> list[tuple[Page, PageStyle, str]]:
    found = []
    for text in (SEED_TEXT, TEXT_2026):
        parsed = parse_pages(text, "fixture")
        found.append((parsed.pages[0], parsed.style, text))
    return found


@pytest.mark.parametrize("which", [0, 1], ids=["2019", "2026"])
def test_configs_as_windows_records_them_give_the_published_page(which: int) -> None:
    page, style, text = _pages()[which]
    rebuilt = []
    for image in page.images:
        config = config_for(image)
        # every entry really went through the builder's recording (shell, #(nop), 7 digits)
        assert all(
            len(h["created"]) == len("2019-10-09T17:24:35.1234567Z") for h in config["history"]
        )
        assert sum("#(nop)  " in h["created_by"] for h in config["history"]) >= 5
        assert image.image_id is not None
        assert image.digest is not None
        assert image.media_type is not None
        manifest = manifest_for(image, image.image_id, 1234)
        rebuilt.append(
            image_from(
                manifest=manifest,
                config=config,
                platform=image.platform,
                digest=image.digest,
                media_type=image.media_type,
                headers={layer.digest: layer.last_modified for layer in image.layers},
                where="test",
            )
        )
    again = Page(
        name=page.name,
        tag=page.tag,
        digest=page.digest,
        media_type=page.media_type,
        images=tuple(rebuilt),
    )
    assert again == page
    assert write_page(again, style) == text


def test_single_image_takes_its_platform_from_the_config() -> None:
    page, _style, _text = _pages()[0]
    image = page.images[2]
    assert image.image_id is not None
    config = config_for(image)
    built = image_from(
        manifest=manifest_for(image, image.image_id, 10),
        config=config,
        platform=None,
        digest="sha256:" + "1" * 64,
        media_type="application/vnd.docker.distribution.manifest.v2+json",
        headers={},
        where="test",
    )
    assert built.platform.describe() == "windows version 10.0.17763.805; amd64"
    assert all(layer.last_modified is None for layer in built.layers)


def test_last_modified_header() -> None:
    moment = last_modified({"last-modified": "Wed, 09 Oct 2019 18:05:00 GMT"}, "x")
    assert moment == datetime(2019, 10, 9, 18, 5, tzinfo=UTC)
    assert last_modified({"Content-Length": "3"}, "x") is None
    with pytest.raises(RegistryError, match="not an HTTP date"):
        last_modified({"Last-Modified": "yesterday"}, "blob x")


# --- configs and manifests that are wrong (no registry needed) ---------------------------------

Edit = Callable[[dict[str, Any], dict[str, Any]], None]


def _history_longer(manifest: dict[str, Any], config: dict[str, Any]) -> None:
    config["history"].append(dict(config["history"][-1]))


def _set(where: str, key: str, value: Any) -> Edit:
    def edit(manifest: dict[str, Any], config: dict[str, Any]) -> None:
        target: Any = manifest if where == "manifest" else config
        if where == "inner":
            target = config["config"]
        if where == "layer":
            target = manifest["layers"][3]
        if where == "history":
            target = config["history"][2]
        if value is _DELETE:
            del target[key]
        else:
            target[key] = value

    return edit


_DELETE = object()

BAD_CONFIGS: dict[str, tuple[Edit, str]] = {
    "history longer than the layers": (
        _history_longer,
        "12 entries with a layer but the manifest has 11",
    ),
    "history entry without created": (_set("history", "created", _DELETE), "no RFC 3339 'created'"),
    "created not RFC 3339": (_set("history", "created", "09/10/2019"), "no RFC 3339 'created'"),
    "created_by not a string": (
        _set("history", "created_by", ["RUN"]),
        "created_by is not a string",
    ),
    "Cmd not a list": (_set("inner", "Cmd", "python"), "config.Cmd is not a list of strings"),
    "Shell with a number": (_set("inner", "Shell", ["powershell", 1]), "config.Shell"),
    "manifest without layers": (_set("manifest", "layers", _DELETE), "no 'layers' list"),
    "layer without size": (_set("layer", "size", _DELETE), "layer 3 has no size"),
    "layer size negative": (_set("layer", "size", -1), "layer 3 has no size"),
    "layer size a boolean": (_set("layer", "size", True), "layer 3 has no size"),
    "layer digest not sha256": (
        _set("layer", "digest", "md5:abc"),
        "layer 3 digest is not a sha256",
    ),
    "manifest without config": (_set("manifest", "config", _DELETE), "manifest's 'config'"),
    "config lists other layers": (
        lambda m, c: c["rootfs"]["diff_ids"].pop(),
        "the config lists 10 layers but the manifest 11",
    ),
    "history not a list": (_set("config", "history", {"a": 1}), "'history' is not a list"),
    "os.version not a string": (_set("config", "os.version", 10), "'os.version' is not a string"),
}


@pytest.mark.parametrize("name", list(BAD_CONFIGS))
def test_bad_config_is_one_line_registry_error(name: str) -> None:
    edit, fragment = BAD_CONFIGS[name]
    page, _style, _text = _pages()[0]
    image = page.images[0]
    assert image.image_id is not None
    manifest = manifest_for(image, image.image_id, 10)
    config = copy.deepcopy(config_for(image))
    edit(manifest, config)
    with pytest.raises(RegistryError) as caught:
        image_from(
            manifest=manifest,
            config=config,
            platform=None,
            digest="sha256:" + "2" * 64,
            media_type="application/vnd.docker.distribution.manifest.v2+json",
            headers={},
            where="127.0.0.1:5000/python:bad",
        )
    message = caught.value.one_line()
    assert fragment in message
    assert message.startswith("127.0.0.1:5000/python:bad: ")
    assert "\n" not in message
    assert caught.value.exit_code == 12


def test_recorded_matches_the_builders_spacing() -> None:
    # "#(nop) " joined with a space to the instruction: two spaces, as in Windows histories.
    assert recorded("ENV A=1", PS) == f"{PS_WORDS} #(nop)  ENV A=1"
    assert recorded("RUN x", PS) == f"{PS_WORDS} x"
