"""Readers of the competition's files, each validating what it reads.

A malformed file fails here, with a :class:`DataValidationError` naming the file, column, rows and
values, not deep inside a model: train.csv and test.csv (:func:`read_train_csv`,
:func:`read_test_csv`), EEG parquet files (:func:`read_eeg`) and Kaggle spectrogram parquet files
(:func:`read_kaggle_spectrogram`). :mod:`hms.competition` checks a whole folder with them.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

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

_TRAIN_INT_COLUMNS = (
    "eeg_id",
    "eeg_sub_id",
    "spectrogram_id",
    "spectrogram_sub_id",
    "label_id",
    "patient_id",
) + VOTE_COLUMNS
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


def _as_int_column(frame: pd.DataFrame, column: str, path: Path | str) -> pd.Series:
    values = frame[column]
    if pd.api.types.is_integer_dtype(values) and not pd.api.types.is_bool_dtype(values):
        return values.astype(np.int64)
    numeric = pd.to_numeric(values, errors="coerce")
    _reject_rows(
        path, column, values, numeric.isna() | (numeric != np.round(numeric)), f"integers (dtype {values.dtype})"
    )
    return numeric.astype(np.int64)


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
    missing column, a non-integer id or vote, a negative or non-finite offset, a negative vote,
    a row without votes, an unknown ``expert_consensus``, a duplicate ``label_id`` or an
    eeg_id/spectrogram_id that belongs to two patients.
    """
    path = Path(path)
    frame = _read_csv(path)
    _require_columns(frame, TRAIN_COLUMNS, path)
    out = pd.DataFrame(index=frame.index)
    for column in TRAIN_COLUMNS:
        if column in _TRAIN_INT_COLUMNS:
            out[column] = _as_int_column(frame, column, path)
        elif column in _TRAIN_OFFSET_COLUMNS:
            out[column] = _as_offset_column(frame, column, path)
        else:
            out[column] = frame[column]
    votes = out[list(VOTE_COLUMNS)].to_numpy()
    negative = (votes < 0).any(axis=1)
    if negative.any():
        rows = np.flatnonzero(negative)
        columns = [VOTE_COLUMNS[j] for j in np.flatnonzero((votes[rows] < 0).any(axis=0))]
        raise _fail(path, f"negative votes in column(s) {columns}, {_describe_rows(rows)}")
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
    except (pa.ArrowInvalid, OSError) as exc:
        raise _fail(path, f"not a readable parquet file ({exc})") from exc


def _column_as_float32(table: pa.Table, name: str, path: Path) -> np.ndarray:
    column = table.column(name)
    if not (pa.types.is_floating(column.type) or pa.types.is_integer(column.type)):
        raise _fail(path, f"column {name!r} has type {column.type}; expected float32")
    # Nulls (if a writer stored NaN as null) become NaN, like NaN values.
    return column.to_numpy().astype(np.float32, copy=False)


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
    table = pq.read_table(path, columns=list(EEG_CHANNELS))
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
    table = pq.read_table(path)
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
