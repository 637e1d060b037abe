"""Model inputs as torch data: the Dataset, its epoch sampler and loader settings, and the
training-time augmentations.

A training item's augmentations (EEG window shift, time/frequency masking, hemisphere swap; for the
raw EEG also time reversal, link/chain dropout and a time cutout) are
drawn from (seed, position) alone: :class:`EpochSampler` hands every position its epoch's seed, so
an item is the same with any number of DataLoader workers, and a resumed run draws what an
uninterrupted one does. Validation and test items are never augmented.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import torch

from hms import augment, dsp, recipes
from hms.inputs import EEG_SOURCES, InputPipeline
from hms.schema import EEG_WINDOW_SAMPLES, TARGET_COLUMNS
from hms.windows import LabelWindow, label_windows, offset_to_sample


@dataclass(frozen=True)
class Augmentation:
    """The training-time augmentations of one input pipeline (its ``aug_*`` and ``mixup_*`` settings)."""

    shift_s: float
    swap_p: float
    mask_p: float
    mask_time: int
    mask_freq: int
    mixup_alpha: float
    mixup_p: float
    reverse_p: float
    drop_chain_p: float
    drop_link_p: float

    @classmethod
    def of(cls, pipeline: InputPipeline) -> Augmentation:
        p = pipeline.params
        return cls(
            p["aug_shift_s"],
            p["aug_swap_p"],
            p["aug_mask_p"],
            p["aug_mask_time"],
            p["aug_mask_freq"],
            p["mixup_alpha"],
            p["mixup_p"],
            p["aug_reverse_p"],
            p["aug_drop_chain_p"],
            p["aug_drop_link_p"],
        )

    def sources(
        self, pipeline: InputPipeline, split: str, window: LabelWindow, rng: np.random.Generator
    ) -> dict[str, np.ndarray]:
        """A label row's unnormalized sources, the EEG window shifted by up to +-shift_s seconds
        within its recording (a shifted window is a fresh array each time: it bypasses the cache)."""
        out = {}
        for source in pipeline.sources:
            if source in EEG_SOURCES and self.shift_s > 0:
                recording = pipeline.recording(split, window.eeg_id)
                start = augment.shifted_start(
                    offset_to_sample(window.eeg_offset), recording.shape[-1], EEG_WINDOW_SAMPLES, self.shift_s, rng
                )
                out[source] = pipeline.window_source(source, recording[:, start : start + EEG_WINDOW_SAMPLES])
            else:
                out[source] = pipeline.row_source(source, split, window)
        return out

    def apply(self, pipeline: InputPipeline, x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """A normalized model input with masking (per source) and the hemisphere swap drawn."""
        if pipeline.layout == "sequence":
            x = self._apply_raw(x, rng)
        elif self.mask_p > 0:
            for group in range(len(pipeline.sources)):
                if rng.random() < self.mask_p:
                    view = pipeline.source_view(x, group)
                    if pipeline.layout == "image":  # masks within the 4 region blocks, like the tiles
                        view = view.reshape(view.shape[:-3] + (4, view.shape[-2] // 4, view.shape[-1]))
                    augment.mask_time_freq(view, rng, self.mask_time, self.mask_freq)
        if rng.random() < self.swap_p:
            x = np.ascontiguousarray(augment.swap_hemispheres(x, pipeline.layout))
        return x

    def _apply_raw(self, x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Raw EEG (links, T): a time cutout (``mask_time`` in 1/256 of the window, as the
        spectrogram frames), time reversal, then link/chain dropout."""
        if self.mask_p > 0 and rng.random() < self.mask_p:
            widest = int(round(self.mask_time * x.shape[-1] / recipes.TILE_FRAMES))
            augment.mask_time_freq(x, rng, widest, 0)
        if self.reverse_p > 0 and rng.random() < self.reverse_p:
            x = np.ascontiguousarray(x[..., ::-1])
        return augment.drop_links(x, rng, self.drop_chain_p, self.drop_link_p)

    def mixup(self, batch: dict[str, torch.Tensor], generator: torch.Generator) -> dict[str, torch.Tensor]:
        """A training batch with mixup (soft targets); the batch itself when mixup is off."""
        return augment.mixup(batch, self.mixup_alpha, self.mixup_p, generator)


class InputDataset(torch.utils.data.Dataset):
    """Model inputs of label rows; picklable, so it works with DataLoader workers.

    Items: {"input" (C,H,W) float32, "target" (6,) float32, "n_votes" float32, "index" int64}."""

    def __init__(self, pipeline: InputPipeline, labels: pd.DataFrame, *, split: str, augment: bool):
        if split not in ("train", "test"):
            raise ValueError(f"split must be 'train' or 'test', got {split!r}")
        self.pipeline, self.split = pipeline, split
        self.augmentation = Augmentation.of(pipeline) if augment else None
        self.windows = label_windows(labels, split)
        if split == "train":
            self.targets = labels[list(TARGET_COLUMNS)].to_numpy(dtype=np.float32)
            self.n_votes = labels["n_votes"].to_numpy(dtype=np.float32)
        else:
            self.targets = np.zeros((len(labels), len(TARGET_COLUMNS)), dtype=np.float32)
            self.n_votes = np.zeros(len(labels), dtype=np.float32)

    def __len__(self) -> int:
        return len(self.windows)

    def __getitem__(self, key: int | tuple[int, int]) -> dict[str, torch.Tensor]:
        """``key``: a position, or ``(seed, position)`` as :class:`EpochSampler` yields them. With a
        seed, the item's augmentations come from (seed, position) alone, whichever worker draws
        it; with a bare position, from torch's global RNG (seeded per worker by DataLoader)."""
        seed, index = key if isinstance(key, tuple) else (None, key)
        window = self.windows[index]
        if self.augmentation is None:
            x = self.pipeline.assemble(
                {s: self.pipeline.row_source(s, self.split, window) for s in self.pipeline.sources}
            )
        else:
            entropy = [int(seed), int(index)] if seed is not None else int(torch.randint(0, 2**62, (1,)).item())
            rng = np.random.default_rng(entropy)
            x = self.pipeline.assemble(self.augmentation.sources(self.pipeline, self.split, window, rng))
            x = self.augmentation.apply(self.pipeline, x, rng)
        return {
            "input": torch.from_numpy(x),
            "target": torch.from_numpy(self.targets[index]),
            "n_votes": torch.tensor(self.n_votes[index], dtype=torch.float32),
            "index": torch.tensor(index, dtype=torch.int64),
        }


class EpochSampler(torch.utils.data.Sampler[tuple[int, int]]):
    """Training keys ``(seed, position)`` of one epoch at a time, for a DataLoader that lives for
    several epochs (so that persistent workers do): ``set_epoch`` before each. ``order_of(epoch)``
    gives the epoch's positions, ``seed_of(epoch)`` its augmentation seed, ``length`` how many
    positions every epoch has. Items then depend on (epoch, position) only: the same with any
    number of workers, and a resumed run draws what an uninterrupted one does."""

    def __init__(self, order_of: Callable[[int], Sequence[int]], seed_of: Callable[[int], int], length: int):
        self.order_of, self.seed_of, self.length = order_of, seed_of, int(length)
        self.epoch: int | None = None

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __iter__(self) -> Iterator[tuple[int, int]]:
        if self.epoch is None:
            raise RuntimeError("EpochSampler: call set_epoch(epoch) before iterating")
        order = [int(p) for p in self.order_of(self.epoch)]
        if len(order) != self.length:
            raise RuntimeError(f"epoch {self.epoch} has {len(order)} positions, the sampler was made for {self.length}")
        seed = int(self.seed_of(self.epoch))
        return iter([(seed, p) for p in order])

    def __len__(self) -> int:
        return self.length


def rebalanced_order(labels: pd.DataFrame, rebalance: str, seed: int) -> list[int] | None:
    """One epoch's positions drawn with the rebalancing weights of ``rebalance`` (with
    replacement, seeded), or None when rebalance is "none"."""
    weights = augment.rebalance_weights(labels, rebalance)
    if weights is None:
        return None
    generator = torch.Generator().manual_seed(int(seed))
    sampler = torch.utils.data.WeightedRandomSampler(
        weights.tolist(), len(weights), replacement=True, generator=generator
    )
    return list(sampler)


def loader_kwargs(num_workers: int) -> dict[str, Any]:
    """DataLoader keyword arguments for ``num_workers`` (persistent workers: their file handles
    and per-process caches outlive an epoch)."""
    if num_workers <= 0:
        return {"num_workers": 0}
    threads = max(1, dsp.get_num_threads() // num_workers)  # this process's threads, shared
    return {
        "num_workers": num_workers,
        "persistent_workers": True,
        "worker_init_fn": functools.partial(_worker_native_threads, threads),
    }


def _worker_native_threads(threads: int, worker_id: int) -> None:
    """DataLoader worker start: its share of the native core's threads, as torch runs one thread
    per worker (several full pools per machine would fight over the CPUs). RAYON_NUM_THREADS,
    where set, wins."""
    if "RAYON_NUM_THREADS" not in os.environ:
        dsp.set_num_threads(threads)
