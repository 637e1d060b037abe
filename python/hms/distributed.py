"""Multi-process training: the torchrun environment, the process group, data shards and the few
collectives the trainer needs.

``torchrun --nproc_per_node=N -m hms.train ...`` starts N processes with RANK, WORLD_SIZE,
LOCAL_RANK, LOCAL_WORLD_SIZE, MASTER_ADDR and MASTER_PORT set. :meth:`Distributed.from_env` joins
them into one process group: gloo for CPU tensors (control messages, validation gathers, gradients
of CPU training) and, where CUDA exists, nccl for CUDA tensors (gradients on GPUs; rank r uses
``cuda:LOCAL_RANK``). Without WORLD_SIZE, or with WORLD_SIZE=1, it is a no-op single-process
instance, so plain ``python -m hms.train`` runs exactly as before.

Rank 0 owns the run directory: it alone reads and writes it and broadcasts what the others need
(config, checkpoints), so ranks on other nodes need no shared file system (the data and the input
cache are read on every node). Every collective has the process group's timeout
(``dist_timeout_s``): a rank whose peer died or hangs fails with an error instead of waiting forever.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, TypeVar, cast

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

from hms import dsp, engine

T = TypeVar("T")
#: What torchrun sets and init_process_group("env://") needs.
TORCHRUN_ENV = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")
_RANK_STREAM = 0x5EED  # tags the per-rank random streams (see Distributed.seed)


class DistributedError(RuntimeError):
    """Distributed set-up is impossible (incomplete environment, unsupported device)."""


class MainRankError(RuntimeError):
    """Rank 0 failed in a step whose result the other ranks were waiting for; rank 0 reports it."""


@dataclass(frozen=True)
class Distributed:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    local_world_size: int = 1

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    # set-up ----------------------------------------------------------------------------------
    @classmethod
    def from_env(cls, timeout_s: float, environ: dict[str, str] | None = None) -> Distributed:
        """The torchrun process group (initialized here), or the single-process instance."""
        env = os.environ if environ is None else environ
        if int(env.get("WORLD_SIZE", "1") or 1) <= 1:
            return cls()
        missing = [k for k in TORCHRUN_ENV if not env.get(k)]
        if missing:
            raise DistributedError(
                f"WORLD_SIZE={env['WORLD_SIZE']} but {', '.join(missing)} not set: start distributed "
                "training with torchrun (python -m torch.distributed.run), which sets all of "
                f"{', '.join(TORCHRUN_ENV)}"
            )
        rank, world, local_rank = int(env["RANK"]), int(env["WORLD_SIZE"]), int(env["LOCAL_RANK"])
        local_world = int(env.get("LOCAL_WORLD_SIZE", world))
        cuda = torch.cuda.is_available()
        if cuda and local_rank < torch.cuda.device_count():
            torch.cuda.set_device(local_rank)  # nccl's communicator and CUDA defaults use this GPU
        # Both backends where CUDA exists: the device is only known once rank 0 has broadcast the
        # config (over gloo), and nccl's communicators are created lazily, on first CUDA use.
        dist.init_process_group("cpu:gloo,cuda:nccl" if cuda else "gloo", timeout=timedelta(seconds=timeout_s))
        share_cpus(local_world, env)
        return cls(rank, world, local_rank, local_world)

    def device_for(self, device: torch.device) -> torch.device:
        """This rank's device, given the resolved config device: ``cuda:LOCAL_RANK`` on CUDA."""
        if not self.enabled or device.type == "cpu":
            return device
        if device.type != "cuda":
            raise DistributedError(f"distributed training runs on cuda or cpu, not {device.type}")
        if self.local_rank >= torch.cuda.device_count():
            raise DistributedError(
                f"local rank {self.local_rank} needs a GPU but this node has {torch.cuda.device_count()}: "
                "start at most one process per GPU (--nproc_per_node)"
            )
        return torch.device("cuda", self.local_rank)

    def shutdown(self) -> None:
        if self.enabled and dist.is_initialized():
            dist.destroy_process_group()

    def seed(self, *parts: int) -> int:
        """``engine.derive_seed(*parts)`` on rank 0 (the single-process value), a distinct stream
        on every other rank (e.g. augmentation: ranks must not repeat each other's draws)."""
        return engine.derive_seed(*parts) if self.rank == 0 else engine.derive_seed(*parts, _RANK_STREAM, self.rank)

    # model ---------------------------------------------------------------------------------
    def wrap(self, model: nn.Module, device: torch.device) -> nn.Module:
        """DistributedDataParallel around ``model`` (which stays the one to save and evaluate)."""
        if not self.enabled:
            return model
        device_ids = [device.index] if device.type == "cuda" else None
        return nn.parallel.DistributedDataParallel(model, device_ids=device_ids, find_unused_parameters=False)

    def sync_state(self, model: nn.Module) -> None:
        """Every rank takes rank 0's parameters and buffers. Parameters already agree (DDP), but
        BatchNorm running statistics drift: each rank updates them with its own batches."""
        if self.enabled:
            for tensor in model.state_dict().values():  # views of the module's tensors
                dist.broadcast(tensor, src=0)

    # collectives ---------------------------------------------------------------------------
    def barrier(self) -> None:
        if self.enabled:
            dist.barrier()

    def broadcast_object(self, value: T) -> T:
        """Rank 0's ``value`` on every rank (pickled)."""
        if not self.enabled:
            return value
        box = [value]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def all_gather_object(self, value: Any) -> list[Any]:
        """Every rank's ``value``, in rank order (pickled; values may differ in size)."""
        if not self.enabled:
            return [value]
        out: list[Any] = [None] * self.world_size
        dist.all_gather_object(out, value)
        return out

    def run_on_main(self, fn: Callable[[], T]) -> T:
        """``fn()`` on rank 0 and its result on every rank. An exception on rank 0 is raised there
        and, as :class:`MainRankError`, on the others, so no rank waits for a result that never comes."""
        if not self.enabled:
            return fn()
        result, error, failure = None, None, None
        if self.is_main:
            try:
                result = fn()
            except (Exception, SystemExit) as exc:  # SystemExit: argparse's parser.error
                error, failure = exc, f"{type(exc).__name__}: {exc}"
        result, failure = self.broadcast_object((result, failure))
        if error is not None:
            raise error
        if failure is not None:
            raise MainRankError(f"rank 0 failed ({failure})")
        return cast(T, result)  # rank 0's value, never None once no failure was raised

    def gather_rows(self, indices: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Every rank's (indices, values) rows, concatenated in rank order."""
        if not self.enabled:
            return indices, values
        parts = self.all_gather_object((indices, values))
        return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])

    # shards --------------------------------------------------------------------------------
    def shard_length(self, n: int) -> int:
        """Samples per rank of an epoch of ``n`` samples (see :func:`train_shard`)."""
        return math.ceil(n / self.world_size)

    def train_shard(self, order: Sequence[int]) -> list[int]:
        return train_shard(order, self.rank, self.world_size)

    def eval_shard(self, n: int) -> range:
        return eval_shard(n, self.rank, self.world_size)


def train_shard(order: Sequence[int], rank: int, world_size: int) -> list[int]:
    """Rank ``rank``'s part of an epoch's sample order: every ``world_size``-th position. The order
    is first padded by repeating its start (as torch's DistributedSampler does) so that every rank
    gets ceil(n / world_size) samples: ranks must run the same number of steps, or DDP hangs."""
    order = list(order)
    if order and len(order) % world_size:
        need = world_size - len(order) % world_size
        order += (order * math.ceil(need / len(order)))[:need]
    return order[rank::world_size]


def eval_shard(n: int, rank: int, world_size: int) -> range:
    """Rank ``rank``'s contiguous part of ``n`` evaluation rows: the parts cover every row exactly
    once (no padding, so no row is scored twice) and differ in size by at most one."""
    return range(n * rank // world_size, n * (rank + 1) // world_size)


def share_cpus(processes: int, env: Mapping[str, str] = os.environ) -> None:
    """This process's share of the machine's CPUs among ``processes``: torch's threads (unless
    OMP_NUM_THREADS is set; torchrun sets it to 1 unless the user did) and the native core's
    (unless RAYON_NUM_THREADS is set)."""
    threads = cpu_threads(processes)
    if "OMP_NUM_THREADS" not in env:
        torch.set_num_threads(threads)
    if "RAYON_NUM_THREADS" not in env:
        dsp.set_num_threads(threads)


def cpu_threads(processes: int) -> int:
    """Torch threads for each of ``processes`` processes sharing this machine's CPUs."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return max(1, cores // max(processes, 1))
