"""On-disk cache of preprocessed model-input sources (Kaggle log windows, EEG chain spectrograms).

One float16 ``.npy`` per (split, file id, window offset) under
``<root>/<source>-<key>/<split>/<id>_<offset in ms>.npy``, where ``key`` hashes every parameter
that shapes the array (plus the data folder and a format version): a changed parameter gets a
fresh folder and never reuses stale arrays. Files are written atomically (temp + os.replace), so
an interrupted writer leaves no half-written array and a rerun only computes what is missing.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from hms import __version__, dsp
from hms.io import atomic_output, cache_dir, write_json_atomic

#: Bump when what a cached array holds changes without a parameter changing.
CACHE_FORMAT = 1


def cache_key(source: str, params: dict[str, Any], data_root: str | os.PathLike) -> str:
    """16 hex digits of a SHA-256 over the source name, its parameters, the data folder, the hms
    version (a native kernel may change between versions) and the cache format."""
    root = Path(data_root).resolve()
    # A folder whose CSVs were replaced (e.g. Kaggle's hidden test set) must not reuse arrays.
    csvs = {name: _file_stamp(root / name) for name in ("train.csv", "test.csv")}
    payload = {
        "source": source,
        "params": params,
        "data": str(root),
        "csvs": csvs,
        "hms": __version__,
        "format": CACHE_FORMAT,
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]


def _file_stamp(path: Path) -> list[int] | None:
    try:
        stat = path.stat()
    except FileNotFoundError:
        return None
    return [stat.st_size, stat.st_mtime_ns]


@dataclass(frozen=True)
class _NpyLayout:
    """The header bytes, dtype, shape and file size of a plain (C-order, numeric) .npy file."""

    header: bytes
    dtype: np.dtype
    shape: tuple[int, ...]
    size: int

    @classmethod
    def of(cls, raw: bytes, array: np.ndarray) -> _NpyLayout | None:
        """The layout of the .npy bytes ``raw`` that ``np.load`` read as ``array``."""
        buffer = io.BytesIO(raw)
        major, _ = np.lib.format.read_magic(buffer)
        read = np.lib.format.read_array_header_1_0 if major == 1 else np.lib.format.read_array_header_2_0
        shape, fortran, dtype = read(buffer)
        offset = buffer.tell()
        if fortran or dtype.hasobject or len(raw) != offset + array.nbytes:
            return None
        return cls(raw[:offset], dtype, tuple(shape), len(raw))


class SourceCache:
    """Arrays of one source under one parameter key."""

    def __init__(
        self, root: str | os.PathLike | None, source: str, params: dict[str, Any], data_root: str | os.PathLike
    ):
        base = Path(root) if root is not None else cache_dir() / "inputs"
        self.folder = base / f"{source}-{cache_key(source, params, data_root)}"
        self._params = {"source": source, "params": params, "data": str(Path(data_root).resolve())}
        self._layout: _NpyLayout | None = None

    def path(self, split: str, file_id: int, offset_seconds: float) -> Path:
        return self.folder / split / f"{int(file_id)}_{int(round(float(offset_seconds) * 1000))}.npy"

    def load(self, split: str, file_id: int, offset_seconds: float) -> np.ndarray | None:
        """The cached float32 array, or None when absent (or unreadable: it is then recomputed).

        The files of one cache share a header; once one file has been parsed, a file that starts
        with the same header bytes and has the same length is read without parsing it again."""
        path = self.path(split, file_id, offset_seconds)
        try:
            raw = path.read_bytes()
        except OSError:
            return None
        layout = self._layout
        if layout is not None and len(raw) == layout.size and raw.startswith(layout.header):
            stored = np.frombuffer(raw, dtype=layout.dtype, offset=len(layout.header)).reshape(layout.shape)
        else:
            try:
                stored = np.load(io.BytesIO(raw))
            except (ValueError, OSError, EOFError):
                return None
            self._layout = _NpyLayout.of(raw, stored)
        return dsp.to_float32(stored)

    def contains(self, split: str, file_id: int, offset_seconds: float) -> bool:
        return self.path(split, file_id, offset_seconds).is_file()

    def save(self, split: str, file_id: int, offset_seconds: float, array: np.ndarray) -> None:
        with np.errstate(over="ignore"):  # overflow becomes inf, refused just below
            stored = np.asarray(array).astype(np.float16)
        if not np.isfinite(stored).all():
            raise ValueError(
                f"refusing to cache non-finite float16 values for {split} id {file_id} offset "
                f"{offset_seconds} (float32 range {np.nanmin(array)}..{np.nanmax(array)})"
            )
        path = self.path(split, file_id, offset_seconds)
        if not (self.folder / "params.json").is_file():
            # Human-readable record of what the hashed folder holds.
            write_json_atomic(self.folder / "params.json", self._params, sort_keys=True)
        with atomic_output(path) as tmp:
            with open(tmp, "wb") as handle:  # a file object: np.save would append .npy to a path
                np.save(handle, stored)
