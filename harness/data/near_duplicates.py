"""Near-duplicate sequences across splits: MinHash over canonical k-mers (datasketch), verified by exact Jaccard.

A sequence is a set of canonical `K`-mers (a k-mer and its reverse complement are one k-mer, so a sequence and its
reverse complement have the same set; k-mers holding N are left out). Two sequences are near-duplicates when the
Jaccard similarity of their sets is at least `THRESHOLD`. Candidates come from a `datasketch.MinHashLSH` index
(`NUM_PERM` permutations, banded for `LSH_THRESHOLD`, below `THRESHOLD` so the index misses few true pairs); each
candidate is then checked with the exact Jaccard of the two sets, so the index never adds false positives.

Why k = 8 and 0.5: a 200-bp sequence has ~193 8-mers out of 4⁸ / 2 ≈ 32,900 canonical ones, so two unrelated
sequences share about one (Jaccard ≈ 0.003; ≈ 0.05 for two random 3-kb windows), far below 0.5, while one
substitution removes at most 8 k-mers. With s the fraction of k-mers kept, Jaccard = s / (2 − s) ≥ 0.5 needs s ≥ 2/3:
a copy with ≤ ~5 % of its bases substituted ((1 − p)⁸ ≥ 2/3, about 95 % identity), or two windows that overlap by
≥ 2/3 of their length. `coordinate_near_duplicates` applies the same 2/3-overlap rule to genomic windows from their
coordinates alone (an EPI pair table without its genome); it misses near-duplicates at other loci (repeats).

Pair tasks (two branches): a row is a near-duplicate of a row of the other split when every branch is (the
enhancer of one is a near-duplicate of the other's enhancer, and the promoter of the promoter); the audit also
reports each branch alone. `near_duplicate_tag` (the run tag `near_duplicate_test_fraction`) is cached per dataset
digest under `$REGBENCH_CACHE/near_duplicates/`.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from harness.data.datasets import FeatureDataset, Seqs, sequence_branches
from harness.paths import cache_dir
from harness.spec import Dataset, Task

K = 8
THRESHOLD = 0.5
NUM_PERM = 128
LSH_THRESHOLD = 0.4
MAX_ROWS = 300_000  # the run tag is skipped above this many sequences (the sketches of larger sets take minutes)
PAIRS = (("train", "test"), ("train", "val"), ("val", "test"))
CACHE_VERSION = 1


def kmer_sets(seqs: Seqs, k: int = K, chunk: int = 2048) -> list[np.ndarray]:
    """Per sequence, its sorted distinct canonical k-mer codes (2 bits per base, uint32; k <= 16)."""
    out: list[np.ndarray] = []
    for lo in range(0, len(seqs), chunk):
        codes, lengths = seqs.codes[lo : lo + chunk].astype(np.uint32), seqs.lengths[lo : lo + chunk]
        n = codes.shape[1] - k + 1
        if n < 1:
            out.extend(np.zeros(0, np.uint32) for _ in lengths)
            continue
        fwd = np.zeros((len(codes), n), np.uint32)
        rc = np.zeros((len(codes), n), np.uint32)
        for j in range(k):  # base j of each window: the forward code's next 2 bits, the complement's j-th from the end
            col = codes[:, j : j + n]
            fwd = (fwd << np.uint32(2)) | (col & np.uint32(3))
            rc |= ((np.uint32(3) - col) & np.uint32(3)) << np.uint32(2 * j)
        n_count = np.concatenate([np.zeros((len(codes), 1), np.int64), np.cumsum(codes >= 4, axis=1)], axis=1)
        valid = (n_count[:, k : k + n] == n_count[:, :n]) & (np.arange(n)[None, :] <= lengths[:, None] - k)
        canonical = np.minimum(fwd, rc)
        out.extend(np.unique(canonical[row][valid[row]]) for row in range(len(lengths)))
    return out


@dataclass(frozen=True)
class Sketches:
    """One branch of a split: k-mer sets and their MinHashes (None for a sequence with no k-mer)."""

    kmers: list[np.ndarray]
    minhashes: list

    def __len__(self) -> int:
        return len(self.kmers)


def sketch(seqs: Seqs) -> Sketches:
    """The k-mer sets of `seqs` and a MinHash of each."""
    from datasketch import MinHash

    kmers = kmer_sets(seqs)
    base = MinHash(num_perm=NUM_PERM, hashfunc=int)  # k-mer codes are integers already (datasketch pre-mixes them)
    minhashes = []
    for kmer in kmers:
        if not len(kmer):
            minhashes.append(None)
            continue
        m = base.copy()
        m.update_batch(kmer)
        minhashes.append(m)
    return Sketches(kmers, minhashes)


def jaccard(a: np.ndarray, b: np.ndarray) -> float:
    """Exact Jaccard similarity of two sorted distinct code arrays."""
    inter = len(np.intersect1d(a, b, assume_unique=True))
    return inter / (len(a) + len(b) - inter) if len(a) + len(b) else 0.0


def matches(index: Sketches, query: Sketches) -> list[set[int]]:
    """Per query sequence, the rows of `index` that are its near-duplicates (exact Jaccard >= THRESHOLD)."""
    from datasketch import MinHashLSH

    lsh = MinHashLSH(threshold=LSH_THRESHOLD, num_perm=NUM_PERM)
    with lsh.insertion_session() as session:
        for row, m in enumerate(index.minhashes):
            if m is not None:
                session.insert(row, m, check_duplication=False)
    out: list[set[int]] = []
    for kmer, m in zip(query.kmers, query.minhashes, strict=True):
        found = set() if m is None else {r for r in lsh.query(m) if jaccard(kmer, index.kmers[r]) >= THRESHOLD}
        out.append(found)
    return out


def row_matches(index: Sequence[Sketches], query: Sequence[Sketches]) -> tuple[list[list[set[int]]], np.ndarray]:
    """Per branch, the near-duplicate rows of each query row; and `(N_query,)` bool: a row of `index` matches the
    query row in every branch."""
    per_branch = [matches(i, q) for i, q in zip(index, query, strict=True)]
    both = np.array([bool(set.intersection(*sets)) for sets in zip(*per_branch, strict=True)], dtype=bool)
    return per_branch, both.reshape(-1)


def keep_one_per_cluster(branches: Sequence[Seqs]) -> np.ndarray:
    """Rows to keep (sorted): the first row of each cluster of near-duplicates (single linkage over the rows that
    are near-duplicates in every branch)."""
    sketches = [sketch(b) for b in branches]
    parent = np.arange(len(branches[0]))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = int(parent[i])
        return i

    per_branch, _ = row_matches(sketches, sketches)
    for row, sets in enumerate(zip(*per_branch, strict=True)):
        for other in set.intersection(*sets) - {row}:
            a, b = root(row), root(other)
            parent[max(a, b)] = min(a, b)
    return np.flatnonzero([root(i) == i for i in range(len(parent))])


@dataclass(frozen=True)
class PairCount:
    """Of the `n` rows of split `second`, `near` have a near-duplicate in split `first` (`what`: sequence, pair,
    enhancer or promoter)."""

    first: str
    second: str
    what: str
    n: int
    near: int

    @property
    def fraction(self) -> float:
        return self.near / self.n if self.n else float("nan")

    def line(self) -> str:
        return f"  {self.first} → {self.second} ({self.what}): {self.near} of {self.n} ({self.fraction:.2%})"


def split_pair_counts(
    splits: Mapping[str, Dataset], pairs: Sequence[tuple[str, str]] = PAIRS, branch_names: Sequence[str] = ()
) -> list[PairCount]:
    """Near-duplicate counts per split pair: rows of the second split with a near-duplicate in the first (all
    branches together, then each branch of a pair task when `branch_names` names them)."""
    sketches = {name: [sketch(b) for b in sequence_branches(splits[name])] for name in {n for p in pairs for n in p}}
    out = []
    for first, second in pairs:
        per_branch, rows = row_matches(sketches[first], sketches[second])
        out.append(PairCount(first, second, "pair" if len(per_branch) > 1 else "sequence", len(rows), int(rows.sum())))
        if len(per_branch) > 1 and branch_names:
            for name, sets in zip(branch_names, per_branch, strict=True):
                out.append(PairCount(first, second, name, len(sets), sum(bool(s) for s in sets)))
    return out


def coordinate_near_duplicates(
    chrom_a: np.ndarray,
    mids_a: np.ndarray,
    chrom_b: np.ndarray,
    mids_b: np.ndarray,
    widths: Sequence[int],
    chunk: int = 256,
) -> np.ndarray:
    """`(N_b,)` bool: row b has a row a on the same chromosome (`chrom_*` (N,) str) whose windows (`widths[j]` bp
    centred on `mids_*[:, j]`, `(N, B)` int) each overlap row b's by at least 2/3 of their width (the k-mer rule's
    Jaccard >= 0.5 for two windows of one locus)."""
    reach = np.array([w - int(np.ceil(2 * w / 3)) for w in widths])  # |mid_a - mid_b| <= reach ⇔ overlap >= 2/3
    out = np.zeros(len(chrom_b), dtype=bool)
    for chrom in np.intersect1d(chrom_a, chrom_b):
        a = mids_a[chrom_a == chrom]
        rows = np.flatnonzero(chrom_b == chrom)
        for lo in range(0, len(rows), chunk):
            b = mids_b[rows[lo : lo + chunk]]
            close = (np.abs(b[:, None, :] - a[None, :, :]) <= reach).all(axis=2)  # (chunk, N_a)
            out[rows[lo : lo + chunk]] = close.any(axis=1)
    return out


def _skip_reason(splits: Mapping[str, Dataset]) -> str:
    if any(isinstance(ds, FeatureDataset) for ds in splits.values()):
        return "the splits hold precomputed features"
    rows = len(splits["train"]) + len(splits["test"])
    return f"{rows} train+test rows > {MAX_ROWS}" if rows > MAX_ROWS else ""


def _cached(digest: str, compute: Callable[[], dict]) -> dict:
    """The cached result for `digest` (computed and written on a miss)."""
    path = cache_dir() / "near_duplicates" / f"{digest}_k{K}_t{THRESHOLD:g}_v{CACHE_VERSION}.json"
    if path.exists():
        return json.loads(path.read_text())
    start = time.perf_counter()
    result = {**compute(), "seconds": time.perf_counter() - start}
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".tmp{os.getpid()}")
    tmp.write_text(json.dumps(result))
    os.replace(tmp, path)
    return result


def near_duplicate_counts(task: Task, digest: str | None = None) -> dict:
    """`{"near": rows of test with a near-duplicate in train, "n": test rows}` (or `{"skipped": reason}`), pooled
    over the folds of a cross-validated task; cached by `digest` (default: the task's)."""
    from harness.data.splits import CvTask

    def compute() -> dict:
        if isinstance(task, CvTask):
            parts = [near_duplicate_counts(fold) for fold in task.fold_tasks()]
            skipped = [p["skipped"] for p in parts if "skipped" in p]
            if skipped:
                return {"skipped": skipped[0]}
            return {"near": sum(p["near"] for p in parts), "n": sum(p["n"] for p in parts)}
        splits = task.splits()
        reason = _skip_reason(splits)
        if reason:
            return {"skipped": reason}
        count = split_pair_counts(splits, pairs=[("train", "test")])[0]
        return {"near": count.near, "n": count.n}

    return _cached(digest or task.digest(), compute)


def near_duplicate_tag(task: Task, digest: str | None = None) -> str:
    """The run tag `near_duplicate_test_fraction`: e.g. `0.0123`, or `n/a (reason)`."""
    counts = near_duplicate_counts(task, digest)
    if "skipped" in counts:
        return f"n/a ({counts['skipped']})"
    return f"{counts['near'] / counts['n']:.4f}" if counts["n"] else "n/a (empty test split)"
