"""The toolkit's errors: one class per outcome, each with its own exit code.

A ToolkitError's message is a single line that says what failed, where, and what to do. The CLI
prints it without a traceback (unless --debug) and exits with the class's code. Messages and
hints pass through ``toolkit.redact.redact_text`` when the error is made, so a URL's user info or
a PEM block never reaches a message, whichever code built it (or whatever library text it quotes).
"""

from __future__ import annotations

import re
from collections.abc import Iterator


class ToolkitError(Exception):
    """Base class. ``exit_code`` is what the process exits with."""

    exit_code = 1

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        # imported here: only a run that fails pays for the redaction patterns (a render does not)
        from toolkit.redact import redact_text

        self.message = redact_text(message)
        self.hint = redact_text(hint) if hint is not None else None
        super().__init__(self.one_line())

    def one_line(self) -> str:
        text = " ".join(self.message.split())
        if self.hint:
            text += f" ({' '.join(self.hint.split())})"
        return text


class CheckFailedError(ToolkitError):
    """A check found something to fix: drift from the templates, lint errors, provenance."""

    exit_code = 1


class ConfigError(ToolkitError):
    """versions.json, hosts.toml, flags or environment are wrong: the user must fix an input."""

    exit_code = 2


class NothingSelectedError(ToolkitError):
    """A selector matched no build."""

    exit_code = 3


class TemplateError(ToolkitError):
    """A Jinja2 template failed to parse or to render."""

    exit_code = 4


class OutputError(ToolkitError):
    """A file could not be written, replaced or removed."""

    exit_code = 5


class SourceError(ToolkitError):
    """An upstream source (python.org, PyPI, GitHub or a mirror) failed or answered nonsense."""

    exit_code = 6


class HostError(ToolkitError):
    """A Docker host could not be reached, or is not fit for the target."""

    exit_code = 7


class WinRMError(ToolkitError):
    """A WinRM host could not be reached or a command on it failed."""

    exit_code = 8


class ToolMissingError(ToolkitError):
    """An external program the command needs is not installed."""

    exit_code = 9


class BuildFailedError(ToolkitError):
    """An image build failed, timed out or was refused by its engine."""

    exit_code = 10


class VerifyFailedError(ToolkitError):
    """An image was built (or exists) but one of its checks failed."""

    exit_code = 11


class RegistryError(ToolkitError):
    """A registry refused, failed or answered nonsense (push, manifest, report); the message
    names registry, repository and tag."""

    exit_code = 12


class RegistryNotFoundError(RegistryError):
    """A manifest, tag or blob the command needs is not in the registry."""


class RegistryUnavailableError(RegistryError):
    """The registry stopped answering (connection errors or 5xx after every retry)."""


class Interrupted(ToolkitError):
    """Ctrl-C: the run stopped early, after cleaning up and reporting what it had."""

    exit_code = 130
    default_message = "interrupted"

    def __init__(self, message: str | None = None, *, hint: str | None = None) -> None:
        super().__init__(message or self.default_message, hint=hint)


class Terminated(Interrupted):
    """SIGTERM (what CI runners send on cancel): the same cleanup and report as Ctrl-C."""

    exit_code = 143
    default_message = "terminated (SIGTERM)"


class TerminateSignal(KeyboardInterrupt):
    """Raised in the main thread by the SIGTERM handler (``toolkit.cli``): a KeyboardInterrupt,
    so everything that cleans up after Ctrl-C does the same after SIGTERM."""


def interruption(exc: BaseException | None = None) -> Interrupted:
    """The error a run stopped by ``exc`` (a KeyboardInterrupt) ends with: Terminated after
    SIGTERM, else Interrupted."""
    return Terminated() if isinstance(exc, TerminateSignal) else Interrupted()


# Connection pools prefix their messages: "HTTPSConnectionPool(host=..., port=443): ...".
_POOL_PREFIX = re.compile(r"^(?:HTTPS?Connection(?:Pool)?\([^)]*\): )+")


def exception_chain(exc: BaseException) -> Iterator[BaseException]:
    """``exc`` and every exception it carries: causes, contexts, ``args`` and urllib3's
    ``reason``, each once, depth first (iterative: a hostile chain cannot exhaust the stack)."""
    seen: set[int] = set()
    stack: list[BaseException] = [exc]
    while stack:
        current = stack.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        links = [current.__cause__, current.__context__, getattr(current, "reason", None)]
        links += list(current.args)
        stack.extend(x for x in reversed(links) if isinstance(x, BaseException))


def describe_exception(exc: BaseException) -> str:
    """The root cause of a Docker SDK, requests, urllib3 or OS error in a few words, one line.

    Their messages nest the cause several levels deep ("Max retries exceeded ... Caused by
    NewConnectionError(...)"); what a user can act on is the TLS verdict, the innermost OS error
    ("Connection refused"), or the engine's own explanation.
    """
    import ssl

    from toolkit.redact import redact_text

    deepest_os: str | None = None
    innermost = exc
    for current in exception_chain(exc):
        if isinstance(current, ssl.SSLCertVerificationError):
            return f"TLS verification failed: {current.verify_message or current.reason}"
        if isinstance(current, ssl.SSLError):
            return redact_text(f"TLS failed: {current.reason or current}")
        if isinstance(current, OSError) and current.strerror:
            deepest_os = current.strerror
        if str(current):
            innermost = current
    explanation = getattr(exc, "explanation", None)  # docker.errors.APIError: the engine's words
    if explanation:
        return redact_text(_one_line(str(explanation)))
    if deepest_os is not None:
        return deepest_os
    text = str(innermost)
    for marker in ("Caused by ", "Error while fetching server API version: "):
        if marker in text:
            text = text.rsplit(marker, 1)[1]
    # Library texts quote the URLs they were given, user info included.
    return redact_text(_POOL_PREFIX.sub("", _one_line(text))) or type(exc).__name__


def _one_line(text: str) -> str:
    return " ".join(text.split())
