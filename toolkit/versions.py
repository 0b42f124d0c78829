"""versions.json: the single source of truth, loaded and validated once into frozen values.

Every validation error names the file, the JSON path (jq style: ``."3.8-rc".pip.version``) and
the fix, and raises ConfigError before anything is written.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from toolkit.errors import ConfigError
from toolkit.suggest import did_you_mean
from toolkit.windows import (
    WindowsRelease,
    find_release,
    flavor_releases,
    releases,
    suggest_release,
)

# Every pattern here is matched whole (``\Z``, not ``$``: ``$`` also matches before a final
# newline, and "3.8-rc\n" would pass as a line name). A number has no leading zero and at most
# six digits: CPython's and pip's never come close, a 20-digit "version" from a source is not
# one, and a 5000-digit one would exceed int()'s conversion limit.
NUMBER = r"(?:0|[1-9][0-9]{0,5})"
LINE_RE = re.compile(rf"(?P<major>{NUMBER})\.(?P<minor>{NUMBER})(?P<rc>-rc)?\Z")
# CPython's own version scheme (a subset of PEP 440): X.Y.Z, or X.Y.Z{a,b,rc}N before a final.
# Plain regular expressions rather than packaging.version keep the loader's import cheap.
CPYTHON_VERSION_RE = re.compile(
    rf"(?P<major>{NUMBER})\.(?P<minor>{NUMBER})\.(?P<micro>{NUMBER})"
    rf"(?P<pre>(?:a|b|rc)[1-9][0-9]{{0,5}})?\Z"
)
# pip's releases in canonical PEP 440 form: 19.2.3, 24.0, 25.1b1, 9.0.post1.
PIP_VERSION_RE = re.compile(
    rf"{NUMBER}(?:\.{NUMBER})*(?:(?:a|b|rc){NUMBER})?(?:\.post{NUMBER})?(?:\.dev{NUMBER})?\Z"
)
SHA256_RE = re.compile(r"[0-9a-f]{64}\Z")
GET_PIP_URL_RE = re.compile(
    r"https://github\.com/pypa/get-pip/raw/(?P<commit>[0-9a-f]{40})/"
    r"(?P<path>get-pip\.py|public/get-pip\.py|public/[0-9]+\.[0-9]+/get-pip\.py)\Z"
)
VARIANT_RE = re.compile(r"(?P<os>windows)/(?P<flavor>[a-z]+)-(?P<release>[A-Za-z0-9.]+)\Z")
FLAVORS = ("windowsservercore", "nanoserver")

EXIT_CODE_KEY = "check-installer-exit-code"
LINE_KEYS = ("version", "pip", "get-pip", EXIT_CODE_KEY, "variants", "checksums")
REQUIRED_LINE_KEYS = ("version", "variants")
PIP_KEYS = ("version",)
GET_PIP_KEYS = ("url", "sha256")
CHECKSUM_KEYS = ("windows",)
CHECKSUM_WINDOWS_KEYS = ("sha256",)


@dataclass(frozen=True, kw_only=True)
class LineName:
    """A Python line's name parsed: ``3.8-rc`` is 3, 8 and a pre-release line."""

    name: str
    major: int
    minor: int
    rc: bool

    @classmethod
    def parse(cls, name: str) -> LineName:
        """The parsed name; ConfigError when ``name`` is not ``X.Y`` or ``X.Y-rc``."""
        match = LINE_RE.match(name)
        if match is None:
            raise ConfigError(f"{_shown(name)} is not a Python line", hint=_line_hint(name))
        return cls(
            name=name, major=int(match["major"]), minor=int(match["minor"]), rc=bool(match["rc"])
        )

    @property
    def major_minor(self) -> str:
        """``3.8``: the line without its ``-rc``."""
        return f"{self.major}.{self.minor}"


@dataclass(frozen=True, kw_only=True)
class Variant:
    """``windows/windowsservercore-1809``: an OS folder, an image flavor and a Windows release.

    A ``nanoserver`` variant installs Python on the release's Server Core image and copies it
    into the release's Nano Server image (a multi-stage build).
    """

    os: str
    flavor: str
    release: WindowsRelease

    @property
    def name(self) -> str:
        return f"{self.os}/{self.flavor}-{self.release.key}"

    @property
    def suffix(self) -> str:
        return f"{self.flavor}-{self.release.key}"

    @property
    def base_image(self) -> str:
        """The image the built image ends on (validated to exist when loaded)."""
        image = self.release.image(self.flavor)
        assert image is not None, self.name
        return image

    @property
    def installer_image(self) -> str:
        """The image Python's installer runs on: Server Core (Nano Server cannot run an MSI)."""
        return self.release.base_image

    @property
    def base_images(self) -> tuple[str, ...]:
        """Every image the Dockerfile starts FROM, in order."""
        if self.base_image == self.installer_image:
            return (self.base_image,)
        return (self.installer_image, self.base_image)


@dataclass(frozen=True, kw_only=True)
class PythonLine:
    """One entry of versions.json (``3.8-rc``).

    Two recipes, chosen by the data: a line with ``pip`` and ``get-pip`` (the published images of
    2019) installs Python without pip and then the pinned pip with the pinned get-pip.py; a line
    without them (the published images of 2026) takes pip from the installer, checks the
    installer's sha256 and its exit code. ``check_installer_exit_code`` is always True for the
    second; for the first it is the ``check-installer-exit-code`` field (default False).
    """

    name: str
    version: str
    variants: tuple[Variant, ...]
    pip_version: str | None = None
    get_pip_url: str | None = None
    get_pip_sha256: str | None = None
    windows_sha256: str | None = None
    check_installer_exit_code: bool = False

    @property
    def pip_from_installer(self) -> bool:
        """True when pip comes with the installer (``Include_pip=1``): no get-pip, no pin."""
        return self.get_pip_url is None

    @property
    def recipe(self) -> str:
        """``installer`` (pip from the installer, 2026) or ``get-pip`` (pinned get-pip, 2019)."""
        return "installer" if self.pip_from_installer else "get-pip"

    @property
    def is_rc(self) -> bool:
        return self.name.endswith("-rc")

    @property
    def major_minor(self) -> tuple[int, int]:
        parsed = LineName.parse(self.name)  # validated at load: never raises here
        return parsed.major, parsed.minor

    @property
    def release(self) -> str:
        """PYTHON_RELEASE, the folder on python.org: 3.8.0rc1 -> 3.8.0."""
        return python_release(self.version)


@dataclass(frozen=True, kw_only=True)
class VersionsFile:
    path: Path
    lines: tuple[PythonLine, ...]

    def line(self, name: str) -> PythonLine:
        for line in self.lines:
            if line.name == name:
                return line
        raise KeyError(name)


def _shown(value: str, limit: int = 60) -> str:
    """``value`` quoted for a message, cut when absurdly long (a 5000-digit "line")."""
    return repr(value) if len(value) <= limit else repr(value[:limit]) + f"... ({len(value)} chars)"


def _line_hint(name: str) -> str:
    loose = re.fullmatch(r"([0-9]+)\.([0-9]+)(-rc)?", name, flags=re.ASCII)
    if loose is not None:
        numbers = loose.group(1, 2)
        if any(len(n) > 6 for n in numbers):
            return "a Python line's numbers have at most 6 digits"
        if any(len(n) > 1 and n.startswith("0") for n in numbers):
            fixed = f"{int(numbers[0])}.{int(numbers[1])}{loose[3] or ''}"
            return f"write it without leading zeros: {fixed}"
    return 'name it "X.Y" or "X.Y-rc", e.g. 3.8-rc'


def python_release(version: str) -> str:
    """The final release a version belongs to: 3.8.0rc1 -> 3.8.0, 3.7.4 -> 3.7.4."""
    match = CPYTHON_VERSION_RE.match(version)
    if match is None:
        raise ValueError(f"{version!r} is not a CPython version")
    return f"{match['major']}.{match['minor']}.{match['micro']}"


def jq_path(*parts: str | int) -> str:
    out = ""
    for part in parts:
        if isinstance(part, int):
            out += f"[{part}]"
        elif re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", part):
            out += f".{part}"
        elif len(part) > 60:  # a hostile key: name it, do not print it whole
            out += "." + json.dumps(part[:60])[:-1] + f'..." ({len(part)} chars)'
        else:
            out += "." + json.dumps(part)
    return out or "."


class _Checker:
    def __init__(self, path: Path) -> None:
        self.path = path

    def fail(self, where: tuple[str | int, ...], what: str, fix: str) -> ConfigError:
        return ConfigError(f"{self.path}: {jq_path(*where)}: {what}", hint=fix)

    def obj(self, value: object, where: tuple[str | int, ...]) -> Mapping[str, Any]:
        if not isinstance(value, dict):
            raise self.fail(where, f"expected an object, got {_type_name(value)}", "write {...}")
        return value

    def string(self, value: object, where: tuple[str | int, ...]) -> str:
        if not isinstance(value, str):
            raise self.fail(where, f"expected a string, got {_type_name(value)}", 'quote it: "..."')
        return value

    def keys(
        self,
        value: Mapping[str, Any],
        where: tuple[str | int, ...],
        allowed: tuple[str, ...],
        required: tuple[str, ...],
    ) -> None:
        for key in value:
            if key not in allowed:
                fix = did_you_mean(key, allowed, listing="allowed keys")
                raise self.fail((*where, key), f"unknown key {key!r}", fix)
        for key in required:
            if key not in value:
                raise self.fail(where, f"missing key {key!r}", f"add {json.dumps(key)}: ...")


def _type_name(value: object) -> str:
    return {
        dict: "an object",
        list: "an array",
        str: "a string",
        int: "a number",
        float: "a number",
        bool: "a boolean",
        type(None): "null",
    }.get(type(value), type(value).__name__)


def _no_duplicates(path: Path) -> Any:
    def hook(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        seen: dict[str, Any] = {}
        for key, value in pairs:
            if key in seen:
                raise ConfigError(f"{path}: duplicate key {key!r}", hint="keep one of them")
            seen[key] = value
        return seen

    return hook


def load_versions(path: Path) -> VersionsFile:
    """Read and validate ``path``; raise ConfigError naming the first problem."""
    from toolkit.files import UnreadableFile, read_text

    try:
        text = read_text(path)
    except UnreadableFile as exc:
        if exc.missing:
            raise ConfigError(
                f"{path}: no such file",
                hint="run from the repository root or pass --versions PATH",
            ) from None
        raise ConfigError(f"{path}: cannot read: {exc.why}", hint="check the file") from None
    return parse_versions(text, path)


def parse_versions(text: str, path: Path) -> VersionsFile:
    try:
        data = json.loads(text, object_pairs_hook=_no_duplicates(path))
    except json.JSONDecodeError as exc:
        raise ConfigError(
            f"{path}:{exc.lineno}:{exc.colno}: invalid JSON: {exc.msg}", hint="fix the syntax"
        ) from None
    except RecursionError:
        raise ConfigError(
            f"{path}: invalid JSON: nested too deeply", hint="versions.json nests 4 levels"
        ) from None
    except ValueError:  # a number of thousands of digits: int()'s conversion limit
        raise ConfigError(
            f"{path}: invalid JSON: a number of thousands of digits", hint="fix the number"
        ) from None
    check = _Checker(path)
    top = check.obj(data, ())
    if not top:
        raise check.fail((), "no Python lines", 'add one, e.g. "3.8-rc": {...}')
    lines = tuple(_parse_line(check, name, body) for name, body in top.items())
    return VersionsFile(path=path, lines=lines)


def _parse_line(check: _Checker, name: str, body: object) -> PythonLine:
    where: tuple[str | int, ...] = (name,)
    try:
        line_name = LineName.parse(name)
    except ConfigError as exc:
        raise check.fail(where, exc.message, exc.hint or "") from None
    entry = check.obj(body, where)
    check.keys(entry, where, LINE_KEYS, REQUIRED_LINE_KEYS)

    version = check.string(entry["version"], (name, "version"))
    parsed = CPYTHON_VERSION_RE.match(version)
    if parsed is None:
        raise check.fail(
            (name, "version"),
            f"{_shown(version)} is not a CPython version",
            "use X.Y.Z or X.Y.Z{a,b,rc}N without leading zeros, e.g. 3.8.0rc1",
        )
    major, minor = line_name.major, line_name.minor
    if (int(parsed["major"]), int(parsed["minor"])) != (major, minor):
        raise check.fail(
            (name, "version"),
            f"{version} does not belong to line {name}",
            f"use a {major}.{minor}.x version or rename the line",
        )
    if parsed["pre"] and not line_name.rc:
        raise check.fail(
            (name, "version"),
            f"{version} is a pre-release in the final line {name}",
            f"rename the line to {major}.{minor}-rc or use a final version",
        )

    pip_version, url, sha = _get_pip(check, name, entry)

    windows_sha: str | None = None
    if "checksums" in entry:
        checksums = check.obj(entry["checksums"], (name, "checksums"))
        check.keys(checksums, (name, "checksums"), CHECKSUM_KEYS, CHECKSUM_KEYS)
        win = check.obj(checksums["windows"], (name, "checksums", "windows"))
        where_w = (name, "checksums", "windows")
        check.keys(win, where_w, CHECKSUM_WINDOWS_KEYS, CHECKSUM_WINDOWS_KEYS)
        windows_sha = _sha256(check, win["sha256"], (*where_w, "sha256"))
    elif url is None:
        raise check.fail(
            where,
            "missing key 'checksums': a line without get-pip checks the installer's sha256",
            'add "checksums": {"windows": {"sha256": "<sha256 of python-'
            f'{version}-amd64.exe>"}}}}, or start the line with toolkit bump --add {name}',
        )

    exit_code = url is None
    if EXIT_CODE_KEY in entry:
        value = entry[EXIT_CODE_KEY]
        if not isinstance(value, bool):
            raise check.fail(
                (name, EXIT_CODE_KEY),
                f"expected true or false, got {_type_name(value)}",
                "write true or false",
            )
        if url is None and not value:
            raise check.fail(
                (name, EXIT_CODE_KEY),
                "a line without get-pip always checks the installer's exit code",
                f"drop {EXIT_CODE_KEY!r}, or pin pip with get-pip",
            )
        exit_code = value

    raw_variants = entry["variants"]
    if not isinstance(raw_variants, list) or not raw_variants:
        raise check.fail(
            (name, "variants"),
            "expected a non-empty array of variants",
            'e.g. ["windows/windowsservercore-1809"]',
        )
    variants: list[Variant] = []
    for i, raw in enumerate(raw_variants):
        variant = _variant(check, raw, (name, "variants", i))
        if any(v.name == variant.name for v in variants):
            raise check.fail((name, "variants", i), f"{variant.name} is listed twice", "drop one")
        variants.append(variant)

    return PythonLine(
        name=name,
        version=version,
        pip_version=pip_version,
        get_pip_url=url,
        get_pip_sha256=sha,
        variants=tuple(variants),
        windows_sha256=windows_sha,
        check_installer_exit_code=exit_code,
    )


def _get_pip(
    check: _Checker, name: str, entry: Mapping[str, Any]
) -> tuple[str | None, str | None, str | None]:
    """(pip version, get-pip URL, get-pip sha256): all three, or all None (pip from the
    installer). ``pip`` without ``get-pip`` or the reverse is an error."""
    if "pip" not in entry and "get-pip" not in entry:
        return None, None, None
    for have, missing in (("pip", "get-pip"), ("get-pip", "pip")):
        if missing not in entry:
            raise check.fail(
                (name,),
                f"{have!r} without {missing!r}: get-pip installs the pinned pip, so they go "
                "together",
                f"add {json.dumps(missing)}: ..., or drop {json.dumps(have)} to take pip from "
                "the installer",
            )
    pip = check.obj(entry["pip"], (name, "pip"))
    check.keys(pip, (name, "pip"), PIP_KEYS, PIP_KEYS)
    pip_version = check.string(pip["version"], (name, "pip", "version"))
    if not PIP_VERSION_RE.match(pip_version):
        raise check.fail(
            (name, "pip", "version"),
            f"{_shown(pip_version)} is not a pip version",
            "use a released version such as 19.2.3",
        )

    get_pip = check.obj(entry["get-pip"], (name, "get-pip"))
    check.keys(get_pip, (name, "get-pip"), GET_PIP_KEYS, GET_PIP_KEYS)
    url = check.string(get_pip["url"], (name, "get-pip", "url"))
    if not url.startswith("https://"):
        raise check.fail(
            (name, "get-pip", "url"),
            f"{_shown(url, 200)} is not an https URL",
            "use https://github.com/...",
        )
    if not GET_PIP_URL_RE.match(url):
        raise check.fail(
            (name, "get-pip", "url"),
            f"{_shown(url, 200)} is not pinned to a pypa/get-pip commit",
            "use https://github.com/pypa/get-pip/raw/<40-hex commit>/get-pip.py (or run toolkit bump)",
        )
    return pip_version, url, _sha256(check, get_pip["sha256"], (name, "get-pip", "sha256"))


def _sha256(check: _Checker, value: object, where: tuple[str | int, ...]) -> str:
    sha = check.string(value, where)
    if not SHA256_RE.match(sha):
        what = (
            f"sha256 has {len(sha)} characters, not 64"
            if len(sha) != 64
            else f"{_shown(sha, 64)} is not lowercase hex"
        )
        raise check.fail(where, what, "paste the 64 lowercase hex digits of sha256sum")
    return sha


def _variant(check: _Checker, raw: object, where: tuple[str | int, ...]) -> Variant:
    text = check.string(raw, where)
    match = VARIANT_RE.match(text)
    if match is None:
        raise check.fail(
            where,
            f"{_shown(text)} is not a variant",
            "use windows/windowsservercore-<release> or windows/nanoserver-<release>",
        )
    flavor = match["flavor"]
    if flavor not in FLAVORS:
        raise check.fail(
            where,
            f"unknown image flavor {flavor!r}",
            did_you_mean(flavor, FLAVORS, listing="flavors"),
        )
    key = match["release"]
    release = releases().get(key)
    if release is None:
        alias = find_release(key)
        hint = f"write windows/{flavor}-{alias.key}" if alias is not None else suggest_release(key)
        raise check.fail(where, f"unknown Windows release {key!r}", hint)
    if release.image(flavor) is None:
        having = ", ".join(r.key for r in flavor_releases(flavor))
        raise check.fail(
            where,
            f"no {flavor} base image for Windows release {key!r}",
            f"{flavor} is built for: {having}",
        )
    return Variant(os=match["os"], flavor=flavor, release=release)


def dump_versions(data: Mapping[str, Any]) -> str:
    """The canonical text of versions.json: two-space indent, key order kept, final newline."""
    return json.dumps(data, indent=2, ensure_ascii=False) + "\n"
