"""What the training loop needs to run data-parallel: its rank, the DDP wrapper and sums across ranks.

`fit` stays the one training loop. When a process group is initialised (Ray Train's `TorchTrainer` does it on its
workers: gloo on CPU, NCCL on GPU; `harness.training.workers`), every rank builds the same model from the seed,
walks the same planned batches and trains on its shard of each (`batches.shard`); DDP averages the gradients, so
the global batch stays `train.batch_size` and the result means the same as with one worker. Every rank scores the
whole validation split (same weights, so the same early-stopping decisions); rank 0 alone logs, with each epoch's
resources of all ranks (`over_ranks`: `<name>_max_rank` and `<name>_all_ranks`, e.g. `peak_rss_mb_all_ranks`).
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
    return nn.parallel.DistributedDataParallel(
        model, device_ids=[device] if device.type == "cuda" else None, gradient_as_bucket_view=True
    )


def _reduced(values: list[float], op: dist.ReduceOp.RedOpType) -> list[float]:
    """`values` reduced with `op` over all ranks (on the GPU under NCCL, which reduces CUDA tensors only)."""
    device = f"cuda:{torch.cuda.current_device()}" if dist.get_backend() == "nccl" else "cpu"
    tensor = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(tensor, op=op)
    return tensor.tolist()


def sum_over_ranks(values: list[float], world: int) -> list[float]:
    """Each value summed over all ranks (unchanged with one worker)."""
    return values if world == 1 else _reduced(values, dist.ReduceOp.SUM)


def over_ranks(values: dict[str, float]) -> dict[str, float]:
    """Each of this rank's `values` as its maximum over all ranks (`<name>_max_rank`) and their sum
    (`<name>_all_ranks`); every rank must call it with the same names."""
    names = sorted(values)
    local = [values[name] for name in names]
    top, total = _reduced(local, dist.ReduceOp.MAX), _reduced(local, dist.ReduceOp.SUM)
    maxima = {f"{name}_max_rank": value for name, value in zip(names, top, strict=True)}
    return maxima | {f"{name}_all_ranks": value for name, value in zip(names, total, strict=True)}
