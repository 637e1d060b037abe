"""The run directory: every file a training run writes goes through :class:`RunDir`.

Layout of ``runs/<name>/``::

    config.json                resolved config (what --resume reads back)
    metrics.csv                one row per epoch and fold
    oof.parquet                out-of-fold predictions, targets, vote counts
    cv.json                    CV per fold and overall, all rows and high-vote rows, baselines
    fold<k>/last.pt            end-of-epoch state (model, optimizer, schedule, RNG, history)
    fold<k>/best.pt            best weights so far and their validation predictions
    fold<k>/normalization.json the input pipeline's fitted state (normalization statistics)
    *.png                      loss curves, confusion, class distributions

All writes are atomic (temporary file, then ``os.replace``). Only a writer (``is_writer``; rank
0 once training is distributed) touches the disk; other ranks get the same object and no-ops.
Checkpoints hold tensors and primitive containers only and are read with ``weights_only=True``.
"""

from __future__ import annotations

import json
import os
from datetime import datetime
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from hms.io import atomic_output, write_csv_atomic

CONFIG_FILE = "config.json"
METRICS_FILE = "metrics.csv"
OOF_FILE = "oof.parquet"
CV_FILE = "cv.json"
#: The figures a finished run holds (hms.train.write_plots).
LOSS_CURVES_FILE, CONFUSION_FILE, DISTRIBUTIONS_FILE = "loss_curves.png", "confusion.png", "class_distributions.png"
#: Every file a finished run holds besides its fold folders.
RUN_FILES = (CONFIG_FILE, METRICS_FILE, OOF_FILE, CV_FILE, LOSS_CURVES_FILE, CONFUSION_FILE, DISTRIBUTIONS_FILE)
CHECKPOINT_FORMAT = 1


class RunDirError(ValueError):
    """A run directory is missing, incomplete or from another format; the message names it."""


def require_writable_folder(path: Path, marker: str, option: str) -> None:
    """Refuses to write hms output into ``path`` unless it is absent, empty (but for hms's own
    temporary files) or already hms's (holds ``marker``): other files are never overwritten."""
    if not path.exists():
        return
    if not path.is_dir():
        raise RunDirError(f"{path}: {option} exists and is not a folder")
    if (path / marker).exists():
        return
    others = sorted(p.name for p in path.iterdir() if not (p.name.startswith(".") and p.name.endswith(".tmp")))
    if others:
        shown = others[:5] + (["..."] if len(others) > 5 else [])
        raise RunDirError(
            f"{path}: {option} is a folder hms did not make (it holds {shown}, and no {marker}); "
            f"hms writes only into new or empty folders: pick another {option}"
        )


def default_run_name(model: str, input_name: str) -> str:
    return f"{model}-{input_name}-{datetime.now().strftime('%Y%m%d-%H%M%S')}"


class RunDir:
    def __init__(self, path: str | os.PathLike, *, is_writer: bool = True):
        self.path = Path(path)
        self.is_writer = is_writer

    # paths ---------------------------------------------------------------------------------
    def fold_dir(self, fold: int) -> Path:
        return self.path / f"fold{fold}"

    def checkpoint_path(self, fold: int, which: str) -> Path:
        if which not in ("best", "last"):
            raise ValueError(f"checkpoint must be 'best' or 'last', got {which!r}")
        return self.fold_dir(fold) / f"{which}.pt"

    # creation / resumption -----------------------------------------------------------------
    @classmethod
    def create(cls, path: str | os.PathLike, config: dict[str, Any], **kwargs) -> RunDir:
        """A new run at ``path``: a new or empty folder; refuses a folder that already holds a
        run (use --resume) and one holding anything else (never overwrites other files)."""
        run = cls(path, **kwargs)
        if (run.path / CONFIG_FILE).exists():
            raise RunDirError(
                f"{run.path} already holds a run; resume it with --resume {run.path} or pick another run_dir"
            )
        require_writable_folder(run.path, CONFIG_FILE, "run_dir")
        run.write_json(CONFIG_FILE, config)
        return run

    @classmethod
    def open(cls, path: str | os.PathLike, **kwargs) -> RunDir:
        run = cls(path, **kwargs)
        if not (run.path / CONFIG_FILE).is_file():
            raise RunDirError(f"{run.path / CONFIG_FILE}: not found; is {run.path} a run directory?")
        return run

    def read_config(self) -> dict[str, Any]:
        return json.loads((self.path / CONFIG_FILE).read_text())

    # writers -------------------------------------------------------------------------------
    def write_json(self, name: str, value: Any) -> None:
        if not self.is_writer:
            return
        with atomic_output(self.path / name) as tmp:
            tmp.write_text(json.dumps(value, indent=2, allow_nan=True) + "\n")

    def write_metrics(self, rows: list[dict[str, Any]]) -> None:
        """Rewrites metrics.csv from all rows so far (a resumed run keeps exactly the finished epochs)."""
        if self.is_writer:
            write_csv_atomic(pd.DataFrame(rows), self.path / METRICS_FILE)

    def write_oof(self, frame: pd.DataFrame) -> None:
        if not self.is_writer:
            return
        with atomic_output(self.path / OOF_FILE) as tmp:
            frame.to_parquet(tmp, index=False)

    def save_checkpoint(self, fold: int, which: str, state: dict[str, Any]) -> None:
        if not self.is_writer:
            return
        state = {"format": CHECKPOINT_FORMAT, **state}
        with atomic_output(self.checkpoint_path(fold, which)) as tmp:
            torch.save(state, tmp)

    def save_figure(self, figure, name: str) -> None:
        """Saves a matplotlib figure as ``name`` (PNG) and closes it."""
        import matplotlib.pyplot as plt

        try:
            if self.is_writer:
                with atomic_output(self.path / name) as tmp:
                    figure.savefig(tmp, format="png", dpi=110, bbox_inches="tight")
        finally:
            plt.close(figure)

    # readers -------------------------------------------------------------------------------
    def require_checkpoint(self, fold: int, which: str, keys: tuple[str, ...] = ()) -> dict[str, Any]:
        """The checkpoint; a RunDirError naming its path when it is absent or lacks one of ``keys``."""
        state = self.load_checkpoint(fold, which)
        if state is None:
            raise RunDirError(f"{self.checkpoint_path(fold, which)}: checkpoint not found")
        missing = [k for k in keys if k not in state]
        if missing:
            raise RunDirError(f"{self.checkpoint_path(fold, which)}: checkpoint lacks {missing}; has {sorted(state)}")
        return state

    def load_checkpoint(self, fold: int, which: str) -> dict[str, Any] | None:
        """The checkpoint, or None when absent. Loaded without executing code (weights_only)."""
        path = self.checkpoint_path(fold, which)
        if not path.is_file():
            return None
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:
            raise RunDirError(f"{path}: unreadable checkpoint ({exc})") from exc
        if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
            raise RunDirError(f"{path}: not a checkpoint of format {CHECKPOINT_FORMAT}")
        return state

    def read_oof(self) -> pd.DataFrame:
        return pd.read_parquet(self.path / OOF_FILE)

    def read_metrics(self) -> pd.DataFrame:
        return pd.read_csv(self.path / METRICS_FILE)

    def read_cv(self) -> dict[str, Any]:
        return json.loads((self.path / CV_FILE).read_text())
