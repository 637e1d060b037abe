"""Atomic file output and hms's own folders.

Every file hms writes goes through :func:`atomic_output`: written under a temporary name next to
its target and renamed onto it only when complete, so an interrupted run never leaves a truncated
checkpoint, cache entry, table or study file behind.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pandas as pd

#: Overrides where hms keeps generated data (the synthetic set, the input cache).
CACHE_ENV = "HMS_CACHE_DIR"


def cache_dir() -> Path:
    """Where hms keeps generated data: $HMS_CACHE_DIR, else ~/.cache/hms."""
    override = os.environ.get(CACHE_ENV)
    return Path(override).expanduser() if override else Path.home() / ".cache" / "hms"


def _read_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


# Read once: os.umask is process-wide and not safe to toggle while other threads create files.
_UMASK = _read_umask()


def publish_permissions(path: str | os.PathLike[str]) -> None:
    """Give a file or folder made by tempfile (0600/0700) the usual permissions (umask)."""
    os.chmod(path, (0o777 if os.path.isdir(path) else 0o666) & ~_UMASK)


@contextmanager
def atomic_output(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; move it onto ``path`` only if the block succeeds.

    An interrupted writer leaves at most a hidden ``.<name>.*.tmp`` file, never a truncated
    ``path`` (os.replace is atomic within one file system).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        publish_permissions(tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_text_atomic(path: str | os.PathLike[str], text: str) -> None:
    with atomic_output(path) as tmp:
        tmp.write_text(text)


def write_json_atomic(path: str | os.PathLike[str], value: Any, **kwargs: Any) -> None:
    """``value`` as indented JSON (``kwargs`` go to json.dumps), written atomically."""
    write_text_atomic(path, json.dumps(value, indent=2, **kwargs) + "\n")


def write_csv_atomic(frame: pd.DataFrame, path: str | os.PathLike[str]) -> None:
    with atomic_output(path) as tmp:
        frame.to_csv(tmp, index=False)
