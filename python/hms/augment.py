"""Training-time augmentation and rebalancing: hemisphere swap, masking, window shift, mixup,
time reversal and link/chain dropout (raw EEG), sampler weights. Validation and test data never
pass through here (the pipeline only calls these for ``augment=True`` datasets and the trainer's
training batches)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import torch

from hms.recipes import HEMISPHERE_SWAP
from hms.schema import CONSENSUS_NAMES, LINKS_PER_CHAIN, SAMPLE_RATE, TARGET_COLUMNS

REBALANCE_MODES = ("none", "consensus", "mass")


def hemisphere_index(n_channels: int, height: int, layout: str) -> tuple[int, Any]:
    """(axis counted from the end, index) that mirrors left and right in a (..., C, H, W) input.

    ``channels`` layout: groups of 4 chain channels, each group permuted; ``stack``/``image``:
    4 row blocks of H/4 (one per chain) permuted, the same for every column, so EEG and Kaggle
    tiles standing side by side swap together; ``sequence`` (raw EEG, (..., links, T)): the four
    chains' blocks of 4 links permuted (``n_channels`` is the links), the central chain kept.
    """
    if layout == "sequence":
        if n_channels < 4 * LINKS_PER_CHAIN:
            raise ValueError(f"a sequence layout needs the 16 double-banana links first, got {n_channels} channels")
        chains = [k * LINKS_PER_CHAIN + r for k in HEMISPHERE_SWAP for r in range(LINKS_PER_CHAIN)]
        return -2, chains + list(range(4 * LINKS_PER_CHAIN, n_channels))
    if layout == "channels":
        if n_channels % 4:
            raise ValueError(f"a channels layout needs a multiple of 4 channels, got {n_channels}")
        return -3, [g * 4 + k for g in range(n_channels // 4) for k in HEMISPHERE_SWAP]
    if height % 4:
        raise ValueError(f"a stacked layout needs a height divisible by 4, got {height}")
    block = height // 4
    return -2, [k * block + r for k in HEMISPHERE_SWAP for r in range(block)]


def swap_hemispheres(x: Any, layout: str) -> Any:
    """Left/right mirror of one input (C, H, W) or a batch (B, C, H, W) (raw: (links, T) or
    (B, links, T)); numpy or torch."""
    channel_axis = -2 if layout == "sequence" else -3
    axis, index = hemisphere_index(x.shape[channel_axis], x.shape[-2], layout)
    if isinstance(x, torch.Tensor):
        return x.index_select(x.ndim + axis, torch.as_tensor(index, device=x.device))
    return np.take(x, index, axis=axis)


def mask_time_freq(x: np.ndarray, rng: np.random.Generator, max_time: int, max_freq: int) -> np.ndarray:
    """Zeroes one random band of frames and one of frequency rows of (..., F, T), the same band for
    every leading index (all chains), in place; zero is the mean after normalization."""
    n_freq, n_time = x.shape[-2:]
    if max_time > 0:
        width = int(rng.integers(0, min(max_time, n_time) + 1))
        start = int(rng.integers(0, n_time - width + 1))
        x[..., start : start + width] = 0.0
    if max_freq > 0:
        height = int(rng.integers(0, min(max_freq, n_freq) + 1))
        start = int(rng.integers(0, n_freq - height + 1))
        x[..., start : start + height, :] = 0.0
    return x


def drop_links(x: np.ndarray, rng: np.random.Generator, chain_p: float, link_p: float) -> np.ndarray:
    """Raw EEG (links, T), in place: with probability ``chain_p`` one random chain's links
    zeroed (the 4 chains of 4 and, with 18 links, the central pair), and each link with
    probability ``link_p``."""
    n_links = x.shape[-2]
    if chain_p > 0 and rng.random() < chain_p:
        starts = list(range(0, n_links, LINKS_PER_CHAIN))
        start = starts[int(rng.integers(0, len(starts)))]
        x[..., start : start + LINKS_PER_CHAIN, :] = 0.0
    if link_p > 0:
        x[..., rng.random(n_links) < link_p, :] = 0.0
    return x


def shifted_start(start: int, n_samples: int, window: int, max_shift_s: float, rng: np.random.Generator) -> int:
    """A window start moved by up to +-max_shift_s seconds, kept inside the recording."""
    shift = int(round(rng.uniform(-max_shift_s, max_shift_s) * SAMPLE_RATE)) if max_shift_s > 0 else 0
    return int(np.clip(start + shift, 0, n_samples - window))


def mixup(
    batch: dict[str, torch.Tensor], alpha: float, p: float, generator: torch.Generator
) -> dict[str, torch.Tensor]:
    """With probability ``p``: each sample mixed with a random partner of the batch,
    lam ~ Beta(alpha, alpha) per sample; inputs, targets (soft) and n_votes mixed alike; "index"
    keeps the sample's own row. Returns a new dict (the input batch is not modified)."""
    if alpha <= 0 or p <= 0:
        return batch
    draws = torch.rand(1, generator=generator).item()
    if draws >= p:
        return batch
    n = batch["input"].shape[0]
    seed = int(torch.randint(0, 2**62, (1,), generator=generator).item())
    lam_np = np.random.default_rng(seed).beta(alpha, alpha, size=n).astype(np.float32)
    partner = torch.randperm(n, generator=generator).to(batch["input"].device)
    lam = torch.from_numpy(lam_np).to(batch["input"].device)
    out = dict(batch)
    for key in ("input", "target", "n_votes"):
        value = batch[key]
        weight = lam.reshape((n,) + (1,) * (value.ndim - 1)).to(value.dtype)
        out[key] = weight * value + (1 - weight) * value[partner]
    return out


def rebalance_weights(labels: pd.DataFrame, mode: str) -> np.ndarray | None:
    """Per-row sampling weights towards equal class shares (None for "none").

    ``consensus``: 1 / (rows of the row's expert_consensus class): every consensus class gets the
    same expected share. ``mass``: sum over classes of target / (the class's total target mass),
    so a split-vote row counts for each of its classes; exact for one-hot targets, approximately
    even otherwise.
    """
    if mode not in REBALANCE_MODES:
        raise ValueError(f"rebalance must be one of {REBALANCE_MODES}, got {mode!r}")
    if mode == "none":
        return None
    if mode == "consensus":
        if "expert_consensus" not in labels:
            raise ValueError("rebalance='consensus' needs the labels' 'expert_consensus' column")
        consensus = labels["expert_consensus"].astype(str)
        unknown = sorted(set(consensus) - set(CONSENSUS_NAMES))
        if unknown:
            raise ValueError(f"labels column 'expert_consensus' has unknown values {unknown[:5]}")
        counts = consensus.map(consensus.value_counts())
        return (1.0 / counts.to_numpy(dtype=np.float64)).astype(np.float64)
    missing = [c for c in TARGET_COLUMNS if c not in labels]
    if missing:
        raise ValueError(f"rebalance='mass' needs the target columns; missing {missing}")
    targets = labels[list(TARGET_COLUMNS)].to_numpy(dtype=np.float64)
    mass = targets.sum(axis=0)
    inverse = np.divide(1.0, mass, out=np.zeros_like(mass), where=mass > 0)
    return targets @ inverse
