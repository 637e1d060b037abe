"""Model inputs: the recipes that turn label rows or raw windows into normalized tensors.

Recipes (``cfg.input``), per sample, all float32, chain order LL, LP, RL, RP (see hms.recipes):

* ``kaggle``: the label row's 600-s Kaggle window (4 regions x 100 bins x 300 frames): NaN -> -1,
  clip to [e^clip_lo, e^clip_hi], log, normalized; ``kaggle_layout="image"`` (the seed):
  1 x image_size x image_size; ``"tiles"``: 4 tiles of 128 x 256 (rows padded, frames cropped).
* ``eeg``: the 4 chain spectrograms (4 x 128 x 256) of the label row's 50-s EEG window, for train
  and test alike (native ``hms.dsp.eeg_spectrograms``; optional raw clipping, wavelet denoising,
  band-pass and notch).
* ``both``: Kaggle tiles and EEG tiles.
* ``raw``: the 50-s EEG window as bipolar links x time (16 double-banana links, or 18 with the
  central chain), band-passed, resampled to ``raw_rate`` and scaled (``raw_*`` options) by the native
  ``hms.dsp.eeg_raw_inputs``: (16, 2,000) at the default 40 Hz. Layout ``"sequence"``.

Tiles are laid out by ``tile_layout``: ``"channels"`` (4 x 128 x 256, or 8 x 128 x 256 for
``both``: cheapest for a CNN) or ``"stack"`` (each source's 4 tiles stacked into 512 x 256, sources
side by side: 1 x 512 x 256, or the widely used 1 x 512 x 512 for ``both``).

Normalization (none, per instance or data-wide; for ``raw`` after the recipe's own scaling):
:mod:`hms.normalization`; datasets, samplers and augmentation: :mod:`hms.dataset`.
Padding and masks are zeros, the post-normalization mean.
"""

from __future__ import annotations

import functools
import math
from collections import OrderedDict
from collections.abc import Callable, Iterator
from typing import Any, cast

import numpy as np
import pandas as pd
import torch

from hms import augment, dsp, recipes
from hms.competition import CompetitionData
from hms.config import Config
from hms.input_cache import SourceCache
from hms.normalization import EPS as NORM_EPS
from hms.normalization import Normalization
from hms.progress import bar as progress_bar
from hms.readers import KaggleSpectrogram, file_stamp
from hms.schema import EEG_WINDOW_SAMPLES, SAMPLE_RATE
from hms.windows import LabelWindow, eeg_window, label_windows, spectrogram_window

#: The Config fields that define the inputs (what state_dict records; the training-only ones
#: are read by hms.dataset).
INPUT_FIELDS: tuple[str, ...] = (
    "input", "normalization", "clip_lo", "clip_hi", "kaggle_layout", "image_size", "tile_layout", "eeg_recipe",
    "bandpass", "notch", "wavelet", "wavelet_level", "wavelet_sigma", "eeg_clip", "raw_montage", "raw_bandpass",
    "raw_rate", "raw_demean", "raw_scaling", "raw_clip", "raw_scale", "rebalance", "aug_shift_s", "aug_swap_p",
    "aug_mask_p", "aug_mask_time", "aug_mask_freq", "aug_reverse_p", "aug_drop_chain_p", "aug_drop_link_p",
    "mixup_alpha", "mixup_p", "cache", "cache_dir",
)  # fmt: skip
SOURCES_OF_INPUT = {"kaggle": ("kaggle",), "eeg": ("eeg",), "both": ("kaggle", "eeg"), "raw": ("raw",)}
#: Sources computed from the EEG recording (the others from the Kaggle spectrogram).
EEG_SOURCES = ("eeg", "raw")
STATE_VERSION = 1
_RECORDINGS_KEPT = 8  # per process: rows of one file are usually neighbours


class InputPipeline:
    """Turns label rows into model inputs; see the module docstring for recipes and shapes."""

    def __init__(self, cfg: Config, data: CompetitionData | None):
        """``data=None``: in-memory use only (``transform_windows``, ``assemble``), no cache."""
        self.params = {name: getattr(cfg, name) for name in INPUT_FIELDS}
        self.data = data
        self.sources: tuple[str, ...] = SOURCES_OF_INPUT[cfg.input]
        self.normalization = Normalization(cfg.normalization, self.sources)
        self._caches = (
            {
                s: SourceCache(
                    cfg.cache_dir,
                    s,
                    self.source_params(s),
                    data.root,
                    data.eeg_path if s in EEG_SOURCES else data.spectrogram_path,
                )
                for s in self.sources
            }
            if cfg.cache and data is not None
            else {}
        )
        self._reader = _RecordingReader(data) if data is not None else None

    # shape ---------------------------------------------------------------------------------
    @property
    def layout(self) -> str:
        """How tiles are arranged: "image" (Kaggle seed image), "channels" or "stack"; "sequence"
        for the raw EEG (links x time)."""
        if self.params["input"] == "raw":
            return "sequence"
        if self.params["input"] == "kaggle" and self.params["kaggle_layout"] == "image":
            return "image"
        return self.params["tile_layout"]

    @property
    def input_shape(self) -> tuple[int, ...]:
        """(C, H, W) of one model input; (links, samples) for the raw EEG."""
        if self.layout == "sequence":
            recipe = self._raw_recipe()  # the native recipe's links and resampling fraction
            up, down = recipe.ratio
            return (recipe.n_links, -(-EEG_WINDOW_SAMPLES * up // down))
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

    @property
    def stats(self) -> dict[str, dict[str, float]] | None:
        """The data-wide statistics per source (None until fitted, and for instance normalization)."""
        return self.normalization.stats

    def source_params(self, source: str) -> dict[str, Any]:
        """Every parameter that shapes a source's cached array (the cache key)."""
        p = self.params
        if source == "kaggle":
            return {"clip_lo": p["clip_lo"], "clip_hi": p["clip_hi"]}
        if source == "raw":
            return {name: p[name] for name in _RAW_RECIPE_FIELDS}
        wavelet = (
            {"wavelet": p["wavelet"], "wavelet_level": p["wavelet_level"], "wavelet_sigma": p["wavelet_sigma"]}
            if p["wavelet"]
            else {"wavelet": None}
        )
        return {
            "eeg_recipe": p["eeg_recipe"],
            "bandpass": p["bandpass"],
            "notch": p["notch"],
            "eeg_clip": p["eeg_clip"],
            **wavelet,
        }

    def cache(self, source: str) -> SourceCache | None:
        """The on-disk cache of ``source`` (None when caching is off or there is no data folder)."""
        return self._caches.get(source)

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

    def raw_source(self, windows: np.ndarray) -> np.ndarray:
        """(..., 20, 10,000) raw EEG windows -> (..., links, samples) scaled bipolar links."""
        return dsp.eeg_raw_inputs(windows, self._raw_recipe())

    def _raw_recipe(self) -> Any:
        return _raw_recipe(*(_hashable(self.params[n]) for n in _RAW_RECIPE_FIELDS))

    def window_source(self, source: str, windows: np.ndarray) -> np.ndarray:
        """The unnormalized ``source`` ("eeg" or "raw") of raw EEG windows (..., 20, 10,000)."""
        return self.raw_source(windows) if source == "raw" else self.eeg_source(windows)

    # sources to model input ----------------------------------------------------------------
    def assemble(self, sources: dict[str, np.ndarray]) -> np.ndarray:
        """Unnormalized sources (batch-first) -> normalized model input (..., C, H, W) float32
        ((..., links, samples) for the raw EEG)."""
        if self.layout == "sequence":
            return np.ascontiguousarray(self.normalization.normalize("raw", sources["raw"]), dtype=np.float32)
        lead = sources[self.sources[0]].shape[:-3]
        out = np.zeros(lead + self.input_shape, dtype=np.float32)
        for g, source in enumerate(self.sources):
            x = self.normalization.normalize(source, sources[source])
            target = self.source_view(out, g)  # each source is written straight into the output
            if source == "kaggle" and self.layout == "image":
                target[...] = recipes.kaggle_image(x, self.params["image_size"])
            elif source == "kaggle":
                recipes.kaggle_tiles(x, out=target)
            else:
                target[...] = x
        return out

    def source_view(self, out: np.ndarray, group: int) -> np.ndarray:
        """The (..., 4, 128, 256) view of a model input ``out`` holding source number ``group``
        ((..., 1, S, S) for the Kaggle image)."""
        if self.layout == "image":
            return out
        if self.layout == "channels":
            return out[..., 4 * group : 4 * group + 4, :, :]
        blocks = out.reshape(out.shape[:-3] + (4, recipes.TILE_FREQS, out.shape[-1]))  # a view
        return blocks[..., group * recipes.TILE_FRAMES : (group + 1) * recipes.TILE_FRAMES]

    def transform_windows(self, eeg: np.ndarray | None = None, kaggle: np.ndarray | None = None) -> np.ndarray:
        """Raw in-memory windows (batch-first) -> normalized model inputs (..., C, H, W)."""
        raw = {"eeg": eeg, "kaggle": kaggle, "raw": eeg}
        missing = [s for s in self.sources if raw[s] is None]
        if missing:
            raise ValueError(f"input={self.params['input']!r} needs the {missing} window(s)")
        if self._native_inputs():
            return self._native_transform(eeg, kaggle)
        windows = {s: cast(np.ndarray, raw[s]) for s in self.sources}
        return self.assemble(
            {
                s: self.kaggle_source(w) if s == "kaggle" else self.window_source(s, _checked_eeg_windows(w))
                for s, w in windows.items()
            }
        )

    def _native_inputs(self) -> bool:
        """Whether ``transform_windows`` can build the inputs in one native pass (tile layouts,
        the mel recipe without raw clipping or wavelet denoising): the same values as the
        step-by-step sources + ``assemble``, without the batch-sized intermediate arrays."""
        p = self.params
        if self.layout not in ("channels", "stack"):
            return False
        if "eeg" in self.sources and (p["eeg_recipe"] != "mel" or p["wavelet"] or p["eeg_clip"] is not None):
            return False
        return self.normalization.ready

    def _native_transform(self, eeg: np.ndarray | None, kaggle: np.ndarray | None) -> np.ndarray:
        p = self.params
        eeg = eeg if "eeg" in self.sources else None
        kaggle = kaggle if "kaggle" in self.sources else None
        if kaggle is not None:
            expected = (len(recipes.REGIONS), recipes.KAGGLE_FREQS, recipes.SPEC_WINDOW_FRAMES)
            if np.shape(kaggle)[-3:] != expected:
                raise ValueError(f"Kaggle window must have shape (..., {expected}), got {np.shape(kaggle)}")
        if eeg is not None:
            _checked_eeg_windows(eeg)
        return dsp.model_inputs(
            list(self.sources),
            eeg=eeg,
            eeg_recipe=None
            if eeg is None
            else _eeg_recipe(None if p["bandpass"] is None else tuple(p["bandpass"]), p["notch"]),
            kaggle=kaggle,
            kaggle_order=recipes.KAGGLE_TO_CHAINS,
            clip=(math.exp(p["clip_lo"]), math.exp(p["clip_hi"]), -1.0),
            layout=self.layout,
            eps=NORM_EPS,
            stats=self.normalization.native_stats(),
        )

    def swap_hemispheres(self, batch_inputs: torch.Tensor) -> torch.Tensor:
        """Left/right mirror of a batch (B, C, H, W) or (B, links, samples) of model inputs (for
        test-time augmentation)."""
        if tuple(batch_inputs.shape[1:]) != self.input_shape:
            raise ValueError(f"inputs must have shape (B, {self.input_shape}), got {tuple(batch_inputs.shape)}")
        return augment.swap_hemispheres(batch_inputs, self.layout)

    # sources of label rows -----------------------------------------------------------------
    def recording(self, split: str, eeg_id: int) -> np.ndarray:
        """A whole EEG recording (20, samples) of the data folder (the last few are kept)."""
        return self._require_reader().eeg(split, eeg_id)

    def row_source(self, source: str, split: str, window: LabelWindow) -> np.ndarray:
        """A label row's unnormalized source array, from the cache when possible (filling it)."""
        file_id, offset = window.source(source)
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
        reader = self._require_reader()
        if source in EEG_SOURCES:
            recording = reader.eeg(split, file_id)
            path = reader.data.eeg_path(split, file_id)
            return self.window_source(source, np.stack([eeg_window(recording, o, path) for o in offsets]))
        spectrogram = reader.spectrogram(split, file_id)
        return self.kaggle_source(np.stack([spectrogram_window(spectrogram, o) for o in offsets]))

    def label_sources(self, labels: pd.DataFrame, split: str) -> Iterator[dict[str, np.ndarray]]:
        """The unnormalized sources of every label row, in order."""
        for window in label_windows(labels, split):
            yield {source: self.row_source(source, split, window) for source in self.sources}

    def _require_reader(self) -> _RecordingReader:
        if self._reader is None:
            raise ValueError("this input pipeline has no data folder (data=None): pass windows to transform_windows")
        return self._reader

    # normalization statistics --------------------------------------------------------------
    def fit(self, train_labels: pd.DataFrame, *, show_progress: bool = True) -> None:
        """Data-wide mean/std per source over exactly these training rows (no-op for "instance")."""
        if self.normalization.mode != "datawide":
            return
        if not len(train_labels):
            raise ValueError("fit needs at least one training row")
        samples = self.label_sources(train_labels, "train")
        self.normalization.fit(
            progress_bar(samples, total=len(train_labels), desc="input statistics", unit="row", show=show_progress)
        )

    def state_dict(self) -> dict[str, Any]:
        """JSON-serializable recipe parameters and normalization statistics."""
        return {"version": STATE_VERSION, "params": dict(self.params), "stats": self.normalization.state()}

    @classmethod
    def from_state(
        cls, state: dict[str, Any], data: CompetitionData | None, *, keep_cache_dir: bool = True
    ) -> InputPipeline:
        """The pipeline ``state_dict`` described, statistics included (never refitted).

        ``keep_cache_dir=False`` ignores the cache folder the state names (a checkpoint from
        elsewhere says where it was trained, not where this machine may write): the cache goes
        under the user's cache folder (:func:`hms.io.cache_dir`)."""
        if not isinstance(state, dict) or state.get("version") != STATE_VERSION or "params" not in state:
            keys = sorted(state) if isinstance(state, dict) else type(state).__name__
            raise ValueError(f"not an InputPipeline state of version {STATE_VERSION}: {keys}")
        unknown = sorted(set(state["params"]) - set(INPUT_FIELDS))
        if unknown:
            raise ValueError(f"InputPipeline state has unknown parameters {unknown}")
        params = dict(state["params"]) if keep_cache_dir else {**state["params"], "cache_dir": None}
        pipeline = cls(Config(**params), data)
        pipeline.normalization = Normalization.from_state(
            pipeline.params["normalization"], pipeline.sources, state.get("stats")
        )
        return pipeline


# ---------------------------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------------------------


#: The Config fields of the raw recipe, in :func:`_raw_recipe`'s argument order.
_RAW_RECIPE_FIELDS = (
    "raw_montage", "raw_bandpass", "notch", "raw_rate", "raw_demean", "raw_scaling", "raw_clip", "raw_scale",
)  # fmt: skip


def _hashable(value: Any) -> Any:
    return tuple(value) if isinstance(value, list) else value


@functools.lru_cache(maxsize=8)
def _raw_recipe(
    montage: str,
    bandpass: tuple[float, float] | None,
    notch: float | None,
    rate: float,
    demean: bool,
    scaling: str,
    clip: float,
    scale: float,
) -> Any:
    """The native raw recipe of these options (kept per process: it is not picklable)."""
    return dsp.eeg_raw_recipe(
        montage=montage,
        bandpass=bandpass,
        notch=notch,
        fs=float(SAMPLE_RATE),
        rate=rate,
        demean=demean,
        normalize=scaling,
        clip=clip,
        scale=scale,
    )


def _checked_eeg_windows(eeg: Any) -> np.ndarray:
    """EEG windows (..., 20, 10,000), else a ValueError naming the shape."""
    shape = np.shape(eeg)
    if len(shape) < 2 or shape[-2] != 20 or shape[-1] != EEG_WINDOW_SAMPLES:
        raise ValueError(f"EEG windows must have shape (..., 20, {EEG_WINDOW_SAMPLES}), got {shape}")
    return np.asarray(eeg)


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


class _RecordingReader:
    """Reads EEG and spectrogram files, keeping the last few per process (rows of one file are
    neighbours in label order); picklable (workers start with an empty memory)."""

    def __init__(self, data: CompetitionData):
        self.data = data
        self._kept: OrderedDict[tuple, Any] = OrderedDict()

    def __getstate__(self) -> dict[str, Any]:
        return {"data": self.data, "_kept": OrderedDict()}

    def _get(self, key: tuple, read: Callable[[], Any]) -> Any:
        if key in self._kept:
            self._kept.move_to_end(key)
            return self._kept[key]
        value = read()
        self._kept[key] = value
        if len(self._kept) > _RECORDINGS_KEPT:
            self._kept.popitem(last=False)
        return value

    # Keyed by the file's stamp too: a file replaced on disk is read again.
    def eeg(self, split: str, eeg_id: int) -> np.ndarray:
        stamp = file_stamp(self.data.eeg_path(split, eeg_id))
        return self._get(("eeg", stamp), lambda: self.data.read_eeg(split, eeg_id))

    def spectrogram(self, split: str, spectrogram_id: int) -> KaggleSpectrogram:
        stamp = file_stamp(self.data.spectrogram_path(split, spectrogram_id))
        return self._get(("spec", stamp), lambda: self.data.read_spectrogram(split, spectrogram_id))
