"""K-mer self-attention encoder: the regbench proposal's sequence model.

Overlapping k-mers are embedded as tokens (as in DNABERT: Ji et al. 2021, "DNABERT: pre-trained Bidirectional
Encoder Representations from Transformers model for DNA-language in genome", Bioinformatics 37:2112) and read by a
small Transformer encoder (Vaswani et al. 2017, "Attention is all you need", NeurIPS), trained from scratch.
The proposal's configuration is one layer with one head, so its attention map can be read as k-mer interactions.

codes (B, L) → k-mer ids (B, T = L-k+1) → embedding + position (B, T, C) → n_layers × [attention, MLP]
→ masked pooling (B, C) → Linear-ReLU-Dropout (B, out_dim). Padding never receives attention nor enters pooling,
so a sequence gives the same features whatever the padding width of its batch.

Input length: at most `max_len` bases (default 1024), or the task's fixed length when it has one; a longer sequence
is refused (predict/evaluate name the record), never cut or windowed, since attention weights grow as T x T. A batch
whose attention weights (B x heads x T x T floats) would exceed the memory limit
(`harness.data.encode.check_batch_memory`) is refused before allocation.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from harness.config import Setting, Settings
from harness.data.encode import check_batch_memory, kmer_ids, kmer_vocab_size, one_hot
from harness.plugins import register_model
from harness.spec import Encoder, IOSpec, ModelPlugin
from models._attention_positions import POS_ENCODINGS, AlibiBias, RelativePositionBias, rotate
from models._banded_attention import Bias, banded_attention
from models._dropout import Dropout

POOLINGS = ("mean", "max", "cls", "attention")
STEMS = ("kmer", "conv")
MIN_CHUNK = 8  # tokens; a smaller chunk leaves attention nothing to relate


def sinusoidal_positions(n: int, dim: int, device: torch.device) -> torch.Tensor:
    """Fixed sine/cosine position codes `(n, dim)` (Vaswani et al. 2017, section 3.5)."""
    pos = torch.arange(n, dtype=torch.float32, device=device)[:, None]  # (T, 1)
    freq = torch.exp(torch.arange(0, dim, 2, dtype=torch.float32, device=device) * (-math.log(10000.0) / dim))
    pe = torch.zeros(n, dim, device=device)
    pe[:, 0::2] = torch.sin(pos * freq)
    pe[:, 1::2] = torch.cos(pos * freq)
    return pe


class SelfAttention(nn.Module):
    """Multi-head self-attention with a key padding mask; keeps its attention weights when asked.

    Runs through `F.scaled_dot_product_attention` unless `fused` is False, the weights are to be stored, or it
    trains with attention dropout on the CPU: then the explicit softmax path, same outputs within float tolerance
    (`tests/test_attention_sdpa.py`). SDPA takes a fused kernel (no `(B, H, T, T)` weights kept for backward) where
    torch has one: on CPU only without attention dropout, i.e. in evaluation or at dropout 0; on GPUs with dropout
    too. On the CPU with dropout SDPA would run its math path, the explicit path's work but with bf16 inputs cast
    up to fp32 and float masks drawn by `bernoulli_`; the explicit path keeps autocast's bf16 and draws its masks
    with `models._dropout` (`bench/cpu_speed.py`). `bench/attention.py` times both paths.

    `window > 0`: each query sees the keys at most `window` tokens away, computed blockwise with memory linear in T
    (`models._banded_attention`); the explicit path (stored weights) masks the full `(T, T)` scores to the band.
    `bias(rel) -> (H, ...)` adds a relative position bias; `rotary` rotates queries and keys by position; the first
    `n_prefix` tokens (a CLS token) get neither.
    """

    def __init__(self, d_model: int, n_heads: int, dropout: float, window: int = 0) -> None:
        super().__init__()
        self.n_heads, self.window = n_heads, window
        self.qkv = nn.Linear(d_model, 3 * d_model)
        self.proj = nn.Linear(d_model, d_model)
        self.attn_dropout = Dropout(dropout)
        self.fused = True
        self.last_weights: torch.Tensor | None = None

    def forward(
        self,
        x: torch.Tensor,
        key_mask: torch.Tensor,
        store: bool = False,
        bias: Bias | None = None,
        rotary: bool = False,
        n_prefix: int = 0,
    ) -> torch.Tensor:
        B, T, C = x.shape
        q, k, v = self.qkv(x).split(C, dim=-1)  # 3 × (B, T, C)
        q, k, v = (t.view(B, T, self.n_heads, C // self.n_heads).transpose(1, 2) for t in (q, k, v))  # (B, H, T, D)
        if rotary:
            q, k = (torch.cat([t[:, :, :n_prefix], rotate(t[:, :, n_prefix:])], dim=2) for t in (q, k))
        p = self.attn_dropout.p if self.training else 0.0
        if self.window and self.fused and not store:
            self.last_weights = None
            y = banded_attention(q, k, v, key_mask, self.window, bias, p)  # (B, H, T, D)
            return self.proj(y.transpose(1, 2).reshape(B, T, C))
        allowed = key_mask[:, None, None, :]  # (B, 1, 1, T); every row has at least one real key
        if self.window or bias is not None:
            pos = torch.arange(T, device=x.device) - n_prefix
            rel = pos[:, None] - pos[None, :]  # (T, T): i − j
        if self.window:
            allowed = allowed & (rel.abs() <= self.window)  # (B, 1, T, T)
            allowed = allowed | (~allowed.any(-1, keepdim=True) & (rel == 0))  # as banded_attention
        mask: torch.Tensor = allowed
        if bias is not None:
            plain = (pos[:, None] < 0) | (pos[None, :] < 0)  # (T, T): prefix rows and columns get no bias
            mask = bias(rel).masked_fill(plain, 0.0).to(q.dtype).masked_fill(~allowed, float("-inf"))  # (B, H, T, T)
        if self.fused and not store and not (p and x.device.type == "cpu"):
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=p)  # (B, H, T, D)
            self.last_weights = None
        else:
            if mask.dtype == torch.bool:  # as an additive mask: 0 where allowed, −inf elsewhere
                mask = torch.zeros(mask.shape, dtype=q.dtype, device=x.device).masked_fill_(~mask, float("-inf"))
            weights = attention_weights(q, k, mask)  # (B, H, T, T)
            self.last_weights = weights.detach() if store else None
            y = self.attn_dropout(weights) @ v  # (B, H, T, D)
        return self.proj(y.transpose(1, 2).reshape(B, T, C))  # (B, T, C)


def attention_weights(q: torch.Tensor, k: torch.Tensor, add: torch.Tensor) -> torch.Tensor:
    """softmax(q kᵀ / √D + add) of `q, k (B, H, T, D)` and an additive mask `add` broadcastable to `(B, H, T, T)`
    (`(B, 1, 1, T)` for key padding): one `baddbmm` writes the scaled and masked scores. Returns `(B, H, T, T)`."""
    B, H, T, D = q.shape
    add = add.expand(B, H, -1, T)
    add = add.reshape(B * H, add.shape[2], T)  # (B·H, 1 or T, T)
    k3 = k.reshape(B * H, T, D).transpose(1, 2)  # (B·H, D, T)
    scores = torch.baddbmm(add, q.reshape(B * H, T, D), k3, alpha=1 / math.sqrt(D))  # (B·H, T, T)
    return scores.softmax(dim=-1).view(B, H, T, T)


class EncoderBlock(nn.Module):
    """Pre-norm Transformer block: x + attention(LN(x)), then x + MLP(LN(x))."""

    def __init__(self, d_model: int, n_heads: int, ff_dim: int, dropout: float, window: int = 0) -> None:
        super().__init__()
        self.ln1 = nn.LayerNorm(d_model)
        self.attn = SelfAttention(d_model, n_heads, dropout, window)
        self.ln2 = nn.LayerNorm(d_model)
        self.mlp = nn.Sequential(nn.Linear(d_model, ff_dim), nn.GELU(), nn.Linear(ff_dim, d_model))
        self.dropout = Dropout(dropout)

    def forward(self, x: torch.Tensor, key_mask: torch.Tensor, store: bool = False, **positions: Any) -> torch.Tensor:
        x = x + self.dropout(self.attn(self.ln1(x), key_mask, store, **positions))  # (B, T, C)
        return x + self.dropout(self.mlp(self.ln2(x)))  # (B, T, C)


class KmerAttentionEncoder(nn.Module, Encoder):
    """`forward(codes (B, L), mask (B, L)) -> features (B, out_dim)`.

    Set `store_attention = True` to keep each layer's weights in `last_attention` (list of `(B, H, T, T)`,
    T counting the CLS token first under `pooling="cls"`), or call `attention_maps`.
    """

    has_attention_maps = True

    def __init__(
        self,
        k: int,
        d_model: int,
        n_heads: int,
        n_layers: int,
        ff_mult: int,
        dropout: float,
        pooling: str,
        pos_encoding: str,
        max_len: int,
        head_dim: int,
        stem: str = "kmer",
        attention_window: int = 0,
        chunk: int = 0,
    ) -> None:
        super().__init__()
        if pooling not in POOLINGS:
            raise ValueError(f"kmer_attention: pooling={pooling!r} is not one of {', '.join(POOLINGS)}")
        if pos_encoding not in POS_ENCODINGS:
            raise ValueError(f"kmer_attention: pos_encoding={pos_encoding!r} is not one of {', '.join(POS_ENCODINGS)}")
        if stem not in STEMS:
            raise ValueError(f"kmer_attention: stem={stem!r} is not one of {', '.join(STEMS)}")
        if d_model % n_heads:
            raise ValueError(f"kmer_attention: n_heads={n_heads} must divide d_model={d_model}")
        if pos_encoding == "sinusoidal" and d_model % 2:
            raise ValueError(f"kmer_attention: sinusoidal positions need an even d_model, got {d_model}")
        if pos_encoding == "rotary" and (d_model // n_heads) % 2:
            raise ValueError(
                f"kmer_attention: rotary positions need an even d_model / n_heads, got {d_model // n_heads}"
            )
        if max_len < k:
            raise ValueError(f"kmer_attention: max_len={max_len} is shorter than k={k}")
        reason = long_input_problem(attention_window, chunk, pooling, max_len - k + 1)
        if reason:
            raise ValueError(f"kmer_attention: {reason}")
        self.k, self.pooling, self.pos_encoding, self.max_len = k, pooling, pos_encoding, max_len
        self.stem, self.window, self.chunk = stem, attention_window, chunk
        self.out_dim = head_dim
        self.store_attention = False
        self.last_attention: list[torch.Tensor] = []

        if stem == "kmer":
            self.tok_emb = nn.Embedding(kmer_vocab_size(k), d_model, padding_idx=0)
        else:  # a convolution over k bases: one token per k-mer position, as the k-mer embedding
            self.conv_stem = nn.Sequential(nn.Conv1d(4, d_model, k), nn.GELU(), nn.Conv1d(d_model, d_model, 1))
        if pos_encoding == "learned":
            self.pos_emb = nn.Embedding(max_len - k + 1, d_model)
        self.rel_bias: nn.Module | None = None
        if pos_encoding == "relative":
            self.rel_bias = RelativePositionBias(n_heads)
        elif pos_encoding == "alibi":
            self.rel_bias = AlibiBias(n_heads)
        if pooling == "cls":
            self.cls = nn.Parameter(torch.randn(1, 1, d_model) * 0.02)
        if pooling == "attention":
            self.pool_score = nn.Linear(d_model, 1)
        self.drop = Dropout(dropout)
        self.blocks = nn.ModuleList(
            EncoderBlock(d_model, n_heads, ff_mult * d_model, dropout, attention_window) for _ in range(n_layers)
        )
        if chunk:  # pooled chunk summaries attend across chunks, then flow back to their tokens
            self.across = EncoderBlock(d_model, n_heads, ff_mult * d_model, dropout)
        self.ln_f = nn.LayerNorm(d_model)
        self.head = nn.Sequential(nn.Linear(d_model, head_dim), nn.ReLU(), Dropout(dropout))

    def forward(self, codes: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        self.check_inputs(codes, mask)
        ids, kmask = kmer_ids(codes, mask, self.k)  # (B, T), (B, T)
        B, T = ids.shape
        if self.stem == "kmer":
            x = self.tok_emb(ids)  # (B, T, C)
        else:
            x = self.conv_stem(one_hot(codes, mask)).transpose(1, 2) * kmask[..., None]  # (B, T, C)
        if self.pos_encoding == "learned":
            n_pos = self.pos_emb.num_embeddings
            x = x + self.pos_emb(torch.arange(T, device=ids.device).clamp(max=n_pos - 1))  # pad rows are masked
        elif self.pos_encoding == "sinusoidal":
            x = x + sinusoidal_positions(T, x.shape[-1], ids.device)
        if self.pooling == "cls":
            x = torch.cat([self.cls.expand(B, -1, -1), x], dim=1)  # (B, 1+T, C)
            kmask = torch.cat([kmask.new_ones(B, 1), kmask], dim=1)  # (B, 1+T)
        x = self.drop(x)
        positions = {
            "bias": self.rel_bias,
            "rotary": self.pos_encoding == "rotary",
            "n_prefix": int(self.pooling == "cls"),
        }
        if self.chunk:
            x = self.attend_in_chunks(x, kmask, positions)  # (B, T, C)
        else:
            for block in self.blocks:
                x = block(x, kmask, self.store_attention, **positions)  # (B, T, C)
        self.last_attention = [b.attn.last_weights for b in self.blocks] if self.store_attention else []
        x = self.ln_f(x)
        return self.head(self.pool(x, kmask))  # (B, out_dim)

    @torch.compiler.disable
    def check_inputs(self, codes: torch.Tensor, mask: torch.Tensor) -> None:
        """ValueError for a batch `codes (B, L)`, `mask (B, L)` the model does not take. It reads lengths back to
        the host, so it runs eagerly: under `torch.compile` the forward after it is one graph."""
        if codes.shape[1] < self.k:
            raise ValueError(f"kmer_attention: sequence length {codes.shape[1]} is shorter than k={self.k}")
        lengths = mask.sum(dim=1)  # (B,)
        longest = int(lengths.max())
        if longest > self.max_len:
            raise ValueError(
                f"kmer_attention: sequence length {longest} exceeds max_len={self.max_len}, the model's maximum "
                "input length (model.max_len, or the task's fixed length)"
            )
        heads = self.blocks[0].attn.n_heads if len(self.blocks) else 0
        tokens = codes.shape[1] + 1
        span = min(self.chunk or tokens, 3 * self.window or tokens)  # keys per query the scores hold
        check_batch_memory(4 * codes.shape[0] * heads * tokens * span, "kmer_attention attention weights")
        if not bool(mask.unfold(1, self.k, 1).all(-1).any(dim=1).all()):  # every row has a real k-mer
            raise ValueError(f"kmer_attention: a sequence of length {int(lengths.min())} is shorter than k={self.k}")

    def attend_in_chunks(self, x: torch.Tensor, kmask: torch.Tensor, positions: dict[str, Any]) -> torch.Tensor:
        """Segmented processing: `x (B, T, C)` cut into chunks of `chunk` tokens (the last one padded) that attend
        within themselves (every block), then one block in which the chunks' masked-mean summaries `(B, n, C)`
        attend to each other; each token gets its chunk's summary added. Returns `(B, T, C)`."""
        B, T, C = x.shape
        c = self.chunk
        n = -(-T // c)
        xs = F.pad(x, (0, 0, 0, n * c - T)).reshape(B * n, c, C)  # (B·n, c, C)
        ms = F.pad(kmask, (0, n * c - T), value=False).reshape(B * n, c)  # (B·n, c)
        keys = ms | ~ms.any(dim=1, keepdim=True)  # an all-padding chunk attends to itself (its output is dropped)
        for block in self.blocks:
            xs = block(xs, keys, False, **positions)  # (B·n, c, C)
        real = ms.reshape(B, n, c)  # (B, n, c)
        xs = xs.reshape(B, n, c, C)
        summary = (xs * real[..., None]).sum(2) / real.sum(2, keepdim=True).clamp(min=1)  # (B, n, C)
        summary = self.across(summary, real.any(2))  # (B, n, C); every row has a real chunk
        return (xs + summary[:, :, None]).reshape(B, n * c, C)[:, :T]  # (B, T, C)

    def pool(self, x: torch.Tensor, kmask: torch.Tensor) -> torch.Tensor:
        """Masked pooling `(B, T, C), (B, T) -> (B, C)`; padded tokens never contribute."""
        m = kmask.unsqueeze(-1)  # (B, T, 1)
        if self.pooling == "mean":
            w = m.to(x.dtype)  # a float mask: bool operands take torch's slower unvectorised CPU kernels
            return (x * w).sum(dim=1) / w.sum(dim=1)
        if self.pooling == "max":
            return x.masked_fill(~m, float("-inf")).amax(dim=1)
        if self.pooling == "cls":
            return x[:, 0]
        scores = self.pool_score(x).masked_fill(~m, float("-inf"))  # (B, T, 1)
        return (scores.softmax(dim=1) * x).sum(dim=1)

    @torch.no_grad()
    def attention_maps(self, codes: torch.Tensor, mask: torch.Tensor) -> list[torch.Tensor]:
        """Each layer's attention weights `(B, H, T, T)` (rows: queries, columns: keys); call `.eval()` first.
        Under `attention_window` the weights outside the band are 0; chunked attention has no single map."""
        if self.chunk:
            raise ValueError("kmer_attention: attention maps need model.chunk=0 (chunks attend within themselves)")
        store = self.store_attention
        self.store_attention = True
        try:
            self(codes, mask)
            return self.last_attention
        finally:
            self.store_attention = store


def build(
    io: IOSpec,
    *,
    k: int,
    d_model: int,
    n_heads: int,
    n_layers: int,
    ff_mult: int,
    dropout: float,
    pooling: str,
    pos_encoding: str,
    max_len: int,
    head_dim: int,
    stem: str,
    attention_window: int,
    chunk: int,
) -> KmerAttentionEncoder:
    """One branch for `io`; learned positions cover `io.lengths[0]` when fixed, else `max_len`."""
    length = io.lengths[0] if io.lengths[0] > 0 else max_len
    return KmerAttentionEncoder(k, d_model, n_heads, n_layers, ff_mult, dropout, pooling, pos_encoding, length,
                                head_dim, stem, attention_window, chunk)  # fmt: skip


def long_input_problem(window: int, chunk: int, pooling: str, tokens: int) -> str | None:
    """Why `attention_window` / `chunk` do not fit inputs of at most `tokens` k-mers (max length − k + 1), or None."""
    if window > tokens:
        return (f"model.attention_window={window} exceeds the {tokens} tokens of the longest input (max length − k "
                "+ 1); use a smaller window, or 0 for full attention")  # fmt: skip
    if chunk and not MIN_CHUNK <= chunk <= tokens:
        return f"model.chunk={chunk} must lie in {MIN_CHUNK}..{tokens} tokens (max length − k + 1), or be 0 (no chunks)"
    if chunk and window >= chunk:
        return f"model.attention_window={window} must be smaller than model.chunk={chunk} (a chunk bounds attention)"
    if (window or chunk) and pooling == "cls":
        return "model.pooling=cls needs full attention (the CLS token must see every token); unset window and chunk"
    return None


def _heads_divide(hp: Mapping[str, Any]) -> str | None:
    if hp["d_model"] % hp["n_heads"]:
        return f"model.n_heads={hp['n_heads']} must divide model.d_model={hp['d_model']}"
    if hp["pos_encoding"] == "sinusoidal" and hp["d_model"] % 2:
        return f"model.d_model={hp['d_model']} must be even with model.pos_encoding=sinusoidal"
    if hp["pos_encoding"] == "rotary" and (hp["d_model"] // hp["n_heads"]) % 2:
        return f"model.d_model / model.n_heads = {hp['d_model'] // hp['n_heads']} must be even with pos_encoding=rotary"
    return None


def _long_inputs(hp: Mapping[str, Any]) -> str | None:
    tokens = max(hp["max_len"] - hp["k"] + 1, 1)
    return long_input_problem(hp["attention_window"], hp["chunk"], hp["pooling"], tokens)


def _k_fits(hp: Mapping[str, Any]) -> str | None:
    return f"model.k={hp['k']} must be <= model.max_len={hp['max_len']}" if hp["k"] > hp["max_len"] else None


# k <= 8: the embedding table has 4**k + 2 rows (65,538 at k = 8). max_len bounds the tokens attended to: T x T
# attention weights per head (harness.data.encode.check_batch_memory checks a batch against the memory limit).
SETTINGS = Settings(
    {
        "k": Setting(4, ge=1, le=8),
        "d_model": Setting(64, ge=1, le=4096),
        "n_heads": Setting(1, ge=1, le=64),
        "n_layers": Setting(1, ge=1, le=48),
        "ff_mult": Setting(2, ge=1, le=16),
        "dropout": Setting(0.1, ge=0, lt=1),
        "pooling": Setting("mean", choices=POOLINGS),
        "pos_encoding": Setting("sinusoidal", choices=POS_ENCODINGS),
        "max_len": Setting(1024, ge=1, le=16384),
        "head_dim": Setting(64, ge=1, le=8192),
        "stem": Setting("kmer", choices=STEMS),
        "attention_window": Setting(0, ge=0, le=16384),  # 0: full attention
        "chunk": Setting(0, ge=0, le=16384),  # 0: no chunks
    },
    rules=(_heads_divide, _k_fits, _long_inputs),
)


def max_length(hp: Mapping[str, Any], io: IOSpec) -> int:
    """The longest sequence taken: the task's fixed length, else `max_len` (longer inputs are refused)."""
    return io.lengths[0] if io.lengths[0] > 0 else int(hp["max_len"])


def search_space(trial: Any) -> dict[str, Any]:
    """k in 3..6 and the encoder's size; every n_heads choice divides every d_model choice."""
    return {
        "k": trial.suggest_int("k", 3, 6),
        "d_model": trial.suggest_categorical("d_model", [32, 64, 128]),
        "n_heads": trial.suggest_categorical("n_heads", [1, 2, 4]),
        "n_layers": trial.suggest_int("n_layers", 1, 3),
        "dropout": trial.suggest_float("dropout", 0.0, 0.5),
        "pooling": trial.suggest_categorical("pooling", list(POOLINGS)),
        "pos_encoding": trial.suggest_categorical("pos_encoding", list(POS_ENCODINGS)),
        "stem": trial.suggest_categorical("stem", list(STEMS)),
    }


PLUGIN = register_model(
    ModelPlugin(
        name="kmer_attention",
        description="overlapping k-mer embeddings + Transformer self-attention encoder (1 layer, 1 head)",
        native_inputs="seq",
        defaults=SETTINGS,
        tiny={"k": 3, "d_model": 16, "ff_mult": 2, "head_dim": 16},
        search_space=search_space,
        build=build,
        max_length=max_length,
        # Both strands carry the same regulatory signal: train on random strands and average both at evaluation.
        # Chosen on enhancers.ienhancer2l validation AUROC (README, "Measured"), with lr 2e-3 for 30 epochs.
        # bf16 autocast where the CPU has bf16 units (and on CUDA): validation AUROC within 0.003 of fp32 by DeLong on
        # the same split and seed, 1.8x faster steps (bench/amp_paired.py, bench/cpu_speed.py; docs/speed.md).
        train_defaults={"rc_augment": True, "rc_tta": True, "max_epochs": 30, "lr": 2e-3, "amp": "true"},
        paper="Vaswani et al. 2017 (NeurIPS); k-mer tokens as in Ji et al. 2021 (Bioinformatics 37:2112)",
    )
)
