"""The synthetic dataset: layout, determinism, label structure, votes and signal realism."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pandas as pd
import pytest
from scipy.signal import find_peaks, welch
from scipy.stats import kurtosis

from hms import io as hio
from hms import synth
from hms import synth_eeg as se
from hms.competition import CompetitionData
from hms.readers import read_eeg, read_kaggle_spectrogram
from hms.schema import CONSENSUS_NAMES, EEG_CHANNELS, SPEC_WINDOW_SECONDS, VOTE_COLUMNS

FS = se.FS
LEFT = se.XY[:, 0] < -0.05
RIGHT = se.XY[:, 0] > 0.05


def channel(name: str) -> int:
    return EEG_CHANNELS.index(name)


def quiet_traits(**changes) -> se.PatientTraits:
    """A patient without eye or muscle artifacts and line noise (unless asked for)."""
    base = se.PatientTraits.draw(np.random.default_rng(0))
    defaults = dict(
        amplitude=1.0,
        blink_rate=0.0,
        muscle_rate=0.0,
        line_noise=0.0,
        alpha_gain=0.0,
        ekg_leak=np.zeros(19),
        heart_bpm=72.0,
        ekg_gain=1000.0,
    )
    return dataclasses.replace(base, **{**defaults, **changes})


# ---------------------------------------------------------------------------------------------
# Layout, determinism, atomicity, CLI
# ---------------------------------------------------------------------------------------------


def all_files(root):
    return {p.relative_to(root): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_same_seed_gives_identical_files_whatever_the_workers(tmp_path):
    params = dict(n_patients=2, n_eegs=4, seed=3, n_test_eegs=1, show_progress=False)
    first = all_files(synth.generate(tmp_path / "one", workers=1, **params))
    second = all_files(synth.generate(tmp_path / "two", workers=2, **params))
    assert first.keys() == second.keys()
    folders = {"train_eegs", "train_spectrograms", "test_eegs", "test_spectrograms"}
    assert {path.parts[0] for path in first if len(path.parts) == 2} == folders
    assert all(first[name] == second[name] for name in first)


def test_another_seed_gives_another_dataset(tiny_dataset):
    other = synth.plan_dataset(4, 20, seed=8, n_test_eegs=6).train_table()
    same = synth.plan_dataset(4, 20, seed=7, n_test_eegs=6).train_table()
    pd.testing.assert_frame_equal(same, pd.read_csv(tiny_dataset / "train.csv"), check_dtype=False)
    assert not set(other["eeg_id"]) & set(same["eeg_id"])


def test_layout_and_companion_files(tiny_dataset):
    names = {p.name for p in tiny_dataset.iterdir()}
    assert {
        "train.csv", "test.csv", "sample_submission.csv", "train_eegs", "train_spectrograms", "test_eegs",
        "test_spectrograms", "synthetic.json", "test_solution.csv",
    } <= names  # fmt: skip
    data = CompetitionData(tiny_dataset)
    assert data.train["eeg_id"].nunique() == 20 and data.train["patient_id"].nunique() == 4
    submission = pd.read_csv(data.sample_submission_path)
    assert list(submission.columns) == ["eeg_id", *VOTE_COLUMNS]
    assert list(submission["eeg_id"]) == list(data.test["eeg_id"])
    np.testing.assert_allclose(submission[list(VOTE_COLUMNS)].to_numpy(), 1 / 6)
    solution = pd.read_csv(tiny_dataset / "test_solution.csv")
    assert list(solution["eeg_id"]) == list(data.test["eeg_id"])
    np.testing.assert_allclose(solution[list(VOTE_COLUMNS)].sum(axis=1), 1.0)
    assert solution["n_votes"].between(3, 20).all()  # test rows: 3-20 experts
    assert not set(data.test["patient_id"]) & set(data.train["patient_id"])
    assert tiny_dataset.stat().st_mode & 0o777 == 0o777 & ~hio._UMASK  # not tempfile's 0700
    params = json.loads((tiny_dataset / "synthetic.json").read_text())
    assert params["seed"] == 7 and params["version"] == synth.SYNTH_VERSION


def test_label_rows_windows_and_recordings_fit_together(tiny_dataset):
    data = CompetitionData(tiny_dataset)
    train = data.train
    assert train.groupby("eeg_id").size().mean() > 1.5  # several offsets per eeg_id
    assert train.groupby("spectrogram_id")["eeg_id"].nunique().max() >= 2  # spectrograms hold several EEGs
    assert (train["eeg_label_offset_seconds"] % 2 == 0).all() and (
        train["spectrogram_label_offset_seconds"] % 2 == 0
    ).all()
    for spec_id, rows in train.groupby("spectrogram_id"):
        ordered = rows.sort_values("spectrogram_label_offset_seconds")
        assert list(ordered["spectrogram_sub_id"]) == list(range(len(rows)))
        spec = data.read_spectrogram("train", spec_id)
        assert spec.times[-1] + 1 >= SPEC_WINDOW_SECONDS
        assert (ordered["spectrogram_label_offset_seconds"] + SPEC_WINDOW_SECONDS <= spec.times[-1] + 1).all()
    for eeg_id, rows in train.groupby("eeg_id"):
        assert list(rows["eeg_sub_id"]) == list(range(len(rows)))
        n_seconds = data.read_eeg("train", eeg_id).shape[1] / FS
        assert n_seconds >= 50 and rows["eeg_label_offset_seconds"].max() + 50 <= n_seconds


def test_nan_gaps_in_files_cover_all_channels_at_once(small_dataset):
    data = CompetitionData(small_dataset)
    with_gaps = 0
    for eeg_id in data.train["eeg_id"].unique():
        eeg = read_eeg(data.eeg_path("train", eeg_id))
        missing = np.isnan(eeg)
        if missing.any():
            with_gaps += 1
            np.testing.assert_array_equal(missing, np.broadcast_to(missing[0], missing.shape))
    assert with_gaps >= 1  # some files have gaps (12% of recordings)


def test_generate_refuses_a_non_empty_folder_and_can_overwrite(tmp_path):
    out = tmp_path / "set"
    out.mkdir()
    (out / "keep.txt").write_text("x")
    with pytest.raises(FileExistsError, match="not empty"):
        synth.generate(out, 2, 2, 0, n_test_eegs=1, show_progress=False)
    synth.generate(out, 2, 2, 0, n_test_eegs=1, show_progress=False, overwrite=True)
    assert not (out / "keep.txt").exists() and (out / "train.csv").is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["set"]


def test_an_interrupted_generation_leaves_nothing(tmp_path, monkeypatch):
    calls = []

    def failing_render(recording, root):
        calls.append(recording)
        if len(calls) == 2:
            raise KeyboardInterrupt  # as if the user pressed Ctrl-C
        return real_render(recording, root)

    real_render = synth.render_recording
    monkeypatch.setattr(synth, "render_recording", failing_render)
    with pytest.raises(KeyboardInterrupt):
        synth.generate(tmp_path / "set", 2, 3, 0, n_test_eegs=1, workers=1, show_progress=False)
    assert list(tmp_path.iterdir()) == []


def test_cli(tmp_path, capsys):
    with pytest.raises(SystemExit) as help_exit:
        synth.main(["--help"])
    assert help_exit.value.code == 0 and "--n-patients" in capsys.readouterr().out
    out = tmp_path / "cli"
    args = [
        "--out-dir",
        str(out),
        "--n-patients",
        "2",
        "--n-eegs",
        "3",
        "--n-test-eegs",
        "1",
        "--seed",
        "4",
        "--no-progress",
    ]
    assert synth.main(args) == 0
    assert "3 train EEGs" in capsys.readouterr().out
    assert CompetitionData(out).train["eeg_id"].nunique() == 3
    assert synth.main(args) == 2 and "not empty" in capsys.readouterr().err
    assert synth.main([*args, "--overwrite", "--n-eegs", "4"]) == 0
    assert CompetitionData(out).train["eeg_id"].nunique() == 4
    assert synth.main(["--out-dir", str(tmp_path / "bad"), "--n-patients", "5", "--n-eegs", "2", "--no-progress"]) == 2
    assert "at least one EEG per patient" in capsys.readouterr().err


# ---------------------------------------------------------------------------------------------
# Labels: class mix, vote populations, confusions
# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def large_plan() -> synth.DatasetPlan:
    return synth.plan_dataset(n_patients=300, n_eegs=3000, seed=1, n_test_eegs=200)


def test_class_mix_is_close_to_the_real_train_set(large_plan):
    train = large_plan.train_table()
    mix = train["expert_consensus"].value_counts(normalize=True).reindex(CONSENSUS_NAMES).to_numpy()
    assert np.abs(mix - synth.REAL_CONSENSUS_MIX).max() < 0.04


def test_vote_counts_come_in_two_populations(large_plan):
    train = large_plan.train_table()
    totals = train[list(VOTE_COLUMNS)].sum(axis=1)
    assert totals.min() >= 1 and totals.max() <= 28
    assert not totals.between(8, 9).any()  # a gap between the two populations
    assert 0.3 < (totals >= 10).mean() < 0.65 and (totals <= 3).mean() > 0.2
    assert train.groupby("eeg_id").size().between(1, 15).all()
    test_votes = large_plan.test_solution()["n_votes"]
    assert test_votes.between(3, 20).all()


@pytest.mark.parametrize("pattern", range(6))
def test_votes_follow_the_pattern_and_its_strength(pattern):
    rng = np.random.default_rng(pattern)

    def mean_shares(strength):
        votes = np.concatenate([synth.draw_votes(rng, pattern, strength, 3, 20) for _ in range(300)])
        assert (votes.sum(axis=1) == 20).all()
        return votes.sum(axis=0) / votes.sum()

    clear, ambiguous = mean_shares(1.0), mean_shares(0.1)
    assert clear[pattern] > 0.75 and clear.argmax() == pattern
    assert ambiguous[pattern] < clear[pattern] - 0.4
    # Ambiguous cases spill into the clinically plausible neighbours, not anywhere.
    others = np.delete(np.arange(6), pattern)
    plausible = set(np.flatnonzero(synth.CONFUSION[pattern] >= 0.3))
    assert others[np.argmax(ambiguous[others])] in plausible


def test_consensus_ties_are_broken_at_random():
    rng = np.random.default_rng(0)
    tied = np.tile([[1, 0, 0, 0, 0, 1]], (400, 1))
    picks = synth.draw_consensus(rng, tied)
    assert set(picks) == {0, 5} and 0.4 < (picks == 5).mean() < 0.6
    np.testing.assert_array_equal(synth.draw_consensus(rng, np.eye(6, dtype=int) * 3), np.arange(6))


# ---------------------------------------------------------------------------------------------
# Signals: background, EKG, artifacts, faults
# ---------------------------------------------------------------------------------------------


def bipolar_psd(eeg: np.ndarray, a: str, b: str) -> tuple[np.ndarray, np.ndarray]:
    return welch(eeg[channel(a)] - eeg[channel(b)], fs=FS, nperseg=4 * FS)


def band(freqs, psd, lo, hi) -> float:
    return float(psd[(freqs >= lo) & (freqs < hi)].mean())


def test_background_has_a_1_over_f_spectrum():
    eeg = se.synthesize_recording(np.random.default_rng(1), quiet_traits(), 120.0)
    for a, b in (("Fp1", "F3"), ("C4", "P4"), ("T5", "O1")):
        freqs, psd = bipolar_psd(eeg, a, b)
        assert band(freqs, psd, 1, 2) > 10 * band(freqs, psd, 15, 20) > 0
        assert band(freqs, psd, 3, 5) > band(freqs, psd, 8, 12) > band(freqs, psd, 15, 20)


def test_alpha_rhythm_is_posterior_and_at_the_patient_frequency():
    with_alpha = se.synthesize_recording(np.random.default_rng(2), quiet_traits(alpha_gain=1.0, alpha_hz=10.0), 120.0)
    without = se.synthesize_recording(np.random.default_rng(2), quiet_traits(alpha_gain=0.0), 120.0)

    def peak_ratio(eeg, a, b):
        freqs, psd = bipolar_psd(eeg, a, b)
        return band(freqs, psd, 9.5, 10.5) / (0.5 * band(freqs, psd, 6, 7.5) + 0.5 * band(freqs, psd, 12.5, 14))

    assert peak_ratio(with_alpha, "O1", "Fp1") > 3.0
    assert peak_ratio(without, "O1", "Fp1") < 1.5
    assert peak_ratio(with_alpha, "Fp1", "F3") < 1.5  # frontal: no alpha


def detect_r_peaks(ekg: np.ndarray, gain: float) -> np.ndarray:
    peaks, _ = find_peaks(ekg - np.median(ekg), height=0.6 * gain, distance=int(0.35 * FS))
    return peaks


@pytest.mark.parametrize("bpm", [50.0, 80.0, 110.0])
def test_ekg_has_qrs_at_the_patient_heart_rate(bpm):
    eeg = se.synthesize_recording(np.random.default_rng(3), quiet_traits(heart_bpm=bpm), 120.0)
    peaks = detect_r_peaks(eeg[channel("EKG")], 1000.0)
    rate = 60.0 * FS / np.median(np.diff(peaks))
    assert rate == pytest.approx(bpm, rel=0.06)
    assert len(peaks) == pytest.approx(bpm * 2, rel=0.08)


def test_drawn_heart_rates_are_plausible():
    rates = [se.PatientTraits.draw(np.random.default_rng(s)).heart_bpm for s in range(200)]
    assert 50 <= min(rates) and max(rates) <= 110 and np.ptp(rates) > 40


def test_ekg_leaks_into_scalp_channels():
    leak = np.zeros(19)
    leak[channel("T3")] = 20.0
    eeg = se.synthesize_recording(np.random.default_rng(4), quiet_traits(ekg_leak=leak), 120.0)
    peaks = detect_r_peaks(eeg[channel("EKG")], 1000.0)
    peaks = peaks[(peaks > FS) & (peaks < eeg.shape[1] - FS)]
    # Beat-triggered average of T3 - T4 (the common reference cancels): the R wave shows up.
    difference = eeg[channel("T3")] - eeg[channel("T4")]
    triggered = np.mean([difference[p - 20 : p + 21] for p in peaks], axis=0)
    assert triggered[20] - np.median(triggered) == pytest.approx(20.0, rel=0.35)
    control = eeg[channel("C3")] - eeg[channel("C4")]
    triggered_control = np.mean([control[p - 20 : p + 21] for p in peaks], axis=0)
    assert abs(triggered_control[20] - np.median(triggered_control)) < 5.0


def test_eye_blinks_are_frontal():
    blinking = se.synthesize_recording(np.random.default_rng(5), quiet_traits(blink_rate=0.5), 120.0)
    still = se.synthesize_recording(np.random.default_rng(5), quiet_traits(blink_rate=0.0), 120.0)

    def large_frontal_deflections(eeg):
        frontal = eeg[channel("Fp1")] - eeg[channel("O1")]
        peaks, _ = find_peaks(frontal - np.median(frontal), height=70.0, distance=FS // 2)
        return len(peaks)

    assert large_frontal_deflections(blinking) > 20 and large_frontal_deflections(still) < 5


def test_muscle_bursts_are_fast_and_temporal():
    segment = np.zeros((19, 10 * FS))
    se.add_muscle_burst(np.random.default_rng(6), segment, 2.0, 4.0, 40.0)
    freqs, psd = welch(segment[channel("T3")], fs=FS, nperseg=FS)
    assert band(freqs, psd, 20, 70) > 20 * band(freqs, psd, 0.5, 8)
    assert segment[channel("T3")].std() > 5 * segment[channel("Cz")].std()
    assert not segment[:, : 2 * FS].any() and not segment[:, 6 * FS + 1 :].any()


def test_faults_flat_and_noisy_channels_and_nan_gaps():
    faults = se.RecordingFaults(nan_gaps_s=((10.0, 13.5),), flat_channel=channel("C3"), noisy_channel=channel("O2"))
    eeg = se.synthesize_recording(np.random.default_rng(7), quiet_traits(), 60.0, faults=faults)
    missing = np.isnan(eeg)
    assert missing[:, 10 * FS : int(13.5 * FS)].all() and missing.sum() == 20 * int(3.5 * FS)
    valid = eeg[:, ~missing[0]]
    assert valid[channel("C3")].std() < 1.0
    assert valid[channel("O2")].std() > 3 * np.median(valid[:19].std(axis=1))
    values, times = se.kaggle_spectrogram(eeg)
    gap_frames = np.flatnonzero(np.isnan(values).all(axis=(0, 1)))
    np.testing.assert_array_equal(gap_frames, [5, 6])  # frames [10, 12) and [12, 14)
    np.testing.assert_array_equal(times[:3], [1, 3, 5])


def test_kaggle_spectrogram_matches_an_fft_reference():
    eeg = se.synthesize_recording(np.random.default_rng(8), se.PatientTraits.draw(np.random.default_rng(8)), 40.0)
    values, _ = se.kaggle_spectrogram(eeg)
    diffs = se.bipolar_region_signals(eeg.astype(np.float64))
    frames = diffs.reshape(4, 4, -1, 400)
    frames = frames - frames.mean(axis=-1, keepdims=True)
    window = np.hanning(401)[:-1]
    spectrum = np.fft.rfft(frames * window, 1024, axis=-1)[..., 3:103]
    reference = (2 * np.abs(spectrum) ** 2 / (FS * np.sum(window**2))).mean(axis=1).transpose(0, 2, 1)
    assert values.shape == (4, 100, 20)
    np.testing.assert_allclose(values, reference, rtol=1e-4, atol=0.0051)  # values rounded to 0.01


# ---------------------------------------------------------------------------------------------
# Class patterns
# ---------------------------------------------------------------------------------------------


def pattern_only(pattern: str, seed: int, strength: float = 1.0, side: int = 0, seconds: float = 60.0) -> np.ndarray:
    scalp = np.zeros((19, int(seconds * FS)))
    event = se.PatternEvent(se.PATTERNS.index(pattern), 0.0, seconds, strength, side)
    se.add_pattern(np.random.default_rng(seed), scalp, event, quiet_traits())
    return scalp[:, 2 * FS : -2 * FS]  # skip the soft edges


def lateral_ratio(scalp: np.ndarray) -> float:
    energy = (scalp**2).mean(axis=1)
    return float(energy[LEFT].mean() / energy[RIGHT].mean())


def strongest(scalp: np.ndarray) -> np.ndarray:
    return scalp[np.argmax((scalp**2).mean(axis=1))]


def dominant_frequency(signal: np.ndarray, lo: float = 0.3, hi: float = 15.0) -> float:
    freqs, psd = welch(signal, fs=FS, nperseg=8 * FS)
    inside = (freqs >= lo) & (freqs <= hi)
    return float(freqs[inside][np.argmax(psd[inside])])


def repetition_rate(signal: np.ndarray) -> float:
    """Rate (Hz) of the first clear autocorrelation peak after 0.35 s (one period)."""
    centred = signal - signal.mean()
    acf = np.fft.irfft(np.abs(np.fft.rfft(centred, 2 * len(centred))) ** 2)[: int(3 * FS)]
    peaks, _ = find_peaks(acf, height=0.15 * acf[0])  # timing jitter keeps the peaks low
    return FS / peaks[peaks >= int(0.35 * FS)][0]


# Excess kurtosis separates trains of sharp discharges (> 1) from rhythmic waves (~ -1).
SHARP_KURTOSIS = 1.0
RHYTHMIC_KURTOSIS = 0.0


#: pattern -> (sharp discharges repeating (periodic) or rhythmic waves, the range of their rate
#: in Hz: the autocorrelation's period for periodic patterns, the spectral peak for rhythmic ones).
PATTERN_SHAPES = {
    "lpd": ("periodic", (0.4, 2.0)),
    "gpd": ("periodic", (0.6, 2.6)),
    "lrda": ("rhythmic", (0.9, 2.8)),
    "grda": ("rhythmic", (1.0, 3.3)),
}


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize(
    "pattern, side", [("lpd", 0), ("lpd", 1), ("gpd", None), ("lrda", 0), ("lrda", 1), ("grda", None)]
)
def test_periodic_and_rhythmic_patterns_have_their_shape_rate_and_field(pattern, side, seed):
    """LPD/LRDA over one hemisphere (side 0: left), GPD/GRDA generalized; periodic patterns are
    trains of sharp discharges, rhythmic ones near-sinusoidal delta."""
    scalp = pattern_only(pattern, seed) if side is None else pattern_only(pattern, seed, side=side)
    ratio = lateral_ratio(scalp)
    if side is None:
        assert 1 / 2.5 < ratio < 2.5
    else:
        assert (ratio > 5) if side == 0 else (ratio < 1 / 5)
    shape, (lo, hi) = PATTERN_SHAPES[pattern]
    channel = strongest(scalp)
    if shape == "periodic":
        assert kurtosis(channel) > SHARP_KURTOSIS  # sharp discharges, not a sinusoid
        assert lo <= repetition_rate(channel) <= hi
    else:
        assert kurtosis(channel) < RHYTHMIC_KURTOSIS
        assert lo <= dominant_frequency(channel) <= hi


def test_seizures_evolve_in_frequency_and_amplitude():
    changes = []
    for seed in range(6):
        scalp = pattern_only("seizure", seed, seconds=90.0)
        third = scalp.shape[1] // 3
        early, late = scalp[:, :third], scalp[:, -third:]
        # Amplitude builds up and the field spreads: more energy late than early.
        assert (late**2).sum() > 1.5 * (early**2).sum()
        channel_index = np.argmax((late**2).mean(axis=1))
        changes.append(abs(dominant_frequency(early[channel_index]) - dominant_frequency(late[channel_index])))
    assert sum(c > 0.75 for c in changes) >= 4, changes


def test_pattern_strength_sets_its_visibility():
    for pattern in ("lpd", "lrda", "grda", "seizure"):
        weak, clear = pattern_only(pattern, 9, strength=0.1), pattern_only(pattern, 9, strength=1.0)
        assert weak.std() < 0.6 * clear.std(), pattern


def test_spectrogram_files_show_the_lateralized_pattern(small_dataset):
    """Both modalities carry the label: LRDA/LPD on the left raise left-region delta power."""
    data = CompetitionData(small_dataset)
    truth = pd.read_csv(small_dataset / "synthetic_truth.csv")
    strong = truth[(truth["split"] == "train") & truth["pattern"].isin(["lrda", "lpd"]) & (truth["strength"] > 0.6)]
    train = data.train.drop_duplicates("eeg_id").set_index("eeg_id")
    asymmetries = []
    for row in strong.itertuples():
        spec = read_kaggle_spectrogram(data.spectrogram_path("train", row.spectrogram_id))
        offset = train.loc[row.eeg_id, "spectrogram_label_offset_seconds"]
        centre = (spec.times >= offset + 290) & (spec.times < offset + 310)
        delta = np.nanmean(spec.values[:, 2:15][..., centre], axis=(1, 2))  # ~1-3.5 Hz
        left, right = delta[0] + delta[2], delta[1] + delta[3]  # LL+LP vs RL+RP
        asymmetries.append(np.log(left / right) * (1 if row.side == "left" else -1))
    assert len(asymmetries) >= 3
    assert np.median(asymmetries) > 0.5
