"""Deadlines and cancellation: one target's stop switch, shared by the runner and the driver.

Closing the connection is the only way to stop a classic build (and a push) the engine is
streaming: the engine then cancels the work and, with ``forcerm``, removes its container. A
``Canceller`` holds that connection once the request is made; ``cancel`` from any thread (the
deadline watchdog, Ctrl-C) shuts it down, also when it comes before the request was made.
The same holds for a check waiting on its container (``POST /containers/<id>/wait``): the engine
sends the answer's headers at once, so the waiting thread can be woken the same way.

``DaemonPool`` runs calls (HTTP fetches) on threads nobody waits for at exit, so Ctrl-C or SIGTERM
ends a run at once instead of after the fetches' timeouts.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, TypeVar

from toolkit.errors import ConfigError

if TYPE_CHECKING:  # concurrent.futures only where bump uses the pool, not on every start
    from concurrent.futures import Future

T = TypeVar("T")

MAX_TIMEOUT = 30 * 24 * 3600.0
"""The longest deadline a build or check may have (a month): --timeout is never unlimited."""


def check_timeout(seconds: float, flag: str = "--timeout", *, what: str = "seconds") -> float:
    """``seconds`` if it is a usable deadline; ConfigError (usage) otherwise.

    inf and nan pass a plain ``<= 0`` test and then break a timer; zero or less would make every
    build or check fail as if the image were broken.
    """
    if not 0 < seconds <= MAX_TIMEOUT:
        raise ConfigError(
            f"{flag} {seconds:g} must be positive and finite",
            hint=f"{what}, at most {MAX_TIMEOUT:g}",
        )
    return seconds


class Canceller:
    """Stops one target's work from another thread, once, with a reason.

    ``attach`` hands it the streaming HTTP response to close; ``shutdown`` (not only ``close``)
    wakes a thread blocked in ``recv`` on that socket.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._response: Any = None
        self.reason: str | None = None

    @property
    def cancelled(self) -> bool:
        return self.reason is not None

    def attach(self, response: Any) -> None:
        with self._lock:
            self._response = response
            cancelled = self.reason is not None
        if cancelled:
            self._close(response)

    def cancel(self, reason: str) -> None:
        with self._lock:
            if self.reason is None:
                self.reason = reason
            response = self._response
        if response is not None:
            self._close(response)

    @staticmethod
    def _close(response: Any) -> None:
        sock = _response_socket(response)
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        with contextlib.suppress(Exception):
            response.close()


def _response_socket(response: Any) -> socket.socket | None:
    # urllib3 2 exposes the connection of a streamed response; its ``sock`` is the socket
    # (plain, unix or TLS).
    connection = getattr(getattr(response, "raw", None), "connection", None)
    sock = getattr(connection, "sock", None)
    return sock if isinstance(sock, socket.socket) else None


_capture = threading.local()


def _capture_response(response: Any, *args: Any, **kwargs: Any) -> Any:
    wanted = getattr(_capture, "wanted", None)
    if wanted is not None:
        canceller, suffix = wanted
        if response.request.path_url.split("?")[0].endswith(suffix):
            canceller.attach(response)
    return response


@contextlib.contextmanager
def cancellable(api: Any, canceller: Canceller, path_suffix: str) -> Iterator[None]:
    """Inside the block, the answer to this thread's request to a path ending in
    ``path_suffix`` (``/build``, ``/wait``) is attached to ``canceller`` as soon as its headers
    arrive (a requests response hook on the docker ``APIClient``)."""
    hooks = api.hooks.setdefault("response", [])
    if _capture_response not in hooks:
        hooks.append(_capture_response)
    _capture.wanted = (canceller, path_suffix)
    try:
        yield
    finally:
        _capture.wanted = None


class DaemonPool:
    """``submit`` like ThreadPoolExecutor's, at most ``workers`` calls at once, on daemon threads.

    ThreadPoolExecutor joins its threads at interpreter exit, so after Ctrl-C a run would still
    wait for every fetch in flight to time out (18-300 s were seen with ``toolkit bump``). Here a
    call still running when the caller gives up ends with the process; ``close`` cancels the calls
    that have not started. Use it only for work whose result is dropped on failure (reads).
    """

    def __init__(self, workers: int, name: str = "pool") -> None:
        self._slots = threading.BoundedSemaphore(max(1, workers))
        self._closed = threading.Event()
        self._name = name
        self._count = 0

    def __enter__(self) -> DaemonPool:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def submit(self, fn: Callable[..., T], /, *args: Any) -> Future[T]:
        from concurrent.futures import Future

        future: Future[T] = Future()

        def run() -> None:
            with self._slots:
                if self._closed.is_set():
                    future.cancel()
                if not future.set_running_or_notify_cancel():
                    return
                try:
                    result = fn(*args)
                except BaseException as exc:  # handed to the caller, as a Future does
                    future.set_exception(exc)
                else:
                    future.set_result(result)

        self._count += 1
        threading.Thread(target=run, name=f"{self._name}-{self._count}", daemon=True).start()
        return future

    def close(self) -> None:
        """Start nothing more; calls already running are left to finish or die at exit."""
        self._closed.set()
