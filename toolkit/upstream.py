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
from toolkit.versions import LineName

FOLDER_RE = re.compile(r"^(?P<release>[0-9]+\.[0-9]+\.[0-9]+)/$")
_VERSION = r"[0-9]+\.[0-9]+\.[0-9]+(?:(?:a|b|rc)[1-9][0-9]*)?"
INSTALLER_RE = re.compile(rf"^python-(?P<version>{_VERSION})-amd64\.exe$")
TARBALL_RE = re.compile(rf"^Python-(?P<version>{_VERSION})\.(?:tgz|tar\.xz)$")
COMMIT_RE = re.compile(r"^[0-9a-f]{40}$")


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


def _matched_versions(entries: Sequence[str], pattern: re.Pattern[str]) -> set[Version]:
    matches = (pattern.match(entry) for entry in entries)
    versions = (_version(m["version"]) for m in matches if m is not None)
    return {v for v in versions if v is not None}


def release_folders(entries: Sequence[str], major: int, minor: int) -> list[Version]:
    """Release folders (``3.8.0/``) of the line ``major.minor``, newest first."""
    found = set()
    for entry in entries:
        match = FOLDER_RE.match(entry)
        version = _version(match["release"]) if match is not None else None
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

    def notes(self) -> list[str]:
        notes: list[str] = []
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
    line: LineName, folders: Sequence[Version], list_folder: Callable[[Version], Sequence[str]]
) -> PythonChoice:
    """Walk the line's release folders newest first until a version with an installer is found.

    ``folders`` come from the top index (newest first); ``list_folder`` returns a folder's entries.
    """
    skipped: list[Version] = []
    for folder in folders:
        entries = list_folder(folder)
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
                line=line, version=version, skipped=tuple(skipped), final_out=final_out
            )
    return PythonChoice(line=line, version=None, skipped=tuple(skipped))


# --- PyPI -----------------------------------------------------------------------------------


def select_pip(document: Any, python_version: str, *, source: str) -> str:
    """The newest final pip with a non-yanked file whose requires_python admits ``python_version``.

    ``document`` is PyPI's JSON for pip (``<pypi>/pip/json``); ``source`` names it in errors.
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
