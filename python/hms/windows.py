"""The windows of a label row, cut from its recordings.

For a label row with offset ``o`` (centre ``T = o + 25`` s of the labelled 10 s):

* EEG: samples ``[o*200, (o+50)*200)`` of the EEG file (:func:`eeg_window`).
* Kaggle spectrogram: the frames with ``o <= time < o + 600`` (:func:`spectrogram_window`).

:func:`label_windows` lists the ids and offsets of a label frame's rows (test rows: offset 0,
as test files hold exactly one window).
"""

from __future__ import annotations

import os
from typing import NamedTuple

import numpy as np
import pandas as pd

from hms.readers import KaggleSpectrogram
from hms.schema import (
    EEG_WINDOW_SAMPLES,
    EEG_WINDOW_SECONDS,
    SAMPLE_RATE,
    SPEC_FRAME_SECONDS,
    SPEC_WINDOW_FRAMES,
    SPEC_WINDOW_SECONDS,
    TARGET_COLUMNS,
)


def offset_to_sample(offset_seconds: float) -> int:
    """The first EEG sample of a window that starts ``offset_seconds`` into its recording."""
    if not np.isfinite(offset_seconds) or offset_seconds < 0:
        raise ValueError(f"window offset must be finite and >= 0 seconds, got {offset_seconds}")
    return int(round(float(offset_seconds) * SAMPLE_RATE))


def eeg_window(eeg: np.ndarray, offset_seconds: float, path: str | os.PathLike[str] | None = None) -> np.ndarray:
    """The 50-s EEG window of a label row: samples [offset*200, offset*200 + 10,000).

    Returns a view of shape (channels, 10,000). A window that runs past the end of the recording
    raises ValueError, naming ``path`` when given (the competition's windows always fit; padding
    would invent signal).
    """
    start = offset_to_sample(offset_seconds)
    stop = start + EEG_WINDOW_SAMPLES
    if stop > eeg.shape[-1]:
        where = f"{path}: " if path is not None else ""
        raise ValueError(
            f"{where}EEG window [{offset_seconds:g} s, {offset_seconds + EEG_WINDOW_SECONDS:g} s) runs "
            f"past the end of a {eeg.shape[-1] / SAMPLE_RATE:g}-s recording ({eeg.shape[-1]} samples)"
        )
    return eeg[..., start:stop]


def central_eeg_window(recording: np.ndarray) -> np.ndarray:
    """The central 50 s of a recording (the part a Kaggle test file of exactly 50 s is)."""
    start = (recording.shape[-1] - EEG_WINDOW_SAMPLES) // 2
    return recording[..., start : start + EEG_WINDOW_SAMPLES]


def spectrogram_window(spec: KaggleSpectrogram, offset_seconds: float) -> np.ndarray:
    """The 600-s spectrogram window of a label row: frames with offset <= time < offset + 600.

    Returns float32 (regions, freqs, 300). Slot j holds the file's frame whose time t satisfies
    ``offset + 2j <= t < offset + 2j + 2``.
    Padding policy: slots with no frame in the file (the window runs past either end of the
    file, or the file skips a time) are NaN, the same marker as the files' own gaps, so the
    preprocessing handles both alike. A window that overlaps no frame at all raises ValueError.
    """
    if not np.isfinite(offset_seconds) or offset_seconds < 0:
        raise ValueError(f"window offset must be finite and >= 0 seconds, got {offset_seconds}")
    inside = (spec.times >= offset_seconds) & (spec.times < offset_seconds + SPEC_WINDOW_SECONDS)
    if not inside.any():
        raise ValueError(
            f"spectrogram window [{offset_seconds:g} s, {offset_seconds + SPEC_WINDOW_SECONDS:g} s)"
            f" holds no frame; the file covers times {spec.times[0]}..{spec.times[-1]}"
        )
    out = np.full(spec.values.shape[:2] + (SPEC_WINDOW_FRAMES,), np.nan, dtype=np.float32)
    slots = ((spec.times[inside] - offset_seconds) // SPEC_FRAME_SECONDS).astype(np.int64)
    out[..., slots] = spec.values[..., inside]
    return out


class LabelWindow(NamedTuple):
    """Where a label row's windows are: its files and offsets in seconds."""

    eeg_id: int
    spectrogram_id: int
    eeg_offset: float
    spectrogram_offset: float

    def source(self, source: str) -> tuple[int, float]:
        """(file id, offset) of the recording ``source`` reads: the EEG for "eeg" and "raw", the
        Kaggle spectrogram for "kaggle"."""
        if source == "kaggle":
            return self.spectrogram_id, self.spectrogram_offset
        return self.eeg_id, self.eeg_offset


def label_windows(labels: pd.DataFrame, split: str) -> list[LabelWindow]:
    """The windows of every row of a label frame; test rows (no offset columns) use offset 0."""
    if split == "train":
        required = [
            "eeg_id",
            "spectrogram_id",
            "eeg_label_offset_seconds",
            "spectrogram_label_offset_seconds",
            "n_votes",
            *TARGET_COLUMNS,
        ]
    else:
        required = ["eeg_id", "spectrogram_id"]
    missing = [c for c in required if c not in labels]
    if missing:
        raise ValueError(f"{split} labels lack column(s) {missing}; have {list(labels.columns)}")
    n = len(labels)

    def offsets(column: str) -> np.ndarray:
        return labels[column].to_numpy(np.float64) if column in labels else np.zeros(n)

    return [
        LabelWindow(int(e), int(s), float(eo), float(so))
        for e, s, eo, so in zip(
            labels["eeg_id"].to_numpy(),
            labels["spectrogram_id"].to_numpy(),
            offsets("eeg_label_offset_seconds"),
            offsets("spectrogram_label_offset_seconds"),
        )
    ]
