"""The toolkit's errors: one class per outcome, each with its own exit code.

A ToolkitError's message is a single line that says what failed, where, and what to do. The CLI
prints it without a traceback (unless --debug) and exits with the class's code.
"""

from __future__ import annotations


class ToolkitError(Exception):
    """Base class. ``exit_code`` is what the process exits with."""

    exit_code = 1

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        self.message = message
        self.hint = hint
        super().__init__(self.one_line())

    def one_line(self) -> str:
        text = " ".join(self.message.split())
        if self.hint:
            text += f" ({' '.join(self.hint.split())})"
        return text


class CheckFailedError(ToolkitError):
    """A check found a difference (drift, lint errors, provenance)."""

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
    """A container registry refused, failed or answered nonsense (names registry, repository, tag)."""

    exit_code = 12


class RegistryNotFoundError(RegistryError):
    """A manifest, tag or blob the command needs is not in the registry."""
