"""Which training rows an epoch visits (`train.sampler`) and random masking of training batches
(`train.mask_prob`). Both apply to the training split only: `harness.training.batches` plans and builds the
training epoch's batches with them; validation and test data are scored without either.

- `sampler=uniform`: every row once, shuffled (the default).
- `sampler=balanced`: oversampling. Binary targets: every majority-class row once plus the minority class drawn to
  the same count (each minority row once, the rest drawn with replacement), so an epoch holds both classes equally.
  Multi-label targets: as many draws as rows, with replacement, each row weighted by 1 / (count of its rarest
  positive label), rows with no positive label by 1 / their count, so every label's positives (and the all-negative
  rows) are drawn about equally often.
- `mask_prob = p`: each real base of a training batch becomes N with probability p (random masking as augmentation;
  padding stays padding). Feature-table inputs are left alone.
"""

from __future__ import annotations

import numpy as np

from harness.data.encode import N_CODE
from harness.spec import Batch


def epoch_order(labels: np.ndarray, sampler: str, rng: np.random.Generator) -> np.ndarray:
    """Row indices `(E,)` of one training epoch, in the order visited; `labels (N,)` or `(N, C)` of 0/1."""
    n = len(labels)
    if sampler == "uniform" or n == 0:
        return rng.permutation(n)
    y = np.asarray(labels).reshape(n, -1) > 0.5  # (N, C)
    if y.shape[1] == 1:
        pos, neg = np.flatnonzero(y[:, 0]), np.flatnonzero(~y[:, 0])
        small, large = (pos, neg) if len(pos) < len(neg) else (neg, pos)
        if len(small) == 0:
            return rng.permutation(n)  # one class only: nothing to balance
        extra = rng.choice(small, size=len(large) - len(small), replace=True)
        return rng.permutation(np.concatenate([large, small, extra]))
    counts = y.sum(0)  # (C,)
    none = ~y.any(1)  # (N,) rows positive for no label
    inverse = np.where(y, 1.0 / np.maximum(counts, 1), 0.0).max(1)  # (N,): 1 / count of the row's rarest label
    weight = np.where(none, 1.0 / max(int(none.sum()), 1), inverse)
    return rng.choice(n, size=n, replace=True, p=weight / weight.sum())


def epoch_size(labels: np.ndarray, sampler: str) -> int:
    """`len(epoch_order(labels, sampler, rng))`, without drawing."""
    n = len(labels)
    y = np.asarray(labels).reshape(n, -1)
    if sampler == "balanced" and y.shape[1] == 1 and n:
        pos = int((y[:, 0] > 0.5).sum())
        return 2 * max(pos, n - pos) if 0 < pos < n else n
    return n


def mask_bases(batch: Batch, prob: float, rng: np.random.Generator) -> Batch:
    """`batch` with each real base of every sequence branch (`codes (B, L)` uint8 beside `mask (B, L)` bool) set to
    N with probability `prob`; a copy, the dataset's arrays are not touched."""
    if prob == 0:
        return batch
    inputs = list(batch.inputs)
    for i in range(0, len(inputs) - 1, 2):
        codes, mask = inputs[i], inputs[i + 1]
        if codes.dtype != np.uint8 or mask.dtype != np.bool_:
            continue  # not a sequence branch (a feature table)
        inputs[i] = np.where(mask & (rng.random(codes.shape) < prob), np.uint8(N_CODE), codes)
    return Batch(tuple(inputs), batch.y)
