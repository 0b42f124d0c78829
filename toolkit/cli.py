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
from typing import TYPE_CHECKING, Annotated, Any

import typer

from toolkit.commands import COMMANDS, find_command
from toolkit.errors import Interrupted, TerminateSignal, ToolkitError, interruption

if TYPE_CHECKING:
    from toolkit.console import GuardedStream

APP_SETTINGS: dict[str, Any] = {
    "name": "toolkit",
    "help": "Maintain the official-style Python images for Windows containers.",
    "no_args_is_help": True,
    "add_completion": False,
    "pretty_exceptions_enable": False,
    "rich_markup_mode": None,
    # -h as well as --help, for every command (click hands this down to subcommands).
    "context_settings": {"help_option_names": ["-h", "--help"]},
}


@dataclass
class _State:
    debug: bool = False


STATE = _State()


def _show_version(value: bool) -> None:
    if value:
        from toolkit import __version__

        print(f"toolkit {__version__}")
        raise typer.Exit()


def _root(
    debug: Annotated[
        bool,
        typer.Option("--debug", envvar="TOOLKIT_DEBUG", help="Show tracebacks on errors."),
    ] = False,
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_show_version, is_eager=True, help="Print the version and exit."
        ),
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


def print_traceback(exc: BaseException) -> None:
    """The traceback of ``exc`` and its chain on stderr, through ``redact_text``: library
    exceptions in the chain quote URLs (user info included) and may quote PEM text."""
    import traceback

    from toolkit.redact import redact_text

    sys.stderr.write(redact_text("".join(traceback.format_exception(exc))))


def main(argv: list[str] | None = None) -> None:
    """Run the command; exit with the code of its outcome. No traceback for user mistakes.

    stdout and stderr are guarded for the run (toolkit.console.GuardedStream): output to a full
    disk, a gone reader or a closed descriptor is an OutputError (exit 5), not a traceback.
    """
    args = sys.argv[1:] if argv is None else argv
    out, err = _guard_streams()
    try:
        code = _run(args)
        code = _finish_output(out, code)
    finally:
        sys.stdout, sys.stderr = out.stream, err.stream
    sys.exit(code)


def _run(args: list[str]) -> int:
    from typer.exceptions import Abort, Exit, TyperException

    try:
        with sigterm_as_interrupt():
            result = build_app(args)(args=args, prog_name="toolkit", standalone_mode=False)
            sys.stdout.flush()  # output that cannot be written fails the run here, whatever it was
    except ToolkitError as exc:
        if STATE.debug and not isinstance(exc, Interrupted):
            print_traceback(exc)
        report_error(exc)
        return exc.exit_code
    except TyperException as exc:  # usage errors: unknown option, bad value, missing argument
        show = getattr(exc, "show", None)
        if callable(show):
            show()
        else:
            print(f"error: {exc.format_message()}", file=sys.stderr)
        return exc.exit_code
    except (KeyboardInterrupt, Abort) as exc:  # outside a command: while parsing, say
        error = interruption(exc.__cause__ if isinstance(exc, Abort) else exc)
        report_error(error)
        return error.exit_code
    except Exit as exc:
        return int(exc.exit_code)
    except Exception as exc:  # a bug: its traceback, but never a secret a library quoted
        print_traceback(exc)
        return 1
    if isinstance(result, int) and not isinstance(result, bool):  # Typer's Exit(code), returned
        if result == Interrupted.exit_code:
            report_error(Interrupted())
        return result
    failure = result.failure() if hasattr(result, "failure") else None
    if failure is not None:  # a run that ended badly: its reason is output, not a crash
        report_error(failure)
        return int(failure.exit_code)
    return int(result) if isinstance(result, int) else 0  # click's code after an eager --version


def _guard_streams() -> tuple[GuardedStream, GuardedStream]:
    from toolkit.console import GuardedStream

    if sys.stdout is None:  # started with stdout closed (>&-): keep fd 1 from being reused
        _devnull_onto(1)
    out = GuardedStream(sys.stdout, "standard output")
    err = GuardedStream(sys.stderr, "standard error", quiet=True)
    sys.stdout, sys.stderr = out, err
    return out, err


def _finish_output(out: GuardedStream, code: int) -> int:
    """Flush stdout; if any write to it failed, report that once (exit 5 unless the run had
    already failed) and point fd 1 at /dev/null, so Python's own flush at exit stays quiet."""
    if out.failed is None:
        try:
            out.flush()
        except ToolkitError as exc:
            report_error(exc)
            code = code or exc.exit_code
    if out.failed is not None:
        code = code or out.failed.exit_code
        if out.stream is not None:
            _devnull_onto(1)
    return code


def _devnull_onto(fd: int) -> None:
    import os

    null = os.open(os.devnull, os.O_WRONLY)
    if null != fd:
        os.dup2(null, fd)
        os.close(null)
