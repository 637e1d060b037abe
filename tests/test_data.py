"""Readers, validation, windows, labels, folds and the default data folder."""

from __future__ import annotations

import os
import shutil
import struct
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from hms import competition, schema, synth
from hms import io as hio
from hms.competition import CompetitionData
from hms.labels import make_folds, make_labels
from hms.readers import (
    DataValidationError,
    KaggleSpectrogram,
    read_eeg,
    read_kaggle_spectrogram,
    read_test_csv,
    read_train_csv,
)
from hms.schema import EEG_CHANNELS, REGIONS, SPEC_COLUMNS, TRAIN_COLUMNS, VOTE_COLUMNS
from hms.synth_eeg import kaggle_spectrogram
from hms.windows import eeg_window, spectrogram_window

REAL_EEG = "train_eegs/1000913311.parquet"
REAL_SPEC = "train_spectrograms/1000189855.parquet"


def write_table(columns: dict[str, np.ndarray], path: Path) -> Path:
    pq.write_table(pa.Table.from_pandas(pd.DataFrame(columns), preserve_index=False), path)
    return path


def eeg_columns(n_rows: int, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {c: rng.normal(size=n_rows).astype(np.float32) for c in EEG_CHANNELS}


# ---------------------------------------------------------------------------------------------
# The real competition files
# ---------------------------------------------------------------------------------------------


def test_train_header_matches_the_real_one(real_fixtures):
    readme = (real_fixtures / "README.md").read_text()
    header = next(line.strip("`") for line in readme.splitlines() if line.startswith("`eeg_id,"))
    assert tuple(header.split(",")) == TRAIN_COLUMNS


def test_read_eeg_on_the_real_file(real_fixtures):
    path = real_fixtures / REAL_EEG
    eeg = read_eeg(path, exact_rows=10_000)
    frame = pd.read_parquet(path)
    assert tuple(frame.columns) == EEG_CHANNELS
    assert eeg.shape == (20, 10_000) and eeg.dtype == np.float32 and eeg.flags.c_contiguous
    np.testing.assert_array_equal(eeg, frame.to_numpy().T)


def test_read_spectrogram_on_the_real_file(real_fixtures):
    path = real_fixtures / REAL_SPEC
    spec = read_kaggle_spectrogram(path)
    frame = pd.read_parquet(path)
    assert tuple(frame.columns) == SPEC_COLUMNS  # our constant is exactly the real schema
    assert spec.values.shape == (4, 100, len(frame)) and spec.values.dtype == np.float32
    np.testing.assert_array_equal(spec.times, np.arange(1, 2 * len(frame), 2))
    assert spec.freqs[0] == pytest.approx(0.59) and spec.freqs[-1] == pytest.approx(19.92)
    assert np.all(np.diff(spec.freqs) > 0.18) and np.all(np.diff(spec.freqs) < 0.21)
    for r, region in enumerate(REGIONS):
        for f in (0, 37, 99):
            column = f"{region}_{schema.SPEC_FREQ_LABELS[f]}"
            np.testing.assert_array_equal(spec.values[r, f], frame[column].to_numpy())


def test_synthetic_files_have_exactly_the_real_schema(real_fixtures, tiny_dataset):
    real_eeg = pq.read_schema(real_fixtures / REAL_EEG)
    real_spec = pq.read_schema(real_fixtures / REAL_SPEC)
    data = CompetitionData(tiny_dataset)
    for split in ("train", "test"):
        table = data.table(split)
        eeg_schema = pq.read_schema(data.eeg_path(split, table["eeg_id"].iloc[0]))
        spec_path = data.spectrogram_path(split, table["spectrogram_id"].iloc[0])
        spec_schema = pq.read_schema(spec_path)
        assert eeg_schema.names == real_eeg.names
        assert eeg_schema.types == real_eeg.types
        assert spec_schema.names == real_spec.names
        assert spec_schema.types == real_spec.types
        times = pq.read_table(spec_path, columns=["time"]).column("time").to_numpy()
        np.testing.assert_array_equal(times, np.arange(1, 2 * len(times), 2))


def test_synthetic_test_files_are_shaped_like_the_competition(tiny_dataset):
    data = CompetitionData(tiny_dataset)
    assert len(data.test) == 6
    for row in data.test.itertuples():
        assert pq.read_metadata(data.eeg_path("test", row.eeg_id)).num_rows == 10_000
        assert pq.read_metadata(data.spectrogram_path("test", row.spectrogram_id)).num_rows == 300
        assert data.read_eeg("test", row.eeg_id).shape == (20, 10_000)


def test_synthetic_spectrogram_values_are_in_the_real_range(real_fixtures, tiny_dataset):
    real = read_kaggle_spectrogram(real_fixtures / REAL_SPEC).values
    data = CompetitionData(tiny_dataset)
    synthetic = np.concatenate(
        [data.read_spectrogram("train", s).values for s in data.train["spectrogram_id"].unique()], axis=-1
    )
    for q in (50, 90, 99):
        ratio = np.nanpercentile(synthetic, q) / np.nanpercentile(real, q)
        assert 0.2 < ratio < 5.0, (q, ratio)
    # Power falls with frequency in both (1/f background).
    for values in (real, synthetic):
        profile = np.nanmedian(values, axis=(0, 2))
        assert profile[:10].mean() > 10 * profile[-20:].mean()


def test_synthetic_eeg_amplitudes_resemble_the_real_file(real_fixtures, tiny_dataset):
    real = read_eeg(real_fixtures / REAL_EEG).astype(np.float64)
    data = CompetitionData(tiny_dataset)
    synthetic = data.read_eeg("train", data.train["eeg_id"].iloc[0]).astype(np.float64)

    def bipolar_std(eeg):
        index = {c: i for i, c in enumerate(EEG_CHANNELS)}
        return np.median(
            [np.nanstd(eeg[index[a]] - eeg[index[b]]) for r in REGIONS for a, b in schema.BIPOLAR_CHAINS[r]]
        )

    assert 1 / 3 < bipolar_std(synthetic) / bipolar_std(real) < 3
    # Referential channels share a large common component in both.
    for eeg in (real, synthetic):
        scalp = eeg[:19][:, ~np.isnan(eeg[:19]).any(axis=0)]
        assert np.median(np.corrcoef(scalp)) > 0.4


# ---------------------------------------------------------------------------------------------
# EEG and spectrogram readers: rejections
# ---------------------------------------------------------------------------------------------


def test_read_eeg_reorders_columns_and_names_a_missing_channel(tmp_path):
    columns = eeg_columns(10_000)
    reordered = write_table(dict(reversed(list(columns.items()))), tmp_path / "reordered.parquet")
    np.testing.assert_array_equal(read_eeg(reordered)[3], columns["P3"])
    del columns["T4"]
    path = write_table(columns, tmp_path / "no_t4.parquet")
    with pytest.raises(DataValidationError, match=r"no_t4\.parquet.*\['T4'\] missing"):
        read_eeg(path)


def test_read_eeg_rejects_short_files_and_wrong_test_lengths(tmp_path):
    short = write_table(eeg_columns(9_999), tmp_path / "short.parquet")
    with pytest.raises(DataValidationError, match=r"short\.parquet: EEG has 9999 rows.*at least 10000"):
        read_eeg(short)
    longer = write_table(eeg_columns(12_000), tmp_path / "long.parquet")
    assert read_eeg(longer).shape == (20, 12_000)
    with pytest.raises(DataValidationError, match="expected exactly 10000"):
        read_eeg(longer, exact_rows=10_000)


def test_read_eeg_rejects_non_numeric_columns_and_non_parquet(tmp_path):
    columns = eeg_columns(10_000)
    columns["Cz"] = np.array(["x"] * 10_000)
    with pytest.raises(DataValidationError, match="column 'Cz' has type (large_)?string; expected float32"):
        read_eeg(write_table(columns, tmp_path / "text.parquet"))
    garbage = tmp_path / "garbage.parquet"
    garbage.write_bytes(b"not parquet at all")
    with pytest.raises(DataValidationError, match="not a readable parquet"):
        read_eeg(garbage)
    with pytest.raises(FileNotFoundError, match="absent.parquet"):
        read_eeg(tmp_path / "absent.parquet")


def test_read_eeg_keeps_nan_runs(tmp_path):
    columns = eeg_columns(10_000)
    for name in columns:
        columns[name][100:300] = np.nan
    eeg = read_eeg(write_table(columns, tmp_path / "gap.parquet"))
    assert np.isnan(eeg[:, 100:300]).all() and not np.isnan(eeg[:, 300:]).any()


def spectrogram_columns(n_rows: int, regions=REGIONS, labels=None) -> dict[str, np.ndarray]:
    labels = labels or schema.SPEC_FREQ_LABELS
    columns = {"time": np.arange(1, 2 * n_rows, 2, dtype=np.int64)}
    for region in regions:
        for label in labels:
            columns[f"{region}_{label}"] = np.ones(n_rows, dtype=np.float32)
    return columns


def test_read_spectrogram_rejections(tmp_path):
    ok = read_kaggle_spectrogram(write_table(spectrogram_columns(5, labels=["1.0", "2.5"]), tmp_path / "ok.parquet"))
    np.testing.assert_array_equal(ok.freqs, [1.0, 2.5])  # parsed from the names
    missing_region = spectrogram_columns(5, regions=("LL", "RL", "LP"))
    with pytest.raises(DataValidationError, match="no columns for region 'RP'"):
        read_kaggle_spectrogram(write_table(missing_region, tmp_path / "three.parquet"))
    odd = spectrogram_columns(5)
    odd["XX_3"] = np.ones(5, dtype=np.float32)
    with pytest.raises(DataValidationError, match="unexpected column 'XX_3'"):
        read_kaggle_spectrogram(write_table(odd, tmp_path / "odd.parquet"))
    unordered = spectrogram_columns(5)
    unordered["time"] = np.array([1, 3, 3, 5, 7])
    with pytest.raises(DataValidationError, match="'time' is not strictly increasing at row 2"):
        read_kaggle_spectrogram(write_table(unordered, tmp_path / "unordered.parquet"))
    float_time = spectrogram_columns(5)
    float_time["time"] = float_time["time"].astype(float)
    with pytest.raises(DataValidationError, match="'time' has type double; expected int64"):
        read_kaggle_spectrogram(write_table(float_time, tmp_path / "float_time.parquet"))


# ---------------------------------------------------------------------------------------------
# CSV validation
# ---------------------------------------------------------------------------------------------


@pytest.fixture
def train_frame(tiny_dataset) -> pd.DataFrame:
    return pd.read_csv(tiny_dataset / "train.csv")


def expect_rejection(frame: pd.DataFrame, tmp_path: Path, *patterns: str) -> None:
    path = tmp_path / "train.csv"
    frame.to_csv(path, index=False)
    with pytest.raises(DataValidationError) as error:
        read_train_csv(path)
    message = str(error.value)
    assert str(path) in message
    for pattern in patterns:
        assert pattern in message, (pattern, message)


def test_read_train_csv_accepts_the_synthetic_file(train_frame, tiny_dataset):
    train = read_train_csv(tiny_dataset / "train.csv")
    assert tuple(train.columns) == TRAIN_COLUMNS
    assert train["eeg_label_offset_seconds"].dtype == np.float64
    assert all(train[c].dtype == np.int64 for c in VOTE_COLUMNS + ("eeg_id", "label_id", "patient_id"))
    pd.testing.assert_frame_equal(train[list(VOTE_COLUMNS)], train_frame[list(VOTE_COLUMNS)])


def test_missing_column(train_frame, tmp_path):
    expect_rejection(train_frame.drop(columns=["lrda_vote"]), tmp_path, "missing column(s) ['lrda_vote']")


def test_wrong_dtypes_name_column_and_rows(train_frame, tmp_path):
    frame = train_frame.astype({"eeg_id": object})
    frame.loc[3, "eeg_id"] = "abc"
    expect_rejection(frame, tmp_path, "'eeg_id' must hold integers", "['abc']", "row 3")
    frame = train_frame.astype({"gpd_vote": float})
    frame.loc[[2, 5], "gpd_vote"] = [1.5, np.nan]
    expect_rejection(frame, tmp_path, "'gpd_vote' must hold integers", "rows 2, 5")
    frame = train_frame.astype({"eeg_label_offset_seconds": object})
    frame.loc[4, "eeg_label_offset_seconds"] = "soon"
    expect_rejection(frame, tmp_path, "'eeg_label_offset_seconds' must hold finite seconds >= 0", "row 4")


def test_negative_and_all_zero_votes(train_frame, tmp_path):
    frame = train_frame.copy()
    frame.loc[6, "seizure_vote"] = -1
    expect_rejection(frame, tmp_path, "'seizure_vote' must hold integers from 0 to", "[-1]", "row 6")
    frame = train_frame.copy()
    frame.loc[[1, 7], list(VOTE_COLUMNS)] = 0
    expect_rejection(frame, tmp_path, "all six vote columns", "are zero", "rows 1, 7")


@pytest.mark.parametrize(
    ("column", "text", "shown"),
    [
        ("label_id", "1e25", "1e+25"),  # a float far beyond int64: used to wrap to -2**63
        ("eeg_id", "99999999999999999999999", "99999999999999999999999"),  # beyond uint64: read as text
        ("patient_id", "18446744073709551615", "18446744073709551615"),  # uint64 only
        ("spectrogram_id", "-3", "-3"),
        ("label_id", "9007199254740993.0", "9007199254740992.0"),  # beyond 2**53: not exact as a float
        ("seizure_vote", "9223372036854775807", "9223372036854775807"),  # sums of votes would overflow
        ("lpd_vote", "1000001", "1000001"),
    ],
)
def test_out_of_range_integers_are_named_not_wrapped(train_frame, tmp_path, column, text, shown):
    path = tmp_path / "train.csv"
    lines = train_frame.to_csv(index=False).splitlines()
    header = lines[0].split(",")
    cells = lines[5].split(",")
    cells[header.index(column)] = text
    lines[5] = ",".join(cells)
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataValidationError) as error:
        read_train_csv(path)
    message = str(error.value)
    assert str(path) in message and f"'{column}' must hold integers from 0 to" in message
    assert shown in message and "row 4" in message, message


def test_exact_integers_up_to_int64_and_integral_floats(train_frame, tmp_path):
    """Ids up to int64's maximum are read exactly; ids written as floats ("3.0") too, while a
    float too large to be exact is refused (see above)."""
    frame = train_frame.astype({"eeg_sub_id": float})
    frame.loc[0, "label_id"] = 2**63 - 1
    path = tmp_path / "train.csv"
    frame.to_csv(path, index=False)
    assert ".0," in path.read_text()
    train = read_train_csv(path)
    assert train["label_id"].dtype == np.int64 and train.loc[0, "label_id"] == 2**63 - 1
    assert train["eeg_sub_id"].dtype == np.int64
    assert train["eeg_sub_id"].tolist() == train_frame["eeg_sub_id"].tolist()


def test_duplicate_label_id_and_unknown_consensus(train_frame, tmp_path):
    frame = train_frame.copy()
    frame.loc[8, "label_id"] = frame.loc[2, "label_id"]
    expect_rejection(frame, tmp_path, "'label_id' has duplicates", "rows 2, 8")
    frame = train_frame.copy()
    frame.loc[0, "expert_consensus"] = "Spike"
    expect_rejection(frame, tmp_path, "'expert_consensus' has values ['Spike']", "row 0")


def test_an_eeg_of_two_patients_is_rejected(train_frame, tmp_path):
    frame = train_frame.copy()
    first = frame.index[frame["eeg_id"] == frame.loc[0, "eeg_id"]]
    if len(first) < 2:
        pytest.skip("first eeg_id has a single row")
    frame.loc[first[-1], "patient_id"] += 1
    expect_rejection(frame, tmp_path, "each eeg_id must belong to one patient_id")


def test_read_test_csv(tiny_dataset, tmp_path):
    test = read_test_csv(tiny_dataset / "test.csv")
    assert tuple(test.columns) == schema.TEST_COLUMNS and len(test) == 6
    duplicated = pd.concat([test, test.iloc[:1]])
    duplicated.to_csv(tmp_path / "test.csv", index=False)
    with pytest.raises(DataValidationError, match=r"test\.csv: column 'eeg_id' must be unique.*rows 0, 6"):
        read_test_csv(tmp_path / "test.csv")
    test.drop(columns="patient_id").to_csv(tmp_path / "test.csv", index=False)
    with pytest.raises(DataValidationError, match=r"missing column\(s\) \['patient_id'\]"):
        read_test_csv(tmp_path / "test.csv")


# ---------------------------------------------------------------------------------------------
# Windows
# ---------------------------------------------------------------------------------------------


def test_eeg_window_slices_the_documented_rows():
    eeg = np.arange(20 * 12_000, dtype=np.float32).reshape(20, 12_000)
    window = eeg_window(eeg, 6.0)
    assert window.shape == (20, 10_000)
    np.testing.assert_array_equal(window, eeg[:, 1200:11_200])
    np.testing.assert_array_equal(eeg_window(eeg, 10.0), eeg[:, 2000:])
    with pytest.raises(ValueError, match=r"runs past the end of a 60-s recording"):
        eeg_window(eeg, 10.5)
    with pytest.raises(ValueError, match=">= 0"):
        eeg_window(eeg, -2.0)


def test_spectrogram_window_selects_times_and_pads_with_nan():
    times = np.arange(1, 1200, 2)  # 600 frames: 0..1200 s
    values = np.broadcast_to(times.astype(np.float32), (4, 100, len(times))).copy()
    spec = KaggleSpectrogram(values, np.linspace(0.59, 19.92, 100), times)
    window = spectrogram_window(spec, 100.0)
    assert window.shape == (4, 100, 300) and window.dtype == np.float32
    np.testing.assert_array_equal(window[0, 0], np.arange(101, 700, 2))  # offset <= t < offset+600
    # Past the end of the file: the missing frames are NaN (documented policy).
    tail = spectrogram_window(spec, 1000.0)
    np.testing.assert_array_equal(tail[2, 5, :100], np.arange(1001, 1200, 2))
    assert np.isnan(tail[:, :, 100:]).all()
    # A file that skips a time leaves that slot NaN.
    gappy = KaggleSpectrogram(np.delete(values, 60, axis=-1), spec.freqs, np.delete(times, 60))
    window = spectrogram_window(gappy, 100.0)
    assert np.isnan(window[:, :, 10]).all() and not np.isnan(np.delete(window, 10, axis=-1)).any()
    with pytest.raises(ValueError, match="holds no frame"):
        spectrogram_window(spec, 1300.0)


def test_windows_of_a_label_row_agree_between_modalities(tiny_dataset):
    """The EEG window recomputed into a spectrogram matches the file's spectrogram window."""
    data = CompetitionData(tiny_dataset)
    for row in data.train.sample(6, random_state=0).itertuples():
        window = eeg_window(data.read_eeg("train", row.eeg_id), row.eeg_label_offset_seconds)
        spec = spectrogram_window(
            data.read_spectrogram("train", row.spectrogram_id), row.spectrogram_label_offset_seconds
        )
        # The EEG window starts 275 s into the spectrogram window; frames there are 2 s on the
        # odd-second grid, so skip the window's first second to align them.
        recomputed, _ = kaggle_spectrogram(window[:, 200:].astype(np.float64))
        from_file = spec[..., 138 : 138 + recomputed.shape[-1]]
        both = ~np.isnan(recomputed) & ~np.isnan(from_file)
        assert both.mean() > 0.5
        np.testing.assert_allclose(recomputed[both], from_file[both], rtol=0.02, atol=0.03)


# ---------------------------------------------------------------------------------------------
# The competition folder
# ---------------------------------------------------------------------------------------------


def test_competition_data_paths_and_signals(tiny_dataset):
    data = CompetitionData(tiny_dataset)
    assert data.is_synthetic and data.has_split("train") and data.has_split("test")
    row = data.train.iloc[0]
    assert data.eeg_path("train", row.eeg_id) == tiny_dataset / "train_eegs" / f"{row.eeg_id}.parquet"
    assert data.read_eeg("train", row.eeg_id).shape[0] == 20
    assert data.read_spectrogram("train", row.spectrogram_id).values.shape[:2] == (4, 100)
    assert data.sample_submission_path.is_file()


def test_competition_data_names_missing_files_and_folders(tiny_dataset, tmp_path):
    root = tmp_path / "copy"
    shutil.copytree(tiny_dataset, root)
    eeg_id = pd.read_csv(root / "train.csv")["eeg_id"].iloc[0]
    (root / "train_eegs" / f"{eeg_id}.parquet").unlink()
    with pytest.raises(DataValidationError, match=rf"1 eeg_id\(s\) have no file in .*train_eegs.*{eeg_id}\.parquet"):
        CompetitionData(root)
    test_only = CompetitionData(root, require=("test",))  # the broken train split is not needed
    assert len(test_only.test) == 6
    with pytest.raises(DataValidationError, match="have no file"):
        _ = test_only.train  # ... until it is used
    shutil.rmtree(root / "test_spectrograms")
    with pytest.raises(FileNotFoundError, match="test_spectrograms: folder of the test split missing"):
        CompetitionData(root, require=("test",))
    with pytest.raises(FileNotFoundError, match="data folder not found"):
        CompetitionData(tmp_path / "nowhere")


def test_competition_data_with_only_a_test_split(tiny_dataset, tmp_path):
    root = tmp_path / "test_only"
    root.mkdir()
    for name in ("test.csv", "test_eegs", "test_spectrograms"):
        source = tiny_dataset / name
        (shutil.copytree if source.is_dir() else shutil.copy)(source, root / name)
    data = CompetitionData(root, require=("test",))
    assert data.has_split("test") and not data.has_split("train")
    with pytest.raises(FileNotFoundError, match="train split is not present"):
        _ = data.train
    with pytest.raises(FileNotFoundError, match="train.csv"):
        CompetitionData(root)


# ---------------------------------------------------------------------------------------------
# Labels
# ---------------------------------------------------------------------------------------------


def hand_made_train() -> pd.DataFrame:
    rows = [
        # eeg, sub, eeg_off, spec, spec_sub, spec_off, label, patient, consensus, votes
        (10, 0, 4.0, 100, 1, 40.0, 1, 7, "Seizure", 3, 0, 0, 0, 0, 1),
        (10, 1, 0.0, 100, 0, 36.0, 2, 7, "Seizure", 2, 1, 0, 0, 0, 0),
        (11, 0, 0.0, 100, 2, 90.0, 3, 7, "GRDA", 0, 0, 0, 1, 4, 0),
        (12, 0, 2.0, 200, 0, 0.0, 4, 8, "Other", 0, 0, 0, 0, 0, 12),
    ]
    return pd.DataFrame(rows, columns=list(TRAIN_COLUMNS))


def test_make_labels_by_eeg_sums_votes_and_keeps_the_earliest_window():
    labels = make_labels(hand_made_train(), "eeg")
    assert list(labels["eeg_id"]) == [10, 11, 12]
    first = labels.iloc[0]
    assert first["eeg_label_offset_seconds"] == 0.0 and first["spectrogram_label_offset_seconds"] == 36.0
    assert first["label_id"] == 2 and first["n_votes"] == 7 and first["n_rows"] == 2
    np.testing.assert_allclose(labels.loc[0, list(VOTE_COLUMNS)].to_numpy(float), np.array([5, 1, 0, 0, 0, 1]) / 7)
    assert list(labels["expert_consensus"]) == ["Seizure", "GRDA", "Other"]
    np.testing.assert_allclose(labels[list(VOTE_COLUMNS)].sum(axis=1), 1.0)


def test_make_labels_by_spectrogram_and_by_row():
    by_spec = make_labels(hand_made_train(), "spectrogram")
    assert list(by_spec["spectrogram_id"]) == [100, 200]
    assert by_spec.loc[0, "n_votes"] == 12 and by_spec.loc[0, "n_rows"] == 3
    np.testing.assert_allclose(by_spec.loc[0, list(VOTE_COLUMNS)].to_numpy(float), np.array([5, 1, 0, 1, 4, 1]) / 12)
    assert by_spec.loc[0, "eeg_id"] == 10 and by_spec.loc[0, "spectrogram_label_offset_seconds"] == 36.0
    by_row = make_labels(hand_made_train(), "row")
    assert len(by_row) == 4 and list(by_row["n_votes"]) == [4, 3, 5, 12]
    assert by_row.loc[2, "grda_vote"] == pytest.approx(0.8)
    assert tuple(by_row.columns) == schema.LABEL_COLUMNS
    with pytest.raises(ValueError, match="grouping must be one of"):
        make_labels(hand_made_train(), "patient")


def test_make_labels_on_the_synthetic_train_set(tiny_dataset):
    train = read_train_csv(tiny_dataset / "train.csv")
    for grouping, key in (("eeg", "eeg_id"), ("spectrogram", "spectrogram_id"), ("row", "label_id")):
        labels = make_labels(train, grouping)
        assert len(labels) == train[key].nunique()
        assert labels["n_votes"].sum() == train[list(VOTE_COLUMNS)].to_numpy().sum()
        assert labels["n_rows"].sum() == len(train)


# ---------------------------------------------------------------------------------------------
# Folds
# ---------------------------------------------------------------------------------------------


def many_patient_labels(n_patients: int = 40, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    patients = np.repeat(np.arange(n_patients), rng.integers(1, 8, n_patients))
    consensus = np.asarray(schema.CONSENSUS_NAMES)[rng.integers(0, 6, len(patients))]
    return pd.DataFrame({"patient_id": patients + 1000, "expert_consensus": consensus})


def test_folds_never_split_a_patient_and_are_deterministic():
    labels = many_patient_labels()
    folds = make_folds(labels, 5, seed=3)
    assert set(folds) == set(range(5))
    assert (
        labels.groupby("patient_id")
        .apply(lambda g: folds[g.index].tolist(), include_groups=False)
        .map(lambda f: len(set(f)))
        == 1
    ).all()
    np.testing.assert_array_equal(folds, make_folds(labels, 5, seed=3))
    assert not np.array_equal(folds, make_folds(labels, 5, seed=4))
    sizes = np.bincount(folds)
    assert sizes.min() > 0.5 * sizes.max()  # roughly balanced


def test_folds_are_stratified_by_consensus_where_possible():
    labels = many_patient_labels(n_patients=120, seed=1)
    folds = make_folds(labels, 4, seed=0)
    overall = labels["expert_consensus"].value_counts(normalize=True)
    for fold in range(4):
        share = labels["expert_consensus"][folds == fold].value_counts(normalize=True)
        assert (share.reindex(overall.index) - overall).abs().max() < 0.08


def test_folds_on_the_synthetic_set_and_their_errors(tiny_dataset):
    labels = make_labels(read_train_csv(tiny_dataset / "train.csv"), "eeg")
    folds = make_folds(labels, 4, seed=0)
    per_patient = pd.Series(folds).groupby(labels["patient_id"].to_numpy()).nunique()
    assert (per_patient == 1).all() and len(set(folds)) == 4
    with pytest.raises(ValueError, match="cannot make 5 patient-grouped folds from 4 patient"):
        make_folds(labels, 5)
    with pytest.raises(ValueError, match="n_folds must be >= 2"):
        make_folds(labels, 1)


# ---------------------------------------------------------------------------------------------
# The default data folder
# ---------------------------------------------------------------------------------------------


@pytest.fixture
def tiny_default(monkeypatch, tmp_path):
    """Point the cache at tmp_path and make the default set tiny; count generator calls."""
    monkeypatch.setenv(hio.CACHE_ENV, str(tmp_path / "cache"))
    monkeypatch.setattr(synth, "DEFAULT_PARAMS", {"n_patients": 2, "n_eegs": 2, "n_test_eegs": 1, "seed": 5})
    calls = []
    real_generate = synth.generate

    def counting_generate(*args, **kwargs):
        calls.append(args)
        return real_generate(*args, **kwargs)

    monkeypatch.setattr(synth, "generate", counting_generate)
    return tmp_path / "cache", calls


def test_default_data_dir_is_generated_once_then_reused(tiny_default):
    cache, calls = tiny_default
    first = synth.default_data_dir(show_progress=False)
    assert first.parent == cache and first.name == synth.default_set_name()
    assert len(calls) == 1 and CompetitionData(first).is_synthetic
    stamp = (first / "train.csv").stat().st_mtime_ns
    assert synth.default_data_dir(show_progress=False) == first
    assert competition.resolve_data_dir(None) == first and competition.open_data().root == first
    assert len(calls) == 1 and (first / "train.csv").stat().st_mtime_ns == stamp
    assert [p.name for p in cache.iterdir()] == [first.name]  # no staging left behind


def test_default_data_dir_loses_a_race_gracefully(tiny_default, monkeypatch):
    cache, calls = tiny_default
    racing_generate = synth.generate

    def generate_while_another_process_finishes(out_dir, **kwargs):
        result = racing_generate(out_dir, **kwargs)
        # Another process renames its finished set into place first.
        winner = cache / synth.default_set_name()
        shutil.copytree(result, winner)
        (winner / "winner.txt").write_text("first")
        return result

    monkeypatch.setattr(synth, "generate", generate_while_another_process_finishes)
    path = synth.default_data_dir(show_progress=False)
    assert (path / "winner.txt").read_text() == "first"
    assert [p.name for p in cache.iterdir()] == [path.name]


def test_cache_dir_default_and_override(monkeypatch, tmp_path):
    monkeypatch.delenv(hio.CACHE_ENV, raising=False)
    assert hio.cache_dir() == Path.home() / ".cache" / "hms"
    monkeypatch.setenv(hio.CACHE_ENV, str(tmp_path))
    assert hio.cache_dir() == tmp_path


# ---------------------------------------------------------------------------------------------
# Atomic writes and the overview command
# ---------------------------------------------------------------------------------------------


def test_atomic_output_leaves_no_partial_file(tmp_path):
    target = tmp_path / "out.csv"
    target.write_text("old")
    with pytest.raises(RuntimeError):
        with hio.atomic_output(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("interrupted")
    assert target.read_text() == "old" and os.listdir(tmp_path) == ["out.csv"]
    with hio.atomic_output(target) as tmp:
        tmp.write_text("new")
    assert target.read_text() == "new" and os.listdir(tmp_path) == ["out.csv"]
    # Not the 0600 of the temporary file: what a plain open() would have given.
    assert target.stat().st_mode & 0o777 == 0o666 & ~hio._UMASK


def png_size(path: Path) -> tuple[int, int]:
    header = path.read_bytes()[:24]
    assert header[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", header[16:24])


def test_overview_command_writes_a_png_with_the_right_numbers(tiny_dataset, tmp_path, capsys):
    from hms import overview, plots

    out = tmp_path / "figures" / "overview.png"
    assert overview.main(["--data-dir", str(tiny_dataset), "--out", str(out)]) == 0
    assert png_size(out) == (1200, 800)
    printed = capsys.readouterr().out
    train = read_train_csv(tiny_dataset / "train.csv")
    assert f"{len(train)} label rows, {train['eeg_id'].nunique()} eeg_ids" in printed
    stats = plots.dataset_overview(train)
    assert stats.consensus_rows.sum() == len(train) and stats.consensus_eegs.sum() == train["eeg_id"].nunique()
    np.testing.assert_array_equal(stats.votes_over_rows, train[list(VOTE_COLUMNS)].sum().to_numpy())
    # Grouped by spectrogram, each spectrogram contributes one unit of vote fractions.
    assert stats.fractions_by_spectrogram.sum() == pytest.approx(train["spectrogram_id"].nunique())
    assert overview.main(["--data-dir", str(tmp_path / "missing"), "--out", str(out)]) == 2
    assert "data folder not found" in capsys.readouterr().err
