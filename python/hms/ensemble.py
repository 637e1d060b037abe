"""Ensembling and stacking of trained runs, scored on their out-of-fold predictions.

    hms ensemble --runs runs/a runs/b ... [--out-dir ensembles/NAME] [--ce-weight A --kl-weight B]

Every combiner is scored by the competition metric on the same OOF rows (all rows and the rows
with >= ``--min-votes`` votes), and every score is leakage-free: a combiner fitted on data (the
optimized weights, the stacking meta-model) is cross-fitted over the runs' own patient folds, so
the part scored on fold k was fitted without fold k. (The seed's stacker was trained on
predictions of models that had seen the same samples, and scored with the KL arguments swapped.)
The table is printed and saved as ``cv.csv`` and ``cv.png``; the best combiner, refitted on all
OOF rows, is saved in the ensemble folder that ``hms predict --ensemble`` loads:

    ensemble.json   members (run paths relative to this folder), chosen combiner, weights, stacking settings
    weights.json    the optimized member weights
    meta_model.pt   the stacking MLP's state dict and feature normalization (read weights_only)
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from scipy.optimize import minimize
from torch import nn

from hms.cli import add_progress_option, command, parse_command
from hms.io import atomic_output, write_csv_atomic, write_json_atomic
from hms.metric import kl_divergence
from hms.progress import bar as progress_bar
from hms.rundir import RunDir, require_writable_folder
from hms.schema import OOF_PRED_COLUMNS as PRED_COLUMNS
from hms.schema import OOF_TARGET_COLUMNS as TARGET_COLUMNS

FEATURE_SETS = ("raw", "stats", "both")
ENSEMBLE_FILE, WEIGHTS_FILE, META_MODEL_FILE = "ensemble.json", "weights.json", "meta_model.pt"
PROB_FLOOR = 1e-15
STD_FLOOR = 0.02  # meta-features are probabilities in [0, 1]  # the metric's clipping; keeps log() finite in the weight objective


class EnsembleError(ValueError):
    """Runs that cannot be ensembled together, or a broken ensemble folder; the message says why."""


# ---------------------------------------------------------------------------------------------
# OOF predictions of several runs
# ---------------------------------------------------------------------------------------------


@dataclass
class OOFSet:
    runs: list[Path]
    probs: np.ndarray  # (n_models, n_rows, 6)
    targets: np.ndarray  # (n_rows, 6)
    folds: np.ndarray  # (n_rows,)
    patients: np.ndarray
    n_votes: np.ndarray


def load_oof_set(run_paths: Sequence[str | os.PathLike]) -> OOFSet:
    """The runs' OOF predictions aligned by label_id; refuses runs whose samples or folds differ."""
    if not run_paths:
        raise EnsembleError("no runs given")
    frames = []
    for path in run_paths:
        run = RunDir.open(path)
        if not (run.path / "oof.parquet").is_file():
            raise EnsembleError(f"{run.path}/oof.parquet: not found; is the run finished?")
        frames.append(run.read_oof().set_index("label_id").sort_index())
    reference, ref_path = frames[0], Path(run_paths[0])
    for frame, path in zip(frames[1:], run_paths[1:]):
        missing = reference.index.difference(frame.index)
        extra = frame.index.difference(reference.index)
        if len(missing) or len(extra):
            raise EnsembleError(
                f"{path} has other samples than {ref_path}: {len(missing)} label_id(s) missing (e.g. "
                f"{missing[:5].tolist()}), {len(extra)} extra (e.g. {extra[:5].tolist()}); train both with "
                f"the same data and grouping"
            )
        differ = reference.index[reference["fold"].to_numpy() != frame["fold"].to_numpy()]
        if len(differ):
            raise EnsembleError(
                f"{path} assigns other folds than {ref_path} to {len(differ)} sample(s) (e.g. label_id "
                f"{differ[:5].tolist()}); OOF predictions are only comparable with the same n_folds and seed"
            )
    covered = np.unique(reference["fold"].to_numpy())
    if len(covered) < 2:
        raise EnsembleError(
            f"{ref_path}/oof.parquet: out-of-fold predictions of fold(s) {covered.tolist()} only; combiners are "
            "fitted and scored across folds, so ensembled runs need at least 2 folds (train them with all folds)"
        )
    for frame, path in zip(frames, run_paths):
        if frame[list(PRED_COLUMNS)].isna().any().any():
            raise EnsembleError(f"{path}/oof.parquet: some rows lack predictions (a run over a subset of folds?)")
    return OOFSet(
        runs=[Path(p) for p in run_paths],
        probs=np.stack([f[list(PRED_COLUMNS)].to_numpy(np.float64) for f in frames]),
        targets=reference[list(TARGET_COLUMNS)].to_numpy(np.float64),
        folds=reference["fold"].to_numpy(),
        patients=reference["patient_id"].to_numpy(),
        n_votes=reference["n_votes"].to_numpy(),
    )


# ---------------------------------------------------------------------------------------------
# Combiners
# ---------------------------------------------------------------------------------------------


def weighted_mean(probs: np.ndarray, weights: np.ndarray) -> np.ndarray:
    return np.tensordot(weights, probs, axes=1)


def _softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max())
    return e / e.sum()


def optimize_weights(probs: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """Non-negative member weights summing to 1 minimizing OOF KL (softmax parametrization, so
    the optimizer is unconstrained and every candidate is on the simplex)."""

    log_targets = np.log(np.where(targets > 0, targets, 1.0))  # 0 log 0 counts as 0, as in the metric

    def objective(z: np.ndarray) -> float:
        p = np.clip(weighted_mean(probs, _softmax(z)), PROB_FLOOR, 1)
        return float(np.mean(np.sum(targets * (log_targets - np.log(p)), axis=1)))

    result = minimize(objective, np.zeros(len(probs)), method="L-BFGS-B")
    return _softmax(result.x)


def stack_features(probs: np.ndarray, feature_set: str) -> np.ndarray:
    """(n_rows, d) meta-features: raw member predictions, per-class statistics across members
    (min, max, mean, std, median), or both."""
    if feature_set not in FEATURE_SETS:
        raise ValueError(f"feature set must be one of {FEATURE_SETS}, got {feature_set!r}")
    raw = np.concatenate(list(probs), axis=1)
    stats = np.concatenate([probs.min(0), probs.max(0), probs.mean(0), probs.std(0), np.median(probs, 0)], axis=1)
    return {"raw": raw, "stats": stats, "both": np.concatenate([raw, stats], axis=1)}[feature_set]


@dataclass
class StackingSettings:
    feature_set: str = "both"
    hidden: int = 64
    ce_weight: float = 1.0
    kl_weight: float = 1.0
    lr: float = 1e-3
    max_epochs: int = 300
    patience: int = 20
    batch_size: int = 256
    seed: int = 0


class MetaMLP(nn.Module):
    def __init__(self, n_features: int, hidden: int):
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(n_features, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(), nn.Linear(hidden, 6)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def stacking_loss(logits: torch.Tensor, targets: torch.Tensor, ce_weight: float, kl_weight: float) -> torch.Tensor:
    """a x soft-target cross-entropy + b x KL(targets || softmax(logits)), per-row mean."""
    log_p = torch.log_softmax(logits, dim=1)
    ce = -(targets * log_p).sum(1)
    entropy_term = torch.where(
        targets > 0, targets * torch.log(targets.clamp_min(1e-30)), torch.zeros_like(targets)
    ).sum(1)
    return (ce_weight * ce + kl_weight * (ce + entropy_term)).mean()


@dataclass
class MetaModel:
    """A trained stacking MLP with the feature standardization of its training rows."""

    settings: StackingSettings
    mlp: MetaMLP
    mean: np.ndarray
    std: np.ndarray

    def predict(self, probs: np.ndarray) -> np.ndarray:
        x = (stack_features(probs, self.settings.feature_set) - self.mean) / self.std
        with torch.no_grad():
            return self.mlp(torch.from_numpy(x).float()).double().softmax(dim=1).numpy()


def _early_stopping_split(patients: np.ndarray, seed: int) -> np.ndarray:
    """A boolean mask of ~20% of the patients (at least one), held out for early stopping, so the
    stopping point is not chosen on rows of patients the MLP trains on."""
    unique = np.unique(patients)
    rng = np.random.default_rng(seed)
    held = rng.choice(unique, size=max(1, round(0.2 * len(unique))), replace=False)
    if len(held) == len(unique):  # a single patient: nothing would remain to train on
        return np.zeros(len(patients), dtype=bool)
    return np.isin(patients, held)


def train_meta_model(
    probs: np.ndarray, targets: np.ndarray, patients: np.ndarray, settings: StackingSettings
) -> MetaModel:
    """Adam on a x CE + b x KL, early stopping (patience) on a patient-grouped held-out part."""
    torch.manual_seed(settings.seed)
    features = stack_features(probs, settings.feature_set)
    held = _early_stopping_split(patients, settings.seed)
    fit_rows = ~held if held.any() else np.ones(len(targets), dtype=bool)
    # The std floor: members that barely vary on the training rows would otherwise blow up the
    # standardized features of unseen rows into extreme (and, under KL, ruinous) predictions.
    mean, std = features[fit_rows].mean(0), np.maximum(features[fit_rows].std(0), STD_FLOOR)
    x = torch.from_numpy((features - mean) / std).float()
    y = torch.tensor(targets, dtype=torch.float32)  # a copy: OOF arrays may be read-only
    mlp = MetaMLP(x.shape[1], settings.hidden)
    optimizer = torch.optim.Adam(mlp.parameters(), lr=settings.lr)
    stop_rows = torch.from_numpy(np.flatnonzero(held if held.any() else fit_rows))
    fit_index = torch.from_numpy(np.flatnonzero(fit_rows))
    generator = torch.Generator().manual_seed(settings.seed)
    best_loss, best_state, bad = math.inf, None, 0
    for _ in range(settings.max_epochs):
        mlp.train()
        for batch in fit_index[torch.randperm(len(fit_index), generator=generator)].split(settings.batch_size):
            optimizer.zero_grad()
            stacking_loss(mlp(x[batch]), y[batch], settings.ce_weight, settings.kl_weight).backward()
            optimizer.step()
        mlp.eval()
        with torch.no_grad():
            loss = stacking_loss(mlp(x[stop_rows]), y[stop_rows], 0.0, 1.0).item()  # stop on the metric (KL)
        if loss < best_loss - 1e-6:
            best_loss, best_state, bad = loss, {k: v.clone() for k, v in mlp.state_dict().items()}, 0
        else:
            bad += 1
            if bad >= settings.patience:
                break
    assert best_state is not None  # the first epoch always improves on inf
    mlp.load_state_dict(best_state)
    return MetaModel(settings, mlp.eval(), mean, std)


def cross_fit(oof: OOFSet, fit, apply) -> np.ndarray:
    """Predictions where the rows of fold k come from ``fit`` on the other folds only."""
    out = np.full(oof.targets.shape, np.nan)
    for fold in np.unique(oof.folds):
        train, held = oof.folds != fold, oof.folds == fold
        fitted = fit(oof.probs[:, train], oof.targets[train], oof.patients[train])
        out[held] = apply(fitted, oof.probs[:, held])
    return out


def score_row(name: str, predictions: np.ndarray, oof: OOFSet, min_votes: int) -> dict[str, Any]:
    high = oof.n_votes >= min_votes
    return {
        "combiner": name,
        "kl_all": kl_divergence(oof.targets, predictions),
        f"kl_votes_ge_{min_votes}": kl_divergence(oof.targets[high], predictions[high]) if high.any() else math.nan,
        "n_all": len(predictions),
        f"n_votes_ge_{min_votes}": int(high.sum()),
    }


def evaluate_combiners(
    oof: OOFSet, settings: StackingSettings, min_votes: int, feature_sets=FEATURE_SETS
) -> pd.DataFrame:
    """The CV table: every member alone, the mean, cross-fitted optimized weights and stacking."""
    rows = [score_row(f"member {p.name}", probs, oof, min_votes) for p, probs in zip(oof.runs, oof.probs)]
    rows.append(score_row("mean", oof.probs.mean(0), oof, min_votes))
    weights_cv = cross_fit(oof, lambda p, t, _: optimize_weights(p, t), lambda w, p: weighted_mean(p, w))
    rows.append(score_row("weights", weights_cv, oof, min_votes))
    for feature_set in progress_bar(feature_sets, desc="stacking", unit="feature set", leave=False):
        s = StackingSettings(**{**settings.__dict__, "feature_set": feature_set})
        stacked = cross_fit(oof, lambda p, t, pat, s=s: train_meta_model(p, t, pat, s), lambda m, p: m.predict(p))
        rows.append(score_row(f"stacking-{feature_set}", stacked, oof, min_votes))
    return pd.DataFrame(rows)


# ---------------------------------------------------------------------------------------------
# The saved ensemble
# ---------------------------------------------------------------------------------------------


@dataclass
class SavedEnsemble:
    members: list[str]
    combiner: str  # "mean", "weights" or "stacking-<feature set>"
    weights: np.ndarray
    meta_model: MetaModel | None = None

    def combine(self, member_probs: Sequence[np.ndarray]) -> np.ndarray:
        probs = np.stack(member_probs)
        if len(probs) != len(self.members):
            raise EnsembleError(f"ensemble has {len(self.members)} members, got {len(probs)} predictions")
        if self.combiner == "mean":
            return probs.mean(0)
        if self.combiner == "weights":
            return weighted_mean(probs, self.weights)
        if self.meta_model is None:
            raise EnsembleError(f"combiner {self.combiner!r} needs a meta model, and this ensemble has none")
        return self.meta_model.predict(probs)

    def save(self, path: str | os.PathLike) -> None:
        path = Path(path)
        require_writable_folder(path, ENSEMBLE_FILE, "--out-dir")
        path.mkdir(parents=True, exist_ok=True)
        members = [_relative_to(m, path) for m in self.members]
        manifest: dict[str, Any] = {"members": members, "combiner": self.combiner}
        if self.meta_model is not None:
            manifest["stacking"] = dict(self.meta_model.settings.__dict__)
            with atomic_output(path / META_MODEL_FILE) as tmp:
                torch.save(
                    {
                        "mlp": self.meta_model.mlp.state_dict(),
                        "mean": torch.from_numpy(self.meta_model.mean),
                        "std": torch.from_numpy(self.meta_model.std),
                    },
                    tmp,
                )
        write_json_atomic(path / WEIGHTS_FILE, {"members": members, "weights": self.weights.tolist()})
        write_json_atomic(path / ENSEMBLE_FILE, manifest)  # last: its presence marks a complete folder

    @classmethod
    def load(cls, path: str | os.PathLike) -> SavedEnsemble:
        path = Path(path)
        if not (path / ENSEMBLE_FILE).is_file():
            raise EnsembleError(f"{path / ENSEMBLE_FILE}: not found; is {path} an ensemble folder?")
        manifest = json.loads((path / ENSEMBLE_FILE).read_text())
        weights = np.asarray(json.loads((path / WEIGHTS_FILE).read_text())["weights"], dtype=np.float64)
        meta = None
        if manifest["combiner"].startswith("stacking"):
            settings = StackingSettings(**manifest["stacking"])
            state = torch.load(path / META_MODEL_FILE, map_location="cpu", weights_only=True)
            mean, std = state["mean"].numpy(), state["std"].numpy()
            mlp = MetaMLP(len(mean), settings.hidden)
            mlp.load_state_dict(state["mlp"])
            meta = MetaModel(settings, mlp.eval(), mean, std)
        # Relative members are relative to the ensemble folder (older manifests: absolute).
        members = [str((path / m).resolve()) for m in manifest["members"]]
        return cls(members, manifest["combiner"], weights, meta)


def _relative_to(member: str, folder: Path) -> str:
    """``member`` relative to ``folder`` (so that runs and ensembles move together), or absolute
    where no relative path exists (another drive)."""
    try:
        return os.path.relpath(Path(member).resolve(), folder.resolve())
    except ValueError:
        return str(Path(member).resolve())


def fit_ensemble(oof: OOFSet, combiner: str, settings: StackingSettings) -> SavedEnsemble:
    """The chosen combiner refitted on all OOF rows (its CV score came from cross-fitting)."""
    weights = optimize_weights(oof.probs, oof.targets)
    meta = None
    if combiner.startswith("stacking-"):
        s = StackingSettings(**{**settings.__dict__, "feature_set": combiner.split("-", 1)[1]})
        meta = train_meta_model(oof.probs, oof.targets, oof.patients, s)
    return SavedEnsemble([str(p.resolve()) for p in oof.runs], combiner, weights, meta)


def plot_table(table: pd.DataFrame, min_votes: int):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 0.45 * len(table) + 1.5))
    y = np.arange(len(table))
    ax.barh(y - 0.2, table["kl_all"], height=0.4, label="all rows")
    ax.barh(y + 0.2, table[f"kl_votes_ge_{min_votes}"], height=0.4, label=f">= {min_votes} votes")
    ax.set_yticks(y, table["combiner"])
    ax.invert_yaxis()
    ax.set_xlabel("OOF KL divergence (lower is better)")
    ax.legend()
    return fig


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hms ensemble", description="Score and save ensembles of runs on their OOF predictions."
    )
    parser.add_argument("--runs", nargs="+", required=True, metavar="RUN_DIR")
    parser.add_argument("--out-dir", metavar="DIR", help="ensemble folder [default: ensembles/<run names joined>]")
    parser.add_argument(
        "--min-votes", type=int, default=10, help="threshold of the high-vote score (default: %(default)s)"
    )
    parser.add_argument("--combiner", help="save this combiner instead of the best by OOF KL on all rows")
    parser.add_argument("--ce-weight", type=float, default=1.0, help="stacking loss: a in a x CE + b x KL")
    parser.add_argument("--kl-weight", type=float, default=1.0, help="stacking loss: b in a x CE + b x KL")
    parser.add_argument("--patience", type=int, default=20, help="stacking early-stopping patience (epochs)")
    parser.add_argument("--max-epochs", type=int, default=300)
    parser.add_argument("--hidden", type=int, default=64)
    parser.add_argument("--lr", type=float, default=1e-3)
    add_progress_option(parser)
    return parser


@command
def main(argv: Sequence[str] | None = None) -> int:
    args = parse_command(build_parser(), argv)
    settings = StackingSettings(
        hidden=args.hidden,
        ce_weight=args.ce_weight,
        kl_weight=args.kl_weight,
        lr=args.lr,
        max_epochs=args.max_epochs,
        patience=args.patience,
    )
    out = Path(args.out_dir) if args.out_dir else Path("ensembles") / "+".join(Path(r).name for r in args.runs)
    require_writable_folder(out, ENSEMBLE_FILE, "--out-dir")  # before the work, not after
    oof = load_oof_set(args.runs)
    table = evaluate_combiners(oof, settings, args.min_votes)
    combiners = [c for c in table["combiner"] if not c.startswith("member ")]
    chosen = args.combiner or table[table["combiner"].isin(combiners)].sort_values("kl_all")["combiner"].iloc[0]
    if chosen not in combiners:
        raise EnsembleError(f"--combiner {chosen!r} is not one of {combiners}")
    saved = fit_ensemble(oof, chosen, settings)
    saved.save(out)
    write_csv_atomic(table, out / "cv.csv")
    run = RunDir(out)
    run.save_figure(plot_table(table, args.min_votes), "cv.png")
    print(table.to_string(index=False, float_format=lambda v: f"{v:.4f}"))
    print(f"saved {chosen!r} ({len(saved.members)} members, weights {np.round(saved.weights, 3).tolist()}) to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
