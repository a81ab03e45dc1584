"""`regbench lm check`: load a checkpoint folder through the path training uses, tokenize and embed probe sequences,
and report what was loaded; optionally build random weights and save a loadable copy."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from harness.config import ConfigError
from models.lm._checkpoint import Backbone, check_folder, count_parameters, load_backbone, save_backbone
from models.lm._embeddings import EmbedSettings, Encoder, checkpoint_digest, load_encoder

PROBE_LENGTHS = (50, 200, 1000)  # bp; the longest spans several windows at the default max_length


def probe_sequences(n: int, seed: int = 0) -> list[str]:
    """`n` seeded random ACGT sequences cycling through `PROBE_LENGTHS`."""
    rng = np.random.default_rng(seed)
    alphabet = np.frombuffer(b"ACGT", dtype=np.uint8)
    lengths = [PROBE_LENGTHS[i % len(PROBE_LENGTHS)] for i in range(n)]
    return [alphabet[rng.integers(0, 4, size=n_bp)].tobytes().decode() for n_bp in lengths]


def _settings(folder: Path, pooling: str, max_length: int, batch_size: int, device: str) -> EmbedSettings:
    return EmbedSettings(str(folder), checkpoint_digest(folder), pooling, max_length, batch_size, device)


def _embed(encoder: Encoder, seqs: list[str]) -> tuple[np.ndarray, float]:
    """Embeddings `(N, D)` and sequences per second (after one untimed warm-up sequence)."""
    encoder.embed(seqs[:1], "warm-up")
    start = time.perf_counter()
    out = encoder.embed(seqs, "probe sequences")
    return out, len(seqs) / max(time.perf_counter() - start, 1e-9)


def _tokenizer_lines(backbone: Backbone, seqs: list[str]) -> Iterator[str]:
    tok = backbone.tokenizer
    specials = ", ".join(f"{t}={i}" for t, i in zip(tok.all_special_tokens, tok.all_special_ids, strict=True))
    yield f"tokenizer: {type(tok).__name__}, vocab {len(tok)}, pad id {tok.pad_token_id}, special tokens {specials}"
    counts = [len(ids) for ids in tok(seqs[: len(PROBE_LENGTHS)], verbose=False)["input_ids"]]
    yield "tokens per probe sequence: " + ", ".join(f"{len(s)} bp -> {c}" for s, c in zip(seqs, counts, strict=False))


def check(
    folder: Path,
    random_init: bool,
    save: Path | None,
    n: int,
    pooling: str,
    max_length: int,
    batch_size: int,
    device: str,
    seed: int,
) -> Iterator[str]:
    """Lines of the check's report; raises with the reason when the folder does not load or embed."""
    if n < 1:
        raise ConfigError(f"--n {n}: embed at least one probe sequence")
    folder = folder.expanduser().resolve()
    check_folder(folder, need_weights=not random_init)
    backbone = load_backbone(folder, random_init=random_init, seed=seed)
    yield f"checkpoint: {folder} ({'random weights, seed ' + str(seed) if random_init else 'its own weights'})"
    yield f"architecture: {backbone.describe()}"
    yield f"params: {count_parameters(backbone.encoder)}"
    seqs = probe_sequences(n, seed)
    yield from _tokenizer_lines(backbone, seqs)
    encoder = Encoder(_settings(folder, pooling, max_length, batch_size, device), backbone.tokenizer, backbone.encoder)
    vectors, per_s = _embed(encoder, seqs)
    if not np.isfinite(vectors).all():
        raise ValueError(f"checkpoint {folder}: non-finite embeddings of the probe sequences")
    windows = len(encoder.windows(seqs).ids)
    yield (f"embedded {len(seqs)} sequences ({windows} windows of <= {encoder.max_tokens} tokens, {pooling} pooling, "
           f"{encoder.device}): shape {vectors.shape}")  # fmt: skip
    yield f"embed_seq_per_s: {per_s:.1f}"
    if save is not None:
        out = save_backbone(backbone, save.expanduser().resolve())
        spec = EmbedSettings.create(str(out), pooling, max_length, batch_size, device)
        again = load_encoder(spec).embed(seqs, "reload")
        if not np.allclose(again, vectors, atol=1e-5):
            raise ConfigError(f"--save {out}: the saved copy embeds differently from the model that was saved")
        yield f"saved: {out} (reloads through the training path with identical embeddings)"
