"""Tiny trained runs shared by test_predict and test_ensemble: trained once per session (a few
seconds each: timm's test_resnet on 32 x 32 Kaggle images, 2 folds) and then read-only."""

from __future__ import annotations

from pathlib import Path

from hms import train

#: Run settings by name; same seed (so the same folds), different training, so members differ.
RUN_SETTINGS = {
    "a": {"epochs": 3, "lr": 3e-3},
    "b": {"epochs": 1, "lr": 1e-3},
    # EEG-only input (chain spectrograms of the raw EEG), for single-recording prediction.
    "eeg": {"epochs": 1, "lr": 3e-3, "input": "eeg", "input_pool": 4},
    # The raw EEG (16 bipolar links at 40 Hz) and a raw-EEG model, beside the spectrogram runs.
    "raw": {"epochs": 1, "lr": 3e-3, "input": "raw", "model": "efficientnet1d"},
}
_trained: dict[tuple[Path, str], Path] = {}


def tiny_args(data_dir: Path, cache_dir: Path, run_dir: Path, **settings) -> list[str]:
    """hms.train arguments of a tiny run (32 x 32 Kaggle images, timm's test_resnet, 2 folds)."""
    values = {
        "data_dir": data_dir,
        "cache_dir": cache_dir,
        "run_dir": run_dir,
        "input": "kaggle",
        "kaggle_layout": "image",
        "image_size": 32,
        "model": "test_resnet",
        "n_folds": 2,
        "stage2_epochs": 0,
        "batch_size": 4,
        "progress": "false",
        "seed": 3,
        **settings,
    }
    return [f"{k}={v}" for k, v in values.items()]


def tiny_run(data_dir: Path, root: Path, name: str) -> Path:
    """The run ``name`` of RUN_SETTINGS on ``data_dir``, trained on first request."""
    key = (Path(data_dir), name)
    if key not in _trained:
        run_dir = Path(root) / name
        args = tiny_args(data_dir, Path(root) / "cache", run_dir, **RUN_SETTINGS[name])
        assert train.main(args) == 0, f"training tiny run {name} failed"
        _trained[key] = run_dir
    return _trained[key]
