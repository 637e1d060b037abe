"""Progress bars and log lines of long work, shown only where a command asks for them.

Library code reports progress with :func:`bar` and logs with :mod:`logging` (loggers named
``hms.<module>``); nothing is shown until a command line calls :func:`configure`, so ``import hms``
in a notebook, a test or a worker process stays quiet unless asked. Log lines are written through
tqdm, so they do not tear an active progress bar.
"""

from __future__ import annotations

import io
import logging
import sys
from collections.abc import Iterable
from typing import Any, TypeVar

from tqdm.auto import tqdm

T = TypeVar("T")
_bars = False


class _TqdmHandler(logging.Handler):
    def emit(self, record: logging.LogRecord) -> None:
        try:
            tqdm.write(self.format(record), file=sys.stderr)
        except Exception:  # noqa: BLE001 - logging must never raise into the caller
            self.handleError(record)


def configure(*, progress: bool = True, verbose: bool = True) -> None:
    """Turn progress bars on or off, show hms's log lines on stderr (INFO and up, or WARNING
    and up when not ``verbose``) and make stdout line-buffered; calling it again replaces the
    earlier settings."""
    global _bars
    _bars = progress
    # Printed lines reach a redirected log file (e.g. a tuning worker's) as they are printed,
    # not when a block buffer fills; PYTHONUNBUFFERED cannot do this once Python has started.
    if isinstance(sys.stdout, io.TextIOWrapper) and not sys.stdout.line_buffering:
        sys.stdout.reconfigure(line_buffering=True)
    logger = logging.getLogger("hms")
    for handler in [h for h in logger.handlers if isinstance(h, _TqdmHandler)]:
        logger.removeHandler(handler)
    handler = _TqdmHandler()
    handler.setFormatter(logging.Formatter("%(message)s"))
    logger.addHandler(handler)
    logger.setLevel(logging.INFO if verbose else logging.WARNING)
    logger.propagate = False


def bars_enabled() -> bool:
    return _bars


def bar(iterable: Iterable[T] | None = None, *, show: bool = True, **kwargs: Any) -> tqdm:
    """A tqdm bar over ``iterable`` (keyword arguments as tqdm's), shown when a command turned
    progress on and ``show`` (the caller's own switch, e.g. ``Config.progress``) allows it."""
    return tqdm(iterable, disable=not (_bars and show), **kwargs)
