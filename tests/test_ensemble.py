"""hms.ensemble: refusal of runs that differ, the weight optimizer, leakage-free cross-fitting,
the stacking loss, and the command end to end (table, saved folder, predict --ensemble)."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from _tiny_runs import tiny_run
from hms import ensemble, predict
from hms.metric import kl_divergence
from hms.schema import VOTE_COLUMNS


@pytest.fixture(scope="module")
def runs(tiny_dataset, tmp_path_factory):
    root = tmp_path_factory.getbasetemp() / "tiny-runs"
    # A spectrogram run and a raw-EEG run: the same rows, folds and OOF alignment.
    return [tiny_run(tiny_dataset, root, name) for name in ("a", "raw")]


def random_probs(rng, shape, sharpness=1.0) -> np.ndarray:
    logits = rng.normal(size=shape) * sharpness
    e = np.exp(logits)
    return e / e.sum(axis=-1, keepdims=True)


def synthetic_oof(n_rows=120, n_folds=3, seed=0) -> ensemble.OOFSet:
    """Member 0 is near the targets, member 1 is noise: a good combiner leans on member 0."""
    rng = np.random.default_rng(seed)
    targets = random_probs(rng, (n_rows, 6), 2.0)
    good = 0.8 * targets + 0.2 / 6
    noise = random_probs(rng, (n_rows, 6), 2.0)
    patients = np.arange(n_rows) // 4
    return ensemble.OOFSet(
        [ensemble.Path("good"), ensemble.Path("noise")],
        np.stack([good, noise]),
        targets,
        patients % n_folds,
        patients,
        rng.integers(1, 20, n_rows),
    )


def test_optimized_weights_are_on_the_simplex_and_favour_the_better_member():
    oof = synthetic_oof()
    weights = ensemble.optimize_weights(oof.probs, oof.targets)
    assert weights.min() >= 0 and weights.sum() == pytest.approx(1.0)
    assert weights[0] > 0.9
    # Never worse than the mean it starts from.
    assert kl_divergence(oof.targets, ensemble.weighted_mean(oof.probs, weights)) <= kl_divergence(
        oof.targets, oof.probs.mean(0)
    )


def test_cross_fit_never_shows_a_fold_its_own_rows():
    oof = synthetic_oof()
    seen_sizes = []

    def fit(probs, targets, patients):
        seen_sizes.append(len(targets))
        return set(patients.tolist())

    def apply(train_patients, probs):
        return np.full((probs.shape[1], 6), 1 / 6)

    ensemble.cross_fit(oof, fit, lambda m, p: apply(m, p))
    counts = [int((oof.folds != f).sum()) for f in np.unique(oof.folds)]
    assert seen_sizes == counts  # each fit got exactly the other folds' rows
    # And no patient of the held-out fold: fold membership is by patient.
    for fold in np.unique(oof.folds):
        assert not set(oof.patients[oof.folds == fold]) & set(oof.patients[oof.folds != fold])


def test_stacking_loss_kl_part_is_the_metric():
    rng = np.random.default_rng(1)
    targets = random_probs(rng, (32, 6), 2.0)
    targets[:5, :2] = 0
    targets /= targets.sum(1, keepdims=True)
    logits = torch.from_numpy(rng.normal(size=(32, 6)))
    kl = ensemble.stacking_loss(logits, torch.from_numpy(targets), 0.0, 1.0).item()
    assert kl == pytest.approx(kl_divergence(targets, logits.softmax(1).numpy()), rel=1e-6)


def test_stacking_is_scored_and_learns_what_averaging_cannot():
    oof = synthetic_oof(n_rows=400)
    # A member that confuses classes (its columns shifted by one): no weighting of members can
    # undo that, a meta-model on the raw predictions can.
    oof.probs[0] = np.roll(oof.probs[0], 1, axis=1)
    settings = ensemble.StackingSettings(max_epochs=100, patience=10, hidden=32)
    table = ensemble.evaluate_combiners(oof, settings, min_votes=10, feature_sets=("raw",)).set_index("combiner")
    assert {"member good", "member noise", "mean", "weights", "stacking-raw"} <= set(table.index)
    assert table.loc["stacking-raw", "kl_all"] < 0.8 * min(table.loc["mean", "kl_all"], table.loc["weights", "kl_all"])


def test_runs_with_other_folds_are_refused_by_name(runs, tmp_path):
    other = tmp_path / "other-folds"
    shutil.copytree(runs[1], other)
    oof = pd.read_parquet(other / "oof.parquet")
    oof["fold"] = 1 - oof["fold"]
    oof.to_parquet(other / "oof.parquet", index=False)
    with pytest.raises(ensemble.EnsembleError, match=f"{other}.*other folds"):
        ensemble.load_oof_set([runs[0], other])


def test_runs_with_other_samples_are_refused_by_name(runs, tmp_path):
    other = tmp_path / "other-samples"
    shutil.copytree(runs[1], other)
    oof = pd.read_parquet(other / "oof.parquet")
    oof.iloc[1:].to_parquet(other / "oof.parquet", index=False)
    with pytest.raises(ensemble.EnsembleError, match=f"{other} has other samples.*1 label_id"):
        ensemble.load_oof_set([runs[0], other])


def test_runs_over_one_fold_are_refused_by_name(runs, tmp_path, capsys):
    """Combiners are cross-fitted over folds: runs trained on one fold used to end in a numpy error."""
    one_fold = []
    for run in runs:
        copy = tmp_path / run.name
        shutil.copytree(run, copy)
        oof = pd.read_parquet(copy / "oof.parquet")
        oof[oof["fold"] == 0].to_parquet(copy / "oof.parquet", index=False)
        one_fold.append(copy)
    with pytest.raises(ensemble.EnsembleError, match=rf"{one_fold[0]}/oof.parquet: .* fold\(s\) \[0\] only"):
        ensemble.load_oof_set(one_fold)
    assert ensemble.main(["--runs", *map(str, one_fold), "--out-dir", str(tmp_path / "e")]) == 2
    assert capsys.readouterr().err.startswith(f"error: {one_fold[0]}/oof.parquet")


def test_out_must_be_new_empty_or_an_ensemble_folder(runs, tmp_path, capsys):
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "weights.json").write_text("the user's file")
    assert ensemble.main(["--runs", *map(str, runs), "--out-dir", str(mine)]) == 2
    assert "--out-dir is a folder hms did not make" in capsys.readouterr().err
    assert (mine / "weights.json").read_text() == "the user's file"


def test_saved_ensemble_moves_with_its_runs(tmp_path):
    """Members are stored relative to the ensemble folder: copying runs and ensemble together keeps
    it loadable; an older manifest with absolute paths still loads."""
    old = tmp_path / "old"
    for name in ("a", "b"):
        (old / "runs" / name).mkdir(parents=True)
    saved = ensemble.SavedEnsemble([str(old / "runs" / n) for n in ("a", "b")], "weights", np.array([0.25, 0.75]))
    saved.save(old / "ensembles" / "e1")
    manifest = json.loads((old / "ensembles" / "e1" / ensemble.ENSEMBLE_FILE).read_text())
    assert manifest["members"] == [os.path.join("..", "..", "runs", "a"), os.path.join("..", "..", "runs", "b")]
    shutil.copytree(old, tmp_path / "new")
    shutil.rmtree(old)
    moved = ensemble.SavedEnsemble.load(tmp_path / "new" / "ensembles" / "e1")
    assert moved.members == [str((tmp_path / "new" / "runs" / n).resolve()) for n in ("a", "b")]
    assert all(Path(m).is_dir() for m in moved.members) and moved.weights.tolist() == [0.25, 0.75]
    manifest["members"] = moved.members  # absolute, as written before
    (tmp_path / "new" / "ensembles" / "e1" / ensemble.ENSEMBLE_FILE).write_text(json.dumps(manifest))
    assert ensemble.SavedEnsemble.load(tmp_path / "new" / "ensembles" / "e1").members == moved.members


@pytest.mark.parametrize("combiner", ["weights", "stacking-both"])
def test_command_saves_an_ensemble_that_predict_loads(runs, tiny_dataset, tmp_path, combiner):
    out = tmp_path / "ens"
    args = [
        "--runs",
        *map(str, runs),
        "--out-dir",
        str(out),
        "--combiner",
        combiner,
        "--max-epochs",
        "30",
        "--patience",
        "5",
    ]
    assert ensemble.main(args) == 0
    table = pd.read_csv(out / "cv.csv")
    assert {"mean", "weights", "stacking-raw", "stacking-stats", "stacking-both"} <= set(table["combiner"])
    assert np.isfinite(table["kl_all"]).all() and (out / "cv.png").stat().st_size > 0
    saved = ensemble.SavedEnsemble.load(out)
    assert saved.combiner == combiner and saved.weights.sum() == pytest.approx(1.0)

    submission_path = tmp_path / "submission.csv"
    assert (
        predict.main(
            [
                "--ensemble", str(out), "--data-dir", str(tiny_dataset), "--out", str(submission_path),
                "--no-progress", "--device", "cpu",
            ]
        )
        == 0
    )  # fmt: skip
    submission = pd.read_csv(submission_path)
    # The ensemble combines the members' own submissions exactly as saved.
    members = []
    for i, run in enumerate(runs):
        path = tmp_path / f"member{i}.csv"
        argv = ["--run", str(run), "--data-dir", str(tiny_dataset), "--out", str(path), "--device", "cpu"]
        assert predict.main([*argv, "--no-progress"]) == 0
        members.append(pd.read_csv(path)[list(VOTE_COLUMNS)].to_numpy())
    np.testing.assert_allclose(submission[list(VOTE_COLUMNS)].to_numpy(), saved.combine(members), atol=1e-6)
    assert submission["eeg_id"].tolist() == pd.read_csv(tiny_dataset / "test.csv")["eeg_id"].tolist()
