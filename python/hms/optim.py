"""Optimizer and learning-rate schedule factories.

The schedule is a pure function of the optimizer step (plus, for ``plateau``, the cuts made so
far), so its state is two numbers and a resumed run continues on exactly the same curve:

* ``cosine``: linear warm-up, then cosine from ``lr`` down to ``min_lr`` at the last step.
* ``onecycle``: warm-up (default 30% of the steps) by a half cosine from lr/25 up to ``lr``, then
  a half cosine down to ``min_lr`` (torch's OneCycleLR shape without momentum cycling).
* ``step``: warm-up, then ``lr * lr_decay ** (epoch // step_epochs)``.
* ``plateau``: warm-up, then ``lr`` cut by ``lr_decay`` after ``plateau_patience`` epochs
  without a better validation score (call :meth:`LrSchedule.epoch_end`).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
from torch import nn

ONECYCLE_DIV = 25.0  # torch OneCycleLR's default initial lr = max_lr / 25
ONECYCLE_DEFAULT_WARMUP = 0.3


def create_optimizer(model: nn.Module, lr: float, betas: tuple[float, float], weight_decay: float) -> torch.optim.AdamW:
    """AdamW with no weight decay on biases and normalization weights (1-d parameters)."""
    decay: list[nn.Parameter] = []
    no_decay: list[nn.Parameter] = []
    for param in model.parameters():
        if param.requires_grad:
            (no_decay if param.ndim <= 1 else decay).append(param)
    groups = [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=lr, betas=betas)


@dataclass
class LrSchedule:
    """Sets the optimizer's lr before every step; ``state_dict`` is plain numbers."""

    kind: str
    peak_lr: float
    min_lr: float
    total_steps: int
    steps_per_epoch: int
    warmup_steps: int = 0
    decay: float = 0.5
    step_epochs: int = 1
    plateau_patience: int = 1
    # state
    step: int = 0
    plateau_scale: float = 1.0
    best: float = math.inf
    bad_epochs: int = 0

    def lr_at(self, step: int) -> float:
        warm = self.warmup_steps
        if self.kind == "onecycle":
            start = self.peak_lr / ONECYCLE_DIV
            if step < warm:
                return _cosine(start, self.peak_lr, step / max(warm, 1))
            return _cosine(self.peak_lr, self.min_lr, (step - warm) / max(self.total_steps - warm, 1))
        if step < warm:
            return self.peak_lr * (step + 1) / warm
        if self.kind == "cosine":
            progress = (step - warm) / max(self.total_steps - warm - 1, 1)
            return _cosine(self.peak_lr, self.min_lr, min(progress, 1.0))
        if self.kind == "step":
            return self.peak_lr * self.decay ** ((step // self.steps_per_epoch) // self.step_epochs)
        if self.kind == "plateau":
            return self.peak_lr * self.plateau_scale
        raise ValueError(f"scheduler: unknown kind {self.kind!r}")

    @property
    def lr(self) -> float:
        return self.lr_at(self.step)

    def apply(self, optimizer: torch.optim.Optimizer) -> float:
        """Sets the lr of the coming optimizer step; returns it."""
        lr = self.lr
        for group in optimizer.param_groups:
            group["lr"] = lr
        return lr

    def advance(self) -> None:
        self.step += 1

    def epoch_end(self, score: float) -> None:
        """Plateau bookkeeping (lower score is better); a no-op for the other kinds."""
        if self.kind != "plateau":
            return
        if score < self.best:
            self.best, self.bad_epochs = score, 0
        else:
            self.bad_epochs += 1
            if self.bad_epochs >= self.plateau_patience:
                self.plateau_scale *= self.decay
                self.bad_epochs = 0

    def state_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_state(cls, state: dict) -> LrSchedule:
        return cls(**state)


def _cosine(start: float, end: float, progress: float) -> float:
    return end + (start - end) * 0.5 * (1.0 + math.cos(math.pi * progress))


def create_schedule(cfg, *, peak_lr: float, epochs: int, steps_per_epoch: int) -> LrSchedule:
    """The schedule of ``cfg.scheduler`` over ``epochs`` epochs of ``steps_per_epoch`` optimizer steps."""
    total = max(epochs * steps_per_epoch, 1)
    warmup = round(cfg.warmup_epochs * steps_per_epoch)
    if cfg.scheduler == "onecycle" and cfg.warmup_epochs == 0:
        warmup = round(ONECYCLE_DEFAULT_WARMUP * total)
    return LrSchedule(
        kind=cfg.scheduler,
        peak_lr=peak_lr,
        min_lr=min(cfg.min_lr, peak_lr),
        total_steps=total,
        steps_per_epoch=max(steps_per_epoch, 1),
        warmup_steps=min(warmup, total),
        decay=cfg.lr_decay,
        step_epochs=cfg.step_epochs,
        plateau_patience=cfg.plateau_patience,
    )
