"""On-disk cache of preprocessed model-input sources (Kaggle log windows, EEG chain spectrograms).

One float16 entry per (split, file id, window offset) under
``<root>/<source>-<key>/<split>/<id>_<offset in ms>.arr``, where ``key`` hashes every parameter
that shapes the array (plus the data folder, the hms version and the entry format): a changed
parameter gets a fresh folder and never reuses stale arrays.

The cache checks itself. Each entry records the identity of the file it was computed from (size,
modification time and a hash of the file's last 64 KiB, which hold the parquet footer) and a
CRC-32 of its values: an entry whose source file was replaced is recomputed, and a damaged one
(wrong header, wrong length, a checksum that does not match, non-finite values) is named in a
warning, discarded and recomputed, never used as data. Entries are written atomically (temp +
os.replace), so an interrupted writer leaves no half-written array and a rerun only computes what
is missing.

Entry layout: ``MAGIC``, a little-endian uint32 header length, a JSON header (dtype, shape, crc32,
source identity), then the values.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import os
import struct
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from hms import __version__, dsp
from hms.io import atomic_output, cache_dir, write_json_atomic
from hms.readers import file_stamp

log = logging.getLogger(__name__)

#: Bump when what a cached entry holds changes without a parameter changing.
CACHE_FORMAT = 2
MAGIC = b"HMSARRAY"
SUFFIX = ".arr"
_DTYPE = np.dtype("<f2")
_LENGTH = struct.Struct("<I")
_MAX_HEADER = 4096
#: How much of a source file's end its identity hashes (a parquet footer is a few KiB).
_TAIL_BYTES = 64 * 1024


class CacheEntryError(ValueError):
    """A cache entry is damaged; the message names the file and what is wrong."""


def cache_key(source: str, params: dict[str, Any], data_root: str | os.PathLike) -> str:
    """16 hex digits of a SHA-256 over the source name, its parameters, the data folder, the hms
    version (a native kernel may change between versions) and the entry format."""
    payload = {
        "source": source,
        "params": params,
        "data": str(Path(data_root).resolve()),
        "hms": __version__,
        "format": CACHE_FORMAT,
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]


def source_identity(path: str | os.PathLike) -> str:
    """What identifies a source file's content: its size, modification time and a SHA-256 of its
    last 64 KiB (the parquet footer with its statistics), as hex."""
    return _identity(*file_stamp(path))


@functools.lru_cache(maxsize=4096)
def _identity(path: str, size: int, mtime_ns: int, *stamp: int) -> str:
    with open(path, "rb") as handle:
        handle.seek(max(0, size - _TAIL_BYTES))
        tail = handle.read(_TAIL_BYTES)
    digest = hashlib.sha256(f"{size}:{mtime_ns}:".encode())
    digest.update(tail)
    return digest.hexdigest()[:32]


def encode_entry(array: np.ndarray, source: str) -> bytes:
    """The bytes of a cache entry holding ``array`` (float16) computed from the file ``source``
    identifies."""
    values = np.ascontiguousarray(array, dtype=_DTYPE)
    payload = values.tobytes()
    header = json.dumps(
        {"dtype": _DTYPE.str, "shape": list(values.shape), "crc32": zlib.crc32(payload), "source": source}
    ).encode()
    return MAGIC + _LENGTH.pack(len(header)) + header + payload


def decode_entry(raw: bytes, path: Path) -> tuple[np.ndarray, str]:
    """(float16 values, source identity) of an entry's bytes; CacheEntryError naming ``path``
    and the defect when they are not a whole, intact entry."""

    def damaged(why: str) -> CacheEntryError:
        return CacheEntryError(f"{path}: damaged input cache entry ({why})")

    start = len(MAGIC) + _LENGTH.size
    if len(raw) < start or not raw.startswith(MAGIC):
        raise damaged("not an hms cache entry")
    (header_length,) = _LENGTH.unpack_from(raw, len(MAGIC))
    if header_length > _MAX_HEADER or start + header_length > len(raw):
        raise damaged(f"header length {header_length}")
    try:
        header = json.loads(raw[start : start + header_length])
        shape = tuple(int(d) for d in header["shape"])
        dtype, crc, source = np.dtype(header["dtype"]), int(header["crc32"]), str(header["source"])
    except (ValueError, KeyError, TypeError) as exc:
        raise damaged(f"unreadable header: {exc}") from None
    payload = memoryview(raw)[start + header_length :]  # no copy of the values
    if dtype != _DTYPE or any(d < 0 for d in shape) or len(payload) != int(np.prod(shape)) * dtype.itemsize:
        raise damaged(f"{len(payload)} bytes of values for dtype {dtype} and shape {shape}")
    if zlib.crc32(payload) != crc:
        raise damaged("checksum mismatch")
    return np.frombuffer(payload, dtype=dtype).reshape(shape), source


class SourceCache:
    """Arrays of one source under one parameter key; ``locate(split, file id)`` is the source
    file an entry is computed from (its identity is checked on every read)."""

    def __init__(
        self,
        root: str | os.PathLike | None,
        source: str,
        params: dict[str, Any],
        data_root: str | os.PathLike,
        locate: Callable[[str, int], Path],
    ):
        base = Path(root) if root is not None else cache_dir() / "inputs"
        self.folder = base / f"{source}-{cache_key(source, params, data_root)}"
        self._params = {"source": source, "params": params, "data": str(Path(data_root).resolve())}
        self._locate = locate

    def path(self, split: str, file_id: int, offset_seconds: float) -> Path:
        return self.folder / split / f"{int(file_id)}_{int(round(float(offset_seconds) * 1000))}{SUFFIX}"

    def load(self, split: str, file_id: int, offset_seconds: float) -> np.ndarray | None:
        """The cached float32 array, or None when there is none to use: absent, computed from a
        file since replaced (discarded), or damaged (named in a warning, then discarded)."""
        path = self.path(split, file_id, offset_seconds)
        try:
            raw = path.read_bytes()
        except FileNotFoundError:
            return None
        try:
            stored, source = decode_entry(raw, path)
            if source != source_identity(self._locate(split, file_id)):
                log.debug("%s: its source file changed; recomputing", path)
                path.unlink(missing_ok=True)
                return None
            values = dsp.to_float32(stored)
            if not np.isfinite(values).all():
                raise CacheEntryError(f"{path}: damaged input cache entry (non-finite values)")
        except CacheEntryError as exc:
            log.warning("%s; discarded, recomputing", exc)
            path.unlink(missing_ok=True)
            return None
        return values

    def contains(self, split: str, file_id: int, offset_seconds: float) -> bool:
        """Whether a usable entry is present (read and checked in full)."""
        return self.load(split, file_id, offset_seconds) is not None

    def save(self, split: str, file_id: int, offset_seconds: float, array: np.ndarray) -> None:
        with np.errstate(over="ignore"):  # overflow becomes inf, refused just below
            stored = np.asarray(array).astype(_DTYPE)
        if not np.isfinite(stored).all():
            raise ValueError(
                f"refusing to cache non-finite float16 values for {split} id {file_id} offset "
                f"{offset_seconds} (float32 range {np.nanmin(array)}..{np.nanmax(array)})"
            )
        entry = encode_entry(stored, source_identity(self._locate(split, file_id)))
        if not (self.folder / "params.json").is_file():
            # Human-readable record of what the hashed folder holds.
            write_json_atomic(self.folder / "params.json", self._params, sort_keys=True)
        with atomic_output(self.path(split, file_id, offset_seconds)) as tmp:
            tmp.write_bytes(entry)
