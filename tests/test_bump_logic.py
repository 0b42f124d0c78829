"""The bump's parsers, selection rules and HTTP client, in process, against a real local server."""

from __future__ import annotations

import copy
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from packaging.version import Version

from tests.bump_upstream import (
    FIXTURES,
    GET_PIP,
    Upstream,
    autoindex,
    commits_document,
    pypi_document,
    running,
    sha256,
)
from tests.conftest import REPO
from toolkit.bump import apply_updates
from toolkit.errors import ConfigError, OutputError, SourceError
from toolkit.redact import redact_url as redact
from toolkit.sources import (
    HttpClient,
    NetworkPolicy,
    SourceNotFound,
    Sources,
    pinned_get_pip_url,
)
from toolkit.upstream import (
    get_pip_paths,
    installer_versions,
    newest_commit,
    parse_directory_index,
    release_folders,
    select_pip,
    select_python,
)
from toolkit.versions import LineName

FAST = NetworkPolicy(
    connect_timeout=1.0, read_timeout=1.0, attempts=3, backoff=0.01, retry_time=5.0
)


@pytest.fixture
def upstream() -> Iterator[Upstream]:
    with running(Upstream()) as server:
        yield server


# --- directory index ------------------------------------------------------------------------


def test_parses_python_org_folder_listing() -> None:
    entries = parse_directory_index((FIXTURES / "python-ftp-3.8.0.html").read_text())
    assert "../" not in entries
    assert "python-3.8.0rc1-amd64.exe" in entries
    # The link text is cut at 50 characters; the href is whole.
    assert "python-3.8.0rc1-macosx10.9-installer-with-long-name.pkg" in entries
    assert installer_versions(entries) == {Version("3.8.0b4"), Version("3.8.0rc1")}


def test_release_folders_of_a_line_newest_first() -> None:
    entries = parse_directory_index((FIXTURES / "python-ftp-index.html").read_text())
    assert release_folders(entries, 3, 7) == [Version("3.7.5"), Version("3.7.4")]
    assert release_folders(entries, 3, 8) == [Version("3.8.0")]  # not "3.8/"
    assert release_folders(entries, 3, 1) == []  # 3.10.0 is not 3.1
    assert release_folders(entries, 3, 10) == [Version("3.10.0")]


def test_absolute_and_odd_links() -> None:
    html = (
        '<a href="/ftp/python/3.9.1/">x</a><a href="https://mirror.example/p/3.9.2/">y</a>'
        '<a href="?C=M;O=A">sort</a><a href="#top">top</a><a href="python-3.9.1-amd64.exe?x=1">i</a>'
        '<a href="3.9.3%2F">enc</a><A HREF="3.9.4/">upper</A><a>no href</a>'
    )
    assert parse_directory_index(html) == [
        "3.9.1/",
        "3.9.2/",
        "python-3.9.1-amd64.exe",
        "3.9.4/",
    ]


@settings(max_examples=300, deadline=None)
@given(st.text())
def test_directory_parser_never_crashes_on_text(text: str) -> None:
    for name in parse_directory_index(text):
        assert name
        assert "/" not in name.rstrip("/")


HTML_BITS = st.sampled_from(
    ["<a href=", '"', "'", ">", "</a>", "<", "<!", "<![", "<![CDATA[", "]]>", "<!--", "-->",
     "<?", "&#", "&#x", "&amp;", ";", "/", "../", "3.8.0/", "python-3.8.0-amd64.exe", " ",
     "<pre>", "</", "<a", "href", "=", "\x00", "\r\n", "<script>", "</script>", "<!DOCTYPE"]
)  # fmt: skip


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.one_of(HTML_BITS, st.text(max_size=5)), max_size=40))
def test_directory_parser_never_crashes_on_markup_soup(bits: list[str]) -> None:
    parse_directory_index("".join(bits))


DIGITS = "9" * 5000  # more digits than int() converts (sys.get_int_max_str_digits)


def test_hostile_version_numbers_in_an_index_are_passed_over() -> None:
    entries = parse_directory_index(
        f'<a href="3.8.{DIGITS}/">x</a> <a href="3.8.1/">3.8.1/</a> '
        f'<a href="{DIGITS}.8.0/">y</a> <a href="python-3.8.{DIGITS}-amd64.exe">z</a> '
        '<a href="python-3.8.1-amd64.exe">python-3.8.1-amd64.exe</a>'
    )
    assert release_folders(entries, 3, 8) == [Version("3.8.1")]
    assert installer_versions(entries) == {Version("3.8.1")}
    assert choose("3.8", {"3.8.1": entries}).version == Version("3.8.1")


SELECTION_NAMES = st.one_of(
    st.from_regex(
        r"[0-9]{1,6}\.[0-9]{1,6}\.[0-9]{1,6}((a|b|rc)[1-9][0-9]{0,5})?/?", fullmatch=True
    ),
    st.builds(lambda n: f"python-{n}-amd64.exe", st.from_regex(r"[0-9.]{1,20}", fullmatch=True)),
    st.builds(lambda n: f"3.8.{'7' * n}/", st.integers(1, 6000)),
    st.builds(lambda n: f"python-3.8.{'7' * n}-amd64.exe", st.integers(1, 6000)),
)


@settings(max_examples=200, deadline=None)
@given(st.lists(SELECTION_NAMES, max_size=20))
def test_selection_never_crashes_on_listed_names(names: list[str]) -> None:
    entries = [str(n) for n in names]
    folders = release_folders(entries, 3, 8)
    installer_versions(entries)
    select_python(LineName.parse("3.8"), folders, lambda _v: entries)


NAMES = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9._+-]{0,70}", fullmatch=True).filter(
    lambda n: n not in (".", "..")
)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(NAMES, st.booleans()), max_size=20))
def test_autoindex_round_trip(items: list[tuple[str, bool]]) -> None:
    """Whatever nginx lists (names cut at 50 in the text), the parser gets every href back."""
    entries = [
        (name + "/" if folder else name, "14-Oct-2019 22:05", None) for name, folder in items
    ]
    page = autoindex("/ftp/python/", entries)
    assert parse_directory_index(page) == [name for name, _d, _s in entries]


# --- Python selection -----------------------------------------------------------------------


def listing(*files: str) -> list[str]:
    return parse_directory_index(autoindex("/x/", [(f, "01-Jan-2020 00:00", 1) for f in files]))


def choose(name: str, folders: dict[str, list[str]]) -> Any:
    line = LineName.parse(name)
    ordered = sorted((Version(f) for f in folders), reverse=True)
    return select_python(line, ordered, lambda v: folders[str(v)])


def test_rc_line_takes_the_newest_pre_release_with_an_installer() -> None:
    folders = {
        "3.8.0": listing(
            "python-3.8.0b4-amd64.exe", "python-3.8.0rc1-amd64.exe", "Python-3.8.0rc2.tgz"
        )
    }
    choice = choose("3.8-rc", folders)
    assert choice.version == Version("3.8.0rc1")
    assert choice.skipped == (Version("3.8.0rc2"),)
    assert choice.notes() == ["3.8-rc: no Windows installer yet for 3.8.0rc2; not bumping to it"]


def test_plain_line_takes_finals_only() -> None:
    folders = {
        "3.8.2": listing("python-3.8.2rc1-amd64.exe", "Python-3.8.2rc1.tgz"),
        "3.8.1": listing("python-3.8.1-amd64.exe", "python-3.8.1rc1-amd64.exe"),
    }
    choice = choose("3.8", folders)
    assert choice.version == Version("3.8.1")
    assert choice.skipped == ()
    assert choice.notes() == []


def test_rc_line_reports_its_final() -> None:
    folders = {"3.8.0": listing("python-3.8.0rc1-amd64.exe", "python-3.8.0-amd64.exe")}
    choice = choose("3.8-rc", folders)
    assert choice.final_out == Version("3.8.0")
    assert "3.8-rc: 3.8.0 is final; rename the line to 3.8" in choice.notes()


def test_line_ended_for_windows() -> None:
    folders = {f"3.8.{n}": listing(f"Python-3.8.{n}.tgz") for n in range(11, 15)}
    folders["3.8.10"] = listing("Python-3.8.10.tgz", "python-3.8.10-amd64.exe")
    choice = choose("3.8", folders)
    assert choice.version == Version("3.8.10")
    assert choice.notes() == [
        "3.8: the line has ended for Windows: 3.8.11 to 3.8.14 (4 releases) have no Windows "
        "installer; newest with one is 3.8.10"
    ]


PRE = st.tuples(st.sampled_from(["a", "b", "rc"]), st.integers(1, 5)).map(lambda t: f"{t[0]}{t[1]}")
VERSIONS = st.lists(
    st.tuples(st.integers(0, 3), st.one_of(st.just(""), PRE), st.booleans()), min_size=1
)


@settings(max_examples=300, deadline=None)
@given(VERSIONS)
def test_selection_is_the_maximum_under_pep440(items: list[tuple[int, str, bool]]) -> None:
    """a1 < b1 < rc1 < final: the pick is the newest eligible version with an installer."""
    folders: dict[str, list[str]] = {}
    for micro, pre, has_installer in items:
        version = f"3.9.{micro}{pre}"
        name = f"python-{version}-amd64.exe" if has_installer else f"Python-{version}.tgz"
        folders.setdefault(f"3.9.{micro}", []).extend(listing(name))
    with_installer = {Version(f"3.9.{m}{p}") for m, p, i in items if i}
    finals = {v for v in with_installer if not v.is_prerelease}
    assert choose("3.9", folders).version == (max(finals) if finals else None)
    rc = choose("3.9-rc", folders)
    # Walking newest folder first, the rc line stops at the newest folder with any installer.
    if with_installer:
        newest_folder = max(Version(v.base_version) for v in with_installer)
        in_folder = {v for v in with_installer if Version(v.base_version) == newest_folder}
        assert rc.version == max(in_folder)
        assert (rc.final_out is None) == (
            rc.version.is_prerelease and newest_folder.release[2] == 0
        )
    else:
        assert rc.version is None


@given(
    st.lists(st.sampled_from(["3.8.0a1", "3.8.0a2", "3.8.0b1", "3.8.0rc1", "3.8.0rc2", "3.8.0"]))
)
def test_pep440_pre_release_order(names: list[str]) -> None:
    order = ["3.8.0a1", "3.8.0a2", "3.8.0b1", "3.8.0rc1", "3.8.0rc2", "3.8.0"]
    assert sorted(names, key=Version) == sorted(names, key=order.index)


# --- pip and get-pip ------------------------------------------------------------------------


def test_pip_skips_yanked_pre_releases_and_requires_python() -> None:
    doc = pypi_document()
    # 20.1 requires >=3.9; 19.3.1 is yanked; 20.0b1 is a pre-release.
    assert select_pip(doc, "3.8.0rc2", source="pypi") == "19.3"
    assert select_pip(doc, "3.9.0a1", source="pypi") == "20.1"
    # requires_python ">=2.7,!=3.0.*,...,!=3.4.*" leaves 3.4 only the unconstrained 9.0.1.
    assert select_pip(doc, "3.4.10", source="pypi") == "9.0.1"


def test_pip_release_with_one_unyanked_file_counts() -> None:
    doc = copy.deepcopy(pypi_document())
    doc["releases"]["19.3.1"][1]["yanked"] = False
    assert select_pip(doc, "3.8.0", source="pypi") == "19.3.1"


def test_pip_bad_answers() -> None:
    with pytest.raises(SourceError, match="pypi: no 'releases' object"):
        select_pip({"info": {}}, "3.8.0", source="pypi")
    with pytest.raises(SourceError, match=r"no pip release admits Python 2\.6\.9"):
        select_pip(
            {"releases": {"20.0": [{"requires_python": ">=3.5", "yanked": False}]}},
            "2.6.9",
            source="p",
        )
    doc = {"releases": {"20.0": [{"requires_python": "not a spec", "yanked": False}], "x y": []}}
    with pytest.raises(SourceError):
        select_pip(doc, "3.8.0", source="p")


def test_pip_hostile_numbers_are_passed_over() -> None:
    doc = {
        "releases": {
            DIGITS: [{"yanked": False}],
            "20.0": [{"requires_python": f">=3.{DIGITS}", "yanked": False}],
            "19.3": [{"requires_python": ">=3.5", "yanked": False}],
        }
    }
    assert select_pip(doc, "3.8.0", source="p") == "19.3"


def test_pip_local_and_epoch_versions_are_passed_over() -> None:
    """A mirror's "25.0+local" or "1!1.0" would outrank every release and fail validation."""
    doc = {
        "releases": {
            "25.0+local": [{"yanked": False}],
            "1!1.0": [{"yanked": False}],
            "19.3": [{"requires_python": ">=3.5", "yanked": False}],
        }
    }
    assert select_pip(doc, "3.8.0", source="p") == "19.3"


def test_newest_commit() -> None:
    assert (
        newest_commit(commits_document(), source="gh") == "b60e2320d9e8d02348525bd74e871e466afdf77c"
    )
    with pytest.raises(SourceError, match="gh: no commit sha"):
        newest_commit({"message": "API rate limit exceeded"}, source="gh")


def test_get_pip_paths_and_pinned_url() -> None:
    assert get_pip_paths(LineName.parse("3.8-rc")) == [
        "public/3.8/get-pip.py",
        "public/get-pip.py",
        "get-pip.py",
    ]
    mirror = Sources(github_url="http://127.0.0.1:9/gh/")
    assert (
        mirror.get_pip_raw("a" * 40, "get-pip.py")
        == f"http://127.0.0.1:9/gh/pypa/get-pip/raw/{'a' * 40}/get-pip.py"
    )
    assert pinned_get_pip_url("a" * 40, "get-pip.py").startswith(
        "https://github.com/pypa/get-pip/raw/"
    )


def test_sources_reject_non_http_urls() -> None:
    with pytest.raises(ConfigError, match="TOOLKIT_PYPI_URL: 'file:///etc' is not an http"):
        Sources(pypi_url="file:///etc")
    for bad in ("http://[bad/", "https://mirror.example:99999/"):
        with pytest.raises(ConfigError, match="is not a valid URL"):
            Sources(pypi_url=bad)


@pytest.mark.parametrize(
    "url",
    ["https://-bad-.example/", "https://a..b.example/", "https://exa mple.example/",
     "https://" + "a" * 64 + ".example/", "http://user@/x", "https://127.0.0.1:0/",
     "https://mirror.example/\x01", "https://mirror.example\\@127.0.0.1/",
     "http://mirror.example/", "http://10.1.2.3/", "ftp://mirror.example/"],
)  # fmt: skip
def test_source_urls_that_are_usage_errors(url: str) -> None:
    """Checked before anything is sent (no request, no DNS query): exit 2, never 6."""
    with pytest.raises(ConfigError, match=r"^TOOLKIT_PYPI_URL: "):
        Sources(pypi_url=url)


@pytest.mark.parametrize(
    "url",
    ["https://pypi.org/pypi/", "https://bücher.example/x/", "https://[2001:db8::1]:8443/p/",
     "http://127.0.0.1:8080/pypi/", "http://localhost/pypi/", "http://[::1]:80/",
     "https://mirror.example./pypi/", "https://user:token@mirror.example/pypi/"],
)  # fmt: skip
def test_source_urls_that_are_fine(url: str) -> None:
    assert Sources(pypi_url=url).pypi_url == url


def test_line_names() -> None:
    assert LineName.parse("3.10-rc").major_minor == "3.10"
    with pytest.raises(ConfigError):
        LineName.parse("3.10rc")


def test_added_line_goes_before_older_lines() -> None:
    from toolkit.bump import LineUpdate

    data: dict[str, Any] = {"3.9": {"v": 1}, "3.8-rc": {"v": 2}}
    update = LineUpdate(
        line="3.10-rc", added=True, old_version=None, new_version="3.10.0a1", old_pip=None,
        new_pip="20.1", old_get_pip_url=None, new_get_pip_url="u", old_get_pip_sha256=None,
        new_get_pip_sha256="s", old_windows_sha256=None, new_windows_sha256="w",
        variants=("windows/windowsservercore-1809",),
    )  # fmt: skip
    assert list(apply_updates(data, [update])) == ["3.10-rc", "3.9", "3.8-rc"]
    assert list(apply_updates({"3.11": {}}, [update])) == ["3.11", "3.10-rc"]
    assert data == {"3.9": {"v": 1}, "3.8-rc": {"v": 2}}  # the input is not modified


# --- HTTP client ----------------------------------------------------------------------------


def test_hash_streams_the_body(upstream: Upstream) -> None:
    body = GET_PIP * 300  # several chunks
    upstream.add("/f", body)
    with HttpClient(FAST) as client:
        got = client.hash(upstream.base + "/f")
    assert got.sha256 == sha256(body)
    assert got.size == len(body)


def test_5xx_is_retried_then_succeeds(upstream: Upstream) -> None:
    upstream.add("/j", b'{"ok": true}', fail_first=2, fail_status=503)
    with HttpClient(FAST) as client:
        assert client.get_json(upstream.base + "/j") == {"ok": True}
    assert upstream.count("/j") == 3


def test_5xx_retries_are_bounded(upstream: Upstream) -> None:
    upstream.add("/j", b"{}", fail_first=99)
    with HttpClient(FAST) as client, pytest.raises(SourceError) as info:
        client.get_json(upstream.base + "/j")
    assert upstream.count("/j") == 3
    assert str(info.value).startswith(
        f"{upstream.base}/j: HTTP 500 Internal Server Error (gave up after 3 attempts)"
    )


@pytest.mark.parametrize("status", [400, 403, 404, 410, 429])
def test_4xx_is_never_retried(upstream: Upstream, status: int) -> None:
    upstream.add("/x", b"no", status=status)
    with HttpClient(FAST) as client, pytest.raises(SourceError, match=f"/x: HTTP {status}"):
        client.get_text(upstream.base + "/x")
    assert upstream.count("/x") == 1


def test_404_is_not_found(upstream: Upstream) -> None:
    with HttpClient(FAST) as client, pytest.raises(SourceNotFound):
        client.hash(upstream.base + "/missing")
    assert upstream.count("/missing") == 1


def test_timeout_is_retried_and_reported(upstream: Upstream) -> None:
    upstream.add("/slow", b"late", delay=5.0)
    policy = NetworkPolicy(connect_timeout=0.2, read_timeout=0.2, attempts=2, backoff=0.01)
    start = time.monotonic()
    with (
        HttpClient(policy) as client,
        pytest.raises(SourceError, match=r"/slow: timed out .*after 2 attempts"),
    ):
        client.get_text(upstream.base + "/slow")
    assert time.monotonic() - start < 4.0  # not 2 x 5 s: each attempt gave up at 0.2 s
    assert upstream.routes["/slow"].served == 2  # counted on arrival: two attempts


def test_truncated_body_is_an_error(upstream: Upstream) -> None:
    upstream.add("/cut", b"x" * 10_000, truncate_to=4_000)
    with HttpClient(FAST) as client, pytest.raises(SourceError) as info:
        client.hash(upstream.base + "/cut")
    assert "truncated body: received 4000 of 10000 bytes (Content-Length)" in str(info.value)
    assert upstream.count("/cut") == 3  # a cut transfer is worth retrying


def test_a_trickled_body_is_cut_at_the_request_time(upstream: Upstream) -> None:
    """Each 1 KiB arrives well within the read timeout; the whole would take 6 s."""
    upstream.add("/drip", b"x" * 60 * 1024, drip=0.1)
    policy = NetworkPolicy(
        read_timeout=2.0, request_time=0.5, attempts=2, backoff=0.01, retry_time=30.0
    )
    start = time.monotonic()
    with HttpClient(policy) as client, pytest.raises(SourceError) as info:
        client.hash(upstream.base + "/drip")
    assert str(info.value).startswith(
        f"{upstream.base}/drip: the whole answer did not arrive within 0.5s (gave up after 2 attempts)"
    )
    assert time.monotonic() - start < 4.0
    assert upstream.count("/drip") == 2


def test_total_retry_time_bounds_attempts(upstream: Upstream) -> None:
    upstream.add("/j", b"{}", fail_first=1000)
    policy = NetworkPolicy(attempts=1000, backoff=0.05, max_backoff=0.1, retry_time=0.4)
    start = time.monotonic()
    with HttpClient(policy) as client, pytest.raises(SourceError, match="gave up after"):
        client.get_json(upstream.base + "/j")
    assert time.monotonic() - start < 1.5
    assert 2 <= upstream.count("/j") < 12


def test_connection_refused_is_retried_and_named() -> None:
    import socket

    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"http://127.0.0.1:{port}/ftp/python/"
    with HttpClient(FAST) as client, pytest.raises(SourceError) as info:
        client.get_text(url)
    # The root cause, not urllib3's nesting ("Max retries exceeded ... Caused by ...").
    assert str(info.value).startswith(f"{url}: connection failed: Connection refused")
    assert "after 3 attempts" in str(info.value)


def test_messages_hide_a_password_in_the_url(upstream: Upstream) -> None:
    import socket

    host = upstream.base.removeprefix("http://")
    upstream.add("/j", b"{}", fail_first=99)
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    urls = [f"http://u:pa55word@{host}/j", f"http://u:pa55word@127.0.0.1:{port}/x"]
    for url in urls:
        with HttpClient(FAST) as client, pytest.raises(SourceError) as info:
            client.get_json(url)
        assert "pa55word" not in str(info.value)
        assert str(info.value).startswith(redact(url) + ": ")
    assert redact("https://u:p@m.example/x?q=1") == "https://***@m.example/x?q=1"
    assert redact("https://token@m.example/") == "https://***@m.example/"
    assert redact("https://m.example:8443/") == "https://m.example:8443/"


@pytest.mark.parametrize(
    "bad",
    [{"backoff": float("nan")}, {"retry_time": float("nan")}, {"read_timeout": float("nan")},
     {"request_time": 0.0}, {"backoff": -1.0}, {"attempts": 0}, {"workers": 0}],
)  # fmt: skip
def test_policy_refuses_values_that_would_crash_or_never_end(bad: dict[str, float]) -> None:
    with pytest.raises(ConfigError):
        NetworkPolicy(**bad)  # type: ignore[arg-type]


def test_a_ca_bundle_variable_naming_no_file_is_a_source_error(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """requests raises a bare OSError before connecting; it must not escape as a traceback."""
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(tmp_path / "missing-ca.pem"))
    url = "https://127.0.0.1:9/ftp/python/"  # never connected to: the bundle check comes first
    with HttpClient(FAST) as client, pytest.raises(SourceError) as info:
        client.get_text(url)
    assert str(info.value).startswith(f"{url}: Could not find a suitable TLS CA certificate")
    assert "missing-ca.pem" in str(info.value)


def test_backoff_doubles_up_to_its_cap() -> None:
    policy = NetworkPolicy(backoff=0.5, max_backoff=3.0)
    assert [policy.delay(n) for n in range(1, 6)] == [0.5, 1.0, 2.0, 3.0, 3.0]


def test_not_json_is_named(upstream: Upstream) -> None:
    upstream.add("/pypi/pip/json", b"<html>maintenance</html>")
    with HttpClient(FAST) as client, pytest.raises(SourceError, match="the answer is not JSON"):
        client.get_json(upstream.base + "/pypi/pip/json")


def test_deeply_nested_json_is_named_not_a_crash(upstream: Upstream) -> None:
    upstream.add("/pypi/pip/json", b"[" * 200_000)
    with HttpClient(FAST) as client, pytest.raises(SourceError, match="the answer is not JSON"):
        client.get_json(upstream.base + "/pypi/pip/json")


def test_write_refuses_a_file_changed_while_bumping(tmp_path: Path) -> None:
    from toolkit.bump import LineUpdate, plan_bump, write_bump

    path = tmp_path / "versions.json"
    old_text = (REPO / "versions.json").read_text()
    path.write_text(old_text)
    line = json.loads(old_text)["3.8-rc"]
    update = LineUpdate(
        line="3.8-rc", added=False, old_version="3.8.0rc1", new_version="3.8.0rc2",
        old_pip="19.2.3", new_pip="19.3", old_get_pip_url=line["get-pip"]["url"],
        new_get_pip_url=line["get-pip"]["url"], old_get_pip_sha256=line["get-pip"]["sha256"],
        new_get_pip_sha256=line["get-pip"]["sha256"], old_windows_sha256=None,
        new_windows_sha256="a" * 64,
    )  # fmt: skip
    plan = plan_bump(path, old_text, [update])
    assert plan.changed
    assert plan.versions.line("3.8-rc").windows_sha256 == "a" * 64
    path.write_text(old_text.replace("19.2.3", "19.2.2"))  # someone edits it meanwhile
    with pytest.raises(OutputError, match="changed while bumping; nothing written"):
        write_bump(plan, tmp_path / "dockerfiles", [])
    assert "19.2.2" in path.read_text()


def test_plan_rejects_an_invalid_result(tmp_path: Path) -> None:
    from toolkit.bump import LineUpdate, plan_bump

    old_text = (REPO / "versions.json").read_text()
    line = json.loads(old_text)["3.8-rc"]
    update = LineUpdate(
        line="3.8-rc", added=False, old_version="3.8.0rc1", new_version="3.9.0",
        old_pip="19.2.3", new_pip="19.3", old_get_pip_url=line["get-pip"]["url"],
        new_get_pip_url=line["get-pip"]["url"], old_get_pip_sha256=line["get-pip"]["sha256"],
        new_get_pip_sha256=line["get-pip"]["sha256"], old_windows_sha256=None,
        new_windows_sha256=None,
    )  # fmt: skip
    with pytest.raises(ConfigError, match=r"3\.9\.0 does not belong to line 3\.8-rc"):
        plan_bump(tmp_path / "versions.json", old_text, [update])


def test_tls_failure_is_not_retried(upstream: Upstream) -> None:
    url = upstream.base.replace("http://", "https://") + "/ftp/python/"  # the server speaks HTTP
    with HttpClient(FAST) as client, pytest.raises(SourceError) as info:
        client.get_text(url)
    assert str(info.value).startswith(f"{url}: TLS failed: ")
    assert "gave up" not in str(info.value)
