"""Model inputs: recipes, normalization, augmentation and the torch Dataset, from one Config.

Recipes (``cfg.input``), per sample, all float32, chain order LL, LP, RL, RP (see hms.recipes):

* ``kaggle``: the label row's 600-s Kaggle window (4 regions x 100 bins x 300 frames): NaN -> -1,
  clip to [e^clip_lo, e^clip_hi], log, normalized; ``kaggle_layout="image"`` (the seed):
  1 x image_size x image_size; ``"tiles"``: 4 tiles of 128 x 256 (rows padded, frames cropped).
* ``eeg``: the 4 chain spectrograms (4 x 128 x 256) of the label row's 50-s EEG window, for train
  and test alike (native ``hms.dsp.eeg_spectrograms``; optional raw clipping, wavelet denoising,
  band-pass and notch).
* ``both``: Kaggle tiles and EEG tiles.

Tiles are laid out by ``tile_layout``: ``"channels"`` (4 x 128 x 256, or 8 x 128 x 256 for
``both``: cheapest for a CNN) or ``"stack"`` (each source's 4 tiles stacked into 512 x 256, sources
side by side: 1 x 512 x 256, or the widely used 1 x 512 x 512 for ``both``).

Normalization (per source, so Kaggle log power and EEG dB share no scale): ``instance`` standardizes
each sample's source by its own mean/std; ``datawide`` uses one mean/std per source computed by
:meth:`InputPipeline.fit` in one streaming pass (native RunningStats) over the training rows it is
given, stored in :meth:`InputPipeline.state_dict` and reused unchanged for validation and inference.
Padding and masks are zeros, the post-normalization mean.
"""

from __future__ import annotations

import functools
import math
import os
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from typing import Any, Literal

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from hms import augment, dsp, recipes
from hms.config import Config
from hms.data import (
    EEG_WINDOW_SAMPLES,
    TARGET_COLUMNS,
    CompetitionData,
    KaggleSpectrogram,
    _offset_to_sample,
    spectrogram_window,
)
from hms.input_cache import SourceCache

#: The Config fields that define the inputs (what state_dict records).
INPUT_FIELDS: tuple[str, ...] = (
    "input", "normalization", "clip_lo", "clip_hi", "kaggle_layout", "image_size", "tile_layout",
    "eeg_recipe", "bandpass", "notch", "wavelet", "wavelet_level", "wavelet_sigma", "eeg_clip",
    "rebalance", "aug_shift_s", "aug_swap_p", "aug_mask_p", "aug_mask_time", "aug_mask_freq",
    "mixup_alpha", "mixup_p", "cache", "cache_dir",
)  # fmt: skip
SOURCES_OF_INPUT = {"kaggle": ("kaggle",), "eeg": ("eeg",), "both": ("kaggle", "eeg")}
STATE_VERSION = 1
NORM_EPS = 1e-6
_RECORDINGS_KEPT = 8  # per process: rows of one file are usually neighbours


class InputPipeline:
    """Turns label rows into model inputs; see the module docstring for recipes and shapes."""

    def __init__(self, cfg: Config, data: CompetitionData | None):
        """``data=None``: in-memory use only (``transform_windows``, ``assemble``), no cache."""
        self.params = {name: getattr(cfg, name) for name in INPUT_FIELDS}
        self.data = data
        self.sources: tuple[str, ...] = SOURCES_OF_INPUT[cfg.input]
        self.stats: dict[str, dict[str, float]] | None = None
        self._caches = {
            s: SourceCache(cfg.cache_dir, s, self.source_params(s), data.root) for s in self.sources
        } if cfg.cache and data is not None else {}
        self._reader = _RecordingReader(data)

    # shape ---------------------------------------------------------------------------------
    @property
    def layout(self) -> str:
        """How tiles are arranged: "image" (Kaggle seed image), "channels" or "stack"."""
        if self.params["input"] == "kaggle" and self.params["kaggle_layout"] == "image":
            return "image"
        return self.params["tile_layout"]

    @property
    def input_shape(self) -> tuple[int, int, int]:
        """(C, H, W) of one model input."""
        if self.layout == "image":
            size = self.params["image_size"]
            return (1, size, size)
        groups = len(self.sources)
        if self.layout == "channels":
            return (4 * groups, recipes.TILE_FREQS, recipes.TILE_FRAMES)
        return (1, 4 * recipes.TILE_FREQS, groups * recipes.TILE_FRAMES)

    @property
    def in_chans(self) -> int:
        return self.input_shape[0]

    def source_params(self, source: str) -> dict[str, Any]:
        """Every parameter that shapes a source's cached array (the cache key)."""
        p = self.params
        if source == "kaggle":
            return {"clip_lo": p["clip_lo"], "clip_hi": p["clip_hi"]}
        wavelet = {"wavelet": p["wavelet"], "wavelet_level": p["wavelet_level"], "wavelet_sigma": p["wavelet_sigma"]} if p["wavelet"] else {"wavelet": None}
        return {"eeg_recipe": p["eeg_recipe"], "bandpass": p["bandpass"], "notch": p["notch"], "eeg_clip": p["eeg_clip"], **wavelet}

    # sources from raw windows (batch-first) ------------------------------------------------
    def kaggle_source(self, windows: np.ndarray) -> np.ndarray:
        """(..., 4, 100, 300) raw Kaggle windows (files' region order) -> log power, chain order."""
        return recipes.kaggle_log(windows, self.params["clip_lo"], self.params["clip_hi"])

    def eeg_source(self, windows: np.ndarray) -> np.ndarray:
        """(..., 20, 10,000) raw EEG windows -> (..., 4, 128, 256) chain spectrograms."""
        p = self.params
        x = recipes.clip_microvolts(np.asarray(windows, dtype=np.float32), p["eeg_clip"])
        if p["wavelet"]:
            x = recipes.fill_nan_with_channel_mean(x)
            x = recipes.wavelet_denoise(x, p["wavelet"], p["wavelet_level"], p["wavelet_sigma"])
        return recipes.eeg_chain_spectrograms(x, p["eeg_recipe"], p["bandpass"], p["notch"])

    # sources to model input ----------------------------------------------------------------
    def normalize(self, source: str, x: np.ndarray) -> np.ndarray:
        """One source, (..., 4, F, T), standardized per sample or with the fitted statistics."""
        if self.params["normalization"] == "instance":
            return dsp.instance_normalize(x, (-3, -2, -1), eps=NORM_EPS).astype(np.float32, copy=False)
        if self.stats is None:
            raise RuntimeError("normalization='datawide' needs fit(train_labels) or from_state(...) first")
        s = self.stats[source]
        return ((x - np.float32(s["mean"])) / np.float32(s["std"])).astype(np.float32, copy=False)

    def assemble(self, sources: dict[str, np.ndarray], rng: np.random.Generator | None = None) -> np.ndarray:
        """Unnormalized sources (batch-first) -> model input (..., C, H, W) float32; with ``rng``
        (training only) the masking and hemisphere-swap augmentations are applied."""
        p = self.params
        lead = sources[self.sources[0]].shape[:-3]
        out = np.zeros(lead + self.input_shape, dtype=np.float32)
        for g, source in enumerate(self.sources):
            x = self.normalize(source, sources[source])
            target = self._group_view(out, g)  # each source is written straight into the output
            if source == "kaggle" and self.layout == "image":
                target[...] = recipes.kaggle_image(x, p["image_size"])
            elif source == "kaggle":
                recipes.kaggle_tiles(x, out=target)
            else:
                target[...] = x
            if rng is not None and p["aug_mask_p"] > 0 and rng.random() < p["aug_mask_p"]:
                # Image layout: masks within the 4 region blocks, like the tiles.
                view = target.reshape(target.shape[:-3] + (4, target.shape[-2] // 4, target.shape[-1])) if self.layout == "image" else target
                augment.mask_time_freq(view, rng, p["aug_mask_time"], p["aug_mask_freq"])
        if rng is not None and rng.random() < p["aug_swap_p"]:
            out = np.ascontiguousarray(augment.swap_hemispheres(out, self.layout))
        return out

    def _group_view(self, out: np.ndarray, group: int) -> np.ndarray:
        """The (..., 4, 128, 256) view of ``out`` holding source ``group`` ((..., 1, S, S) for the
        Kaggle image)."""
        if self.layout == "image":
            return out
        if self.layout == "channels":
            return out[..., 4 * group : 4 * group + 4, :, :]
        blocks = out.reshape(out.shape[:-3] + (4, recipes.TILE_FREQS, out.shape[-1]))  # a view
        return blocks[..., group * recipes.TILE_FRAMES : (group + 1) * recipes.TILE_FRAMES]

    def transform_windows(self, eeg: np.ndarray | None = None, kaggle: np.ndarray | None = None) -> np.ndarray:
        """Raw in-memory windows (batch-first) -> normalized model inputs (..., C, H, W)."""
        raw = {"eeg": eeg, "kaggle": kaggle}
        missing = [s for s in self.sources if raw[s] is None]
        if missing:
            raise ValueError(f"input={self.params['input']!r} needs the {missing} window(s)")
        if self._native_inputs():
            return self._native_transform(raw)
        built = {s: self.kaggle_source(raw[s]) if s == "kaggle" else self.eeg_source(raw[s]) for s in self.sources}
        return self.assemble(built)

    def _native_inputs(self) -> bool:
        """Whether ``transform_windows`` can build the inputs in one native pass (tile layouts,
        the mel recipe without raw clipping or wavelet denoising): the same values as the
        step-by-step sources + ``assemble``, without the batch-sized intermediate arrays."""
        p = self.params
        if self.layout not in ("channels", "stack"):
            return False
        if "eeg" in self.sources and (p["eeg_recipe"] != "mel" or p["wavelet"] or p["eeg_clip"] is not None):
            return False
        return p["normalization"] == "instance" or self.stats is not None

    def _native_transform(self, raw: dict[str, np.ndarray | None]) -> np.ndarray:
        p = self.params
        if raw.get("kaggle") is not None and "kaggle" in self.sources:
            shape = np.shape(raw["kaggle"])[-3:]
            expected = (len(recipes.REGIONS), recipes.KAGGLE_FREQS, recipes.SPEC_WINDOW_FRAMES)
            if shape != expected:
                raise ValueError(f"Kaggle window must have shape (..., {expected}), got {np.shape(raw['kaggle'])}")
        if raw.get("eeg") is not None and "eeg" in self.sources:
            shape = np.shape(raw["eeg"])
            if len(shape) < 2 or shape[-2] != 20 or shape[-1] != EEG_WINDOW_SAMPLES:
                raise ValueError(f"EEG windows must have shape (..., 20, {EEG_WINDOW_SAMPLES}), got {shape}")
        stats = None
        if p["normalization"] != "instance":
            stats = [(self.stats[s]["mean"], self.stats[s]["std"]) for s in self.sources]
        return dsp.model_inputs(
            list(self.sources),
            eeg=raw.get("eeg") if "eeg" in self.sources else None,
            eeg_recipe=_eeg_recipe(None if p["bandpass"] is None else tuple(p["bandpass"]), p["notch"]) if "eeg" in self.sources else None,
            kaggle=raw.get("kaggle") if "kaggle" in self.sources else None,
            kaggle_order=recipes.KAGGLE_TO_CHAINS,
            clip=(math.exp(p["clip_lo"]), math.exp(p["clip_hi"]), -1.0),
            layout=self.layout,
            eps=NORM_EPS,
            stats=stats,
        )

    def swap_hemispheres(self, batch_inputs: torch.Tensor) -> torch.Tensor:
        """Left/right mirror of a batch (B, C, H, W) of model inputs (for test-time augmentation)."""
        if tuple(batch_inputs.shape[-3:]) != self.input_shape:
            raise ValueError(f"inputs must have shape (B, {self.input_shape}), got {tuple(batch_inputs.shape)}")
        return augment.swap_hemispheres(batch_inputs, self.layout)

    def mixup(self, batch: dict[str, torch.Tensor], generator: torch.Generator) -> dict[str, torch.Tensor]:
        """Training batch with mixup (mixup_alpha, mixup_p): soft targets; identity when off."""
        return augment.mixup(batch, self.params["mixup_alpha"], self.params["mixup_p"], generator)

    # per-row sources -----------------------------------------------------------------------
    def row_source(self, source: str, split: str, row: dict[str, Any], rng: np.random.Generator | None = None) -> np.ndarray:
        """A label row's unnormalized source array, from the cache when possible (filling it)."""
        shift = rng is not None and source == "eeg" and self.params["aug_shift_s"] > 0
        file_id, offset = (row["eeg_id"], row["eeg_offset"]) if source == "eeg" else (row["spectrogram_id"], row["spectrogram_offset"])
        if shift:  # a shifted window is a fresh array each time: nothing to cache
            recording = self._reader.eeg(split, file_id)
            start = augment.shifted_start(_offset_to_sample(offset), recording.shape[-1], EEG_WINDOW_SAMPLES, self.params["aug_shift_s"], rng)
            return self.eeg_source(recording[:, start : start + EEG_WINDOW_SAMPLES])
        cache = self._caches.get(source)
        if cache is not None:
            cached = cache.load(split, file_id, offset)
            if cached is not None:
                return cached
        array = self.compute_source(source, split, file_id, [offset])[0]
        if cache is not None:
            cache.save(split, file_id, offset, array)
            # The float16 rounding of the cache, also on this first (cache-filling) read, so a
            # sample is the same whether or not it was cached before.
            array = dsp.to_float32(array.astype(np.float16))
        return array

    def compute_source(self, source: str, split: str, file_id: int, offsets: list[float]) -> np.ndarray:
        """The source arrays of several windows of one file (one read, one native call)."""
        if source == "eeg":
            recording = self._reader.eeg(split, file_id)
            windows = np.stack([_eeg_window_checked(recording, o, self.data.eeg_path(split, file_id)) for o in offsets])
            return self.eeg_source(windows)
        spectrogram = self._reader.spectrogram(split, file_id)
        return self.kaggle_source(np.stack([spectrogram_window(spectrogram, o) for o in offsets]))

    # normalization statistics --------------------------------------------------------------
    def fit(self, train_labels: pd.DataFrame, *, show_progress: bool = True) -> None:
        """Data-wide mean/std per source over exactly these training rows (no-op for "instance")."""
        if self.params["normalization"] != "datawide":
            return
        rows = _label_rows(train_labels, "train")
        if not len(rows):
            raise ValueError("fit needs at least one training row")
        running = {s: dsp.RunningStats() for s in self.sources}
        for row in tqdm(rows, desc="input statistics", unit="row", disable=not show_progress):
            for source in self.sources:
                running[source].update(self.row_source(source, "train", row))
        stats = {}
        for source, rs in running.items():
            if not rs.std > 0:
                raise ValueError(f"datawide statistics of source {source!r} have std {rs.std}; cannot normalize")
            stats[source] = {"mean": float(rs.mean), "std": float(rs.std), "count": int(rs.count)}
        self.stats = stats

    def state_dict(self) -> dict[str, Any]:
        """JSON-serializable recipe parameters and normalization statistics."""
        return {"version": STATE_VERSION, "params": dict(self.params), "stats": self.stats}

    @classmethod
    def from_state(cls, state: dict[str, Any], data: CompetitionData) -> InputPipeline:
        """The pipeline ``state_dict`` described, statistics included (never refitted)."""
        if state.get("version") != STATE_VERSION or "params" not in state:
            raise ValueError(f"not an InputPipeline state of version {STATE_VERSION}: keys {sorted(state)}")
        unknown = sorted(set(state["params"]) - set(INPUT_FIELDS))
        if unknown:
            raise ValueError(f"InputPipeline state has unknown parameters {unknown}")
        pipeline = cls(Config(**state["params"]), data)
        stats = state.get("stats")
        if pipeline.params["normalization"] == "datawide":
            if not stats or set(stats) != set(pipeline.sources):
                raise ValueError(f"datawide state needs statistics for sources {pipeline.sources}, got {stats}")
        pipeline.stats = {s: dict(v) for s, v in stats.items()} if stats else None
        return pipeline

    # torch ---------------------------------------------------------------------------------
    def dataset(self, labels: pd.DataFrame, *, split: Literal["train", "test"], augment: bool) -> InputDataset:
        """Items: {"input" (C,H,W) float32, "target" (6,) float32, "n_votes" float32, "index" int64}."""
        return InputDataset(self, labels, split, augment)

    @staticmethod
    def loader_kwargs(num_workers: int) -> dict[str, Any]:
        """DataLoader keyword arguments for ``num_workers`` (persistent workers: their file
        handles and per-process caches outlive an epoch)."""
        if num_workers <= 0:
            return {"num_workers": 0}
        threads = max(1, dsp.get_num_threads() // num_workers)  # this process's threads, shared
        return {
            "num_workers": num_workers, "persistent_workers": True,
            "worker_init_fn": functools.partial(_worker_native_threads, threads),
        }  # fmt: skip

    def train_sampler(self, labels: pd.DataFrame, seed: int) -> torch.utils.data.Sampler | None:
        """A seeded sampler rebalancing the training rows (None when rebalance="none")."""
        weights = augment.rebalance_weights(labels, self.params["rebalance"])
        if weights is None:
            return None
        generator = torch.Generator().manual_seed(int(seed))
        return torch.utils.data.WeightedRandomSampler(torch.as_tensor(weights, dtype=torch.double), len(weights), replacement=True, generator=generator)


class InputDataset(torch.utils.data.Dataset):
    """Model inputs of label rows; picklable, so it works with DataLoader workers."""

    def __init__(self, pipeline: InputPipeline, labels: pd.DataFrame, split: str, augment: bool):
        if split not in ("train", "test"):
            raise ValueError(f"split must be 'train' or 'test', got {split!r}")
        self.pipeline, self.split, self.augment = pipeline, split, augment
        self.rows = _label_rows(labels, split)
        if split == "train":
            self.targets = labels[list(TARGET_COLUMNS)].to_numpy(dtype=np.float32)
            self.n_votes = labels["n_votes"].to_numpy(dtype=np.float32)
        else:
            self.targets = np.zeros((len(labels), len(TARGET_COLUMNS)), dtype=np.float32)
            self.n_votes = np.zeros(len(labels), dtype=np.float32)

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, key: int | tuple[int, int]) -> dict[str, torch.Tensor]:
        """``key``: a position, or ``(seed, position)`` as :class:`EpochSampler` yields them. With a
        seed, the item's augmentations come from (seed, position) alone, whichever worker draws
        it; with a bare position, from torch's global RNG (seeded per worker by DataLoader)."""
        seed, index = key if isinstance(key, tuple) else (None, key)
        rng = None
        if self.augment:
            entropy = [int(seed), int(index)] if seed is not None else int(torch.randint(0, 2**62, (1,)).item())
            rng = np.random.default_rng(entropy)
        row = self.rows[index]
        sources = {s: self.pipeline.row_source(s, self.split, row, rng) for s in self.pipeline.sources}
        return {
            "input": torch.from_numpy(self.pipeline.assemble(sources, rng)),
            "target": torch.from_numpy(self.targets[index]),
            "n_votes": torch.tensor(self.n_votes[index], dtype=torch.float32),
            "index": torch.tensor(index, dtype=torch.int64),
        }


# ---------------------------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=8)
def _eeg_recipe(bandpass: tuple[float, float] | None, notch: float | None) -> Any:
    """The native mel recipe of ``recipes.eeg_chain_spectrograms`` (kept per process: it is not
    picklable, and the pipeline must be)."""
    kwargs: dict[str, Any] = {}
    if bandpass is not None:
        kwargs["bandpass"] = tuple(bandpass)
    if notch is not None:
        kwargs["notch"] = notch
    return dsp.eeg_mel_recipe(**kwargs)


def _label_rows(labels: pd.DataFrame, split: str) -> list[dict[str, Any]]:
    """Ids and window offsets per row; test rows (no offset columns) use offset 0."""
    if split == "train":
        required = ["eeg_id", "spectrogram_id", "eeg_label_offset_seconds", "spectrogram_label_offset_seconds", "n_votes", *TARGET_COLUMNS]
    else:
        required = ["eeg_id", "spectrogram_id"]
    missing = [c for c in required if c not in labels]
    if missing:
        raise ValueError(f"{split} labels lack column(s) {missing}; have {list(labels.columns)}")
    n = len(labels)
    eeg_offsets = labels["eeg_label_offset_seconds"].to_numpy(np.float64) if "eeg_label_offset_seconds" in labels else np.zeros(n)
    spec_offsets = labels["spectrogram_label_offset_seconds"].to_numpy(np.float64) if "spectrogram_label_offset_seconds" in labels else np.zeros(n)
    return [
        {"eeg_id": int(e), "spectrogram_id": int(s), "eeg_offset": float(eo), "spectrogram_offset": float(so)}
        for e, s, eo, so in zip(labels["eeg_id"].to_numpy(), labels["spectrogram_id"].to_numpy(), eeg_offsets, spec_offsets)
    ]


def _eeg_window_checked(recording: np.ndarray, offset: float, path: Any) -> np.ndarray:
    start = _offset_to_sample(offset)
    if start + EEG_WINDOW_SAMPLES > recording.shape[-1]:
        raise ValueError(
            f"{path}: EEG window at offset {offset:g} s needs {start + EEG_WINDOW_SAMPLES} samples; "
            f"the recording has {recording.shape[-1]}"
        )
    return recording[:, start : start + EEG_WINDOW_SAMPLES]


class _RecordingReader:
    """Reads EEG and spectrogram files, keeping the last few per process (rows of one file are
    neighbours in label order); picklable (workers start with an empty memory)."""

    def __init__(self, data: CompetitionData):
        self.data = data
        self._kept: OrderedDict[tuple, Any] = OrderedDict()

    def __getstate__(self) -> dict[str, Any]:
        return {"data": self.data, "_kept": OrderedDict()}

    def _get(self, key: tuple, read) -> Any:
        if key in self._kept:
            self._kept.move_to_end(key)
            return self._kept[key]
        value = read()
        self._kept[key] = value
        if len(self._kept) > _RECORDINGS_KEPT:
            self._kept.popitem(last=False)
        return value

    def eeg(self, split: str, eeg_id: int) -> np.ndarray:
        return self._get(("eeg", split, eeg_id), lambda: self.data.read_eeg(split, eeg_id))

    def spectrogram(self, split: str, spectrogram_id: int) -> KaggleSpectrogram:
        return self._get(("spec", split, spectrogram_id), lambda: self.data.read_spectrogram(split, spectrogram_id))


def _worker_native_threads(threads: int, worker_id: int) -> None:
    """DataLoader worker start: its share of the native core's threads, as torch runs one thread
    per worker (several full pools per machine would fight over the CPUs). RAYON_NUM_THREADS,
    where set, wins."""
    if "RAYON_NUM_THREADS" not in os.environ:
        dsp.set_num_threads(threads)


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
