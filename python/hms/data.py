"""The competition data: layout, readers, validation, windows, labels, folds.

Everything that touches the competition folder goes through this module, so a wrong folder fails
here with a message naming the file, column, rows and values, not deep inside a model.

Layout (the Kaggle "HMS Harmful Brain Activity Classification" folder)::

    train.csv  test.csv  sample_submission.csv
    train_eegs/<eeg_id>.parquet          train_spectrograms/<spectrogram_id>.parquet
    test_eegs/<eeg_id>.parquet           test_spectrograms/<spectrogram_id>.parquet

Windows of a label row (centre T of the labelled 10 s):

* EEG: rows ``[offset*200, (offset+50)*200)`` of the EEG file (``T = offset + 25``).
* Kaggle spectrogram: rows with ``offset <= time < offset + 600`` (300 frames of 2 s).
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
import warnings
from contextlib import contextmanager
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Iterator, NamedTuple, Sequence

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from hms import CLASSES

# ---------------------------------------------------------------------------------------------
# Constants of the competition format
# ---------------------------------------------------------------------------------------------

EEG_CHANNELS: tuple[str, ...] = (
    "Fp1", "F3", "C3", "P3", "F7", "T3", "T5", "O1", "Fz", "Cz",
    "Pz", "Fp2", "F4", "C4", "P4", "F8", "T4", "T6", "O2", "EKG",
)  # fmt: skip
SAMPLE_RATE = 200
EEG_WINDOW_SECONDS = 50
EEG_WINDOW_SAMPLES = EEG_WINDOW_SECONDS * SAMPLE_RATE
LABELLED_SECONDS = 10  # the experts labelled the central 10 s of each window
SPEC_WINDOW_SECONDS = 600
SPEC_FRAME_SECONDS = 2
SPEC_WINDOW_FRAMES = SPEC_WINDOW_SECONDS // SPEC_FRAME_SECONDS
TEST_EEG_ROWS = EEG_WINDOW_SAMPLES
TEST_SPEC_ROWS = SPEC_WINDOW_FRAMES

#: Kaggle spectrogram regions, in the files' column order.
REGIONS: tuple[str, ...] = ("LL", "RL", "LP", "RP")
#: Double-banana chains of each region (electrode pairs, anterior to posterior), REGIONS order.
BIPOLAR_CHAINS: dict[str, tuple[tuple[str, str], ...]] = {
    "LL": (("Fp1", "F7"), ("F7", "T3"), ("T3", "T5"), ("T5", "O1")),
    "RL": (("Fp2", "F8"), ("F8", "T4"), ("T4", "T6"), ("T6", "O2")),
    "LP": (("Fp1", "F3"), ("F3", "C3"), ("C3", "P3"), ("P3", "O1")),
    "RP": (("Fp2", "F4"), ("F4", "C4"), ("C4", "P4"), ("P4", "O2")),
}


def _kaggle_frequency_label(bin_index: int) -> str:
    # The files name bin k of a 1024-point FFT at 200 Hz, rounded half-up to 2 decimals with
    # trailing zeros dropped ("3.13", "4.1"); float formatting would round 3.125 to "3.12".
    exact = Decimal(bin_index * SAMPLE_RATE) / Decimal(1024)
    return format(exact.quantize(Decimal("0.01"), rounding=ROUND_HALF_UP).normalize(), "f")


SPEC_FFT_SIZE = 1024
SPEC_FREQ_BINS: tuple[int, ...] = tuple(range(3, 103))
SPEC_FREQ_LABELS: tuple[str, ...] = tuple(_kaggle_frequency_label(k) for k in SPEC_FREQ_BINS)
SPEC_COLUMNS: tuple[str, ...] = ("time",) + tuple(
    f"{region}_{label}" for region in REGIONS for label in SPEC_FREQ_LABELS
)

VOTE_COLUMNS: tuple[str, ...] = tuple(f"{c}_vote" for c in CLASSES)
#: In label frames the VOTE_COLUMNS hold vote fractions (the targets), as in a submission.
TARGET_COLUMNS = VOTE_COLUMNS
CONSENSUS_NAMES: tuple[str, ...] = ("Seizure", "LPD", "GPD", "LRDA", "GRDA", "Other")

TRAIN_COLUMNS: tuple[str, ...] = (
    "eeg_id", "eeg_sub_id", "eeg_label_offset_seconds", "spectrogram_id",
    "spectrogram_sub_id", "spectrogram_label_offset_seconds", "label_id", "patient_id",
    "expert_consensus",
) + VOTE_COLUMNS  # fmt: skip
TEST_COLUMNS: tuple[str, ...] = ("spectrogram_id", "eeg_id", "patient_id")
_TRAIN_INT_COLUMNS = (
    "eeg_id", "eeg_sub_id", "spectrogram_id", "spectrogram_sub_id", "label_id", "patient_id",
) + VOTE_COLUMNS  # fmt: skip
_TRAIN_OFFSET_COLUMNS = ("eeg_label_offset_seconds", "spectrogram_label_offset_seconds")

GROUPINGS = ("eeg", "spectrogram", "row")

#: Synthetic sets carry this file (not part of the competition layout).
SYNTHETIC_MARKER = "synthetic.json"


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
# Atomic output
# ---------------------------------------------------------------------------------------------


def _read_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


# Read once: os.umask is process-wide and not safe to toggle while other threads create files.
_UMASK = _read_umask()


def publish_permissions(path: str | os.PathLike) -> None:
    """Give a file or folder made by tempfile (0600/0700) the usual permissions (umask)."""
    os.chmod(path, (0o777 if os.path.isdir(path) else 0o666) & ~_UMASK)


@contextmanager
def atomic_output(path: str | os.PathLike) -> Iterator[Path]:
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


def write_csv_atomic(frame: pd.DataFrame, path: str | os.PathLike) -> None:
    with atomic_output(path) as tmp:
        frame.to_csv(tmp, index=False)


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
    _reject_rows(path, column, values, numeric.isna() | (numeric != np.round(numeric)), f"integers (dtype {values.dtype})")
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
            path,
            f"all six vote columns {list(VOTE_COLUMNS)} are zero in "
            f"{_describe_rows(np.flatnonzero(no_votes))}",
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
    path: str | os.PathLike,
    *,
    exact_rows: int | None = None,
    min_rows: int = EEG_WINDOW_SAMPLES,
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


# ---------------------------------------------------------------------------------------------
# Windows
# ---------------------------------------------------------------------------------------------


def _offset_to_sample(offset_seconds: float) -> int:
    if not np.isfinite(offset_seconds) or offset_seconds < 0:
        raise ValueError(f"window offset must be finite and >= 0 seconds, got {offset_seconds}")
    return int(round(float(offset_seconds) * SAMPLE_RATE))


def eeg_window(eeg: np.ndarray, offset_seconds: float) -> np.ndarray:
    """The 50-s EEG window of a label row: samples [offset*200, offset*200 + 10,000).

    Returns a view of shape (channels, 10,000). A window that runs past the end of the recording
    raises ValueError (the competition's windows always fit; padding would invent signal).
    """
    start = _offset_to_sample(offset_seconds)
    stop = start + EEG_WINDOW_SAMPLES
    if stop > eeg.shape[-1]:
        raise ValueError(
            f"EEG window [{offset_seconds:g} s, {offset_seconds + EEG_WINDOW_SECONDS:g} s) runs "
            f"past the end of a {eeg.shape[-1] / SAMPLE_RATE:g}-s recording"
        )
    return eeg[..., start:stop]


def spectrogram_window(spec: KaggleSpectrogram, offset_seconds: float) -> np.ndarray:
    """The 600-s spectrogram window of a label row: frames with offset <= time < offset + 600.

    Returns float32 (regions, freqs, 300). Slot j holds the file's frame whose time t satisfies
    ``offset + 2j <= t < offset + 2j + 2``.
    Padding policy: slots with no frame in the file (the window runs past either end of the
    file, or the file skips a time) are NaN, the same marker as the files' own gaps, so the
    preprocessing handles both alike. A window that overlaps no frame at all raises ValueError.
    """
    if not np.isfinite(offset_seconds) or offset_seconds < 0:
        raise ValueError(f"window offset must be finite and >= 0 seconds, got {offset_seconds}")
    inside = (spec.times >= offset_seconds) & (spec.times < offset_seconds + SPEC_WINDOW_SECONDS)
    if not inside.any():
        raise ValueError(
            f"spectrogram window [{offset_seconds:g} s, {offset_seconds + SPEC_WINDOW_SECONDS:g} s)"
            f" holds no frame; the file covers times {spec.times[0]}..{spec.times[-1]}"
        )
    out = np.full(spec.values.shape[:2] + (SPEC_WINDOW_FRAMES,), np.nan, dtype=np.float32)
    slots = ((spec.times[inside] - offset_seconds) // SPEC_FRAME_SECONDS).astype(np.int64)
    out[..., slots] = spec.values[..., inside]
    return out


# ---------------------------------------------------------------------------------------------
# The competition folder
# ---------------------------------------------------------------------------------------------

SPLITS = ("train", "test")


class CompetitionData:
    """A validated competition folder (real or synthetic).

    For each split in ``require`` the constructor checks that its CSV and both signal folders
    exist, validates the CSV, and checks that every referenced EEG and spectrogram file exists;
    a split not required is checked the same way on first access.
    """

    def __init__(self, root: str | os.PathLike, *, require: Sequence[str] = SPLITS):
        self.root = Path(root)
        if not self.root.is_dir():
            raise FileNotFoundError(f"{self.root}: data folder not found")
        unknown = [s for s in require if s not in SPLITS]
        if unknown:
            raise ValueError(f"unknown split(s) {unknown}; expected a subset of {SPLITS}")
        # Required splits are validated now; others on first use, so a test-only run is not
        # blocked by (or slowed down by) the training split.
        self._tables: dict[str, pd.DataFrame] = {}
        for split in require:
            self._tables[split] = self._load_split(split)

    # paths ---------------------------------------------------------------------------------
    def csv_path(self, split: str) -> Path:
        return self.root / f"{split}.csv"

    @property
    def sample_submission_path(self) -> Path:
        return self.root / "sample_submission.csv"

    @property
    def is_synthetic(self) -> bool:
        return (self.root / SYNTHETIC_MARKER).is_file()

    def eeg_path(self, split: str, eeg_id: int) -> Path:
        return self.root / f"{split}_eegs" / f"{int(eeg_id)}.parquet"

    def spectrogram_path(self, split: str, spectrogram_id: int) -> Path:
        return self.root / f"{split}_spectrograms" / f"{int(spectrogram_id)}.parquet"

    # tables --------------------------------------------------------------------------------
    def has_split(self, split: str) -> bool:
        """Whether the folder has this split's CSV (validated by :meth:`table` on first use)."""
        return split in self._tables or self.csv_path(split).is_file()

    def table(self, split: str) -> pd.DataFrame:
        """The validated train.csv or test.csv frame."""
        if split not in SPLITS:
            raise ValueError(f"unknown split {split!r}; expected one of {SPLITS}")
        if split not in self._tables:
            if not self.csv_path(split).is_file():
                raise FileNotFoundError(f"{self.csv_path(split)}: the {split} split is not present")
            self._tables[split] = self._load_split(split)
        return self._tables[split]

    @property
    def train(self) -> pd.DataFrame:
        return self.table("train")

    @property
    def test(self) -> pd.DataFrame:
        return self.table("test")

    # signals -------------------------------------------------------------------------------
    def read_eeg(self, split: str, eeg_id: int) -> np.ndarray:
        exact = TEST_EEG_ROWS if split == "test" else None
        return read_eeg(self.eeg_path(split, eeg_id), exact_rows=exact)

    def read_spectrogram(self, split: str, spectrogram_id: int) -> KaggleSpectrogram:
        return read_kaggle_spectrogram(self.spectrogram_path(split, spectrogram_id))

    # validation ----------------------------------------------------------------------------
    def _load_split(self, split: str) -> pd.DataFrame:
        csv = self.csv_path(split)
        if not csv.is_file():
            raise FileNotFoundError(f"{csv}: file not found ({split} split)")
        for folder in (f"{split}_eegs", f"{split}_spectrograms"):
            if not (self.root / folder).is_dir():
                raise FileNotFoundError(f"{self.root / folder}: folder of the {split} split missing")
        table = read_train_csv(csv) if split == "train" else read_test_csv(csv)
        for kind, column in (("eegs", "eeg_id"), ("spectrograms", "spectrogram_id")):
            folder = self.root / f"{split}_{kind}"
            # One directory listing instead of one stat per id: fast on 17k files.
            present = {name[: -len(".parquet")] for name in os.listdir(folder) if name.endswith(".parquet")}
            ids = table[column].unique()
            absent = [int(i) for i in ids if str(int(i)) not in present]
            if absent:
                raise DataValidationError(
                    f"{csv}: {len(absent)} {column}(s) have no file in {folder}, e.g. "
                    f"{[f'{i}.parquet' for i in absent[:5]]}"
                )
        return table


# ---------------------------------------------------------------------------------------------
# Labels and folds
# ---------------------------------------------------------------------------------------------

LABEL_COLUMNS: tuple[str, ...] = (
    "eeg_id", "eeg_label_offset_seconds", "spectrogram_id", "spectrogram_label_offset_seconds",
    "label_id", "patient_id", "expert_consensus",
) + VOTE_COLUMNS + ("n_votes", "n_rows")  # fmt: skip


def make_labels(train: pd.DataFrame, grouping: str = "eeg") -> pd.DataFrame:
    """One row per training sample, with vote fractions as targets.

    ``grouping``:
      * ``"row"``: every label row.
      * ``"eeg"``: votes summed over all rows of an eeg_id.
      * ``"spectrogram"``: votes summed over all rows of a spectrogram_id (the seed baseline).

    A grouped sample takes its ids and window offsets from the group's earliest row (smallest
    offset of the grouping's own modality; ties: smallest label_id), so its EEG and spectrogram
    windows are those of one real label row. ``expert_consensus`` is recomputed as the class with
    most summed votes (ties: the earlier class). Columns: :data:`LABEL_COLUMNS` — the
    VOTE_COLUMNS hold fractions summing to 1, ``n_votes`` the summed vote count (for vote-aware
    training), ``n_rows`` the number of label rows merged.
    """
    if grouping not in GROUPINGS:
        raise ValueError(f"grouping must be one of {GROUPINGS}, got {grouping!r}")
    if grouping == "row":
        first = train.reset_index(drop=True)
        votes = first[list(VOTE_COLUMNS)].to_numpy(dtype=np.float64)
        n_rows = np.ones(len(train), dtype=np.int64)
    else:
        key = "eeg_id" if grouping == "eeg" else "spectrogram_id"
        offset = "eeg_label_offset_seconds" if grouping == "eeg" else "spectrogram_label_offset_seconds"
        ordered = train.sort_values([key, offset, "label_id"], kind="stable")
        first = ordered.drop_duplicates(key, keep="first").reset_index(drop=True)
        summed = train.groupby(key, sort=True)[list(VOTE_COLUMNS)].sum()
        votes = summed.loc[first[key]].to_numpy(dtype=np.float64)
        n_rows = train.groupby(key, sort=True).size().loc[first[key]].to_numpy()
    n_votes = votes.sum(axis=1)
    labels = first[list(LABEL_COLUMNS[:6])].copy()
    if grouping == "row":
        labels["expert_consensus"] = first["expert_consensus"].to_numpy()
    else:
        labels["expert_consensus"] = np.asarray(CONSENSUS_NAMES)[votes.argmax(axis=1)]
    for j, column in enumerate(VOTE_COLUMNS):
        labels[column] = votes[:, j] / n_votes
    labels["n_votes"] = n_votes.astype(np.int64)
    labels["n_rows"] = np.asarray(n_rows, dtype=np.int64)
    return labels.reset_index(drop=True)


def targets_of(labels: pd.DataFrame) -> np.ndarray:
    """The (n, 6) float64 target matrix of a label frame, in class order."""
    return labels[list(TARGET_COLUMNS)].to_numpy(dtype=np.float64)


def make_folds(labels: pd.DataFrame, n_folds: int = 5, seed: int = 0) -> np.ndarray:
    """Fold index (0..n_folds-1) of every label row, grouped by patient_id.

    No patient appears in two folds; folds are stratified by ``expert_consensus`` as far as the
    patient groups allow, and the assignment is a pure function of (labels, n_folds, seed).
    """
    from sklearn.model_selection import StratifiedGroupKFold

    if n_folds < 2:
        raise ValueError(f"n_folds must be >= 2, got {n_folds}")
    patients = labels["patient_id"].to_numpy()
    n_patients = len(np.unique(patients))
    if n_patients < n_folds:
        raise ValueError(
            f"cannot make {n_folds} patient-grouped folds from {n_patients} patient(s)"
        )
    splitter = StratifiedGroupKFold(n_splits=n_folds, shuffle=True, random_state=seed)
    folds = np.full(len(labels), -1, dtype=np.int64)
    strata = labels["expert_consensus"].astype(str).to_numpy()
    with warnings.catch_warnings():
        # Rare classes with fewer patients than folds are expected in small sets.
        warnings.simplefilter("ignore", UserWarning)
        for fold, (_, held_out) in enumerate(splitter.split(labels, strata, groups=patients)):
            folds[held_out] = fold
    empty = [f for f in range(n_folds) if not (folds == f).any()]
    if empty:
        raise ValueError(f"fold(s) {empty} received no patient; use fewer folds")
    return folds


# ---------------------------------------------------------------------------------------------
# Default (synthetic) data folder
# ---------------------------------------------------------------------------------------------

CACHE_ENV = "HMS_CACHE_DIR"


def cache_dir() -> Path:
    """Where hms keeps generated data: $HMS_CACHE_DIR, else ~/.cache/hms."""
    override = os.environ.get(CACHE_ENV)
    return Path(override).expanduser() if override else Path.home() / ".cache" / "hms"


def default_data_dir(*, show_progress: bool = True) -> Path:
    """The default synthetic competition folder, generated on first use and then reused.

    Generation goes to a private temporary folder that is renamed into place at the end, so a
    crashed run leaves no half-written set, and when two processes race the first rename wins
    and the other discards its own copy.
    """
    from hms import synth

    root = cache_dir()
    target = root / synth.default_set_name()
    if (target / "train.csv").is_file():
        return target
    root.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=root, prefix=f".{target.name}.", suffix=".tmp"))
    try:
        synth.generate(staging / "set", **synth.DEFAULT_PARAMS, show_progress=show_progress)
        try:
            os.rename(staging / "set", target)
        except OSError:
            if not (target / "train.csv").is_file():
                raise  # not a lost race: a real failure
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def resolve_data_dir(data_dir: str | os.PathLike | None) -> Path:
    """``data_dir`` if given, else the default synthetic set (created on first use)."""
    return Path(data_dir) if data_dir is not None else default_data_dir()


def open_data(data_dir: str | os.PathLike | None = None, **kwargs) -> CompetitionData:
    """A validated :class:`CompetitionData` for ``data_dir`` (default: the synthetic set)."""
    return CompetitionData(resolve_data_dir(data_dir), **kwargs)
