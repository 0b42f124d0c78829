"""Deadlines and cancellation: one target's stop switch, shared by the runner and the driver.

Closing the connection is the only way to stop a classic build (and a push) the engine is
streaming: the engine then cancels the work and, with ``forcerm``, removes its container. A
``Canceller`` holds that connection once the request is made; ``cancel`` from any thread (the
deadline watchdog, Ctrl-C) shuts it down, also when it comes before the request was made.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from typing import Any

from toolkit.errors import ConfigError

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
