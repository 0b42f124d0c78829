"""What upstream publishes, read: python.org's directory index and the Sigstore bundles beside
its installers, PyPI's JSON, GitHub's commits.

Pure functions over the documents (no fetching here): which Python versions a line may take
(a version counts only once its Windows installer is listed; a ``-rc`` line takes pre-releases),
which pip admits a Python, which get-pip paths to try at a commit. ``toolkit.bump`` drives them.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from html.parser import HTMLParser
from typing import Any
from urllib.parse import unquote, urlsplit

from packaging.specifiers import SpecifierSet
from packaging.version import Version

from toolkit.errors import SourceError
from toolkit.versions import CPYTHON_VERSION_RE, PIP_VERSION_RE, LineName

# Entries are matched loosely (any digits), then the version must be one versions.json accepts
# (CPYTHON_VERSION_RE: no leading zeros, at most 6 digits a number): an entry that is not is
# passed over with a note rather than pinned (3.8.99999999999999999999 is nobody's release).
_LOOSE = r"(?P<version>[0-9]+\.[0-9]+\.[0-9]+(?:(?:a|b|rc)[0-9]+)?)"
FOLDER_RE = re.compile(r"(?P<release>[0-9]+\.[0-9]+\.[0-9]+)/\Z")
INSTALLER_RE = re.compile(rf"python-{_LOOSE}-amd64\.exe\Z")
TARBALL_RE = re.compile(rf"Python-{_LOOSE}\.(?:tgz|tar\.xz)\Z")
COMMIT_RE = re.compile(r"[0-9a-f]{40}\Z")


# --- python.org directory index -------------------------------------------------------------


class _AnchorCollector(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.hrefs: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag != "a":
            return
        for name, value in attrs:
            if name == "href" and value:
                self.hrefs.append(value)


def parse_directory_index(html: str) -> list[str]:
    """The entry names of an autoindex page: ``3.8.0/`` for folders, ``python-3.8.0-amd64.exe``.

    Absolute links keep their last path segment; parent links, query and fragment links are
    dropped. Malformed HTML yields the entries found before the damage, never an exception.
    """
    parser = _AnchorCollector()
    try:
        parser.feed(html)
        parser.close()
    except (AssertionError, ValueError, IndexError):  # html.parser on hostile markup
        pass
    names: list[str] = []
    for href in parser.hrefs:
        try:
            path = urlsplit(href.strip()).path
        except ValueError:
            continue
        is_folder = path.endswith("/")
        segments = [s for s in path.split("/") if s]
        if not segments:
            continue
        name = unquote(segments[-1])
        if name in (".", "..") or "/" in name:
            continue
        names.append(name + "/" if is_folder else name)
    return names


def _version(text: str) -> Version | None:
    """``text`` as a Version, or None: also for numbers too long to convert (a hostile source)."""
    try:
        return Version(text)
    except ValueError:  # InvalidVersion, or int() refusing thousands of digits
        return None


def plausible(version: str) -> bool:
    """True when ``version`` is one versions.json would accept (see CPYTHON_VERSION_RE)."""
    return CPYTHON_VERSION_RE.match(version) is not None


def _matched_versions(entries: Sequence[str], pattern: re.Pattern[str]) -> set[Version]:
    matches = (pattern.match(entry) for entry in entries)
    versions = (_version(m["version"]) for m in matches if m and plausible(m["version"]))
    return {v for v in versions if v is not None}


def _of_line(version: str, major: int, minor: int) -> bool:
    return version.split(".")[:2] == [str(major), str(minor)]


def implausible(entries: Sequence[str], major: int, minor: int) -> list[str]:
    """Versions of the line ``major.minor`` that entries (folders, installers, tarballs) name
    but that are not plausible (``3.8.99999999999999999999``): passed over, named in a note."""
    found: dict[str, None] = {}
    for entry in entries:
        for pattern in (FOLDER_RE, INSTALLER_RE, TARBALL_RE):
            match = pattern.match(entry)
            if match is None:
                continue
            version = match[1]
            if _of_line(version, major, minor) and not plausible(version):
                found[version] = None
    return list(found)


def release_folders(entries: Sequence[str], major: int, minor: int) -> list[Version]:
    """Release folders (``3.8.0/``) of the line ``major.minor``, newest first."""
    found = set()
    for entry in entries:
        match = FOLDER_RE.match(entry)
        if match is None or not plausible(match["release"]):
            continue
        version = _version(match["release"])
        if version is not None and version.release[:2] == (major, minor):
            found.add(version)
    return sorted(found, reverse=True)


def installer_versions(entries: Sequence[str]) -> set[Version]:
    """Versions whose Windows installer (``python-<v>-amd64.exe``) is listed."""
    return _matched_versions(entries, INSTALLER_RE)


def listed_versions(entries: Sequence[str]) -> set[Version]:
    """Versions a folder shows at all: by installer or by source tarball."""
    return _matched_versions(entries, TARBALL_RE) | installer_versions(entries)


@dataclass(frozen=True, kw_only=True)
class PythonChoice:
    """The newest version of a line with a Windows installer, and what was passed over."""

    line: LineName
    version: Version | None
    skipped: tuple[Version, ...] = ()
    final_out: Version | None = None
    ignored: tuple[str, ...] = ()

    def notes(self) -> list[str]:
        notes: list[str] = []
        if self.ignored:
            shown = ", ".join(version[:40] for version in dict.fromkeys(self.ignored[:3]))
            more = f" and {len(self.ignored) - 3} more" if len(self.ignored) > 3 else ""
            notes.append(
                f"{self.line.name}: passed over {shown}{more}: not a plausible version "
                "(a number of more than 6 digits, or with a leading zero)"
            )
        finals = [v for v in self.skipped if not v.is_prerelease]
        if len(finals) >= 2:
            newest, oldest = finals[0], finals[-1]
            staying = f"newest with one is {self.version}" if self.version else "none has one"
            notes.append(
                f"{self.line.name}: the line has ended for Windows: {oldest} to {newest} "
                f"({len(finals)} releases) have no Windows installer; {staying}"
            )
        elif self.skipped:
            listed = ", ".join(str(v) for v in self.skipped)
            notes.append(
                f"{self.line.name}: no Windows installer yet for {listed}; not bumping to it"
            )
        if self.final_out is not None:
            notes.append(
                f"{self.line.name}: {self.final_out} is final; rename the line to {self.line.major_minor}"
            )
        return notes


def select_python(
    line: LineName,
    folders: Sequence[Version],
    list_folder: Callable[[Version], Sequence[str]],
    ignored: Sequence[str] = (),
) -> PythonChoice:
    """Walk the line's release folders newest first until a version with an installer is found.

    ``folders`` come from the top index (newest first); ``list_folder`` returns a folder's entries;
    ``ignored`` are the top index's implausible entries of the line, for the notes.
    """
    skipped: list[Version] = []
    passed_over = list(ignored)
    for folder in folders:
        entries = list_folder(folder)
        passed_over += implausible(entries, line.major, line.minor)
        installers = installer_versions(entries)
        in_folder = sorted(
            (v for v in listed_versions(entries) if Version(v.base_version) == folder),
            reverse=True,
        )
        for version in in_folder:
            if version.is_prerelease and not line.rc:
                continue
            if version not in installers:
                skipped.append(version)
                continue
            final_out = None
            if line.rc and (not version.is_prerelease or version.release[2] > 0):
                final_out = (
                    version if not version.is_prerelease else Version(f"{line.major_minor}.0")
                )
            return PythonChoice(
                line=line,
                version=version,
                skipped=tuple(skipped),
                final_out=final_out,
                ignored=tuple(passed_over),
            )
    return PythonChoice(line=line, version=None, skipped=tuple(skipped), ignored=tuple(passed_over))


# --- PyPI -----------------------------------------------------------------------------------


def select_pip(
    document: Any, python_version: str, *, source: str, notes: list[str] | None = None
) -> str:
    """The newest final pip with a non-yanked file whose requires_python admits ``python_version``.

    ``document`` is PyPI's JSON for pip (``<pypi>/pip/json``); ``source`` names it in errors.
    A release whose version versions.json would refuse (``99999999999999999999.0``) is passed
    over, with a note added to ``notes``.
    """
    releases = document.get("releases") if isinstance(document, dict) else None
    if not isinstance(releases, dict):
        raise SourceError(
            f"{source}: no 'releases' object in the answer", hint="is this PyPI's JSON API?"
        )
    # pip compares requires_python with sys.version_info[:3], which has no pre-release tag:
    # 3.9.0a1 counts as 3.9.0 (and so satisfies ">=3.9").
    python = Version(Version(python_version).base_version)
    admitted: list[Version] = []
    for raw_version, files in releases.items():
        version = _version(raw_version) if isinstance(raw_version, str) else None
        if version is None:
            continue
        if version.is_prerelease or version.is_devrelease or not isinstance(files, list):
            continue
        if version.local is not None or version.epoch != 0:  # not a PyPI release of pip
            continue
        if not PIP_VERSION_RE.match(str(version)):
            if notes is not None:
                notes.append(f"pip {str(version)[:40]}: not a plausible version; passed over")
            continue
        if any(_file_admits(f, python) for f in files):
            admitted.append(version)
    if not admitted:
        raise SourceError(
            f"{source}: no pip release admits Python {python_version}",
            hint="check requires_python on PyPI or the mirror",
        )
    return str(max(admitted))


def _file_admits(file: object, python: Version) -> bool:
    if not isinstance(file, dict) or file.get("yanked") is True:
        return False
    spec = file.get("requires_python")
    if spec is None or spec == "":
        return True
    if not isinstance(spec, str):
        return False
    try:
        return SpecifierSet(spec).contains(python, prereleases=True)
    except ValueError:  # InvalidSpecifier, or a number too long to convert
        return False  # cannot tell: do not pick it


# --- GitHub ---------------------------------------------------------------------------------


def newest_commit(document: Any, *, source: str) -> str:
    """The sha of the first commit in GitHub's commits JSON (newest first)."""
    if isinstance(document, list) and document and isinstance(document[0], dict):
        sha = document[0].get("sha")
        if isinstance(sha, str) and COMMIT_RE.match(sha):
            return sha
    raise SourceError(
        f"{source}: no commit sha in the answer", hint="is this GitHub's commits API?"
    )


def get_pip_paths(line: LineName) -> list[str]:
    """Where get-pip.py for ``line`` may live in pypa/get-pip, in the order they are tried."""
    return [f"public/{line.major_minor}/get-pip.py", "public/get-pip.py", "get-pip.py"]


# --- Sigstore bundles ------------------------------------------------------------------------


def sigstore_digest(bundle: Any, *, source: str) -> str:
    """The sha256 (hex) a Sigstore bundle signs: ``messageSignature.messageDigest``.

    python.org's bundles carry ``{"algorithm": "SHA2_256", "digest": "<base64 of 32 bytes>"}``.
    """
    signature = bundle.get("messageSignature") if isinstance(bundle, dict) else None
    digest = signature.get("messageDigest") if isinstance(signature, dict) else None
    if not isinstance(digest, dict):
        raise SourceError(
            f"{source}: no messageSignature.messageDigest in the Sigstore bundle",
            hint="is this python.org's <installer>.sigstore?",
        )
    algorithm, value = digest.get("algorithm"), digest.get("digest")
    if algorithm != "SHA2_256":
        raise SourceError(
            f"{source}: the bundle's digest is {algorithm!r}, not SHA2_256",
            hint="compare the installer's sha256 by hand",
        )
    try:
        raw = base64.b64decode(value if isinstance(value, str) else "", validate=True)
    except (binascii.Error, ValueError):
        raw = b""
    if len(raw) != 32:
        raise SourceError(
            f"{source}: the bundle's SHA2_256 digest is not 32 bytes of base64",
            hint="is this python.org's <installer>.sigstore?",
        )
    return raw.hex()


def confirm_sha256(sha256: str, bundle: Any, *, installer: str, source: str) -> None:
    """SourceError unless the Sigstore ``bundle`` (read from ``source``) signs ``sha256``, the
    downloaded ``installer``'s: two independent channels must agree. Only the digest is read, as
    the official images do; the signature is not verified (that needs Sigstore's trust root)."""
    signed = sigstore_digest(bundle, source=source)
    if signed != sha256:
        raise SourceError(
            f"{installer}: the downloaded file's sha256 is {sha256}, but the Sigstore bundle "
            f"{source} says {signed}; nothing written",
            hint="the download or the mirror is corrupt or tampered with: do not use it; "
            "try again, or from www.python.org",
        )
