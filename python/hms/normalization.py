"""Standardization of model-input sources: none, per instance, or with data-wide statistics.

``none`` keeps each source as its recipe scaled it (for the raw EEG: clipped and divided, as the
top solutions fed it). ``instance`` standardizes each sample's source by its own mean and std. ``datawide`` uses one
mean/std per source, fitted in one streaming pass (native :class:`hms.dsp.RunningStats`) over the
training rows it is given, stored with the pipeline's state and reused unchanged for validation
and inference. Sources are standardized apart, so Kaggle log power and EEG decibels share no scale.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from hms import dsp

MODES = ("instance", "datawide", "none")
#: Dimensions of one sample of each source: (4, F, T) spectrogram tiles, (links, T) raw EEG.
SOURCE_NDIM = {"kaggle": 3, "eeg": 3, "raw": 2}
#: Added to an instance's std: a constant tile becomes zeros instead of NaN.
EPS = 1e-6


class Normalization:
    """How each source is standardized, and the data-wide statistics where they are used."""

    def __init__(self, mode: str, sources: Sequence[str]):
        if mode not in MODES:
            raise ValueError(f"normalization must be one of {MODES}, got {mode!r}")
        self.mode, self.sources = mode, tuple(sources)
        self.stats: dict[str, dict[str, float]] | None = None

    @classmethod
    def from_state(
        cls, mode: str, sources: Sequence[str], stats: Mapping[str, Mapping[str, float]] | None
    ) -> Normalization:
        """The normalization :meth:`state` described (never refitted)."""
        normalization = cls(mode, sources)
        if mode == "datawide" and (not stats or set(stats) != set(normalization.sources)):
            raise ValueError(f"datawide state needs statistics for sources {normalization.sources}, got {stats}")
        normalization.stats = {s: dict(v) for s, v in stats.items()} if stats else None
        return normalization

    @property
    def ready(self) -> bool:
        """Whether :meth:`normalize` can run (``datawide`` needs :meth:`fit` or stored statistics)."""
        return self.mode != "datawide" or self.stats is not None

    def fit(self, samples: Iterable[Mapping[str, np.ndarray]]) -> None:
        """Data-wide mean/std per source over every sample (a mapping source -> unnormalized
        array) of ``samples``; a no-op for ``instance``."""
        if self.mode != "datawide":
            return
        running = {s: dsp.RunningStats() for s in self.sources}
        seen = 0
        for sample in samples:
            seen += 1
            for source in self.sources:
                running[source].update(sample[source])
        if not seen:
            raise ValueError("fit needs at least one training row")
        stats = {}
        for source, rs in running.items():
            if not rs.std > 0:
                raise ValueError(f"datawide statistics of source {source!r} have std {rs.std}; cannot normalize")
            stats[source] = {"mean": float(rs.mean), "std": float(rs.std), "count": int(rs.count)}
        self.stats = stats

    def normalize(self, source: str, x: np.ndarray) -> np.ndarray:
        """One source, (..., 4, F, T) or (..., links, T), standardized per sample or with the
        fitted statistics (as it is for ``none``)."""
        if self.mode == "none":
            return np.asarray(x, dtype=np.float32)
        if self.mode == "instance":
            axes = tuple(range(-SOURCE_NDIM[source], 0))
            return dsp.instance_normalize(x, axes, eps=EPS).astype(np.float32, copy=False)
        if self.stats is None:
            raise RuntimeError("normalization='datawide' needs fit(train_labels) or from_state(...) first")
        s = self.stats[source]
        return ((x - np.float32(s["mean"])) / np.float32(s["std"])).astype(np.float32, copy=False)

    def native_stats(self) -> list[tuple[float, float]] | None:
        """(mean, std) per source for ``dsp.model_inputs`` (None: instance normalization there)."""
        if self.mode == "instance":
            return None
        if self.mode == "none":
            return [(0.0, 1.0)] * len(self.sources)
        if self.stats is None:
            raise RuntimeError("normalization='datawide' needs fit(train_labels) or from_state(...) first")
        return [(self.stats[s]["mean"], self.stats[s]["std"]) for s in self.sources]

    def state(self) -> dict[str, Any] | None:
        """The statistics as stored in the input pipeline's state (None when not fitted)."""
        return None if self.stats is None else {s: dict(v) for s, v in self.stats.items()}
