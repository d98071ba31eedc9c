"""Errors that reach the user as one line and a documented exit code.

Every module raises one of these for anything a user can cause (bad input, a damaged file,
an existing output); the CLI turns them into `hinerc: error: <message>` and `exit_code`.
Anything else is a bug and exits with 1.
"""
from __future__ import annotations


class HinercError(Exception):
    """Base class: a failure a user can act on. `exit_code` is the process exit status."""

    exit_code = 1


class InputError(HinercError):
    """The input cube cannot be used: missing, unreadable, ambiguous, wrong shape, NaN/Inf."""

    exit_code = 3


class CorruptFileError(HinercError):
    """A .hnr file is truncated, damaged (checksum mismatch) or not a .hnr file at all."""

    exit_code = 4


class UnsupportedFileError(HinercError):
    """A valid .hnr that this hinerc cannot read: newer major version or unknown critical chunk."""

    exit_code = 5


class OutputExistsError(HinercError):
    """The output file exists and --force was not given."""

    exit_code = 6


class UsageError(HinercError):
    """A bad option value or a bad combination of options (the library's twin of click's usage errors)."""

    exit_code = 2


class RequestError(HinercError):
    """A request that does not fit the file: wavelength out of range, band index out of range."""

    exit_code = 7


class OutputError(HinercError):
    """The output cannot be written: missing directory, read-only or full file system, a write to
    stdout that failed. Nothing partial is left behind."""

    exit_code = 9


# Documented in README.md ("Exit codes"); kept here so the CLI and docs share one table.
EXIT_CODES = {
    0: "success",
    1: "internal error (a bug: please report it)",
    2: "usage error (unknown option, bad option value)",
    3: "bad input cube (missing, unreadable, ambiguous variable, not 3-D, NaN/Inf, too small)",
    4: "corrupt, truncated or foreign .hnr file",
    5: "unsupported .hnr (newer major version or unknown critical chunk)",
    6: "output exists (use -f/--force)",
    7: "request outside the file (wavelength or band out of range)",
    8: "some scenes of an archive run failed (the others were written; see the manifest)",
    9: "the output cannot be written (missing directory, read-only or full file system, stdout write failed)",
    130: "interrupted (Ctrl-C); no partial output is left",
    141: "stdout closed early (e.g. `| head`); nothing more is printed",
}
