"""Every failure of a `hinerc` command ends as ONE line on stderr and a documented exit status.

Users script hinerc (benchmarks, shell pipelines), so the exit status must say what went wrong
and a traceback must never hide the one line that matters (README "Exit codes").
"""
from __future__ import annotations

import os
import sys
import traceback

import click

from hinercodec.errors import HinercError, OutputError

EXIT_INTERNAL = 1
EXIT_INTERRUPTED = 130
EXIT_BROKEN_PIPE = 141  # 128 + SIGPIPE: what a C tool stopped by `| head` reports to the shell


def _debug() -> bool:
    return os.environ.get("HINERC_DEBUG", "") not in ("", "0")


def _one_line(exc: BaseException) -> str:
    """The message on one line: a second line would be lost in logs that grep for `hinerc:`."""
    return " ".join(str(exc).split()) or type(exc).__name__


def _fail(message: str, code: int) -> "click.exceptions.Exit":
    if _debug():
        traceback.print_exc(file=sys.stderr)
    click.echo(f"hinerc: {message}", err=True)
    return click.exceptions.Exit(code)


def _silence_stdout() -> None:
    """Point stdout at /dev/null so the interpreter's final flush does not report the closed pipe."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):  # no real descriptor (e.g. under CliRunner)
        pass


def _flush_stdout() -> None:
    """Flush what the command printed now, so that a failed write (a full disk, /dev/full) is an
    exit code and one line, not the interpreter's "Exception ignored" at exit."""
    for stream in (sys.stdout, getattr(sys.stdout, "buffer", None)):
        if stream is None:
            continue
        try:
            stream.flush()
        except BrokenPipeError:
            raise
        except (OSError, ValueError) as exc:
            if isinstance(exc, ValueError):  # closed already
                continue
            reason = os.strerror(exc.errno) if exc.errno else (str(exc) or type(exc).__name__)
            raise OutputError(f"writing to stdout failed: {reason}") from None


class HinercGroup(click.Group):
    """A click group that maps exceptions to exit codes instead of tracebacks."""

    def invoke(self, ctx: click.Context):
        try:
            try:
                result = super().invoke(ctx)
            except click.exceptions.Exit as exc:
                if exc.exit_code == 0:
                    _flush_stdout()
                raise
            _flush_stdout()
            return result
        except (click.exceptions.Exit, click.ClickException, click.Abort):
            raise  # click's own: usage errors exit 2 with click's message
        except HinercError as exc:
            if isinstance(exc, OutputError):
                _silence_stdout()  # whatever is left in stdout's buffer must not fail again at exit
            raise _fail(f"error: {_one_line(exc)}", exc.exit_code) from None
        except KeyboardInterrupt:
            raise _fail("interrupted", EXIT_INTERRUPTED) from None
        except BrokenPipeError:
            _silence_stdout()
            raise click.exceptions.Exit(EXIT_BROKEN_PIPE) from None
        except Exception as exc:  # anything else is a bug: say so in one line
            raise _fail(
                f"internal error: {type(exc).__name__}: {_one_line(exc)} (set HINERC_DEBUG=1 for a traceback)",
                EXIT_INTERNAL,
            ) from None
