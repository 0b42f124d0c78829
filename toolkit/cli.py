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
"""

from __future__ import annotations

import importlib
import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any

import typer

from toolkit.commands import COMMANDS, find_command
from toolkit.errors import Interrupted, ToolkitError

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
        app.command(entry.name, help=entry.summary, short_help=entry.summary)(module.command)
        return app
    for item in COMMANDS:
        app.command(item.name, help=item.summary, short_help=item.summary)(_help_only)
    return app


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
    except (KeyboardInterrupt, Abort):
        report_error(Interrupted())
        return Interrupted.exit_code
    except Exit as exc:
        return int(exc.exit_code)
    except Exception as exc:  # a bug: its traceback, but never a secret a library quoted
        print_traceback(exc)
        return 1
    if isinstance(result, int) and result == Interrupted.exit_code:
        # Typer turns a KeyboardInterrupt into Exit(130), which standalone_mode=False returns.
        report_error(Interrupted())
        return Interrupted.exit_code
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
