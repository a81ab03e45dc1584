"""What the training loop needs to run data-parallel: its rank, the DDP wrapper and sums across ranks.

`fit` stays the one training loop. When a process group is initialised (Ray Train's `TorchTrainer` does it on its
workers: gloo on CPU, NCCL on GPU; `harness.training.workers`), every rank builds the same model from the seed,
walks the same planned batches and trains on its shard of each (`batches.shard`); DDP averages the gradients, so
the global batch stays `train.batch_size` and the result means the same as with one worker. Every rank scores the
whole validation split (same weights, so the same early-stopping decisions); rank 0 alone logs.
"""

from __future__ import annotations

import torch
from torch import distributed as dist
from torch import nn


def rank_and_world() -> tuple[int, int]:
    """`(rank, world size)` of this process's data-parallel group, `(0, 1)` without one."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def data_parallel(model: nn.Module, world: int) -> nn.Module:
    """`model` wrapped in DistributedDataParallel when `world > 1` (its parameters stay `model`'s), else itself."""
    if world == 1:
        return model
    device = next(model.parameters()).device
    return nn.parallel.DistributedDataParallel(model, device_ids=[device] if device.type == "cuda" else None)


def sum_over_ranks(values: list[float], world: int) -> list[float]:
    """Each value summed over all ranks (unchanged with one worker)."""
    if world == 1:
        return values
    total = torch.tensor(values, dtype=torch.float64)
    dist.all_reduce(total)
    return total.tolist()
