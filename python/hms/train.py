"""K-fold cross-validated training with timm backbones; resumable runs and a CV report.

    python -m hms.train [--config FILE] [--data-dir DIR] [key=value | --key value ...]
    python -m hms.train --model resnet18 --epochs 1 --n_folds 2 --run_dir runs/try
    python -m hms.train --resume runs/try

Without arguments it trains the default small model on the synthetic set (made on first use)
and prints the per-fold and overall CV KL next to the baselines. Everything lands in the run
directory (see :mod:`hms.rundir`); the fold loop is in :mod:`hms.folds`, one epoch of training
and validation in :mod:`hms.engine`.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from hms import CLASSES, config, engine
from hms.config import Config
from hms.data import make_folds, make_labels, open_data, targets_of
from hms.folds import FoldTrainer, Runtime, high_vote_mask, score_subsets
from hms.rundir import CV_FILE, RunDir, default_run_name

PRED_COLUMNS = tuple(f"pred_{c}" for c in CLASSES)
TARGET_COLUMNS = tuple(f"target_{c}" for c in CLASSES)
OOF_ID_COLUMNS = ("label_id", "eeg_id", "spectrogram_id", "patient_id", "expert_consensus", "n_votes", "fold")
#: Config keys a resumed run may change: they affect where and how visibly it runs, not results.
RESUME_OVERRIDABLE = ("device", "num_workers", "progress", "eval_batch_size")


def default_pipeline_class():
    from hms.inputs import InputPipeline

    return InputPipeline


# ---------------------------------------------------------------------------------------------
# Cross-validation
# ---------------------------------------------------------------------------------------------


def train_cv(cfg: Config, run: RunDir, *, pipeline_class=None) -> dict[str, Any]:
    """Trains every selected fold (resuming what ``run`` already holds), writes the OOF
    predictions, metrics, CV summary and plots; returns the summary written to cv.json."""
    engine.set_deterministic(cfg.deterministic)
    engine.seed_everything(cfg.seed)
    device = engine.resolve_device(cfg.device)
    rt = Runtime(device, engine.resolve_precision(cfg.amp, device), pipeline_class or default_pipeline_class())
    data = open_data(cfg.data_dir, require=("train",))
    labels = make_labels(data.train, cfg.grouping)
    folds = make_folds(labels, cfg.n_folds, cfg.seed)
    selected = cfg.folds if cfg.folds is not None else list(range(cfg.n_folds))
    tqdm.write(
        f"{data.root}: {len(labels)} samples ({cfg.grouping} grouping), folds {selected} of {cfg.n_folds}; "
        f"model {cfg.model}, device {device}{'' if rt.precision.dtype is None else f' ({rt.precision.dtype})'}; run {run.path}"
    )

    histories: dict[int, list[dict[str, Any]]] = {}

    def write_metrics(fold: int, history: list[dict[str, Any]]) -> None:
        histories[fold] = list(history)
        run.write_metrics([row for f in sorted(histories) for row in histories[f]])

    rt.on_epoch = write_metrics
    oof = np.full((len(labels), len(CLASSES)), np.nan)
    started = time.perf_counter()
    for fold in tqdm(selected, desc="folds", unit="fold", disable=not cfg.progress):
        probs, history = FoldTrainer(cfg, run, data, labels, folds, fold, rt).run_fold()
        oof[folds == fold] = probs
        write_metrics(fold, history)
    train_seconds = time.perf_counter() - started

    scored = np.isin(folds, selected)
    run.write_oof(oof_frame(labels, folds, oof, scored))
    summary = cv_summary(cfg, labels, folds, oof, selected, baseline_predictions(data, labels, folds))
    summary["train_seconds"] = train_seconds
    run.write_json(CV_FILE, summary)
    write_plots(run, labels[scored], oof[scored], pd.DataFrame([r for f in sorted(histories) for r in histories[f]]))
    return summary


def oof_frame(labels: pd.DataFrame, folds: np.ndarray, oof: np.ndarray, rows: np.ndarray) -> pd.DataFrame:
    frame = labels.loc[rows, list(OOF_ID_COLUMNS[:-1])].reset_index(drop=True)
    frame["fold"] = folds[rows]
    for j, column in enumerate(PRED_COLUMNS):
        frame[column] = oof[rows, j]
    targets = targets_of(labels)[rows]
    for j, column in enumerate(TARGET_COLUMNS):
        frame[column] = targets[:, j]
    return frame


def baseline_predictions(data, labels: pd.DataFrame, folds: np.ndarray) -> dict[str, np.ndarray]:
    """Out-of-fold predictions of the reference baselines on the same folds."""
    from hms.baselines import run_baselines

    return {name: result.oof for name, result in run_baselines(data, labels, folds, show_progress=False).items()}


def cv_summary(cfg: Config, labels: pd.DataFrame, folds: np.ndarray, oof: np.ndarray,
               selected: list[int], baselines: dict[str, np.ndarray]) -> dict[str, Any]:  # fmt: skip
    """KL per fold and overall, on all rows and on the high-vote rows, for the model and baselines."""
    targets = targets_of(labels)
    high = high_vote_mask(labels, cfg.stage2_min_votes)

    def scores(mask: np.ndarray) -> dict[str, Any]:
        out: dict[str, Any] = {"n_all": int(mask.sum()), "n_high_votes": int((mask & high).sum())}
        for name, probs in {"model": oof, **baselines}.items():
            kl_all, kl_high = score_subsets(targets[mask], probs[mask], high[mask])
            out[name] = {"kl_all": kl_all, "kl_high_votes": kl_high}
        return out

    return {
        "min_votes": cfg.stage2_min_votes,
        "n_folds": cfg.n_folds,
        "folds": selected,
        "per_fold": {str(f): scores(folds == f) for f in selected},
        "overall": scores(np.isin(folds, selected)),
    }


def format_report(summary: dict[str, Any]) -> str:
    mv = summary["min_votes"]
    head = f"{'':<10}{'KL all':>10}{f'KL >={mv} votes':>16}{'class prior':>13}{'n':>6}"
    lines = [head]
    rows = [(f"fold {f}", s) for f, s in summary["per_fold"].items()] + [("CV", summary["overall"])]
    for name, s in rows:
        lines.append(f"{name:<10}{s['model']['kl_all']:>10.4f}{s['model']['kl_high_votes']:>16.4f}"
                     f"{s['class_prior']['kl_all']:>13.4f}{s['n_all']:>6}")  # fmt: skip
    lines.append("baselines on the same folds (KL all / >= votes):")
    for name, value in summary["overall"].items():
        if isinstance(value, dict) and name != "model":
            lines.append(f"  {name:<14}{value['kl_all']:.4f} / {value['kl_high_votes']:.4f}")
    return "\n".join(lines)


def write_plots(run: RunDir, labels: pd.DataFrame, probs: np.ndarray, metrics: pd.DataFrame) -> None:
    from hms import plots

    targets = targets_of(labels)
    run.save_figure(plots.plot_training_curves(metrics), "loss_curves.png")
    run.save_figure(plots.plot_consensus_confusion(targets, probs), "confusion.png")
    run.save_figure(plots.plot_class_distributions(targets, probs), "class_distributions.png")


# ---------------------------------------------------------------------------------------------
# Command
# ---------------------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m hms.train",
        description="K-fold cross-validated training; prints CV KL next to the baselines.",
    )
    parser.add_argument("--resume", metavar="RUN_DIR", help="continue a killed run from its last finished epoch")
    config.add_config_arguments(parser)
    return parser


def open_run(parser: argparse.ArgumentParser, args: argparse.Namespace, cfg: Config) -> tuple[Config, RunDir]:
    """The run to train: a new one, or ``--resume``'s with its saved config (few overrides)."""
    if args.resume is None:
        path = Path(cfg.run_dir) if cfg.run_dir else Path("runs") / default_run_name(cfg.model, cfg.input)
        cfg.run_dir = str(path)
        return cfg, RunDir.create(path, config.to_dict(cfg))
    given = sorted(k[4:] for k in vars(args) if k.startswith("cfg_"))
    refused = [k for k in given if k not in RESUME_OVERRIDABLE] + (["--config"] if args.config else [])
    if refused:
        parser.error(f"--resume continues the saved config; it cannot change {refused} "
                     f"(allowed: {', '.join(RESUME_OVERRIDABLE)})")  # fmt: skip
    run = RunDir.open(args.resume)
    saved = run.read_config()
    saved.update({k: getattr(cfg, k) for k in given})
    try:
        return config.build(saved), run
    except config.ConfigError as exc:
        parser.error(f"{run.path}/config.json: {exc}")
        raise  # unreachable: parser.error exits


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args, cfg = config.parse_args(parser, None if argv is None else list(argv))
    try:
        cfg, run = open_run(parser, args, cfg)
        started = time.perf_counter()
        summary = train_cv(cfg, run)
    except (ValueError, FileNotFoundError, NotImplementedError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(format_report(summary))
    print(f"run directory: {run.path}  ({time.perf_counter() - started:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
