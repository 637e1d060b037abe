"""What the commands share: the ``hms`` command, option spellings, and how errors end a command.

``hms SUBCOMMAND ...`` (or ``python -m hms SUBCOMMAND ...``) runs the subcommand's module (:data:`SUBCOMMANDS`). Shared options
are spelled alike everywhere: ``--data-dir``, ``--device``, ``--out`` (a file) or ``--out-dir`` (a
folder), ``--progress`` / ``--no-progress``; config-based commands take every config key as
``--key value`` or ``key=value``.

Every command's ``main`` is wrapped by :func:`command`: an error in what the user gave (a file,
folder, value or setting: :data:`USER_ERRORS`) ends the command with one line, ``error: ...``,
naming the file, column or option, on stderr and exit status :data:`EXIT_USER_ERROR` (2, as for
a bad option). Set ``HMS_DEBUG=1`` to get the traceback instead. Anything else is a bug and keeps
its traceback.
"""

from __future__ import annotations

import argparse
import difflib
import functools
import importlib
import os
import sys
from collections.abc import Callable, Sequence

from hms import __version__, config, progress
from hms.config import Config

#: Subcommand -> (module whose ``main(argv)`` runs it, one-line description).
SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "train": ("hms.train", "K-fold cross-validated training of one model"),
    "tune": ("hms.tune", "Optuna search over training settings"),
    "ensemble": ("hms.ensemble", "score and save ensembles of trained runs"),
    "predict": ("hms.predict", "a run or ensemble -> submission.csv (or one recording's probabilities)"),
    "prepare": ("hms.prepare", "precompute the input cache"),
    "synth": ("hms.synth", "write a synthetic dataset in the competition layout"),
    "overview": ("hms.overview", "class and vote distributions of a dataset (PNG)"),
    "show-sample": ("hms.show_sample", "render one sample's model input (PNG)"),
    "baselines": ("hms.baselines", "uniform, class-prior and band-power baselines on patient folds"),
    "export": ("hms.export", "a run's fold models as TorchScript or ONNX files, with their input specs"),
}

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


def add_progress_option(parser: argparse.ArgumentParser) -> None:
    """``--progress`` / ``--no-progress``: progress bars on stderr (on by default), as a config's
    ``progress`` key in the config-based commands."""
    parser.add_argument(
        "--progress", action=argparse.BooleanOptionalAction, default=True, help="progress bars on stderr [default: on]"
    )


def add_data_dir_option(parser: argparse.ArgumentParser, help: str = "competition folder") -> None:
    parser.add_argument("--data-dir", metavar="DIR", help=f"{help} [default: the synthetic set]")


def parse_command(parser: argparse.ArgumentParser, argv: Sequence[str] | None) -> argparse.Namespace:
    """The options of a command without a config, with its progress bars and log lines set up."""
    args = parser.parse_args(argv)
    progress.configure(progress=getattr(args, "progress", True))
    return args


def parse_config_command(
    parser: argparse.ArgumentParser, argv: Sequence[str] | None
) -> tuple[argparse.Namespace, Config]:
    """(other options, resolved Config) of a command built on the Config, with its progress bars
    and log lines turned on as the config says."""
    args, cfg = config.parse_args(parser, argv)
    progress.configure(progress=cfg.progress)
    return args, cfg


def main(argv: Sequence[str] | None = None) -> int:
    """The ``hms`` command: ``hms SUBCOMMAND [options]``."""
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help"):
        width = max(map(len, SUBCOMMANDS))
        lines = [f"  {name:<{width}}  {text}" for name, (_, text) in SUBCOMMANDS.items()]
        print("usage: hms SUBCOMMAND [options]   (hms SUBCOMMAND --help for its options)\n\nsubcommands:")
        print("\n".join(lines))
        return 0 if args else EXIT_USER_ERROR
    if args[0] == "--version":
        print(f"hms {__version__}")
        return 0
    name = args[0].replace("_", "-")
    if name not in SUBCOMMANDS:
        close = difflib.get_close_matches(name, list(SUBCOMMANDS), n=1)
        hint = f" (did you mean '{close[0]}'?)" if close else ""
        return report_user_error(ValueError(f"unknown subcommand '{args[0]}'{hint}; hms --help lists them"))
    module = importlib.import_module(SUBCOMMANDS[name][0])
    return module.main(args[1:])
