"""Property tests: the loader answers any input with a model or a ConfigError, never a crash."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from toolkit.errors import ConfigError
from toolkit.versions import CPYTHON_VERSION_RE, parse_versions, python_release

json_values: st.SearchStrategy[Any] = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4)
    ),
    max_leaves=20,
)

GOOD: dict[str, Any] = {
    "version": "3.8.0rc1",
    "pip": {"version": "19.2.3"},
    "get-pip": {
        "url": "https://github.com/pypa/get-pip/raw/309a56c5fd94bd1134053a541cb4657a4e47e09d/get-pip.py",
        "sha256": "57e3643ff19f018f8a00dfaa6b7e4620e3c1a7a2171fd218425366ec006b3bfe",
    },
    "variants": ["windows/windowsservercore-1809"],
}


def outcome(text: str) -> str:
    message = ""
    try:
        parse_versions(text, Path("versions.json"))
    except ConfigError as exc:
        message = exc.one_line()
    if not message:
        return "ok"
    assert "\n" not in message
    assert message.startswith("versions.json")
    return "error"


@settings(max_examples=300, deadline=None)
@given(json_values)
def test_arbitrary_json_is_a_config_error_or_valid(value: Any) -> None:
    outcome(json.dumps(value))


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(sorted(GOOD)), json_values)
def test_replacing_any_field_with_anything_never_crashes(key: str, value: Any) -> None:
    entry = dict(GOOD)
    entry[key] = value
    outcome(json.dumps({"3.8-rc": entry}))


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=200))
def test_arbitrary_text_never_crashes(text: str) -> None:
    outcome(text)


@given(
    st.integers(0, 9),
    st.integers(0, 30),
    st.integers(0, 30),
    st.sampled_from(["", "a1", "b2", "rc1", "rc12"]),
)
def test_python_release_drops_only_the_pre_release(
    major: int, minor: int, micro: int, pre: str
) -> None:
    version = f"{major}.{minor}.{micro}{pre}"
    assert CPYTHON_VERSION_RE.match(version)
    assert python_release(version) == f"{major}.{minor}.{micro}"


def test_the_valid_entry_is_valid() -> None:
    assert outcome(json.dumps({"3.8-rc": GOOD})) == "ok"
