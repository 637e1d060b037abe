"""hms.recordings: EDF/BDF files written here (from the real fixture EEG and synthetic signals)
read back as the competition's channels in microvolts at 200 Hz; channel-name rules; rates."""

from __future__ import annotations

import logging
from fractions import Fraction

import numpy as np
import pandas as pd
import pytest
import scipy.signal as ss

from hms import recordings
from hms.recordings import RecordingError, canonical_label, read_recording
from hms.schema import EEG_CHANNELS

edfio = pytest.importorskip("edfio")

REFERENTIAL = [f"EEG {c.upper()}-REF" for c in EEG_CHANNELS[:-1]] + ["EKG1-REF"]


def write_edf(path, data, rate, labels, unit="uV", bdf=False):
    signal_type = edfio.BdfSignal if bdf else edfio.EdfSignal
    signals = []
    for x, label in zip(data, labels):
        low, high = float(np.min(x)), float(np.max(x))
        if low == high:
            low, high = low - 1.0, high + 1.0
        signals.append(
            signal_type(
                np.asarray(x, dtype=np.float64), rate, label=label, physical_dimension=unit, physical_range=(low, high)
            )
        )
    (edfio.Bdf if bdf else edfio.Edf)(signals).write(path)
    return path


def quantum(x, bits=16):
    return (x.max(axis=1) - x.min(axis=1)) / (2**bits - 1)


@pytest.fixture
def fixture_eeg(real_fixtures):
    frame = pd.read_parquet(next((real_fixtures / "train_eegs").glob("*.parquet")))
    return np.nan_to_num(frame[list(EEG_CHANNELS)].to_numpy(np.float64).T)  # EDF stores no NaN


@pytest.mark.parametrize("bdf", [False, True])
def test_real_eeg_round_trips_within_the_formats_quantization(fixture_eeg, tmp_path, bdf):
    path = write_edf(tmp_path / ("r.bdf" if bdf else "r.edf"), fixture_eeg, 200, REFERENTIAL, bdf=bdf)
    rec = read_recording(path)
    assert rec.data.shape == fixture_eeg.shape and rec.data.dtype == np.float32 and rec.source_rate == 200
    step = quantum(fixture_eeg, 24 if bdf else 16)
    error = np.abs(rec.data - fixture_eeg).max(axis=1)
    assert (error <= step + 1e-4 * np.abs(fixture_eeg).max(axis=1)).all(), error / step


def test_channel_names_variants_order_and_units(fixture_eeg, tmp_path):
    """10-10 names, prefixes, suffixes, case, ECG, another order and millivolts all map back."""
    variants = {"T3": "T7", "T4": "EEG T8-LE", "T5": "p7", "T6": "POL P8", "EKG": "ECG", "Fp1": "EEG FP1-AVG"}
    labels = [variants.get(c, f"EEG {c}-REF") for c in EEG_CHANNELS]
    order = np.random.default_rng(0).permutation(len(labels))
    path = write_edf(tmp_path / "v.edf", fixture_eeg[order] / 1000, 200, [labels[i] for i in order], unit="mV")
    rec = read_recording(path)
    np.testing.assert_allclose(rec.data, fixture_eeg, atol=float(quantum(fixture_eeg).max()) + 1e-3)
    assert (
        canonical_label("EEG Fp1-REF") == "FP1" and canonical_label("T7") == "T3" and canonical_label("ECG1") == "EKG"
    )


@pytest.mark.parametrize("rate", [256, 250, 512, 1000])
def test_other_rates_are_resampled_to_200_hz(tmp_path, rate):
    seconds = 20
    t = np.arange(seconds * rate) / rate
    # Each channel a sum of sines below 80 Hz (within both rates' band).
    freqs = 1.0 + np.arange(len(EEG_CHANNELS))[:, None] * 3.7
    data = 50 * np.sin(2 * np.pi * freqs * t) + 20 * np.sin(2 * np.pi * (freqs / 3) * t + 1.0)
    rec = read_recording(write_edf(tmp_path / "x.edf", data, rate, REFERENTIAL))
    assert rec.source_rate == rate and rec.data.shape == (len(EEG_CHANNELS), seconds * 200)
    t200 = np.arange(seconds * 200) / 200
    expected = 50 * np.sin(2 * np.pi * freqs * t200) + 20 * np.sin(2 * np.pi * (freqs / 3) * t200 + 1.0)
    inner = slice(200, -200)  # away from the edges' filter transients
    np.testing.assert_allclose(rec.data[:, inner], expected[:, inner], atol=1.0)


def test_missing_channels_are_named_or_filled_flat(fixture_eeg, tmp_path, caplog):
    path = write_edf(tmp_path / "m.edf", fixture_eeg[2:], 200, REFERENTIAL[2:])
    with pytest.raises(RecordingError, match=rf"{path}: channel\(s\) \['Fp1', 'F3'\] not found"):
        read_recording(path)
    with caplog.at_level(logging.WARNING, logger="hms.recordings"):
        rec = read_recording(path, allow_missing=True)
    assert rec.missing == ("Fp1", "F3") and not rec.data[:2].any() and "filled as flat" in caplog.text
    np.testing.assert_allclose(rec.data[2:], fixture_eeg[2:], atol=float(quantum(fixture_eeg).max()) + 1e-3)


def test_user_mapping_file_for_other_names(fixture_eeg, tmp_path):
    labels = [f"E{i}" for i in range(len(EEG_CHANNELS))]
    path = write_edf(tmp_path / "e.edf", fixture_eeg, 200, labels)
    (tmp_path / "map.toml").write_text("\n".join(f'"E{i}" = "{c}"' for i, c in enumerate(EEG_CHANNELS)) + "\n")
    rec = read_recording(path, mapping=recordings.load_mapping(tmp_path / "map.toml"))
    np.testing.assert_allclose(rec.data, fixture_eeg, atol=float(quantum(fixture_eeg).max()) + 1e-3)
    (tmp_path / "bad.toml").write_text('"E1" = "Fp9"\n')
    with pytest.raises(RecordingError, match=r"\['Fp9'\] are not competition channels"):
        recordings.load_mapping(tmp_path / "bad.toml")


def test_bipolar_duplicate_and_damaged_files_are_named(fixture_eeg, tmp_path):
    bipolar = write_edf(tmp_path / "b.edf", fixture_eeg[:4], 200, ["FP1-F7", "F7-T3", "T3-T5", "T5-O1"])
    with pytest.raises(RecordingError, match="bipolar recording"):
        read_recording(bipolar)
    twice = write_edf(tmp_path / "d.edf", fixture_eeg, 200, REFERENTIAL[:-1] + ["EEG FP1-LE"])
    with pytest.raises(RecordingError, match="several labels for one channel.*Fp1"):
        read_recording(twice)
    good = write_edf(tmp_path / "g.edf", fixture_eeg, 200, REFERENTIAL).read_bytes()
    (tmp_path / "h.edf").write_bytes(good[:252] + b"xx  " + good[256:])  # the signal count
    with pytest.raises(RecordingError, match=rf"{tmp_path / 'h.edf'}: not a readable EDF file"):
        read_recording(tmp_path / "h.edf")
    (tmp_path / "t.edf").write_bytes(good[:300])
    with pytest.raises(RecordingError, match="not a readable EDF file"):
        read_recording(tmp_path / "t.edf")
    with pytest.raises(RecordingError, match="unknown recording format '.txt'"):
        (tmp_path / "x.txt").write_text("")
        read_recording(tmp_path / "x.txt")


def test_parquet_recordings_keep_their_nan_gaps(tiny_dataset):
    path = next((tiny_dataset / "train_eegs").glob("*.parquet"))
    rec = read_recording(path)
    frame = pd.read_parquet(path)
    np.testing.assert_array_equal(rec.data, frame[list(EEG_CHANNELS)].to_numpy(np.float32).T)
    assert rec.source_rate == 200


def test_resampling_keeps_a_gap_a_gap():
    x = np.sin(np.arange(2560) / 20.0)[None].repeat(20, axis=0)
    x[:, 1000:1100] = np.nan
    out = recordings.resample_to_rate(x, 256)
    assert out.shape == (20, 2000)
    gap = np.isnan(out[0])
    assert gap.any() and np.isfinite(out[0, :700]).all() and np.isfinite(out[0, 900:]).all()
    assert abs(np.flatnonzero(gap)[0] - 1000 * 200 / 256) <= 1


def write_edf_plus_d(path, data, rate, onsets):
    """An EDF+D file of ``data`` in 1-s data records whose time-keeping onsets are ``onsets``
    (an EDF+C file written by edfio, its onsets and its continuity field rewritten)."""
    signals = [
        edfio.EdfSignal(x, rate, label=label, physical_dimension="uV", physical_range=(-1000.0, 1000.0))
        for x, label in zip(data, REFERENTIAL)
    ]
    edfio.Edf(signals, annotations=[edfio.EdfAnnotation(0, None, "start")]).write(path)
    raw = bytearray(path.read_bytes())
    n_signals = int(raw[252:256])
    samples = [int(raw[256 + 216 * n_signals + 8 * i : 256 + 216 * n_signals + 8 * (i + 1)]) for i in range(n_signals)]
    header, record_bytes, slot = 256 * (n_signals + 1), sum(samples) * 2, samples[-1] * 2
    raw[192:197] = b"EDF+D"
    for record, onset in enumerate(onsets[1:], start=1):  # record 0 also holds the "start" note
        start = header + (record + 1) * record_bytes - slot
        raw[start : start + slot] = f"+{onset:g}\x14\x14\x00".encode().ljust(slot, b"\x00")
    path.write_bytes(bytes(raw))
    return path


def test_discontinuous_edf_plus_d_lies_on_its_time_axis_with_nan_gaps(tmp_path):
    rng = np.random.default_rng(0)
    data = rng.uniform(-400, 400, (20, 200 * 6))
    onsets = [0, 1, 2, 5.5, 6.5, 7.5]  # 3.5 s missing after the third record
    rec = read_recording(write_edf_plus_d(tmp_path / "d.edf", data, 200, onsets))
    assert rec.data.shape == (20, int(8.5 * 200))
    gap = np.isnan(rec.data).all(axis=0)
    assert np.array_equal(np.flatnonzero(gap), np.arange(600, 1100))
    step = 2000 / 65535
    np.testing.assert_allclose(rec.data[:, :600], data[:, :600], atol=step)
    np.testing.assert_allclose(rec.data[:, 1100:], data[:, 600:], atol=step)

    overlapping = write_edf_plus_d(tmp_path / "o.edf", data, 200, [0, 1, 2, 2.5, 3.5, 4.5])
    with pytest.raises(RecordingError, match=r"o.edf: data record 3 starts at 2.5 s, before record 2 ends"):
        read_recording(overlapping)


def test_window_gap_fractions_count_samples_where_every_scalp_channel_is_nan():
    from hms.inference import gap_fractions

    x = np.ones((20, 30_000), dtype=np.float32)
    x[:19, 5_000:10_000] = np.nan  # a gap
    x[3, 20_000:] = np.nan  # one channel missing is no gap
    fractions = gap_fractions(x, np.array([0, 5_000, 10_000, 20_000]))
    np.testing.assert_allclose(fractions, [0.5, 0.5, 0.0, 0.0])


@pytest.mark.parametrize("rate", [256, 250, 512, 1000, 200.5])
def test_native_resampling_equals_scipy_resample_poly(rate):
    """hms.dsp.resample_poly replaced scipy's: the same values (gaps filled with zeros first) and
    the same gaps."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((20, 3000)) * 50
    x[3, 500:700] = np.nan
    ratio = Fraction(200) / Fraction(rate).limit_denominator(10_000)
    out = recordings.resample_to_rate(x, rate)
    expected = ss.resample_poly(np.nan_to_num(x), ratio.numerator, ratio.denominator, axis=-1).astype(np.float32)
    np.testing.assert_array_equal(np.isnan(out).any(axis=0), np.isnan(out[3]))
    keep = ~np.isnan(out)
    np.testing.assert_allclose(out[keep], expected[keep], rtol=1e-6, atol=1e-4)
    assert np.isnan(out[3]).sum() == pytest.approx(200 * float(ratio), abs=2)
