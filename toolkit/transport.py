"""The rules every requests-based HTTP client of the toolkit follows: a deadline per request,
headers included, and no redirect that drops TLS.

requests bounds each socket read, never the whole answer: a server that sends its status line
and then one header byte per second holds a request for as long as it likes (issue 13, item 7).
:class:`DeadlineAdapter` gives each request two bounds:

* its status line and headers must be complete within the request's own timeout, connect and
  read added up (``timeout=(10, 30)``: 40 s), so the timeout a caller passes means "the answer
  has begun" and not "some byte came";
* the whole answer, body included, must be complete within the adapter's ``total``.

At either bound the connection's socket is shut down, which wakes the read blocked on it, and
the request raises :class:`DeadlineExceeded` (a ``requests.Timeout``): from ``send`` for the
headers, from ``iter_content``/``.content``/``raw.read`` for the body. A body the deadline cut is
never mistaken for a complete one, also when the server sent no Content-Length.

:class:`Session` refuses to follow a redirect from https to http, or to plain http on a host that
is not loopback (:class:`InsecureRedirect`, naming both URLs): bytes that crossed a network in the
clear must never be hashed and pinned, nor credentials sent after them.

Use :func:`new_session` (the bump's sources do; the registry client should:
``RegistryClient(..., session_factory=lambda: new_session(total=...))``), or mount a
``DeadlineAdapter`` on a session of your own. The deadline applies to connections made through
the adapter's own pools (direct and HTTP-proxied; not SOCKS).
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import urljoin, urlsplit

import requests
import requests.adapters
import urllib3.connection
import urllib3.connectionpool

from toolkit.redact import redact_url

DEFAULT_TOTAL = 600.0

# The deadline of the request this thread is sending: the pool binds it to the connection it
# hands out (a new one or a kept-alive one).
_current = threading.local()
# Guards the binding of connections to deadlines: a deadline firing must never shut down a
# connection that has gone back to the pool or now serves another request.
_bind_lock = threading.Lock()


class DeadlineExceeded(requests.exceptions.Timeout):
    """The answer's headers, or the whole answer, did not arrive in time."""

    def __init__(self, url: str, phase: str, seconds: float) -> None:
        self.url = url
        self.phase = phase  # "headers" or "answer"
        self.seconds = seconds
        what = "status line and headers" if phase == "headers" else "whole answer"
        super().__init__(f"{redact_url(url)}: the {what} did not arrive within {seconds:g}s")

    @property
    def reason(self) -> str:
        """The failure without the URL, for messages that name it already."""
        what = "status line and headers" if self.phase == "headers" else "whole answer"
        return f"the {what} did not arrive within {self.seconds:g}s"


class InsecureRedirect(requests.exceptions.RequestException):
    """A redirect from https to http, or to plain http on a host that is not loopback."""

    def __init__(self, source: str, target: str) -> None:
        self.source = source
        self.target = target
        super().__init__(
            f"{redact_url(source)} redirects to {redact_url(target)}: refused, {self.reason}"
        )

    @property
    def reason(self) -> str:
        if urlsplit(self.source).scheme.lower() == "https":
            return (
                "a redirect from https to plain http would let anyone on the path change the bytes"
            )
        return "plain http is allowed only to loopback"


def _shutdown(sock: socket.socket) -> None:
    # socket.socket's own shutdown, also for an SSLSocket: SSLSocket.shutdown would drop its
    # TLS state under the thread that is reading. SHUT_RDWR wakes a blocked recv().
    with contextlib.suppress(OSError):  # already closed
        socket.socket.shutdown(sock, socket.SHUT_RDWR)


class _Watchdog:
    """One thread for every deadline of the process: a heap of (when, callback) entries. A
    thread per request (threading.Timer) costs more than a small request itself."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._heap: list[list[Any]] = []
        self._seq = itertools.count()
        self._thread: threading.Thread | None = None
        self._cancelled = 0

    def schedule(self, seconds: float, callback: Any) -> list[Any]:
        """Call ``callback`` in ``seconds``; the entry returned cancels it (:meth:`cancel`)."""
        entry = [time.monotonic() + seconds, next(self._seq), callback]
        with self._cond:
            heapq.heappush(self._heap, entry)
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(
                    target=self._run, name="toolkit-http-deadlines", daemon=True
                )
                self._thread.start()
            self._cond.notify()
        return entry

    def cancel(self, entry: list[Any]) -> None:
        with self._cond:
            if entry[2] is None:
                return
            entry[2] = None
            self._cancelled += 1
            if self._cancelled > 256 and self._cancelled * 2 > len(self._heap):
                self._heap = [e for e in self._heap if e[2] is not None]
                heapq.heapify(self._heap)
                self._cancelled = 0

    def pending(self) -> int:
        """Entries still to fire (for tests)."""
        with self._cond:
            return sum(1 for e in self._heap if e[2] is not None)

    def _run(self) -> None:
        with self._cond:
            while True:
                while self._heap and self._heap[0][2] is None:
                    heapq.heappop(self._heap)
                    self._cancelled -= 1
                if not self._heap:
                    self._cond.wait()
                    continue
                delay = self._heap[0][0] - time.monotonic()
                if delay > 0:
                    self._cond.wait(delay)
                    continue
                entry = heapq.heappop(self._heap)
                callback, entry[2] = entry[2], None
                self._cond.release()
                try:
                    callback()
                except Exception:  # a callback must not stop every other deadline
                    pass
                finally:
                    self._cond.acquire()


_watchdog = _Watchdog()


class Deadline:
    """The deadline of one request: scheduled on the watchdog, bound to the connection
    carrying it."""

    def __init__(self, url: str, headers: float | None, total: float) -> None:
        self.url = url
        self.total = total
        self.headers = min(headers, total) if headers is not None else total
        self.phase = "headers"
        self.expired = False
        self._conn: Any = None
        self._entry: list[Any] | None = None
        self._lock = threading.Lock()
        self._started = 0.0

    def start(self) -> None:
        self._started = time.monotonic()
        self._arm(self.headers)

    def body(self) -> None:
        """The headers are in: from now on only the total bound applies."""
        with self._lock:
            self.phase = "answer"
        self._arm(self.total - (time.monotonic() - self._started))

    def _arm(self, seconds: float) -> None:
        with self._lock:
            if self._entry is not None:
                _watchdog.cancel(self._entry)
            self._entry = _watchdog.schedule(max(0.0, seconds), self._fire)

    def cancel(self) -> None:
        with self._lock:
            if self._entry is not None:
                _watchdog.cancel(self._entry)
                self._entry = None
        unbind(self._conn, self)

    def error(self) -> DeadlineExceeded:
        seconds = self.headers if self.phase == "headers" else self.total
        return DeadlineExceeded(self.url, self.phase, seconds)

    def _fire(self) -> None:
        with self._lock:
            self.expired = True
        with _bind_lock:
            conn = self._conn
            if conn is None or getattr(conn, "_toolkit_deadline", None) is not self:
                return
            sock = _socket_of(conn)
        if sock is not None:
            _shutdown(sock)


def bind(conn: Any) -> None:
    """Bind the connection the pool hands out to the current thread's request, if any."""
    deadline: Deadline | None = getattr(_current, "deadline", None)
    with _bind_lock:
        conn._toolkit_deadline = deadline
        if deadline is not None:
            deadline._conn = conn
    sock = _socket_of(conn)
    if deadline is not None and deadline.expired and sock is not None:
        _shutdown(sock)


def unbind(conn: Any, deadline: Deadline | None = None) -> None:
    """The connection goes back to the pool (or ``deadline`` is done with it)."""
    if conn is None:
        return
    with _bind_lock:
        if deadline is None or getattr(conn, "_toolkit_deadline", None) is deadline:
            conn._toolkit_deadline = None


class _DeadlineConnection:
    """Remembers the socket it connected: http.client drops ``sock`` once an answer that ends
    with the connection (``Connection: close``, no length) has its headers, and the body is
    then read through that socket still."""

    sock: Any

    def _watched(self) -> None:
        self._toolkit_sock = self.sock
        deadline = getattr(self, "_toolkit_deadline", None)
        if deadline is not None and deadline.expired and self.sock is not None:
            _shutdown(self.sock)  # fired while the socket was being made: the request fails


class _HTTPConnection(_DeadlineConnection, urllib3.connection.HTTPConnection):
    def connect(self) -> None:
        super().connect()
        self._watched()


class _HTTPSConnection(_DeadlineConnection, urllib3.connection.HTTPSConnection):
    def connect(self) -> None:
        # During the handshake urllib3's self.sock is the plain socket: a deadline firing then
        # reaches it too (CPython also bounds a handshake as a whole by the socket timeout).
        super().connect()
        self._watched()


def _socket_of(conn: Any) -> socket.socket | None:
    sock: socket.socket | None = conn.sock or getattr(conn, "_toolkit_sock", None)
    return sock


class _HTTPPool(urllib3.connectionpool.HTTPConnectionPool):
    ConnectionCls = _HTTPConnection

    def _get_conn(self, timeout: float | None = None) -> Any:
        conn = super()._get_conn(timeout)
        bind(conn)
        return conn

    def _put_conn(self, conn: Any) -> None:
        unbind(conn)
        super()._put_conn(conn)


class _HTTPSPool(urllib3.connectionpool.HTTPSConnectionPool):
    ConnectionCls = _HTTPSConnection

    def _get_conn(self, timeout: float | None = None) -> Any:
        conn = super()._get_conn(timeout)
        bind(conn)
        return conn

    def _put_conn(self, conn: Any) -> None:
        unbind(conn)
        super()._put_conn(conn)


_POOLS = {"http": _HTTPPool, "https": _HTTPSPool}


class _DeadlineBody:
    """Mixed into ``response.raw``'s own class: a read the deadline cut raises DeadlineExceeded
    instead of ending (an EOF) or failing with a connection error.

    The raw response keeps its type (``isinstance(raw, urllib3.HTTPResponse)`` holds) and its
    socket: requests-ntlm reads the server certificate from there for channel binding (NTLM over
    HTTPS), and a wrapper object would silently turn that protection off.
    """

    _toolkit_deadline: Deadline

    # The DeadlineExceeded is raised outside the ``except`` of the read it ends: chained to that
    # read's error, describe_exception would report the shut-down socket ("Connection reset").

    def _check(self) -> None:
        if self._toolkit_deadline.expired:
            raise self._toolkit_deadline.error()

    def stream(self, *args: Any, **kwargs: Any) -> Iterator[bytes]:
        chunks = super().stream(*args, **kwargs)  # type: ignore[misc]
        while True:
            try:
                chunk = next(chunks)
            except StopIteration:
                break
            except Exception:
                if not self._toolkit_deadline.expired:
                    raise
                break
            self._check()
            yield chunk
        self._check()
        self._toolkit_deadline.cancel()

    def read(self, *args: Any, **kwargs: Any) -> bytes:
        try:
            data: bytes = super().read(*args, **kwargs)  # type: ignore[misc]
        except Exception:
            if not self._toolkit_deadline.expired:
                raise
            data = b""
        self._check()
        return data

    def close(self) -> None:
        self._toolkit_deadline.cancel()
        super().close()  # type: ignore[misc]

    def release_conn(self) -> None:
        self._toolkit_deadline.cancel()
        super().release_conn()  # type: ignore[misc]


_DEADLINE_CLASSES: dict[type, type] = {}
_classes_lock = threading.Lock()


def _under_deadline(raw: Any, deadline: Deadline) -> Any:
    """``raw`` itself, its class swapped for a subclass that mixes in :class:`_DeadlineBody`."""
    base = type(raw)
    with _classes_lock:
        cls = _DEADLINE_CLASSES.get(base)
        if cls is None:
            cls = type(f"Deadline{base.__name__}", (_DeadlineBody, base), {})
            _DEADLINE_CLASSES[base] = cls
    raw._toolkit_deadline = deadline
    raw.__class__ = cls
    return raw


def _seconds(timeout: Any) -> float | None:
    """Connect and read timeout added up (requests takes a number, a pair or None)."""
    if timeout is None:
        return None
    if isinstance(timeout, tuple):
        parts = [t for t in timeout if t is not None]
        return float(sum(parts)) if parts else None
    if isinstance(timeout, int | float):
        return float(timeout) * 2
    return None


class DeadlineAdapter(requests.adapters.HTTPAdapter):
    """An HTTPAdapter whose every request ends by its deadlines (see the module's doc)."""

    def __init__(self, total: float = DEFAULT_TOTAL, **kwargs: Any) -> None:
        if not total > 0:
            raise ValueError(f"total must be positive, not {total!r}")
        self.total = total
        super().__init__(**kwargs)

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = dict(_POOLS)

    def proxy_manager_for(self, proxy: str, **proxy_kwargs: Any) -> Any:
        manager = super().proxy_manager_for(proxy, **proxy_kwargs)
        if not proxy.lower().startswith("socks"):
            manager.pool_classes_by_scheme = dict(_POOLS)
        return manager

    def bounds(self, stream: bool, timeout: Any) -> tuple[float | None, float | None]:
        """(headers, total) of one request; a total of None leaves the body unbounded."""
        return _seconds(timeout), self.total

    def send(  # type: ignore[override]
        self, request: requests.PreparedRequest, stream: bool = False, timeout: Any = None,
        **kwargs: Any,
    ) -> requests.Response:  # fmt: skip
        headers, total = self.bounds(stream, timeout)
        deadline = Deadline(str(request.url), headers, total if total is not None else self.total)
        deadline.start()
        _current.deadline = deadline
        response: requests.Response | None = None
        try:
            response = super().send(request, stream=stream, timeout=timeout, **kwargs)
        except Exception:
            deadline.cancel()
            if not deadline.expired:
                raise
        except BaseException:  # Ctrl-C: no timer outlives the request
            deadline.cancel()
            raise
        finally:
            _current.deadline = None
        if deadline.expired or response is None:
            # Raised here, not in the except: the socket error the cut caused is no cause.
            # An EOF inside the headers ends them early: such a response is no answer either.
            deadline.cancel()
            if response is not None:
                response.close()
            raise deadline.error()
        if total is None:  # only the headers were bounded: the body takes what it takes
            deadline.cancel()
            return response
        deadline.body()
        response.raw = _under_deadline(response.raw, deadline)
        return response


class EngineDeadlineAdapter(DeadlineAdapter):
    """The deadlines for a Docker Engine API client (``toolkit.clients``) over tcp://.

    Every answer's headers are bounded as for any request. The body of an ordinary answer
    (``/info``, ``/images/json``, ``/containers/.../wait``) is bounded by twice the request's
    timeout; a streamed one (a build, push or pull) is not: it lasts as long as the work, and
    the build's own ``--timeout`` (or a cancel) ends it.
    """

    def bounds(self, stream: bool, timeout: Any) -> tuple[float | None, float | None]:
        headers = _seconds(timeout)
        if stream:
            return headers, None
        return headers, headers if headers is not None else self.total


def is_loopback_host(host: str | None) -> bool:
    from toolkit.hosts import is_loopback

    return bool(host) and is_loopback(str(host).strip("[]"))


def insecure_redirect(source: str, target: str) -> bool:
    """True when following ``source`` -> ``target`` drops TLS or speaks plain http to a host
    that is not loopback."""
    old, new = urlsplit(source), urlsplit(target)
    if new.scheme.lower() != "http":
        return False
    return old.scheme.lower() == "https" or not is_loopback_host(new.hostname)


class Session(requests.Session):
    """A requests Session that refuses insecure redirects (:class:`InsecureRedirect`)."""

    def resolve_redirects(self, resp: Any, req: Any, *args: Any, **kwargs: Any) -> Iterator[Any]:
        if kwargs.get("yield_requests"):  # allow_redirects=False: only the next request is made
            yield from super().resolve_redirects(resp, req, *args, **kwargs)
            return
        self._refuse_insecure(resp)
        for hop in super().resolve_redirects(resp, req, *args, **kwargs):
            self._refuse_insecure(hop)  # before the generator follows it
            yield hop

    def _refuse_insecure(self, resp: requests.Response) -> None:
        target = self.get_redirect_target(resp)
        if target is None:
            return
        absolute = urljoin(str(resp.url), target)
        if insecure_redirect(str(resp.url), absolute):
            resp.close()
            raise InsecureRedirect(str(resp.url), absolute)


def new_session(total: float = DEFAULT_TOTAL) -> Session:
    """A :class:`Session` with a :class:`DeadlineAdapter` (``total`` seconds per answer) for
    http and https."""
    session = Session()
    adapter = DeadlineAdapter(total=total)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session
