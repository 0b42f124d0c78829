"""``toolkit ci-matrix``: one GitHub Actions job per Windows release, on a runner of that release."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import run_toolkit
from toolkit.ci import (
    MatrixEntry,
    format_matrix,
    load_runners,
    parse_runners,
    plan_matrix,
    selector_for,
)
from toolkit.errors import ConfigError, NothingSelectedError
from toolkit.matrix import Build, build_matrix, select
from toolkit.versions import Variant, parse_versions
from toolkit.windows import releases

SHA = "57e3643ff19f018f8a00dfaa6b7e4620e3c1a7a2171fd218425366ec006b3bfe"
URL = "https://github.com/pypa/get-pip/raw/309a56c5fd94bd1134053a541cb4657a4e47e09d/get-pip.py"
EVERY_RELEASE = tuple(releases())
SELF_HOSTED = tuple(key for key, r in releases().items() if not r.runner)
RUNNERS = "".join(f'{key} = ["self-hosted", "windows", "{key}"]\n' for key in SELF_HOSTED)


def versions_text(lines: dict[str, str], release_keys: tuple[str, ...]) -> str:
    return json.dumps(
        {
            name: {
                "version": version,
                "pip": {"version": "19.2.3"},
                "get-pip": {"url": URL, "sha256": SHA},
                "variants": [f"windows/windowsservercore-{r}" for r in release_keys],
            }
            for name, version in lines.items()
        }
    )


def builds_of(lines: dict[str, str], release_keys: tuple[str, ...]) -> list[Build]:
    text = versions_text(lines, release_keys)
    return build_matrix(parse_versions(text, Path("versions.json")))


def runners_of(text: str) -> dict[str, tuple[str, ...]]:
    return parse_runners(text, Path("runners.toml"))


def test_the_table_knows_hosted_runners_only_for_ltsc2025_and_ltsc2022() -> None:
    # The facts of issue 12 and REFERENCE.md: windows-2019 was retired in 2025.
    hosted = {key: r.runner for key, r in releases().items() if r.runner}
    assert hosted == {"ltsc2025": "windows-2025", "ltsc2022": "windows-2022"}
    assert set(SELF_HOSTED) == {"ltsc2016", "1803", "1809"}


def test_every_release_of_the_table_gets_its_own_entry_on_its_own_runner() -> None:
    builds = builds_of({"3.8-rc": "3.8.0rc1"}, EVERY_RELEASE)
    entries = plan_matrix(builds, runners_of(RUNNERS))
    assert [e.release for e in entries] == list(EVERY_RELEASE)
    for entry in entries:
        release = releases()[entry.release]
        if release.runner:
            assert entry.runs_on == release.runner
        else:
            assert entry.runs_on == ("self-hosted", "windows", entry.release)
        assert entry.builds == (f"3.8-rc-windowsservercore-{entry.release}",)
        assert entry.selector == entry.builds[0]
    by_release = {e.release: e.runs_on for e in entries}
    assert by_release["ltsc2025"] == "windows-2025"
    assert by_release["ltsc2022"] == "windows-2022"


def test_hosted_releases_need_no_runners_file() -> None:
    builds = builds_of({"3.14": "3.14.7"}, ("ltsc2025", "ltsc2022"))
    entries = plan_matrix(builds, {})
    assert [(e.release, e.runs_on) for e in entries] == [
        ("ltsc2025", "windows-2025"),
        ("ltsc2022", "windows-2022"),
    ]


@pytest.mark.parametrize("release", SELF_HOSTED)
def test_a_release_without_hosted_runner_and_without_labels_fails_naming_release_and_fix(
    release: str,
) -> None:
    builds = builds_of({"3.8-rc": "3.8.0rc1"}, ("ltsc2022", release))
    with pytest.raises(ConfigError) as caught:
        plan_matrix(builds, {})
    text = caught.value.one_line()
    assert f"Windows release {release} (builds 3.8-rc-windowsservercore-{release})" in text
    assert f'{release} = ["self-hosted", "windows", "{release}"]' in text
    assert "--runners FILE" in text
    assert "ltsc2022" not in text.replace(f"3.8-rc-windowsservercore-{release}", "")
    assert "\n" not in text
    assert caught.value.exit_code == 2


def test_every_missing_release_is_named_at_once_and_the_file_given_is_named() -> None:
    builds = builds_of({"3.8-rc": "3.8.0rc1"}, SELF_HOSTED)
    path = Path("ci/runners.toml")
    labels = runners_of(f'{SELF_HOSTED[0]} = ["self-hosted"]\n')
    with pytest.raises(ConfigError) as caught:
        plan_matrix(builds, labels, runners_path=path)
    text = caught.value.one_line()
    for release in SELF_HOSTED[1:]:
        assert f"Windows release {release}" in text or f", {release} (builds" in text
        assert f'{release} = ["self-hosted", "windows", "{release}"]' in text
    assert f"{SELF_HOSTED[0]} (builds" not in text
    assert f"add to {path}" in text


def test_self_hosted_mapping_takes_labels_aliases_single_labels_and_overrides_hosted() -> None:
    labels = runners_of(
        "ltsc2019 = ['self-hosted', 'windows', 'x64', 'rs5']\n"
        "1607 = 'win2016-builder'\n"
        "1803 = ['self-hosted', '1803']\n"
        "ltsc2022 = ['self-hosted', 'windows', 'big-disk']\n"
    )
    assert labels == {
        "1809": ("self-hosted", "windows", "x64", "rs5"),
        "ltsc2016": ("win2016-builder",),
        "1803": ("self-hosted", "1803"),
        "ltsc2022": ("self-hosted", "windows", "big-disk"),
    }
    entries = plan_matrix(builds_of({"3.8-rc": "3.8.0rc1"}, EVERY_RELEASE), labels)
    by_release = {e.release: e.runs_on for e in entries}
    assert by_release["1809"] == ("self-hosted", "windows", "x64", "rs5")
    assert by_release["ltsc2016"] == "win2016-builder"  # one label: a plain runs-on string
    assert by_release["ltsc2022"] == ("self-hosted", "windows", "big-disk")
    assert by_release["ltsc2025"] == "windows-2025"
    record = next(e for e in entries if e.release == "1809").record()
    assert record["runs-on"] == ["self-hosted", "windows", "x64", "rs5"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("ltsc2109 = ['self-hosted']\n", "'ltsc2109' is not a Windows release"),
        ("2019 = ['self-hosted']\n", "'2019' is not a Windows release"),
        ("windows-2019 = ['self-hosted']\n", "'windows-2019' is not a Windows release"),
    ],
)
def test_an_unknown_release_in_the_runners_file_is_an_error_with_a_suggestion(
    text: str, expected: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        runners_of(text)
    message = caught.value.one_line()
    assert f"runners.toml: {expected}" in message
    assert "known releases: ltsc2016, 1803, 1809, ltsc2022, ltsc2025" in message


def test_an_unknown_release_suggests_the_closest_name() -> None:
    with pytest.raises(ConfigError, match="did you mean 'ltsc2019'"):
        runners_of("ltsc2091 = ['self-hosted']\n")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1809 = []\n", "1809: expected a non-empty list of runner labels"),
        ("1809 = 5\n", "1809: expected a non-empty list of runner labels"),
        ("[1809]\nlabels = ['x']\n", "1809: expected a non-empty list of runner labels"),
        ("1809 = ['self-hosted', 3]\n", "1809: runner label 3 is not a non-empty string"),
        ("1809 = ['self-hosted', '']\n", "1809: runner label '' is not a non-empty string"),
        ("1809 = [' windows']\n", "1809: runner label ' windows' is not a non-empty string"),
        ("1809 = ['a']\nltsc2019 = ['b']\n", "release 1809 is given twice ('1809' and 'ltsc2019')"),
        ("1809 = ['self-hosted'\n", "invalid TOML"),
        ("1809 == 1\n", "invalid TOML"),
    ],
)
def test_bad_runners_files_are_one_line_config_errors(text: str, expected: str) -> None:
    with pytest.raises(ConfigError) as caught:
        runners_of(text)
    message = caught.value.one_line()
    assert message.startswith("runners.toml: ")
    assert expected in message
    assert "\n" not in message


def test_invalid_toml_names_line_and_column() -> None:
    with pytest.raises(ConfigError, match=r"line 2, column \d+"):
        runners_of("1809 = ['a']\n1803 = \n")


def test_a_missing_runners_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no such runners file"):
        load_runners(tmp_path / "absent.toml")


def test_an_empty_selection_is_exit_3() -> None:
    with pytest.raises(NothingSelectedError) as caught:
        plan_matrix([], {})
    assert caught.value.exit_code == 3


def test_builds_of_one_release_share_one_entry_whose_selector_picks_exactly_them() -> None:
    every = builds_of({"3.8-rc": "3.8.0rc1", "3.7": "3.7.4", "3.6": "3.6.9"}, ("1809", "ltsc2022"))
    entries = plan_matrix(every, runners_of(RUNNERS))
    assert [e.release for e in entries] == ["1809", "ltsc2022"]
    for entry in entries:
        assert len(entry.builds) == 3
        assert {b.release.key for b in every if b.id in entry.builds} == {entry.release}
        picked = [b.id for b in select(every, [entry.selector])]
        assert picked == list(entry.builds)
    assert entries[0].selector == (
        "{3.8-rc-windowsservercore-1809,3.7-windowsservercore-1809,3.6-windowsservercore-1809}"
    )


def test_a_partial_selection_keeps_only_the_selected_builds() -> None:
    every = builds_of({"3.8-rc": "3.8.0rc1", "3.7": "3.7.4"}, ("1809", "ltsc2022", "ltsc2025"))
    chosen = select(every, ["3.7-*", "3.8-rc-*-ltsc2025"])
    entries = plan_matrix(chosen, runners_of(RUNNERS))
    # Releases in the order they first appear in the matrix (versions.json order).
    assert [(e.release, e.builds) for e in entries] == [
        ("ltsc2025", ("3.8-rc-windowsservercore-ltsc2025", "3.7-windowsservercore-ltsc2025")),
        ("1809", ("3.7-windowsservercore-1809",)),
        ("ltsc2022", ("3.7-windowsservercore-ltsc2022",)),
    ]
    for entry in entries:
        assert [b.id for b in select(every, [entry.selector])] == list(entry.builds)


def _with_flavor(build: Build, flavor: str) -> Build:
    variant = Variant(os=build.variant.os, flavor=flavor, release=build.release)
    return Build(
        id=f"{build.line.name}-{variant.suffix}",
        line=build.line,
        variant=variant,
        tags=build.tags,
        shared_tags=build.shared_tags,
    )


def test_nanoserver_and_servercore_of_one_release_run_on_the_same_runner() -> None:
    # main's versions.json does not know the nanoserver flavor yet (issue 8 adds it): the builds are
    # made from real servercore builds with the flavor swapped, which is what a nanoserver variant
    # of issue 8 is to the matrix (same line, same release, another flavor).
    servercore = builds_of({"3.14": "3.14.7"}, ("ltsc2025", "ltsc2022", "1809"))
    every = [b for s in servercore for b in (s, _with_flavor(s, "nanoserver"))]
    entries = plan_matrix(every, runners_of(RUNNERS))
    assert [(e.release, e.builds) for e in entries] == [
        ("ltsc2025", ("3.14-windowsservercore-ltsc2025", "3.14-nanoserver-ltsc2025")),
        ("ltsc2022", ("3.14-windowsservercore-ltsc2022", "3.14-nanoserver-ltsc2022")),
        ("1809", ("3.14-windowsservercore-1809", "3.14-nanoserver-1809")),
    ]
    assert entries[0].runs_on == "windows-2025"
    assert entries[2].runs_on == ("self-hosted", "windows", "1809")
    for entry in entries:
        assert [b.id for b in select(every, [entry.selector])] == list(entry.builds)


def test_selector_for_one_id_is_the_id_and_for_several_a_brace_alternation() -> None:
    assert selector_for(["3.8-rc-windowsservercore-1809"]) == "3.8-rc-windowsservercore-1809"
    assert selector_for(["a-1", "b-1"]) == "{a-1,b-1}"


def test_github_output_is_one_line_of_compact_json_and_json_is_the_same_document() -> None:
    entries = plan_matrix(builds_of({"3.8-rc": "3.8.0rc1"}, EVERY_RELEASE), runners_of(RUNNERS))
    line = format_matrix(entries, "github-output")
    assert line.startswith("matrix=")
    assert line.endswith("\n")
    assert line.count("\n") == 1
    document = json.loads(line.removeprefix("matrix="))
    assert document == json.loads(format_matrix(entries, "json"))
    assert [e["release"] for e in document["include"]] == list(EVERY_RELEASE)
    assert set(document["include"][0]) == {"release", "runs-on", "builds", "selector"}


def test_entries_are_frozen_values() -> None:
    entry = MatrixEntry(release="1809", runs_on="x", builds=("a",), selector="a")
    with pytest.raises(AttributeError):
        entry.release = "ltsc2022"  # type: ignore[misc]


# The command, run as a user would.


def test_command_prints_the_matrix_for_a_versions_file_with_every_release(tmp_path: Path) -> None:
    (tmp_path / "versions.json").write_text(
        versions_text({"3.8-rc": "3.8.0rc1"}, EVERY_RELEASE), encoding="utf-8"
    )
    (tmp_path / "runners.toml").write_text(RUNNERS, encoding="utf-8")
    result = run_toolkit("ci-matrix", "--runners", "runners.toml", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    include = json.loads(result.stdout)["include"]
    assert [e["release"] for e in include] == list(EVERY_RELEASE)
    assert {e["release"]: e["runs-on"] for e in include}["ltsc2025"] == "windows-2025"


def test_command_github_output_and_a_selector(tmp_path: Path) -> None:
    (tmp_path / "versions.json").write_text(
        versions_text({"3.8-rc": "3.8.0rc1"}, EVERY_RELEASE), encoding="utf-8"
    )
    result = run_toolkit("ci-matrix", "*-ltsc202?", "--format", "github-output", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("matrix={")
    include = json.loads(result.stdout.removeprefix("matrix="))["include"]
    assert [(e["release"], e["runs-on"]) for e in include] == [
        ("ltsc2022", "windows-2022"),
        ("ltsc2025", "windows-2025"),
    ]


def test_command_without_runners_for_a_self_hosted_release_exits_2_and_prints_nothing(
    tmp_path: Path,
) -> None:
    (tmp_path / "versions.json").write_text(
        versions_text({"3.8-rc": "3.8.0rc1"}, ("ltsc2022", "1809")), encoding="utf-8"
    )
    result = run_toolkit("ci-matrix", "--format", "github-output", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stdout == ""
    assert "Windows release 1809" in result.stderr
    assert '1809 = ["self-hosted", "windows", "1809"]' in result.stderr
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_command_with_an_empty_selection_exits_3(tmp_path: Path) -> None:
    (tmp_path / "versions.json").write_text(
        versions_text({"3.8-rc": "3.8.0rc1"}, ("ltsc2022",)), encoding="utf-8"
    )
    result = run_toolkit("ci-matrix", "3.99-*", "--format", "github-output", cwd=tmp_path)
    assert result.returncode == 3
    assert result.stdout == ""
    assert "'3.99-*' matches no build" in result.stderr


def test_command_with_an_unknown_release_in_the_runners_file_exits_2(tmp_path: Path) -> None:
    (tmp_path / "versions.json").write_text(
        versions_text({"3.8-rc": "3.8.0rc1"}, ("ltsc2022",)), encoding="utf-8"
    )
    (tmp_path / "runners.toml").write_text("ltsc2029 = ['self-hosted']\n", encoding="utf-8")
    result = run_toolkit("ci-matrix", "--runners", "runners.toml", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stdout == ""
    assert "runners.toml: 'ltsc2029' is not a Windows release" in result.stderr


def test_command_takes_the_runners_file_from_the_environment(tmp_path: Path) -> None:
    (tmp_path / "versions.json").write_text(
        versions_text({"3.8-rc": "3.8.0rc1"}, ("1803",)), encoding="utf-8"
    )
    (tmp_path / "r.toml").write_text("1803 = ['self-hosted', 'old']\n", encoding="utf-8")
    result = run_toolkit("ci-matrix", cwd=tmp_path, env={"TOOLKIT_RUNNERS": "r.toml"})
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["include"][0]["runs-on"] == ["self-hosted", "old"]


def test_command_loads_no_heavy_library(workspace: Path) -> None:
    from tests.test_cli import HEAVY, loaded_modules

    (workspace / "runners.toml").write_text(RUNNERS, encoding="utf-8")
    loaded = loaded_modules(["ci-matrix", "--runners", "runners.toml"], workspace)
    assert "toolkit" in loaded
    assert loaded & HEAVY == set()
