"""The competition folder (real or synthetic): validated tables and the paths of its signals.

Layout (the Kaggle "HMS Harmful Brain Activity Classification" folder)::

    train.csv  test.csv  sample_submission.csv
    train_eegs/<eeg_id>.parquet          train_spectrograms/<spectrogram_id>.parquet
    test_eegs/<eeg_id>.parquet           test_spectrograms/<spectrogram_id>.parquet

:func:`open_data` opens a folder, or without one the synthetic default set (made on first use).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Hashable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from hms import readers
from hms.readers import DataValidationError, KaggleSpectrogram
from hms.schema import EEG_WINDOW_SAMPLES, SAMPLE_RATE, SPEC_WINDOW_SECONDS, SPLITS, SYNTHETIC_MARKER, TEST_EEG_ROWS

#: Label windows named in one error message (the count of all is given too).
_SHOWN_BAD_WINDOWS = 5


class CompetitionData:
    """A validated competition folder (real or synthetic).

    For each split in ``require`` the constructor checks that its CSV and both signal folders
    exist, validates the CSV, checks that every referenced EEG and spectrogram file exists and
    that every label row's windows lie in them (from the files' parquet footers: no signal is
    read); a split not required is checked the same way on first access.
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
        return readers.read_eeg(self.eeg_path(split, eeg_id), exact_rows=exact)

    def read_spectrogram(self, split: str, spectrogram_id: int) -> KaggleSpectrogram:
        return readers.read_kaggle_spectrogram(self.spectrogram_path(split, spectrogram_id))

    # validation ----------------------------------------------------------------------------
    def _load_split(self, split: str) -> pd.DataFrame:
        csv = self.csv_path(split)
        if not csv.is_file():
            raise FileNotFoundError(f"{csv}: file not found ({split} split)")
        for name in (f"{split}_eegs", f"{split}_spectrograms"):
            if not (self.root / name).is_dir():
                raise FileNotFoundError(f"{self.root / name}: folder of the {split} split missing")
        table = readers.read_train_csv(csv) if split == "train" else readers.read_test_csv(csv)
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
        self._check_windows(split, table, csv)
        return table

    def _check_windows(self, split: str, table: pd.DataFrame, csv: Path) -> None:
        """Every row's EEG window lies in its EEG file (test files: exactly one window) and its
        spectrogram window overlaps its file's times; one error lists the rows that do not."""
        eeg_rows = _per_file(table["eeg_id"], lambda i: readers.eeg_length(self.eeg_path(split, i)))
        spec_times = _per_file(
            table["spectrogram_id"], lambda i: readers.spectrogram_time_range(self.spectrogram_path(split, i))
        )
        n = len(table)
        eeg_offset = table["eeg_label_offset_seconds"].to_numpy() if split == "train" else np.zeros(n)
        spec_offset = table["spectrogram_label_offset_seconds"].to_numpy() if split == "train" else np.zeros(n)
        problems = []
        for row, (eeg_id, spec_id, eo, so) in enumerate(
            zip(table["eeg_id"].to_numpy(), table["spectrogram_id"].to_numpy(), eeg_offset, spec_offset)
        ):
            length = eeg_rows[eeg_id]
            stop = int(round(float(eo) * SAMPLE_RATE)) + EEG_WINDOW_SAMPLES
            if split == "test" and length != TEST_EEG_ROWS:
                problems.append(f"row {row}: {self.eeg_path(split, eeg_id)} has {length} rows, not {TEST_EEG_ROWS}")
            elif stop > length:
                problems.append(
                    f"row {row}: the EEG window [{eo:g} s, {stop / SAMPLE_RATE:g} s) runs past the end of "
                    f"{self.eeg_path(split, eeg_id)} ({length / SAMPLE_RATE:g} s)"
                )
            first, last = spec_times[spec_id]
            if so > last or so + SPEC_WINDOW_SECONDS <= first:
                problems.append(
                    f"row {row}: the spectrogram window [{so:g} s, {so + SPEC_WINDOW_SECONDS:g} s) holds no frame "
                    f"of {self.spectrogram_path(split, spec_id)} (times {first}..{last})"
                )
        if problems:
            more = f"; and {len(problems) - _SHOWN_BAD_WINDOWS} more" if len(problems) > _SHOWN_BAD_WINDOWS else ""
            raise DataValidationError(
                f"{csv}: {len(problems)} label window(s) do not fit their recordings: "
                + "; ".join(problems[:_SHOWN_BAD_WINDOWS])
                + more
            )


def _per_file(ids: pd.Series, read: Callable[[Any], Any]) -> dict[Hashable, Any]:
    """``read(id)`` of every distinct id, several files at a time (footer reads wait on I/O)."""
    unique = ids.unique().tolist()
    with ThreadPoolExecutor(max_workers=min(16, 4 * (os.cpu_count() or 1))) as pool:
        return dict(zip(unique, pool.map(read, unique)))


def resolve_data_dir(data_dir: str | os.PathLike[str] | None) -> Path:
    """``data_dir`` if given, else the default synthetic set (created on first use)."""
    if data_dir is not None:
        return Path(data_dir)
    from hms import synth  # the generator (and its dependencies) only when it is needed

    return synth.default_data_dir()


def open_data(data_dir: str | os.PathLike[str] | None = None, **kwargs) -> CompetitionData:
    """A validated :class:`CompetitionData` for ``data_dir`` (default: the synthetic set)."""
    return CompetitionData(resolve_data_dir(data_dir), **kwargs)
