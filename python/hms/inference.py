"""Loading a trained run's fold models for inference, and predicting label frames or raw EEG.

A run is used exactly as it was trained: each fold's model is rebuilt from the run's config and its
``best.pt`` weights, and each fold gets its own :class:`hms.inputs.InputPipeline` restored from the
state stored in that checkpoint (recipe parameters and the normalization statistics fitted on that
fold's training rows), so the test inputs see the same preprocessing as the fold's validation rows.
A run's prediction is the mean of its fold models' probabilities.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch.utils.data import DataLoader

from hms import CLASSES, config, engine
from hms.competition import CompetitionData
from hms.config import Config
from hms.dataset import InputDataset
from hms.inputs import InputPipeline
from hms.models import create_model_from_config
from hms.progress import bar as progress_bar
from hms.readers import read_eeg
from hms.rundir import RunDir, RunDirError
from hms.schema import EEG_CHANNELS, EEG_WINDOW_SAMPLES, SAMPLE_RATE, VOTE_COLUMNS
from hms.windows import central_eeg_window


@dataclass
class FoldModel:
    fold: int
    model: torch.nn.Module
    pipeline: InputPipeline  # restored from the fold's checkpoint


@dataclass
class LoadedRun:
    path: Path
    cfg: Config
    folds: list[FoldModel] = field(default_factory=list)

    @property
    def sources(self) -> tuple[str, ...]:
        return self.folds[0].pipeline.sources


def run_config(run: RunDir) -> Config:
    """The run's saved config, with weight downloads off: the checkpoint holds every weight."""
    saved = run.read_config()
    saved.update(pretrained=False, weights=None)
    try:
        return config.build(saved)
    except config.ConfigError as exc:
        raise RunDirError(f"{run.path}/config.json: {exc}") from exc


def trained_folds(run: RunDir, cfg: Config) -> list[int]:
    """The folds the run trained (its config's selection), each required to have best.pt."""
    folds = list(cfg.folds) if cfg.folds is not None else list(range(cfg.n_folds))
    missing = [str(run.checkpoint_path(f, "best")) for f in folds if not run.checkpoint_path(f, "best").is_file()]
    if missing:
        raise RunDirError(f"{run.path}: fold checkpoint(s) missing: {missing}; is the run finished?")
    return folds


def check_run(path: str | os.PathLike) -> None:
    """Raises RunDirError naming what is missing when ``path`` is not a finished, loadable run
    (its config and every trained fold's best.pt), without loading any weights."""
    run = RunDir.open(path)
    trained_folds(run, run_config(run))


def load_run(path: str | os.PathLike, data: CompetitionData | None, device: torch.device | str = "cpu") -> LoadedRun:
    """Every fold model of a run, in eval mode on ``device``, with its own input pipeline."""
    run = RunDir.open(path)
    cfg = run_config(run)
    loaded = LoadedRun(run.path, cfg)
    for fold in trained_folds(run, cfg):
        state = run.require_checkpoint(fold, "best", keys=("model", "inputs"))
        path = run.checkpoint_path(fold, "best")
        try:
            pipeline = InputPipeline.from_state(json.loads(state["inputs"]), data, keep_cache_dir=False)
            model = create_model_from_config(cfg, pipeline.in_chans)
            model.load_state_dict(state["model"])
        except (ValueError, TypeError, RuntimeError) as exc:  # RuntimeError: weights of another shape
            raise RunDirError(f"{path}: does not match {run.path / 'config.json'} ({exc})") from exc
        loaded.folds.append(FoldModel(fold, model.to(device).eval(), pipeline))
    return loaded


def predict_labels(
    loaded: LoadedRun,
    labels: pd.DataFrame,
    *,
    split: str = "test",
    tta: bool = False,
    batch_size: int = 32,
    device: torch.device | str = "cpu",
    progress: bool = True,
) -> np.ndarray:
    """(len(labels), 6) float64 probabilities in ``labels`` order: the mean over fold models.

    ``tta`` averages each fold's prediction with that of the hemisphere-swapped input."""
    device = torch.device(device)
    precision = engine.resolve_precision("off", device)
    total = np.zeros((len(labels), 6))
    for fm in progress_bar(loaded.folds, desc=f"{loaded.path.name} folds", unit="fold", show=progress, leave=False):
        loader = DataLoader(
            InputDataset(fm.pipeline, labels, split=split, augment=False), batch_size=batch_size, shuffle=False
        )
        total += engine.validate(
            fm.model,
            loader,
            len(labels),
            device=device,
            precision=precision,
            swap=fm.pipeline.swap_hemispheres if tta else None,
        )
    return total / len(loaded.folds)


def predict_eeg_file(loaded: LoadedRun, path: str | os.PathLike, *, tta: bool = False) -> np.ndarray:
    """(6,) probabilities for one EEG parquet file outside the competition layout (its central
    50 s). Only for EEG-only inputs: the Kaggle spectrogram of an arbitrary recording does not exist."""
    if "kaggle" in loaded.sources:
        raise ValueError(
            f"{loaded.path}: input={loaded.cfg.input!r} needs a Kaggle spectrogram, which a lone EEG file "
            f"({path}) does not have; use a run trained with input=eeg, or --data-dir with the competition layout"
        )
    window = central_eeg_window(read_eeg(path))[None]
    total = np.zeros(6)
    with torch.no_grad():
        for fm in loaded.folds:
            inputs = torch.from_numpy(fm.pipeline.transform_windows(eeg=window))
            p = fm.model(inputs).double().softmax(dim=1)
            if tta:
                p = 0.5 * (p + fm.model(fm.pipeline.swap_hemispheres(inputs)).double().softmax(dim=1))
            total += p[0].numpy()
    return total / len(loaded.folds)


def window_starts(n_samples: int, stride_s: float) -> np.ndarray:
    """Start samples of the 50-s windows over a recording, every ``stride_s`` seconds from 0
    (the last window ends at or before the recording's end)."""
    if not stride_s > 0:
        raise ValueError(f"stride must be > 0 seconds, got {stride_s}")
    if n_samples < EEG_WINDOW_SAMPLES:
        raise ValueError(
            f"the recording is {n_samples / SAMPLE_RATE:g} s long; a window is {EEG_WINDOW_SAMPLES / SAMPLE_RATE:g} s"
        )
    step = max(1, int(round(stride_s * SAMPLE_RATE)))
    return np.arange(0, n_samples - EEG_WINDOW_SAMPLES + 1, step)


def predict_windows(
    loaded: LoadedRun,
    recording: np.ndarray,
    starts: np.ndarray,
    *,
    tta: bool = False,
    batch_size: int = 32,
    device: torch.device | str = "cpu",
    progress: bool = True,
) -> np.ndarray:
    """(len(starts), 6) probabilities of the 50-s windows of ``recording`` (20, samples) starting
    at ``starts``: the mean of the run's fold models, each window's inputs built natively in
    batches. Only for EEG-only inputs (a recording has no Kaggle spectrogram)."""
    if "kaggle" in loaded.sources:
        raise ValueError(
            f"{loaded.path}: input={loaded.cfg.input!r} needs a Kaggle spectrogram, which a recording does not "
            "have; use a run trained with input=eeg"
        )
    device = torch.device(device)
    total = np.zeros((len(starts), 6))
    batches = range(0, len(starts), batch_size)
    with torch.no_grad():
        for first in progress_bar(batches, desc=f"{loaded.path.name} windows", unit="batch", show=progress):
            chunk = starts[first : first + batch_size]
            windows = np.stack([recording[:, s : s + EEG_WINDOW_SAMPLES] for s in chunk])
            for fm in loaded.folds:
                inputs = torch.from_numpy(fm.pipeline.transform_windows(eeg=windows)).to(device)
                p = fm.model(inputs).double().softmax(dim=1)
                if tta:
                    p = 0.5 * (p + fm.model(fm.pipeline.swap_hemispheres(inputs)).double().softmax(dim=1))
                total[first : first + len(chunk)] += p.cpu().numpy()
    return total / len(loaded.folds)


def gap_fractions(recording: np.ndarray, starts: np.ndarray) -> np.ndarray:
    """The share of each 50-s window of ``recording`` (20, samples) that is a gap: samples where
    every scalp channel is NaN (a NaN run, or the time between an EDF+D file's records)."""
    gap = np.isnan(recording[: len(EEG_CHANNELS) - 1]).all(axis=0)
    cumulative = np.concatenate([[0], np.cumsum(gap)])
    return (cumulative[starts + EEG_WINDOW_SAMPLES] - cumulative[starts]) / EEG_WINDOW_SAMPLES


def windows_frame(starts: np.ndarray, probs: np.ndarray, gaps: np.ndarray | None = None) -> pd.DataFrame:
    """The per-window table: start_s, end_s, the six class probabilities (submission columns) and,
    given, each window's ``gap_fraction`` (:func:`gap_fractions`)."""
    frame = pd.DataFrame({"start_s": starts / SAMPLE_RATE, "end_s": (starts + EEG_WINDOW_SAMPLES) / SAMPLE_RATE})
    for j, column in enumerate(VOTE_COLUMNS):
        frame[column] = probs[:, j]
    if gaps is not None:
        frame["gap_fraction"] = gaps
    return frame


def recording_summary(frame: pd.DataFrame) -> dict[str, Any]:
    """Per class: mean and largest window probability (and where), and the share of windows in
    which it is the most likely class."""
    probs = frame[list(VOTE_COLUMNS)].to_numpy()
    top = probs.argmax(axis=1)
    return {
        "windows": len(frame),
        # Windows that are mostly gap say little about the EEG: counted, and shaded on the timeline.
        "windows_mostly_gap": int((frame["gap_fraction"] > 0.5).sum()) if "gap_fraction" in frame else 0,
        "per_class": {
            name: {
                "mean": float(probs[:, j].mean()),
                "max": float(probs[:, j].max()),
                "max_at_s": float(frame["start_s"].iloc[int(probs[:, j].argmax())]),
                "top_share": float((top == j).mean()),
            }
            for j, name in enumerate(CLASSES)
        },
    }
