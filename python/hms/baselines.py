"""Reference scores a model has to beat, computed out-of-fold on given folds.

* ``uniform``: 1/6 for every class.
* ``class_prior``: the mean target of the training folds.
* ``band_power_lr``: multinomial logistic regression on log band powers of the double-banana
  chains in the labelled 10 s, fitted to the vote fractions (soft labels).
* ``bayes_floor`` (synthetic sets only): each row's expected vote fractions given its EEG's true
  pattern and strength (:func:`hms.synth.expected_votes`), the score no model of the signal can
  beat on average: what remains is which raters happened to vote what.

The trainer reports these next to its CV so a model's number has a scale. Band powers use
scipy directly: this is a yardstick, not part of the model pipeline.

    hms baselines [--data-dir DIR] [--grouping eeg] [--n-folds 5] [--seed 0]
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.signal import welch
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler

from hms import CLASSES, synth
from hms.cli import add_data_dir_option, add_progress_option, command, parse_command
from hms.competition import CompetitionData, open_data
from hms.labels import make_folds, make_labels, targets_of
from hms.metric import kl_divergence
from hms.progress import bar as progress_bar
from hms.schema import BIPOLAR_CHAINS, EEG_CHANNELS, GROUPINGS, LABELLED_SECONDS, REGIONS, SAMPLE_RATE
from hms.windows import eeg_window

#: Frequency bands (Hz) of the band-power features: delta (two halves), theta, alpha, beta.
BANDS: tuple[tuple[float, float], ...] = ((0.5, 2.0), (2.0, 4.0), (4.0, 8.0), (8.0, 13.0), (13.0, 20.0))
_CHANNEL_INDEX = {name: i for i, name in enumerate(EEG_CHANNELS)}
N_FEATURES = len(REGIONS) * len(BANDS) + 4 * len(BANDS)
_PAIRS = np.array([[_CHANNEL_INDEX[a], _CHANNEL_INDEX[b]] for r in REGIONS for a, b in BIPOLAR_CHAINS[r]])


@dataclass(frozen=True)
class BaselineResult:
    name: str
    oof: np.ndarray  # (n, 6) out-of-fold probabilities, label-row order
    score: float  # KL divergence of oof against the targets


def uniform_oof(n_rows: int) -> np.ndarray:
    return np.full((n_rows, len(CLASSES)), 1.0 / len(CLASSES))


def class_prior_oof(targets: np.ndarray, folds: np.ndarray) -> np.ndarray:
    """Each held-out row gets the mean target of the other folds' rows."""
    oof = np.empty_like(targets, dtype=np.float64)
    for fold in np.unique(folds):
        held_out = folds == fold
        prior = targets[~held_out].mean(axis=0)
        oof[held_out] = prior / prior.sum()
    return oof


def window_band_powers(window: np.ndarray) -> np.ndarray:
    """Features (40,) of one 50-s EEG window (20, 10,000) from its labelled central 10 s: log
    band power per region and band (20), left-minus-right differences LL-RL and LP-RP per band
    (10) and their absolute values (10). NaN samples count as zero signal."""
    centre = window.shape[-1] // 2
    half = LABELLED_SECONDS * SAMPLE_RATE // 2
    part = window[:, centre - half : centre + half].astype(np.float64)
    diffs = part[_PAIRS[:, 0]] - part[_PAIRS[:, 1]]
    missing = np.isnan(diffs)
    if missing.any():
        counts = np.maximum((~missing).sum(axis=1, keepdims=True), 1)
        diffs = np.where(missing, 0.0, diffs - np.nansum(diffs, axis=1, keepdims=True) / counts)
    freqs, psd = welch(diffs, fs=SAMPLE_RATE, nperseg=2 * SAMPLE_RATE)
    regional = psd.reshape(len(REGIONS), -1, len(freqs)).mean(axis=1)
    bands = np.stack([regional[:, (freqs >= lo) & (freqs < hi)].mean(axis=1) for lo, hi in BANDS], axis=1)
    log_power = np.log(bands + 1e-6)  # (regions, bands)
    asymmetry = np.stack(
        [
            log_power[REGIONS.index("LL")] - log_power[REGIONS.index("RL")],
            log_power[REGIONS.index("LP")] - log_power[REGIONS.index("RP")],
        ]
    )
    # |asymmetry| too: "lateralized to either side" is not a linear function of the signed one.
    return np.concatenate([log_power.ravel(), asymmetry.ravel(), np.abs(asymmetry).ravel()])


def band_power_features(
    data: CompetitionData, labels: pd.DataFrame, split: str = "train", show_progress: bool = True
) -> np.ndarray:
    """Band-power features (n, 40) of every label row's EEG window (each EEG file read once)."""
    features = np.empty((len(labels), N_FEATURES))
    offsets = (
        labels["eeg_label_offset_seconds"]
        if "eeg_label_offset_seconds" in labels
        else pd.Series(0.0, index=labels.index)
    )
    groups = labels.groupby("eeg_id", sort=False).indices
    for eeg_id, rows in progress_bar(groups.items(), desc="band powers", unit="eeg", show=show_progress):
        eeg = data.read_eeg(split, eeg_id)
        for row in rows:
            features[row] = window_band_powers(eeg_window(eeg, float(offsets.iloc[row])))
    return features


def band_power_lr_oof(features: np.ndarray, targets: np.ndarray, folds: np.ndarray, *, C: float = 0.1) -> np.ndarray:
    """Out-of-fold probabilities of a logistic regression fitted to soft targets.

    Each row enters once per class with the vote fraction as sample weight, which makes the
    log loss equal to the cross-entropy with the vote distribution (the KL up to a constant).
    """
    n_classes = targets.shape[1]
    oof = np.empty_like(targets, dtype=np.float64)
    for fold in np.unique(folds):
        train = folds != fold
        scaler = StandardScaler().fit(features[train])
        x = np.repeat(scaler.transform(features[train]), n_classes, axis=0)
        y = np.tile(np.arange(n_classes), int(train.sum()))
        weight = targets[train].ravel()
        keep = weight > 0
        model = LogisticRegression(C=C, max_iter=2000)
        model.fit(x[keep], y[keep], sample_weight=weight[keep])
        proba = np.full((int((~train).sum()), n_classes), 1e-6)
        proba[:, model.classes_] = model.predict_proba(scaler.transform(features[~train]))
        oof[~train] = proba / proba.sum(axis=1, keepdims=True)
    return oof


def run_baselines(
    data: CompetitionData, labels: pd.DataFrame, folds: np.ndarray, show_progress: bool = True
) -> dict[str, BaselineResult]:
    """All baselines on the given label rows and folds, scored with the competition metric."""
    targets = targets_of(labels)
    features = band_power_features(data, labels, show_progress=show_progress)
    predictions = {
        "uniform": uniform_oof(len(labels)),
        "class_prior": class_prior_oof(targets, folds),
        "band_power_lr": band_power_lr_oof(features, targets, folds),
    }
    floor = synth.bayes_floor_predictions(data.root, labels["eeg_id"].to_numpy())
    if floor is not None:
        predictions["bayes_floor"] = floor
    return {name: BaselineResult(name, oof, kl_divergence(targets, oof)) for name, oof in predictions.items()}


@command
def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="hms baselines", description=__doc__.split("\n\n")[0])
    add_data_dir_option(parser)
    parser.add_argument("--grouping", choices=GROUPINGS, default="eeg", help="label grouping (default %(default)s)")
    parser.add_argument("--n-folds", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    add_progress_option(parser)
    args = parse_command(parser, argv)
    data = open_data(args.data_dir, require=("train",))
    labels = make_labels(data.train, args.grouping)
    folds = make_folds(labels, args.n_folds, args.seed)
    results = run_baselines(data, labels, folds)
    experts = labels["n_votes"].to_numpy() >= 10
    print(f"{data.root}: {len(labels)} samples ({args.grouping} grouping), {args.n_folds} patient-grouped folds")
    print(f"{'baseline':<16}{'KL all':>10}{'KL >=10 votes':>16}")
    for result in results.values():
        expert_score = (
            kl_divergence(targets_of(labels)[experts], result.oof[experts]) if experts.any() else float("nan")
        )
        print(f"{result.name:<16}{result.score:>10.4f}{expert_score:>16.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
