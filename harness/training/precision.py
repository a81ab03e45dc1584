"""Mixed precision (`train.amp`) and `torch.compile` (`train.compile`) for training, scoring and ISM.

`train.amp` takes three values:
- `auto` (default): bf16 autocast on CUDA (fp16 where the GPU has no bf16), fp32 on the CPU.
- `true`: autocast on CUDA as above, and bf16 autocast on a CPU with bf16 matrix units (AVX512-BF16 or AMX,
  `cpu_bf16_supported`); a CPU without them stays fp32.
- `false`: fp32 everywhere.
`auto` is fp32 on the CPU. A model whose bf16 validation metric was shown within noise of fp32's by the paired
comparison on the same split and seed (`bench/amp_paired.py`, numbers in docs/speed.md) declares `"amp": "true"` in
its `train_defaults`: kmer_attention does (within 0.003 AUROC); basset does not (not shown within 0.01). The dtype a
run used is logged as its `amp_dtype` tag.
"""

from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext
from typing import Any

import torch

from harness.config import TRAIN_SETTINGS

AMP_CHOICES: tuple[str, ...] = TRAIN_SETTINGS.entries["amp"].choices


def cpu_bf16_supported() -> bool:
    """Whether this CPU has bf16 matrix instructions (AVX512-BF16 or AMX tiles) that make bf16 autocast pay."""
    return bool(torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported())


def amp_dtype(device: torch.device | str, amp: str) -> torch.dtype | None:
    """The autocast dtype for `train.amp=amp` on `device`, or None for fp32."""
    device = torch.device(device)
    if amp not in AMP_CHOICES:
        raise ValueError(f"train.amp={amp!r} must be one of {', '.join(AMP_CHOICES)}")
    if amp == "false":
        return None
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if device.type == "cpu" and amp == "true" and cpu_bf16_supported():
        return torch.bfloat16
    return None


def dtype_name(dtype: torch.dtype | None) -> str:
    """`bfloat16`, `float16` or `float32` (None): the value of a run's `amp_dtype` tag."""
    return str(dtype or torch.float32).removeprefix("torch.")


def amp_tag(device: torch.device | str, amp: str) -> dict[str, str]:
    """The run tag `{"amp_dtype": ...}` recording the precision a torch model trains and scores in."""
    return {"amp_dtype": dtype_name(amp_dtype(device, amp))}


def autocast(device: torch.device | str, dtype: torch.dtype | None) -> AbstractContextManager[Any]:
    """`torch.autocast` on `device` in `dtype`, or nothing when `dtype` is None."""
    if dtype is None:
        return nullcontext()
    return torch.autocast(torch.device(device).type, dtype=dtype)


def compiled(model: torch.nn.Module, enabled: bool) -> torch.nn.Module:
    """`torch.compile(model)` when `enabled` (shares parameters with `model`; Inductor, dynamic batch sizes),
    else `model`. Only the training step runs compiled: the saved and logged model stays the plain module."""
    return torch.compile(model, dynamic=None) if enabled else model
