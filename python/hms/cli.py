"""What the commands share: parsing a config-based command line, and how errors end a command.

Every command's ``main`` is wrapped by :func:`command`: an error in what the user gave (a file,
folder, value or setting: :data:`USER_ERRORS`) ends the command with one line, ``error: ...``,
naming the file, column or option, on stderr and exit status :data:`EXIT_USER_ERROR` (2, as for
a bad option). Set ``HMS_DEBUG=1`` to get the traceback instead. Anything else is a bug and keeps
its traceback.
"""

from __future__ import annotations

import argparse
import functools
import os
import sys
from collections.abc import Callable, Sequence

from hms import config, progress
from hms.config import Config

#: Errors that describe the user's input: bad data files (DataValidationError), values and
#: settings (ConfigError and other ValueErrors), files and folders (OSError), settings that make
#: training diverge (FloatingPointError).
USER_ERRORS: tuple[type[BaseException], ...] = (ValueError, OSError, NotImplementedError, FloatingPointError)
EXIT_USER_ERROR = 2
DEBUG_ENV = "HMS_DEBUG"

Main = Callable[..., int]


def report_user_error(exc: BaseException, prefix: str = "") -> int:
    """Prints ``exc`` as one ``error:`` line on stderr; returns the exit status for it."""
    text = " ".join(line.strip() for line in str(exc).splitlines() if line.strip()) or type(exc).__name__
    print(f"error: {prefix}{text}", file=sys.stderr)
    return EXIT_USER_ERROR


def command(main: Main) -> Main:
    """``main`` with :data:`USER_ERRORS` ending it as one line and exit status 2."""

    @functools.wraps(main)
    def run(argv: Sequence[str] | None = None) -> int:
        try:
            return main(argv)
        except USER_ERRORS as exc:
            if os.environ.get(DEBUG_ENV):
                raise
            return report_user_error(exc)

    return run


def parse_config_command(
    parser: argparse.ArgumentParser, argv: Sequence[str] | None
) -> tuple[argparse.Namespace, Config]:
    """(other options, resolved Config) of a command built on the Config, with its progress bars
    and log lines turned on as the config says."""
    args, cfg = config.parse_args(parser, argv)
    progress.configure(progress=cfg.progress)
    return args, cfg
