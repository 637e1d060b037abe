"""K-fold cross-validated training with timm backbones; resumable runs and a CV report.

    hms train [--config FILE] [--data-dir DIR] [key=value | --key value ...]
    hms train --model resnet18 --epochs 1 --n-folds 2 --run-dir runs/try
    hms train --resume runs/try
    torchrun --nproc_per_node=4 -m hms.train ...          # DistributedDataParallel, see hms.distributed
    hms train folds_parallel=4 ...              # four folds at once, one GPU each

Without arguments it trains the default small model on the synthetic set (made on first use)
and prints the per-fold and overall CV KL next to the baselines. Everything lands in the run
directory (see :mod:`hms.rundir`); the fold loop is in :mod:`hms.folds`, one epoch of training
and validation in :mod:`hms.engine`.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import sys
import time
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from hms import CLASSES, config, engine, progress
from hms.cli import DEBUG_ENV, USER_ERRORS, report_user_error
from hms.competition import CompetitionData, open_data
from hms.config import Config
from hms.distributed import Distributed, DistributedError, MainRankError, share_cpus
from hms.folds import FoldTrainer, Runtime, score_subsets
from hms.labels import high_vote_mask, make_folds, make_labels, targets_of
from hms.rundir import (
    CONFIG_FILE,
    CONFUSION_FILE,
    CV_FILE,
    DISTRIBUTIONS_FILE,
    LOSS_CURVES_FILE,
    RunDir,
    default_run_name,
)
from hms.schema import OOF_ID_COLUMNS, OOF_PRED_COLUMNS, OOF_TARGET_COLUMNS

log = logging.getLogger("hms.train")  # not __name__: it is __main__ under python -m
#: Config keys a resumed run may change: they affect where and how visibly it runs, not results.
RESUME_OVERRIDABLE = ("device", "num_workers", "progress", "eval_batch_size", "dist_timeout_s", "folds_parallel")


class FoldWorkerError(RuntimeError):
    """A ``folds_parallel`` worker process failed; the message names its fold and exit status."""


# ---------------------------------------------------------------------------------------------
# Cross-validation
# ---------------------------------------------------------------------------------------------


def train_cv(
    cfg: Config, run: RunDir, *, dist: Distributed | None = None, data: CompetitionData | None = None
) -> dict[str, Any] | None:
    """Trains every selected fold (resuming what ``run`` already holds), writes the OOF
    predictions, metrics, CV summary and plots; returns the summary written to cv.json.

    Under torchrun (``dist``) every rank calls this and trains its share of each epoch; rank 0
    alone writes and returns the summary (the other ranks return None once training is done).
    With ``folds_parallel`` > 1 worker processes train the folds first (:func:`train_folds_in_parallel`);
    this process then finds every fold finished and assembles the results. ``data``: the opened
    ``cfg.data_dir`` where the caller has it."""
    dist = dist or Distributed()
    check_launch(cfg, dist)
    device = dist.device_for(engine.resolve_device(cfg.device))
    rt, data, labels, folds = _fold_setup(cfg, device, dist, progress=dist.is_main, data=data)
    selected = cfg.folds if cfg.folds is not None else list(range(cfg.n_folds))
    if dist.is_main:
        processes = f" x {dist.world_size} processes" if dist.enabled else ""
        log.info(
            f"{data.root}: {len(labels)} samples ({cfg.grouping} grouping), folds {selected} of {cfg.n_folds}; "
            f"model {cfg.model}, device {device}{processes}{'' if rt.precision.dtype is None else f' ({rt.precision.dtype})'}; run {run.path}"
        )
    if cfg.folds_parallel > 1 and len(selected) > 1:
        train_folds_in_parallel(cfg, run, selected)

    histories: dict[int, list[dict[str, Any]]] = {}

    def write_metrics(fold: int, history: list[dict[str, Any]]) -> None:
        histories[fold] = list(history)
        run.write_metrics([row for f in sorted(histories) for row in histories[f]])

    rt.on_epoch = write_metrics
    oof = np.full((len(labels), len(CLASSES)), np.nan)
    started = time.perf_counter()
    for fold in progress.bar(selected, desc="folds", unit="fold", show=cfg.progress and rt.progress):
        probs, history = FoldTrainer(cfg, run, data, labels, folds, fold, rt).run_fold()
        oof[folds == fold] = probs
        write_metrics(fold, history)
    train_seconds = time.perf_counter() - started
    if not dist.is_main:
        return None

    scored = np.isin(folds, selected)
    run.write_oof(oof_frame(labels, folds, oof, scored))
    summary = cv_summary(cfg, labels, folds, oof, selected, baseline_predictions(data, labels, folds))
    summary["train_seconds"] = train_seconds
    run.write_json(CV_FILE, summary)
    write_plots(run, labels[scored], oof[scored], pd.DataFrame([r for f in sorted(histories) for r in histories[f]]))
    return summary


def check_launch(cfg: Config, dist: Distributed) -> None:
    if cfg.folds_parallel > 1 and dist.enabled:
        raise ValueError(
            f"folds_parallel={cfg.folds_parallel} cannot be combined with torchrun "
            f"({dist.world_size} processes): use one or the other"
        )


def _fold_setup(
    cfg: Config, device: torch.device, dist: Distributed, *, progress: bool, data: CompetitionData | None = None
):
    """(Runtime, data, labels, fold of each label) as every fold loop process needs them."""
    engine.set_deterministic(cfg.deterministic)
    engine.seed_everything(cfg.seed)
    precision = engine.resolve_precision(cfg.amp, device)
    rt = Runtime(device, precision, dist=dist, progress=progress)
    data = data if data is not None else open_data(cfg.data_dir, require=("train",))
    labels = make_labels(data.train, cfg.grouping)
    return rt, data, labels, make_folds(labels, cfg.n_folds, cfg.seed)


# ---------------------------------------------------------------------------------------------
# Folds in parallel (one process per GPU, folds_parallel)
# ---------------------------------------------------------------------------------------------


def train_folds_in_parallel(cfg: Config, run: RunDir, selected: list[int]) -> None:
    """Trains ``selected`` in ``cfg.folds_parallel`` worker processes: the i-th fold in worker
    i mod N, worker w on GPU w mod (number of GPUs) on CUDA, else on CPU with its share of the
    cores. Workers write only their folds' files (each fold's checkpoints hold its results); a
    failed worker stops the others and raises :class:`FoldWorkerError` naming its fold."""
    import torch.multiprocessing as mp

    n = min(cfg.folds_parallel, len(selected))
    assignment = [selected[w::n] for w in range(n)]
    log.info(
        "training folds in %d processes: %s", n, ", ".join(f"worker {w}: folds {a}" for w, a in enumerate(assignment))
    )
    context = mp.start_processes(
        _fold_worker, args=(cfg, str(run.path), assignment), nprocs=n, join=False, start_method="spawn"
    )
    try:
        while not context.join():
            pass
    except (mp.ProcessExitedException, mp.ProcessRaisedException) as exc:  # the others are stopped by then
        worker = exc.error_index
        unfinished = [f for f in assignment[worker] if not _fold_finished(run, f)]
        if isinstance(exc, mp.ProcessExitedException):
            status = f"exit status {exc.exit_code}" + (f" ({exc.signal_name})" if exc.signal_name else "")
        else:  # ProcessRaisedException: the worker's traceback
            log.error("%s", str(exc).strip())
            status = "exception " + str(exc).strip().splitlines()[-1]
        fold = f"fold {unfinished[0]}" if unfinished else f"folds {assignment[worker]}"
        raise FoldWorkerError(
            f"{fold} failed: fold worker {worker} (pid {exc.error_pid}, folds {assignment[worker]}) "
            f"ended with {status}; the other workers were stopped"
        ) from None


def _fold_finished(run: RunDir, fold: int) -> bool:
    try:
        last = run.load_checkpoint(fold, "last")
    except ValueError:  # unreadable: not finished
        return False
    return last is not None and bool(last["finished"])


def _fold_worker(worker: int, cfg: Config, run_path: str, assignment: list[list[int]]) -> None:
    device = engine.resolve_device(cfg.device)
    if device.type == "cuda":
        device = torch.device("cuda", worker % torch.cuda.device_count())
        torch.cuda.set_device(device)
    share_cpus(len(assignment))
    rt, data, labels, folds = _fold_setup(cfg, device, Distributed(), progress=False)
    run = RunDir.open(run_path)
    for fold in assignment[worker]:
        FoldTrainer(cfg, run, data, labels, folds, fold, rt).run_fold()


# ---------------------------------------------------------------------------------------------
# Results
# ---------------------------------------------------------------------------------------------


def oof_frame(labels: pd.DataFrame, folds: np.ndarray, oof: np.ndarray, rows: np.ndarray) -> pd.DataFrame:
    frame = labels.loc[rows, list(OOF_ID_COLUMNS[:-1])].reset_index(drop=True)
    frame["fold"] = folds[rows]
    for j, column in enumerate(OOF_PRED_COLUMNS):
        frame[column] = oof[rows, j]
    targets = targets_of(labels)[rows]
    for j, column in enumerate(OOF_TARGET_COLUMNS):
        frame[column] = targets[:, j]
    return frame


def baseline_predictions(data, labels: pd.DataFrame, folds: np.ndarray) -> dict[str, np.ndarray]:
    """Out-of-fold predictions of the reference baselines on the same folds."""
    from hms.baselines import run_baselines

    return {name: result.oof for name, result in run_baselines(data, labels, folds, show_progress=False).items()}


def cv_summary(
    cfg: Config,
    labels: pd.DataFrame,
    folds: np.ndarray,
    oof: np.ndarray,
    selected: list[int],
    baselines: dict[str, np.ndarray],
) -> dict[str, Any]:
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
        lines.append(
            f"{name:<10}{s['model']['kl_all']:>10.4f}{s['model']['kl_high_votes']:>16.4f}"
            f"{s['class_prior']['kl_all']:>13.4f}{s['n_all']:>6}"
        )
    lines.append("baselines on the same folds (KL all / >= votes):")
    for name, value in summary["overall"].items():
        if isinstance(value, dict) and name != "model":
            lines.append(f"  {name:<14}{value['kl_all']:.4f} / {value['kl_high_votes']:.4f}")
    return "\n".join(lines)


def write_plots(run: RunDir, labels: pd.DataFrame, probs: np.ndarray, metrics: pd.DataFrame) -> None:
    from hms import plots

    targets = targets_of(labels)
    run.save_figure(plots.plot_training_curves(metrics), LOSS_CURVES_FILE)
    run.save_figure(plots.plot_consensus_confusion(targets, probs), CONFUSION_FILE)
    run.save_figure(plots.plot_class_distributions(targets, probs), DISTRIBUTIONS_FILE)


# ---------------------------------------------------------------------------------------------
# Command
# ---------------------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hms train", description="K-fold cross-validated training; prints CV KL next to the baselines."
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
        parser.error(
            f"--resume continues the saved config; it cannot change {refused} "
            f"(allowed: {', '.join(RESUME_OVERRIDABLE)})"
        )
    run = RunDir.open(args.resume)
    saved = run.read_config()
    saved.update({k: getattr(cfg, k) for k in given})
    try:
        return config.build(saved), run
    except config.ConfigError as exc:
        parser.error(f"{run.path}/config.json: {exc}")
        raise  # unreachable: parser.error exits


def open_run_on_main(
    parser: argparse.ArgumentParser, args: argparse.Namespace, cfg: Config, dist: Distributed
) -> tuple[Config, RunDir]:
    """:func:`open_run` on rank 0 (which alone decides the run name and creates the directory);
    the other ranks get its resolved config and a RunDir that writes nothing."""
    opened: list[tuple[Config, RunDir]] = []

    def on_main() -> tuple[dict[str, Any], str]:
        opened.append(open_run(parser, args, cfg))
        return config.to_dict(opened[0][0]), str(opened[0][1].path)

    values, path = dist.run_on_main(on_main)
    return opened[0] if opened else (config.build(values), RunDir(path, is_writer=False))


def launch_timeout(args: argparse.Namespace, cfg: Config) -> float:
    """The process group's timeout, needed before rank 0 can broadcast the config: this launch's
    dist_timeout_s, or on --resume (unless given) the one in the run's config.json where readable."""
    if args.resume is not None and not hasattr(args, "cfg_dist_timeout_s"):
        try:
            return float(json.loads((Path(args.resume) / CONFIG_FILE).read_text())["dist_timeout_s"])
        except (OSError, ValueError, KeyError, TypeError):
            pass
    return cfg.dist_timeout_s


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args, cfg = config.parse_args(parser, None if argv is None else list(argv))
    try:
        dist = Distributed.from_env(launch_timeout(args, cfg))
    except DistributedError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    progress.configure(progress=cfg.progress, verbose=dist.is_main)  # one set of log lines: rank 0's
    try:
        with contextlib.ExitStack() as stack:
            if not dist.is_main:  # one report, one set of log lines: rank 0's
                stack.enter_context(contextlib.redirect_stdout(stack.enter_context(open(os.devnull, "w"))))
            return _train_command(parser, args, cfg, dist)
    finally:
        dist.shutdown()


def _train_command(parser: argparse.ArgumentParser, args: argparse.Namespace, cfg: Config, dist: Distributed) -> int:
    who = f"rank {dist.rank} of {dist.world_size}: " if dist.enabled else ""
    try:
        check_launch(cfg, dist)
        # A new run's data is checked before its folder is made: a bad folder leaves no run behind.
        data = open_data(cfg.data_dir, require=("train",)) if args.resume is None else None
        cfg, run = open_run_on_main(parser, args, cfg, dist)
        started = time.perf_counter()
        summary = train_cv(cfg, run, dist=dist, data=data)
    except MainRankError as exc:  # rank 0 prints the error itself
        return report_user_error(exc, f"{who}stopped: ")
    except USER_ERRORS + (DistributedError,) as exc:
        if os.environ.get(DEBUG_ENV):
            raise
        return report_user_error(exc, who)
    except FoldWorkerError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except Exception as exc:
        if not dist.enabled:
            raise
        traceback.print_exc()
        print(
            f"error: {who}{type(exc).__name__}: {exc}\n(a collective fails like this when another process "
            f"died, or did not answer within dist_timeout_s={cfg.dist_timeout_s:g} s; if one failed first, its "
            "error is the cause: torchrun's summary names the first failure)",
            file=sys.stderr,
        )
        return 1
    if summary is not None:
        print(format_report(summary))
        print(f"run directory: {run.path}  ({time.perf_counter() - started:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
