"""A small typed client for the Registry HTTP API v2 (the Docker/OCI distribution API).

Why not a library: ``oras`` (oras-py 0.2) and ``python-dxf`` (12.1) were both tried against the
test suite's registry. oras-py retries *every* failure, 4xx and authentication errors included,
sleeping 2 + 3**n seconds (a 401 from a basic-auth registry took 131 s and 6 requests, then
failed with "Invalid URL 'r'" because it took the Basic realm for a token URL); it sets no
timeouts and returns manifests parsed, so the digest of the bytes the registry served is lost.
python-dxf never retries, refuses any authentication over plain HTTP (also to loopback, where the
test registries live), rewrites every token realm to https, and reads no Docker config. Both would
need the retries, the credential lookup and the error translation written around them; the
protocol part that remains (a dozen requests and the two challenge flows) is smaller than that
wrapper, so this module speaks it directly on ``requests``.

Rules:

* HTTPS with certificate verification (the system store, or ``ca``, pinned per request so
  ``REQUESTS_CA_BUNDLE`` cannot replace it); plain HTTP only to loopback registries.
* Authentication on demand: a 401 with ``WWW-Authenticate: Bearer realm=...`` fetches a token
  from the realm (with the Docker config's credentials when there are some); ``Basic`` sends
  them directly. Tokens are cached per scope for the life of the client.
* 5xx answers, connection errors, resets and timeouts are retried with exponential backoff; 4xx
  answers never are. Every failure is a :class:`RegistryError` naming registry, repository and
  reference, and never a credential.
* Manifests and blobs are verified against their sha256 digests.
* Every request ends by its deadlines, headers included, and a redirect from https to http is
  refused, never followed (``toolkit.transport``).
"""

from __future__ import annotations

import base64
import contextlib
import json
import re
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlencode, urlsplit

import requests

from toolkit.credentials import Credential, CredentialSource, NoCredentials
from toolkit.errors import (
    RegistryError,
    RegistryNotFoundError,
    RegistryUnavailableError,
    describe_exception,
)
from toolkit.hosts import is_loopback
from toolkit.mediatypes import (
    ACCEPT_MANIFESTS,
    IMAGE_MANIFESTS,
    INDEX_TYPES,
    Fetched,
    sha256_digest,
)
from toolkit.references import (
    Reference,
    base_url,
    parse_reference,
    parse_repository,
    split_scheme,
)
from toolkit.transport import InsecureRedirect, new_session

__all__ = [
    "Reference",
    "RegistryClient",
    "RetryPolicy",
    "base_url",
    "parse_reference",
    "parse_repository",
    "split_scheme",
]

USER_AGENT = "windows-python-images-toolkit"
MAX_MANIFEST_BYTES = 4 * 1024 * 1024
MAX_BLOB_BYTES = 64 * 1024 * 1024

_CHALLENGE_PARAM = re.compile(r'\s*([A-Za-z_]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^,\s]*))\s*,?')


@dataclass(frozen=True, kw_only=True)
class RetryPolicy:
    """Retries of 5xx answers and transport errors: ``attempts`` in all, delays doubling."""

    attempts: int = 4
    backoff: float = 0.5
    max_backoff: float = 8.0
    timeout: float = 30.0
    # toolkit.transport's deadlines: an answer's headers within 2 x timeout, all of it within
    # request_time (a registry trickling bytes cannot hold a command).
    request_time: float = 600.0

    def delay(self, retry: int) -> float:
        return float(min(self.max_backoff, self.backoff * 2**retry))


def parse_challenge(header: str) -> tuple[str, dict[str, str]]:
    """``Bearer realm="x",service="y"`` -> ("bearer", {"realm": "x", "service": "y"})."""
    scheme, _, rest = header.strip().partition(" ")
    params: dict[str, str] = {}
    for match in _CHALLENGE_PARAM.finditer(rest):
        quoted, bare = match.group(2), match.group(3)
        params[match.group(1).lower()] = (
            re.sub(r"\\(.)", r"\1", quoted) if quoted is not None else bare or ""
        )
    return scheme.lower(), params


def _no_netrc(request: requests.PreparedRequest) -> requests.PreparedRequest:
    return request


class RegistryClient:
    """One registry; a context manager closing its HTTP session.

    ``actions`` is what tokens are asked for (``"pull"`` or ``"pull,push"``), so one token
    serves both the reads and the writes of a command. ``requests_made`` counts every HTTP
    request sent (token requests and retries included). Safe to share between threads: the
    session's connection pool is, and logging in happens once, under a lock.
    """

    def __init__(
        self,
        registry: str,
        *,
        scheme: str | None = None,
        credentials: CredentialSource | None = None,
        ca: Path | None = None,
        retry: RetryPolicy | None = None,
        session_factory: Callable[[], requests.Session] | None = None,
        actions: str = "pull",
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.registry = registry
        self.url = base_url(registry, scheme)
        self._credentials = credentials or NoCredentials()
        self._verify: bool | str = str(ca) if ca is not None else True
        self._retry = retry or RetryPolicy()
        # Deadlines per request, headers included, and no redirect from https to http (a blob
        # redirected to storage in the clear): toolkit.transport.
        self._session = (
            session_factory() if session_factory else new_session(total=self._retry.request_time)
        )
        # Proxy variables still apply; ~/.netrc does not (requests would otherwise add its entry
        # for the registry's host to every request, unasked; an auth set on the session turns
        # that lookup off). The CA, when given, goes with every request: REQUESTS_CA_BUNDLE
        # cannot override a per-request CA path.
        self._session.auth = _no_netrc
        self._session.headers["User-Agent"] = USER_AGENT
        self._actions = actions
        self._sleep = sleep
        self._tokens: dict[str, str] = {}
        self._basic: str | None = None
        self._credential_looked_up = False
        self._credential: Credential | None = None
        self._lock = threading.Lock()
        self._auth_lock = threading.Lock()
        self._requests_made = 0

    @property
    def requests_made(self) -> int:
        return self._requests_made

    def _count(self) -> None:
        with self._lock:
            self._requests_made += 1

    def __enter__(self) -> RegistryClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._session.close()

    # --- public operations -------------------------------------------------------------------

    def ping(self) -> None:
        """``GET /v2/``: reachable, speaks v2, and our credentials (if asked for) are accepted."""
        self._call("GET", "/v2/", repository=None, reference=None, what="API check")

    def get_manifest(self, repository: str, reference: str) -> Fetched:
        response = self._call(
            "GET",
            f"/v2/{repository}/manifests/{reference}",
            repository=repository,
            reference=reference,
            what="manifest",
            headers={"Accept": ACCEPT_MANIFESTS},
        )
        body = self._read(response, MAX_MANIFEST_BYTES, repository, reference)
        digest = self._checked_digest(response, body, repository, reference)
        media_type = response.headers.get("Content-Type", "").split(";")[0].strip()
        if media_type not in INDEX_TYPES + IMAGE_MANIFESTS:
            with contextlib.suppress(ValueError, AttributeError):
                media_type = str(json.loads(body).get("mediaType") or media_type)
        return Fetched(media_type=media_type, digest=digest, body=body)

    def manifest_digest(self, repository: str, reference: str) -> str | None:
        """``HEAD`` a manifest: its digest, or None when the registry does not have it."""
        try:
            response = self._call(
                "HEAD",
                f"/v2/{repository}/manifests/{reference}",
                repository=repository,
                reference=reference,
                what="manifest",
                headers={"Accept": ACCEPT_MANIFESTS},
            )
        except RegistryNotFoundError:
            return None
        served = response.headers.get("Docker-Content-Digest")
        if served:
            return served
        # Docker-Content-Digest is optional in the spec: then the digest of the bytes decides.
        return self.get_manifest(repository, reference).digest

    def put_manifest(self, repository: str, reference: str, body: bytes, media_type: str) -> str:
        """Store ``body`` under ``reference`` (a tag or its digest); returns its digest."""
        digest = sha256_digest(body)
        response = self._call(
            "PUT",
            f"/v2/{repository}/manifests/{reference}",
            repository=repository,
            reference=reference,
            what="manifest upload",
            headers={"Content-Type": media_type},
            data=body,
        )
        served = response.headers.get("Docker-Content-Digest")
        if served and served != digest:
            raise self._error(
                repository, reference, f"stored the manifest as {served}, not {digest}"
            )
        return digest

    def get_blob(self, repository: str, digest: str) -> bytes:
        response = self._call(
            "GET",
            f"/v2/{repository}/blobs/{digest}",
            repository=repository,
            reference=digest,
            what="blob",
            stream=True,
        )
        body = self._read(response, MAX_BLOB_BYTES, repository, digest)
        if sha256_digest(body) != digest:
            raise self._error(repository, digest, "the blob's bytes do not match its digest")
        return body

    def blob_headers(self, repository: str, digest: str) -> Mapping[str, str]:
        response = self._call(
            "HEAD",
            f"/v2/{repository}/blobs/{digest}",
            repository=repository,
            reference=digest,
            what="blob",
        )
        return dict(response.headers)

    def put_blob(self, repository: str, data: bytes) -> str:
        """Upload ``data`` (monolithic: POST, then PUT with the digest); returns its digest."""
        digest = sha256_digest(data)
        try:
            self.blob_headers(repository, digest)
            return digest
        except RegistryNotFoundError:
            pass
        started = self._call(
            "POST",
            f"/v2/{repository}/blobs/uploads/",
            repository=repository,
            reference=digest,
            what="blob upload",
        )
        location = started.headers.get("Location")
        if not location:
            raise self._error(repository, digest, "the upload answer has no Location")
        separator = "&" if "?" in location else "?"
        self._call(
            "PUT",
            f"{location}{separator}{urlencode({'digest': digest})}",
            repository=repository,
            reference=digest,
            what="blob upload",
            headers={"Content-Type": "application/octet-stream"},
            data=data,
        )
        return digest

    # --- the protocol ------------------------------------------------------------------------

    def _error(
        self, repository: str | None, reference: str | None, text: str, hint: str | None = None
    ) -> RegistryError:
        return RegistryError(f"{self._where(repository, reference)}: {text}", hint=hint)

    def _where(self, repository: str | None, reference: str | None) -> str:
        where = f"registry {self.registry}"
        if repository:
            where += f", repository {repository}"
        if reference:
            kind = "digest" if reference.startswith("sha256:") else "tag"
            where += f", {kind} {reference}"
        return where

    def _read(
        self, response: requests.Response, limit: int, repository: str, reference: str
    ) -> bytes:
        chunks: list[bytes] = []
        size = 0
        try:
            for chunk in response.iter_content(64 * 1024):
                size += len(chunk)
                if size > limit:
                    raise self._error(repository, reference, f"answer larger than {limit} bytes")
                chunks.append(chunk)
        except requests.RequestException as exc:
            raise self._error(
                repository, reference, f"connection lost while reading: {describe_exception(exc)}"
            ) from None
        finally:
            response.close()
        return b"".join(chunks)

    def _checked_digest(
        self, response: requests.Response, body: bytes, repository: str, reference: str
    ) -> str:
        digest = sha256_digest(body)
        served = response.headers.get("Docker-Content-Digest")
        if served and served.startswith("sha256:") and served != digest:
            raise self._error(
                repository, reference, f"the manifest's bytes hash to {digest}, not {served}"
            )
        if reference.startswith("sha256:") and reference != digest:
            raise self._error(repository, reference, f"the manifest's bytes hash to {digest}")
        return digest

    def _call(
        self,
        method: str,
        path: str,
        *,
        repository: str | None,
        reference: str | None,
        what: str,
        headers: Mapping[str, str] | None = None,
        data: bytes | None = None,
        stream: bool = False,
    ) -> requests.Response:
        # An upload's Location may be absolute or relative to the registry.
        url = path if path.startswith(("http://", "https://")) else self.url + path
        scope = f"repository:{repository}:{self._actions}" if repository else None
        sent = self._headers(scope)
        response = self._send(method, url, headers, data, stream, scope, repository, reference)
        if response.status_code == 401:
            response.close()
            with self._auth_lock:
                # Another thread may have logged in meanwhile: then just send again.
                if self._headers(scope) == sent:
                    self._authenticate(response, scope, repository, reference)
            response = self._send(method, url, headers, data, stream, scope, repository, reference)
        if response.status_code < 300:
            return response
        says = self._registry_says(response)  # read the error body before closing
        response.close()
        if response.status_code == 401:
            raise self._error(
                repository,
                reference,
                f"{what}: unauthorized{says}",
                hint=f"the credentials for {self.registry} were refused; run docker login {self.registry}",
            )
        if response.status_code == 404:
            raise RegistryNotFoundError(
                f"{self._where(repository, reference)}: {what} not found{says}"
            )
        if response.status_code == 403:
            raise self._error(
                repository,
                reference,
                f"{what}: denied{says}",
                hint=f"the account has no {self._actions} access to {repository}",
            )
        raise self._error(
            repository,
            reference,
            f"{what}: {method} answered {response.status_code} {response.reason}{says}",
        )

        return response

    def _headers(self, scope: str | None) -> dict[str, str]:
        token = self._tokens.get(scope or "") or self._tokens.get("")
        if token is not None:
            return {"Authorization": f"Bearer {token}"}
        if self._basic is not None:
            return {"Authorization": f"Basic {self._basic}"}
        return {}

    def _send(
        self,
        method: str,
        url: str,
        headers: Mapping[str, str] | None,
        data: bytes | None,
        stream: bool,
        scope: str | None,
        repository: str | None,
        reference: str | None,
    ) -> requests.Response:
        """One request with retries of transport errors and 5xx answers (never 4xx)."""

        def send() -> requests.Response:
            return self._session.request(
                method,
                url,
                headers={**(headers or {}), **self._headers(scope)},
                data=data,
                stream=stream,
                verify=self._verify,
                timeout=self._retry.timeout,
                allow_redirects=True,
            )

        response, last = self._retrying(
            send,
            repository,
            reference,
            ssl_hint="check the registry's certificate, or pass its CA with --registry-ca",
        )
        if response is not None:
            return response
        raise RegistryUnavailableError(
            f"{self._where(repository, reference)}: "
            f"{method} failed after {self._retry.attempts} attempts: {last}",
            hint="the registry is down or overloaded; run the command again later",
        )

    def _retrying(
        self,
        send: Callable[[], requests.Response],
        repository: str | None,
        reference: str | None,
        *,
        what: str = "",
        ssl_hint: str | None = None,
        registry_says: bool = True,
    ) -> tuple[requests.Response | None, str]:
        """``send()`` up to ``attempts`` times, the delays doubling, while it fails in transport
        or answers 5xx: the first other answer, or None and what the last try got. TLS failures
        and insecure redirects end at once (a RegistryError, ``what`` before its text)."""
        last = ""
        for attempt in range(self._retry.attempts):
            if attempt:
                self._sleep(self._retry.delay(attempt - 1))
            self._count()
            try:
                response = send()
            except requests.exceptions.SSLError as exc:
                raise self._error(
                    repository, reference, f"{what}{describe_exception(exc)}", hint=ssl_hint
                ) from None
            except InsecureRedirect as exc:  # never followed, never retried
                raise self._error(repository, reference, f"{what}{exc}") from None
            except requests.RequestException as exc:
                last = describe_exception(exc)
                continue
            if response.status_code < 500:
                return response, ""
            last = f"{response.status_code} {response.reason}"
            if registry_says:
                last += self._registry_says(response)
            response.close()
        return None, last

    def _registry_says(self, response: requests.Response) -> str:
        """`` (MANIFEST_UNKNOWN: manifest unknown)`` from the registry's error body, if any."""
        try:
            errors = json.loads(response.content[:65536] or b"{}").get("errors") or []
            first = errors[0]
            text = f"{first.get('code', '')}: {first.get('message', '')}".strip(": ")
        except (ValueError, AttributeError, IndexError, TypeError, requests.RequestException):
            return ""
        text = " ".join(str(text).split())[:200]
        return f" ({text})" if text else ""

    def credential(self) -> Credential | None:
        """This registry's credentials from the source (looked up once), for the engine's push."""
        return self._credential_for_registry()

    def _credential_for_registry(self) -> Credential | None:
        if not self._credential_looked_up:
            self._credential = self._credentials.lookup(self.registry)
            self._credential_looked_up = True
        return self._credential

    def _authenticate(
        self,
        response: requests.Response,
        scope: str | None,
        repository: str | None,
        reference: str | None,
    ) -> None:
        scheme, params = parse_challenge(response.headers.get("WWW-Authenticate", ""))
        credential = self._credential_for_registry()
        login = f"run docker login {self.registry}"
        if scheme == "basic":
            if credential is None or credential.identity_token:
                raise self._error(repository, reference, "the registry needs a login", hint=login)
            pair = f"{credential.username}:{credential.secret}".encode()
            self._basic = base64.b64encode(pair).decode("ascii")
            return
        if scheme != "bearer" or not params.get("realm"):
            raise self._error(
                repository,
                reference,
                f"unauthorized, and the registry asks for no known authentication ({scheme or 'none'})",
            )
        self._tokens[scope or ""] = self._fetch_token(
            params, scope or params.get("scope"), credential, repository, reference
        )

    def _fetch_token(
        self,
        params: Mapping[str, str],
        scope: str | None,
        credential: Credential | None,
        repository: str | None,
        reference: str | None,
    ) -> str:
        realm = params["realm"]
        parts = urlsplit(realm)
        if parts.scheme not in ("https", "http") or not parts.hostname:
            raise self._error(repository, reference, "the token realm is not an http(s) URL")
        if parts.scheme == "http" and not is_loopback(parts.hostname):
            raise self._error(
                repository,
                reference,
                f"the token service {parts.hostname} is plain HTTP; credentials are not sent there",
            )
        query = {k: v for k, v in (("service", params.get("service")), ("scope", scope)) if v}
        headers: dict[str, str] = {}
        form: dict[str, str] | None = None
        if credential is not None and credential.identity_token:
            form = {**query, "grant_type": "refresh_token", "refresh_token": credential.secret}
            form["client_id"] = USER_AGENT
        elif credential is not None:
            pair = f"{credential.username}:{credential.secret}".encode()
            headers["Authorization"] = "Basic " + base64.b64encode(pair).decode("ascii")
        url = (
            realm
            if form is not None
            else f"{realm}{'&' if '?' in realm else '?'}{urlencode(query)}"
        )
        answer, last = self._retrying(
            lambda: self._session.request(
                "POST" if form is not None else "GET",
                url,
                headers=headers,
                data=form,
                verify=self._verify,
                timeout=self._retry.timeout,
            ),
            repository,
            reference,
            what="token service: ",
            registry_says=False,
        )
        if answer is None:
            raise self._error(
                repository,
                reference,
                f"token service failed after {self._retry.attempts} attempts: {last}",
            )
        if answer.status_code in (401, 403):
            raise self._error(
                repository,
                reference,
                f"the token service refused the credentials ({answer.status_code})",
                hint=f"run docker login {self.registry}",
            )
        try:
            document = answer.json()
            token = document.get("token") or document.get("access_token")
        except (ValueError, AttributeError):
            token = None
        if answer.status_code != 200 or not isinstance(token, str) or not token:
            raise self._error(
                repository,
                reference,
                f"the token service answered {answer.status_code} without a token",
            )
        return token
