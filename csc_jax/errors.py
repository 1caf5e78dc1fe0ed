"""The errors a user can cause or suffer, their exit statuses, and the one place that reports them.

Every expected failure is a :class:`CscError` subclass whose message is one line naming the
file, key or value at fault. Entry points (train.py, eval.py and its subcommands, benchmark.py,
the scripts) run their main function through :func:`run_main`, which prints such an error as
``error: <message>`` on stderr and exits with the class's status; anything else is a bug and
keeps its traceback. ``--debug`` (or ``CSC_JAX_DEBUG=1``) shows the traceback of expected
errors too.

Exit statuses (README "Exit status"):

====  ===========================================================================
0     finished
1     the run failed: non-finite loss or gradient, a checkpoint that could not be
      written or read, or a file-system error (disk full, permission denied)
2     invalid input: config, data (unreadable, empty or non-finite audio, too few
      speakers, a missing folder, a bad trial list), an unusable --workdir or output,
      a workdir without the checkpoint asked for
75    preempted (SIGTERM/SIGINT): state saved, rerun the same command to resume
====  ===========================================================================
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable

EXIT_FAILED = 1
EXIT_INVALID_INPUT = 2
EXIT_PREEMPTED = 75  # EX_TEMPFAIL: "try again later"


class CscError(Exception):
    """Base of every expected error; ``exit_status`` is what an entry point exits with."""

    exit_status = EXIT_FAILED


class ConfigError(CscError, ValueError):
    """An invalid or incompatible configuration, workdir or command line; names the key."""

    exit_status = EXIT_INVALID_INPUT


class DataError(CscError, ValueError):
    """Input data that cannot be used (corpus, folder, trial list, noise); names the file."""

    exit_status = EXIT_INVALID_INPUT


class BadAudioFileError(DataError):
    """An audio file (or dataset example) that cannot be used; ``.path`` names it."""

    def __init__(self, path: str | os.PathLike, reason: str):
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")


class UnknownKeyError(DataError, KeyError):
    """A trial-list key or dataset feature key that does not exist."""

    def __str__(self) -> str:  # KeyError would repr() the message and add quotes.
        return str(self.args[0])


class OutputExistsError(CscError, FileExistsError):
    """An output file exists and would be replaced without ``--overwrite``."""

    exit_status = EXIT_INVALID_INPUT


class CheckpointError(CscError, RuntimeError):
    """A checkpoint could not be written or read; the message names the directory."""


class MissingCheckpointError(CheckpointError):
    """No checkpoint (or not the step asked for) where the user pointed: train first."""

    exit_status = EXIT_INVALID_INPUT


class CheckpointMismatchError(CheckpointError, ValueError):
    """The checkpoint's parameters do not fit the model described by its config.json."""

    exit_status = EXIT_INVALID_INPUT


class NonFiniteError(CscError, RuntimeError):
    """The loss or gradient norm became NaN/Inf."""


def one_line(exc: BaseException) -> str:
    """The message of ``exc`` folded onto one line (multi-line details joined with '; ')."""
    text = str(exc) or type(exc).__name__
    parts = [p.strip() for p in text.splitlines() if p.strip()]
    return "; ".join(parts)


def debug_requested(argv: list[str] | None = None) -> bool:
    """``--debug`` on the command line (removed from ``argv``) or ``CSC_JAX_DEBUG=1``."""
    argv = sys.argv if argv is None else argv
    found = "--debug" in argv
    while "--debug" in argv:
        argv.remove("--debug")
    return found or os.environ.get("CSC_JAX_DEBUG", "") not in ("", "0")


def exit_status_of(exc: BaseException) -> int | None:
    """The documented exit status of an expected error, or None for a bug."""
    if isinstance(exc, CscError):
        return exc.exit_status
    if isinstance(exc, FileNotFoundError | NotADirectoryError | IsADirectoryError):
        return EXIT_INVALID_INPUT  # a path given by the user that is not there
    if isinstance(exc, OSError):
        return EXIT_FAILED  # disk full, permission denied, I/O error: the message names the file
    return None


def value_or_exit(main: Callable[[], object], *, debug: bool = False):
    """``main()``'s value; an expected error prints its one line and exits with its status
    (the checks an entry point makes before it defines its flags)."""
    result = []
    status = run_main(lambda: result.append(main()), debug=debug)
    if status:
        sys.exit(status)
    return result[0]


def refuse_positional_arguments(argv: list[str]) -> None:
    """ConfigError naming what absl left over (``python train.py configs/x.py`` must not
    silently run the default config)."""
    if len(argv) > 1:
        raise ConfigError(f"unexpected arguments: {' '.join(argv[1:])} (flags are --name=value)")


_HELP_FLAGS = ("help", "helpshort", "helpfull", "helpxml", "?")


def absl_flags_parser(argv: list[str]) -> list[str]:
    """``absl.app.run``'s ``flags_parser``: a bad flag (unknown, or a value of the wrong type)
    is one ``error:`` line and exit status 2, not absl's FATAL message and status 1; help
    (``--help``, ``-h``, ``--helpfull``, ...) exits with status 0, not absl's 1."""
    from absl import flags

    argv = ["--help" if a == "-h" else a for a in argv]
    try:
        return flags.FLAGS(argv)
    except flags.Error as e:
        print(f"error: {one_line(e)}", file=sys.stderr, flush=True)
        sys.exit(EXIT_INVALID_INPUT)
    except SystemExit as e:
        names = {a.lstrip("-").split("=", 1)[0] for a in argv[1:] if a.startswith("-")}
        if e.code == 1 and names & set(_HELP_FLAGS):
            sys.exit(0)
        raise


def run_main(main: Callable[[], int | None], *, debug: bool = False) -> int:
    """Run ``main()``; turn an expected error into one ``error:`` line and its exit status.

    Returns the status to exit with (0, ``main``'s own int, or the error's status). A
    ``SystemExit`` (preemption, argparse) passes through; any other exception is a bug and
    propagates with its traceback.
    """
    try:
        status = main()
    except Exception as e:  # noqa: BLE001 - classified below; bugs are re-raised
        status = exit_status_of(e)
        if status is None or debug:
            raise
        print(f"error: {one_line(e)}", file=sys.stderr, flush=True)
        return status
    return int(status or 0)
