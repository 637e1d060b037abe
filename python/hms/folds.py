"""Training of one cross-validation fold: two stages, early stopping, best/last checkpoints, resume.

Stage 1 trains on all training rows; stage 2 starts from stage 1's best weights and fine-tunes on
the rows with at least ``stage2_min_votes`` votes (the expert-labelled kind that resembles the test
set), with a fresh optimizer and schedule. Model selection uses validation KL on all rows in
stage 1 and on the high-vote rows in stage 2 (stage 1's best competes in that metric too), so a
stage 2 that does not help is simply not selected.

At the end of every epoch ``fold<k>/last.pt`` records everything the next epoch depends on (model,
optimizer, schedule, grad scaler, counters, history, RNG states); data order comes from generators
seeded by (seed, fold, epoch). A run killed at any point therefore resumes from its last finished
epoch and, on CPU, finishes with the same predictions as a run that was never interrupted.

Under torchrun (``Runtime.dist``) every rank runs this same loop on a DistributedDataParallel
model: each draws the same epoch order and trains on its shard of it; each predicts a disjoint part
of the validation rows and all gather the full matrix, so every rank computes the same scores and
takes the same schedule, early-stopping and selection decisions. Rank 0 alone reads and writes the
run directory; checkpoints it reads are broadcast to the others.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch.utils.data import DataLoader

from hms import engine
from hms.competition import CompetitionData
from hms.config import Config
from hms.dataset import Augmentation, EpochSampler, InputDataset, loader_kwargs, rebalanced_order
from hms.distributed import Distributed
from hms.inputs import InputPipeline
from hms.labels import high_vote_mask, targets_of
from hms.metric import kl_divergence
from hms.models import create_model_from_config
from hms.optim import LrSchedule, create_optimizer, create_schedule
from hms.progress import bar as progress_bar
from hms.rundir import RunDir, RunDirError

log = logging.getLogger(__name__)

#: derive_seed(seed, fold, epoch, stream): 1 mixup draws, 2 per-sample augmentations.
_MIXUP_STREAM, _AUGMENT_STREAM = 1, 2


@dataclass(frozen=True)
class Stage:
    number: int
    start: int  # global epoch index of its first epoch
    epochs: int
    train_rows: np.ndarray  # positions in the fold's training labels
    lr: float

    @property
    def end(self) -> int:
        return self.start + self.epochs


@dataclass
class Runtime:
    """What the fold loop needs besides the config: where and how it runs."""

    device: torch.device
    precision: engine.Precision
    on_epoch: Callable[[int, list[dict[str, Any]]], None] | None = None  # (fold, history) after each epoch
    dist: Distributed = field(default_factory=Distributed)  # torchrun ranks (single process by default)
    progress: bool = True  # False: no progress bars whatever cfg.progress (non-main ranks, fold workers)


def plan_stages(cfg: Config, train_labels: pd.DataFrame) -> list[Stage]:
    stages = [Stage(1, 0, cfg.epochs, np.arange(len(train_labels)), cfg.lr)]
    high = np.flatnonzero(high_vote_mask(train_labels, cfg.stage2_min_votes))
    if cfg.stage2_epochs > 0 and len(high):
        stage2_lr = cfg.stage2_lr if cfg.stage2_lr is not None else cfg.lr / 10
        stages.append(Stage(2, cfg.epochs, cfg.stage2_epochs, high, stage2_lr))
    elif cfg.stage2_epochs > 0:
        log.info("stage 2 skipped: no training row has >= %d votes", cfg.stage2_min_votes)
    return stages


def vote_weights(cfg: Config, stage: Stage, epoch: int) -> Callable[[torch.Tensor], torch.Tensor] | None:
    """The loss weights of ``epoch`` as a function of the samples' vote counts (None: equal).

    ``loss_vote_weights``: the vote count. ``vote_schedule="decay"`` (stage 1): a row with v votes
    under ``stage2_min_votes`` = N is weighted (v / N) ** (e / (E - 1)) in the stage's epoch e of E,
    from 1 in the first epoch to v / N in the last, so training moves from all rows towards the
    expert-labelled kind; rows with >= N votes keep weight 1."""
    decay = cfg.vote_schedule == "decay" and stage.number == 1 and stage.epochs > 1
    if not (cfg.loss_vote_weights or decay):
        return None
    progress = (epoch - stage.start) / (stage.epochs - 1) if decay else 0.0
    threshold = float(cfg.stage2_min_votes)

    def weight(votes: torch.Tensor) -> torch.Tensor:
        w = votes.float() if cfg.loss_vote_weights else torch.ones_like(votes, dtype=torch.float32)
        if decay:
            w = w * (votes.float().clamp(max=threshold) / threshold) ** progress
        return w

    return weight


def switched_to_high_votes(cfg: Config, stage: Stage, epoch: int) -> bool:
    """Whether ``epoch`` draws only high-vote rows (``vote_schedule="switch"``, stage 1)."""
    return cfg.vote_schedule == "switch" and stage.number == 1 and epoch >= stage.start + cfg.vote_switch_epoch


def epoch_order(cfg: Config, fold: int, stage: Stage, stage_labels: pd.DataFrame, epoch: int) -> list[int]:
    """The rows of ``stage_labels`` one epoch draws, seeded by (seed, fold, epoch): a shuffle,
    the ``rebalance`` draw, or after a vote switch (:func:`switched_to_high_votes`) the high-vote
    rows only, in shuffled rounds (each as often as the others) as many times as before, so the
    lr schedule's steps stay as planned."""
    seed = engine.derive_seed(cfg.seed, fold, epoch)
    generator = torch.Generator().manual_seed(seed)
    if switched_to_high_votes(cfg, stage, epoch):
        high = np.flatnonzero(high_vote_mask(stage_labels, cfg.stage2_min_votes))
        if len(high):
            rounds = -(-len(stage_labels) // len(high))
            cycled = torch.cat([torch.randperm(len(high), generator=generator) for _ in range(rounds)])
            return high[cycled[: len(stage_labels)].numpy()].tolist()
    drawn = rebalanced_order(stage_labels, cfg.rebalance, seed)
    if drawn is None:
        drawn = torch.randperm(len(stage_labels), generator=generator).tolist()
    return drawn


def selection_score(stage: int, kl_all: float, kl_high: float) -> float:
    """Stage 1 selects on all rows; stage 2 on the high-vote rows (all rows if there are none)."""
    return kl_high if stage == 2 and not math.isnan(kl_high) else kl_all


def score_subsets(targets: np.ndarray, probs: np.ndarray, high: np.ndarray) -> tuple[float, float]:
    kl_all = kl_divergence(targets, probs)
    kl_high = kl_divergence(targets[high], probs[high]) if high.any() else math.nan
    return kl_all, kl_high


class FoldTrainer:
    def __init__(
        self,
        cfg: Config,
        run: RunDir,
        data: CompetitionData,
        labels: pd.DataFrame,
        folds: np.ndarray,
        fold: int,
        rt: Runtime,
    ):
        self.cfg, self.run, self.data, self.fold, self.rt = cfg, run, data, fold, rt
        self.train_labels = labels[folds != fold].reset_index(drop=True)
        self.val_labels = labels[folds == fold].reset_index(drop=True)
        self.labels_digest = labels_digest(self.train_labels, self.val_labels)
        self.val_targets = targets_of(self.val_labels)
        self.val_high = high_vote_mask(self.val_labels, cfg.stage2_min_votes)
        self.stages = plan_stages(cfg, self.train_labels)
        self.total_epochs = self.stages[-1].end
        self.channels_last = cfg.channels_last and rt.device.type == "cuda"
        self.progress = cfg.progress and rt.progress

    # ------------------------------------------------------------------------------------------
    def run_fold(self) -> tuple[np.ndarray, list[dict[str, Any]]]:
        """Trains (or resumes, or reloads) the fold; returns (validation probabilities of the
        selected model in val-label order, per-epoch history)."""
        dist = self.rt.dist
        last = self._load("last")
        if last is not None and last.get("labels_digest", self.labels_digest) != self.labels_digest:
            raise RunDirError(
                f"{self.run.checkpoint_path(self.fold, 'last')}: fold {self.fold} was trained on other label rows "
                f"than {self.data.csv_path('train')} now gives (the file, grouping or folds changed since the run "
                "started); a resumed run needs the same data: start a new run"
            )
        if last is not None and last["finished"]:
            return last["oof"].numpy(), last["history"]
        pipeline = self._pipeline(last)
        torch.manual_seed(engine.derive_seed(self.cfg.seed, self.fold))  # same init, resumed or not
        model = create_model_from_config(self.cfg, pipeline.in_chans).to(self.rt.device)
        if dist.rank:
            torch.manual_seed(dist.seed(self.cfg.seed, self.fold))  # its own augmentation draws
        if self.channels_last:
            model = model.to(memory_format=torch.channels_last)
        val_set: InputDataset | torch.utils.data.Subset[Any] = InputDataset(
            pipeline, self.val_labels, split="train", augment=False
        )
        if dist.enabled:
            val_set = torch.utils.data.Subset(val_set, list(dist.eval_shard(len(self.val_labels))))
        val_loader = DataLoader(
            val_set,
            batch_size=self.cfg.eval_batch_size or 2 * self.cfg.batch_size,
            shuffle=False,
            **loader_kwargs(self.cfg.num_workers),
        )
        swap = pipeline.swap_hemispheres if self.cfg.tta else None
        train_set = InputDataset(pipeline, self.train_labels, split="train", augment=True)

        state = self._initial_state()
        optimizer = schedule = scaler = None
        if last is not None:
            state = {k: last[k] for k in state}
            model.load_state_dict(last["model"])
            if not self._stage_of(state["epoch"]).start == state["epoch"]:
                optimizer, schedule, scaler = self._optimization(model, self._stage_of(state["epoch"]))
                optimizer.load_state_dict(last["optimizer"])
                schedule = LrSchedule.from_state(last["schedule"])
                if scaler is not None and last.get("scaler"):
                    scaler.load_state_dict(last["scaler"])
            self._restore_rng(last)
        # Wrapped after loading: DDP starts every rank from rank 0's weights. ``model`` itself is
        # what is evaluated and checkpointed (same format as single-process runs).
        train_model = dist.wrap(model, self.rt.device)

        epochs_bar = progress_bar(
            total=self.total_epochs,
            initial=state["epoch"],
            desc=f"fold {self.fold}",
            unit="epoch",
            leave=False,
            show=self.progress,
        )
        loader_stage = None
        while state["epoch"] < self.total_epochs:
            epoch = state["epoch"]
            stage = self._stage_of(epoch)
            if epoch == stage.start:
                optimizer, schedule, scaler = self._start_stage(model, stage, state)
            if loader_stage != stage.number:
                loader, sampler = self._train_loader(train_set, stage)
                loader_stage = stage.number
            sampler.set_epoch(epoch)
            row = self._train_epoch(
                model, train_model, pipeline, loader, val_loader, swap, stage, epoch, optimizer, schedule, scaler, state
            )
            state["history"].append(row)
            state["epoch"] = epoch + 1
            if self.cfg.patience is not None and state["bad_epochs"] >= self.cfg.patience:
                log.info(
                    "fold %d: early stop of stage %d after %d epoch(s)",
                    self.fold,
                    stage.number,
                    epoch + 1 - stage.start,
                )
                state["epoch"] = stage.end
            self._save_last(model, optimizer, schedule, scaler, state, pipeline)
            if self.rt.on_epoch is not None:
                self.rt.on_epoch(self.fold, state["history"])
            epochs_bar.update(state["epoch"] - epochs_bar.n)
        epochs_bar.close()

        best = self._best()
        oof = best["val_probs"].numpy()
        self._save_last(model, optimizer, schedule, scaler, state, pipeline, oof=oof)
        return oof, state["history"]

    # ------------------------------------------------------------------------------------------
    def _load(self, which: str) -> dict[str, Any] | None:
        """A checkpoint of this fold, read by rank 0 and broadcast (ranks need no shared disk)."""
        return self.rt.dist.run_on_main(lambda: self.run.load_checkpoint(self.fold, which))

    def _best(self) -> dict[str, Any]:
        """The fold's best checkpoint (every stage-1 epoch that improves writes it)."""
        return self.rt.dist.run_on_main(lambda: self.run.require_checkpoint(self.fold, "best"))

    def _restore_rng(self, last: dict[str, Any]) -> None:
        dist = self.rt.dist
        per_rank = last.get("rng_ranks")
        if per_rank is not None and len(per_rank) == dist.world_size:
            engine.set_rng_state(per_rank[dist.rank])
            return
        engine.set_rng_state(last["rng"])
        if dist.rank:  # resumed with another world size: not an exact continuation anyway
            torch.manual_seed(dist.seed(self.cfg.seed, self.fold, last["epoch"]))

    def _pipeline(self, last: dict | None):
        if last is not None:
            return InputPipeline.from_state(json.loads(last["inputs"]), self.data)
        pipeline = InputPipeline(self.cfg, self.data)
        pipeline.fit(self.train_labels, show_progress=self.progress)  # data-wide statistics of the training rows only
        self.run.write_json(f"fold{self.fold}/normalization.json", pipeline.state_dict())
        return pipeline

    def _initial_state(self) -> dict[str, Any]:
        return {"epoch": 0, "best_score": math.inf, "best_epoch": -1, "bad_epochs": 0, "history": []}

    def _stage_of(self, epoch: int) -> Stage:
        for stage in self.stages:
            if epoch < stage.end:
                return stage
        return self.stages[-1]

    def _steps_per_epoch(self, stage: Stage) -> int:
        n = self.rt.dist.shard_length(len(stage.train_rows))  # samples per rank
        batches = n // self.cfg.batch_size + (n % self.cfg.batch_size > 1)  # see _train_loader
        return max(math.ceil(batches / self.cfg.accum_steps), 1)

    def _optimization(self, model, stage: Stage):
        cfg = self.cfg
        optimizer = create_optimizer(model, stage.lr, (cfg.beta1, cfg.beta2), cfg.weight_decay)
        schedule = create_schedule(
            cfg, peak_lr=stage.lr, epochs=stage.epochs, steps_per_epoch=self._steps_per_epoch(stage)
        )
        scaler = torch.amp.GradScaler(self.rt.device.type) if self.rt.precision.needs_scaler else None
        return optimizer, schedule, scaler

    def _start_stage(self, model, stage: Stage, state: dict[str, Any]):
        state["bad_epochs"] = 0
        if stage.number > 1:
            best = self._best()
            model.load_state_dict(best["model"])
            kl_all, kl_high = score_subsets(self.val_targets, best["val_probs"].numpy(), self.val_high)
            state["best_score"] = float(selection_score(stage.number, kl_all, kl_high))
        return self._optimization(model, stage)

    def _train_loader(self, train_set, stage: Stage) -> tuple[DataLoader, EpochSampler]:
        """One DataLoader for all epochs of ``stage`` (its persistent workers live as long), fed
        by a sampler that is set to each epoch."""
        dist = self.rt.dist
        stage_labels = self.train_labels.iloc[stage.train_rows].reset_index(drop=True)

        def order_of(epoch: int) -> list[int]:
            drawn = epoch_order(self.cfg, self.fold, stage, stage_labels, epoch)
            positions = [int(stage.train_rows[i]) for i in drawn]
            # Every rank draws the same epoch order (same seed), then keeps its equal-length shard.
            return dist.train_shard(positions) if dist.enabled else positions

        n = dist.shard_length(len(stage.train_rows))  # this rank's samples
        sampler = EpochSampler(
            order_of, lambda epoch: engine.derive_seed(self.cfg.seed, self.fold, epoch, _AUGMENT_STREAM), n
        )
        loader = DataLoader(
            train_set,
            batch_size=self.cfg.batch_size,
            sampler=sampler,
            generator=torch.Generator().manual_seed(dist.seed(self.cfg.seed, self.fold, stage.number)),
            **loader_kwargs(self.cfg.num_workers),
            # BatchNorm cannot train on a final batch of one sample (equal shards: all ranks agree).
            drop_last=n % self.cfg.batch_size == 1,
        )
        return loader, sampler

    def _train_epoch(
        self,
        model,
        train_model,
        pipeline,
        loader,
        val_loader,
        swap,
        stage: Stage,
        epoch: int,
        optimizer,
        schedule,
        scaler,
        state: dict[str, Any],
    ) -> dict[str, Any]:
        """One epoch of ``train_model`` (``model``, or DDP around it) on ``loader`` (its sampler
        set to ``epoch``), then validation of ``model``."""
        cfg, rt, dist = self.cfg, self.rt, self.rt.dist
        mixup_generator = torch.Generator().manual_seed(dist.seed(cfg.seed, self.fold, epoch, _MIXUP_STREAM))
        augmentation = Augmentation.of(pipeline)
        on_device: dict[str, Any] = {
            "device": rt.device,
            "precision": rt.precision,
            "channels_last": self.channels_last,
        }
        stats = engine.train_one_epoch(
            train_model, loader, optimizer, schedule, scaler=scaler, accum_steps=cfg.accum_steps,
            grad_clip=cfg.grad_clip, sample_weight=vote_weights(cfg, stage, epoch),
            batch_transform=lambda b: augmentation.mixup(b, mixup_generator),
            progress=self.progress, desc=f"fold {self.fold} epoch {epoch + 1}", **on_device,
        )  # fmt: skip
        stats = self._global_stats(stats)
        # Validation runs on the bare model, rank by rank on disjoint rows (no collective inside
        # the forward: ranks may have different numbers of batches), all with rank 0's weights.
        dist.sync_state(model)
        probs = engine.validate(
            model, val_loader, len(self.val_labels), swap=swap, progress=self.progress, gather=dist.gather_rows,
            **on_device,
        )  # fmt: skip
        val_loss = float(engine.kl_loss(torch.log(torch.from_numpy(probs)), torch.from_numpy(self.val_targets)))
        # Plain floats: checkpoints must hold only tensors and primitives (weights_only loading).
        kl_all, kl_high = (float(v) for v in score_subsets(self.val_targets, probs, self.val_high))
        score = selection_score(stage.number, kl_all, kl_high)
        schedule.epoch_end(score)
        improved = score < state["best_score"]
        if improved:
            state.update(best_score=score, best_epoch=epoch, bad_epochs=0)
            self.run.save_checkpoint(
                self.fold,
                "best",
                {
                    "config": _config_dict(cfg),
                    "fold": self.fold,
                    "epoch": epoch,
                    "stage": stage.number,
                    "score": score,
                    "model": model.state_dict(),
                    "val_probs": torch.from_numpy(probs),
                    "val_label_ids": torch.tensor(self.val_labels["label_id"].to_numpy()),
                    "inputs": json.dumps(pipeline.state_dict()),
                },
            )
        else:
            state["bad_epochs"] += 1
        row = {
            "fold": self.fold,
            "stage": stage.number,
            "epoch": epoch + 1,
            "train_loss": stats.loss,
            "val_loss": val_loss,
            "val_kl": kl_all,
            "val_kl_high_votes": kl_high,
            "lr": stats.lr,
            "samples_per_s": stats.samples_per_s,
            "train_seconds": stats.seconds,
            "best": improved,
        }
        log.info(
            f"fold {self.fold} stage {stage.number} epoch {epoch + 1}/{self.total_epochs}: "
            f"train {stats.loss:.4f}  val KL {kl_all:.4f} (>= {cfg.stage2_min_votes} votes {kl_high:.4f})  "
            f"lr {stats.lr:.2e}  {stats.samples_per_s:.1f} samples/s{'  *best' if improved else ''}"
        )
        return row

    def _global_stats(self, stats: engine.EpochStats) -> engine.EpochStats:
        """Loss over all ranks' samples; samples/s of the whole job (all samples / slowest rank)."""
        if not self.rt.dist.enabled:
            return stats
        parts = self.rt.dist.all_gather_object((stats.loss * stats.samples, stats.samples, stats.seconds))
        samples = sum(p[1] for p in parts)
        return engine.EpochStats(
            sum(p[0] for p in parts) / max(samples, 1), samples, max(p[2] for p in parts), stats.lr
        )

    def _save_last(self, model, optimizer, schedule, scaler, state, pipeline, oof: np.ndarray | None = None) -> None:
        # Every rank's RNG state (a collective: all ranks get here), so a resumed DDP run goes on
        # with each rank's own augmentation stream.
        rng_ranks = self.rt.dist.all_gather_object(engine.rng_state()) if self.rt.dist.enabled else None
        self.run.save_checkpoint(
            self.fold,
            "last",
            {
                "config": _config_dict(self.cfg),
                "fold": self.fold,
                **state,
                "model": model.state_dict(),
                "optimizer": optimizer.state_dict() if optimizer is not None else None,
                "schedule": schedule.state_dict() if schedule is not None else None,
                "scaler": scaler.state_dict() if scaler is not None else None,
                "rng": engine.rng_state(),
                "rng_ranks": rng_ranks,
                "inputs": json.dumps(pipeline.state_dict()),
                "labels_digest": self.labels_digest,
                "finished": oof is not None,
                "oof": torch.from_numpy(oof) if oof is not None else None,
            },
        )


def labels_digest(*frames: pd.DataFrame) -> str:
    """SHA-256 (hex) of label frames' contents (ids, offsets, targets, vote counts, in order)."""
    digest = hashlib.sha256()
    for frame in frames:
        digest.update(pd.util.hash_pandas_object(frame, index=False).to_numpy().tobytes())
        digest.update(b"|")
    return digest.hexdigest()


def _config_dict(cfg: Config) -> dict[str, Any]:
    from hms.config import to_dict

    return to_dict(cfg)
