"""HTTP access to the upstream sources of a bump: python.org, PyPI and GitHub, or their mirrors.

Every request has a timeout, and deadlines (``toolkit.transport``): its status line and headers
within the connect and read timeouts added up, the whole answer within ``request_time``.
Connection errors, timeouts, truncated bodies and 5xx answers are retried with exponential
backoff, bounded both by a number of attempts and by a total time per URL; 4xx answers are never
retried. Downloads are hashed while they stream, and a body shorter or longer than its
Content-Length is an error. Every failure is a SourceError naming the URL and why.

Plain http is for loopback mirrors only, and no redirect may lead from https to http (nor to
plain http elsewhere): bump pins the sha256 of what it downloads, and bytes that crossed a
network in the clear may have been changed on the way.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar
from urllib.parse import urlsplit

import requests
import urllib3

from toolkit.errors import ConfigError, SourceError, describe_exception, exception_chain
from toolkit.redact import redact_url
from toolkit.transport import DeadlineExceeded, InsecureRedirect, is_loopback_host, new_session

DEFAULT_PYTHON_FTP_URL = "https://www.python.org/ftp/python/"
DEFAULT_PYPI_URL = "https://pypi.org/pypi/"
DEFAULT_GITHUB_API_URL = "https://api.github.com"
DEFAULT_GITHUB_URL = "https://github.com"

GET_PIP_REPO = "pypa/get-pip"
USER_AGENT = "windows-python-images-toolkit (toolkit bump)"
CHUNK = 64 * 1024
MAX_DOCUMENT_BYTES = 64 * 1024 * 1024

T = TypeVar("T")
_DNS_LABEL = re.compile(r"[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?")


def _base(url: str) -> str:
    return url if url.endswith("/") else url + "/"


@dataclass(frozen=True, kw_only=True)
class Sources:
    """Where the bump reads from. Defaults are the public hosts; each may point at a mirror."""

    python_ftp_url: str = DEFAULT_PYTHON_FTP_URL
    pypi_url: str = DEFAULT_PYPI_URL
    github_api_url: str = DEFAULT_GITHUB_API_URL
    github_url: str = DEFAULT_GITHUB_URL

    def __post_init__(self) -> None:
        for name in ("python_ftp_url", "pypi_url", "github_api_url", "github_url"):
            check_source_url(
                getattr(self, name),
                where="TOOLKIT_" + name.upper(),
                flag="--" + name.replace("_", "-"),
                example=getattr(Sources, name),
            )

    def ftp_index(self) -> str:
        return _base(self.python_ftp_url)

    def ftp_folder(self, release: str) -> str:
        return f"{_base(self.python_ftp_url)}{release}/"

    def installer(self, release: str, version: str) -> str:
        return f"{self.ftp_folder(release)}python-{version}-amd64.exe"

    def pip_json(self) -> str:
        return f"{_base(self.pypi_url)}pip/json"

    def get_pip_commits(self) -> str:
        return f"{_base(self.github_api_url)}repos/{GET_PIP_REPO}/commits?per_page=1"

    def get_pip_raw(self, commit: str, path: str) -> str:
        return f"{_base(self.github_url)}{GET_PIP_REPO}/raw/{commit}/{path}"


def check_source_url(value: str, *, where: str, flag: str, example: str) -> None:
    """A usable http(s) URL, or a ConfigError (exit 2) naming ``where`` and the flag.

    Malformed URLs are usage errors here, before anything is sent, not upstream failures
    later: what urllib.parse or requests would refuse, a host that is no host name or address,
    port 0, spaces, control characters and backslashes. Plain http only to loopback.
    """
    shown = repr(redact_url(value))
    hint = f"set {where} (or {flag}) to e.g. {example}"
    if any(c.isspace() or ord(c) < 32 or ord(c) == 127 or c == "\\" for c in value):
        raise ConfigError(
            f"{where}: {shown} has a space, a control character or a backslash in it", hint=hint
        )
    try:
        parts = urlsplit(value)
        port = parts.port
        requests.PreparedRequest().prepare_url(value, None)
    except (ValueError, requests.RequestException) as exc:
        # an unclosed IPv6 bracket, a port out of range, what requests refuses
        why = redact_url(str(exc)) if isinstance(exc, requests.RequestException) else str(exc)
        raise ConfigError(f"{where}: {shown} is not a valid URL ({why})", hint=hint) from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"{where}: {shown} is not an http(s) URL", hint=hint)
    if port == 0 or not _host_name(parts.hostname):
        raise ConfigError(f"{where}: {shown} does not name a host and port", hint=hint)
    if parts.scheme == "http" and not is_loopback_host(parts.hostname):
        raise ConfigError(
            f"{where}: plain http:// to {parts.hostname} is refused: bump pins the sha256 of "
            "what it downloads, and bytes sent in the clear can be changed on the way",
            hint=f"use https:// (a mirror on loopback may use http://); {hint}",
        )


def _host_name(host: str) -> bool:
    """A DNS name (IDNA for non-ASCII) or an IP address."""
    try:
        ipaddress.ip_address(host)
        return True
    except ValueError:
        pass
    try:
        ascii_host = host.encode("idna").decode("ascii")
    except UnicodeError:
        return False
    labels = ascii_host.removesuffix(".").split(".")
    return len(ascii_host) <= 253 and all(_DNS_LABEL.fullmatch(label) for label in labels)


def pinned_get_pip_url(commit: str, path: str) -> str:
    """The URL written into versions.json: always the public host, whatever mirror served it."""
    return f"{DEFAULT_GITHUB_URL}/{GET_PIP_REPO}/raw/{commit}/{path}"


@dataclass(frozen=True, kw_only=True)
class NetworkPolicy:
    """Timeouts (seconds), retry bounds and the number of concurrent fetches.

    ``read_timeout`` bounds each wait for data; the status line and headers must be complete
    within ``connect_timeout + read_timeout``, and the whole answer within ``request_time``, so a
    server that trickles bytes (each within the read timeout) cannot hold a bump forever.
    """

    connect_timeout: float = 10.0
    read_timeout: float = 30.0
    attempts: int = 4
    backoff: float = 0.5
    max_backoff: float = 8.0
    retry_time: float = 60.0
    request_time: float = 600.0
    workers: int = 8

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ConfigError(
                "retries: at least one attempt is needed", hint="use --retries 0 or more"
            )
        if not all(t > 0 for t in (self.connect_timeout, self.read_timeout, self.request_time)):
            raise ConfigError("timeout: must be positive", hint="use e.g. --timeout 30")
        if not (self.backoff >= 0 and self.max_backoff >= 0 and self.retry_time >= 0):  # NaN too
            raise ConfigError(
                "backoff and retry time must be numbers, not negative", hint="use e.g. 0.5"
            )
        if self.workers < 1:
            raise ConfigError("jobs: at least one is needed", hint="use e.g. --jobs 8")

    @classmethod
    def from_options(
        cls,
        *,
        timeout: float,
        retries: int,
        backoff: float,
        retry_time: float,
        jobs: int,
        request_time: float = 600.0,
    ) -> NetworkPolicy:
        """The policy of the command-line options (``--retries`` counts retries, not tries)."""
        if retries < 0:
            raise ConfigError(
                f"--retries {retries}: must be 0 or more", hint="use e.g. --retries 3"
            )
        return cls(
            connect_timeout=timeout,
            read_timeout=timeout,
            attempts=retries + 1,
            backoff=backoff,
            retry_time=retry_time,
            request_time=request_time,
            workers=jobs,
        )

    def delay(self, attempt: int) -> float:
        """Backoff before attempt ``attempt + 1`` (attempt counts from 1)."""
        return float(min(self.backoff * 2 ** (attempt - 1), self.max_backoff))


@dataclass(frozen=True, kw_only=True)
class Download:
    """A body fetched and hashed while streaming."""

    url: str
    sha256: str
    size: int


class SourceNotFound(SourceError):
    """The source answered 404 (or 410): the document does not exist there. Never retried."""


class Fetcher(Protocol):
    """What a bump needs from the network; HttpClient is the real one."""

    def get_text(self, url: str) -> str: ...

    def get_json(self, url: str) -> Any: ...

    def hash(self, url: str) -> Download: ...


class _Retryable(Exception):
    """A failure worth another attempt; its text says why."""


class HttpClient:
    """A requests-based Fetcher, safe to share between threads (one session per thread)."""

    def __init__(
        self,
        policy: NetworkPolicy,
        *,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.policy = policy
        self._sleep = sleep
        self._clock = clock
        self._local = threading.local()
        self._sessions: list[requests.Session] = []
        self._lock = threading.Lock()

    def __enter__(self) -> HttpClient:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def close(self) -> None:
        with self._lock:
            for session in self._sessions:
                session.close()
            self._sessions.clear()

    def _session(self) -> requests.Session:
        session: requests.Session | None = getattr(self._local, "session", None)
        if session is None:
            session = new_session(total=self.policy.request_time)
            session.headers["User-Agent"] = USER_AGENT
            # Hash exactly the bytes the server stores: no transfer compression.
            session.headers["Accept-Encoding"] = "identity"
            self._local.session = session
            with self._lock:
                self._sessions.append(session)
        return session

    def get_text(self, url: str) -> str:
        shown = redact_url(url)
        body = self._fetch(url, lambda resp: _read(resp, shown, limit=MAX_DOCUMENT_BYTES))
        try:
            return body.decode("utf-8")
        except UnicodeDecodeError:
            return body.decode("latin-1")

    def get_json(self, url: str) -> Any:
        shown = redact_url(url)
        body = self._fetch(url, lambda resp: _read(resp, shown, limit=MAX_DOCUMENT_BYTES))
        try:
            return json.loads(body)
        except (ValueError, UnicodeDecodeError, RecursionError) as exc:
            raise SourceError(
                f"{shown}: the answer is not JSON ({exc})",
                hint="check the source URL or the mirror",
            ) from None

    def hash(self, url: str) -> Download:
        def consume(resp: requests.Response) -> Download:
            digest = hashlib.sha256()
            size = _stream(resp, redact_url(url), digest.update, limit=None)
            return Download(url=url, sha256=digest.hexdigest(), size=size)

        return self._fetch(url, consume)

    def _fetch(self, url: str, consume: Callable[[requests.Response], T]) -> T:
        policy = self.policy
        shown = redact_url(url)
        deadline = self._clock() + policy.retry_time
        attempt = 0
        while True:
            attempt += 1
            try:
                return self._attempt(url, consume)
            except _Retryable as exc:
                why = str(exc)
            delay = policy.delay(attempt)
            if attempt >= policy.attempts or self._clock() + delay > deadline:
                tries = f"{attempt} attempt{'s' if attempt > 1 else ''}"
                raise SourceError(
                    f"{shown}: {why} (gave up after {tries})",
                    hint="check the network, or point TOOLKIT_*_URL at a mirror",
                )
            self._sleep(delay)

    def _attempt(self, url: str, consume: Callable[[requests.Response], T]) -> T:
        """One GET of ``url``; messages name it redacted (and requests' texts lose its password)."""
        policy = self.policy
        shown = redact_url(url)
        try:
            resp = self._session().get(
                url, timeout=(policy.connect_timeout, policy.read_timeout), stream=True
            )
        except DeadlineExceeded as exc:  # a Timeout: caught first
            raise _Retryable(exc.reason) from None
        except requests.Timeout:
            raise _Retryable(f"timed out (timeout {policy.read_timeout:g}s)") from None
        except InsecureRedirect as exc:  # never followed, never retried
            start = "" if exc.source == url else f"{shown}: "
            raise SourceError(
                f"{start}{redact_url(exc.source)} redirects to {redact_url(exc.target)}: refused, "
                f"{exc.reason}",
                hint="use a URL (or mirror) that stays on https",
            ) from None
        except requests.exceptions.SSLError as exc:  # a certificate does not get better by retrying
            raise SourceError(
                f"{shown}: TLS failed: {_scrub(describe_exception(exc), url)}",
                hint="check the host's certificate and REQUESTS_CA_BUNDLE",
            ) from None
        except requests.ConnectionError as exc:
            raise _Retryable(f"connection failed: {_scrub(describe_exception(exc), url)}") from None
        except requests.RequestException as exc:  # invalid URL, too many redirects, ...
            raise SourceError(
                f"{shown}: {_scrub(describe_exception(exc), url)}", hint="check the source URL"
            ) from None
        except OSError as exc:  # requests' own: REQUESTS_CA_BUNDLE names no file, ...
            raise SourceError(
                f"{shown}: {_scrub(str(exc), url)}",
                hint="check REQUESTS_CA_BUNDLE and CURL_CA_BUNDLE",
            ) from None
        with resp:
            status = resp.status_code
            if status >= 500:
                raise _Retryable(f"HTTP {status} {resp.reason}")
            if status in (404, 410):
                raise SourceNotFound(
                    f"{shown}: HTTP {status} {resp.reason}",
                    hint="check the source URL or the mirror",
                )
            if status >= 400:
                raise SourceError(
                    f"{shown}: HTTP {status} {resp.reason}",
                    hint="not retried; check the source URL, the mirror or a rate limit",
                )
            if status >= 300:
                raise SourceError(
                    f"{shown}: HTTP {status} {resp.reason} without a usable redirect",
                    hint="check the source URL",
                )
            try:
                return consume(resp)
            except DeadlineExceeded as exc:  # the body did not arrive in time: cut, retried
                raise _Retryable(exc.reason) from None
            except requests.Timeout:
                raise _Retryable(
                    f"timed out reading the body (timeout {policy.read_timeout:g}s)"
                ) from None
            except requests.RequestException as exc:
                raise _Retryable(
                    f"connection broken while reading: {_scrub(describe_exception(exc), url)}"
                ) from None


def _scrub(text: str, url: str) -> str:
    """``text`` without the credentials of ``url`` (requests' messages may quote the URL)."""
    try:
        userinfo = urlsplit(url).netloc.rpartition("@")[0]
    except ValueError:
        return text
    for secret in {userinfo, *userinfo.split(":")}:
        if secret:
            text = text.replace(secret, "***")
    return text


def _expected_length(resp: requests.Response) -> int | None:
    encoding = resp.headers.get("Content-Encoding", "identity").lower()
    raw = resp.headers.get("Content-Length")
    if raw is None or encoding != "identity":
        return None
    try:
        value = int(raw)
    except ValueError:
        return None
    return value if value >= 0 else None


def _stream(
    resp: requests.Response, url: str, sink: Callable[[bytes], object], *, limit: int | None
) -> int:
    """Feed the body to ``sink`` chunk by chunk; check its length against Content-Length."""
    expected = _expected_length(resp)
    got = 0
    try:
        for chunk in resp.iter_content(chunk_size=CHUNK):
            got += len(chunk)
            if limit is not None and got > limit:
                raise SourceError(
                    f"{url}: the answer is larger than {limit} bytes", hint="check the source URL"
                )
            sink(chunk)
    except (requests.exceptions.ChunkedEncodingError, requests.ConnectionError) as exc:
        got = max(got, _bytes_read(exc))
        if expected is not None and got < expected:
            raise _Retryable(
                f"truncated body: received {got} of {expected} bytes (Content-Length)"
            ) from None
        raise _Retryable(f"connection broken while reading: {describe_exception(exc)}") from None
    if expected is not None and got != expected:
        raise _Retryable(f"truncated body: received {got} of {expected} bytes (Content-Length)")
    return got


def _bytes_read(exc: BaseException) -> int:
    """Body bytes urllib3 had read when the transfer broke (its buffered chunk is lost)."""
    for item in exception_chain(exc):
        if isinstance(item, urllib3.exceptions.IncompleteRead) and isinstance(item.partial, int):
            return item.partial
    return 0


def _read(resp: requests.Response, url: str, *, limit: int) -> bytes:
    parts: list[bytes] = []
    _stream(resp, url, parts.append, limit=limit)
    return b"".join(parts)
