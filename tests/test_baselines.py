"""Baselines: out-of-fold hygiene, features, and the synthetic set's honest difficulty."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.special import entr

from hms import baselines
from hms.competition import CompetitionData
from hms.labels import make_folds, make_labels, targets_of
from hms.metric import kl_divergence
from hms.schema import EEG_CHANNELS, REGIONS

N_BANDS = len(baselines.BANDS)


def random_targets(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).dirichlet(np.ones(6), n)


def test_uniform():
    oof = baselines.uniform_oof(4)
    assert oof.shape == (4, 6)
    np.testing.assert_allclose(oof, 1 / 6)


def test_class_prior_uses_only_the_other_folds():
    targets = np.eye(6)[[0, 0, 1, 2, 2, 2]]
    folds = np.array([0, 0, 1, 1, 2, 2])
    oof = baselines.class_prior_oof(targets, folds)
    np.testing.assert_allclose(oof[0], [0, 0.25, 0.75, 0, 0, 0])  # folds 1 and 2
    np.testing.assert_allclose(oof[2], [0.5, 0, 0.5, 0, 0, 0])  # folds 0 and 2
    np.testing.assert_allclose(oof[4], [0.5, 0.25, 0.25, 0, 0, 0])  # folds 0 and 1


def test_band_power_lr_does_not_look_at_the_held_out_fold():
    rng = np.random.default_rng(1)
    features = rng.normal(size=(60, 8))
    targets = random_targets(60)
    folds = np.repeat(np.arange(3), 20)
    oof = baselines.band_power_lr_oof(features, targets, folds)
    changed = targets.copy()
    changed[folds == 1] = np.eye(6)[rng.integers(0, 6, 20)]
    oof_changed = baselines.band_power_lr_oof(features, changed, folds)
    np.testing.assert_allclose(oof_changed[folds == 1], oof[folds == 1])
    assert not np.allclose(oof_changed[folds != 1], oof[folds != 1])
    np.testing.assert_allclose(oof.sum(axis=1), 1.0)


def test_band_power_lr_learns_a_signal_in_the_features():
    rng = np.random.default_rng(2)
    classes = rng.integers(0, 6, 300)
    features = np.eye(6)[classes] * 3 + rng.normal(size=(300, 6))
    targets = 0.8 * np.eye(6)[classes] + 0.2 / 6
    folds = np.arange(300) % 4
    oof = baselines.band_power_lr_oof(features, targets, folds)
    prior = baselines.class_prior_oof(targets, folds)
    assert kl_divergence(targets, oof) < 0.5 * kl_divergence(targets, prior)


def test_window_band_powers_see_band_and_side():
    t = np.arange(10_000) / 200
    window = np.random.default_rng(3).normal(0, 1, (20, 10_000))
    for name in ("Fp1", "T3", "O1"):  # a 10 Hz rhythm on left temporal electrodes
        window[EEG_CHANNELS.index(name)] += 30 * np.sin(2 * np.pi * 10 * t) * (1 if name != "T3" else -1)
    features = baselines.window_band_powers(window)
    assert features.shape == (baselines.N_FEATURES,)
    log_power = features[: len(REGIONS) * N_BANDS].reshape(len(REGIONS), N_BANDS)
    alpha = [i for i, (lo, hi) in enumerate(baselines.BANDS) if lo <= 10 < hi][0]
    ll = REGIONS.index("LL")
    assert log_power[ll].argmax() == alpha and log_power[:, alpha].argmax() == ll
    asymmetry = features[len(REGIONS) * N_BANDS :][:N_BANDS]  # LL - RL
    assert asymmetry[alpha] > 3 and abs(asymmetry[0]) < 1
    np.testing.assert_allclose(features[-2 * N_BANDS :], np.abs(features[-4 * N_BANDS : -2 * N_BANDS]))
    window[:, 4000:6000] = np.nan  # a gap in the labelled centre still gives finite features
    assert np.isfinite(baselines.window_band_powers(window)).all()


def test_run_baselines_scores_are_the_metric_of_their_predictions(tiny_dataset):
    data = CompetitionData(tiny_dataset)
    labels = make_labels(data.train, "eeg")
    folds = make_folds(labels, 4, seed=0)
    results = baselines.run_baselines(data, labels, folds, show_progress=False)
    assert set(results) == {"uniform", "class_prior", "band_power_lr", "bayes_floor"}
    for result in results.values():
        assert result.oof.shape == (len(labels), 6)
        assert result.score == pytest.approx(kl_divergence(targets_of(labels), result.oof))
    # Against 1/6 everywhere the KL is log 6 minus the targets' mean entropy.
    entropy = entr(targets_of(labels)).sum(axis=1)
    assert results["uniform"].score == pytest.approx(np.log(6) - entropy.mean())


def test_the_synthetic_set_is_honestly_difficult(small_dataset):
    """Class prior about 1.0, band-power LR clearly better, and still far from 0."""
    data = CompetitionData(small_dataset)
    labels = make_labels(data.train, "eeg")
    folds = make_folds(labels, 4, seed=0)
    results = baselines.run_baselines(data, labels, folds, show_progress=False)
    prior, lr = results["class_prior"].score, results["band_power_lr"].score
    assert prior > 0.9
    assert lr < prior - 0.15
    assert lr > 0.4
    # The floor: far below both, and not 0 (rater noise is not in the signal).
    assert 0.1 < results["bayes_floor"].score < lr - 0.2


def test_bayes_floor_is_each_eegs_expected_votes(tiny_dataset, tmp_path):
    """Predictions are the Dirichlet mean of the generator's vote model for the EEG's true
    pattern and strength; a folder without synthetic_truth.csv (real data) has no floor."""
    import shutil

    import pandas as pd

    from hms import synth

    truth = pd.read_csv(tiny_dataset / synth.TRUTH_FILE).set_index("eeg_id")
    eeg_ids = truth.index[:3].to_numpy()
    floor = synth.bayes_floor_predictions(tiny_dataset, eeg_ids)
    rng = np.random.default_rng(0)
    for eeg_id, predicted in zip(eeg_ids, floor):
        pattern = synth.PATTERNS.index(truth.loc[eeg_id, "pattern"])
        draws = [synth.draw_votes(rng, pattern, truth.loc[eeg_id, "strength"], 1, 1000)[0] for _ in range(300)]
        np.testing.assert_allclose(np.mean(draws, axis=0) / 1000, predicted, atol=0.02)
    assert np.allclose(floor.sum(axis=1), 1.0)
    real_like = tmp_path / "data"
    shutil.copytree(tiny_dataset, real_like)
    (real_like / synth.TRUTH_FILE).unlink()
    data = CompetitionData(real_like)
    labels = make_labels(data.train, "eeg")
    assert "bayes_floor" not in baselines.run_baselines(data, labels, make_folds(labels, 2), show_progress=False)


def test_cli_prints_the_table(tiny_dataset, capsys):
    assert baselines.main(["--data-dir", str(tiny_dataset), "--n-folds", "2", "--grouping", "row"]) == 0
    out = capsys.readouterr().out
    for name in ("uniform", "class_prior", "band_power_lr", "bayes_floor"):
        assert name in out
