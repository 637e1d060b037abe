"""Readers of the competition's files, each validating what it reads.

A malformed file fails here, with a :class:`DataValidationError` naming the file, column, rows and
values, not deep inside a model: train.csv and test.csv (:func:`read_train_csv`,
:func:`read_test_csv`), EEG parquet files (:func:`read_eeg`) and Kaggle spectrogram parquet files
(:func:`read_kaggle_spectrogram`). :mod:`hms.competition` checks a whole folder with them.
"""

from __future__ import annotations

import functools
import os
import re
from collections.abc import Sequence
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from hms.schema import (
    CONSENSUS_NAMES,
    EEG_CHANNELS,
    EEG_WINDOW_SAMPLES,
    REGIONS,
    SAMPLE_RATE,
    TEST_COLUMNS,
    TRAIN_COLUMNS,
    VOTE_COLUMNS,
)

_ID_COLUMNS = ("eeg_id", "eeg_sub_id", "spectrogram_id", "spectrogram_sub_id", "label_id", "patient_id")
_TRAIN_INT_COLUMNS = _ID_COLUMNS + VOTE_COLUMNS
#: The largest id: int64's.
MAX_ID = int(np.iinfo(np.int64).max)
#: The largest vote count of one class in one row (real rows have at most 28 votes in all); the
#: bound keeps sums of votes exact and far from overflow.
MAX_VOTES = 1_000_000
#: Floats are exact integers only below 2**53 (2**53 + 1 reads as 2**53): no id is taken from a float that large.
_EXACT_FLOAT_LIMIT = 2**53
_TRAIN_OFFSET_COLUMNS = ("eeg_label_offset_seconds", "spectrogram_label_offset_seconds")


class DataValidationError(ValueError):
    """A competition file is malformed; the message names the file, column, rows and values."""


def _describe_rows(rows: Sequence[int] | np.ndarray, limit: int = 8) -> str:
    rows = [int(r) for r in rows]
    shown = ", ".join(str(r) for r in rows[:limit])
    more = f" and {len(rows) - limit} more" if len(rows) > limit else ""
    return f"row{'s' if len(rows) != 1 else ''} {shown}{more}"


def _fail(path: Path | str, message: str) -> DataValidationError:
    return DataValidationError(f"{path}: {message}")


# ---------------------------------------------------------------------------------------------
# CSV metadata
# ---------------------------------------------------------------------------------------------


def _read_csv(path: Path | str) -> pd.DataFrame:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: file not found")
    try:
        return pd.read_csv(path)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise _fail(path, f"not a readable CSV file ({exc})") from exc


def _require_columns(frame: pd.DataFrame, required: Sequence[str], path: Path | str) -> None:
    missing = [c for c in required if c not in frame.columns]
    if missing:
        raise _fail(path, f"missing column(s) {missing}; found {list(frame.columns)}")


def _exact_integer(value: Any) -> int | None:
    """``value`` as an exact Python int, or None when it is not one (NaN, 2.5, text, a float
    too large to be exact)."""
    if isinstance(value, (bool, np.bool_)):
        return None
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        number = float(value)
        if not np.isfinite(number) or not number.is_integer() or abs(number) >= _EXACT_FLOAT_LIMIT:
            return None
        return int(number)
    if isinstance(value, str):
        try:
            decimal = Decimal(value.strip())
        except InvalidOperation:
            return None
        if not decimal.is_finite() or decimal != decimal.to_integral_value():
            return None
        return int(decimal)
    return None


def _as_int_column(frame: pd.DataFrame, column: str, path: Path | str, *, high: int = MAX_ID) -> pd.Series:
    """The column as int64, each value an exact integer in [0, high]; anything else (2.5, 1e25,
    -1, text, a float beyond 2**53) is a DataValidationError naming the column, values and rows."""
    values = frame[column]
    if pd.api.types.is_integer_dtype(values) and not pd.api.types.is_bool_dtype(values):
        exact = values  # int64, or uint64 for values beyond int64
        bad = (values < 0) | (values > high)
    else:
        exact = values.map(_exact_integer)
        bad = exact.map(lambda v: v is None or not 0 <= v <= high).astype(bool)
    _reject_rows(path, column, values, bad, f"integers from 0 to {high} (dtype {values.dtype})")
    return exact.astype(np.int64)


def _as_offset_column(frame: pd.DataFrame, column: str, path: Path | str) -> pd.Series:
    values = frame[column]
    numeric = pd.to_numeric(values, errors="coerce")
    bad = numeric.isna() | ~np.isfinite(numeric.to_numpy(dtype=float, na_value=np.nan))
    bad |= numeric < 0
    _reject_rows(path, column, values, bad, "finite seconds >= 0")
    return numeric.astype(np.float64)


def _reject_rows(path: Path | str, column: str, values: pd.Series, bad: pd.Series, requirement: str) -> None:
    """Raises naming the file, column, first bad values and rows when any row is ``bad``."""
    if bad.any():
        rows = np.flatnonzero(bad.to_numpy())
        examples = values.iloc[rows[:3]].tolist()
        raise _fail(
            path,
            f"column {column!r} must hold {requirement}; bad values {examples} in "
            f"{_describe_rows(rows)} (0-based, header excluded)",
        )


def _check_unique_mapping(frame: pd.DataFrame, key: str, value: str, path: Path | str) -> None:
    counts = frame.groupby(key)[value].nunique()
    conflicting = counts.index[counts > 1]
    if len(conflicting):
        rows = np.flatnonzero(frame[key].isin(conflicting).to_numpy())
        raise _fail(
            path,
            f"each {key} must belong to one {value}; {key} {conflicting[:3].tolist()} have "
            f"several ({_describe_rows(rows)})",
        )


def read_train_csv(path: str | os.PathLike) -> pd.DataFrame:
    """Read and validate train.csv; return its 15 columns in the competition order.

    Integer columns become int64, offsets float64. Raises :class:`DataValidationError` for a
    missing column, an id or vote that is not an exact integer in range (ids 0..int64's maximum,
    votes 0..:data:`MAX_VOTES`), a negative or non-finite offset,
    a row without votes, an unknown ``expert_consensus``, a duplicate ``label_id`` or an
    eeg_id/spectrogram_id that belongs to two patients.
    """
    path = Path(path)
    frame = _read_csv(path)
    _require_columns(frame, TRAIN_COLUMNS, path)
    out = pd.DataFrame(index=frame.index)
    for column in TRAIN_COLUMNS:
        if column in VOTE_COLUMNS:
            out[column] = _as_int_column(frame, column, path, high=MAX_VOTES)
        elif column in _TRAIN_INT_COLUMNS:
            out[column] = _as_int_column(frame, column, path)
        elif column in _TRAIN_OFFSET_COLUMNS:
            out[column] = _as_offset_column(frame, column, path)
        else:
            out[column] = frame[column]
    votes = out[list(VOTE_COLUMNS)].to_numpy()
    no_votes = votes.sum(axis=1) == 0
    if no_votes.any():
        raise _fail(
            path, f"all six vote columns {list(VOTE_COLUMNS)} are zero in {_describe_rows(np.flatnonzero(no_votes))}"
        )
    unknown = ~out["expert_consensus"].isin(CONSENSUS_NAMES)
    if unknown.any():
        rows = np.flatnonzero(unknown.to_numpy())
        raise _fail(
            path,
            f"column 'expert_consensus' has values "
            f"{sorted(map(str, out['expert_consensus'][unknown].unique()))[:5]} in "
            f"{_describe_rows(rows)}; expected one of {list(CONSENSUS_NAMES)}",
        )
    duplicated = out["label_id"].duplicated(keep=False)
    if duplicated.any():
        rows = np.flatnonzero(duplicated.to_numpy())
        ids = out["label_id"][duplicated].unique()[:5].tolist()
        raise _fail(path, f"column 'label_id' has duplicates {ids} in {_describe_rows(rows)}")
    # Folds are grouped by patient; an id shared by two patients would leak between folds.
    _check_unique_mapping(out, "eeg_id", "patient_id", path)
    _check_unique_mapping(out, "spectrogram_id", "patient_id", path)
    return out


def read_test_csv(path: str | os.PathLike) -> pd.DataFrame:
    """Read and validate test.csv (spectrogram_id, eeg_id, patient_id; one row per eeg_id)."""
    path = Path(path)
    frame = _read_csv(path)
    _require_columns(frame, TEST_COLUMNS, path)
    out = pd.DataFrame({c: _as_int_column(frame, c, path) for c in TEST_COLUMNS})
    duplicated = out["eeg_id"].duplicated(keep=False)
    if duplicated.any():
        rows = np.flatnonzero(duplicated.to_numpy())
        raise _fail(
            path,
            f"column 'eeg_id' must be unique (one submission row per eeg_id); duplicates "
            f"{out['eeg_id'][duplicated].unique()[:5].tolist()} in {_describe_rows(rows)}",
        )
    return out


# ---------------------------------------------------------------------------------------------
# Parquet signals
# ---------------------------------------------------------------------------------------------


def _read_schema(path: Path) -> pa.Schema:
    if not path.is_file():
        raise FileNotFoundError(f"{path}: file not found")
    try:
        return pq.read_schema(path)
    except (pa.ArrowException, OSError) as exc:
        raise _fail(path, f"not a readable parquet file ({exc})") from exc


def _read_table(path: Path, columns: list[str] | None = None) -> pa.Table:
    """The file's columns; a damaged file (a failed decompression, or a page whose checksum does
    not match, where the writer stored page checksums as hms's synthetic files do) names the file."""
    try:
        return pq.read_table(path, columns=columns, page_checksum_verification=True)
    except (pa.ArrowException, OSError) as exc:
        raise _fail(path, f"damaged parquet file ({exc})") from exc


def file_stamp(path: str | os.PathLike) -> tuple[str, int, int, int, int]:
    """(path, size, mtime, inode, change time) of a file: a replaced or rewritten file gets a new
    stamp, so memos of what a file holds are keyed by it."""
    path = Path(path)
    try:
        stat = path.stat()
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: file not found") from None
    return str(path), stat.st_size, stat.st_mtime_ns, stat.st_ino, stat.st_ctime_ns


@functools.lru_cache(maxsize=65536)
def _footer_facts(path: str, *stamp: int) -> tuple[int, int | None, int | None]:
    """(rows, first time, last time) of a parquet file, read from its footer; the times (of a
    ``time`` column) from its statistics, None when absent."""
    try:
        meta = pq.read_metadata(path)
    except (pa.ArrowException, OSError) as exc:
        raise _fail(path, f"not a readable parquet file ({exc})") from exc
    names = meta.schema.names
    if "time" not in names or meta.num_row_groups == 0:
        return meta.num_rows, None, None
    column = names.index("time")
    stats = [meta.row_group(g).column(column).statistics for g in range(meta.num_row_groups)]
    if not all(st is not None and st.has_min_max for st in stats):
        return meta.num_rows, None, None
    return meta.num_rows, min(int(st.min) for st in stats), max(int(st.max) for st in stats)


def eeg_length(path: str | os.PathLike) -> int:
    """The number of samples of an EEG parquet file, from its footer (no signal is read)."""
    return _footer_facts(*file_stamp(path))[0]


def spectrogram_time_range(path: str | os.PathLike) -> tuple[int, int]:
    """(first, last) ``time`` of a Kaggle spectrogram file: from the footer's statistics, or
    (for a writer that stored none) by reading that one column."""
    rows, first, last = _footer_facts(*file_stamp(path))
    if first is not None and last is not None:
        return first, last
    path = Path(path)
    if "time" not in _read_schema(path).names:
        raise _fail(path, "column 'time' missing")
    if rows == 0:
        raise _fail(path, "spectrogram has no rows")
    times = _read_table(path, ["time"]).column("time").to_numpy()
    return int(np.nanmin(times)), int(np.nanmax(times))


def _column_as_float32(table: pa.Table, name: str, path: Path) -> np.ndarray:
    column = table.column(name)
    if not (pa.types.is_floating(column.type) or pa.types.is_integer(column.type)):
        raise _fail(path, f"column {name!r} has type {column.type}; expected float32")
    # Nulls (if a writer stored NaN as null) become NaN, like NaN values.
    with np.errstate(over="ignore"):  # beyond float32: inf, refused just below
        values = column.to_numpy().astype(np.float32, copy=False)
    infinite = np.isinf(values)
    if infinite.any():
        rows = np.flatnonzero(infinite)
        raise _fail(
            path,
            f"column {name!r} holds inf or values beyond float32 (e.g. {column[int(rows[0])].as_py()}) in "
            f"{_describe_rows(rows)}; only NaN gaps are allowed",
        )
    return values


def read_eeg(
    path: str | os.PathLike, *, exact_rows: int | None = None, min_rows: int = EEG_WINDOW_SAMPLES
) -> np.ndarray:
    """Read an EEG parquet file as a channels-first float32 array of shape (20, n_samples).

    Channels come in :data:`EEG_CHANNELS` order whatever the file's column order; a missing
    channel, a non-numeric column, fewer than ``min_rows`` rows (50 s) or, when ``exact_rows`` is
    given (test files: 10,000), any other row count raises :class:`DataValidationError`.
    NaN runs are kept: the preprocessing decides how to fill them.
    """
    path = Path(path)
    schema = _read_schema(path)
    missing = [c for c in EEG_CHANNELS if c not in schema.names]
    if missing:
        raise _fail(path, f"EEG channel(s) {missing} missing; found columns {schema.names}")
    table = _read_table(path, list(EEG_CHANNELS))
    n_rows = table.num_rows
    if exact_rows is not None and n_rows != exact_rows:
        raise _fail(path, f"EEG has {n_rows} rows; expected exactly {exact_rows}")
    if n_rows < min_rows:
        raise _fail(
            path,
            f"EEG has {n_rows} rows ({n_rows / SAMPLE_RATE:g} s); at least {min_rows} "
            f"({min_rows / SAMPLE_RATE:g} s) are needed",
        )
    out = np.empty((len(EEG_CHANNELS), n_rows), dtype=np.float32)
    for i, name in enumerate(EEG_CHANNELS):
        out[i] = _column_as_float32(table, name, path)
    return out


class KaggleSpectrogram(NamedTuple):
    """A Kaggle spectrogram: values (regions=4, freqs=100, time) float32 in REGIONS order."""

    values: np.ndarray
    freqs: np.ndarray
    times: np.ndarray


_SPEC_NAME = re.compile(r"^(?P<region>[A-Z]{2})_(?P<freq>\d+(?:\.\d+)?)$")


def read_kaggle_spectrogram(path: str | os.PathLike) -> KaggleSpectrogram:
    """Read a Kaggle spectrogram parquet file.

    Expects ``time`` (integer seconds, strictly increasing) and, per region of :data:`REGIONS`,
    the same list of ``<region>_<Hz>`` columns. The frequency axis is parsed from the names.
    """
    path = Path(path)
    schema = _read_schema(path)
    if "time" not in schema.names:
        raise _fail(path, f"column 'time' missing; found {schema.names[:5]}...")
    per_region: dict[str, list[tuple[str, float]]] = {r: [] for r in REGIONS}
    for name in schema.names:
        if name == "time":
            continue
        match = _SPEC_NAME.match(name)
        if match is None or match["region"] not in per_region:
            raise _fail(path, f"unexpected column {name!r}; expected <region>_<Hz>, {REGIONS}")
        per_region[match["region"]].append((name, float(match["freq"])))
    reference = [f for _, f in per_region[REGIONS[0]]]
    for region in REGIONS:
        freqs = [f for _, f in per_region[region]]
        if not freqs:
            raise _fail(path, f"no columns for region {region!r}")
        if freqs != reference:
            raise _fail(path, f"region {region!r} has other frequencies than {REGIONS[0]!r}")
    if np.any(np.diff(reference) <= 0):
        raise _fail(path, "frequency columns are not in increasing order")
    table = _read_table(path)
    time_column = table.column("time")
    if not pa.types.is_integer(time_column.type):
        raise _fail(path, f"column 'time' has type {time_column.type}; expected int64")
    if time_column.null_count:
        raise _fail(path, "column 'time' has missing values")
    times = time_column.to_numpy().astype(np.int64)
    decreasing = np.flatnonzero(np.diff(times) <= 0)
    if len(decreasing):
        raise _fail(path, f"column 'time' is not strictly increasing at {_describe_rows(decreasing + 1)}")
    values = np.empty((len(REGIONS), len(reference), len(times)), dtype=np.float32)
    for r, region in enumerate(REGIONS):
        for f, (name, _) in enumerate(per_region[region]):
            values[r, f] = _column_as_float32(table, name, path)
    return KaggleSpectrogram(values, np.asarray(reference, dtype=np.float64), times)
