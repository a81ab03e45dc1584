"""Frozen DNA language-model embeddings: load a local Hugging Face checkpoint, embed, pool, cache.

Written for DNABERT-2 (Zhou et al. 2023, "DNABERT-2: Efficient foundation model and benchmark for multi-species
genome", arXiv:2306.15006) and any BERT-like DNA model in Hugging Face format (e.g. Nucleotide Transformer v2),
following BEND (Marin et al. 2024): compute the embeddings once, then train only a head on them.

- Loading: `models.lm._checkpoint.load_backbone` (offline, the folder's own code, the transformers 5 shims of
  `models.lm._compat`, DNABERT-2's attention always in PyTorch); the encoder is the checkpoint's base model.
- Tokens: each sequence is tokenized once without truncation; the tokenizer's special tokens (`[CLS]`/`[SEP]`,
  found with its `special_tokens_mask`, recomputed from the ids when that mask does not match them, as NT-v2's
  does not) are kept around every window; padding uses the tokenizer's pad id. A sequence longer than
  `max_length` tokens is cut into windows of at most `max_length` tokens (specials included), each run separately.
- Pooling: `mean` averages the last hidden states over real tokens (padding and special tokens masked out);
  `cls` takes the first token. A sequence's embedding is the mean of its windows' vectors weighted by each
  window's number of real tokens (for `mean` this equals the mean over all of the sequence's tokens).
- Precision: `model.embed_amp` as `train.amp` (`harness.training.precision`): by default fp32 on CPU, bf16
  autocast on CUDA; `true` adds bf16 autocast on a CPU with bf16 units (cached apart: its key ends in `-bf16`).
  Windows are batched by length to limit padding.
- Cache: one `.npy` per (task, split, branch content, checkpoint digest, pooling, max_length) under
  `cache_dir()/embeddings/`, so a study's trials train only the head; the encoder is loaded only on a cache miss.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from harness.config import ConfigError
from harness.data.datasets import FeatureDataset, Seqs, sequence_branches
from harness.data.encode import decode
from harness.paths import DataNotFoundError, cache_dir
from harness.spec import Dataset, Splits
from harness.training.precision import amp_dtype, autocast
from harness.training.resources import ResourceMonitor
from models.lm._checkpoint import check_folder, load_backbone

ENV_VAR = "REGBENCH_DNABERT2"
POOLINGS = ("mean", "cls")
DOWNLOAD_HINT = (
    "On a machine with network: `huggingface-cli download zhihan1996/DNABERT-2-117M --local-dir "
    "~/models/DNABERT-2-117M` (or any BERT-like DNA model, e.g. InstaDeepAI/nucleotide-transformer-v2-50m-multi-species"
    f"), check it with `regbench lm check ~/models/DNABERT-2-117M`, then pass "
    f"`--set model.checkpoint=~/models/DNABERT-2-117M` or `export {ENV_VAR}=~/models/DNABERT-2-117M`."
)
_WHOLE_FILE_BYTES = 4 * 2**20  # files up to this size are hashed whole; larger ones by size + head + tail
_EDGE_BYTES = 2**20


def check_pooling(pooling: str) -> str:
    if pooling not in POOLINGS:
        raise ConfigError(f"model.pooling={pooling!r} is not one of {', '.join(POOLINGS)}")
    return pooling


def resolve_checkpoint(path: str) -> Path:
    """`path`, or `$REGBENCH_DNABERT2` when empty, as a model folder with config, code, tokenizer and weights."""
    value = path or os.environ.get(ENV_VAR, "")
    if not value:
        raise DataNotFoundError(f"no language-model checkpoint given (model.checkpoint and ${ENV_VAR} unset). "
                                f"{DOWNLOAD_HINT}")  # fmt: skip
    folder = Path(value).expanduser().resolve()
    try:
        check_folder(folder, need_weights=True)
    except DataNotFoundError as err:
        raise DataNotFoundError(f"{err}. {DOWNLOAD_HINT}") from None
    return folder


def checkpoint_digest(folder: Path) -> str:
    """Content digest of a checkpoint folder: small files whole, large ones (weights) by size, head and tail."""
    h = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file() and ".cache" not in p.parts):
        size = path.stat().st_size
        h.update(f"{path.relative_to(folder)}:{size}\n".encode())
        with path.open("rb") as handle:
            if size <= _WHOLE_FILE_BYTES:
                h.update(handle.read())
            else:
                h.update(handle.read(_EDGE_BYTES))
                handle.seek(size - _EDGE_BYTES)
                h.update(handle.read())
    return h.hexdigest()[:16]


@dataclass(frozen=True)
class EmbedSettings:
    """What determines an embedding: the checkpoint (path and digest), pooling and window size, plus how to run."""

    checkpoint: str
    digest: str
    pooling: str = "mean"
    max_length: int = 512  # tokens per window, special tokens included (capped by the model's own limit)
    batch_size: int = 32
    device: str = "auto"
    amp: str = "auto"  # `model.embed_amp`, as `train.amp`

    @classmethod
    def create(
        cls, checkpoint: str, pooling: str, max_length: int, batch_size: int, device: str, amp: str = "auto"
    ) -> EmbedSettings:
        check_pooling(pooling)
        if max_length < 3 or batch_size < 1:
            raise ConfigError(
                f"model.max_length={max_length} must be >= 3 and model.embed_batch_size={batch_size} >= 1"
            )
        folder = resolve_checkpoint(checkpoint)
        return cls(str(folder), checkpoint_digest(folder), pooling, max_length, batch_size, device, amp)

    @property
    def dtype(self) -> torch.dtype | None:
        """The autocast dtype of the encoder's forward, None for fp32."""
        return amp_dtype(_device(self.device), self.amp)

    def cache_key(self) -> str:
        cpu_bf16 = _device(self.device).type == "cpu" and self.dtype == torch.bfloat16
        return f"{self.digest}-{self.pooling}-{self.max_length}" + ("-bf16" if cpu_bf16 else "")


def hidden_size(spec: EmbedSettings) -> int:
    """Width D of the checkpoint's embeddings, read from its config (no weights loaded)."""
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(spec.checkpoint, local_files_only=True, trust_remote_code=True)
    return int(config.hidden_size)


def _device(name: str) -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu") if name == "auto" else torch.device(name)


@dataclass(frozen=True)
class Windows:
    """Token windows of a list of sequences: `ids`/`special` per window, `owner (W,)` the sequence of each."""

    ids: list[list[int]]
    special: list[list[int]]
    owner: np.ndarray


def special_tokens_mask(tokenizer: Any, ids: list[int], given: list[int]) -> list[int]:
    """1 for the tokenizer's special tokens in `ids`. The tokenizer's own mask `given` when it matches `ids`;
    otherwise (NT-v2's EsmTokenizer counts an EOS it never adds, so its mask is one entry longer) the mask is
    recomputed from the ids with `get_special_tokens_mask(already_has_special_tokens=True)`."""
    if len(given) == len(ids):
        return list(given)
    mask = tokenizer.get_special_tokens_mask(ids, already_has_special_tokens=True)
    if len(mask) != len(ids):
        raise ValueError(f"{type(tokenizer).__name__}: special-tokens mask of {len(mask)} entries for {len(ids)} ids")
    return list(mask)


class TokenWindows:
    """Tokenizer-side work shared by the frozen embedder and the fine-tuned encoder: windows, padding, pooling."""

    def __init__(self, tokenizer: Any, max_tokens: int, pooling: str) -> None:
        self.tokenizer, self.max_tokens, self.pooling = tokenizer, max_tokens, check_pooling(pooling)
        self.pad_id = int(tokenizer.pad_token_id)

    def windows(self, seqs: Sequence[str]) -> Windows:
        """Tokenize and cut each sequence into windows of <= `max_tokens` tokens, its special tokens around each."""
        enc = self.tokenizer(list(seqs), return_special_tokens_mask=True, truncation=False, verbose=False)
        ids_out: list[list[int]] = []
        special_out: list[list[int]] = []
        owner: list[int] = []
        for i, (ids, given) in enumerate(zip(enc["input_ids"], enc["special_tokens_mask"], strict=True)):
            special = special_tokens_mask(self.tokenizer, ids, given)
            head = next((j for j, s in enumerate(special) if not s), len(ids))  # leading special tokens
            tail = len(ids) - next((j for j, s in enumerate(reversed(special)) if not s), 0)  # start of trailing ones
            if self.pooling == "cls" and head == 0:
                raise ConfigError("model.pooling=cls needs a tokenizer that adds a leading [CLS]; use pooling=mean")
            if head >= tail:
                raise ValueError(f"sequence {i} ({seqs[i][:20]!r}) has no tokens besides special ones")
            width = self.max_tokens - head - (len(ids) - tail)
            if width < 1:
                raise ConfigError(f"model.max_length={self.max_tokens} leaves no room besides special tokens")
            for start in range(head, tail, width):
                stop = min(start + width, tail)
                ids_out.append(ids[:head] + ids[start:stop] + ids[tail:])
                special_out.append(special[:head] + special[start:stop] + special[tail:])
                owner.append(i)
        return Windows(ids_out, special_out, np.asarray(owner, np.int64))

    def batch(self, win: Windows, rows: Sequence[int]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Windows `rows` padded with the tokenizer's pad id: `ids (B, T)`, `attention (B, T)` (1 = token, 0 = padding)
        and `real (B, T)` bool (a token that is neither padding nor special)."""
        width = max(len(win.ids[r]) for r in rows)
        ids = torch.full((len(rows), width), self.pad_id, dtype=torch.long)
        attention = torch.zeros(len(rows), width, dtype=torch.long)
        real = torch.zeros(len(rows), width, dtype=torch.bool)
        for b, r in enumerate(rows):
            n = len(win.ids[r])
            ids[b, :n] = torch.tensor(win.ids[r])
            attention[b, :n] = 1
            real[b, :n] = ~torch.tensor(win.special[r], dtype=torch.bool)
        return ids, attention, real

    def pool(self, hidden: torch.Tensor, real: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Per window `(weighted (B, D), n_real (B,))`: the pooled vector times its number of real tokens, so that
        summing over a sequence's windows and dividing by Σ n_real gives the length-weighted mean."""
        n_real = real.sum(1).to(hidden.dtype)
        if self.pooling == "mean":
            return (hidden * real[..., None].to(hidden.dtype)).sum(1), n_real
        return hidden[:, 0] * n_real[:, None], n_real


def max_tokens(max_length: int, model: torch.nn.Module, tokenizer: Any) -> int:
    """`max_length` capped by the model's position limit and the tokenizer's `model_max_length`."""
    limits = [max_length, getattr(model.config, "max_position_embeddings", None), tokenizer.model_max_length]
    return min(int(v) for v in limits if isinstance(v, int) and v < 10**9)


class Encoder:
    """A loaded tokenizer + frozen model; `embed(seqs) -> (N, D) float32`."""

    def __init__(self, spec: EmbedSettings, tokenizer: Any, model: torch.nn.Module) -> None:
        self.spec, self.tokenizer, self.model = spec, tokenizer, model
        self.device = _device(spec.device)
        self.model.to(self.device).eval().requires_grad_(False)
        self.max_tokens = max_tokens(spec.max_length, model, tokenizer)
        self.tokens = TokenWindows(tokenizer, self.max_tokens, spec.pooling)
        self.hidden_size = int(model.config.hidden_size)

    def windows(self, seqs: Sequence[str]) -> Windows:
        return self.tokens.windows(seqs)

    def _hidden(self, ids: torch.Tensor, attention: torch.Tensor) -> torch.Tensor:
        """Last hidden states `(B, T, D)` float32."""
        with torch.inference_mode(), autocast(self.device, self.spec.dtype):
            # return_dict given: remote code that defaults it from `config.use_return_dict` (NT-v2's) would make
            # transformers 5 warn that the attribute is deprecated; DNABERT-2's forward takes and ignores it
            out = self.model(input_ids=ids, attention_mask=attention, return_dict=True)
        return out[0].float()  # a ModelOutput's or DNABERT-2's tuple's first item: (B, T, D)

    def embed(self, seqs: Sequence[str], desc: str = "embedding") -> np.ndarray:
        """Pooled embeddings `(N, D)` float32 (see the module docstring for windows and pooling)."""
        win = self.windows(seqs)
        total = torch.zeros(len(seqs), self.hidden_size, dtype=torch.float64)  # Σ window vector × real tokens
        counts = torch.zeros(len(seqs), dtype=torch.float64)  # Σ real tokens
        order = np.argsort([len(w) for w in win.ids], kind="stable")  # similar lengths share a batch
        for start in tqdm(range(0, len(order), self.spec.batch_size), desc=desc, unit="batch", disable=None):
            rows = order[start : start + self.spec.batch_size]
            ids, attention, real = self.tokens.batch(win, rows)
            hidden = self._hidden(ids.to(self.device), attention.to(self.device)).cpu().double()  # (B, T, D)
            weighted, n_real = self.tokens.pool(hidden, real)
            owner = torch.from_numpy(win.owner[rows])
            total.index_add_(0, owner, weighted)
            counts.index_add_(0, owner, n_real)
        return (total / counts[:, None]).float().numpy()


def load_encoder(spec: EmbedSettings) -> Encoder:
    """Tokenizer and model from the local checkpoint (checked against the digest recorded in `spec`)."""
    folder = resolve_checkpoint(spec.checkpoint)
    if checkpoint_digest(folder) != spec.digest:
        raise ConfigError(f"checkpoint {folder} changed since these embeddings were defined (digest "
                          f"{checkpoint_digest(folder)}, expected {spec.digest}); restore it or retrain")  # fmt: skip
    backbone = load_backbone(folder)
    return Encoder(spec, backbone.tokenizer, backbone.encoder)


def sequences(branch: Seqs) -> list[str]:
    return [decode(codes, n) for codes, n in zip(branch.codes, branch.lengths, strict=True)]


def _content_digest(branch: Seqs) -> str:
    h = hashlib.sha256(np.ascontiguousarray(branch.codes).tobytes())
    h.update(np.ascontiguousarray(branch.lengths).tobytes())
    return h.hexdigest()[:16]


class FrozenEmbedder:
    """Embeds datasets for a spec, loading the encoder on first use; pickles without the encoder."""

    def __init__(self, spec: EmbedSettings) -> None:
        self.spec = spec
        self._encoder: Encoder | None = None

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_encoder": None}

    @property
    def encoder(self) -> Encoder:
        if self._encoder is None:
            self._encoder = load_encoder(self.spec)
        return self._encoder

    def embed_branches(self, branches: Sequence[Seqs], desc: str = "embedding") -> np.ndarray:
        """Per-branch embeddings concatenated: `(N, n_branches · D)`."""
        return np.concatenate([self.encoder.embed(sequences(b), desc) for b in branches], axis=1)

    def features(self, dataset: Dataset) -> np.ndarray:
        """The dataset's features: precomputed for a FeatureDataset, embedded for a SeqDataset."""
        if isinstance(dataset, FeatureDataset):
            return dataset.features
        return self.embed_branches(sequence_branches(dataset))


@dataclass
class _Tally:
    sequences: int = 0
    seconds: float = 0.0
    hits: int = 0
    monitors: list[dict[str, float]] = field(default_factory=list)


def embed_splits(task_name: str, splits: Mapping[str, Dataset], embedder: FrozenEmbedder) -> Splits:
    """Every split as a FeatureDataset of cached (or freshly computed) embeddings, branches concatenated; `stats`
    (embedding throughput and memory) are logged as run metrics."""
    folder = cache_dir() / "embeddings"
    folder.mkdir(parents=True, exist_ok=True)
    tally = _Tally()
    out: dict[str, FeatureDataset] = {}
    for split, dataset in splits.items():
        if isinstance(dataset, FeatureDataset):
            raise TypeError(f"{task_name}:{split}: expected sequences to embed, got precomputed features")
        parts = []
        for b, branch in enumerate(sequence_branches(dataset)):
            path = folder / f"{task_name}-{split}-b{b}-{_content_digest(branch)}-{embedder.spec.cache_key()}.npy"
            if path.exists():
                parts.append(np.load(path))
                tally.hits += 1
                continue
            with ResourceMonitor(device=_device(embedder.spec.device)) as monitor:
                start = time.perf_counter()
                matrix = embedder.embed_branches([branch], f"embed {task_name}:{split}")
                tally.seconds += time.perf_counter() - start
            tally.sequences += len(branch)
            tally.monitors.append(monitor.summary())
            tmp = path.with_suffix(f".{os.getpid()}.tmp.npy")
            np.save(tmp, matrix)
            tmp.replace(path)  # atomic: concurrent trials never read a half-written file
            parts.append(matrix)
        out[split] = FeatureDataset(np.concatenate(parts, axis=1), dataset.labels, dataset.ids)
    return Splits(out, _stats(tally))


def _stats(tally: _Tally) -> dict[str, float]:
    stats = {"embed_cache_hits": float(tally.hits), "embed_sequences": float(tally.sequences)}
    if tally.sequences:
        stats |= {"embed_seconds": tally.seconds, "embed_seq_per_s": tally.sequences / max(tally.seconds, 1e-9)}
        stats["embed_peak_rss_mb"] = max(m["peak_rss_mb"] for m in tally.monitors)
        cuda = [m["cuda_peak_allocated_mb"] for m in tally.monitors if "cuda_peak_allocated_mb" in m]
        if cuda:
            stats["embed_cuda_peak_mb"] = max(cuda)
    return stats


def write_tiny_checkpoint(folder: Path, hidden: int = 32, layers: int = 2, max_tokens: int = 64, seed: int = 0) -> Path:
    """A random-weight BERT with a one-token-per-base tokenizer ([PAD] [UNK] [CLS] [SEP] [MASK] A C G T N).

    Exercises the whole embedding path without downloads (tests, `bench/embed.py`).
    """
    from tokenizers import Regex, Tokenizer, models, pre_tokenizers, processors
    from transformers import BertConfig, BertModel, PreTrainedTokenizerFast

    vocab = {t: i for i, t in enumerate(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *"ACGTN"])}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Split(Regex("."), behavior="isolated")
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B [SEP]", special_tokens=[("[CLS]", 2), ("[SEP]", 3)]
    )
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]", pad_token="[PAD]", cls_token="[CLS]",
                                   sep_token="[SEP]", mask_token="[MASK]", model_max_length=max_tokens)  # fmt: skip
    config = BertConfig(vocab_size=len(vocab), hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=2,
                        intermediate_size=2 * hidden, max_position_embeddings=max_tokens)  # fmt: skip
    torch.manual_seed(seed)
    folder.mkdir(parents=True, exist_ok=True)
    BertModel(config).save_pretrained(folder)
    fast.save_pretrained(folder)
    return folder
