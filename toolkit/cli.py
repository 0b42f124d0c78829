"""The entry point: assemble the app for this run, run it, turn its outcome into an exit code.

This is the one place that maps outcomes to exit codes and prints the one-line errors. A command
returns its outcome (an object with ``failure()``, the error the run ends with, or None) or
raises a ToolkitError; either way the error's class decides the exit code, and its one line is
printed without a traceback (``--debug`` shows one).

The app is assembled per run from ``toolkit.commands.COMMANDS`` through Typer's public API: a run
imports and registers only the command it runs (Typer converts every registered command to a
click command on each start, 2-3 ms each); the top-level help registers each command's name and
summary with a stand-in callback; an unknown name gets the stand-ins too, so click's "No such
command" (with its suggestion) is unchanged.

Ctrl-C and SIGTERM: for the length of the run, SIGTERM (what CI runners send on cancel) raises
``TerminateSignal``, a KeyboardInterrupt, so the runner cancels and cleans up the same way; the
command ends with ``Interrupted`` (130) or ``Terminated`` (143). Each command is wrapped so that
an interrupt reaches this module as that error, and not as Typer's bare ``Exit(130)``.
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Annotated, Any

import typer

from toolkit.commands import COMMANDS, find_command
from toolkit.errors import Interrupted, TerminateSignal, ToolkitError, interruption

APP_SETTINGS: dict[str, Any] = {
    "name": "toolkit",
    "help": "Maintain the official-style Python images for Windows containers.",
    "no_args_is_help": True,
    "add_completion": False,
    "pretty_exceptions_enable": False,
    "rich_markup_mode": None,
}


@dataclass
class _State:
    debug: bool = False


STATE = _State()


def _root(
    debug: Annotated[
        bool,
        typer.Option("--debug", envvar="TOOLKIT_DEBUG", help="Show tracebacks on errors."),
    ] = False,
) -> None:
    STATE.debug = debug


def _help_only() -> None:
    """Stands for a command in the top-level help; never run, since a run names its command."""
    raise AssertionError("a help-only command was invoked")


def build_app(args: list[str]) -> typer.Typer:
    """The app for ``args``: the command named in them, or every command's name and summary."""
    app = typer.Typer(**APP_SETTINGS)
    app.callback()(_root)
    name = next((a for a in args if not a.startswith("-")), None)
    entry = find_command(name) if name is not None else None
    if entry is not None:
        module = importlib.import_module(entry.module)
        command = _interrupt_as_error(module.command)
        app.command(entry.name, help=entry.summary, short_help=entry.summary)(command)
        return app
    for item in COMMANDS:
        app.command(item.name, help=item.summary, short_help=item.summary)(_help_only)
    return app


def _interrupt_as_error(command: Callable[..., Any]) -> Callable[..., Any]:
    """``command`` raising Interrupted/Terminated where it was interrupted: Typer would turn a
    KeyboardInterrupt into a plain exit status 130 (returned, not raised, without click's
    standalone mode), losing both the message and SIGTERM's own code."""

    @functools.wraps(command)
    def run(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except KeyboardInterrupt as exc:
            raise interruption(exc) from None

    return run


def _raise_terminate(signum: int, frame: object) -> None:
    raise TerminateSignal()


@contextlib.contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """SIGTERM raises TerminateSignal in the main thread while inside. Portable: Windows defines
    SIGTERM too (its console close and CTRL_BREAK are other signals, left as they are)."""
    if threading.current_thread() is not threading.main_thread():
        yield  # signal handlers can only be set from the main thread
        return
    previous = signal.signal(signal.SIGTERM, _raise_terminate)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def report_error(error: ToolkitError) -> None:
    from toolkit.console import Console

    Console.from_process().error(error.one_line())


def main(argv: list[str] | None = None) -> None:
    """Run the command; exit with the code of its outcome. No traceback for user mistakes."""
    from typer.exceptions import Abort, Exit, TyperException

    args = sys.argv[1:] if argv is None else argv
    try:
        with sigterm_as_interrupt():
            result = build_app(args)(args=args, prog_name="toolkit", standalone_mode=False)
    except ToolkitError as exc:
        if STATE.debug and not isinstance(exc, Interrupted):
            raise
        report_error(exc)
        sys.exit(exc.exit_code)
    except TyperException as exc:  # usage errors: unknown option, bad value, missing argument
        show = getattr(exc, "show", None)
        if callable(show):
            show()
        else:
            print(f"error: {exc.format_message()}", file=sys.stderr)
        sys.exit(exc.exit_code)
    except (KeyboardInterrupt, Abort) as exc:  # outside a command: while parsing, say
        error = interruption(exc.__cause__ if isinstance(exc, Abort) else exc)
        report_error(error)
        sys.exit(error.exit_code)
    except Exit as exc:
        sys.exit(exc.exit_code)
    if isinstance(result, int) and not isinstance(result, bool):  # Typer's Exit(code), returned
        if result == Interrupted.exit_code:
            report_error(Interrupted())
        sys.exit(result)
    failure = result.failure() if hasattr(result, "failure") else None
    if failure is not None:  # a run that ended badly: its reason is output, not a crash
        report_error(failure)
        sys.exit(failure.exit_code)
    sys.exit(0)
