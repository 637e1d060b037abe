"""Input recipes as batch-first array transforms: Kaggle windows and EEG windows to tiles and images.

Every function takes a leading batch shape ``(...)`` so the dataset (one sample) and the
benchmark (many) share one code path. Region/chain order everywhere is :data:`CHAINS`
(LL, LP, RL, RP: the order of ``hms.dsp.eeg_spectrograms``); Kaggle windows arrive in the files'
order (LL, RL, LP, RP) and are reordered once, in :func:`kaggle_log`.

Shapes (per sample):

* Kaggle source: ``kaggle_log`` -> (4, 100, 300) log power, the seed's NaN -> -1, clip to
  [e^lo, e^hi], natural log.
* EEG source: ``eeg_chain_spectrograms`` -> (4, 128, 256), the native recipe of the 50-s window.
* Tiles: a source as (4, 128, 256): Kaggle's 100 frequency rows padded (zeros, after
  normalization) to 128 and its 300 frames centre-cropped to 256.
* Kaggle image (seed): each region's (100, 300) resized bilinearly to (S/4, S), stacked -> (1, S, S).
  Resizing region by region keeps the hemisphere swap exact.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from hms import dsp
from hms.schema import EEG_WINDOW_SAMPLES, REGIONS, SPEC_WINDOW_FRAMES

CHAINS: tuple[str, ...] = ("LL", "LP", "RL", "RP")
#: Index into the Kaggle files' region axis that yields CHAINS order.
KAGGLE_TO_CHAINS: tuple[int, ...] = tuple(REGIONS.index(c) for c in CHAINS)
#: Left/right mirror in CHAINS order: LL<->RL, LP<->RP.
HEMISPHERE_SWAP: tuple[int, ...] = tuple(CHAINS.index(("R" if c[0] == "L" else "L") + c[1]) for c in CHAINS)
KAGGLE_FREQS = 100
TILE_FREQS, TILE_FRAMES = 128, 256


def kaggle_log(window: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """(..., 4, 100, 300) Kaggle window (files' region order) -> log power in CHAINS order, float32.

    NaN -> -1 (then clipped to e^lo, as the seed did), clip to [e^lo, e^hi], natural log.
    """
    window = np.asarray(window)
    expected = (len(REGIONS), KAGGLE_FREQS, SPEC_WINDOW_FRAMES)
    if window.shape[-3:] != expected:
        raise ValueError(f"Kaggle window must have shape (..., {expected}), got {window.shape}")
    reordered = np.ascontiguousarray(window[..., KAGGLE_TO_CHAINS, :, :], dtype=np.float32)
    return dsp.clip_log(reordered, math.exp(lo), math.exp(hi), nan=-1.0, out=reordered)


def kaggle_tiles(logged: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """(..., 4, 100, 300) -> (..., 4, 128, 256): frequency rows zero-padded, frames centre-cropped.
    ``out``: a zeroed (..., 4, 128, 256) array (or view) to fill instead of a new one."""
    pad = TILE_FREQS - KAGGLE_FREQS
    crop = (SPEC_WINDOW_FRAMES - TILE_FRAMES) // 2
    if out is None:
        out = np.zeros(logged.shape[:-2] + (TILE_FREQS, TILE_FRAMES), dtype=np.float32)
    out[..., pad // 2 : pad // 2 + KAGGLE_FREQS, :] = logged[..., crop : crop + TILE_FRAMES]
    return out


def kaggle_image(logged: np.ndarray, size: int) -> np.ndarray:
    """(..., 4, 100, 300) -> (..., 1, size, size): each region resized to (size/4, size), stacked."""
    return resize_images(logged, (size // 4, size)).reshape(*logged.shape[:-3], 1, size, size)


# ---------------------------------------------------------------------------------------------
# EEG
# ---------------------------------------------------------------------------------------------


def clip_microvolts(eeg: np.ndarray, limit: float | None) -> np.ndarray:
    """Raw EEG clipped to [-limit, limit] microvolts (NaN kept for the recipe's own fill)."""
    if limit is None:
        return eeg
    return np.clip(eeg, -limit, limit)


def fill_nan_with_channel_mean(eeg: np.ndarray) -> np.ndarray:
    """NaN -> the channel's mean (0 for an all-NaN channel). NaN runs hit all channels at once in
    these recordings, so a bipolar difference of filled channels equals the recipe's own
    per-difference mean fill."""
    if not np.isnan(eeg).any():
        return eeg
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN channel: filled with 0 below
        means = np.nanmean(eeg, axis=-1, keepdims=True)
    means = np.nan_to_num(means, nan=0.0)
    return np.where(np.isnan(eeg), means, eeg).astype(eeg.dtype, copy=False)


def wavelet_denoise(x: np.ndarray, wavelet: str, level: int | None = None, sigma: str = "median") -> np.ndarray:
    """Wavelet denoising as circulated in the competition, along the last axis.

    ``pywt.wavedec(mode="per")`` (periodization); noise sigma from the finest detail band, ``mean`` (as circulated:
    mean absolute deviation / 0.6745) or ``median`` (the median absolute deviation that 0.6745
    belongs to); universal threshold sigma * sqrt(2 ln N); hard thresholding of all detail bands.
    Input must be NaN-free.
    """
    import pywt

    if sigma not in ("mean", "median"):
        raise ValueError(f"sigma must be 'mean' or 'median', got {sigma!r}")
    if np.isnan(x).any():
        raise ValueError("wavelet_denoise needs NaN-free input; fill NaN first")
    n = x.shape[-1]
    coeffs = pywt.wavedec(x.astype(np.float64), wavelet, mode="periodization", level=level, axis=-1)
    finest = coeffs[-1]
    center = np.mean if sigma == "mean" else np.median
    deviation = center(np.abs(finest - center(finest, axis=-1, keepdims=True)), axis=-1, keepdims=True)
    threshold = deviation / 0.6745 * math.sqrt(2.0 * math.log(n))
    # pywt's hard rule keeps |c| >= threshold.
    coeffs[1:] = [np.where(np.abs(c) < threshold, 0.0, c) for c in coeffs[1:]]
    return pywt.waverec(coeffs, wavelet, mode="periodization", axis=-1)[..., :n].astype(x.dtype)


def eeg_chain_spectrograms(
    eeg: np.ndarray, recipe: str = "mel", bandpass: Sequence[float] | None = None, notch: float | None = None
) -> np.ndarray:
    """(..., 20, 10,000) EEG windows -> (..., 4, 128, 256) chain spectrograms in CHAINS order,
    computed by the native ``hms.dsp.eeg_spectrograms``. Recipes whose images have another size
    (``"scipy"``: 129 frequencies x 44 segments) are resized bilinearly to the EEG tile."""
    eeg = np.asarray(eeg)
    if eeg.ndim < 2 or eeg.shape[-2] != 20 or eeg.shape[-1] != EEG_WINDOW_SAMPLES:
        raise ValueError(f"EEG windows must have shape (..., 20, {EEG_WINDOW_SAMPLES}), got {eeg.shape}")
    kwargs: dict[str, Any] = {"recipe": recipe}
    if bandpass is not None:
        kwargs["bandpass"] = tuple(bandpass)
    if notch is not None:
        kwargs["notch"] = notch
    result = dsp.eeg_spectrograms(np.ascontiguousarray(eeg, dtype=np.float32), **kwargs)
    images, names = result if isinstance(result, tuple) else (result, CHAINS)
    if tuple(names) != CHAINS:
        images = images[..., [list(names).index(c) for c in CHAINS], :, :]
    images = np.asarray(images, dtype=np.float32)
    if images.shape[-2:] != (TILE_FREQS, TILE_FRAMES):
        images = resize_images(images, (TILE_FREQS, TILE_FRAMES))
    return images


def resize_images(images: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Bilinear resize of the last two axes of (..., H, W) images."""
    lead = images.shape[:-2]
    flat = torch.from_numpy(np.ascontiguousarray(images, dtype=np.float32).reshape(-1, 1, *images.shape[-2:]))
    resized = F.interpolate(flat, size=size, mode="bilinear", align_corners=False)
    return resized.numpy().reshape(*lead, *size)
