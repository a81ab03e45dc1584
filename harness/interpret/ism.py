"""In-silico saturation mutagenesis (ISM): the model's response to every single-base substitution.

For a sequence of length L, ISM scores the 3L single mutants (4 alternatives at an N) against the reference.
All mutants of all sequences form one stream of rows `(sequence, position, alt)` that is cut into device batches
of `batch_size`, so N sequences cost `ceil(N / batch_size) + ceil(3 N L / batch_size)` forward passes instead of
the `N (3L + 1)` of a one-mutant-per-forward loop (`bench/ism.py` measures the difference).

Any logged predictor works: a torch model is called directly on `codes (B, L) long, mask (B, L) bool`; an
sklearn-style predictor through `score(dataset)`, its probabilities turned back into logits.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import torch

from harness.data.datasets import SeqDataset, Seqs
from harness.data.encode import ALPHABET, reverse_complement
from harness.interpret.variant_files import OPTIONAL, read_variant_table
from harness.spec import Predictor
from harness.training.precision import amp_dtype, autocast
from harness.training.predictor import TorchPredictor

LogitFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]  # codes (B, L) long, mask (B, L) bool → (B, C)


@dataclass(frozen=True)
class IsmResult:
    """ISM of one sequence.

    delta_logit, delta_prob: `(L, 4)` float32 over A,C,G,T — mutant minus reference of the chosen output;
        0 at the reference base, NaN outside the window.
    ref_logit, ref_prob: the reference sequence's logit and probability.
    """

    seq_id: str
    codes: np.ndarray  # (L,) uint8
    delta_logit: np.ndarray
    delta_prob: np.ndarray
    ref_logit: float
    ref_prob: float

    def table(self) -> pd.DataFrame:
        """Tidy rows `id, position (1-based), ref, alt, delta_logit, delta_prob` for every mutant in the window."""
        pos, alt = np.nonzero(np.isfinite(self.delta_logit) & (np.arange(4)[None, :] != self.codes[:, None]))
        letters = np.array(list(ALPHABET))
        return pd.DataFrame(
            {
                "id": self.seq_id,
                "position": pos + 1,
                "ref": letters[self.codes[pos]],
                "alt": letters[alt],
                "delta_logit": self.delta_logit[pos, alt],
                "delta_prob": self.delta_prob[pos, alt],
            }
        )

    def importance(self) -> np.ndarray:
        """Per-position importance `(L,)`: minus the mean logit change over the alternatives (NaN outside window).

        Positive where mutating the reference base lowers the output, i.e. where the base supports the prediction.
        """
        alts = np.arange(4)[None, :] != self.codes[:, None]  # (L, 4)
        return -np.where(alts, self.delta_logit, 0.0).sum(1) / alts.sum(1)


def logit_fn(predictor: Predictor, device: str, regression: bool = False) -> LogitFn:
    """A batched `logits(codes, mask) -> (B, C)` for a torch or an sklearn-style predictor; with `regression`, the
    sklearn predictor's predictions as they are (a torch model's raw outputs are the predictions, or log-rates
    under `train.loss=poisson`)."""
    if isinstance(predictor, TorchPredictor):
        model = predictor.model.to(device).eval()
        dtype = amp_dtype(device, predictor.amp)

        def torch_logits(codes: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
            with autocast(device, dtype):
                return model(codes, mask).float()

        return torch_logits

    def sklearn_logits(codes: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        lengths = mask.sum(1).cpu().numpy().astype(np.int32)
        seqs = Seqs(codes.cpu().numpy().astype(np.uint8), lengths)
        ds = SeqDataset((seqs,), np.zeros(len(lengths), np.float32), np.arange(len(lengths)).astype(str))
        scores = np.asarray(predictor.score(ds), dtype=np.float64).reshape(len(lengths), -1)
        if regression:
            return torch.from_numpy(scores).float()
        p = np.clip(scores, 1e-7, 1 - 1e-7)
        return torch.from_numpy(np.log(p / (1 - p))).float()

    return sklearn_logits


def parse_window(text: str | None) -> tuple[int, int] | None:
    """`"START:END"` (1-based, inclusive) → 0-based half-open `(start, end)`; None stays None."""
    if text is None:
        return None
    start, sep, end = text.partition(":")
    try:
        lo, hi = int(start), int(end)
    except ValueError:
        lo = hi = 0
    if not sep or lo < 1 or hi < lo:
        raise ValueError(f"--window {text!r}: expected START:END with 1 <= START <= END (1-based, inclusive)")
    return lo - 1, hi


def mutant_rows(seqs: Seqs, window: tuple[int, int] | None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every single mutant of every sequence: `(sequence index, position, alt code)`, each `(M,)` int64.

    Alternatives are the bases A,C,G,T other than the reference (all four at an N); `window` is 0-based half-open.
    """
    rows, positions, alts = [], [], []
    for i, length in enumerate(seqs.lengths):
        start, end = window or (0, int(length))
        if end > length:
            raise ValueError(f"window end {end} is beyond sequence {i + 1} of length {int(length)}")
        ref = seqs.codes[i, start:end].astype(np.int64)  # (W,)
        pos, alt = np.nonzero(np.arange(4)[None, :] != ref[:, None])  # (W, 4) grid without the reference
        rows.append(np.full(pos.size, i))
        positions.append(pos + start)
        alts.append(alt)
    return tuple(np.concatenate(a).astype(np.int64) for a in (rows, positions, alts))  # type: ignore[return-value]


def batched_logits(fn: LogitFn, codes: torch.Tensor, mask: torch.Tensor, batch_size: int) -> torch.Tensor:
    """`fn` over `codes (N, L)` in chunks of `batch_size` → `(N, C)` on the CPU."""
    with torch.inference_mode():
        return torch.cat(
            [fn(codes[s : s + batch_size], mask[s : s + batch_size]).cpu() for s in range(0, len(codes), batch_size)]
        )


def saturation_mutagenesis(
    fn: LogitFn,
    seqs: Seqs,
    ids: np.ndarray,
    window: tuple[int, int] | None = None,
    batch_size: int = 512,
    output: int = 0,
    device: str = "cpu",
) -> list[IsmResult]:
    """ISM of every sequence in `seqs` (padded `(N, L)` codes) on output column `output` of the model."""
    if batch_size < 1:
        raise ValueError(f"batch size must be >= 1, got {batch_size}")
    width = seqs.codes.shape[1]
    codes = torch.from_numpy(seqs.codes.astype(np.int64)).to(device)  # (N, L)
    mask = torch.arange(width, device=device)[None, :] < torch.from_numpy(seqs.lengths).to(device)[:, None]
    ref = batched_logits(fn, codes, mask, batch_size)  # (N, C)
    if not 0 <= output < ref.shape[1]:
        raise ValueError(f"output {output} is out of range: the model has {ref.shape[1]} output(s)")
    ref = ref[:, output].double().numpy()  # (N,)
    row, pos, alt = mutant_rows(seqs, window)
    mutant_logit = np.empty(row.size)
    with torch.inference_mode():
        for s in range(0, row.size, batch_size):
            r = torch.from_numpy(row[s : s + batch_size]).to(device)
            chunk = codes[r].clone()  # (B, L)
            chunk[torch.arange(len(r), device=device), torch.from_numpy(pos[s : s + batch_size]).to(device)] = (
                torch.from_numpy(alt[s : s + batch_size]).to(device)
            )
            mutant_logit[s : s + len(r)] = fn(chunk, mask[r])[:, output].double().cpu().numpy()
    delta = np.full((len(seqs), width, 4), np.nan)
    start, end = window or (0, width)
    for i, length in enumerate(seqs.lengths):
        delta[i, start : min(end, length)] = 0.0
    delta[row, pos, alt] = mutant_logit - ref[row]
    ref_prob = 1.0 / (1.0 + np.exp(-ref))
    delta_prob = 1.0 / (1.0 + np.exp(-(delta + ref[:, None, None]))) - ref_prob[:, None, None]
    return [
        IsmResult(
            str(ids[i]),
            seqs.codes[i, :n],
            delta[i, :n].astype(np.float32),
            delta_prob[i, :n].astype(np.float32),
            float(ref[i]),
            float(ref_prob[i]),
        )
        for i, n in enumerate(seqs.lengths)
    ]


@dataclass(frozen=True)
class Variants:
    """Single-nucleotide variants on their sequences: ids `(V,)`, sequences, 0-based positions in them `(V,)`,
    the `pos` column as given (sequence or chromosome coordinate), ref and alt bases; the optional `label` (1 causal,
    0 control) and `effect` (measured effect size) columns `(V,)` float64 or None; `skipped`: rows left out because
    their ref did not match (`skip_mismatch`)."""

    ids: np.ndarray
    seqs: list[str]
    positions: np.ndarray
    given_pos: np.ndarray
    ref: list[str]
    alt: list[str]
    labels: np.ndarray | None = None
    effects: np.ndarray | None = None
    skipped: int = 0


def read_variants(path: str, genome: str | None = None, length: int = 0, skip_mismatch: bool = False) -> Variants:
    """The variants of a TSV, or with a `genome` FASTA a genomic TSV or VCF (`variant_files.read_variant_table`:
    pos 1-based within the sequence, or on the chromosome, where the sequence is the `length` bp centred on the
    variant). Raises ValueError naming the file and line of the first bad row: those of `read_variant_table`, a ref
    that does not match the sequence (unless `skip_mismatch`: such rows are dropped and counted), pos outside the
    sequence."""
    if genome and length < 1:
        raise ValueError("--genome needs a window length: the model's fixed input length, or --length N")
    table = read_variant_table(path, genomic=bool(genome))
    fasta = _open_genome(genome) if genome else None
    seqs, positions, keep = [], [], []
    for n, row in enumerate(table.itertuples(index=False)):
        where = f"variants file {path}, line {row.line} (id {row.id})"
        ref, alt = row.ref.upper(), row.alt.upper()
        if ref not in "ACGT" or alt not in "ACGT" or ref == alt:
            raise ValueError(f"{where}: ref {row.ref!r} and alt {row.alt!r} must be two different single bases ACGT")
        try:
            pos = int(row.pos)
        except ValueError:
            raise ValueError(f"{where}: pos {row.pos!r} is not an integer") from None
        if fasta is not None:
            seq, pos = _genome_window(fasta, row.chrom, pos, length, where), length // 2 + 1
        else:
            seq = row.sequence.upper()
        if not 1 <= pos <= len(seq):
            raise ValueError(f"{where}: pos {pos} is outside the sequence of length {len(seq)}")
        if seq[pos - 1] != ref:
            if skip_mismatch:
                continue
            raise ValueError(f"{where}: ref {ref} does not match base {seq[pos - 1]} at position {pos} "
                             "(--skip-mismatch leaves such variants out)")  # fmt: skip
        seqs.append(seq)
        positions.append(pos - 1)
        keep.append(n)
    if not keep:
        raise ValueError(f"variants file {path}: every variant's ref mismatches its sequence; nothing to score")
    kept = table.iloc[keep]
    numbers = {c: kept[c].astype(float).to_numpy() if c in kept.columns else None for c in OPTIONAL}
    return Variants(kept["id"].to_numpy(), seqs, np.asarray(positions), kept["pos"].astype(int).to_numpy(),
                    list(kept.ref.str.upper()), list(kept.alt.str.upper()), numbers["label"], numbers["effect"],
                    len(table) - len(keep))  # fmt: skip


def _open_genome(path: str) -> Any:
    """A `pyfaidx.Fasta` (indexed on first use), or a ValueError naming the file."""
    import pyfaidx

    try:
        return pyfaidx.Fasta(path, as_raw=True, sequence_always_upper=True)
    except (OSError, pyfaidx.FastaIndexingError) as err:
        raise ValueError(f"genome FASTA {path}: cannot open it ({err})") from None


def _genome_window(fasta: Any, chrom: str, pos: int, length: int, where: str) -> str:
    """The `length` bp of `chrom` with 1-based `pos` at 0-based index `length // 2`."""
    if chrom not in fasta:
        raise ValueError(f"{where}: chromosome {chrom!r} is not in the genome FASTA")
    start = pos - 1 - length // 2
    if start < 0 or start + length > len(fasta[chrom]):
        raise ValueError(f"{where}: the {length} bp window around {chrom}:{pos} runs off the chromosome")
    return str(fasta[chrom][start : start + length])


def variant_effects(
    fn: LogitFn,
    variants: Variants,
    batch_size: int = 512,
    output: int | None = 0,
    device: str = "cpu",
    both_strands: bool = False,
    probabilities: bool = True,
) -> pd.DataFrame:
    """Per variant: `logit_ref, logit_alt, delta` (alt − ref) of output `output` (None: the mean over outputs, with
    `abs_delta` the mean |Δ| over outputs) and, with `probabilities`, the same for probabilities (`prob_*`).
    `both_strands`: each logit is the mean over the sequence and its reverse complement."""
    ref = Seqs.from_strings(variants.seqs)
    alt_codes = ref.codes.copy()
    alt_codes[np.arange(len(ref)), variants.positions] = ["ACGT".index(a) for a in variants.alt]
    mask = torch.from_numpy(np.arange(ref.codes.shape[1])[None, :] < ref.lengths[:, None]).to(device)

    def logits(codes: np.ndarray) -> torch.Tensor:
        strands = [codes, reverse_complement(codes, ref.lengths)] if both_strands else [codes]
        per_strand = [batched_logits(fn, torch.from_numpy(c.astype(np.int64)).to(device), mask, batch_size)
                      for c in strands]  # fmt: skip
        return torch.stack(per_strand).double().mean(0)  # (V, C)

    lr_all, la_all = logits(ref.codes), logits(alt_codes)
    n_out = lr_all.shape[1]
    if output is not None and not 0 <= output < n_out:
        raise ValueError(f"output {output} is out of range: the model has {n_out} output(s)")
    cols = slice(None) if output is None else slice(output, output + 1)
    lr, la = lr_all[:, cols].numpy(), la_all[:, cols].numpy()  # (V, C') each
    table = {"id": variants.ids, "pos": variants.given_pos, "ref": variants.ref, "alt": variants.alt,
             "logit_ref": lr.mean(1), "logit_alt": la.mean(1), "delta": (la - lr).mean(1),
             "abs_delta": np.abs(la - lr).mean(1)}  # fmt: skip
    if probabilities:
        pr, pa = (1 / (1 + np.exp(-x)) for x in (lr, la))
        table.update(prob_ref=pr.mean(1), prob_alt=pa.mean(1), delta_prob=(pa - pr).mean(1))
    return pd.DataFrame(table)
