"""In-memory sequence datasets: padded uint8 codes, lengths, labels and ids."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from harness.data.encode import encode_many, mask_from_lengths, reverse_complement
from harness.spec import Batch, Dataset


@dataclass(frozen=True)
class Seqs:
    """Padded sequences of one branch: `codes (N, L) uint8`, `lengths (N,) int32`."""

    codes: np.ndarray
    lengths: np.ndarray

    @classmethod
    def from_strings(cls, seqs: Sequence[str], pad_to: int | None = None) -> Seqs:
        codes, lengths = encode_many(list(seqs), pad_to=pad_to)
        return cls(codes, lengths)

    def __len__(self) -> int:
        return len(self.lengths)

    def subset(self, idx: np.ndarray) -> Seqs:
        return Seqs(self.codes[idx], self.lengths[idx])

    def take(self, idx: np.ndarray, reverse_complement_: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """Rows `idx` → `(codes (B, W), mask (B, W))`, W = longest row in the batch."""
        lengths = self.lengths[idx]
        width = int(lengths.max(initial=1)) if self.codes.shape[1] else 0
        codes = self.codes[idx, :width]
        if reverse_complement_:
            codes = reverse_complement(codes, lengths)
        return np.ascontiguousarray(codes), mask_from_lengths(lengths, width)

    def canonical_digests(self) -> list[bytes]:
        """Per sequence, a digest that is the same for a sequence and its reverse complement."""
        rc = reverse_complement(self.codes, self.lengths)
        out = []
        for fwd, rev, n in zip(self.codes, rc, self.lengths, strict=True):
            a, b = fwd[:n].tobytes(), rev[:n].tobytes()
            out.append(hashlib.blake2b(min(a, b), digest_size=16).digest())
        return out


@dataclass(frozen=True)
class SeqDataset:
    """A split: one `Seqs` per branch, labels `(N,)` or `(N, C)` float32, ids `(N,)` str."""

    seqs: tuple[Seqs, ...]
    labels: np.ndarray
    ids: np.ndarray

    def __post_init__(self) -> None:
        sizes = {len(s) for s in self.seqs} | {len(self.labels), len(self.ids)}
        if len(sizes) != 1:
            raise ValueError(f"dataset parts have mismatched lengths: {sorted(sizes)}")

    def __len__(self) -> int:
        return len(self.labels)

    def take(self, idx: np.ndarray, reverse_complement: bool = False) -> Batch:
        inputs: list[np.ndarray] = []
        for branch in self.seqs:
            inputs.extend(branch.take(idx, reverse_complement))
        return Batch(tuple(inputs), self.labels[idx])

    def subset(self, idx: np.ndarray) -> SeqDataset:
        return SeqDataset(tuple(s.subset(idx) for s in self.seqs), self.labels[idx], self.ids[idx])

    def digest(self) -> str:
        h = hashlib.sha256()
        for branch in self.seqs:  # hashed through the buffer, no copy (memory-mapped splits stay shared)
            h.update(np.ascontiguousarray(branch.codes).data)
            h.update(np.ascontiguousarray(branch.lengths).data)
        h.update(np.ascontiguousarray(self.labels).data)
        return h.hexdigest()[:16]


def sequence_branches(dataset: Dataset, chunk: int = 4096) -> tuple[Seqs, ...]:
    """The dataset's sequences as one `Seqs` per branch: a SeqDataset's own, else read through `take` in chunks
    (streamed or memory-mapped datasets); a feature dataset raises TypeError."""
    if isinstance(dataset, SeqDataset):
        return dataset.seqs
    if isinstance(dataset, FeatureDataset):
        raise TypeError("a feature dataset holds no sequences")
    chunks = []
    for start in range(0, len(dataset), chunk):
        batch = dataset.take(np.arange(start, min(start + chunk, len(dataset))))
        pairs = zip(batch.inputs[::2], batch.inputs[1::2], strict=True)  # (codes, mask) per branch
        branches = tuple(Seqs(codes, mask.sum(1).astype(np.int32)) for codes, mask in pairs)
        chunks.append(SeqDataset(branches, batch.y, np.arange(start, start + len(batch.y)).astype(str)))
    if not chunks:
        return (Seqs(np.zeros((0, 0), np.uint8), np.zeros(0, np.int32)),)
    return concat(chunks).seqs


def concat(datasets: Sequence[SeqDataset]) -> SeqDataset:
    """Row-wise concatenation (branches padded to a common width)."""
    branches = []
    for b in range(len(datasets[0].seqs)):
        parts = [d.seqs[b] for d in datasets]
        width = max(p.codes.shape[1] for p in parts)
        codes = np.concatenate(
            [np.pad(p.codes, ((0, 0), (0, width - p.codes.shape[1])), constant_values=4) for p in parts]
        )
        branches.append(Seqs(codes, np.concatenate([p.lengths for p in parts])))
    return SeqDataset(
        tuple(branches),
        np.concatenate([d.labels for d in datasets]),
        np.concatenate([d.ids for d in datasets]),
    )


@dataclass(frozen=True)
class FeatureDataset:
    """A split of precomputed features: `features (N, D) float32`, labels `(N,)`/`(N, C)`, ids `(N,)`.

    Used for frozen embeddings and feature-table baselines; `take` yields `Batch((features,), y)`.
    """

    features: np.ndarray
    labels: np.ndarray
    ids: np.ndarray

    def __post_init__(self) -> None:
        if not len(self.features) == len(self.labels) == len(self.ids):
            raise ValueError(
                f"feature dataset parts have mismatched lengths: features {len(self.features)}, "
                f"labels {len(self.labels)}, ids {len(self.ids)}"
            )

    def __len__(self) -> int:
        return len(self.labels)

    def take(self, idx: np.ndarray, reverse_complement: bool = False) -> Batch:
        if reverse_complement:
            raise ValueError("reverse-complement augmentation does not apply to precomputed features")
        return Batch((self.features[idx],), self.labels[idx])

    def subset(self, idx: np.ndarray) -> FeatureDataset:
        return FeatureDataset(self.features[idx], self.labels[idx], self.ids[idx])

    def digest(self) -> str:
        h = hashlib.sha256(np.ascontiguousarray(self.features).tobytes())
        h.update(np.ascontiguousarray(self.labels).tobytes())
        return h.hexdigest()[:16]
