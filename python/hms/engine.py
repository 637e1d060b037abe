"""One epoch of training, one pass of validation, the loss, and the device/precision set-up.

These functions know nothing of folds, stages or files: the fold loop in :mod:`hms.train` calls
them and decides what to keep.
"""

from __future__ import annotations

import contextlib
import math
import os
import random
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, cast

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from hms import CLASSES
from hms.optim import LrSchedule
from hms.progress import bar as progress_bar

# ---------------------------------------------------------------------------------------------
# Loss
# ---------------------------------------------------------------------------------------------


def kl_loss(logits: torch.Tensor, target: torch.Tensor, weight: torch.Tensor | None = None) -> torch.Tensor:
    """KL(target || softmax(logits)) per sample, averaged (weighted by ``weight`` if given).

    The competition metric without clipping; equal to ``KLDivLoss(reduction="batchmean")`` on
    log-softmax outputs when unweighted. Computed in float32 whatever the autocast dtype.
    """
    log_p = F.log_softmax(logits.float(), dim=1)
    target = target.float()
    per_sample = (torch.xlogy(target, target) - target * log_p).sum(dim=1)
    if weight is None:
        return per_sample.mean()
    weight = weight.float()
    return (per_sample * weight).sum() / weight.sum().clamp_min(1e-12)


# ---------------------------------------------------------------------------------------------
# Device, precision, determinism
# ---------------------------------------------------------------------------------------------


def resolve_device(name: str) -> torch.device:
    """``auto``: cuda, then mps, then cpu. An unavailable explicit device is an error."""
    cuda, mps = torch.cuda.is_available(), torch.backends.mps.is_available()
    if name == "auto":
        name = "cuda" if cuda else "mps" if mps else "cpu"
    if (name == "cuda" and not cuda) or (name == "mps" and not mps):
        raise ValueError(f"device={name} requested but not available on this machine")
    return torch.device(name)


@dataclass(frozen=True)
class Precision:
    """Autocast settings; AMP runs on CUDA only (CPU autocast is slower than float32 for convs)."""

    dtype: torch.dtype | None  # None: float32
    device_type: str

    @property
    def needs_scaler(self) -> bool:
        return self.dtype == torch.float16

    def autocast(self) -> contextlib.AbstractContextManager:
        if self.dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device_type, dtype=self.dtype)


def resolve_precision(amp: str, device: torch.device) -> Precision:
    if device.type != "cuda" or amp == "off":
        return Precision(None, device.type)
    if amp == "auto":
        amp = "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    return Precision(torch.bfloat16 if amp == "bf16" else torch.float16, device.type)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def derive_seed(*parts: int) -> int:
    """A well-mixed 63-bit seed from integers, e.g. (seed, fold, epoch)."""
    return int(np.random.SeedSequence([int(p) for p in parts]).generate_state(2, np.uint64)[0] >> np.uint64(1))


def set_deterministic(enabled: bool) -> None:
    """Deterministic kernels where they exist (warn only elsewhere), so CPU runs repeat exactly."""
    if enabled:
        # cuBLAS needs this to be deterministic; harmless elsewhere.
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.use_deterministic_algorithms(enabled, warn_only=True)
    torch.backends.cudnn.benchmark = not enabled


def rng_state() -> dict:
    """torch, numpy and python RNG states as tensors/lists (loadable with weights_only=True)."""
    kind, keys, pos, has_gauss, cached = cast(tuple[str, np.ndarray, int, int, float], np.random.get_state(legacy=True))
    state = {
        "torch": torch.get_rng_state(),
        "numpy": {
            "kind": kind,
            "keys": torch.from_numpy(keys.astype(np.int64)),
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "cached": float(cached),
        },
        "python": _to_lists(random.getstate()),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    n = state["numpy"]
    np.random.set_state((n["kind"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["cached"]))
    random.setstate(_to_tuples(state["python"]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _to_lists(value):
    return [_to_lists(v) for v in value] if isinstance(value, (tuple, list)) else value


def _to_tuples(value):
    return tuple(_to_tuples(v) for v in value) if isinstance(value, list) else value


# ---------------------------------------------------------------------------------------------
# Train / validate
# ---------------------------------------------------------------------------------------------


@dataclass
class EpochStats:
    loss: float
    samples: int
    seconds: float
    lr: float

    @property
    def samples_per_s(self) -> float:
        return self.samples / self.seconds if self.seconds > 0 else math.nan


def _to_device(batch: dict, device: torch.device, channels_last: bool) -> dict:
    out = {k: v.to(device, non_blocking=True) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}
    if channels_last and out["input"].ndim == 4:  # images only: raw EEG (B, links, T) has no such format
        out["input"] = out["input"].contiguous(memory_format=torch.channels_last)
    return out


def train_one_epoch(
    model: nn.Module,
    loader: Iterable[dict],
    optimizer: torch.optim.Optimizer,
    schedule: LrSchedule,
    *,
    device: torch.device,
    precision: Precision,
    scaler: torch.amp.GradScaler | None = None,
    accum_steps: int = 1,
    grad_clip: float | None = None,
    sample_weight: Callable[[torch.Tensor], torch.Tensor] | None = None,
    batch_transform: Callable[[dict], dict] | None = None,
    channels_last: bool = False,
    progress: bool = False,
    desc: str = "train",
) -> EpochStats:
    """One pass over ``loader``; an optimizer step every ``accum_steps`` batches (and at the end).

    ``schedule`` sets the lr before each optimizer step and advances after it. ``batch_transform``
    (e.g. mixup) sees each batch on the device. ``sample_weight`` maps a batch's vote counts to
    the samples' loss weights (None: equal weights). Returns the sample-weighted mean loss.
    """
    model.train()
    optimizer.zero_grad(set_to_none=True)
    n_batches = len(loader)  # type: ignore[arg-type]
    total_loss, total_samples = 0.0, 0
    lr = schedule.lr
    started = time.perf_counter()
    bar = progress_bar(loader, total=n_batches, desc=desc, unit="batch", leave=False, show=progress)
    for i, batch in enumerate(bar):
        batch = _to_device(batch, device, channels_last)
        if batch_transform is not None:
            batch = batch_transform(batch)
        # Each batch's gradient is scaled so an accumulated step averages its batches.
        group_end = min((i // accum_steps + 1) * accum_steps, n_batches)
        group_size = group_end - (i // accum_steps) * accum_steps
        # DistributedDataParallel: gradients of the batches before a step stay local; the
        # stepping batch's backward all-reduces the accumulated sum once.
        no_sync = (
            cast(Any, model).no_sync() if i + 1 != group_end and hasattr(model, "no_sync") else contextlib.nullcontext()
        )
        with no_sync:
            with precision.autocast():
                logits = model(batch["input"])
            weight = sample_weight(batch["n_votes"]) if sample_weight is not None else None
            loss = kl_loss(logits, batch["target"], weight)
            if not torch.isfinite(loss):
                raise FloatingPointError(f"{desc}: loss is {loss.item()} at batch {i}; lower lr or enable grad_clip")
            scaled = loss / group_size
            (scaler.scale(scaled) if scaler is not None else scaled).backward()
        if i + 1 == group_end:
            lr = schedule.apply(optimizer)
            if scaler is not None:
                scaler.unscale_(optimizer)
            if grad_clip is not None:
                nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
            if scaler is not None:
                scaler.step(optimizer)
                scaler.update()
            else:
                optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            schedule.advance()
        n = batch["input"].shape[0]
        total_loss += loss.item() * n
        total_samples += n
        bar.set_postfix(loss=f"{total_loss / total_samples:.4f}", lr=f"{lr:.2e}")
    if device.type == "cuda":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - started
    return EpochStats(total_loss / max(total_samples, 1), total_samples, seconds, lr)


@torch.no_grad()
def predict(
    model: nn.Module,
    loader: Iterable[dict],
    *,
    device: torch.device,
    precision: Precision,
    swap: Callable[[torch.Tensor], torch.Tensor] | None = None,
    channels_last: bool = False,
    progress: bool = False,
    desc: str = "valid",
) -> tuple[np.ndarray, np.ndarray]:
    """(indices, float64 probabilities) over ``loader``; with ``swap``, the mean of the
    probabilities of the input and of its hemisphere-swapped mirror (test-time augmentation)."""
    model.eval()
    indices, probs = [], []
    for batch in progress_bar(loader, desc=desc, unit="batch", leave=False, show=progress):
        batch = _to_device(batch, device, channels_last)
        with precision.autocast():
            logits = model(batch["input"])
        # float64 softmax: rows sum to 1 within the metric's tolerance, nothing renormalized later.
        p = logits.double().softmax(dim=1)
        if swap is not None:
            with precision.autocast():
                mirrored = model(swap(batch["input"]))
            p = 0.5 * (p + mirrored.double().softmax(dim=1))
        indices.append(batch["index"].cpu().numpy())
        probs.append(p.cpu().numpy())
    if not probs:  # e.g. a rank's empty share of a small validation set
        return np.empty(0, dtype=np.int64), np.empty((0, len(CLASSES)))
    return np.concatenate(indices), np.concatenate(probs)


def validate(
    model: nn.Module,
    loader: Iterable[dict],
    n_rows: int,
    *,
    gather: Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]] | None = None,
    **kwargs,
) -> np.ndarray:
    """Probabilities (n_rows, 6) in the row order of the loader's labels (by the ``index`` key).

    ``gather`` (distributed validation) combines this process's (indices, probabilities) with
    those of the processes that predicted the other rows."""
    indices, probs = predict(model, loader, **kwargs)
    if gather is not None:
        indices, probs = gather(indices, probs)
    out = np.full((n_rows, probs.shape[1]), np.nan)
    out[indices] = probs
    if np.isnan(out).any():
        raise RuntimeError(f"validation covered {len(np.unique(indices))} of {n_rows} rows")
    return out
