"""models.kmer_attention: padding invariance, attention maps, clear errors, and that it learns a motif."""

from __future__ import annotations

from functools import partial

import numpy as np
import pytest
import torch

from harness.data.encode import N_CODE
from harness.spec import IOSpec
from harness.training.modeling import build_model
from models.kmer_attention import PLUGIN, POOLINGS, POS_ENCODINGS, build, sinusoidal_positions

VARIABLE = IOSpec("seq", (0,), 1, "binary")
encoder = partial(build, **PLUGIN.defaults)  # `build` with the plugin's defaults under the given settings


def random_batch(rng: np.random.Generator, lengths: list[int], width: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Random ACGT codes (a few N inside) left-aligned in `width` columns; padding is N with mask False."""
    codes = rng.integers(0, 4, size=(len(lengths), width)).astype(np.uint8)
    codes[rng.random(codes.shape) < 0.02] = N_CODE
    mask = np.arange(width)[None, :] < np.asarray(lengths)[:, None]
    codes[~mask] = N_CODE
    return torch.from_numpy(codes), torch.from_numpy(mask)


def repad(codes: torch.Tensor, mask: torch.Tensor, width: int, fill: torch.Tensor | None = None) -> tuple:
    """The same sequences in `width` columns; the new padding holds N, or `fill` codes where given."""
    b, w = codes.shape
    out = torch.full((b, width), N_CODE, dtype=codes.dtype) if fill is None else fill.clone()
    out[:, :w] = torch.where(mask, codes, out[:, :w])
    new_mask = torch.zeros(b, width, dtype=torch.bool)
    new_mask[:, :w] = mask
    return out, new_mask


@pytest.mark.parametrize("pos_encoding", POS_ENCODINGS)
@pytest.mark.parametrize("pooling", POOLINGS)
def test_features_do_not_depend_on_padding(pooling: str, pos_encoding: str, rng: np.random.Generator) -> None:
    enc = encoder(VARIABLE, k=3, d_model=16, n_heads=2, n_layers=2, pooling=pooling, pos_encoding=pos_encoding)
    enc.eval()
    codes, mask = random_batch(rng, [40, 23, 57, 3], width=57)
    with torch.no_grad():
        ref = enc(codes, mask)  # (B, out_dim)
        wider = enc(*repad(codes, mask, 90))
        garbage = torch.from_numpy(rng.integers(0, 4, size=(4, 90)).astype(np.uint8))
        noisy_pad = enc(*repad(codes, mask, 90, fill=garbage))
        alone = torch.cat([enc(codes[i : i + 1, :n], mask[i : i + 1, :n]) for i, n in enumerate([40, 23, 57, 3])])
    assert ref.shape == (4, enc.out_dim)
    torch.testing.assert_close(wider, ref, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(noisy_pad, ref, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(alone, ref, atol=1e-5, rtol=1e-5)


def test_features_change_with_content(rng: np.random.Generator) -> None:
    """Guards the invariance test above: a real base change does change the features."""
    enc = encoder(VARIABLE, k=3, d_model=16).eval()
    codes, mask = random_batch(rng, [50, 50], width=50)
    codes[1] = codes[0]
    codes[1, 10] = (codes[0, 10] + 1) % 4
    with torch.no_grad():
        out = enc(codes, mask)
    assert not torch.allclose(out[0], out[1], atol=1e-4)


@pytest.mark.parametrize("pooling", ["mean", "cls"])
def test_attention_maps_ignore_padding(pooling: str, rng: np.random.Generator) -> None:
    enc = encoder(VARIABLE, k=4, d_model=16, n_heads=4, n_layers=2, pooling=pooling).eval()
    lengths = [30, 12]
    codes, mask = random_batch(rng, lengths, width=30)
    maps = enc.attention_maps(codes, mask)
    extra = 1 if pooling == "cls" else 0
    t = 30 - 4 + 1 + extra
    assert len(maps) == 2 and all(a.shape == (2, 4, t, t) for a in maps)
    for a in maps:
        torch.testing.assert_close(a.sum(-1), torch.ones(2, 4, t))
        assert torch.all(a[1, :, :, extra + 12 - 4 + 1 :] == 0)  # keys past row 1's 9 real k-mers
    assert enc.store_attention is False and enc.last_attention == maps
    enc(codes, mask)
    assert enc.last_attention == []
    enc.store_attention = True
    enc(codes, mask)
    torch.testing.assert_close(enc.last_attention[0], maps[0])


def test_too_short_sequences_raise(rng: np.random.Generator) -> None:
    enc = encoder(VARIABLE, k=5, d_model=16)
    with pytest.raises(ValueError, match=r"length 4 is shorter than k=5"):
        enc(*random_batch(rng, [4, 4], width=4))
    with pytest.raises(ValueError, match=r"length 3 is shorter than k=5"):
        enc(*random_batch(rng, [20, 3], width=20))


def test_learned_positions_cover_the_task_length(rng: np.random.Generator) -> None:
    fixed = encoder(IOSpec("seq", (50,), 1, "binary"), k=3, d_model=16, pos_encoding="learned")
    assert fixed.pos_emb.num_embeddings == 48
    fixed(*repad(*random_batch(rng, [50, 50], width=50), 64))  # wider padding is fine
    with pytest.raises(ValueError, match=r"sequence length 60 exceeds max_len=50"):
        fixed(*random_batch(rng, [60, 20], width=60))
    variable = encoder(VARIABLE, k=3, d_model=16, pos_encoding="learned", max_len=100)
    assert variable.pos_emb.num_embeddings == 98


@pytest.mark.parametrize(
    ("hp", "message"),
    [
        ({"d_model": 16, "n_heads": 3}, "n_heads=3 must divide d_model=16"),
        ({"pooling": "sum"}, "pooling='sum' is not one of"),
        ({"pos_encoding": "rope"}, "pos_encoding='rope' is not one of"),
        ({"stem": "cnn"}, "stem='cnn' is not one of"),
        ({"d_model": 6, "n_heads": 2, "pos_encoding": "rotary"}, "rotary positions need an even d_model / n_heads"),
        ({"d_model": 15, "pos_encoding": "sinusoidal"}, "even d_model"),
    ],
)
def test_bad_hyperparameters_raise_clearly(hp: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        encoder(VARIABLE, **hp)


def test_sinusoidal_positions_match_the_formula() -> None:
    pe = sinusoidal_positions(10, 8, torch.device("cpu"))
    assert pe.shape == (10, 8)
    pos, i = 7, 2
    torch.testing.assert_close(pe[pos, 2 * i], torch.tensor(np.sin(pos / 10000 ** (2 * i / 8)), dtype=torch.float32))
    torch.testing.assert_close(
        pe[pos, 2 * i + 1], torch.tensor(np.cos(pos / 10000 ** (2 * i / 8)), dtype=torch.float32)
    )


def test_defaults_are_the_one_layer_one_head_proposal() -> None:
    enc = build(IOSpec("seq", (200,), 1, "binary"), **PLUGIN.defaults)
    assert len(enc.blocks) == 1 and enc.blocks[0].attn.n_heads == 1
    assert enc.tok_emb.num_embeddings == 4**4 + 2 and enc.tok_emb.padding_idx == 0


def test_learns_a_motif(rng: np.random.Generator) -> None:
    """Tiny variant with 4-mers, 60 Adam steps: positives carry TGACTCA somewhere; accuracy must exceed 85%."""
    torch.manual_seed(0)
    n, length = 256, 60
    codes = rng.integers(0, 4, size=(n, length)).astype(np.uint8)
    y = (np.arange(n) % 2).astype(np.float32)
    motif = np.array([3, 2, 0, 1, 3, 1, 0], dtype=np.uint8)  # TGACTCA
    for i in np.flatnonzero(y):
        start = rng.integers(0, length - len(motif))
        codes[i, start : start + len(motif)] = motif
    x, m, t = torch.from_numpy(codes), torch.ones(n, length, dtype=torch.bool), torch.from_numpy(y)
    model = build_model(PLUGIN, IOSpec("seq", (length,), 1, "binary"), {**PLUGIN.defaults, **PLUGIN.tiny, "k": 4})
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(60):
        idx = torch.from_numpy(rng.choice(n, size=64, replace=False))
        loss = torch.nn.functional.binary_cross_entropy_with_logits(model(x[idx], m[idx]).squeeze(-1), t[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    with torch.no_grad():
        accuracy = ((model(x, m).squeeze(-1) > 0).float() == t).float().mean().item()
    assert accuracy > 0.85, f"accuracy {accuracy:.2f} after 60 steps"
